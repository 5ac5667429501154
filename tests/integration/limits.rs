//! Rate and connection limits (token buckets per IP or global, connection caps).
//! 127.0.0.2 is a second client address on the loopback interface.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::util::*;

const OTHER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// One stream with an HTTP server limited by `keys`.
fn http_limited(keys: &str) -> String {
    one_stream(&format!(
        "{HTTP}[streams.httpserver.rate_limit]\nenabled = true\n{keys}"
    ))
}

fn get_from(ip: Option<Ipv4Addr>, port: u16, path: &str) -> Response {
    let mut conn = HttpConn::connect_from(ip, port);
    conn.send(get_request(path, &["Connection: close"]).as_bytes());
    conn.read_response()
}

fn sse_from(ip: Option<Ipv4Addr>, port: u16) -> Result<SseClient, Response> {
    SseClient::open(connect_tcp(ip, None, port), "/stream", &[])
}

#[test]
fn burst_is_served_then_refused_with_configured_code_message_and_retry_after() {
    let server = Server::start(&http_limited(
        "requests_per_second = 0.5\nburst_size = 3\nresponse_code = 503\nresponse_message = \"Slow down\"\n",
    ));
    let port = server.http_port("app");
    for i in 0..3 {
        assert_eq!(http_get(port, "/status").status, 200, "request {i}");
    }
    let mut conn = HttpConn::connect(port);
    conn.send(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = conn.read_response();
    assert_eq!(r.status, 503, "{}", r.text());
    // An empty bucket refilling at 0.5/s has its next token in (just under) 2 s.
    assert_eq!(r.header("Retry-After"), Some("2"));
    assert_eq!(r.body, br#"{"error":"Slow down"}"#);
    assert_eq!(r.header("Connection"), Some("close"));
    conn.expect_closed();
    // Opening a stream is a request too.
    let refused = sse_from(None, port).err().expect("stream refused");
    assert_eq!(refused.status, 503);
}

#[test]
fn tokens_refill_at_the_configured_rate() {
    let server = Server::start(&http_limited("requests_per_second = 2.0\nburst_size = 1\n"));
    let port = server.http_port("app");
    let started = Instant::now();
    assert_eq!(http_get(port, "/status").status, 200);
    let refused = http_get(port, "/status");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("Retry-After"), Some("1"));
    assert_eq!(refused.json()["error"], "Rate limit exceeded");
    let refilled = wait_until(Duration::from_secs(3), || {
        let r = http_get(port, "/status");
        assert!(matches!(r.status, 200 | 429), "{}", r.text());
        r.status == 200
    });
    let waited = started.elapsed();
    assert!(refilled, "no token after {waited:?}");
    // One token at 2/s takes 500 ms (the server counts whole milliseconds); the 3 s
    // deadline above is the upper bound (a loaded machine may be slow to answer).
    assert!(
        waited >= Duration::from_millis(490),
        "refilled after only {waited:?}"
    );
}

#[test]
fn per_ip_buckets_are_separate_and_a_global_bucket_is_shared() {
    let stream = |name: &str, by: &str| {
        format!(
            "[[streams]]\nname = \"{name}\"\n[streams.monitor]\n\
             targets = [{{ path = \"$DIR\", pattern = \"*.log\" }}]\n{HTTP}\
             [streams.httpserver.rate_limit]\nenabled = true\nrequests_per_second = 0.01\n\
             burst_size = 2\nlimit_by = \"{by}\"\n"
        )
    };
    let server = Server::start(&format!(
        "{}{}",
        stream("perip", "ip"),
        stream("shared", "global")
    ));
    for (name, other_ip_status) in [("perip", 200), ("shared", 429)] {
        let port = server.http_port(name);
        assert_eq!(get_from(None, port, "/status").status, 200, "{name}");
        assert_eq!(get_from(None, port, "/status").status, 200, "{name}");
        assert_eq!(get_from(None, port, "/status").status, 429, "{name}");
        let other = get_from(Some(OTHER_IP), port, "/status");
        assert_eq!(
            other.status,
            other_ip_status,
            "{name} from {OTHER_IP}: {}",
            other.text()
        );
    }
}

#[test]
fn tcp_connection_over_the_rate_gets_one_error_line_then_close() {
    let server = Server::start(&one_stream(&format!(
        "{HTTP}{TCP}[streams.tcpserver.rate_limit]\nenabled = true\n\
         requests_per_second = 0.01\nburst_size = 2\nresponse_message = \"Too many connections\"\n"
    )));
    let port = server.tcp_port("app");
    let mut a = TcpLineClient::connect(port);
    let mut b = TcpLineClient::connect(port);
    server.wait_tcp_clients("app", 2);
    let mut refused = TcpLineClient::connect(port);
    assert_eq!(refused.next_line(), r#"{"error":"Too many connections"}"#);
    refused.expect_closed();
    append(&server.path("app.log"), "still streaming\n");
    assert_eq!(a.next_message(), "still streaming");
    assert_eq!(b.next_message(), "still streaming");
    let s = server.status("app");
    let rl = &s["tcp_server"]["rate_limit"];
    assert_eq!(rl["total_requests"], 3, "{rl}");
    assert_eq!(rl["blocked_requests"], 1, "{rl}");
    assert_eq!(rl["total_connections"], 2, "{rl}");
    assert_eq!(s["delivery"]["tcp_clients"], 2);
}

#[test]
fn sse_connection_limits_per_ip_and_in_total_and_closing_frees_a_slot() {
    let server = Server::start(&http_limited(
        "requests_per_second = 1000.0\nburst_size = 1000\n\
         max_connections_per_ip = 2\nmax_total_connections = 3\n",
    ));
    let port = server.http_port("app");
    let refused = |r: Result<SseClient, Response>, what: &str| {
        let r = r
            .err()
            .unwrap_or_else(|| panic!("{what}: stream was admitted"));
        assert_eq!(r.status, 429, "{what}");
        assert_eq!(
            r.body, br#"{"error":"Connection limit exceeded"}"#,
            "{what}"
        );
        assert!(r.header("Retry-After").is_some(), "{what}");
    };
    let a1 = sse_from(None, port).expect("first from 127.0.0.1");
    let _a2 = sse_from(None, port).expect("second from 127.0.0.1");
    refused(sse_from(None, port), "third from 127.0.0.1 (per-IP cap)");
    let _b1 = sse_from(Some(OTHER_IP), port).expect("first from 127.0.0.2");
    refused(
        sse_from(Some(OTHER_IP), port),
        "second from 127.0.0.2 (total cap)",
    );

    drop(a1);
    server.wait_status("app", "the closed stream to be released", |s| {
        s["server"]["active_clients"] == 2
    });
    let _b2 = sse_from(Some(OTHER_IP), port).expect("the freed slot");
    refused(sse_from(Some(OTHER_IP), port), "over the total cap again");
    let s = server.status("app");
    assert_eq!(s["features"]["rate_limit"]["total_connections"], 3);
    assert_eq!(s["server"]["active_clients"], 3);
}

#[test]
fn tcp_connection_limit_refuses_with_a_json_line_and_closing_frees_the_slot() {
    let server = Server::start(&one_stream(&format!(
        "{HTTP}{TCP}[streams.tcpserver.rate_limit]\nenabled = true\n\
         requests_per_second = 1000.0\nburst_size = 1000\nmax_connections_per_ip = 1\n"
    )));
    let port = server.tcp_port("app");
    let first = TcpLineClient::connect(port);
    server.wait_tcp_clients("app", 1);
    let mut refused = TcpLineClient::connect(port);
    assert_eq!(
        refused.next_line(),
        r#"{"error":"Connection limit exceeded"}"#
    );
    refused.expect_closed();
    drop(first);
    server.wait_tcp_clients("app", 0);
    let mut next = TcpLineClient::connect(port);
    server.wait_tcp_clients("app", 1);
    append(&server.path("app.log"), "for the new client\n");
    assert_eq!(next.next_message(), "for the new client");
}

#[test]
fn rate_limit_counters_appear_in_status() {
    let server = Server::start(&http_limited(
        "requests_per_second = 0.01\nburst_size = 4\n",
    ));
    let port = server.http_port("app");
    let _stream = sse_from(None, port).expect("stream");
    for _ in 0..3 {
        assert_eq!(get_from(None, port, "/nope").status, 404);
    }
    for _ in 0..2 {
        assert_eq!(get_from(None, port, "/nope").status, 429);
    }
    // From another address, so its own bucket is full; this request counts too.
    let r = get_from(Some(OTHER_IP), port, "/status");
    assert_eq!(r.status, 200, "{}", r.text());
    let rl = r.json()["features"]["rate_limit"].clone();
    assert_eq!(rl["enabled"], true);
    assert_eq!(rl["total_requests"], 7, "{rl}");
    assert_eq!(rl["blocked_requests"], 2, "{rl}");
    assert_eq!(rl["active_ips"], 2, "{rl}");
    assert_eq!(rl["total_connections"], 1, "{rl}");
    assert_eq!(rl["config"]["requests_per_second"], 0.01);
    assert_eq!(rl["config"]["burst_size"], 4);
    assert_eq!(rl["config"]["limit_by"], "ip");
}
