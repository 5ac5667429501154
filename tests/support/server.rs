//! The real logwisp: started on a config in a temp dir of its own, on free ports it
//! prints and we parse, its output collected; its status polled, signals sent, and
//! killed (SIGKILL) when the test ends, however it ends.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use super::files::{TempDir, chmod};
use super::http::http_get;
use super::process::{Proc, drain};
use super::wait::{TIMEOUT, wait_until};

pub const BIN: &str = env!("CARGO_BIN_EXE_logwisp");

/// An HTTP server table on a free loopback port (more keys may follow it).
pub const HTTP: &str = "[streams.httpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = 0\n";
/// A TCP server table on a free loopback port (more keys may follow it).
pub const TCP: &str = "[streams.tcpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = 0\n";

/// How logwisp is started besides its config (kept across restarts).
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// More command-line arguments, after `--config`.
    pub args: Vec<String>,
    /// Extra environment (`$DIR` in a value stands for the test's temp dir). It cannot
    /// undo the isolation every run gets (no `LOGWISP_CONFIG` or `STATE_DIRECTORY`,
    /// `HOME` and `XDG_STATE_HOME` in the test's dir).
    pub env: Vec<(String, String)>,
    /// Both the soft and the hard open-files limit (logwisp raises its soft limit to the
    /// hard one, so both must be low).
    pub fd_limit: Option<u64>,
    /// Another uid and gid to run as (tests run as root, where permissions do not stop
    /// reads).
    pub user: Option<(u32, u32)>,
}

impl Launch {
    pub fn as_user(uid: u32, gid: u32) -> Launch {
        Launch {
            user: Some((uid, gid)),
            ..Launch::default()
        }
    }
}

/// The binary as another user can run it. The build sits in the checkout, which may be
/// under a directory only its owner can enter (CI clones into a mode 0700 home), so the
/// other user could not exec it there: it gets a copy in the test's directory, which that
/// user must reach anyway to read the test's files.
fn binary_for(uid: u32, dir: &TempDir) -> PathBuf {
    for ancestor in dir.path().ancestors() {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(ancestor).unwrap().permissions().mode();
        assert!(
            mode & 0o001 != 0,
            "uid {uid} cannot enter {} (mode {:o}): point TMPDIR at a world-searchable \
             directory",
            ancestor.display(),
            mode & 0o7777
        );
    }
    let copy = dir.join("logwisp");
    fs::copy(BIN, &copy).unwrap();
    chmod(&copy, 0o755);
    copy
}

/// The real logwisp, started on a config in its own temp dir; killed (SIGKILL) on drop.
pub struct Server {
    pub dir: TempDir,
    child: Mutex<Child>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    http: HashMap<String, u16>,
    tcp: HashMap<String, u16>,
    launch: Launch,
}

/// Starts logwisp on `$DIR/logwisp.toml` in `dir`, its output collected in the background.
/// Its default state dir is under `dir` too, so no test writes to the runner's home
/// (tests that need state set `state_dir` themselves). It dies with the thread that
/// started it (a test that panics leaves no server behind) and gets default SIGPIPE
/// handling, so the test harness's SIG_IGN cannot hide a SIGPIPE death.
fn spawn_logwisp(
    dir: &TempDir,
    launch: &Launch,
) -> (Child, Arc<Mutex<String>>, Arc<Mutex<String>>) {
    let mut cmd = match launch.user {
        Some((uid, gid)) => {
            let mut cmd = Command::new(binary_for(uid, dir));
            cmd.uid(uid).gid(gid);
            cmd
        }
        None => Command::new(BIN),
    };
    for (k, v) in &launch.env {
        cmd.env(k, v);
    }
    let fd_limit = launch.fd_limit.map(|limit| libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: limit as libc::rlim_t,
    });
    // SAFETY: between fork and exec only prctl(2), signal(2) and setrlimit(2) run, which
    // are async-signal-safe; setrlimit reads `fd_limit`, a plain value copied into the
    // closure.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if let Some(lim) = &fd_limit
                && libc::setrlimit(libc::RLIMIT_NOFILE, lim) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .arg("--config")
        .arg(dir.join("logwisp.toml"))
        .args(&launch.args)
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
        let args = args.iter().map(|a| a.to_string()).collect();
        Server::launch(
            dir,
            toml,
            Launch {
                args,
                ..Launch::default()
            },
        )
    }

    /// Like [`start_in`](Self::start_in), with both the soft and the hard open-files limit
    /// set to `limit` (logwisp raises its soft limit to the hard one, so both must be low).
    pub fn start_with_fd_limit(dir: TempDir, toml: &str, limit: u64) -> Server {
        let launch = Launch {
            fd_limit: Some(limit),
            ..Launch::default()
        };
        Server::launch(dir, toml, launch)
    }

    /// Like [`start_in`](Self::start_in), with extra environment variables (`$DIR` in a
    /// value stands for the test's temp dir).
    pub fn start_with_env(dir: TempDir, toml: &str, env: &[(&str, &str)]) -> Server {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let launch = Launch {
            env,
            ..Launch::default()
        };
        Server::launch(dir, toml, launch)
    }

    /// Starts on `toml` in `dir` as `launch` says.
    pub fn launch(dir: TempDir, toml: &str, mut launch: Launch) -> Server {
        let here = dir.path().display().to_string();
        fs::write(dir.join("logwisp.toml"), toml.replace("$DIR", &here)).expect("write config");
        for (_, v) in &mut launch.env {
            *v = v.replace("$DIR", &here);
        }
        let (child, stdout, stderr) = spawn_logwisp(&dir, &launch);
        let mut server = Server {
            dir,
            child: Mutex::new(child),
            stdout,
            stderr,
            http: HashMap::new(),
            tcp: HashMap::new(),
            launch,
        };
        server.wait_listening();
        server
    }

    fn child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts logwisp again in the same dir, on the same config and arguments (listeners
    /// on port 0 get new ports). A process still running is killed first.
    pub fn restart(&mut self) {
        {
            let mut child = self.child();
            let _ = child.kill();
            let _ = child.wait();
        }
        let (child, stdout, stderr) = spawn_logwisp(&self.dir, &self.launch);
        *self.child() = child;
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
            if let Ok(Some(status)) = self.child().try_wait() {
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
        self.child().id()
    }

    /// /proc readings of the running logwisp.
    pub fn proc(&self) -> Proc {
        Proc(self.pid())
    }

    /// Peak resident set size so far (`VmHWM` in `/proc/PID/status`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc().peak_rss_kib()
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

    /// Panics, with what logwisp said, if it has exited.
    pub fn assert_alive(&self) {
        if let Ok(Some(status)) = self.child().try_wait() {
            panic!("logwisp died ({status}); stderr:\n{}", self.stderr());
        }
    }

    /// `GET /status` of a standalone stream on a fresh connection, as JSON.
    pub fn status(&self, stream: &str) -> Value {
        self.assert_alive();
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
        let child = self.child();
        // SAFETY: kill(2) with the pid of our own child, which has not been reaped yet (the
        // `Child` is still held, and locked), so the pid cannot name another process.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill: {}", io::Error::last_os_error());
    }

    /// Stops the process (SIGSTOP) and waits until it is stopped, so that what the test
    /// does next happens between two of its looks; [`thaw`](Self::thaw) resumes it.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
        let proc = self.proc();
        assert!(
            wait_until(TIMEOUT, || proc.is_stopped()),
            "logwisp did not stop"
        );
    }

    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child().try_wait().expect("try_wait");
            status.is_some()
        });
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
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
