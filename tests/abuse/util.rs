//! Helpers for the abuse tests: a temp dir, the real binary on free ports, HTTP and SSE
//! clients with deadlines, a poll(2)-driven swarm of raw sockets, and /proc readings.
//! Every wait here is a poll against a deadline; nothing sleeps in place of a condition.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::chunked::Dechunker;

pub const BIN: &str = env!("CARGO_BIN_EXE_logwisp");
/// Default patience for anything that should happen "at once".
pub const SOON: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Time

/// Polls `f` every few milliseconds until it returns `Some`, or panics naming `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Watches for `window`, failing as soon as `bad` returns an explanation. For asserting
/// that something does *not* happen over a period (the period is the point, not a guess).
pub fn hold_for(window: Duration, mut bad: impl FnMut() -> Option<String>) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        if let Some(why) = bad() {
            panic!("{why}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// Files

pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("logwisp-abuse-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(bytes).unwrap();
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---------------------------------------------------------------------------------------
// Configs

/// A one-stream config (`app`) on 127.0.0.1 port 0. `targets` is the TOML array body,
/// `monitor` and `http` extra lines for those tables; `tcp` adds a TCP server.
pub struct Conf {
    pub targets: String,
    pub monitor: String,
    pub http: String,
    pub tcp: bool,
}

impl Conf {
    /// Tails `*.log` in `dir`, checking every 100 ms.
    pub fn dir(dir: &Path) -> Conf {
        Conf {
            targets: format!("{{ path = \"{}\", pattern = \"*.log\" }}", dir.display()),
            monitor: "check_interval_ms = 100".into(),
            http: String::new(),
            tcp: false,
        }
    }

    /// Tails one file, checking every 100 ms.
    pub fn file(path: &Path) -> Conf {
        Conf {
            targets: format!("{{ path = \"{}\", is_file = true }}", path.display()),
            ..Conf::dir(Path::new("/"))
        }
    }

    pub fn http(mut self, line: &str) -> Conf {
        self.http.push_str(line);
        self.http.push('\n');
        self
    }

    pub fn monitor(mut self, line: &str) -> Conf {
        self.monitor.push('\n');
        self.monitor.push_str(line);
        self
    }

    pub fn with_tcp(mut self) -> Conf {
        self.tcp = true;
        self
    }

    pub fn toml(&self) -> String {
        let mut t = format!(
            "[[streams]]\nname = \"app\"\n[streams.monitor]\n{}\ntargets = [{}]\n\
             [streams.httpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = 0\n{}",
            self.monitor, self.targets, self.http
        );
        if self.tcp {
            t.push_str("[streams.tcpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = 0\n");
        }
        t
    }
}

// ---------------------------------------------------------------------------------------
// The process

/// How to start the binary.
#[derive(Clone, Copy)]
pub enum Launch {
    Direct,
    /// Through `sh -c 'ulimit -n N; exec logwisp …'`.
    FdLimit(u32),
    /// As another user (tests run as root, where permissions do not stop reads).
    AsUser(u32, u32),
}

/// The binary as another user can run it. The build sits in the checkout, which may be
/// under a directory only its owner can enter (CI clones into a mode 0700 home), so the
/// other user could not exec it there: it gets a copy in the test's directory, which that
/// user must reach anyway to read the test's files.
fn binary_for(uid: u32, dir: &TempDir) -> PathBuf {
    for ancestor in dir.path.ancestors() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ancestor).unwrap().permissions().mode();
        assert!(
            mode & 0o001 != 0,
            "uid {uid} cannot enter {} (mode {:o}): point TMPDIR at a world-searchable \
             directory",
            ancestor.display(),
            mode & 0o7777
        );
    }
    let copy = dir.join("logwisp");
    std::fs::copy(BIN, &copy).unwrap();
    chmod(&copy, 0o755);
    copy
}

pub struct Server {
    child: Child,
    pub http: SocketAddr,
    pub tcp: Option<SocketAddr>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    pub dir: TempDir,
}

fn pump_lines(from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(from);
        let mut line = String::new();
        while r.read_line(&mut line).is_ok_and(|n| n > 0) {
            into.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
}

fn listening_addr(out: &str, proto: &str) -> Option<SocketAddr> {
    let marker = format!("[app] {proto} listening on ");
    out.lines()
        .find_map(|l| l.strip_prefix(&marker))
        .map(|a| a.trim().parse().unwrap())
}

impl Server {
    pub fn start(dir: TempDir, conf: &Conf) -> Server {
        Server::launch(dir, conf, Launch::Direct)
    }

    pub fn launch(dir: TempDir, conf: &Conf, how: Launch) -> Server {
        let config = dir.join("logwisp.toml");
        std::fs::write(&config, conf.toml()).unwrap();
        let mut cmd = match how {
            Launch::FdLimit(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" --config \"$1\""))
                    .arg(BIN)
                    .arg(&config);
                c
            }
            Launch::Direct => {
                let mut c = Command::new(BIN);
                c.arg("--config").arg(&config);
                c
            }
            Launch::AsUser(uid, _) => {
                let mut c = Command::new(binary_for(uid, &dir));
                c.arg("--config").arg(&config);
                c
            }
        };
        if let Launch::AsUser(uid, gid) = how {
            cmd.uid(uid).gid(gid);
        }
        // State (SPEC §11) defaults to $STATE_DIRECTORY, $XDG_STATE_HOME or ~/.local/state:
        // keep it in the test's dir, never the runner's home.
        cmd.current_dir(&dir.path)
            .env_remove("LOGWISP_CONFIG")
            .env_remove("STATE_DIRECTORY")
            .env("XDG_STATE_HOME", dir.join(".xdg-state"))
            .env("HOME", &dir.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec. The child dies with
        // the test (no stray servers), and gets default SIGPIPE handling, so the test
        // harness's SIG_IGN cannot hide a SIGPIPE death.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn logwisp");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        pump_lines(child.stdout.take().unwrap(), stdout.clone());
        pump_lines(child.stderr.take().unwrap(), stderr.clone());
        let (http, tcp) = wait_for(Duration::from_secs(20), "logwisp to listen", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "logwisp exited at startup ({status}): {}",
                    stderr.lock().unwrap()
                );
            }
            let out = stdout.lock().unwrap();
            let http = listening_addr(&out, "http")?;
            let tcp = listening_addr(&out, "tcp");
            (!conf.tcp || tcp.is_some()).then_some((http, tcp))
        });
        Server {
            child,
            http,
            tcp,
            stdout,
            stderr,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("logwisp died ({status}); stderr:\n{}", self.stderr());
        }
    }

    /// `GET /status` on a fresh connection.
    pub fn status(&mut self) -> Value {
        self.assert_alive();
        let r = get(self.http, "/status");
        assert_eq!(r.status, 200, "status: {}", r.text());
        r.json()
    }

    /// The server is alive and a fresh client is answered.
    pub fn assert_serving(&mut self) {
        let v = self.status();
        assert_eq!(v["service"], "LogWisp", "{v}");
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill: {}", io::Error::last_os_error());
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn proc(&self) -> Proc {
        Proc(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// /proc readings for a process.
#[derive(Clone, Copy)]
pub struct Proc(pub u32);

impl Proc {
    fn status_kib(self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.0)).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.0))
    }

    /// Resident set size now, in KiB.
    pub fn rss_kib(self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// Peak resident set size so far, in KiB.
    pub fn peak_rss_kib(self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// User + system CPU time consumed so far.
    pub fn cpu(self) -> Duration {
        let text = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).unwrap();
        let after = &text[text.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        // Fields 14 and 15 of stat(5); `after` starts at field 3.
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    pub fn open_fds(self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.0))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// Raises this process's soft RLIMIT_NOFILE to the hard limit (once).
pub fn raise_nofile() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: getrlimit/setrlimit read and write a local struct.
        unsafe {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    });
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

// ---------------------------------------------------------------------------------------
// HTTP

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, SOON).expect("connect");
    s.set_read_timeout(Some(SOON)).unwrap();
    s.set_write_timeout(Some(SOON)).unwrap();
    s
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// How a connection ended after its responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Orderly FIN.
    Closed,
    Reset,
    /// Still open when we stopped waiting.
    Open,
}

