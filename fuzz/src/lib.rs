//! Oracles for the fuzz targets. Each target in `fuzz_targets/` is a shim that hands its
//! bytes to one function here; the functions panic when logwisp breaks a promise.

pub mod forward;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use logwisp::auth::header::{self as auth_header_parser, Credentials, Malformed};
use logwisp::auth::{Auth, AuthOutcome, Principal, Token, User};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use logwisp::config::{self, Overrides, TlsConfig};
use logwisp::entry::{self, Stamp};
use logwisp::http::request::{self, Body, MAX_BODY, MAX_HEAD, Method, Parse};
use logwisp::http::router::{Endpoint, Routes, StreamPaths};
use logwisp::stream::StreamId;
use logwisp::tail::lines::LineSplitter;
use logwisp::tls::{self, TlsStream};
use logwisp::ws;
use serde_json::Value;

pub mod two_pass;

/// Statuses a malformed or unacceptable request head may get (SPEC §7).
const ERROR_STATUSES: [u16; 7] = [400, 408, 411, 413, 414, 431, 505];

fn routes() -> [Routes; 2] {
    let paths = |stream, status| StreamPaths {
        stream,
        status,
        metrics: "/metrics",
    };
    let id = |index| StreamId {
        index,
        generation: 1,
    };
    let mut standalone = Routes::new(false);
    standalone.add_stream(id(0), "app", paths("/stream", "/status"));
    let mut router = Routes::new(true);
    router.add_stream(id(0), "app", paths("/stream", "/status"));
    router.add_stream(id(1), "sys", paths("/logs", "/info"));
    [standalone, router]
}

/// Request head bytes → parse → route. Never panics; a head never claims more bytes than
/// it was given; errors map to the documented statuses; the verdict on a complete head
/// does not depend on what follows it, and a head one byte short is still incomplete (the
/// reactor re-parses a growing buffer and must reach the same answer however the bytes
/// were split into reads); an incomplete head never grows past the buffer limit.
pub fn http_head(data: &[u8]) {
    match request::parse(data) {
        Parse::Partial => {
            assert!(
                data.len() <= MAX_HEAD,
                "Partial for {} bytes: the connection buffer would grow past MAX_HEAD ({MAX_HEAD})",
                data.len()
            );
        }
        Parse::Error(e) => {
            assert!(
                ERROR_STATUSES.contains(&e.status()),
                "{e:?} -> {}",
                e.status()
            );
            assert!(!e.detail().is_empty());
        }
        Parse::Done(req) => {
            assert!(req.head_len > 0 && req.head_len <= data.len(), "{req:?}");
            assert!(req.path.starts_with('/') || req.path == "*", "{req:?}");
            assert!(
                req.path != "*" || req.method == Method::Options,
                "asterisk form on {req:?}"
            );
            if let Body::Length(n) = req.body {
                assert!(n > 0 && n <= MAX_BODY, "{req:?}");
            }
            let head = &data[..req.head_len];
            assert_eq!(request::parse(head), Parse::Done(req.clone()), "head alone");
            assert_eq!(
                request::parse(&head[..head.len() - 1]),
                Parse::Partial,
                "head minus its last byte"
            );
            for table in routes() {
                match table.lookup(&req.path) {
                    Some(e) => assert!(
                        table.paths().any(|(p, pe)| p == req.path && pe == e),
                        "{e:?} for {}",
                        req.path
                    ),
                    None => assert!(table.paths().all(|(p, _)| p != req.path)),
                }
                if table.is_router() && req.path == "/status" {
                    assert_eq!(table.lookup(&req.path), Some(Endpoint::GlobalStatus));
                }
            }
        }
    }
}

