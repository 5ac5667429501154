//! Helpers that keep each test short: a temp dir per test, the real binary started on free
//! ports, and small clients (SSE, NDJSON over TCP, raw HTTP) that read with deadlines.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::chunked::Dechunker;

pub const BIN: &str = env!("CARGO_BIN_EXE_logwisp");
/// How long any single expected thing may take before a test gives up on it.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `cond` every 2 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Appends `text` to `path` with one write, creating the file if needed.
pub fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `n` numbered lines `"{prefix} {i:05}\n"` for `i` in `range`.
pub fn numbered(prefix: &str, range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("{prefix} {i:05}\n")).collect()
}

/// Asserts two sequences are equal, reporting the first difference instead of both.
/// `String`s compare with `&str`s.
pub fn assert_same_seq<T, U>(what: &str, got: &[T], want: &[U])
where
    T: PartialEq<U> + std::fmt::Debug,
    U: std::fmt::Debug,
{
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: first difference at index {i}: got {:?}, want {:?} (lengths {} and {})",
            got[i],
            want[i],
            got.len(),
            want.len()
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: lengths differ (got ends with {:?})",
        got.last()
    );
}

/// A `Log rotation detected (#N): <reason>` notice (SPEC §4), not a line of a file.
pub fn is_rotation(v: &Value) -> bool {
    v["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("Log rotation detected"))
}

/// `YYYY-MM-DDTHH:MM:SSZ` (with `frac` digits of fraction before the `Z` when non-zero).
pub fn is_rfc3339_utc(s: &str, frac: usize) -> bool {
    let b = s.as_bytes();
    let want_len = 20 + if frac > 0 { frac + 1 } else { 0 };
    if b.len() != want_len {
        return false;
    }
    let digit = |i: usize| b[i].is_ascii_digit();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    digits.iter().all(|&i| digit(i))
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (frac == 0 || (b[19] == b'.' && (20..20 + frac).all(digit)))
        && b[b.len() - 1] == b'Z'
}

/// Unix seconds of an RFC 9110 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), checking
/// its exact shape and that the weekday matches the date.
pub fn parse_http_date(s: &str) -> Option<i64> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    if b.len() != 29 || &s[3..5] != ", " || &s[25..] != " GMT" {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (day, year) = (num(5..7)?, num(12..16)?);
    let month = MONTHS.iter().position(|m| *m == &s[8..11])? as i64 + 1;
    let (h, m, sec) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if [b[7], b[11], b[16], b[19], b[22]] != [b' ', b' ', b' ', b':', b':'] {
        return None;
    }
    // Days from civil (Howard Hinnant), as logwisp's own timefmt does.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    if DAYS[days.rem_euclid(7) as usize] != &s[0..3] {
        return None;
    }
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Asserts `r` has exactly one `Date`, an IMF-fixdate within `[from - 1, to + 1]`.
pub fn assert_dated(what: &str, r: &Response, from: i64, to: i64) {
    let date = r
        .header("Date")
        .unwrap_or_else(|| panic!("{what}: no Date header in {:?}", r.headers));
    let t = parse_http_date(date).unwrap_or_else(|| panic!("{what}: bad Date {date:?}"));
    assert!(
        (from - 1..=to + 1).contains(&t),
        "{what}: Date {date} is not now ({from}..={to})"
    );
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Named after the running test, so a leftover is easy to trace.
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let test: String = std::thread::current()
            .name()
            .unwrap_or("test")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(48)
            .collect();
        let path =
            std::env::temp_dir().join(format!("logwisp-it-{}-{n}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// One stream `app` tailing `$DIR/*.log` (checked every 20 ms), plus the given server tables.
pub fn one_stream(servers: &str) -> String {
    format!(
        "[[streams]]\nname = \"app\"\n[streams.monitor]\ncheck_interval_ms = 20\n\
         targets = [{{ path = \"$DIR\", pattern = \"*.log\" }}]\n{servers}"
    )
}

/// An HTTP server table on a free loopback port (more keys may follow it).
pub const HTTP: &str = "[streams.httpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = 0\n";
/// A TCP server table on a free loopback port (more keys may follow it).
pub const TCP: &str = "[streams.tcpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = 0\n";

/// Collects a child's output in the background.
pub fn drain(mut from: impl Read + Send + 'static) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let out = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&out);
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
    (out, handle)
}

/// The real logwisp, started on a config in its own temp dir; killed (SIGKILL) on drop.
pub struct Server {
    pub dir: TempDir,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    http: HashMap<String, u16>,
    tcp: HashMap<String, u16>,
    args: Vec<String>,
    fd_limit: Option<u64>,
    /// Extra environment (kept across restarts).
    env: Vec<(String, String)>,
}

/// Starts logwisp on `$DIR/logwisp.toml` in `dir`, its output collected in the background.
/// Its default state dir is under `dir` too, so no test writes to the runner's home
/// (tests that need state set `state_dir` themselves).
fn spawn_logwisp(
    dir: &TempDir,
    args: &[String],
    fd_limit: Option<u64>,
    env: &[(String, String)],
) -> (Child, Arc<Mutex<String>>, Arc<Mutex<String>>) {
    let mut cmd = Command::new(BIN);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(limit) = fd_limit {
        let lim = libc::rlimit {
            rlim_cur: limit as libc::rlim_t,
            rlim_max: limit as libc::rlim_t,
        };
        // SAFETY: between fork and exec only setrlimit(2) runs, which is
        // async-signal-safe and reads `lim`, a plain value copied into the closure.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
    }
    let mut child = cmd
        .arg("--config")
        .arg(dir.join("logwisp.toml"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("LOGWISP_CONFIG")
        .env_remove("STATE_DIRECTORY")
        .env("XDG_STATE_HOME", dir.join(".xdg-state"))
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logwisp");
    let (stdout, _) = drain(child.stdout.take().unwrap());
    let (stderr, _) = drain(child.stderr.take().unwrap());
    (child, stdout, stderr)
}

impl Server {
    /// Starts on `toml` (`$DIR` stands for the test's temp dir) and waits until every
    /// enabled server has printed where it listens.
    pub fn start(toml: &str) -> Server {
        Server::start_in(TempDir::new(), toml, &[])
    }

    /// Like [`start`](Self::start), in a prepared dir and with extra arguments.
    pub fn start_in(dir: TempDir, toml: &str, args: &[&str]) -> Server {
        Server::launch(dir, toml, args, None, &[])
    }

    /// Like [`start_in`](Self::start_in), with both the soft and the hard open-files limit
    /// set to `limit` (logwisp raises its soft limit to the hard one, so both must be low).
    pub fn start_with_fd_limit(dir: TempDir, toml: &str, limit: u64) -> Server {
        Server::launch(dir, toml, &[], Some(limit), &[])
    }

    /// Like [`start_in`](Self::start_in), with extra environment variables (`$DIR` in a
    /// value stands for the test's temp dir).
    pub fn start_with_env(dir: TempDir, toml: &str, env: &[(&str, &str)]) -> Server {
        Server::launch(dir, toml, &[], None, env)
    }

    fn launch(
        dir: TempDir,
        toml: &str,
        args: &[&str],
        fd_limit: Option<u64>,
        env: &[(&str, &str)],
    ) -> Server {
        let here = dir.path().display().to_string();
        let toml = toml.replace("$DIR", &here);
        fs::write(dir.join("logwisp.toml"), &toml).expect("write config");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.replace("$DIR", &here)))
            .collect();
        let (child, stdout, stderr) = spawn_logwisp(&dir, &args, fd_limit, &env);
        let mut server = Server {
            dir,
            child,
            stdout,
            stderr,
            http: HashMap::new(),
            tcp: HashMap::new(),
            args,
            fd_limit,
            env,
        };
        server.wait_listening();
        server
    }

    /// Starts logwisp again in the same dir, on the same config and arguments (listeners
    /// on port 0 get new ports). A process still running is killed first.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, stdout, stderr) =
            spawn_logwisp(&self.dir, &self.args, self.fd_limit, &self.env);
        self.child = child;
        self.stdout = stdout;
        self.stderr = stderr;
        self.http.clear();
        self.tcp.clear();
        self.wait_listening();
    }

    /// Waits until every enabled server has printed where it listens; notes the ports.
    fn wait_listening(&mut self) {
        let toml = fs::read_to_string(self.dir.join("logwisp.toml")).expect("read config");
        let expected = expected_listeners(&toml);
        let ready = wait_until(TIMEOUT, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "logwisp exited during startup ({status})\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            let out = self.stdout();
            expected.iter().all(|prefix| out.contains(prefix.as_str()))
        });
        assert!(
            ready,
            "logwisp did not print its endpoints in time\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        for line in self.stdout().lines() {
            let Some((head, addr)) = line.split_once(" listening on ") else {
                continue;
            };
            let Some((name, proto)) = head.strip_prefix('[').and_then(|h| h.split_once("] "))
            else {
                continue;
            };
            let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
            let map = if proto == "http" {
                &mut self.http
            } else {
                &mut self.tcp
            };
            map.insert(name.to_string(), port);
        }
    }

    /// Replaces the config (`$DIR` as in [`start`](Self::start)), sends SIGHUP and waits
    /// until logwisp says it reloaded; the ports it prints then are noted.
    pub fn reload_with(&mut self, toml: &str) {
        let toml = toml.replace("$DIR", &self.dir.path().display().to_string());
        fs::write(self.dir.join("logwisp.toml"), &toml).expect("write config");
        let before = self.stderr().matches("logwisp: reload").count();
        self.signal(libc::SIGHUP);
        let done = wait_until(TIMEOUT, || {
            self.stderr().matches("logwisp: reload").count() > before
        });
        assert!(done, "no reload reported; stderr:\n{}", self.stderr());
        self.wait_listening();
    }

    /// Notes the ports printed so far again (after a reload logwisp did by itself).
    pub fn reparse_ports(&mut self) {
        self.wait_listening();
    }

    /// The process id of the running logwisp.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size so far (`VmHWM` in `/proc/PID/status`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let path = format!("/proc/{}/status", self.pid());
        let status = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmHWM in {path}:\n{status}"))
    }

    pub fn http_port(&self, stream: &str) -> u16 {
        *self
            .http
            .get(stream)
            .unwrap_or_else(|| panic!("no http listener for `{stream}`: {}", self.stdout()))
    }

    pub fn tcp_port(&self, stream: &str) -> u16 {
        *self
            .tcp
            .get(stream)
            .unwrap_or_else(|| panic!("no tcp listener for `{stream}`: {}", self.stdout()))
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `GET /status` of a standalone stream, as JSON.
    pub fn status(&self, stream: &str) -> Value {
        let r = http_get(self.http_port(stream), "/status");
        assert_eq!(r.status, 200, "status of {stream}: {}", r.text());
        r.json()
    }

    /// The id the next entry of `stream` will get (ids do not start at 1: they continue
    /// above every earlier run's).
    pub fn next_id(&self, stream: &str) -> u64 {
        self.status(stream)["delivery"]["next_sequence"]
            .as_u64()
            .expect("delivery.next_sequence")
    }

    /// Waits until `/status` of `stream` satisfies `cond`; panics with the last status.
    pub fn wait_status(&self, stream: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let ok = wait_until(TIMEOUT, || {
            last = self.status(stream);
            cond(&last)
        });
        assert!(ok, "timed out waiting for {what}; last status: {last:#}");
        last
    }

    /// Waits until `stream` has `n` TCP clients (a TCP connect completes before logwisp
    /// has accepted it; entries written before that are not owed to the client).
    pub fn wait_tcp_clients(&self, stream: &str, n: u64) {
        self.wait_status(stream, &format!("{n} tcp clients"), |s| {
            s["delivery"]["tcp_clients"] == n
        });
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the pid of our own child, which has not been reaped yet (the
        // `Child` is still held), so the pid cannot name another process.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill: {}", io::Error::last_os_error());
    }

    /// Stops the process (SIGSTOP) and waits until it is stopped, so that what the test
    /// does next happens between two of its looks; [`thaw`](Self::thaw) resumes it.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
        let stat = format!("/proc/{}/stat", self.child.id());
        let stopped = wait_until(TIMEOUT, || {
            // The state follows the command name in parentheses: `pid (comm) T ...`.
            fs::read_to_string(&stat)
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('T')))
                .unwrap_or(false)
        });
        assert!(stopped, "logwisp did not stop");
    }

    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `[name] http listening on ` for every enabled server in the config. A line scanner is
/// enough for the configs these tests write (one key per line, `name` before the servers).
fn expected_listeners(toml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut name, mut table) = (String::new(), String::new());
    for line in toml.lines().map(str::trim) {
        let value = |key: &str| {
            let rest = line.strip_prefix(key)?.trim_start().strip_prefix('=')?;
            Some(
                rest.split('#')
                    .next()
                    .unwrap()
                    .trim()
                    .trim_matches('"')
                    .to_string(),
            )
        };
        if line == "[[streams]]" {
            name.clear();
            table.clear();
        } else if line.starts_with('[') {
            table = line.to_string();
        } else if table.is_empty()
            && let Some(v) = value("name")
        {
            name = v;
        } else if value("enabled").as_deref() == Some("true") {
            let proto = match table.as_str() {
                "[streams.httpserver]" => "http",
                "[streams.tcpserver]" => "tcp",
                _ => continue,
            };
            out.push(format!("[{name}] {proto} listening on "));
        }
    }
    out
}

