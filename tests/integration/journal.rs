//! The systemd journal as a source (SPEC §17), without a running journald: journal files
//! are written in the test by `systemd-journal-remote --output=FILE -` from export-format
//! text (running it again on the same file appends), and logwisp reads them through
//! `journal_dir`. Entries carry this machine's boot id, as journald's would.
//!
//! Needs `journalctl` (Debian package `systemd`) and `systemd-journal-remote` (package
//! `systemd-journal-remote`); `.ci/run` installs them. Without them these tests fail and
//! say what to install.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// Where Debian puts journal-remote (it is not in PATH).
const REMOTE_PATHS: [&str; 2] = [
    "/lib/systemd/systemd-journal-remote",
    "/usr/lib/systemd/systemd-journal-remote",
];

fn journal_remote() -> PathBuf {
    assert!(
        Command::new("journalctl")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "journalctl is not installed: install Debian's `systemd` package (apt-get install systemd)"
    );
    REMOTE_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "systemd-journal-remote is not installed (looked for {REMOTE_PATHS:?}): \
                 apt-get install systemd-journal-remote"
            )
        })
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("read boot_id")
        .trim()
        .replace('-', "")
}

/// One journal entry to write.
#[derive(Clone, Default)]
struct Entry {
    message: String,
    priority: Option<u8>,
    identifier: Option<&'static str>,
    unit: Option<&'static str>,
    pid: Option<u32>,
    host: Option<&'static str>,
    /// Written in export format's binary form (the message may hold any byte).
    binary: Option<Vec<u8>>,
}

fn msg(message: &str) -> Entry {
    Entry {
        message: message.to_string(),
        priority: Some(6),
        identifier: Some("app"),
        ..Entry::default()
    }
}

/// A journal file in a directory, written by systemd-journal-remote.
struct Journal {
    remote: PathBuf,
    dir: PathBuf,
    boot: String,
    /// `__REALTIME_TIMESTAMP` of the last entry written (each entry is 1 µs later at
    /// least, so entries keep their order).
    last_micros: i64,
}

impl Journal {
    fn new(dir: &Path) -> Journal {
        Journal {
            remote: journal_remote(),
            dir: dir.to_path_buf(),
            boot: boot_id(),
            last_micros: 0,
        }
    }

    /// Appends `entries`; returns the time of each, in microseconds.
    fn write(&mut self, entries: &[Entry]) -> Vec<i64> {
        std::fs::create_dir_all(&self.dir).expect("create journal dir");
        let mut text = Vec::new();
        let mut times = Vec::new();
        for e in entries {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as i64;
            let t = now.max(self.last_micros + 1);
            self.last_micros = t;
            times.push(t);
            writeln!(text, "__REALTIME_TIMESTAMP={t}").unwrap();
            writeln!(text, "__MONOTONIC_TIMESTAMP={t}").unwrap();
            writeln!(text, "_BOOT_ID={}", self.boot).unwrap();
            match &e.binary {
                Some(bytes) => {
                    text.extend_from_slice(b"MESSAGE\n");
                    text.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                    text.extend_from_slice(bytes);
                    text.push(b'\n');
                }
                None => writeln!(text, "MESSAGE={}", e.message).unwrap(),
            }
            if let Some(p) = e.priority {
                writeln!(text, "PRIORITY={p}").unwrap();
            }
            if let Some(i) = e.identifier {
                writeln!(text, "SYSLOG_IDENTIFIER={i}").unwrap();
            }
            if let Some(u) = e.unit {
                writeln!(text, "_SYSTEMD_UNIT={u}").unwrap();
            }
            if let Some(p) = e.pid {
                writeln!(text, "_PID={p}").unwrap();
            }
            if let Some(h) = e.host {
                writeln!(text, "_HOSTNAME={h}").unwrap();
            }
            text.push(b'\n');
        }
        let mut child = Command::new(&self.remote)
            .arg(format!(
                "--output={}",
                self.dir.join("remote.journal").display()
            ))
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run systemd-journal-remote");
        child.stdin.take().unwrap().write_all(&text).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "systemd-journal-remote failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        times
    }