/// TOML text → validated config, standalone and router. Never panics; an error names the
/// file and says something; an accepted config keeps the documented rules.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let router = Overrides {
        router: true,
        router_port: None,
    };
    let lines = text.split('\n').count();
    for overrides in [Overrides::default(), router] {
        match config::parse(text, "fuzz.toml", overrides) {
            Err(e) => {
                assert!(!e.message.trim().is_empty(), "{e:?}");
                assert_eq!(e.file, "fuzz.toml");
                if let Some(line) = e.line {
                    assert!(line >= 1 && line <= lines, "line {line} of {lines}: {e:?}");
                }
                assert!(e.to_string().contains("fuzz.toml"));
            }
            Ok(cfg) => {
                assert!(!cfg.streams.is_empty());
                // The flag turns router mode on; a config may also declare it itself.
                assert!(cfg.router || !overrides.router);
                assert!(cfg.logging.stats_interval_secs <= config::MAX_STATS_INTERVAL_SECS);
                if let config::LogOutput::File(p) = &cfg.logging.output {
                    assert!(p.is_absolute() && p.file_name().is_some(), "{p:?}");
                }
                for s in &cfg.streams {
                    assert!(!s.name.is_empty());
                    assert!(s.check_interval_ms >= config::MIN_CHECK_INTERVAL_MS);
                    assert!(!s.targets.is_empty());
                    assert!(s.http.is_some() || s.tcp.is_some());
                    assert!(s.max_line_bytes >= config::MIN_MAX_LINE_BYTES);
                    assert!(s.max_line_bytes <= config::MAX_MAX_LINE_BYTES);
                    if let Some(h) = &s.http {
                        let paths = [&h.stream_path, &h.status_path, &h.metrics_path];
                        assert!(paths.iter().all(|p| p.starts_with('/')), "{paths:?}");
                        assert_ne!(h.stream_path, h.status_path);
                        assert_ne!(h.metrics_path, h.stream_path);
                        assert_ne!(h.metrics_path, h.status_path);
                        assert!(h.buffer_size >= 1);
                    }
                }
            }
        }
    }
}

/// One raw segment of the input: the bytes between two newlines, and whether its newline
/// arrived.
fn segments(data: &[u8]) -> Vec<(&[u8], bool)> {
    let mut out: Vec<(&[u8], bool)> = data.split(|&b| b == b'\n').map(|s| (s, true)).collect();
    if let Some(last) = out.last_mut() {
        last.1 = false;
    }
    out
}

/// Where the splitter cuts an over-long line: `max`, backed off (at most three bytes) so a
/// UTF-8 sequence is not split, unless that would leave nothing (the same rule as
/// `cut_point` in src/tail/lines.rs).
fn reference_cut(line: &[u8], max: usize) -> usize {
    let mut at = max;
    for _ in 0..3 {
        if at == 0 || (line[at] & 0xC0) != 0x80 {
            break;
        }
        at -= 1;
    }
    if at == 0 { max } else { at }
}

type Lines = Vec<(Vec<u8>, bool)>;

/// The lines of `data` split all at once, the bytes held for an unfinished last line, and
/// what `flush` would deliver for them.
fn reference_split(data: &[u8], max: usize) -> (Lines, usize, Lines) {
    let mut lines = Vec::new();
    let mut pending = 0;
    let mut flushed = Vec::new();
    for (raw, terminated) in segments(data) {
        if terminated {
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if line.len() > max {
                lines.push((line[..reference_cut(line, max)].to_vec(), true));
            } else if !line.is_empty() {
                lines.push((line.to_vec(), false));
            }
        } else if raw.len() > max + 1 || (raw.len() == max + 1 && raw.last() != Some(&b'\r')) {
            // Held bytes that are surely past the limit are cut and delivered before their
            // newline. (`max` bytes and a `\r` may still be a line of exactly `max`.)
            lines.push((raw[..reference_cut(raw, max)].to_vec(), true));
        } else {
            pending = raw.len();
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if !line.is_empty() {
                flushed.push((line.to_vec(), false));
            }
        }
    }
    (lines, pending, flushed)
}

