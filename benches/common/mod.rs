//! Shared parts of the load and soak benches: the logwisp process, /proc readers, the test
//! lines, a many-client reader on one mio loop (SSE and NDJSON) that checks every line's
//! sequence number, a trivial local source to measure that reader alone, and the
//! BENCHMARKS.md section writer.

// Each bench uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memchr::memmem;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab_lite::Slab;

/// The binary under test: this build's, or `LOGWISP_BENCH_BIN` (an older build, for a
/// before/after comparison in one sitting).
pub fn logwisp() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("LOGWISP_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_logwisp").into())
    })
}

// ---------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------

/// A temporary directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("logwisp-bench-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// CLOCK_REALTIME in nanoseconds.
pub fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// CPU time of the calling thread in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps until `deadline` on CLOCK_MONOTONIC (absolute, so pacing does not drift).
pub fn sleep_until_mono_ns(deadline: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline % 1_000_000_000) as libc::c_long,
    };
    loop {
        // SAFETY: `ts` is a valid timespec; the remaining-time pointer may be null.
        let r = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
        if r != libc::EINTR {
            return;
        }
    }
}

pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Raises this process's soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `git rev-parse --short HEAD`, plus a note when src/ or Cargo.toml differ from it.
pub fn git_commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let dirty = Command::new("git")
        .args(["diff", "--quiet", "HEAD", "--", "src", "Cargo.toml"])
        .current_dir(dir)
        .status()
        .map(|s| !s.success())
        .unwrap_or(false);
    if dirty {
        format!("{head} + uncommitted changes in src/")
    } else {
        head
    }
}

pub fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn machine_note() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(0.0, |k| k as f64 / 1024.0 / 1024.0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let load = fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!(
        "{cpus} cores ({model}), {mem_gib:.0} GiB, Linux {kernel}, load average at start {load}"
    )
}

pub fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

pub fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / 1024.0 / 1024.0)
}

// ---------------------------------------------------------------------------------------
// /proc readers
// ---------------------------------------------------------------------------------------

/// VmRSS and VmHWM in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mem {
    pub rss: u64,
    pub hwm: u64,
}

pub fn proc_mem(pid: u32) -> Option<Mem> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    Some(Mem {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

/// Context switches of a process, summed over its threads: voluntary ones are wake-ups
/// (the process slept in the kernel and was woken), involuntary ones are preemptions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Switches {
    pub voluntary: u64,
    pub involuntary: u64,
}

pub fn proc_switches(pid: u32) -> Option<Switches> {
    let mut total = Switches::default();
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(s) = fs::read_to_string(task.ok()?.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        total.voluntary += field("voluntary_ctxt_switches:");
        total.involuntary += field("nonvoluntary_ctxt_switches:");
    }
    Some(total)
}

/// CPU time of a process: utime+stime in clock ticks (/proc/PID/stat) and, where the kernel
/// has it, the scheduler's nanosecond count (/proc/PID/task/*/schedstat, live threads only).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub ticks: u64,
    pub sched_ns: Option<u64>,
}

pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

pub fn proc_cpu(pid: u32) -> Option<Cpu> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // /proc/PID/schedstat covers the main thread only: sum every thread's.
    let sched_ns = fs::read_dir(format!("/proc/{pid}/task"))
        .ok()
        .and_then(|tasks| {
            tasks
                .filter_map(Result::ok)
                .map(|t| {
                    fs::read_to_string(t.path().join("schedstat"))
                        .ok()
                        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                })
                .sum::<Option<u64>>()
        });
    Some(Cpu {
        ticks: utime + stime,
        sched_ns,
    })
}

impl Cpu {
    /// Seconds of CPU between two samples, preferring the nanosecond count.
    pub fn secs_since(&self, before: &Cpu) -> f64 {
        match (self.sched_ns, before.sched_ns) {
            (Some(a), Some(b)) => a.saturating_sub(b) as f64 / 1e9,
            _ => self.ticks.saturating_sub(before.ticks) as f64 / clk_tck() as f64,
        }
    }

    pub fn tick_secs_since(&self, before: &Cpu) -> f64 {
        self.ticks.saturating_sub(before.ticks) as f64 / clk_tck() as f64
    }
}

/// Whole-machine CPU from /proc/stat, in ticks summed over all cores.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy: u64,
    pub total: u64,
}

pub fn machine_cpu() -> MachineCpu {
    let s = fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    MachineCpu {
        busy,
        total: busy + get(3) + get(4),
    }
}

/// Who used the machine's CPU during a measurement: logwisp, this harness, and everyone
/// else (other builds on a shared machine), so noisy numbers can be recognised.
pub struct CpuProbe {
    machine: MachineCpu,
    harness: Cpu,
    logwisp: Option<(u32, Cpu)>,
    wall: Instant,
}

impl CpuProbe {
    pub fn start(logwisp_pid: Option<u32>) -> CpuProbe {
        CpuProbe {
            machine: machine_cpu(),
            harness: proc_cpu(std::process::id()).unwrap_or_default(),
            logwisp: logwisp_pid.map(|p| (p, proc_cpu(p).unwrap_or_default())),
            wall: Instant::now(),
        }
    }

    /// "machine 2 cores 97 % busy: logwisp 45 %, harness 60 %, other processes 89 %"
    /// (percentages of one core).
    pub fn report(&self) -> String {
        let m = machine_cpu();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let total = m.total.saturating_sub(self.machine.total).max(1) as f64;
        let busy = m.busy.saturating_sub(self.machine.busy) as f64;
        let wall = self.wall.elapsed().as_secs_f64().max(1e-9);
        let harness = proc_cpu(std::process::id())
            .unwrap_or_default()
            .secs_since(&self.harness);
        let lw = self
            .logwisp
            .map(|(pid, c)| proc_cpu(pid).unwrap_or_default().secs_since(&c))
            .unwrap_or(0.0);
        let busy_core_secs = busy / total * cores * wall;
        let other = (busy_core_secs - harness - lw).max(0.0);
        format!(
            "machine ({cores:.0} cores) {:.0} % busy — logwisp {:.0} %, harness {:.0} %, other processes and kernel {:.0} % (of one core)",
            busy / total * 100.0,
            lw / wall * 100.0,
            harness / wall * 100.0,
            other / wall * 100.0
        )
    }
}