/// A byte reader over a socket that keeps partial lines across timeouts. Once told the
/// body is chunked, it hands out the decoded body.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    pub eof: bool,
    chunks: Option<Dechunker>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            pos: 0,
            eof: false,
            chunks: None,
        }
    }

    /// What follows (and what is buffered) is a chunked body: decode it from here on.
    pub fn body_is_chunked(&mut self) {
        let mut d = Dechunker::default();
        let raw = self.buf.split_off(self.pos);
        d.feed(&raw, &mut self.buf);
        self.chunks = Some(d);
    }

    pub fn open(addr: SocketAddr) -> Conn {
        Conn::new(connect(addr))
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads more into the buffer before `deadline`. Ok(false) on EOF.
    fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Ok(false)
            }
            Ok(n) => {
                match &mut self.chunks {
                    Some(d) => d.feed(&chunk[..n], &mut self.buf),
                    None => self.buf.extend_from_slice(&chunk[..n]),
                }
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(ErrorKind::TimedOut.into())
            }
            Err(e) => Err(e),
        }
    }

    /// One line without its `\n` (and `\r`); Ok(None) at EOF.
    pub fn line(&mut self, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let mut line = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if !self.fill(deadline)? {
                return Ok(None);
            }
        }
    }

    pub fn exact(&mut self, n: usize, deadline: Instant) -> io::Result<Vec<u8>> {
        while self.buf.len() - self.pos < n {
            if !self.fill(deadline)? {
                return Err(ErrorKind::UnexpectedEof.into());
            }
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }

    /// The next response (head and Content-Length body); Ok(None) on EOF before one.
    pub fn response(&mut self, deadline: Instant) -> io::Result<Option<Response>> {
        let Some(status_line) = self.line(deadline)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&status_line).into_owned();
        let mut parts = text.splitn(3, ' ');
        let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
            return Err(io::Error::other(format!("bad status line {text:?}")));
        };
        assert!(version.starts_with("HTTP/1."), "status line {text:?}");
        let status = code.parse().expect("status code");
        let mut headers = HashMap::new();
        loop {
            let line = self.line(deadline)?.ok_or(ErrorKind::UnexpectedEof)?;
            if line.is_empty() {
                break;
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            let (k, v) = line.split_once(':').expect("header with colon");
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let len: usize = headers
            .get("content-length")
            .map_or(0, |v| v.parse().unwrap());
        let body = self.exact(len, deadline)?;
        Ok(Some(Response {
            status,
            headers,
            body,
        }))
    }

    /// Reads until EOF, reset or `deadline`; leftover bytes are returned.
    pub fn end(&mut self, deadline: Instant) -> (End, Vec<u8>) {
        let mut rest = self.buf[self.pos..].to_vec();
        self.pos = self.buf.len();
        loop {
            match self.fill(deadline) {
                Ok(false) => return (End::Closed, rest),
                Ok(true) => {
                    rest.extend_from_slice(&self.buf[self.pos..]);
                    self.pos = self.buf.len();
                }
                Err(e) if e.kind() == ErrorKind::TimedOut => return (End::Open, rest),
                Err(_) => return (End::Reset, rest),
            }
        }
    }
}

