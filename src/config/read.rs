//! A strict reader from toml's spanned document into plain structs, driven by a schema
//! written once per table with [`schema!`] and [`keywords!`].
//!
//! Why not serde's derive: it is a proc macro, and proc macros cannot be built with the
//! `+crt-static` rustflags of .cargo/config.toml (without `--target`, they reach host
//! artifacts too). A key declared here is type-checked, listed among the allowed keys,
//! defaulted, and located (key path and line) in every error, from its one line in the
//! schema.

use std::collections::HashMap;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A problem at a key path, at a byte offset when known.
#[derive(Debug)]
pub struct Problem {
    pub key: String,
    pub offset: Option<usize>,
    pub message: String,
}

/// Byte offset of every key path seen, so validation errors found later can name a line.
pub type Offsets = HashMap<String, usize>;

/// A value a key may hold.
pub trait FromToml: Sized {
    /// What was expected, for "expected …, found …": `a string`.
    fn expected() -> String;
    /// The same in the plural, for arrays: `strings`.
    fn plural() -> String;
    /// Reads `v`, found at key path `key`.
    fn from_toml(v: &Spanned<DeValue>, key: &str, offsets: &mut Offsets) -> Result<Self, Problem>;
}

fn type_name(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The standard complaint about `v` not being a `T`.
pub fn wrong_type<T: FromToml>(v: &Spanned<DeValue>, key: &str) -> Problem {
    Problem {
        key: key.to_string(),
        offset: Some(v.span().start),
        message: format!(
            "expected {}, found {}",
            T::expected(),
            type_name(v.get_ref())
        ),
    }
}

impl FromToml for String {
    fn expected() -> String {
        "a string".into()
    }
    fn plural() -> String {
        "strings".into()
    }
    fn from_toml(v: &Spanned<DeValue>, key: &str, _: &mut Offsets) -> Result<Self, Problem> {
        match v.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            _ => Err(wrong_type::<Self>(v, key)),
        }
    }
}

impl FromToml for bool {
    fn expected() -> String {
        "a boolean (true or false)".into()
    }
    fn plural() -> String {
        "booleans".into()
    }
    fn from_toml(v: &Spanned<DeValue>, key: &str, _: &mut Offsets) -> Result<Self, Problem> {
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(wrong_type::<Self>(v, key)),
        }
    }
}

/// Integers are read as `i64` and ranged by validation, whose messages say what the
/// range means (a port, a count, 0 = unlimited).
impl FromToml for i64 {
    fn expected() -> String {
        "an integer".into()
    }
    fn plural() -> String {
        "integers".into()
    }
    fn from_toml(v: &Spanned<DeValue>, key: &str, _: &mut Offsets) -> Result<Self, Problem> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| Problem {
                    key: key.to_string(),
                    offset: Some(v.span().start),
                    message: "integer out of range".into(),
                })
            }
            _ => Err(wrong_type::<Self>(v, key)),
        }
    }
}

/// A number; an integer is accepted where a float is expected (`10` for `10.0`).
impl FromToml for f64 {
    fn expected() -> String {
        "a number".into()
    }
    fn plural() -> String {
        "numbers".into()
    }
    fn from_toml(v: &Spanned<DeValue>, key: &str, o: &mut Offsets) -> Result<Self, Problem> {
        match v.get_ref() {
            DeValue::Float(f) => {
                let text = f.as_str().replace('_', "");
                // inf and nan are read so validation can reject them by what they mean.
                let parsed = match text.trim_start_matches(['+', '-']) {
                    "inf" | "nan" => Some(f64::NAN),
                    _ => text.parse::<f64>().ok(),
                };
                parsed.ok_or_else(|| wrong_type::<Self>(v, key))
            }
            DeValue::Integer(_) => i64::from_toml(v, key, o).map(|i| i as f64),
            _ => Err(wrong_type::<Self>(v, key)),
        }
    }
}

/// Arrays, of values or of tables (`[[streams]]`, `targets = [{ … }]`); item `i` is
/// located as `key[i]`.
impl<T: FromToml> FromToml for Vec<T> {
    fn expected() -> String {
        format!("an array of {}", T::plural())
    }
    fn plural() -> String {
        "arrays".into()
    }
    fn from_toml(v: &Spanned<DeValue>, key: &str, o: &mut Offsets) -> Result<Self, Problem> {
        let DeValue::Array(items) = v.get_ref() else {
            return Err(wrong_type::<Self>(v, key));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{key}[{i}]");
            o.insert(path.clone(), item.span().start);
            out.push(T::from_toml(item, &path, o)?);
        }
        Ok(out)
    }
}