// ---------------------------------------------------------------------------------------
// The logwisp process
// ---------------------------------------------------------------------------------------

pub struct Logwisp {
    child: Child,
    pub pid: u32,
    pub http: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

/// A one-stream config for benches: HTTP and/or TCP on 127.0.0.1, free ports.
pub struct ConfigSpec<'a> {
    pub targets: &'a str,
    pub http: bool,
    pub tcp: bool,
    /// `None` leaves `buffer_size` out, so logwisp's default applies.
    pub buffer_size: Option<usize>,
    pub check_interval_ms: u64,
    /// Heartbeat interval in seconds (both servers), when wanted.
    pub heartbeat_secs: Option<u64>,
}

impl ConfigSpec<'_> {
    pub fn render(&self) -> String {
        let mut s = format!(
            "[[streams]]\nname = \"bench\"\n\n[streams.monitor]\ncheck_interval_ms = {}\ntargets = [{}]\n",
            self.check_interval_ms, self.targets
        );
        for (on, table) in [(self.http, "httpserver"), (self.tcp, "tcpserver")] {
            if !on {
                continue;
            }
            s.push_str(&format!(
                "\n[streams.{table}]\nenabled = true\naddress = \"127.0.0.1\"\nport = 0\n"
            ));
            if let Some(n) = self.buffer_size {
                s.push_str(&format!("buffer_size = {n}\n"));
            }
            if let Some(hb) = self.heartbeat_secs {
                s.push_str(&format!(
                    "\n[streams.{table}.heartbeat]\nenabled = true\ninterval_seconds = {hb}\ninclude_timestamp = true\ninclude_stats = true\n"
                ));
                if table == "httpserver" {
                    s.push_str("format = \"comment\"\n");
                }
            }
        }
        s
    }
}

/// `{ path = "...", is_file = true }`
pub fn file_target(path: &Path) -> String {
    format!("{{ path = \"{}\", is_file = true }}", path.display())
}

pub fn dir_target(path: &Path, pattern: &str) -> String {
    format!(
        "{{ path = \"{}\", pattern = \"{pattern}\", is_file = false }}",
        path.display()
    )
}

/// The logwisp binary, or, for profiling, `LOGWISP_BENCH_WRAPPER`: a command put in front
/// of it (`strace -c -f -o /tmp/s.txt`, `valgrind --tool=callgrind`); when one of its
/// words ends in `logwisp` that binary is used instead of cargo's (e.g. an unstripped
/// build). CPU and memory numbers then describe the wrapper.
fn logwisp_command() -> Command {
    match std::env::var("LOGWISP_BENCH_WRAPPER") {
        Ok(w) if !w.trim().is_empty() => {
            let words: Vec<&str> = w.split_whitespace().collect();
            let mut cmd = Command::new(words[0]);
            cmd.args(&words[1..]);
            if !words.iter().any(|l| l.ends_with("logwisp")) {
                cmd.arg(logwisp());
            }
            cmd
        }
        _ => Command::new(logwisp()),
    }
}

fn parse_listen(line: &str, proto: &str) -> Option<SocketAddr> {
    let marker = format!(" {proto} listening on ");
    let at = line.find(&marker)?;
    let addr: SocketAddr = line[at + marker.len()..].trim().parse().ok()?;
    // A wildcard bind is reached through loopback.
    if addr.ip().is_unspecified() {
        Some(SocketAddr::new([127, 0, 0, 1].into(), addr.port()))
    } else {
        Some(addr)
    }
}

impl Logwisp {
    /// Starts logwisp with `config` written to `dir/logwisp.toml`, cwd `dir`, and waits
    /// until the expected listeners are printed. State goes to `dir/state`: a bench run
    /// neither reads nor overwrites the user's saved positions.
    pub fn start(dir: &Path, config: &str, want_http: bool, want_tcp: bool) -> io::Result<Logwisp> {
        let path = dir.join("logwisp.toml");
        fs::write(&path, config)?;
        let mut cmd = logwisp_command();
        cmd.arg("--config")
            .arg(&path)
            .current_dir(dir)
            .env("STATE_DIRECTORY", dir.join("state"));
        Self::spawn(cmd, want_http, want_tcp)
    }

    /// Starts logwisp with no config in `dir` (an empty cwd, HOME pointed at it), so it
    /// runs the built-in default config.
    pub fn start_default(dir: &Path) -> io::Result<Logwisp> {
        let mut cmd = logwisp_command();
        cmd.current_dir(dir)
            .env("HOME", dir)
            .env("STATE_DIRECTORY", dir.join("state"))
            .env_remove("LOGWISP_CONFIG");
        Self::spawn(cmd, true, false)
    }

