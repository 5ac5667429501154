//! A log line becomes one JSON object, written straight into the caller's buffer:
//! `{"time":…,"source":…,"level":…,"message":…[,"fields":{…}]}`.
//!
//! Plain lines take the fast path (one scan for the level keywords, one escaping copy).
//! Lines that are JSON objects are validated and split into members in one pass over the
//! line (`Scanner`), refusing exactly what serde_json refuses as a `Value` (such lines
//! are carried as plain text). Values are copied byte-exact, with time, level and message
//! lifted out and every other key kept, in order, under `fields`.

use std::borrow::Cow;

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

/// The high bit of each of 8 bytes (little-endian) that is a control character, `"` or
/// `\`. None set means all 8 can be copied as they are; the lowest one set marks the first
/// such byte exactly (a borrow only disturbs the bytes above it).
#[inline]
fn escape_bits(x: u64) -> u64 {
    let control = x.wrapping_sub(LO * 0x20) & !x;
    let q = x ^ (LO * u64::from(b'"'));
    let quote = q.wrapping_sub(LO) & !q;
    let b = x ^ (LO * u64::from(b'\\'));
    let backslash = b.wrapping_sub(LO) & !b;
    (control | quote | backslash) & HI
}

fn escape_str_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if i + 8 <= bytes.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[i..i + 8]);
            let bits = escape_bits(u64::from_le_bytes(word));
            if bits == 0 {
                i += 8;
                continue;
            }
            i += (bits.trailing_zeros() / 8) as usize;
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

/// Bit j of each mask of a 16-byte chunk: `chunk[j]` is a space or a `[` (a keyword may
/// start after it); `chunk[j]` is a colon (a keyword may end before it); `chunk[j]` keeps
/// the line from being copied into a JSON string as it is (a control character, `"`, `\\`,
/// or a byte above 0x7f, which needs the UTF-8 check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Masks {
    opens: u32,
    colons: u32,
    special: u32,
}

