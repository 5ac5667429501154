//! The file is the buffer (SPEC §6, §7 Last-Event-ID, §11): no line is lost for a client
//! that keeps reading through a burst, falls behind, reconnects, or outlives a restart.
//!
//! Every line written here is `seq 00000042 ppp…` (100 bytes with its newline). Readers
//! check the numbers as entries arrive ([`Tally`]) instead of keeping a million entries.
//! Each test runs with the default `buffer_size` (1000) and its state in `$DIR/state`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::*;

/// The length of every line written, newline included.
const LINE_BYTES: usize = 100;
/// `seq ` + 8 digits + a space, then padding up to the newline.
const PAD: usize = LINE_BYTES - 14;
/// The longest a test waits for all its readers, however slowly entries trickle in.
const READ_DEADLINE: Duration = Duration::from_secs(60);
/// Lines sent after a catch-up, which must follow it.
const LIVE: u64 = 100;
/// The cap on logwisp's peak RSS during a burst (SPEC §6, issue 8).
const RSS_CAP_KIB: u64 = 16 * 1024;

/// One stream `app` with the given servers, its state in `$DIR/state`, defaults otherwise.
fn stateful(servers: &str) -> Server {
    let dir = TempDir::new();
    fs::create_dir_all(dir.join("state")).expect("create state dir");
    let toml = format!("state_dir = \"$DIR/state\"\n{}", one_stream(servers));
    Server::start_in(dir, &toml, &[])
}

fn push_line(buf: &mut Vec<u8>, i: u64) {
    write!(buf, "seq {i:08} ").unwrap();
    buf.extend_from_slice(&[b'p'; PAD]);
    buf.push(b'\n');
}

/// Appends lines `range` to `path` (created if missing) in writes of about 4 MiB.
fn write_lines(path: &Path, range: Range<u64>) {
    const WRITE: usize = 4 << 20;
    let mut f = open_append(path);
    let mut buf = Vec::with_capacity(WRITE + LINE_BYTES);
    for i in range {
        push_line(&mut buf, i);
        if buf.len() >= WRITE {
            f.write_all(&buf).unwrap();
            buf.clear();
        }
    }
    f.write_all(&buf).unwrap();
}

/// What an entry's JSON carries, found without parsing the whole entry.
#[derive(Debug, PartialEq)]
enum Carried {
    /// Line `n`, whole.
    Line(u64),
    Rotation,
    Other,
}

fn carried(json: &str) -> Carried {
    const KEY: &str = "\"message\":\"";
    let Some(at) = json.find(KEY).map(|k| k + KEY.len()) else {
        return Carried::Other;
    };
    let message = &json[at..];
    if message.starts_with("Log rotation detected") {
        return Carried::Rotation;
    }
    let b = message.as_bytes();
    let whole = b.len() > LINE_BYTES
        && b.starts_with(b"seq ")
        && b[12] == b' '
        && b[13..13 + PAD] == [b'p'; PAD]
        && b[13 + PAD] == b'"';
    match message.get(4..12).map(str::parse) {
        Some(Ok(n)) if whole => Carried::Line(n),
        _ => Carried::Other,
    }
}

/// Whether `event: dropped` may come before a reader's first entry (never after one).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dropped {
    Never,
    Allowed,
    Required,
}

/// What one reader saw, checked as it arrived: line numbers in order, SSE ids increasing,
/// rotation notices and `event: dropped` noted where they came.
#[derive(Debug, Default)]
struct Tally {
    /// The number the next line should carry (`None` until the first line when the start
    /// is not known in advance).
    next: Option<u64>,
    /// The first line number seen.
    first: Option<u64>,
    /// Lines that carried the number due.
    in_order: u64,
    /// Lines that did not, and the first few of them.
    out_of_order: u64,
    wrong: Vec<String>,
    /// Rotation notices, each as the line number due when it came.
    rotations: Vec<u64>,
    /// `event: dropped` notices before the first entry / after one, and what they claim.
    dropped_leading: u64,
    dropped_later: u64,
    dropped_claimed: u64,
    /// SSE ids: the first, the last, and how many did not increase.
    first_id: Option<u64>,
    last_id: Option<u64>,
    bad_ids: u64,
    /// Anything else (the first few).
    other: Vec<String>,
    /// Why reading stopped.
    ended: &'static str,
}

