//! Question: over a long run with steady writes, rename and copytruncate rotations and clients coming and going, does every client that keeps up still get every line in order, do only stalled clients lose entries (and are those losses counted), and do memory and errors stay flat?
//!
//! `cargo bench --bench soak -- --minutes N [--rate LINES_PER_S] [--files 2|3] [--seed S]
//! [--no-write]`. Three "keeper" clients (2 SSE, 1 TCP) must receive every line of every
//! file in order; churners (SSE and TCP) connect and leave at random, SSE ones sometimes
//! resume with `Last-Event-ID` and must continue without a gap; one client stalls for a
//! while every 5 minutes, so logwisp must skip it ahead and count what it missed. Prints a
//! summary and writes it into the "soak" section of BENCHMARKS.md.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const KEEPERS: [(Proto, &str); 3] = [
    (Proto::Sse, "keeper SSE 1"),
    (Proto::Sse, "keeper SSE 2"),
    (Proto::Tcp, "keeper TCP"),
];
const RENAME_EVERY: Duration = Duration::from_secs(30);
const COPYTRUNCATE_EVERY: Duration = Duration::from_secs(45);
/// copytruncate: the writer pauses, waits this long (so logwisp has read what was
/// written: lines written after the copy and before the truncate are lost by any tailer),
/// copies, truncates, resumes.
const COPYTRUNCATE_SETTLE: Duration = Duration::from_millis(100);
const STALL_EVERY: Duration = Duration::from_secs(300);
const STALL_FIRST: Duration = Duration::from_secs(10);
const MAX_CHURNERS: usize = 10;
const BUFFER_SIZE: usize = 5000;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

struct Opts {
    /// None: no `--minutes` given, so a plain `cargo bench` does not start a long soak.
    minutes: Option<f64>,
    rate: u64,
    files: usize,
    seed: u64,
    write: bool,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        minutes: None,
        rate: 2000,
        files: 3,
        seed: realtime_ns() | 1,
        write: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> Result<f64, String> {
            args.next()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v > 0.0)
                .ok_or(format!("{what} needs a positive number"))
        };
        match a.as_str() {
            "--bench" | "--quick" => {}
            "--minutes" => o.minutes = Some(num("--minutes")?),
            "--rate" => o.rate = num("--rate")? as u64,
            "--files" => o.files = (num("--files")? as usize).clamp(1, 3),
            "--seed" => o.seed = num("--seed")? as u64 | 1,
            "--no-write" => o.write = false,
            s => {
                return Err(format!(
                    "unknown argument {s:?}; usage: --minutes N [--rate N] [--files N] [--seed N] [--no-write]"
                ));
            }
        }
    }
    Ok(o)
}

/// xorshift64*: reproducible churn from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What the writer did, shared with the main thread.
#[derive(Default)]
struct WriterState {
    written: [AtomicU64; 3],
    renames: AtomicU64,
    copytruncates: AtomicU64,
    /// Copytruncates of a file that was empty (just renamed and recreated in the same
    /// tick): nothing to detect and nothing to lose, so no notice is expected.
    empty_copytruncates: AtomicU64,
    stop: AtomicBool,
    errors: Mutex<Vec<String>>,
    /// Worst lateness behind the pacing schedule, ns.
    max_late_ns: AtomicU64,
}