/// Input layout: `[max, stop_every, n, len_1 .. len_n, data..]`. `data` is fed in chunks of
/// `len_i` bytes (cycling), the rest in one piece; the sink asks to stop every
/// `stop_every`-th line (0 = never) and the unconsumed rest is fed again.
pub fn line_splitter(input: &[u8]) {
    let [max_byte, stop_every, n, rest @ ..] = input else {
        return;
    };
    let max = 1 + usize::from(*max_byte % 48);
    let n = usize::from(*n % 16).min(rest.len());
    let (lens, data) = rest.split_at(n);
    let (want, want_pending, want_flushed) = reference_split(data, max);

    let mut splitter = LineSplitter::new(max);
    let mut got: Lines = Vec::new();
    let mut seen = 0usize;
    let mut offset = 0;
    let mut i = 0;
    while offset < data.len() {
        let len = match lens.get(i % lens.len().max(1)) {
            Some(&l) if i < 64 => usize::from(l).max(1),
            _ => data.len() - offset,
        };
        i += 1;
        let mut chunk = &data[offset..(offset + len).min(data.len())];
        offset += chunk.len();
        while !chunk.is_empty() {
            let used = splitter.feed(chunk, &mut |line: &[u8], cut: bool, start: u64| {
                // Every line starts where the file has its first byte, so reading again
                // from there gives it back.
                let at = &data[start as usize..];
                assert!(at.starts_with(line), "line not at its start offset {start}");
                got.push((line.to_vec(), cut));
                seen += 1;
                *stop_every == 0 || !seen.is_multiple_of(usize::from(*stop_every))
            });
            assert!(used > 0 && used <= chunk.len(), "feed consumed {used}");
            chunk = &chunk[used..];
            assert!(
                splitter.pending() <= max + 2,
                "holds {}",
                splitter.pending()
            );
        }
    }
    let texts = |v: &Lines| v.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&got), texts(&want), "line texts; max {max}");
    for (k, ((_, gcut), (_, wcut))) in got.iter().zip(&want).enumerate() {
        assert_eq!(gcut, wcut, "line {k} cut flag; max {max}");
    }
    assert_eq!(splitter.pending(), want_pending, "pending; max {max}");
    let mut flushed: Lines = Vec::new();
    splitter.flush(&mut |line: &[u8], cut: bool, start: u64| {
        assert!(data[start as usize..].starts_with(line));
        flushed.push((line.to_vec(), cut));
        true
    });
    assert_eq!(flushed, want_flushed, "flush; max {max}");
    assert_eq!(splitter.pending(), 0);
}

/// Lines as the splitter delivers them (never containing `\n`) each become one JSON
/// object with string `time`, `source`, `level` and `message`, and never hold a raw CR or
/// LF (which would break SSE and NDJSON framing); the bytes are exactly those of the
/// two-pass implementation the one-pass scanner replaced ([`two_pass`]), except where that
/// wrote an entry JSON readers refuse. The whole input is also checked as one line, since
/// `write_entry` must drop a raw LF in JSON whitespace.
pub fn entry(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        check_entry(line);
    }
    if data.contains(&b'\n') {
        check_entry(data);
    }
}