impl Tally {
    /// Expecting line `start` first; `None` when any start is fine.
    fn new(start: Option<u64>) -> Tally {
        Tally {
            next: start,
            ended: "still reading",
            ..Tally::default()
        }
    }

    /// Expecting ids above `id` (a `Last-Event-ID` sent).
    fn after_id(mut self, id: u64) -> Tally {
        self.last_id = Some(id);
        self
    }

    fn entries(&self) -> u64 {
        self.in_order + self.out_of_order + self.rotations.len() as u64
    }

    fn note(list: &mut Vec<String>, what: String) {
        if list.len() < 3 {
            list.push(what);
        }
    }

    fn entry(&mut self, json: &str) {
        match carried(json) {
            Carried::Rotation => self.rotations.push(self.next.unwrap_or(0)),
            Carried::Line(n) => {
                self.first.get_or_insert(n);
                match self.next {
                    Some(due) if due != n => {
                        self.out_of_order += 1;
                        Tally::note(&mut self.wrong, format!("line {n} where {due} was due"));
                    }
                    _ => self.in_order += 1,
                }
                self.next = Some(n + 1);
            }
            Carried::Other => Tally::note(&mut self.other, json.to_string()),
        }
    }

    fn sse_event(&mut self, e: &Event) {
        match e.event.as_deref() {
            None if e.id.is_some() => {
                let id: u64 = match e.id.as_deref().unwrap().parse() {
                    Ok(id) => id,
                    Err(_) => return Tally::note(&mut self.other, e.raw.clone()),
                };
                if self.last_id.is_some_and(|last| id <= last) {
                    self.bad_ids += 1;
                }
                self.first_id.get_or_insert(id);
                self.last_id = Some(id);
                self.entry(e.data.as_deref().unwrap_or_default());
            }
            // Heartbeats: comments or `event: heartbeat`.
            None if e.data.is_none() => {}
            Some("heartbeat") => {}
            Some("dropped") => {
                if self.entries() == 0 {
                    self.dropped_leading += 1;
                } else {
                    self.dropped_later += 1;
                }
                let claimed = e.data.as_deref().and_then(|d| {
                    serde_json::from_str::<serde_json::Value>(d).ok()?["dropped"].as_u64()
                });
                self.dropped_claimed += claimed.unwrap_or(0);
            }
            _ => Tally::note(&mut self.other, e.raw.clone()),
        }
    }

    fn done(&self, end: u64) -> bool {
        self.next.is_some_and(|n| n >= end)
    }

