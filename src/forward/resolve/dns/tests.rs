use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Answers recorded from a nameserver for queries with id 0x1234: an A record behind a
/// compression pointer, an AAAA "no data", and an NXDOMAIN.
const DEB_A: &str = "123481800001000100000000036465620664656269616e036f72670000010001c00c000100010000003c0004cb007150";
const DEB_AAAA: &str = "123481800001000000000000036465620664656269616e036f726700001c0001";
const NX_A: &str = "1234818300010000000000000b6e6f6e6578697374656e7407696e76616c69640000010001";

/// A response built by hand: `answers` are (owner, type, rdata) with owners written out.
fn response(
    id: u16,
    name: &str,
    qtype: QType,
    rcode: u8,
    answers: &[(&str, u16, Vec<u8>)],
) -> Vec<u8> {
    let mut m = build_query(id, name, qtype).unwrap();
    m[2] = 0x81;
    m[3] = 0x80 | rcode;
    m[7] = answers.len() as u8;
    for (owner, rtype, data) in answers {
        put_name(&mut m, owner).unwrap();
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        m.extend_from_slice(&(data.len() as u16).to_be_bytes());
        m.extend_from_slice(data);
    }
    m
}

fn name_rdata(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    put_name(&mut v, name).unwrap();
    v
}

#[test]
fn query_bytes() {
    // The same bytes as the query the recorded answers echo.
    let q = build_query(0x1234, "deb.debian.org", QType::A).unwrap();
    assert_eq!(
        q,
        hex("123401000001000000000000036465620664656269616e036f72670000010001")
    );
    assert_eq!(build_query(1, "a..b", QType::A), Err(BadName));
    assert_eq!(build_query(1, &"a".repeat(64), QType::A), Err(BadName));
    let label = "a".repeat(63);
    assert!(build_query(1, &[label.as_str(); 3].join("."), QType::A).is_ok());
    assert_eq!(
        build_query(1, &[label.as_str(); 4].join("."), QType::A),
        Err(BadName)
    );
}

#[test]
fn recorded_answers() {
    assert_eq!(
        parse_response(&hex(DEB_A), 0x1234, "deb.debian.org", QType::A),
        Ok(Reply::Addrs(vec![IpAddr::from([203, 0, 113, 80])]))
    );
    assert_eq!(
        parse_response(&hex(DEB_AAAA), 0x1234, "DEB.debian.org.", QType::Aaaa),
        Ok(Reply::Addrs(vec![]))
    );
    assert_eq!(
        parse_response(&hex(NX_A), 0x1234, "nonexistent.invalid", QType::A),
        Ok(Reply::NxDomain)
    );
    // Someone else's answer: another id, name or type.
    let not_ours = Err(ParseError::NotOurs);
    assert_eq!(
        parse_response(&hex(DEB_A), 0x1235, "deb.debian.org", QType::A),
        not_ours
    );
    assert_eq!(
        parse_response(&hex(DEB_A), 0x1234, "deb.debian.net", QType::A),
        not_ours
    );
    assert_eq!(
        parse_response(&hex(DEB_A), 0x1234, "deb.debian.org", QType::Aaaa),
        not_ours
    );
    // A query is not an answer.
    let q = build_query(0x1234, "deb.debian.org", QType::A).unwrap();
    assert_eq!(
        parse_response(&q, 0x1234, "deb.debian.org", QType::A),
        not_ours
    );
}

#[test]
fn every_truncation_of_a_recorded_answer_is_an_error_not_a_panic() {
    let full = hex(DEB_A);
    for i in 0..full.len() {
        assert!(
            parse_response(&full[..i], 0x1234, "deb.debian.org", QType::A).is_err(),
            "cut at {i}"
        );
    }
}

#[test]
fn cname_chains_are_followed_and_strangers_ignored() {
    let m = response(
        7,
        "broker.example.com",
        QType::A,
        0,
        &[
            ("broker.example.com", 5, name_rdata("nats.cdn.example.net")),
            (
                "nats.cdn.example.net",
                5,
                name_rdata("edge.cdn.example.net"),
            ),
            ("edge.cdn.example.net", 1, vec![10, 0, 0, 1]),
            ("unrelated.example.org", 1, vec![6, 6, 6, 6]),
            ("edge.cdn.example.net", 1, vec![10, 0, 0, 2]),
        ],
    );
    assert_eq!(
        parse_response(&m, 7, "broker.example.com", QType::A),
        Ok(Reply::Addrs(vec![
            IpAddr::from([10, 0, 0, 1]),
            IpAddr::from([10, 0, 0, 2])
        ]))
    );
    let v6 = response(
        8,
        "b.example",
        QType::Aaaa,
        0,
        &[("b.example", 28, vec![0; 16])],
    );
    assert_eq!(
        parse_response(&v6, 8, "b.example", QType::Aaaa),
        Ok(Reply::Addrs(vec![IpAddr::from([0u8; 16])]))
    );
    let bad = response(
        8,
        "b.example",
        QType::Aaaa,
        0,
        &[("b.example", 28, vec![0; 4])],
    );
    assert!(matches!(
        parse_response(&bad, 8, "b.example", QType::Aaaa),
        Err(ParseError::Malformed(_))
    ));
    // A CNAME loop ends without addresses.
    let looped = response(
        9,
        "a.example",
        QType::A,
        0,
        &[
            ("a.example", 5, name_rdata("b.example")),
            ("b.example", 5, name_rdata("a.example")),
        ],
    );
    assert_eq!(
        parse_response(&looped, 9, "a.example", QType::A),
        Ok(Reply::Addrs(vec![]))
    );
}