fn check_entry(line: &[u8]) {
    let stamp = Stamp::from_micros(1_704_110_400_123_456);
    let mut out = Vec::new();
    entry::write_entry(&mut out, line, b"\"fuzz.log\"", &stamp);
    let mut want = Vec::new();
    two_pass::write_entry(&mut want, line, b"\"fuzz.log\"", &stamp);
    if serde_json::from_slice::<Value>(&want).is_err() {
        // The one deliberate change: a line whose entry JSON readers would refuse (values
        // 127 levels deep, one more under `fields`) is carried as plain text.
        want.clear();
        two_pass::write_plain(&mut want, line, b"\"fuzz.log\"", &stamp);
    }
    assert!(
        out == want,
        "differs from the two-pass implementation\n line: {:?}\n  got: {}\n want: {}",
        String::from_utf8_lossy(line),
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&want)
    );
    assert!(
        !out.contains(&b'\n') && !out.contains(&b'\r'),
        "raw CR/LF in {}",
        String::from_utf8_lossy(&out)
    );
    let v: Value = match serde_json::from_slice(&out) {
        Ok(v) => v,
        Err(e) => panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out)),
    };
    let obj = v.as_object().expect("an object");
    for key in ["time", "source", "level", "message"] {
        assert!(obj.get(key).is_some_and(Value::is_string), "{key}: {v}");
    }
    assert_eq!(obj["source"], "fuzz.log");
    let time = obj["time"].as_str().unwrap_or_default();
    assert_eq!(time.len(), 27, "{time}");
    if let Some(fields) = obj.get("fields") {
        assert!(fields.as_object().is_some_and(|f| !f.is_empty()), "{v}");
    }
    if line.trim_ascii().first() != Some(&b'{') {
        assert_eq!(obj["message"], *String::from_utf8_lossy(line), "plain line");
        assert_eq!(obj["level"], entry::detect_level(line));
    }
}

/// The data-message cap the `ws_frames` oracle uses: small, so inputs of fuzzing size
/// reach it.
const WS_MAX_MESSAGE: u64 = 300;

/// `ws::Event` in a form the reference can build.
#[derive(Debug, PartialEq, Eq)]
enum WsEvent {
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>, String),
    Error(ws::ProtocolError),
}

impl From<&ws::Event> for WsEvent {
    fn from(e: &ws::Event) -> WsEvent {
        match e {
            ws::Event::Ping(p) => WsEvent::Ping(p.as_bytes().to_vec()),
            ws::Event::Pong => WsEvent::Pong,
            ws::Event::Close { code, reason } => WsEvent::Close(*code, reason.clone()),
            ws::Event::Error(e) => WsEvent::Error(*e),
        }
    }
}

/// The client frames in `data` decoded all at once, the plain way: events and the data
/// payload bytes skipped. Written apart from `ws::Decoder` (no state machine) so the two
/// can be compared. An error is reported as soon as the bytes that prove it are there.
fn reference_ws(data: &[u8], max: u64) -> (Vec<WsEvent>, u64) {
    use ws::ProtocolError as E;
    let mut events = Vec::new();
    let mut discarded = 0u64;
    let mut message: Option<u64> = None;
    let mut at = 0usize;
    while let [b0, b1, ..] = data[at..] {
        let (fin, opcode, len7) = (b0 & 0x80 != 0, b0 & 0x0F, b1 & 0x7F);
        let control = opcode >= 8;
        let early = if b0 & 0x70 != 0 {
            Some(E::ReservedBits)
        } else if ![0, 1, 2, 8, 9, 10].contains(&opcode) {
            Some(E::ReservedOpcode(opcode))
        } else if b1 & 0x80 == 0 {
            Some(E::Unmasked)
        } else if control && !fin {
            Some(E::FragmentedControl)
        } else if control && len7 > 125 {
            Some(E::ControlTooLong)
        } else if opcode == 0 && message.is_none() {
            Some(E::UnexpectedContinuation)
        } else if (opcode == 1 || opcode == 2) && message.is_some() {
            Some(E::ExpectedContinuation)
        } else {
            None
        };
        if let Some(e) = early {
            events.push(WsEvent::Error(e));
            return (events, discarded);
        }
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let Some(head) = data.get(at..at + 2 + ext + 4) else {
            break;
        };
        let len = match ext {
            0 => u64::from(len7),
            2 => u64::from(u16::from_be_bytes([head[2], head[3]])),
            _ => u64::from_be_bytes(head[2..10].try_into().unwrap()),
        };
        if len >= 1 << 63 {
            events.push(WsEvent::Error(E::BadLength));
            return (events, discarded);
        }
        if !control {
            let total = message.unwrap_or(0).saturating_add(len);
            if total > max {
                events.push(WsEvent::Error(E::MessageTooBig));
                return (events, discarded);
            }
            message = Some(total);
        }
        let mask = &head[2 + ext..];
        let start = at + head.len();
        let have = (data.len() - start).min(usize::try_from(len).unwrap_or(usize::MAX));
        if !control {
            discarded += have as u64;
        }
        if (have as u64) < len {
            break;
        }
        at = start + have;
        let payload: Vec<u8> = data[start..at]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        let event = match opcode {
            9 => WsEvent::Ping(payload),
            10 => WsEvent::Pong,
            8 => match payload.as_slice() {
                [] => WsEvent::Close(None, String::new()),
                [_] => WsEvent::Error(E::BadClose),
                [hi, lo, reason @ ..] => {
                    let code = u16::from_be_bytes([*hi, *lo]);
                    let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
                    match std::str::from_utf8(reason) {
                        _ if !valid => WsEvent::Error(E::BadClose),
                        Ok(r) => WsEvent::Close(Some(code), r.to_owned()),
                        Err(_) => WsEvent::Error(E::CloseReasonNotUtf8),
                    }
                }
            },
            _ => {
                if fin {
                    message = None;
                }
                continue;
            }
        };
        let end = matches!(event, WsEvent::Close(..) | WsEvent::Error(_));
        events.push(event);
        if end {
            break;
        }
    }
    (events, discarded)
}

