//! Which lines and entries get through (SPEC §14), in three parts:
//!
//! - [`StreamFilters`]: the `[[streams.filters]]` of a stream, applied to each raw line
//!   before it becomes an entry, so a dropped line costs no buffer space and no client.
//! - [`ClientFilter`]: what one client asked for in its stream URL's query
//!   (`levels`, `filter`, `exclude`, `source`), parsed strictly enough that a mistake is a
//!   400 naming the parameter ([`QueryError`]).
//! - [`FilterSet`]: the distinct client filters of a stream. Clients with the same filter
//!   share one slot, and [`FilterSet::evaluate`] tests every slot once per entry into a
//!   bitmask, so the cost per entry grows with the number of distinct filters, never with
//!   the number of clients.
//!
//! Patterns are `regex-lite` syntax: no Unicode tables (small), and a guaranteed
//! O(pattern × text) search, which matters because client patterns come from anyone who
//! can reach the port. Consequently `\w`, `\d`, `\s`, `\b` and `(?i)` are ASCII-only.
//! Patterns that are plain words skip the regex engine (see `Matcher`).

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use memchr::memmem;
use regex_lite::{Regex, RegexBuilder};

use crate::tail::glob;

// ---------------------------------------------------------------------------------------
// Patterns

/// A compiled pattern. regex-lite has no literal prefilter and scans about 40 MB/s, which
/// at ~3 µs per short message is ten times logwisp's whole cost per line; the `regex`
/// crate would be 20–40× faster but adds 1.1 MB to a 2.1 MB binary. Most filters typed in
/// practice are words or `a|b|c` lists of words, optionally under `(?i)`: those are
/// searched with memchr (already linked through serde_json) and give exactly the answer
/// regex-lite would (its `(?i)` folds ASCII only, as the search below does). Everything
/// else runs on regex-lite.
#[derive(Debug)]
enum Matcher {
    Literals(Vec<memmem::Finder<'static>>),
    AsciiNoCase(Vec<Box<[u8]>>),
    Regex(Regex),
}

/// Characters that make a pattern more than a literal (and `|`, handled apart).
const META: &[u8] = b"\\.+*?()[]{}^$";

impl Matcher {
    /// Compiles `pattern` with regex-lite (which validates it and applies `size_limit`
    /// even when the literal search is used) and picks the fastest exact search.
    fn new(pattern: &str, size_limit: usize) -> Result<Matcher, regex_lite::Error> {
        let regex = RegexBuilder::new(pattern).size_limit(size_limit).build()?;
        let (nocase, rest) = match pattern.strip_prefix("(?i)") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let words: Vec<&str> = rest.split('|').collect();
        if words
            .iter()
            .any(|w| w.is_empty() || w.bytes().any(|b| META.contains(&b)))
        {
            return Ok(Matcher::Regex(regex));
        }
        Ok(if nocase {
            Matcher::AsciiNoCase(words.iter().map(|w| w.as_bytes().into()).collect())
        } else {
            Matcher::Literals(
                words
                    .iter()
                    .map(|w| memmem::Finder::new(w.as_bytes()).into_owned())
                    .collect(),
            )
        })
    }

    fn is_match(&self, text: &str) -> bool {
        match self {
            Matcher::Literals(fs) => fs.iter().any(|f| f.find(text.as_bytes()).is_some()),
            Matcher::AsciiNoCase(ws) => {
                ws.iter().any(|w| contains_ascii_nocase(text.as_bytes(), w))
            }
            Matcher::Regex(r) => r.is_match(text),
        }
    }
}

/// Whether `needle` (non-empty) occurs in `hay`, ASCII letters compared without case.
/// Candidates are found by the first byte in either case with memchr2.
fn contains_ascii_nocase(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, tail)) = needle.split_first() else {
        return true;
    };
    if hay.len() < needle.len() {
        return false;
    }
    let last_start = hay.len() - needle.len();
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let mut from = 0;
    while let Some(i) = memchr::memchr2(lo, up, &hay[from..=last_start]) {
        let at = from + i;
        if hay[at + 1..at + needle.len()].eq_ignore_ascii_case(tail) {
            return true;
        }
        from = at + 1;
    }
    false
}

// ---------------------------------------------------------------------------------------
// Stream filters (config)

/// What a `[[streams.filters]]` entry does with the lines its patterns match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// Keep only lines that match.
    Include,
    /// Drop lines that match.
    Exclude,
}

impl FilterKind {
    /// The config spelling (`type = "include" | "exclude"`), exact and lower case like the
    /// rest of the config's enumerations.
    pub fn parse(s: &str) -> Option<FilterKind> {
        match s {
            "include" => Some(FilterKind::Include),
            "exclude" => Some(FilterKind::Exclude),
            _ => None,
        }
    }
}

/// How the patterns of one filter combine: `or` = any matches, `and` = all match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Logic {
    #[default]
    Or,
    And,
}

impl Logic {
    /// The config spelling (`logic = "or" | "and"`; absent means `or`).
    pub fn parse(s: &str) -> Option<Logic> {
        match s {
            "or" => Some(Logic::Or),
            "and" => Some(Logic::And),
            _ => None,
        }
    }
}

/// One `[[streams.filters]]` table as the config holds it (comparable, so a reload can
/// tell whether a stream's filters changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    pub kind: FilterKind,
    pub logic: Logic,
    pub patterns: Vec<String>,
}

/// A stream filter that cannot be compiled. `filter` and `pattern` are indices into the
/// stream's `filters` array and that filter's `patterns` (0-based, like config key paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFilterError {
    pub filter: usize,
    pub pattern: Option<usize>,
    pub message: String,
}

impl StreamFilterError {
    /// The key path below the stream, e.g. `filters[1].patterns[0]`; the config prefixes
    /// `streams[i].`.
    pub fn key(&self) -> String {
        match self.pattern {
            Some(p) => format!("filters[{}].patterns[{p}]", self.filter),
            None => format!("filters[{}].patterns", self.filter),
        }
    }
}

impl fmt::Display for StreamFilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key(), self.message)
    }
}

impl std::error::Error for StreamFilterError {}

#[derive(Debug)]
struct CompiledFilter {
    kind: FilterKind,
    logic: Logic,
    patterns: Vec<Matcher>,
}

