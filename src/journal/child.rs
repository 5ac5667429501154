//! A `journalctl` child whose stdout and stderr are non-blocking pipes registered with the
//! reactor. Nothing here waits: a child is known to be done when both pipes reached their
//! end; one that must go before that is killed and handed to the reactor to be reaped.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};

use mio::unix::pipe::Receiver;

/// What a pipe belongs to, for the reactor to route its readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeOf {
    /// The follower (or the one-shot child that finds where to start) of journal target
    /// `n` of the stream.
    Target(usize),
    /// A child reading the journal again for a client behind the buffer.
    Replay(usize),
}

/// Registers children's pipes with the reactor's poll, and takes children that must be
/// reaped later. Implemented by the reactor for one stream at a time.
pub trait Pipes {
    /// Registers `pipe` (READABLE) for `of`; returns the key to deregister it with.
    fn register(&mut self, pipe: &mut Receiver, of: PipeOf, stderr: bool) -> io::Result<usize>;
    fn deregister(&mut self, pipe: &mut Receiver, key: usize);
    /// A child that was killed, or whose pipes closed before it exited: reaped later.
    fn reap_later(&mut self, child: Child);
}

/// What a child wrote on stderr is kept up to this size for the report.
const STDERR_KEEP: usize = 2048;

/// A running journalctl.
#[derive(Debug)]
pub struct Proc {
    child: Option<Child>,
    out: Receiver,
    err: Receiver,
    out_key: usize,
    err_key: usize,
    /// The kernel said a pipe is readable (cleared only by `WouldBlock` or its end).
    pub out_ready: bool,
    pub err_ready: bool,
    pub out_eof: bool,
    pub err_eof: bool,
    /// The start of what it said on stderr.
    stderr: Vec<u8>,
    /// Tick it was started at.
    pub started: u64,
}

/// How a child ended.
#[derive(Debug)]
pub struct Ended {
    /// `None` when it had not exited yet when its pipes closed (it is reaped later).
    pub status: Option<ExitStatus>,
    /// The first line of what it said on stderr.
    pub stderr: String,
}

impl Ended {
    /// Exited with status 0; one not reaped yet counts as such when it said nothing on
    /// stderr (journalctl reports every failure there).
    pub fn success(&self) -> bool {
        self.status.map_or(self.stderr.is_empty(), |s| s.success())
    }

    /// `journalctl exited with status 1: Failed to …`.
    pub fn describe(&self, program: &str) -> String {
        let how = match self.status {
            Some(s) => match s.code() {
                Some(c) => format!("{program} exited with status {c}"),
                None => format!("{program} was ended by a signal ({s})"),
            },
            None => format!("{program} ended"),
        };
        if self.stderr.is_empty() {
            how
        } else {
            format!("{how}: {}", self.stderr)
        }
    }
}

impl Proc {
    /// Starts `program args`, its pipes registered for `of`. The child dies with logwisp
    /// (it gets SIGTERM when logwisp ends, however it ends) and is in its own process
    /// group, so a Ctrl-C meant for logwisp does not end it under logwisp's feet.
    pub fn spawn(
        program: &OsStr,
        args: &[OsString],
        of: PipeOf,
        pipes: &mut dyn Pipes,
        now: u64,
    ) -> io::Result<Proc> {
        let parent = std::process::id() as libc::pid_t;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("SYSTEMD_COLORS", "0")
            .env("SYSTEMD_PAGER", "")
            .process_group(0);
        // SAFETY: between fork and exec only prctl(2), getppid(2) and _exit(2) run, all
        // async-signal-safe system calls that touch no memory of the parent's.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // logwisp ended between fork and prctl: nothing would stop the child.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            pipes.reap_later(child);
            return Err(io::Error::other("no pipes to the child"));
        };
        let mut out = Receiver::from(out);
        let mut err = Receiver::from(err);
        let registered = out
            .set_nonblocking(true)
            .and_then(|()| err.set_nonblocking(true))
            .and_then(|()| pipes.register(&mut out, of, false))
            .and_then(|out_key| match pipes.register(&mut err, of, true) {
                Ok(err_key) => Ok((out_key, err_key)),
                Err(e) => {
                    pipes.deregister(&mut out, out_key);
                    Err(e)
                }
            });
        let (out_key, err_key) = match registered {
            Ok(keys) => keys,
            Err(e) => {
                let _ = child.kill();
                pipes.reap_later(child);
                return Err(e);
            }
        };
        Ok(Proc {
            child: Some(child),
            out,
            err,
            out_key,
            err_key,
            // Edge-triggered: look once whatever the kernel says first.
            out_ready: true,
            err_ready: true,
            out_eof: false,
            err_eof: false,
            stderr: Vec::new(),
            started: now,
        })
    }

    /// Reads from stdout into `buf`: `Some(n)` bytes (0 at its end), `None` when there is
    /// nothing now. Errors other than `WouldBlock` end the pipe.
    pub fn read_out(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.out_eof || !self.out_ready {
            return None;
        }
        loop {
            match self.out.read(buf) {
                Ok(0) => {
                    self.out_eof = true;
                    self.out_ready = false;
                    return Some(0);
                }
                Ok(n) => return Some(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.out_ready = false;
                    return None;
                }
                Err(_) => {
                    self.out_eof = true;
                    self.out_ready = false;
                    return Some(0);
                }
            }
        }
    }

    /// Drains stderr, keeping its start; returns the lines it completed since the last
    /// call (for the error count) and whether anything was read.
    pub fn read_err(&mut self) -> usize {
        let mut lines = 0;
        let mut buf = [0u8; 1024];
        while self.err_ready && !self.err_eof {
            match self.err.read(&mut buf) {
                Ok(0) => {
                    self.err_eof = true;
                    self.err_ready = false;
                }
                Ok(n) => {
                    lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
                    let room = STDERR_KEEP.saturating_sub(self.stderr.len());
                    self.stderr.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.err_ready = false,
                Err(_) => {
                    self.err_eof = true;
                    self.err_ready = false;
                }
            }
        }
        lines
    }

    /// The first line written to stderr, if any.
    pub fn stderr_line(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string()
    }

    /// Both pipes reached their end: the child is done.
    pub fn done(&self) -> bool {
        self.out_eof && self.err_eof
    }

    /// The child's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Ends the child (killing it unless both pipes are closed), deregisters its pipes and
    /// says how it ended. Never waits: a child that has not exited is reaped later.
    pub fn finish(mut self, pipes: &mut dyn Pipes) -> Ended {
        pipes.deregister(&mut self.out, self.out_key);
        pipes.deregister(&mut self.err, self.err_key);
        let stderr = self.stderr_line();
        let mut status = None;
        if let Some(mut child) = self.child.take() {
            if !self.done() {
                let _ = child.kill();
            }
            match child.try_wait() {
                Ok(Some(s)) => status = Some(s),
                _ => pipes.reap_later(child),
            }
        }
        Ended { status, stderr }
    }
}

impl Drop for Proc {
    /// A child left running (its stream dropped without `finish`) is killed at least.
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.try_wait();
        }
    }
}
