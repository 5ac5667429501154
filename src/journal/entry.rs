//! One journal entry, as `journalctl --output=json` prints it, becomes one logwisp entry
//! (SPEC §17): `time` from `__REALTIME_TIMESTAMP`, `level` from `PRIORITY`, `message` from
//! `MESSAGE`, `source` from `SYSLOG_IDENTIFIER` (else the unit, else the command), and the
//! configured fields under `fields`.
//!
//! journalctl writes a field as a string, as an array of byte values when it is not valid
//! UTF-8 (or holds control characters), as an array of values when the entry has the field
//! more than once (the first is taken), and as `null` when it is too large to show (never
//! with `--all`, which logwisp passes). Byte arrays are decoded lossily.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::entry::{Stamp, write_json_string};

/// Fields logwisp reads besides the configured ones (journalctl always adds `__CURSOR`,
/// `__REALTIME_TIMESTAMP`, `__MONOTONIC_TIMESTAMP` and `_BOOT_ID`).
pub const READ_FIELDS: [&str; 5] = [
    "MESSAGE",
    "PRIORITY",
    "SYSLOG_IDENTIFIER",
    "_SYSTEMD_UNIT",
    "_COMM",
];

/// What one line of journalctl's JSON carries that an entry needs; borrowed from the line
/// where no unescaping was needed.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    pub cursor: Option<Cow<'a, str>>,
    /// `__REALTIME_TIMESTAMP`, microseconds since the epoch.
    pub realtime: Option<i64>,
    /// `PRIORITY`, 0 (emerg) to 7 (debug).
    pub priority: Option<u8>,
    pub message: Option<Cow<'a, [u8]>>,
    pub identifier: Option<Cow<'a, [u8]>>,
    pub unit: Option<Cow<'a, [u8]>>,
    pub comm: Option<Cow<'a, [u8]>>,
    /// Values of the configured fields: `(index in the list, value)`, in line order.
    pub fields: Vec<(usize, Cow<'a, [u8]>)>,
}

/// Why a line could not be read as an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

/// Reads one line of journalctl's JSON output. `wanted` are the configured field names.
pub fn parse<'a>(line: &'a [u8], wanted: &[String]) -> Result<Parsed<'a>, Unreadable> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let parsed = de
        .deserialize_map(EntryVisitor { wanted })
        .and_then(|p| de.end().map(|()| p))
        .map_err(|e| Unreadable(format!("not a journal entry in JSON: {e}")))?;
    if parsed.cursor.is_none() {
        return Err(Unreadable("a journal entry without __CURSOR".into()));
    }
    Ok(parsed)
}

/// The seqnum id (`s=`) and sequence number (`i=`, hex) a cursor names: entries of one
/// seqnum id are totally ordered by their number.
pub fn cursor_seq(cursor: &str) -> Option<(&str, u64)> {
    let (mut id, mut n) = (None, None);
    for part in cursor.split(';') {
        if let Some(v) = part.strip_prefix("s=") {
            id = Some(v);
        } else if let Some(v) = part.strip_prefix("i=") {
            n = u64::from_str_radix(v, 16).ok();
        }
    }
    Some((id?, n?))
}

/// `PRIORITY` as a logwisp level: 0–3 `ERROR`, 4 `WARN`, 5–6 `INFO`, 7 `DEBUG`; none
/// (or one out of range) is `""`, like a plain line without a level keyword.
pub fn level(priority: Option<u8>) -> &'static str {
    match priority {
        Some(0..=3) => "ERROR",
        Some(4) => "WARN",
        Some(5 | 6) => "INFO",
        Some(7) => "DEBUG",
        _ => "",
    }
}

/// The entry's `source`: `SYSLOG_IDENTIFIER`, else the unit, else the command, else
/// `journal`.
pub fn source<'p>(p: &'p Parsed) -> &'p [u8] {
    [&p.identifier, &p.unit, &p.comm]
        .into_iter()
        .flatten()
        .find(|v| !v.is_empty())
        .map_or(b"journal", |v| v)
}

/// The message, cut to at most `max` bytes (on a UTF-8 boundary); true when it was cut.
pub fn message<'p>(p: &'p Parsed, max: usize) -> (&'p [u8], bool) {
    let m: &[u8] = p.message.as_deref().unwrap_or(b"");
    if m.len() <= max {
        return (m, false);
    }
    (&m[..crate::tail::lines::cut_point(m, max)], true)
}

