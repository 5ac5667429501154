//! Hostile file systems: permissions, vanishing directories, a directory where a file
//! was, binary data, and lines far past `max_line_bytes` (SPEC §4).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

const MIB: usize = 1024 * 1024;

fn watcher<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["monitor"]["watchers"]
        .as_array()?
        .iter()
        .find(|w| w["path"].as_str().is_some_and(|p| p.ends_with(name)))
}

fn stderr_lines_with(s: &Server, needle: &str) -> usize {
    s.stderr().lines().filter(|l| l.contains(needle)).count()
}

/// Waits for the watcher of `name` to report an error containing `needle`.
fn wait_watcher_error(s: &Server, name: &str, needle: &str) -> String {
    wait_for(
        SOON,
        &format!("{name} to report {needle:?} in /status"),
        || {
            let st = s.status("app");
            let err = watcher(&st, name)?["last_error"].as_str()?.to_string();
            err.contains(needle).then_some(err)
        },
    )
}

/// Over ten check intervals, the permission problem has been reported exactly
/// `episodes` times in all: once per episode, not at every retry nor twice in other words.
fn assert_reported_once(s: &Server, episodes: usize) {
    // Only the file's reports: an unwritable state dir may be reported too.
    let reports = || {
        s.stderr()
            .lines()
            .filter(|l| l.contains("ermission denied") && l.contains("app.log"))
            .count()
    };
    hold_for(Duration::from_secs(1), || {
        (reports() > episodes).then(|| format!("reported more than once:\n{}", s.stderr()))
    });
    assert_eq!(reports(), episodes, "reports so far:\n{}", s.stderr());
}

/// A file that cannot be read is reported (once per episode, not at every retry), shown
/// in /status, retried, and read without loss once it can be. Tests run as root, where
/// chmod does not stop reads, so then logwisp runs as `nobody`.
#[test]
fn unreadable_file_is_reported_retried_and_read_when_readable() {
    let dir = TempDir::new();
    let log = dir.join("app.log");
    append(&log, b"old content\n");
    chmod(&log, 0o000);
    let conf = Conf::file(&log);
    let how = if is_root() {
        eprintln!("note: running as root; logwisp runs as uid 65534 so chmod 000 applies");
        chmod(dir.path(), 0o755);
        Launch::as_user(65534, 65534)
    } else {
        Launch::default()
    };
    let s = Server::launch(dir, &conf.toml(), how);
    wait_watcher_error(&s, "app.log", "ermission denied");
    assert_reported_once(&s, 1);
    let mut sse = SseClient::subscribe(s.http());
    append(&log, b"written while unreadable\n");
    chmod(&log, 0o644);
    let got = sse.messages_through("written while unreadable", SOON);
    assert_eq!(
        got,
        ["written while unreadable"],
        "nothing lost, nothing replayed"
    );
    wait_for(SOON, "the error to clear", || {
        let st = s.status("app");
        watcher(&st, "app.log")?["last_error"]
            .is_null()
            .then_some(())
    });

    // Turning unreadable while open changes nothing: the descriptor is already held.
    chmod(&log, 0o000);
    append(&log, b"written while open but mode 000\n");
    sse.messages_through("written while open but mode 000", SOON);
    chmod(&log, 0o644);

    // Rotated to a file that cannot be read: reported again, read from 0 when it can be.
    let staged = log.with_file_name("staged");
    append(&staged, b"hidden 1\n");
    chmod(&staged, 0o000);
    std::fs::rename(&log, log.with_file_name("app.log.1")).unwrap();
    std::fs::rename(&staged, &log).unwrap();
    wait_watcher_error(&s, "app.log", "ermission denied");
    assert_reported_once(&s, 2);
    chmod(&log, 0o644);
    let got = sse.messages_through("hidden 1", SOON);
    assert_eq!(
        got,
        ["Log rotation detected (#1): inode change", "hidden 1"],
        "{}",
        s.stderr()
    );
    eprintln!("unreadable: stderr was\n{}", s.stderr());
    s.assert_serving();
}

