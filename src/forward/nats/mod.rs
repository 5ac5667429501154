//! A NATS client engine for one sink: CONNECT, keep-alive, `HPUB` with `Nats-Msg-Id`, and
//! in JetStream mode the PubAck of every publish.
//!
//! One `Nats` value lives as long as the sink and drives one connection at a time:
//!
//! ```text
//! Idle ──connected()──▶ WaitingInfo ──INFO──▶ [WaitingTls ──tls_ready()──▶] WaitingPong
//!   ▲                                                                          │ PONG
//!   └───────────── connected() again ◀── Closed ◀── any failure ◀── Connected ◀─┘
//! ```
//!
//! After INFO the engine sends `CONNECT`, in JetStream mode `SUB <inbox>.*`, and `PING`;
//! the first `PONG` proves the server accepted all of it (an auth failure arrives as
//! `-ERR` before it), and only then may the caller publish. With `tls`, the engine stops
//! after INFO with [`Event::StartTls`]: nats-server sends INFO in plain text and expects
//! the TLS handshake next; from then on the caller feeds and writes plaintext.
//!
//! JetStream mode gives every publish the reply subject `<inbox>.<seq>`; the server's
//! PubAck on that subject becomes [`Event::Acked`] or [`Event::Nacked`] for its token.
//! Core mode (`jetstream = false`) is fire and forget: a token is acked once its bytes have
//! been consumed by the caller (handed to the kernel); nothing confirms delivery.
//!
//! Every way out of a connection, a server error, bad bytes, unanswered pings, a timeout
//! or [`Nats::connection_lost`], ends in one [`Event::Closed`] listing the tokens that were
//! not acknowledged, oldest first.

pub mod proto;

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;

use serde_json::Value;

use self::proto::{Op, Parsed, ProtoError};
use super::{Nack, Output};

/// The largest inbound message accepted. The only messages this client subscribes to are
/// PubAcks (under 200 bytes), so anything near this is a broken server.
pub const MAX_INBOUND_MSG: usize = 64 * 1024;

/// The server's `max_payload` when its INFO does not say (nats-server's default).
const DEFAULT_MAX_PAYLOAD: u64 = 1024 * 1024;

/// The subscription id of the reply inbox.
const INBOX_SID: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    UserPass { user: String, pass: String },
    Token(String),
}

#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// The publish subject, `{stream}` already expanded.
    pub subject: String,
    /// Wait for a PubAck per publish, and de-duplicate by message id.
    pub jetstream: bool,
    /// The caller will run TLS after INFO (a `tls://` URL or a `tls` table).
    pub tls: bool,
    pub auth: Auth,
    /// The client name the server shows in its monitoring.
    pub name: String,
    /// One subject token, unique per connection among all of the server's clients; the
    /// reply inbox is `_INBOX.<inbox_token>`. [`NatsOptions::new`] makes a random one.
    pub inbox_token: String,
    /// Publishes not yet acknowledged (JetStream) or not yet written (core) at once.
    pub max_in_flight: usize,
    pub ping_interval_ms: u64,
    /// PINGs left unanswered before the connection is declared dead.
    pub max_pings_out: u32,
    /// From `connected()` to the first PONG (the whole handshake, TLS included).
    pub handshake_timeout_ms: u64,
    /// A JetStream publish not acknowledged within this is reported as [`Nack::Timeout`].
    pub ack_timeout_ms: u64,
}

impl NatsOptions {
    pub fn new(subject: impl Into<String>, jetstream: bool) -> NatsOptions {
        NatsOptions {
            subject: subject.into(),
            jetstream,
            tls: false,
            auth: Auth::None,
            name: "logwisp".into(),
            inbox_token: random_token(),
            max_in_flight: 1024,
            ping_interval_ms: 30_000,
            max_pings_out: 2,
            handshake_timeout_ms: 10_000,
            ack_timeout_ms: 10_000,
        }
    }
}

/// 22 characters from `[A-Za-z0-9]` (130 bits), the size of a nats.go NUID.
fn random_token() -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let (mut a, mut b) = (super::random_u64(), super::random_u64());
    (0..22)
        .map(|i| {
            let r = if i < 11 { &mut a } else { &mut b };
            let c = ALPHABET[(*r % 62) as usize];
            *r /= 62;
            c as char
        })
        .collect()
}

