//! A log line becomes one JSON object, written straight into the caller's buffer:
//! `{"time":…,"source":…,"level":…,"message":…[,"fields":{…}]}`.
//!
//! Plain lines take the fast path (one scan for the level keywords, one escaping copy).
//! Lines that are JSON objects keep their values byte-exact (`RawValue`), with time, level
//! and message lifted out and every other key kept, in order, under `fields`.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::timefmt;

/// A formatted `now`, shared by every line read in one batch.
#[derive(Clone, Copy)]
pub struct Stamp {
    pub micros: i64,
    pub text: [u8; 27],
}

impl Stamp {
    pub fn from_micros(micros: i64) -> Stamp {
        Stamp {
            micros,
            text: timefmt::rfc3339_micros(micros),
        }
    }

    pub fn now() -> Stamp {
        Stamp::from_micros(unix_micros_now())
    }
}

pub fn unix_micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// 0 = copy as is; otherwise the character after the backslash (`u` for `\u00XX`).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Whether any of 8 bytes is a control character, `"` or `\` (exact: a false answer
/// means all 8 can be copied as they are).
#[inline]
fn word_needs_escape(x: u64) -> bool {
    let control = x.wrapping_sub(LO * 0x20) & !x;
    let q = x ^ (LO * u64::from(b'"'));
    let quote = q.wrapping_sub(LO) & !q;
    let b = x ^ (LO * u64::from(b'\\'));
    let backslash = b.wrapping_sub(LO) & !b;
    (control | quote | backslash) & HI != 0
}

fn escape_str_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if i + 8 <= bytes.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[i..i + 8]);
            if !word_needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let e = ESCAPE[b as usize];
        if e != 0 {
            out.extend_from_slice(&bytes[start..i]);
            if e == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            } else {
                out.push(b'\\');
                out.push(e);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Writes `raw` as a JSON string literal; each invalid UTF-8 sequence becomes U+FFFD
/// (as `String::from_utf8_lossy` would), without copying valid text twice.
pub fn write_json_string(out: &mut Vec<u8>, raw: &[u8]) {
    out.push(b'"');
    match std::str::from_utf8(raw) {
        Ok(text) => escape_str_into(out, text),
        Err(_) => {
            for chunk in raw.utf8_chunks() {
                escape_str_into(out, chunk.valid());
                if !chunk.invalid().is_empty() {
                    out.extend_from_slice("\u{fffd}".as_bytes());
                }
            }
        }
    }
    out.push(b'"');
}

/// A keyword with its delimiter (`ERROR]`, `WARN:`, `INFO `), matched case-insensitively
/// with one 64-bit compare: letters are folded to lower case by or-ing 0x20, which maps
/// only `E`/`e` to `e` and so on, while the delimiter byte must match exactly.
#[derive(Clone, Copy)]
struct Pattern {
    value: u64,
    fold: u64,
    keep: u64,
    len: usize,
}

const fn pattern(text: &[u8]) -> Pattern {
    let mut value = 0u64;
    let mut fold = 0u64;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b.is_ascii_alphabetic() {
            value |= ((b | 0x20) as u64) << (8 * i);
            fold |= 0x20u64 << (8 * i);
        } else {
            value |= (b as u64) << (8 * i);
        }
        i += 1;
    }
    let keep = if text.len() >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * text.len())) - 1
    };
    Pattern {
        value,
        fold,
        keep,
        len: text.len(),
    }
}

impl Pattern {
    /// Whether `bytes` starts with this keyword.
    #[inline]
    fn starts(&self, bytes: &[u8]) -> bool {
        let word = match bytes.first_chunk::<8>() {
            Some(w) => u64::from_le_bytes(*w),
            None if bytes.len() >= self.len => {
                let mut w = [0u8; 8];
                w[..bytes.len()].copy_from_slice(bytes);
                u64::from_le_bytes(w)
            }
            None => return false,
        };
        ((word | self.fold) & self.keep) == self.value
    }
}

const ERROR: u8 = 0;
const WARN: u8 = 1;
const INFO: u8 = 2;
const DEBUG: u8 = 3;
const TRACE: u8 = 4;
/// Level names by priority (index = the constants above).
const LEVEL_NAMES: [&str; 5] = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"];

