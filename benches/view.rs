//! Question (issue 12): what do the view features cost end to end — do 100 SSE clients
//! split over 4 distinct filters get their entries at least 0.8× as fast as 100 unfiltered
//! clients, does one WebSocket client keep up with one SSE client (≥ 0.8×), how big is
//! the page, and how much JS heap does it hold after 100 000 lines?
//!
//! `cargo bench --bench view [-- SCENARIO... --quick --rounds N --write|--no-write]`,
//! scenarios: filters websocket page (default: all). Every comparison is made in one run,
//! rounds alternating, and reports medians (the machine is shared). Prints one table and
//! writes it into BENCHMARKS.md (section `view`; not for `--quick` unless `--write`).

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

const SCENARIOS: [&str; 3] = ["filters", "websocket", "page"];

struct Opts {
    scenarios: Vec<String>,
    quick: bool,
    rounds: usize,
    write: Option<bool>,
}

impl Opts {
    fn parse() -> Result<Opts, String> {
        let mut o = Opts {
            scenarios: Vec::new(),
            quick: false,
            rounds: 3,
            write: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--bench" => {}
                "--quick" => o.quick = true,
                "--write" => o.write = Some(true),
                "--no-write" => o.write = Some(false),
                "--rounds" => {
                    o.rounds = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|&n: &usize| n >= 1)
                        .ok_or("--rounds needs a number >= 1")?
                }
                s if SCENARIOS.contains(&s) => o.scenarios.push(s.to_string()),
                s => {
                    return Err(format!(
                        "unknown argument {s:?}; scenarios: {}; flags: --quick --rounds N --write --no-write",
                        SCENARIOS.join(" ")
                    ));
                }
            }
        }
        if o.scenarios.is_empty() {
            o.scenarios = SCENARIOS.iter().map(|s| s.to_string()).collect();
        }
        Ok(o)
    }

    fn wants(&self, s: &str) -> bool {
        self.scenarios.iter().any(|x| x == s)
    }

    fn command(&self, scenario: &str) -> String {
        let mut c = format!("cargo bench --bench view -- {scenario}");
        if self.quick {
            c.push_str(" --quick");
        }
        if self.rounds != 3 && scenario != "page" {
            c.push_str(&format!(" --rounds {}", self.rounds));
        }
        c
    }
}

struct Row {
    scenario: String,
    number: String,
    target: String,
    met: Option<bool>,
    command: String,
}

struct Ctx {
    opts: Opts,
    rows: Vec<Row>,
    details: Vec<String>,
}

impl Ctx {
    fn row(&mut self, scenario: &str, number: String, target: &str, met: Option<bool>, cmd: &str) {
        let row = Row {
            scenario: scenario.to_string(),
            number: number.replace('|', "/"),
            target: target.to_string(),
            met,
            command: self.opts.command(cmd),
        };
        println!(
            "  → {} | {} | {} | {}",
            row.scenario,
            row.number,
            row.target,
            met_text(row.met)
        );
        self.rows.push(row);
    }

    fn detail(&mut self, text: String) {
        println!("    {text}");
        self.details.push(text);
    }
}

fn met_text(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "—",
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

fn main() {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("view: {e}");
            std::process::exit(2);
        }
    };
    raise_nofile();
    println!(
        "view bench: logwisp = {}; scenarios: {}{}",
        logwisp(),
        opts.scenarios.join(" "),
        if opts.quick { " (quick)" } else { "" }
    );
    let machine = machine_note();
    let mut ctx = Ctx {
        opts,
        rows: Vec::new(),
        details: Vec::new(),
    };
    if ctx.opts.wants("filters") {
        filters(&mut ctx);
    }
    if ctx.opts.wants("websocket") {
        websocket(&mut ctx);
    }
    if ctx.opts.wants("page") {
        page(&mut ctx);
    }
    let table = render_table(&ctx.rows);
    println!("\n{table}");
    if ctx.opts.write.unwrap_or(!ctx.opts.quick) {
        match write_benchmarks(&ctx, &machine, &table) {
            Ok(()) => println!("wrote {}", benchmarks_path().display()),
            Err(e) => eprintln!("view: cannot write BENCHMARKS.md: {e}"),
        }
    } else {
        println!("(BENCHMARKS.md not updated: --quick or --no-write; add --write to force)");
    }
}