    /// Reads `c` until line `end - 1` arrived, the stream ends, nothing came for
    /// [`TIMEOUT`], or `deadline`.
    fn read_sse(&mut self, c: &mut SseClient, end: u64, deadline: Instant, progress: &AtomicU64) {
        while !self.done(end) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(e) = c.next_event_within(left.min(TIMEOUT)) else {
                self.ended = "the stream ended or went quiet";
                return;
            };
            self.sse_event(&e);
            progress.store(self.next.unwrap_or(0), Ordering::Release);
        }
        self.ended = "the last line arrived";
    }

    /// Like [`read_sse`](Self::read_sse) for a TCP client.
    fn read_tcp(
        &mut self,
        c: &mut TcpLineClient,
        end: u64,
        deadline: Instant,
        progress: &AtomicU64,
    ) {
        while !self.done(end) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = c.next_line_within(left.min(TIMEOUT)) else {
                self.ended = "the stream ended or went quiet";
                return;
            };
            if !line.contains("\"type\":\"heartbeat\"") {
                self.entry(&line);
            }
            progress.store(self.next.unwrap_or(0), Ordering::Release);
        }
        self.ended = "the last line arrived";
    }

    /// Every line of `want` exactly once and in order, nothing else; `event: dropped`
    /// only as `dropped` says. Returns what is wrong, for one message with all readers.
    fn check(&self, who: &str, want: Range<u64>, dropped: Dropped) -> Result<(), String> {
        let mut wrong = Vec::new();
        let count = want.end - want.start;
        if self.first != Some(want.start) || self.in_order != count || self.out_of_order > 0 {
            wrong.push(format!(
                "{} of {count} lines in order, first {:?} (want {}), {} out of order {:?}",
                self.in_order, self.first, want.start, self.out_of_order, self.wrong
            ));
        }
        if self.next != Some(want.end) {
            wrong.push(format!(
                "last line {:?}, want {}",
                self.next.map(|n| n - 1),
                want.end - 1
            ));
        }
        let notices = self.dropped_leading + self.dropped_later;
        let dropped_ok = match dropped {
            Dropped::Never => notices == 0,
            Dropped::Allowed => self.dropped_later == 0,
            Dropped::Required => self.dropped_later == 0 && self.dropped_leading > 0,
        };
        if !dropped_ok {
            wrong.push(format!(
                "`event: dropped` ({dropped:?} before the first entry): {} before, {} after, \
                 claiming {} entries",
                self.dropped_leading, self.dropped_later, self.dropped_claimed
            ));
        }
        if self.bad_ids > 0 {
            wrong.push(format!("{} ids did not increase", self.bad_ids));
        }
        if !self.other.is_empty() {
            wrong.push(format!("unexpected: {:?}", self.other));
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!("{who}: {} ({})", wrong.join("; "), self.ended))
        }
    }
}

/// Panics with every failed check at once.
fn assert_all(checks: &[Result<(), String>], context: &str) {
    let failed: Vec<&str> = checks
        .iter()
        .filter_map(|c| c.as_ref().err().map(String::as_str))
        .collect();
    assert!(failed.is_empty(), "{}\n{context}", failed.join("\n"));
}

/// A client read on its own thread into a [`Tally`].
struct Reader {
    progress: Arc<AtomicU64>,
    thread: JoinHandle<Tally>,
}

impl Reader {
    /// Reads an SSE stream (from its `event: connected`) until line `end - 1`.
    fn sse(mut c: SseClient, mut tally: Tally, end: u64) -> Reader {
        let progress = Arc::new(AtomicU64::new(0));
        let shared = Arc::clone(&progress);
        let thread = std::thread::spawn(move || {
            c.skip_connected();
            tally.read_sse(&mut c, end, Instant::now() + READ_DEADLINE, &shared);
            tally
        });
        Reader { progress, thread }
    }

    fn tcp(mut c: TcpLineClient, mut tally: Tally, end: u64) -> Reader {
        let progress = Arc::new(AtomicU64::new(0));
        let shared = Arc::clone(&progress);
        let thread = std::thread::spawn(move || {
            tally.read_tcp(&mut c, end, Instant::now() + READ_DEADLINE, &shared);
            tally
        });
        Reader { progress, thread }
    }

    /// Waits until line `n - 1` (or a later one) arrived.
    fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        wait_until(timeout, || self.progress.load(Ordering::Acquire) >= n)
    }

    fn finish(self) -> Tally {
        self.thread.join().expect("reader thread")
    }
}

fn wait_clients(server: &Server, sse: u64, tcp: u64) {
    server.wait_status("app", &format!("{sse} SSE and {tcp} TCP clients"), |s| {
        s["delivery"]["sse_clients"] == sse && s["delivery"]["tcp_clients"] == tcp
    });
}

/// SIGTERM, then exit 0 within the 2 s of SPEC §10 (plus slack for a busy machine).
fn stop(server: &mut Server) {
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "logwisp did not exit 0 on SIGTERM: {status:?}\nstderr:\n{}",
        server.stderr()
    );
}

/// Connects an SSE client, writes lines `0..n`, reads them; returns the ids.
fn first_run_lines(server: &Server, n: u64) -> Vec<u64> {
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    write_lines(&server.path("app.log"), 0..n);
    (0..n)
        .map(|i| {
            let e = c.next_event();
            assert!(e.is_entry(), "expected an entry, got {:?}", e.raw);
            assert_eq!(carried(e.data.as_deref().unwrap()), Carried::Line(i));
            e.id.unwrap().parse().expect("numeric id")
        })
        .collect()
}

