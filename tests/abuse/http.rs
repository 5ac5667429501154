//! Malformed, oversized, pipelined and half-closed HTTP (SPEC §7).

use std::time::{Duration, Instant};

use crate::util::*;

const QUIET: Duration = Duration::from_secs(3);

/// Probes `GET /status` on fresh connections until `done`; the slowest answer, or None if
/// one took over 3 s.
fn slowest_status_while(s: &Server, done: impl Fn() -> bool) -> Option<Duration> {
    let mut slowest = Some(Duration::ZERO);
    while !done() {
        let t = Instant::now();
        let took = try_get(s.http(), "/status", Duration::from_secs(3)).map(|_| t.elapsed());
        slowest = slowest.zip(took).map(|(a, b)| a.max(b));
    }
    slowest
}

fn show(t: Option<Duration>) -> String {
    t.map_or("over 3 s".into(), |t| format!("{t:?}"))
}

fn server() -> Server {
    let dir = TempDir::new();
    let conf = Conf::dir(dir.path());
    Server::start_in(dir, &conf.toml(), &[])
}

/// Sends `raw` on a fresh connection: exactly one response with `status`, then a close.
fn rejects(s: &Server, what: &str, raw: &[u8], status: u16) {
    let (responses, end) = exchange(s.http(), raw, QUIET);
    let got: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(got, [status], "{what}: statuses");
    let r = &responses[0];
    assert!(r.closes(), "{what}: error without Connection: close");
    let body = r.json();
    assert!(body["error"].is_string(), "{what}: body {body}");
    assert_eq!(end, End::Closed, "{what}: connection after the error");
    s.assert_serving();
}