/// A watched directory removed and recreated: files in the new one are found by the
/// periodic check and read from their beginning.
#[test]
fn watched_directory_removed_and_recreated() {
    let dir = TempDir::new();
    let logs = dir.join("logs");
    std::fs::create_dir(&logs).unwrap();
    append(&logs.join("a.log"), b"");
    let conf = Conf::dir(&logs);
    let s = Server::start_in(dir, &conf.toml(), &[]);
    let mut sse = SseClient::subscribe(s.http());
    append(&logs.join("a.log"), b"before removal\n");
    sse.messages_through("before removal", SOON);

    std::fs::remove_dir_all(&logs).unwrap();
    wait_for(SOON, "the removal to be noticed", || {
        s.stderr().contains("was removed").then_some(())
    });
    std::fs::create_dir(&logs).unwrap();
    append(&logs.join("new.log"), b"first in the new directory\n");
    let t = Instant::now();
    let got = sse.messages_through("first in the new directory", Duration::from_secs(2));
    eprintln!(
        "dirgone: line in the recreated directory after {:?}",
        t.elapsed()
    );
    assert_eq!(got, ["first in the new directory"]);
    // And the new directory is watched again: later writes arrive too.
    append(&logs.join("new.log"), b"second\n");
    append(&logs.join("b.log"), b"third\n");
    let mut got = sse.messages_through("second", SOON);
    if !got.contains(&"third".to_string()) {
        got.extend(sse.messages_through("third", SOON));
    }
    got.sort();
    assert_eq!(got, ["second", "third"]);
    s.assert_serving();
}

/// A tailed file replaced by a directory: reported, shown in /status, survived; a regular
/// file at the path later is read again.
#[test]
fn target_file_replaced_by_a_directory() {
    let dir = TempDir::new();
    let log = dir.join("app.log");
    append(&log, b"");
    let conf = Conf::file(&log);
    let s = Server::start_in(dir, &conf.toml(), &[]);
    let mut sse = SseClient::subscribe(s.http());
    append(&log, b"as a file\n");
    sse.messages_through("as a file", SOON);

    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    let err = wait_watcher_error(&s, "app.log", "not a regular file");
    wait_for(SOON, "a report on stderr", || {
        s.stderr().contains(&err).then_some(())
    });
    hold_for(Duration::from_millis(500), || {
        let n = stderr_lines_with(&s, "not a regular file");
        (n > 1).then(|| format!("reported {n} times:\n{}", s.stderr()))
    });
    s.assert_serving();

    std::fs::remove_dir(&log).unwrap();
    append(&log, b"a file again\n");
    let got = sse.messages_through("a file again", SOON);
    assert_eq!(got.last().unwrap(), "a file again");
    assert!(got.len() <= 2, "{got:?}");
    wait_for(SOON, "the error to clear", || {
        let st = s.status("app");
        watcher(&st, "app.log")?["last_error"]
            .is_null()
            .then_some(())
    });
    s.assert_serving();
}

/// Invalid UTF-8 and NULs become U+FFFD and \u0000 in valid JSON, on SSE and TCP.
#[test]
fn binary_data_becomes_valid_json() {
    let dir = TempDir::new();
    let log = dir.join("app.log");
    append(&log, b"");
    let conf = Conf::dir(dir.path()).with_tcp();
    let s = Server::start_in(dir, &conf.toml(), &[]);
    let mut sse = SseClient::subscribe(s.http());
    let mut tcp = HttpConn::connect(s.tcp());
    // The TCP client is registered once /status counts it.
    wait_for(SOON, "the TCP client", || {
        (s.status("app")["delivery"]["tcp_clients"] == 1).then_some(())
    });

    let lines: &[(&[u8], &str)] = &[
        (
            b"bin \xff\xfe nul\x00 mid \xc3\x28 end",
            "bin \u{fffd}\u{fffd} nul\u{0} mid \u{fffd}( end",
        ),
        (b"\x00\x00\x00", "\u{0}\u{0}\u{0}"),
        (b"{\"msg\":\"a\xffb\"}", "{\"msg\":\"a\u{fffd}b\"}"),
        (
            b"ctl \x01\x1b[31m\x7f \xed\xa0\x80 \xf4\x90\x80\x80",
            "ctl \u{1}\u{1b}[31m\u{7f} \u{fffd}\u{fffd}\u{fffd} \u{fffd}\u{fffd}\u{fffd}\u{fffd}",
        ),
        (b"last", "last"),
    ];
    let mut data = Vec::new();
    for (raw, _) in lines {
        data.extend_from_slice(raw);
        data.push(b'\n');
    }
    append(&log, &data);

    let deadline = Instant::now() + SOON;
    for (raw, want) in lines {
        let ev = sse.next_before(deadline).expect("SSE event");
        assert_eq!(ev.message().as_deref(), Some(*want), "SSE for {raw:?}");
        if raw.contains(&0) {
            assert!(
                ev.data.as_deref().is_some_and(|d| d.contains("\\u0000")),
                "{:?}",
                ev.data
            );
        }
        let line = tcp.line(deadline).unwrap().expect("NDJSON line");
        let v: Value = serde_json::from_slice(&line).unwrap_or_else(|e| {
            panic!(
                "TCP line is not JSON ({e}): {}",
                String::from_utf8_lossy(&line)
            )
        });
        assert_eq!(v["message"], *want, "TCP for {raw:?}");
    }
    s.assert_serving();
}

