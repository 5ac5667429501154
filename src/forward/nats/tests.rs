use super::*;

/// INFO as nats-server 2.9.10 sends it (trailing space included), with JetStream on.
const INFO: &[u8] = b"INFO {\"server_id\":\"NC5Y\",\"server_name\":\"NC5Y\",\"version\":\"2.9.10\",\"proto\":1,\"go\":\"go1.19.8\",\"host\":\"0.0.0.0\",\"port\":14222,\"headers\":true,\"max_payload\":1048576,\"jetstream\":true,\"client_id\":4,\"client_ip\":\"127.0.0.1\"} \r\n";

fn opts(jetstream: bool) -> NatsOptions {
    let mut o = NatsOptions::new("logs.app", jetstream);
    o.inbox_token = "TEST".into();
    o.ping_interval_ms = 1000;
    o.ack_timeout_ms = 5000;
    o.max_in_flight = 3;
    o
}

fn events(n: &mut Nats) -> Vec<Event> {
    std::iter::from_fn(|| n.poll_event()).collect()
}

fn take_output(n: &mut Nats) -> String {
    let out = String::from_utf8(n.output().to_vec()).unwrap();
    n.consume_output(out.len());
    out
}

/// A connected engine, with the handshake's events and output already drained.
fn connected(o: NatsOptions) -> Nats {
    let mut n = Nats::new(o).unwrap();
    n.connected(0);
    n.on_bytes(INFO, 0);
    n.on_bytes(b"PONG\r\n", 0);
    assert_eq!(n.state(), State::Connected);
    events(&mut n);
    take_output(&mut n);
    n
}

/// Feeds `bytes` to engines made by `setup` split at every position, and byte by byte,
/// and checks each gives the events and output of feeding it whole.
fn split_everywhere(setup: impl Fn() -> Nats, bytes: &[u8]) -> (Vec<Event>, String) {
    let whole = {
        let mut n = setup();
        n.on_bytes(bytes, 0);
        (events(&mut n), take_output(&mut n))
    };
    for i in 0..=bytes.len() {
        let mut n = setup();
        n.on_bytes(&bytes[..i], 0);
        n.on_bytes(&bytes[i..], 0);
        assert_eq!((events(&mut n), take_output(&mut n)), whole, "split at {i}");
    }
    let mut n = setup();
    for b in bytes {
        n.on_bytes(std::slice::from_ref(b), 0);
    }
    assert_eq!((events(&mut n), take_output(&mut n)), whole, "byte by byte");
    whole
}

#[test]
fn handshake_sends_connect_sub_ping_and_completes_on_pong() {
    let setup = || {
        let mut n = Nats::new(opts(true)).unwrap();
        n.connected(0);
        n
    };
    let mut transcript = INFO.to_vec();
    transcript.extend_from_slice(b"PONG\r\n");
    let (ev, out) = split_everywhere(setup, &transcript);
    assert!(
        matches!(&ev[..], [Event::Connected(info)] if info.jetstream && info.max_payload == 1 << 20)
    );
    let (connect, rest) = out.split_once("\r\n").unwrap();
    assert_eq!(rest, "SUB _INBOX.TEST.* 1\r\nPING\r\n");
    let json: Value = serde_json::from_str(connect.strip_prefix("CONNECT ").unwrap()).unwrap();
    for (k, v) in [
        ("verbose", false),
        ("pedantic", false),
        ("headers", true),
        ("no_responders", true),
        ("echo", false),
        ("tls_required", false),
    ] {
        assert_eq!(json[k], v, "{k}");
    }
    assert_eq!(json["name"], "logwisp");
    assert_eq!(json["protocol"], 1);
    assert!(json.get("user").is_none() && json.get("auth_token").is_none());
}

#[test]
fn credentials_go_into_connect() {
    for (auth, keys) in [
        (
            Auth::UserPass {
                user: "u".into(),
                pass: "p\"w".into(),
            },
            vec![("user", "u"), ("pass", "p\"w")],
        ),
        (Auth::Token("t0k".into()), vec![("auth_token", "t0k")]),
    ] {
        let mut o = opts(false);
        o.auth = auth;
        let mut n = Nats::new(o).unwrap();
        n.connected(0);
        n.on_bytes(INFO, 0);
        let out = take_output(&mut n);
        assert!(!out.contains("SUB "), "core mode has no inbox: {out}");
        let connect = out
            .lines()
            .next()
            .unwrap()
            .strip_prefix("CONNECT ")
            .unwrap();
        let json: Value = serde_json::from_str(connect).unwrap();
        for (k, v) in keys {
            assert_eq!(json[k], v);
        }
    }
}

