//! Tailing defects found from the outside, each as the exact sequence that shows it
//! (issue 16's two rotation bugs; issue 9, tailing items 1-4), through the real binary.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// A server on `$DIR/*.log` (with files already in `dir`) and a TCP client it has accepted.
fn start_with_client(dir: TempDir) -> (Server, TcpLineClient) {
    let server = Server::start_in(dir, &one_stream(&format!("{HTTP}{TCP}")), &[]);
    let client = TcpLineClient::connect(server.tcp_port("app"));
    server.wait_tcp_clients("app", 1);
    (server, client)
}

/// Reads `want.len()` entries and compares their messages with `want`, all at once, so a
/// failure shows everything that came (a shorter list: nothing more within [`TIMEOUT`]).
fn expect_messages(c: &mut TcpLineClient, want: &[&str]) {
    let mut got = Vec::new();
    while got.len() < want.len() {
        let Some(line) = c.next_line_within(TIMEOUT) else {
            break;
        };
        let v: Value = serde_json::from_str(&line).unwrap();
        got.push(v["message"].as_str().unwrap().to_string());
    }
    assert_eq!(got, want);
}

/// Issue 16, bug 1: the commonest production pattern. A log quiet for longer than the
/// retire grace is rotated by logrotate in `create` mode, and its writer adds a few lines
/// through its old descriptor before it reopens. SPEC §4: a rename rotation loses nothing.
#[test]
fn quiet_log_rotated_in_create_mode_delivers_old_descriptor_lines() {
    let (server, mut c) = start_with_client(TempDir::new());
    let log = server.path("f.log");
    let mut writer = open_append(&log);
    writer.write_all(b"a1\na2\na3\n").unwrap();
    expect_messages(&mut c, &["a1", "a2", "a3"]);
    // Quiet for longer than logwisp's retire grace (5 s): the point of the test.
    std::thread::sleep(Duration::from_millis(5_500));
    fs::rename(&log, server.path("f.log.1")).unwrap();
    append(&log, "b1\n");
    expect_messages(&mut c, &["Log rotation detected (#1): inode change", "b1"]);
    // The writer's last lines come a moment later, as in the issue.
    std::thread::sleep(Duration::from_millis(300));
    writer.write_all(b"a4\na5\n").unwrap();
    expect_messages(&mut c, &["a4", "a5"]);
    append(&log, "b2\n");
    expect_messages(&mut c, &["b2"]);
}

/// Issue 16, bug 2: a rotated file moved back onto its own path is the same file; it is
/// read on from where it was, never again from 0 (SPEC §4: one file is read once).
#[test]
fn rotated_log_moved_back_onto_its_path_is_read_on_not_again() {
    let (server, mut c) = start_with_client(TempDir::new());
    let log = server.path("f.log");
    let rotated = server.path("f.log.1");
    let mut writer = open_append(&log);
    writer.write_all(b"a1\na2\na3\n").unwrap();
    expect_messages(&mut c, &["a1", "a2", "a3"]);
    fs::rename(&log, &rotated).unwrap();
    append(&log, "b1\n");
    expect_messages(&mut c, &["Log rotation detected (#1): inode change", "b1"]);
    fs::rename(&rotated, &log).unwrap();
    writer.write_all(b"a4\na5\n").unwrap();
    // The path changed inode again, which SPEC §4 counts as a rotation; whether logwisp
    // says so for a file it already reads is not specified, so one notice is allowed.
    let first = c.next_message();
    let mut want = vec!["a4", "a5", "a6"];
    if first != "Log rotation detected (#2): inode change" {
        assert_eq!(first, "a4", "after the move back");
        want.remove(0);
    }
    writer.write_all(b"a6\n").unwrap();
    expect_messages(&mut c, &want);
}

/// Delete-style rotation (`rm app.log`, the writer reopens a moment later): a line the
/// writer had half written when its file was deleted arrives whole once the writer ends
/// it through the descriptor it still holds, never as a fragment. Then the deleted file
/// is let go, so its space is freed. (The model test's seed 87 showed such a fragment.)
#[test]
fn a_line_half_written_when_its_file_is_deleted_arrives_whole_then_the_file_is_let_go() {
    let (server, mut c) = start_with_client(TempDir::new());
    let log = server.path("f.log");
    let mut writer = open_append(&log);
    writer.write_all(b"a1\n").unwrap();
    expect_messages(&mut c, &["a1"]);
    writer.write_all(b"a2 first half,").unwrap();
    fs::remove_file(&log).unwrap();
    // A new file at the path: once its line is out, logwisp has seen the deletion.
    append(&log, "b1\n");
    let mut first = c.next_message();
    if first.starts_with("Log rotation detected") {
        first = c.next_message();
    }
    assert_eq!(first, "b1", "after the delete");
    writer.write_all(b" second half\na3\n").unwrap();
    expect_messages(&mut c, &["a2 first half, second half", "a3"]);
    drop(writer);
    append(&log, "b2\n");
    expect_messages(&mut c, &["b2"]);
    let fds = format!("/proc/{}/fd", server.pid());
    let holds_deleted = || {
        fs::read_dir(&fds).unwrap().flatten().any(|fd| {
            fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().ends_with("f.log (deleted)"))
        })
    };
    assert!(
        wait_until(TIMEOUT, || !holds_deleted()),
        "logwisp still holds the deleted f.log open"
    );
}

