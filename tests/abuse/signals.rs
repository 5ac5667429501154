//! Signals: SIGTERM under load, and SIGPIPE from clients that vanish mid-write (SPEC §10).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::util::*;

/// Appends numbered lines to `log`, `per_tick` every 5 ms, until `stop` is set.
fn spam(
    log: std::path::PathBuf,
    per_tick: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut batch = String::new();
            for _ in 0..per_tick {
                batch.push_str(&format!("spam {n} {}\n", "s".repeat(100)));
                n += 1;
            }
            append(&log, batch.as_bytes());
            std::thread::sleep(Duration::from_millis(5));
        }
        n
    })
}

/// SIGTERM with 1 000 SSE clients streaming: every client is told `disconnect` and sees a
/// clean close, and the process exits 0 within the 2 s grace (plus slack).
#[test]
fn sigterm_with_a_thousand_streaming_clients() {
    let dir = TempDir::new();
    let log = dir.join("app.log");
    append(&log, b"");
    let conf = Conf::dir(dir.path());
    let mut s = Server::start_in(dir, &conf.toml(), &[]);
    let mut swarm = Swarm::connect(
        s.http(),
        1000,
        b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n",
        None,
    );
    swarm.wait_all(Duration::from_secs(10), "connected", |p| {
        p.saw(b"event: connected")
    });
    append(&log, b"everyone gets this\n");
    swarm.wait_all(SOON, "streaming", |p| p.saw(b"everyone gets this"));

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spam(log.clone(), 5, stop.clone());
    // Streaming is under way: every client receives the writer's first lines.
    swarm.wait_all(SOON, "receiving the writer's lines", |p| p.saw(b"spam 0 "));

    let sent = Instant::now();
    s.signal(libc::SIGTERM);
    let mut exit = None;
    while exit.is_none() && sent.elapsed() < Duration::from_secs(4) {
        swarm.pump(Duration::from_millis(10));
        exit = s.wait_exit(Duration::ZERO);
    }
    let took = sent.elapsed();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let exit = exit.unwrap_or_else(|| panic!("still running {took:?} after SIGTERM"));
    // Whatever the kernel still holds for the clients is theirs to read.
    swarm.wait_all(SOON, "closed", Peer::done);

    let told = swarm
        .peers
        .iter()
        .filter(|p| p.saw(b"event: disconnect\ndata: {\"reason\":\"server_shutdown\"}"))
        .count();
    let resets = swarm.peers.iter().filter(|p| p.reset).count();
    eprintln!(
        "sigterm: exit {exit} after {took:?}; {told} of 1000 told disconnect; {resets} resets"
    );
    assert!(
        exit.success(),
        "exit status {exit}; stderr:\n{}",
        s.stderr()
    );
    assert!(took < Duration::from_millis(2500), "shutdown took {took:?}");
    assert_eq!(resets, 0, "clients saw a reset instead of a clean close");
    assert_eq!(told, 1000, "clients that got event: disconnect");
}

/// Clients that vanish with an RST while the server writes to them: the writes fail with
/// EPIPE/ECONNRESET, and neither that nor SIGPIPE stops the server.
#[test]
fn sigpipe_from_vanishing_clients_never_kills_the_server() {
    let dir = TempDir::new();
    let log = dir.join("app.log");
    append(&log, b"");
    let conf = Conf::dir(dir.path()).with_tcp();
    let s = Server::start_in(dir, &conf.toml(), &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spam(log.clone(), 50, stop.clone());
    for round in 0..5 {
        let mut sse = Swarm::connect(
            s.http(),
            100,
            b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n",
            Some(4096),
        );
        let mut tcp = Swarm::connect(s.tcp(), 100, b"", Some(4096));
        sse.wait_all(SOON, "streaming", |p| p.saw(b"data: {"));
        tcp.wait_all(SOON, "streaming", |p| p.received > 0);
        // Half of them also half-close first (a FIN the server sees), then everyone resets.
        for sock in sse.socks.iter().chain(&tcp.socks).step_by(2) {
            let _ = sock.shutdown(std::net::Shutdown::Write);
        }
        sse.abort_all();
        tcp.abort_all();
        // Mid-HTTP-response aborts too: a status reply to a client already gone.
        for _ in 0..20 {
            let c = connect(s.http());
            std::io::Write::write_all(&mut &c, b"GET /status HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
            abort(c);
        }
        s.assert_alive();
        wait_for(
            SOON,
            &format!("round {round}: dead clients to be dropped"),
            || {
                let st = s.status("app");
                (st["delivery"]["sse_clients"] == 0 && st["delivery"]["tcp_clients"] == 0)
                    .then_some(())
            },
        );
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    s.assert_alive();
    let mut sse = SseClient::subscribe(s.http());
    append(&log, b"still here\n");
    sse.messages_through("still here", SOON);
    s.assert_serving();
}