    fn write_messages(&mut self, messages: &[String]) -> Vec<i64> {
        let entries: Vec<Entry> = messages.iter().map(|m| msg(m)).collect();
        self.write(&entries)
    }
}

fn messages(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} {i:03}")).collect()
}

/// One stream `sys` reading `$DIR/journal` (with `extra` keys on the target), TCP and
/// HTTP on free ports, its state in `$DIR/state`.
fn journal_stream(extra: &str) -> String {
    format!(
        "state_dir = \"$DIR/state\"\n[[streams]]\nname = \"sys\"\n[streams.monitor]\n\
         check_interval_ms = 20\ntargets = [{{ journal = true, journal_dir = \"$DIR/journal\"{extra} }}]\n{TCP}{HTTP}"
    )
}

/// The stream's journal watchers in `/status`.
fn journal_watchers(status: &Value) -> Vec<Value> {
    status["monitor"]["watchers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["journal"] == true)
        .cloned()
        .collect()
}

/// Waits until every journal target of `stream` follows its journal (entries written
/// from then on are owed to clients).
fn wait_reading(server: &Server, stream: &str) {
    server.wait_status(stream, "the journal followed", |s| {
        let w = journal_watchers(s);
        !w.is_empty() && w.iter().all(|w| w["state"] == "reading")
    });
}

fn rfc3339(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Reads `n` entries from a TCP client; their messages.
fn read_messages(client: &mut TcpLineClient, n: usize) -> Vec<String> {
    (0..n).map(|_| client.next_message()).collect()
}

/// Nothing more arrives within `wait`.
fn expect_quiet(client: &mut TcpLineClient, wait: Duration) {
    if let Some(line) = client.next_line_within(wait) {
        panic!("unexpected entry: {line}");
    }
}

#[test]
fn journal_entries_arrive_whole_and_in_order_while_followed() {
    let dir = TempDir::new();
    let mut journal = Journal::new(&dir.join("journal"));
    // Written before logwisp starts: not replayed (start_at = "end").
    journal.write_messages(&messages("before", 0..3));
    let server = Server::start_in(dir, &journal_stream(""), &[]);
    wait_reading(&server, "sys");
    let mut client = TcpLineClient::connect(server.tcp_port("sys"));
    server.wait_tcp_clients("sys", 1);
    let mut bin = b"caf\xc3\xa9 \xff\x00 bytes".to_vec();
    bin.extend_from_slice(b"\nsecond line");
    let times = journal.write(&[
        Entry {
            message: "disk full".into(),
            priority: Some(3),
            identifier: Some("myapp"),
            unit: Some("myapp.service"),
            pid: Some(4242),
            host: Some("gw1"),
            binary: None,
        },
        Entry {
            message: "from the unit".into(),
            priority: Some(5),
            unit: Some("nginx.service"),
            ..Entry::default()
        },
        Entry {
            binary: Some(bin),
            priority: Some(7),
            identifier: Some("bin"),
            ..Entry::default()
        },
    ]);
    let boot = boot_id();
    let want = [
        format!(
            r#"{{"time":"{}","source":"myapp","level":"ERROR","message":"disk full","fields":{{"_SYSTEMD_UNIT":"myapp.service","_PID":"4242","_HOSTNAME":"gw1","_BOOT_ID":"{boot}"}}}}"#,
            rfc3339(times[0])
        ),
        format!(
            r#"{{"time":"{}","source":"nginx.service","level":"INFO","message":"from the unit","fields":{{"_SYSTEMD_UNIT":"nginx.service","_BOOT_ID":"{boot}"}}}}"#,
            rfc3339(times[1])
        ),
        format!(
            r#"{{"time":"{}","source":"bin","level":"DEBUG","message":"café {}\u0000 bytes\nsecond line","fields":{{"_BOOT_ID":"{boot}"}}}}"#,
            rfc3339(times[2]),
            char::REPLACEMENT_CHARACTER
        ),
    ];
    for w in &want {
        assert_eq!(&client.next_line(), w);
    }
    // Appended while followed, in several writes.
    for round in 0..3 {
        let batch = messages(&format!("round {round}"), 0..20);
        journal.write_messages(&batch);
        assert_same_seq("appended", &read_messages(&mut client, 20), &batch);
    }
    expect_quiet(&mut client, Duration::from_millis(300));
    let status = server.status("sys");
    let w = &journal_watchers(&status)[0];
    assert_eq!(w["entries_read"], 63, "{w:#}");
    assert!(
        w["cursor"].as_str().is_some_and(|c| c.starts_with("s=")),
        "{w:#}"
    );
    assert_eq!(
        w["path"],
        format!("journal:{}", server.path("journal").display())
    );
    let metrics = http_get(server.http_port("sys"), "/metrics").text();
    assert!(
        metrics.contains("logwisp_journal_entries_total{stream=\"sys\"} 63"),
        "{metrics}"
    );
}

#[test]
fn every_priority_has_its_level() {
    let dir = TempDir::new();
    let mut journal = Journal::new(&dir.join("journal"));
    journal.write_messages(&messages("old", 0..1));
    let server = Server::start_in(dir, &journal_stream(", fields = []"), &[]);
    wait_reading(&server, "sys");
    let mut client = TcpLineClient::connect(server.tcp_port("sys"));
    server.wait_tcp_clients("sys", 1);
    let mut entries: Vec<Entry> = (0..8)
        .map(|p| Entry {
            priority: Some(p),
            ..msg(&format!("priority {p}"))
        })
        .collect();
    entries.push(Entry {
        priority: None,
        ..msg("no priority")
    });
    journal.write(&entries);
    let want = [
        "ERROR", "ERROR", "ERROR", "ERROR", "WARN", "INFO", "INFO", "DEBUG", "",
    ];
    for (i, level) in want.iter().enumerate() {
        let v = client.next_json();
        assert_eq!(v["level"], *level, "entry {i}: {v}");
        assert!(v.get("fields").is_none(), "fields = [] keeps none: {v}");
    }
}

#[test]
fn priority_unit_and_identifier_filters_narrow_the_journal() {
    let dir = TempDir::new();
    let mut journal = Journal::new(&dir.join("journal"));
    journal.write_messages(&messages("old", 0..1));
    let stream = |name: &str, extra: &str| {
        format!(
            "[[streams]]\nname = \"{name}\"\n[streams.monitor]\ncheck_interval_ms = 20\n\
             targets = [{{ journal = true, journal_dir = \"$DIR/journal\"{extra} }}]\n{TCP}{HTTP}"
        )
    };
    let toml = [
        stream("warn", ", priority = \"warning\""),
        stream("unit", ", units = [\"a.service\", \"c.service\"]"),
        stream("ident", ", identifiers = [\"x\"]"),
        stream("both", ", units = [\"a.service\"], identifiers = [\"y\"]"),
    ]
    .concat();
    let server = Server::start_in(dir, &toml, &[]);
    let names = ["warn", "unit", "ident", "both"];
    let mut clients: Vec<TcpLineClient> = names
        .iter()
        .map(|n| {
            wait_reading(&server, n);
            let c = TcpLineClient::connect(server.tcp_port(n));
            server.wait_tcp_clients(n, 1);
            c
        })
        .collect();
    let e = |m: &str, p: u8, unit: &'static str, ident: &'static str| Entry {
        message: m.into(),
        priority: Some(p),
        unit: Some(unit),
        identifier: Some(ident),
        ..Entry::default()
    };
    journal.write(&[
        e("m0", 3, "a.service", "x"),
        e("m1", 6, "a.service", "y"),
        e("m2", 4, "b.service", "x"),
        e("m3", 7, "c.service", "z"),
        e("m4", 5, "b.service", "y"),
        e("m5", 0, "a.service", "y"),
    ]);
    let want: [&[&str]; 4] = [
        &["m0", "m2", "m5"],
        &["m0", "m1", "m3", "m5"],
        &["m0", "m2"],
        &["m1", "m5"],
    ];
    for ((name, client), want) in names.iter().zip(&mut clients).zip(want) {
        let got = read_messages(client, want.len());
        assert_eq!(got, want, "stream {name}");
    }
    // A last entry every stream keeps marks the end: nothing else came before it.
    journal.write(&[e("end", 0, "a.service", "y")]);
    for (name, client) in names.iter().zip(&mut clients) {
        if *name == "ident" {
            continue;
        }
        assert_eq!(client.next_message(), "end", "stream {name}");
    }
}

#[test]
fn a_restart_resumes_from_the_cursor_with_nothing_lost_or_repeated() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let mut journal = Journal::new(&dir.join("journal"));
    journal.write_messages(&messages("old", 0..2));
    let mut server = Server::start_in(dir, &journal_stream(""), &[]);
    wait_reading(&server, "sys");
    let mut client = TcpLineClient::connect(server.tcp_port("sys"));
    server.wait_tcp_clients("sys", 1);
    let first = messages("first", 0..5);
    journal.write_messages(&first);
    assert_same_seq("first run", &read_messages(&mut client, 5), &first);
    // A clean stop saves the cursor of the last entry read.
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(TIMEOUT).is_some_and(|s| s.success()));
    // More than journalctl shows after a cursor by default (10).
    let down = messages("while down", 0..25);
    journal.write_messages(&down);
    server.restart();
    let mut client = TcpLineClient::connect(server.tcp_port("sys"));
    // The new run may have read some before this client connected: it asks from the
    // start of this run (an SSE client could say Last-Event-ID instead).
    let status = server.wait_status("sys", "the entries written while down", |s| {
        s["monitor"]["journal"]["entries_read"] == 25
    });
    let first_id = status["delivery"]["first_sequence"].as_u64().unwrap();
    drop(client);
    let mut sse = SseClient::connect(
        server.http_port("sys"),
        "/stream",
        &[&format!("Last-Event-ID: {}", first_id - 1)],
    );
    sse.skip_connected();
    let got: Vec<String> = (0..25).map(|_| sse.next_message()).collect();
    assert_same_seq("written while down", &got, &down);
    client = TcpLineClient::connect(server.tcp_port("sys"));
    server.wait_tcp_clients("sys", 1);
    let live = messages("live", 0..3);
    journal.write_messages(&live);
    assert_same_seq("after restart", &read_messages(&mut client, 3), &live);
    expect_quiet(&mut client, Duration::from_millis(300));
    let w = &journal_watchers(&server.status("sys"))[0];
    assert_eq!(w["entries_read"], 28, "{w:#}");
}