/// [`Masks`] with SSE2, which every x86-64 has; elsewhere [`chunk_masks_portable`].
#[cfg(target_arch = "x86_64")]
#[inline]
fn chunk_masks(chunk: &[u8; 16]) -> Masks {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86-64 baseline; the load reads the 16 bytes of `chunk`
    // (unaligned loads are allowed).
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let eq = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
        let opens = _mm_or_si128(eq(b' '), eq(b'['));
        // Unsigned v <= 0x1f: max(v, 0x1f) is 0x1f. A byte above 0x7f has its own high bit.
        let low = _mm_set1_epi8(0x1f);
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
        let special = _mm_or_si128(_mm_or_si128(control, v), _mm_or_si128(eq(b'"'), eq(b'\\')));
        Masks {
            opens: _mm_movemask_epi8(opens) as u32,
            colons: _mm_movemask_epi8(eq(b':')) as u32,
            special: _mm_movemask_epi8(special) as u32,
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn chunk_masks(chunk: &[u8; 16]) -> Masks {
    chunk_masks_portable(chunk)
}

/// [`chunk_masks`] without vector instructions: eight bytes at a time in a `u64`, each
/// test exact per byte (no borrow crosses a byte).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline]
fn chunk_masks_portable(chunk: &[u8; 16]) -> Masks {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // 0x80 in each byte of `x` that is zero.
    let zero = |x: u64| !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7);
    let eq = |x: u64, b: u8| zero(x ^ (LO * u64::from(b)));
    // The high bit of each byte, gathered into the low 8 bits (byte k to bit k).
    let gather = |m: u64| ((m >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32;
    let mut m = Masks {
        opens: 0,
        colons: 0,
        special: 0,
    };
    for (k, word) in chunk.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let opens = eq(x, b' ') | eq(x, b'[');
        // Below 0x20 (and below 0x80): adding 0x60 to the low 7 bits leaves bit 7 clear.
        let control = !((x & LOW7).wrapping_add(LO * 0x60) | x) & HI;
        let s = control | eq(x, b'"') | eq(x, b'\\') | (x & HI);
        m.opens |= gather(opens) << (8 * k);
        m.colons |= gather(eq(x, b':')) << (8 * k);
        m.special |= gather(s) << (8 * k);
    }
    m
}

/// The four bytes around a trigger that every keyword match starting there contains,
/// with letters folded to lower case (`| 0x20` on every byte, as the patterns fold them):
/// a bracket or a space and the keyword's first three letters (`[err`, ` war`), or a
/// keyword's last three letters and its colon (`ror:`, `dbg:`).
const KEYS: [&[u8; 4]; 22] = [
    b"[err", b"[fat", b"[war", b"[inf", b"[deb", b"[dbg", b"[tra", b" err", b" war", b" inf",
    b" deb", b" tra", b"ror:", b"err:", b"tal:", b"arn:", b"ing:", b"nfo:", b"inf:", b"bug:",
    b"dbg:", b"ace:",
];

const fn fold_key(bytes: [u8; 4]) -> u32 {
    u32::from_le_bytes(bytes) | 0x2020_2020
}

/// A multiplier that sends every key of [`KEYS`] to a slot of its own (checked when
/// [`KEY_TABLE`] is built, at compile time).
const KEY_MUL: u32 = 0x8055_ca81;

#[inline]
const fn key_slot(key: u32) -> usize {
    (key.wrapping_mul(KEY_MUL) >> 27) as usize
}

/// [`KEYS`] by slot; an empty slot holds 0, which no folded key equals.
static KEY_TABLE: [u32; 32] = {
    let mut table = [0u32; 32];
    let mut i = 0;
    while i < KEYS.len() {
        let key = fold_key(*KEYS[i]);
        let slot = key_slot(key);
        assert!(
            table[slot] == 0,
            "two level keys share a slot: pick another KEY_MUL"
        );
        table[slot] = key;
        i += 1;
    }
    table
};

/// Whether a keyword can match in the four bytes `window` that start at a space or `[`
/// or end at a colon (a necessary condition only: [`level_at`] decides).
#[inline]
fn known_key(window: &[u8; 4]) -> bool {
    let key = fold_key(*window);
    KEY_TABLE[key_slot(key)] == key
}

/// Whether a keyword can match at trigger `i` of `line`; true when too close to an end of
/// the line to tell.
#[cfg(test)]
fn may_match(line: &[u8], i: usize) -> bool {
    let j = if line[i] == b':' {
        i.wrapping_sub(3)
    } else {
        i
    };
    line.get(j..)
        .and_then(<[u8]>::first_chunk::<4>)
        .is_none_or(known_key)
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

/// What one pass over a plain line finds: the best (lowest) level a keyword announces
/// (`LEVEL_NAMES.len()` for none), and whether the line can be copied into a JSON string
/// as it is (no byte to escape, all ASCII). With `whole == false` the pass may stop once
/// the level is known to be ERROR (the second answer is then meaningless).
#[inline]
fn scan_plain(line: &[u8], whole: bool) -> (u8, bool) {
    let mut scan = PlainScan {
        best: LEVEL_NAMES.len() as u8,
        special: 0,
    };
    // Whole chunks first, with nothing to mask off; then the rest of the line.
    let mut base = 0;
    while let Some(chunk) = line[base..].first_chunk::<16>() {
        if !scan.chunk(line, chunk, u32::MAX, base, whole) {
            return (scan.best, scan.special == 0);
        }
        base += 16;
    }
    if base < line.len() {
        // The last chunk of a line of 16 bytes or more is its last 16 bytes, those seen
        // already masked off (no copy into a padded chunk).
        match line.last_chunk::<16>() {
            Some(c) => {
                let at = line.len() - 16;
                scan.chunk(line, c, u32::MAX << (base - at), at, whole);
            }
            None => {
                let mut c = [0u8; 16];
                c[..line.len()].copy_from_slice(line);
                scan.chunk(line, &c, !(u32::MAX << line.len()), 0, whole);
            }
        }
    }
    (scan.best, scan.special == 0)
}

/// [`scan_plain`]'s findings so far.
struct PlainScan {
    best: u8,
    special: u32,
}

impl PlainScan {
    /// Takes in `chunk`, the 16 bytes of `line` from `at`, of which the bits of `valid`
    /// are new. Returns false when the scan may stop (ERROR found, `whole` not asked).
    #[inline(always)]
    fn chunk(&mut self, line: &[u8], chunk: &[u8; 16], valid: u32, at: usize, whole: bool) -> bool {
        let m = chunk_masks(chunk);
        self.special |= m.special & valid;
        if self.best == ERROR {
            return whole;
        }
        // Most triggers are spaces between words: one load, one multiply and one compare
        // each rule them out.
        let mut opens = m.opens & valid;
        while opens != 0 {
            let i = at + opens.trailing_zeros() as usize;
            opens &= opens - 1;
            let hit = line
                .get(i..)
                .and_then(<[u8]>::first_chunk::<4>)
                .is_none_or(known_key);
            if hit && let Some(level) = level_at(line, i) {
                self.best = self.best.min(level);
            }
        }
        let mut colons = m.colons & valid;
        while colons != 0 {
            let i = at + colons.trailing_zeros() as usize;
            colons &= colons - 1;
            let hit = i
                .checked_sub(3)
                .and_then(|j| line[j..].first_chunk::<4>())
                .is_none_or(known_key);
            if hit && let Some(level) = level_at(line, i) {
                self.best = self.best.min(level);
            }
        }
        true
    }
}

/// The level a plain line announces (case-insensitive), or `""`.
pub fn detect_level(line: &[u8]) -> &'static str {
    level_name(scan_plain(line, false).0)
}

fn level_name(level: u8) -> &'static str {
    LEVEL_NAMES.get(usize::from(level)).copied().unwrap_or("")
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

/// `,"level":"…","message":` by level (the last for none), each padded to 32 bytes:
/// copied whole and cut back to its length, it is two vector moves instead of three
/// copies (one of them a call to memcpy for the level's name).
const LEVEL_KEYS: [([u8; 32], usize); LEVEL_NAMES.len() + 1] = {
    const fn key(level: &[u8]) -> ([u8; 32], usize) {
        let mut out = [0u8; 32];
        let mut n = 0;
        let parts: [&[u8]; 3] = [b",\"level\":\"", level, b"\",\"message\":"];
        let mut p = 0;
        while p < parts.len() {
            let mut i = 0;
            while i < parts[p].len() {
                out[n] = parts[p][i];
                n += 1;
                i += 1;
            }
            p += 1;
        }
        (out, n)
    }
    [
        key(LEVEL_NAMES[0].as_bytes()),
        key(LEVEL_NAMES[1].as_bytes()),
        key(LEVEL_NAMES[2].as_bytes()),
        key(LEVEL_NAMES[3].as_bytes()),
        key(LEVEL_NAMES[4].as_bytes()),
        key(b""),
    ]
};

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
    let (level, clean) = scan_plain(line, true);
    open_entry(out, &stamp.text, source_json);
    let (key, len) = &LEVEL_KEYS[usize::from(level).min(LEVEL_NAMES.len())];
    let at = out.len();
    out.extend_from_slice(key);
    out.truncate(at + len);
    if clean {
        out.push(b'"');
        out.extend_from_slice(line);
        out.push(b'"');
    } else {
        write_json_string(out, line);
    }
    out.push(b'}');
}

/// A line that is not taken as JSON (it is then carried as plain text).
struct NotJson;

type Scan<T> = Result<T, NotJson>;

/// serde_json's `Value` refuses a 128th level of nested arrays and objects. Depth is
/// counted as it will be in the entry, where the line's other keys sit under `fields`, so
/// that clients can read every entry written. It also bounds the scanner's recursion.
const MAX_DEPTH: u32 = 127;

/// What a top-level key means to an entry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Time,
    Timestamp,
    Ts,
    Level,
    Lvl,
    Severity,
    Msg,
    Message,
    Fields,
    Other,
}

impl Role {
    fn of(key: &[u8]) -> Role {
        match key {
            b"time" => Role::Time,
            b"timestamp" => Role::Timestamp,
            b"ts" => Role::Ts,
            b"level" => Role::Level,
            b"lvl" => Role::Lvl,
            b"severity" => Role::Severity,
            b"msg" => Role::Msg,
            b"message" => Role::Message,
            b"fields" => Role::Fields,
            _ => Role::Other,
        }
    }
}

/// One member of the line's object (or of its nested `fields`), borrowed from the line.
struct Member<'a> {
    /// Decoded; borrowed when the key has no escapes, so it can be written back as is.
    key: Cow<'a, [u8]>,
    /// The value's exact text, from its first byte to its last.
    value: &'a [u8],
    role: Role,
    /// Lifted out of `fields` (time, level, message, the merged `fields` object).
    taken: bool,
}

/// A JSON object line, validated and split into members in one pass.
struct Object<'a> {
    members: Vec<Member<'a>>,
    /// The members of the first top-level `fields` whose value is an object.
    nested: Vec<Member<'a>>,
    /// A raw CR or LF was met in whitespace: values holding one are copied without it.
    raw_breaks: bool,
}

