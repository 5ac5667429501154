//! What only the abuse tests need: their one-stream config, the `app` stream's ports, a
//! poll(2)-driven swarm of raw sockets, and exchanges that end in a close, a reset or
//! silence. The harness shared with the other test binaries (temp dirs, the server,
//! HTTP and SSE clients, waits, /proc readings) is tests/support, re-exported here.
//! Every wait is a poll against a deadline; nothing sleeps in place of a condition.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Once;
use std::time::{Duration, Instant};

pub use crate::support::prelude::*;

/// Default patience for anything that should happen "at once".
pub const SOON: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Configs and the server

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
            "[[streams]]\nname = \"app\"\n[streams.monitor]\n{}\ntargets = [{}]\n{HTTP}{}",
            self.monitor, self.targets, self.http
        );
        if self.tcp {
            t.push_str(TCP);
        }
        t
    }
}

impl Server {
    /// The HTTP port of the `app` stream.
    pub fn http(&self) -> u16 {
        self.http_port("app")
    }

    /// The TCP port of the `app` stream.
    pub fn tcp(&self) -> u16 {
        self.tcp_port("app")
    }

    /// The server is alive and a fresh client is answered [`SOON`].
    pub fn assert_serving(&self) {
        self.assert_alive();
        let r = try_get(self.http(), "/status", SOON).expect("a /status answer in time");
        assert_eq!(r.status, 200, "status: {}", r.text());
        let v = r.json();
        assert_eq!(v["service"], "LogWisp", "{v}");
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

// ---------------------------------------------------------------------------------------
// Connections

/// Connects to `127.0.0.1:port` with [`SOON`] for the connect, reads and writes.
pub fn connect(port: u16) -> TcpStream {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let s = TcpStream::connect_timeout(&addr, SOON).expect("connect");
    s.set_read_timeout(Some(SOON)).unwrap();
    s.set_write_timeout(Some(SOON)).unwrap();
    s
}

/// Sends `raw` on a fresh connection and reads responses until the server closes or stays
/// quiet for `quiet` (then the connection counts as open).
pub fn exchange(port: u16, raw: &[u8], quiet: Duration) -> (Vec<Response>, End) {
    let mut c = HttpConn::new(connect(port));
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
pub fn try_get(port: u16, path: &str, timeout: Duration) -> Option<Response> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    let mut c = HttpConn::new(s);
    let req = get_request(path, &["Connection: close"]);
    c.stream.write_all(req.as_bytes()).ok()?;
    c.response(Instant::now() + timeout).ok()?
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
    pub fn connect(port: u16, n: usize, first: &[u8], rcvbuf: Option<i32>) -> Swarm {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        raise_nofile();
        let mut socks = Vec::with_capacity(n);
        for i in 0..n {
            let s = match rcvbuf {
                None => TcpStream::connect_timeout(&addr, SOON)
                    .unwrap_or_else(|e| panic!("connect #{i}: {e}")),
                Some(size) => connect_tcp(None, Some(size), port),
            };
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

/// Half-closes our side of `s`.
pub fn shutdown_write(s: &TcpStream) {
    s.shutdown(Shutdown::Write).unwrap();
}