    fn spawn(mut cmd: Command, want_http: bool, want_tcp: bool) -> io::Result<Logwisp> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = child.id();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        {
            // Drained for the whole run: a full pipe would stall logwisp's console output.
            let out = child.stdout.take().expect("piped stdout");
            let store = stdout.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line.clone());
                    store.lock().unwrap().push(line);
                }
            });
            let err = child.stderr.take().expect("piped stderr");
            let store = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    store.lock().unwrap().push(line);
                }
            });
        }
        let mut lw = Logwisp {
            child,
            pid,
            http: None,
            tcp: None,
            stdout,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while (want_http && lw.http.is_none()) || (want_tcp && lw.tcp.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = parse_listen(&line, "http") {
                        lw.http.get_or_insert(a);
                    }
                    if let Some(a) = parse_listen(&line, "tcp") {
                        lw.tcp.get_or_insert(a);
                    }
                }
                Err(_) => {
                    let err = lw.stderr.lock().unwrap().join("\n");
                    let _ = lw.child.kill();
                    return Err(io::Error::other(format!(
                        "logwisp did not print its listeners: {err}"
                    )));
                }
            }
        }
        Ok(lw)
    }

    pub fn cpu(&self) -> Cpu {
        proc_cpu(self.pid).unwrap_or_default()
    }

    pub fn mem(&self) -> Mem {
        proc_mem(self.pid).unwrap_or_default()
    }

    pub fn switches(&self) -> Switches {
        proc_switches(self.pid).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// GET the status JSON from the HTTP server.
    pub fn status(&self) -> io::Result<serde_json::Value> {
        let addr = self
            .http
            .ok_or_else(|| io::Error::other("no http server"))?;
        http_get_json(addr, "/status")
    }

    /// SIGTERM, then wait (SIGKILL after 10 s). Returns the exit status.
    pub fn stop(mut self) -> io::Result<ExitStatus> {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait()? {
                return Ok(st);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Logwisp {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A blocking `GET` with `Connection: close`; the body parsed as JSON.
pub fn http_get_json(addr: SocketAddr, path: &str) -> io::Result<serde_json::Value> {
    let mut s = StdTcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !raw.is_empty() => break,
            Err(e) => return Err(e),
        }
        // Stop at a complete Content-Length body even if the server keeps the socket.
        if let Some(head_end) = memmem::find(&raw, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
            if let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                && raw.len() >= head_end + 4 + len
            {
                break;
            }
        }
    }
    let head_end =
        memmem::find(&raw, b"\r\n\r\n").ok_or_else(|| io::Error::other("no response head"))?;
    serde_json::from_slice(&raw[head_end + 4..]).map_err(io::Error::other)
}

// ---------------------------------------------------------------------------------------
// Test lines
// ---------------------------------------------------------------------------------------

/// Every line written to a log file is exactly this long, newline included.
pub const LINE_LEN: usize = 100;
const FILLER: &[u8] = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua ut enim ad minim veniam ";

fn pad_line(out: &mut Vec<u8>, start: usize) {
    let have = out.len() - start;
    assert!(have < LINE_LEN, "line prefix too long");
    out.extend_from_slice(&FILLER[..LINE_LEN - 1 - have]);
    out.push(b'\n');
}

fn push_digits(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut x = v;
    for i in (0..20).rev() {
        buf[i] = b'0' + (x % 10) as u8;
        x /= 10;
    }
    out.extend_from_slice(&buf[20 - width..]);
}

/// `seq=00000123:F ` (+ `t=<realtime ns> ` when given), padded to [`LINE_LEN`].
/// `file` (0–3) tags which file a line went to, so order is checked per file.
pub fn data_line(out: &mut Vec<u8>, seq: u64, file: u8, t_ns: Option<u64>) {
    let start = out.len();
    out.extend_from_slice(b"seq=");
    push_digits(out, seq, 8);
    out.push(b':');
    out.push(b'0' + file);
    out.push(b' ');
    if let Some(t) = t_ns {
        out.extend_from_slice(b"t=");
        push_digits(out, t, 19);
        out.push(b' ');
    }
    pad_line(out, start);
}

/// A JSON object line of [`LINE_LEN`] bytes whose message carries `seq=00000123:0 `:
/// `{"ts":"…","level":"info","msg":"seq=… filler","host":"gw1"}` (time, level and message
/// lifted into the entry, `host` kept under `fields`).
pub fn json_data_line(out: &mut Vec<u8>, seq: u64) {
    let start = out.len();
    out.extend_from_slice(br#"{"ts":"2024-01-01T12:00:00.123456Z","level":"info","msg":"seq="#);
    push_digits(out, seq, 8);
    out.extend_from_slice(b":0 ");
    let tail = br#"","host":"gw1"}"#;
    let have = out.len() - start;
    out.extend_from_slice(&FILLER[..LINE_LEN - 1 - have - tail.len()]);
    out.extend_from_slice(tail);
    out.push(b'\n');
    debug_assert_eq!(out.len() - start, LINE_LEN);
}

/// `count` JSON lines with seq 1..=count, back to back.
pub fn json_data_lines(count: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(count as usize * LINE_LEN);
    for seq in 1..=count {
        json_data_line(&mut out, seq);
    }
    out
}

/// A line that tells the reader it is subscribed (it carries no sequence number).
pub fn warmup_line() -> Vec<u8> {
    let mut out = b"warmup ".to_vec();
    pad_line(&mut out, 0);
    out
}

/// `count` lines with seq 1..=count for file tag 0, back to back.
pub fn data_lines(count: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(count as usize * LINE_LEN);
    for seq in 1..=count {
        data_line(&mut out, seq, 0, None);
    }
    out
}

// ---------------------------------------------------------------------------------------
// The checking reader
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// NDJSON from logwisp's TCP server (also fine for raw lines from `tail | socat`).
    Tcp,
    /// HTTP response head, then SSE events.
    Sse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Message,
    Connected,
    Dropped,
    Disconnect,
    Heartbeat,
    Other,
}

const MAX_ERRORS: usize = 20;

/// Everything one client saw, checked line by line.
#[derive(Debug, Clone)]
pub struct Check {
    /// Stop condition: `lines + missed` reaching this marks the client done (0 = never).
    pub target: u64,
    /// Ceiling runs repeat a block of this many lines: seq 1 may follow seq `wrap`.
    pub wrap: u64,
    /// Next expected seq per file tag; 0 = not known yet (first line sets it).
    pub expect: [u64; 4],
    pub lines: u64,
    pub lines_per_file: [u64; 4],
    pub missed: u64,
    pub disorder: u64,
    pub warmups: u64,
    pub notices: u64,
    pub other: u64,
    pub heartbeats: u64,
    pub dropped_events: u64,
    pub dropped: u64,
    pub connected: bool,
    pub disconnect: bool,
    pub bytes: u64,
    pub last_id: u64,
    pub done_at: Option<Instant>,
    pub first_line_at: Option<Instant>,
    pub closed: Option<String>,
    pub errors: Vec<String>,
    /// Latency samples (receive realtime − the line's `t=`), when `want_latency`.
    pub want_latency: bool,
    pub latency_ns: Vec<u64>,
    head_done: bool,
    head_lines: u32,
    event: Ev,
    seq_at: usize,
}

impl Check {
    /// A client that must see seq 1..=target of file tag 0 (or all tags with `strict`).
    pub fn strict(target: u64) -> Check {
        let mut c = Check::loose(target);
        c.expect = [1; 4];
        c
    }

    /// A client that joins mid-stream: the first line of each file sets the baseline.
    pub fn loose(target: u64) -> Check {
        Check {
            target,
            wrap: 0,
            expect: [0; 4],
            lines: 0,
            lines_per_file: [0; 4],
            missed: 0,
            disorder: 0,
            warmups: 0,
            notices: 0,
            other: 0,
            heartbeats: 0,
            dropped_events: 0,
            dropped: 0,
            connected: false,
            disconnect: false,
            bytes: 0,
            last_id: 0,
            done_at: None,
            first_line_at: None,
            closed: None,
            errors: Vec::new(),
            want_latency: false,
            latency_ns: Vec::new(),
            head_done: false,
            head_lines: 0,
            event: Ev::Message,
            seq_at: 0,
        }
    }

    /// Prepares for a new connection of the same client (SSE resume with Last-Event-ID):
    /// the ordering state carries over, the protocol state starts again.
    pub fn reconnect(&mut self) {
        self.head_done = false;
        self.head_lines = 0;
        self.event = Ev::Message;
        self.connected = false;
        self.disconnect = false;
        self.closed = None;
    }

    pub fn is_done(&self) -> bool {
        self.target > 0 && self.lines + self.missed >= self.target
    }

    pub fn ok(&self) -> bool {
        self.missed == 0 && self.disorder == 0 && self.dropped == 0 && self.errors.is_empty()
    }

    fn error(&mut self, msg: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(msg);
        }
    }

    /// Consumes complete lines of `data`; returns how many bytes were consumed.
    pub fn feed(&mut self, proto: Proto, data: &[u8], rt_ns: u64) -> usize {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            let line = &data[start..nl];
            match proto {
                Proto::Tcp => self.tcp_line(line, rt_ns),
                Proto::Sse => self.sse_line(line, rt_ns),
            }
            start = nl + 1;
        }
        self.bytes += start as u64;
        start
    }

    fn tcp_line(&mut self, line: &[u8], rt_ns: u64) {
        if line.starts_with(b"{\"type\":\"heartbeat\"") {
            self.heartbeats += 1;
        } else if line.starts_with(b"{\"error\"") {
            self.error(format!("server said {}", String::from_utf8_lossy(line)));
        } else {
            self.payload(line, rt_ns);
        }
    }

    fn sse_line(&mut self, line: &[u8], rt_ns: u64) {
        if !self.head_done {
            if self.head_lines == 0 && !line.starts_with(b"HTTP/1.1 200") {
                self.error(format!(
                    "bad status line {}",
                    String::from_utf8_lossy(line).trim_end()
                ));
            }
            self.head_lines += 1;
            if line.is_empty() || line == b"\r" {
                self.head_done = true;
            }
            return;
        }
        match line.first() {
            None => self.event = Ev::Message,
            Some(b'd') if line.starts_with(b"data: ") => {
                let data = &line[6..];
                match self.event {
                    Ev::Message => self.payload(data, rt_ns),
                    Ev::Connected => self.connected = true,
                    Ev::Dropped => {
                        self.dropped_events += 1;
                        let n = memmem::find(data, b"\"dropped\":")
                            .map(|i| parse_uint(&data[i + 10..]))
                            .unwrap_or(0);
                        self.dropped += n;
                    }
                    Ev::Disconnect => self.disconnect = true,
                    Ev::Heartbeat => self.heartbeats += 1,
                    Ev::Other => self.other += 1,
                }
            }
            Some(b'i') if line.starts_with(b"id: ") => self.last_id = parse_uint(&line[4..]),
            Some(b'e') if line.starts_with(b"event: ") => {
                self.event = match &line[7..] {
                    b"connected" => Ev::Connected,
                    b"dropped" => Ev::Dropped,
                    b"disconnect" => Ev::Disconnect,
                    b"heartbeat" => Ev::Heartbeat,
                    _ => Ev::Other,
                }
            }
            Some(b':') => self.heartbeats += 1,
            Some(b'r') if line.starts_with(b"retry: ") => {}
            _ => {
                self.other += 1;
                self.error(format!(
                    "unexpected SSE line {}",
                    String::from_utf8_lossy(line)
                ));
            }
        }
    }

    fn payload(&mut self, line: &[u8], rt_ns: u64) {
        let at = self.seq_at;
        let at = if line.len() >= at + 15 && &line[at..at + 4] == b"seq=" {
            at
        } else {
            match memmem::find(line, b"seq=") {
                Some(i) if line.len() >= i + 15 => i,
                _ => return self.not_data(line),
            }
        };
        self.seq_at = at;
        let (Some(seq), b':') = (parse_fixed(&line[at + 4..at + 12]), line[at + 12]) else {
            return self.not_data(line);
        };
        let file = (line[at + 13].wrapping_sub(b'0') & 3) as usize;
        if self.first_line_at.is_none() {
            self.first_line_at = Some(Instant::now());
        }
        let e = &mut self.expect[file];
        if seq == *e || *e == 0 {
            *e = seq + 1;
        } else if self.wrap > 0 && seq == 1 && *e == self.wrap + 1 {
            *e = 2;
        } else if seq > *e {
            self.missed += seq - *e;
            let msg = format!(
                "file {file}: seq {seq} after {} (missed {})",
                *e - 1,
                seq - *e
            );
            *e = seq + 1;
            self.error(msg);
        } else {
            self.disorder += 1;
            let msg = format!(
                "file {file}: seq {seq} after {} (duplicate/out of order)",
                *e - 1
            );
            self.error(msg);
            return;
        }
        self.lines += 1;
        self.lines_per_file[file] += 1;
        if self.want_latency
            && line.len() >= at + 36
            && &line[at + 15..at + 17] == b"t="
            && let Some(t) = parse_fixed(&line[at + 17..at + 36])
        {
            self.latency_ns.push(rt_ns.saturating_sub(t));
        }
    }

    fn not_data(&mut self, line: &[u8]) {
        if memmem::find(line, b"warmup ").is_some() {
            self.warmups += 1;
        } else if memmem::find(line, b"Log rotation detected").is_some() {
            self.notices += 1;
        } else {
            if self.other == 0 {
                // A data line without a sequence number: a fragment or a stray entry.
                self.error(format!(
                    "not a data line: {:?}",
                    String::from_utf8_lossy(&line[..line.len().min(160)])
                ));
            }
            self.other += 1;
        }
    }
}

