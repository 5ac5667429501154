//! Log rotation under a concurrently writing thread, with exact line accounting.
//!
//! A writer thread appends numbered lines (`rot 000123`) one `write` at a time, staying at
//! most [`AHEAD`] lines ahead of what a TCP client has received, while the test rotates
//! the file underneath it. Every line the spec promises must arrive exactly once, and the
//! rotation notice exactly once.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// How far the writer may run ahead of the client.
const AHEAD: usize = 2_000;
/// Lines written after the rotation.
const AFTER: usize = 1_500;
/// Lines the client must have before the test rotates.
const BEFORE: usize = 500;
/// A writer that never sees its rotation signal stops here.
const CAP: usize = 200_000;

#[derive(Default)]
struct Ctl {
    written: AtomicUsize,
    /// The test asks the writer to stop between two lines...
    pause: AtomicBool,
    /// ...and the writer says it has.
    paused: AtomicBool,
    /// Rotate now (what that means depends on [`Mode`]).
    rotate: AtomicBool,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// On `rotate`: open the path again (after the test renamed it), like a reopen on SIGHUP.
    Reopen,
    /// On `rotate`: delete the file and create it again.
    DeleteRecreate,
    /// No rotation of its own; the test truncates while the writer is paused.
    Pausable,
}

fn line(i: usize) -> String {
    format!("rot {i:06}")
}

/// Starts the writer; it returns (lines written, index of the first line after the switch).
fn spawn_writer(
    log: PathBuf,
    ctl: Arc<Ctl>,
    delivered: impl Fn() -> usize + Send + 'static,
    mode: Mode,
) -> JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let mut f = open_append(&log);
        let mut switched = None;
        let mut i = 0;
        while i < CAP {
            if ctl.pause.load(Ordering::Acquire) {
                ctl.paused.store(true, Ordering::Release);
                let resumed = wait_until(TIMEOUT, || !ctl.pause.load(Ordering::Acquire));
                assert!(resumed, "writer paused for too long");
                ctl.paused.store(false, Ordering::Release);
                switched = Some(i);
            }
            if switched.is_none() && ctl.rotate.load(Ordering::Acquire) {
                match mode {
                    Mode::Reopen => f = open_append(&log),
                    Mode::DeleteRecreate => {
                        fs::remove_file(&log).unwrap();
                        // The old descriptor stays open until the new file exists, so the
                        // new file cannot reuse the old inode number.
                        let old = std::mem::replace(&mut f, open_append(&log));
                        drop(old);
                    }
                    Mode::Pausable => {}
                }
                switched = Some(i);
            }
            if switched.is_some_and(|s| i >= s + AFTER) {
                break;
            }
            let caught_up = wait_until(TIMEOUT, || i < delivered() + AHEAD);
            assert!(caught_up, "client stopped receiving at {}", delivered());
            f.write_all(format!("{}\n", line(i)).as_bytes()).unwrap();
            i += 1;
            ctl.written.store(i, Ordering::Release);
        }
        (i, switched.expect("the writer was never told to rotate"))
    })
}

/// A server tailing `$DIR/*.log`, an empty `app.log`, and a TCP client reading it.
fn setup() -> (Server, TcpCollector) {
    let server = Server::start(&one_stream(&format!("{HTTP}{TCP}buffer_size = 100000\n")));
    append(&server.path("app.log"), "");
    let client = TcpLineClient::connect(server.tcp_port("app"));
    server.wait_tcp_clients("app", 1);
    (server, TcpCollector::start(client))
}

/// The line number of an entry from the writer.
fn number(v: &Value) -> usize {
    let m = v["message"].as_str().unwrap();
    m.strip_prefix("rot ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected entry {v}"))
}

/// Waits for `total` lines plus one notice, then checks nothing else was produced.
fn collect_all(server: &Server, collector: &TcpCollector, total: usize) -> Vec<Value> {
    let arrived = collector.wait_for(total + 1, TIMEOUT);
    let got = collector.snapshot();
    let notices: Vec<(usize, &Value)> = got
        .iter()
        .enumerate()
        .filter(|(_, v)| is_rotation(v))
        .map(|(k, v)| (k, &v["message"]))
        .collect();
    assert!(
        arrived,
        "{} of {} entries arrived; notices {notices:?}; last: {:?}",
        got.len(),
        total + 1,
        got.last()
    );
    let status = server.status("app");
    assert_eq!(
        status["monitor"]["total_entries"],
        total as u64 + 1,
        "{total} lines and one notice expected; notices {notices:?}; status {status:#}"
    );
    assert_eq!(got.len(), total + 1, "notices {notices:?}");
    got
}

fn assert_rotation_notice(v: &Value, reason: &str) {
    assert_eq!(v["level"], "INFO", "{v}");
    assert_eq!(v["source"], "app.log", "{v}");
    assert_eq!(
        v["message"],
        format!("Log rotation detected (#1): {reason}"),
        "{v}"
    );
    let time = v["time"].as_str().unwrap();
    assert!(is_rfc3339_utc(time, 6), "{time}");
}

