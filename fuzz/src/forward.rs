//! Oracles for the forwarding engines' fuzz targets (`nats`, `mqtt`, `resolve`): what a
//! broker or a nameserver sends must never make them panic, grow without bound, or
//! depend on how reads split it.

use std::collections::HashSet;

use logwisp::forward::mqtt::codec::{self as mqtt_codec, Decoded};
use logwisp::forward::mqtt::{self, Mqtt, MqttOptions};
use logwisp::forward::nats::proto::{self as nats_proto, Parsed};
use logwisp::forward::nats::{self, Nats, NatsOptions};
use logwisp::forward::resolve::{self, ResolvConf, dns};

/// Feeds `data` to a fresh engine twice, whole and in chunks of `chunk` bytes, with
/// `setup` run first on each, and returns both runs' (events, output) for comparison.
fn both_ways<E, Ev>(
    new: impl Fn() -> E,
    feed: impl Fn(&mut E, &[u8]),
    drain: impl Fn(&mut E) -> (Vec<Ev>, Vec<u8>),
    data: &[u8],
    chunk: usize,
) -> [(Vec<Ev>, Vec<u8>); 2] {
    let mut whole = new();
    feed(&mut whole, data);
    let mut split = new();
    for piece in data.chunks(chunk) {
        feed(&mut split, piece);
    }
    [drain(&mut whole), drain(&mut split)]
}

/// Checks that each token is reported once at most, and nothing follows `Closed`.
fn tokens_once(reports: impl Iterator<Item = (Vec<u64>, bool)>) {
    let mut seen = HashSet::new();
    let mut closed = false;
    for (tokens, is_close) in reports {
        assert!(!closed, "an event after Closed");
        closed = is_close;
        for t in tokens {
            assert!(seen.insert(t), "token {t} reported twice");
        }
    }
}

/// Server bytes → NATS engine (JetStream, connected, three publishes in flight). Never
/// panics; the same events and output whether fed whole or in chunks of `data[0] % 64 + 1`
/// bytes; buffers stay within the control line and message limits; each token is
/// reported at most once and nothing follows Closed. The parser alone: an operation uses
/// at least one byte and no more than it was given, and parses the same from just its bytes.
pub fn nats_server_input(data: &[u8]) {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let new = || {
        let mut o = NatsOptions::new("logs.app", true);
        o.inbox_token = "FUZZ".into();
        let mut n = Nats::new(o).unwrap();
        n.connected(0);
        n.on_bytes(
            b"INFO {\"headers\":true,\"max_payload\":1048576}\r\nPONG\r\n",
            0,
        );
        for t in 1..=3 {
            n.publish(t, "id", b"{}", 0).unwrap();
        }
        n.consume_output(n.output().len());
        while n.poll_event().is_some() {}
        n
    };
    let feed = |n: &mut Nats, b: &[u8]| {
        n.on_bytes(b, 1);
        assert!(
            n.buffered() <= nats_proto::MAX_CONTROL_LINE + nats::MAX_INBOUND_MSG + b.len(),
            "{} bytes held",
            n.buffered()
        );
    };
    let drain = |n: &mut Nats| {
        n.on_tick(u64::MAX / 2);
        let events: Vec<nats::Event> = std::iter::from_fn(|| n.poll_event()).collect();
        (events, n.output().to_vec())
    };
    let [whole, split] = both_ways(new, feed, drain, data, usize::from(split % 64) + 1);
    assert_eq!(whole, split, "the split changed the outcome");
    tokens_once(whole.0.iter().map(|e| match e {
        nats::Event::Acked { token, .. } | nats::Event::Nacked { token, .. } => {
            (vec![*token], false)
        }
        nats::Event::Closed { unacked, .. } => (unacked.clone(), true),
        _ => (Vec::new(), false),
    }));

    match nats_proto::parse(data, nats::MAX_INBOUND_MSG) {
        Ok(Parsed::Op(op, n)) => {
            assert!(n > 0 && n <= data.len());
            assert_eq!(
                nats_proto::parse(&data[..n], nats::MAX_INBOUND_MSG),
                Ok(Parsed::Op(op, n))
            );
        }
        Ok(Parsed::Partial { need: Some(need) }) => assert!(need > data.len()),
        Ok(Parsed::Partial { need: None }) => assert!(!data.contains(&b'\n')),
        Err(_) => {}
    }
}