fn parse_fixed(d: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &b in d {
        let x = b.wrapping_sub(b'0');
        if x > 9 {
            return None;
        }
        v = v * 10 + u64::from(x);
    }
    Some(v)
}

fn parse_uint(d: &[u8]) -> u64 {
    let mut v = 0u64;
    for &b in d {
        let x = b.wrapping_sub(b'0');
        if x > 9 {
            break;
        }
        v = v * 10 + u64::from(x);
    }
    v
}

// ---------------------------------------------------------------------------------------
// Many clients on one mio loop
// ---------------------------------------------------------------------------------------

/// Bytes read per `read` call (one buffer shared by every client of a fleet).
const READ_BUF: usize = 1 << 20;
/// Longest partial line carried between reads before the client is called broken.
const MAX_PARTIAL: usize = 1 << 20;

pub struct Client {
    sock: TcpStream,
    pub proto: Proto,
    pub check: Check,
    partial: Vec<u8>,
    body: Dechunk,
    request: Vec<u8>,
    request_sent: usize,
    pub open: bool,
    /// A paused client does not read (it stands for a stalled consumer).
    pub paused: bool,
    counted_warm: bool,
    counted_done: bool,
    counted_connected: bool,
}

/// Undoes an HTTP/1.1 chunked body, in place, across reads: the response head passes as
/// it is; after it, a chunked body is reduced to its payload (a head without
/// `Transfer-Encoding: chunked` leaves everything as it is).
#[derive(Debug, Default)]
pub struct Dechunk {
    state: ChunkState,
    /// The head so far (to find its end and its framing).
    head: Vec<u8>,
    size: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    #[default]
    Head,
    Identity,
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Done,
}