/// The compiled `[[streams.filters]]` of one stream.
#[derive(Debug, Default)]
pub struct StreamFilters {
    filters: Vec<CompiledFilter>,
}

impl StreamFilters {
    /// Compiles every pattern; the first that fails is named in the error with its text.
    /// A filter without patterns is refused: as an include it would drop every line (or,
    /// with `and`, none), and neither is likely what was meant.
    pub fn new(specs: &[FilterSpec]) -> Result<StreamFilters, StreamFilterError> {
        let mut filters = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            if spec.patterns.is_empty() {
                return Err(StreamFilterError {
                    filter: i,
                    pattern: None,
                    message: "a filter needs at least one pattern".into(),
                });
            }
            let mut patterns = Vec::with_capacity(spec.patterns.len());
            for (j, p) in spec.patterns.iter().enumerate() {
                let re =
                    Matcher::new(p, CONFIG_REGEX_SIZE_LIMIT).map_err(|e| StreamFilterError {
                        filter: i,
                        pattern: Some(j),
                        message: format!("`{p}` is not a valid regex: {e}"),
                    })?;
                patterns.push(re);
            }
            filters.push(CompiledFilter {
                kind: spec.kind,
                logic: spec.logic,
                patterns,
            });
        }
        Ok(StreamFilters { filters })
    }

    /// No filters: every line is kept (and [`keep`](Self::keep) costs nothing).
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Whether a raw line (without its newline) passes every filter, in order.
    ///
    /// Patterns are matched against the line as clients will see it: bytes that are not
    /// UTF-8 are replaced by U+FFFD first, exactly as the entry's `message` replaces them
    /// (SPEC §4), so `\x{FFFD}` or `.` matches them and a filter never sees something a
    /// client cannot. Valid UTF-8 (the usual case) is borrowed, not copied.
    #[inline]
    pub fn keep(&self, line: &[u8]) -> bool {
        // Inlined, so a stream without filters pays one compare per line, not a call.
        self.filters.is_empty() || self.keep_filtered(line)
    }

    #[inline(never)]
    fn keep_filtered(&self, line: &[u8]) -> bool {
        let text = String::from_utf8_lossy(line);
        self.filters.iter().all(|f| {
            let hit = match f.logic {
                Logic::Or => f.patterns.iter().any(|r| r.is_match(&text)),
                Logic::And => f.patterns.iter().all(|r| r.is_match(&text)),
            };
            match f.kind {
                FilterKind::Include => hit,
                FilterKind::Exclude => !hit,
            }
        })
    }
}

// ---------------------------------------------------------------------------------------
// Client filters (query string)

/// Config patterns are trusted: regex-lite's own default (10 MiB compiled) is enough of a
/// guard against a typo like `a{1000}{1000}`.
const CONFIG_REGEX_SIZE_LIMIT: usize = 10 << 20;
/// Longest accepted `filter`/`exclude` pattern, decoded. Client patterns are untrusted and
/// search time is O(pattern × text): this and the compiled-size limit bound the work one
/// client can make the reactor do per entry.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Compiled-size limit of a client regex (regex-lite's "approximate heap bytes"): ample for
/// any hand-written pattern, small enough that `a{1000}{1000}` is refused.
const CLIENT_REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Longest accepted `source` glob.
pub const MAX_GLOB_BYTES: usize = 256;
/// At most this many names in `levels`, each at most [`MAX_LEVEL_BYTES`].
pub const MAX_LEVELS: usize = 32;
pub const MAX_LEVEL_BYTES: usize = 32;

/// A query parameter the server will not accept: the HTTP layer answers `400` with this
/// text (it names the parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub param: String,
    pub reason: String,
}

impl QueryError {
    fn new(param: &str, reason: impl Into<String>) -> QueryError {
        QueryError {
            param: param.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query parameter `{}`: {}", self.param, self.reason)
    }
}

impl std::error::Error for QueryError {}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a
/// byte. A `%` not followed by two hex digits stays literal, as in browsers
/// (WHATWG URL), so `filter=100%` means what it says. The decoded bytes must be UTF-8:
/// patterns and globs are text, and guessing would make a filter match something else.
fn decode(s: &str) -> Result<Cow<'_, str>, ()> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| ())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The decoded `name=value` pairs of a query, in order; empty segments (`a=1&&b=2`) are
/// skipped and a segment without `=` has an empty value. Shared with the HTTP layer so
/// every parameter (e.g. `last_event_id`) is decoded the same way.
pub fn query_pairs(
    query: &str,
) -> impl Iterator<Item = Result<(Cow<'_, str>, Cow<'_, str>), QueryError>> {
    query.split('&').filter(|s| !s.is_empty()).map(|seg| {
        let (raw_name, raw_value) = seg.split_once('=').unwrap_or((seg, ""));
        let name = decode(raw_name)
            .map_err(|()| QueryError::new(raw_name, "name is not UTF-8 once decoded"))?;
        let value = decode(raw_value)
            .map_err(|()| QueryError::new(&name, "value is not UTF-8 once decoded"))?;
        Ok((name, value))
    })
}

/// `last_event_id=N` from a query: the resume position for clients that cannot send the
/// `Last-Event-ID` header (WebSocket, and a browser page re-creating its EventSource).
/// When a request carries both, the header should win: it is what the browser sends on
/// its own reconnects, so it is newer than the URL the page built.
pub fn last_event_id(query: Option<&str>) -> Result<Option<u64>, QueryError> {
    let mut found = None;
    for pair in query_pairs(query.unwrap_or("")) {
        let (name, value) = pair?;
        if name == "last_event_id" && !value.is_empty() {
            if found.is_some() {
                return Err(QueryError::new(&name, "given more than once"));
            }
            let id = value
                .parse::<u64>()
                .map_err(|_| QueryError::new(&name, format!("`{value}` is not an event id")))?;
            found = Some(id);
        }
    }
    Ok(found)
}

/// The `levels` a client accepts: names compared ASCII-case-insensitively (entries from
/// JSON lines carry whatever level their program wrote, `warning` or `Fatal`), and `none`
/// for entries without a level.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Levels {
    /// Upper case, sorted, without duplicates.
    names: Vec<Box<str>>,
    /// `none` was listed. It also stays in `names` as `NONE`, so an entry whose level is
    /// literally `none` is selected by it too.
    none: bool,
}

