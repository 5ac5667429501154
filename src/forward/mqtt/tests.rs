use super::*;

fn opts() -> MqttOptions {
    let mut o = MqttOptions::new("logwisp-box-app", "logs/app");
    o.keep_alive_secs = 2;
    o.max_in_flight = 3;
    o.ack_timeout_ms = 5000;
    o
}

fn events(m: &mut Mqtt) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

fn take_output(m: &mut Mqtt) -> Vec<u8> {
    let out = m.output().to_vec();
    m.consume_output(out.len());
    out
}

fn connected(o: MqttOptions) -> Mqtt {
    let mut m = Mqtt::new(o).unwrap();
    m.connected(0);
    m.on_bytes(&[0x20, 2, 0, 0], 0);
    assert_eq!(
        events(&mut m),
        [Event::Connected {
            session_present: false
        }]
    );
    take_output(&mut m);
    m
}

/// Feeds `bytes` split at every position and byte by byte; each must give the events and
/// output of feeding it whole.
fn split_everywhere(setup: impl Fn() -> Mqtt, bytes: &[u8]) -> (Vec<Event>, Vec<u8>) {
    let whole = {
        let mut m = setup();
        m.on_bytes(bytes, 0);
        (events(&mut m), take_output(&mut m))
    };
    for i in 0..=bytes.len() {
        let mut m = setup();
        m.on_bytes(&bytes[..i], 0);
        m.on_bytes(&bytes[i..], 0);
        assert_eq!((events(&mut m), take_output(&mut m)), whole, "split at {i}");
    }
    let mut m = setup();
    for b in bytes {
        m.on_bytes(std::slice::from_ref(b), 0);
    }
    assert_eq!((events(&mut m), take_output(&mut m)), whole, "byte by byte");
    whole
}

#[test]
fn connect_with_credentials_and_connack() {
    let mut o = opts();
    o.username = Some("u".into());
    o.password = Some("pw".into());
    let mut m = Mqtt::new(o).unwrap();
    m.connected(0);
    let out = take_output(&mut m);
    let mut want = vec![0x10, 34, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xc2, 0, 2, 0, 15];
    want.extend_from_slice(b"logwisp-box-app");
    want.extend_from_slice(&[0, 1, b'u', 0, 2, b'p', b'w']);
    assert_eq!(out, want);
    let (ev, out) = split_everywhere(
        || {
            let mut m = Mqtt::new(opts()).unwrap();
            m.connected(0);
            take_output(&mut m);
            m
        },
        &[0x20, 2, 0, 0],
    );
    assert_eq!(
        ev,
        [Event::Connected {
            session_present: false
        }]
    );
    assert_eq!(out, b"");
}

#[test]
fn refused_connections_say_why() {
    for (code, auth) in [
        (1, false),
        (2, false),
        (3, false),
        (4, true),
        (5, true),
        (9, false),
    ] {
        let mut m = Mqtt::new(opts()).unwrap();
        m.connected(0);
        m.on_bytes(&[0x20, 2, 0, code], 0);
        let ev = events(&mut m);
        let [Event::Closed { reason, unacked }] = &ev[..] else {
            panic!("{ev:?}")
        };
        assert_eq!(*reason, CloseReason::Refused(code));
        assert_eq!(reason.is_auth(), auth);
        assert!(unacked.is_empty());
        assert!(
            reason
                .to_string()
                .starts_with(&format!("connection refused ({code})"))
        );
    }
    let mut m = Mqtt::new(opts()).unwrap();
    m.connected(0);
    m.on_bytes(&[0xd0, 0], 0);
    assert!(matches!(
        &events(&mut m)[..],
        [Event::Closed {
            reason: CloseReason::Protocol(_),
            ..
        }]
    ));
}

