//! A plain blocking NATS client for what a test itself does beside logwisp: JetStream API
//! requests and a subscriber. It reads with the library's own protocol parser. Shared by
//! the engine tests (tests/brokers) and the forwarding tests (tests/integration/forward.rs).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use logwisp::forward::nats::proto::{self, Op, Parsed};
use serde_json::{Value, json};

/// How long the server may take to answer anything (a stream's leader may not be
/// elected yet: see [`NatsClient::js_call`]).
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A message received by a subscription.
pub struct Msg {
    pub subject: String,
    pub headers: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

pub struct NatsClient {
    sock: TcpStream,
    /// Received and not parsed yet.
    buf: Vec<u8>,
    /// The last request's number (its reply subject is `_INBOX.t.{next}`).
    next: u64,
}

impl NatsClient {
    /// Connects to 127.0.0.1:`port` (no credentials), subscribed to its request inbox.
    pub fn connect(port: u16) -> NatsClient {
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut n = NatsClient {
            sock,
            buf: Vec::new(),
            next: 0,
        };
        n.send(b"CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true,\"protocol\":1}\r\nSUB _INBOX.t.* 99\r\nPING\r\n");
        n.read_until(|op| matches!(op, Op::Pong).then_some(()));
        n
    }

    pub fn send(&mut self, b: &[u8]) {
        self.sock.write_all(b).unwrap();
    }

    /// Reads ops until `f` returns `Some` for one, answering the server's PINGs; `None`
    /// after `within` or when the server closes. A server error (`-ERR`) fails the test.
    pub fn until<T>(
        &mut self,
        within: Duration,
        mut f: impl FnMut(&Op<'_>) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + within;
        loop {
            let mut used = 0;
            let mut found = None;
            while let Ok(Parsed::Op(op, n)) = proto::parse(&self.buf[used..], 1 << 20) {
                if matches!(op, Op::Ping) {
                    self.sock.write_all(b"PONG\r\n").unwrap();
                }
                assert!(!matches!(op, Op::Err(_)), "server error: {op:?}");
                used += n;
                if let Some(t) = f(&op) {
                    found = Some(t);
                    break;
                }
            }
            self.buf.drain(..used);
            if found.is_some() {
                return found;
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut chunk = [0u8; 256 * 1024];
            match self.sock.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Like [`until`](Self::until), failing the test after [`PATIENCE`].
    pub fn read_until<T>(&mut self, f: impl FnMut(&Op<'_>) -> Option<T>) -> T {
        self.until(PATIENCE, f).unwrap_or_else(|| {
            panic!("NATS client: nothing within {PATIENCE:?}, or the server closed")
        })
    }

    /// The next message of any subscription.
    pub fn next_msg(&mut self) -> Msg {
        self.read_until(|op| match op {
            Op::Msg {
                subject,
                headers,
                payload,
                ..
            } => Some(Msg {
                subject: subject.to_string(),
                headers: headers.map(<[u8]>::to_vec),
                payload: payload.to_vec(),
            }),
            _ => None,
        })
    }

    /// A request/reply: the reply's JSON (`Null` if it is not JSON), or `None` without a
    /// reply within `within`.
    pub fn try_request(&mut self, subject: &str, body: &Value, within: Duration) -> Option<Value> {
        self.next += 1;
        let reply = format!("_INBOX.t.{}", self.next);
        let body = body.to_string();
        self.send(format!("PUB {subject} {reply} {}\r\n{body}\r\n", body.len()).as_bytes());
        self.until(within, |op| match op {
            Op::Msg {
                subject, payload, ..
            } if *subject == reply => Some(serde_json::from_slice(payload).unwrap_or(Value::Null)),
            _ => None,
        })
    }

    /// A request/reply that must be answered within [`PATIENCE`].
    pub fn request(&mut self, subject: &str, body: &Value) -> Value {
        self.try_request(subject, body, PATIENCE)
            .unwrap_or_else(|| panic!("no reply to {subject} within {PATIENCE:?}"))
    }

    /// Calls the JetStream API at `subject` until it answers without an error, asking
    /// again (every 200 ms) while it cannot do what is asked yet: a cluster may not have
    /// elected its JetStream leader, or, having lost a node, not have placed a consumer.
    /// Fails after `within` with the last answer.
    pub fn js_call(&mut self, subject: &str, body: &Value, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let r = self
                .try_request(subject, body, Duration::from_secs(2))
                .unwrap_or(Value::Null);
            if r.is_object() && r.get("error").is_none() {
                return r;
            }
            assert!(Instant::now() < deadline, "{subject}: {r}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Creates JetStream stream `name` on `subjects` (file storage, `replicas` copies),
    /// within 30 s.
    pub fn create_stream(&mut self, name: &str, subjects: &[&str], replicas: u32) {
        self.js_call(
            &format!("$JS.API.STREAM.CREATE.{name}"),
            &json!({"name": name, "subjects": subjects, "storage": "file",
                    "num_replicas": replicas}),
            Duration::from_secs(30),
        );
    }

    /// Messages in stream `name`; `None` without an answer within `within` (while the
    /// stream has no leader to answer).
    pub fn stream_messages(&mut self, name: &str, within: Duration) -> Option<u64> {
        self.try_request(&format!("$JS.API.STREAM.INFO.{name}"), &json!({}), within)
            .and_then(|r| r["state"]["messages"].as_u64())
    }
}