impl Levels {
    fn parse(lists: &[Cow<'_, str>]) -> Result<Option<Levels>, QueryError> {
        let mut names: Vec<Box<str>> = Vec::new();
        for item in lists.iter().flat_map(|l| l.split(',')) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            if item.len() > MAX_LEVEL_BYTES || item.chars().any(char::is_control) {
                return Err(QueryError::new(
                    "levels",
                    format!("`{}` is not a level name", item.escape_debug()),
                ));
            }
            names.push(item.to_ascii_uppercase().into());
        }
        names.sort();
        names.dedup();
        if names.len() > MAX_LEVELS {
            return Err(QueryError::new(
                "levels",
                format!("more than {MAX_LEVELS} levels"),
            ));
        }
        if names.is_empty() {
            return Ok(None);
        }
        let none = names.iter().any(|n| &**n == "NONE");
        Ok(Some(Levels { names, none }))
    }

    fn accepts(&self, level: &str) -> bool {
        if level.is_empty() {
            return self.none;
        }
        self.names.iter().any(|n| n.eq_ignore_ascii_case(level))
    }
}

fn compile_client_regex(param: &str, pattern: &str) -> Result<Matcher, QueryError> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(QueryError::new(
            param,
            format!("pattern is longer than {MAX_PATTERN_BYTES} bytes"),
        ));
    }
    Matcher::new(pattern, CLIENT_REGEX_SIZE_LIMIT)
        .map_err(|e| QueryError::new(param, format!("`{pattern}` is not a valid regex: {e}")))
}

/// What one client asked for: an entry is sent when its level is in `levels`, its message
/// matches `filter` and not `exclude`, and its source (file base name) matches the
/// `source` glob. Absent parameters accept everything.
///
/// Query rules: parameter names and values are percent-decoded (`+` is a space); an empty
/// value is the same as the parameter being absent (what an empty form field sends);
/// `levels` may be repeated (the lists are joined); `filter`, `exclude` and `source` may
/// appear once. Other parameters are ignored, not refused: the same query carries
/// `last_event_id`, a page's own settings and whatever a proxy adds (tokens,
/// cache-busters), and refusing them would break those setups for a typo's sake.
#[derive(Debug)]
pub struct ClientFilter {
    levels: Option<Levels>,
    filter: Option<(Box<str>, Matcher)>,
    exclude: Option<(Box<str>, Matcher)>,
    source: Option<Box<str>>,
    canonical: String,
}

impl ClientFilter {
    /// The filter of a client that asked for nothing.
    pub fn all() -> ClientFilter {
        ClientFilter {
            levels: None,
            filter: None,
            exclude: None,
            source: None,
            canonical: String::new(),
        }
    }

    /// Parses a request's query (the part after `?`, still encoded; `None` when the
    /// target has no `?`).
    pub fn from_query(query: Option<&str>) -> Result<ClientFilter, QueryError> {
        let mut levels = Vec::new();
        let mut filter = None;
        let mut exclude = None;
        let mut source = None;
        for pair in query_pairs(query.unwrap_or("")) {
            let (name, value) = pair?;
            let slot = match &*name {
                "levels" => {
                    levels.push(value);
                    continue;
                }
                "filter" => &mut filter,
                "exclude" => &mut exclude,
                "source" => &mut source,
                _ => continue,
            };
            if slot.is_some() {
                return Err(QueryError::new(&name, "given more than once"));
            }
            *slot = Some(value);
        }
        let levels = Levels::parse(&levels)?;
        let filter = match filter.filter(|v| !v.is_empty()) {
            Some(p) => Some((Box::from(&*p), compile_client_regex("filter", &p)?)),
            None => None,
        };
        let exclude = match exclude.filter(|v| !v.is_empty()) {
            Some(p) => Some((Box::from(&*p), compile_client_regex("exclude", &p)?)),
            None => None,
        };
        let source = match source.filter(|v| !v.is_empty()) {
            Some(g) if g.len() > MAX_GLOB_BYTES => {
                return Err(QueryError::new(
                    "source",
                    format!("glob is longer than {MAX_GLOB_BYTES} bytes"),
                ));
            }
            Some(g) => {
                glob::validate(&g).map_err(|e| QueryError::new("source", e))?;
                Some(Box::from(&*g))
            }
            None => None,
        };
        let mut f = ClientFilter {
            levels,
            filter,
            exclude,
            source,
            canonical: String::new(),
        };
        f.canonical = f.render_canonical();
        Ok(f)
    }

    /// Accepts every entry (no filter parameter was given): such a client needs no slot in
    /// a [`FilterSet`].
    pub fn is_all(&self) -> bool {
        self.canonical.is_empty()
    }

    /// The filter as a normalized query (`levels=ERROR,WARN&filter=…&exclude=…&source=…`,
    /// level names upper case and sorted, values re-encoded): equal for two queries that
    /// select the same thing whatever their spelling, so it is the key clients share a
    /// slot by, and readable in `/status`.
    pub fn canonical_query(&self) -> &str {
        &self.canonical
    }

    fn render_canonical(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(l) = &self.levels {
            let names: Vec<String> = l.names.iter().map(|n| encode(n)).collect();
            parts.push(format!("levels={}", names.join(",")));
        }
        if let Some((p, _)) = &self.filter {
            parts.push(format!("filter={}", encode(p)));
        }
        if let Some((p, _)) = &self.exclude {
            parts.push(format!("exclude={}", encode(p)));
        }
        if let Some(g) = &self.source {
            parts.push(format!("source={}", encode(g)));
        }
        parts.join("&")
    }

    /// Whether an entry with this level (`""` when it has none), message and source
    /// (file base name) is for this client.
    pub fn matches(&self, level: &str, message: &str, source: &str) -> bool {
        test_entry(
            self.levels.as_ref(),
            level,
            self.source.as_ref().map(|g| || glob::matches(g, source)),
            self.filter.as_ref().map(|(_, r)| || r.is_match(message)),
            self.exclude.as_ref().map(|(_, r)| || r.is_match(message)),
        )
    }
}

/// The one place the rule is written, for a lone [`ClientFilter`] and for a
/// [`FilterSet`] slot alike; the cheap tests come first and the first failure decides.
fn test_entry(
    levels: Option<&Levels>,
    level: &str,
    source: Option<impl FnOnce() -> bool>,
    filter: Option<impl FnOnce() -> bool>,
    exclude: Option<impl FnOnce() -> bool>,
) -> bool {
    levels.is_none_or(|l| l.accepts(level))
        && source.is_none_or(|t| t())
        && filter.is_none_or(|t| t())
        && exclude.is_none_or(|t| !t())
}

