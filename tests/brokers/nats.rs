//! The NATS engine against nats-server 2.9 with JetStream.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use logwisp::forward::nats::proto::Op;
use logwisp::forward::nats::{Auth, CloseReason, Event, Nats, NatsOptions, State};
use logwisp::forward::{Nack, message_id};
use serde_json::json;

use crate::link::{Link, TIMEOUT};
use crate::support::brokers::nats_server;
use crate::support::files::TempDir;
use crate::support::nats::{NatsClient, PATIENCE};

/// Message `seq` of stream `name`: its headers (base64 text as the API gives them) and
/// data.
fn stream_msg(raw: &mut NatsClient, name: &str, seq: u64) -> (String, String) {
    let r = raw.request(
        &format!("$JS.API.STREAM.MSG.GET.{name}"),
        &json!({"seq": seq}),
    );
    let m = &r["message"];
    let text = |k: &str| {
        m[k].as_str()
            .unwrap_or_else(|| panic!("msg get: {r}"))
            .to_owned()
    };
    (text("hdrs"), text("data"))
}

/// Standard base64 decoding, enough for the stream API's answers.
fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("base64 {c}"),
    };
    let digits: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
    digits
        .chunks(4)
        .flat_map(|c| {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &d)| n | (u32::from(d) << (18 - 6 * i)));
            let bytes = n.to_be_bytes();
            bytes[1..c.len()].to_vec()
        })
        .collect()
}

fn opts(subject: &str, jetstream: bool) -> NatsOptions {
    let mut o = NatsOptions::new(subject, jetstream);
    o.max_in_flight = 256;
    o
}

fn connected(o: NatsOptions, port: u16) -> Link<Nats> {
    let mut link = Link::new(Nats::new(o).unwrap());
    link.connect(port);
    link.until(
        "Connected",
        |e| matches!(e, Event::Connected(_)).then_some(()),
        |e| panic!("before Connected: {e:?}"),
    );
    link
}

fn entry(i: u64) -> (String, Vec<u8>) {
    (
        message_id("app", 0x801, 4242, i * 100),
        format!("{{\"time\":\"t\",\"message\":\"line {i:05}\"}}").into_bytes(),
    )
}

/// Publishes entries `range` with the window full, until each is acked or nacked.
/// Returns the acked tokens in ack order, with their duplicate flags.
fn publish_all(link: &mut Link<Nats>, range: std::ops::Range<u64>) -> Vec<(u64, bool)> {
    let mut acked = Vec::new();
    let mut next = range.start;
    let deadline = Instant::now() + TIMEOUT * 2;
    while (acked.len() as u64) < range.end - range.start {
        assert!(
            Instant::now() < deadline,
            "acks missing; events: {:?}",
            link.seen
        );
        while next < range.end && link.engine.can_publish() {
            let (id, payload) = entry(next);
            let now = link.now();
            link.engine.publish(next, &id, &payload, now).unwrap();
            next += 1;
        }
        for ev in link.pump() {
            match ev {
                Event::Acked { token, duplicate } => acked.push((token, duplicate)),
                other => panic!("{other:?}"),
            }
        }
    }
    acked
}

#[test]
fn jetstream_acks_in_order_and_deduplicates_by_message_id() {
    let dir = TempDir::new();
    let server = nats_server(dir.path(), 0, None);
    let mut raw = NatsClient::connect(server.port);
    raw.create_stream("LOGS", &["logs.>"], 1);
    let mut link = connected(opts("logs.app", true), server.port);
    assert!(link.engine.server_info().jetstream);

    const N: u64 = 2000;
    let acked = publish_all(&mut link, 0..N);
    let tokens: Vec<u64> = acked.iter().map(|a| a.0).collect();
    assert_eq!(tokens, (0..N).collect::<Vec<_>>(), "acks in publish order");
    assert!(acked.iter().all(|a| !a.1), "nothing is a duplicate yet");
    assert_eq!(raw.stream_messages("LOGS", PATIENCE), Some(N));

    // Stream order is publish order, and the id travels as a header.
    for seq in [1, 2, N / 2, N] {
        let (hdrs, data) = stream_msg(&mut raw, "LOGS", seq);
        let (id, payload) = entry(seq - 1);
        assert_eq!(base64(&data), payload, "seq {seq}");
        let hdrs = String::from_utf8(base64(&hdrs)).unwrap();
        assert!(hdrs.contains(&format!("Nats-Msg-Id: {id}\r\n")), "{hdrs:?}");
    }

    // The same ids again (what a reconnect republishes): acked as duplicates, not stored.
    let again = publish_all(&mut link, 0..50);
    assert!(again.iter().all(|a| a.1), "{again:?}");
    assert_eq!(raw.stream_messages("LOGS", PATIENCE), Some(N));
    assert_eq!(link.engine.in_flight(), 0);
}

#[test]
fn a_subject_no_stream_takes_is_nacked() {
    let dir = TempDir::new();
    let server = nats_server(dir.path(), 0, None);
    let mut link = connected(opts("nowhere.app", true), server.port);
    let now = link.now();
    link.engine.publish(1, "id-1", b"{}", now).unwrap();
    let nack = link.until(
        "Nacked",
        |e| match e {
            Event::Nacked { token: 1, reason } => Some(reason.clone()),
            _ => None,
        },
        |e| panic!("{e:?}"),
    );
    assert_eq!(nack, Nack::NoResponders);
}