/// The keywords of the original logwisp (`[ERR]`, `ERR:` and ` ERROR ` all mean ERROR,
/// and so on), grouped by the letter a scan meets first, so a candidate position is
/// checked against one to three patterns rather than all of them.
fn after_bracket(first: u8) -> &'static [(Pattern, u8)] {
    const E: &[(Pattern, u8)] = &[(pattern(b"ERROR]"), ERROR), (pattern(b"ERR]"), ERROR)];
    const F: &[(Pattern, u8)] = &[(pattern(b"FATAL]"), ERROR)];
    const W: &[(Pattern, u8)] = &[(pattern(b"WARN]"), WARN), (pattern(b"WARNING]"), WARN)];
    const I: &[(Pattern, u8)] = &[(pattern(b"INFO]"), INFO), (pattern(b"INF]"), INFO)];
    const D: &[(Pattern, u8)] = &[(pattern(b"DEBUG]"), DEBUG), (pattern(b"DBG]"), DEBUG)];
    const T: &[(Pattern, u8)] = &[(pattern(b"TRACE]"), TRACE)];
    match first | 0x20 {
        b'e' => E,
        b'f' => F,
        b'w' => W,
        b'i' => I,
        b'd' => D,
        b't' => T,
        _ => &[],
    }
}

/// Patterns ending in `:`, by the letter just before the colon.
fn before_colon(last: u8) -> &'static [(Pattern, u8)] {
    const R: &[(Pattern, u8)] = &[(pattern(b"ERROR:"), ERROR), (pattern(b"ERR:"), ERROR)];
    const L: &[(Pattern, u8)] = &[(pattern(b"FATAL:"), ERROR)];
    const N: &[(Pattern, u8)] = &[(pattern(b"WARN:"), WARN)];
    const G: &[(Pattern, u8)] = &[
        (pattern(b"WARNING:"), WARN),
        (pattern(b"DEBUG:"), DEBUG),
        (pattern(b"DBG:"), DEBUG),
    ];
    const O: &[(Pattern, u8)] = &[(pattern(b"INFO:"), INFO)];
    const F: &[(Pattern, u8)] = &[(pattern(b"INF:"), INFO)];
    const E: &[(Pattern, u8)] = &[(pattern(b"TRACE:"), TRACE)];
    match last | 0x20 {
        b'r' => R,
        b'l' => L,
        b'n' => N,
        b'g' => G,
        b'o' => O,
        b'f' => F,
        b'e' => E,
        _ => &[],
    }
}

/// The spaced form (` ERROR `), by the letter after the space.
fn after_space(first: u8) -> Option<(Pattern, u8)> {
    const E: (Pattern, u8) = (pattern(b"ERROR "), ERROR);
    const W: (Pattern, u8) = (pattern(b"WARN "), WARN);
    const I: (Pattern, u8) = (pattern(b"INFO "), INFO);
    const D: (Pattern, u8) = (pattern(b"DEBUG "), DEBUG);
    const T: (Pattern, u8) = (pattern(b"TRACE "), TRACE);
    match first | 0x20 {
        b'e' => Some(E),
        b'w' => Some(W),
        b'i' => Some(I),
        b'd' => Some(D),
        b't' => Some(T),
        _ => None,
    }
}

/// Bit j set when `chunk[j]` can start a keyword match (`[`, `:` or space). Written so the
/// compiler turns it into a few vector compares and a movemask.
#[inline]
fn trigger_mask(chunk: &[u8; 16]) -> u32 {
    let mut mask = 0u32;
    for (j, &b) in chunk.iter().enumerate() {
        mask |= u32::from(b == b' ' || b == b':' || b == b'[') << j;
    }
    mask
}

/// The best (lowest) level announced by a keyword at `line[i]` (a `[`, `:` or space).
#[inline]
fn level_at(line: &[u8], i: usize) -> Option<u8> {
    match line[i] {
        b'[' => {
            let rest = line.get(i + 1..)?;
            after_bracket(*rest.first()?)
                .iter()
                .filter(|(p, _)| p.starts(rest))
                .map(|&(_, level)| level)
                .min()
        }
        b':' => before_colon(*line[..i].last()?)
            .iter()
            .filter(|(p, _)| i + 1 >= p.len && p.starts(&line[i + 1 - p.len..]))
            .map(|&(_, level)| level)
            .min(),
        _ => {
            let rest = line.get(i + 1..)?;
            let (p, level) = after_space(*rest.first()?)?;
            p.starts(rest).then_some(level)
        }
    }
}

