//! Question: end to end on this machine, with the default `buffer_size`, how many lines/s does logwisp carry from a file to 1, 100 and 1 000 real clients without losing one (also in a 10 M-line burst, and to a client catching up from disk), how close is that to `tail -F | socat` (one client; and 100 clients of `socat …,fork EXEC:'tail -F'`, a `tail` each), what does a JSON line cost, how prompt is it (write→receive latency, next to the `socat …,fork` pipeline's and a bare socket's, also in a 10 000-file directory), what does it cost (RSS idle, per client and in a burst, idle wake-ups and CPU, CPU per line, binary size), and how many journal entries/s does it carry to one TCP client next to `journalctl -f -o json` alone (and what does an idle journal target cost)?
//!
//! `cargo bench --bench load [-- SCENARIO... --quick --idle-secs N --client-threads N
//! --note TEXT --write|--no-write]`, scenarios: throughput burst catchup ceiling floor
//! latency append memory idle journal size (default: all). Prints one table and writes it into
//! BENCHMARKS.md (not for `--quick` unless `--write`). With both throughput and floor, the
//! ratio and CPU-per-line rows are medians of rounds (5, or 3 with `--quick`) in which logwisp
//! and the pipelines take turns.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;

const GROUPS: [&str; 13] = [
    "throughput",
    "burst",
    "catch-up",
    "ceiling",
    "floor",
    "ratio",
    "cpu",
    "latency",
    "append",
    "memory",
    "idle",
    "journal",
    "size",
];
const SCENARIOS: [&str; 11] = [
    "throughput",
    "burst",
    "catchup",
    "ceiling",
    "floor",
    "latency",
    "append",
    "memory",
    "idle",
    "journal",
    "size",
];
/// Rounds of the ratio scenarios in a full run (the table's ratios are their medians).
const RATIO_ROUNDS: usize = 5;
/// Issue 8: a client that keeps reading gets a 10 M-line burst whole within this RSS.
const BURST_HWM_MAX: u64 = 16 * 1024 * 1024;
/// Issue 9's idle targets (`check_interval_ms = 100`, no client connected).
const IDLE_WAKEUPS_MAX: f64 = 0.2;
const IDLE_CPU_PCT_1_FILE: f64 = 0.05;
const IDLE_CPU_PCT_10K_FILES: f64 = 0.1;

struct Opts {
    scenarios: Vec<String>,
    quick: bool,
    idle_secs: u64,
    client_threads: usize,
    note: Option<String>,
    write: Option<bool>,
}

impl Opts {
    fn parse() -> Result<Opts, String> {
        let mut o = Opts {
            scenarios: Vec::new(),
            quick: false,
            idle_secs: 60,
            client_threads: 1,
            note: None,
            write: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--bench" => {} // passed by `cargo bench`
                "--quick" => o.quick = true,
                "--write" => o.write = Some(true),
                "--no-write" => o.write = Some(false),
                "--idle-secs" => {
                    o.idle_secs = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--idle-secs needs a number of seconds")?
                }
                "--client-threads" => {
                    o.client_threads = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|&n: &usize| n >= 1)
                        .ok_or("--client-threads needs a number >= 1")?
                }
                "--note" => o.note = Some(args.next().ok_or("--note needs text")?),
                s if SCENARIOS.contains(&s) => o.scenarios.push(s.to_string()),
                s => {
                    return Err(format!(
                        "unknown argument {s:?}; scenarios: {}; flags: --quick --idle-secs N --client-threads N --note TEXT --write --no-write",
                        SCENARIOS.join(" ")
                    ));
                }
            }
        }
        if o.scenarios.is_empty() {
            o.scenarios = SCENARIOS.iter().map(|s| s.to_string()).collect();
        }
        if o.quick && o.idle_secs == 60 {
            o.idle_secs = 5;
        }
        Ok(o)
    }

    fn wants(&self, s: &str) -> bool {
        self.scenarios.iter().any(|x| x == s)
    }

    /// The command that reproduces one scenario with these options.
    fn command(&self, scenarios: &str) -> String {
        let mut c = format!("cargo bench --bench load -- {scenarios}");
        if self.quick {
            c.push_str(" --quick");
        }
        let default_idle = if self.quick { 5 } else { 60 };
        if scenarios.contains("idle") && self.idle_secs != default_idle {
            c.push_str(&format!(" --idle-secs {}", self.idle_secs));
        }
        if self.client_threads != 1
            && (scenarios.contains("throughput")
                || scenarios.contains("burst")
                || scenarios.contains("ceiling")
                || scenarios.contains("latency"))
        {
            c.push_str(&format!(" --client-threads {}", self.client_threads));
        }
        c
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Met {
    Yes,
    No,
    Info,
}

struct Row {
    scenario: String,
    number: String,
    target: String,
    met: Met,
    command: String,
}

impl Row {
    fn group(&self) -> &str {
        self.scenario.split(" · ").next().unwrap_or("")
    }
}

struct Ctx {
    opts: Opts,
    rows: Vec<Row>,
    details: Vec<String>,
    /// Which round of the ratio scenarios is running: 0 is the one the table shows,
    /// later ones (run in alternation with the pipelines) add samples and details.
    round: usize,
    /// One sample per round that delivered every line: 1-TCP-client and 1-SSE-client
    /// throughput (lines/s), the pipe's, and logwisp's CPU ms per million lines.
    tcp1_rate: Vec<f64>,
    sse1_rate: Vec<f64>,
    floor_rate: Vec<f64>,
    tcp1_cpu_ms: Vec<f64>,
    /// Aggregate lines/s to 100 TCP clients: logwisp's, and `socat …,fork`'s.
    tcp100_rate: Vec<f64>,
    fork_floor_rate: Vec<f64>,
    /// Lines/s per client logwisp reached, by (protocol, clients), for the ceiling rows.
    logwisp_rates: Vec<(Proto, usize, f64)>,
}

impl Ctx {
    fn row(&mut self, scenario: String, number: String, target: &str, met: Met, cmd: &str) {
        // A later round's rows are details, unless they miss their target.
        if self.round > 0 && met != Met::No {
            self.detail(format!(
                "round {}: {scenario}: {number} ({})",
                self.round + 1,
                met_text(met)
            ));
            return;
        }
        let scenario = match self.round {
            0 => scenario,
            r => format!("{scenario} (round {})", r + 1),
        };
        let command = self.opts.command(cmd);
        // A '|' would split the markdown row.
        let clean = |s: String| s.replace('|', "/");
        let row = Row {
            scenario: clean(scenario),
            number: clean(number),
            target: target.to_string(),
            met,
            command,
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

fn met_text(m: Met) -> &'static str {
    match m {
        Met::Yes => "met",
        Met::No => "**not met**",
        Met::Info => "—",
    }
}

fn met(ok: bool) -> Met {
    if ok { Met::Yes } else { Met::No }
}

fn main() {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    };
    let nofile = raise_nofile();
    println!(
        "load bench: logwisp = {}; scenarios: {}{}; RLIMIT_NOFILE {nofile}",
        logwisp(),
        opts.scenarios.join(" "),
        if opts.quick { " (quick)" } else { "" }
    );
    let machine = machine_note();
    let mut ctx = Ctx {
        opts,
        rows: Vec::new(),
        details: Vec::new(),
        round: 0,
        tcp1_rate: Vec::new(),
        sse1_rate: Vec::new(),
        floor_rate: Vec::new(),
        tcp1_cpu_ms: Vec::new(),
        tcp100_rate: Vec::new(),
        fork_floor_rate: Vec::new(),
        logwisp_rates: Vec::new(),
    };
    let quick = ctx.opts.quick;
    let scale = |full: u64, q: u64| if quick { q } else { full };

    // The runs the ratio rows compare: their sizes, shared by the ceiling, the floor and
    // every round.
    let (one_tcp_lines, one_sse_lines) = (scale(4_000_000, 200_000), scale(3_000_000, 200_000));
    let hundred_lines = scale(300_000, 20_000);
    if ctx.opts.wants("throughput") {
        let runs = [
            (Proto::Tcp, 1, one_tcp_lines, Run::Throughput),
            (Proto::Tcp, 1, scale(2_000_000, 200_000), Run::Json),
            (Proto::Sse, 1, one_sse_lines, Run::Throughput),
            (Proto::Tcp, 100, hundred_lines, Run::Throughput),
            (Proto::Sse, 100, scale(300_000, 20_000), Run::Throughput),
            (Proto::Sse, 1000, scale(40_000, 4_000), Run::Throughput),
        ];
        for (proto, clients, lines, run) in runs {
            run_throughput(&mut ctx, proto, clients, lines, run);
        }
    }
    if ctx.opts.wants("burst") {
        let lines = scale(10_000_000, 1_000_000);
        for proto in [Proto::Tcp, Proto::Sse] {
            run_throughput(&mut ctx, proto, 1, lines, Run::Burst);
        }
    }
    if ctx.opts.wants("catchup")
        && let Err(e) = catch_up(&mut ctx, scale(4_000_000, 200_000))
    {
        ctx.row(
            "catch-up · lagging SSE client".into(),
            format!("failed: {e}"),
            "—",
            Met::No,
            "catchup",
        );
    }
    if ctx.opts.wants("throughput") || ctx.opts.wants("ceiling") {
        let runs = [
            (Proto::Tcp, 1, one_tcp_lines),
            (Proto::Sse, 1, one_sse_lines),
            (Proto::Tcp, 100, hundred_lines),
            (Proto::Sse, 100, scale(300_000, 20_000)),
            (Proto::Sse, 1000, scale(40_000, 4_000)),
        ];
        for (proto, clients, lines) in runs {
            if let Err(e) = ceiling(&mut ctx, proto, clients, lines) {
                let name = format!("ceiling · {}", label(proto, clients));
                ctx.row(name, format!("failed: {e}"), "—", Met::No, "ceiling");
            }
        }
    }
    if ctx.opts.wants("floor") {
        run_floor(&mut ctx, Pipeline::Pipe, 1, one_tcp_lines);
        run_floor(&mut ctx, Pipeline::Fork, 100, hundred_lines);
    }
    if ctx.opts.wants("throughput") && ctx.opts.wants("floor") {
        // One ~0.5 s sample of each side is at the mercy of this shared host, so the
        // ratio rows compare medians of rounds in which logwisp and the pipelines take
        // turns going first, each round back to back.
        let rounds = if quick { 3 } else { RATIO_ROUNDS };
        for round in 1..rounds {
            ctx.round = round;
            println!("ratio round {} of {rounds}", round + 1);
            let one_client = |ctx: &mut Ctx| {
                run_throughput(ctx, Proto::Tcp, 1, one_tcp_lines, Run::Throughput);
                run_throughput(ctx, Proto::Sse, 1, one_sse_lines, Run::Throughput);
            };
            let hundred_clients = |ctx: &mut Ctx| {
                run_throughput(ctx, Proto::Tcp, 100, hundred_lines, Run::Throughput)
            };
            if round % 2 == 1 {
                run_floor(&mut ctx, Pipeline::Pipe, 1, one_tcp_lines);
                one_client(&mut ctx);
                run_floor(&mut ctx, Pipeline::Fork, 100, hundred_lines);
                hundred_clients(&mut ctx);
            } else {
                one_client(&mut ctx);
                run_floor(&mut ctx, Pipeline::Pipe, 1, one_tcp_lines);
                hundred_clients(&mut ctx);
                run_floor(&mut ctx, Pipeline::Fork, 100, hundred_lines);
            }
        }
        ctx.round = 0;
    }
    ratio_rows(&mut ctx);
    if ctx.opts.wants("latency") {
        let secs = if quick { 3 } else { 10 };
        if let Err(e) = latency(&mut ctx, 10, 1000, secs) {
            ctx.row(
                "latency · 10 SSE clients, 1 000 lines/s".into(),
                format!("failed: {e}"),
                "—",
                Met::No,
                "latency",
            );
        }
    }
    if ctx.opts.wants("append") {
        let (count, per_sec) = if quick { (100, 50) } else { (400, 50) };
        if let Err(e) = append(&mut ctx, count, per_sec) {
            ctx.row(
                "append · one line, 10 000-file vs 1-file directory".into(),
                format!("failed: {e}"),
                "—",
                Met::No,
                "append",
            );
        }
    }
    if ctx.opts.wants("memory") {
        let steps = if quick { [200, 1000] } else { [1000, 10_000] };
        if let Err(e) = memory(&mut ctx, steps) {
            ctx.row(
                "memory · idle SSE clients".into(),
                format!("failed: {e}"),
                "—",
                Met::No,
                "memory",
            );
        }
    }
    if ctx.opts.wants("idle") {
        let secs = ctx.opts.idle_secs;
        if let Err(e) = idle(&mut ctx, secs) {
            ctx.row(
                "idle · CPU, default config".into(),
                format!("failed: {e}"),
                "—",
                Met::No,
                "idle",
            );
        }
        for files in [Watched::File, Watched::Dir(10_000)] {
            if let Err(e) = idle_cost(&mut ctx, files, secs) {
                ctx.row(
                    format!("idle · {}", files.label()),
                    format!("failed: {e}"),
                    "—",
                    Met::No,
                    "idle",
                );
            }
        }
    }
    if ctx.opts.wants("journal") {
        let entries = scale(300_000, 30_000);
        let secs = ctx.opts.idle_secs;
        if let Err(e) = journal(&mut ctx, entries, secs) {
            ctx.row(
                "journal · entries/s to 1 TCP client vs `journalctl -f -o json` alone".into(),
                format!("failed: {e}"),
                "—",
                Met::No,
                "journal",
            );
        }
    }
    if ctx.opts.wants("size") {
        size(&mut ctx);
    }

    let table = render_table(&ctx.rows);
    println!("\n{table}");
    let write = ctx.opts.write.unwrap_or(!ctx.opts.quick);
    if write {
        match write_benchmarks(&ctx, &machine) {
            Ok(()) => println!("wrote {}", benchmarks_path().display()),
            Err(e) => eprintln!("load: cannot write BENCHMARKS.md: {e}"),
        }
    } else {
        println!("(BENCHMARKS.md not updated: --quick or --no-write; add --write to force)");
    }
    if ctx.rows.iter().any(|r| r.met == Met::No) {
        println!("some targets were not met (see the table)");
    }
}

/// `throughput`, with a failure as a row that is not met.
fn run_throughput(ctx: &mut Ctx, proto: Proto, clients: usize, lines: u64, run: Run) {
    if let Err(e) = throughput(ctx, proto, clients, lines, run) {
        let group = match run {
            Run::Burst => "burst",
            _ => "throughput",
        };
        let name = format!("{group} · {}", run_label(run, proto, clients, lines));
        ctx.row(name, format!("failed: {e}"), "—", Met::No, group);
    }
}

/// `floor`, with a failure as a row that is not met.
fn run_floor(ctx: &mut Ctx, pipeline: Pipeline, clients: usize, lines: u64) {
    if let Err(e) = floor(ctx, pipeline, clients, lines) {
        ctx.row(
            format!("floor · {}", pipeline.label(clients)),
            format!("failed: {e}"),
            "—",
            Met::No,
            "floor",
        );
    }
}

fn label(proto: Proto, clients: usize) -> String {
    let what = match proto {
        Proto::Tcp => "TCP",
        Proto::Sse => "SSE",
    };
    let n = group_thousands(clients as u64);
    format!("{n} {what} client{}", if clients == 1 { "" } else { "s" })
}

fn group_thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(ch);
    }
    out
}

