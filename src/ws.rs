//! WebSocket (RFC 6455), server side, as an engine that owns no socket: the handshake is a
//! decision over request header values, frames to the client are written into the
//! caller's buffers, and frames from the client go through [`Decoder`], which takes bytes
//! split anywhere and gives back [`Event`]s.
//!
//! logwisp only sends on a WebSocket: client data frames are read and thrown away (still
//! checked for masking, fragmentation and size), client pings get pongs, and a close is
//! echoed. No extension or subprotocol is ever negotiated, so any RSV bit is an error.

use std::fmt;

/// RFC 6455 §1.3: appended to the client's key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only version there is (RFC 6455 §4.4); others get 426 naming it.
pub const VERSION: &str = "13";

/// Default cap on one client data message, all fragments together (1009 beyond). Clients
/// have nothing to tell logwisp, so this only bounds what a client can make it read.
pub const MAX_MESSAGE: u64 = 64 * 1024;

/// Largest control frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL: usize = 125;

/// Close codes logwisp sends (RFC 6455 §7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
/// Shutdown, or the stream was removed by a reload.
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

// ---------------------------------------------------------------------------------------
// Handshake

/// What a request head says about an upgrade, fed one header at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpgradeHeaders {
    upgrade_websocket: bool,
    connection_upgrade: bool,
    keys: u8,
    /// The key as sent (trimmed), when it has the shape of 16 bytes in base64.
    key: Option<[u8; 24]>,
    versions: u8,
    version_13: bool,
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// 16 bytes in base64 are 22 characters and `==`. Bits the last character carries past
/// the 128th are not checked, as lenient decoders (and so clients) do not.
fn parse_key(value: &[u8]) -> Option<[u8; 24]> {
    let key: [u8; 24] = value.try_into().ok()?;
    (key[..22].iter().all(|&b| is_base64(b)) && key[22..] == *b"==").then_some(key)
}

impl UpgradeHeaders {
    /// Takes one header field; names are matched case-insensitively and unrelated ones
    /// ignored. Repeated `Upgrade` and `Connection` fields add to their lists.
    pub fn header(&mut self, name: &str, value: &[u8]) {
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case("upgrade") {
            // The bare token: RFC 9110 also allows `websocket/13`, which no client sends.
            self.upgrade_websocket |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"websocket"));
        } else if name.eq_ignore_ascii_case("connection") {
            self.connection_upgrade |= tokens(value).any(|t| t.eq_ignore_ascii_case(b"upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            self.keys = self.keys.saturating_add(1);
            self.key = parse_key(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            self.versions = self.versions.saturating_add(1);
            self.version_13 = value == VERSION.as_bytes();
        }
    }

    /// Whether the client is trying to open a WebSocket. Any of the WebSocket headers
    /// counts, not only `Upgrade`: a proxy that drops `Upgrade` and `Connection` (nginx
    /// without `proxy_set_header Upgrade`) still forwards the key, and such a client is
    /// better told why than served an event stream it cannot read.
    pub fn requested(&self) -> bool {
        self.upgrade_websocket || self.keys > 0 || self.versions > 0
    }

    /// The answer to the request: `get` is whether the method is GET, `http10` whether
    /// the request is HTTP/1.0.
    pub fn decide(&self, get: bool, http10: bool) -> Handshake {
        if !self.requested() {
            return Handshake::NotRequested;
        }
        let refuse = |why| Handshake::Refuse(Refusal::BadRequest(why));
        // RFC 9110 §7.8 has servers ignore `Upgrade` on HTTP/1.0; with WebSocket headers
        // present that usually means a proxy speaking HTTP/1.0 upstream.
        if http10 {
            return refuse("a WebSocket handshake needs HTTP/1.1 (is a proxy downgrading it?)");
        }
        if !get {
            return refuse("a WebSocket handshake is a GET request");
        }
        if !self.upgrade_websocket {
            return refuse("WebSocket headers without \"Upgrade: websocket\"");
        }
        if !self.connection_upgrade {
            return refuse("\"Upgrade: websocket\" without \"Connection: Upgrade\"");
        }
        if self.versions == 0 {
            return refuse("missing Sec-WebSocket-Version");
        }
        if self.versions > 1 {
            return refuse("more than one Sec-WebSocket-Version");
        }
        if !self.version_13 {
            return Handshake::Refuse(Refusal::UnsupportedVersion);
        }
        match (self.keys, self.key) {
            (0, _) => refuse("missing Sec-WebSocket-Key"),
            (1, Some(key)) => Handshake::Accept(Accept::for_key(&key)),
            (1, None) => refuse("Sec-WebSocket-Key is not 16 bytes in base64"),
            _ => refuse("more than one Sec-WebSocket-Key"),
        }
    }
}

/// The verdict on a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// No WebSocket header at all: serve the request as plain HTTP.
    NotRequested,
    /// Write [`write_accept_head`], then the connection speaks WebSocket.
    Accept(Accept),
    /// Answer with an error response and close.
    Refuse(Refusal),
}