/// Sends `raw` on a fresh connection and reads responses until the server closes or stays
/// quiet for `quiet` (then the connection counts as open).
pub fn exchange(addr: SocketAddr, raw: &[u8], quiet: Duration) -> (Vec<Response>, End) {
    let mut c = Conn::open(addr);
    c.send(raw);
    let mut out = Vec::new();
    loop {
        match c.response(Instant::now() + quiet) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => return (out, End::Closed),
            Err(e) if e.kind() == ErrorKind::TimedOut => return (out, End::Open),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (out, End::Reset),
            Err(e) => panic!("reading responses: {e}"),
        }
    }
}

/// A `GET` that may fail: None when no complete response arrives within `timeout`.
pub fn try_get(addr: SocketAddr, path: &str, timeout: Duration) -> Option<Response> {
    let s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    let mut c = Conn::new(s);
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    c.stream.write_all(req.as_bytes()).ok()?;
    c.response(Instant::now() + timeout).ok()?
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    let mut c = Conn::open(addr);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
    c.response(Instant::now() + SOON)
        .expect("response")
        .expect("a response before EOF")
}

// ---------------------------------------------------------------------------------------
// SSE

#[derive(Debug, Default, Clone)]
pub struct Event {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {:?}", self.data))
    }

    /// The `message` of a log entry (events without `event:`).
    pub fn message(&self) -> Option<String> {
        if self.event.is_some() {
            return None;
        }
        self.json()["message"].as_str().map(str::to_string)
    }
}