/// One file, one server, everything else as logwisp's defaults have it (`buffer_size`,
/// SSE heartbeats) except the check interval of the original README's example.
fn bench_config(log: &std::path::Path, proto: Proto) -> String {
    ConfigSpec {
        targets: &file_target(log),
        http: proto == Proto::Sse,
        tcp: proto == Proto::Tcp,
        buffer_size: None,
        check_interval_ms: 100,
        heartbeat_secs: None,
    }
    .render()
}

/// Writes warm-up lines every 50 ms until every client has seen one (so each is
/// subscribed), or fails after `timeout`.
fn warm_up(file: &mut File, timeout: Duration, mut warmed: impl FnMut() -> bool) -> io::Result<()> {
    let line = warmup_line();
    let deadline = Instant::now() + timeout;
    loop {
        file.write_all(&line)?;
        let next = Instant::now() + Duration::from_millis(50);
        while Instant::now() < next {
            if warmed() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if Instant::now() > deadline {
            return Err(io::Error::other("clients never saw a warm-up line"));
        }
    }
}

/// Waits until `done` reaches `clients`, giving up after `stall` without progress.
fn wait_done(shared: &Shared, clients: usize, stall: Duration) -> bool {
    wait_all(&[(shared, clients)], stall, || {})
}

/// Waits until every fleet's `done` reaches its client count, giving up after `stall`
/// without progress in any or when one fleet's clients have all closed; calls `tick`
/// between looks.
fn wait_all(fleets: &[(&Shared, usize)], stall: Duration, mut tick: impl FnMut()) -> bool {
    let progress = || -> u64 {
        fleets
            .iter()
            .map(|(s, _)| s.lines.load(Ordering::Relaxed))
            .sum()
    };
    let mut last = progress();
    let mut last_change = Instant::now();
    loop {
        if fleets
            .iter()
            .all(|(s, n)| s.done.load(Ordering::Relaxed) >= *n)
        {
            return true;
        }
        if fleets
            .iter()
            .any(|(s, n)| s.closed.load(Ordering::Relaxed) >= *n)
        {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
        tick();
        let now = progress();
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() > stall {
            return false;
        }
    }
}

struct Totals {
    lines: u64,
    bytes: u64,
    missed: u64,
    disorder: u64,
    dropped: u64,
    bad_clients: usize,
    closed: usize,
    first_error: Option<String>,
}

fn totals(checks: &[Check]) -> Totals {
    let mut t = Totals {
        lines: 0,
        bytes: 0,
        missed: 0,
        disorder: 0,
        dropped: 0,
        bad_clients: 0,
        closed: 0,
        first_error: None,
    };
    for c in checks {
        t.lines += c.lines;
        t.bytes += c.bytes;
        // Lines that never arrived at all count as missed too.
        t.missed += c.missed + c.target.saturating_sub(c.lines + c.missed);
        t.disorder += c.disorder;
        t.dropped += c.dropped;
        if !c.ok() || !c.is_done() {
            t.bad_clients += 1;
        }
        if c.closed.is_some() {
            t.closed += 1;
        }
        if t.first_error.is_none() {
            t.first_error = c
                .errors
                .first()
                .cloned()
                .or_else(|| c.closed.clone().map(|e| format!("connection closed: {e}")));
        }
    }
    t
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    /// A table row per client count, the rate the ratio and ceiling rows compare with.
    Throughput,
    /// The same with lines that are JSON objects: what such a line costs (issue 14).
    Json,
    /// Issue 8's burst: every line with a bounded peak RSS.
    Burst,
}

fn run_label(run: Run, proto: Proto, clients: usize, lines: u64) -> String {
    match run {
        Run::Throughput => label(proto, clients),
        Run::Json => format!("{}, JSON lines", label(proto, clients)),
        Run::Burst => burst_label(proto, lines),
    }
}

fn burst_label(proto: Proto, lines: u64) -> String {
    format!(
        "{} M lines written at once, {}",
        group_thousands(lines / 1_000_000),
        label(proto, 1)
    )
}

/// Question: how many lines/s reach `clients` clients that keep reading, when `lines`
/// lines are appended at once, with every line delivered in order and (bursts) logwisp's
/// peak RSS bounded, with the default `buffer_size`?
fn throughput(ctx: &mut Ctx, proto: Proto, clients: usize, lines: u64, run: Run) -> io::Result<()> {
    let name = run_label(run, proto, clients, lines);
    let group = match run {
        Run::Throughput | Run::Json => "throughput",
        Run::Burst => "burst",
    };
    println!("{group}: {name}, {lines} lines");
    let dir = TempDir::new(group);
    let log = dir.join("app.log");
    File::create(&log)?;
    let lw = Logwisp::start(
        &dir.path,
        &bench_config(&log, proto),
        proto == Proto::Sse,
        proto == Proto::Tcp,
    )?;
    let addr = match proto {
        Proto::Tcp => lw.tcp,
        Proto::Sse => lw.http,
    }
    .expect("listener address");
    let data = match run {
        Run::Json => json_data_lines(lines),
        _ => data_lines(lines),
    };
    let shared = Shared::new();
    let fleets: Vec<_> = split(clients, ctx.opts.client_threads)
        .into_iter()
        .map(|n| spawn_fleet(shared.clone(), addr, proto, n, move || Check::strict(lines)))
        .collect();
    let mut file = OpenOptions::new().append(true).open(&log)?;
    let warm = warm_up(&mut file, Duration::from_secs(60), || {
        shared.warm.load(Ordering::Relaxed) >= clients
    });
    if let Err(e) = warm {
        shared.stop.store(true, Ordering::Relaxed);
        return Err(e);
    }
    let cpu0 = lw.cpu();
    let probe = CpuProbe::start(Some(lw.pid));
    let t0 = Instant::now();
    for chunk in data.chunks(1 << 20) {
        file.write_all(chunk)?;
    }
    let written = t0.elapsed();
    let all_done = wait_done(&shared, clients, Duration::from_secs(15));
    let cpu1 = lw.cpu();
    let machine = probe.report();
    let t_end = if all_done {
        shared.at(shared.last_done_ns.load(Ordering::Relaxed))
    } else {
        Instant::now()
    };
    let mem = lw.mem();
    shared.stop.store(true, Ordering::Relaxed);
    let mut checks = Vec::new();
    let mut client_cpu = 0;
    for f in fleets {
        let r = f.join().expect("fleet thread")?;
        checks.extend(r.checks);
        client_cpu += r.cpu_ns;
    }
    let status = lw.status().ok();
    let stderr = lw.stderr_lines();
    let exit = lw.stop()?;
    drop(data);

    let secs = t_end.duration_since(t0).as_secs_f64();
    let t = totals(&checks);
    let rate = lines as f64 / secs;
    let mbps = t.bytes as f64 / secs / 1e6;
    let lw_cpu = cpu1.secs_since(&cpu0);
    let ok = all_done && t.missed == 0 && t.disorder == 0 && t.dropped == 0 && t.bad_clients == 0;
    let number = if clients == 1 {
        format!(
            "{} lines/s · {mbps:.0} MB/s · {} · peak RSS {}",
            fmt_rate(rate),
            loss_text(&t),
            mib(mem.hwm)
        )
    } else {
        format!(
            "{} lines/s in → {} lines/s · {mbps:.0} MB/s out (all clients) · {} · peak RSS {}",
            fmt_rate(rate),
            fmt_rate(t.lines as f64 / secs),
            loss_text(&t),
            mib(mem.hwm)
        )
    };
    match run {
        Run::Throughput | Run::Json => ctx.row(
            format!("throughput · {name}"),
            number,
            "every client gets every line, in order",
            met(ok),
            "throughput",
        ),
        Run::Burst => ctx.row(
            format!("burst · {name}"),
            number,
            "0 missed · peak RSS (VmHWM) ≤ 16 MiB",
            met(ok && mem.hwm <= BURST_HWM_MAX),
            "burst",
        ),
    }
    ctx.detail(format!(
        "{group} {name}: {lines} lines ({} MB file) in {secs:.2} s; writer done after {:.2} s; logwisp CPU {:.2} s = {:.0} % of a core; reader thread(s) {:.0} % of a core; logwisp RSS {} (HWM {}) at the end",
        lines * LINE_LEN as u64 / 1_000_000,
        written.as_secs_f64(),
        lw_cpu,
        lw_cpu / secs * 100.0,
        client_cpu as f64 / 1e9 / secs * 100.0,
        mib(mem.rss),
        mib(mem.hwm),
    ));
    ctx.detail(format!("  {machine}"));
    if let Some(s) = status {
        let d = &s["delivery"];
        ctx.detail(format!(
            "  /status after the run: dropped_entries {}, bytes_sent {}, sse_clients {}",
            d["dropped_entries"], d["bytes_sent"], d["sse_clients"]
        ));
    }
    if let Some(e) = &t.first_error {
        ctx.detail(format!("  first problem seen by a client: {e}"));
    }
    if !all_done {
        ctx.detail(format!(
            "  not every client finished: {} of {clients} done, {} closed",
            shared.done.load(Ordering::Relaxed),
            t.closed
        ));
    }
    if !exit.success() || !stderr.is_empty() {
        ctx.detail(format!("  logwisp {exit}; stderr: {}", stderr.join(" | ")));
    }
    let per_m = lw_cpu / (lines as f64 / 1e6) * 1000.0;
    let cpu_number = format!(
        "{per_m:.0} ms CPU per M lines ({:.0} % of a core during the run)",
        lw_cpu / secs * 100.0
    );
    match run {
        Run::Burst => return Ok(()),
        Run::Json => {
            ctx.row(
                "cpu · logwisp CPU per million JSON lines (1 TCP client)".into(),
                cpu_number,
                "≤ 400 ms",
                met(ok && per_m <= 400.0),
                "throughput",
            );
            return Ok(());
        }
        Run::Throughput => {}
    }
    if !ok {
        return Ok(());
    }
    if ctx.round == 0 {
        ctx.logwisp_rates.push((proto, clients, rate));
    }
    match (proto, clients) {
        (Proto::Tcp, 1) => {
            ctx.tcp1_rate.push(rate);
            ctx.tcp1_cpu_ms.push(per_m);
            ctx.detail(format!("  {cpu_number}"));
        }
        (Proto::Sse, 1) => ctx.sse1_rate.push(rate),
        (Proto::Tcp, 100) => ctx.tcp100_rate.push(t.lines as f64 / secs),
        _ => {}
    }
    Ok(())
}

fn loss_text(t: &Totals) -> String {
    if t.missed == 0 && t.disorder == 0 && t.dropped == 0 && t.bad_clients == 0 {
        "0 missed".into()
    } else {
        format!(
            "{} missed, {} out of order, {} dropped, {} bad clients",
            t.missed, t.disorder, t.dropped, t.bad_clients
        )
    }
}

/// Question: while one SSE client streams a burst at full speed, how fast does a second
/// one, stalled during the burst and then reading again, catch up from disk, and does it
/// get every line, in order?
fn catch_up(ctx: &mut Ctx, lines: u64) -> io::Result<()> {
    println!("catch-up: 1 fast + 1 lagging SSE client, {lines} lines");
    let dir = TempDir::new("catchup");
    let log = dir.join("app.log");
    File::create(&log)?;
    let lw = Logwisp::start(&dir.path, &bench_config(&log, Proto::Sse), true, false)?;
    let addr = lw.http.expect("http address");
    let data = data_lines(lines);
    // A thread per client: the lagging one's reading must not slow the fast one's.
    let (fast, slow) = (Shared::new(), Shared::new());
    let fleets = [&fast, &slow]
        .map(|s| spawn_fleet(s.clone(), addr, Proto::Sse, 1, move || Check::strict(lines)));
    let stop = || {
        fast.stop.store(true, Ordering::Relaxed);
        slow.stop.store(true, Ordering::Relaxed);
    };
    let mut file = OpenOptions::new().append(true).open(&log)?;
    warm_up(&mut file, Duration::from_secs(60), || {
        fast.warm.load(Ordering::Relaxed) >= 1 && slow.warm.load(Ordering::Relaxed) >= 1
    })
    .inspect_err(|_| stop())?;
    slow.hold.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !slow.held.load(Ordering::SeqCst) {
        if Instant::now() > deadline {
            stop();
            return Err(io::Error::other("the lagging client never paused"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let cpu0 = lw.cpu();
    let probe = CpuProbe::start(Some(lw.pid));
    let t0 = Instant::now();
    for chunk in data.chunks(1 << 20) {
        file.write_all(chunk)?;
    }
    let written = t0.elapsed();
    // A tenth of the burst is far more than the buffer and both socket buffers hold, so
    // the lagging client's next entry is on disk only.
    let behind = lines / 10;
    let deadline = Instant::now() + Duration::from_secs(30);
    while fast.lines.load(Ordering::Relaxed) < behind {
        if Instant::now() > deadline || fast.closed.load(Ordering::Relaxed) > 0 {
            stop();
            return Err(io::Error::other(format!(
                "the fast client got only {} lines in 30 s",
                fast.lines.load(Ordering::Relaxed)
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let look = |catching: &mut u64, lag: &mut u64| {
        if let Ok(s) = lw.status() {
            let d = &s["delivery"];
            *catching = (*catching).max(d["catching_up_clients"].as_u64().unwrap_or(0));
            *lag = (*lag).max(d["catch_up_max_lag"].as_u64().unwrap_or(0));
        }
    };
    let (mut catching, mut max_lag) = (0, 0);
    look(&mut catching, &mut max_lag);
    let fast_at_resume = fast.lines.load(Ordering::Relaxed);
    slow.hold.store(false, Ordering::SeqCst);
    let mut next_look = Instant::now();
    let all_done = wait_all(&[(&fast, 1), (&slow, 1)], Duration::from_secs(15), || {
        if Instant::now() >= next_look {
            look(&mut catching, &mut max_lag);
            next_look = Instant::now() + Duration::from_millis(100);
        }
    });
    let cpu1 = lw.cpu();
    let machine = probe.report();
    let mem = lw.mem();
    let status = lw.status().ok();
    stop();
    let [fast_fleet, slow_fleet] = fleets;
    let fast_check = fast_fleet.join().expect("fleet thread")?.checks;
    let slow_check = slow_fleet.join().expect("fleet thread")?.checks;
    let exit = lw.stop()?;
    drop(data);

    let (tf, ts) = (totals(&fast_check), totals(&slow_check));
    let fast_done = fast.done.load(Ordering::Relaxed) >= 1;
    let slow_done = slow.done.load(Ordering::Relaxed) >= 1;
    let ok = |t: &Totals| t.missed == 0 && t.disorder == 0 && t.dropped == 0 && t.bad_clients == 0;
    let t_fast = fast.at(fast.last_done_ns.load(Ordering::Relaxed));
    let t_resume = slow.at(slow.resumed_ns.load(Ordering::SeqCst));
    let t_slow = slow.at(slow.last_done_ns.load(Ordering::Relaxed));
    let slow_at_resume = slow.lines_at_resume.load(Ordering::SeqCst);
    let backlog = lines - slow_at_resume;
    let catch_secs = t_slow.saturating_duration_since(t_resume).as_secs_f64();
    let fast_secs = t_fast.saturating_duration_since(t0).as_secs_f64();
    let what = if lines >= 1_000_000 {
        format!("{} M-line burst", lines / 1_000_000)
    } else {
        format!("{} k-line burst", lines / 1000)
    };
    let slow_number = if slow_done {
        format!(
            "{} lines/s catch-up ({} lines in {catch_secs:.2} s) · {} · peak RSS {}",
            fmt_rate(backlog as f64 / catch_secs),
            group_thousands(backlog),
            loss_text(&ts),
            mib(mem.hwm)
        )
    } else {
        format!(
            "did not finish: {} of {lines} lines · {}",
            slow_check.first().map_or(0, |c| c.lines),
            loss_text(&ts)
        )
    };
    ctx.row(
        format!("catch-up · lagging SSE client, stalled during a {what}, then reading from disk while a fast one streams"),
        slow_number,
        "every line, in order (0 missed)",
        met(all_done && slow_done && ok(&ts)),
        "catchup",
    );
    let alone = ctx
        .logwisp_rates
        .iter()
        .find(|(p, c, _)| *p == Proto::Sse && *c == 1)
        .map(|r| r.2);
    let fast_rate = lines as f64 / fast_secs;
    let fast_number = if fast_done {
        format!(
            "{} lines/s · {}{}",
            fmt_rate(fast_rate),
            loss_text(&tf),
            alone
                .map(|a| format!(" · {:.2}× the 1 SSE client throughput row", fast_rate / a))
                .unwrap_or_default()
        )
    } else {
        format!("did not finish · {}", loss_text(&tf))
    };
    ctx.row(
        "catch-up · the fast SSE client of the same run".into(),
        fast_number,
        "every line, in order",
        met(fast_done && ok(&tf)),
        "catchup",
    );
    let lw_secs = cpu1.secs_since(&cpu0);
    let run_secs = t_slow
        .max(t_fast)
        .saturating_duration_since(t0)
        .as_secs_f64();
    ctx.detail(format!(
        "catch-up: {lines} lines written at once (done after {:.2} s); the lagging client read again {:.2} s after the first write, when the fast one had {} lines and it had {slow_at_resume}; the fast one finished {:.2} s after that (both streamed together), the lagging one {catch_secs:.2} s after that; logwisp CPU {lw_secs:.2} s = {:.0} % of a core; RSS {} (HWM {}) at the end",
        written.as_secs_f64(),
        t_resume.saturating_duration_since(t0).as_secs_f64(),
        fast_at_resume,
        t_fast.saturating_duration_since(t_resume).as_secs_f64(),
        lw_secs / run_secs.max(1e-9) * 100.0,
        mib(mem.rss),
        mib(mem.hwm),
    ));
    ctx.detail(format!(
        "  /status while catching up (every 100 ms): catching_up_clients up to {catching}, catch_up_max_lag up to {max_lag} entries{}",
        if catching == 0 {
            " (never seen catching up from disk: the lagging client was not behind the buffer when looked at)"
        } else {
            ""
        }
    ));
    ctx.detail(format!("  {machine}"));
    if let Some(s) = status {
        ctx.detail(format!(
            "  /status after the run: dropped_entries {}, sse_clients {}",
            s["delivery"]["dropped_entries"], s["delivery"]["sse_clients"]
        ));
    }
    for (who, t) in [("fast", &tf), ("lagging", &ts)] {
        if let Some(e) = &t.first_error {
            ctx.detail(format!("  first problem seen by the {who} client: {e}"));
        }
    }
    if !exit.success() {
        ctx.detail(format!("  logwisp {exit}"));
    }
    Ok(())
}

/// The same readers fed by a thread writing pre-rendered logwisp frames: how fast the
/// harness can take bytes, so it is known not to be what limits logwisp's numbers.
fn ceiling(ctx: &mut Ctx, proto: Proto, clients: usize, lines: u64) -> io::Result<()> {
    let name = label(proto, clients);
    println!("ceiling: {name}, {lines} lines");
    let block_lines = lines.min(100_000);
    let reps = lines.div_ceil(block_lines);
    let total = block_lines * reps;
    let block = Arc::new(render_block(block_lines, proto));
    let head = match proto {
        Proto::Sse => sse_preamble(),
        Proto::Tcp => Vec::new(),
    };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let shared = Shared::new();
    let start_ns = Arc::new(AtomicU64::new(0));
    let source = spawn_source(
        listener,
        clients,
        head,
        block,
        reps,
        start_ns.clone(),
        shared.clone(),
    );
    let fleets: Vec<_> = split(clients, ctx.opts.client_threads)
        .into_iter()
        .map(|n| {
            spawn_fleet(shared.clone(), addr, proto, n, move || {
                let mut c = Check::strict(total);
                c.wrap = block_lines;
                c
            })
        })
        .collect();
    let probe = CpuProbe::start(None);
    let all_done = wait_done(&shared, clients, Duration::from_secs(15));
    let t_end = if all_done {
        shared.at(shared.last_done_ns.load(Ordering::Relaxed))
    } else {
        Instant::now()
    };
    let machine = probe.report();
    shared.stop.store(true, Ordering::Relaxed);
    let mut checks = Vec::new();
    let mut client_cpu = 0;
    for f in fleets {
        let r = f.join().expect("fleet thread")?;
        checks.extend(r.checks);
        client_cpu += r.cpu_ns;
    }
    let source_cpu = source.join().expect("source thread")?;
    let t0 = shared.at(start_ns.load(Ordering::SeqCst));
    let secs = t_end.duration_since(t0).as_secs_f64();
    let t = totals(&checks);
    let rate = total as f64 / secs;
    let mbps = t.bytes as f64 / secs / 1e6;
    let ok = all_done && t.bad_clients == 0;
    let mut number = if clients == 1 {
        format!("{} lines/s · {mbps:.0} MB/s", fmt_rate(rate))
    } else {
        format!(
            "{} lines/s per client → {} lines/s · {mbps:.0} MB/s (all clients)",
            fmt_rate(rate),
            fmt_rate(t.lines as f64 / secs)
        )
    };
    let logwisp_rate = ctx
        .logwisp_rates
        .iter()
        .find(|(p, c, _)| *p == proto && *c == clients)
        .map(|r| r.2);
    let verdict = match logwisp_rate {
        _ if !ok => Met::No,
        Some(lw) => {
            number.push_str(&format!(" = {:.1}× logwisp", rate / lw));
            met(rate > lw)
        }
        None => Met::Info,
    };
    ctx.row(
        format!("ceiling · {name} (readers alone, trivial source)"),
        number,
        "above logwisp's number (readers are not the limit)",
        verdict,
        "ceiling",
    );
    ctx.detail(format!(
        "ceiling {name}: {total} lines in {secs:.2} s; reader thread(s) {:.0} % of a core, source thread {:.0} %; {machine}{}",
        client_cpu as f64 / 1e9 / secs * 100.0,
        source_cpu as f64 / 1e9 / secs * 100.0,
        t.first_error
            .as_ref()
            .map(|e| format!("; problem: {e}"))
            .unwrap_or_default()
    ));
    Ok(())
}

/// Makes sure `socat` is there: installs it with apt-get when root, else says how.
fn ensure_socat() -> Result<(), String> {
    let have = || {
        Command::new("socat")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if have() {
        return Ok(());
    }
    if !is_root() {
        return Err("socat is not installed; install it with `sudo apt-get install -y socat` (or your package manager) and rerun `cargo bench --bench load -- floor`".into());
    }
    println!("floor: installing socat with apt-get");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "socat"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = Command::new("apt-get").arg("update").status();
        install();
    }
    if have() {
        Ok(())
    } else {
        Err("could not install socat with apt-get; install it and rerun".into())
    }
}

/// Which `tail -n0 -F` + `socat` pipeline a floor run measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pipeline {
    /// `tail -n0 -F FILE | socat -u - TCP-LISTEN:…`: one process pair, one client.
    Pipe,
    /// `socat -U TCP-LISTEN:…,fork EXEC:'tail -n0 -F FILE'`: a `tail` and a `socat` per
    /// client.
    Fork,
}

impl Pipeline {
    fn label(self, clients: usize) -> String {
        match self {
            Pipeline::Pipe => format!(
                "`tail -n0 -F` piped into `socat`, {}",
                label(Proto::Tcp, clients)
            ),
            Pipeline::Fork => format!(
                "`socat TCP-LISTEN:…,fork EXEC:'tail -n0 -F'`, {}",
                label(Proto::Tcp, clients)
            ),
        }
    }

    fn shell(self, log: &std::path::Path, port: u16) -> String {
        match self {
            Pipeline::Pipe => format!(
                "tail -n0 -F '{}' | socat -u - TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr",
                log.display()
            ),
            // The path is a temporary one without spaces, commas or colons (socat splits
            // its address and EXEC's command line on those).
            Pipeline::Fork => format!(
                "exec socat -U TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,backlog=1024,fork 'EXEC:tail -n0 -F {}'",
                log.display()
            ),
        }
    }
}

/// A pipeline running in its own process group, ended (the whole group) on drop.
struct Running {
    child: std::process::Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group we created.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Starts `pipeline` on `log` and connects `clients` clients to it (each one, with `fork`,
/// starting its own `tail`).
fn start_pipeline(
    pipeline: Pipeline,
    log: &std::path::Path,
    clients: usize,
) -> io::Result<(Running, Vec<TcpStream>)> {
    ensure_socat().map_err(io::Error::other)?;
    let port = {
        let l = TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let running = Running {
        child: Command::new("sh")
            .arg("-c")
            .arg(pipeline.shell(log, port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?,
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut socks = Vec::with_capacity(clients);
    let deadline = Instant::now() + Duration::from_secs(10);
    while socks.len() < clients {
        match std::net::TcpStream::connect(addr) {
            Ok(s) => socks.push(s),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    Ok((running, socks))
}

/// Reader threads for sockets already connected, `threads` of them at most.
fn adopt_fleets(
    shared: &Arc<Shared>,
    socks: Vec<std::net::TcpStream>,
    threads: usize,
    make_check: impl Fn() -> Check + Clone + Send + 'static,
) -> Vec<std::thread::JoinHandle<io::Result<FleetResult>>> {
    let mut socks = socks.into_iter();
    let total = socks.len();
    split(total, threads)
        .into_iter()
        .map(|n| {
            spawn_fleet_adopted(
                shared.clone(),
                socks.by_ref().take(n).collect(),
                make_check.clone(),
            )
        })
        .collect()
}

/// The physical floor: the same file, the same lines, through `tail -n0 -F` and `socat`
/// (one pipe to one client, or a `tail` per client with `fork`), every client checking
/// every line.
fn floor(ctx: &mut Ctx, pipeline: Pipeline, clients: usize, lines: u64) -> io::Result<()> {
    let name = pipeline.label(clients);
    println!("floor: {name}, {lines} lines");
    let dir = TempDir::new("floor");
    let log = dir.join("app.log");
    File::create(&log)?;
    let (running, socks) = start_pipeline(pipeline, &log, clients)?;
    let data = data_lines(lines);
    let shared = Shared::new();
    let fleets = adopt_fleets(&shared, socks, ctx.opts.client_threads, move || {
        Check::strict(lines)
    });
    let mut file = OpenOptions::new().append(true).open(&log)?;
    if let Err(e) = warm_up(&mut file, Duration::from_secs(30), || {
        shared.warm.load(Ordering::Relaxed) >= clients
    }) {
        shared.stop.store(true, Ordering::Relaxed);
        return Err(e);
    }
    let probe = CpuProbe::start(None);
    let t0 = Instant::now();
    for chunk in data.chunks(1 << 20) {
        file.write_all(chunk)?;
    }
    let written = t0.elapsed();
    let all_done = wait_done(&shared, clients, Duration::from_secs(15));
    let t_end = if all_done {
        shared.at(shared.last_done_ns.load(Ordering::Relaxed))
    } else {
        Instant::now()
    };
    let machine = probe.report();
    shared.stop.store(true, Ordering::Relaxed);
    let mut checks = Vec::new();
    let mut reader_cpu = 0;
    for f in fleets {
        let r = f.join().expect("fleet thread")?;
        checks.extend(r.checks);
        reader_cpu += r.cpu_ns;
    }
    drop(running);
    let secs = t_end.duration_since(t0).as_secs_f64();
    let t = totals(&checks);
    let rate = lines as f64 / secs;
    let aggregate = t.lines as f64 / secs;
    let mbps = t.bytes as f64 / secs / 1e6;
    let ok = all_done && t.missed == 0 && t.disorder == 0 && t.bad_clients == 0;
    match pipeline {
        Pipeline::Pipe if ok => ctx.floor_rate.push(rate),
        Pipeline::Fork if ok => ctx.fork_floor_rate.push(aggregate),
        _ => {}
    }
    let number = if clients == 1 {
        format!(
            "{} lines/s · {mbps:.0} MB/s (raw lines) · {}",
            fmt_rate(rate),
            loss_text(&t)
        )
    } else {
        format!(
            "{} lines/s in → {} lines/s · {mbps:.0} MB/s out (raw lines, all clients) · {}",
            fmt_rate(rate),
            fmt_rate(aggregate),
            loss_text(&t)
        )
    };
    ctx.row(
        format!("floor · {name}"),
        number,
        "— (reference)",
        if ok { Met::Info } else { Met::No },
        "floor",
    );
    ctx.detail(format!(
        "floor {name}: {lines} lines in {secs:.2} s; writer done after {:.2} s; reader thread(s) {:.0} % of a core; {machine} (tail and socat are in \"other\"){}",
        written.as_secs_f64(),
        reader_cpu as f64 / 1e9 / secs * 100.0,
        t.first_error
            .as_ref()
            .map(|e| format!("; problem: {e}"))
            .unwrap_or_default()
    ));
    Ok(())
}

/// logwisp's throughput against the pipelines of the same run and its CPU per line
/// (issue 14's targets): each the median of the rounds, which ran in alternation.
fn ratio_rows(ctx: &mut Ctx) {
    let rows = [
        (
            "ratio · logwisp 1 TCP client ÷ `tail -n0 -F` piped into `socat`",
            ctx.tcp1_rate.clone(),
            ctx.floor_rate.clone(),
            1.0,
        ),
        (
            "ratio · logwisp 1 SSE client ÷ `tail -n0 -F` piped into `socat` (1 TCP client)",
            ctx.sse1_rate.clone(),
            ctx.floor_rate.clone(),
            0.8,
        ),
        (
            "ratio · logwisp 100 TCP clients ÷ `socat TCP-LISTEN:…,fork EXEC:'tail -n0 -F'`, aggregate",
            ctx.tcp100_rate.clone(),
            ctx.fork_floor_rate.clone(),
            1.0,
        ),
    ];
    let per_round = |v: &[f64]| {
        v.iter()
            .map(|r| fmt_rate(*r))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (what, lw, fl, target) in rows {
        let (Some(lw_median), Some(fl_median)) = (median(&lw), median(&fl)) else {
            continue;
        };
        let r = lw_median / fl_median;
        ctx.row(
            what.into(),
            format!(
                "{r:.2}× ({} / {} lines/s, medians of {} and {} rounds)",
                fmt_rate(lw_median),
                fmt_rate(fl_median),
                lw.len(),
                fl.len()
            ),
            &format!("≥ {target:.1}×"),
            met(r >= target),
            "throughput floor",
        );
        ctx.detail(format!(
            "{what}: logwisp per round {}; the pipeline per round {}",
            per_round(&lw),
            per_round(&fl)
        ));
    }
    if let Some(cpu) = median(&ctx.tcp1_cpu_ms) {
        let rounds = ctx
            .tcp1_cpu_ms
            .iter()
            .map(|ms| format!("{ms:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        ctx.row(
            "cpu · logwisp CPU per million lines (1 TCP client)".into(),
            format!(
                "{cpu:.0} ms CPU per M lines (median of {} rounds: {rounds})",
                ctx.tcp1_cpu_ms.len()
            ),
            "≤ 150 ms",
            met(cpu <= 150.0),
            "throughput floor",
        );
    }
}

fn median(samples: &[f64]) -> Option<f64> {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Write→receive latency at a steady rate, one `write()` per line carrying its
/// CLOCK_REALTIME stamp; the writer keeps absolute deadlines.
fn latency(ctx: &mut Ctx, clients: usize, per_sec: u64, secs: u64) -> io::Result<()> {
    let lines = per_sec * secs;
    println!("latency: {clients} SSE clients, {per_sec} lines/s for {secs} s");
    let dir = TempDir::new("latency");
    let log = dir.join("app.log");
    File::create(&log)?;
    let lw = Logwisp::start(&dir.path, &bench_config(&log, Proto::Sse), true, false)?;
    let addr = lw.http.expect("http address");
    let shared = Shared::new();
    let fleets = latency_fleets(
        &shared,
        addr,
        Proto::Sse,
        clients,
        ctx.opts.client_threads,
        lines,
    );
    let mut file = OpenOptions::new().append(true).open(&log)?;
    warm_up(&mut file, Duration::from_secs(30), || {
        shared.warm.load(Ordering::Relaxed) >= clients
    })
    .inspect_err(|_| shared.stop.store(true, Ordering::Relaxed))?;
    std::thread::sleep(Duration::from_millis(200));
    let cpu0 = lw.cpu();
    let probe = CpuProbe::start(Some(lw.pid));
    let mut lateness = paced_writes(&mut file, lines, per_sec)?;
    let all_done = wait_done(&shared, clients, Duration::from_secs(5));
    let cpu1 = lw.cpu();
    let machine = probe.report();
    shared.stop.store(true, Ordering::Relaxed);
    let mut checks = Vec::new();
    for f in fleets {
        checks.extend(f.join().expect("fleet thread")?.checks);
    }
    let exit = lw.stop()?;
    if let Some(path) = std::env::var_os("LOGWISP_BENCH_LATENCY_DUMP") {
        // One line per entry of the first client, in seq order: "seq latency_ns".
        let text: String = checks[0]
            .latency_ns
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{} {l}\n", i + 1))
            .collect();
        fs::write(path, text)?;
    }
    let t = totals(&checks);
    let lat = sorted_latencies(&checks);
    lateness.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    let (p50, p99, p999, max) = (
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        percentile(&lat, 99.9),
        lat.last().copied().unwrap_or(0),
    );
    let ok_lines = all_done && t.missed == 0 && t.disorder == 0 && t.dropped == 0;
    let what = format!(
        "latency · write→receive, {clients} SSE clients, {} lines/s",
        group_thousands(per_sec)
    );
    ctx.row(
        format!("{what}, p50 / p99"),
        format!(
            "p50 {:.0} µs · p99 {:.0} µs · p99.9 {:.0} µs ({} samples, {})",
            us(p50),
            us(p99),
            us(p999),
            lat.len(),
            loss_text(&t)
        ),
        "p99 ≤ 0.3 ms",
        met(p99 <= 300_000 && ok_lines),
        "latency",
    );
    ctx.row(
        format!("{what}, max"),
        format!("max {:.0} µs", us(max)),
        "max ≤ 3 ms",
        met(max <= 3_000_000 && ok_lines),
        "latency",
    );
    ctx.detail(format!(
        "latency: writer woke late by p50 {:.0} µs / p99 {:.0} µs / max {:.0} µs after its deadline (not counted in the latency: each line is stamped right before its write()); logwisp CPU {:.1} % of a core at {per_sec} lines/s; {exit}",
        us(percentile(&lateness, 50.0)),
        us(percentile(&lateness, 99.0)),
        us(lateness.last().copied().unwrap_or(0)),
        cpu1.secs_since(&cpu0) / secs as f64 * 100.0,
    ));
    ctx.detail(format!("  {machine}"));
    ctx.detail(format!(
        "  p50 / p99 per client, in the order they connected: {}",
        per_client_percentiles(&checks)
    ));
    if let Some(e) = &t.first_error {
        ctx.detail(format!("  first problem seen by a client: {e}"));
    }
    let mut controls = Vec::new();
    for n in [1, clients] {
        let probe = CpuProbe::start(None);
        let (c50, c99, cmax, each) = latency_control(per_sec, secs, n, ctx.opts.client_threads)?;
        let what = if n == 1 {
            "latency · control: same writer → 1 TCP socket → same reader, no logwisp".to_string()
        } else {
            format!(
                "latency · control: same writer → {n} TCP sockets in turn → same readers, no logwisp"
            )
        };
        ctx.row(
            what,
            format!(
                "p50 {:.0} µs · p99 {:.0} µs · max {:.0} µs",
                us(c50),
                us(c99),
                us(cmax)
            ),
            "— (what the machine adds)",
            Met::Info,
            "latency",
        );
        ctx.detail(format!("  control run, {n} socket(s): {}", probe.report()));
        if n > 1 {
            ctx.detail(format!(
                "  p50 / p99 per socket, in the order written: {each}"
            ));
        }
        controls.push(c99);
    }
    let pipeline = Pipeline::Fork;
    let probe = CpuProbe::start(None);
    let (f50, f99, fmax, ftotals) = latency_pipeline(pipeline, clients, per_sec, secs)?;
    let fork_ok = ftotals.missed == 0 && ftotals.disorder == 0 && ftotals.bad_clients == 0;
    ctx.row(
        format!(
            "latency · {}, {} lines/s",
            pipeline.label(clients),
            group_thousands(per_sec)
        ),
        format!(
            "p50 {:.0} µs · p99 {:.0} µs · max {:.0} µs ({})",
            us(f50),
            us(f99),
            us(fmax),
            loss_text(&ftotals)
        ),
        "— (the pipeline logwisp replaces)",
        if fork_ok { Met::Info } else { Met::No },
        "latency",
    );
    ctx.detail(format!("  socat fork run: {}", probe.report()));
    let (one, same) = (controls[0], controls[controls.len() - 1]);
    let ratio = |base: u64| p99 as f64 / base.max(1) as f64;
    let (vs_fork, vs_same, vs_one) = (ratio(f99), ratio(same), ratio(one));
    ctx.row(
        "latency · logwisp p99 ÷ the `socat …,fork` pipeline's and ÷ the control's".into(),
        format!(
            "{vs_fork:.2}× the pipeline's ({:.0} / {:.0} µs) · {vs_same:.2}× the {clients}-socket control's ({:.0} / {:.0} µs) · {vs_one:.2}× the 1-socket control's ({:.0} µs)",
            us(p99),
            us(f99),
            us(p99),
            us(same),
            us(one)
        ),
        &format!("≤ 1.0× the pipeline's · ≤ 2.0× the control's with the same {clients} clients"),
        met(ok_lines && fork_ok && vs_fork <= 1.0 && vs_same <= 2.0),
        "latency",
    );
    Ok(())
}

/// A checking reader that expects lines 1..=`lines` and keeps each one's latency.
fn latency_check(lines: u64) -> Check {
    let mut c = Check::strict(lines);
    c.want_latency = true;
    c.latency_ns.reserve(lines as usize);
    c
}

/// `clients` latency-keeping readers of `addr`, spread over `threads` threads.
fn latency_fleets(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    proto: Proto,
    clients: usize,
    threads: usize,
    lines: u64,
) -> Vec<std::thread::JoinHandle<io::Result<FleetResult>>> {
    split(clients, threads)
        .into_iter()
        .map(|n| spawn_fleet(shared.clone(), addr, proto, n, move || latency_check(lines)))
        .collect()
}

/// Every client's latencies (ns), sorted.
fn sorted_latencies(checks: &[Check]) -> Vec<u64> {
    let mut lat: Vec<u64> = checks
        .iter()
        .flat_map(|c| c.latency_ns.iter().copied())
        .collect();
    lat.sort_unstable();
    lat
}

/// "p50/p99 µs" of each client's latencies, comma-separated.
fn per_client_percentiles(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| {
            let mut lat = c.latency_ns.clone();
            lat.sort_unstable();
            format!(
                "{:.0}/{:.0}",
                percentile(&lat, 50.0) as f64 / 1000.0,
                percentile(&lat, 99.0) as f64 / 1000.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The paced lines through `pipeline` to `clients` TCP readers: p50, p99, max (ns).
fn latency_pipeline(
    pipeline: Pipeline,
    clients: usize,
    per_sec: u64,
    secs: u64,
) -> io::Result<(u64, u64, u64, Totals)> {
    let lines = per_sec * secs;
    println!(
        "latency: {}, {per_sec} lines/s for {secs} s",
        pipeline.label(clients)
    );
    let dir = TempDir::new("latency-floor");
    let log = dir.join("app.log");
    File::create(&log)?;
    let (running, socks) = start_pipeline(pipeline, &log, clients)?;
    let shared = Shared::new();
    let fleets = adopt_fleets(&shared, socks, 1, move || latency_check(lines));
    let mut file = OpenOptions::new().append(true).open(&log)?;
    warm_up(&mut file, Duration::from_secs(30), || {
        shared.warm.load(Ordering::Relaxed) >= clients
    })
    .inspect_err(|_| shared.stop.store(true, Ordering::Relaxed))?;
    std::thread::sleep(Duration::from_millis(200));
    paced_writes(&mut file, lines, per_sec)?;
    wait_done(&shared, clients, Duration::from_secs(5));
    shared.stop.store(true, Ordering::Relaxed);
    let mut checks = Vec::new();
    for f in fleets {
        checks.extend(f.join().expect("fleet thread")?.checks);
    }
    drop(running);
    let lat = sorted_latencies(&checks);
    Ok((
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(0),
        totals(&checks),
    ))
}

/// Writes lines 1..=count at `per_sec` with absolute deadlines, one `write()` each, every
/// line stamped with CLOCK_REALTIME just before its write. Returns how late the writer
/// woke for each deadline (ns).
fn paced_writes(out: &mut impl Write, count: u64, per_sec: u64) -> io::Result<Vec<u64>> {
    let period = 1_000_000_000 / per_sec;
    let start = mono_ns() + 10_000_000;
    let mut lateness = Vec::with_capacity(count as usize);
    let mut line = Vec::with_capacity(LINE_LEN);
    for seq in 1..=count {
        let deadline = start + seq * period;
        sleep_until_mono_ns(deadline);
        lateness.push(mono_ns().saturating_sub(deadline));
        line.clear();
        data_line(&mut line, seq, 0, Some(realtime_ns()));
        out.write_all(&line)?;
    }
    Ok(lateness)
}

/// The same paced lines written straight into `clients` TCP sockets, in turn, read by the
/// same reader threads: the latency this machine (scheduler, loopback, harness) adds with
/// no logwisp. Each line is stamped once, before its first write, as a line logwisp
/// delivers carries the one stamp its writer gave it. Returns p50, p99, max (ns) over all
/// clients and each client's "p50/p99".
fn latency_control(
    per_sec: u64,
    secs: u64,
    clients: usize,
    client_threads: usize,
) -> io::Result<(u64, u64, u64, String)> {
    let lines = per_sec * secs;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let shared = Shared::new();
    let fleets = latency_fleets(&shared, addr, Proto::Tcp, clients, client_threads, lines);
    let mut socks = InTurn(Vec::with_capacity(clients));
    for _ in 0..clients {
        let (sock, _) = listener.accept()?;
        sock.set_nodelay(true)?;
        socks.0.push(sock);
    }
    paced_writes(&mut socks, lines, per_sec)?;
    wait_done(&shared, clients, Duration::from_secs(5));
    shared.stop.store(true, Ordering::Relaxed);
    let mut checks = Vec::new();
    for f in fleets {
        checks.extend(f.join().expect("fleet thread")?.checks);
    }
    let lat = sorted_latencies(&checks);
    Ok((
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(0),
        per_client_percentiles(&checks),
    ))
}

/// Writes each buffer whole to every socket, one after another (as logwisp serves its
/// clients).
struct InTurn(Vec<TcpStream>);

impl Write for InTurn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for s in &mut self.0 {
            s.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Resident memory idle, then with N idle SSE clients connected.
fn memory(ctx: &mut Ctx, steps: [usize; 2]) -> io::Result<()> {
    println!(
        "memory: idle, then {} and {} idle SSE clients",
        steps[0], steps[1]
    );
    let dir = TempDir::new("memory");
    let log = dir.join("app.log");
    File::create(&log)?;
    let lw = Logwisp::start(&dir.path, &bench_config(&log, Proto::Sse), true, false)?;
    let addr = lw.http.expect("http address");
    std::thread::sleep(Duration::from_secs(1));
    let idle = lw.mem();
    ctx.row(
        "memory · RSS idle after startup".into(),
        format!("VmRSS {} · VmHWM {}", mib(idle.rss), mib(idle.hwm)),
        "≤ 2 MiB",
        met(idle.rss <= 2 * 1024 * 1024),
        "memory",
    );
    let mut fleet = Fleet::new()?;
    for (i, &n) in steps.iter().enumerate() {
        while fleet.len() < n {
            let batch = (n - fleet.len()).min(250);
            for _ in 0..batch {
                fleet.connect(addr, Proto::Sse, "/stream", None, Check::loose(0))?;
            }
            let want = fleet.len();
            if !fleet.run_until(Duration::from_secs(30), |f| f.connected >= want) {
                return Err(io::Error::other(format!(
                    "only {} of {want} SSE clients got `event: connected` ({} closed)",
                    fleet.connected, fleet.closed
                )));
            }
        }
        fleet.run_until(Duration::from_secs(1), |_| false);
        let m = lw.mem();
        let per = m.rss.saturating_sub(idle.rss) / n as u64;
        let status = lw.status().ok();
        let served = status
            .as_ref()
            .map(|s| s["delivery"]["sse_clients"].to_string())
            .unwrap_or_else(|| "?".into());
        let last = i == steps.len() - 1;
        ctx.row(
            format!("memory · {} idle SSE clients", group_thousands(n as u64)),
            format!(
                "VmRSS {} · VmHWM {} · {} per client",
                mib(m.rss),
                mib(m.hwm),
                kib(per)
            ),
            if last { "≤ 6 KiB per client" } else { "—" },
            if last {
                met(per <= 6 * 1024)
            } else {
                Met::Info
            },
            "memory",
        );
        ctx.detail(format!(
            "memory with {n} clients: /status sse_clients = {served}; (RSS_N − RSS_idle) / N = {} bytes",
            per
        ));
    }
    drop(fleet);
    let exit = lw.stop()?;
    if !exit.success() {
        ctx.detail(format!("memory: logwisp {exit}"));
    }
    Ok(())
}

/// CPU used over `secs` doing nothing, on the built-in default config.
fn idle(ctx: &mut Ctx, secs: u64) -> io::Result<()> {
    println!("idle: {secs} s on the default config");
    let dir = TempDir::new("idle");
    let free_8080 = TcpListener::bind("0.0.0.0:8080").is_ok();
    let (lw, how) = if free_8080 {
        (
            Logwisp::start_default(&dir.path)?,
            "built-in default config (no config file, empty cwd)",
        )
    } else {
        let cfg = logwisp::config::BUILT_IN.replace("port = 8080", "port = 0");
        (
            Logwisp::start(&dir.path, &cfg, true, false)?,
            "built-in default config with port 0 (8080 was busy)",
        )
    };
    std::thread::sleep(Duration::from_secs(1));
    let cpu0 = lw.cpu();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let cpu1 = lw.cpu();
    let wall = t0.elapsed().as_secs_f64();
    let mem = lw.mem();
    let exit = lw.stop()?;
    let tick_pct = cpu1.tick_secs_since(&cpu0) / wall * 100.0;
    let fine = cpu1.sched_ns.is_some() && cpu0.sched_ns.is_some();
    let fine_pct = cpu1.secs_since(&cpu0) / wall * 100.0;
    let mut number = format!(
        "{tick_pct:.3} % of a core ({} ticks of utime+stime in {wall:.0} s)",
        cpu1.ticks - cpu0.ticks
    );
    if fine {
        number.push_str(&format!(
            " · schedstat {fine_pct:.4} % ({:.1} ms)",
            cpu1.secs_since(&cpu0) * 1000.0
        ));
    }
    ctx.row(
        format!("idle · CPU over {secs} s, default config"),
        number,
        "≤ 0.05 % of a core",
        met(tick_pct <= 0.05),
        "idle",
    );
    ctx.detail(format!(
        "idle: {how}; met? uses utime+stime from /proc/PID/stat (10 ms ticks); /proc/PID/schedstat is the scheduler's ns count of the same time; RSS {} at the end; {exit}",
        mib(mem.rss)
    ));
    Ok(())
}

/// What an idle-cost or append run watches.
#[derive(Clone, Copy)]
enum Watched {
    /// One `is_file` target.
    File,
    /// A directory target (`*.log`) holding this many files.
    Dir(usize),
}

impl Watched {
    fn files(self) -> usize {
        match self {
            Watched::File => 1,
            Watched::Dir(n) => n,
        }
    }

    fn label(self) -> String {
        match self {
            Watched::File => "1 file (`is_file` target)".into(),
            Watched::Dir(n) => format!(
                "{} file{} in one watched directory",
                group_thousands(n as u64),
                if n == 1 { "" } else { "s" }
            ),
        }
    }

    /// Creates the watched files under `dir`, one line each; returns the config's
    /// targets and the file appends go to (one in the middle of the directory).
    fn create(self, dir: &TempDir) -> io::Result<(String, std::path::PathBuf)> {
        let line = b"written before logwisp started\n";
        match self {
            Watched::File => {
                let path = dir.join("app.log");
                fs::write(&path, line)?;
                Ok((file_target(&path), path))
            }
            Watched::Dir(n) => {
                let logs = dir.join("logs");
                fs::create_dir(&logs)?;
                for i in 0..n {
                    fs::write(logs.join(format!("app-{i:05}.log")), line)?;
                }
                Ok((
                    dir_target(&logs, "*.log"),
                    logs.join(format!("app-{:05}.log", n / 2)),
                ))
            }
        }
    }

    /// logwisp on these files with issue 9's `check_interval_ms = 100`, defaults otherwise,
    /// once it watches every file (startup with many files takes a while).
    fn start(self, dir: &TempDir) -> io::Result<(Logwisp, std::path::PathBuf, Duration)> {
        let (targets, hot) = self.create(dir)?;
        let cfg = ConfigSpec {
            targets: &targets,
            http: true,
            tcp: false,
            buffer_size: None,
            check_interval_ms: 100,
            heartbeat_secs: None,
        }
        .render();
        let t0 = Instant::now();
        let lw = Logwisp::start(&dir.path, &cfg, true, false)?;
        let files = self.files();
        let deadline = t0 + Duration::from_secs(120);
        loop {
            let n = lw
                .status()
                .ok()
                .and_then(|s| s["monitor"]["active_watchers"].as_u64())
                .unwrap_or(0) as usize;
            if n >= files {
                return Ok((lw, hot, t0.elapsed()));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "logwisp watches {n} of {files} files after 120 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Question: what does an idle logwisp cost with `check_interval_ms = 100`, watching one
/// file or 10 000 files in one directory, no client connected: how often does it wake up
/// and how much of a core does it use?
fn idle_cost(ctx: &mut Ctx, watched: Watched, secs: u64) -> io::Result<()> {
    let what = watched.label();
    println!("idle: {what}, check_interval_ms = 100, no client, {secs} s");
    let dir = TempDir::new("idlecost");
    let (lw, _, startup) = watched.start(&dir)?;
    // The /status requests of the start leave a lingering connection and a state save;
    // the window opens after both are over.
    std::thread::sleep(Duration::from_secs(3));
    let (cpu0, sw0) = (lw.cpu(), lw.switches());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (cpu1, sw1) = (lw.cpu(), lw.switches());
    let wall = t0.elapsed().as_secs_f64();
    let mem = lw.mem();
    let exit = lw.stop()?;
    let woke = sw1.voluntary.saturating_sub(sw0.voluntary);
    let wakeups = woke as f64 / wall;
    let fine = cpu0.sched_ns.is_some() && cpu1.sched_ns.is_some();
    let cpu_secs = cpu1.secs_since(&cpu0);
    let pct = cpu_secs / wall * 100.0;
    let (cpu_max, target) = match watched {
        Watched::File => (IDLE_CPU_PCT_1_FILE, "≤ 0.2 wake-ups/s · ≤ 0.05 % of a core"),
        Watched::Dir(_) => (
            IDLE_CPU_PCT_10K_FILES,
            "≤ 0.1 % of a core · ≤ 0.2 wake-ups/s (SPEC §4: no periodic wake-ups, however many files)",
        ),
    };
    ctx.row(
        format!("idle · {what}, check_interval_ms = 100, no client, over {secs} s"),
        format!(
            "{wakeups:.3} wake-ups/s ({woke} voluntary context switches in {wall:.0} s) · {pct:.4} % of a core ({:.1} ms CPU)",
            cpu_secs * 1000.0
        ),
        target,
        met(wakeups <= IDLE_WAKEUPS_MAX && pct <= cpu_max),
        "idle",
    );
    ctx.detail(format!(
        "idle, {what}: watching every file {:.1} s after start, window opened 3 s later; no client connected (a connected SSE client gets the default heartbeat every 30 s, a wake-up of its own); wake-ups are voluntary_ctxt_switches from /proc/PID/task/*/status (involuntary: {}); CPU from {} ({} ticks of utime+stime); RSS {}; {exit}",
        startup.as_secs_f64(),
        sw1.involuntary.saturating_sub(sw0.involuntary),
        if fine {
            "/proc/PID/task/*/schedstat (ns)"
        } else {
            "utime+stime (10 ms ticks)"
        },
        cpu1.ticks.saturating_sub(cpu0.ticks),
        mib(mem.rss),
    ));
    Ok(())
}

/// Where Debian keeps systemd-journal-remote (out of PATH).
const JOURNAL_REMOTE: [&str; 2] = [
    "/lib/systemd/systemd-journal-remote",
    "/usr/lib/systemd/systemd-journal-remote",
];

/// Writes `entries` journal entries, with the fields journald gives a line a service
/// wrote to stdout, into `dir` with systemd-journal-remote, in this boot.
fn write_journal(dir: &std::path::Path, entries: u64) -> io::Result<()> {
    let remote = JOURNAL_REMOTE
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
        .ok_or_else(|| {
            io::Error::other(
                "systemd-journal-remote is not installed (apt-get install systemd-journal-remote)",
            )
        })?;
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .replace('-', "");
    fs::create_dir_all(dir)?;
    let mut child = Command::new(remote)
        .arg(format!("--output={}", dir.join("remote.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let t0 = realtime_ns() / 1000;
    {
        let mut input = io::BufWriter::new(child.stdin.take().expect("piped"));
        for i in 0..entries {
            let t = t0 + i;
            // The fields journald gives an entry a service wrote to its stdout.
            write!(
                input,
                "__REALTIME_TIMESTAMP={t}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={boot}\n\
                 MESSAGE=bench entry {i:08} {}\nPRIORITY=6\nSYSLOG_IDENTIFIER=bench\n\
                 SYSLOG_FACILITY=3\n_SYSTEMD_UNIT=bench.service\n_PID=4242\n_HOSTNAME=gw1\n\
                 _UID=998\n_GID=998\n_COMM=bench\n_EXE=/usr/local/bin/bench\n\
                 _CMDLINE=/usr/local/bin/bench --serve\n_CAP_EFFECTIVE=0\n\
                 _SELINUX_CONTEXT=unconfined\n_TRANSPORT=stdout\n\
                 _STREAM_ID=4f0e1d6b2f8a4c7e9d3b5a1c0e2f4a6b\n\
                 _SYSTEMD_CGROUP=/system.slice/bench.service\n_SYSTEMD_SLICE=system.slice\n\
                 _SYSTEMD_INVOCATION_ID=9a8b7c6d5e4f30211a2b3c4d5e6f7081\n\
                 _MACHINE_ID=0123456789abcdef0123456789abcdef\n\n",
                i + 1,
                "p".repeat(52)
            )?;
        }
        input.flush()?;
    }
    let st = child.wait()?;
    if !st.success() {
        return Err(io::Error::other(format!("systemd-journal-remote: {st}")));
    }
    Ok(())
}

/// Reads newline-terminated records from `r` until `n` were seen: the times (since `t0`)
/// of the first and the last.
fn time_records(mut r: impl io::Read, n: u64, t0: Instant) -> io::Result<(Duration, Duration)> {
    let mut buf = vec![0u8; 256 * 1024];
    let (mut seen, mut first) = (0u64, None);
    while seen < n {
        let got = r.read(&mut buf)?;
        if got == 0 {
            return Err(io::Error::other(format!(
                "ended after {seen} of {n} records"
            )));
        }
        seen += memchr::memchr_iter(b'\n', &buf[..got]).count() as u64;
        first.get_or_insert_with(|| t0.elapsed());
    }
    Ok((first.unwrap_or_default(), t0.elapsed()))
}

/// CPU seconds (utime+stime) of process `pid` so far.
fn pid_cpu_secs(pid: u32) -> f64 {
    proc_cpu(pid).map_or(0.0, |c| c.ticks as f64 / clk_tck() as f64)
}

/// Question: how many journal entries per second does logwisp carry to one TCP client,
/// next to `journalctl -f -o json` alone writing them to a reader that discards them, in
/// the same run; what CPU does each entry cost; and how often does an idle journal target
/// wake logwisp?
fn journal(ctx: &mut Ctx, entries: u64, idle_secs: u64) -> io::Result<()> {
    println!("journal: {entries} entries, journalctl alone vs logwisp to 1 TCP client");
    let dir = TempDir::new("journal");
    let ready = dir.join("ready");
    write_journal(&ready, entries)?;
    // The floor: journalctl alone, following from the first entry, its output read and
    // thrown away (the same as > /dev/null, but the reader knows when the last arrives).
    let mut floor = Vec::new();
    for args in [
        vec!["-f", "-o", "json"],
        vec![
            "-f",
            "-o",
            "json",
            "--all",
            "--output-fields=MESSAGE,PRIORITY,SYSLOG_IDENTIFIER,_SYSTEMD_UNIT,_COMM,_PID,_HOSTNAME,_BOOT_ID",
        ],
    ] {
        let t0 = Instant::now();
        let mut child = Command::new("journalctl")
            .arg(format!("--directory={}", ready.display()))
            .args(["--merge", "--no-pager", "--quiet", "--lines=all"])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::other(format!("journalctl: {e} (install systemd)")))?;
        let pid = child.id();
        let out = child.stdout.take().expect("piped");
        let timed = time_records(out, entries, t0);
        let cpu = pid_cpu_secs(pid);
        let _ = child.kill();
        let _ = child.wait();
        let (first, last) = timed?;
        let rate = (entries - 1) as f64 / (last - first).as_secs_f64().max(1e-9);
        floor.push((args.join(" "), rate, cpu / entries as f64));
    }
    // logwisp: its journal directory appears once the client is connected, so the
    // follower reads every entry from the first, live, to that client.
    let live = dir.join("journal");
    let cfg = format!(
        "[[streams]]\nname = \"bench\"\n[streams.monitor]\ncheck_interval_ms = 100\n\
         targets = [{{ journal = true, journal_dir = \"{}\" }}]\n\
         [streams.httpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = 0\n\
         [streams.tcpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = 0\n",
        live.display()
    );
    let lw = Logwisp::start(&dir.path, &cfg, true, true)?;
    let addr = lw.tcp.ok_or_else(|| io::Error::other("no tcp listener"))?;
    let client = std::net::TcpStream::connect(addr)?;
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while lw.status()?["delivery"]["tcp_clients"] != 1 {
        if Instant::now() > deadline {
            return Err(io::Error::other("the TCP client was not accepted"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu0 = lw.cpu();
    let t0 = Instant::now();
    fs::rename(&ready, &live)?;
    let timed = time_records(&client, entries, t0);
    let cpu1 = lw.cpu();
    let status = lw.status()?;
    let child_pid = status["monitor"]["watchers"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["journal"] == true))
        .and_then(|w| w["pid"].as_u64());
    let child_cpu = child_pid.map_or(0.0, |p| pid_cpu_secs(p as u32));
    let (first, last) = timed?;
    let rate = (entries - 1) as f64 / (last - first).as_secs_f64().max(1e-9);
    let lw_cpu = cpu1.secs_since(&cpu0);
    let (plain_args, plain_rate, plain_cpu) = floor[0].clone();
    let (_, fields_rate, fields_cpu) = floor[1].clone();
    let ratio = rate / plain_rate;
    ctx.row(
        "journal · entries/s to 1 TCP client vs `journalctl -f -o json` alone".into(),
        format!(
            "{ratio:.2}× ({} / {} entries/s, {} entries) · {:.2}× journalctl alone with logwisp's arguments ({} entries/s)",
            fmt_rate(rate),
            fmt_rate(plain_rate),
            group_thousands(entries),
            rate / fields_rate,
            fmt_rate(fields_rate),
        ),
        "—",
        Met::Info,
        "journal",
    );
    ctx.row(
        "journal · CPU per entry".into(),
        format!(
            "logwisp {:.2} µs + its journalctl {:.2} µs · journalctl alone {:.2} µs",
            lw_cpu / entries as f64 * 1e6,
            child_cpu / entries as f64 * 1e6,
            plain_cpu * 1e6
        ),
        "—",
        Met::Info,
        "journal",
    );
    ctx.detail(format!(
        "journal: {entries} entries (the 23 fields journald gives a service's stdout line) written by systemd-journal-remote; floor `journalctl --directory=D --merge --no-pager --quiet --lines=all {plain_args}` read by a counting reader: {} entries/s; with logwisp's own arguments (--all --output-fields=…): {} entries/s, {:.2} µs CPU per entry; logwisp's rate is first→last entry at the client (its journal directory renamed into place once the client was connected); CPU from utime+stime ({} ticks)",
        fmt_rate(plain_rate),
        fmt_rate(fields_rate),
        fields_cpu * 1e6,
        cpu1.ticks.saturating_sub(cpu0.ticks),
    ));
    drop(client);
    // Idle: the same logwisp, its journal followed, no client, nothing written.
    std::thread::sleep(Duration::from_secs(3));
    let (cpu0, sw0) = (lw.cpu(), lw.switches());
    let jsw0 = child_pid.and_then(|p| proc_switches(p as u32));
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_secs));
    let (cpu1, sw1) = (lw.cpu(), lw.switches());
    let jsw1 = child_pid.and_then(|p| proc_switches(p as u32));
    let wall = t0.elapsed().as_secs_f64();
    let exit = lw.stop()?;
    let woke = sw1.voluntary.saturating_sub(sw0.voluntary);
    let wakeups = woke as f64 / wall;
    let pct = cpu1.secs_since(&cpu0) / wall * 100.0;
    let child_woke = match (jsw0, jsw1) {
        (Some(a), Some(b)) => format!("{}", b.voluntary.saturating_sub(a.voluntary)),
        _ => "?".into(),
    };
    ctx.row(
        format!("journal · idle journal target, no client, over {idle_secs} s"),
        format!(
            "{wakeups:.3} wake-ups/s ({woke} voluntary context switches in {wall:.0} s) · {pct:.4} % of a core"
        ),
        "≤ 0.2 wake-ups/s",
        met(wakeups <= IDLE_WAKEUPS_MAX),
        "journal",
    );
    ctx.detail(format!(
        "journal idle: logwisp's wake-ups are voluntary_ctxt_switches of its threads; its journalctl child switched {child_woke} times in the same window (journalctl -f waits in its own process); {exit}"
    ));
    Ok(())
}

struct AppendRun {
    p50: u64,
    p99: u64,
    max: u64,
    samples: usize,
    cpu_ns_per_append: f64,
    wakeups_per_append: f64,
    loss: String,
    ok: bool,
}

/// Question: does one append cost more when its directory holds 10 000 files than when it
/// holds one (write→receive latency of single-line appends at a modest rate to one SSE
/// client, and logwisp's CPU per append)?
fn append(ctx: &mut Ctx, count: u64, per_sec: u64) -> io::Result<()> {
    let one = append_run(ctx, Watched::Dir(1), count, per_sec)?;
    let many = append_run(ctx, Watched::Dir(10_000), count, per_sec)?;
    let us = |ns: u64| ns as f64 / 1000.0;
    let text = |r: &AppendRun| {
        format!(
            "p50 {:.0} µs · p99 {:.0} µs · max {:.0} µs · logwisp CPU {:.0} µs and {:.1} wake-ups per append ({} samples, {})",
            us(r.p50),
            us(r.p99),
            us(r.max),
            r.cpu_ns_per_append / 1000.0,
            r.wakeups_per_append,
            r.samples,
            r.loss
        )
    };
    let what = |files: u64| {
        format!(
            "append · one line into a {}-file directory, write→receive, 1 SSE client, {per_sec} lines/s",
            group_thousands(files)
        )
    };
    ctx.row(
        what(1),
        text(&one),
        "— (the reference for the row below)",
        if one.ok { Met::Info } else { Met::No },
        "append",
    );
    let (r50, r99) = (
        many.p50 as f64 / one.p50.max(1) as f64,
        many.p99 as f64 / one.p99.max(1) as f64,
    );
    ctx.row(
        what(10_000),
        format!(
            "{} = {r50:.2}× (p50) / {r99:.2}× (p99) the 1-file directory; CPU {:.2}×",
            text(&many),
            many.cpu_ns_per_append / one.cpu_ns_per_append.max(1.0)
        ),
        "p50 and p99 within 2× of the 1-file directory",
        met(many.ok && one.ok && r50 <= 2.0 && r99 <= 2.0),
        "append",
    );
    Ok(())
}

fn append_run(ctx: &mut Ctx, watched: Watched, count: u64, per_sec: u64) -> io::Result<AppendRun> {
    let what = watched.label();
    println!("append: {what}, {count} lines at {per_sec}/s");
    let dir = TempDir::new("append");
    let (lw, hot, startup) = watched.start(&dir)?;
    let addr = lw.http.expect("http address");
    let shared = Shared::new();
    let fleet = spawn_fleet(shared.clone(), addr, Proto::Sse, 1, move || {
        latency_check(count)
    });
    let mut file = OpenOptions::new().append(true).open(&hot)?;
    warm_up(&mut file, Duration::from_secs(30), || {
        shared.warm.load(Ordering::Relaxed) >= 1
    })
    .inspect_err(|_| shared.stop.store(true, Ordering::Relaxed))?;
    std::thread::sleep(Duration::from_millis(500));
    let (cpu0, sw0) = (lw.cpu(), lw.switches());
    let probe = CpuProbe::start(Some(lw.pid));
    let mut lateness = paced_writes(&mut file, count, per_sec)?;
    let all_done = wait_done(&shared, 1, Duration::from_secs(5));
    let (cpu1, sw1) = (lw.cpu(), lw.switches());
    let machine = probe.report();
    shared.stop.store(true, Ordering::Relaxed);
    let checks = fleet.join().expect("fleet thread")?.checks;
    let exit = lw.stop()?;
    let t = totals(&checks);
    let mut lat = checks
        .first()
        .map(|c| c.latency_ns.clone())
        .unwrap_or_default();
    lat.sort_unstable();
    lateness.sort_unstable();
    let run = AppendRun {
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        max: lat.last().copied().unwrap_or(0),
        samples: lat.len(),
        cpu_ns_per_append: cpu1.secs_since(&cpu0) * 1e9 / count as f64,
        wakeups_per_append: sw1.voluntary.saturating_sub(sw0.voluntary) as f64 / count as f64,
        loss: loss_text(&t),
        ok: all_done && t.missed == 0 && t.disorder == 0 && t.dropped == 0 && t.bad_clients == 0,
    };
    ctx.detail(format!(
        "append, {what}: watching every file {:.1} s after start; appends to {}; writer woke late by p50 {:.0} µs / p99 {:.0} µs (not in the latency: each line is stamped right before its write()); {exit}",
        startup.as_secs_f64(),
        hot.file_name().unwrap_or_default().to_string_lossy(),
        percentile(&lateness, 50.0) as f64 / 1000.0,
        percentile(&lateness, 99.0) as f64 / 1000.0,
    ));
    ctx.detail(format!("  {machine}"));
    if let Some(e) = &t.first_error {
        ctx.detail(format!("  first problem seen by the client: {e}"));
    }
    Ok(run)
}

/// Issue 11's limit for the default build (TLS, WebSocket, auth, forwarding).
const DEFAULT_BUILD_LIMIT: u64 = 3 * 1024 * 1024;
/// Issue 14's limit for `--no-default-features` (issue 11's was 1.7 MiB).
const MINIMAL_BUILD_LIMIT: u64 = 3 * 1024 * 1024 / 2;

fn size(ctx: &mut Ctx) {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut default_build = std::path::PathBuf::from(logwisp());
    if !default_build.ends_with("release/logwisp") {
        // The bench profile normally shares target/release; build it if it does not.
        cargo_build_release(&[], None);
        default_build = manifest.join("target/release/logwisp");
    }
    size_row(ctx, "default build", &default_build, DEFAULT_BUILD_LIMIT);
    // The minimal build gets a target directory of its own, so the default build the
    // other scenarios run stays in place.
    let minimal_dir = manifest.join("target/bench-minimal");
    cargo_build_release(&["--no-default-features"], Some(&minimal_dir));
    size_row(
        ctx,
        "`--no-default-features`",
        &minimal_dir.join("release/logwisp"),
        MINIMAL_BUILD_LIMIT,
    );
}

fn cargo_build_release(args: &[&str], target_dir: Option<&std::path::Path>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--release", "--bin", "logwisp"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(dir) = target_dir {
        build.env("CARGO_TARGET_DIR", dir);
    }
    // A failed build shows up as the unreadable binary's row.
    let _ = build.status();
}

fn size_row(ctx: &mut Ctx, build: &str, path: &std::path::Path, limit: u64) {
    let scenario = format!("size · release binary, {build}");
    let target = format!("≤ {} bytes ({})", group_thousands(limit), mib(limit));
    match fs::read(path) {
        Ok(bytes) => {
            let n = bytes.len() as u64;
            let stripped = memchr::memmem::find(&bytes, b".symtab").is_none();
            ctx.row(
                scenario,
                format!(
                    "{} bytes = {}{}",
                    group_thousands(n),
                    mib(n),
                    if stripped {
                        " (stripped)"
                    } else {
                        " (NOT stripped)"
                    }
                ),
                &target,
                met(n <= limit),
                "size",
            );
            ctx.detail(format!("size: {}", path.display()));
        }
        Err(e) => ctx.row(
            scenario,
            format!("cannot read {}: {e}", path.display()),
            &target,
            Met::No,
            "size",
        ),
    }
}

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

/// Rows of groups not run this time are kept from the previous table, marked with the run
/// they came from.
fn write_benchmarks(ctx: &Ctx, machine: &str) -> io::Result<()> {
    let ran: Vec<&str> = ctx.rows.iter().map(|r| r.group()).collect();
    let mut rows: Vec<Row> = Vec::new();
    if let Some(old) = read_section("load") {
        let old_run = old
            .lines()
            .find_map(|l| l.strip_prefix("Run: "))
            .map(|l| l.split(" · ").take(2).collect::<Vec<_>>().join(", "))
            .unwrap_or_else(|| "an earlier run".into());
        for line in old.lines() {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split(" | ")
                .map(str::trim)
                .collect();
            // A cell must never hold " | " (it would split the row); rows from older
            // formats that did are dropped rather than mangled.
            if !line.starts_with("| ") || cells.len() != 5 || cells[0] == "scenario" {
                continue;
            }
            let group = cells[0].split(" · ").next().unwrap_or("");
            if !GROUPS.contains(&group) || ran.contains(&group) {
                continue;
            }
            let met = match cells[3] {
                "met" => Met::Yes,
                "**not met**" => Met::No,
                _ => Met::Info,
            };
            let mut command = cells[4].trim_matches('`').to_string();
            if let Some(i) = command.find("` (from ") {
                command.truncate(i);
            }
            let from = cells[4]
                .find("(from ")
                .map(|i| cells[4][i..].to_string())
                .unwrap_or_else(|| format!("(from {old_run})"));
            rows.push(Row {
                scenario: cells[0].into(),
                number: cells[1].into(),
                target: cells[2].into(),
                met,
                command: format!("{command}` {from}"),
            });
        }
    }
    for r in &ctx.rows {
        rows.push(Row {
            scenario: r.scenario.clone(),
            number: r.number.clone(),
            target: r.target.clone(),
            met: r.met,
            command: r.command.clone(),
        });
    }
    rows.sort_by_key(|r| GROUPS.iter().position(|g| *g == r.group()).unwrap_or(99));
    let mut table =
        String::from("| scenario | number | target | met? | command |\n|---|---|---|---|---|\n");
    for r in &rows {
        let cmd = if r.command.contains("` (from ") {
            format!("`{}", r.command)
        } else {
            format!("`{}`", r.command)
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {cmd} |\n",
            r.scenario,
            r.number,
            r.target,
            met_text(r.met)
        ));
    }
    let mut args: Vec<String> = Vec::new();
    let mut raw = std::env::args().skip(1);
    while let Some(a) = raw.next() {
        match a.as_str() {
            "--bench" | "--write" => {}
            "--note" => {
                raw.next();
                args.push("--note …".into());
            }
            _ => args.push(a),
        }
    }
    let mut body = String::new();
    body.push_str("## Load\n\n");
    body.push_str(&format!(
        "Run: {} · commit {} · `cargo bench --bench load{}`\n\n",
        today(),
        git_commit(),
        if args.is_empty() {
            String::new()
        } else {
            format!(" -- {}", args.join(" "))
        }
    ));
    body.push_str(&format!("Machine: {machine}.\n"));
    if let Some(n) = &ctx.opts.note {
        body.push_str(&format!("Note: {n}\n"));
    }
    body.push_str(&format!(
        "\nEach line in the log file is 100 bytes (`seq=NNNNNNNN:0 ` + filler); every client checks \
every sequence number. Every run uses logwisp's default `buffer_size` ({} entries) and SSE \
heartbeats, one stream, only the server under test; throughput, burst and catch-up runs time \
from the first write to the last line received by the last client. \"ceiling\" rows feed the \
same readers from a thread writing pre-rendered logwisp frames. Idle rows have no client \
connected (a client would get a heartbeat every 30 s, a wake-up of its own).\n\n",
        logwisp::config::DEFAULT_BUFFER_SIZE
    ));
    body.push_str(&table);
    body.push_str("\nDetails of this run:\n\n");
    for d in &ctx.details {
        // Lines indented by the scenario belong to the line above them.
        match d.strip_prefix("  ") {
            Some(sub) => body.push_str(&format!("  - {}\n", sub.trim_start())),
            None => body.push_str(&format!("- {d}\n")),
        }
    }
    write_section("load", &body)
}