#[test]
fn a_million_line_burst_reaches_an_sse_and_a_tcp_client_whole_within_16_mib() {
    const N: u64 = 1_000_000;
    let server = stateful(&format!("{HTTP}{TCP}"));
    let log = server.path("app.log");
    append(&log, "");
    let sse = SseClient::connect(server.http_port("app"), "/stream", &[]);
    let tcp = TcpLineClient::connect(server.tcp_port("app"));
    wait_clients(&server, 1, 1);
    let sse = Reader::sse(sse, Tally::new(Some(0)), N);
    let tcp = Reader::tcp(tcp, Tally::new(Some(0)), N);

    let started = Instant::now();
    write_lines(&log, 0..N);
    let written = started.elapsed();
    let (sse, tcp) = (sse.finish(), tcp.finish());
    let delivered = started.elapsed();
    let peak = server.peak_rss_kib();
    let status = server.status("app");
    let context = format!(
        "written in {written:?}, read in {delivered:?}; peak RSS {peak} KiB; \
         total_entries {}, dropped_entries {}",
        status["monitor"]["total_entries"], status["delivery"]["dropped_entries"]
    );
    eprintln!("burst: {context}");
    let rss = if peak < RSS_CAP_KIB {
        Ok(())
    } else {
        Err(format!("peak RSS {peak} KiB, over {RSS_CAP_KIB} KiB"))
    };
    assert_all(
        &[
            sse.check("SSE client", 0..N, Dropped::Never),
            tcp.check("TCP client", 0..N, Dropped::Never),
            rss,
        ],
        &context,
    );
    assert_eq!(status["monitor"]["total_entries"], N, "{status:#}");
    assert_eq!(status["delivery"]["dropped_entries"], 0, "{status:#}");
}

#[test]
fn a_stalled_client_gets_every_line_from_disk_once_it_reads_again() {
    const N: u64 = 200_000;
    let server = stateful(&format!("{HTTP}{TCP}"));
    let log = server.path("app.log");
    append(&log, "");
    // Asks for the stream with a tiny receive window, then reads nothing for now.
    let mut stalled = connect_tcp(None, Some(4096), server.http_port("app"));
    stalled
        .write_all(SseClient::request("/stream", &[]).as_bytes())
        .unwrap();
    let fast = TcpLineClient::connect(server.tcp_port("app"));
    wait_clients(&server, 1, 1);
    let fast = Reader::tcp(fast, Tally::new(Some(0)), N);

    let started = Instant::now();
    write_lines(&log, 0..N);
    let fast = fast.finish();
    let fast_took = started.elapsed();
    assert_all(
        &[fast.check("fast TCP client", 0..N, Dropped::Never)],
        &format!("while an SSE client was stalled; after {fast_took:?}"),
    );

    let late = SseClient::read_head(stalled).unwrap_or_else(|r| panic!("{}", r.text()));
    let late_started = Instant::now();
    let late = Reader::sse(late, Tally::new(Some(0)), N + LIVE);
    let caught_up = late.wait_for(N, READ_DEADLINE);
    let late_took = late_started.elapsed();
    write_lines(&log, N..N + LIVE);
    let late = late.finish();
    let status = server.status("app");
    let context = format!(
        "fast client done in {fast_took:?}; stalled client caught up: {caught_up} \
         in {late_took:?}; dropped_entries {}",
        status["delivery"]["dropped_entries"]
    );
    eprintln!("stalled: {context}");
    assert_all(
        &[late.check("stalled SSE client", 0..N + LIVE, Dropped::Never)],
        &context,
    );
    assert_eq!(status["delivery"]["dropped_entries"], 0, "{status:#}");
}