/// The level a plain line announces (case-insensitive), or `""`.
pub fn detect_level(line: &[u8]) -> &'static str {
    let mut best = LEVEL_NAMES.len() as u8;
    let mut base = 0;
    while base < line.len() && best > ERROR {
        let (chunk, valid) = match line[base..].first_chunk::<16>() {
            Some(c) => (*c, u32::MAX),
            None => {
                let take = line.len() - base;
                let mut c = [0u8; 16];
                c[..take].copy_from_slice(&line[base..]);
                (c, u32::MAX >> (32 - take))
            }
        };
        let mut mask = trigger_mask(&chunk) & valid;
        while mask != 0 {
            let i = base + mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if let Some(level) = level_at(line, i) {
                best = best.min(level);
            }
        }
        base += 16;
    }
    LEVEL_NAMES.get(usize::from(best)).copied().unwrap_or("")
}

fn open_entry(out: &mut Vec<u8>, time: &[u8; 27], source_json: &[u8]) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(time);
    out.extend_from_slice(b"\",\"source\":");
    out.extend_from_slice(source_json);
}

/// An entry that logwisp itself announces (rotation notices).
pub fn write_notice(
    out: &mut Vec<u8>,
    stamp: &Stamp,
    source_json: &[u8],
    level: &str,
    message: &str,
) {
    open_entry(out, &stamp.text, source_json);
    out.extend_from_slice(b",\"level\":");
    write_json_string(out, level.as_bytes());
    out.extend_from_slice(b",\"message\":");
    write_json_string(out, message.as_bytes());
    out.push(b'}');
}

/// Writes the entry for one line. `source_json` is the file's base name, already a JSON
/// string literal.
pub fn write_entry(out: &mut Vec<u8>, line: &[u8], source_json: &[u8], stamp: &Stamp) {
    let trimmed = line.trim_ascii();
    if trimmed.first() == Some(&b'{') && trimmed.last() == Some(&b'}') {
        let mark = out.len();
        if write_json_entry(out, trimmed, source_json, stamp) {
            return;
        }
        out.truncate(mark);
    }
    open_entry(out, &stamp.text, source_json);
    out.extend_from_slice(b",\"level\":\"");
    out.extend_from_slice(detect_level(line).as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    write_json_string(out, line);
    out.push(b'}');
}

/// An object's members in document order, values untouched.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// An object key, borrowed from the line when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some((Key(k), v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push((k, v));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

fn is_json_string(v: &RawValue) -> bool {
    v.get().starts_with('"')
}

/// JSON whitespace may hold a raw `\r` or `\n`, which would break SSE and NDJSON
/// framing; strings cannot, so dropping them changes nothing.
fn write_raw(out: &mut Vec<u8>, v: &RawValue) {
    let text = v.get().as_bytes();
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(text.iter().copied().filter(|&b| b != b'\r' && b != b'\n'));
    } else {
        out.extend_from_slice(text);
    }
}

/// Removes and returns the first member named by one of `keys` whose value passes `want`.
fn take<'a>(
    members: &mut Vec<(Cow<'a, str>, &'a RawValue)>,
    keys: &[&str],
    want: &dyn Fn(&RawValue) -> bool,
) -> Option<&'a RawValue> {
    for key in keys {
        if let Some(i) = members.iter().position(|(k, v)| k == key && want(v)) {
            return Some(members.remove(i).1);
        }
    }
    None
}