fn hex4(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .try_fold(0, |n, &d| Some(n * 16 + char::from(d).to_digit(16)?))
}

/// The escape after a backslash (`bytes` starts at its letter): the character and the
/// escape's length without the backslash. `None` for what serde_json refuses, including a
/// surrogate that is not a leading one followed at once by `\u` and a trailing one.
fn escape(bytes: &[u8]) -> Option<(char, usize)> {
    let c = match *bytes.first()? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let unit = hex4(bytes.get(1..5)?)?;
            if !(0xD800..0xE000).contains(&unit) {
                return Some((char::from_u32(unit)?, 5));
            }
            if unit >= 0xDC00 || bytes.get(5..7)? != b"\\u" {
                return None;
            }
            let low = hex4(bytes.get(7..11)?)?;
            if !(0xDC00..0xE000).contains(&low) {
                return None;
            }
            let c = char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?;
            return Some((c, 11));
        }
        _ => return None,
    };
    Some((c, 1))
}

/// The text of a string body (quotes excluded) whose escapes the scanner accepted.
fn unescape(body: &[u8]) -> Scan<Vec<u8>> {
    let mut text = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.iter().position(|&b| b == b'\\') {
        text.extend_from_slice(&rest[..at]);
        let (c, len) = escape(&rest[at + 1..]).ok_or(NotJson)?;
        text.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        rest = &rest[at + 1 + len..];
    }
    text.extend_from_slice(rest);
    Ok(text)
}

/// A validating JSON scanner over one line: RFC 8259 with serde_json's limits (nesting
/// depth, numbers that overflow an f64). It notes positions, never builds values.
struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    raw_breaks: bool,
    /// A string holds a byte above 0x7f: the line's UTF-8 must be checked.
    non_ascii: bool,
}

impl<'a> Scanner<'a> {
    /// Skips whitespace and returns the byte after it, not consumed.
    #[inline]
    fn skip_ws(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b' ' | b'\t' => {}
                b'\r' | b'\n' => self.raw_breaks = true,
                _ => return Some(b),
            }
            self.pos += 1;
        }
        None
    }

    /// A string at `pos` (its opening quote): the body's range and whether it has escapes.
    #[inline]
    fn string(&mut self) -> Scan<(usize, usize, bool)> {
        let bytes = self.bytes;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            // Eight bytes at a time to the next one worth a look (non-ASCII only until
            // the first: one is enough to have the line's UTF-8 checked).
            let high = if self.non_ascii { 0 } else { HI };
            while let Some(word) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
                let x = u64::from_le_bytes(*word);
                let bits = escape_bits(x) | (x & high);
                if bits != 0 {
                    i += (bits.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            match *bytes.get(i).ok_or(NotJson)? {
                b'"' => {
                    self.pos = i + 1;
                    return Ok((start, i, escaped));
                }
                b'\\' => {
                    let (_, len) = escape(&bytes[i + 1..]).ok_or(NotJson)?;
                    escaped = true;
                    i += 1 + len;
                }
                0..0x20 => return Err(NotJson),
                0x80.. => {
                    self.non_ascii = true;
                    i += 1;
                }
                _ => i += 1,
            }
        }
    }

    fn number(&mut self) -> Scan<()> {
        let bytes = self.bytes;
        let digits = |mut i: usize| {
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        let start = self.pos;
        let int_start = start + usize::from(bytes[start] == b'-');
        let mut i = match bytes.get(int_start) {
            Some(b'0') => int_start + 1,
            Some(b'1'..=b'9') => digits(int_start + 1),
            _ => return Err(NotJson),
        };
        let int_digits = (i - int_start) as i64;
        if bytes.get(i) == Some(&b'.') {
            let end = digits(i + 1);
            if end == i + 1 {
                return Err(NotJson);
            }
            i = end;
        }
        let mut exponent = 0i64;
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            let negative = bytes.get(i) == Some(&b'-');
            i += usize::from(matches!(bytes.get(i), Some(b'+' | b'-')));
            let end = digits(i);
            if end == i {
                return Err(NotJson);
            }
            for d in &bytes[i..end] {
                exponent = (exponent * 10 + i64::from(d - b'0')).min(1 << 32);
            }
            if negative {
                exponent = -exponent;
            }
            i = end;
        }
        self.pos = i;
        // Readers make an f64 of a number and refuse infinity. Below 10^300 nothing can
        // overflow; nearer the limit, where it happens depends on serde_json's rounding,
        // so serde_json decides (such numbers are rare).
        if int_digits + exponent > 300
            && serde_json::from_slice::<serde_json::Value>(&bytes[start..i]).is_err()
        {
            return Err(NotJson);
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if !self.bytes[self.pos..].starts_with(word) {
            return Err(NotJson);
        }
        self.pos += word.len();
        Ok(())
    }

    /// A value after optional whitespace, inside `depth` arrays and objects; returns where
    /// it starts.
    fn value(&mut self, depth: u32) -> Scan<usize> {
        let first = self.skip_ws().ok_or(NotJson)?;
        let start = self.pos;
        match first {
            b'"' => self.string().map(drop)?,
            b'{' => self.object(depth + 1, |s, _| s.value(depth + 1).map(drop))?,
            b'[' => self.array(depth + 1)?,
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return Err(NotJson),
        }
        Ok(start)
    }

    fn array(&mut self, depth: u32) -> Scan<()> {
        if depth > MAX_DEPTH {
            return Err(NotJson);
        }
        self.pos += 1;
        if self.skip_ws() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            match self.skip_ws() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(NotJson),
            }
        }
    }

    /// An object at `pos` (its `{`), `depth` counting it; `member` is given each key's
    /// body range and escape flag, and must scan the value that follows.
    fn object(
        &mut self,
        depth: u32,
        mut member: impl FnMut(&mut Self, (usize, usize, bool)) -> Scan<()>,
    ) -> Scan<()> {
        if depth > MAX_DEPTH {
            return Err(NotJson);
        }
        self.pos += 1;
        if self.skip_ws() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.skip_ws() != Some(b'"') {
                return Err(NotJson);
            }
            let key = self.string()?;
            if self.skip_ws() != Some(b':') {
                return Err(NotJson);
            }
            self.pos += 1;
            member(self, key)?;
            match self.skip_ws() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(NotJson),
            }
        }
    }

    /// The decoded text of a key from [`Scanner::string`].
    fn key(&self, (start, end, escaped): (usize, usize, bool)) -> Scan<Cow<'a, [u8]>> {
        let body = &self.bytes[start..end];
        Ok(if escaped {
            Cow::Owned(unescape(body)?)
        } else {
            Cow::Borrowed(body)
        })
    }
}