#[test]
fn publish_and_acks_split_anywhere() {
    let setup = || {
        let mut m = connected(opts());
        m.publish(10, b"{\"m\":1}", 0).unwrap();
        m.publish(11, b"{\"m\":2}", 0).unwrap();
        m.publish(12, b"{\"m\":3}", 0).unwrap();
        m
    };
    let out = take_output(&mut setup());
    let mut want = Vec::new();
    for (id, m) in [(1u8, b'1'), (2, b'2'), (3, b'3')] {
        want.extend_from_slice(&[0x32, 19, 0, 8]);
        want.extend_from_slice(b"logs/app");
        want.extend_from_slice(&[0, id]);
        want.extend_from_slice(&[b'{', b'"', b'm', b'"', b':', m, b'}']);
    }
    assert_eq!(out, want);
    // Acks out of order, a PINGRESP, a QoS 1 message the broker should not have sent
    // (answered with PUBACK), an ack of an id not in flight (ignored).
    let server = [
        0x40, 2, 0, 2, 0xd0, 0, 0x40, 2, 0, 1, 0x32, 6, 0, 1, b'x', 0, 7, b'!', 0x40, 2, 0, 9,
        0x40, 2, 0, 3,
    ];
    let (ev, out) = split_everywhere(
        || {
            let mut m = setup();
            take_output(&mut m);
            m
        },
        &server,
    );
    assert_eq!(
        ev,
        [
            Event::Acked { token: 11 },
            Event::Acked { token: 10 },
            Event::Acked { token: 12 }
        ]
    );
    assert_eq!(out, [0x40, 2, 0, 7]);
}

#[test]
fn qos2_delivery_is_answered_by_the_book() {
    let mut m = connected(opts());
    m.on_bytes(&[0x34, 5, 0, 1, b'x', 0, 8, 0x62, 2, 0, 8], 0);
    assert_eq!(take_output(&mut m), [0x50, 2, 0, 8, 0x70, 2, 0, 8]);
    assert_eq!(events(&mut m), []);
}

#[test]
fn packet_ids_wrap_skip_zero_and_ids_in_flight() {
    let mut o = opts();
    o.max_in_flight = 10;
    let mut m = connected(o);
    m.next_id = 65_534;
    m.publish(1, b"a", 0).unwrap(); // 65534
    m.publish(2, b"b", 0).unwrap(); // 65535
    m.publish(3, b"c", 0).unwrap(); // 1, not 0
    let ids: Vec<u16> = m.in_flight.iter().map(|f| f.id).collect();
    assert_eq!(ids, [65_534, 65_535, 1]);
    // Ack 65535 only, then run the counter round again: 65534 and 1 are still in flight.
    m.on_bytes(&[0x40, 2, 0xff, 0xff], 0);
    m.next_id = 65_534;
    m.publish(4, b"d", 0).unwrap();
    m.publish(5, b"e", 0).unwrap();
    let ids: Vec<u16> = m.in_flight.iter().map(|f| f.id).collect();
    assert_eq!(ids, [65_534, 1, 65_535, 2]);
}

#[test]
fn window_and_publish_errors() {
    let mut m = Mqtt::new(opts()).unwrap();
    assert_eq!(m.publish(1, b"x", 0), Err(PublishError::NotConnected));
    let mut m = connected(opts());
    for t in 0..3 {
        assert!(m.can_publish());
        m.publish(t, b"x", 0).unwrap();
    }
    assert!(!m.can_publish());
    assert_eq!(m.publish(9, b"x", 0), Err(PublishError::Full));
}

#[test]
fn keep_alive_pings_when_idle_and_gives_up_without_pingresp() {
    let mut m = connected(opts());
    assert_eq!(m.next_deadline(), Some(2000));
    m.on_tick(1999);
    assert_eq!(take_output(&mut m), b"");
    m.on_tick(2000);
    assert_eq!(take_output(&mut m), [0xc0, 0]);
    m.on_bytes(&[0xd0, 0], 2100);
    // Publishing counts as activity: the next PINGREQ waits a full period after it.
    m.publish(1, b"x", 3000).unwrap();
    m.on_bytes(&[0x40, 2, 0, 1], 3000);
    take_output(&mut m);
    m.on_tick(4000);
    assert_eq!(take_output(&mut m), b"");
    assert_eq!(m.next_deadline(), Some(5000));
    m.on_tick(5000);
    assert_eq!(take_output(&mut m), [0xc0, 0]);
    m.on_tick(6999);
    assert_eq!(m.state(), State::Connected);
    m.on_tick(7000);
    assert_eq!(
        events(&mut m),
        [
            Event::Acked { token: 1 },
            Event::Closed {
                reason: CloseReason::Stale,
                unacked: vec![]
            }
        ]
    );
}

#[test]
fn keep_alive_zero_never_pings() {
    let mut o = opts();
    o.keep_alive_secs = 0;
    let mut m = connected(o);
    assert_eq!(m.next_deadline(), None);
    m.on_tick(u64::MAX);
    assert_eq!(take_output(&mut m), b"");
    assert_eq!(m.state(), State::Connected);
}