/// `python3` with `PYTHONPATH` set so it can import the PyPI package `package` (installed
/// once, with pip, into the build's temporary directory: `cargo test` needs nothing
/// installed by hand, only a reachable package index the first time).
pub fn python_with(package: &str) -> Command {
    static INSTALL: Mutex<()> = Mutex::new(());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("python")
        .join(package);
    {
        let _one_at_a_time = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
        let done = dir.join(".installed");
        if !done.exists() {
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg("--target")
                .arg(&dir)
                .arg(package)
                .status()
                .expect("python3 and pip are needed for this test");
            assert!(status.success(), "pip install {package} failed");
            fs::write(&done, b"").unwrap();
        }
    }
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONPATH", &dir);
    cmd
}

/// Outcome of a logwisp run that is expected to end by itself.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs logwisp with `args` (and extra environment) in `cwd`; kills it after 10 s.
pub fn run_logwisp(args: &[&OsStr], env: &[(&str, &OsStr)], cwd: &Path) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("LOGWISP_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn logwisp");
    let (stdout, out_thread) = drain(child.stdout.take().unwrap());
    let (stderr, err_thread) = drain(child.stderr.take().unwrap());
    let mut status = None;
    let exited = wait_until(TIMEOUT, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "logwisp {args:?} did not exit\nstdout:\n{}\nstderr:\n{}",
            stdout.lock().unwrap(),
            stderr.lock().unwrap()
        );
    }
    let _ = out_thread.join();
    let _ = err_thread.join();
    let stdout = stdout.lock().unwrap().clone();
    let stderr = stderr.lock().unwrap().clone();
    Run {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    }
}

