//! Configuration reload (SPEC §10): SIGHUP applies a new config to the running service.
//! Streams that did not change lose and repeat nothing, even under load; added streams
//! serve; removed streams say `stream_removed`; an invalid file keeps the running config;
//! a changed port is bound again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::util::*;

fn stream(name: &str, file: &str, servers: &str) -> String {
    format!(
        "[[streams]]\nname = \"{name}\"\n[streams.monitor]\n\
         targets = [{{ path = \"$DIR/{file}\", is_file = true }}]\n{servers}"
    )
}

#[test]
fn reload_keeps_unchanged_streams_whole_and_applies_the_rest() {
    let keep = stream("keep", "keep.log", HTTP);
    let gone = stream("gone", "gone.log", HTTP);
    let mut server = Server::start(&format!("{keep}{gone}"));
    append(&server.path("keep.log"), "");
    let mut kept = SseClient::connect(server.http_port("keep"), "/stream", &[]);
    kept.skip_connected();
    let mut removed = SseClient::connect(server.http_port("gone"), "/stream", &[]);
    removed.skip_connected();
    server.wait_status("keep", "the client of `keep`", |s| {
        s["delivery"]["sse_clients"] == 1
    });

    // A writer keeps appending to `keep` through the reload.
    let log = server.path("keep.log");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) || n < 2000 {
                append(&log, &numbered("line", n..n + 50));
                n += 50;
                std::thread::yield_now();
            }
            n
        })
    };
    let added = stream("added", "added.log", HTTP);
    server.reload_with(&format!("{keep}{added}"));
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();

    // The removed stream's client is told, after what it was owed.
    let bye = loop {
        let e = removed.next_event();
        if e.event.is_some() {
            break e;
        }
    };
    assert_eq!(bye.event.as_deref(), Some("disconnect"), "{:?}", bye.raw);
    assert_eq!(bye.data.as_deref(), Some("{\"reason\":\"stream_removed\"}"));
    removed.expect_closed();

    // The kept stream lost and repeated nothing.
    let got: Vec<String> = (0..written).map(|_| kept.next_message()).collect();
    let want: Vec<String> = numbered("line", 0..written)
        .lines()
        .map(str::to_string)
        .collect();
    assert_same_seq("kept stream across the reload", &got, &want);

    // The added stream serves.
    let mut new = SseClient::connect(server.http_port("added"), "/stream", &[]);
    new.skip_connected();
    append(&server.path("added.log"), "hello from the new stream\n");
    assert_eq!(new.next_message(), "hello from the new stream");
    let r = http_get(server.http_port("added"), "/status");
    assert_eq!(r.json()["stream"], "added");
}

#[test]
fn an_invalid_config_is_reported_and_the_running_one_kept() {
    let keep = stream("keep", "keep.log", HTTP);
    let mut server = Server::start(&keep);
    append(&server.path("keep.log"), "");
    let mut c = SseClient::connect(server.http_port("keep"), "/stream", &[]);
    c.skip_connected();
    server.reload_with(&format!("{keep}\nbogus_key = 1\n"));
    assert!(
        server.stderr().contains("keeping the running config"),
        "{}",
        server.stderr()
    );
    assert!(server.stderr().contains("bogus_key"), "{}", server.stderr());
    append(&server.path("keep.log"), "still served\n");
    assert_eq!(c.next_message(), "still served");
}

#[test]
fn a_changed_port_is_bound_again_and_clients_of_other_servers_stay() {
    let first = stream("app", "app.log", &format!("{HTTP}{TCP}"));
    let mut server = Server::start(&first);
    append(&server.path("app.log"), "");
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    let old_tcp = server.tcp_port("app");
    let port = free_port();
    let second = first.replacen(
        "[streams.tcpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = 0",
        &format!("[streams.tcpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = {port}"),
        1,
    );
    assert_ne!(first, second);
    server.reload_with(&second);
    assert_eq!(server.tcp_port("app"), port);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", old_tcp)).is_err(),
        "the old TCP port is closed"
    );
    let mut t = TcpLineClient::connect(port);
    server.wait_tcp_clients("app", 1);
    append(&server.path("app.log"), "after the rebind\n");
    assert_eq!(t.next_message(), "after the rebind");
    assert_eq!(c.next_message(), "after the rebind");
}