/// One table being read: its keys are checked against the schema's on opening.
pub struct Table<'t, 'i> {
    table: &'t DeTable<'i>,
    path: String,
}

impl<'t, 'i> Table<'t, 'i> {
    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Rejects keys outside `allowed` and records where each key is.
    pub fn open(
        table: &'t DeTable<'i>,
        path: &str,
        allowed: &[&str],
        offsets: &mut Offsets,
    ) -> Result<Self, Problem> {
        let t = Table {
            table,
            path: path.to_string(),
        };
        for (k, _) in table.iter() {
            let name: &str = k.get_ref();
            let key = t.key_path(name);
            if !allowed.contains(&name) {
                return Err(Problem {
                    key,
                    offset: Some(k.span().start),
                    message: format!(
                        "unknown key `{name}` (expected one of: {})",
                        allowed.join(", ")
                    ),
                });
            }
            offsets.insert(key, k.span().start);
        }
        Ok(t)
    }

    /// The value of `key` when it is written.
    pub fn get<T: FromToml>(&self, key: &str, o: &mut Offsets) -> Result<Option<T>, Problem> {
        match self.table.iter().find(|(k, _)| k.get_ref() == key) {
            None => Ok(None),
            Some((_, v)) => T::from_toml(v, &self.key_path(key), o).map(Some),
        }
    }
}

/// Declares the raw form of TOML tables: one line per key, `name: Type`, or
/// `name: Type = default`, or `name("toml-key"): Type` where the key is not a Rust name
/// (`type`). Without a default the field is an `Option` (absent = `None`), for keys whose
/// default depends on others or whose presence matters.
///
/// Generates the struct, `Default` (every key absent), `read` for a table (the root
/// document) and [`FromToml`], so the struct can be the type of a key in another schema,
/// alone or in a `Vec`.
macro_rules! schema {
    (@type $ty:ty) => { Option<$ty> };
    (@type $ty:ty, $default:expr) => { $ty };
    (@key $field:ident) => { stringify!($field) };
    (@key $field:ident, $key:literal) => { $key };
    (@default) => { None };
    (@default $default:expr) => { $default };
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident $(($key:literal))? : $ty:ty $(= $default:expr)?
            ),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: schema!(@type $ty $(, $default)?), )*
        }

        impl $name {
            pub const KEYS: &'static [&'static str] = &[$( schema!(@key $field $(, $key)?) ),*];

            pub fn read(
                table: &toml::de::DeTable,
                path: &str,
                o: &mut $crate::config::read::Offsets,
            ) -> Result<Self, $crate::config::read::Problem> {
                let t = $crate::config::read::Table::open(table, path, Self::KEYS, o)?;
                Ok($name {
                    $( $field: t.get::<$ty>(schema!(@key $field $(, $key)?), o)?
                        $(.unwrap_or($default))?, )*
                })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: schema!(@default $($default)?), )* }
            }
        }

        impl $crate::config::read::FromToml for $name {
            fn expected() -> String {
                "a table".into()
            }
            fn plural() -> String {
                "tables".into()
            }
            fn from_toml(
                v: &toml::Spanned<toml::de::DeValue>,
                key: &str,
                o: &mut $crate::config::read::Offsets,
            ) -> Result<Self, $crate::config::read::Problem> {
                match v.get_ref() {
                    toml::de::DeValue::Table(t) => Self::read(t, key, o),
                    _ => Err($crate::config::read::wrong_type::<Self>(v, key)),
                }
            }
        }
    )*};
}
pub(crate) use schema;

/// Declares an enum written in TOML as one of a few strings. Generates `as_str`,
/// `from_keyword` (whose error lists the choices) and [`FromToml`].
macro_rules! keywords {
    ($(
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    )*) => {$(
        $(#[$meta])*
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            pub const ALL: &'static [($name, &'static str)] = &[$( ($name::$variant, $text) ),+];

            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text ),+ }
            }

            /// The variant written `text`, else a message naming the choices.
            pub fn from_keyword(text: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .find(|(_, t)| *t == text)
                    .map(|(v, _)| *v)
                    .ok_or_else(|| {
                        let names = Self::ALL.iter().map(|(_, t)| *t);
                        format!("`{text}` is not {}", $crate::config::read::choices(names))
                    })
            }
        }

        impl $crate::config::read::FromToml for $name {
            fn expected() -> String {
                "a string".into()
            }
            fn plural() -> String {
                "strings".into()
            }
            fn from_toml(
                v: &toml::Spanned<toml::de::DeValue>,
                key: &str,
                o: &mut $crate::config::read::Offsets,
            ) -> Result<Self, $crate::config::read::Problem> {
                let text = <String as $crate::config::read::FromToml>::from_toml(v, key, o)?;
                Self::from_keyword(&text).map_err(|message| $crate::config::read::Problem {
                    key: key.to_string(),
                    offset: Some(v.span().start),
                    message,
                })
            }
        }
    )*};
}
pub(crate) use keywords;

