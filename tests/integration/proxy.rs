//! Behind a reverse proxy: nginx cuts an upstream that sends nothing for
//! `proxy_read_timeout`, so SSE heartbeats are what keeps an idle stream open (README,
//! "Behind a reverse proxy"). They need nginx (`apt-get install nginx`; `.ci/run` installs
//! it) and fail saying so without it.

use std::time::{Duration, Instant};

use crate::util::*;

/// README's nginx block, with `proxy_read_timeout` shortened to 2 s so a test need not
/// wait 60.
const README_DIRECTIVES: &str = "proxy_set_header Connection \"\";\nproxy_read_timeout 2s;";

#[test]
fn behind_nginx_heartbeats_keep_an_idle_stream_past_proxy_read_timeout() {
    let server = Server::start(&one_stream(&format!(
        "{HTTP}[streams.httpserver.heartbeat]\ninterval_seconds = 1\n"
    )));
    let dir = TempDir::new();
    let nginx = Nginx::start(
        &dir,
        server.http_port("app"),
        "/logwisp/",
        README_DIRECTIVES,
    );
    let mut sse = SseClient::connect(nginx.port, "/logwisp/stream", &[]);
    sse.skip_connected();
    // Idle for twice the proxy's read timeout: only heartbeats pass, and the stream stays.
    let idle = Instant::now();
    while idle.elapsed() < Duration::from_secs(4) {
        let e = sse
            .next_event_within(Duration::from_millis(1_900))
            .unwrap_or_else(|| panic!("no heartbeat within 1.9 s: {}", nginx.errors()));
        assert!(e.is_comment_only(), "{:?}", e.raw);
    }
    let log = server.path("app.log");
    let written = Instant::now();
    append(&log, "after the idle spell\n");
    assert_eq!(sse.next_message(), "after the idle spell");
    let latency = written.elapsed();
    assert!(
        latency < Duration::from_secs(1),
        "through nginx in {latency:?}"
    );
    assert!(!nginx.errors().contains("timed out"), "{}", nginx.errors());
}

/// The control: without heartbeats nginx ends the same stream at its read timeout.
#[test]
fn behind_nginx_a_stream_without_heartbeats_is_cut_at_proxy_read_timeout() {
    let server = Server::start(&one_stream(&format!(
        "{HTTP}[streams.httpserver.heartbeat]\nenabled = false\n"
    )));
    let dir = TempDir::new();
    let nginx = Nginx::start(
        &dir,
        server.http_port("app"),
        "/logwisp/",
        README_DIRECTIVES,
    );
    let mut sse = SseClient::connect(nginx.port, "/logwisp/stream", &[]);
    sse.skip_connected();
    let started = Instant::now();
    sse.expect_closed();
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "closed after {:?}",
        started.elapsed()
    );
    let timed_out = wait_until(TIMEOUT, || nginx.errors().contains("upstream timed out"));
    assert!(timed_out, "{}", nginx.errors());
}