#[test]
fn last_event_id_far_behind_the_buffer_gets_every_missed_line_from_disk() {
    const SEEN: u64 = 10;
    const MISSED: u64 = 20_000;
    let server = stateful(HTTP);
    let port = server.http_port("app");
    let log = server.path("app.log");
    append(&log, "");
    let ids = first_run_lines(&server, SEEN);
    let last = *ids.last().unwrap();
    server.wait_status("app", "the client gone", |s| {
        s["delivery"]["sse_clients"] == 0
    });

    write_lines(&log, SEEN..SEEN + MISSED);
    // Every line has been read: the buffer (1000 entries) moved far past the client.
    server.wait_status("app", "all lines read", |s| {
        s["monitor"]["total_entries"] == SEEN + MISSED
    });
    let again = SseClient::connect(port, "/stream", &[&format!("Last-Event-ID: {last}")]);
    let started = Instant::now();
    let again = Reader::sse(
        again,
        Tally::new(Some(SEEN)).after_id(last),
        SEEN + MISSED + LIVE,
    );
    let caught_up = again.wait_for(SEEN + MISSED, READ_DEADLINE);
    let took = started.elapsed();
    write_lines(&log, SEEN + MISSED..SEEN + MISSED + LIVE);
    let again = again.finish();
    assert_all(
        &[again.check(
            "client back with Last-Event-ID",
            SEEN..SEEN + MISSED + LIVE,
            Dropped::Never,
        )],
        &format!("caught up: {caught_up} in {took:?}"),
    );
}

#[test]
fn a_rename_rotation_while_a_client_catches_up_from_disk_loses_and_repeats_nothing() {
    const OLD: u64 = 100_000;
    const NEW: u64 = 1_000;
    let server = stateful(&format!("{HTTP}{TCP}"));
    let log = server.path("app.log");
    append(&log, "");
    let stalled = connect_tcp(None, Some(4096), server.tcp_port("app"));
    let fast = SseClient::connect(server.http_port("app"), "/stream", &[]);
    wait_clients(&server, 1, 1);
    let fast = Reader::sse(fast, Tally::new(Some(0)), OLD + NEW);

    write_lines(&log, 0..OLD);
    // The fast client has the whole old file before it is rotated, so the stalled one is
    // far behind (beyond the buffer and the socket buffers) when the rotation happens.
    assert!(
        fast.wait_for(OLD, READ_DEADLINE),
        "the fast client got {} of {OLD} lines",
        fast.progress.load(Ordering::Acquire)
    );
    fs::rename(&log, server.path("app.log.1")).unwrap();
    write_lines(&log, OLD..OLD + NEW);
    let fast = fast.finish();

    let late = Reader::tcp(
        TcpLineClient::from_stream(stalled),
        Tally::new(Some(0)),
        OLD + NEW + LIVE,
    );
    let caught_up = late.wait_for(OLD + NEW, READ_DEADLINE);
    write_lines(&log, OLD + NEW..OLD + NEW + LIVE);
    let late = late.finish();
    let rotated_once = |who: &str, t: &Tally| {
        if t.rotations == [OLD] {
            Ok(())
        } else {
            Err(format!(
                "{who}: rotation notices before lines {:?}, want one before {OLD}",
                t.rotations
            ))
        }
    };
    assert_all(
        &[
            fast.check("fast SSE client", 0..OLD + NEW, Dropped::Never),
            rotated_once("fast SSE client", &fast),
            late.check("stalled TCP client", 0..OLD + NEW + LIVE, Dropped::Never),
            rotated_once("stalled TCP client", &late),
        ],
        &format!(
            "stalled client caught up: {caught_up}; status {:#}",
            server.status("app")["delivery"]
        ),
    );
}