#[test]
fn core_mode_reaches_a_subscriber_in_order_with_the_message_id() {
    let dir = TempDir::new();
    let server = nats_server(dir.path(), 0, None);
    let mut sub = NatsClient::connect(server.port);
    sub.send(b"SUB logs.core 1\r\nPING\r\n");
    sub.read_until(|op| matches!(op, Op::Pong).then_some(()));
    let mut link = connected(opts("logs.core", false), server.port);

    const N: u64 = 500;
    let acked = publish_all(&mut link, 0..N);
    assert_eq!(acked.len() as u64, N, "core mode acks once written");
    for i in 0..N {
        let m = sub.next_msg();
        let (id, payload) = entry(i);
        assert_eq!(m.subject, "logs.core");
        assert_eq!(m.payload, payload, "message {i}");
        let hdrs = m.headers.expect("headers");
        assert!(hdrs.starts_with(b"NATS/1.0\r\n"));
        assert!(
            String::from_utf8(hdrs)
                .unwrap()
                .contains(&format!("Nats-Msg-Id: {id}\r\n"))
        );
    }
}

#[test]
fn wrong_credentials_are_an_auth_error_and_right_ones_connect() {
    let dir = TempDir::new();
    let server = nats_server(dir.path(), 0, Some(("logwisp", "s3cret")));
    for (auth, ok) in [
        (Auth::None, false),
        (
            Auth::UserPass {
                user: "logwisp".into(),
                pass: "wrong".into(),
            },
            false,
        ),
        (
            Auth::UserPass {
                user: "logwisp".into(),
                pass: "s3cret".into(),
            },
            true,
        ),
    ] {
        let mut o = opts("logs.app", true);
        o.auth = auth.clone();
        let mut link = Link::new(Nats::new(o).unwrap());
        link.connect(server.port);
        let outcome = link.until(
            "Connected or Closed",
            |e| match e {
                Event::Connected(_) => Some(Ok(())),
                Event::Closed { reason, .. } => Some(Err(reason.clone())),
                _ => None,
            },
            |_| {},
        );
        match (outcome, ok) {
            (Ok(()), true) => {}
            (Err(reason), false) => assert!(reason.is_auth(), "{auth:?}: {reason}"),
            (other, _) => panic!("{auth:?}: {other:?}"),
        }
    }
}

#[test]
fn keep_alive_pings_keep_an_idle_connection() {
    let dir = TempDir::new();
    let server = nats_server(dir.path(), 0, None);
    let mut o = opts("logs.app", false);
    o.ping_interval_ms = 100;
    o.max_pings_out = 2;
    let mut link = connected(o, server.port);
    // Fifteen ping intervals: a missing PONG would close it after three.
    link.pump_for(Duration::from_millis(1500), |e| panic!("{e:?}"));
    assert_eq!(link.engine.state(), State::Connected);
}

#[test]
fn a_killed_server_leaves_unacked_tokens_that_republish_without_duplicates() {
    let dir = TempDir::new();
    let mut server = nats_server(dir.path(), 0, None);
    let port = server.port;
    let mut raw = NatsClient::connect(port);
    raw.create_stream("LOGS", &["logs.>"], 1);
    drop(raw);
    let mut o = opts("logs.app", true);
    o.max_in_flight = 2000;
    let mut link = connected(o.clone(), port);

    // Queue 2000 publishes, write some of them, read a few acks, then kill the server.
    const N: u64 = 2000;
    for i in 0..N {
        let (id, payload) = entry(i);
        let now = link.now();
        link.engine.publish(i, &id, &payload, now).unwrap();
    }
    let mut acked = BTreeSet::new();
    let first = link.until(
        "the first ack",
        |e| match e {
            Event::Acked { token, .. } => Some(*token),
            _ => None,
        },
        |e| match e {
            Event::Acked { token, .. } => {
                acked.insert(token);
            }
            other => panic!("{other:?}"),
        },
    );
    acked.insert(first);
    server.kill();
    let unacked = link.until(
        "Closed",
        |e| match e {
            Event::Closed {
                reason: CloseReason::TransportLost,
                unacked,
            } => Some(unacked.clone()),
            _ => None,
        },
        |e| match e {
            Event::Acked { token, .. } => {
                acked.insert(token);
            }
            other => panic!("{other:?}"),
        },
    );
    assert!(
        !unacked.is_empty(),
        "the kill came too late to test anything"
    );
    assert!(
        unacked.windows(2).all(|w| w[0] < w[1]),
        "unacked oldest first"
    );
    let mut every: Vec<u64> = acked
        .iter()
        .copied()
        .chain(unacked.iter().copied())
        .collect();
    every.sort_unstable();
    assert_eq!(
        every,
        (0..N).collect::<Vec<_>>(),
        "each token acked or unacked, once"
    );

    // Same store, same port: the stream and what reached it survive. Republishing from the
    // oldest unacked entry (as the sink does from its checkpoint) stores each entry once.
    let server = nats_server(dir.path(), port, None);
    let mut link = connected(o, server.port);
    let from = unacked[0];
    let again = publish_all(&mut link, from..N);
    assert_eq!(again.len() as u64, N - from);
    let mut raw = NatsClient::connect(server.port);
    assert_eq!(raw.stream_messages("LOGS", PATIENCE), Some(N));
}