/// A port that was free a moment ago (for `--router-port` and shared router ports).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Connects to `127.0.0.1:port`, optionally from another loopback address (`from`) and with
/// a small receive buffer set before the handshake (`rcvbuf`), which std cannot do.
pub fn connect_tcp(from: Option<Ipv4Addr>, rcvbuf: Option<i32>, port: u16) -> TcpStream {
    let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    if from.is_none() && rcvbuf.is_none() {
        return TcpStream::connect(to).expect("connect");
    }
    let sockaddr = |a: SocketAddrV4| {
        // SAFETY: sockaddr_in is plain data; all-zero is a valid value that we then fill in.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_port = a.port().to_be();
        sa.sin_addr.s_addr = u32::from(*a.ip()).to_be();
        sa
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket(2) has no memory preconditions; a non-negative result is a descriptor
    // nobody else owns, and `TcpStream::from_raw_fd` takes ownership of it (closing it on
    // drop, also on the error paths below). setsockopt, bind and connect get pointers to
    // locals that live across the calls, with their exact sizes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        if let Some(size) = rcvbuf {
            let rc = libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            );
            assert_eq!(rc, 0, "SO_RCVBUF: {}", io::Error::last_os_error());
        }
        if let Some(ip) = from {
            let local = sockaddr(SocketAddrV4::new(ip, 0));
            let rc = libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len);
            assert_eq!(rc, 0, "bind {ip}: {}", io::Error::last_os_error());
        }
        let remote = sockaddr(to);
        let rc = libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len);
        assert_eq!(rc, 0, "connect: {}", io::Error::last_os_error());
        stream
    }
}

