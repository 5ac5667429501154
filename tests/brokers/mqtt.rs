//! The MQTT engine against mosquitto 2.0.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use logwisp::forward::mqtt::codec::{self, Connect, Decoded, Packet};
use logwisp::forward::mqtt::{CloseReason, Event, Mqtt, MqttOptions, State};

use crate::link::{Link, TIMEOUT};
use crate::support::brokers::mosquitto;
use crate::support::files::TempDir;

/// A blocking subscriber built from the library's codec: CONNECT, SUBSCRIBE at QoS 1,
/// then PUBLISH packets, each acknowledged.
struct Subscriber {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Subscriber {
    fn new(port: u16, topic: &str) -> Subscriber {
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut s = Subscriber {
            sock,
            buf: Vec::new(),
        };
        let mut out = Vec::new();
        codec::encode_connect(
            &mut out,
            &Connect {
                client_id: "test-subscriber",
                clean_session: true,
                keep_alive_secs: 60,
                username: None,
                password: None,
            },
        );
        codec::encode_subscribe(&mut out, 1, topic, 1);
        s.sock.write_all(&out).unwrap();
        s.next(|p| matches!(p, Packet::ConnAck { code: 0, .. }).then_some(()));
        s.next(|p| {
            matches!(
                p,
                Packet::SubAck {
                    packet_id: 1,
                    return_codes: [1]
                }
            )
            .then_some(())
        });
        s
    }

    fn next<T>(&mut self, mut f: impl FnMut(&Packet<'_>) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            while let Ok(Decoded::Packet(p, n)) = codec::decode(&self.buf, 1 << 20) {
                let found = f(&p);
                self.buf.drain(..n);
                if let Some(t) = found {
                    return t;
                }
            }
            assert!(
                Instant::now() < deadline,
                "subscriber: nothing within {TIMEOUT:?}"
            );
            let mut chunk = [0u8; 65536];
            match self.sock.read(&mut chunk) {
                Ok(0) => panic!("broker closed the subscriber"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The next message: (topic, payload), acknowledged if QoS 1.
    fn message(&mut self) -> (String, Vec<u8>) {
        let (topic, payload, id) = self.next(|p| match p {
            Packet::Publish {
                topic,
                payload,
                packet_id,
                ..
            } => Some((topic.to_string(), payload.to_vec(), *packet_id)),
            _ => None,
        });
        if let Some(id) = id {
            let mut ack = Vec::new();
            codec::encode_puback(&mut ack, id);
            self.sock.write_all(&ack).unwrap();
        }
        (topic, payload)
    }
}

fn opts(topic: &str) -> MqttOptions {
    let mut o = MqttOptions::new("logwisp-test-app", topic);
    o.max_in_flight = 100;
    o
}

fn handshake(link: &mut Link<Mqtt>) -> Result<(), CloseReason> {
    link.until(
        "Connected or Closed",
        |e| match e {
            Event::Connected { .. } => Some(Ok(())),
            Event::Closed { reason, .. } => Some(Err(reason.clone())),
            Event::Acked { .. } => None,
        },
        |e| panic!("{e:?}"),
    )
}

fn payload(i: u64) -> Vec<u8> {
    format!("{{\"time\":\"t\",\"message\":\"line {i:05}\"}}").into_bytes()
}

#[test]
fn qos1_publishes_are_acked_and_delivered_in_order() {
    let dir = TempDir::new();
    let broker = mosquitto(dir.path(), &[]);
    const N: u64 = 2000;
    // The subscriber reads while the engine publishes, as a real consumer would.
    let mut sub = Subscriber::new(broker.port, "logs/app");
    let received = std::thread::spawn(move || {
        (0..N)
            .map(|_| sub.message())
            .collect::<Vec<(String, Vec<u8>)>>()
    });
    let mut link = Link::new(Mqtt::new(opts("logs/app")).unwrap());
    link.connect(broker.port);
    handshake(&mut link).unwrap();

    let mut acked = Vec::new();
    let mut next = 0;
    let deadline = Instant::now() + TIMEOUT * 2;
    while (acked.len() as u64) < N {
        assert!(
            Instant::now() < deadline,
            "acks missing; events: {:?}",
            link.seen
        );
        while next < N && link.engine.can_publish() {
            let now = link.now();
            link.engine.publish(next, &payload(next), now).unwrap();
            next += 1;
        }
        for ev in link.pump() {
            match ev {
                Event::Acked { token } => acked.push(token),
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(
        acked,
        (0..N).collect::<Vec<_>>(),
        "PUBACKs in publish order"
    );
    let received = received.join().expect("subscriber");
    for (i, (topic, body)) in (0..N).zip(received) {
        assert_eq!(topic, "logs/app");
        assert_eq!(body, payload(i), "message {i}");
    }
}

#[test]
fn bad_credentials_are_refused_and_good_ones_connect() {
    let dir = TempDir::new();
    let broker = mosquitto(dir.path(), &[("logwisp", "s3cret")]);
    for (user, pass, ok) in [
        (None, None, false),
        (Some("logwisp"), Some("wrong"), false),
        (Some("logwisp"), Some("s3cret"), true),
    ] {
        let mut o = opts("logs/app");
        o.username = user.map(str::to_owned);
        o.password = pass.map(str::to_owned);
        let mut link = Link::new(Mqtt::new(o).unwrap());
        link.connect(broker.port);
        match (handshake(&mut link), ok) {
            (Ok(()), true) => {}
            (Err(reason), false) => assert!(reason.is_auth(), "{user:?}/{pass:?}: {reason}"),
            (other, _) => panic!("{user:?}/{pass:?}: {other:?}"),
        }
    }
}

#[test]
fn keep_alive_holds_an_idle_connection_open() {
    let dir = TempDir::new();
    let broker = mosquitto(dir.path(), &[]);
    let mut o = opts("logs/app");
    o.keep_alive_secs = 1;
    let mut link = Link::new(Mqtt::new(o).unwrap());
    link.connect(broker.port);
    handshake(&mut link).unwrap();
    // mosquitto drops a client silent for 1.5 keep-alive periods; stay idle for 2.5.
    link.pump_for(Duration::from_millis(2500), |e| panic!("{e:?}"));
    assert_eq!(link.engine.state(), State::Connected);
    let now = link.now();
    link.engine.publish(7, b"{}", now).unwrap();
    let token = link.until(
        "Acked",
        |e| match e {
            Event::Acked { token } => Some(*token),
            _ => None,
        },
        |e| panic!("{e:?}"),
    );
    assert_eq!(token, 7);
}