#[test]
fn a_journal_directory_that_appears_later_is_read_from_its_beginning() {
    let server = Server::start(&journal_stream(""));
    let said = wait_until(TIMEOUT, || server.stderr().contains("does not exist yet"));
    assert!(said, "stderr: {}", server.stderr());
    let status = server.status("sys");
    let w = &journal_watchers(&status)[0];
    assert_eq!(w["state"], "waiting", "{w:#}");
    assert!(
        w["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("does not exist yet")),
        "{w:#}"
    );
    let mut client = TcpLineClient::connect(server.tcp_port("sys"));
    server.wait_tcp_clients("sys", 1);
    let mut journal = Journal::new(&server.path("journal"));
    let early = messages("early", 0..4);
    journal.write_messages(&early);
    assert_same_seq("appeared", &read_messages(&mut client, 4), &early);
    wait_reading(&server, "sys");
    let later = messages("later", 0..4);
    journal.write_messages(&later);
    assert_same_seq("followed", &read_messages(&mut client, 4), &later);
    assert_eq!(
        server.stderr().matches("does not exist yet").count(),
        1,
        "said once: {}",
        server.stderr()
    );
}

#[test]
fn without_journalctl_the_target_waits_and_the_rest_keeps_working() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.join("empty-bin")).unwrap();
    let mut journal = Journal::new(&dir.join("journal"));
    journal.write_messages(&messages("old", 0..1));
    let toml = format!(
        "[[streams]]\nname = \"sys\"\n[streams.monitor]\ncheck_interval_ms = 20\n\
         targets = [{{ journal = true, journal_dir = \"$DIR/journal\" }}, {{ path = \"$DIR\", pattern = \"*.log\" }}]\n{TCP}{HTTP}"
    );
    let server = Server::start_with_env(dir, &toml, &[("PATH", "$DIR/empty-bin")]);
    let said = wait_until(TIMEOUT, || {
        server.stderr().contains("journalctl is not installed")
    });
    assert!(said, "stderr: {}", server.stderr());
    let mut client = TcpLineClient::connect(server.tcp_port("sys"));
    server.wait_tcp_clients("sys", 1);
    append(&server.path("app.log"), "a file line\n");
    assert_eq!(client.next_message(), "a file line");
    let status = server.status("sys");
    let w = &journal_watchers(&status)[0];
    assert_eq!(w["state"], "waiting", "{w:#}");
    assert!(
        w["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("install systemd's journalctl")),
        "{w:#}"
    );
    // Retried (after 1 s, then 2 s: every attempt counted) but said once.
    let journal_errors = || server.status("sys")["monitor"]["errors"]["journal"].as_u64();
    let retried = wait_until(TIMEOUT, || journal_errors().is_some_and(|n| n >= 3));
    assert!(retried, "journal errors: {:?}", journal_errors());
    assert_eq!(
        server
            .stderr()
            .matches("journalctl is not installed")
            .count(),
        1,
        "{}",
        server.stderr()
    );
    append(&server.path("app.log"), "still working\n");
    assert_eq!(client.next_message(), "still working");
}