#[test]
fn jetstream_publish_and_acks_split_anywhere() {
    let setup = || {
        let mut n = connected(opts(true));
        n.publish(10, "app:1:2:0", b"{\"m\":1}", 0).unwrap();
        n.publish(11, "app:1:2:9", b"{\"m\":2}", 0).unwrap();
        n.publish(12, "app:1:2:18", b"{\"m\":3}", 0).unwrap();
        n
    };
    let out = take_output(&mut setup());
    assert_eq!(
        out.lines().take(5).collect::<Vec<_>>(),
        [
            "HPUB logs.app _INBOX.TEST.1 36 43",
            "NATS/1.0",
            "Nats-Msg-Id: app:1:2:0",
            "",
            "{\"m\":1}",
        ]
    );
    assert_eq!(out.matches("HPUB ").count(), 3);
    // Bytes as nats-server 2.9.10 answers: a PubAck, a 503 status for a subject no stream
    // takes, a server PING, and a duplicate.
    let server = b"MSG _INBOX.TEST.1 1  23\r\n{\"stream\":\"T\", \"seq\":1}\r\n\
HMSG _INBOX.TEST.3 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n\
PING\r\n\
MSG _INBOX.TEST.2 1  41\r\n{\"stream\":\"T\", \"seq\":1,\"duplicate\": true}\r\n";
    let (ev, out) = split_everywhere(
        || {
            let mut n = setup();
            take_output(&mut n);
            n
        },
        server,
    );
    assert_eq!(
        ev,
        [
            Event::Acked {
                token: 10,
                duplicate: false
            },
            Event::Nacked {
                token: 12,
                reason: Nack::NoResponders
            },
            Event::Acked {
                token: 11,
                duplicate: true
            },
        ]
    );
    assert_eq!(out, "PONG\r\n");
}

#[test]
fn jetstream_error_replies_are_nacks() {
    let mut n = connected(opts(true));
    for t in 1..=3 {
        n.publish(t, "id", b"x", 0).unwrap();
    }
    n.on_bytes(
        b"MSG _INBOX.TEST.1 1 81\r\n{\"error\":{\"code\":503,\"err_code\":10077,\"description\":\"maximum messages exceeded\"}}\r\n\
MSG _INBOX.TEST.2 1 5\r\nnope!\r\n\
HMSG _INBOX.TEST.3 1 38 38\r\nNATS/1.0 408 Request Timeout\r\nA: b\r\n\r\n\r\n",
        0,
    );
    let ev = events(&mut n);
    assert_eq!(
        ev[0],
        Event::Nacked {
            token: 1,
            reason: Nack::JetStream {
                code: 503,
                description: "maximum messages exceeded".into()
            }
        }
    );
    assert!(matches!(
        &ev[1],
        Event::Nacked {
            token: 2,
            reason: Nack::BadReply(_)
        }
    ));
    assert_eq!(
        ev[2],
        Event::Nacked {
            token: 3,
            reason: Nack::JetStream {
                code: 408,
                description: "Request Timeout".into()
            }
        }
    );
    assert_eq!(n.in_flight(), 0);
}

#[test]
fn replies_to_unknown_or_foreign_subjects_are_ignored() {
    let mut n = connected(opts(true));
    n.publish(1, "id", b"x", 0).unwrap();
    n.on_bytes(
        b"MSG _INBOX.TEST.99 1 2\r\n{}\r\nMSG _INBOX.OTHER.1 1 2\r\n{}\r\nMSG x 2 2\r\n{}\r\n",
        0,
    );
    assert_eq!(events(&mut n), []);
    assert_eq!(n.unacked().collect::<Vec<_>>(), [1]);
}