#[test]
fn timeouts() {
    let mut m = Mqtt::new(opts()).unwrap();
    m.connected(100);
    assert_eq!(m.next_deadline(), Some(10_100));
    m.on_tick(10_100);
    assert!(matches!(
        &events(&mut m)[..],
        [Event::Closed {
            reason: CloseReason::HandshakeTimeout,
            ..
        }]
    ));

    let mut m = connected(opts());
    m.publish(1, b"x", 0).unwrap();
    m.publish(2, b"x", 1000).unwrap();
    m.on_bytes(&[0xd0, 0], 0);
    m.on_tick(4999);
    take_output(&mut m);
    m.on_bytes(&[0xd0, 0], 0);
    assert_eq!(m.next_deadline(), Some(5000));
    m.on_tick(5000);
    assert_eq!(
        events(&mut m),
        [Event::Closed {
            reason: CloseReason::AckTimeout,
            unacked: vec![1, 2]
        }]
    );
}

#[test]
fn bad_bytes_close_with_unacked_tokens() {
    for garbage in [
        &[0x20, 2, 0, 0][..],
        &[0x10, 0],
        &[0x40, 2, 0, 0],
        &[0xd0, 0xff, 0xff, 0xff, 0xff],
        &[0x30, 0xff, 0xff, 0x03],
    ] {
        let mut m = connected(opts());
        m.publish(5, b"x", 0).unwrap();
        m.publish(6, b"x", 0).unwrap();
        m.on_bytes(garbage, 0);
        let ev = events(&mut m);
        assert!(
            matches!(&ev[..], [Event::Closed { reason: CloseReason::Protocol(_), unacked }] if unacked == &[5, 6]),
            "{garbage:02x?}: {ev:?}"
        );
        assert_eq!(m.output(), b"");
        m.on_bytes(&[0x40, 2, 0, 1], 0);
        assert_eq!(events(&mut m), [], "nothing after Closed");
    }
}

#[test]
fn close_sends_disconnect_and_reconnect_starts_clean() {
    let mut m = connected(opts());
    m.publish(1, b"x", 0).unwrap();
    take_output(&mut m);
    m.close();
    assert_eq!(take_output(&mut m), [0xe0, 0]);
    assert_eq!(
        events(&mut m),
        [Event::Closed {
            reason: CloseReason::Requested,
            unacked: vec![1]
        }]
    );
    m.connected(10);
    assert_eq!(events(&mut m), []);
    assert_eq!(take_output(&mut m)[0], 0x10, "a fresh CONNECT");
    m.on_bytes(&[0x20, 2, 0, 0], 10);
    m.publish(2, b"x", 10).unwrap();
    // The caller reconnects without reporting the loss: the tokens still come back.
    m.connected(20);
    assert_eq!(
        events(&mut m),
        [
            Event::Connected {
                session_present: false
            },
            Event::Closed {
                reason: CloseReason::TransportLost,
                unacked: vec![2]
            }
        ]
    );
}

#[test]
fn options_are_checked() {
    let with = |f: fn(&mut MqttOptions)| {
        let mut o = opts();
        f(&mut o);
        Mqtt::new(o).map(|_| ()).unwrap_err()
    };
    assert_eq!(
        with(|o| o.topic = "a/+".into()),
        OptionsError::Topic(TopicError::Wildcard)
    );
    assert_eq!(
        with(|o| o.topic = "a/#".into()),
        OptionsError::Topic(TopicError::Wildcard)
    );
    assert_eq!(
        with(|o| o.topic = "$SYS/x".into()),
        OptionsError::Topic(TopicError::Reserved)
    );
    assert_eq!(
        with(|o| o.topic = String::new()),
        OptionsError::Topic(TopicError::Empty)
    );
    assert_eq!(
        with(|o| o.topic = "a\0".into()),
        OptionsError::Topic(TopicError::Nul)
    );
    assert_eq!(
        with(|o| o.topic = "a".repeat(65_536)),
        OptionsError::Topic(TopicError::TooLong)
    );
    assert_eq!(
        with(|o| o.client_id = String::new()),
        OptionsError::ClientId
    );
    assert_eq!(
        with(|o| o.password = Some("p".into())),
        OptionsError::PasswordWithoutUser
    );
    assert_eq!(with(|o| o.max_in_flight = 0), OptionsError::MaxInFlight);
    assert_eq!(
        with(|o| o.max_in_flight = 65_536),
        OptionsError::MaxInFlight
    );
    assert_eq!(
        default_client_id("gw-7.lan", "app_1"),
        "logwisp-gw-7-lan-app_1"
    );
}
