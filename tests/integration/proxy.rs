//! Behind a reverse proxy: nginx cuts an upstream that sends nothing for
//! `proxy_read_timeout`, so SSE heartbeats are what keeps an idle stream open (README,
//! "Behind a reverse proxy"). These run only where nginx is installed:
//! `cargo test --test integration -- --ignored nginx`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// nginx in the foreground, one process, everything under `dir`; killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    error_log: PathBuf,
}

impl Nginx {
    /// Proxies `location /logwisp/` to `127.0.0.1:upstream` as README shows, with
    /// `proxy_read_timeout` shortened to `read_timeout` so the test need not wait 60 s.
    fn start(dir: &TempDir, upstream: u16, read_timeout: &str) -> Nginx {
        let bin = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("these tests need nginx (apt-get install nginx)");
        let port = free_port();
        let d = dir.path().display();
        // chunked_transfer_encoding off: the test's SSE client reads a plain body.
        let conf = format!(
            "worker_processes 1;\nmaster_process off;\ndaemon off;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d};\n  proxy_temp_path {d};\n\
             chunked_transfer_encoding off;\n\
             server {{\n    listen 127.0.0.1:{port};\n\
             location /logwisp/ {{\n\
               proxy_pass http://127.0.0.1:{upstream}/;\n\
               proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\";\n\
               proxy_buffering off;\n\
               proxy_read_timeout {read_timeout};\n\
             }}\n  }}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx {
            child,
            port,
            error_log: dir.join("error.log"),
        };
        let up = wait_until(TIMEOUT, || {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.errors());
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "nginx did not listen: {}", nginx.errors());
        nginx
    }

    fn errors(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs nginx: cargo test --test integration -- --ignored nginx"]
fn behind_nginx_heartbeats_keep_an_idle_stream_past_proxy_read_timeout() {
    let server = Server::start(&one_stream(&format!(
        "{HTTP}[streams.httpserver.heartbeat]\ninterval_seconds = 1\n"
    )));
    let dir = TempDir::new();
    let nginx = Nginx::start(&dir, server.http_port("app"), "2s");
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
#[ignore = "needs nginx: cargo test --test integration -- --ignored nginx"]
fn behind_nginx_a_stream_without_heartbeats_is_cut_at_proxy_read_timeout() {
    let server = Server::start(&one_stream(&format!(
        "{HTTP}[streams.httpserver.heartbeat]\nenabled = false\n"
    )));
    let dir = TempDir::new();
    let nginx = Nginx::start(&dir, server.http_port("app"), "2s");
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