/// Server bytes → MQTT engine (connected, three publishes in flight), with the promises
/// of `nats_server_input`. The decoder alone: a packet uses at least two bytes and no more
/// than it was given, decodes the same from just its bytes, and `Partial` asks for more.
pub fn mqtt_server_input(data: &[u8]) {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let new = || {
        let mut m = Mqtt::new(MqttOptions::new("fuzz", "logs/app")).unwrap();
        m.connected(0);
        m.on_bytes(&[0x20, 2, 0, 0], 0);
        for t in 1..=3 {
            m.publish(t, b"{}", 0).unwrap();
        }
        m.consume_output(m.output().len());
        while m.poll_event().is_some() {}
        m
    };
    let feed = |m: &mut Mqtt, b: &[u8]| {
        m.on_bytes(b, 1);
        assert!(
            m.buffered() <= mqtt::MAX_INBOUND_PACKET + b.len(),
            "{} bytes held",
            m.buffered()
        );
    };
    let drain = |m: &mut Mqtt| {
        m.on_tick(u64::MAX / 2);
        let events: Vec<mqtt::Event> = std::iter::from_fn(|| m.poll_event()).collect();
        (events, m.output().to_vec())
    };
    let [whole, split] = both_ways(new, feed, drain, data, usize::from(split % 64) + 1);
    assert_eq!(whole, split, "the split changed the outcome");
    tokens_once(whole.0.iter().map(|e| match e {
        mqtt::Event::Acked { token } => (vec![*token], false),
        mqtt::Event::Closed { unacked, .. } => (unacked.clone(), true),
        mqtt::Event::Connected { .. } => (Vec::new(), false),
    }));

    match mqtt_codec::decode(data, mqtt::MAX_INBOUND_PACKET) {
        Ok(Decoded::Packet(p, n)) => {
            assert!(n >= 2 && n <= data.len());
            assert_eq!(
                mqtt_codec::decode(&data[..n], mqtt::MAX_INBOUND_PACKET),
                Ok(Decoded::Packet(p, n))
            );
        }
        Ok(Decoded::Partial { need }) => assert!(need > data.len()),
        Err(_) => {}
    }
}

/// A DNS response, and the text inputs of resolution. `data[0]` picks: 0-3 a response to
/// an A/AAAA query for `deb.debian.org` with id 0x1234, through the parser and a
/// `Lookup` (addresses found are of the asked family; a lookup never panics and stops
/// within its tries); 4 a URL; 5 `/etc/hosts` text; 6 `resolv.conf` text (never more
/// than three nameservers and six search domains).
pub fn resolve_input(data: &[u8]) {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    match which % 8 {
        0..=3 => {
            let qtype = if which % 2 == 0 {
                dns::QType::A
            } else {
                dns::QType::Aaaa
            };
            if let Ok(dns::Reply::Addrs(addrs)) =
                dns::parse_response(data, 0x1234, "deb.debian.org", qtype)
            {
                assert!(
                    addrs
                        .iter()
                        .all(|a| a.is_ipv6() == (qtype == dns::QType::Aaaa))
                );
            }
            let conf = ResolvConf::parse("nameserver 10.0.0.53\noptions attempts:1 timeout:1");
            let mut l = dns::Lookup::new("deb.debian.org", &conf, 0, 7);
            let server = l.poll_transmit().unwrap().to;
            for _ in 0..3 {
                l.on_datagram(server, data, 1);
                l.on_tick(u64::MAX / 2);
                while l.poll_transmit().is_some() {}
            }
            assert!(
                l.outcome().is_some(),
                "a one-try lookup past its deadline is over"
            );
        }
        4 => {
            if let Ok(u) = resolve::parse_url(&text) {
                assert!(u.port > 0);
            }
        }
        5 => {
            let _ = resolve::hosts_lookup(&text, "broker");
        }
        _ => {
            let c = ResolvConf::parse(&text);
            assert!(!c.nameservers.is_empty() && c.nameservers.len() <= 3);
            assert!(c.search.len() <= 6);
        }
    }
}