/// A `Sec-WebSocket-Accept` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept(pub [u8; 28]);

impl Accept {
    /// base64(SHA-1(key + GUID)), RFC 6455 §4.2.2. `key` is taken as sent, not decoded.
    pub fn for_key(key: &[u8]) -> Accept {
        let mut sha = sha1_smol::Sha1::new();
        sha.update(key);
        sha.update(GUID);
        Accept(base64_20(&sha.digest().bytes()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Padded standard base64 of a SHA-1 digest (28 characters).
fn base64_20(input: &[u8; 20]) -> [u8; 28] {
    use base64::Engine;
    let mut out = [b'='; 28];
    // 20 bytes always encode to exactly 28 characters, so the slice is never short.
    let _ = base64::engine::general_purpose::STANDARD.encode_slice(input, &mut out);
    out
}

/// Why a handshake is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    BadRequest(&'static str),
    /// A version other than 13: 426 with `Sec-WebSocket-Version: 13` (RFC 6455 §4.4).
    UnsupportedVersion,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::UnsupportedVersion => 426,
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            Refusal::BadRequest(why) => why,
            Refusal::UnsupportedVersion => "unsupported WebSocket version (only 13)",
        }
    }

    /// Headers the refusal must carry besides the usual ones.
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Refusal::BadRequest(_) => &[],
            Refusal::UnsupportedVersion => &[("Sec-WebSocket-Version", VERSION)],
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.detail())
    }
}

/// The `101 Switching Protocols` head. `date` is the `Date` value
/// ([`crate::timefmt::http_date`] of the reactor's turn).
pub fn write_accept_head(out: &mut Vec<u8>, date: &[u8; 29], accept: &Accept) {
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(
        b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept.as_bytes());
    out.extend_from_slice(b"\r\nServer: logwisp\r\n\r\n");
}

// ---------------------------------------------------------------------------------------
// Frames to the client: unmasked (RFC 6455 §5.1), never fragmented.

/// The head of a server frame: 2, 4 or 10 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    bytes: [u8; 10],
    len: u8,
}