/// Why a subject cannot be published to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectError {
    Empty,
    EmptyToken,
    Wildcard,
    BadChar(char),
}

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectError::Empty => f.write_str("subject is empty"),
            SubjectError::EmptyToken => {
                f.write_str("subject has an empty token (\"..\" or a dot at an end)")
            }
            SubjectError::Wildcard => {
                f.write_str("a publish subject cannot hold the wildcards * or >")
            }
            SubjectError::BadChar(c) => {
                write!(f, "subject holds {c:?} (no spaces or control characters)")
            }
        }
    }
}

/// Checks a publish subject: dot-separated non-empty tokens, no wildcards, no whitespace
/// or control characters (they would split the protocol line).
pub fn validate_subject(subject: &str) -> Result<(), SubjectError> {
    if subject.is_empty() {
        return Err(SubjectError::Empty);
    }
    if let Some(c) = subject
        .chars()
        .find(|c| c.is_whitespace() || c.is_control())
    {
        return Err(SubjectError::BadChar(c));
    }
    if subject.contains(['*', '>']) {
        return Err(SubjectError::Wildcard);
    }
    if subject.split('.').any(str::is_empty) {
        return Err(SubjectError::EmptyToken);
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionsError {
    Subject(SubjectError),
    /// The inbox token must be one subject token of `[A-Za-z0-9_-]`.
    InboxToken,
    /// The client name is empty or holds control characters.
    Name,
    Credentials,
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::Subject(e) => write!(f, "subject: {e}"),
            OptionsError::InboxToken => f.write_str("inbox token must be non-empty [A-Za-z0-9_-]"),
            OptionsError::Name => f.write_str("client name must be non-empty printable text"),
            OptionsError::Credentials => {
                f.write_str("credentials must not hold control characters")
            }
        }
    }
}

/// What the server said about itself in INFO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub max_payload: u64,
    pub headers: bool,
    pub jetstream: bool,
    pub auth_required: bool,
    pub tls_required: bool,
    pub tls_available: bool,
    /// A challenge for NKEY/JWT authentication, which this client does not do.
    pub nonce: Option<String>,
    /// Other servers of the cluster (`host:port`), to try after this one.
    pub connect_urls: Vec<String>,
    /// The server is shutting down gracefully: reconnect elsewhere soon.
    pub lame_duck_mode: bool,
}