// ---------------------------------------------------------------------------------------
// Lines with levels

const LEVELS: [&str; 4] = ["ERROR", "WARN", "INFO", "DEBUG"];

/// `count` lines (a multiple of 4): line i is `[LEVEL] seq=…:T …` with LEVEL and file tag
/// T = i % 4 and seq = i / 4 + 1, so a client that takes one level sees its tag's
/// sequence whole, and a client that takes all sees four whole sequences.
fn level_lines(count: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(count as usize * (LINE_LEN + 8));
    for i in 0..count {
        let tag = (i % 4) as usize;
        out.extend_from_slice(format!("[{}] ", LEVELS[tag]).as_bytes());
        data_line(&mut out, i / 4 + 1, tag as u8, None);
    }
    out
}

fn sse_config(dir: &Path) -> String {
    ConfigSpec {
        targets: &file_target(&dir.join("app.log")),
        http: true,
        tcp: false,
        buffer_size: None,
        check_interval_ms: 100,
        heartbeat_secs: None,
    }
    .render()
}

/// Waits until `cond`, giving up after `timeout`.
fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

// ---------------------------------------------------------------------------------------
// filters: 100 SSE clients, unfiltered vs 4 distinct filters

#[derive(Clone, Copy, PartialEq)]
enum Mix {
    /// Every client `/stream`.
    Unfiltered,
    /// Four distinct filters (a literal, a case-insensitive literal, levels with an
    /// exclude, a regex), 25 clients each, each letting every line through: the clients
    /// get exactly what the unfiltered ones get, so the difference is the filters' cost.
    AllPass,
    /// `levels=ERROR`, `…WARN`, `…INFO`, `…DEBUG`: each client gets a quarter.
    OneLevelEach,
}

const ALL_PASS: [&str; 4] = [
    "/stream?filter=seq%3D",
    "/stream?filter=(%3Fi)LOREM",
    "/stream?levels=ERROR,WARN,INFO,DEBUG&exclude=zzz",
    "/stream?filter=seq%3D%5Cd%2B%3A%5Cd",
];

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Mix::Unfiltered => "unfiltered",
            Mix::AllPass => "4 filters, all lines pass",
            Mix::OneLevelEach => "4 filters, one level each",
        }
    }

    fn client(self, i: usize, lines: u64) -> (String, Check) {
        match self {
            Mix::Unfiltered => ("/stream".into(), Check::strict(lines)),
            Mix::AllPass => (ALL_PASS[i % 4].into(), Check::strict(lines)),
            Mix::OneLevelEach => (
                format!("/stream?levels={}", LEVELS[i % 4]),
                Check::strict(lines / 4),
            ),
        }
    }
}

struct Phase {
    secs: f64,
    /// Entries received by all clients together.
    deliveries: u64,
    ok: bool,
    logwisp_cpu: f64,
    reader_cpu: f64,
    machine: String,
    problem: Option<String>,
}

