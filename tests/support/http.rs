//! HTTP/1.1 over plain sockets: responses read with deadlines, on fresh connections or on
//! one kept open (pipelining, raw bytes, half-closes, chunked bodies). Its connection,
//! [`HttpConn`], is the one buffered reader every client here reads through.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::chunked::Dechunker;
use super::tcp::{connect_tcp, find};
use super::wait::TIMEOUT;

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

    /// It says `Connection: close`.
    pub fn closes(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
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

/// How a connection ended after its responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Orderly FIN.
    Closed,
    Reset,
    /// Still open when we stopped waiting.
    Open,
}

/// A raw connection: write any bytes, read responses one at a time (or lines, bytes up to
/// a delimiter, exact byte counts). Partial input is kept across timeouts; once told the
/// body is chunked, it hands out the decoded body. The SSE, TCP and WebSocket clients
/// read through it.
pub struct HttpConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Start of unread bytes in `buf`.
    pos: usize,
    /// `Some` from the start of a chunked body on.
    chunks: Option<Dechunker>,
}

impl HttpConn {
    pub fn connect(port: u16) -> HttpConn {
        HttpConn::connect_from(None, port)
    }

    /// From another loopback address, e.g. 127.0.0.2 (a different client IP for limits).
    pub fn connect_from(from: Option<Ipv4Addr>, port: u16) -> HttpConn {
        let stream = connect_tcp(from, None, port);
        // A server that stops reading fails the test instead of hanging it.
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        HttpConn::new(stream)
    }

    /// Over a connection already made (and maybe written to).
    pub fn new(stream: TcpStream) -> HttpConn {
        HttpConn {
            stream,
            buf: Vec::new(),
            pos: 0,
            chunks: None,
        }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("send request");
    }

    /// What follows (and what is buffered) is a chunked body: decode it from here on.
    pub fn body_is_chunked(&mut self) {
        let mut d = Dechunker::default();
        let raw = self.buf.split_off(self.pos);
        d.feed(&raw, &mut self.buf);
        self.chunks = Some(d);
    }

    /// The bytes received and not read yet.
    pub fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Takes the first `n` unread bytes.
    pub fn consume(&mut self, n: usize) -> Vec<u8> {
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        out
    }

    /// One read from the socket, waiting at most until `deadline`: Ok(true) when bytes
    /// arrived (a chunked body's framing alone may decode to none), Ok(false) on EOF,
    /// `TimedOut` at the deadline, any other error as it came (a reset).
    pub fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    match &mut self.chunks {
                        Some(d) => d.feed(&chunk[..n], &mut self.buf),
                        None => self.buf.extend_from_slice(&chunk[..n]),
                    }
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(ErrorKind::TimedOut.into());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The unread bytes up to and including the first `delim`, reading until `deadline`;
    /// Ok(None) on EOF before it (what came stays unread).
    pub fn through(&mut self, delim: &[u8], deadline: Instant) -> io::Result<Option<Vec<u8>>> {
        // Where `delim` may start: the bytes before were searched already.
        let mut from = 0;
        loop {
            if let Some(at) = find(&self.unread()[from..], delim) {
                return Ok(Some(self.consume(from + at + delim.len())));
            }
            from = self.unread().len().saturating_sub(delim.len() - 1);
            if !self.fill(deadline)? {
                return Ok(None);
            }
        }
    }