/// Input layout: `[n, len_1 .. len_n, data..]`. `data` is a client byte stream fed to
/// `ws::Decoder` in chunks of `len_i` bytes (cycling), each chunk until used up. The
/// events and the count of skipped bytes equal a whole-input reference decode; every
/// call makes progress; nothing follows a close or an error; the reply to each event is
/// a well-formed unmasked server frame (pong or close, payload ≤ 125 bytes, close reason
/// UTF-8), and nothing is written once our own close went out.
pub fn ws_frames(input: &[u8]) {
    let [n, rest @ ..] = input else {
        return;
    };
    let n = usize::from(*n % 16).min(rest.len());
    let (lens, data) = rest.split_at(n);
    let (want, want_discarded) = reference_ws(data, WS_MAX_MESSAGE);

    let mut decoder = ws::Decoder::new(WS_MAX_MESSAGE);
    let mut got = Vec::new();
    let mut offset = 0;
    let mut i = 0;
    while offset < data.len() {
        let len = match lens.get(i % lens.len().max(1)) {
            Some(&l) if i < 256 => usize::from(l).max(1),
            _ => data.len() - offset,
        };
        i += 1;
        let mut chunk = &data[offset..(offset + len).min(data.len())];
        offset += chunk.len();
        while !chunk.is_empty() {
            let (used, event) = decoder.feed(chunk);
            assert!(used > 0 && used <= chunk.len(), "feed used {used}");
            chunk = &chunk[used..];
            if let Some(event) = event {
                assert!(
                    !got.iter()
                        .any(|e| matches!(e, WsEvent::Close(..) | WsEvent::Error(_)))
                );
                check_ws_reply(&event);
                got.push(WsEvent::from(&event));
            }
        }
    }
    assert_eq!(got, want, "events");
    let ended = matches!(got.last(), Some(WsEvent::Close(..) | WsEvent::Error(_)));
    assert_eq!(decoder.is_done(), ended);
    if !ended {
        assert_eq!(decoder.discarded(), want_discarded, "discarded bytes");
    }
}