#[test]
fn window_and_publish_errors() {
    let mut n = Nats::new(opts(true)).unwrap();
    assert_eq!(n.publish(1, "id", b"x", 0), Err(PublishError::NotConnected));
    let mut n = connected(opts(true));
    assert_eq!(n.publish(1, "", b"x", 0), Err(PublishError::BadMsgId));
    assert_eq!(n.publish(1, "a\r\nb", b"x", 0), Err(PublishError::BadMsgId));
    for t in 0..3 {
        assert!(n.can_publish());
        n.publish(t, "id", b"x", 0).unwrap();
    }
    assert!(!n.can_publish());
    assert_eq!(n.publish(4, "id", b"x", 0), Err(PublishError::Full));

    let mut n = Nats::new(opts(true)).unwrap();
    n.connected(0);
    n.on_bytes(b"INFO {\"headers\":true,\"max_payload\":64}\r\nPONG\r\n", 0);
    // 27 bytes of header framing + 2 of id + 35 of payload = 64: fits exactly.
    n.publish(1, "id", &[b'x'; 35], 0).unwrap();
    assert_eq!(
        n.publish(2, "id", &[b'x'; 36], 0),
        Err(PublishError::TooLarge { size: 65, max: 64 })
    );
}

#[test]
fn core_mode_acks_when_written() {
    let mut n = connected(opts(false));
    n.publish(7, "id", b"hello", 0).unwrap();
    n.publish(8, "id", b"world", 0).unwrap();
    let out = String::from_utf8(n.output().to_vec()).unwrap();
    assert!(out.starts_with("HPUB logs.app 29 34\r\nNATS/1.0\r\nNats-Msg-Id: id\r\n\r\nhello\r\n"));
    let first_len = out.find("hello\r\n").unwrap() + 7;
    n.consume_output(first_len - 1);
    assert_eq!(events(&mut n), []);
    n.consume_output(1);
    assert_eq!(
        events(&mut n),
        [Event::Acked {
            token: 7,
            duplicate: false
        }]
    );
    n.connection_lost();
    assert_eq!(
        events(&mut n),
        [Event::Closed {
            reason: CloseReason::TransportLost,
            unacked: vec![8]
        }]
    );
}

#[test]
fn core_mode_without_server_headers_uses_pub() {
    let mut n = Nats::new(opts(false)).unwrap();
    n.connected(0);
    n.on_bytes(b"INFO {}\r\nPONG\r\n", 0);
    let out = take_output(&mut n);
    assert!(out.contains("\"headers\":false") && out.contains("\"no_responders\":false"));
    n.publish(1, "id", b"hi", 0).unwrap();
    assert_eq!(take_output(&mut n), "PUB logs.app 2\r\nhi\r\n");
}

#[test]
fn jetstream_needs_headers() {
    let mut n = Nats::new(opts(true)).unwrap();
    n.connected(0);
    n.on_bytes(b"INFO {\"headers\":false}\r\n", 0);
    assert!(matches!(
        &events(&mut n)[..],
        [Event::Closed {
            reason: CloseReason::NoHeaders,
            ..
        }]
    ));
}

#[test]
fn tls_negotiation() {
    let mut o = opts(true);
    o.tls = true;
    let mut n = Nats::new(o.clone()).unwrap();
    n.connected(0);
    n.on_bytes(b"INFO {\"headers\":true,\"tls_required\":true}\r\n", 0);
    assert_eq!(events(&mut n), [Event::StartTls]);
    assert_eq!(n.output(), b"", "nothing in clear text after INFO");
    n.tls_ready(0);
    let out = take_output(&mut n);
    assert!(
        out.starts_with("CONNECT ") && out.contains("\"tls_required\":true"),
        "{out}"
    );
    n.on_bytes(b"PONG\r\n", 0);
    assert!(matches!(&events(&mut n)[..], [Event::Connected(_)]));

    let mut n = Nats::new(o.clone()).unwrap();
    n.connected(0);
    n.on_bytes(
        b"INFO {\"headers\":true,\"tls_required\":true}\r\n\x16\x03",
        0,
    );
    assert!(matches!(
        &events(&mut n)[..],
        [
            Event::StartTls,
            Event::Closed {
                reason: CloseReason::Protocol(_),
                ..
            }
        ]
    ));

    let mut n = Nats::new(o).unwrap();
    n.connected(0);
    n.on_bytes(b"INFO {\"headers\":true}\r\n", 0);
    assert!(matches!(
        &events(&mut n)[..],
        [Event::Closed {
            reason: CloseReason::TlsUnavailable,
            ..
        }]
    ));

    let mut n = Nats::new(opts(true)).unwrap();
    n.connected(0);
    n.on_bytes(b"INFO {\"headers\":true,\"tls_required\":true}\r\n", 0);
    assert!(matches!(
        &events(&mut n)[..],
        [Event::Closed {
            reason: CloseReason::TlsRequired,
            ..
        }]
    ));
}

