//! The entry writer as it was before the one-pass scanner (logwisp commit 06eb3e9), kept
//! verbatim in behaviour as the fuzzing oracle: a JSON line was parsed once into a
//! `serde_json::Value` to validate it, then again into members with `RawValue` values.
//! Only public logwisp functions are used, so the two implementations share nothing but
//! string escaping, level detection and time formatting.

use std::borrow::Cow;

use logwisp::entry::{Stamp, detect_level, write_json_string};
use logwisp::timefmt;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

pub fn write_entry(out: &mut Vec<u8>, line: &[u8], source_json: &[u8], stamp: &Stamp) {
    let trimmed = line.trim_ascii();
    if trimmed.first() == Some(&b'{') && trimmed.last() == Some(&b'}') {
        let mark = out.len();
        if write_json_entry(out, trimmed, source_json, stamp) {
            return;
        }
        out.truncate(mark);
    }
    write_plain(out, line, source_json, stamp);
}

/// The entry of a line not taken as JSON.
pub fn write_plain(out: &mut Vec<u8>, line: &[u8], source_json: &[u8], stamp: &Stamp) {
    open_entry(out, &stamp.text, source_json);
    out.extend_from_slice(b",\"level\":\"");
    out.extend_from_slice(detect_level(line).as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    write_json_string(out, line);
    out.push(b'}');
}

fn open_entry(out: &mut Vec<u8>, time: &[u8; 27], source_json: &[u8]) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(time);
    out.extend_from_slice(b"\",\"source\":");
    out.extend_from_slice(source_json);
}

struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

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

fn write_raw(out: &mut Vec<u8>, v: &RawValue) {
    let text = v.get().as_bytes();
    out.extend(text.iter().copied().filter(|&b| b != b'\r' && b != b'\n'));
}

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