/// "`a` or `b`", "`a`, `b` or `c`".
pub fn choices<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    schema! {
        pub struct Inner {
            n: i64 = 7,
            kind("type"): String,
        }
        pub struct Root {
            flag: bool,
            ratio: f64 = 1.5,
            words: Vec<String>,
            inner: Inner,
            items: Vec<Inner>,
        }
    }

    keywords! {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Colour { Red = "red", Green = "green", Blue = "blue" }
    }

    schema! {
        pub struct Paint {
            colour: Colour = Colour::Red,
        }
    }

    fn read<T>(
        text: &str,
        f: fn(&DeTable, &str, &mut Offsets) -> Result<T, Problem>,
    ) -> (Result<T, Problem>, Offsets) {
        let doc = DeTable::parse(text).unwrap();
        let mut o = Offsets::new();
        (f(doc.get_ref(), "", &mut o), o)
    }

    #[test]
    fn absent_keys_take_defaults_or_none() {
        let (r, _) = read("", Root::read);
        let r = r.unwrap();
        assert_eq!((r.flag, r.ratio, r.words), (None, 1.5, None));
        assert!(r.inner.is_none() && r.items.is_none());
        let d = Inner::default();
        assert_eq!((d.n, d.kind), (7, None));
    }

    #[test]
    fn nested_values_are_read_and_located() {
        let text = "flag = true\nratio = 2\nwords = [\"a\", \"b\"]\n[inner]\ntype = \"x\"\n\
                    [[items]]\nn = 1\n[[items]]\nn = 2\ntype = \"y\"\n";
        let (r, o) = read(text, Root::read);
        let r = r.unwrap();
        assert_eq!((r.flag, r.ratio), (Some(true), 2.0));
        assert_eq!(r.words.unwrap(), ["a", "b"]);
        assert_eq!(r.inner.unwrap().kind.as_deref(), Some("x"));
        let items = r.items.unwrap();
        assert_eq!((items[0].n, items[1].n), (1, 2));
        assert_eq!(items[1].kind.as_deref(), Some("y"));
        let line = |k: &str| text[..o[k]].matches('\n').count() + 1;
        assert_eq!(line("inner.type"), 5);
        assert_eq!(line("items[1].type"), 10);
        assert_eq!(line("words[1]"), 3);
    }

    #[test]
    fn problems_name_the_key_path() {
        let cases = [
            (
                "bogus = 1",
                "bogus",
                "unknown key `bogus` (expected one of: flag, ratio, words, inner, items)",
            ),
            (
                "[inner]\nkind = 1",
                "inner.kind",
                "unknown key `kind` (expected one of: n, type)",
            ),
            (
                "flag = 1",
                "flag",
                "expected a boolean (true or false), found an integer",
            ),
            (
                "ratio = \"x\"",
                "ratio",
                "expected a number, found a string",
            ),
            (
                "words = [1]",
                "words[0]",
                "expected a string, found an integer",
            ),
            (
                "words = \"a\"",
                "words",
                "expected an array of strings, found a string",
            ),
            ("inner = 3", "inner", "expected a table, found an integer"),
            (
                "[items]",
                "items",
                "expected an array of tables, found a table",
            ),
            (
                "items = [1]",
                "items[0]",
                "expected a table, found an integer",
            ),
            (
                "[[items]]\nn = 99999999999999999999",
                "items[0].n",
                "integer out of range",
            ),
        ];
        for (text, key, message) in cases {
            let p = read(text, Root::read).0.err().unwrap();
            assert_eq!(
                (p.key.as_str(), p.message.as_str()),
                (key, message),
                "{text}"
            );
            assert!(p.offset.is_some());
        }
    }

    #[test]
    fn keywords_read_and_list_the_choices() {
        let (p, _) = read("colour = \"blue\"", Paint::read);
        assert_eq!(p.unwrap().colour, Colour::Blue);
        assert_eq!(read("", Paint::read).0.unwrap().colour, Colour::Red);
        let e = read("colour = \"pink\"", Paint::read).0.err().unwrap();
        assert_eq!(e.message, "`pink` is not `red`, `green` or `blue`");
        assert_eq!(Colour::Green.as_str(), "green");
        assert_eq!(choices(["a", "b"].into_iter()), "`a` or `b`");
        assert_eq!(choices(["a"].into_iter()), "`a`");
    }
}