impl FrameHead {
    fn new(opcode: u8, payload_len: u64) -> FrameHead {
        let mut bytes = [0u8; 10];
        bytes[0] = 0x80 | opcode;
        let len = if payload_len < 126 {
            bytes[1] = payload_len as u8;
            2
        } else if let Ok(n) = u16::try_from(payload_len) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&n.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&payload_len.to_be_bytes());
            10
        };
        FrameHead { bytes, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The head of a text frame carrying `payload_len` bytes, so a payload rendered once (an
/// entry's JSON) can follow it without being copied. The payload must be UTF-8.
pub fn text_head(payload_len: usize) -> FrameHead {
    FrameHead::new(OP_TEXT, payload_len as u64)
}

/// A whole text frame.
pub fn write_text(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(text_head(payload.len()).as_bytes());
    out.extend_from_slice(payload);
}

fn write_control(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    // A longer control frame is a protocol error at the client; cutting it keeps the
    // stream valid whatever the caller passes.
    let payload = &payload[..payload.len().min(MAX_CONTROL)];
    out.extend_from_slice(FrameHead::new(opcode, payload.len() as u64).as_bytes());
    out.extend_from_slice(payload);
}

/// A ping (heartbeat). Payloads over 125 bytes are cut to 125.
pub fn write_ping(out: &mut Vec<u8>, payload: &[u8]) {
    write_control(out, OP_PING, payload);
}

/// The answer to a client ping: the same payload (RFC 6455 §5.5.3).
pub fn write_pong(out: &mut Vec<u8>, payload: &[u8]) {
    write_control(out, OP_PONG, payload);
}

/// A close frame: no payload when `code` is `None`, else the code and a reason cut to
/// 123 bytes at a character boundary (the reason must stay UTF-8).
pub fn write_close(out: &mut Vec<u8>, code: Option<u16>, reason: &str) {
    let Some(code) = code else {
        write_control(out, OP_CLOSE, &[]);
        return;
    };
    let mut end = reason.len().min(MAX_CONTROL - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = [0u8; MAX_CONTROL];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    write_control(out, OP_CLOSE, &payload[..2 + end]);
}

// ---------------------------------------------------------------------------------------
// Frames from the client

/// A control frame's payload, unmasked, kept inline (at most 125 bytes).
#[derive(Clone, Copy)]
pub struct Payload {
    bytes: [u8; MAX_CONTROL],
    len: u8,
}

impl Payload {
    const EMPTY: Payload = Payload {
        bytes: [0; MAX_CONTROL],
        len: 0,
    };

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Bytes past `len` are left over from earlier frames and do not count.
impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Payload {}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// What the client's bytes amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Answer with a pong carrying the same payload.
    Ping(Payload),
    /// An answer to one of our pings (or unsolicited): nothing to do.
    Pong,
    /// The client closes: echo a close frame with the same code, then end the
    /// connection once it is written. `code` is `None` for an empty close frame.
    Close { code: Option<u16>, reason: String },
    /// The client broke the protocol: send a close with [`ProtocolError::code`], then
    /// end the connection.
    Error(ProtocolError),
}

/// What [`Event::respond`] asks of the caller after writing the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// Flush what is queued, then close the TCP connection.
    Close,
}

impl Event {
    /// Writes what the protocol asks in reply, into the connection's control output.
    /// `close_sent`: a close already went out (shutdown, reload), so no further frame may
    /// follow it. A reply must not be put in the middle of a frame still being written.
    pub fn respond(&self, out: &mut Vec<u8>, close_sent: bool) -> Next {
        match self {
            Event::Ping(payload) => {
                if !close_sent {
                    write_pong(out, payload.as_bytes());
                }
                Next::Continue
            }
            Event::Pong => Next::Continue,
            Event::Close { code, .. } => {
                if !close_sent {
                    write_close(out, *code, "");
                }
                Next::Close
            }
            Event::Error(e) => {
                if !close_sent {
                    write_close(out, Some(e.code()), e.reason());
                }
                Next::Close
            }
        }
    }
}

/// A client frame logwisp refuses; each maps to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// RSV1–3 set with no extension negotiated.
    ReservedBits,
    ReservedOpcode(u8),
    /// Client frames must be masked (RFC 6455 §5.1).
    Unmasked,
    FragmentedControl,
    ControlTooLong,
    /// A continuation frame with no message to continue.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is unfinished.
    ExpectedContinuation,
    /// A 64-bit length with its top bit set.
    BadLength,
    /// A close payload of one byte, or a code no endpoint may send.
    BadClose,
    /// A close reason that is not UTF-8 (1007).
    CloseReasonNotUtf8,
    /// A data message over the decoder's limit (1009).
    MessageTooBig,
}

impl ProtocolError {
    pub fn code(self) -> u16 {
        match self {
            ProtocolError::CloseReasonNotUtf8 => CLOSE_INVALID_DATA,
            ProtocolError::MessageTooBig => CLOSE_TOO_BIG,
            _ => CLOSE_PROTOCOL_ERROR,
        }
    }

    /// The close reason sent to the client (short: it must fit 123 bytes).
    pub fn reason(self) -> &'static str {
        match self {
            ProtocolError::ReservedBits => "reserved bits set",
            ProtocolError::ReservedOpcode(_) => "reserved opcode",
            ProtocolError::Unmasked => "client frames must be masked",
            ProtocolError::FragmentedControl => "fragmented control frame",
            ProtocolError::ControlTooLong => "control frame over 125 bytes",
            ProtocolError::UnexpectedContinuation => "continuation without a message",
            ProtocolError::ExpectedContinuation => "new message inside a fragmented one",
            ProtocolError::BadLength => "frame length over 2^63",
            ProtocolError::BadClose => "invalid close frame",
            ProtocolError::CloseReasonNotUtf8 => "close reason is not UTF-8",
            ProtocolError::MessageTooBig => "message too big",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.reason())
    }
}

/// Codes a close frame may carry (RFC 6455 §7.4; 1012–1014 registered since). 1004–1006
/// and 1015 are reserved for local use and never sent.
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Gathering a frame head (2 to 14 bytes).
    Head,
    /// Reading `remaining` payload bytes.
    Payload,
    /// After a close or an error: everything else is ignored.
    Done,
}

/// The incremental client-frame parser. Memory is fixed (a frame head and one control
/// payload); data payloads are skipped without being stored or unmasked.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_message: u64,
    state: State,
    head: [u8; 14],
    head_len: u8,
    opcode: u8,
    fin: bool,
    mask: [u8; 4],
    remaining: u64,
    control: Payload,
    /// Bytes so far of the data message being fragmented, if one is.
    message: Option<u64>,
    discarded: u64,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new(MAX_MESSAGE)
    }
}

impl Decoder {
    /// A decoder that refuses data messages over `max_message` bytes (1009).
    pub fn new(max_message: u64) -> Decoder {
        Decoder {
            max_message,
            state: State::Head,
            head: [0; 14],
            head_len: 0,
            opcode: 0,
            fin: false,
            mask: [0; 4],
            remaining: 0,
            control: Payload::EMPTY,
            message: None,
            discarded: 0,
        }
    }