/// Reads into `buf` until `done(buf)` says where to stop, EOF, or the deadline.
/// Returns false on EOF or timeout.
pub fn read_until(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    mut done: impl FnMut(&[u8]) -> bool,
) -> bool {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if done(buf) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        stream
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Where `needle` (not empty) first occurs in `hay`. A plain loop: the test binary is
/// built without optimisation, where `windows().position()` costs seconds per million
/// SSE events.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (first, rest) = needle.split_first().expect("empty needle");
    let last_start = hay.len().checked_sub(needle.len())?;
    let mut i = 0;
    while i <= last_start {
        if hay[i] == *first && hay[i + 1..i + needle.len()] == *rest {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Waits for the peer to close (EOF or reset), failing if bytes arrive instead.
pub fn expect_closed(stream: &mut TcpStream, pending: &[u8], timeout: Duration) {
    assert!(
        pending.is_empty(),
        "expected close, but unread bytes are buffered: {:?}",
        String::from_utf8_lossy(pending)
    );
    let deadline = Instant::now() + timeout;
    let mut chunk = [0u8; 4096];
    loop {
        let now = Instant::now();
        assert!(now < deadline, "connection was not closed in time");
        stream.set_read_timeout(Some(deadline - now)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => panic!(
                "expected close, got bytes: {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return, // reset: closed as well
        }
    }
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive); panics if it appears more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name));
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "header {name} appears twice");
        first
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

/// Parses a response head (status line and headers, without the final empty line).
pub fn parse_head(head: &[u8]) -> Response {
    let text = std::str::from_utf8(head).expect("response head is UTF-8");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let status = parts.next().unwrap().parse().expect("status code");
    let reason = parts.next().unwrap_or_default().to_string();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap_or_else(|| panic!("header {l:?}"));
            (k.to_string(), v.trim().to_string())
        })
        .collect();
    Response {
        status,
        reason,
        headers,
        body: Vec::new(),
    }
}