fn filter_phase(mix: Mix, clients: usize, data: &[u8], lines: u64) -> io::Result<Phase> {
    let dir = TempDir::new("view-filters");
    File::create(dir.join("app.log"))?;
    let lw = Logwisp::start(&dir.path, &sse_config(&dir.path), true, false)?;
    let addr = lw.http.expect("http listener");
    let shared = Shared::new();
    let fleet = spawn_fleet_paths(shared.clone(), addr, Proto::Sse, clients, move |i| {
        mix.client(i, lines)
    });
    // `event: connected` comes once a client is subscribed.
    if !wait_for(Duration::from_secs(30), || {
        shared.connected.load(Ordering::Relaxed) >= clients
    }) {
        shared.stop.store(true, Ordering::Relaxed);
        return Err(io::Error::other("clients did not connect"));
    }
    let mut file = OpenOptions::new().append(true).open(dir.join("app.log"))?;
    let cpu0 = lw.cpu();
    let probe = CpuProbe::start(Some(lw.pid));
    let t0 = Instant::now();
    for chunk in data.chunks(1 << 20) {
        file.write_all(chunk)?;
    }
    let mut last = 0;
    let mut moved = Instant::now();
    let all = loop {
        if shared.done.load(Ordering::Relaxed) >= clients {
            break true;
        }
        let now = shared.lines.load(Ordering::Relaxed);
        if now != last {
            (last, moved) = (now, Instant::now());
        } else if moved.elapsed() > Duration::from_secs(15) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let end = if all {
        shared.at(shared.last_done_ns.load(Ordering::Relaxed))
    } else {
        Instant::now()
    };
    let cpu1 = lw.cpu();
    let machine = probe.report();
    shared.stop.store(true, Ordering::Relaxed);
    let result = fleet.join().expect("fleet thread")?;
    let checks = result.checks;
    lw.stop()?;
    let ok = all && checks.iter().all(|c| c.ok() && c.is_done());
    let problem = checks.iter().find_map(|c| {
        c.errors
            .first()
            .map(|e| {
                format!(
                    "{e} ({} more problems; dropped notices: {} for {} entries)",
                    c.errors.len() - 1,
                    c.dropped_events,
                    c.dropped
                )
            })
            .or(c.closed.clone())
    });
    Ok(Phase {
        secs: end.duration_since(t0).as_secs_f64(),
        deliveries: checks.iter().map(|c| c.lines).sum(),
        ok,
        logwisp_cpu: cpu1.secs_since(&cpu0),
        reader_cpu: result.cpu_ns as f64 / 1e9,
        machine,
        problem,
    })
}

fn filters(ctx: &mut Ctx) {
    let clients = 100;
    let lines: u64 = if ctx.opts.quick { 40_000 } else { 300_000 };
    let data = level_lines(lines);
    let mixes = [Mix::Unfiltered, Mix::AllPass, Mix::OneLevelEach];
    // rate[m]: lines/s through to every client, delivery[m]: entries/s summed over clients.
    let mut rate: [Vec<f64>; 3] = Default::default();
    let mut delivery: [Vec<f64>; 3] = Default::default();
    let mut failed = Vec::new();
    for round in 0..ctx.opts.rounds {
        for (m, mix) in mixes.iter().enumerate() {
            match filter_phase(*mix, clients, &data, lines) {
                Ok(p) => {
                    ctx.detail(format!(
                        "filters round {round}, {}: {lines} lines in {:.2} s → {} lines/s in, {} entries/s delivered, logwisp CPU {:.0} % of a core, reader thread {:.2} s CPU in its life; {}{}",
                        mix.name(),
                        p.secs,
                        fmt_rate(lines as f64 / p.secs),
                        fmt_rate(p.deliveries as f64 / p.secs),
                        p.logwisp_cpu / p.secs * 100.0,
                        p.reader_cpu,
                        p.machine,
                        if p.ok { String::new() } else { format!("; NOT every entry: {:?}", p.problem) }
                    ));
                    if p.ok {
                        rate[m].push(lines as f64 / p.secs);
                        delivery[m].push(p.deliveries as f64 / p.secs);
                    } else {
                        failed.push(mix.name());
                    }
                }
                Err(e) => {
                    ctx.detail(format!(
                        "filters round {round}, {}: failed: {e}",
                        mix.name()
                    ));
                    failed.push(mix.name());
                }
            }
        }
    }
    if rate.iter().any(Vec::is_empty) {
        ctx.row(
            "filters · 100 SSE clients",
            format!("failed: {}", failed.join(", ")),
            "≥ 0.8×",
            Some(false),
            "filters",
        );
        return;
    }
    let (d0, d1) = (median(&delivery[0]), median(&delivery[1]));
    ctx.row(
        "filters · 100 SSE clients over 4 distinct filters (every line passes) ÷ 100 unfiltered, aggregate delivery",
        format!(
            "{:.2}× ({} / {} entries/s; medians of {} rounds{})",
            d1 / d0,
            fmt_rate(d1),
            fmt_rate(d0),
            ctx.opts.rounds,
            if failed.is_empty() { String::new() } else { format!("; failed: {}", failed.join(", ")) }
        ),
        "≥ 0.8×",
        Some(d1 / d0 >= 0.8 && failed.is_empty()),
        "filters",
    );
    let (r0, r2) = (median(&rate[0]), median(&rate[2]));
    ctx.row(
        "filters · 100 SSE clients, one level each (4 filters) ÷ 100 unfiltered, lines/s through to every client",
        format!(
            "{:.2}× ({} / {} lines/s; each client gets a quarter: {} entries/s delivered)",
            r2 / r0,
            fmt_rate(r2),
            fmt_rate(r0),
            fmt_rate(median(&delivery[2]))
        ),
        "— (more is better)",
        None,
        "filters",
    );
}

// ---------------------------------------------------------------------------------------
// websocket: one WebSocket client vs one SSE client

const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// One client read on its own thread, blocking: SSE through [`Dechunk`] and the SSE
/// checker; WebSocket frames unwrapped into lines for the same checker.
fn single_client(
    addr: SocketAddr,
    ws: bool,
    lines: u64,
    ready: Arc<AtomicBool>,
) -> std::thread::JoinHandle<io::Result<(Check, Instant, u64)>> {
    std::thread::spawn(move || {
        let cpu0 = thread_cpu_ns();
        let mut sock = TcpStream::connect(addr)?;
        sock.set_read_timeout(Some(Duration::from_secs(15)))?;
        let req = if ws {
            format!(
                "GET /stream HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
        } else {
            "GET /stream HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".into()
        };
        sock.write_all(req.as_bytes())?;
        let mut check = Check::strict(lines);
        let mut dechunk = Dechunk::default();
        let mut buf = vec![0u8; 1 << 20];
        let mut pending: Vec<u8> = Vec::new();
        let mut text: Vec<u8> = Vec::new();
        let mut head_done = false;
        while !check.is_done() {
            let n = match sock.read(&mut buf) {
                Ok(0) => return Err(io::Error::other("EOF")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if !ws {
                let n = dechunk.decode(&mut buf[..n]);
                pending.extend_from_slice(&buf[..n]);
                let used = check.feed(Proto::Sse, &pending, 0);
                pending.drain(..used);
                if check.connected {
                    ready.store(true, Ordering::Relaxed);
                }
                continue;
            }
            pending.extend_from_slice(&buf[..n]);
            if !head_done {
                let Some(end) = memchr::memmem::find(&pending, b"\r\n\r\n") else {
                    continue;
                };
                if !pending.starts_with(b"HTTP/1.1 101 ") {
                    return Err(io::Error::other("no 101"));
                }
                pending.drain(..end + 4);
                head_done = true;
                ready.store(true, Ordering::Relaxed);
            }
            let mut at = 0;
            while pending.len() >= at + 2 {
                let b1 = pending[at + 1] & 0x7F;
                let (head, len) = match b1 {
                    126 if pending.len() >= at + 4 => (
                        4,
                        u16::from_be_bytes([pending[at + 2], pending[at + 3]]) as usize,
                    ),
                    127 if pending.len() >= at + 10 => (
                        10,
                        u64::from_be_bytes(pending[at + 2..at + 10].try_into().unwrap()) as usize,
                    ),
                    126 | 127 => break,
                    n => (2, n as usize),
                };
                if pending.len() < at + head + len {
                    break;
                }
                if pending[at] & 0x0F == 0x1 {
                    text.extend_from_slice(&pending[at + head..at + head + len]);
                    text.push(b'\n');
                }
                at += head + len;
            }
            pending.drain(..at);
            let used = check.feed(Proto::Tcp, &text, 0);
            text.drain(..used);
        }
        Ok((check, Instant::now(), thread_cpu_ns() - cpu0))
    })
}

fn one_client_phase(ws: bool, data: &[u8], lines: u64) -> io::Result<(f64, f64, f64)> {
    let dir = TempDir::new("view-ws");
    File::create(dir.join("app.log"))?;
    let lw = Logwisp::start(&dir.path, &sse_config(&dir.path), true, false)?;
    let ready = Arc::new(AtomicBool::new(false));
    let reader = single_client(lw.http.expect("http"), ws, lines, ready.clone());
    if !wait_for(Duration::from_secs(20), || ready.load(Ordering::Relaxed)) {
        return Err(io::Error::other("client did not connect"));
    }
    let mut file = OpenOptions::new().append(true).open(dir.join("app.log"))?;
    let cpu0 = lw.cpu();
    let t0 = Instant::now();
    for chunk in data.chunks(1 << 20) {
        file.write_all(chunk)?;
    }
    let (check, end, reader_cpu) = reader.join().expect("reader thread")?;
    let cpu1 = lw.cpu();
    lw.stop()?;
    if !check.ok() {
        return Err(io::Error::other(format!(
            "client saw gaps: {:?}",
            check.errors.first()
        )));
    }
    let secs = end.duration_since(t0).as_secs_f64();
    Ok((
        lines as f64 / secs,
        cpu1.secs_since(&cpu0) / secs,
        reader_cpu as f64 / 1e9 / secs,
    ))
}

fn websocket(ctx: &mut Ctx) {
    let lines: u64 = if ctx.opts.quick { 200_000 } else { 2_000_000 };
    let data = level_lines(lines);
    let mut rates: [Vec<f64>; 2] = Default::default();
    let mut failed = Vec::new();
    for round in 0..ctx.opts.rounds {
        for (k, ws) in [false, true].into_iter().enumerate() {
            let name = if ws { "WebSocket" } else { "SSE" };
            match one_client_phase(ws, &data, lines) {
                Ok((rate, lw_cpu, reader_cpu)) => {
                    ctx.detail(format!(
                        "websocket round {round}, 1 {name} client: {} lines/s, logwisp {:.0} % of a core, reader {:.0} %",
                        fmt_rate(rate),
                        lw_cpu * 100.0,
                        reader_cpu * 100.0
                    ));
                    rates[k].push(rate);
                }
                Err(e) => {
                    ctx.detail(format!(
                        "websocket round {round}, 1 {name} client: failed: {e}"
                    ));
                    failed.push(name);
                }
            }
        }
    }
    if rates.iter().any(Vec::is_empty) {
        ctx.row(
            "websocket · 1 WebSocket client ÷ 1 SSE client",
            format!("failed: {}", failed.join(", ")),
            "≥ 0.8×",
            Some(false),
            "websocket",
        );
        return;
    }
    let (sse, ws) = (median(&rates[0]), median(&rates[1]));
    ctx.row(
        "websocket · 1 WebSocket client ÷ 1 SSE client, lines/s",
        format!(
            "{:.2}× ({} / {} lines/s; medians of {} rounds, every line checked{})",
            ws / sse,
            fmt_rate(ws),
            fmt_rate(sse),
            ctx.opts.rounds,
            if failed.is_empty() {
                String::new()
            } else {
                format!("; failed: {}", failed.join(", "))
            }
        ),
        "≥ 0.8×",
        Some(ws / sse >= 0.8 && failed.is_empty()),
        "websocket",
    );
}

// ---------------------------------------------------------------------------------------
// page: size, and JS heap after 100 000 lines (the browser harness)

fn get(addr: SocketAddr, path: &str) -> io::Result<(String, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let end = memchr::memmem::find(&raw, b"\r\n\r\n").ok_or_else(|| io::Error::other("no head"))?;
    Ok((
        String::from_utf8_lossy(&raw[..end]).into_owned(),
        raw[end + 4..].to_vec(),
    ))
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn page(ctx: &mut Ctx) {
    let dir = TempDir::new("view-page");
    let config = ConfigSpec {
        targets: &dir_target(&dir.path, "*.log"),
        http: true,
        tcp: false,
        buffer_size: None,
        check_interval_ms: 100,
        heartbeat_secs: None,
    }
    .render();
    let lw = match Logwisp::start(&dir.path, &config, true, false) {
        Ok(lw) => lw,
        Err(e) => {
            ctx.row(
                "page · size",
                format!("failed: {e}"),
                "≤ 50 KB",
                Some(false),
                "page",
            );
            return;
        }
    };
    let addr = lw.http.expect("http");
    match get(addr, "/") {
        Ok((head, body)) => {
            let n = body.len();
            let external = ["http://", "https://"]
                .iter()
                .any(|p| memchr::memmem::find(&body, p.as_bytes()).is_some());
            ctx.row(
                "page · size of GET / (one response, no other request)",
                format!(
                    "{n} bytes ({:.1} KiB){}",
                    n as f64 / 1024.0,
                    if external {
                        "; HAS an external URL"
                    } else {
                        ""
                    }
                ),
                "≤ 50 KB",
                Some(n <= 50 * 1024 && !external && head.starts_with("HTTP/1.1 200")),
                "page",
            );
        }
        Err(e) => ctx.row(
            "page · size",
            format!("failed: {e}"),
            "≤ 50 KB",
            Some(false),
            "page",
        ),
    }
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let (Some(node), Some(chromium)) = (
        find_program("node"),
        find_program("chromium").or_else(|| find_program("chromium-browser")),
    ) else {
        ctx.row(
            "page · JS heap after 100 000 lines",
            "not measured: needs node and chromium (apt-get install chromium nodejs npm)".into(),
            "bounded",
            None,
            "page",
        );
        return;
    };
    if !browser_dir.join("node_modules/playwright-core").exists() {
        ctx.row(
            "page · JS heap after 100 000 lines",
            "not measured: run `npm ci` in tests/browser first".into(),
            "bounded",
            None,
            "page",
        );
        return;
    }
    let out = Command::new(node)
        .arg("page_test.mjs")
        .arg("--base")
        .arg(format!("http://{addr}/"))
        .arg("--log-dir")
        .arg(&dir.path)
        .arg("--chromium")
        .arg(chromium)
        .args(["--only", "row cap"])
        .current_dir(&browser_dir)
        .stdin(Stdio::null())
        .output();
    let text = match out {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("cannot run node: {e}"),
    };
    let _ = lw.stop();
    let _ = fs::remove_dir_all(&dir.path);
    // "… JS heap 1.2 MiB at start, 1.4 MiB after 100 000, 1.4 MiB after 200 000; …"
    let found = text.lines().find(|l| l.contains("JS heap ")).map(|l| {
        let heap = l
            .split("JS heap ")
            .nth(1)
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("");
        let dom = l
            .split("DOM nodes ")
            .nth(1)
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("");
        let shown = l
            .split("100 000 entries shown in ")
            .nth(1)
            .unwrap_or("")
            .split(' ')
            .next()
            .unwrap_or("?");
        (heap.to_string(), dom.to_string(), shown.to_string())
    });
    let passed = text.contains("1 passed, 0 failed");
    match found {
        Some((heap, dom, shown)) => {
            ctx.row(
                "page · JS heap after 100 000 lines (Chromium, after a forced GC)",
                format!("{heap}; DOM nodes {dom}; at most 1000 rows"),
                "bounded: < 16 MiB and flat from 100 000 to 200 000 (±2 MiB)",
                Some(passed),
                "page",
            );
            ctx.detail(format!(
                "page: the harness's `row cap` test against the release binary, 100 000 entries (1 in 1000 of 20 KB) shown in {shown} s at the writer's pace; its output: {}",
                text.lines().find(|l| l.contains("JS heap ")).unwrap_or("").trim()
            ));
        }
        None => ctx.row(
            "page · JS heap after 100 000 lines",
            format!(
                "harness failed: {}",
                text.lines().rev().take(6).collect::<Vec<_>>().join(" / ")
            ),
            "bounded",
            Some(false),
            "page",
        ),
    }
}

// ---------------------------------------------------------------------------------------
// BENCHMARKS.md

fn render_table(rows: &[Row]) -> String {
    common::markdown_table(rows.iter().map(|r| {
        [
            r.scenario.as_str(),
            r.number.as_str(),
            r.target.as_str(),
            met_text(r.met),
            r.command.as_str(),
        ]
    }))
}

fn write_benchmarks(ctx: &Ctx, machine: &str, table: &str) -> io::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench" && a != "--write")
        .collect();
    let mut body = String::from("## Issue 12: filters, WebSocket and the page\n\n");
    body.push_str(&format!(
        "Run: {} · commit {} · `cargo bench --bench view{}`\n\n",
        today(),
        git_commit(),
        if args.is_empty() {
            String::new()
        } else {
            format!(" -- {}", args.join(" "))
        }
    ));
    body.push_str(&format!("Machine: {machine}.\n\n"));
    body.push_str(
        "Lines are `[LEVEL] seq=NNNNNNNN:T ` + filler (about 108 bytes), the level cycling \
ERROR, WARN, INFO, DEBUG; every client checks every sequence number it is owed. One stream, \
HTTP only, `buffer_size = 1000000`, a fresh logwisp per measurement, time from the first \
write to the last entry received by the last client. Compared runs alternate within one run \
and the medians are compared. The filters are `filter=seq%3D` (a literal), \
`filter=(%3Fi)LOREM` (a case-insensitive literal), `levels=ERROR,WARN,INFO,DEBUG&exclude=zzz` \
and `filter=seq%3D%5Cd%2B%3A%5Cd` (a regex), 25 clients each, all letting every line \
through, so filtered and unfiltered clients receive the same entries.\n\n",
    );
    body.push_str(table);
    body.push_str("\nDetails of this run:\n\n");
    for d in &ctx.details {
        body.push_str(&format!("- {d}\n"));
    }
    write_section("view", &body)
}