fn check_ws_reply(event: &ws::Event) {
    let mut out = Vec::new();
    let next = event.respond(&mut out, false);
    let done = matches!(event, ws::Event::Close { .. } | ws::Event::Error(_));
    assert_eq!(next == ws::Next::Close, done, "{event:?}");
    if matches!(event, ws::Event::Pong) {
        assert!(out.is_empty());
        return;
    }
    let [b0, b1, payload @ ..] = out.as_slice() else {
        panic!("no reply to {event:?}");
    };
    assert_eq!(*b0, if done { 0x88 } else { 0x8A }, "{event:?}");
    assert!(*b1 <= 125 && usize::from(*b1) == payload.len(), "{out:?}");
    if done && let [_, _, reason @ ..] = payload {
        assert!(std::str::from_utf8(reason).is_ok());
    }
    if let ws::Event::Ping(p) = event {
        assert_eq!(payload, p.as_bytes());
    }
    let mut after_close = Vec::new();
    event.respond(&mut after_close, true);
    assert!(after_close.is_empty(), "a reply after our close");
}

/// A cheap argon2id hash of "pw" (m=8 KiB, t=1; made with the argon2 reference CLI), so
/// the fuzzer reaches a real verify.
const CHEAP_HASH: &str =
    "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$V4H3HtTOx/OSF1MH0AOC7qYPwyx7EScAQXWSGhaLb7Q";

/// `Authorization` value bytes -> credentials -> decision. Never panics; Basic credentials
/// re-encode to a header that reads the same and a user name without a colon; a bearer
/// token is a b64token from the input; a bearer server lets in exactly its token and a
/// basic server exactly its user and password, and neither is ever Busy on one request.
pub fn auth_header(data: &[u8]) {
    let parsed = auth_header_parser::parse(data);
    match &parsed {
        Ok(Credentials::Basic { user, password }) => {
            assert!(!user.contains(':'), "{user:?}");
            let again = format!("basic {}", STANDARD.encode(format!("{user}:{password}")));
            assert_eq!(auth_header_parser::parse(again.as_bytes()), parsed);
        }
        Ok(Credentials::Bearer(token)) => {
            assert!(
                auth_header_parser::is_b64token(token.as_bytes()),
                "{token:?}"
            );
            assert!(data.windows(token.len()).any(|w| w == token.as_bytes()));
        }
        Ok(Credentials::Other) => {}
        Err(Malformed(why)) => assert!(!why.is_empty()),
    }

    let token = Token::new("s3cr3t-token").unwrap();
    let mut bearer = Auth::bearer("logwisp", vec![token]).unwrap();
    let outcome = bearer.check(Some(data), false, 0);
    let is_token = matches!(parsed, Ok(Credentials::Bearer("s3cr3t-token")));
    assert_eq!(
        outcome == AuthOutcome::Allowed(Principal::Token(0)),
        is_token,
        "{outcome:?}"
    );
    assert_eq!(
        matches!(outcome, AuthOutcome::Malformed(_)),
        parsed.is_err()
    );

    let users = vec![User::new("ops", CHEAP_HASH).unwrap()];
    let mut basic = Auth::basic("logwisp", users).unwrap();
    let outcome = basic.check(Some(data), false, 0);
    let is_user = matches!(&parsed, Ok(Credentials::Basic { user, password }) if user == "ops" && password == "pw");
    assert_eq!(
        outcome == AuthOutcome::Allowed(Principal::User("ops".into())),
        is_user,
        "{outcome:?}"
    );
    assert!(!matches!(outcome, AuthOutcome::Busy { .. }));
    assert_eq!(
        basic.hash_verifications(),
        u64::from(matches!(&parsed, Ok(Credentials::Basic { user, .. }) if user == "ops"))
    );
}

