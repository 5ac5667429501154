//! The tailer without a reactor: real files in a temp dir, polled by hand, entries
//! collected. inotify is not used here (every poll looks at everything), so these tests
//! pin down what the monitor decides from what it sees on disk.

use super::*;
use crate::config;
use std::io::Write;

#[derive(Default)]
struct Collect {
    messages: Vec<String>,
    starts: Vec<(u32, u64)>,
}

impl EntrySink for Collect {
    fn line(&mut self, src: SourceRef, start: u64, line: &[u8], _: &[u8], _: &Stamp) {
        self.messages
            .push(String::from_utf8_lossy(line).into_owned());
        self.starts.push((src.key, start));
    }

    fn notice(&mut self, _: &[u8], message: &str, _: &Stamp) {
        self.messages.push(message.to_string());
    }
}

struct NoWatch;

impl Watcher for NoWatch {
    fn watch_dir(&mut self, _dir: &Path, _target: usize) -> io::Result<u64> {
        Ok(1)
    }
    fn watch_file(&mut self, _file: &File, _source: usize) -> io::Result<u64> {
        Ok(2)
    }
    fn unwatch(&mut self, _token: u64, _owner: WatchOwner) {}
}

fn monitor_with(dir: &Path, pattern: &str, extra: &str, max_open: usize) -> Monitor {
    let text = format!(
        "[[streams]]\nname = \"t\"\n[streams.monitor]\n{extra}\ntargets = [{{ path = \"{}\", pattern = \"{pattern}\" }}]\n[streams.tcpserver]\nenabled = true\nport = 0\n",
        dir.display()
    );
    let cfg = config::parse(&text, "t", config::Overrides::default()).unwrap();
    Monitor::new(&cfg.streams[0], max_open)
}

fn monitor_for(dir: &Path, pattern: &str) -> Monitor {
    monitor_with(dir, pattern, "", 1000)
}

/// Looks at everything (as the periodic check would) and reads until nothing is left.
fn poll_all(m: &mut Monitor, now: u64) -> Vec<String> {
    poll_collect(m, now).messages
}

fn poll_collect(m: &mut Monitor, now: u64) -> Collect {
    let mut sink = Collect::default();
    let mut buf = vec![0u8; 4096];
    m.rescan_all();
    m.wake(now);
    loop {
        let mut budget = ReadBudget::new(1 << 20, 1 << 20);
        let more = m.poll(
            &mut NoWatch,
            now,
            &mut buf,
            &mut budget,
            Stamp::from_micros(0),
            &mut sink,
        );
        if !more {
            break;
        }
    }
    sink
}