/// Percent-encodes what would change the meaning of a query component: the result
/// decodes back to the same text, so different filters never share a canonical form.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~*?[]!^\\()|{}$:/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The per-stream registry of distinct client filters

/// Distinct client filters a stream evaluates at once: one bit each in an entry's mask.
/// A client whose filter would be the 65th distinct one is refused (`503` with
/// `Retry-After`, see [`SetFull`]) rather than evaluated on its own: every distinct filter
/// costs regex work on the one reactor thread for every entry, so the limit is what keeps
/// anyone who can open connections from slowing every stream's delivery. Clients sharing a
/// filter are never limited by it.
pub const MAX_DISTINCT_FILTERS: usize = 64;
/// Of the patterns those filters use, how many may need the regex engine (not a word or
/// a list of words): a regex-lite match costs microseconds per entry, so 64 of them
/// would hold a stream to a few thousand entries a second.
pub const MAX_DISTINCT_REGEXES: usize = 8;

/// A slot in a [`FilterSet`]; bit `index` of [`FilterSet::evaluate`]'s mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FilterId(u8);

impl FilterId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// This filter's bit in an entry mask.
    pub fn bit(self) -> u64 {
        1 << self.0
    }
}

/// [`FilterSet::add`] found every slot taken by another distinct filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetFull;

impl fmt::Display for SetFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this stream already evaluates as many distinct client filters as it can \
             ({MAX_DISTINCT_FILTERS}, of which {MAX_DISTINCT_REGEXES} regular expressions \
             other than word lists); use a filter another client uses, or retry later"
        )
    }
}

impl std::error::Error for SetFull {}

/// A test on one field that several slots may share (the same `filter` regex with
/// different `levels`, say): evaluated at most once per entry.
#[derive(Debug)]
enum Test {
    Message(Matcher),
    Source(Box<str>),
}

#[derive(Debug)]
struct Atom {
    /// `m:` or `s:` and the pattern text: what makes two tests the same.
    key: String,
    test: Test,
    refs: u32,
}

#[derive(Debug)]
struct Slot {
    canonical: String,
    levels: Option<Levels>,
    source: Option<usize>,
    filter: Option<usize>,
    exclude: Option<usize>,
    refs: u32,
    valid_from: u64,
}

/// At most three atoms per slot (source, filter, exclude).
const MAX_ATOMS: usize = 3 * MAX_DISTINCT_FILTERS;

/// Each atom's verdict on the entry being evaluated, once known.
type Memo = [Cell<Option<bool>>; MAX_ATOMS];

fn new_memo() -> Memo {
    std::array::from_fn(|_| Cell::new(None))
}

/// The distinct client filters of one stream, with reference counts. Adding a filter that
/// is already there (same [`ClientFilter::canonical_query`]) shares its slot.
///
/// Intended use: when an entry enters the stream's buffer, store
/// `evaluate(level, message, source)` with it; a client with filter `id` is sent an entry
/// when `mask & id.bit() != 0`. Masks are only good for entries evaluated while the slot
/// held this filter: for an entry with `seq < valid_from(id)` (a client resuming into
/// older entries, or served from disk) ask [`matches`](Self::matches) instead.
#[derive(Debug, Default)]
pub struct FilterSet {
    slots: Vec<Option<Slot>>,
    atoms: Vec<Option<Atom>>,
}

impl FilterSet {
    pub fn new() -> FilterSet {
        FilterSet::default()
    }