#[test]
fn server_errors() {
    let mut n = Nats::new(opts(true)).unwrap();
    n.connected(0);
    n.on_bytes(INFO, 0);
    n.on_bytes(b"-ERR 'Authorization Violation'\r\n", 0);
    let ev = events(&mut n);
    let [Event::Closed { reason, unacked }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert!(reason.is_auth() && unacked.is_empty(), "{reason}");
    assert_eq!(reason.to_string(), "server error: Authorization Violation");
    assert_eq!(n.state(), State::Closed);
    n.on_bytes(b"PONG\r\n", 0);
    assert_eq!(events(&mut n), [], "nothing after Closed");

    let mut n = connected(opts(true));
    n.on_bytes(
        b"-ERR 'Permissions Violation for Publish to \"logs.app\"'\r\n",
        0,
    );
    assert_eq!(
        events(&mut n),
        [Event::ServerError(
            "Permissions Violation for Publish to \"logs.app\"".into()
        )]
    );
    assert_eq!(n.state(), State::Connected);
}

#[test]
fn bad_bytes_close_with_unacked_tokens_in_order() {
    for garbage in [
        &b"FOO bar\r\n"[..],
        b"MSG a\r\n",
        b"INFO [1]\r\n",
        b"INFO {nope\r\n",
        b"MSG _INBOX.TEST.1 1 999999\r\n",
        b"MSG _INBOX.TEST.1 1 2\r\nabcd",
    ] {
        let mut n = connected(opts(true));
        n.publish(5, "id", b"x", 0).unwrap();
        n.publish(6, "id", b"x", 0).unwrap();
        n.on_bytes(garbage, 0);
        let ev = events(&mut n);
        assert!(
            matches!(&ev[..], [Event::Closed { reason: CloseReason::Protocol(_), unacked }] if unacked == &[5, 6]),
            "{:?}: {ev:?}",
            String::from_utf8_lossy(garbage)
        );
        assert_eq!(n.output(), b"");
    }
    // A control line that never ends is cut off at the limit, however it trickles in.
    let mut n = connected(opts(true));
    let chunk = [b'x'; 1000];
    while n.state() == State::Connected {
        n.on_bytes(&chunk, 0);
        assert!(n.input.len() <= proto::MAX_CONTROL_LINE + chunk.len());
    }
}

#[test]
fn message_before_the_handshake_is_an_error() {
    let mut n = Nats::new(opts(true)).unwrap();
    n.connected(0);
    n.on_bytes(INFO, 0);
    n.on_bytes(b"MSG _INBOX.TEST.1 1 2\r\n{}\r\n", 0);
    assert!(matches!(
        &events(&mut n)[..],
        [Event::Closed {
            reason: CloseReason::Protocol(_),
            ..
        }]
    ));
}

#[test]
fn later_info_reports_cluster_urls_and_lame_duck() {
    let mut n = connected(opts(true));
    n.on_bytes(
        b"INFO {\"headers\":true,\"max_payload\":2048,\"connect_urls\":[\"10.0.0.2:4222\",\"10.0.0.3:4222\"],\"ldm\":true}\r\n",
        0,
    );
    let ev = events(&mut n);
    let [Event::ServerInfo(info)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(info.connect_urls, ["10.0.0.2:4222", "10.0.0.3:4222"]);
    assert!(info.lame_duck_mode);
    assert_eq!(n.server_info().max_payload, 2048);
    assert_eq!(n.state(), State::Connected);
}

#[test]
fn keep_alive_pings_and_declares_a_silent_server_dead() {
    let mut n = connected(opts(true));
    n.publish(1, "id", b"x", 0).unwrap();
    take_output(&mut n);
    assert_eq!(n.next_deadline(), Some(1000));
    n.on_tick(999);
    assert_eq!(n.output(), b"");
    n.on_tick(1000);
    assert_eq!(take_output(&mut n), "PING\r\n");
    n.on_bytes(b"PONG\r\n", 1100);
    n.on_tick(2000);
    assert_eq!(take_output(&mut n), "PING\r\n");
    n.on_tick(3000);
    assert_eq!(take_output(&mut n), "PING\r\n");
    assert_eq!(events(&mut n), []);
    n.on_tick(4000);
    assert_eq!(
        events(&mut n),
        [Event::Closed {
            reason: CloseReason::Stale,
            unacked: vec![1]
        }]
    );
    assert_eq!(n.next_deadline(), None);
}

#[test]
fn handshake_times_out() {
    let mut n = Nats::new(opts(true)).unwrap();
    n.connected(500);
    assert_eq!(n.next_deadline(), Some(10_500));
    n.on_bytes(INFO, 600);
    n.on_tick(10_499);
    assert_eq!(n.state(), State::WaitingPong);
    n.on_tick(10_500);
    assert!(matches!(
        &events(&mut n)[..],
        [Event::Closed {
            reason: CloseReason::HandshakeTimeout,
            ..
        }]
    ));
}

#[test]
fn unanswered_publishes_time_out_and_late_acks_are_ignored() {
    let mut n = connected(opts(true));
    n.publish(1, "id", b"x", 100).unwrap();
    n.publish(2, "id", b"x", 200).unwrap();
    assert_eq!(n.next_deadline(), Some(1000), "the ping comes first");
    n.on_bytes(b"PONG\r\n", 0);
    n.on_tick(5099);
    assert_eq!(events(&mut n), []);
    assert_eq!(n.next_deadline(), Some(5100));
    n.on_tick(5100);
    assert_eq!(
        events(&mut n),
        [Event::Nacked {
            token: 1,
            reason: Nack::Timeout
        }]
    );
    n.on_bytes(
        b"MSG _INBOX.TEST.1 1 23\r\n{\"stream\":\"T\", \"seq\":1}\r\n",
        5200,
    );
    assert_eq!(events(&mut n), []);
    assert_eq!(n.unacked().collect::<Vec<_>>(), [2]);
}

#[test]
fn reconnect_reports_unacked_then_starts_clean() {
    let mut n = connected(opts(true));
    n.publish(1, "id", b"x", 0).unwrap();
    n.publish(2, "id", b"x", 0).unwrap();
    // The caller reconnects without saying the old transport died.
    n.connected(50);
    assert_eq!(
        events(&mut n),
        [Event::Closed {
            reason: CloseReason::TransportLost,
            unacked: vec![1, 2]
        }]
    );
    assert_eq!(n.output(), b"");
    n.on_bytes(INFO, 60);
    n.on_bytes(b"PONG\r\n", 60);
    take_output(&mut n);
    events(&mut n);
    n.publish(3, "id", b"x", 70).unwrap();
    assert!(
        take_output(&mut n).starts_with("HPUB logs.app _INBOX.TEST.3 "),
        "sequence continues"
    );
    n.close();
    assert_eq!(
        events(&mut n),
        [Event::Closed {
            reason: CloseReason::Requested,
            unacked: vec![3]
        }]
    );
    n.connection_lost();
    assert_eq!(events(&mut n), [], "one Closed per connection");
}

#[test]
fn options_are_checked() {
    assert!(Nats::new(NatsOptions::new("logs.app", true)).is_ok());
    let with = |f: fn(&mut NatsOptions)| {
        let mut o = opts(true);
        f(&mut o);
        Nats::new(o).map(|_| ()).unwrap_err()
    };
    assert_eq!(
        with(|o| o.subject = "logs.*".into()),
        OptionsError::Subject(SubjectError::Wildcard)
    );
    assert_eq!(
        with(|o| o.inbox_token = "a.b".into()),
        OptionsError::InboxToken
    );
    assert_eq!(with(|o| o.name = String::new()), OptionsError::Name);
    assert_eq!(
        with(|o| o.auth = Auth::Token("a\r\n".into())),
        OptionsError::Credentials
    );
    let a = NatsOptions::new("x", true).inbox_token;
    let b = NatsOptions::new("x", true).inbox_token;
    assert_eq!(a.len(), 22);
    assert_ne!(a, b);
}

#[test]
fn subjects() {
    for ok in ["logs", "logs.app", "a-b_c.$JS.x", "logs.{x}"] {
        assert_eq!(validate_subject(ok), Ok(()), "{ok}");
    }
    assert_eq!(validate_subject(""), Err(SubjectError::Empty));
    assert_eq!(validate_subject("a..b"), Err(SubjectError::EmptyToken));
    assert_eq!(validate_subject(".a"), Err(SubjectError::EmptyToken));
    assert_eq!(validate_subject("a."), Err(SubjectError::EmptyToken));
    assert_eq!(validate_subject("a.>"), Err(SubjectError::Wildcard));
    assert_eq!(validate_subject("a.*.b"), Err(SubjectError::Wildcard));
    assert_eq!(validate_subject("a b"), Err(SubjectError::BadChar(' ')));
    assert_eq!(validate_subject("a\tb"), Err(SubjectError::BadChar('\t')));
}