/// A raw HTTP/1.1 connection: write any bytes, read responses one at a time.
pub struct HttpConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl HttpConn {
    pub fn connect(port: u16) -> HttpConn {
        HttpConn::connect_from(None, port)
    }

    /// From another loopback address, e.g. 127.0.0.2 (a different client IP for limits).
    pub fn connect_from(from: Option<Ipv4Addr>, port: u16) -> HttpConn {
        HttpConn {
            stream: connect_tcp(from, None, port),
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("send request");
    }

    /// Reads one response (its body by Content-Length), within [`TIMEOUT`].
    pub fn read_response(&mut self) -> Response {
        self.read_response_within(TIMEOUT)
    }

    pub fn read_response_within(&mut self, timeout: Duration) -> Response {
        let deadline = Instant::now() + timeout;
        let got_head = read_until(&mut self.stream, &mut self.buf, deadline, |b| {
            find(b, b"\r\n\r\n").is_some()
        });
        assert!(
            got_head,
            "no complete response head; got {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let end = find(&self.buf, b"\r\n\r\n").unwrap();
        let mut resp = parse_head(&self.buf[..end]);
        self.buf.drain(..end + 4);
        // RFC 9110 §8.6: a 204 (or 304) has no body and need not say so.
        let len: usize = if matches!(resp.status, 204 | 304) {
            0
        } else {
            resp.header("Content-Length")
                .expect("response has Content-Length")
                .parse()
                .expect("numeric Content-Length")
        };
        let got_body = read_until(&mut self.stream, &mut self.buf, deadline, |b| {
            b.len() >= len
        });
        assert!(
            got_body,
            "short body: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        resp.body = self.buf.drain(..len).collect();
        resp
    }

    /// Like [`read_response`](Self::read_response) after a HEAD request: no body follows.
    pub fn read_head_only(&mut self) -> Response {
        let deadline = Instant::now() + TIMEOUT;
        let got_head = read_until(&mut self.stream, &mut self.buf, deadline, |b| {
            find(b, b"\r\n\r\n").is_some()
        });
        assert!(got_head, "no response head");
        let end = find(&self.buf, b"\r\n\r\n").unwrap();
        let resp = parse_head(&self.buf[..end]);
        self.buf.drain(..end + 4);
        resp
    }

    /// Asserts the server closes the connection with nothing more to say.
    pub fn expect_closed(&mut self) {
        expect_closed(&mut self.stream, &self.buf, TIMEOUT);
    }
}

/// Sends `raw` on a new connection and reads one response.
pub fn http_request(port: u16, raw: &[u8]) -> Response {
    let mut c = HttpConn::connect(port);
    c.send(raw);
    c.read_response()
}

/// `GET path` with `Connection: close`.
pub fn http_get(port: u16, path: &str) -> Response {
    http_request(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// One SSE event (the lines up to a blank line), parsed and raw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: Option<String>,
    pub retry: Option<String>,
    pub comments: Vec<String>,
    /// The exact bytes of the block, final blank line included.
    pub raw: String,
}

impl Event {
    fn parse(raw: &str) -> Event {
        let mut e = Event {
            raw: raw.to_string(),
            ..Event::default()
        };
        for line in raw.trim_end_matches('\n').split('\n') {
            if let Some(c) = line.strip_prefix(':') {
                e.comments
                    .push(c.strip_prefix(' ').unwrap_or(c).to_string());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_string();
            match field {
                "event" => e.event = Some(value),
                "id" => e.id = Some(value),
                "retry" => e.retry = Some(value),
                "data" => match &mut e.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(&value);
                    }
                    None => e.data = Some(value),
                },
                other => panic!("unknown SSE field {other:?} in {raw:?}"),
            }
        }
        e
    }

    pub fn json(&self) -> Value {
        let data = self.data.as_deref().expect("event has data");
        serde_json::from_str(data).unwrap_or_else(|e| panic!("data is not JSON ({e}): {data}"))
    }

    /// Only `:` comment lines (a comment heartbeat).
    pub fn is_comment_only(&self) -> bool {
        !self.comments.is_empty()
            && self.event.is_none()
            && self.id.is_none()
            && self.data.is_none()
            && self.retry.is_none()
    }

    /// A log entry: `id:` and `data:` and nothing else.
    pub fn is_entry(&self) -> bool {
        self.id.is_some() && self.event.is_none() && self.comments.is_empty()
    }
}

/// What one read from a socket gave.
#[derive(Debug, PartialEq)]
enum Filled {
    Bytes,
    Eof,
    Timeout,
}

/// An SSE client over a plain socket. It reads the body as the response head frames it:
/// chunked when it says `Transfer-Encoding: chunked`, else close-delimited.
pub struct SseClient {
    stream: TcpStream,
    /// The decoded body received so far (from `pos` on: not yet returned).
    buf: Vec<u8>,
    /// Start of unread bytes in `buf`.
    pos: usize,
    /// `Some` for a chunked body.
    chunks: Option<Dechunker>,
    /// The response head.
    pub head: Response,
}

impl SseClient {
    /// `GET path` with `extra` header lines (`"Last-Event-ID: 5"`); panics unless 200.
    pub fn connect(port: u16, path: &str, extra: &[&str]) -> SseClient {
        match SseClient::open(
            TcpStream::connect(("127.0.0.1", port)).unwrap(),
            path,
            extra,
        ) {
            Ok(c) => c,
            Err(r) => panic!("GET {path}: {} {}", r.status, r.text()),
        }
    }

    /// Sends the request on `stream`; a non-200 answer is returned whole as `Err`.
    pub fn open(mut stream: TcpStream, path: &str, extra: &[&str]) -> Result<SseClient, Response> {
        stream
            .write_all(SseClient::request(path, extra).as_bytes())
            .unwrap();
        SseClient::read_head(stream)
    }

    /// Reads the answer to a stream request already sent on `stream`.
    pub fn read_head(mut stream: TcpStream) -> Result<SseClient, Response> {
        let mut buf = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        let ok = read_until(&mut stream, &mut buf, deadline, |b| {
            find(b, b"\r\n\r\n").is_some()
        });
        assert!(ok, "no response head: {:?}", String::from_utf8_lossy(&buf));
        let end = find(&buf, b"\r\n\r\n").unwrap();
        let head = parse_head(&buf[..end]);
        if head.status != 200 {
            let mut conn = HttpConn { stream, buf };
            return Err(conn.read_response());
        }
        let chunks = match head.header("Transfer-Encoding") {
            None => None,
            Some(te) if te.eq_ignore_ascii_case("chunked") => Some(Dechunker::default()),
            Some(te) => panic!("unexpected Transfer-Encoding: {te}"),
        };
        let mut client = SseClient {
            stream,
            buf: Vec::new(),
            pos: 0,
            chunks,
            head,
        };
        client.take(&buf[end + 4..]);
        Ok(client)
    }

    pub fn request(path: &str, extra: &[&str]) -> String {
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n");
        for h in extra {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        req
    }

    /// Appends received body bytes to `buf`, decoding them when chunked.
    fn take(&mut self, bytes: &[u8]) {
        match &mut self.chunks {
            Some(d) => d.feed(bytes, &mut self.buf),
            None => self.buf.extend_from_slice(bytes),
        }
    }

    /// One read from the socket, waiting at most until `deadline`.
    fn fill(&mut self, deadline: Instant) -> Filled {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Filled::Timeout;
            }
            self.stream
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
                .unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return Filled::Eof,
                Ok(n) => {
                    self.take(&chunk[..n]);
                    return Filled::Bytes;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return Filled::Eof, // reset
            }
        }
    }

    /// The next event's raw block, or `None` on timeout or EOF.
    pub fn next_block_within(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let end = loop {
            if let Some(at) = find(&self.buf[self.pos..], b"\n\n") {
                break self.pos + at + 2;
            }
            if self.fill(deadline) != Filled::Bytes {
                return None;
            }
        };
        let block = String::from_utf8(self.buf[self.pos..end].to_vec()).expect("UTF-8 event");
        self.pos = end;
        if self.pos > 1 << 20 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        Some(block)
    }

    pub fn next_event_within(&mut self, timeout: Duration) -> Option<Event> {
        self.next_block_within(timeout).map(|b| Event::parse(&b))
    }

    /// The next event; panics after [`TIMEOUT`].
    pub fn next_event(&mut self) -> Event {
        self.next_event_within(TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no SSE event in time; unread: {:?}",
                String::from_utf8_lossy(&self.buf[self.pos..])
            )
        })
    }

