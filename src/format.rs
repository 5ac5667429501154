//! Output formats per server (SPEC §14): `json` (the entry as [`crate::entry`] renders
//! it), `raw` (the line as read) and `txt` (a template over the entry's time, level,
//! source and message).
//!
//! `txt` reads its parts back from the rendered entry rather than from the line, so what
//! a JSON line's time, level and message are stays decided in one place
//! ([`crate::entry::write_entry`]) and the two formats cannot disagree.
//!
//! Every wire frames entries by line (NDJSON, SSE `data:`), and SSE ends a line at CR as
//! well as LF, so `raw` and `txt` never emit either inside an entry: a CR becomes the two
//! characters `\r` and an LF `\n`, as JSON would write them. A raw line holds no LF (the
//! splitter cuts there) but may hold a lone CR; a JSON line's message may hold both once
//! unescaped, and a file name may too. Output is always UTF-8 (invalid sequences become
//! U+FFFD, as in `json`), because SSE is read as UTF-8 and a WebSocket text frame must be.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

/// The template `txt` uses when none is configured.
pub const DEFAULT_TXT_TEMPLATE: &str = "{time} [{level}] {source}: {message}";

/// How a server writes each entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Json,
    Raw,
    Txt(Template),
}

impl Format {
    /// From a server's `format` and `txt_template` settings.
    pub fn from_config(format: &str, txt_template: Option<&str>) -> Result<Format, FormatError> {
        match (format, txt_template) {
            ("txt", template) => Template::parse(template.unwrap_or(DEFAULT_TXT_TEMPLATE))
                .map(Format::Txt)
                .map_err(FormatError::Template),
            ("json" | "raw", Some(_)) => Err(FormatError::TemplateWithoutTxt),
            ("json", None) => Ok(Format::Json),
            ("raw", None) => Ok(Format::Raw),
            (other, _) => Err(FormatError::UnknownFormat(other.to_owned())),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Raw => "raw",
            Format::Txt(_) => "txt",
        }
    }

    /// Appends one entry, without the wire's framing. `line` is the line as read (for a
    /// notice, its message); `entry_json` is what `write_entry` or `write_notice` made of
    /// it.
    pub fn render(&self, out: &mut Vec<u8>, line: &[u8], entry_json: &[u8]) {
        match self {
            Format::Json => out.extend_from_slice(entry_json),
            Format::Raw => write_raw_line(out, line),
            Format::Txt(template) => match Parts::of_entry(entry_json) {
                Some(parts) => template.render(out, &parts),
                // Not the shape entries have: shown whole rather than dropped.
                None => write_raw_line(out, entry_json),
            },
        }
    }
}

/// A bad `format` or `txt_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    UnknownFormat(String),
    /// A template with `json` or `raw`, where it would silently do nothing.
    TemplateWithoutTxt,
    Template(TemplateError),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::UnknownFormat(name) => write!(
                f,
                "unknown format {name:?} (expected \"json\", \"raw\" or \"txt\")"
            ),
            FormatError::TemplateWithoutTxt => {
                f.write_str("txt_template is only used with format = \"txt\"")
            }
            FormatError::Template(e) => write!(f, "txt_template: {e}"),
        }
    }
}

impl std::error::Error for FormatError {}

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Time,
    Level,
    Source,
    Message,
}

const FIELDS: [(&str, Field); 4] = [
    ("time", Field::Time),
    ("level", Field::Level),
    ("source", Field::Source),
    ("message", Field::Message),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Field),
}

/// A parsed `txt_template`: literal text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// A template that cannot be used; columns count characters from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    Empty,
    UnknownPlaceholder {
        name: String,
        column: usize,
    },
    /// A `{` with no `}` before the end or the next `{`.
    Unclosed {
        column: usize,
    },
    /// A `}` that closes no placeholder and is not doubled.
    StrayClose {
        column: usize,
    },
    /// A CR or LF, which would split every entry across lines.
    LineBreak {
        column: usize,
    },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Empty => f.write_str("the template is empty"),
            TemplateError::UnknownPlaceholder { name, column } => write!(
                f,
                "unknown placeholder {{{name}}} at column {column} (known: {{time}}, \
                 {{level}}, {{source}}, {{message}}; write {{{{ and }}}} for literal braces)"
            ),
            TemplateError::Unclosed { column } => write!(
                f,
                "\"{{\" at column {column} is not closed (write {{{{ for a literal brace)"
            ),
            TemplateError::StrayClose { column } => write!(
                f,
                "\"}}\" at column {column} closes nothing (write }}}} for a literal brace)"
            ),
            TemplateError::LineBreak { column } => write!(
                f,
                "line break at column {column}: an entry must stay on one line"
            ),
        }
    }
}