fn file_name(i: usize) -> String {
    format!("{}.log", (b'a' + i as u8) as char)
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Writes `rate` lines/s round-robin over the files (one `write()` per line) with
/// absolute deadlines, and rotates: rename+create every 30 s, copytruncate every 45 s.
fn writer(dir: PathBuf, files: usize, rate: u64, st: Arc<WriterState>) {
    let paths: Vec<PathBuf> = (0..files).map(|i| dir.join(file_name(i))).collect();
    let mut fds: Vec<File> = match paths.iter().map(|p| open_append(p)).collect() {
        Ok(f) => f,
        Err(e) => {
            st.errors.lock().unwrap().push(format!("open: {e}"));
            return;
        }
    };
    let tick_ns = 10_000_000u64;
    let per_tick = (rate / 100).max(1);
    let start = mono_ns();
    let started = Instant::now();
    let mut next_rename = RENAME_EVERY;
    let mut next_copytruncate = COPYTRUNCATE_EVERY;
    let (mut rename_turn, mut ct_turn) = (0usize, 1usize);
    let mut seq = [0u64; 3];
    let mut line = Vec::with_capacity(LINE_LEN);
    let mut rr = 0usize;
    let mut tick = 0u64;
    let fail = |st: &WriterState, what: String| {
        let mut e = st.errors.lock().unwrap();
        if e.len() < 20 {
            e.push(what);
        }
    };
    while !st.stop.load(Ordering::Relaxed) {
        tick += 1;
        let deadline = start + tick * tick_ns;
        sleep_until_mono_ns(deadline);
        st.max_late_ns
            .fetch_max(mono_ns().saturating_sub(deadline), Ordering::Relaxed);
        for _ in 0..per_tick {
            let f = rr % files;
            rr += 1;
            seq[f] += 1;
            line.clear();
            data_line(&mut line, seq[f], f as u8, None);
            match fds[f].write_all(&line) {
                Ok(()) => {
                    st.written[f].fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => fail(&st, format!("write {}: {e}", paths[f].display())),
            }
        }
        let elapsed = started.elapsed();
        if elapsed >= next_rename {
            next_rename += RENAME_EVERY;
            let f = rename_turn % files;
            rename_turn += 1;
            let rotated = paths[f].with_extension("log.1");
            match fs::rename(&paths[f], &rotated).and_then(|()| open_append(&paths[f])) {
                Ok(new) => {
                    fds[f] = new;
                    st.renames.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => fail(&st, format!("rename rotation: {e}")),
            }
        }
        if elapsed >= next_copytruncate {
            next_copytruncate += COPYTRUNCATE_EVERY;
            let f = ct_turn % files;
            ct_turn += 1;
            std::thread::sleep(COPYTRUNCATE_SETTLE);
            let copy = paths[f].with_extension("log.1");
            let was_empty = fds[f].metadata().is_ok_and(|m| m.len() == 0);
            match fs::copy(&paths[f], &copy).and_then(|_| fds[f].set_len(0)) {
                Ok(()) if was_empty => {
                    st.empty_copytruncates.fetch_add(1, Ordering::Relaxed);
                }
                Ok(()) => {
                    st.copytruncates.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => fail(&st, format!("copytruncate: {e}")),
            }
        }
    }
}

/// One churner's life so far (kept across SSE resumes).
struct Churner {
    key: usize,
    proto: Proto,
}

/// Totals over every churner connection.
#[derive(Default, Debug)]
struct ChurnStats {
    connects: u64,
    sse: u64,
    tcp: u64,
    resumes: u64,
    lines: u64,
    missed: u64,
    disorder: u64,
    dropped: u64,
    unexpected_closes: u64,
    errors: Vec<String>,
}

impl ChurnStats {
    fn absorb(&mut self, c: &Check) {
        self.lines += c.lines;
        self.missed += c.missed;
        self.disorder += c.disorder;
        self.dropped += c.dropped;
        if self.errors.len() < 10 {
            self.errors.extend(c.errors.iter().take(3).cloned());
        }
    }
}

struct ClientsOut {
    keepers: Vec<Check>,
    churn: ChurnStats,
    staller: Vec<Check>,
    fatal: Option<String>,
}

/// Shared between the client thread and main.
struct Live {
    keeper_lines: [AtomicU64; 3],
    warm: AtomicU64,
    churners: AtomicU64,
    /// Set once the writer stopped and keepers caught up: SIGTERM comes next, so closes
    /// are expected from then on.
    shutting_down: AtomicBool,
    stop: AtomicBool,
}

fn clients_thread(
    http: SocketAddr,
    tcp: SocketAddr,
    seed: u64,
    live: Arc<Live>,
) -> io::Result<ClientsOut> {
    let mut fleet = Fleet::new()?;
    let mut rng = Rng(seed);
    let mut keepers = Vec::new();
    for (proto, _) in KEEPERS {
        let addr = if proto == Proto::Sse { http } else { tcp };
        keepers.push(fleet.connect(addr, proto, "/stream", None, Check::strict(0))?);
    }
    let mut churners: Vec<Churner> = Vec::new();
    let mut churn = ChurnStats::default();
    let mut stalled: Vec<Check> = Vec::new();
    let mut staller: Option<(usize, Instant)> = None; // key, resume at
    let started = Instant::now();
    let mut next_stall = STALL_FIRST;
    let mut next_churn = Instant::now() + Duration::from_millis(500);
    let mut fatal = None;
    while !live.stop.load(Ordering::Relaxed) {
        fleet.turn(Duration::from_millis(10))?;
        let shutting = live.shutting_down.load(Ordering::Relaxed);
        for (i, &k) in keepers.iter().enumerate() {
            if let Some(c) = fleet.get(k) {
                live.keeper_lines[i].store(c.check.lines, Ordering::Relaxed);
                if !c.open && !shutting && fatal.is_none() {
                    fatal = Some(format!(
                        "{} closed: {}",
                        KEEPERS[i].1,
                        c.check.closed.clone().unwrap_or_default()
                    ));
                }
            }
        }
        let warm = keepers
            .iter()
            .filter(|&&k| fleet.get(k).is_some_and(|c| c.check.warmups > 0))
            .count();
        live.warm.store(warm as u64, Ordering::Relaxed);
        if warm < keepers.len() || shutting {
            continue;
        }
        // A stalled client: stops reading for a while, then drains and stays.
        if started.elapsed() >= next_stall && staller.is_none() {
            next_stall += STALL_EVERY;
            let key = fleet.connect(http, Proto::Sse, "/stream", None, Check::loose(0))?;
            if let Some(c) = fleet.get_mut(key) {
                c.paused = true;
            }
            staller = Some((key, Instant::now() + Duration::from_secs(20)));
        }
        if let Some((key, at)) = staller
            && Instant::now() >= at
        {
            if let Some(c) = fleet.get_mut(key)
                && c.paused
            {
                c.paused = false;
                fleet.drain(key);
                staller = Some((key, Instant::now() + Duration::from_secs(10)));
            } else if let Some(c) = fleet.remove(key) {
                stalled.push(c.check);
                staller = None;
            }
        }
        if Instant::now() < next_churn {
            continue;
        }
        next_churn = Instant::now() + Duration::from_millis(200 + rng.below(800));
        // Churners that closed on their own are a problem (logwisp never closes a client
        // that keeps up).
        churners.retain(|ch| {
            let open = fleet.get(ch.key).is_some_and(|c| c.open);
            if !open && let Some(c) = fleet.remove(ch.key) {
                churn.unexpected_closes += 1;
                churn.absorb(&c.check);
                if churn.errors.len() < 10 {
                    churn.errors.push(format!(
                        "churner closed by the server: {}",
                        c.check.closed.unwrap_or_default()
                    ));
                }
            }
            open
        });
        let grow = churners.len() < 3 || (churners.len() < MAX_CHURNERS && rng.chance(55));
        if grow {
            let proto = if rng.chance(60) {
                Proto::Sse
            } else {
                Proto::Tcp
            };
            let addr = if proto == Proto::Sse { http } else { tcp };
            let key = fleet.connect(addr, proto, "/stream", None, Check::loose(0))?;
            churn.connects += 1;
            match proto {
                Proto::Sse => churn.sse += 1,
                Proto::Tcp => churn.tcp += 1,
            }
            churners.push(Churner { key, proto });
        } else if !churners.is_empty() {
            let i = rng.below(churners.len() as u64) as usize;
            let ch = churners.swap_remove(i);
            let Some(c) = fleet.remove(ch.key) else {
                continue;
            };
            let mut check = c.check;
            if ch.proto == Proto::Sse && check.last_id > 0 && rng.chance(50) {
                // Resume where it left off: the sequence must continue without a gap.
                let last = check.last_id;
                check.reconnect();
                let key = fleet.connect(http, Proto::Sse, "/stream", Some(last), check)?;
                churn.resumes += 1;
                churners.push(Churner {
                    key,
                    proto: Proto::Sse,
                });
            } else {
                churn.absorb(&check);
            }
        }
        live.churners
            .store(churners.len() as u64, Ordering::Relaxed);
    }
    for ch in churners {
        if let Some(c) = fleet.remove(ch.key) {
            churn.absorb(&c.check);
        }
    }
    if let Some((key, _)) = staller
        && let Some(c) = fleet.remove(key)
    {
        stalled.push(c.check);
    }
    Ok(ClientsOut {
        keepers: keepers
            .iter()
            .filter_map(|&k| fleet.get(k).map(|c| c.check.clone()))
            .collect(),
        churn,
        staller: stalled,
        fatal,
    })
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    };
    let Some(minutes) = opts.minutes else {
        println!(
            "soak: skipped (it runs for as long as asked: `cargo bench --bench soak -- --minutes 30`, or `just soak 30`)"
        );
        return;
    };
    match run(&opts, minutes) {
        Ok(pass) => {
            if !pass {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(1);
        }
    }
}

fn run(opts: &Opts, minutes: f64) -> io::Result<bool> {
    raise_nofile();
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let machine = machine_note();
    let started_at = today();
    println!(
        "soak: {:.1} min, {} lines/s over {} files, seed {}",
        minutes, opts.rate, opts.files, opts.seed
    );
    let dir = TempDir::new("soak");
    let logs = dir.join("logs");
    fs::create_dir_all(&logs)?;
    for i in 0..opts.files {
        File::create(logs.join(file_name(i)))?;
    }
    let config = ConfigSpec {
        targets: &dir_target(&logs, "*.log"),
        http: true,
        tcp: true,
        buffer_size: Some(BUFFER_SIZE),
        check_interval_ms: 100,
        heartbeat_secs: Some(5),
    }
    .render();
    let mut lw = Logwisp::start(&dir.path, &config, true, true)?;
    let (http, tcp) = (lw.http.expect("http"), lw.tcp.expect("tcp"));
    let live = Arc::new(Live {
        keeper_lines: Default::default(),
        warm: AtomicU64::new(0),
        churners: AtomicU64::new(0),
        shutting_down: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let clients = {
        let live = live.clone();
        let seed = opts.seed;
        std::thread::spawn(move || clients_thread(http, tcp, seed, live))
    };
    // Warm up through the first file until every keeper is subscribed.
    {
        let mut f = open_append(&logs.join(file_name(0)))?;
        let line = warmup_line();
        let deadline = Instant::now() + Duration::from_secs(30);
        while live.warm.load(Ordering::Relaxed) < KEEPERS.len() as u64 {
            if Instant::now() > deadline {
                live.stop.store(true, Ordering::Relaxed);
                return Err(io::Error::other("keepers never saw a warm-up line"));
            }
            f.write_all(&line)?;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let wst = Arc::new(WriterState::default());
    let cpu0 = lw.cpu();
    let t0 = Instant::now();
    let writer_handle = {
        let (dir, files, rate, st) = (logs.clone(), opts.files, opts.rate, wst.clone());
        std::thread::spawn(move || writer(dir, files, rate, st))
    };
    let mut rss: Vec<(u64, Mem)> = vec![(0, lw.mem())];
    let mut died = None;
    let mut next_sample = SAMPLE_EVERY;
    while t0.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(200));
        if !lw.alive() {
            died = Some(format!(
                "logwisp exited during the run; stderr: {}",
                lw.stderr_lines().join(" | ")
            ));
            break;
        }
        if t0.elapsed() >= next_sample {
            next_sample += SAMPLE_EVERY;
            let m = lw.mem();
            rss.push((t0.elapsed().as_secs(), m));
            let written: u64 = wst.written.iter().map(|w| w.load(Ordering::Relaxed)).sum();
            let keepers: Vec<String> = live
                .keeper_lines
                .iter()
                .map(|k| k.load(Ordering::Relaxed).to_string())
                .collect();
            println!(
                "[{:>5} s] written {written} · keepers {} · churners {} · rotations {}+{} · RSS {} (HWM {})",
                t0.elapsed().as_secs(),
                keepers.join("/"),
                live.churners.load(Ordering::Relaxed),
                wst.renames.load(Ordering::Relaxed),
                wst.copytruncates.load(Ordering::Relaxed),
                mib(m.rss),
                mib(m.hwm)
            );
        }
    }
    wst.stop.store(true, Ordering::Relaxed);
    let _ = writer_handle.join();
    let elapsed = t0.elapsed();
    let written: Vec<u64> = wst
        .written
        .iter()
        .take(opts.files)
        .map(|w| w.load(Ordering::Relaxed))
        .collect();
    let total_written: u64 = written.iter().sum();
    // Let keepers catch up.
    let catch_up = Instant::now();
    while catch_up.elapsed() < Duration::from_secs(15)
        && live
            .keeper_lines
            .iter()
            .any(|k| k.load(Ordering::Relaxed) < total_written)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let cpu1 = lw.cpu();
    let final_mem = lw.mem();
    rss.push((t0.elapsed().as_secs(), final_mem));
    let status = lw.status();
    live.shutting_down.store(true, Ordering::Relaxed);
    let stderr_before_stop = lw.stderr_lines();
    let exit = if died.is_none() {
        Some(lw.stop()?)
    } else {
        None
    };
    // Give the readers a moment to see the goodbye.
    std::thread::sleep(Duration::from_millis(300));
    live.stop.store(true, Ordering::Relaxed);
    let out = clients.join().expect("clients thread")?;

    // --- verdict ------------------------------------------------------------------------
    let renames = wst.renames.load(Ordering::Relaxed);
    let copytruncates = wst.copytruncates.load(Ordering::Relaxed);
    let empty_copytruncates = wst.empty_copytruncates.load(Ordering::Relaxed);
    let rotations = renames + copytruncates;
    let mut errors: Vec<String> = Vec::new();
    errors.extend(wst.errors.lock().unwrap().iter().cloned());
    if let Some(d) = &died {
        errors.push(d.clone());
    }
    if let Some(f) = &out.fatal {
        errors.push(f.clone());
    }
    let mut lines = Vec::new();
    lines.push(format!(
        "- Duration {:.1} min at {} lines/s over {} files (`a.log`…, directory target `*.log`), buffer_size {BUFFER_SIZE}, heartbeats every 5 s; seed {}.",
        elapsed.as_secs_f64() / 60.0,
        opts.rate,
        opts.files,
        opts.seed
    ));
    lines.push(format!(
        "- Rotations: {renames} rename+create (every 30 s), {copytruncates} copytruncate (every 45 s, writer paused {} ms before copy+truncate), plus {empty_copytruncates} copytruncate of a file renamed and recreated in the same tick (still empty: no rotation to see, none expected).",
        COPYTRUNCATE_SETTLE.as_millis()
    ));
    lines.push(format!(
        "- Lines written: {total_written} ({}); writer at most {:.1} ms behind schedule.",
        written
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{} {w}", file_name(i)))
            .collect::<Vec<_>>()
            .join(", "),
        wst.max_late_ns.load(Ordering::Relaxed) as f64 / 1e6
    ));
    for (i, k) in out.keepers.iter().enumerate() {
        let name = KEEPERS[i].1;
        let short: Vec<String> = written
            .iter()
            .enumerate()
            .filter(|&(f, &w)| k.lines_per_file[f] != w)
            .map(|(f, &w)| format!("{}: {} of {w}", file_name(f), k.lines_per_file[f]))
            .collect();
        let complete = short.is_empty();
        lines.push(format!(
            "- {name}: received {} of {total_written} lines, missed {}, out of order {}, dropped {}, rotation notices {} (rotations {rotations}), heartbeats {}{}{}",
            k.lines,
            k.missed,
            k.disorder,
            k.dropped,
            k.notices,
            k.heartbeats,
            if KEEPERS[i].0 == Proto::Sse {
                format!(", shutdown `event: disconnect` {}", if k.disconnect { "received" } else { "NOT received" })
            } else {
                String::new()
            },
            if complete { String::new() } else { format!(" — short: {}", short.join(", ")) }
        ));
        if !complete || !k.ok() {
            errors.push(format!(
                "{name} did not get every line: missed {}, out of order {}, dropped {}{}",
                k.missed,
                k.disorder,
                k.dropped,
                k.errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ));
        }
        if k.notices != rotations {
            errors.push(format!(
                "{name}: {} rotation notices for {rotations} rotations",
                k.notices
            ));
        }
        if KEEPERS[i].0 == Proto::Sse && exit.is_some() && !k.disconnect {
            errors.push(format!("{name}: no `event: disconnect` at shutdown"));
        }
    }
    let ch = &out.churn;
    lines.push(format!(
        "- Churners: {} connections ({} SSE, {} TCP), {} SSE resumes with Last-Event-ID; {} lines received, gaps {}, out of order {}, dropped {}, closed by the server {}.",
        ch.connects, ch.sse, ch.tcp, ch.resumes, ch.lines, ch.missed, ch.disorder, ch.dropped, ch.unexpected_closes
    ));
    if ch.missed > 0 || ch.disorder > 0 || ch.unexpected_closes > 0 {
        errors.push(format!(
            "churners saw gaps/disorder/closes: {}",
            ch.errors.join("; ")
        ));
    }
    let stall_dropped: u64 = out.staller.iter().map(|c| c.dropped).sum();
    let stall_missed: u64 = out.staller.iter().map(|c| c.missed).sum();
    let status_dropped = status
        .as_ref()
        .ok()
        .and_then(|s| s["delivery"]["dropped_entries"].as_u64());
    lines.push(format!(
        "- Stalled client ({} stall{} of 20 s): skipped ahead {stall_dropped} entries (announced in `event: dropped`), sequence gaps seen {stall_missed}; /status dropped_entries {}.",
        out.staller.len(),
        if out.staller.len() == 1 { "" } else { "s" },
        status_dropped.map_or("unavailable".to_string(), |d| d.to_string())
    ));
    match (&status, status_dropped) {
        (Err(e), _) => errors.push(format!("GET /status failed: {e}")),
        (Ok(_), Some(d)) if d != stall_dropped + ch.dropped => errors.push(format!(
            "/status dropped_entries {d} ≠ drops announced to clients {}",
            stall_dropped + ch.dropped
        )),
        _ => {}
    }
    if stall_missed > stall_dropped {
        errors.push(format!(
            "stalled client lost {stall_missed} lines but was told of {stall_dropped}"
        ));
    }
    let first = rss.first().map(|r| r.1).unwrap_or_default();
    let last = rss.last().map(|r| r.1).unwrap_or_default();
    let max = rss.iter().map(|r| r.1.rss).max().unwrap_or(0);
    // After the first sample (client buffers warm up), RSS must not keep growing.
    let settled = rss.get(1).map(|r| r.1.rss).unwrap_or(first.rss);
    let flat = last.rss <= settled + settled / 10 + 256 * 1024;
    lines.push(format!(
        "- RSS every 10 s: first {} · after 10 s {} · last {} · max {} · VmHWM {} — {} ({} samples, MiB: {}).",
        mib(first.rss),
        mib(settled),
        mib(last.rss),
        mib(max),
        mib(last.hwm),
        if flat { "flat" } else { "GROWING" },
        rss.len(),
        // Every sample for short runs, one a minute for long ones.
        rss.iter()
            .enumerate()
            .filter(|(i, _)| rss.len() <= 40 || i % 6 == 0 || *i == rss.len() - 1)
            .map(|(_, (t, m))| format!("{t}s {:.2}", m.rss as f64 / 1048576.0))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if !flat {
        errors.push(format!(
            "RSS grew from {} to {}",
            mib(settled),
            mib(last.rss)
        ));
    }
    let cpu = cpu1.secs_since(&cpu0);
    lines.push(format!(
        "- logwisp CPU {:.1} s = {:.2} % of a core.",
        cpu,
        cpu / elapsed.as_secs_f64() * 100.0
    ));
    let diagnostics: Vec<String> = stderr_before_stop
        .iter()
        .filter(|l| !l.contains("shutting down"))
        .cloned()
        .collect();
    if !diagnostics.is_empty() {
        errors.push(format!(
            "logwisp stderr: {}",
            diagnostics
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    match exit {
        Some(st) if st.success() => lines.push("- SIGTERM: exit 0.".into()),
        Some(st) => errors.push(format!("logwisp after SIGTERM: {st}")),
        None => {}
    }
    lines.push(format!(
        "- Errors: {}{}",
        errors.len(),
        if errors.is_empty() {
            String::new()
        } else {
            format!(
                " — {}",
                errors
                    .iter()
                    .map(|e| e.replace('|', "/"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    ));
    let pass = errors.is_empty();
    let command = format!(
        "cargo bench --bench soak -- --minutes {}{}",
        minutes,
        if opts.rate != 2000 {
            format!(" --rate {}", opts.rate)
        } else {
            String::new()
        }
    );
    let body = format!(
        "## Soak\n\nRun: {started_at} · commit {} · `{command}` · **{}**\n\nMachine: {machine}.\n\n{}\n",
        git_commit(),
        if pass { "PASS" } else { "FAIL" },
        lines.join("\n")
    );
    println!("\n{body}");
    if opts.write {
        match write_section("soak", &body) {
            Ok(()) => println!("wrote {}", benchmarks_path().display()),
            Err(e) => eprintln!("soak: cannot write BENCHMARKS.md: {e}"),
        }
    }
    Ok(pass)
}
