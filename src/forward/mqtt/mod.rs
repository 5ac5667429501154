//! An MQTT 3.1.1 client engine for one sink: CONNECT, PUBLISH at QoS 1 with packet ids,
//! PUBACK, keep-alive and DISCONNECT.
//!
//! ```text
//! Idle ──connected()──▶ WaitingConnAck ──CONNACK 0──▶ Connected ──any failure──▶ Closed
//!   ▲                                                                              │
//!   └──────────────────────────── connected() again ◀──────────────────────────────┘
//! ```
//!
//! Clean session is always set. For a client that only publishes at QoS 1 a persistent
//! session buys nothing: the broker keeps no state for an inbound QoS 1 message once it
//! has sent PUBACK, so a message whose PUBACK was lost is sent again either way, and a
//! broker that kept the session would only hold it (and fight over the client id) while
//! logwisp is away. Instead, as with NATS, every connection ends in one
//! [`Event::Closed`] listing the unacknowledged tokens, and the caller republishes from
//! its checkpoint on the next connection. Subscribers therefore see at-least-once
//! delivery, in order, with possible repeats after a reconnect.
//!
//! MQTT 3.1.1 does not resend on a live connection, so a PUBACK that does not come within
//! the ack timeout means the connection is broken: the engine closes it.

pub mod codec;

use std::collections::VecDeque;
use std::fmt;

use self::codec::{Connect, DecodeError, Decoded, Packet};
use super::Output;

/// The largest packet accepted from the server. The sink subscribes to nothing, so what
/// it receives is acks of a few bytes; anything near this is a broken server.
pub const MAX_INBOUND_PACKET: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct MqttOptions {
    /// At most 23 bytes of `[0-9A-Za-z]` is all a broker must accept (MQTT-3.1.3-5);
    /// mosquitto and most others take longer ids and `-`. See [`default_client_id`].
    pub client_id: String,
    /// The topic, `{stream}` already expanded.
    pub topic: String,
    pub username: Option<String>,
    /// Only with a username (MQTT 3.1.1 forbids a password alone).
    pub password: Option<String>,
    /// 0 turns keep-alive off.
    pub keep_alive_secs: u16,
    /// Unacknowledged publishes at once, at most 65 535 (the packet id space).
    pub max_in_flight: usize,
    /// From `connected()` to CONNACK.
    pub connect_timeout_ms: u64,
    /// A PUBACK not received within this closes the connection.
    pub ack_timeout_ms: u64,
}

impl MqttOptions {
    pub fn new(client_id: impl Into<String>, topic: impl Into<String>) -> MqttOptions {
        MqttOptions {
            client_id: client_id.into(),
            topic: topic.into(),
            username: None,
            password: None,
            keep_alive_secs: 30,
            max_in_flight: 1024,
            connect_timeout_ms: 10_000,
            ack_timeout_ms: 30_000,
        }
    }
}

/// `logwisp-<host>-<stream>`, with anything outside `[A-Za-z0-9_-]` turned into `-`.
/// Unique per machine and stream, and the same across restarts, which is what a broker's
/// per-client settings and logs want. Two sinks of one stream on one broker need their
/// own `client_id`, or the broker will disconnect one each time the other connects.
pub fn default_client_id(host: &str, stream: &str) -> String {
    format!("logwisp-{host}-{stream}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicError {
    Empty,
    TooLong,
    /// `+` or `#`: only subscriptions may use them.
    Wildcard,
    /// A NUL character.
    Nul,
    /// Topics starting with `$` belong to the broker (`$SYS`).
    Reserved,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Empty => f.write_str("topic is empty"),
            TopicError::TooLong => f.write_str("topic is over 65535 bytes"),
            TopicError::Wildcard => f.write_str("a publish topic cannot hold the wildcards + or #"),
            TopicError::Nul => f.write_str("topic holds a NUL character"),
            TopicError::Reserved => f.write_str("topics starting with $ are the broker's"),
        }
    }
}

pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        Err(TopicError::Empty)
    } else if topic.len() > usize::from(u16::MAX) {
        Err(TopicError::TooLong)
    } else if topic.contains(['+', '#']) {
        Err(TopicError::Wildcard)
    } else if topic.contains('\0') {
        Err(TopicError::Nul)
    } else if topic.starts_with('$') {
        Err(TopicError::Reserved)
    } else {
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionsError {
    Topic(TopicError),
    /// Empty, over 65 535 bytes, or holding NUL.
    ClientId,
    PasswordWithoutUser,
    /// A username or password over 65 535 bytes.
    CredentialsTooLong,
    MaxInFlight,
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::Topic(e) => write!(f, "topic: {e}"),
            OptionsError::ClientId => f.write_str("client id must be 1 to 65535 bytes without NUL"),
            OptionsError::PasswordWithoutUser => {
                f.write_str("MQTT 3.1.1 needs a username with a password")
            }
            OptionsError::CredentialsTooLong => {
                f.write_str("username or password over 65535 bytes")
            }
            OptionsError::MaxInFlight => f.write_str("max_in_flight must be 1 to 65535"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    /// CONNECT sent.
    WaitingConnAck,
    Connected,
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// CONNACK refused the connection with this return code.
    Refused(u8),
    Protocol(String),
    /// No PINGRESP within a keep-alive period after PINGREQ.
    Stale,
    HandshakeTimeout,
    AckTimeout,
    TransportLost,
    Requested,
}

impl CloseReason {
    /// Wrong or missing credentials (CONNACK 4 or 5).
    pub fn is_auth(&self) -> bool {
        matches!(self, CloseReason::Refused(4 | 5))
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Refused(code) => {
                let why = match code {
                    1 => "unacceptable protocol version",
                    2 => "client identifier rejected",
                    3 => "server unavailable",
                    4 => "bad user name or password",
                    5 => "not authorized",
                    _ => "unknown reason",
                };
                write!(f, "connection refused ({code}): {why}")
            }
            CloseReason::Protocol(m) => write!(f, "protocol error: {m}"),
            CloseReason::Stale => f.write_str("stale connection: no PINGRESP"),
            CloseReason::HandshakeTimeout => f.write_str("no CONNACK before the timeout"),
            CloseReason::AckTimeout => f.write_str("no PUBACK before the timeout"),
            CloseReason::TransportLost => f.write_str("connection lost"),
            CloseReason::Requested => f.write_str("closed"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// CONNACK accepted the connection; publishing may start.
    Connected {
        session_present: bool,
    },
    Acked {
        token: u64,
    },
    Closed {
        reason: CloseReason,
        unacked: Vec<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    NotConnected,
    Full,
    /// Over MQTT's packet size limit: this entry can never be sent.
    TooLarge {
        size: usize,
        max: usize,
    },
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::NotConnected => f.write_str("not connected"),
            PublishError::Full => f.write_str("in-flight window full"),
            PublishError::TooLarge { size, max } => {
                write!(f, "packet of {size} bytes is over {max}")
            }
        }
    }
}

#[derive(Debug)]
struct InFlight {
    id: u16,
    token: u64,
    sent_ms: u64,
}

/// Which of the 65 535 packet ids are in flight: one bit each, 8 KiB.
#[derive(Debug)]
struct IdSet(Vec<u64>);

impl IdSet {
    fn new() -> IdSet {
        IdSet(vec![0; 1024])
    }
    fn contains(&self, id: u16) -> bool {
        self.0[usize::from(id / 64)] & (1 << (id % 64)) != 0
    }
    fn set(&mut self, id: u16, on: bool) {
        let word = &mut self.0[usize::from(id / 64)];
        if on {
            *word |= 1 << (id % 64);
        } else {
            *word &= !(1 << (id % 64));
        }
    }
    fn clear(&mut self) {
        self.0.fill(0);
    }
}

#[derive(Debug)]
pub struct Mqtt {
    opts: MqttOptions,
    state: State,
    input: Vec<u8>,
    /// Decode again once the input is this long.
    need: usize,
    output: Output,
    in_flight: VecDeque<InFlight>,
    ids: IdSet,
    next_id: u16,
    events: VecDeque<Event>,
    connect_deadline: u64,
    last_sent_ms: u64,
    /// When the outstanding PINGREQ was sent.
    ping_sent_ms: Option<u64>,
}

impl Mqtt {
    pub fn new(opts: MqttOptions) -> Result<Mqtt, OptionsError> {
        validate_topic(&opts.topic).map_err(OptionsError::Topic)?;
        let max = usize::from(u16::MAX);
        if opts.client_id.is_empty() || opts.client_id.len() > max || opts.client_id.contains('\0')
        {
            return Err(OptionsError::ClientId);
        }
        if opts.password.is_some() && opts.username.is_none() {
            return Err(OptionsError::PasswordWithoutUser);
        }
        if [&opts.username, &opts.password]
            .iter()
            .any(|c| c.as_ref().is_some_and(|c| c.len() > max))
        {
            return Err(OptionsError::CredentialsTooLong);
        }
        if opts.max_in_flight == 0 || opts.max_in_flight > max {
            return Err(OptionsError::MaxInFlight);
        }
        Ok(Mqtt {
            opts,
            state: State::Idle,
            input: Vec::new(),
            need: 0,
            output: Output::default(),
            in_flight: VecDeque::new(),
            ids: IdSet::new(),
            next_id: 1,
            events: VecDeque::new(),
            connect_deadline: 0,
            last_sent_ms: 0,
            ping_sent_ms: None,
        })
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The transport (TCP, or TLS for `mqtts://`) is up: send CONNECT.
    pub fn connected(&mut self, now_ms: u64) {
        // A caller that skipped connection_lost() still gets its unacked tokens.
        self.shut(CloseReason::TransportLost);
        self.input.clear();
        self.need = 0;
        self.output.clear();
        self.ping_sent_ms = None;
        self.connect_deadline = now_ms.saturating_add(self.opts.connect_timeout_ms);
        let o = &self.opts;
        codec::encode_connect(
            &mut self.output.buf,
            &Connect {
                client_id: &o.client_id,
                clean_session: true,
                keep_alive_secs: o.keep_alive_secs,
                username: o.username.as_deref(),
                password: o.password.as_deref().map(str::as_bytes),
            },
        );
        self.last_sent_ms = now_ms;
        self.state = State::WaitingConnAck;
    }

    /// The socket failed or reached EOF.
    pub fn connection_lost(&mut self) {
        self.shut(CloseReason::TransportLost);
    }

    /// Queues DISCONNECT and ends the connection: write out [`Mqtt::output`] (best
    /// effort), then shut the socket. For a clean stop, stop publishing and wait until
    /// [`Mqtt::in_flight`] is 0 (or a deadline) first.
    pub fn close(&mut self) {
        let was_connected = self.state == State::Connected;
        self.shut(CloseReason::Requested);
        if was_connected {
            codec::encode_disconnect(&mut self.output.buf);
        }
    }

    pub fn output(&self) -> &[u8] {
        self.output.pending()
    }

    pub fn wants_write(&self) -> bool {
        self.output.len() > 0
    }

    pub fn consume_output(&mut self, n: usize) {
        self.output.consume(n);
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

    pub fn can_publish(&self) -> bool {
        self.state == State::Connected && self.in_flight.len() < self.opts.max_in_flight
    }

    /// Queues a QoS 1 PUBLISH of `payload` to the topic.
    pub fn publish(&mut self, token: u64, payload: &[u8], now_ms: u64) -> Result<(), PublishError> {
        if self.state != State::Connected {
            return Err(PublishError::NotConnected);
        }
        if self.in_flight.len() >= self.opts.max_in_flight {
            return Err(PublishError::Full);
        }
        let size = codec::publish_len(&self.opts.topic, true, payload.len());
        if size > codec::MAX_REMAINING_LENGTH {
            return Err(PublishError::TooLarge {
                size,
                max: codec::MAX_REMAINING_LENGTH,
            });
        }
        let id = self.allocate_id();
        codec::encode_publish(
            &mut self.output.buf,
            &self.opts.topic,
            Some(id),
            false,
            payload,
        );
        self.ids.set(id, true);
        self.in_flight.push_back(InFlight {
            id,
            token,
            sent_ms: now_ms,
        });
        self.last_sent_ms = now_ms;
        Ok(())
    }

    /// The next id after the last one handed out that is not in flight: 1..=65535, never 0.
    /// The window is at most 65 535, and full windows are refused, so one is free.
    fn allocate_id(&mut self) -> u16 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self.ids.contains(id) {
                return id;
            }
        }
    }

    pub fn on_tick(&mut self, now_ms: u64) {
        match self.state {
            State::WaitingConnAck => {
                if now_ms >= self.connect_deadline {
                    self.shut(CloseReason::HandshakeTimeout);
                }
            }
            State::Connected => {
                if self
                    .in_flight
                    .front()
                    .is_some_and(|f| now_ms >= f.sent_ms.saturating_add(self.opts.ack_timeout_ms))
                {
                    return self.shut(CloseReason::AckTimeout);
                }
                let keep_alive = u64::from(self.opts.keep_alive_secs) * 1000;
                if keep_alive == 0 {
                    return;
                }
                match self.ping_sent_ms {
                    Some(sent) if now_ms >= sent.saturating_add(keep_alive) => {
                        self.shut(CloseReason::Stale)
                    }
                    Some(_) => {}
                    None if now_ms >= self.last_sent_ms.saturating_add(keep_alive) => {
                        codec::encode_pingreq(&mut self.output.buf);
                        self.ping_sent_ms = Some(now_ms);
                        self.last_sent_ms = now_ms;
                    }
                    None => {}
                }
            }
            State::Idle | State::Closed => {}
        }
    }

    pub fn next_deadline(&self) -> Option<u64> {
        match self.state {
            State::WaitingConnAck => Some(self.connect_deadline),
            State::Connected => {
                let keep_alive = u64::from(self.opts.keep_alive_secs) * 1000;
                let ping = (keep_alive > 0).then(|| {
                    self.ping_sent_ms
                        .unwrap_or(self.last_sent_ms)
                        .saturating_add(keep_alive)
                });
                let ack = self
                    .in_flight
                    .front()
                    .map(|f| f.sent_ms.saturating_add(self.opts.ack_timeout_ms));
                match (ping, ack) {
                    (Some(p), Some(a)) => Some(p.min(a)),
                    (p, a) => p.or(a),
                }
            }
            State::Idle | State::Closed => None,
        }
    }

    /// Feeds bytes read from the socket; all of `input` is taken.
    pub fn on_bytes(&mut self, input: &[u8], now_ms: u64) {
        if !matches!(self.state, State::WaitingConnAck | State::Connected) {
            return;
        }
        self.input.extend_from_slice(input);
        if self.input.len() < self.need {
            return;
        }
        let mut used = 0;
        let input = std::mem::take(&mut self.input);
        while matches!(self.state, State::WaitingConnAck | State::Connected) {
            match codec::decode(&input[used..], MAX_INBOUND_PACKET) {
                Ok(Decoded::Packet(p, n)) => {
                    used += n;
                    self.handle(p, now_ms);
                }
                Ok(Decoded::Partial { need }) => {
                    self.need = need;
                    break;
                }
                Err(e) => self.protocol_error(&e),
            }
        }
        if self.state != State::Closed {
            self.input = input;
            self.input.drain(..used);
        }
    }

    fn protocol_error(&mut self, e: &DecodeError) {
        self.shut(CloseReason::Protocol(e.to_string()));
    }

    fn handle(&mut self, p: Packet<'_>, now_ms: u64) {
        if self.state == State::WaitingConnAck {
            return match p {
                Packet::ConnAck {
                    code: 0,
                    session_present,
                } => {
                    self.state = State::Connected;
                    self.events.push_back(Event::Connected { session_present });
                }
                Packet::ConnAck { code, .. } => self.shut(CloseReason::Refused(code)),
                _ => self.shut(CloseReason::Protocol("first packet is not CONNACK".into())),
            };
        }
        match p {
            Packet::ConnAck { .. } => self.shut(CloseReason::Protocol("second CONNACK".into())),
            Packet::PubAck(id) => {
                // In order almost always, so this finds the front.
                if let Some(i) = self.in_flight.iter().position(|f| f.id == id) {
                    let token = self.in_flight[i].token;
                    self.in_flight.remove(i);
                    self.ids.set(id, false);
                    self.events.push_back(Event::Acked { token });
                }
            }
            Packet::PingResp => self.ping_sent_ms = None,
            // The sink subscribes to nothing, but a broker may still deliver (a bridge, a
            // misconfigured ACL): acknowledge by the book and drop the message.
            Packet::Publish {
                qos: 1,
                packet_id: Some(id),
                ..
            } => {
                codec::encode_puback(&mut self.output.buf, id);
                self.last_sent_ms = now_ms;
            }
            Packet::Publish {
                qos: 2,
                packet_id: Some(id),
                ..
            } => {
                codec::encode_pubrec(&mut self.output.buf, id);
                self.last_sent_ms = now_ms;
            }
            Packet::PubRel(id) => {
                codec::encode_pubcomp(&mut self.output.buf, id);
                self.last_sent_ms = now_ms;
            }
            Packet::Publish { .. }
            | Packet::PubRec(_)
            | Packet::PubComp(_)
            | Packet::SubAck { .. }
            | Packet::UnsubAck(_) => {}
        }
    }

    fn shut(&mut self, reason: CloseReason) {
        if matches!(self.state, State::Idle | State::Closed) {
            return;
        }
        self.state = State::Closed;
        let unacked = self.in_flight.drain(..).map(|f| f.token).collect();
        self.ids.clear();
        self.output.clear();
        self.input = Vec::new();
        self.need = 0;
        self.events.push_back(Event::Closed { reason, unacked });
    }
}

#[cfg(test)]
mod tests;