impl std::error::Error for TemplateError {}

impl Template {
    /// Parses `{name}` placeholders, `{{` and `}}` for literal braces.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let column = |at: usize| text[..at].chars().count() + 1;
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        if let Some(at) = text.find(['\r', '\n']) {
            return Err(TemplateError::LineBreak { column: column(at) });
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(['{', '}']) {
            let base = text.len() - rest.len();
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if rest.as_bytes()[at] == b'}' {
                let Some(tail) = after.strip_prefix('}') else {
                    return Err(TemplateError::StrayClose {
                        column: column(base + at),
                    });
                };
                literal.push('}');
                rest = tail;
                continue;
            }
            if let Some(tail) = after.strip_prefix('{') {
                literal.push('{');
                rest = tail;
                continue;
            }
            let unclosed = TemplateError::Unclosed {
                column: column(base + at),
            };
            let end = after.find(['{', '}']).ok_or(unclosed.clone())?;
            if after.as_bytes()[end] == b'{' {
                return Err(unclosed);
            }
            let name = &after[..end];
            let Some(&(_, field)) = FIELDS.iter().find(|(n, _)| *n == name) else {
                return Err(TemplateError::UnknownPlaceholder {
                    name: name.to_owned(),
                    column: column(base + at),
                });
            };
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Field(field));
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// The placeholders, in order.
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Field(f) => Some(*f),
            Piece::Text(_) => None,
        })
    }

    pub fn render(&self, out: &mut Vec<u8>, parts: &Parts) {
        for piece in &self.pieces {
            match piece {
                // Checked at parse time: no CR or LF.
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Field(field) => write_text(
                    out,
                    match field {
                        Field::Time => &parts.time,
                        Field::Level => &parts.level,
                        Field::Source => &parts.source,
                        Field::Message => &parts.message,
                    },
                ),
            }
        }
    }
}

