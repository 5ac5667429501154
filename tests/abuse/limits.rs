//! Resource abuse: slowloris, descriptor exhaustion, clients that never read (SPEC §6, §9).

use std::time::{Duration, Instant};

use crate::util::*;

/// 1 000 connections trickling a header byte per second neither starve a streaming client
/// nor outlive the 10 s header timeout.
#[test]
fn slowloris_neither_starves_streams_nor_outlives_the_header_timeout() {
    let dir = TempDir::new();
    let log = dir.join("app.log");
    append(&log, b"");
    let conf = Conf::dir(dir.path());
    let s = Server::start_in(dir, &conf.toml(), &[]);
    let head = b"GET /status HTTP/1.1\r\nHost: a\r\n";
    let start = Instant::now();
    let mut swarm = Swarm::connect(s.http(), 1000, head, None);
    let connected = Instant::now();

    // A streaming client and a status request are served while they trickle.
    let mut sse = SseClient::subscribe(s.http());
    let mut tick = Instant::now();
    for i in 0..5 {
        append(&log, format!("while slow {i}\n").as_bytes());
        let got = sse.messages_through(&format!("while slow {i}"), SOON);
        assert_eq!(got, [format!("while slow {i}")]);
        s.assert_serving();
        if tick.elapsed() >= Duration::from_secs(1) {
            swarm.trickle(b'x');
            tick = Instant::now();
        }
    }
    assert!(
        connected.elapsed() < Duration::from_secs(9),
        "serving the healthy client took {:?}",
        connected.elapsed()
    );
    assert_eq!(
        swarm.open(),
        1000,
        "slow clients closed before the header timeout"
    );

    // Keep trickling; all must be cut off at ~10 s (408 or a bare close).
    let limit = Duration::from_secs(15);
    while swarm.open() > 0 && connected.elapsed() < limit {
        if tick.elapsed() >= Duration::from_secs(1) {
            swarm.trickle(b'x');
            tick = Instant::now();
        }
        swarm.pump(Duration::from_millis(100));
    }
    let open = swarm.open();
    let with_408 = swarm.peers.iter().filter(|p| p.saw(b" 408 ")).count();
    let resets = swarm.peers.iter().filter(|p| p.reset).count();
    let earliest = swarm.peers.iter().filter_map(|p| p.closed_at).min();
    eprintln!(
        "slowloris: connecting took {:?}; {with_408} got 408, {resets} reset, {open} still \
         open; first closed {:?} after the first connect",
        connected - start,
        earliest.map(|t| t - start)
    );
    assert_eq!(
        open, 0,
        "slow clients still open {limit:?} after connecting"
    );
    let early = earliest.unwrap() - start;
    assert!(
        early >= Duration::from_millis(9900),
        "closed after only {early:?}"
    );
    for p in &swarm.peers {
        if p.received > 0 {
            assert!(
                p.saw(b"HTTP/1.1 408"),
                "{}",
                String::from_utf8_lossy(&p.head)
            );
        }
    }

    // The stream kept flowing the whole time.
    append(&log, b"after slowloris\n");
    sse.messages_through("after slowloris", SOON);
    s.assert_serving();
}

/// Under `ulimit -n 64`, more connections than descriptors: no spinning on EMFILE, and
/// service resumes once descriptors are free again.
#[test]
fn descriptor_exhaustion_does_not_spin_and_recovers() {
    let dir = TempDir::new();
    let log = dir.join("app.log");
    append(&log, b"");
    let conf = Conf::dir(dir.path());
    let s = Server::start_with_fd_limit(dir, &conf.toml(), 64);
    let proc = s.proc();
    s.assert_serving();

    let mut swarm = Swarm::connect(s.http(), 150, b"", None);
    // The server takes descriptors until it runs out (EMFILE on accept).
    wait_for(SOON, "descriptors to run out", || {
        (proc.open_fds() >= 60 && s.stderr().contains("accept failed")).then_some(())
    });
    let before = proc.cpu();
    let window = Instant::now();
    hold_for(Duration::from_secs(2), || {
        let used = proc.cpu() - before;
        (used > Duration::from_millis(300)).then(|| {
            format!(
                "logwisp burned {used:?} CPU in {:?} while out of descriptors",
                window.elapsed()
            )
        })
    });
    let used = proc.cpu() - before;
    eprintln!("emfile: {used:?} CPU over 2 s with 150 pending connections");
    assert_eq!(
        s.stderr().matches("accept failed").count(),
        1,
        "EMFILE reported once: {}",
        s.stderr()
    );

    swarm.abort_all();
    drop(swarm);
    // Freed descriptors make room: a new client is served (SSE and status).
    let mut sse = SseClient::subscribe(s.http());
    append(&log, b"after exhaustion\n");
    sse.messages_through("after exhaustion", SOON);
    s.assert_serving();
}

/// 100 SSE clients that never read: memory stays bounded, a healthy client still gets every
/// line, and the dead readers fall back to the file instead of losing entries.
#[test]
fn dead_readers_cost_bounded_memory_and_healthy_clients_lose_nothing() {
    let dir = TempDir::new();
    let log = dir.join("app.log");
    append(&log, b"");
    let conf = Conf::dir(dir.path()).http("buffer_size = 1000");
    let s = Server::start_in(dir, &conf.toml(), &[]);
    let proc = s.proc();
    let dead = Swarm::connect(
        s.http(),
        100,
        b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n",
        Some(4096),
    );
    wait_for(SOON, "100 SSE clients", || {
        (s.status("app")["delivery"]["sse_clients"] == 100).then_some(())
    });
    let mut healthy = SseClient::subscribe(s.http());
    let baseline = proc.rss_kib();

    let pad = "p".repeat(300);
    let batches = 120;
    let per_batch = 500;
    let mut peak = 0;
    for b in 0..batches {
        let mut text = String::new();
        for i in 0..per_batch {
            text.push_str(&format!("line {b}-{i} {pad}\n"));
        }
        append(&log, text.as_bytes());
        let got = healthy.messages_through(&format!("line {b}-{} {pad}", per_batch - 1), SOON);
        let want: Vec<String> = (0..per_batch)
            .map(|i| format!("line {b}-{i} {pad}"))
            .collect();
        assert!(
            got == want,
            "batch {b}: healthy client got {} lines",
            got.len()
        );
        peak = peak.max(proc.rss_kib());
    }
    let status = s.status("app");
    let dropped = status["delivery"]["dropped_entries"].as_u64().unwrap();
    eprintln!(
        "dead readers: baseline {baseline} KiB, peak {peak} KiB, dropped {dropped}, \
         written {} MiB",
        batches * per_batch * (pad.len() + 12) / (1 << 20)
    );
    assert!(peak < 64 * 1024, "RSS reached {peak} KiB");
    assert_eq!(dropped, 0, "nothing is lost while it is on disk: {status}");
    assert_eq!(
        status["delivery"]["catching_up_clients"], 100,
        "the dead readers are served from the file: {status}"
    );
    assert_eq!(status["delivery"]["sse_clients"], 101);
    drop(dead);
    s.assert_serving();
}