    /// One line without its `\n` (and `\r`); Ok(None) at EOF.
    pub fn line(&mut self, deadline: Instant) -> io::Result<Option<Vec<u8>>> {
        let Some(mut line) = self.through(b"\n", deadline)? else {
            return Ok(None);
        };
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(line))
    }

    /// Exactly `n` bytes; `UnexpectedEof` if the connection ends first.
    pub fn exact(&mut self, n: usize, deadline: Instant) -> io::Result<Vec<u8>> {
        while self.unread().len() < n {
            if !self.fill(deadline)? {
                return Err(ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.consume(n))
    }

    /// The next response head (status line and headers); Ok(None) on EOF before any of it.
    pub fn head(&mut self, deadline: Instant) -> io::Result<Option<Response>> {
        let Some(head) = self.through(b"\r\n\r\n", deadline)? else {
            if self.unread().is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                format!(
                    "EOF inside a response head: {:?}",
                    String::from_utf8_lossy(self.unread())
                ),
            ));
        };
        Ok(Some(parse_head(&head[..head.len() - 4])))
    }

    /// Reads the body of `resp` (a head just read) by its Content-Length.
    pub fn body(&mut self, resp: &mut Response, deadline: Instant) -> io::Result<()> {
        // RFC 9110 §8.6: a 204 (or 304) has no body and need not say so.
        let len: usize = if matches!(resp.status, 204 | 304) {
            0
        } else {
            resp.header("Content-Length")
                .expect("response has Content-Length")
                .parse()
                .expect("numeric Content-Length")
        };
        resp.body = self.exact(len, deadline)?;
        Ok(())
    }

    /// The next response (head and Content-Length body); Ok(None) on EOF before one.
    pub fn response(&mut self, deadline: Instant) -> io::Result<Option<Response>> {
        let Some(mut resp) = self.head(deadline)? else {
            return Ok(None);
        };
        self.body(&mut resp, deadline)?;
        Ok(Some(resp))
    }

    /// Reads one response (its body by Content-Length), within [`TIMEOUT`].
    pub fn read_response(&mut self) -> Response {
        self.read_response_within(TIMEOUT)
    }

    pub fn read_response_within(&mut self, timeout: Duration) -> Response {
        let deadline = Instant::now() + timeout;
        let mut resp = self.read_head_before(deadline);
        if let Err(e) = self.body(&mut resp, deadline) {
            panic!(
                "short body ({e}): {:?}",
                String::from_utf8_lossy(self.unread())
            );
        }
        resp
    }

    /// Like [`read_response`](Self::read_response) after a HEAD request: no body follows.
    pub fn read_head_only(&mut self) -> Response {
        self.read_head_before(Instant::now() + TIMEOUT)
    }

    fn read_head_before(&mut self, deadline: Instant) -> Response {
        match self.head(deadline) {
            Ok(Some(head)) => head,
            Ok(None) => panic!("no response head: the connection was closed"),
            Err(e) => panic!(
                "no complete response head ({e}); got {:?}",
                String::from_utf8_lossy(self.unread())
            ),
        }
    }

    /// Reads until EOF, reset or `deadline`; the bytes that came first are returned.
    pub fn end(&mut self, deadline: Instant) -> (End, Vec<u8>) {
        let mut rest = Vec::new();
        loop {
            rest.extend_from_slice(self.unread());
            self.pos = self.buf.len();
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return (End::Closed, rest),
                Err(e) if e.kind() == ErrorKind::TimedOut => return (End::Open, rest),
                Err(_) => return (End::Reset, rest),
            }
        }
    }

    /// Asserts the server ends the connection (EOF or reset) with nothing more to say; a
    /// chunked body may end with its last chunk first.
    pub fn expect_closed(&mut self) {
        let unread = |c: &HttpConn| String::from_utf8_lossy(c.unread()).into_owned();
        assert!(
            self.unread().is_empty(),
            "expected close, but unread bytes are buffered: {:?}",
            unread(self)
        );
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.fill(deadline) {
                Ok(false) => return,
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    panic!("connection was not closed in time")
                }
                Err(_) => return, // reset: closed as well
                Ok(true) => assert!(
                    self.unread().is_empty(),
                    "expected close, got bytes: {:?}",
                    unread(self)
                ),
            }
        }
    }
}

/// `GET path` with `Host: 127.0.0.1` and `headers` (lines without their CRLF), in order.
pub fn get_request(path: &str, headers: &[&str]) -> String {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req
}

/// Sends `raw` on a new connection and reads one response.
pub fn http_request(port: u16, raw: &[u8]) -> Response {
    let mut c = HttpConn::connect(port);
    c.send(raw);
    c.read_response()
}

/// `GET path` with `Connection: close`.
pub fn http_get(port: u16, path: &str) -> Response {
    http_request(port, get_request(path, &["Connection: close"]).as_bytes())
}