fn write_repeated(path: &Path, byte: u8, total: usize) {
    let chunk = vec![byte; 4 * MIB];
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
}

/// A 100 MiB line with the default 1 MiB limit: cut, delivered, counted; the next line
/// arrives; memory stays near one line's worth.
#[test]
fn hundred_mib_line_is_cut_and_the_next_line_arrives() {
    let dir = TempDir::new();
    let log = dir.join("app.log");
    append(&log, b"");
    let conf = Conf::dir(dir.path());
    let s = Server::start_in(dir, &conf.toml(), &[]);
    let proc = s.proc();
    let mut sse = SseClient::subscribe(s.http());
    append(&log, b"warm up\n");
    sse.messages_through("warm up", SOON);
    let baseline = proc.peak_rss_kib();

    write_repeated(&log, b'x', 100 * MIB);
    append(&log, b"\nnext line\n");
    let deadline = Instant::now() + Duration::from_secs(30);
    let cut = sse.next_before(deadline).expect("the cut line");
    let message = cut.message().unwrap();
    assert_eq!(message.len(), MIB, "cut to max_line_bytes");
    assert!(message.bytes().all(|b| b == b'x'));
    let next = sse.next_before(deadline).expect("the next line");
    assert_eq!(next.message().as_deref(), Some("next line"));
    let status = s.status("app");
    assert_eq!(status["monitor"]["truncated_lines"], 1, "{status}");
    let peak = proc.peak_rss_kib();
    eprintln!("hugeline: baseline {baseline} KiB, peak {peak} KiB");
    let bound = baseline + 3 * 1024;
    assert!(
        peak < bound,
        "peak RSS {peak} KiB over {bound} KiB (baseline {baseline} + 3 x max_line_bytes)"
    );
    s.assert_serving();
}

/// A file growing by 1 GiB without a newline (about 10 s in a debug build): memory stays
/// within three lines' worth (`max_line_bytes`) of the baseline, and the tailer keeps up
/// and stays in sync for the line after.
#[test]
fn endless_line_keeps_memory_bounded() {
    let dir = TempDir::new();
    let log = dir.join("app.log");
    append(&log, b"");
    let conf = Conf::dir(dir.path()).monitor(&format!("max_line_bytes = {MIB}"));
    let s = Server::start_in(dir, &conf.toml(), &[]);
    let proc = s.proc();
    let mut sse = SseClient::subscribe(s.http());
    append(&log, b"warm up\n");
    sse.messages_through("warm up", SOON);
    let baseline = proc.peak_rss_kib();

    let total = 1024 * MIB;
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || write_repeated(&log, b'y', total))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let cut = sse.next_before(deadline).expect("the cut line");
    assert_eq!(cut.message().map(|m| m.len()), Some(MIB));
    writer.join().unwrap();
    append(&log, b"\nafter growth\n");
    let next = sse
        .next_before(deadline)
        .expect("the line after the growth");
    assert_eq!(next.message().as_deref(), Some("after growth"));
    let status = s.status("app");
    let w = watcher(&status, "app.log").unwrap();
    assert_eq!(w["position"], w["size"], "{w}");
    let peak = proc.peak_rss_kib();
    eprintln!("endless: baseline {baseline} KiB, peak {peak} KiB after {total} bytes");
    let bound = baseline + 3 * 1024;
    assert!(
        peak < bound,
        "peak RSS {peak} KiB over {bound} KiB (baseline {baseline} + 3 x max_line_bytes)"
    );
    s.assert_serving();
}

/// Another program writing into a watched directory without pause (its inotify events
/// never run out) starves nothing: lines of the tailed file still arrive promptly, and
/// SIGTERM still stops logwisp.
#[test]
fn a_directory_written_without_pause_starves_neither_clients_nor_signals() {
    let dir = TempDir::new();
    let log = dir.join("app.log");
    let noise = dir.join("noise.txt");
    append(&log, b"");
    let conf = Conf::dir(dir.path());
    let mut s = Server::start_in(dir, &conf.toml(), &[]);
    let mut sse = SseClient::subscribe(s.http());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Names never repeat, so the kernel cannot merge the events.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let stop = std::sync::Arc::clone(&stop);
            let noise = noise.with_extension(format!("{w}"));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let path = noise.with_extension(format!("{w}.{n}"));
                    std::fs::write(&path, b"x").unwrap();
                    std::fs::remove_file(&path).unwrap();
                    n += 1;
                }
            })
        })
        .collect();
    for i in 0..5 {
        append(&log, format!("line {i}\n").as_bytes());
        sse.messages_through(&format!("line {i}"), SOON);
    }
    s.signal(libc::SIGTERM);
    let exited = s.wait_exit(Duration::from_secs(10));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(
        exited.is_some(),
        "SIGTERM was handled while the directory kept changing"
    );
}