    /// Client data payload bytes read and thrown away so far.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Whether a close or an error has ended the input: later bytes are ignored.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads from `input` up to and including the next event. Returns the bytes used
    /// (never 0 for non-empty input) and the event, if one completed; call again with the
    /// rest. Once `Close` or `Error` has been returned, later calls use all their input
    /// and return no event (RFC 6455 §5.5.1: nothing after a close is read).
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            let step = match self.state {
                State::Done => return (input.len(), None),
                State::Head => self.read_head(rest),
                State::Payload => self.read_payload(rest),
            };
            used += step.0;
            if let Some(event) = step.1 {
                if matches!(event, Event::Close { .. } | Event::Error(_)) {
                    self.state = State::Done;
                }
                return (used, Some(event));
            }
        }
        (used, None)
    }

    fn head_size(&self) -> usize {
        let ext = match self.head[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + 4
    }

    fn read_head(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        let have = usize::from(self.head_len);
        let need = if have < 2 { 2 } else { self.head_size() };
        let take = (need - have).min(input.len());
        self.head[have..have + take].copy_from_slice(&input[..take]);
        self.head_len += take as u8;
        if usize::from(self.head_len) < need {
            return (take, None);
        }
        if need == 2 {
            // Checked before any length or mask byte is read; a head is never just the
            // two (the mask follows), so the rest comes on the next step.
            let verdict = self.check_start().err().map(Event::Error);
            return (take, verdict);
        }
        match self.start_frame() {
            Ok(()) if self.remaining == 0 => (take, self.end_frame()),
            Ok(()) => {
                self.state = State::Payload;
                (take, None)
            }
            Err(e) => (take, Some(Event::Error(e))),
        }
    }

    fn check_start(&self) -> Result<(), ProtocolError> {
        let [b0, b1, ..] = self.head;
        let opcode = b0 & 0x0F;
        if b0 & 0x70 != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        if !matches!(
            opcode,
            OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
        ) {
            return Err(ProtocolError::ReservedOpcode(opcode));
        }
        if b1 & 0x80 == 0 {
            return Err(ProtocolError::Unmasked);
        }
        if opcode >= OP_CLOSE {
            if b0 & 0x80 == 0 {
                return Err(ProtocolError::FragmentedControl);
            }
            if usize::from(b1 & 0x7F) > MAX_CONTROL {
                return Err(ProtocolError::ControlTooLong);
            }
        } else if opcode == OP_CONTINUATION && self.message.is_none() {
            return Err(ProtocolError::UnexpectedContinuation);
        } else if opcode != OP_CONTINUATION && self.message.is_some() {
            return Err(ProtocolError::ExpectedContinuation);
        }
        Ok(())
    }

    /// The head is complete: length, mask, size limit.
    fn start_frame(&mut self) -> Result<(), ProtocolError> {
        let h = &self.head;
        let len = match h[1] & 0x7F {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            n => u64::from(n),
        };
        if len >> 63 != 0 {
            return Err(ProtocolError::BadLength);
        }
        let mask_at = self.head_size() - 4;
        self.mask.copy_from_slice(&h[mask_at..mask_at + 4]);
        self.opcode = h[0] & 0x0F;
        self.fin = h[0] & 0x80 != 0;
        self.remaining = len;
        self.control.len = 0;
        if self.opcode < OP_CLOSE {
            // Refused from the head, before any of the payload is read.
            let total = self.message.unwrap_or(0).saturating_add(len);
            if total > self.max_message {
                return Err(ProtocolError::MessageTooBig);
            }
            self.message = Some(total);
        }
        Ok(())
    }

    fn read_payload(&mut self, input: &[u8]) -> (usize, Option<Event>) {
        let take = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        if self.opcode >= OP_CLOSE {
            let at = usize::from(self.control.len);
            for (k, &b) in input[..take].iter().enumerate() {
                self.control.bytes[at + k] = b ^ self.mask[(at + k) % 4];
            }
            self.control.len += take as u8;
        } else {
            self.discarded += take as u64;
        }
        self.remaining -= take as u64;
        if self.remaining > 0 {
            return (take, None);
        }
        (take, self.end_frame())
    }

    fn end_frame(&mut self) -> Option<Event> {
        self.state = State::Head;
        self.head_len = 0;
        match self.opcode {
            OP_PING => Some(Event::Ping(self.control)),
            OP_PONG => Some(Event::Pong),
            OP_CLOSE => Some(self.close_event()),
            _ => {
                if self.fin {
                    self.message = None;
                }
                None
            }
        }
    }

    fn close_event(&self) -> Event {
        match self.control.as_bytes() {
            [] => Event::Close {
                code: None,
                reason: String::new(),
            },
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                if !valid_close_code(code) {
                    return Event::Error(ProtocolError::BadClose);
                }
                match std::str::from_utf8(reason) {
                    Ok(text) => Event::Close {
                        code: Some(code),
                        reason: text.to_owned(),
                    },
                    Err(_) => Event::Error(ProtocolError::CloseReasonNotUtf8),
                }
            }
            [_] => Event::Error(ProtocolError::BadClose),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> UpgradeHeaders {
        let mut h = UpgradeHeaders::default();
        for (name, value) in list {
            h.header(name, value.as_bytes());
        }
        h
    }

    const GOOD: [(&str, &str); 4] = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];

    #[test]
    fn accept_value_of_the_rfc_example() {
        let got = Accept::for_key(b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(got.as_bytes(), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            headers(&GOOD).decide(true, false),
            Handshake::Accept(got),
            "RFC 6455 §1.3"
        );
    }

    #[test]
    fn base64_of_known_digests() {
        // SHA-1("abc") and SHA-1("") in standard padded base64.
        let abc = sha1_smol::Sha1::from("abc").digest().bytes();
        assert_eq!(&base64_20(&abc), b"qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
        let empty = sha1_smol::Sha1::from("").digest().bytes();
        assert_eq!(&base64_20(&empty), b"2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
        assert_eq!(&base64_20(&[0xff; 20]), b"//////////////////////////8=");
    }

    #[test]
    fn handshake_tolerates_case_lists_and_whitespace() {
        let h = headers(&[
            ("upgrade", " WebSocket "),
            ("CONNECTION", "keep-alive, upgrade"),
            ("sec-websocket-key", " dGhlIHNhbXBsZSBub25jZQ== "),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
            ("Sec-WebSocket-Protocol", "chat"),
        ]);
        assert!(matches!(h.decide(true, false), Handshake::Accept(_)));
        // Connection as two fields (Firefox sends "keep-alive, Upgrade" in one).
        let h = headers(&[
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="),
            ("Sec-WebSocket-Version", "13"),
        ]);
        assert!(matches!(h.decide(true, false), Handshake::Accept(_)));
    }

    #[test]
    fn plain_requests_are_not_upgrades() {
        assert_eq!(headers(&[]).decide(true, false), Handshake::NotRequested);
        let h = headers(&[
            ("Upgrade", "h2c"),
            ("Connection", "Upgrade, HTTP2-Settings"),
        ]);
        assert!(!h.requested());
        assert_eq!(h.decide(true, false), Handshake::NotRequested);
        let h = headers(&[("Connection", "upgrade"), ("Accept", "text/event-stream")]);
        assert_eq!(h.decide(true, true), Handshake::NotRequested);
    }

    fn refusal(list: &[(&str, &str)], get: bool, http10: bool) -> Refusal {
        match headers(list).decide(get, http10) {
            Handshake::Refuse(r) => r,
            other => panic!("{list:?}: {other:?}"),
        }
    }

    /// GOOD with `name` replaced by `value` (or removed when `None`).
    fn good_but(name: &str, value: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
        GOOD.iter()
            .filter_map(|&(n, v)| match (n == name, value) {
                (false, _) => Some((n, v)),
                (true, Some(nv)) => Some((n, nv)),
                (true, None) => None,
            })
            .collect()
    }

    /// Headers, GET?, HTTP/1.0?, and what the refusal's detail must say.
    type Case = (Vec<(&'static str, &'static str)>, bool, bool, &'static str);

    #[test]
    fn bad_handshakes_get_400_naming_the_problem() {
        let cases: Vec<Case> = vec![
            (GOOD.to_vec(), true, true, "HTTP/1.1"),
            (GOOD.to_vec(), false, false, "GET"),
            (
                good_but("Upgrade", None),
                true,
                false,
                "without \"Upgrade: websocket\"",
            ),
            (
                good_but("Upgrade", Some("h2c")),
                true,
                false,
                "without \"Upgrade",
            ),
            (
                good_but("Connection", None),
                true,
                false,
                "without \"Connection: Upgrade\"",
            ),
            (
                good_but("Connection", Some("keep-alive")),
                true,
                false,
                "Connection",
            ),
            (
                good_but("Sec-WebSocket-Key", None),
                true,
                false,
                "missing Sec-WebSocket-Key",
            ),
            (
                good_but("Sec-WebSocket-Version", None),
                true,
                false,
                "missing Sec-WebSocket-Version",
            ),
        ];
        for (list, get, http10, want) in cases {
            let r = refusal(&list, get, http10);
            assert_eq!(r.status(), 400, "{list:?}");
            assert!(r.detail().contains(want), "{list:?}: {r}");
            assert!(r.headers().is_empty());
        }
        for key in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZQ===",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZ===",
            "dGhlIHNhbXBsZSBub25j*Q==",
            "dGhlIHNhbXBsZSBub25jZQ=A",
            "dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==",
        ] {
            let r = refusal(&good_but("Sec-WebSocket-Key", Some(key)), true, false);
            assert!(r.detail().contains("16 bytes in base64"), "{key:?}: {r}");
        }
        let mut two_keys = GOOD.to_vec();
        two_keys.push(("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="));
        assert!(
            refusal(&two_keys, true, false)
                .detail()
                .contains("more than one")
        );
        let mut two_versions = GOOD.to_vec();
        two_versions.push(("Sec-WebSocket-Version", "13"));
        assert!(
            refusal(&two_versions, true, false)
                .detail()
                .contains("more than one")
        );
        // Only the key, as through a proxy that drops Upgrade and Connection.
        let r = refusal(
            &[("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")],
            true,
            false,
        );
        assert_eq!(r.status(), 400);
    }

    #[test]
    fn other_versions_get_426_naming_13() {
        for v in ["8", "12", "14", "", "13, 8", "013"] {
            let r = refusal(&good_but("Sec-WebSocket-Version", Some(v)), true, false);
            assert_eq!(r, Refusal::UnsupportedVersion, "{v:?}");
            assert_eq!(r.status(), 426);
            assert_eq!(r.headers(), &[("Sec-WebSocket-Version", "13")]);
        }
    }

    #[test]
    fn accept_head_bytes() {
        let mut out = Vec::new();
        let date = b"Tue, 07 Jan 2025 10:30:00 GMT";
        write_accept_head(
            &mut out,
            date,
            &Accept::for_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nDate: Tue, 07 Jan 2025 10:30:00 GMT\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nServer: logwisp\r\n\r\n"
        );
    }

    #[test]
    fn text_heads_use_the_shortest_length_form() {
        assert_eq!(text_head(0).as_bytes(), [0x81, 0]);
        assert_eq!(text_head(125).as_bytes(), [0x81, 125]);
        assert_eq!(text_head(126).as_bytes(), [0x81, 126, 0, 126]);
        assert_eq!(text_head(65535).as_bytes(), [0x81, 126, 0xff, 0xff]);
        assert_eq!(
            text_head(65536).as_bytes(),
            [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
        let mut out = Vec::new();
        write_text(&mut out, b"{\"a\":1}");
        assert_eq!(out, b"\x81\x07{\"a\":1}");
    }

    #[test]
    fn control_frames() {
        let mut out = Vec::new();
        write_ping(&mut out, b"hb");
        write_pong(&mut out, b"");
        write_close(&mut out, None, "ignored");
        write_close(&mut out, Some(CLOSE_GOING_AWAY), "shutdown");
        assert_eq!(
            out,
            b"\x89\x02hb\x8a\x00\x88\x00\x88\x0a\x03\xe9shutdown".as_slice()
        );
        out.clear();
        write_ping(&mut out, &[b'x'; 300]);
        assert_eq!(out[..2], [0x89, 125]);
        assert_eq!(out.len(), 127);
        // 61 two-byte characters: 122 bytes fit, the 62nd would not.
        out.clear();
        let reason = "é".repeat(70);
        write_close(&mut out, Some(1000), &reason);
        assert_eq!(out[1], 2 + 122);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }

    /// A client frame: masked with a fixed key unless `mask` is false.
    fn frame(b0: u8, payload: &[u8], mask: bool) -> Vec<u8> {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![b0];
        let m = if mask { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(m | n as u8),
            n if n <= 0xffff => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if mask {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        out
    }

    fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
        frame(b0, payload, true)
    }

    /// Every event of `input` fed whole, checking that each step makes progress.
    fn events_with(decoder: &mut Decoder, input: &[u8], chunk: usize) -> Vec<Event> {
        let mut events = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            let mut rest = piece;
            while !rest.is_empty() {
                let (used, event) = decoder.feed(rest);
                assert!(used > 0 && used <= rest.len());
                rest = &rest[used..];
                events.extend(event);
            }
        }
        events
    }

    fn events(input: &[u8]) -> Vec<Event> {
        let whole = events_with(&mut Decoder::default(), input, input.len());
        for chunk in [1, 2, 3, 7] {
            let split = events_with(&mut Decoder::default(), input, chunk);
            assert_eq!(split, whole, "fed in pieces of {chunk}");
        }
        whole
    }

    fn ping(payload: &[u8]) -> Event {
        let mut p = Payload::EMPTY;
        p.bytes[..payload.len()].copy_from_slice(payload);
        p.len = payload.len() as u8;
        Event::Ping(p)
    }

    fn close(code: u16, reason: &str) -> Event {
        Event::Close {
            code: Some(code),
            reason: reason.into(),
        }
    }

    fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason);
        p
    }

    #[test]
    fn data_is_discarded_and_control_frames_surface() {
        let mut input = masked(0x81, b"hello");
        input.extend(masked(0x82, &[0u8; 300]));
        input.extend(masked(0x89, b"are you there"));
        input.extend(masked(0x8A, b"yes"));
        input.extend(masked(0x89, b""));
        input.extend(masked(0x88, &close_payload(1000, b"bye")));
        input.extend(masked(0x81, b"after close: ignored"));
        input.extend(frame(0x81, b"unmasked, but ignored", false));
        assert_eq!(
            events(&input),
            [
                ping(b"are you there"),
                Event::Pong,
                ping(b""),
                close(1000, "bye")
            ]
        );
        let mut d = Decoder::default();
        events_with(&mut d, &input, 5);
        assert_eq!(d.discarded(), 305);
        assert!(d.is_done());
    }

    #[test]
    fn fragmented_messages_may_carry_control_frames_between_fragments() {
        let mut input = masked(0x01, b"frag");
        input.extend(masked(0x89, b"p1"));
        input.extend(masked(0x00, b"ment"));
        input.extend(masked(0x8A, b""));
        input.extend(masked(0x80, b"ed"));
        input.extend(masked(0x82, b"next message"));
        input.extend(masked(0x88, b""));
        assert_eq!(
            events(&input),
            [
                ping(b"p1"),
                Event::Pong,
                Event::Close {
                    code: None,
                    reason: String::new()
                }
            ]
        );
    }

    #[test]
    fn protocol_errors() {
        let unfinished = masked(0x01, b"a");
        let cases: Vec<(Vec<u8>, ProtocolError)> = vec![
            (frame(0x81, b"x", false), ProtocolError::Unmasked),
            (masked(0xC1, b"x"), ProtocolError::ReservedBits),
            (masked(0x91, b"x"), ProtocolError::ReservedBits),
            (masked(0xA1, b"x"), ProtocolError::ReservedBits),
            (masked(0x83, b""), ProtocolError::ReservedOpcode(3)),
            (masked(0x8B, b""), ProtocolError::ReservedOpcode(0xB)),
            (masked(0x09, b""), ProtocolError::FragmentedControl),
            (masked(0x89, &[0; 126]), ProtocolError::ControlTooLong),
            (masked(0x80, b"x"), ProtocolError::UnexpectedContinuation),
            (
                [unfinished.clone(), masked(0x81, b"b")].concat(),
                ProtocolError::ExpectedContinuation,
            ),
            (
                [unfinished, masked(0x02, b"b")].concat(),
                ProtocolError::ExpectedContinuation,
            ),
            (masked(0x88, b"\x03"), ProtocolError::BadClose),
            (
                masked(0x88, &close_payload(999, b"")),
                ProtocolError::BadClose,
            ),
            (
                masked(0x88, &close_payload(1005, b"")),
                ProtocolError::BadClose,
            ),
            (
                masked(0x88, &close_payload(1015, b"")),
                ProtocolError::BadClose,
            ),
            (
                masked(0x88, &close_payload(2000, b"")),
                ProtocolError::BadClose,
            ),
            (
                masked(0x88, &close_payload(5000, b"")),
                ProtocolError::BadClose,
            ),
            (
                masked(0x88, &close_payload(1000, b"\xff")),
                ProtocolError::CloseReasonNotUtf8,
            ),
            (
                masked(0x88, &close_payload(1000, b"\xe2\x82")),
                ProtocolError::CloseReasonNotUtf8,
            ),
        ];
        for (input, want) in cases {
            let mut tail = input.clone();
            tail.extend(masked(0x89, b"never seen"));
            assert_eq!(events(&tail), [Event::Error(want)], "{input:x?}");
        }
        assert_eq!(ProtocolError::Unmasked.code(), 1002);
        assert_eq!(ProtocolError::CloseReasonNotUtf8.code(), 1007);
        assert_eq!(ProtocolError::MessageTooBig.code(), 1009);
    }

    #[test]
    fn valid_close_codes_are_reported() {
        for code in [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
            let input = masked(0x88, &close_payload(code, "ünï".as_bytes()));
            assert_eq!(events(&input), [close(code, "ünï")], "{code}");
        }
    }

    #[test]
    fn errors_come_at_the_first_byte_that_proves_them() {
        // Two bytes of an unmasked frame are enough: no need to wait for its payload.
        let mut d = Decoder::default();
        assert_eq!(d.feed(&[0x81]), (1, None));
        assert_eq!(
            d.feed(&[0x7F, 0, 0]),
            (1, Some(Event::Error(ProtocolError::Unmasked)))
        );
        assert_eq!(d.feed(&[1, 2, 3]), (3, None));
    }

    #[test]
    fn oversized_messages_are_refused_from_their_head() {
        let mut d = Decoder::new(1000);
        // A 1001-byte frame: refused after its 8-byte head, none of the payload sent.
        let head = &masked(0x82, &[0; 1001])[..8];
        assert_eq!(
            events_with(&mut d, head, 1),
            [Event::Error(ProtocolError::MessageTooBig)]
        );
        // 1000 bytes in one message pass; fragments adding up to 1001 do not.
        let mut d = Decoder::new(1000);
        let ok = [masked(0x01, &[0; 600]), masked(0x80, &[0; 400])].concat();
        assert_eq!(events_with(&mut d, &ok, 64), []);
        let over = [
            masked(0x01, &[0; 600]),
            masked(0x00, &[0; 300]),
            masked(0x80, &[0; 101]),
        ];
        assert_eq!(
            events_with(&mut d, &over.concat(), 64),
            [Event::Error(ProtocolError::MessageTooBig)]
        );
        assert_eq!(d.discarded(), 1000 + 900);
        // A 64-bit length: too big, or not a length at all with its top bit set.
        let mut huge = vec![0x82, 0xFF];
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        huge.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(events(&huge), [Event::Error(ProtocolError::MessageTooBig)]);
        huge[2] = 0x80;
        assert_eq!(events(&huge), [Event::Error(ProtocolError::BadLength)]);
        // The default allows 64 KiB.
        let big = masked(0x81, &vec![b'a'; MAX_MESSAGE as usize]);
        assert_eq!(events(&big), []);
        let too_big = masked(0x81, &vec![b'a'; MAX_MESSAGE as usize + 1]);
        assert_eq!(
            events(&too_big),
            [Event::Error(ProtocolError::MessageTooBig)]
        );
    }

    #[test]
    fn replies() {
        let mut out = Vec::new();
        assert_eq!(ping(b"hi").respond(&mut out, false), Next::Continue);
        assert_eq!(out, b"\x8a\x02hi");
        out.clear();
        assert_eq!(Event::Pong.respond(&mut out, false), Next::Continue);
        assert!(out.is_empty());
        assert_eq!(
            close(1001, "tab closed").respond(&mut out, false),
            Next::Close
        );
        assert_eq!(
            out, b"\x88\x02\x03\xe9",
            "the code is echoed, not the reason"
        );
        out.clear();
        let empty = Event::Close {
            code: None,
            reason: String::new(),
        };
        assert_eq!(empty.respond(&mut out, false), Next::Close);
        assert_eq!(out, b"\x88\x00");
        out.clear();
        let e = Event::Error(ProtocolError::Unmasked);
        assert_eq!(e.respond(&mut out, false), Next::Close);
        assert_eq!(out[..4], [0x88, 30, 0x03, 0xea]);
        assert_eq!(&out[4..], b"client frames must be masked");
        // After our own close nothing more may be sent.
        out.clear();
        for event in [ping(b"x"), close(1000, ""), e] {
            event.respond(&mut out, true);
        }
        assert!(out.is_empty());
    }

    #[test]
    fn reasons_fit_a_close_frame() {
        let all = [
            ProtocolError::ReservedBits,
            ProtocolError::ReservedOpcode(3),
            ProtocolError::Unmasked,
            ProtocolError::FragmentedControl,
            ProtocolError::ControlTooLong,
            ProtocolError::UnexpectedContinuation,
            ProtocolError::ExpectedContinuation,
            ProtocolError::BadLength,
            ProtocolError::BadClose,
            ProtocolError::CloseReasonNotUtf8,
            ProtocolError::MessageTooBig,
        ];
        for e in all {
            assert!(e.reason().len() <= MAX_CONTROL - 2, "{e}");
        }
    }

    #[test]
    fn random_input_never_panics_and_splits_do_not_matter() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut input = Vec::new();
            for _ in 0..next() % 6 {
                let r = next();
                // Mostly plausible frames, with one byte sometimes flipped.
                let b0 = [0x81u8, 0x01, 0x80, 0x00, 0x89, 0x8A, 0x88, 0x82][(r % 8) as usize];
                let len = (r >> 8) as usize % 140;
                let payload: Vec<u8> = (0..len).map(|i| (r >> (i % 48)) as u8).collect();
                let mut f = masked(b0, &payload);
                if r >> 60 == 0 {
                    let at = (r >> 16) as usize % f.len();
                    f[at] ^= (r >> 24) as u8 | 1;
                }
                input.extend(f);
            }
            let evs = events(&input);
            assert!(
                evs.iter()
                    .skip_while(|e| !matches!(e, Event::Close { .. } | Event::Error(_)))
                    .count()
                    <= 1
            );
        }
    }
}