/// Server settings for the `tls_records` target, built once by `tls::server_config` from
/// the committed test PKI in `fuzz/pki/`: TLS 1.2 and 1.3; 1.3 only; mTLS (1.2 and 1.3).
fn tls_configs() -> &'static [Arc<rustls::ServerConfig>; 3] {
    static CONFIGS: OnceLock<[Arc<rustls::ServerConfig>; 3]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let pki = Path::new(env!("CARGO_MANIFEST_DIR")).join("pki");
        let make = |tls13_only, client_ca: bool| {
            let cfg = TlsConfig {
                cert_file: pki.join("server.pem"),
                key_file: pki.join("server.key"),
                client_ca_file: client_ca.then(|| pki.join("ca.pem")),
                tls13_only,
            };
            tls::server_config(&cfg).expect("fuzz/pki makes a valid server config")
        };
        [make(false, false), make(true, false), make(false, true)]
    })
}

/// The socket under a `TlsStream`: what the peer sent so far (`input`, taken by reads;
/// `WouldBlock` when it is used up, end of file once `eof`), and what the server sent,
/// taken at most `write_cap` bytes per call, with every other call refused as a full
/// socket when `stall` is set.
struct MemSocket {
    input: Vec<u8>,
    eof: bool,
    out: Vec<u8>,
    write_cap: usize,
    stall: bool,
    stalled: bool,
}

impl Read for MemSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.drain(..n);
        Ok(n)
    }
}

impl Write for MemSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.stall {
            self.stalled = !self.stalled;
            if self.stalled {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        let n = buf.len().min(self.write_cap);
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a session fed a peer's bytes ended.
#[derive(Debug, PartialEq, Eq)]
enum TlsVerdict {
    /// Every byte was taken and the session waits for more (a record or a flight is not
    /// complete).
    Waiting,
    /// The peer's end of file reached the reader.
    Eof,
    /// A failed handshake or a bad record, with rustls's reason.
    Error(String),
}

/// Sends what the session holds the way the reactor does on each writable event: calls
/// `push_pending` until it reports nothing left. Bounded: a session that never empties
/// would leave a connection forever writable.
fn tls_flush(tls: &mut TlsStream<MemSocket>) {
    for _ in 0..1_000_000 {
        match tls.push_pending() {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => panic!("push_pending on a socket that never fails: {e}"),
        }
    }
    panic!("push_pending never finished");
}

/// Feeds `chunks` of a peer's bytes to a server session as the reactor does: each chunk
/// arrives, the connection reads until `WouldBlock`, then writes what the session holds.
/// Returns the verdict and everything the server sent.
fn tls_session(
    config: &Arc<rustls::ServerConfig>,
    chunks: &[&[u8]],
    read_buf: usize,
    write_cap: usize,
    stall: bool,
) -> (TlsVerdict, Vec<u8>) {
    let sock = MemSocket {
        input: Vec::new(),
        eof: false,
        out: Vec::new(),
        write_cap,
        stall,
        stalled: false,
    };
    let mut tls = TlsStream::new(sock, Arc::clone(config)).expect("a new session");
    let mut buf = vec![0u8; read_buf];
    let mut verdict = TlsVerdict::Waiting;
    let last = chunks.len();
    'feed: for (i, chunk) in chunks.iter().enumerate() {
        tls.socket().input.extend_from_slice(chunk);
        // The peer's FIN comes with its last bytes.
        tls.socket().eof = i + 1 == last;
        // One read takes what the socket holds (until WouldBlock, end or error).
        match tls.read(&mut buf) {
            Ok(0) => {
                verdict = TlsVerdict::Eof;
                break 'feed;
            }
            Ok(n) => panic!(
                "{n} bytes of plaintext from a peer that cannot have finished a handshake"
            ),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
                verdict = TlsVerdict::Error(e.to_string());
                break 'feed;
            }
        }
        tls_flush(&mut tls);
        assert!(
            tls.socket().input.is_empty(),
            "bytes left unread after WouldBlock"
        );
    }
    assert!(
        tls.is_handshaking(),
        "a handshake finished with random bytes"
    );
    // What the last read left in the session goes out on the next writable event.
    tls_flush(&mut tls);
    // The reactor's close: close_notify, sent as far as the socket takes it.
    let before = tls.socket().out.len();
    tls.send_close_notify();
    tls_flush(&mut tls);
    let out = std::mem::take(&mut tls.socket().out);
    if !matches!(verdict, TlsVerdict::Error(_)) {
        // A session that did not fail ends with exactly one more record: close_notify, an
        // alert (21), or under TLS 1.3 keys an encrypted record (23).
        let close = tls_records(&out[before..]);
        assert!(
            matches!(close.as_slice(), [(21 | 23, _)]),
            "close_notify sent as {close:?} ({verdict:?})"
        );
    }
    (verdict, out)
}