#[test]
fn a_slow_client_catches_up_from_the_journal() {
    let dir = TempDir::new();
    let mut journal = Journal::new(&dir.join("journal"));
    journal.write_messages(&messages("old", 0..1));
    let toml = journal_stream("").replace("port = 0\n", "port = 0\nbuffer_size = 10\n");
    let server = Server::start_in(dir, &toml, &[]);
    wait_reading(&server, "sys");
    let mut sse = SseClient::connect(server.http_port("sys"), "/stream", &[]);
    sse.skip_connected();
    let all = messages("entry", 0..300);
    journal.write_messages(&all[..1]);
    let (first_id, v) = sse.next_entry();
    assert_eq!(v["message"], all[0]);
    journal.write_messages(&all[1..]);
    let deadline = Instant::now() + TIMEOUT;
    let got: Vec<String> = (1..300).map(|_| sse.next_message()).collect();
    assert_same_seq("live", &got, &all[1..]);
    assert!(Instant::now() < deadline);
    // A client that comes back from the first id is 299 entries behind a buffer of 10:
    // served from the journal itself.
    let mut late = SseClient::connect(
        server.http_port("sys"),
        "/stream",
        &[&format!("Last-Event-ID: {}", first_id - 1)],
    );
    late.skip_connected();
    let mut got = Vec::new();
    while got.len() < 300 {
        let e = late.next_event();
        assert!(e.is_entry(), "only entries, no loss: {e:?}");
        got.push(e.json()["message"].as_str().unwrap().to_string());
    }
    assert_same_seq("caught up", &got, &all);
    // And it goes on live.
    journal.write_messages(&messages("after", 0..2));
    assert_eq!(late.next_message(), "after 000");
    let status = server.status("sys");
    assert_eq!(status["delivery"]["dropped_entries"], 0, "{status:#}");
    assert!(
        status["monitor"]["journal"]["replays"].as_u64() >= Some(1),
        "read again from the journal: {status:#}"
    );
    let gone = wait_until(TIMEOUT, || {
        server.status("sys")["monitor"]["journal"]["replaying"] == 0
    });
    assert!(gone, "replay children end with their runs");
}

