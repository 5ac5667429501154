//! The HTTP side: status JSON, error statuses, keep-alive and pipelining, shutdown.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::*;

#[test]
fn status_reports_server_monitor_delivery_and_features() {
    let dir = TempDir::new();
    append(&dir.join("app.log"), "old\n");
    let toml = one_stream(&format!(
        "{HTTP}buffer_size = 1000\n\
         [streams.httpserver.heartbeat]\nenabled = true\ninterval_seconds = 30\n\
         [streams.httpserver.rate_limit]\nenabled = true\nrequests_per_second = 10.0\nburst_size = 20\n\
         {TCP}buffer_size = 500\n"
    ));
    let server = Server::start_in(dir, &toml, &[]);
    let (http_port, tcp_port) = (server.http_port("app"), server.tcp_port("app"));
    let mut sse = SseClient::connect(http_port, "/stream", &[]);
    sse.skip_connected();
    let mut tcp = TcpLineClient::connect(tcp_port);
    server.wait_tcp_clients("app", 1);
    let log = server.path("app.log");
    append(&log, "one\ntwo\nthree\n");
    for want in ["one", "two", "three"] {
        assert_eq!(sse.next_message(), want);
        assert_eq!(tcp.next_message(), want);
    }

    let raw = http_get(http_port, "/status");
    assert_eq!(raw.header("Content-Type"), Some("application/json"));
    let s = raw.json();
    assert_eq!(s["service"], "LogWisp");
    assert!(
        s["version"].as_str().unwrap().starts_with('v'),
        "{}",
        s["version"]
    );
    assert_eq!(s["stream"], "app");

    let server_json = &s["server"];
    assert_eq!(server_json["type"], "http");
    assert_eq!(server_json["port"], http_port);
    assert_eq!(server_json["active_clients"], 1);
    assert_eq!(server_json["buffer_size"], 1000);
    assert!(server_json["uptime_seconds"].is_u64());
    let tcp_json = &s["tcp_server"];
    assert_eq!(tcp_json["type"], "tcp");
    assert_eq!(tcp_json["port"], tcp_port);
    assert_eq!(tcp_json["active_clients"], 1);
    assert_eq!(tcp_json["buffer_size"], 500);

    let m = &s["monitor"];
    assert_eq!(m["active_watchers"], 1);
    assert_eq!(m["total_entries"], 3);
    assert_eq!(m["dropped_entries"], 0);
    assert_eq!(m["truncated_lines"], 0);
    let size = "old\none\ntwo\nthree\n".len();
    let watchers = m["watchers"].as_array().unwrap();
    assert_eq!(watchers.len(), 1);
    let want = json!({
        "path": log.display().to_string(),
        "state": "reading",
        "size": size,
        "position": size,
        "entries_read": 3,
        "rotations": 0,
        "truncated_lines": 0,
        "last_error": null,
    });
    for (key, value) in want.as_object().unwrap() {
        assert_eq!(&watchers[0][key], value, "watcher {key}: {:#}", watchers[0]);
    }
    let targets = m["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["path"], server.dir.path().display().to_string());

    let d = &s["delivery"];
    assert_eq!(
        d["next_sequence"].as_u64().unwrap(),
        d["first_sequence"].as_u64().unwrap() + 3
    );
    assert_eq!(d["buffered_entries"], 3);
    assert_eq!(d["sse_clients"], 1);
    assert_eq!(d["tcp_clients"], 1);
    assert!(d["bytes_sent"].as_u64().unwrap() > 0);
    assert_eq!(d["dropped_entries"], 0);

    assert_eq!(s["features"]["heartbeat"]["enabled"], true);
    let rl = &s["features"]["rate_limit"];
    assert_eq!(rl["enabled"], true);
    assert_eq!(rl["blocked_requests"], 0);
    assert_eq!(rl["active_ips"], 1);
    assert_eq!(rl["total_connections"], 1, "the open SSE stream");
    assert_eq!(rl["config"]["burst_size"], 20);
    assert_eq!(rl["config"]["limit_by"], "ip");
    // `10.0` in the TOML is `10` in the JSON, as the original printed it.
    assert!(rl["config"]["requests_per_second"].is_u64(), "{rl}");
    assert_eq!(rl["config"]["requests_per_second"], 10);
    // Every request counts, this one included.
    let before = rl["total_requests"].as_u64().unwrap();
    let again = server.status("app");
    assert_eq!(
        again["features"]["rate_limit"]["total_requests"],
        before + 1
    );
}

#[test]
fn unknown_path_gets_404_listing_endpoints_and_keeps_the_connection() {
    let server = Server::start(&one_stream(HTTP));
    let mut conn = HttpConn::connect(server.http_port("app"));
    conn.send(b"GET /nope?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = conn.read_response();
    assert_eq!((r.status, r.reason.as_str()), (404, "Not Found"));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Connection"), Some("keep-alive"));
    let v = r.json();
    assert_eq!(v["error"], "Not Found");
    assert_eq!(v["path"], "/nope");
    assert_eq!(
        v["endpoints"],
        json!(["/stream", "/status", "/metrics", "/"])
    );
    conn.send(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = conn.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["stream"], "app");
}

#[test]
fn other_methods_get_405_with_allow_and_a_close() {
    let server = Server::start(&one_stream(HTTP));
    for raw in [
        "POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        "DELETE /stream HTTP/1.1\r\nHost: x\r\n\r\n",
        "PUT /stream HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut conn = HttpConn::connect(server.http_port("app"));
        conn.send(raw.as_bytes());
        let r = conn.read_response();
        assert_eq!(r.status, 405, "{raw:?}: {}", r.text());
        assert_eq!(r.header("Allow"), Some("GET, HEAD, OPTIONS"));
        assert_eq!(r.header("Connection"), Some("close"));
        assert!(r.json()["error"].is_string());
        conn.expect_closed();
    }
}

/// `OPTIONS *` and `OPTIONS` on a known path: 204 with `Allow`, no body, keep-alive kept;
/// on the endpoints, what a browser's CORS preflight needs before a cross-origin GET that
/// adds `Last-Event-ID` or `Authorization` (SPEC §7).
#[test]
fn options_answers_204_with_allow_and_cors_preflight_headers() {
    let server = Server::start(&one_stream(HTTP));
    let mut conn = HttpConn::connect(server.http_port("app"));
    conn.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = conn.read_head_only();
    assert_eq!((r.status, r.reason.as_str()), (204, "No Content"));
    assert_eq!(r.header("Allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(
        r.header("Content-Length"),
        None,
        "a 204 has no Content-Length"
    );
    assert_eq!(r.header("Connection"), Some("keep-alive"));

    // A preflight as Chrome and Firefox send it: the requested headers are echoed.
    conn.send(
        b"OPTIONS /stream HTTP/1.1\r\nHost: x\r\nOrigin: http://dashboard.example\r\n\
          Access-Control-Request-Method: GET\r\n\
          Access-Control-Request-Headers: authorization,last-event-id\r\n\r\n",
    );
    let r = conn.read_head_only();
    assert_eq!(r.status, 204);
    let want = [
        ("Allow", "GET, HEAD, OPTIONS"),
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
        (
            "Access-Control-Allow-Headers",
            "authorization,last-event-id",
        ),
        ("Access-Control-Max-Age", "86400"),
    ];
    for (name, value) in want {
        assert_eq!(r.header(name), Some(value), "{name}: {:?}", r.headers);
    }
    assert_eq!(r.header("Content-Length"), None);

    // Without a list to echo, the headers SSE clients send are allowed.
    conn.send(b"OPTIONS /status HTTP/1.1\r\nHost: x\r\nOrigin: http://o\r\n\r\n");
    let r = conn.read_head_only();
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("Access-Control-Allow-Headers"),
        Some("Last-Event-ID, Cache-Control, Accept, Content-Type, Authorization")
    );

    // Nothing but the heads came: the next response on the connection is whole.
    conn.send(b"OPTIONS /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().status, 404);
    conn.send(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = conn.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["stream"], "app");
    conn.expect_closed();
}

/// RFC 9110 §6.6.1: an origin server with a clock sends `Date` in every response.
#[test]
fn every_response_carries_a_date() {
    let toml = one_stream(&format!(
        "{HTTP}[streams.httpserver.rate_limit]\nenabled = true\nrequests_per_second = 0.01\nburst_size = 10\n"
    ));
    let server = Server::start(&toml);
    let port = server.http_port("app");
    let from = unix_now();
    let cases: &[(&str, &[u8], u16)] = &[
        ("status", b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        ("404", b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("405", b"POST /status HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("400", b"GET /status HTTP/1.1\r\nHost: u@x\r\n\r\n", 400),
        ("505", b"GET /status HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ];
    for (what, raw, status) in cases {
        let r = http_request(port, raw);
        assert_eq!(r.status, *status, "{what}: {}", r.text());
        assert_dated(what, &r, from, unix_now());
    }
    let mut conn = HttpConn::connect(port);
    conn.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_dated("204", &conn.read_head_only(), from, unix_now());
    conn.send(b"HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = conn.read_head_only();
    assert_eq!(head.header("Content-Type"), Some("text/event-stream"));
    assert_dated("HEAD of the stream", &head, from, unix_now());

    // The SSE head, byte for byte: Date after the status line, a chunked body.
    let mut sse = SseClient::connect(port, "/stream", &[]);
    assert_dated("SSE", &sse.head, from, unix_now());
    let date = sse.head.header("Date").unwrap().to_string();
    let names: Vec<(&str, &str)> = sse
        .head
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("Date", date.as_str()),
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("Connection", "keep-alive"),
            ("Transfer-Encoding", "chunked"),
            ("Access-Control-Allow-Origin", "*"),
            ("X-Accel-Buffering", "no"),
            ("Server", "logwisp"),
        ]
    );
    sse.skip_connected();

    // The bucket (10 requests, 8 taken above) empties within a few more: the refusal is
    // dated too.
    let r = (0..20)
        .map(|_| http_get(port, "/status"))
        .find(|r| r.status == 429)
        .expect("a 429 within 20 requests");
    assert!(r.header("Retry-After").is_some(), "{:?}", r.headers);
    assert_dated("429", &r, from, unix_now());
}

#[test]
fn malformed_and_oversized_requests_get_their_status_and_a_close() {
    let big = "a".repeat(9000);
    let many: String = (0..64).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, String, u16)> = vec![
        ("missing Host on 1.1", "GET /status HTTP/1.1\r\n\r\n".into(), 400),
        ("duplicate Host", "GET /status HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), 400),
        ("space before colon", "GET /status HTTP/1.1\r\nHost : x\r\n\r\n".into(), 400),
        ("obs-fold", "GET /status HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n".into(), 400),
        (
            "two Content-Lengths",
            "GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx".into(),
            400,
        ),
        ("bad Content-Length", "GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n".into(), 400),
        (
            "Transfer-Encoding with Content-Length",
            "POST /status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n".into(),
            400,
        ),
        ("garbage request line", "HELLO\r\n\r\n".into(), 400),
        (
            "chunked body",
            "POST /status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            411,
        ),
        ("body over 64 KiB", "POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n".into(), 413),
        ("target over 8 KiB", format!("GET /{big} HTTP/1.1\r\nHost: x\r\n\r\n"), 414),
        ("header section over 8 KiB", format!("GET /status HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"), 431),
        ("65 header fields", format!("GET /status HTTP/1.1\r\nHost: x\r\n{many}\r\n"), 431),
        ("HTTP/2.0", "GET /status HTTP/2.0\r\nHost: x\r\n\r\n".into(), 505),
        ("HTTP/0.9", "GET /status\r\n".into(), 505),
        // RFC 9112 strictness (SPEC §7): 400, not 505 and not 200.
        ("Host with userinfo", "GET /status HTTP/1.1\r\nHost: user@x\r\n\r\n".into(), 400),
        ("Host with a path", "GET /status HTTP/1.1\r\nHost: x/status\r\n\r\n".into(), 400),
        ("empty Host", "GET /status HTTP/1.1\r\nHost: \r\n\r\n".into(), 400),
        ("Host list", "GET /status HTTP/1.1\r\nHost: x, y\r\n\r\n".into(), 400),
        ("no target", "GET HTTP/1.1\r\nHost: x\r\n\r\n".into(), 400),
        ("malformed version", "GET /status HTTP/1.1x\r\nHost: x\r\n\r\n".into(), 400),
        ("lower-case version", "GET /status http/1.1\r\nHost: x\r\n\r\n".into(), 400),
        ("tab in the request line", "GET\t/status HTTP/1.1\r\nHost: x\r\n\r\n".into(), 400),
        ("fragment", "GET /status#top HTTP/1.1\r\nHost: x\r\n\r\n".into(), 400),
        ("non-ASCII target", "GET /st\u{e4}tus HTTP/1.1\r\nHost: x\r\n\r\n".into(), 400),
        ("asterisk form on GET", "GET * HTTP/1.1\r\nHost: x\r\n\r\n".into(), 400),
    ];
    let server = Server::start(&one_stream(HTTP));
    for (what, raw, status) in cases {
        let mut conn = HttpConn::connect(server.http_port("app"));
        conn.send(raw.as_bytes());
        let r = conn.read_response();
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert_eq!(r.header("Connection"), Some("close"), "{what}");
        assert!(r.json()["error"].is_string(), "{what}: {}", r.text());
        conn.expect_closed();
    }
    // Just inside the limits: 64 fields in all.
    let many: String = (0..63).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = http_request(
        server.http_port("app"),
        format!("GET /status HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn incomplete_request_head_gets_408_after_10_seconds() {
    let server = Server::start(&one_stream(HTTP));
    let started = Instant::now();
    let mut conn = HttpConn::connect(server.http_port("app"));
    conn.send(b"GET /status HTTP/1.1\r\nHost: x\r\n");
    let r = conn.read_response_within(Duration::from_secs(13));
    let waited = started.elapsed();
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(
        waited >= Duration::from_millis(9_500),
        "408 after {waited:?}"
    );
    assert_eq!(r.header("Connection"), Some("close"));
    conn.expect_closed();
}

#[test]
fn pipelined_requests_are_answered_in_order_and_bodies_are_discarded() {
    let server = Server::start(&one_stream(HTTP));
    let mut conn = HttpConn::connect(server.http_port("app"));
    // The first request's body ("hello") must not be taken for the next request.
    conn.send(
        b"GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          GET /nope HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /status HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let r = conn.read_response();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["stream"], "app");
    assert_eq!(conn.read_response().status, 404);
    let head = conn.read_head_only();
    assert_eq!(head.status, 200);
    let length: usize = head.header("Content-Length").unwrap().parse().unwrap();
    assert!(length > 0);
    let r = conn.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Connection"), Some("close"));
    conn.expect_closed();
}

#[test]
fn http_1_0_needs_no_host_and_closes_by_default() {
    let server = Server::start(&one_stream(HTTP));
    let mut conn = HttpConn::connect(server.http_port("app"));
    conn.send(b"GET /status HTTP/1.0\r\n\r\n");
    let r = conn.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Connection"), Some("close"));
    conn.expect_closed();
}

#[test]
fn sigterm_delivers_what_is_owed_then_disconnect_and_exits_0_within_2s() {
    let mut server = Server::start(&one_stream(&format!("{HTTP}{TCP}")));
    let log = server.path("app.log");
    append(&log, "");
    let mut sse = SseClient::connect(server.http_port("app"), "/stream", &[]);
    sse.skip_connected();
    let mut tcp = TcpLineClient::connect(server.tcp_port("app"));
    server.wait_tcp_clients("app", 1);
    append(&log, &numbered("owed", 0..100));
    server.wait_status("app", "100 entries read", |s| {
        s["monitor"]["total_entries"] == 100
    });

    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    for i in 0..100 {
        assert_eq!(sse.next_message(), format!("owed {i:05}"));
        assert_eq!(tcp.next_message(), format!("owed {i:05}"));
    }
    let goodbye = sse.next_block_within(TIMEOUT).expect("disconnect event");
    assert_eq!(
        goodbye,
        "event: disconnect\ndata: {\"reason\":\"server_shutdown\"}\n\n"
    );
    sse.expect_closed();
    tcp.expect_closed();
    let left = Duration::from_secs(2).saturating_sub(signalled.elapsed());
    let status = server.wait_exit(left);
    assert!(
        status.is_some(),
        "still running 2 s after SIGTERM; stderr: {}",
        server.stderr()
    );
    assert_eq!(
        status.unwrap().code(),
        Some(0),
        "stderr: {}",
        server.stderr()
    );
}

#[test]
fn head_of_the_stream_path_is_the_sse_head_only() {
    let server = Server::start(&one_stream(HTTP));
    let mut conn = HttpConn::connect(server.http_port("app"));
    conn.send(b"HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = conn.read_head_only();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Type"), Some("text/event-stream"));
    conn.expect_closed();
    let s: Value = server.status("app");
    assert_eq!(s["delivery"]["sse_clients"], 0);
}

/// A client outside this code base reads the stream as it comes: Python's `http.client`
/// (what urllib3 and requests build on) de-chunks the body and hands each event over at
/// once, rather than waiting for a body end that never comes.
#[test]
fn python_http_client_reads_events_as_they_arrive() {
    use std::process::{Command, Stdio};
    let server = Server::start(&one_stream(HTTP));
    let log = server.path("app.log");
    append(&log, "");
    let script = r#"
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("GET", "/stream", headers={"Accept": "text/event-stream"})
r = c.getresponse()
print(r.status, r.getheader("Transfer-Encoding"), flush=True)
while True:
    line = r.readline()
    if not line:
        break
    if line.startswith(b"data: ") and b"client_id" not in line:
        print(json.loads(line[6:])["message"], flush=True)
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(server.http_port("app").to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    let rx = stdout_lines(&mut child);
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), "200 chunked");
    server.wait_status("app", "the Python client", |s| {
        s["delivery"]["sse_clients"] == 1
    });
    for i in 0..20 {
        // One at a time: each must arrive before the next is written.
        let text = format!("event {i}");
        append(&log, &format!("{text}\n"));
        assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), text);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `/metrics` is valid Prometheus text (checked by the reference parser,
/// `prometheus_client`), has the families SPEC §12 names, and agrees with `/status`.
#[test]
fn metrics_parse_as_prometheus_text_and_agree_with_status() {
    use std::process::Stdio;
    let server = Server::start(&one_stream(&format!("{HTTP}{TCP}")));
    let log = server.path("app.log");
    append(&log, "");
    let mut sse = SseClient::connect(server.http_port("app"), "/stream", &[]);
    sse.skip_connected();
    let mut tcp = TcpLineClient::connect(server.tcp_port("app"));
    server.wait_tcp_clients("app", 1);
    append(&log, &numbered("m", 0..25));
    for _ in 0..25 {
        sse.next_message();
        tcp.next_message();
    }
    let r = http_get(server.http_port("app"), "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        key = s.name + json.dumps(s.labels, sort_keys=True)
        out[key] = s.value
print(json.dumps(out))
"#;
    let mut child = python_with("prometheus_client")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sample = |key: &str| {
        samples[key]
            .as_f64()
            .unwrap_or_else(|| panic!("no sample {key} in:\n{text}"))
    };
    let status = server.status("app");
    assert_eq!(
        sample("logwisp_lines_read_total{\"stream\": \"app\"}"),
        25.0
    );
    assert_eq!(
        sample("logwisp_lines_read_total{\"stream\": \"app\"}") as u64,
        status["monitor"]["total_entries"].as_u64().unwrap()
    );
    assert_eq!(
        sample("logwisp_lines_sent_total{\"stream\": \"app\", \"transport\": \"sse\"}"),
        25.0
    );
    assert_eq!(
        sample("logwisp_lines_sent_total{\"stream\": \"app\", \"transport\": \"tcp\"}"),
        25.0
    );
    assert_eq!(
        sample("logwisp_clients{\"stream\": \"app\", \"transport\": \"sse\"}"),
        1.0
    );
    assert_eq!(
        sample("logwisp_files_watched{\"stream\": \"app\"}"),
        status["monitor"]["active_watchers"].as_f64().unwrap()
    );
    assert!(sample("process_resident_memory_bytes{}") > 0.0);
    assert!(sample("process_open_fds{}") > 0.0);
    assert!(sample("process_start_time_seconds{}") > 1.7e9);
    for family in [
        "logwisp_read_bytes_total",
        "logwisp_sent_bytes_total",
        "logwisp_lines_dropped_total",
        "logwisp_connections_rejected_total",
        "logwisp_file_rotations_total",
        "logwisp_errors_total",
        "logwisp_forward_acked_total",
        "logwisp_build_info",
        "process_cpu_seconds_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing"
        );
    }
}
