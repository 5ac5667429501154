//! Question: what does TLS cost logwisp on this machine? One TLS client's throughput
//! against one plain-TCP client's (same lines, same reader, alternating in one run), the
//! memory of 1 000 idle TLS clients against 1 000 plain ones, and full handshakes per
//! second on logwisp's one core.
//!
//! `cargo bench --bench tls [-- SCENARIO... --quick --rounds N --note TEXT
//! --write|--no-write]`, scenarios: throughput memory handshakes (default: all). Prints one
//! table and writes it into BENCHMARKS.md between the `tls` markers (not for `--quick`
//! unless `--write`). Certificates are made with rcgen (ECDSA P-256) in a temp directory.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use common::*;

const SCENARIOS: [&str; 3] = ["throughput", "memory", "handshakes"];

struct Opts {
    scenarios: Vec<String>,
    quick: bool,
    rounds: usize,
    /// Reader pauses this long before each 64 KiB read: a client slower than logwisp,
    /// which falls behind and is served from the file.
    reader_pause_us: u64,
    note: Option<String>,
    write: Option<bool>,
}

impl Opts {
    fn parse() -> Result<Opts, String> {
        let mut o = Opts {
            scenarios: Vec::new(),
            quick: false,
            rounds: 3,
            reader_pause_us: 0,
            note: None,
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
                "--reader-pause-us" => {
                    o.reader_pause_us = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--reader-pause-us needs a number of microseconds")?
                }
                "--note" => o.note = Some(args.next().ok_or("--note needs text")?),
                s if SCENARIOS.contains(&s) => o.scenarios.push(s.to_string()),
                s => {
                    return Err(format!(
                        "unknown argument {s:?}; scenarios: {}; flags: --quick --rounds N --reader-pause-us N --note TEXT --write --no-write",
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
        let mut c = format!("cargo bench --bench tls -- {scenario}");
        if self.quick {
            c.push_str(" --quick");
        }
        if scenario == "throughput" && self.rounds != 3 {
            c.push_str(&format!(" --rounds {}", self.rounds));
        }
        if scenario == "throughput" && self.reader_pause_us > 0 {
            c.push_str(&format!(" --reader-pause-us {}", self.reader_pause_us));
        }
        c
    }
}

struct Ctx {
    opts: Opts,
    rows: Vec<[String; 5]>,
    details: Vec<String>,
}

impl Ctx {
    fn row(&mut self, scenario: &str, number: String, target: &str, met: Option<bool>) {
        let met = match met {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "—",
        };
        let group = scenario.split(" · ").next().unwrap_or("");
        let cmd = self.opts.command(group);
        println!("  → {scenario} | {number} | {target} | {met}");
        self.rows.push([
            scenario.replace('|', "/"),
            number.replace('|', "/"),
            target.into(),
            met.into(),
            format!("`{cmd}`"),
        ]);
    }

    fn detail(&mut self, text: String) {
        println!("    {text}");
        self.details.push(text);
    }
}

fn main() {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    raise_nofile();
    let machine = machine_note();
    println!("logwisp TLS bench: {}\nmachine: {machine}", logwisp());
    let dir = TempDir::new("tls-pki");
    let pki = Pki::new(&dir.path);
    let mut ctx = Ctx {
        opts,
        rows: Vec::new(),
        details: Vec::new(),
    };
    let quick = ctx.opts.quick;
    let mut failed = false;
    let mut run = |ctx: &mut Ctx, name: &str, r: io::Result<()>| {
        if let Err(e) = r {
            failed = true;
            ctx.detail(format!("{name}: failed: {e}"));
        }
    };
    if ctx.opts.wants("throughput") {
        let lines = if quick { 300_000 } else { 2_000_000 };
        let r = throughput(&mut ctx, &pki, lines);
        run(&mut ctx, "throughput", r);
    }
    if ctx.opts.wants("memory") {
        let n = if quick { 200 } else { 1000 };
        let r = memory(&mut ctx, &pki, n);
        run(&mut ctx, "memory", r);
    }
    if ctx.opts.wants("handshakes") {
        let n = if quick { 300 } else { 3000 };
        let r = handshakes(&mut ctx, &pki, n);
        run(&mut ctx, "handshakes", r);
    }
    let write = ctx.opts.write.unwrap_or(!quick);
    if write {
        if let Err(e) = write_benchmarks(&ctx, &machine) {
            eprintln!("writing BENCHMARKS.md: {e}");
            failed = true;
        } else {
            println!("wrote the tls section of {}", benchmarks_path().display());
        }
    }
    if failed {
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------
// Certificates and the client side
// ---------------------------------------------------------------------------------------

/// A CA and a server certificate for `localhost` / 127.0.0.1 (ECDSA P-256, rcgen's
/// default), written as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "logwisp bench CA");
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_pem = ca.self_signed(&ca_key).expect("CA cert").pem();
        let issuer = Issuer::new(ca, ca_key);
        let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params");
        let key = KeyPair::generate().expect("server key");
        let cert = leaf.signed_by(&key, &issuer).expect("server cert");
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            fs::write(&p, text).expect("write PEM");
            p
        };
        Pki {
            ca: write("ca.pem", &ca_pem),
            cert: write("server.pem", &cert.pem()),
            key: write("server.key", &key.serialize_pem()),
        }
    }

    /// A client that trusts the CA; no session resumption, so every connection is a full
    /// handshake; `tls12` limits it to TLS 1.2.
    fn client(&self, tls12: bool) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca).expect("CA PEM") {
            roots.add(c.expect("CA cert")).expect("CA in store");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if tls12 {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        let mut cfg = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.resumption = rustls::client::Resumption::disabled();
        Arc::new(cfg)
    }

    fn table(&self, server: &str) -> String {
        format!(
            "\n[streams.{server}.tls]\nenabled = true\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            self.cert.display(),
            self.key.display()
        )
    }
}

/// One stream on `log`; TCP and/or HTTP on 127.0.0.1 (free ports), TLS on both or on
/// neither, no heartbeats.
fn config(log: &Path, http: bool, tcp: bool, tls: Option<&Pki>) -> String {
    let mut s = ConfigSpec {
        targets: &file_target(log),
        http,
        tcp,
        buffer_size: None,
        check_interval_ms: 100,
        heartbeat_secs: None,
    }
    .render();
    if let Some(pki) = tls {
        for (on, server) in [(http, "httpserver"), (tcp, "tcpserver")] {
            if on {
                s.push_str(&pki.table(server));
            }
        }
    }
    s
}

/// A connected client stream: plain TCP or a rustls client session over it.
enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    fn open(addr: SocketAddr, tls: Option<&Arc<ClientConfig>>) -> io::Result<Conn> {
        let sock = TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        Ok(match tls {
            None => Conn::Plain(sock),
            Some(cfg) => {
                let name = ServerName::try_from("localhost").expect("server name");
                let session =
                    ClientConnection::new(Arc::clone(cfg), name).map_err(io::Error::other)?;
                let mut s = StreamOwned::new(session, sock);
                while s.conn.is_handshaking() {
                    s.conn.complete_io(&mut s.sock)?;
                }
                Conn::Tls(Box::new(s))
            }
        })
    }

    fn suite(&self) -> String {
        match self {
            Conn::Plain(_) => "plain".into(),
            Conn::Tls(s) => format!(
                "{:?} {:?}",
                s.conn
                    .protocol_version()
                    .unwrap_or(rustls::ProtocolVersion::Unknown(0)),
                s.conn.negotiated_cipher_suite().map(|c| c.suite())
            )
            .replace("Some(", "")
            .replace(')', ""),
        }
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.set_read_timeout(t),
            Conn::Tls(s) => s.sock.set_read_timeout(t),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Throughput: one client, plain TCP vs TLS
// ---------------------------------------------------------------------------------------

struct Pass {
    rate: f64,
    mbps: f64,
    lw_cpu: f64,
    secs: f64,
    reader_cpu: f64,
    ok: bool,
    suite: String,
    rss: u64,
    /// What the reader saw go wrong, if anything.
    problem: Option<String>,
}

/// Runs one logwisp with a TCP server (TLS or not) and one checking reader; `lines` lines
/// are appended after a warm-up line has reached the reader.
fn pass(pki: &Pki, tls: bool, lines: u64, data: &[u8], pause_us: u64) -> io::Result<Pass> {
    let dir = TempDir::new(if tls { "tls" } else { "plain" });
    let log = dir.join("app.log");
    File::create(&log)?;
    let lw = Logwisp::start(
        &dir.path,
        &config(&log, false, true, tls.then_some(pki)),
        false,
        true,
    )?;
    let addr = lw.tcp.expect("tcp address");
    let client = tls.then(|| pki.client(false));
    let mut conn = Conn::open(addr, client.as_ref())?;
    conn.set_read_timeout(Some(Duration::from_secs(15)))?;
    let suite = conn.suite();
    let warm = Arc::new(AtomicBool::new(false));
    let done_ns = Arc::new(AtomicU64::new(0));
    let reader = {
        let (warm, done_ns) = (warm.clone(), done_ns.clone());
        std::thread::spawn(move || -> (Check, u64) {
            let t0 = thread_cpu_ns();
            let mut check = Check::strict(lines);
            let mut buf = vec![0u8; 1 << 20];
            let mut have = 0;
            let end = if pause_us > 0 { 64 * 1024 } else { buf.len() };
            while !check.is_done() {
                if pause_us > 0 {
                    std::thread::sleep(Duration::from_micros(pause_us));
                }
                let n = match conn.read(&mut buf[have..end.max(have + 1)]) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        check.closed = Some(e.to_string());
                        break;
                    }
                };
                have += n;
                let used = check.feed(Proto::Tcp, &buf[..have], 0);
                buf.copy_within(used..have, 0);
                have -= used;
                if check.warmups > 0 {
                    warm.store(true, Ordering::Relaxed);
                }
            }
            done_ns.store(mono_ns(), Ordering::Relaxed);
            (check, thread_cpu_ns() - t0)
        })
    };
    let mut file = OpenOptions::new().append(true).open(&log)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !warm.load(Ordering::Relaxed) {
        if Instant::now() > deadline {
            return Err(io::Error::other("the reader never saw the warm-up line"));
        }
        file.write_all(&warmup_line())?;
        std::thread::sleep(Duration::from_millis(50));
    }
    let cpu0 = lw.cpu();
    let t0 = mono_ns();
    for chunk in data.chunks(1 << 20) {
        file.write_all(chunk)?;
    }
    let (check, reader_ns) = reader.join().expect("reader thread");
    let cpu1 = lw.cpu();
    let mem = lw.mem();
    let secs = (done_ns.load(Ordering::Relaxed).saturating_sub(t0)) as f64 / 1e9;
    lw.stop()?;
    Ok(Pass {
        rate: lines as f64 / secs,
        mbps: check.bytes as f64 / secs / 1e6,
        lw_cpu: cpu1.secs_since(&cpu0),
        secs,
        reader_cpu: reader_ns as f64 / 1e9,
        ok: check.is_done() && check.ok(),
        suite,
        rss: mem.rss,
        problem: (!(check.is_done() && check.ok())).then(|| {
            format!(
                "{} of {lines} lines, {} missed, {} dropped, {} out of order; {}; {}",
                check.lines,
                check.missed,
                check.dropped,
                check.disorder,
                check.errors.first().map_or("no error", String::as_str),
                check.closed.as_deref().unwrap_or("not closed")
            )
        }),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn throughput(ctx: &mut Ctx, pki: &Pki, lines: u64) -> io::Result<()> {
    let rounds = ctx.opts.rounds;
    println!(
        "throughput: 1 TCP client, plain and TLS alternating, {rounds} rounds of {lines} lines"
    );
    let data = data_lines(lines);
    let mut plain = Vec::new();
    let mut tls = Vec::new();
    for round in 0..rounds {
        for on in [false, true] {
            let p = pass(pki, on, lines, &data, ctx.opts.reader_pause_us)?;
            ctx.detail(format!(
                "round {} {}: {lines} lines in {:.2} s = {} lines/s · {:.0} MB/s; logwisp CPU {:.2} s ({:.0} ns per line); reader {:.0} % of a core; logwisp RSS {} at the end; {}; {}",
                round + 1,
                if on { "TLS" } else { "plain" },
                p.secs,
                fmt_rate(p.rate),
                p.mbps,
                p.lw_cpu,
                p.lw_cpu * 1e9 / lines as f64,
                p.reader_cpu / p.secs * 100.0,
                mib(p.rss),
                p.suite,
                match &p.problem {
                    None => "0 missed".to_string(),
                    Some(e) => format!("NOT OK: {e}"),
                },
            ));
            if on { &mut tls } else { &mut plain }.push(p);
        }
    }
    let all_ok = plain.iter().chain(&tls).all(|p| p.ok);
    let med = |v: &[Pass], f: fn(&Pass) -> f64| median(v.iter().map(f).collect());
    let (p_rate, t_rate) = (med(&plain, |p| p.rate), med(&tls, |p| p.rate));
    let (p_mb, t_mb) = (med(&plain, |p| p.mbps), med(&tls, |p| p.mbps));
    let per_line = |v: &[Pass]| med(v, |p| p.lw_cpu) * 1e9 / lines as f64;
    ctx.row(
        "throughput · 1 plain TCP client",
        format!(
            "{} lines/s · {p_mb:.0} MB/s (median of {rounds}) · {:.0} ns logwisp CPU per line",
            fmt_rate(p_rate),
            per_line(&plain)
        ),
        "every line delivered",
        Some(plain.iter().all(|p| p.ok)),
    );
    ctx.row(
        "throughput · 1 TLS TCP client",
        format!(
            "{} lines/s · {t_mb:.0} MB/s (median of {rounds}) · {:.0} ns logwisp CPU per line · {}",
            fmt_rate(t_rate),
            per_line(&tls),
            tls[0].suite
        ),
        "every line delivered",
        Some(tls.iter().all(|p| p.ok)),
    );
    let ratio = t_rate / p_rate;
    ctx.row(
        "throughput · TLS ÷ plain (same run)",
        format!(
            "{ratio:.2}× ({} / {} lines/s)",
            fmt_rate(t_rate),
            fmt_rate(p_rate)
        ),
        "≥ 0.6×",
        Some(all_ok && ratio >= 0.6),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Memory: 1 000 idle clients, plain and TLS
// ---------------------------------------------------------------------------------------

/// Opens an SSE stream and reads until its `event: connected`.
fn sse_subscribe(addr: SocketAddr, tls: Option<&Arc<ClientConfig>>) -> io::Result<Conn> {
    let mut c = Conn::open(addr, tls)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    c.write_all(b"GET /stream HTTP/1.1\r\nHost: bench\r\n\r\n")?;
    c.flush()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(16).any(|w| w == b"event: connected") {
        let n = c.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::other("closed before `event: connected`"));
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(c)
}

fn idle_clients(pki: &Pki, tls: bool, n: usize) -> io::Result<(Mem, Mem, serde_json::Value)> {
    let dir = TempDir::new("memory");
    let log = dir.join("app.log");
    File::create(&log)?;
    let lw = Logwisp::start(
        &dir.path,
        &config(&log, true, false, tls.then_some(pki)),
        true,
        false,
    )?;
    let addr = lw.http.expect("http address");
    std::thread::sleep(Duration::from_secs(1));
    let idle = lw.mem();
    let client = tls.then(|| pki.client(false));
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(sse_subscribe(addr, client.as_ref())?);
    }
    std::thread::sleep(Duration::from_secs(1));
    let with = lw.mem();
    // /status over the same kind of connection: a plain GET cannot reach a TLS port.
    let status = {
        let mut c = Conn::open(addr, client.as_ref())?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.write_all(b"GET /status HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
        let mut raw = Vec::new();
        let _ = c.read_to_end(&mut raw);
        let body = memchr::memmem::find(&raw, b"\r\n\r\n").map_or(&raw[..0], |i| &raw[i + 4..]);
        serde_json::from_slice(body).unwrap_or(serde_json::Value::Null)
    };
    drop(conns);
    lw.stop()?;
    Ok((idle, with, status))
}

fn memory(ctx: &mut Ctx, pki: &Pki, n: usize) -> io::Result<()> {
    println!("memory: {n} idle SSE clients, plain then TLS");
    let mut per = [0u64; 2];
    for (i, tls) in [false, true].into_iter().enumerate() {
        let (idle, with, status) = idle_clients(pki, tls, n)?;
        per[i] = with.rss.saturating_sub(idle.rss) / n as u64;
        let kind = if tls { "TLS" } else { "plain" };
        ctx.detail(format!(
            "memory {kind}: idle VmRSS {} → {} with {n} clients (VmHWM {}); /status sse_clients = {}; (RSS_N − RSS_idle) / N = {} bytes",
            mib(idle.rss),
            mib(with.rss),
            mib(with.hwm),
            status["delivery"]["sse_clients"],
            per[i]
        ));
    }
    ctx.detail(format!(
        "memory: a rustls::ServerConnection is {} bytes inline (boxed in logwisp's TlsStream); rustls keeps a 4096-byte read buffer per idle session (msgs/deframer: shrunk to READ_SIZE when empty, never freed), plus the traffic keys and the session's state",
        std::mem::size_of::<rustls::ServerConnection>()
    ));
    ctx.row(
        &format!("memory · {n} idle plain SSE clients"),
        format!("{} per client", kib(per[0])),
        "— (reference)",
        None,
    );
    ctx.row(
        &format!("memory · {n} idle TLS SSE clients"),
        format!(
            "{} per client ({} more than plain)",
            kib(per[1]),
            kib(per[1].saturating_sub(per[0]))
        ),
        "≤ 32 KiB per client",
        Some(per[1] <= 32 * 1024),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Handshakes per second
// ---------------------------------------------------------------------------------------

fn handshakes(ctx: &mut Ctx, pki: &Pki, n: usize) -> io::Result<()> {
    for tls12 in [false, true] {
        let version = if tls12 { "TLS 1.2" } else { "TLS 1.3" };
        println!("handshakes: {n} full {version} handshakes, 2 client threads");
        let dir = TempDir::new("handshakes");
        let log = dir.join("app.log");
        File::create(&log)?;
        let lw = Logwisp::start(
            &dir.path,
            &config(&log, false, true, Some(pki)),
            false,
            true,
        )?;
        let addr = lw.tcp.expect("tcp address");
        let client = pki.client(tls12);
        // Warm up (page faults, the session cache) before measuring.
        for _ in 0..20 {
            Conn::open(addr, Some(&client))?;
        }
        let threads = 2;
        let cpu0 = lw.cpu();
        let t0 = Instant::now();
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let client = Arc::clone(&client);
                std::thread::spawn(move || -> io::Result<(u64, String)> {
                    let t = thread_cpu_ns();
                    let mut suite = String::new();
                    for _ in 0..n / threads {
                        let mut c = Conn::open(addr, Some(&client))?;
                        if suite.is_empty() {
                            suite = c.suite();
                        }
                        if let Conn::Tls(s) = &mut c {
                            s.conn.send_close_notify();
                            let _ = s.conn.complete_io(&mut s.sock);
                        }
                    }
                    Ok((thread_cpu_ns() - t, suite))
                })
            })
            .collect();
        let mut client_ns = 0;
        let mut suite = String::new();
        for w in workers {
            let (ns, s) = w.join().expect("handshake thread")?;
            client_ns += ns;
            suite = s;
        }
        let secs = t0.elapsed().as_secs_f64();
        // Let logwisp see the last closes before reading its CPU time.
        std::thread::sleep(Duration::from_millis(200));
        let lw_cpu = lw.cpu().secs_since(&cpu0);
        let done = n / threads * threads;
        let failures = stderr_note(&lw);
        lw.stop()?;
        let per_core = done as f64 / lw_cpu;
        ctx.row(
            &format!("handshakes · full {version}, ECDSA P-256 certificate"),
            format!(
                "{:.0} /s on logwisp's one core ({:.0} µs CPU each) · {:.0} /s reached with 2 client threads",
                per_core,
                lw_cpu / done as f64 * 1e6,
                done as f64 / secs
            ),
            "— (report)",
            None,
        );
        ctx.detail(format!(
            "handshakes {version}: {done} in {secs:.2} s; logwisp CPU {lw_cpu:.2} s = {:.0} % of a core; client threads {:.2} s CPU; {suite}{failures}",
            lw_cpu / secs * 100.0,
            client_ns as f64 / 1e9,
        ));
    }
    Ok(())
}

/// What logwisp printed on stderr, if anything (a failed handshake is not printed; a
/// problem with the setup is).
fn stderr_note(lw: &Logwisp) -> String {
    let errs = lw.stderr_lines();
    if errs.is_empty() {
        String::new()
    } else {
        format!("; stderr: {}", errs.join(" | "))
    }
}

// ---------------------------------------------------------------------------------------
// BENCHMARKS.md
// ---------------------------------------------------------------------------------------

fn write_benchmarks(ctx: &Ctx, machine: &str) -> io::Result<()> {
    let mut body = String::from("## TLS\n\n");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench" && a != "--write")
        .collect();
    body.push_str(&format!(
        "Run: {} · commit {} · `cargo bench --bench tls{}`\n\n",
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
    body.push_str(
        "\nrustls 0.23 with ring on both sides, an ECDSA P-256 server certificate made by rcgen. \
Throughput: the same 100-byte lines and checking reader as the load bench, one TCP client, \
plain and TLS servers started alternately in one run (median of the rounds). Memory: \
(VmRSS with N idle SSE clients − VmRSS idle) / N, each client past its handshake and \
`event: connected`. Handshakes: full handshakes (client resumption off), new TCP \
connection each; \"on one core\" is handshakes per second of logwisp CPU time.\n\n",
    );
    body.push_str("| scenario | number | target | met? | command |\n|---|---|---|---|---|\n");
    for r in &ctx.rows {
        body.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    body.push_str("\nDetails of this run:\n\n");
    for d in &ctx.details {
        body.push_str(&format!("- {d}\n"));
    }
    write_section("tls", &body)
}