#[test]
fn lines_written_while_logwisp_was_stopped_are_delivered_after_restart() {
    const BEFORE: u64 = 10;
    const DOWN: u64 = 100;
    let mut server = stateful(HTTP);
    let log = server.path("app.log");
    append(&log, "");
    let ids = first_run_lines(&server, BEFORE);
    let last = *ids.last().unwrap();
    stop(&mut server);

    write_lines(&log, BEFORE..BEFORE + DOWN);
    server.restart();
    // A client back with the last id of the previous run: every entry this run has, the
    // lines written while logwisp was down first (an `event: dropped` may precede them
    // when logwisp cannot tell whether anything is missing).
    let again = SseClient::connect(
        server.http_port("app"),
        "/stream",
        &[&format!("Last-Event-ID: {last}")],
    );
    let again = Reader::sse(
        again,
        Tally::new(Some(BEFORE)).after_id(last),
        BEFORE + DOWN + LIVE,
    );
    let caught_up = again.wait_for(BEFORE + DOWN, TIMEOUT);
    write_lines(&log, BEFORE + DOWN..BEFORE + DOWN + LIVE);
    let again = again.finish();
    assert_all(
        &[again.check(
            "client back after the restart",
            BEFORE..BEFORE + DOWN + LIVE,
            Dropped::Allowed,
        )],
        &format!(
            "caught up: {caught_up}; ids of the first run {}..={last}, of this one from {:?}",
            ids[0], again.first_id
        ),
    );
}

/// Appends `seq` lines in batches of 20 every 10 ms (~2000 lines/s) until stopped,
/// noting when each batch was written.
struct SteadyWriter {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    thread: JoinHandle<Vec<(Instant, u64)>>,
}