#[test]
fn compression_loops_and_bad_labels_are_errors() {
    let mut m = hex(DEB_A);
    // The answer's owner pointer points at itself.
    let at = m.len() - 16;
    m[at] = 0xc0;
    m[at + 1] = at as u8;
    assert_eq!(
        parse_response(&m, 0x1234, "deb.debian.org", QType::A),
        Err(ParseError::Malformed("compression loop"))
    );
    let mut m = hex(DEB_A);
    m[at] = 0x80;
    assert_eq!(
        parse_response(&m, 0x1234, "deb.debian.org", QType::A),
        Err(ParseError::Malformed("reserved label type"))
    );
}

#[test]
fn server_errors_and_truncation() {
    let m = response(3, "x.example", QType::A, 2, &[]);
    assert_eq!(
        parse_response(&m, 3, "x.example", QType::A),
        Ok(Reply::Failed(2))
    );
    let mut m = response(3, "x.example", QType::A, 0, &[]);
    m[2] |= 0x02;
    assert_eq!(
        parse_response(&m, 3, "x.example", QType::A),
        Ok(Reply::Failed(0))
    );
}

fn conf(servers: &[[u8; 4]], search: &[&str]) -> ResolvConf {
    ResolvConf {
        nameservers: servers
            .iter()
            .map(|ip| SocketAddr::from((*ip, 53)))
            .collect(),
        search: search.iter().map(|s| s.to_string()).collect(),
        ndots: 1,
        timeout_ms: 1000,
        attempts: 2,
    }
}

/// The next transmits of `l`: (server, id, name, type).
fn sent(l: &mut Lookup) -> Vec<(SocketAddr, u16, String, QType)> {
    std::iter::from_fn(|| l.poll_transmit())
        .map(|t| {
            let id = u16::from_be_bytes([t.payload[0], t.payload[1]]);
            let (name, pos) = read_name(&t.payload, 12).unwrap();
            let qtype = if t.payload[pos + 1] == 1 {
                QType::A
            } else {
                QType::Aaaa
            };
            (t.to, id, String::from_utf8(name).unwrap(), qtype)
        })
        .collect()
}

fn answer(q: &(SocketAddr, u16, String, QType), addrs: &[IpAddr]) -> Vec<u8> {
    let answers: Vec<_> = addrs
        .iter()
        .map(|ip| {
            let data = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            (q.2.as_str(), q.3.code(), data)
        })
        .collect();
    response(q.1, &q.2, q.3, 0, &answers)
}

#[test]
fn lookup_asks_a_and_aaaa_and_returns_ipv4_first() {
    let mut l = Lookup::new("broker.lan", &conf(&[[10, 0, 0, 53]], &[]), 0, 42);
    let qs = sent(&mut l);
    assert_eq!(qs.len(), 2);
    assert_ne!(qs[0].1, qs[1].1, "ids differ");
    let ns = SocketAddr::from(([10, 0, 0, 53], 53));
    let v6: IpAddr = "fd00::7".parse().unwrap();
    let v4 = IpAddr::from([10, 0, 0, 7]);
    // AAAA first, from a stranger (ignored), then from the server.
    let aaaa = answer(&qs[1], &[v6]);
    l.on_datagram(SocketAddr::from(([10, 0, 0, 66], 53)), &aaaa, 5);
    l.on_datagram(ns, &aaaa, 5);
    assert_eq!(l.outcome(), None);
    l.on_datagram(ns, &answer(&qs[0], &[v4]), 6);
    assert_eq!(l.outcome(), Some(&Ok(vec![v4, v6])));
    assert_eq!(l.next_deadline(), None);
}