pub struct Sse {
    pub conn: Conn,
}

impl Sse {
    pub fn open(addr: SocketAddr) -> Sse {
        let mut conn = Conn::open(addr);
        conn.send(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
        let deadline = Instant::now() + SOON;
        let status = conn.line(deadline).unwrap().expect("SSE status line");
        assert!(
            status.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&status)
        );
        let mut chunked = false;
        loop {
            let line = conn.line(deadline).unwrap().expect("SSE head");
            if line.is_empty() {
                break;
            }
            chunked |= line.eq_ignore_ascii_case(b"transfer-encoding: chunked");
        }
        if chunked {
            conn.body_is_chunked();
        }
        let mut sse = Sse { conn };
        let hello = sse.next(deadline).expect("connected event");
        assert_eq!(hello.event.as_deref(), Some("connected"), "{hello:?}");
        sse
    }

    /// The next event before `deadline` (comments and `retry:` skipped).
    pub fn next(&mut self, deadline: Instant) -> io::Result<Event> {
        let mut ev = Event::default();
        let mut any = false;
        loop {
            let line = self.conn.line(deadline)?.ok_or(ErrorKind::UnexpectedEof)?;
            if line.is_empty() {
                if any {
                    return Ok(ev);
                }
                continue;
            }
            let line = String::from_utf8(line).expect("SSE lines are UTF-8");
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(": ").unwrap_or((&line, ""));
            match field {
                "event" => ev.event = Some(value.into()),
                "id" => ev.id = Some(value.into()),
                "data" => {
                    if any && !ev.data.is_empty() {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(value);
                }
                "retry" => continue,
                other => panic!("unexpected SSE field {other:?}"),
            }
            any = true;
        }
    }

    /// Entry messages until one equals `last` (inclusive); fails after `timeout`.
    pub fn messages_through(&mut self, last: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let ev = self
                .next(deadline)
                .unwrap_or_else(|e| panic!("waiting for {last:?} ({e}); got {out:?}"));
            if let Some(m) = ev.message() {
                let done = m == last;
                out.push(m);
                if done {
                    return out;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Many sockets at once

/// What one swarm socket received: the first [`HEAD_KEEP`] bytes and the last
/// [`TAIL_KEEP`] (enough for a greeting and a goodbye), and how it ended.
#[derive(Debug, Default)]
pub struct Peer {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
    pub received: usize,
    pub eof: bool,
    pub reset: bool,
    pub closed_at: Option<Instant>,
}

pub const HEAD_KEEP: usize = 64 * 1024;
pub const TAIL_KEEP: usize = 4 * 1024;

impl Peer {
    pub fn done(&self) -> bool {
        self.eof || self.reset
    }

    fn take(&mut self, bytes: &[u8]) {
        self.received += bytes.len();
        let room = HEAD_KEEP.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 2 * TAIL_KEEP {
            self.tail.drain(..self.tail.len() - TAIL_KEEP);
        }
    }

    /// `needle` is among the first or the last bytes received.
    pub fn saw(&self, needle: &[u8]) -> bool {
        let has = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        has(&self.head) || has(&self.tail)
    }
}

/// Non-blocking client sockets driven with poll(2) from one thread.
pub struct Swarm {
    pub socks: Vec<TcpStream>,
    pub peers: Vec<Peer>,
}

impl Swarm {
    pub fn connect(addr: SocketAddr, n: usize, first: &[u8], rcvbuf: Option<i32>) -> Swarm {
        raise_nofile();
        let mut socks = Vec::with_capacity(n);
        for i in 0..n {
            let s = match rcvbuf {
                None => TcpStream::connect_timeout(&addr, SOON),
                Some(size) => connect_small_rcvbuf(addr, size),
            }
            .unwrap_or_else(|e| panic!("connect #{i}: {e}"));
            s.set_nodelay(true).unwrap();
            if !first.is_empty() {
                s.set_write_timeout(Some(SOON)).unwrap();
                (&s).write_all(first).unwrap();
            }
            s.set_nonblocking(true).unwrap();
            socks.push(s);
        }
        let peers = (0..n).map(|_| Peer::default()).collect();
        Swarm { socks, peers }
    }

    pub fn open(&self) -> usize {
        self.peers.iter().filter(|p| !p.done()).count()
    }

    /// Waits up to `timeout` for input and reads whatever arrived.
    pub fn pump(&mut self, timeout: Duration) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut which = Vec::new();
        for (i, s) in self.socks.iter().enumerate() {
            if !self.peers[i].done() {
                fds.push(libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(i);
            }
        }
        if fds.is_empty() {
            return;
        }
        // SAFETY: `fds` is a valid, initialised array of `fds.len()` pollfd structs.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout.as_millis() as i32,
            )
        };
        if n <= 0 {
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        for (fd, &i) in fds.iter().zip(&which) {
            if fd.revents == 0 {
                continue;
            }
            loop {
                match (&self.socks[i]).read(&mut buf) {
                    Ok(0) => {
                        self.peers[i].eof = true;
                        self.peers[i].closed_at = Some(Instant::now());
                        break;
                    }
                    Ok(n) => self.peers[i].take(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.peers[i].reset = true;
                        self.peers[i].closed_at = Some(Instant::now());
                        break;
                    }
                }
            }
        }
    }

    /// Pumps until every peer satisfies `ok`, or panics after `timeout` with a count.
    pub fn wait_all(&mut self, timeout: Duration, what: &str, ok: impl Fn(&Peer) -> bool) {
        let end = Instant::now() + timeout;
        loop {
            let missing = self.peers.iter().filter(|p| !ok(p)).count();
            if missing == 0 {
                return;
            }
            assert!(
                Instant::now() < end,
                "{missing} of {} clients still not {what} after {timeout:?}",
                self.peers.len()
            );
            self.pump(Duration::from_millis(50));
        }
    }

    /// Writes `byte` to every open socket; a failed write marks the peer reset.
    pub fn trickle(&mut self, byte: u8) {
        for (i, s) in self.socks.iter().enumerate() {
            if self.peers[i].done() {
                continue;
            }
            match (&*s).write(&[byte]) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.peers[i].reset = true;
                    self.peers[i].closed_at = Some(Instant::now());
                }
            }
        }
    }

    /// Closes every socket with an RST (SO_LINGER 0).
    pub fn abort_all(&mut self) {
        for s in self.socks.drain(..) {
            abort(s);
        }
        self.peers.clear();
    }
}

/// Closes `s` with an RST instead of a FIN.
pub fn abort(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a valid fd and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

/// A client socket whose receive buffer is set before connecting (so the window stays
/// small and a client that never reads stalls the server's writes quickly).
pub fn connect_small_rcvbuf(addr: SocketAddr, size: i32) -> io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = addr else {
        return Err(io::Error::other("IPv4 only"));
    };
    // SAFETY: plain socket calls on a descriptor we own until it is wrapped; the sockaddr
    // is a fully initialised local of the size we pass.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// Half-closes our side of `s`.
pub fn shutdown_write(s: &TcpStream) {
    s.shutdown(Shutdown::Write).unwrap();
}