impl Dechunk {
    /// For a body without an HTTP head (TCP's NDJSON, raw lines): every byte passes as it
    /// is. (Looking for a head there would copy every byte of the stream into `head`.)
    pub fn identity() -> Dechunk {
        Dechunk {
            state: ChunkState::Identity,
            ..Dechunk::default()
        }
    }

    pub fn for_proto(proto: Proto) -> Dechunk {
        match proto {
            Proto::Sse => Dechunk::default(),
            Proto::Tcp => Dechunk::identity(),
        }
    }

    /// Decodes `buf` in place; returns the length of what remains.
    pub fn decode(&mut self, buf: &mut [u8]) -> usize {
        let mut out = 0;
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            match self.state {
                ChunkState::Identity => {
                    if out != i {
                        buf.copy_within(i.., out);
                    }
                    return out + (buf.len() - i);
                }
                ChunkState::Head => {
                    buf[out] = b;
                    out += 1;
                    self.head.push(b);
                    if self.head.ends_with(b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&self.head).to_ascii_lowercase();
                        self.state = if head.contains("\r\ntransfer-encoding: chunked\r\n") {
                            ChunkState::Size
                        } else {
                            ChunkState::Identity
                        };
                        self.head = Vec::new();
                    }
                }
                ChunkState::Size => match b {
                    b'0'..=b'9' => self.size = self.size * 16 + u64::from(b - b'0'),
                    b'a'..=b'f' => self.size = self.size * 16 + u64::from(b - b'a' + 10),
                    b'A'..=b'F' => self.size = self.size * 16 + u64::from(b - b'A' + 10),
                    b';' => self.state = ChunkState::Extension,
                    b'\r' => self.state = ChunkState::SizeLf,
                    _ => panic!("bad chunk size byte {b:#x}"),
                },
                ChunkState::Extension => {
                    if b == b'\r' {
                        self.state = ChunkState::SizeLf;
                    }
                }
                ChunkState::SizeLf => {
                    assert_eq!(b, b'\n', "chunk size line");
                    self.state = if self.size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data
                    };
                }
                ChunkState::Data => {
                    let take = (self.size as usize).min(buf.len() - i);
                    buf.copy_within(i..i + take, out);
                    out += take;
                    i += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = ChunkState::DataCr;
                    }
                    continue;
                }
                ChunkState::DataCr => {
                    assert_eq!(b, b'\r', "chunk end");
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    assert_eq!(b, b'\n', "chunk end");
                    self.state = ChunkState::Size;
                }
                ChunkState::Done => {}
            }
            i += 1;
        }
        out
    }
}

/// Clients on one epoll loop with one shared read buffer; a client owns only its
/// partial line.
pub struct Fleet {
    poll: Poll,
    events: Events,
    clients: Slab<Client>,
    buf: Vec<u8>,
    /// Clients that saw a warm-up line / are done / got their SSE `connected` event.
    pub warm: usize,
    pub done: usize,
    pub connected: usize,
    pub last_done: Option<Instant>,
    /// Data lines received by every client together.
    pub lines: u64,
    /// Clients that have closed (EOF or error).
    pub closed: usize,
}

impl Fleet {
    pub fn new() -> io::Result<Fleet> {
        Ok(Fleet {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            clients: Slab::new(),
            buf: vec![0u8; READ_BUF + MAX_PARTIAL],
            warm: 0,
            done: 0,
            connected: 0,
            last_done: None,
            lines: 0,
            closed: 0,
        })
    }