/// Issue 9, item 1: `app.log` and `app-2024.log` name one file (made by `link`), both
/// present at start and both matching `*.log`: each line arrives once.
fn one_file_two_names(link: fn(&Path, &Path) -> io::Result<()>) {
    let dir = TempDir::new();
    let target = dir.join("app-2024.log");
    append(&target, "before start\n");
    link(&target, &dir.join("app.log")).unwrap();
    let (_server, mut c) = start_with_client(dir);
    let mut writer = open_append(&target);
    for i in 1..=3 {
        writer.write_all(format!("line {i}\n").as_bytes()).unwrap();
    }
    expect_messages(&mut c, &["line 1", "line 2", "line 3"]);
    // Anything read twice would come before this.
    writer.write_all(b"line 4\n").unwrap();
    expect_messages(&mut c, &["line 4"]);
}

#[test]
fn symlink_and_its_target_both_matching_deliver_each_line_once() {
    one_file_two_names(|target, link| {
        std::os::unix::fs::symlink(target.file_name().unwrap(), link)
    });
}

#[test]
fn hard_links_both_matching_deliver_each_line_once() {
    one_file_two_names(|target, link| fs::hard_link(target, link));
}

/// Issue 9, item 2: `cmd > report.log` (`O_TRUNC`, then one write longer than the old
/// size): the size alone never shrank, but the content is new (SPEC §4, content identity),
/// so it is read from 0 after one rotation notice, with no piece of a line.
#[test]
fn truncate_and_refill_past_the_old_size_is_read_from_zero_after_one_notice() {
    let dir = TempDir::new();
    let report = dir.join("report.log");
    append(&report, "old 1\nold 2\n");
    let (server, mut c) = start_with_client(dir);
    append(&report, "old 3\nold 4\n");
    expect_messages(&mut c, &["old 3", "old 4"]);
    let new = numbered("new", 0..6);
    assert!(new.len() as u64 > fs::metadata(&report).unwrap().len());
    // Truncate and write are two syscalls; with logwisp stopped meanwhile, it cannot look
    // in between (where the shorter size would give the change away), as in the issue.
    server.freeze();
    let mut f = File::create(&report).unwrap();
    f.write_all(new.as_bytes()).unwrap();
    server.thaw();
    let notice = c.next_json();
    let message = notice["message"].as_str().unwrap();
    assert!(
        message.starts_with("Log rotation detected (#1): "),
        "expected the rotation notice, got {notice}"
    );
    assert_eq!(notice["level"], "INFO", "{notice}");
    assert_eq!(notice["source"], "report.log", "{notice}");
    let want: Vec<String> = new.lines().map(String::from).collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    expect_messages(&mut c, &want);
    append(&report, "after\n");
    expect_messages(&mut c, &["after"]);
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo: {}", io::Error::last_os_error());
}

/// Issue 9, item 3: a FIFO renamed into a watched name must not be opened in blocking mode
/// (which stops the reactor for good): the other files keep streaming, `/status` answers,
/// and the FIFO is reported once on stderr (SPEC §4).
#[test]
fn fifo_renamed_into_a_watched_name_blocks_nothing_and_is_reported_once() {
    let (server, mut c) = start_with_client(TempDir::new());
    let app = server.path("app.log");
    append(&app, "before\n");
    expect_messages(&mut c, &["before"]);
    let fifo = server.path("pipe.log");
    mkfifo(&server.path("pipe.tmp"));
    fs::rename(server.path("pipe.tmp"), &fifo).unwrap();
    append(&app, "after 0\n");
    expect_messages(&mut c, &["after 0"]);
    assert_eq!(server.status("app")["service"], "LogWisp");
    let mentions = || {
        server
            .stderr()
            .lines()
            .filter(|l| l.contains("pipe.log"))
            .count()
    };
    assert!(
        wait_until(TIMEOUT, || mentions() > 0),
        "the FIFO was never reported; stderr:\n{}",
        server.stderr()
    );
    // "Once" needs a window: many check intervals (20 ms) of activity in the directory.
    let window = Instant::now();
    let mut i = 1;
    while window.elapsed() < Duration::from_millis(600) {
        append(&app, &format!("after {i}\n"));
        expect_messages(&mut c, &[&format!("after {i}")]);
        i += 1;
    }
    assert_eq!(mentions(), 1, "stderr:\n{}", server.stderr());
    assert_eq!(server.status("app")["service"], "LogWisp");
}