#[test]
fn config_auto_reload_applies_a_changed_file_without_a_signal() {
    let keep = stream("keep", "keep.log", HTTP);
    let mut server = Server::start(&format!("config_auto_reload = true\n{keep}"));
    let added = stream("added", "added.log", HTTP);
    let toml = format!("config_auto_reload = true\n{keep}{added}")
        .replace("$DIR", &server.dir.path().display().to_string());
    // Written the way editors do: a new file renamed over the old one.
    let tmp = server.dir.join("logwisp.toml.new");
    std::fs::write(&tmp, toml).unwrap();
    std::fs::rename(&tmp, server.dir.join("logwisp.toml")).unwrap();
    assert!(
        wait_until(TIMEOUT, || server.stderr().contains("logwisp: reloaded")),
        "{}",
        server.stderr()
    );
    server.reparse_ports();
    let r = http_get(server.http_port("added"), "/status");
    assert_eq!(r.json()["stream"], "added");
}

#[test]
fn logging_goes_where_configured_at_its_level_and_format() {
    let dir = TempDir::new();
    let log = dir.join("lw.log");
    let toml = format!(
        "[logging]\nlevel = \"warn\"\nformat = \"json\"\noutput = \"file\"\nfile = \"{}\"\nstats_interval_seconds = 1\n{}",
        log.display(),
        one_stream(HTTP)
    );
    let mut server = Server::start_in(dir, &toml, &[]);
    // A FIFO at a watched name is a warning.
    let fifo = server.path("pipe.log");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let line = wait_for_line(&log, "FIFO");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "warn");
    assert_eq!(v["scope"], "app");
    assert!(is_rfc3339_utc(v["time"].as_str().unwrap(), 6), "{line}");
    // The console summary comes every second on stdout.
    assert!(wait_until(TIMEOUT, || server
        .stdout()
        .contains("Active streams: 1")));
    // Info is below the level: shutting down is not logged; nothing goes to stderr.
    server.signal(libc::SIGTERM);
    server.wait_exit(TIMEOUT).expect("exit");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("shutting down"), "{text}");
    assert!(server.stderr().is_empty(), "{}", server.stderr());
}

/// The first line of `path` containing `needle`, once it is there.
fn wait_for_line(path: &std::path::Path, needle: &str) -> String {
    let mut found = None;
    wait_until(TIMEOUT, || {
        found = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.lines().find(|l| l.contains(needle)).map(str::to_string));
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no {needle:?} in {}", path.display()))
}

/// A reload that restarts a stream's tailer (its monitor settings changed) keeps what
/// the stream sent findable: a client resuming from before the reload gets every entry
/// from the files, in order, and nothing is called lost.
#[test]
fn a_restarted_tailer_still_serves_a_resume_from_before_the_reload_from_disk() {
    let with_interval = |ms: u64| {
        format!(
            "[[streams]]\nname = \"app\"\n[streams.monitor]\ncheck_interval_ms = {ms}\n\
             targets = [{{ path = \"$DIR/app.log\", is_file = true }}]\n\
             {HTTP}buffer_size = 2\n"
        )
    };
    let mut server = Server::start(&with_interval(1000));
    let log = server.path("app.log");
    append(&log, "");
    let first = server.next_id("app");
    append(&log, &numbered("l", 0..5));
    server.wait_status("app", "five entries", |s| {
        s["monitor"]["total_entries"] == 5
    });
    server.reload_with(&with_interval(500));
    append(&log, "after\n");
    server.wait_status("app", "six entries", |s| s["monitor"]["total_entries"] == 6);

    let mut sse = SseClient::connect(
        server.http_port("app"),
        "/stream",
        &[&format!("Last-Event-ID: {first}")],
    );
    sse.skip_connected();
    let mut got = Vec::new();
    while got.len() < 5 {
        let e = sse.next_event();
        assert_ne!(
            e.event.as_deref(),
            Some("dropped"),
            "nothing is lost: {:?}",
            e.raw
        );
        if e.is_entry() {
            got.push(e.json()["message"].as_str().unwrap().to_string());
        }
    }
    let want: Vec<String> = (1..5)
        .map(|i| format!("l {i:05}"))
        .chain(["after".to_string()])
        .collect();
    assert_eq!(got, want);
}