    /// Starts a non-blocking connect; SSE clients send their GET once connected.
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        proto: Proto,
        path: &str,
        last_event_id: Option<u64>,
        check: Check,
    ) -> io::Result<usize> {
        let mut sock = TcpStream::connect(addr)?;
        let key = self.clients.vacant_key();
        self.poll.registry().register(
            &mut sock,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let mut request = Vec::new();
        if proto == Proto::Sse {
            request =
                format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n")
                    .into_bytes();
            if let Some(id) = last_event_id {
                request.extend_from_slice(format!("Last-Event-ID: {id}\r\n").as_bytes());
            }
            request.extend_from_slice(b"\r\n");
        }
        let inserted = self.clients.insert(Client {
            sock,
            proto,
            check,
            partial: Vec::new(),
            body: Dechunk::for_proto(proto),
            request,
            request_sent: 0,
            open: true,
            paused: false,
            counted_warm: false,
            counted_done: false,
            counted_connected: proto == Proto::Tcp,
        });
        debug_assert_eq!(inserted, key);
        if proto == Proto::Tcp {
            self.connected += 1;
        }
        Ok(key)
    }

    /// Takes over an already connected (non-blocking) socket.
    pub fn adopt(&mut self, sock: StdTcpStream, proto: Proto, check: Check) -> io::Result<usize> {
        sock.set_nonblocking(true)?;
        let mut sock = TcpStream::from_std(sock);
        let key = self.clients.vacant_key();
        self.poll
            .registry()
            .register(&mut sock, Token(key), Interest::READABLE)?;
        self.clients.insert(Client {
            sock,
            proto,
            check,
            partial: Vec::new(),
            body: Dechunk::for_proto(proto),
            request: Vec::new(),
            request_sent: 0,
            open: true,
            paused: false,
            counted_warm: false,
            counted_done: false,
            counted_connected: true,
        });
        self.connected += 1;
        Ok(key)
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn keys(&self) -> Vec<usize> {
        self.clients.keys()
    }

    pub fn get(&self, key: usize) -> Option<&Client> {
        self.clients.get(key)
    }

    pub fn get_mut(&mut self, key: usize) -> Option<&mut Client> {
        self.clients.get_mut(key)
    }

    /// Disconnects a client and hands back what it saw.
    pub fn remove(&mut self, key: usize) -> Option<Client> {
        let mut c = self.clients.remove(key)?;
        let _ = self.poll.registry().deregister(&mut c.sock);
        if c.counted_warm {
            self.warm -= 1;
        }
        if c.counted_done {
            self.done -= 1;
        }
        if c.counted_connected {
            self.connected -= 1;
        }
        if !c.open {
            self.closed -= 1;
        }
        Some(c)
    }

    /// Every client's check, in key order.
    pub fn checks(&self) -> Vec<Check> {
        self.clients.iter().map(|(_, c)| c.check.clone()).collect()
    }

    /// Waits up to `timeout` for readiness and handles it. Returns the number of events.
    pub fn turn(&mut self, timeout: Duration) -> io::Result<usize> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        }
        let keys: Vec<(usize, bool)> = self
            .events
            .iter()
            .map(|e| (e.token().0, e.is_writable() || e.is_error()))
            .collect();
        for &(key, writable) in &keys {
            if writable {
                self.send_request(key);
            }
            self.drain(key);
        }
        Ok(keys.len())
    }

    fn send_request(&mut self, key: usize) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        while c.open && c.request_sent < c.request.len() {
            match c.sock.write(&c.request[c.request_sent..]) {
                Ok(n) => c.request_sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    c.open = false;
                    c.check.closed = Some(format!("request write: {e}"));
                    self.closed += 1;
                    return;
                }
            }
        }
    }

    /// Reads a client until WouldBlock (edge-triggered), checking every complete line.
    pub fn drain(&mut self, key: usize) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        if !c.open || c.paused {
            return;
        }
        let buf = &mut self.buf;
        loop {
            let p = c.partial.len();
            buf[..p].copy_from_slice(&c.partial);
            match c.sock.read(&mut buf[p..p + READ_BUF]) {
                Ok(0) => {
                    c.open = false;
                    c.check.closed = Some("EOF".into());
                    self.closed += 1;
                    break;
                }
                Ok(n) => {
                    let n = c.body.decode(&mut buf[p..p + n]);
                    let data = &buf[..p + n];
                    let rt = if c.check.want_latency {
                        realtime_ns()
                    } else {
                        0
                    };
                    let before = c.check.lines;
                    let used = c.check.feed(c.proto, data, rt);
                    self.lines += c.check.lines - before;
                    c.partial.clear();
                    c.partial.extend_from_slice(&data[used..]);
                    if c.partial.len() > MAX_PARTIAL / 2 {
                        c.check.error("a line longer than 512 KiB".into());
                        c.partial.clear();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                Err(e) => {
                    c.open = false;
                    c.check.closed = Some(format!("read: {e}"));
                    self.closed += 1;
                    break;
                }
            }
        }
        if !c.counted_warm && c.check.warmups > 0 {
            c.counted_warm = true;
            self.warm += 1;
        }
        if !c.counted_connected && c.check.connected {
            c.counted_connected = true;
            self.connected += 1;
        }
        if !c.counted_done && c.check.is_done() {
            let now = Instant::now();
            c.counted_done = true;
            c.check.done_at = Some(now);
            self.done += 1;
            self.last_done = Some(self.last_done.map_or(now, |t| t.max(now)));
        }
    }

    /// Runs turns until `until(self)` holds or `timeout` passes; true if it held.
    pub fn run_until(&mut self, timeout: Duration, mut until: impl FnMut(&Fleet) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if until(self) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if self.turn(left.min(Duration::from_millis(50))).is_err() {
                return false;
            }
        }
    }
}

/// A minimal slab: stable keys, reused holes (the `slab` crate is not a dev-dependency).
mod slab_lite {
    pub struct Slab<T> {
        items: Vec<Option<T>>,
        free: Vec<usize>,
        len: usize,
    }

    impl<T> Slab<T> {
        pub fn new() -> Slab<T> {
            Slab {
                items: Vec::new(),
                free: Vec::new(),
                len: 0,
            }
        }

        pub fn vacant_key(&self) -> usize {
            self.free.last().copied().unwrap_or(self.items.len())
        }

        pub fn insert(&mut self, v: T) -> usize {
            self.len += 1;
            match self.free.pop() {
                Some(k) => {
                    self.items[k] = Some(v);
                    k
                }
                None => {
                    self.items.push(Some(v));
                    self.items.len() - 1
                }
            }
        }

        pub fn remove(&mut self, k: usize) -> Option<T> {
            let v = self.items.get_mut(k)?.take()?;
            self.free.push(k);
            self.len -= 1;
            Some(v)
        }

        pub fn get(&self, k: usize) -> Option<&T> {
            self.items.get(k)?.as_ref()
        }

        pub fn get_mut(&mut self, k: usize) -> Option<&mut T> {
            self.items.get_mut(k)?.as_mut()
        }

        pub fn len(&self) -> usize {
            self.len
        }

        pub fn keys(&self) -> Vec<usize> {
            self.iter().map(|(k, _)| k).collect()
        }

        pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
            self.items
                .iter()
                .enumerate()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fleets on threads, for throughput runs
// ---------------------------------------------------------------------------------------

/// Progress of fleet threads, published after every turn.
pub struct Shared {
    pub epoch: Instant,
    pub warm: AtomicUsize,
    pub done: AtomicUsize,
    pub connected: AtomicUsize,
    pub closed: AtomicUsize,
    pub lines: AtomicU64,
    /// Nanoseconds after `epoch` at which the last client finished.
    pub last_done_ns: AtomicU64,
    pub stop: AtomicBool,
    /// Asks the fleet to stop reading (a stalled consumer) while true, and to read again.
    pub hold: AtomicBool,
    /// The fleet's answer: its clients stopped reading.
    pub held: AtomicBool,
    /// When the fleet read again after a hold (ns after `epoch`, 0 = not yet), and how many
    /// lines it had then.
    pub resumed_ns: AtomicU64,
    pub lines_at_resume: AtomicU64,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            epoch: Instant::now(),
            warm: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            connected: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            lines: AtomicU64::new(0),
            last_done_ns: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            hold: AtomicBool::new(false),
            held: AtomicBool::new(false),
            resumed_ns: AtomicU64::new(0),
            lines_at_resume: AtomicU64::new(0),
        })
    }

    pub fn since_epoch(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    pub fn at(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }
}

pub struct FleetResult {
    pub checks: Vec<Check>,
    pub cpu_ns: u64,
}

/// Connects `count` clients on a new thread and reads until `shared.stop`, except while
/// `shared.hold` is set.
pub fn spawn_fleet(
    shared: Arc<Shared>,
    addr: SocketAddr,
    proto: Proto,
    count: usize,
    make_check: impl Fn() -> Check + Send + 'static,
) -> std::thread::JoinHandle<io::Result<FleetResult>> {
    spawn_fleet_paths(shared, addr, proto, count, move |_| {
        ("/stream".to_string(), make_check())
    })
}

/// Like [`spawn_fleet`], client `i` asking for the path (with its query) and check that
/// `make(i)` gives.
pub fn spawn_fleet_paths(
    shared: Arc<Shared>,
    addr: SocketAddr,
    proto: Proto,
    count: usize,
    make: impl Fn(usize) -> (String, Check) + Send + 'static,
) -> std::thread::JoinHandle<io::Result<FleetResult>> {
    std::thread::spawn(move || {
        let cpu0 = thread_cpu_ns();
        let mut fleet = Fleet::new()?;
        // Connect in batches so the listen backlog never overflows.
        let mut made = 0;
        while made < count {
            let batch = (count - made).min(256);
            for i in made..made + batch {
                let (path, check) = make(i);
                fleet.connect(addr, proto, &path, None, check)?;
            }
            made += batch;
            let want = made;
            fleet.run_until(Duration::from_millis(200), |f| {
                f.connected >= want || proto == Proto::Tcp
            });
        }
        run_fleet(&shared, fleet, cpu0)
    })
}

/// Like [`spawn_fleet`], for sockets already connected (to a server that must see its
/// clients connected before anything else, e.g. `socat` with `fork`): NDJSON or raw lines.
pub fn spawn_fleet_adopted(
    shared: Arc<Shared>,
    socks: Vec<StdTcpStream>,
    make_check: impl Fn() -> Check + Send + 'static,
) -> std::thread::JoinHandle<io::Result<FleetResult>> {
    std::thread::spawn(move || {
        let cpu0 = thread_cpu_ns();
        let mut fleet = Fleet::new()?;
        for sock in socks {
            fleet.adopt(sock, Proto::Tcp, make_check())?;
        }
        run_fleet(&shared, fleet, cpu0)
    })
}

/// Reads with `fleet` until `shared.stop`, publishing its progress after every turn.
fn run_fleet(shared: &Shared, mut fleet: Fleet, cpu0: u64) -> io::Result<FleetResult> {
    let (mut warm, mut done, mut connected, mut closed, mut lines) = (0, 0, 0, 0, 0);
    let mut held = false;
    while !shared.stop.load(Ordering::Relaxed) {
        let hold = shared.hold.load(Ordering::Relaxed);
        if hold != held {
            for k in fleet.keys() {
                if let Some(c) = fleet.get_mut(k) {
                    c.paused = hold;
                }
            }
            if !hold {
                shared
                    .resumed_ns
                    .store(shared.since_epoch(Instant::now()).max(1), Ordering::SeqCst);
                shared.lines_at_resume.store(fleet.lines, Ordering::SeqCst);
                // Reads are edge-triggered: what arrived while paused raises no new event.
                for k in fleet.keys() {
                    fleet.drain(k);
                }
            }
            held = hold;
            shared.held.store(hold, Ordering::SeqCst);
        }
        fleet.turn(Duration::from_millis(5))?;
        if fleet.warm != warm {
            shared.warm.fetch_add(fleet.warm - warm, Ordering::Relaxed);
            warm = fleet.warm;
        }
        if fleet.connected != connected {
            shared
                .connected
                .fetch_add(fleet.connected - connected, Ordering::Relaxed);
            connected = fleet.connected;
        }
        if fleet.closed != closed {
            shared
                .closed
                .fetch_add(fleet.closed - closed, Ordering::Relaxed);
            closed = fleet.closed;
        }
        if fleet.lines != lines {
            shared
                .lines
                .fetch_add(fleet.lines - lines, Ordering::Relaxed);
            lines = fleet.lines;
        }
        if fleet.done != done {
            if let Some(t) = fleet.last_done {
                shared
                    .last_done_ns
                    .fetch_max(shared.since_epoch(t), Ordering::Relaxed);
            }
            shared.done.fetch_add(fleet.done - done, Ordering::Relaxed);
            done = fleet.done;
        }
    }
    Ok(FleetResult {
        checks: fleet.checks(),
        cpu_ns: thread_cpu_ns() - cpu0,
    })
}