/// TLS records in `out`: (content type, length of the fragment). Panics on anything that
/// is not a whole TLSPlaintext/TLSCiphertext record.
fn tls_records(out: &[u8]) -> Vec<(u8, usize)> {
    let mut records = Vec::new();
    let mut rest = out;
    while !rest.is_empty() {
        let [kind, major, minor, hi, lo, ..] = *rest else {
            panic!("a partial record head: {rest:02x?}");
        };
        assert!(matches!(kind, 20..=23), "content type {kind}");
        assert!(
            major == 3 && (minor == 1 || minor == 3),
            "version {major}.{minor}"
        );
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        assert!(len <= 16384 + 256, "a record of {len} bytes");
        assert!(rest.len() >= 5 + len, "a cut record");
        records.push((kind, len));
        rest = &rest[5 + len..];
    }
    records
}

/// Input layout: `[flags, n, len_1 .. len_n, data..]`: a peer's bytes fed to a server
/// session (`tls::TlsStream` over memory) in chunks of `len_i` bytes (cycling), the rest
/// in one piece. `flags`: bits 0-1 the server settings (TLS 1.2+1.3, 1.3 only, mTLS),
/// bits 2-4 the bytes a socket write takes (0: all, k: 4^(k-1)), bit 5 a socket
/// that refuses every other write, bits 6-7 the read buffer (16 KiB, 1, 7, 300 bytes).
///
/// Promises: no panic; no plaintext ever (a handshake cannot finish without the
/// server's random); errors are `InvalidData` with rustls's reason; everything the server
/// sends is whole TLS records (1.0/1.2 record versions, at most 2^14+256 bytes each), at
/// most the session buffer in all; a session that did not fail closes with exactly one
/// record (close_notify); and the verdict (waiting, end of file, or the error's
/// text) does not depend on how the bytes were split, how big the read buffer was or how
/// the socket took writes.
pub fn tls_records_fuzz(input: &[u8]) {
    let [flags, n, rest @ ..] = input else {
        return;
    };
    let n = usize::from(*n % 16).min(rest.len());
    let (lens, data) = rest.split_at(n);
    let config = &tls_configs()[usize::from(flags & 3) % 3];
    let write_cap = match (flags >> 2) & 7 {
        0 => usize::MAX,
        k => 1 << (2 * (k - 1)),
    };
    let stall = flags & 0x20 != 0;
    let read_buf = [16 * 1024, 1, 7, 300][usize::from(flags >> 6)];

    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let len = match lens.get(chunks.len() % lens.len().max(1)) {
            Some(&l) if chunks.len() < 256 => usize::from(l).max(1),
            _ => data.len() - offset,
        };
        chunks.push(&data[offset..(offset + len).min(data.len())]);
        offset += chunks.last().map_or(0, |c| c.len());
    }

    let (verdict, out) = tls_session(config, &chunks, read_buf, write_cap, stall);
    tls_records(&out);
    assert!(out.len() <= tls::SESSION_BUFFER, "{} bytes sent", out.len());

    let whole: Vec<&[u8]> = if data.is_empty() { vec![] } else { vec![data] };
    let (plain, _) = tls_session(config, &whole, 16 * 1024, usize::MAX, false);
    assert_eq!(verdict, plain, "verdict depends on how the bytes arrived");
}