#[test]
fn malformed_heads_get_400_and_a_close() {
    let s = server();
    let cases: &[(&str, &[u8])] = &[
        ("garbage", b"garbage\r\n\r\n"),
        ("binary garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
        ("NUL bytes in the method", b"\x00\x00\x00 / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("NUL in a header value", b"GET /status HTTP/1.1\r\nHost: a\x00b\r\n\r\n"),
        ("header without colon", b"GET /status HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"),
        ("space before colon", b"GET /status HTTP/1.1\r\nHost : a\r\n\r\n"),
        ("obs-fold", b"GET /status HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n"),
        (
            "duplicate Content-Length",
            b"GET /status HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        ),
        (
            "conflicting Content-Length",
            b"GET /status HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        ),
        (
            "Content-Length list",
            b"GET /status HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
        ),
        ("negative Content-Length", b"GET /status HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"),
        (
            "Content-Length with Transfer-Encoding",
            b"GET /status HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        ("missing Host", b"GET /status HTTP/1.1\r\n\r\n"),
        ("duplicate Host", b"GET /status HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("target not a path", b"GET status HTTP/1.1\r\nHost: a\r\n\r\n"),
    ];
    for (what, raw) in cases {
        rejects(&s, what, raw, 400);
    }
}

#[test]
fn oversized_and_unsupported_get_their_status() {
    let s = server();
    rejects(
        &s,
        "chunked body",
        b"POST /status HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        411,
    );
    rejects(
        &s,
        "body over 64 KiB",
        b"GET /status HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n",
        413,
    );
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9 * 1024));
    rejects(&s, "target over 8 KiB", long.as_bytes(), 414);
    let mut many = String::from("GET /status HTTP/1.1\r\nHost: a\r\n");
    for i in 0..1000 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    rejects(&s, "1 000 headers", many.as_bytes(), 431);
    let big = format!(
        "GET /status HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9 * 1024)
    );
    rejects(&s, "header section over 8 KiB", big.as_bytes(), 431);
    rejects(
        &s,
        "HTTP/2.0",
        b"GET /status HTTP/2.0\r\nHost: a\r\n\r\n",
        505,
    );
    rejects(
        &s,
        "HTTP/2 preface",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        505,
    );
    rejects(
        &s,
        "HTTP/1.2",
        b"GET /status HTTP/1.2\r\nHost: a\r\n\r\n",
        505,
    );
}

#[test]
fn http09_gets_505_or_a_clean_close() {
    let s = server();
    let (responses, end) = exchange(s.http(), b"GET /status\r\n", QUIET);
    match responses.as_slice() {
        [] => {}
        [r] => assert_eq!(r.status, 505, "{}", r.text()),
        more => panic!("{} responses to one HTTP/0.9 request", more.len()),
    }
    assert_eq!(end, End::Closed);
    s.assert_serving();
}

#[test]
fn http10_works_and_closes_unless_keep_alive() {
    let s = server();
    let (responses, end) = exchange(s.http(), b"GET /status HTTP/1.0\r\n\r\n", QUIET);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 200);
    assert_eq!(responses[0].json()["service"], "LogWisp");
    assert_eq!(end, End::Closed, "HTTP/1.0 without keep-alive must close");

    let mut c = HttpConn::connect(s.http());
    let req = b"GET /status HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    for round in 0..3 {
        c.send(req);
        let r = c
            .response(Instant::now() + SOON)
            .unwrap()
            .expect("response");
        assert_eq!(r.status, 200, "round {round}");
        assert!(!r.closes(), "round {round}: keep-alive was asked for");
        r.json();
    }
    c.send(b"GET /status HTTP/1.0\r\n\r\n");
    assert_eq!(
        c.response(Instant::now() + SOON).unwrap().unwrap().status,
        200
    );
    assert_eq!(c.end(Instant::now() + QUIET).0, End::Closed);
    s.assert_serving();
}

#[test]
fn request_bodies_are_skipped_before_the_next_request() {
    let s = server();
    // The body looks like a request of its own: answering it would be request smuggling.
    let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut raw = format!(
        "GET /status HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        smuggled.len()
    )
    .into_bytes();
    raw.extend_from_slice(smuggled);
    raw.extend_from_slice(b"GET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let (responses, end) = exchange(s.http(), &raw, QUIET);
    let got: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(got, [200, 404], "status, then the pipelined request's 404");
    assert_eq!(responses[0].json()["service"], "LogWisp");
    assert_eq!(
        responses[1].json()["path"],
        "/second",
        "the body was answered"
    );
    assert_eq!(end, End::Closed);

    // The same with the body arriving in pieces after the response to the head.
    let mut c = HttpConn::connect(s.http());
    c.send(b"GET /status HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nGET /");
    assert_eq!(
        c.response(Instant::now() + SOON).unwrap().unwrap().status,
        200
    );
    c.send(b"x HTT");
    c.send(b"GET /third HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.response(Instant::now() + SOON).unwrap().unwrap();
    assert_eq!((r.status, r.json()["path"].clone()), (404, "/third".into()));
    s.assert_serving();
}

#[test]
fn a_thousand_pipelined_requests_are_answered_in_order() {
    let s = server();
    let mut raw = Vec::new();
    for _ in 0..1000 {
        raw.extend_from_slice(b"GET /status HTTP/1.1\r\nHost: a\r\n\r\n");
    }
    raw.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let mut c = HttpConn::connect(s.http());
    let writer = {
        let mut w = c.stream.try_clone().unwrap();
        std::thread::spawn(move || std::io::Write::write_all(&mut w, &raw))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..1000 {
        let r = c
            .response(deadline)
            .unwrap_or_else(|e| panic!("response {i}: {e}"))
            .unwrap_or_else(|| panic!("EOF after {i} responses"));
        assert_eq!(r.status, 200, "response {i}: {}", r.text());
        assert!(!r.closes(), "response {i} closes");
        assert_eq!(r.json()["service"], "LogWisp", "response {i}");
    }
    let last = c.response(deadline).unwrap().expect("the final request");
    assert_eq!(
        (last.status, last.json()["path"].clone()),
        (404, "/last".into())
    );
    assert_eq!(c.end(deadline).0, End::Closed);
    writer.join().unwrap().unwrap();

    // Order, visibly: each 404 names its own path.
    let mut raw = Vec::new();
    for i in 0..200 {
        raw.extend_from_slice(format!("GET /p{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        raw.extend_from_slice(b"GET /status HTTP/1.1\r\nHost: a\r\n\r\n");
    }
    let mut c = HttpConn::connect(s.http());
    c.send(&raw);
    for i in 0..200 {
        let r = c.response(deadline).unwrap().unwrap();
        assert_eq!(
            (r.status, r.json()["path"].clone()),
            (404, format!("/p{i}").into())
        );
        assert_eq!(c.response(deadline).unwrap().unwrap().status, 200);
    }
    s.assert_serving();
}

#[test]
fn half_closed_client_still_gets_its_response() {
    let s = server();
    for raw in [
        &b"GET /status HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET /status HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /status HTTP/1.0\r\n\r\n",
    ] {
        let mut c = HttpConn::connect(s.http());
        c.send(raw);
        shutdown_write(&c.stream);
        let r = c
            .response(Instant::now() + SOON)
            .unwrap()
            .expect("a response");
        assert_eq!(r.status, 200);
        r.json();
        let (end, rest) = c.end(Instant::now() + QUIET);
        if raw.windows(5).any(|w| w == b"/nope") {
            assert!(String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 404"));
        }
        assert_eq!(end, End::Closed, "after a half-close the server closes");
    }
    // A half-close in the middle of a head: nothing to answer, just a close.
    let mut c = HttpConn::connect(s.http());
    c.send(b"GET /status HTTP/1.1\r\nHo");
    shutdown_write(&c.stream);
    let (end, _) = c.end(Instant::now() + QUIET);
    assert_ne!(end, End::Open, "an incomplete head after EOF must not hang");
    s.assert_serving();
}

/// Empty lines before a request line are allowed (RFC 9112 §2.2), but not without bound:
/// a client streaming CRLFs must be cut off like any other oversized head, not buffered
/// (and re-scanned on every read) until the 10 s header timeout, stalling everyone else.
#[test]
fn endless_blank_lines_before_the_request_are_bounded() {
    let s = server();
    let proc = s.proc();
    let cpu_before = proc.cpu();
    let mut c = HttpConn::connect(s.http());
    let flood = {
        let mut w = c.stream.try_clone().unwrap();
        w.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let chunk = b"\r\n".repeat(32 * 1024);
            let (mut sent, mut failed) = (0, false);
            let deadline = Instant::now() + Duration::from_secs(3);
            while sent < 8 << 20 && Instant::now() < deadline {
                match std::io::Write::write(&mut w, &chunk) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            (sent, failed)
        })
    };
    let slowest = slowest_status_while(&s, || flood.is_finished());
    let (sent, failed) = flood.join().unwrap();
    let (end, rest) = c.end(Instant::now() + Duration::from_secs(2));
    let cpu = proc.cpu() - cpu_before;
    let answer = String::from_utf8_lossy(&rest[..rest.len().min(40)]).into_owned();
    let report = format!(
        "{} KiB of blank lines sent (write failed: {failed}), connection {end:?}, answer {answer:?}, \
         slowest /status meanwhile {}, server CPU {cpu:?}, peak RSS {} KiB",
        sent / 1024,
        show(slowest),
        proc.peak_rss_kib()
    );
    eprintln!("crlf flood: {report}");
    assert!(failed || end != End::Open, "never cut off: {report}");
    assert!(
        slowest.is_some_and(|t| t < Duration::from_secs(1)),
        "others stalled: {report}"
    );
    if !rest.is_empty() {
        assert!(
            answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 431"),
            "{report}"
        );
    }
    s.assert_serving();
}

/// A client that pipelines requests as fast as it reads the answers must not keep the
/// one-threaded reactor to itself (SPEC §1: budgets, so no one starves).
#[test]
fn pipelining_firehose_does_not_starve_other_clients() {
    let s = server();
    let c = connect(s.http());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let mut w = c.try_clone().unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let burst = b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n".repeat(200);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if std::io::Write::write_all(&mut w, &burst).is_err() {
                    break;
                }
            }
        })
    };
    let reader = {
        let mut r = c.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0usize;
            while let Ok(n) = std::io::Read::read(&mut r, &mut buf) {
                if n == 0 {
                    break;
                }
                total += n;
            }
            total
        })
    };
    let t0 = Instant::now();
    let slowest = slowest_status_while(&s, || t0.elapsed() > Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    c.shutdown(std::net::Shutdown::Both).unwrap();
    writer.join().unwrap();
    let received = reader.join().unwrap();
    eprintln!(
        "firehose: {} KiB of 404s answered; slowest /status meanwhile {}",
        received / 1024,
        show(slowest)
    );
    assert!(
        slowest.is_some_and(|t| t < Duration::from_secs(1)),
        "a well-behaved client waited {} while one connection pipelined",
        show(slowest)
    );
    s.assert_serving();
}