impl SteadyWriter {
    fn start(path: &Path) -> SteadyWriter {
        const BATCH: u64 = 20;
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let (stop_flag, count) = (Arc::clone(&stop), Arc::clone(&written));
        let path = path.to_path_buf();
        let thread = std::thread::spawn(move || {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            let (mut batches, mut next, mut buf) = (Vec::new(), 0, Vec::new());
            while !stop_flag.load(Ordering::Acquire) {
                buf.clear();
                (next..next + BATCH).for_each(|i| push_line(&mut buf, i));
                batches.push((Instant::now(), next));
                f.write_all(&buf).unwrap();
                next += BATCH;
                count.store(next, Ordering::Release);
                std::thread::sleep(Duration::from_millis(10));
            }
            batches
        });
        SteadyWriter {
            stop,
            written,
            thread,
        }
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Waits until `more` lines past `from` have been written.
    fn wait_past(&self, from: u64, more: u64) {
        let ok = wait_until(TIMEOUT, || self.written() >= from + more);
        assert!(ok, "the writer is stuck at {}", self.written());
    }

    /// Stops; returns the lines written and when each batch was.
    fn finish(self) -> (u64, Vec<(Instant, u64)>) {
        self.stop.store(true, Ordering::Release);
        let batches = self.thread.join().expect("writer");
        (self.written.load(Ordering::Acquire), batches)
    }
}

#[test]
fn after_sigkill_a_restart_repeats_at_most_the_last_seconds_lines_and_skips_none() {
    /// Repeats are allowed of lines written this long before the kill (SPEC §11: a crash
    /// may repeat up to the last second; checkpoints are written about once a second).
    const REPEAT_WINDOW: Duration = Duration::from_secs(2);
    let mut server = stateful(HTTP);
    let log = server.path("app.log");
    append(&log, "");
    let first = SseClient::connect(server.http_port("app"), "/stream", &[]);
    let first = Reader::sse(first, Tally::new(Some(0)), u64::MAX);
    wait_clients(&server, 1, 0);
    let writer = SteadyWriter::start(&log);
    // Three seconds of lines, most of them received, so checkpoints have been written.
    writer.wait_past(0, 6_000);
    assert!(
        first.wait_for(5_000, TIMEOUT),
        "the client got {} of {} lines",
        first.progress.load(Ordering::Acquire),
        writer.written()
    );

    let killed_at = Instant::now();
    server.signal(libc::SIGKILL);
    let status = server.wait_exit(TIMEOUT).expect("logwisp did not die");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let first = first.finish();
    writer.wait_past(writer.written(), 1_000);
    server.restart();
    let last = first.last_id.expect("the first run sent entries");
    let again = SseClient::connect(
        server.http_port("app"),
        "/stream",
        &[&format!("Last-Event-ID: {last}")],
    );
    writer.wait_past(writer.written(), 1_000);
    let (total, batches) = writer.finish();
    let again = Reader::sse(again, Tally::new(None).after_id(last), total).finish();

    // Lines from `again.first` on were read again after the restart; those must all have
    // been written within the window before the kill.
    let window_start = killed_at - REPEAT_WINDOW;
    let oldest_repeatable = batches
        .iter()
        .find(|(at, _)| *at >= window_start)
        .map_or(total, |&(_, seq)| seq);
    let received = first.next.unwrap_or(0);
    let resumed_at = again.first.unwrap_or(total);
    let context = format!(
        "{total} lines written; the first run delivered 0..{received} (ids up to {last}); \
         after the restart from line {resumed_at} (ids from {:?}): {} repeated; lines \
         written in the {REPEAT_WINDOW:?} before the kill start at {oldest_repeatable}",
        again.first_id,
        received.saturating_sub(resumed_at)
    );
    eprintln!("sigkill: {context}");
    let no_gap = if resumed_at <= received {
        Ok(())
    } else {
        Err(format!(
            "lines {received}..{resumed_at} were never delivered"
        ))
    };
    let few_repeats = if resumed_at >= oldest_repeatable.min(received) {
        Ok(())
    } else {
        Err(format!(
            "lines {resumed_at}..{oldest_repeatable} were repeated, but were written more \
             than {REPEAT_WINDOW:?} before the kill"
        ))
    };
    assert_all(
        &[
            first.check("client of the first run", 0..received, Dropped::Never),
            no_gap,
            few_repeats,
            again.check(
                "client after the restart",
                resumed_at..total,
                Dropped::Allowed,
            ),
        ],
        &context,
    );
}

#[test]
fn a_last_event_id_from_an_earlier_run_never_skips_what_this_run_holds() {
    const BEFORE: u64 = 10;
    const HELD: u64 = 20;
    let mut server = stateful(HTTP);
    let log = server.path("app.log");
    append(&log, "");
    let first_ids = first_run_lines(&server, BEFORE);
    let last = *first_ids.last().unwrap();
    stop(&mut server);
    server.restart();
    let port = server.http_port("app");

    // The lines of this run reach a live client, so logwisp holds them.
    let mut live = SseClient::connect(port, "/stream", &[]);
    live.skip_connected();
    write_lines(&log, BEFORE..BEFORE + HELD);
    let mut seen = Tally::new(Some(BEFORE)).after_id(last);
    let deadline = Instant::now() + TIMEOUT;
    seen.read_sse(&mut live, BEFORE + HELD, deadline, &AtomicU64::new(0));
    let mut checks = vec![seen.check("live client", BEFORE..BEFORE + HELD, Dropped::Never)];

    // Each resumes with everything this run holds; an `event: dropped` first where
    // entries after its id may be missing. Then live lines follow.
    let cases = [
        ("a small id (5)", 5, Dropped::Required),
        ("the previous run's last id", last, Dropped::Allowed),
        ("an id above any issued", u64::MAX, Dropped::Allowed),
    ];
    let mut clients: Vec<(String, SseClient, Tally)> = cases
        .iter()
        .map(|&(what, id, _)| {
            let mut c = SseClient::connect(port, "/stream", &[&format!("Last-Event-ID: {id}")]);
            c.skip_connected();
            let mut t = Tally::new(Some(BEFORE));
            if id < u64::MAX {
                t = t.after_id(id);
            }
            t.read_sse(&mut c, BEFORE + HELD, deadline, &AtomicU64::new(0));
            (format!("Last-Event-ID {id}: {what}"), c, t)
        })
        .collect();
    write_lines(&log, BEFORE + HELD..BEFORE + HELD + 1);
    let deadline = Instant::now() + TIMEOUT;
    for ((who, c, t), &(_, _, dropped)) in clients.iter_mut().zip(&cases) {
        t.read_sse(c, BEFORE + HELD + 1, deadline, &AtomicU64::new(0));
        checks.push(t.check(who, BEFORE..BEFORE + HELD + 1, dropped));
    }
    assert_all(
        &checks,
        &format!(
            "ids of the first run {}..={last}, of this one from {:?}",
            first_ids[0], seen.first_id
        ),
    );
}