/// Splits `total` clients over `threads` fleets.
pub fn split(total: usize, threads: usize) -> Vec<usize> {
    let threads = threads.max(1).min(total.max(1));
    (0..threads)
        .map(|i| total / threads + usize::from(i < total % threads))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The trivial source: the same bytes, from a thread writing a pre-rendered buffer
// ---------------------------------------------------------------------------------------

/// Send buffer of the trivial source's sockets when it feeds many readers.
const SOURCE_SNDBUF: libc::c_int = 256 * 1024;

fn set_sndbuf(s: &StdTcpStream, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads one c_int we own, on a socket we own.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Renders `count` entries exactly as logwisp frames them (same JSON, same framing).
pub fn render_block(count: u64, proto: Proto) -> Vec<u8> {
    let stamp = logwisp::entry::Stamp::now();
    let mut source = Vec::new();
    logwisp::entry::write_json_string(&mut source, b"app.log");
    let mut line = Vec::with_capacity(LINE_LEN);
    let mut out = Vec::with_capacity(count as usize * 200);
    for seq in 1..=count {
        line.clear();
        data_line(&mut line, seq, 0, None);
        let text = &line[..line.len() - 1];
        match proto {
            Proto::Tcp => {
                logwisp::entry::write_entry(&mut out, text, &source, &stamp);
                out.push(b'\n');
            }
            Proto::Sse => {
                out.extend_from_slice(format!("id: {seq}\ndata: ").as_bytes());
                logwisp::entry::write_entry(&mut out, text, &source, &stamp);
                out.extend_from_slice(b"\n\n");
            }
        }
    }
    out
}

/// The bytes an SSE stream starts with.
pub fn sse_preamble() -> Vec<u8> {
    let mut out = Vec::new();
    logwisp::sse::response_head(&mut out, &logwisp::timefmt::http_date(0), false);
    logwisp::sse::connected(&mut out, "1", "bench", "/stream", "/status", 1_000_000);
    out
}

/// Accepts `clients` connections on `listener`, then writes `head` followed by `block`
/// `reps` times to each, non-blocking, as fast as the readers take it. Records the start
/// in `start_ns` (after `shared.epoch`).
pub fn spawn_source(
    listener: std::net::TcpListener,
    clients: usize,
    head: Vec<u8>,
    block: Arc<Vec<u8>>,
    reps: u64,
    start_ns: Arc<AtomicU64>,
    shared: Arc<Shared>,
) -> std::thread::JoinHandle<io::Result<u64>> {
    std::thread::spawn(move || {
        let cpu0 = thread_cpu_ns();
        let mut socks = Vec::with_capacity(clients);
        for _ in 0..clients {
            let (s, _) = listener.accept()?;
            s.set_nonblocking(true)?;
            if clients > 1 {
                // A thousand autotuned send buffers (up to 4 MiB each) filled faster than
                // the readers drain them push the kernel past tcp_mem, where it shrinks
                // buffers and may reset connections; a fixed buffer keeps the source
                // from measuring kernel memory pressure instead of the readers.
                set_sndbuf(&s, SOURCE_SNDBUF);
            }
            socks.push(TcpStream::from_std(s));
        }
        let poll = Poll::new()?;
        let mut poll = poll;
        for (i, s) in socks.iter_mut().enumerate() {
            poll.registry().register(s, Token(i), Interest::WRITABLE)?;
        }
        let total = head.len() as u64 + reps * block.len() as u64;
        let mut sent = vec![0u64; clients];
        let mut finished = 0;
        start_ns.store(shared.since_epoch(Instant::now()).max(1), Ordering::SeqCst);
        let mut events = Events::with_capacity(1024);
        let mut ready: Vec<usize> = (0..clients).collect();
        while finished < clients && !shared.stop.load(Ordering::Relaxed) {
            for i in std::mem::take(&mut ready) {
                loop {
                    if sent[i] >= total {
                        break;
                    }
                    let buf: &[u8] = if sent[i] < head.len() as u64 {
                        &head[sent[i] as usize..]
                    } else {
                        let off = (sent[i] - head.len() as u64) % block.len() as u64;
                        &block[off as usize..]
                    };
                    match socks[i].write(buf) {
                        Ok(n) => {
                            sent[i] += n as u64;
                            if sent[i] >= total {
                                finished += 1;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            poll.poll(&mut events, Some(Duration::from_millis(50)))?;
            ready.extend(events.iter().map(|e| e.token().0));
        }
        let cpu = thread_cpu_ns() - cpu0;
        // Closing with the unread requests in the receive buffer would reset the
        // connections and could destroy bytes the readers have not taken yet.
        while !shared.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(socks);
        Ok(cpu)
    })
}

// ---------------------------------------------------------------------------------------
// Percentiles
// ---------------------------------------------------------------------------------------

pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------------------
// BENCHMARKS.md
// ---------------------------------------------------------------------------------------

pub fn benchmarks_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md")
}

const DEFAULT_PROSE: &str = "# Benchmarks\n\n\
What logwisp costs and delivers on a real machine, measured end to end against the release\n\
binary. Regenerate with `cargo bench --bench load` (or `just bench`; a subset with e.g.\n\
`cargo bench --bench load -- throughput latency`), the hot-path micro-benchmarks with\n\
`cargo bench --bench hot_paths`, and the soak with `cargo bench --bench soak -- --minutes 30`.\n\
The sections between the markers are rewritten by those commands; prose outside them is kept.\n";

/// Replaces the text between `<!-- {name}:begin -->` and `<!-- {name}:end -->` (adding the
/// markers at the end when missing), keeping everything else in BENCHMARKS.md.
pub fn write_section(name: &str, body: &str) -> io::Result<()> {
    let path = benchmarks_path();
    let old = fs::read_to_string(&path).unwrap_or_else(|_| DEFAULT_PROSE.to_string());
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let block = format!("{begin}\n{}\n{end}", body.trim_end());
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{block}{}", &old[..b], &old[e + end.len()..]),
        _ => format!("{}\n\n{block}\n", old.trim_end()),
    };
    fs::write(&path, new)
}

/// The current text between a section's markers, if any.
pub fn read_section(name: &str) -> Option<String> {
    let old = fs::read_to_string(benchmarks_path()).ok()?;
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let b = old.find(&begin)? + begin.len();
    let e = old.find(&end)?;
    (e >= b).then(|| old[b..e].to_string())
}

/// The scenario table of a BENCHMARKS.md section: one row per `[scenario, number, target,
/// met, command]`.
pub fn markdown_table<'a>(rows: impl IntoIterator<Item = [&'a str; 5]>) -> String {
    let mut t =
        String::from("| scenario | number | target | met? | command |\n|---|---|---|---|---|\n");
    for [scenario, number, target, met, command] in rows {
        t.push_str(&format!(
            "| {scenario} | {number} | {target} | {met} | `{command}` |\n"
        ));
    }
    t
}