/// Writes the logwisp entry for `p`; `names` are the configured fields, `message` the
/// (possibly cut) message, `now` the time used when the entry has none.
pub fn write_entry(out: &mut Vec<u8>, p: &Parsed, names: &[String], message: &[u8], now: &Stamp) {
    let stamp = p.realtime.map(Stamp::from_micros);
    let time = stamp.as_ref().map_or(&now.text, |s| &s.text);
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(time);
    out.extend_from_slice(b"\",\"source\":");
    write_json_string(out, source(p));
    out.extend_from_slice(b",\"level\":\"");
    out.extend_from_slice(level(p.priority).as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    write_json_string(out, message);
    if !p.fields.is_empty() {
        // In the order the target lists them, each once.
        let mut first = true;
        for (i, name) in names.iter().enumerate() {
            let Some((_, value)) = p.fields.iter().find(|(k, _)| *k == i) else {
                continue;
            };
            out.extend_from_slice(if first { b",\"fields\":{" } else { b"," });
            first = false;
            write_json_string(out, name.as_bytes());
            out.push(b':');
            write_json_string(out, value);
        }
        out.push(b'}');
    }
    out.push(b'}');
}

struct EntryVisitor<'w> {
    wanted: &'w [String],
}

impl<'de> Visitor<'de> for EntryVisitor<'_> {
    type Value = Parsed<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
        let mut p = Parsed::default();
        while let Some(Text(key)) = map.next_key::<Text>()? {
            let wanted = self.wanted.iter().position(|w| *w == key);
            let slot = match &*key {
                "__CURSOR" => {
                    let Value(v) = map.next_value()?;
                    p.cursor = v.map(|v| match v {
                        Cow::Borrowed(b) => String::from_utf8_lossy(b),
                        Cow::Owned(o) => Cow::Owned(String::from_utf8_lossy(&o).into_owned()),
                    });
                    continue;
                }
                "__REALTIME_TIMESTAMP" | "PRIORITY" => {
                    let Value(v) = map.next_value()?;
                    let n = v
                        .as_deref()
                        .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok());
                    if key == "PRIORITY" {
                        p.priority = n.and_then(|n: i64| u8::try_from(n).ok());
                    } else {
                        p.realtime = n;
                    }
                    continue;
                }
                "MESSAGE" => Some(&mut p.message),
                "SYSLOG_IDENTIFIER" => Some(&mut p.identifier),
                "_SYSTEMD_UNIT" => Some(&mut p.unit),
                "_COMM" => Some(&mut p.comm),
                _ => None,
            };
            match (slot, wanted) {
                (None, None) => {
                    map.next_value::<IgnoredAny>()?;
                }
                (Some(slot), None) => *slot = map.next_value::<Value>()?.0,
                (slot, Some(i)) => {
                    let Value(v) = map.next_value()?;
                    if let Some(v) = v {
                        if let Some(slot) = slot {
                            *slot = Some(v.clone());
                        }
                        p.fields.push((i, v));
                    }
                }
            }
        }
        Ok(p)
    }
}

/// A key or string value, borrowed when it needed no unescaping.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A field's value as bytes: a string, an array of byte values, or (a field the entry
/// has several times) the first of an array of those; `null` is none.
struct Value<'a>(Option<Cow<'a, [u8]>>);

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, an array of bytes, an array of values or null")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value(Some(Cow::Borrowed(v.as_bytes()))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value(Some(Cow::Owned(v.as_bytes().to_vec()))))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value<'de>, E> {
        Ok(Value(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        // Bytes (numbers) or several values (the first is kept): the first element says.
        let mut bytes = Vec::new();
        let first = match seq.next_element::<Element>()? {
            None => return Ok(Value(Some(Cow::Owned(bytes)))),
            Some(Element::Byte(b)) => {
                bytes.push(b);
                None
            }
            Some(Element::Value(v)) => Some(v),
        };
        if let Some(first) = first {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(first);
        }
        while let Some(b) = seq.next_element::<u8>()? {
            bytes.push(b);
        }
        Ok(Value(Some(Cow::Owned(bytes))))
    }
}

enum Element<'a> {
    Byte(u8),
    Value(Value<'a>),
}