#[test]
fn lookup_walks_search_domains_then_the_name() {
    let ns = SocketAddr::from(([10, 0, 0, 53], 53));
    let mut l = Lookup::new(
        "broker",
        &conf(&[[10, 0, 0, 53]], &["a.lan", "b.lan"]),
        0,
        1,
    );
    for name in ["broker.a.lan", "broker.b.lan"] {
        let qs = sent(&mut l);
        assert!(qs.iter().all(|q| q.2 == name), "{qs:?}");
        // NXDOMAIN on one query settles the name for both.
        l.on_datagram(ns, &response(qs[0].1, name, QType::A, 3, &[]), 0);
        assert_eq!(l.outcome(), None);
    }
    let qs = sent(&mut l);
    assert!(qs.iter().all(|q| q.2 == "broker"), "{qs:?}");
    for q in &qs {
        l.on_datagram(ns, &answer(q, &[]), 0);
    }
    assert_eq!(l.outcome(), Some(&Err(ResolveError::NotFound)));

    // Enough dots: the name as given comes first; a trailing dot means only it.
    let c = conf(&[[10, 0, 0, 53]], &["a.lan"]);
    assert_eq!(candidates("x.y", &c), ["x.y", "x.y.a.lan"]);
    assert_eq!(candidates("x", &c), ["x.a.lan", "x"]);
    assert_eq!(candidates("x.", &c), ["x"]);
    assert!(Lookup::new("a..b.", &c, 0, 0).outcome() == Some(&Err(ResolveError::BadName)));
}

#[test]
fn lookup_times_out_per_server_and_attempt() {
    let mut l = Lookup::new(
        "slow.lan",
        &conf(&[[10, 0, 0, 1], [10, 0, 0, 2]], &[]),
        0,
        7,
    );
    let mut asked = Vec::new();
    let mut now = 0;
    while l.outcome().is_none() {
        for q in sent(&mut l) {
            asked.push((q.0, now));
        }
        now = l.next_deadline().unwrap();
        l.on_tick(now - 1);
        assert!(
            l.outcome().is_none() && l.poll_transmit().is_none(),
            "nothing early"
        );
        l.on_tick(now);
    }
    let s1 = SocketAddr::from(([10, 0, 0, 1], 53));
    let s2 = SocketAddr::from(([10, 0, 0, 2], 53));
    assert_eq!(
        asked,
        [
            (s1, 0),
            (s1, 0),
            (s2, 1000),
            (s2, 1000),
            (s1, 2000),
            (s1, 2000),
            (s2, 3000),
            (s2, 3000)
        ]
    );
    assert_eq!(now, 4000);
    assert_eq!(l.outcome(), Some(&Err(ResolveError::Timeout)));
}

#[test]
fn lookup_moves_past_a_failing_server_and_keeps_a_partial_answer() {
    let (s1, s2) = (
        SocketAddr::from(([10, 0, 0, 1], 53)),
        SocketAddr::from(([10, 0, 0, 2], 53)),
    );
    let mut l = Lookup::new("b.lan", &conf(&[[10, 0, 0, 1], [10, 0, 0, 2]], &[]), 0, 9);
    let qs = sent(&mut l);
    // The first server refuses A and says AAAA has no data; only A is asked again, of
    // the second server, which answers.
    l.on_datagram(s1, &response(qs[0].1, "b.lan", QType::A, 5, &[]), 10);
    l.on_datagram(s1, &answer(&qs[1], &[]), 10);
    let again = sent(&mut l);
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].0, again[0].3), (s2, QType::A));
    assert_ne!(again[0].1, qs[0].1, "a fresh id");
    l.on_datagram(s2, &answer(&again[0], &[IpAddr::from([10, 9, 9, 9])]), 20);
    assert_eq!(l.outcome(), Some(&Ok(vec![IpAddr::from([10, 9, 9, 9])])));

    // At the deadline, one family found is enough.
    let mut l = Lookup::new("b.lan", &conf(&[[10, 0, 0, 1]], &[]), 0, 9);
    let qs = sent(&mut l);
    l.on_datagram(s1, &answer(&qs[0], &[IpAddr::from([1, 2, 3, 4])]), 10);
    assert_eq!(l.outcome(), None);
    l.on_tick(1000);
    assert_eq!(l.outcome(), Some(&Ok(vec![IpAddr::from([1, 2, 3, 4])])));

    // Nothing but errors: ServerFailure, not Timeout.
    let mut l = Lookup::new("b.lan", &conf(&[[10, 0, 0, 1]], &[]), 0, 9);
    while l.outcome().is_none() {
        for q in sent(&mut l) {
            l.on_datagram(s1, &response(q.1, "b.lan", q.3, 2, &[]), 0);
        }
    }
    assert_eq!(l.outcome(), Some(&Err(ResolveError::ServerFailure)));
}