impl<'a> Object<'a> {
    /// Reads `line` (trimmed, `{` to `}`) as one JSON object, refusing what serde_json
    /// would refuse as a `Value`, in the line or in the entry made of it.
    fn parse(line: &'a [u8]) -> Scan<Object<'a>> {
        let mut s = Scanner {
            bytes: line,
            pos: 0,
            raw_breaks: false,
            non_ascii: false,
        };
        let mut members = Vec::with_capacity(8);
        let mut nested = None;
        s.object(1, |s, key| {
            let key = s.key(key)?;
            let role = Role::of(&key);
            let merge = role == Role::Fields && nested.is_none() && s.skip_ws() == Some(b'{');
            let at = if merge {
                let at = s.pos;
                let mut inner = Vec::new();
                s.object(2, |s, key| {
                    let key = s.key(key)?;
                    let at = s.value(2)?;
                    inner.push(Member {
                        key,
                        value: &line[at..s.pos],
                        role: Role::Other,
                        taken: false,
                    });
                    Ok(())
                })?;
                nested = Some(inner);
                at
            } else {
                // Kept in the entry's `fields`, two levels down, not one as in the line.
                s.value(2)?
            };
            members.push(Member {
                key,
                value: &line[at..s.pos],
                role,
                taken: merge,
            });
            Ok(())
        })?;
        if s.pos != line.len() {
            return Err(NotJson);
        }
        // Outside strings valid JSON is ASCII, so checking the whole line is the same as
        // checking each string that holds a byte above 0x7f.
        if s.non_ascii && std::str::from_utf8(line).is_err() {
            return Err(NotJson);
        }
        Ok(Object {
            members,
            nested: nested.unwrap_or_default(),
            raw_breaks: s.raw_breaks,
        })
    }

    /// Marks as taken the first member with one of `roles` (in that order) whose value
    /// passes `usable`, and returns what `usable` made of it.
    fn take<T>(&mut self, roles: &[Role], usable: impl Fn(&'a [u8]) -> Option<T>) -> Option<T> {
        for &role in roles {
            for m in self.members.iter_mut() {
                if m.role == role
                    && !m.taken
                    && let Some(found) = usable(m.value)
                {
                    m.taken = true;
                    return Some(found);
                }
            }
        }
        None
    }

    /// Appends the nested `fields` members whose keys are not already there (top-level
    /// keys win, then the first of a nested duplicate).
    fn merge_nested(&mut self) {
        let nested = std::mem::take(&mut self.nested);
        // Comparing with every key is quickest for the usual handful; a set keeps a line
        // of thousands of keys from costing millions of comparisons.
        if self.members.len().saturating_mul(nested.len()) <= 1024 {
            for n in nested {
                if !self.members.iter().any(|m| !m.taken && m.key == n.key) {
                    self.members.push(n);
                }
            }
            return;
        }
        let mut seen: std::collections::HashSet<&[u8]> = self
            .members
            .iter()
            .filter(|m| !m.taken)
            .map(|m| &*m.key)
            .collect();
        let keep: Vec<bool> = nested.iter().map(|n| seen.insert(&n.key)).collect();
        drop(seen);
        self.members.extend(
            nested
                .into_iter()
                .zip(keep)
                .filter_map(|(n, k)| k.then_some(n)),
        );
    }
}

/// The entry's `time` for a value that is an RFC 3339 string (escapes allowed).
fn time_of(value: &[u8]) -> Option<[u8; 27]> {
    let body = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if body.contains(&b'\\') {
        timefmt::normalize_rfc3339(&unescape(body).ok()?)
    } else {
        timefmt::normalize_rfc3339(body)
    }
}

fn string_value(value: &[u8]) -> Option<&[u8]> {
    value.starts_with(b"\"").then_some(value)
}

// Not inlined: plain lines, the common case, would pay for this function's stack frame in
// `write_entry` (about 5 ns per plain line, measured with hot_paths).
#[inline(never)]
fn write_json_entry(out: &mut Vec<u8>, line: &[u8], source_json: &[u8], stamp: &Stamp) -> bool {
    let Ok(mut object) = Object::parse(line) else {
        return false;
    };
    let time = object.take(&[Role::Time, Role::Timestamp, Role::Ts], time_of);
    let level = object.take(&[Role::Level, Role::Lvl, Role::Severity], string_value);
    let message = object.take(&[Role::Msg, Role::Message], string_value);
    object.merge_nested();

    open_entry(out, &time.unwrap_or(stamp.text), source_json);
    // Strings hold no raw CR or LF, so level and message are copied as they are.
    out.extend_from_slice(b",\"level\":");
    out.extend_from_slice(level.unwrap_or(b"\"\""));
    out.extend_from_slice(b",\"message\":");
    out.extend_from_slice(message.unwrap_or(b"\"\""));
    let mut fields = object.members.iter().filter(|m| !m.taken).peekable();
    if fields.peek().is_none() {
        out.push(b'}');
        return true;
    }
    out.extend_from_slice(b",\"fields\":{");
    for (i, m) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match &m.key {
            Cow::Borrowed(key) => {
                out.push(b'"');
                out.extend_from_slice(key);
                out.push(b'"');
            }
            Cow::Owned(key) => write_json_string(out, key),
        }
        out.push(b':');
        if object.raw_breaks {
            // A raw CR or LF (JSON whitespace) would break SSE and NDJSON framing.
            out.extend(m.value.iter().filter(|&&b| b != b'\r' && b != b'\n'));
        } else {
            out.extend_from_slice(m.value);
        }
    }
    out.extend_from_slice(b"}}");
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

    /// Runs of bytes to escape, next to each other and across 8-byte words.
    #[test]
    fn escaping_runs_of_special_bytes_matches_a_byte_at_a_time() {
        let pieces: [&[u8]; 9] = [
            b"\"",
            b"\\",
            b"\n",
            b"\x01",
            b"\x1f",
            b"a",
            b"\x7f",
            b"\xc3\xa9",
            b"\xff",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let mut raw = Vec::new();
            for _ in 0..rng.below(40) {
                raw.extend_from_slice(rng.pick::<&[u8]>(&pieces));
            }
            let mut ours = Vec::new();
            write_json_string(&mut ours, &raw);
            let mut want = vec![b'"'];
            for c in String::from_utf8_lossy(&raw).chars() {
                match c {
                    '"' => want.extend_from_slice(b"\\\""),
                    '\\' => want.extend_from_slice(b"\\\\"),
                    '\n' => want.extend_from_slice(b"\\n"),
                    '\u{0}'..'\u{20}' => {
                        want.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                    }
                    _ => want.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            want.push(b'"');
            assert_eq!(ours, want, "{raw:?}");
        }
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
    fn level_detection_equals_the_reference_on_long_lines() {
        // Keywords (and near misses) at every offset of lines longer than a scan chunk,
        // in mixed case, next to bytes that fold like delimiters (`{` is `[` | 0x20).
        let words: [&[u8]; 12] = [
            b"error", b"ERR", b"Fatal", b"warn", b"WARNING", b"Info", b"inf", b"DEBUG", b"dbg",
            b"trace", b"ERRORS", b"inform",
        ];
        let forms: [(&[u8], &[u8]); 6] = [
            (b"[", b"]"),
            (b"", b":"),
            (b" ", b" "),
            (b"{", b"]"),
            (b"", b";"),
            (b"\t", b" "),
        ];
        // Past two 64-byte spans, so keywords straddle every kind of chunk boundary.
        let filler =
            b"lorem ipsum dolor sit amet, consectetur adipiscing elit sed do eiusmod ".repeat(3);
        for word in words {
            for (open, close) in forms {
                for at in 0..140 {
                    for total in [at + 8, at + 20, 70, 150] {
                        let mut line = filler[..at.min(filler.len())].to_vec();
                        line.extend_from_slice(open);
                        line.extend_from_slice(word);
                        line.extend_from_slice(close);
                        line.extend_from_slice(&filler[..total.saturating_sub(line.len())]);
                        assert_eq!(
                            detect_level(&line),
                            reference_level(&line),
                            "{:?}",
                            String::from_utf8_lossy(&line)
                        );
                    }
                }
            }
        }
        let pieces: [&[u8]; 12] = [
            b"[",
            b"]",
            b":",
            b" ",
            b"eRRor",
            b"warning",
            b"INF",
            b"Debug",
            b"dbG",
            b"trace",
            b"lorem ipsum ",
            b"x",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut line = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut r = seed;
            for _ in 0..(r % 40) {
                r = r.rotate_left(7) ^ 0x5851_f42d;
                line.extend_from_slice(pieces[(r % 12) as usize]);
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
    fn chunk_masks_agree_with_the_portable_code_and_the_definition() {
        let want = |c: &[u8; 16]| {
            let mut m = Masks {
                opens: 0,
                colons: 0,
                special: 0,
            };
            for (j, &b) in c.iter().enumerate() {
                m.opens |= u32::from(b == b' ' || b == b'[') << j;
                m.colons |= u32::from(b == b':') << j;
                m.special |= u32::from(b < 0x20 || b == b'"' || b == b'\\' || b >= 0x80) << j;
            }
            m
        };
        // Every byte value at every position, among neighbours that are and are not special.
        for fill in [b'a', 0u8, b' ', 0x80, 0xff, b'"', 0x1f, 0x20, 0x7f] {
            for at in 0..16 {
                for v in 0..=255u8 {
                    let mut c = [fill; 16];
                    c[at] = v;
                    assert_eq!(chunk_masks(&c), want(&c), "{c:?}");
                    assert_eq!(chunk_masks_portable(&c), want(&c), "{c:?}");
                }
            }
        }
        let mut seed = 0x1234_5678_9abc_def1u64;
        for _ in 0..100_000 {
            let mut c = [0u8; 16];
            for b in c.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            assert_eq!(chunk_masks(&c), want(&c), "{c:?}");
            assert_eq!(chunk_masks_portable(&c), want(&c), "{c:?}");
        }
    }

    #[test]
    fn every_keyword_key_passes_the_filter() {
        // Each keyword form, at the start of a line and after a prefix, is let through.
        let keywords = [
            "ERROR", "ERR", "FATAL", "WARN", "WARNING", "INFO", "INF", "DEBUG", "DBG", "TRACE",
        ];
        for k in keywords {
            for (line, i) in [
                (format!("[{k}]"), 0),
                (format!("{k}:"), k.len()),
                (format!("ab {k} cd"), 2),
            ] {
                for case in [line.to_ascii_lowercase(), line.to_ascii_uppercase()] {
                    // Five names have a spaced form (` ERROR `, not ` ERR ` or ` FATAL `).
                    let spaced = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&k);
                    let found = level_at(case.as_bytes(), i).is_some();
                    assert_eq!(found, i != 2 || spaced, "{case:?}");
                    if found {
                        assert!(may_match(case.as_bytes(), i), "{case:?} at {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn plain_entries_equal_the_escaping_path_wherever_the_special_byte_is() {
        // A clean line is copied as it is; one byte to escape (or a non-ASCII one) anywhere,
        // in the first chunk, the last or a partial one, sends it through the escaping.
        let mut src = Vec::new();
        write_json_string(&mut src, b"app.log");
        let st = stamp();
        let specials: [&[u8]; 7] = [
            b"\"",
            b"\\",
            b"\x01",
            b"\x1f",
            b"\xc3\xa9",
            b"\xff",
            b"\x7f",
        ];
        for len in [
            0usize, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 70, 99, 100, 128, 140,
        ] {
            let base: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mut cases = vec![base.clone()];
            for sp in specials {
                for at in 0..=len {
                    let mut l = base[..at].to_vec();
                    l.extend_from_slice(sp);
                    l.extend_from_slice(&base[at..]);
                    cases.push(l);
                }
            }
            // Each level's name too, and none.
            for keyword in ["[ERROR] ", "[warn] ", "INFO: ", "debug: ", "[TRACE] ", ""] {
                cases.push([keyword.as_bytes(), &base].concat());
            }
            for line in cases {
                let mut got = Vec::new();
                write_entry(&mut got, &line, &src, &st);
                let mut want = Vec::new();
                open_entry(&mut want, &st.text, &src);
                want.extend_from_slice(b",\"level\":\"");
                want.extend_from_slice(detect_level(&line).as_bytes());
                want.extend_from_slice(b"\",\"message\":");
                write_json_string(&mut want, &line);
                want.push(b'}');
                assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&line));
            }
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

    const STAMP_TEXT: &str = "2024-01-01T12:00:00.123456Z";

    fn render(line: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_entry(&mut out, line, b"\"s\"", &stamp());
        out
    }

    /// What `write_entry` gives a line it does not take as JSON.
    fn plain(line: &[u8]) -> Vec<u8> {
        let mut out = format!(
            r#"{{"time":"{STAMP_TEXT}","source":"s","level":"{}","message":"#,
            detect_level(line)
        )
        .into_bytes();
        write_json_string(&mut out, line);
        out.push(b'}');
        out
    }

    /// Exact output for JSON-looking lines, recorded from the two-pass implementation (a
    /// full `serde_json::Value` parse to validate, then `RawValue` members); `None` means
    /// the line is carried as plain text.
    const RECORDED: &[(&[u8], Option<&str>)] = &[
        // The bench line; duplicate keys (the first usable one is lifted, the rest kept).
        (br#"{"ts":"2024-05-01T10:00:00.123Z","level":"info","msg":"request served","user_id":"12345","latency_ms":3.5,"path":"/api/v1/items","fields":{"request_id":"abc-123"}}"#, Some(r#"{"time":"2024-05-01T10:00:00.123000Z","source":"s","level":"info","message":"request served","fields":{"user_id":"12345","latency_ms":3.5,"path":"/api/v1/items","request_id":"abc-123"}}"#)),
        (br#"{"a":1,"a":2,"level":"x","level":"y","msg":1,"msg":"m"}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"x","message":"m","fields":{"a":1,"a":2,"level":"y","msg":1}}"#)),
        // Escaped keys are compared and re-written decoded.
        (br#"{"\u0074ime":"2024-01-01T00:00:00Z","l\u0065vel":"warn","k\"q":1,"\u00e9":2,"\ud83d\ude00":3,"tab\t":4,"\/":5,"\u001f\b":6,"\u007f":7,"":8}"#, Some("{\"time\":\"2024-01-01T00:00:00.000000Z\",\"source\":\"s\",\"level\":\"warn\",\"message\":\"\",\"fields\":{\"k\\\"q\":1,\"\u{e9}\":2,\"\u{1f600}\":3,\"tab\\t\":4,\"/\":5,\"\\u001f\\b\":6,\"\u{7f}\":7,\"\":8}}")),
        // A nested `fields` object: the first object-valued one is merged, top-level keys win.
        (br#"{"fields":{"a":1,"b":2,"a":3,"msg":"n"},"b":0,"msg":"top","fields":{"c":1}}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"top","fields":{"b":0,"fields":{"c":1},"a":1,"msg":"n"}}"#)),
        (br#"{"fields":1,"fields":{"x":1}}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"fields":1,"x":1}}"#)),
        (br#"{"fields":{"fields":{"y":1}}}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"fields":{"y":1}}}"#)),
        (br#"{"fields":{}}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":""}"#)),
        (br#"{"fields":{"a":1},"a":2}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":2}}"#)),
        // Surrogates: only proper pairs.
        (br#"{"msg":"\ud800"}"#, None),
        (br#"{"msg":"\udc00"}"#, None),
        (br#"{"msg":"\ud800\u0041"}"#, None),
        (br#"{"msg":"\ud800\\"}"#, None),
        (br#"{"msg":"\ud800\ud800"}"#, None),
        (br#"{"msg":"\ud83d\ude00"}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"\ud83d\ude00"}"#)),
        (br#"{"\ud800":1}"#, None),
        // Numbers: the grammar, and the range a JSON reader accepts.
        (br#"{"a":1e400}"#, None),
        (br#"{"a":-1e400}"#, None),
        (br#"{"a":1e308}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":1e308}}"#)),
        (br#"{"a":1.7976931348623157e308}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":1.7976931348623157e308}}"#)),
        (br#"{"a":1.8e308}"#, None),
        (br#"{"a":1e-400}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":1e-400}}"#)),
        (br#"{"a":0e99999}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":0e99999}}"#)),
        (br#"{"a":1e99999999999}"#, None),
        (br#"{"a":0e99999999999}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":0e99999999999}}"#)),
        (br#"{"a":-0.0e+00000000000000000000005}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":-0.0e+00000000000000000000005}}"#)),
        (br#"{"a":01}"#, None),
        (br#"{"a":1.}"#, None),
        (br#"{"a":.5}"#, None),
        (br#"{"a":-}"#, None),
        (br#"{"a":+1}"#, None),
        (br#"{"a":1e}"#, None),
        (br#"{"a":1E+2}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":1E+2}}"#)),
        (br#"{"a":-0}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":-0}}"#)),
        // Structure and trailing garbage.
        (br#"{"a":1} x"#, None),
        (br#"{"a":1}}"#, None),
        (br#"{"a":1},{"b":2}"#, None),
        (br#"{"a":1,}"#, None),
        (br#"{"a" 1}"#, None),
        (br#"{,}"#, None),
        (br#"{}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":""}"#)),
        (br#"{ }"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":""}"#)),
        // Around the object: ASCII whitespace (form feed too) is trimmed, a BOM is not.
        (b"\xef\xbb\xbf{\"a\":1}", None),
        (b"  {\"a\":1}  \x09", Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":1}}"#)),
        (b"\x0c{\"a\":1}\x0c", Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":1}}"#)),
        (b"{\x0c\"a\":1}", None),
        // Inside values: spacing kept; raw control characters and bad UTF-8 refused.
        (b"{ \"a\" : 1 , \"b\" :\x09[ 1 , 2 ] }", Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":1,"b":[ 1 , 2 ]}}"#)),
        (b"{\"a\":\"x\x09y\"}", None),
        (b"{\"a\":\"x\x7fy\"}", Some("{\"time\":\"2024-01-01T12:00:00.123456Z\",\"source\":\"s\",\"level\":\"\",\"message\":\"\",\"fields\":{\"a\":\"x\u{7f}y\"}}")),
        (b"{\"a\":\"\xff\"}", None),
        (b"{\"a\":\"\xc3\xa9\"}", Some("{\"time\":\"2024-01-01T12:00:00.123456Z\",\"source\":\"s\",\"level\":\"\",\"message\":\"\",\"fields\":{\"a\":\"\u{e9}\"}}")),
        (b"{\"\xc3\xa9\":\"\xc3\"}", None),
        // time / timestamp / ts: the first RFC 3339 string in key order; escapes are decoded.
        (br#"{"time":"bad","timestamp":"2024-01-01T00:00:00Z"}"#, Some(r#"{"time":"2024-01-01T00:00:00.000000Z","source":"s","level":"","message":"","fields":{"time":"bad"}}"#)),
        (br#"{"ts":"2024-01-01T00:00:00Z","time":"2024-02-01T00:00:00Z"}"#, Some(r#"{"time":"2024-02-01T00:00:00.000000Z","source":"s","level":"","message":"","fields":{"ts":"2024-01-01T00:00:00Z"}}"#)),
        (br#"{"time":"2024-01-01T00:00:00\u005a"}"#, Some(r#"{"time":"2024-01-01T00:00:00.000000Z","source":"s","level":"","message":""}"#)),
        (br#"{"time":1,"time":"2024-01-01T00:00:00+01:00"}"#, Some(r#"{"time":"2023-12-31T23:00:00.000000Z","source":"s","level":"","message":"","fields":{"time":1}}"#)),
        (br#"{"time":"2024-01-01T00:00:00Z","time":"2025-01-01T00:00:00Z"}"#, Some(r#"{"time":"2024-01-01T00:00:00.000000Z","source":"s","level":"","message":"","fields":{"time":"2025-01-01T00:00:00Z"}}"#)),
        // Literals.
        (br#"{"a":true,"b":false,"c":null,"d":[],"e":{},"f":[{},[[]]]}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":true,"b":false,"c":null,"d":[],"e":{},"f":[{},[[]]]}}"#)),
        (br#"{"a":tru}"#, None),
        (br#"{"a":nulls}"#, None),
        // Raw CR/LF as whitespace never reaches the output.
        (b"{\"a\":\x0d\x0a[1,\x0a2]\x0d}", Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":[1,2]}}"#)),
        // Not an object; string values are copied as written, escapes included.
        (br#"[1]"#, None),
        (br#"{"level":"\u0057ARN","msg":"a\"b\\c\/"}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"\u0057ARN","message":"a\"b\\c\/"}"#)),
        // Escapes.
        (br#"{"a":"\x"}"#, None),
        (br#"{"a":"\u12"}"#, None),
        (br#"{"a":"\u12G4"}"#, None),
        (br#"{"a":"\uDEAD"}"#, None),
        (br#"{"a":"\uD83D\uDE00"}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":"\uD83D\uDE00"}}"#)),
        // Level and message: the first string in key order.
        (br#"{"level":5,"lvl":"warn","severity":"error","message":"m2","msg":"m1"}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"warn","message":"m1","fields":{"level":5,"severity":"error","message":"m2"}}"#)),
        // Malformed nesting.
        (br#"{"a":[1,2,],"b":1}"#, None),
        (br#"{"a":{"b":1,}}"#, None),
        (br#"{"a":{"b"}}"#, None),
        (br#"{"a":{1:2}}"#, None),
        (br#"{"a":"unterminated}"#, None),
        (br#"{"a":1 "b":2}"#, None),
        (br#"{"a":[1 2]}"#, None),
        // No other key: no `fields`.
        (br#"{"message":"only"}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"only"}"#)),
        // Big and tiny numbers that stay in range.
        (br#"{"a":123456789012345678901234567890}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":123456789012345678901234567890}}"#)),
        (br#"{"a":0.000000000000000000000000000000000000001e-310}"#, Some(r#"{"time":"2024-01-01T12:00:00.123456Z","source":"s","level":"","message":"","fields":{"a":0.000000000000000000000000000000000000001e-310}}"#)),
    ];

    #[test]
    fn json_lines_give_the_recorded_bytes() {
        for (line, want) in RECORDED {
            let want = match want {
                Some(w) => w.as_bytes().to_vec(),
                None => plain(line),
            };
            assert_eq!(
                String::from_utf8_lossy(&render(line)),
                String::from_utf8_lossy(&want),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    /// serde_json's `Value` gives up at 128 nested arrays and objects. A line's values sit
    /// one level deeper in its entry (under `fields`) unless they are merged from a nested
    /// `fields`: a line is taken as JSON only when its entry can be read too.
    #[test]
    fn nesting_deeper_than_a_json_reader_allows_makes_a_plain_line() {
        for depth in [1usize, 2, 100, 122, 123, 124, 125, 126, 127, 128, 1000] {
            let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let objects = format!("{}1{}", r#"{"o":"#.repeat(depth), "}".repeat(depth));
            for inner in [arrays, objects] {
                for (line, entry_depth) in [
                    (format!(r#"{{"a":{inner}}}"#), 2 + depth),
                    (
                        format!(r#"{{"msg":"m","fields":{{"b":{inner}}}}}"#),
                        2 + depth,
                    ),
                    (format!(r#"{{"a":[1,{{"b":{inner}}}]}}"#), 4 + depth),
                    (
                        format!(r#"{{"fields":1,"fields":{{"b":{inner}}}}}"#),
                        2 + depth,
                    ),
                ] {
                    let out = render(line.as_bytes());
                    let taken = out != plain(line.as_bytes());
                    assert_eq!(taken, entry_depth <= 127, "{depth}: {line}");
                    assert!(
                        serde_json::from_slice::<Value>(&out).is_ok(),
                        "{depth}: {line}"
                    );
                }
            }
        }
        // The two-pass writer took this line (127 levels) and wrote an entry of 128.
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(126), "]".repeat(126));
        assert!(serde_json::from_str::<Value>(&deep).is_ok());
        assert_eq!(render(deep.as_bytes()), plain(deep.as_bytes()));
    }

    #[test]
    fn numbers_out_of_a_json_readers_range_make_a_plain_line() {
        let cases = [
            ("1".to_string() + &"0".repeat(308), true),
            ("2".to_string() + &"0".repeat(308), false),
            ("-9".to_string() + &"9".repeat(400), false),
            ("0.".to_string() + &"0".repeat(400) + "1", true),
            ("1".to_string() + &"0".repeat(400) + "e-400", true),
            ("1".to_string() + &"0".repeat(400) + "e-90", false),
            ("0.".to_string() + &"0".repeat(400) + "1e700", true),
            ("0.".to_string() + &"0".repeat(300) + "1e700", false),
            ("1e2147483647".to_string(), false),
            ("1e2147483648".to_string(), false),
            ("1e-2147483648".to_string(), true),
            ("0.0e2147483648".to_string(), true),
            ("17976931348623157e292".to_string(), true),
            ("17976931348623159e292".to_string(), false),
            ("18446744073709551615".to_string(), true),
            ("18446744073709551616".to_string(), true),
            ("-9223372036854775809".to_string(), true),
        ];
        for (number, ok) in cases {
            let line = format!(r#"{{"n":{number}}}"#);
            assert_eq!(serde_json::from_str::<Value>(&line).is_ok(), ok, "{number}");
            let want = if ok {
                format!(
                    r#"{{"time":"{STAMP_TEXT}","source":"s","level":"","message":"","fields":{{"n":{number}}}}}"#
                )
                .into_bytes()
            } else {
                plain(line.as_bytes())
            };
            assert_eq!(render(line.as_bytes()), want, "{number}");
        }
    }

    /// A small xorshift generator: the tests stay deterministic without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    /// A random JSON value, mostly of the pieces log lines and the edges above are made of.
    fn random_value(rng: &mut Rng, out: &mut Vec<u8>, depth: usize) {
        const KEYS: &[&str] = &[
            r#""time""#,
            r#""ts""#,
            r#""timestamp""#,
            r#""level""#,
            r#""lvl""#,
            r#""severity""#,
            r#""msg""#,
            r#""message""#,
            r#""fields""#,
            r#""a""#,
            r#""b""#,
            r#""\u0061""#,
            r#""t\u0069me""#,
            r#""é""#,
            r#""""#,
        ];
        const SCALARS: &[&str] = &[
            "0",
            "-1",
            "3.5",
            "1e400",
            "-2.5E-3",
            "123456789012345678901234567890",
            "true",
            "false",
            "null",
            r#""2024-01-01T00:00:00Z""#,
            r#""2024-01-01T00:00:00\u005A""#,
            r#""2024-13-01T00:00:00Z""#,
            r#""warn""#,
            r#""a\"b\\c\/\b\f\n\r\t""#,
            r#""\ud83d\ude00""#,
            r#""\ud800""#,
            r#""\udc00x""#,
            r#""é\u00e9""#,
            r#""""#,
        ];
        let ws = |rng: &mut Rng, out: &mut Vec<u8>| {
            if rng.below(4) == 0 {
                out.extend_from_slice(rng.pick(&[" ", "\t", "\r", "\n", "  "]).as_bytes());
            }
        };
        ws(rng, out);
        match if depth == 0 { 2 } else { rng.below(5) } {
            0 => {
                out.push(b'{');
                for i in 0..rng.below(5) {
                    if i > 0 {
                        out.push(b',');
                    }
                    ws(rng, out);
                    out.extend_from_slice(rng.pick(KEYS).as_bytes());
                    ws(rng, out);
                    out.push(b':');
                    random_value(rng, out, depth - 1);
                }
                ws(rng, out);
                out.push(b'}');
            }
            1 => {
                out.push(b'[');
                for i in 0..rng.below(4) {
                    if i > 0 {
                        out.push(b',');
                    }
                    random_value(rng, out, depth - 1);
                }
                out.push(b']');
            }
            _ => out.extend_from_slice(rng.pick(SCALARS).as_bytes()),
        }
        ws(rng, out);
    }

    /// Random objects, some with a byte changed, inserted or removed: a line is taken as
    /// JSON exactly when serde_json reads it as a `Value`, and the entry is always JSON.
    #[test]
    fn json_lines_are_taken_exactly_when_serde_json_reads_them() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        const NOISE: &[u8] = b"{}[]\":,\\ -+.0159eEtrufalsn\x00\x0c\r\n\xff\xc3u";
        let (mut taken, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let mut line = Vec::new();
            line.push(b'{');
            for i in 0..rng.below(6) {
                if i > 0 {
                    line.push(b',');
                }
                line.extend_from_slice(rng.pick(&[r#""a""#, r#""msg""#, r#""fields""#]).as_bytes());
                line.push(b':');
                random_value(&mut rng, &mut line, 3);
            }
            line.push(b'}');
            for _ in 0..rng.below(3) {
                let at = rng.below(line.len());
                match rng.below(3) {
                    0 => line[at] = *rng.pick(NOISE),
                    1 => line.insert(at, *rng.pick(NOISE)),
                    _ => {
                        line.remove(at);
                    }
                }
            }
            let out = render(&line);
            let looks = line.trim_ascii().starts_with(b"{") && line.trim_ascii().ends_with(b"}");
            let json_ok = looks && serde_json::from_slice::<Value>(line.trim_ascii()).is_ok();
            assert_eq!(
                out != plain(&line),
                json_ok,
                "{:?}",
                String::from_utf8_lossy(&line)
            );
            if json_ok {
                taken += 1
            } else {
                refused += 1
            }
            if let Err(e) = serde_json::from_slice::<Value>(&out) {
                panic!("{e}: {}", String::from_utf8_lossy(&out));
            }
        }
        assert!(
            taken > 5_000 && refused > 5_000,
            "{taken} taken, {refused} refused"
        );
    }

    /// Keys are compared decoded, whatever their escapes, for lifting and for merging.
    #[test]
    fn escaped_keys_are_known_keys() {
        let cases = [
            (
                r#"{"\u006dsg":"m","fi\u0065lds":{"x":1}}"#,
                r#""level":"","message":"m","fields":{"x":1}}"#,
            ),
            (
                r#"{"a":1,"fields":{"\u0061":2,"b":3,"\u0062":4}}"#,
                r#""level":"","message":"","fields":{"a":1,"b":3}}"#,
            ),
            (
                r#"{"\u0066ields":1,"fields":{"\u0066ields":2}}"#,
                r#""level":"","message":"","fields":{"fields":1}}"#,
            ),
        ];
        for (line, want) in cases {
            let want = format!(r#"{{"time":"{STAMP_TEXT}","source":"s",{want}"#);
            assert_eq!(String::from_utf8(render(line.as_bytes())).unwrap(), want);
        }
    }

    /// Past about a thousand key comparisons the merge of a nested `fields` switches to a
    /// set; either way top-level keys win, then the first of nested duplicates.
    #[test]
    fn nested_fields_merge_the_same_with_many_keys() {
        for (top, inner) in [(2, 3), (30, 30), (40, 40), (600, 400)] {
            let mut line = String::from("{");
            let mut want = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for i in 0..top {
                line += &format!(r#""k{}":"t{i}","#, i * 2);
                want.push(format!(r#""k{}":"t{i}""#, i * 2));
                seen.insert(format!("k{}", i * 2));
            }
            line += r#""fields":{"#;
            for i in 0..inner {
                // Odd keys are new, even ones clash with the top level; each comes twice,
                // once written with an escape.
                let key = format!("k{}", i);
                line += &format!(r#""{key}":{i},"\u006b{}":-{i},"#, &key[1..]);
                if seen.insert(key.clone()) {
                    want.push(format!(r#""{key}":{i}"#));
                }
            }
            line.pop();
            line += "}}";
            let out = render(line.as_bytes());
            let want = format!(
                r#"{{"time":"{STAMP_TEXT}","source":"s","level":"","message":"","fields":{{{}}}}}"#,
                want.join(",")
            );
            assert!(
                out == want.as_bytes(),
                "{top} top-level and {inner} nested keys:\n{}",
                String::from_utf8_lossy(&out)
            );
        }
    }
}