#[test]
fn entries_gone_from_the_journal_are_counted_and_announced() {
    let dir = TempDir::new();
    let mut journal = Journal::new(&dir.join("journal"));
    journal.write_messages(&messages("old", 0..1));
    let server = Server::start_in(dir, &journal_stream(""), &[]);
    wait_reading(&server, "sys");
    // Read with no client: kept only as history runs (cursors), not in the buffer.
    journal.write_messages(&messages("vacuumed", 0..5));
    let status = server.wait_status("sys", "5 entries read", |s| {
        s["monitor"]["journal"]["entries_read"] == 5
    });
    let first_id = status["delivery"]["first_sequence"].as_u64().unwrap();
    // The journal loses them (vacuumed, deleted).
    std::fs::remove_file(server.path("journal/remote.journal")).unwrap();
    let mut sse = SseClient::connect(
        server.http_port("sys"),
        "/stream",
        &[&format!("Last-Event-ID: {}", first_id - 1)],
    );
    sse.skip_connected();
    let e = sse.next_event();
    assert_eq!(e.event.as_deref(), Some("dropped"), "{:?}", e.raw);
    assert_eq!(e.json(), serde_json::json!({"dropped": 5}));
    let status = server.status("sys");
    assert_eq!(
        status["delivery"]["dropped_by_reason"]["gone"], 5,
        "{status:#}"
    );
}

