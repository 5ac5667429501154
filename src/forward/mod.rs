//! Forwarding to brokers (SPEC §16): client engines for NATS (core and JetStream) and
//! MQTT 3.1.1, and name resolution that works in the static binary.
//!
//! Every engine here owns no socket and reads no clock, in the manner of rustls and
//! quinn-proto: the reactor connects, then hands each engine the bytes it read and the
//! time, writes out what the engine has queued, and drains its events. So each engine is
//! tested byte for byte without a network, and no server input can block the reactor.
//!
//! The shared contract between a sink and its engine:
//! - A publish carries a caller `token` (e.g. a position in the stream). The engine reports
//!   each token exactly once, as acknowledged or refused, or lists it as unacknowledged
//!   when the connection closes. The caller's checkpoint advances only over tokens acked
//!   in order; after a close it republishes from its oldest unacknowledged entry.
//! - Input is accepted in pieces of any size; nothing a server sends makes an engine
//!   panic or grow without bound: bad input closes the connection with a reason.
//!
//! Driving an engine from the reactor, per sink:
//! 1. [`resolve::parse_url`] the configured URL(s); [`resolve::resolve`] the host (a
//!    [`resolve::dns::Lookup`] when DNS is needed); non-blocking connect to each address
//!    in turn.
//! 2. Once connected (`mqtts://`: after the TLS handshake), call `connected(now)`. NATS
//!    may then ask for TLS with `StartTls` (after its plain-text INFO): run the handshake
//!    and call `tls_ready(now)`.
//! 3. Each turn: feed what was read to `on_bytes(bytes, now)`; write `output()` and
//!    `consume_output(written)`; call `on_tick(now)` at `next_deadline()`; drain
//!    `poll_event()`. WRITABLE interest is `wants_write()`. EOF or a socket error is
//!    `connection_lost()`.
//! 4. Publish while `can_publish()`; `TooLarge` means the entry can never be sent (count
//!    it as dropped and move on), the other errors mean "later".
//! 5. On `Closed { unacked, .. }`: back off and reconnect (next URL, NATS `connect_urls`
//!    too), then republish from the oldest unacknowledged entry, in order, with the same
//!    message ids. JetStream drops the repeats (within the stream's duplicate window,
//!    two minutes by default); MQTT subscribers may see them twice.
//! 6. To stop cleanly: stop publishing, wait for `in_flight() == 0` or a deadline, then
//!    `close()`, write out what `output()` still holds (MQTT's DISCONNECT), shut.

pub mod mqtt;
pub mod nats;
pub mod resolve;
pub mod sink;

use std::hash::{BuildHasher, RandomState};

/// 64 unpredictable bits for inbox names and DNS query ids. `RandomState` is keyed from
/// the OS's random source once per thread, and every instance hashes differently, which is
/// all these uses need (they are not secrets); it spares a dependency.
pub fn random_u64() -> u64 {
    RandomState::new().hash_one("logwisp")
}

/// The message id of one entry: stream name, file identity (device, inode) and the byte
/// offset where the line starts. Unique per entry, and the same when the entry is read
/// again from disk after a restart or reconnect, which is what lets JetStream drop
/// repeats (`Nats-Msg-Id`). Stream names are `[A-Za-z0-9_-]`, so the id needs no escaping.
pub fn message_id(stream: &str, dev: u64, ino: u64, offset: u64) -> String {
    format!("{stream}:{dev:x}:{ino:x}:{offset}")
}

/// Replaces every `{stream}` in a subject or topic template.
pub fn expand_template(template: &str, stream: &str) -> String {
    template.replace("{stream}", stream)
}

/// What became of a published token, shared by both engines' events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nack {
    /// JetStream answered with an error (e.g. 503 "no responders", a stream limit).
    JetStream { code: u16, description: String },
    /// No JetStream stream listens on the subject (the server's 503 status reply).
    NoResponders,
    /// No answer within the ack timeout; the publish may or may not have been stored.
    Timeout,
    /// The reply could not be understood.
    BadReply(String),
}

impl std::fmt::Display for Nack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Nack::JetStream { code, description } => {
                write!(f, "jetstream error {code}: {description}")
            }
            Nack::NoResponders => {
                f.write_str("no responders: no JetStream stream listens on the subject")
            }
            Nack::Timeout => f.write_str("no acknowledgement before the timeout"),
            Nack::BadReply(why) => write!(f, "unreadable acknowledgement: {why}"),
        }
    }
}

/// A growable output buffer consumed from the front, as the reactor writes it out.
#[derive(Debug, Default)]
struct Output {
    buf: Vec<u8>,
    start: usize,
    /// Bytes ever consumed, so a publish can be matched to the moment it left.
    consumed_total: u64,
}

impl Output {
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Total bytes ever queued: the end offset of what was just appended.
    fn queued_total(&self) -> u64 {
        self.consumed_total + self.len() as u64
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.len());
        self.start += n;
        self.consumed_total += n as u64;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            // Shift only when the dead prefix dominates, so each byte moves O(1) times.
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    fn clear(&mut self) {
        let n = self.len();
        self.consumed_total += n as u64;
        self.buf.clear();
        self.start = 0;
    }
}