    /// The next event, which must be a log entry: its id and JSON. Heartbeat comments
    /// (on by default every 30 s, and ignored by EventSource) are skipped.
    pub fn next_entry(&mut self) -> (u64, Value) {
        let mut e = self.next_event();
        while e.is_comment_only() {
            e = self.next_event();
        }
        assert!(e.is_entry(), "expected an entry, got {:?}", e.raw);
        (
            e.id.as_ref().unwrap().parse().expect("numeric id"),
            e.json(),
        )
    }

    /// The next entry's message.
    pub fn next_message(&mut self) -> String {
        let (_, v) = self.next_entry();
        v["message"].as_str().expect("message").to_string()
    }

    /// Skips the `retry:` + `event: connected` block, checking it is one.
    pub fn skip_connected(&mut self) -> Value {
        let e = self.next_event();
        assert_eq!(e.event.as_deref(), Some("connected"), "{:?}", e.raw);
        e.json()
    }

    /// Asserts the server ends the stream (EOF or reset) with no more body bytes; a
    /// chunked body may end with its last chunk first.
    pub fn expect_closed(&mut self) {
        let unread = |c: &SseClient| String::from_utf8_lossy(&c.buf[c.pos..]).into_owned();
        assert!(
            self.pos == self.buf.len(),
            "expected close, but unread bytes are buffered: {:?}",
            unread(self)
        );
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.fill(deadline) {
                Filled::Eof => break,
                Filled::Timeout => panic!("connection was not closed in time"),
                Filled::Bytes => assert!(
                    self.pos == self.buf.len(),
                    "expected close, got bytes: {:?}",
                    unread(self)
                ),
            }
        }
    }
}