impl<'de> Deserialize<'de> for Element<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Element<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte or a value")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element<'de>, E> {
                u8::try_from(v)
                    .map(Element::Byte)
                    .map_err(|_| E::custom("a byte above 255"))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Element<'de>, E> {
                ValueVisitor.visit_borrowed_str(v).map(Element::Value)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Element<'de>, E> {
                ValueVisitor.visit_str(v).map(Element::Value)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Element<'de>, E> {
                Ok(Element::Value(Value(None)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element<'de>, A::Error> {
                ValueVisitor.visit_seq(seq).map(Element::Value)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn render(line: &str, fields: &[&str]) -> String {
        let names = names(fields);
        let p = parse(line.as_bytes(), &names).unwrap();
        let mut out = Vec::new();
        let (m, _) = message(&p, 1 << 20);
        write_entry(&mut out, &p, &names, m, &Stamp::from_micros(0));
        let text = String::from_utf8(out).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).expect("valid JSON");
        text
    }

    const LINE: &str = r#"{"_PID":"123","__CURSOR":"s=75;i=1","__MONOTONIC_TIMESTAMP":"1000","_BOOT_ID":"6539","_HOSTNAME":"gw1","__REALTIME_TIMESTAMP":"1796052230597205","PRIORITY":"3","SYSLOG_IDENTIFIER":"myapp","MESSAGE":"hello \"world\"","_SYSTEMD_UNIT":"myapp.service"}"#;

    #[test]
    fn an_entry_is_mapped_per_the_spec() {
        assert_eq!(
            render(LINE, &["_SYSTEMD_UNIT", "_PID", "_HOSTNAME", "_BOOT_ID"]),
            r#"{"time":"2026-11-30T15:23:50.597205Z","source":"myapp","level":"ERROR","message":"hello \"world\"","fields":{"_SYSTEMD_UNIT":"myapp.service","_PID":"123","_HOSTNAME":"gw1","_BOOT_ID":"6539"}}"#
        );
        let p = parse(LINE.as_bytes(), &[]).unwrap();
        assert_eq!(p.cursor.as_deref(), Some("s=75;i=1"));
        assert_eq!(
            render(LINE, &[]),
            r#"{"time":"2026-11-30T15:23:50.597205Z","source":"myapp","level":"ERROR","message":"hello \"world\""}"#
        );
    }

    #[test]
    fn every_priority_has_its_level() {
        let want = [
            "ERROR", "ERROR", "ERROR", "ERROR", "WARN", "INFO", "INFO", "DEBUG",
        ];
        for (p, level_name) in want.iter().enumerate() {
            assert_eq!(level(Some(p as u8)), *level_name);
        }
        assert_eq!(level(None), "");
        assert_eq!(level(Some(8)), "");
        let line = r#"{"__CURSOR":"c","PRIORITY":"x","MESSAGE":"m"}"#;
        assert_eq!(parse(line.as_bytes(), &[]).unwrap().priority, None);
    }

    #[test]
    fn source_falls_back_to_the_unit_then_the_command() {
        let p = |l: &str| render(l, &[]);
        assert!(
            p(r#"{"__CURSOR":"c","_SYSTEMD_UNIT":"a.service","_COMM":"a"}"#)
                .contains(r#""source":"a.service""#)
        );
        assert!(p(r#"{"__CURSOR":"c","_COMM":"a"}"#).contains(r#""source":"a""#));
        assert!(p(r#"{"__CURSOR":"c"}"#).contains(r#""source":"journal""#));
        assert!(
            p(r#"{"__CURSOR":"c","SYSLOG_IDENTIFIER":"","_SYSTEMD_UNIT":"u"}"#)
                .contains(r#""source":"u""#)
        );
    }

    #[test]
    fn binary_and_repeated_fields_are_read() {
        // "hé\xff" as bytes: decoded lossily.
        let line = r#"{"__CURSOR":"c","MESSAGE":[104,195,169,255,10],"_PID":["1","2"],"_HOSTNAME":null,"X":[[1,2],"y"]}"#;
        let text = render(line, &["_PID", "_HOSTNAME", "X"]);
        assert!(text.contains("\"message\":\"hé\u{fffd}\\n\""), "{text}");
        assert!(
            text.contains(r#""fields":{"_PID":"1","X":"\u0001\u0002"}"#),
            "{text}"
        );
        let empty = render(r#"{"__CURSOR":"c","MESSAGE":[]}"#, &[]);
        assert!(empty.contains(r#""message":"""#), "{empty}");
    }

    #[test]
    fn escapes_and_unicode_survive() {
        let line = r#"{"__CURSOR":"c\u0041","MESSAGE":"tab\there \u00e9 \ud83d\ude00"}"#;
        let p = parse(line.as_bytes(), &[]).unwrap();
        assert_eq!(p.cursor.as_deref(), Some("cA"));
        assert!(render(line, &[]).contains("\"message\":\"tab\\there é 😀\""));
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let line = r#"{"__CURSOR":"c","MESSAGE":"aé"}"#;
        let p = parse(line.as_bytes(), &[]).unwrap();
        assert_eq!(message(&p, 2), (&b"a"[..], true));
        assert_eq!(message(&p, 3), ("aé".as_bytes(), false));
    }

    #[test]
    fn cursors_name_their_sequence() {
        assert_eq!(
            cursor_seq("s=7530;i=1f;b=6539;m=3e8;t=6617;x=9d31"),
            Some(("7530", 0x1f))
        );
        assert_eq!(cursor_seq("s=7530;b=1"), None);
        assert_eq!(cursor_seq("bogus"), None);
    }

    #[test]
    fn what_is_not_an_entry_is_unreadable() {
        for bad in [
            "",
            "{",
            "[1]",
            r#"{"MESSAGE":"no cursor"}"#,
            r#"{"__CURSOR":"c"} x"#,
            r#"{"__CURSOR":"c","MESSAGE":[300]}"#,
            r#"{"__CURSOR":"c","MESSAGE":{"a":1}}"#,
        ] {
            assert!(parse(bad.as_bytes(), &[]).is_err(), "{bad}");
        }
    }
}
