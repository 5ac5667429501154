//! Child processes: their output collected in the background (whole, or line by line as
//! it comes), run to their end with a deadline, programs found on `PATH`, and /proc
//! readings of a running process.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::wait::wait_until;

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

/// The lines of a child's output (or any reader) as they come, read on a thread; the
/// channel ends with the output (or its first line that is not UTF-8).
pub fn lines(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The lines `child` prints on its (piped) stdout, as they come.
pub fn stdout_lines(child: &mut Child) -> Receiver<String> {
    lines(child.stdout.take().expect("the child's stdout is piped"))
}

/// Takes lines from `rx` until one contains `needle`, and returns it; every line taken is
/// also handed to `seen`. `Err(Timeout)` after `timeout`, `Err(Disconnected)` when the
/// output ended first.
pub fn line_with(
    rx: &Receiver<String>,
    needle: &str,
    timeout: Duration,
    mut seen: impl FnMut(&str),
) -> Result<String, RecvTimeoutError> {
    let deadline = Instant::now() + timeout;
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))?;
        seen(&line);
        if line.contains(needle) {
            return Ok(line);
        }
    }
}

/// How a child run by [`run_within`] ended, and what it said.
#[derive(Debug)]
pub struct Finished {
    /// `None`: still running at the deadline (it was killed then).
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` (stdin from /dev/null, stdout and stderr collected) until it exits, killing
/// it if it is still running after `timeout`.
pub fn run_within(cmd: &mut Command, timeout: Duration) -> Finished {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let (stdout, out_thread) = drain(child.stdout.take().unwrap());
    let (stderr, err_thread) = drain(child.stderr.take().unwrap());
    let mut status = None;
    let exited = wait_until(timeout, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = out_thread.join();
    let _ = err_thread.join();
    let text = |s: Arc<Mutex<String>>| std::mem::take(&mut *s.lock().unwrap());
    Finished {
        status,
        stdout: text(stdout),
        stderr: text(stderr),
    }
}

/// Where a program is: the first executable `name` on `PATH`, else the first of `also`
/// that exists (`/usr/sbin` is not on every user's `PATH`).
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

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// /proc readings of a process.
#[derive(Clone, Copy)]
pub struct Proc(pub u32);

impl Proc {
    fn status_kib(self, field: &str) -> u64 {
        let path = format!("/proc/{}/status", self.0);
        let status = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {path}:\n{status}"))
    }

    /// Resident set size now, in KiB.
    pub fn rss_kib(self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// User + system CPU time consumed so far.
    pub fn cpu(self) -> Duration {
        let text = fs::read_to_string(format!("/proc/{}/stat", self.0)).unwrap();
        let after = &text[text.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        // Fields 14 and 15 of stat(5); `after` starts at field 3.
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// Descriptors open now (0 once the process is gone).
    pub fn open_fds(self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.0))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Stopped (SIGSTOP): the state after the command name in `/proc/PID/stat` is `T`.
    pub fn is_stopped(self) -> bool {
        fs::read_to_string(format!("/proc/{}/stat", self.0))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('T')))
            .unwrap_or(false)
    }
}