fn write_json_entry(out: &mut Vec<u8>, line: &[u8], source_json: &[u8], stamp: &Stamp) -> bool {
    // Raw values are only checked for shape; a full parse also rejects what JSON
    // readers refuse (lone surrogates, numbers out of range), so such a line is carried
    // as plain text instead of producing an entry clients cannot read.
    if serde_json::from_slice::<serde_json::Value>(line).is_err() {
        return false;
    }
    let Ok(Members(mut members)) = serde_json::from_slice::<Members>(line) else {
        return false;
    };
    let time_of = |v: &RawValue| {
        if !is_json_string(v) {
            return None;
        }
        let text = serde_json::from_str::<Cow<str>>(v.get()).ok()?;
        timefmt::parse_rfc3339(&text)
    };
    let mut time = None;
    for key in ["time", "timestamp", "ts"] {
        let found = members.iter().enumerate().find_map(|(i, (k, v))| {
            if k == key {
                time_of(v).map(|m| (i, m))
            } else {
                None
            }
        });
        if let Some((i, micros)) = found {
            members.remove(i);
            time = Some(timefmt::rfc3339_micros(micros));
            break;
        }
    }
    let level = take(&mut members, &["level", "lvl", "severity"], &is_json_string);
    let message = take(&mut members, &["msg", "message"], &is_json_string);
    // A nested `fields` object is merged in; top-level keys win over its duplicates.
    let mut nested = Vec::new();
    if let Some(i) = members
        .iter()
        .position(|(k, v)| k == "fields" && v.get().starts_with('{'))
    {
        let (_, v) = members.remove(i);
        match serde_json::from_str::<Members>(v.get()) {
            Ok(Members(inner)) => nested = inner,
            Err(_) => return false,
        }
    }
    for (k, v) in nested {
        if !members.iter().any(|(mk, _)| *mk == k) {
            members.push((k, v));
        }
    }

    open_entry(out, &time.unwrap_or(stamp.text), source_json);
    out.extend_from_slice(b",\"level\":");
    match level {
        Some(v) => write_raw(out, v),
        None => out.extend_from_slice(b"\"\""),
    }
    out.extend_from_slice(b",\"message\":");
    match message {
        Some(v) => write_raw(out, v),
        None => out.extend_from_slice(b"\"\""),
    }
    if !members.is_empty() {
        out.extend_from_slice(b",\"fields\":{");
        for (i, (k, v)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(out, k.as_bytes());
            out.push(b':');
            write_raw(out, v);
        }
        out.push(b'}');
    }
    out.push(b'}');
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn stamp() -> Stamp {
        Stamp::from_micros(1_704_110_400_123_456) // 2024-01-01T12:00:00.123456Z
    }

    fn entry(line: &str) -> Value {
        let mut out = Vec::new();
        let mut src = Vec::new();
        write_json_string(&mut src, b"app.log");
        write_entry(&mut out, line.as_bytes(), &src, &stamp());
        serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("invalid JSON {e}: {}", String::from_utf8_lossy(&out)))
    }

    #[test]
    fn plain_line() {
        assert_eq!(
            entry("2024 [ERROR] disk full"),
            json!({"time":"2024-01-01T12:00:00.123456Z","source":"app.log","level":"ERROR","message":"2024 [ERROR] disk full"})
        );
    }

    #[test]
    fn levels_follow_the_original_keywords() {
        let cases = [
            ("[error] x", "ERROR"),
            ("x ERROR: y", "ERROR"),
            ("a ERROR b", "ERROR"),
            ("ERR: boom", "ERROR"),
            ("[FATAL] boom", "ERROR"),
            ("[WARN] w", "WARN"),
            ("Warning: w", "WARN"),
            ("a WARN b", "WARN"),
            ("[INF] i", "INFO"),
            ("INFO: i", "INFO"),
            ("[dbg] d", "DEBUG"),
            ("a TRACE b", "TRACE"),
            ("[INFO] then ERROR: wins", "ERROR"),
            ("ERROR at start without space", ""),
            ("information", ""),
            ("[ERRORS] plural", ""),
            ("", ""),
        ];
        for (line, want) in cases {
            assert_eq!(detect_level(line.as_bytes()), want, "{line:?}");
        }
    }

    #[test]
    fn escaping_matches_serde_json_on_every_byte() {
        for b in 0u8..=255 {
            for len in [1usize, 7, 8, 9, 17] {
                let mut raw = vec![b'a'; len];
                raw[len / 2] = b;
                let mut ours = Vec::new();
                write_json_string(&mut ours, &raw);
                let expected = serde_json::to_vec(&String::from_utf8_lossy(&raw)).unwrap();
                let ours_v: String = serde_json::from_slice(&ours).unwrap();
                let expected_v: String = serde_json::from_slice(&expected).unwrap();
                assert_eq!(ours_v, expected_v, "byte {b:#x} len {len}");
            }
        }
        let mut out = Vec::new();
        write_json_string(&mut out, b"ok \xe2\x82 then \xf0\x9f\x98\x80 end");
        let v: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            String::from_utf8_lossy(b"ok \xe2\x82 then \xf0\x9f\x98\x80 end")
        );
    }

    /// The original's rule, literally: upper-case the line, take the first group with a
    /// pattern it contains.
    fn reference_level(line: &[u8]) -> &'static str {
        let upper = line.to_ascii_uppercase();
        let groups: [(&str, &[&str]); 5] = [
            (
                "ERROR",
                &[
                    "[ERROR]", "ERROR:", " ERROR ", "ERR:", "[ERR]", "FATAL:", "[FATAL]",
                ],
            ),
            (
                "WARN",
                &["[WARN]", "WARN:", " WARN ", "WARNING:", "[WARNING]"],
            ),
            ("INFO", &["[INFO]", "INFO:", " INFO ", "[INF]", "INF:"]),
            ("DEBUG", &["[DEBUG]", "DEBUG:", " DEBUG ", "[DBG]", "DBG:"]),
            ("TRACE", &["[TRACE]", "TRACE:", " TRACE "]),
        ];
        for (name, pats) in groups {
            if pats
                .iter()
                .any(|p| upper.windows(p.len()).any(|w| w == p.as_bytes()))
            {
                return name;
            }
        }
        ""
    }

    #[test]
    fn level_detection_equals_the_reference_on_random_lines() {
        let pieces: [&[u8]; 16] = [
            b"[",
            b"]",
            b":",
            b" ",
            b"error",
            b"ERR",
            b"fatal",
            b"Warn",
            b"WARNING",
            b"info",
            b"INF",
            b"debug",
            b"dbg",
            b"trace",
            b"x",
            b"\xc3\xa9",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..50_000 {
            let mut line = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut r = seed;
            for _ in 0..(r % 9) {
                r = r.rotate_left(5) ^ 0x5851_f42d;
                line.extend_from_slice(pieces[(r % 16) as usize]);
            }
            assert_eq!(
                detect_level(&line),
                reference_level(&line),
                "{:?}",
                String::from_utf8_lossy(&line)
            );
        }
    }

    #[test]
    fn escapes_control_quotes_and_invalid_utf8() {
        let mut out = Vec::new();
        write_json_string(&mut out, b"a\"b\\c\x00\x1f\tz\xff");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\u0000\\u001f\\tz\u{fffd}\""
        );
    }

    #[test]
    fn json_line_lifts_known_keys_and_keeps_the_rest() {
        let v = entry(
            r#"{"ts":"2024-05-01T10:00:00+02:00","lvl":"warn","msg":"slow","user_id":"12345","n":1.50,"fields":{"request_id":"abc","n":2}}"#,
        );
        assert_eq!(
            v,
            json!({"time":"2024-05-01T08:00:00.000000Z","source":"app.log","level":"warn","message":"slow",
                   "fields":{"user_id":"12345","n":1.5,"request_id":"abc"}})
        );
    }

    #[test]
    fn json_line_keeps_unusable_values_in_fields() {
        let v = entry(r#"{"time":1700000000,"level":3,"message":"m"}"#);
        assert_eq!(v["time"], "2024-01-01T12:00:00.123456Z");
        assert_eq!(v["level"], "");
        assert_eq!(v["fields"], json!({"time":1700000000,"level":3}));
        let v = entry(r#"{"a":1}"#);
        assert_eq!(v["message"], "");
        assert_eq!(v["fields"], json!({"a":1}));
        let v = entry(r#"{"message":"only"}"#);
        assert!(v.get("fields").is_none());
    }

    #[test]
    fn broken_json_is_a_plain_line() {
        let v = entry(r#"{"msg": "unterminated}"#);
        assert_eq!(v["message"], r#"{"msg": "unterminated}"#);
        let v = entry("{not json} ERROR: x");
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["message"], "{not json} ERROR: x");
        let v = entry("{\"a\":1}\u{0}");
        assert_eq!(v["message"], "{\"a\":1}\u{0}");
    }

    #[test]
    fn values_json_readers_reject_make_a_plain_line() {
        for line in [r#"{"msg":"\ud800"}"#, r#"{"a":[77777777E7777777]}"#] {
            let v = entry(line);
            assert_eq!(v["message"], line);
            assert!(v.get("fields").is_none());
        }
    }

    #[test]
    fn raw_carriage_returns_never_reach_the_output() {
        let mut out = Vec::new();
        write_entry(&mut out, b"{\"a\":\r1,\"b\":[1,\r2]}", b"\"s\"", &stamp());
        assert!(!out.contains(&b'\r'));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["fields"], json!({"a":1,"b":[1,2]}));
    }

    #[test]
    fn notice_entry() {
        let mut out = Vec::new();
        write_notice(
            &mut out,
            &stamp(),
            b"\"app.log\"",
            "INFO",
            "Log rotation detected (#1): inode change",
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["message"], "Log rotation detected (#1): inode change");
        assert_eq!(v["level"], "INFO");
    }
}