/// Writes `text` with CR and LF as `\r` and `\n`.
fn write_text(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// The `raw` format of one line: as read, but UTF-8 and on one line (see the module
/// notes).
pub fn write_raw_line(out: &mut Vec<u8>, line: &[u8]) {
    for chunk in line.utf8_chunks() {
        write_text(out, chunk.valid());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
}

/// What a text format shows of an entry, unescaped; borrowed from the entry's JSON when
/// it holds no escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts<'a> {
    pub time: Cow<'a, str>,
    pub source: Cow<'a, str>,
    pub level: Cow<'a, str>,
    pub message: Cow<'a, str>,
}

impl<'a> Parts<'a> {
    /// Reads the parts back from an entry's JSON; `None` if it lacks one of them.
    pub fn of_entry(entry_json: &'a [u8]) -> Option<Parts<'a>> {
        serde_json::from_slice(entry_json).ok()
    }
}

/// A JSON string, borrowed when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Parts<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Parts<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an entry object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let [mut time, mut source, mut level, mut message] = [None, None, None, None];
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    let slot = match key.as_ref() {
                        "time" => &mut time,
                        "source" => &mut source,
                        "level" => &mut level,
                        "message" => &mut message,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value::<Text<'de>>()?.0);
                }
                let missing = || serde::de::Error::custom("missing entry part");
                Ok(Parts {
                    time: time.ok_or_else(missing)?,
                    source: source.ok_or_else(missing)?,
                    level: level.ok_or_else(missing)?,
                    message: message.ok_or_else(missing)?,
                })
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Stamp, write_entry, write_json_string, write_notice};

    fn stamp() -> Stamp {
        Stamp::from_micros(1_704_110_400_123_456) // 2024-01-01T12:00:00.123456Z
    }

    fn entry_json(line: &[u8], source: &str) -> Vec<u8> {
        let mut src = Vec::new();
        write_json_string(&mut src, source.as_bytes());
        let mut out = Vec::new();
        write_entry(&mut out, line, &src, &stamp());
        out
    }

    fn render(format: &Format, line: &[u8], source: &str) -> String {
        let mut out = Vec::new();
        format.render(&mut out, line, &entry_json(line, source));
        String::from_utf8(out).expect("UTF-8 output")
    }

    fn txt(template: &str) -> Format {
        Format::from_config("txt", Some(template)).unwrap()
    }

    fn parts<'a>(time: &'a str, level: &'a str, source: &'a str, message: &'a str) -> Parts<'a> {
        Parts {
            time: time.into(),
            source: source.into(),
            level: level.into(),
            message: message.into(),
        }
    }

    fn fill(template: &str, p: &Parts) -> String {
        let mut out = Vec::new();
        Template::parse(template).unwrap().render(&mut out, p);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_placeholder_and_the_default() {
        let p = parts("T", "WARN", "app.log", "disk 91% full");
        assert_eq!(
            fill(DEFAULT_TXT_TEMPLATE, &p),
            "T [WARN] app.log: disk 91% full"
        );
        assert_eq!(
            fill("{message}{message} <{source}|{level}|{time}>", &p),
            "disk 91% fulldisk 91% full <app.log|WARN|T>"
        );
        assert_eq!(fill("constant", &p), "constant");
        assert_eq!(fill("{level}", &parts("T", "", "s", "m")), "");
        let t = Template::parse("{time} {level}{level} x {message}").unwrap();
        assert_eq!(
            t.fields().collect::<Vec<_>>(),
            [Field::Time, Field::Level, Field::Level, Field::Message]
        );
    }

    #[test]
    fn doubled_braces_are_literal() {
        let p = parts("T", "INFO", "s", "m");
        assert_eq!(fill("{{level}}", &p), "{level}");
        assert_eq!(fill("{{{level}}}", &p), "{INFO}");
        assert_eq!(fill("}}{{", &p), "}{");
        assert_eq!(
            fill("json: {{\"msg\": \"{message}\"}}", &p),
            "json: {\"msg\": \"m\"}"
        );
        assert_eq!(fill("é{{{message}ü", &p), "é{mü");
    }

    #[test]
    fn template_errors_name_the_problem() {
        let unknown = |name: &str, column| TemplateError::UnknownPlaceholder {
            name: name.into(),
            column,
        };
        let cases = [
            ("", TemplateError::Empty),
            ("{msg}", unknown("msg", 1)),
            ("{time} {Level}", unknown("Level", 8)),
            ("{}", unknown("", 1)),
            ("{ time }", unknown(" time ", 1)),
            ("éé {fields}", unknown("fields", 4)),
            ("abc {time", TemplateError::Unclosed { column: 5 }),
            ("{", TemplateError::Unclosed { column: 1 }),
            ("{a{b}", TemplateError::Unclosed { column: 1 }),
            ("{{{", TemplateError::Unclosed { column: 3 }),
            ("a}b", TemplateError::StrayClose { column: 2 }),
            ("{time}}", TemplateError::StrayClose { column: 7 }),
            ("{time}\n", TemplateError::LineBreak { column: 7 }),
            ("a\rb {nope}", TemplateError::LineBreak { column: 2 }),
        ];
        for (template, want) in cases {
            assert_eq!(Template::parse(template), Err(want), "{template:?}");
        }
        let msg = FormatError::Template(unknown("msg", 13)).to_string();
        assert_eq!(
            msg,
            "txt_template: unknown placeholder {msg} at column 13 (known: {time}, {level}, \
             {source}, {message}; write {{ and }} for literal braces)"
        );
        let msg = TemplateError::Unclosed { column: 5 }.to_string();
        assert_eq!(
            msg,
            "\"{\" at column 5 is not closed (write {{ for a literal brace)"
        );
        let msg = TemplateError::StrayClose { column: 2 }.to_string();
        assert_eq!(
            msg,
            "\"}\" at column 2 closes nothing (write }} for a literal brace)"
        );
    }

    #[test]
    fn formats_from_config() {
        assert_eq!(Format::from_config("json", None), Ok(Format::Json));
        assert_eq!(Format::from_config("raw", None), Ok(Format::Raw));
        assert_eq!(
            Format::from_config("txt", None),
            Ok(Format::Txt(Template::parse(DEFAULT_TXT_TEMPLATE).unwrap()))
        );
        assert_eq!(txt("{message}").name(), "txt");
        assert_eq!(
            Format::from_config("xml", None),
            Err(FormatError::UnknownFormat("xml".into()))
        );
        assert_eq!(
            Format::from_config("JSON", None).unwrap_err().to_string(),
            "unknown format \"JSON\" (expected \"json\", \"raw\" or \"txt\")"
        );
        assert_eq!(
            Format::from_config("raw", Some("{message}")),
            Err(FormatError::TemplateWithoutTxt)
        );
        assert!(matches!(
            Format::from_config("txt", Some("{nope}")),
            Err(FormatError::Template(
                TemplateError::UnknownPlaceholder { .. }
            ))
        ));
        assert_eq!(Format::default(), Format::Json);
    }

    #[test]
    fn json_is_the_entry_untouched() {
        let line = b"2024 [ERROR] disk full";
        assert_eq!(
            render(&Format::Json, line, "app.log").as_bytes(),
            entry_json(line, "app.log")
        );
    }

    #[test]
    fn raw_is_the_line_on_one_line_and_utf8() {
        assert_eq!(render(&Format::Raw, b"[INFO] ok", "a"), "[INFO] ok");
        assert_eq!(
            render(&Format::Raw, br#"{"msg":"a\nb","level":"info"}"#, "a"),
            r#"{"msg":"a\nb","level":"info"}"#
        );
        assert_eq!(render(&Format::Raw, b"half\rway", "a"), "half\\rway");
        assert_eq!(
            render(&Format::Raw, b"bad \xff utf8 \xe2\x82", "a"),
            "bad \u{fffd} utf8 \u{fffd}"
        );
        assert_eq!(render(&Format::Raw, b"", "a"), "");
    }

    #[test]
    fn txt_of_plain_lines() {
        let f = txt(DEFAULT_TXT_TEMPLATE);
        assert_eq!(
            render(&f, b"2024 [ERROR] disk full", "app.log"),
            "2024-01-01T12:00:00.123456Z [ERROR] app.log: 2024 [ERROR] disk full"
        );
        assert_eq!(
            render(&f, b"no level \xff", "we\"ird\n.log"),
            "2024-01-01T12:00:00.123456Z [] we\"ird\\n.log: no level \u{fffd}"
        );
        assert_eq!(
            render(&f, b"lone\rcr", "a"),
            "2024-01-01T12:00:00.123456Z [] a: lone\\rcr"
        );
    }

    #[test]
    fn txt_of_json_lines_uses_what_the_entry_extracted() {
        let f = txt("{time} {level} {source} {message}");
        let line = br#"{"ts":"2024-05-01T10:00:00+02:00","lvl":"warn","msg":"slow\nquery \"x\" \u00e9","user":"u1"}"#;
        assert_eq!(
            render(&f, line, "db.log"),
            "2024-05-01T08:00:00.000000Z warn db.log slow\\nquery \"x\" é"
        );
        // No message key: an empty message; broken JSON: a plain line.
        assert_eq!(render(&txt("[{message}]"), br#"{"a":1}"#, "s"), "[]");
        assert_eq!(
            render(&txt("{message}"), br#"{"msg": "unterminated}"#, "s"),
            r#"{"msg": "unterminated}"#
        );
        let crlf = br#"{"message":"a\r\nb"}"#;
        assert_eq!(render(&txt("{message}"), crlf, "s"), "a\\r\\nb");
    }

    #[test]
    fn txt_of_notices_and_foreign_json() {
        let mut notice = Vec::new();
        write_notice(
            &mut notice,
            &stamp(),
            b"\"app.log\"",
            "INFO",
            "Log rotation detected",
        );
        let mut out = Vec::new();
        let f = txt(DEFAULT_TXT_TEMPLATE);
        f.render(&mut out, b"Log rotation detected", &notice);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2024-01-01T12:00:00.123456Z [INFO] app.log: Log rotation detected"
        );
        // Not an entry (missing parts, not an object): shown whole, still one line.
        for foreign in [&br#"{"time":"t"}"#[..], b"[1,\n2]", b"\xff"] {
            let mut out = Vec::new();
            f.render(&mut out, b"", foreign);
            assert!(
                !out.contains(&b'\n') && std::str::from_utf8(&out).is_ok(),
                "{out:?}"
            );
        }
    }

    #[test]
    fn parts_borrow_when_there_is_nothing_to_unescape() {
        let json = entry_json(b"plain [WARN] text", "app.log");
        let p = Parts::of_entry(&json).unwrap();
        assert!(matches!(p.message, Cow::Borrowed(_)));
        assert_eq!(
            p,
            parts(
                "2024-01-01T12:00:00.123456Z",
                "WARN",
                "app.log",
                "plain [WARN] text"
            )
        );
        let json = entry_json(b"tab\there", "app.log");
        assert!(matches!(
            Parts::of_entry(&json).unwrap().message,
            Cow::Owned(_)
        ));
    }

    #[test]
    fn random_lines_stay_on_one_line_in_every_format() {
        let pieces: [&[u8]; 12] = [
            b"{",
            b"}",
            b"\"msg\":",
            b"\"",
            b"\\n",
            b"\\r",
            b"\r",
            b"\xff",
            b"\xc3\xa9",
            b" ERROR ",
            b"x",
            b"\\u2028",
        ];
        let formats = [Format::Raw, txt(DEFAULT_TXT_TEMPLATE)];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut r = seed;
            let mut line = Vec::new();
            for _ in 0..r % 10 {
                r = r.rotate_left(7) ^ 0x5851_f42d;
                line.extend_from_slice(pieces[(r % 12) as usize]);
            }
            for f in &formats {
                let mut out = Vec::new();
                f.render(&mut out, &line, &entry_json(&line, "s\r.log"));
                assert!(
                    !out.contains(&b'\n') && !out.contains(&b'\r'),
                    "{f:?} {:?}",
                    String::from_utf8_lossy(&line)
                );
                assert!(std::str::from_utf8(&out).is_ok());
            }
        }
    }
}
