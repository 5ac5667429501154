//! TCP: free ports, connecting (from another loopback address, with a small receive
//! buffer), and the TCP server's client (NDJSON lines, read through [`HttpConn`]).

use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::HttpConn;
use super::wait::{TIMEOUT, wait_until};

/// A port that was free a moment ago (for `--router-port`, shared router ports, and
/// servers that cannot pick one and say which).
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

/// A newline-delimited JSON client (the TCP server's protocol).
pub struct TcpLineClient {
    pub conn: HttpConn,
}

impl TcpLineClient {
    pub fn connect(port: u16) -> TcpLineClient {
        TcpLineClient::from_stream(connect_tcp(None, None, port))
    }

    pub fn from_stream(stream: TcpStream) -> TcpLineClient {
        TcpLineClient {
            conn: HttpConn::new(stream),
        }
    }

    /// The next line without its `\n`, or `None` on timeout, EOF or a reset.
    pub fn next_line_within(&mut self, timeout: Duration) -> Option<String> {
        let mut line = self.conn.through(b"\n", Instant::now() + timeout).ok()??;
        line.pop();
        Some(String::from_utf8(line).expect("UTF-8 line"))
    }

    pub fn next_line(&mut self) -> String {
        self.next_line_within(TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no line in time; unread: {:?}",
                String::from_utf8_lossy(self.conn.unread())
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
        self.conn.expect_closed();
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
        let stop = client.conn.stream.try_clone().unwrap();
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