/// Issue 9, item 3 again: whatever stat said a moment before, what `open` finds may be a
/// FIFO. An empty regular file and a FIFO replace each other under one watched name (each
/// an atomic rename of a fresh hard link); logwisp, never opening anything in blocking
/// mode, keeps streaming the other file.
#[test]
fn fifo_and_regular_file_replacing_each_other_under_a_watched_name_never_block() {
    let (server, mut c) = start_with_client(TempDir::new());
    let app = server.path("app.log");
    let name = server.path("turns.log");
    let (regular, fifo, tmp) = (
        server.path("regular.keep"),
        server.path("fifo.keep"),
        server.path("next.tmp"),
    );
    append(&regular, "");
    mkfifo(&fifo);
    let turns = Instant::now();
    let mut i = 0;
    while turns.elapsed() < Duration::from_secs(2) {
        for keep in [&regular, &fifo] {
            fs::hard_link(keep, &tmp).unwrap();
            fs::rename(&tmp, &name).unwrap();
        }
        i += 1;
        if i % 1000 == 0 {
            let alive = format!("\"alive {i}\"");
            append(&app, &format!("alive {i}\n"));
            // Rotation notices for `turns.log` may come first.
            let got = loop {
                match c.next_line_within(TIMEOUT) {
                    None => break false,
                    Some(line) if line.contains(&alive) => break true,
                    Some(_) => {}
                }
            };
            assert!(got, "logwisp stopped streaming after {i} turns");
        }
    }
    assert!(i >= 1000, "only {i} turns");
    assert_eq!(server.status("app")["service"], "LogWisp");
}

/// Issue 9, item 4: with both open-files limits at 256, more matching files than
/// descriptors (SPEC §4: descriptors are a budget).
const FD_LIMIT: u64 = 256;
const MANY: usize = 600;

fn many_name(i: usize) -> String {
    format!("f{i:03}.log")
}

/// Appends one line to each of the files and checks each arrives once.
fn one_line_each(server: &Server, collector: &TcpCollector) {
    for i in 0..MANY {
        append(&server.path(&many_name(i)), &format!("line of {i}\n"));
    }
    let arrived = collector.wait_for(MANY, 2 * TIMEOUT);
    let mut got: Vec<String> = collector
        .snapshot()
        .iter()
        .map(|v| v["message"].as_str().unwrap().to_string())
        .collect();
    got.sort_unstable();
    let mut want: Vec<String> = (0..MANY).map(|i| format!("line of {i}")).collect();
    want.sort_unstable();
    assert!(arrived, "{} of {MANY} lines arrived", got.len());
    assert_same_seq("one line from each file", &got, &want);
}

/// A second client is served too (new clients must not be starved of descriptors).
fn second_client_is_served(server: &Server, first: &TcpCollector) {
    let mut second = TcpLineClient::connect(server.tcp_port("app"));
    server.wait_tcp_clients("app", 2);
    append(&server.path(&many_name(7)), "for both\n");
    assert_eq!(second.next_message(), "for both");
    assert!(first.wait_for(MANY + 1, TIMEOUT), "first client");
}

#[test]
fn more_files_at_start_than_descriptors_start_serve_and_deliver() {
    let dir = TempDir::new();
    for i in 0..MANY {
        append(&dir.join(&many_name(i)), "before start\n");
    }
    let config = one_stream(&format!("{HTTP}{TCP}"));
    let server = Server::start_with_fd_limit(dir, &config, FD_LIMIT);
    assert_eq!(server.status("app")["service"], "LogWisp");
    let client = TcpLineClient::connect(server.tcp_port("app"));
    server.wait_tcp_clients("app", 1);
    let collector = TcpCollector::start(client);
    one_line_each(&server, &collector);
    second_client_is_served(&server, &collector);
}

#[test]
fn more_files_appearing_than_descriptors_all_delivered() {
    let config = one_stream(&format!("{HTTP}{TCP}"));
    let server = Server::start_with_fd_limit(TempDir::new(), &config, FD_LIMIT);
    let client = TcpLineClient::connect(server.tcp_port("app"));
    server.wait_tcp_clients("app", 1);
    let collector = TcpCollector::start(client);
    // Files that appear at run time are read from 0: their one line each is owed.
    one_line_each(&server, &collector);
    assert_eq!(server.status("app")["service"], "LogWisp");
    second_client_is_served(&server, &collector);
}