impl ServerInfo {
    fn parse(json: &[u8]) -> Result<ServerInfo, String> {
        let v: Value =
            serde_json::from_slice(json).map_err(|e| format!("INFO is not JSON: {e}"))?;
        if !v.is_object() {
            return Err("INFO is not a JSON object".into());
        }
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
        Ok(ServerInfo {
            server_id: text("server_id"),
            server_name: text("server_name"),
            version: text("version"),
            max_payload: v
                .get("max_payload")
                .and_then(Value::as_u64)
                .filter(|&n| n > 0)
                .unwrap_or(DEFAULT_MAX_PAYLOAD),
            headers: flag("headers"),
            jetstream: flag("jetstream"),
            auth_required: flag("auth_required"),
            tls_required: flag("tls_required"),
            tls_available: flag("tls_available"),
            nonce: v.get("nonce").and_then(Value::as_str).map(str::to_owned),
            connect_urls: v
                .get("connect_urls")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            lame_duck_mode: flag("ldm"),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No transport: before the first `connected()`.
    Idle,
    WaitingInfo,
    /// INFO seen; the caller runs the TLS handshake and then calls `tls_ready()`.
    WaitingTls,
    /// CONNECT and PING sent; the first PONG completes the handshake.
    WaitingPong,
    Connected,
    /// The connection is over; `connected()` starts the next one.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// A fatal `-ERR` (e.g. `Authorization Violation`, `Maximum Payload Violation`).
    Server(String),
    /// The server's bytes broke the protocol.
    Protocol(String),
    /// `max_pings_out` PINGs went unanswered.
    Stale,
    HandshakeTimeout,
    /// The server requires TLS and the sink has none.
    TlsRequired,
    /// The sink wants TLS and the server offers none.
    TlsUnavailable,
    /// JetStream needs message headers and the server does not support them.
    NoHeaders,
    /// The caller saw the socket fail or close.
    TransportLost,
    /// The caller asked.
    Requested,
}

impl CloseReason {
    /// Wrong or missing credentials: worth reporting louder than a network blip.
    pub fn is_auth(&self) -> bool {
        matches!(self, CloseReason::Server(m) if m.to_ascii_lowercase().contains("authorization"))
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Server(m) => write!(f, "server error: {m}"),
            CloseReason::Protocol(m) => write!(f, "protocol error: {m}"),
            CloseReason::Stale => f.write_str("stale connection: pings unanswered"),
            CloseReason::HandshakeTimeout => f.write_str("handshake timed out"),
            CloseReason::TlsRequired => f.write_str("server requires TLS"),
            CloseReason::TlsUnavailable => f.write_str("TLS wanted but the server offers none"),
            CloseReason::NoHeaders => {
                f.write_str("server does not support headers (needed for JetStream)")
            }
            CloseReason::TransportLost => f.write_str("connection lost"),
            CloseReason::Requested => f.write_str("closed"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Run the TLS handshake on the socket, then call [`Nats::tls_ready`].
    StartTls,
    /// The handshake is complete; publishing may start.
    Connected(ServerInfo),
    /// A later INFO: new cluster URLs, or lame duck mode.
    ServerInfo(ServerInfo),
    /// JetStream stored the message (or already had its id: `duplicate`); in core mode,
    /// its bytes were consumed by the caller.
    Acked { token: u64, duplicate: bool },
    /// JetStream refused the message or did not answer in time; republish it later.
    Nacked { token: u64, reason: Nack },
    /// A non-fatal `-ERR` (a permissions violation); the connection stays up.
    ServerError(String),
    Closed {
        reason: CloseReason,
        unacked: Vec<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// Not in the Connected state.
    NotConnected,
    /// `max_in_flight` publishes are outstanding.
    Full,
    /// Headers and payload exceed the server's `max_payload`: this entry can never be sent.
    TooLarge { size: u64, max: u64 },
    /// The message id is empty or holds characters a header value cannot.
    BadMsgId,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::NotConnected => f.write_str("not connected"),
            PublishError::Full => f.write_str("in-flight window full"),
            PublishError::TooLarge { size, max } => {
                write!(
                    f,
                    "message of {size} bytes is over the server's max_payload {max}"
                )
            }
            PublishError::BadMsgId => f.write_str("message id must be non-empty printable ASCII"),
        }
    }
}

#[derive(Debug)]
struct InFlight {
    /// JetStream: the reply inbox sequence. Core: the output offset where the message ends.
    key: u64,
    token: u64,
    sent_ms: u64,
}

#[derive(Debug)]
pub struct Nats {
    opts: NatsOptions,
    state: State,
    info: ServerInfo,
    input: Vec<u8>,
    /// What the parser last said it lacks (see `Parsed::Partial`): the end of a control
    /// line (`None`) or this many bytes of input.
    need: Option<usize>,
    output: Output,
    in_flight: VecDeque<InFlight>,
    next_seq: u64,
    events: VecDeque<Event>,
    handshake_deadline: u64,
    next_ping_ms: u64,
    pings_out: u32,
    /// `_INBOX.<token>.`, the prefix of every reply subject.
    reply_prefix: String,
}

impl Nats {
    pub fn new(opts: NatsOptions) -> Result<Nats, OptionsError> {
        validate_subject(&opts.subject).map_err(OptionsError::Subject)?;
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !token_ok(&opts.inbox_token) {
            return Err(OptionsError::InboxToken);
        }
        if opts.name.is_empty() || opts.name.chars().any(char::is_control) {
            return Err(OptionsError::Name);
        }
        let creds: &[&str] = match &opts.auth {
            Auth::None => &[],
            Auth::UserPass { user, pass } => &[user, pass],
            Auth::Token(t) => &[t],
        };
        if creds.iter().any(|c| c.chars().any(char::is_control)) {
            return Err(OptionsError::Credentials);
        }
        Ok(Nats {
            reply_prefix: format!("_INBOX.{}.", opts.inbox_token),
            opts,
            state: State::Idle,
            info: ServerInfo::default(),
            input: Vec::new(),
            need: Some(0),
            output: Output::default(),
            in_flight: VecDeque::new(),
            next_seq: 1,
            events: VecDeque::new(),
            handshake_deadline: 0,
            next_ping_ms: 0,
            pings_out: 0,
        })
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The last INFO of this connection.
    pub fn server_info(&self) -> &ServerInfo {
        &self.info
    }

    /// The transport (TCP) is up: start a connection, forgetting anything of the last one.
    pub fn connected(&mut self, now_ms: u64) {
        // A caller that skipped connection_lost() still gets its unacked tokens.
        self.shut(CloseReason::TransportLost);
        self.input.clear();
        self.need = Some(0);
        self.output.clear();
        self.in_flight.clear();
        self.info = ServerInfo::default();
        self.pings_out = 0;
        self.handshake_deadline = now_ms.saturating_add(self.opts.handshake_timeout_ms);
        self.state = State::WaitingInfo;
    }

    /// The TLS handshake the engine asked for is done.
    pub fn tls_ready(&mut self, _now_ms: u64) {
        if self.state == State::WaitingTls {
            self.send_connect();
        }
    }

    /// The socket failed or reached EOF.
    pub fn connection_lost(&mut self) {
        self.shut(CloseReason::TransportLost);
    }

    /// Ends the connection now; the caller then shuts the socket. For a clean stop, stop
    /// publishing and wait until [`Nats::in_flight`] is 0 (or a deadline) first.
    pub fn close(&mut self) {
        self.shut(CloseReason::Requested);
    }

    /// Bytes to write to the socket.
    pub fn output(&self) -> &[u8] {
        self.output.pending()
    }

    pub fn wants_write(&self) -> bool {
        self.output.len() > 0
    }

    /// `n` bytes of [`Nats::output`] were written. In core mode this acks the publishes
    /// whose bytes are now all written.
    pub fn consume_output(&mut self, n: usize) {
        self.output.consume(n);
        if !self.opts.jetstream {
            while let Some(f) = self.in_flight.front() {
                if f.key > self.output.consumed_total {
                    break;
                }
                let token = f.token;
                self.in_flight.pop_front();
                self.events.push_back(Event::Acked {
                    token,
                    duplicate: false,
                });
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Tokens published on this connection and not yet acknowledged, oldest first.
    pub fn unacked(&self) -> impl Iterator<Item = u64> + '_ {
        self.in_flight.iter().map(|f| f.token)
    }

    /// Bytes held for an operation that has not fully arrived (bounded by the limits on
    /// control lines and messages).
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Room for another publish right now.
    pub fn can_publish(&self) -> bool {
        self.state == State::Connected && self.in_flight.len() < self.opts.max_in_flight
    }

    /// Queues one entry: `HPUB subject [reply] hdr_len total_len` with the header
    /// `Nats-Msg-Id: msg_id` and the entry JSON as payload.
    pub fn publish(
        &mut self,
        token: u64,
        msg_id: &str,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<(), PublishError> {
        if self.state != State::Connected {
            return Err(PublishError::NotConnected);
        }
        if self.in_flight.len() >= self.opts.max_in_flight {
            return Err(PublishError::Full);
        }
        if msg_id.is_empty() || !msg_id.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(PublishError::BadMsgId);
        }
        let headers = self.info.headers;
        // Core NATS on a server without headers still works, just without the id.
        let header_len = if headers {
            "NATS/1.0\r\nNats-Msg-Id: \r\n\r\n".len() + msg_id.len()
        } else {
            0
        };
        let size = (header_len + payload.len()) as u64;
        if size > self.info.max_payload {
            return Err(PublishError::TooLarge {
                size,
                max: self.info.max_payload,
            });
        }
        let out = &mut self.output.buf;
        let seq = self.next_seq;
        let reply = self.opts.jetstream.then_some(seq);
        // Writes into a Vec cannot fail.
        let _ = match (headers, reply) {
            (true, Some(seq)) => write!(
                out,
                "HPUB {} {}{seq} {header_len} {size}\r\nNATS/1.0\r\nNats-Msg-Id: {msg_id}\r\n\r\n",
                self.opts.subject, self.reply_prefix
            ),
            (true, None) => write!(
                out,
                "HPUB {} {header_len} {size}\r\nNATS/1.0\r\nNats-Msg-Id: {msg_id}\r\n\r\n",
                self.opts.subject
            ),
            (false, _) => write!(out, "PUB {} {size}\r\n", self.opts.subject),
        };
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        let key = match reply {
            Some(seq) => {
                self.next_seq += 1;
                seq
            }
            None => self.output.queued_total(),
        };
        self.in_flight.push_back(InFlight {
            key,
            token,
            sent_ms: now_ms,
        });
        Ok(())
    }

    /// Keep-alive, handshake and ack deadlines. Call at [`Nats::next_deadline`] (calling
    /// more often is harmless).
    pub fn on_tick(&mut self, now_ms: u64) {
        match self.state {
            State::WaitingInfo | State::WaitingTls | State::WaitingPong => {
                if now_ms >= self.handshake_deadline {
                    self.shut(CloseReason::HandshakeTimeout);
                }
            }
            State::Connected => {
                if now_ms >= self.next_ping_ms {
                    if self.pings_out >= self.opts.max_pings_out {
                        self.shut(CloseReason::Stale);
                        return;
                    }
                    self.pings_out += 1;
                    self.output.buf.extend_from_slice(b"PING\r\n");
                    self.next_ping_ms = now_ms.saturating_add(self.opts.ping_interval_ms);
                }
                if self.opts.jetstream {
                    while let Some(f) = self.in_flight.front() {
                        if now_ms < f.sent_ms.saturating_add(self.opts.ack_timeout_ms) {
                            break;
                        }
                        let token = f.token;
                        self.in_flight.pop_front();
                        self.events.push_back(Event::Nacked {
                            token,
                            reason: Nack::Timeout,
                        });
                    }
                }
            }
            State::Idle | State::Closed => {}
        }
    }

    /// When `on_tick` next has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        match self.state {
            State::WaitingInfo | State::WaitingTls | State::WaitingPong => {
                Some(self.handshake_deadline)
            }
            State::Connected => {
                let ack = self
                    .in_flight
                    .front()
                    .filter(|_| self.opts.jetstream)
                    .map(|f| f.sent_ms.saturating_add(self.opts.ack_timeout_ms));
                Some(ack.map_or(self.next_ping_ms, |a| a.min(self.next_ping_ms)))
            }
            State::Idle | State::Closed => None,
        }
    }

    /// Feeds bytes read from the socket (after TLS, if any). All of `input` is taken;
    /// what does not yet make a whole operation is kept.
    pub fn on_bytes(&mut self, input: &[u8], now_ms: u64) {
        if matches!(self.state, State::Idle | State::Closed) {
            return;
        }
        if self.state == State::WaitingTls {
            if !input.is_empty() {
                self.shut(CloseReason::Protocol(
                    "data before the TLS handshake".into(),
                ));
            }
            return;
        }
        // An unfinished control line only needs the new bytes searched for its end, so a
        // long INFO trickling in byte by byte is not rescanned from the start each time.
        self.input.extend_from_slice(input);
        let wait = match self.need {
            None => !input.contains(&b'\n') && self.input.len() <= proto::MAX_CONTROL_LINE,
            Some(n) => self.input.len() < n,
        };
        if wait {
            return;
        }
        let mut used = 0;
        let mut input = std::mem::take(&mut self.input);
        while !matches!(self.state, State::Closed | State::WaitingTls) {
            match proto::parse(&input[used..], MAX_INBOUND_MSG) {
                Ok(Parsed::Op(op, n)) => {
                    used += n;
                    self.handle(op, now_ms);
                }
                Ok(Parsed::Partial { need }) => {
                    self.need = need;
                    break;
                }
                Err(e) => {
                    self.protocol_error(e);
                    break;
                }
            }
        }
        if self.state == State::WaitingTls && used < input.len() {
            self.shut(CloseReason::Protocol(
                "data before the TLS handshake".into(),
            ));
        }
        if matches!(self.state, State::Closed) {
            return;
        }
        input.drain(..used);
        self.input = input;
    }

    fn protocol_error(&mut self, e: ProtoError) {
        self.shut(CloseReason::Protocol(e.to_string()));
    }

    fn handle(&mut self, op: Op<'_>, now_ms: u64) {
        match op {
            Op::Ping => self.output.buf.extend_from_slice(b"PONG\r\n"),
            Op::Pong => {
                if self.state == State::WaitingPong {
                    self.state = State::Connected;
                    self.next_ping_ms = now_ms.saturating_add(self.opts.ping_interval_ms);
                    self.events.push_back(Event::Connected(self.info.clone()));
                } else {
                    self.pings_out = self.pings_out.saturating_sub(1);
                }
            }
            Op::Ok => {}
            Op::Err(text) => {
                let lower = text.to_ascii_lowercase();
                // The server keeps the connection after these two (nats.go agrees).
                if lower.starts_with("permissions violation") || lower.starts_with("invalid") {
                    self.events.push_back(Event::ServerError(text.to_owned()));
                } else {
                    self.shut(CloseReason::Server(text.to_owned()));
                }
            }
            Op::Info(json) => self.on_info(json),
            Op::Msg {
                subject,
                sid,
                headers,
                payload,
                ..
            } => {
                if self.state != State::Connected {
                    self.shut(CloseReason::Protocol("message before the handshake".into()));
                } else if sid == INBOX_SID && self.opts.jetstream {
                    self.on_reply(subject, headers, payload);
                }
            }
        }
    }

    fn on_info(&mut self, json: &[u8]) {
        let info = match ServerInfo::parse(json) {
            Ok(info) => info,
            Err(e) => return self.shut(CloseReason::Protocol(e)),
        };
        let first = self.state == State::WaitingInfo;
        self.info = info;
        if !first {
            self.events.push_back(Event::ServerInfo(self.info.clone()));
            return;
        }
        if self.opts.jetstream && !self.info.headers {
            return self.shut(CloseReason::NoHeaders);
        }
        if self.opts.tls {
            if !(self.info.tls_required || self.info.tls_available) {
                return self.shut(CloseReason::TlsUnavailable);
            }
            self.state = State::WaitingTls;
            self.events.push_back(Event::StartTls);
        } else if self.info.tls_required {
            self.shut(CloseReason::TlsRequired);
        } else {
            self.send_connect();
        }
    }

    fn send_connect(&mut self) {
        let mut c = serde_json::json!({
            "verbose": false,
            "pedantic": false,
            "tls_required": self.opts.tls,
            "name": self.opts.name,
            "lang": "rust-logwisp",
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": 1,
            "echo": false,
            "headers": self.info.headers,
            "no_responders": self.info.headers,
        });
        match &self.opts.auth {
            Auth::None => {}
            Auth::UserPass { user, pass } => {
                c["user"] = user.as_str().into();
                c["pass"] = pass.as_str().into();
            }
            Auth::Token(t) => c["auth_token"] = t.as_str().into(),
        }
        let out = &mut self.output.buf;
        out.extend_from_slice(b"CONNECT ");
        out.extend_from_slice(c.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        if self.opts.jetstream {
            let _ = write!(out, "SUB {}* {INBOX_SID}\r\n", self.reply_prefix);
        }
        out.extend_from_slice(b"PING\r\n");
        self.state = State::WaitingPong;
    }

    fn on_reply(&mut self, subject: &str, headers: Option<&[u8]>, payload: &[u8]) {
        let Some(seq) = subject
            .strip_prefix(self.reply_prefix.as_str())
            .and_then(|s| s.parse::<u64>().ok())
        else {
            return;
        };
        // Acks come in publish order, so this finds the front almost always.
        let Some(i) = self.in_flight.iter().position(|f| f.key == seq) else {
            // Late: already reported as timed out.
            return;
        };
        let token = self.in_flight[i].token;
        self.in_flight.remove(i);
        let status = headers.and_then(proto::header_status);
        let event = match status {
            Some((503, _)) => Event::Nacked {
                token,
                reason: Nack::NoResponders,
            },
            Some((code, text)) if payload.is_empty() => Event::Nacked {
                token,
                reason: Nack::JetStream {
                    code,
                    description: text.to_owned(),
                },
            },
            _ => pub_ack(token, payload),
        };
        self.events.push_back(event);
    }

    fn shut(&mut self, reason: CloseReason) {
        if matches!(self.state, State::Idle | State::Closed) {
            return;
        }
        self.state = State::Closed;
        let unacked = self.in_flight.drain(..).map(|f| f.token).collect();
        self.output.clear();
        self.input = Vec::new();
        self.need = Some(0);
        self.events.push_back(Event::Closed { reason, unacked });
    }
}

/// A JetStream PubAck: `{"stream":"S","seq":N,"duplicate":true}` or
/// `{"error":{"code":503,"err_code":10077,"description":"..."}}`.
fn pub_ack(token: u64, payload: &[u8]) -> Event {
    let nack = |reason| Event::Nacked { token, reason };
    let v: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => return nack(Nack::BadReply(format!("not JSON: {e}"))),
    };
    if let Some(err) = v.get("error") {
        let code = err.get("code").and_then(Value::as_u64).unwrap_or(0);
        return nack(Nack::JetStream {
            code: u16::try_from(code).unwrap_or(0),
            description: err
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        });
    }
    if v.get("stream").and_then(Value::as_str).is_none()
        || v.get("seq").and_then(Value::as_u64).is_none()
    {
        return nack(Nack::BadReply("no stream and seq".into()));
    }
    Event::Acked {
        token,
        duplicate: v.get("duplicate").and_then(Value::as_bool).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests;