/// A newline-delimited JSON client (the TCP server's protocol).
pub struct TcpLineClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Start of unread bytes in `buf`.
    pos: usize,
}

impl TcpLineClient {
    pub fn connect(port: u16) -> TcpLineClient {
        TcpLineClient::from_stream(connect_tcp(None, None, port))
    }

    pub fn from_stream(stream: TcpStream) -> TcpLineClient {
        TcpLineClient {
            stream,
            buf: Vec::new(),
            pos: 0,
        }
    }

    pub fn next_line_within(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let pos = self.pos;
        let ok = read_until(&mut self.stream, &mut self.buf, deadline, |b| {
            b[pos..].contains(&b'\n')
        });
        if !ok {
            return None;
        }
        let end = pos + self.buf[pos..].iter().position(|&b| b == b'\n').unwrap();
        let line = String::from_utf8(self.buf[pos..end].to_vec()).expect("UTF-8 line");
        self.pos = end + 1;
        if self.pos > 1 << 20 || self.pos == self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        Some(line)
    }

    pub fn next_line(&mut self) -> String {
        self.next_line_within(TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no line in time; unread: {:?}",
                String::from_utf8_lossy(&self.buf[self.pos..])
            )
        })
    }

    pub fn next_json(&mut self) -> Value {
        let line = self.next_line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    pub fn next_message(&mut self) -> String {
        self.next_json()["message"]
            .as_str()
            .expect("message")
            .to_string()
    }

    pub fn expect_closed(&mut self) {
        expect_closed(&mut self.stream, &self.buf[self.pos..], TIMEOUT);
    }
}

/// Reads a TCP client's entries on a thread, so a test can write and rotate meanwhile.
pub struct TcpCollector {
    entries: Arc<Mutex<Vec<Value>>>,
    stop: TcpStream,
    thread: Option<JoinHandle<()>>,
}

impl TcpCollector {
    pub fn start(mut client: TcpLineClient) -> TcpCollector {
        let entries = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&entries);
        let stop = client.stream.try_clone().unwrap();
        let thread = std::thread::spawn(move || {
            while let Some(line) = client.next_line_within(Duration::from_secs(60)) {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                sink.lock().unwrap().push(v);
            }
        });
        TcpCollector {
            entries,
            stop,
            thread: Some(thread),
        }
    }

    pub fn count(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    /// How many entries so far satisfy `pred` (without copying them).
    pub fn count_where(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .filter(|v| pred(v))
            .count()
    }

    /// A handle another thread can use to read the count.
    pub fn counter(&self) -> impl Fn() -> usize + Send + 'static {
        let entries = Arc::clone(&self.entries);
        move || entries.lock().unwrap().len()
    }

    pub fn snapshot(&self) -> Vec<Value> {
        self.entries.lock().unwrap().clone()
    }

    /// The entries after the first `from` (for readers that keep their own place).
    pub fn since(&self, from: usize) -> Vec<Value> {
        let entries = self.entries.lock().unwrap();
        entries.get(from..).unwrap_or_default().to_vec()
    }

    /// Waits until at least `n` entries arrived.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.count() >= n)
    }
}