/// The entries' messages without the notice at `notice`, which must be one.
fn lines_around(got: &[Value], notice: usize, reason: &str) -> Vec<String> {
    assert_rotation_notice(&got[notice], reason);
    got.iter()
        .enumerate()
        .filter(|&(k, _)| k != notice)
        .map(|(_, v)| v["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn rename_then_reopen_reads_the_old_file_to_its_end_then_the_new_one() {
    let (server, collector) = setup();
    let log = server.path("app.log");
    let ctl = Arc::new(Ctl::default());
    let writer = spawn_writer(log.clone(), ctl.clone(), collector.counter(), Mode::Reopen);
    assert!(collector.wait_for(BEFORE, TIMEOUT));
    fs::rename(&log, server.path("app.log.1")).unwrap();
    // The writer keeps appending to the renamed file for a while, as a real one does
    // until it reopens: those lines must not be lost either.
    let at_rename = ctl.written.load(Ordering::Acquire);
    assert!(wait_until(TIMEOUT, || ctl.written.load(Ordering::Acquire)
        >= at_rename + 300));
    ctl.rotate.store(true, Ordering::Release);
    let (total, switched) = writer.join().expect("writer");
    let got = collect_all(&server, &collector, total);
    // The new file appears only after the last line of the old one was written, so the
    // old file read to its end, then the new one from 0, is one exact sequence.
    let lines = lines_around(&got, switched, "inode change");
    let want: Vec<String> = (0..total).map(line).collect();
    assert_same_seq("lines around a rename", &lines, &want);
    let s = server.status("app");
    assert_eq!(s["monitor"]["watchers"][0]["rotations"], 1, "{s:#}");
}

/// logrotate's `create`: the new file exists (empty) before the writer reopens, so the
/// lines it still appends to the renamed file come through the retired descriptor.
#[test]
fn rename_with_create_keeps_reading_the_old_descriptor_until_the_writer_reopens() {
    let (server, collector) = setup();
    let log = server.path("app.log");
    let ctl = Arc::new(Ctl::default());
    let writer = spawn_writer(log.clone(), ctl.clone(), collector.counter(), Mode::Reopen);
    assert!(collector.wait_for(BEFORE, TIMEOUT));
    fs::rename(&log, server.path("app.log.1")).unwrap();
    File::create(&log).unwrap();
    let noticed = wait_until(TIMEOUT, || collector.count_where(is_rotation) > 0);
    assert!(noticed, "no rotation notice");
    let at_notice = ctl.written.load(Ordering::Acquire);
    assert!(wait_until(TIMEOUT, || ctl.written.load(Ordering::Acquire)
        >= at_notice + 300));
    ctl.rotate.store(true, Ordering::Release);
    let (total, switched) = writer.join().expect("writer");
    assert!(at_notice + 300 <= switched);
    let got = collect_all(&server, &collector, total);

    let notices: Vec<usize> = (0..got.len()).filter(|&k| is_rotation(&got[k])).collect();
    assert_eq!(notices.len(), 1, "rotation notices at {notices:?}");
    assert_rotation_notice(&got[notices[0]], "inode change");
    let numbers: Vec<(usize, usize)> = got
        .iter()
        .enumerate()
        .filter(|(_, v)| !is_rotation(v))
        .map(|(k, v)| (k, number(v)))
        .collect();
    let mut sorted: Vec<usize> = numbers.iter().map(|&(_, n)| n).collect();
    sorted.sort_unstable();
    let want: Vec<usize> = (0..total).collect();
    assert_same_seq("every line exactly once", &sorted, &want);
    // Each file's lines in order; the new file's only after the notice.
    let old: Vec<usize> = numbers
        .iter()
        .map(|&(_, n)| n)
        .filter(|&n| n < switched)
        .collect();
    assert_same_seq(
        "old file in order",
        &old,
        &(0..switched).collect::<Vec<_>>(),
    );
    let new: Vec<(usize, usize)> = numbers
        .iter()
        .copied()
        .filter(|&(_, n)| n >= switched)
        .collect();
    let new_numbers: Vec<usize> = new.iter().map(|&(_, n)| n).collect();
    assert_same_seq(
        "new file in order",
        &new_numbers,
        &(switched..total).collect::<Vec<_>>(),
    );
    assert!(
        new.first().is_some_and(|&(k, _)| k > notices[0]),
        "a line of the new file came before the notice"
    );
}

#[test]
fn delete_and_recreate_rotation_reads_the_old_file_to_its_end_then_the_new_one() {
    let (server, collector) = setup();
    let log = server.path("app.log");
    let ctl = Arc::new(Ctl::default());
    let writer = spawn_writer(log, ctl.clone(), collector.counter(), Mode::DeleteRecreate);
    assert!(collector.wait_for(BEFORE, TIMEOUT));
    ctl.rotate.store(true, Ordering::Release);
    let (total, switched) = writer.join().expect("writer");
    let got = collect_all(&server, &collector, total);
    // Everything in order, with the notice exactly between the two files.
    let lines = lines_around(&got, switched, "inode change");
    let want: Vec<String> = (0..total).map(line).collect();
    assert_same_seq("lines around a delete", &lines, &want);
}

/// Copytruncate (`copy` = true) or plain truncation. The lines a writer appends between
/// the copy and the truncation, or before logwisp has read them, are gone with the
/// truncated bytes, and a writer that refills the file past the old position before the
/// next check hides the truncation itself; so the writer pauses from before the copy
/// until the notice is out, and the accounting is exact.
fn truncation_case(copy: bool) {
    let (server, collector) = setup();
    let log = server.path("app.log");
    let ctl = Arc::new(Ctl::default());
    let writer = spawn_writer(
        log.clone(),
        ctl.clone(),
        collector.counter(),
        Mode::Pausable,
    );
    assert!(collector.wait_for(BEFORE, TIMEOUT));
    ctl.pause.store(true, Ordering::Release);
    assert!(wait_until(TIMEOUT, || ctl.paused.load(Ordering::Acquire)));
    let before = ctl.written.load(Ordering::Acquire);
    assert!(
        collector.wait_for(before, TIMEOUT),
        "only {} of {before} lines arrived before the truncation",
        collector.count()
    );
    if copy {
        fs::copy(&log, server.path("app.log.1")).unwrap();
    }
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert!(
        collector.wait_for(before + 1, TIMEOUT),
        "no rotation notice"
    );
    ctl.pause.store(false, Ordering::Release);
    let (total, switched) = writer.join().expect("writer");
    assert_eq!(switched, before);
    let got = collect_all(&server, &collector, total);
    let lines = lines_around(&got, before, "size decrease");
    let want: Vec<String> = (0..total).map(line).collect();
    assert_same_seq("lines around a truncation", &lines, &want);
    if copy {
        let copied = fs::read_to_string(server.path("app.log.1")).unwrap();
        assert_eq!(copied.lines().count(), before);
    }
}

#[test]
fn copytruncate_rotation_is_a_size_decrease_and_loses_no_line() {
    truncation_case(true);
}

#[test]
fn truncate_rotation_is_a_size_decrease_and_loses_no_line() {
    truncation_case(false);
}

#[test]
fn rename_rotation_notices_are_numbered() {
    let server = Server::start(&one_stream(HTTP));
    let log = server.path("app.log");
    append(&log, "");
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    for round in 1..=3 {
        append(&log, &format!("before {round}\n"));
        assert_eq!(c.next_message(), format!("before {round}"));
        fs::rename(&log, server.path(&format!("app.log.{round}"))).unwrap();
        append(&log, &format!("after {round}\n"));
        let (_, notice) = c.next_entry();
        assert_eq!(
            notice["message"],
            format!("Log rotation detected (#{round}): inode change")
        );
        assert_eq!(c.next_message(), format!("after {round}"));
    }
}

/// A file deleted, seen gone, then created again and written to at once: one rotation,
/// an inode change, each time (a stat taken before the new file was opened must not make
/// the writes that followed look like a modification-time reset).
#[test]
fn delete_then_later_recreate_is_one_inode_change_each_time() {
    const ROUNDS: usize = 20;
    const LINES: u32 = 2_000;
    let (server, collector) = setup();
    let log = server.path("app.log");
    let is_line = |v: &Value| !is_rotation(v);
    let mut written = 0;
    for round in 1..=ROUNDS {
        // A steady producer: one line every 10 µs for 20 ms, starting as soon as the file
        // exists, so logwisp finds the new file while it is being written.
        let mut f = open_append(&log);
        let start = Instant::now();
        for k in 0..LINES {
            while start.elapsed() < Duration::from_micros(10) * k {
                std::hint::spin_loop();
            }
            f.write_all(format!("{}\n", line(written)).as_bytes())
                .unwrap();
            written += 1;
        }
        let delivered = wait_until(TIMEOUT, || collector.count_where(is_line) == written);
        assert!(delivered, "round {round}: lines missing");
        fs::remove_file(&log).unwrap();
        drop(f);
        server.wait_status("app", "the deleted file to be let go", |s| {
            s["monitor"]["watchers"][0]["state"] == "waiting"
        });
    }
    let mut f = open_append(&log);
    f.write_all(format!("{}\n", line(written)).as_bytes())
        .unwrap();
    written += 1;
    assert!(wait_until(TIMEOUT, || {
        collector.count_where(is_line) == written
    }));
    let notices: Vec<String> = collector
        .snapshot()
        .iter()
        .filter(|v| is_rotation(v))
        .map(|v| v["message"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = (1..=ROUNDS)
        .map(|n| format!("Log rotation detected (#{n}): inode change"))
        .collect();
    assert_eq!(notices, want);
    let lines: Vec<String> = collector
        .snapshot()
        .iter()
        .filter(|v| is_line(v))
        .map(|v| v["message"].as_str().unwrap().to_string())
        .collect();
    assert_same_seq("lines", &lines, &(0..written).map(line).collect::<Vec<_>>());
}