fn start(m: &mut Monitor) {
    m.start(&mut NoWatch, 0, None);
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("logwisp-tail-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn existing_content_skipped_new_files_from_start() {
    let d = tempdir("start");
    append(&d.join("old.log"), "before 1\nbefore 2\npartial");
    let mut m = monitor_for(&d, "*.log");
    start(&mut m);
    assert_eq!(poll_all(&mut m, 1), Vec::<String>::new());
    append(&d.join("old.log"), " line\nafter\n");
    append(&d.join("new.log"), "fresh 1\n");
    let mut got = poll_all(&mut m, 2);
    got.sort();
    assert_eq!(got, ["after", "fresh 1", "partial line"]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn rename_rotation_reads_old_then_new() {
    let d = tempdir("rename");
    let log = d.join("app.log");
    append(&log, "");
    let mut m = monitor_for(&d, "*.log");
    start(&mut m);
    append(&log, "a1\n");
    assert_eq!(poll_all(&mut m, 1), ["a1"]);
    append(&log, "a2\n");
    std::fs::rename(&log, d.join("app.log.1")).unwrap();
    append(&d.join("app.log.1"), "a3 written to the old file\n");
    append(&log, "b1\n");
    let got = poll_all(&mut m, 2);
    assert_eq!(
        got,
        [
            "a2",
            "a3 written to the old file",
            "Log rotation detected (#1): inode change",
            "b1"
        ]
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn truncation_and_pattern_star_rename_do_not_duplicate() {
    let d = tempdir("trunc");
    let log = d.join("app.log");
    append(&log, "");
    let mut m = monitor_for(&d, "*");
    start(&mut m);
    append(&log, "one\ntwo\n");
    assert_eq!(poll_all(&mut m, 1), ["one", "two"]);
    std::fs::write(&log, "").unwrap();
    append(&log, "x\n");
    assert_eq!(
        poll_all(&mut m, 2),
        ["Log rotation detected (#1): size decrease", "x"]
    );
    // With pattern `*` the renamed file is itself a target: it must not be re-read.
    append(&log, "y\n");
    std::fs::rename(&log, d.join("app.log.1")).unwrap();
    append(&log, "z\n");
    let got = poll_all(&mut m, 3);
    assert_eq!(got.iter().filter(|l| *l == "y").count(), 1, "{got:?}");
    assert_eq!(got.iter().filter(|l| *l == "x").count(), 0, "{got:?}");
    assert!(got.contains(&"z".to_string()), "{got:?}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn deleted_file_is_read_then_dropped_and_recreation_is_a_rotation() {
    let d = tempdir("delete");
    let log = d.join("app.log");
    append(&log, "");
    let mut m = monitor_for(&d, "*.log");
    start(&mut m);
    append(&log, "last words\nno newline");
    std::fs::remove_file(&log).unwrap();
    assert_eq!(poll_all(&mut m, 1), ["last words"]);
    assert_eq!(
        m.sources.len(),
        1,
        "kept while its writer may still end the line"
    );
    let wait = m.rotate_wait_ms;
    assert_eq!(m.next_wakeup(), Some(1 + wait));
    assert_eq!(poll_all(&mut m, 1 + wait), ["no newline"]);
    assert_eq!(m.sources.len(), 0, "then let go");
    let t = 2 + wait;
    append(&log, "reborn\n");
    assert_eq!(
        poll_all(&mut m, t),
        ["Log rotation detected (#1): inode change", "reborn"]
    );
    // Its writer ends the half-written line through its descriptor after the delete.
    let mut writer = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writer.write_all(b"half").unwrap();
    std::fs::remove_file(&log).unwrap();
    assert_eq!(poll_all(&mut m, t + 1), Vec::<String>::new());
    assert_eq!(m.sources.len(), 1);
    writer.write_all(b" and the rest\n").unwrap();
    assert_eq!(poll_all(&mut m, t + 2), ["half and the rest"]);
    assert_eq!(m.sources.len(), 0, "its last line ended: let go at once");
    assert_eq!(m.names.len(), 1, "remembered for a while");
    m.sweep(t + 2 + FORGET_AFTER_MS);
    assert_eq!(m.names.len(), 0, "then forgotten");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_symlink_and_its_target_are_one_file() {
    let d = tempdir("symlink");
    append(&d.join("app-2024.log"), "old\n");
    std::os::unix::fs::symlink("app-2024.log", d.join("app.log")).unwrap();
    std::fs::hard_link(d.join("app-2024.log"), d.join("hard.log")).unwrap();
    let mut m = monitor_for(&d, "*.log");
    start(&mut m);
    append(&d.join("app.log"), "one\ntwo\n");
    assert_eq!(poll_all(&mut m, 1), ["one", "two"]);
    assert_eq!(m.sources.len(), 1);
    let s = m.sources.iter().next().unwrap().1;
    assert_ne!(
        &*s.display,
        b"\"app.log\"".as_slice(),
        "a real name, not the link"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn truncate_and_refill_past_the_old_size_is_read_from_the_start() {
    let d = tempdir("refill");
    let log = d.join("report.log");
    append(&log, "");
    let mut m = monitor_for(&d, "*.log");
    start(&mut m);
    append(&log, "first run 1\nfirst run 2\n");
    assert_eq!(poll_all(&mut m, 1), ["first run 1", "first run 2"]);
    // `cmd > report.log`: truncated, then one write longer than before.
    std::fs::write(&log, "second run 1\nsecond run 2\nsecond run 3\n").unwrap();
    assert_eq!(
        poll_all(&mut m, 2),
        [
            "Log rotation detected (#1): content replaced",
            "second run 1",
            "second run 2",
            "second run 3"
        ]
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_fifo_at_a_watched_name_is_skipped_without_blocking() {
    let d = tempdir("fifo");
    let fifo = d.join("pipe.log");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    append(&d.join("real.log"), "");
    let mut m = monitor_for(&d, "*.log");
    start(&mut m);
    append(&d.join("real.log"), "still read\n");
    assert_eq!(poll_all(&mut m, 1), ["still read"]);
    assert_eq!(m.counters.skipped_files, 1);
    assert_eq!(poll_all(&mut m, 2), Vec::<String>::new());
    let name = m
        .names
        .iter()
        .find(|(_, n)| &*n.base == "pipe.log")
        .unwrap()
        .1;
    assert!(name.last_error.as_deref().unwrap().contains("FIFO"));
    std::fs::remove_dir_all(&d).unwrap();
}

/// Issue 16, bug 1: a quiet file rotated in create mode; its writer appends to the old
/// descriptor a little later. The grace period counts from the rotation.
#[test]
fn a_quiet_file_is_read_after_its_rotation_for_the_grace_period() {
    let d = tempdir("quiet");
    let log = d.join("f.log");
    append(&log, "");
    let mut m = monitor_for(&d, "*.log");
    start(&mut m);
    append(&log, "a1\na2\na3\n");
    assert_eq!(poll_all(&mut m, 0), ["a1", "a2", "a3"]);
    // Quiet for 5.5 s, then rotated.
    std::fs::rename(&log, d.join("f.log.1")).unwrap();
    append(&log, "b1\n");
    assert_eq!(
        poll_all(&mut m, 5_500),
        ["Log rotation detected (#1): inode change", "b1"]
    );
    append(&d.join("f.log.1"), "a4\na5\n");
    assert_eq!(poll_all(&mut m, 5_800), ["a4", "a5"]);
    let wait = m.rotate_wait_ms;
    assert_eq!(m.next_wakeup(), Some(5_800 + wait));
    assert_eq!(poll_all(&mut m, 5_800 + wait), Vec::<String>::new());
    assert_eq!(m.next_wakeup(), None, "finished after its grace");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Issue 16, bug 2: a rotated file moved back onto its own path is continued, not re-read.
#[test]
fn a_rotated_file_moved_back_is_continued_not_read_again() {
    let d = tempdir("back");
    let log = d.join("f.log");
    append(&log, "");
    let mut m = monitor_for(&d, "*.log");
    start(&mut m);
    append(&log, "a1\na2\na3\n");
    assert_eq!(poll_all(&mut m, 0), ["a1", "a2", "a3"]);
    std::fs::rename(&log, d.join("f.log.1")).unwrap();
    append(&log, "b1\n");
    assert_eq!(
        poll_all(&mut m, 500),
        ["Log rotation detected (#1): inode change", "b1"]
    );
    std::fs::rename(d.join("f.log.1"), &log).unwrap();
    append(&log, "a4\na5\n");
    assert_eq!(poll_all(&mut m, 700), ["a4", "a5"]);
    append(&log, "a6\n");
    assert_eq!(poll_all(&mut m, 900), ["a6"]);
    std::fs::remove_dir_all(&d).unwrap();
}

/// Two idle files swap names through a temporary name: each is continued.
#[test]
fn swapped_names_continue_both_files() {
    let d = tempdir("swap");
    append(&d.join("f9.log"), "");
    append(&d.join("f10.log"), "");
    let mut m = monitor_for(&d, "*.log");
    start(&mut m);
    append(&d.join("f9.log"), "nine\n");
    append(&d.join("f10.log"), "ten\n");
    let mut got = poll_all(&mut m, 0);
    got.sort();
    assert_eq!(got, ["nine", "ten"]);
    std::fs::rename(d.join("f9.log"), d.join("tmp")).unwrap();
    std::fs::rename(d.join("f10.log"), d.join("f9.log")).unwrap();
    std::fs::rename(d.join("tmp"), d.join("f10.log")).unwrap();
    assert_eq!(poll_all(&mut m, 6_000), Vec::<String>::new());
    append(&d.join("f9.log"), "ten again\n");
    assert_eq!(poll_all(&mut m, 20_000), ["ten again"]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn more_files_than_descriptors_all_deliver() {
    let d = tempdir("budget");
    for i in 0..50 {
        append(&d.join(format!("f{i:02}.log")), "");
    }
    let mut m = monitor_with(&d, "*.log", "", 8);
    start(&mut m);
    assert!(m.open_files() <= 8, "{}", m.open_files());
    for i in 0..50 {
        append(&d.join(format!("f{i:02}.log")), &format!("line {i}\n"));
    }
    let got = poll_all(&mut m, 1);
    assert_eq!(got.len(), 50, "{got:?}");
    assert!(m.open_files() <= 8, "{}", m.open_files());
    for i in 0..50 {
        append(&d.join(format!("f{i:02}.log")), &format!("second {i}\n"));
    }
    assert_eq!(poll_all(&mut m, 2).len(), 50);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn lines_carry_their_file_offsets_and_replay_gives_them_again() {
    let d = tempdir("replay");
    let log = d.join("app.log");
    append(&log, "");
    let mut m = monitor_for(&d, "*.log");
    start(&mut m);
    append(&log, "alpha\n\nbeta\ngamma\n");
    let got = poll_collect(&mut m, 1);
    assert_eq!(got.messages, ["alpha", "beta", "gamma"]);
    let offsets: Vec<u64> = got.starts.iter().map(|s| s.1).collect();
    assert_eq!(offsets, [0, 7, 12]);
    let src = SourceRef {
        key: got.starts[0].0,
        epoch: 0,
    };
    let mut again = Vec::new();
    let mut buf = vec![0u8; 16];
    let r = m.replay(src, 7, &mut buf, false, &mut |line, _, start| {
        again.push((String::from_utf8_lossy(line).into_owned(), start));
        true
    });
    assert_eq!(
        r,
        Replay::Read {
            next: 18,
            eof: true
        }
    );
    assert_eq!(again, [("beta".to_string(), 7), ("gamma".to_string(), 12)]);
    let stale = SourceRef {
        key: src.key,
        epoch: 1,
    };
    assert_eq!(
        m.replay(stale, 0, &mut buf, false, &mut |_, _, _| true),
        Replay::Gone
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn checkpoints_resume_where_the_last_run_stopped() {
    let d = tempdir("resume");
    let log = d.join("app.log");
    append(&log, "");
    let mut m = monitor_for(&d, "*.log");
    start(&mut m);
    append(&log, "one\ntwo\npart");
    assert_eq!(poll_all(&mut m, 1), ["one", "two"]);
    let saved = m.checkpoints();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].offset, 8, "the start of the unfinished line");
    append(&log, "ial\nwhile down\n");
    let mut m = monitor_for(&d, "*.log");
    m.start(
        &mut NoWatch,
        0,
        Some(Resume {
            checkpoints: saved,
            saved_at: 0,
            ..Resume::default()
        }),
    );
    assert_eq!(poll_all(&mut m, 1), ["partial", "while down"]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_file_rotated_while_down_is_finished_from_its_checkpoint() {
    let d = tempdir("rotated-down");
    let log = d.join("app.log");
    append(&log, "");
    let mut m = monitor_for(&d, "*.log");
    start(&mut m);
    append(&log, "seen\n");
    assert_eq!(poll_all(&mut m, 1), ["seen"]);
    let saved = m.checkpoints();
    append(&log, "unseen before rotation\n");
    std::fs::rename(&log, d.join("app.log.1")).unwrap();
    append(&log, "new file\n");
    let mut m = monitor_for(&d, "*.log");
    m.start(
        &mut NoWatch,
        0,
        Some(Resume {
            checkpoints: saved,
            saved_at: 0,
            ..Resume::default()
        }),
    );
    let mut got = poll_all(&mut m, 1);
    got.sort();
    assert_eq!(got, ["new file", "unseen before rotation"]);
    std::fs::remove_dir_all(&d).unwrap();
}