impl Drop for TcpCollector {
    fn drop(&mut self) {
        let _ = self.stop.shutdown(Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Certificates made for a test: a CA, a server certificate for `localhost` and
/// 127.0.0.1, a client certificate from the same CA, one from another CA, and an expired
/// server certificate. All written as PEM files into the test's directory.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        };
        let ca = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name
                .push(rcgen::DnType::CommonName, name.to_string());
            let key = KeyPair::generate().unwrap();
            let cert = p.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(p, key))
        };
        let leaf = |issuer: &Issuer<KeyPair>, client: bool, expired: bool| {
            let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            let mut p = CertificateParams::new(names).unwrap();
            p.extended_key_usages = vec![if client {
                ExtendedKeyUsagePurpose::ClientAuth
            } else {
                ExtendedKeyUsagePurpose::ServerAuth
            }];
            if expired {
                p.not_before = rcgen::date_time_ymd(2020, 1, 1);
                p.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (ca_pem, issuer) = ca("logwisp test CA");
        let (_, other) = ca("another CA");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            fs::write(&path, text).unwrap();
            path
        };
        let (server, server_key) = leaf(&issuer, false, false);
        let (client, client_key) = leaf(&issuer, true, false);
        let (stranger, stranger_key) = leaf(&other, true, false);
        let (expired, expired_key) = leaf(&issuer, false, true);
        Pki {
            ca: write("ca.pem", &ca_pem),
            server_cert: write("server.pem", &server),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client),
            client_key: write("client.key", &client_key),
            stranger_cert: write("stranger.pem", &stranger),
            stranger_key: write("stranger.key", &stranger_key),
            expired_cert: write("expired.pem", &expired),
            expired_key: write("expired.key", &expired_key),
        }
    }
}

/// Where a program is: the first `name` on `PATH`, else the first of `also` that exists
/// (`/usr/sbin` is not on every user's `PATH`).
pub fn find_program(name: &str, also: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .chain(also.iter().map(PathBuf::from))
        .find(|p| {
            fs::metadata(p).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
}

/// nginx in the foreground, one process, everything (config, logs, temp files) under a
/// test's dir; killed on drop.
pub struct Nginx {
    child: Child,
    pub port: u16,
    error_log: PathBuf,
}

impl Nginx {
    /// Proxies `location` (e.g. `/logwisp/`) to `http://127.0.0.1:{upstream}/` with HTTP/1.1
    /// and no buffering, as README shows; `directives` go into the location block too
    /// (`proxy_set_header Connection "";`, timeouts). `$connection_upgrade` is defined for
    /// WebSocket (`Connection: upgrade` when the client asks to upgrade, else empty).
    /// Fails with how to install nginx when it is not there.
    pub fn start(dir: &TempDir, upstream: u16, location: &str, directives: &str) -> Nginx {
        let bin = find_program("nginx", &["/usr/sbin/nginx", "/usr/local/sbin/nginx"])
            .expect("this test needs nginx: apt-get install -y nginx (.ci/run installs it)");
        let port = free_port();
        let d = dir.path().display();
        // chunked_transfer_encoding off: the test's SSE client reads a plain body.
        let conf = format!(
            "worker_processes 1;\nmaster_process off;\ndaemon off;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             chunked_transfer_encoding off;\n\
             map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}\n\
             server {{\n    listen 127.0.0.1:{port};\n\
             location {location} {{\n\
               proxy_pass http://127.0.0.1:{upstream}/;\n\
               proxy_http_version 1.1;\n\
               proxy_buffering off;\n\
               {directives}\n\
             }}\n  }}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        fs::write(&path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx {
            child,
            port,
            error_log: dir.join("error.log"),
        };
        let up = wait_until(TIMEOUT, || {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.errors());
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "nginx did not listen: {}", nginx.errors());
        nginx
    }

    pub fn errors(&self) -> String {
        fs::read_to_string(&self.error_log).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
