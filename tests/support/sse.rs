//! Server-Sent Events over a plain socket: events parsed with their exact bytes kept.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{HttpConn, Response, get_request};
use super::wait::TIMEOUT;

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

    /// The `message` of a log entry; None for a named event (`event:`) or a comment.
    pub fn message(&self) -> Option<String> {
        if self.event.is_some() || self.is_comment_only() {
            return None;
        }
        self.json()["message"].as_str().map(str::to_string)
    }
}

/// An SSE client over a plain socket. It reads the body as the response head frames it:
/// chunked when it says `Transfer-Encoding: chunked`, else close-delimited.
pub struct SseClient {
    conn: HttpConn,
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

    /// Like [`connect`](Self::connect), past the `connected` event: a client for the
    /// entries alone.
    pub fn subscribe_to(port: u16, path: &str, extra: &[&str]) -> SseClient {
        let mut c = SseClient::connect(port, path, extra);
        c.skip_connected();
        c
    }

    /// `GET /stream`, past its `connected` event.
    pub fn subscribe(port: u16) -> SseClient {
        SseClient::subscribe_to(port, "/stream", &[])
    }

    /// Sends the request on `stream`; a non-200 answer is returned whole as `Err`.
    pub fn open(mut stream: TcpStream, path: &str, extra: &[&str]) -> Result<SseClient, Response> {
        stream
            .write_all(SseClient::request(path, extra).as_bytes())
            .unwrap();
        SseClient::read_head(stream)
    }

    /// Reads the answer to a stream request already sent on `stream`.
    pub fn read_head(stream: TcpStream) -> Result<SseClient, Response> {
        let mut conn = HttpConn::new(stream);
        let deadline = Instant::now() + TIMEOUT;
        let mut head = match conn.head(deadline) {
            Ok(Some(head)) => head,
            other => panic!(
                "no response head ({:?}): {:?}",
                other.map(|_| ()),
                String::from_utf8_lossy(conn.unread())
            ),
        };
        if head.status != 200 {
            conn.body(&mut head, deadline)
                .unwrap_or_else(|e| panic!("short body ({e}) of a {} answer", head.status));
            return Err(head);
        }
        match head.header("Transfer-Encoding") {
            None => {}
            Some(te) if te.eq_ignore_ascii_case("chunked") => conn.body_is_chunked(),
            Some(te) => panic!("unexpected Transfer-Encoding: {te}"),
        }
        Ok(SseClient { conn, head })
    }

    /// `GET path` asking for an event stream, with `extra` header lines.
    pub fn request(path: &str, extra: &[&str]) -> String {
        get_request(path, &[&["Accept: text/event-stream"], extra].concat())
    }

    /// The next event's raw block, or `None` on timeout or EOF.
    pub fn next_block_within(&mut self, timeout: Duration) -> Option<String> {
        self.next_block_before(Instant::now() + timeout)
    }

    fn next_block_before(&mut self, deadline: Instant) -> Option<String> {
        // EOF, a reset, or the deadline: None.
        let block = self.conn.through(b"\n\n", deadline).ok()??;
        Some(String::from_utf8(block).expect("UTF-8 event"))
    }

    pub fn next_event_within(&mut self, timeout: Duration) -> Option<Event> {
        self.next_block_within(timeout).map(|b| Event::parse(&b))
    }

    /// The next event that is more than a comment (a heartbeat), before `deadline`;
    /// `None` on timeout or EOF.
    pub fn next_before(&mut self, deadline: Instant) -> Option<Event> {
        loop {
            let e = Event::parse(&self.next_block_before(deadline)?);
            if !e.is_comment_only() {
                return Some(e);
            }
        }
    }

    /// The next event; panics after [`TIMEOUT`].
    pub fn next_event(&mut self) -> Event {
        self.next_event_within(TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no SSE event in time; unread: {:?}",
                String::from_utf8_lossy(self.conn.unread())
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

    /// Entry messages until one equals `last` (inclusive), named events and comments
    /// skipped; fails after `timeout`.
    pub fn messages_through(&mut self, last: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let e = self.next_before(deadline).unwrap_or_else(|| {
                panic!("waiting for {last:?}: no event in time or the stream ended; got {out:?}")
            });
            if let Some(m) = e.message() {
                let done = m == last;
                out.push(m);
                if done {
                    return out;
                }
            }
        }
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
        self.conn.expect_closed();
    }
}