    /// Distinct filters held.
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// Registers one client's filter; `next_seq` is the sequence number the next entry
    /// will get (the first whose mask will cover a new slot). Pass-all filters
    /// ([`ClientFilter::is_all`]) work but need no slot: better not to add them.
    pub fn add(&mut self, filter: ClientFilter, next_seq: u64) -> Result<FilterId, SetFull> {
        if let Some(i) = self.slot_of(&filter.canonical) {
            if let Some(s) = self.slots[i].as_mut() {
                s.refs += 1;
            }
            return Ok(FilterId(i as u8));
        }
        let new_regexes = [&filter.filter, &filter.exclude]
            .into_iter()
            .flatten()
            .filter(|(p, m)| matches!(m, Matcher::Regex(_)) && !self.has_atom(&format!("m:{p}")))
            .count();
        if new_regexes > 0 && self.regexes() + new_regexes > MAX_DISTINCT_REGEXES {
            return Err(SetFull);
        }
        let i = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.slots.len() < MAX_DISTINCT_FILTERS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return Err(SetFull),
        };
        let ClientFilter {
            levels,
            filter,
            exclude,
            source,
            canonical,
        } = filter;
        let slot = Slot {
            canonical,
            levels,
            source: source.map(|g| self.intern(format!("s:{g}"), Test::Source(g))),
            filter: filter.map(|(p, r)| self.intern(format!("m:{p}"), Test::Message(r))),
            exclude: exclude.map(|(p, r)| self.intern(format!("m:{p}"), Test::Message(r))),
            refs: 1,
            valid_from: next_seq,
        };
        self.slots[i] = Some(slot);
        Ok(FilterId(i as u8))
    }

    /// Drops one client's reference; the slot is freed with its last client.
    pub fn remove(&mut self, id: FilterId) {
        let Some(Some(slot)) = self.slots.get_mut(id.index()) else {
            return;
        };
        slot.refs -= 1;
        if slot.refs > 0 {
            return;
        }
        if let Some(slot) = self.slots[id.index()].take() {
            for a in [slot.source, slot.filter, slot.exclude]
                .into_iter()
                .flatten()
            {
                self.release(a);
            }
        }
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
    }

    /// The first sequence number whose mask bit for `id` is this filter's verdict.
    pub fn valid_from(&self, id: FilterId) -> u64 {
        self.slot(id).map_or(u64::MAX, |s| s.valid_from)
    }

    /// Clients sharing `id`.
    pub fn clients(&self, id: FilterId) -> u32 {
        self.slot(id).map_or(0, |s| s.refs)
    }

    /// Bits of the slots in use.
    pub fn live_mask(&self) -> u64 {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// Every distinct filter with its clients, for `/status`.
    pub fn iter(&self) -> impl Iterator<Item = (FilterId, &str, u32)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.as_ref()
                .map(|s| (FilterId(i as u8), s.canonical.as_str(), s.refs))
        })
    }

    /// One bit per slot: set when the entry passes that slot's filter. Every regex and
    /// glob is run at most once, however many slots and clients use it.
    pub fn evaluate(&self, level: &str, message: &str, source: &str) -> u64 {
        let memo = new_memo();
        let mut mask = 0;
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(s) = slot else { continue };
            if self.passes(s, level, message, source, &memo) {
                mask |= 1 << i;
            }
        }
        mask
    }

    /// Whether an entry passes one slot's filter, on its own (entries older than the
    /// slot's [`valid_from`](Self::valid_from), entries re-read from disk).
    pub fn matches(&self, id: FilterId, level: &str, message: &str, source: &str) -> bool {
        self.slot(id)
            .is_some_and(|s| self.passes(s, level, message, source, &new_memo()))
    }

    fn passes(&self, s: &Slot, level: &str, message: &str, source: &str, memo: &Memo) -> bool {
        let run = |a: usize| {
            move || match memo[a].get() {
                Some(hit) => hit,
                None => {
                    let hit = self.run_atom(a, message, source);
                    memo[a].set(Some(hit));
                    hit
                }
            }
        };
        test_entry(
            s.levels.as_ref(),
            level,
            s.source.map(run),
            s.filter.map(run),
            s.exclude.map(run),
        )
    }

    fn run_atom(&self, a: usize, message: &str, source: &str) -> bool {
        match self.atoms.get(a).and_then(Option::as_ref).map(|a| &a.test) {
            Some(Test::Message(r)) => r.is_match(message),
            Some(Test::Source(g)) => glob::matches(g, source),
            None => false,
        }
    }

    fn slot(&self, id: FilterId) -> Option<&Slot> {
        self.slots.get(id.index()).and_then(Option::as_ref)
    }

    fn slot_of(&self, canonical: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.canonical == canonical))
    }

    fn has_atom(&self, key: &str) -> bool {
        self.atoms.iter().flatten().any(|a| a.key == key)
    }

    /// Patterns in use that run on the regex engine.
    fn regexes(&self) -> usize {
        self.atoms
            .iter()
            .flatten()
            .filter(|a| matches!(a.test, Test::Message(Matcher::Regex(_))))
            .count()
    }

    fn intern(&mut self, key: String, test: Test) -> usize {
        if let Some(i) = self
            .atoms
            .iter()
            .position(|a| a.as_ref().is_some_and(|a| a.key == key))
        {
            if let Some(a) = self.atoms[i].as_mut() {
                a.refs += 1;
            }
            return i;
        }
        let atom = Some(Atom { key, test, refs: 1 });
        match self.atoms.iter().position(Option::is_none) {
            Some(i) => {
                self.atoms[i] = atom;
                i
            }
            None => {
                self.atoms.push(atom);
                self.atoms.len() - 1
            }
        }
    }

    fn release(&mut self, a: usize) {
        if let Some(Some(atom)) = self.atoms.get_mut(a) {
            atom.refs -= 1;
            if atom.refs == 0 {
                self.atoms[a] = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: FilterKind, logic: Logic, patterns: &[&str]) -> FilterSpec {
        FilterSpec {
            kind,
            logic,
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn client(q: &str) -> ClientFilter {
        ClientFilter::from_query(Some(q)).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    fn refused(q: &str) -> QueryError {
        match ClientFilter::from_query(Some(q)) {
            Ok(f) => panic!("{q} accepted as {:?}", f.canonical_query()),
            Err(e) => e,
        }
    }

    #[test]
    fn plain_words_are_searched_without_the_regex_engine() {
        let kind = |p: &str| match Matcher::new(p, CLIENT_REGEX_SIZE_LIMIT).unwrap() {
            Matcher::Literals(_) => "literals",
            Matcher::AsciiNoCase(_) => "nocase",
            Matcher::Regex(_) => "regex",
        };
        assert_eq!(kind("timeout"), "literals");
        assert_eq!(kind("connection reset|refused"), "literals");
        assert_eq!(kind("order #12, user=5"), "literals");
        assert_eq!(kind("(?i)timeout|Refused"), "nocase");
        assert_eq!(kind("time.out"), "regex");
        assert_eq!(kind("a|"), "regex");
        assert_eq!(kind(""), "regex");
        assert_eq!(kind("(?i)"), "regex");
        assert_eq!(kind("(?i)a(?i)"), "regex");
        assert_eq!(kind("^GET"), "regex");
        assert_eq!(kind("\\d"), "regex");
    }

    #[test]
    fn the_literal_search_agrees_with_regex_lite() {
        let patterns = [
            "timeout",
            "Timeout",
            "(?i)timeout",
            "(?i)TIME",
            "(?i)é",
            "(?i)straße",
            "reset|refused|out",
            "(?i)RESET|x",
            "a",
            "(?i)a",
            "aab",
            "(?i)aAb",
            " ",
            "ü",
            "🙂 ok",
            "(?i)🙂 OK",
        ];
        let texts = [
            "",
            "a",
            "connection timeout",
            "TIMEOUT!",
            "TiMeOuT",
            "Élan é",
            "STRASSE straße STRAßE",
            "connection reset by peer",
            "aaab",
            "AAAB",
            "aa",
            "🙂 OK 🙂 ok",
            "über",
        ];
        for p in patterns {
            let fast = Matcher::new(p, CLIENT_REGEX_SIZE_LIMIT).unwrap();
            assert!(!matches!(fast, Matcher::Regex(_)), "{p}");
            let re = Regex::new(p).unwrap();
            for t in texts {
                assert_eq!(fast.is_match(t), re.is_match(t), "{p:?} on {t:?}");
            }
        }
    }

    #[test]
    fn kinds_and_logic_parse_their_config_spelling() {
        assert_eq!(FilterKind::parse("include"), Some(FilterKind::Include));
        assert_eq!(FilterKind::parse("exclude"), Some(FilterKind::Exclude));
        assert_eq!(FilterKind::parse("Include"), None);
        assert_eq!(Logic::parse("or"), Some(Logic::Or));
        assert_eq!(Logic::parse("and"), Some(Logic::And));
        assert_eq!(Logic::parse("xor"), None);
        assert_eq!(Logic::default(), Logic::Or);
    }

    #[test]
    fn no_stream_filters_keep_everything() {
        let f = StreamFilters::new(&[]).unwrap();
        assert!(f.is_empty());
        assert!(f.keep(b"anything"));
        assert!(f.keep(b"\xff\xfe"));
    }

    #[test]
    fn include_or_keeps_lines_matching_any_pattern() {
        let f = StreamFilters::new(&[spec(FilterKind::Include, Logic::Or, &["ERROR", "WARN"])])
            .unwrap();
        assert!(f.keep(b"[ERROR] disk full"));
        assert!(f.keep(b"[WARN] disk almost full"));
        assert!(!f.keep(b"[INFO] all good"));
    }

    #[test]
    fn include_and_keeps_lines_matching_every_pattern() {
        let f = StreamFilters::new(&[spec(FilterKind::Include, Logic::And, &["db", "timeout"])])
            .unwrap();
        assert!(f.keep(b"db query timeout after 5s"));
        assert!(!f.keep(b"db query ok"));
        assert!(!f.keep(b"http timeout"));
    }

    #[test]
    fn exclude_or_drops_lines_matching_any_pattern() {
        let f = StreamFilters::new(&[spec(
            FilterKind::Exclude,
            Logic::Or,
            &["GET /health", "GET /ready"],
        )])
        .unwrap();
        assert!(!f.keep(b"10.0.0.1 GET /health 200"));
        assert!(!f.keep(b"10.0.0.1 GET /ready 200"));
        assert!(f.keep(b"10.0.0.1 GET /api 200"));
    }

    #[test]
    fn exclude_and_drops_only_lines_matching_every_pattern() {
        let f = StreamFilters::new(&[spec(FilterKind::Exclude, Logic::And, &["GET", " 200$"])])
            .unwrap();
        assert!(!f.keep(b"GET /x 200"));
        assert!(f.keep(b"GET /x 500"));
        assert!(f.keep(b"POST /x 200"));
    }

    #[test]
    fn filters_apply_in_order_and_all_must_pass() {
        let f = StreamFilters::new(&[
            spec(FilterKind::Include, Logic::Or, &["^app:"]),
            spec(FilterKind::Exclude, Logic::Or, &["debug"]),
        ])
        .unwrap();
        assert!(f.keep(b"app: started"));
        assert!(!f.keep(b"app: debug noise"));
        assert!(!f.keep(b"kernel: started"));
    }

    #[test]
    fn invalid_utf8_is_matched_as_the_replacement_character() {
        let f =
            StreamFilters::new(&[spec(FilterKind::Include, Logic::Or, &["^a\u{FFFD}b$"])]).unwrap();
        assert!(f.keep(b"a\xffb"));
        let dot = StreamFilters::new(&[spec(FilterKind::Include, Logic::Or, &["^a.b$"])]).unwrap();
        assert!(dot.keep(b"a\xffb"));
    }

    #[test]
    fn stream_filter_errors_name_the_filter_and_the_pattern() {
        let e = StreamFilters::new(&[
            spec(FilterKind::Include, Logic::Or, &["ok"]),
            spec(FilterKind::Exclude, Logic::Or, &["fine", "broken("]),
        ])
        .unwrap_err();
        assert_eq!((e.filter, e.pattern), (1, Some(1)));
        let text = e.to_string();
        assert!(
            text.starts_with("filters[1].patterns[1]: `broken(`"),
            "{text}"
        );
        assert!(text.contains("not a valid regex"), "{text}");

        let e = StreamFilters::new(&[spec(FilterKind::Include, Logic::Or, &[])]).unwrap_err();
        assert_eq!(e.key(), "filters[0].patterns");
        assert!(e.to_string().contains("at least one pattern"));
    }

    #[test]
    fn percent_decoding_follows_form_encoding() {
        assert_eq!(decode("a+b").unwrap(), "a b");
        assert_eq!(decode("a%20b").unwrap(), "a b");
        assert_eq!(decode("%2B%26%3D%25").unwrap(), "+&=%");
        assert_eq!(decode("caf%C3%A9").unwrap(), "café");
        assert_eq!(decode("%e2%9c%93").unwrap(), "✓");
        // Not an escape: kept as typed, like a browser does.
        assert_eq!(decode("100%").unwrap(), "100%");
        assert_eq!(decode("%zz%4").unwrap(), "%zz%4");
        assert!(matches!(decode("plain"), Ok(Cow::Borrowed("plain"))));
        assert!(decode("%FF").is_err());
        assert!(decode("%C3").is_err());
    }

    #[test]
    fn query_pairs_decode_names_and_values_and_skip_empty_segments() {
        let pairs: Vec<(String, String)> = query_pairs("a=1&&b&%6Cevels=x%2Cy&c=d=e")
            .map(|p| p.map(|(n, v)| (n.into_owned(), v.into_owned())).unwrap())
            .collect();
        let want = [("a", "1"), ("b", ""), ("levels", "x,y"), ("c", "d=e")];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs, want);
    }

    #[test]
    fn no_query_and_empty_values_accept_everything() {
        for q in [None, Some(""), Some("filter=&levels=&source="), Some("x=1")] {
            let f = ClientFilter::from_query(q).unwrap();
            assert!(f.is_all(), "{q:?}");
            assert!(f.matches("", "m", "a.log"));
            assert!(f.matches("ERROR", "m", "b.log"));
        }
        assert!(ClientFilter::all().is_all());
    }

    #[test]
    fn levels_are_case_insensitive_and_none_means_no_level() {
        let f = client("levels=error,Warn");
        assert!(f.matches("ERROR", "m", "a"));
        assert!(f.matches("error", "m", "a"));
        assert!(f.matches("WARN", "m", "a"));
        assert!(!f.matches("INFO", "m", "a"));
        assert!(!f.matches("", "m", "a"));
        assert!(!f.matches("WARNING", "m", "a"));

        let f = client("levels=none");
        assert!(f.matches("", "m", "a"));
        assert!(f.matches("none", "m", "a"));
        assert!(!f.matches("ERROR", "m", "a"));

        let f = client("levels=fatal,NONE");
        assert!(f.matches("Fatal", "m", "a"));
        assert!(f.matches("", "m", "a"));
    }

    #[test]
    fn levels_may_repeat_have_spaces_and_empty_items() {
        let f = client("levels=ERROR&levels=warn,+info,,");
        assert_eq!(f.canonical_query(), "levels=ERROR,INFO,WARN");
        assert!(f.matches("info", "m", "a"));
        assert!(f.matches("WARN", "m", "a"));
    }

    #[test]
    fn bad_levels_are_refused_naming_the_parameter() {
        let e = refused("levels=ERROR,A%07B");
        assert_eq!(e.param, "levels");
        let e = refused(&format!("levels={}", "X".repeat(MAX_LEVEL_BYTES + 1)));
        assert_eq!(e.param, "levels");
        let many: Vec<String> = (0..=MAX_LEVELS).map(|i| format!("L{i}")).collect();
        let e = refused(&format!("levels={}", many.join(",")));
        assert_eq!(e.param, "levels");
        assert!(e.to_string().starts_with("query parameter `levels`: "));
    }

    #[test]
    fn filter_and_exclude_match_the_message() {
        let f = client("filter=time(out)?&exclude=retry");
        assert!(f.matches("", "connection timeout", "a"));
        assert!(f.matches("", "time is up", "a"));
        assert!(!f.matches("", "timeout, will retry", "a"));
        assert!(!f.matches("", "all good", "a"));
        // The message, not the level or the source.
        assert!(!f.matches("time", "x", "time.log"));

        let f = client("exclude=%5EGET+%2Fhealth");
        assert!(!f.matches("", "GET /health 200", "a"));
        assert!(f.matches("", "GET /api 200", "a"));
    }

    #[test]
    fn regexes_are_case_sensitive_unless_asked() {
        let f = client("filter=timeout");
        assert!(!f.matches("", "TIMEOUT", "a"));
        let f = client("filter=%28%3Fi%29timeout");
        assert!(f.matches("", "TIMEOUT", "a"));
    }

    #[test]
    fn source_is_a_glob_on_the_base_name() {
        let f = client("source=app*.log");
        assert!(f.matches("", "m", "app.log"));
        assert!(f.matches("", "m", "app-2.log"));
        assert!(!f.matches("", "m", "db.log"));
        assert!(!f.matches("", "m", "app.log.1"));
        let e = refused("source=%5Babc");
        assert_eq!(e.param, "source");
        assert!(e.reason.contains("unclosed"), "{e}");
    }

    #[test]
    fn every_part_must_pass() {
        let f = client("levels=ERROR&filter=disk&exclude=ignored&source=*.log");
        assert!(f.matches("ERROR", "disk full", "a.log"));
        assert!(!f.matches("WARN", "disk full", "a.log"));
        assert!(!f.matches("ERROR", "cpu hot", "a.log"));
        assert!(!f.matches("ERROR", "disk full (ignored)", "a.log"));
        assert!(!f.matches("ERROR", "disk full", "a.txt"));
    }

    #[test]
    fn bad_regexes_are_refused_naming_the_parameter() {
        for (q, param, pattern) in [
            ("filter=%28unclosed", "filter", "`(unclosed`"),
            ("exclude=a%5B", "exclude", "`a[`"),
            ("levels=ERROR&filter=*", "filter", "`*`"),
        ] {
            let e = refused(q);
            assert_eq!(e.param, param, "{q}");
            assert!(e.reason.contains(pattern), "{q}: {e}");
            assert!(e.reason.contains("not a valid regex"), "{q}: {e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn oversized_regexes_are_refused() {
        let e = refused(&format!("filter={}", "a".repeat(MAX_PATTERN_BYTES + 1)));
        assert_eq!(e.param, "filter");
        assert!(e.reason.contains("longer than"), "{e}");
        // Short to type, huge once repetitions are expanded.
        let e = refused("filter=a%7B1000%7D%7B1000%7D");
        assert_eq!(e.param, "filter");
        let e = refused(&format!("source={}", "*".repeat(MAX_GLOB_BYTES + 1)));
        assert_eq!(e.param, "source");
    }

    #[test]
    fn repeated_single_parameters_are_refused() {
        for p in ["filter", "exclude", "source"] {
            let e = refused(&format!("{p}=a&{p}=b"));
            assert_eq!(e.param, p);
            assert_eq!(e.reason, "given more than once");
        }
    }

    #[test]
    fn values_that_are_not_utf8_are_refused_naming_the_parameter() {
        let e = refused("filter=%FF");
        assert_eq!(e.param, "filter");
        assert!(e.reason.contains("UTF-8"));
    }

    #[test]
    fn other_parameters_are_ignored() {
        let f = client("last_event_id=42&token=abc&_=1699999999&levels=ERROR");
        assert_eq!(f.canonical_query(), "levels=ERROR");
    }

    #[test]
    fn canonical_queries_are_equal_for_equal_filters_only() {
        let a = client("source=*.log&levels=warn,error&filter=a+b");
        let b = client("filter=a%20b&levels=ERROR&levels=WARN,WARN&source=%2A.log");
        assert_eq!(a.canonical_query(), b.canonical_query());
        assert_eq!(
            a.canonical_query(),
            "levels=ERROR,WARN&filter=a%20b&source=*.log"
        );
        // Characters that delimit a query are encoded, so no two filters collide.
        let c = client("filter=a%26exclude%3Db");
        let d = client("filter=a&exclude=b");
        assert_ne!(c.canonical_query(), d.canonical_query());
        // And the canonical form parses back to itself.
        for f in [&a, &c, &d, &client("levels=none&filter=%25%2B+%C3%A9")] {
            let again = client(f.canonical_query());
            assert_eq!(again.canonical_query(), f.canonical_query());
        }
    }

    #[test]
    fn last_event_id_is_read_and_checked() {
        assert_eq!(last_event_id(None), Ok(None));
        assert_eq!(last_event_id(Some("levels=ERROR")), Ok(None));
        assert_eq!(
            last_event_id(Some("levels=ERROR&last_event_id=42")),
            Ok(Some(42))
        );
        let e = last_event_id(Some("last_event_id=-1")).unwrap_err();
        assert_eq!(e.param, "last_event_id");
        let e = last_event_id(Some("last_event_id=1&last_event_id=2")).unwrap_err();
        assert_eq!(e.param, "last_event_id");
    }

    #[test]
    fn the_set_shares_a_slot_between_identical_filters() {
        let mut set = FilterSet::new();
        let a = set.add(client("levels=ERROR,WARN"), 10).unwrap();
        let b = set.add(client("levels=warn,error"), 20).unwrap();
        assert_eq!(a, b);
        assert_eq!(set.len(), 1);
        assert_eq!(set.clients(a), 2);
        // The slot's masks date from the first client.
        assert_eq!(set.valid_from(a), 10);
        let c = set.add(client("levels=ERROR"), 30).unwrap();
        assert_ne!(a, c);
        assert_eq!(set.len(), 2);
        let listed: Vec<(&str, u32)> = set.iter().map(|(_, q, n)| (q, n)).collect();
        assert_eq!(listed, [("levels=ERROR,WARN", 2), ("levels=ERROR", 1)]);
    }

    #[test]
    fn the_mask_has_one_bit_per_filter_that_passes() {
        let mut set = FilterSet::new();
        let errors = set.add(client("levels=ERROR"), 0).unwrap();
        let disk = set.add(client("filter=disk"), 0).unwrap();
        let app = set.add(client("source=app*"), 0).unwrap();
        let m = set.evaluate("ERROR", "disk full", "db.log");
        assert_eq!(m, errors.bit() | disk.bit());
        let m = set.evaluate("INFO", "hello", "app.log");
        assert_eq!(m, app.bit());
        assert_eq!(set.live_mask(), errors.bit() | disk.bit() | app.bit());
        for (level, msg, src) in [("ERROR", "disk", "app.log"), ("", "x", "y")] {
            let m = set.evaluate(level, msg, src);
            for id in [errors, disk, app] {
                assert_eq!(m & id.bit() != 0, set.matches(id, level, msg, src));
            }
        }
    }

    #[test]
    fn set_results_agree_with_lone_filters() {
        let queries = [
            "levels=ERROR&filter=disk",
            "filter=disk",
            "filter=disk&exclude=full",
            "exclude=disk",
            "source=*.log&filter=(?i)DISK",
            "levels=none&source=*.log",
        ];
        let mut set = FilterSet::new();
        let ids: Vec<FilterId> = queries
            .iter()
            .map(|q| set.add(client(q), 0).unwrap())
            .collect();
        let entries = [
            ("ERROR", "disk full", "a.log"),
            ("ERROR", "disk ok", "a.txt"),
            ("", "DISK", "b.log"),
            ("INFO", "nothing", "c.log"),
        ];
        for (level, msg, src) in entries {
            let mask = set.evaluate(level, msg, src);
            for (q, id) in queries.iter().zip(&ids) {
                assert_eq!(
                    mask & id.bit() != 0,
                    client(q).matches(level, msg, src),
                    "{q} on {level:?} {msg:?} {src:?}"
                );
            }
        }
    }

    #[test]
    fn shared_patterns_are_held_once_and_freed_with_their_last_user() {
        let mut set = FilterSet::new();
        let a = set.add(client("filter=disk&levels=ERROR"), 0).unwrap();
        let b = set.add(client("filter=disk&levels=WARN"), 0).unwrap();
        let c = set.add(client("exclude=disk"), 0).unwrap();
        assert_eq!(set.atoms.iter().flatten().count(), 1);
        set.remove(a);
        set.remove(c);
        assert_eq!(set.atoms.iter().flatten().count(), 1);
        assert_eq!(set.evaluate("WARN", "disk", "x"), b.bit());
        set.remove(b);
        assert_eq!(set.atoms.iter().flatten().count(), 0);
        assert!(set.is_empty());
    }

    #[test]
    fn a_slot_is_freed_with_its_last_client_and_reused_with_a_new_start() {
        let mut set = FilterSet::new();
        let a = set.add(client("levels=ERROR"), 0).unwrap();
        set.add(client("levels=ERROR"), 5).unwrap();
        let keep = set.add(client("levels=WARN"), 5).unwrap();
        set.remove(a);
        assert_eq!(set.clients(a), 1);
        set.remove(a);
        assert_eq!(set.clients(a), 0);
        assert_eq!(set.valid_from(a), u64::MAX);
        assert_eq!(set.live_mask(), keep.bit());
        // Removing a free slot again changes nothing.
        set.remove(a);
        assert_eq!(set.clients(keep), 1);
        let d = set.add(client("filter=x"), 99).unwrap();
        assert_eq!(d, a, "the free slot is reused");
        assert_eq!(set.valid_from(d), 99);
        assert_eq!(set.evaluate("ERROR", "y", "s"), 0);
    }

    #[test]
    fn the_set_refuses_a_filter_beyond_its_limit_but_not_a_shared_one() {
        let mut set = FilterSet::new();
        let ids: Vec<FilterId> = (0..MAX_DISTINCT_FILTERS)
            .map(|i| set.add(client(&format!("filter=f{i}x")), 0).unwrap())
            .collect();
        assert_eq!(set.live_mask(), u64::MAX);
        assert_eq!(set.add(client("filter=one-more"), 0), Err(SetFull));
        assert!(SetFull.to_string().contains("64"));
        assert_eq!(set.add(client("filter=f7x"), 0), Ok(ids[7]));
        let m = set.evaluate("", "f63x", "s");
        assert_eq!(m, ids[63].bit());
        set.remove(ids[3]);
        assert!(set.add(client("filter=one-more"), 0).is_ok());
    }

    #[test]
    fn patterns_needing_the_regex_engine_are_fewer_still() {
        let mut set = FilterSet::new();
        let ids: Vec<FilterId> = (0..MAX_DISTINCT_REGEXES)
            .map(|i| set.add(client(&format!("filter=^f{i}$")), 0).unwrap())
            .collect();
        assert_eq!(set.add(client("filter=^g$"), 0), Err(SetFull));
        assert_eq!(set.add(client("exclude=a.*b"), 0), Err(SetFull));
        // Word lists, shared regexes and other tests still fit.
        assert!(set.add(client("filter=timeout|refused"), 0).is_ok());
        assert!(set.add(client("filter=%5Ef0%24&levels=ERROR"), 0).is_ok());
        assert!(set.add(client("source=app*.log"), 0).is_ok());
        assert!(SetFull.to_string().contains("8 regular expressions"));
        set.remove(ids[2]);
        assert!(set.add(client("filter=^g$"), 0).is_ok());
    }
}