#[test]
fn a_reload_that_changes_the_journal_target_continues_from_its_cursor() {
    let dir = TempDir::new();
    let mut journal = Journal::new(&dir.join("journal"));
    journal.write_messages(&messages("old", 0..1));
    let mut server = Server::start_in(dir, &journal_stream(""), &[]);
    wait_reading(&server, "sys");
    let mut client = TcpLineClient::connect(server.tcp_port("sys"));
    server.wait_tcp_clients("sys", 1);
    let before = messages("before", 0..3);
    journal.write_messages(&before);
    assert_same_seq("before", &read_messages(&mut client, 3), &before);
    let pid = journal_watchers(&server.status("sys"))[0]["pid"].clone();
    // A changed target: its follower is started again, after the last entry read.
    server.reload_with(&journal_stream(", priority = \"info\""));
    let between = messages("between", 0..3);
    journal.write_messages(&between);
    let status = server.wait_status("sys", "a new follower", |s| {
        let w = &journal_watchers(s)[0];
        w["state"] == "reading" && w["pid"] != pid
    });
    assert!(
        status["monitor"]["targets"][0]["priority"] == "info",
        "{status:#}"
    );
    assert_same_seq("between", &read_messages(&mut client, 3), &between);
    let after = vec![
        msg("after"),
        Entry {
            priority: Some(7),
            ..msg("debug, filtered")
        },
    ];
    journal.write(&after);
    assert_eq!(client.next_message(), "after");
    expect_quiet(&mut client, Duration::from_millis(300));
}

#[test]
fn a_follower_that_dies_is_started_again_after_its_cursor() {
    let dir = TempDir::new();
    let mut journal = Journal::new(&dir.join("journal"));
    journal.write_messages(&messages("old", 0..1));
    let server = Server::start_in(dir, &journal_stream(""), &[]);
    wait_reading(&server, "sys");
    let mut client = TcpLineClient::connect(server.tcp_port("sys"));
    server.wait_tcp_clients("sys", 1);
    journal.write_messages(&messages("first", 0..2));
    assert_eq!(read_messages(&mut client, 2), messages("first", 0..2));
    let pid = journal_watchers(&server.status("sys"))[0]["pid"]
        .as_u64()
        .expect("the follower's pid");
    // SAFETY: kill(2) on the journalctl logwisp started, found in its /status.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    let meanwhile = messages("meanwhile", 0..12);
    journal.write_messages(&meanwhile);
    assert_same_seq(
        "after the restart",
        &read_messages(&mut client, 12),
        &meanwhile,
    );
    let status = server.status("sys");
    let w = &journal_watchers(&status)[0];
    assert_eq!(w["restarts"], 1, "{w:#}");
    assert_eq!(w["state"], "reading", "{w:#}");
    assert!(w["errors"].as_u64() >= Some(1), "{w:#}");
    let said = server.stderr();
    // "was ended by a signal", or "ended" when it was not reaped yet as its pipes closed.
    assert_eq!(
        said.matches("; starting it again in 1 s").count(),
        1,
        "said once: {said}"
    );
    let metrics = http_get(server.http_port("sys"), "/metrics").text();
    assert!(
        metrics.contains("logwisp_journal_restarts_total{stream=\"sys\"} 1"),
        "{metrics}"
    );
}
