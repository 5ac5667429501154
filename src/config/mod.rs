//! Configuration: the TOML schema of the original logwisp, read strictly.
//!
//! Two layers, as in ripgrep's low/high args: `raw` mirrors the file (every key optional,
//! unknown keys rejected by serde), and [`Config`] is the validated result the service runs
//! on. Every error names the file, the key path and, where it can be found, the line.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Component, Path, PathBuf};

pub const DEFAULT_CHECK_INTERVAL_MS: u64 = 100;
pub const MIN_CHECK_INTERVAL_MS: u64 = 10;
pub const DEFAULT_BUFFER_SIZE: usize = 1000;
/// Upper bound so a typo cannot make one stream reserve gigabytes of index.
pub const MAX_BUFFER_SIZE: usize = 10_000_000;
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;
pub const MIN_MAX_LINE_BYTES: usize = 64;
pub const MAX_MAX_LINE_BYTES: usize = 256 * 1024 * 1024;
pub const DEFAULT_HTTP_PORT: u16 = 8080;
pub const DEFAULT_TCP_PORT: u16 = 9090;
pub const DEFAULT_HEARTBEAT_SECS: u64 = 30;
/// How long a file renamed away by a rotation is still read (its writer may not have
/// reopened yet), counted from the rename and from each later write to it.
pub const DEFAULT_ROTATE_WAIT_MS: u64 = 5_000;

/// Where the config came from; startup prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Flag(PathBuf),
    Env(PathBuf),
    Home(PathBuf),
    BuiltIn,
}

impl ConfigSource {
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::Flag(p) | ConfigSource::Env(p) | ConfigSource::Home(p) => Some(p),
            ConfigSource::BuiltIn => None,
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Flag(p) => write!(f, "{} (from --config)", p.display()),
            ConfigSource::Env(p) => write!(f, "{} (from $LOGWISP_CONFIG)", p.display()),
            ConfigSource::Home(p) => write!(f, "{}", p.display()),
            ConfigSource::BuiltIn => f.write_str("built-in default (./*.log on port 8080)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub streams: Vec<StreamConfig>,
    /// Where checkpoints and ids are kept (`None`: the default, see `state::default_dir`).
    pub state_dir: Option<PathBuf>,
    /// Router mode: HTTP streams sharing a port are served by one listener.
    pub router: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    pub name: String,
    pub check_interval_ms: u64,
    pub rotate_wait_ms: u64,
    pub targets: Vec<TargetConfig>,
    pub max_line_bytes: usize,
    pub http: Option<HttpConfig>,
    pub tcp: Option<TcpConfig>,
}

impl StreamConfig {
    /// Entries the shared buffer must hold: the deepest lag any of its servers allows.
    pub fn ring_capacity(&self) -> usize {
        let http = self.http.as_ref().map_or(0, |h| h.buffer_size);
        let tcp = self.tcp.as_ref().map_or(0, |t| t.buffer_size);
        http.max(tcp).max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    End,
    Beginning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// As written in the config (shown in status).
    pub path: PathBuf,
    /// Directory watched for this target: the parent for a file, the path for a directory.
    pub dir: PathBuf,
    pub matcher: NameMatcher,
    pub start_at: StartAt,
}

/// Which names in `dir` belong to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatcher {
    Exact(String),
    Glob(String),
}

impl NameMatcher {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NameMatcher::Exact(n) => n == name,
            NameMatcher::Glob(g) => crate::tail::glob::matches(g, name),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub address: IpAddr,
    pub port: u16,
    pub buffer_size: usize,
    pub stream_path: String,
    pub status_path: String,
    pub heartbeat: Option<HeartbeatConfig>,
    pub rate_limit: Option<RateLimitConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TcpConfig {
    pub address: IpAddr,
    pub port: u16,
    pub buffer_size: usize,
    pub heartbeat: Option<HeartbeatConfig>,
    pub rate_limit: Option<RateLimitConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatFormat {
    Comment,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatConfig {
    pub interval_secs: u64,
    pub format: HeartbeatFormat,
    pub include_timestamp: bool,
    pub include_stats: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitBy {
    Ip,
    Global,
}

impl LimitBy {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitBy::Ip => "ip",
            LimitBy::Global => "global",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    pub requests_per_second: f64,
    pub burst_size: u32,
    pub limit_by: LimitBy,
    pub response_code: u16,
    pub response_message: String,
    /// 0 = unlimited.
    pub max_connections_per_ip: u32,
    /// 0 = unlimited.
    pub max_total_connections: u32,
}

/// A config problem, located as precisely as the TOML allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error in {}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ", key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Overrides from the command line that change validation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub router: bool,
    pub router_port: Option<u16>,
}

/// The file as written: every key optional, types checked, nothing else decided.
mod raw {
    #[derive(Default)]
    pub struct File {
        pub router: Option<bool>,
        pub streams: Option<Vec<Stream>>,
        pub state_dir: Option<String>,
    }

    pub struct Stream {
        pub name: Option<String>,
        pub monitor: Option<Monitor>,
        pub httpserver: Option<Http>,
        pub tcpserver: Option<Tcp>,
        pub max_line_bytes: Option<i64>,
    }

    pub struct Monitor {
        pub check_interval_ms: Option<i64>,
        pub rotate_wait_ms: Option<i64>,
        pub targets: Option<Vec<Target>>,
        pub max_line_bytes: Option<i64>,
    }

    pub struct Target {
        pub path: Option<String>,
        pub pattern: Option<String>,
        pub is_file: Option<bool>,
        pub start_at: Option<String>,
    }

    pub struct Http {
        pub enabled: Option<bool>,
        pub address: Option<String>,
        pub port: Option<i64>,
        pub buffer_size: Option<i64>,
        pub stream_path: Option<String>,
        pub status_path: Option<String>,
        pub heartbeat: Option<Heartbeat>,
        pub rate_limit: Option<RateLimit>,
    }

    pub struct Tcp {
        pub enabled: Option<bool>,
        pub address: Option<String>,
        pub port: Option<i64>,
        pub buffer_size: Option<i64>,
        pub heartbeat: Option<Heartbeat>,
        pub rate_limit: Option<RateLimit>,
    }

    pub struct Heartbeat {
        pub enabled: Option<bool>,
        pub interval_seconds: Option<i64>,
        pub format: Option<String>,
        pub include_timestamp: Option<bool>,
        pub include_stats: Option<bool>,
    }

    pub struct RateLimit {
        pub enabled: Option<bool>,
        pub requests_per_second: Option<f64>,
        pub burst_size: Option<i64>,
        pub limit_by: Option<String>,
        pub response_code: Option<i64>,
        pub response_message: Option<String>,
        pub max_connections_per_ip: Option<i64>,
        pub max_total_connections: Option<i64>,
    }
}

/// Reads the parsed TOML document into [`raw`] structs: rejects unknown keys and wrong
/// types at their exact position, and remembers where every key was written so later
/// validation errors can name its line.
mod read {
    use std::collections::HashMap;

    use toml::Spanned;
    use toml::de::{DeTable, DeValue};

    use super::raw;

    /// A problem at a key path, at a byte offset when known.
    pub struct Problem {
        pub key: String,
        pub offset: Option<usize>,
        pub message: String,
    }

    /// Byte offset of every key path seen.
    pub type Offsets = HashMap<String, usize>;

    struct Table<'t, 'i> {
        table: &'t DeTable<'i>,
        path: String,
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

    impl<'t, 'i> Table<'t, 'i> {
        fn key_path(&self, key: &str) -> String {
            if self.path.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", self.path)
            }
        }

        /// Rejects keys outside `allowed` and records where each key is.
        fn open(
            table: &'t DeTable<'i>,
            path: String,
            allowed: &[&str],
            offsets: &mut Offsets,
        ) -> Result<Self, Problem> {
            let t = Table { table, path };
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

        fn get(&self, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
            self.table
                .iter()
                .find(|(k, _)| k.get_ref() == key)
                .map(|(_, v)| v)
        }

        fn wrong_type(&self, key: &str, v: &Spanned<DeValue>, want: &str) -> Problem {
            Problem {
                key: self.key_path(key),
                offset: Some(v.span().start),
                message: format!("expected {want}, found {}", type_name(v.get_ref())),
            }
        }

        fn string(&self, key: &str) -> Result<Option<String>, Problem> {
            match self.get(key) {
                None => Ok(None),
                Some(v) => match v.get_ref() {
                    DeValue::String(s) => Ok(Some(s.to_string())),
                    _ => Err(self.wrong_type(key, v, "a string")),
                },
            }
        }

        fn boolean(&self, key: &str) -> Result<Option<bool>, Problem> {
            match self.get(key) {
                None => Ok(None),
                Some(v) => match v.get_ref() {
                    DeValue::Boolean(b) => Ok(Some(*b)),
                    _ => Err(self.wrong_type(key, v, "a boolean (true or false)")),
                },
            }
        }

        fn integer(&self, key: &str) -> Result<Option<i64>, Problem> {
            match self.get(key) {
                None => Ok(None),
                Some(v) => match v.get_ref() {
                    DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                        .map(Some)
                        .map_err(|_| Problem {
                            key: self.key_path(key),
                            offset: Some(v.span().start),
                            message: "integer out of range".into(),
                        }),
                    _ => Err(self.wrong_type(key, v, "an integer")),
                },
            }
        }

        /// A number; integers are accepted where a float is expected (`10` for `10.0`).
        fn number(&self, key: &str) -> Result<Option<f64>, Problem> {
            match self.get(key) {
                None => Ok(None),
                Some(v) => match v.get_ref() {
                    DeValue::Float(f) => {
                        let text = f.as_str().replace('_', "");
                        let parsed = match text.trim_start_matches(['+', '-']) {
                            "inf" | "nan" => Some(f64::NAN),
                            _ => text.parse::<f64>().ok(),
                        };
                        parsed
                            .map(Some)
                            .ok_or_else(|| self.wrong_type(key, v, "a number"))
                    }
                    DeValue::Integer(_) => Ok(self.integer(key)?.map(|i| i as f64)),
                    _ => Err(self.wrong_type(key, v, "a number")),
                },
            }
        }

        fn table(
            &self,
            key: &str,
            allowed: &[&str],
            offsets: &mut Offsets,
        ) -> Result<Option<Table<'t, 'i>>, Problem> {
            match self.get(key) {
                None => Ok(None),
                Some(v) => match v.get_ref() {
                    DeValue::Table(t) => {
                        Table::open(t, self.key_path(key), allowed, offsets).map(Some)
                    }
                    _ => Err(self.wrong_type(key, v, "a table")),
                },
            }
        }

        fn tables(
            &self,
            key: &str,
            allowed: &[&str],
            offsets: &mut Offsets,
        ) -> Result<Option<Vec<Table<'t, 'i>>>, Problem> {
            let Some(v) = self.get(key) else {
                return Ok(None);
            };
            let DeValue::Array(items) = v.get_ref() else {
                return Err(self.wrong_type(key, v, "an array of tables"));
            };
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let path = format!("{}[{i}]", self.key_path(key));
                let DeValue::Table(t) = item.get_ref() else {
                    return Err(Problem {
                        key: path,
                        offset: Some(item.span().start),
                        message: format!("expected a table, found {}", type_name(item.get_ref())),
                    });
                };
                offsets.insert(path.clone(), item.span().start);
                out.push(Table::open(t, path, allowed, offsets)?);
            }
            Ok(Some(out))
        }
    }

    const HEARTBEAT: &[&str] = &[
        "enabled",
        "interval_seconds",
        "format",
        "include_timestamp",
        "include_stats",
    ];
    const RATE_LIMIT: &[&str] = &[
        "enabled",
        "requests_per_second",
        "burst_size",
        "limit_by",
        "response_code",
        "response_message",
        "max_connections_per_ip",
        "max_total_connections",
    ];

    fn heartbeat(t: &Table, o: &mut Offsets) -> Result<Option<raw::Heartbeat>, Problem> {
        let Some(h) = t.table("heartbeat", HEARTBEAT, o)? else {
            return Ok(None);
        };
        Ok(Some(raw::Heartbeat {
            enabled: h.boolean("enabled")?,
            interval_seconds: h.integer("interval_seconds")?,
            format: h.string("format")?,
            include_timestamp: h.boolean("include_timestamp")?,
            include_stats: h.boolean("include_stats")?,
        }))
    }

    fn rate_limit(t: &Table, o: &mut Offsets) -> Result<Option<raw::RateLimit>, Problem> {
        let Some(r) = t.table("rate_limit", RATE_LIMIT, o)? else {
            return Ok(None);
        };
        Ok(Some(raw::RateLimit {
            enabled: r.boolean("enabled")?,
            requests_per_second: r.number("requests_per_second")?,
            burst_size: r.integer("burst_size")?,
            limit_by: r.string("limit_by")?,
            response_code: r.integer("response_code")?,
            response_message: r.string("response_message")?,
            max_connections_per_ip: r.integer("max_connections_per_ip")?,
            max_total_connections: r.integer("max_total_connections")?,
        }))
    }

    pub fn file(doc: &DeTable, offsets: &mut Offsets) -> Result<raw::File, Problem> {
        let root = Table::open(
            doc,
            String::new(),
            &["router", "state_dir", "streams"],
            offsets,
        )?;
        let router = root.boolean("router")?;
        let state_dir = root.string("state_dir")?;
        let Some(streams) = root.tables(
            "streams",
            &[
                "name",
                "monitor",
                "httpserver",
                "tcpserver",
                "max_line_bytes",
            ],
            offsets,
        )?
        else {
            return Ok(raw::File {
                router,
                streams: None,
                state_dir,
            });
        };
        let mut out = Vec::new();
        for s in streams {
            let o = &mut *offsets;
            let monitor = match s.table(
                "monitor",
                &[
                    "check_interval_ms",
                    "rotate_wait_ms",
                    "targets",
                    "max_line_bytes",
                ],
                o,
            )? {
                None => None,
                Some(m) => {
                    let targets = match m.tables(
                        "targets",
                        &["path", "pattern", "is_file", "start_at"],
                        o,
                    )? {
                        None => None,
                        Some(ts) => Some(
                            ts.iter()
                                .map(|t| {
                                    Ok(raw::Target {
                                        path: t.string("path")?,
                                        pattern: t.string("pattern")?,
                                        is_file: t.boolean("is_file")?,
                                        start_at: t.string("start_at")?,
                                    })
                                })
                                .collect::<Result<Vec<_>, Problem>>()?,
                        ),
                    };
                    Some(raw::Monitor {
                        check_interval_ms: m.integer("check_interval_ms")?,
                        rotate_wait_ms: m.integer("rotate_wait_ms")?,
                        targets,
                        max_line_bytes: m.integer("max_line_bytes")?,
                    })
                }
            };
            let http_keys = [
                "enabled",
                "address",
                "port",
                "buffer_size",
                "stream_path",
                "status_path",
                "heartbeat",
                "rate_limit",
            ];
            let httpserver = match s.table("httpserver", &http_keys, o)? {
                None => None,
                Some(h) => Some(raw::Http {
                    enabled: h.boolean("enabled")?,
                    address: h.string("address")?,
                    port: h.integer("port")?,
                    buffer_size: h.integer("buffer_size")?,
                    stream_path: h.string("stream_path")?,
                    status_path: h.string("status_path")?,
                    heartbeat: heartbeat(&h, o)?,
                    rate_limit: rate_limit(&h, o)?,
                }),
            };
            let tcp_keys = [
                "enabled",
                "address",
                "port",
                "buffer_size",
                "heartbeat",
                "rate_limit",
            ];
            let tcpserver = match s.table("tcpserver", &tcp_keys, o)? {
                None => None,
                Some(t) => Some(raw::Tcp {
                    enabled: t.boolean("enabled")?,
                    address: t.string("address")?,
                    port: t.integer("port")?,
                    buffer_size: t.integer("buffer_size")?,
                    heartbeat: heartbeat(&t, o)?,
                    rate_limit: rate_limit(&t, o)?,
                }),
            };
            out.push(raw::Stream {
                name: s.string("name")?,
                monitor,
                httpserver,
                tcpserver,
                max_line_bytes: s.integer("max_line_bytes")?,
            });
        }
        Ok(raw::File {
            router,
            streams: Some(out),
            state_dir,
        })
    }
}

/// The config used when no file is found: one stream `default` tailing `./*.log`,
/// SSE on port 8080 with a 30 s comment heartbeat. inotify delivers lines at once; the
/// periodic check is only the backstop, so it runs once a second rather than the
/// original's ten times (an idle logwisp wakes rarely).
pub const BUILT_IN: &str = r#"
[[streams]]
name = "default"

[streams.monitor]
check_interval_ms = 1000
targets = [{ path = "./", pattern = "*.log", is_file = false }]

[streams.httpserver]
enabled = true
port = 8080
buffer_size = 1000
stream_path = "/stream"
status_path = "/status"

[streams.httpserver.heartbeat]
enabled = true
interval_seconds = 30
format = "comment"
include_timestamp = true
include_stats = false
"#;

/// Finds the config by the documented order: flag, `$LOGWISP_CONFIG`,
/// `~/.config/logwisp.toml`, built-in.
pub fn locate(flag: Option<&Path>) -> ConfigSource {
    if let Some(p) = flag {
        return ConfigSource::Flag(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("LOGWISP_CONFIG").filter(|v| !v.is_empty()) {
        return ConfigSource::Env(PathBuf::from(p));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        let p = Path::new(&home).join(".config").join("logwisp.toml");
        if p.is_file() {
            return ConfigSource::Home(p);
        }
    }
    ConfigSource::BuiltIn
}

/// Reads and validates the config from `source`.
pub fn load(source: &ConfigSource, overrides: Overrides) -> Result<Config, ConfigError> {
    match source.path() {
        None => parse(BUILT_IN, "<built-in>", overrides),
        Some(path) => {
            let name = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|e| ConfigError {
                file: name.clone(),
                line: None,
                key: String::new(),
                message: format!("cannot read: {e}"),
            })?;
            let text = String::from_utf8(bytes).map_err(|_| ConfigError {
                file: name.clone(),
                line: None,
                key: String::new(),
                message: "not valid UTF-8".into(),
            })?;
            parse(&text, &name, overrides)
        }
    }
}

/// Parses and validates TOML text; `file` names it in errors.
pub fn parse(text: &str, file: &str, overrides: Overrides) -> Result<Config, ConfigError> {
    let located = |key: String, offset: Option<usize>, message: String| ConfigError {
        file: file.to_string(),
        line: offset.map(|o| line_of(text, o)),
        key,
        message,
    };
    let doc = toml::de::DeTable::parse(text).map_err(|e| {
        located(
            String::new(),
            e.span().map(|s| s.start),
            first_line(e.message()),
        )
    })?;
    let mut offsets = read::Offsets::new();
    let raw =
        read::file(doc.get_ref(), &mut offsets).map_err(|p| located(p.key, p.offset, p.message))?;
    validate(raw, overrides).map_err(|(key, message)| {
        // The key itself, else the nearest enclosing key that was written.
        let mut probe = key.as_str();
        let offset = loop {
            if let Some(&o) = offsets.get(probe) {
                break Some(o);
            }
            match probe.rfind(['.', '[']) {
                Some(i) => probe = &probe[..i],
                None => break None,
            }
        };
        located(key.clone(), offset, message)
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

/// A validation failure: key path and message.
type Invalid = (String, String);

fn invalid(key: impl Into<String>, message: impl Into<String>) -> Invalid {
    (key.into(), message.into())
}

fn validate(raw: raw::File, overrides: Overrides) -> Result<Config, Invalid> {
    let streams_raw = raw.streams.unwrap_or_default();
    if streams_raw.is_empty() {
        return Err(invalid("streams", "at least one [[streams]] is required"));
    }
    let mut streams = Vec::with_capacity(streams_raw.len());
    for (i, s) in streams_raw.into_iter().enumerate() {
        streams.push(validate_stream(i, s)?);
    }
    for (i, s) in streams.iter().enumerate() {
        if let Some(j) = streams[..i].iter().position(|o| o.name == s.name) {
            return Err(invalid(
                format!("streams[{i}].name"),
                format!("duplicate stream name `{}` (also streams[{j}])", s.name),
            ));
        }
    }
    // A config may declare router mode itself (its streams share a port by design);
    // `--router` and `--router-port` turn it on for any config.
    let router = raw.router.unwrap_or(false) || overrides.router || overrides.router_port.is_some();
    if let Some(port) = overrides.router_port {
        for s in &mut streams {
            if let Some(h) = &mut s.http {
                h.port = port;
            }
        }
    }
    check_ports(&streams, router, overrides.router_port)?;
    let state_dir = match raw.state_dir {
        None => None,
        Some(d) if d.is_empty() => return Err(invalid("state_dir", "state_dir is empty")),
        Some(d) => Some(normalize(Path::new(&d))),
    };
    Ok(Config {
        streams,
        router,
        state_dir,
    })
}

/// No two listeners on one port, except HTTP servers sharing one in router mode.
fn check_ports(
    streams: &[StreamConfig],
    router: bool,
    router_port: Option<u16>,
) -> Result<(), Invalid> {
    struct Use {
        key: String,
        http: bool,
        address: IpAddr,
        port: u16,
    }
    let mut uses: Vec<Use> = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        if let Some(h) = &s.http {
            uses.push(Use {
                key: format!("streams[{i}].httpserver.port"),
                http: true,
                address: h.address,
                port: h.port,
            });
        }
        if let Some(t) = &s.tcp {
            uses.push(Use {
                key: format!("streams[{i}].tcpserver.port"),
                http: false,
                address: t.address,
                port: t.port,
            });
        }
    }
    for (i, u) in uses.iter().enumerate() {
        if u.port == 0 {
            continue;
        }
        for prev in &uses[..i] {
            if prev.port != u.port {
                continue;
            }
            let via = if router_port == Some(u.port) {
                " (--router-port)"
            } else {
                ""
            };
            if u.http && prev.http {
                if !router {
                    return Err(invalid(
                        &u.key,
                        format!(
                            "port {} is already used by {}; HTTP streams may share a port only in router mode (--router)",
                            u.port, prev.key
                        ),
                    ));
                }
                if u.address != prev.address {
                    return Err(invalid(
                        &u.key,
                        format!(
                            "streams sharing port {} in router mode must use the same address ({} vs {} at {})",
                            u.port, u.address, prev.address, prev.key
                        ),
                    ));
                }
            } else {
                return Err(invalid(
                    &u.key,
                    format!("port {}{via} is already used by {}", u.port, prev.key),
                ));
            }
        }
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn validate_stream(i: usize, s: raw::Stream) -> Result<StreamConfig, Invalid> {
    let at = |k: &str| format!("streams[{i}].{k}");
    let name = s
        .name
        .ok_or_else(|| invalid(format!("streams[{i}]"), "missing `name`"))?;
    if !valid_name(&name) {
        return Err(invalid(
            at("name"),
            format!("`{name}` is not a valid stream name (use letters, digits, `_` and `-`)"),
        ));
    }
    let monitor = s.monitor.ok_or_else(|| {
        invalid(
            format!("streams[{i}]"),
            format!("stream `{name}` has no [streams.monitor] table"),
        )
    })?;
    let check_interval_ms = match monitor.check_interval_ms {
        None => DEFAULT_CHECK_INTERVAL_MS,
        Some(v) if v >= MIN_CHECK_INTERVAL_MS as i64 => v as u64,
        Some(v) => {
            return Err(invalid(
                at("monitor.check_interval_ms"),
                format!("{v} is below the minimum of {MIN_CHECK_INTERVAL_MS} ms"),
            ));
        }
    };
    let rotate_wait_ms = match monitor.rotate_wait_ms {
        None => DEFAULT_ROTATE_WAIT_MS,
        Some(v) if (0..=3_600_000).contains(&v) => v as u64,
        Some(v) => {
            return Err(invalid(
                at("monitor.rotate_wait_ms"),
                format!("{v} is outside 0..=3600000 ms"),
            ));
        }
    };
    let max_line_bytes = match (s.max_line_bytes, monitor.max_line_bytes) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                at("monitor.max_line_bytes"),
                "max_line_bytes is set both in the stream and in its monitor; keep one",
            ));
        }
        (Some(v), None) => check_max_line(&at("max_line_bytes"), v)?,
        (None, Some(v)) => check_max_line(&at("monitor.max_line_bytes"), v)?,
        (None, None) => DEFAULT_MAX_LINE_BYTES,
    };
    let targets_raw = monitor.targets.unwrap_or_default();
    if targets_raw.is_empty() {
        return Err(invalid(
            at("monitor.targets"),
            format!("stream `{name}` needs at least one target"),
        ));
    }
    let mut targets = Vec::with_capacity(targets_raw.len());
    for (j, t) in targets_raw.into_iter().enumerate() {
        targets.push(validate_target(&at(&format!("monitor.targets[{j}]")), t)?);
    }

    let http = match s.httpserver {
        Some(h) if h.enabled.unwrap_or(false) => Some(validate_http(&at("httpserver"), h)?),
        _ => None,
    };
    let tcp = match s.tcpserver {
        Some(t) if t.enabled.unwrap_or(false) => Some(validate_tcp(&at("tcpserver"), t)?),
        _ => None,
    };
    if http.is_none() && tcp.is_none() {
        return Err(invalid(
            format!("streams[{i}]"),
            format!(
                "stream `{name}` has no enabled server (set enabled = true in [streams.httpserver] or [streams.tcpserver])"
            ),
        ));
    }
    Ok(StreamConfig {
        name,
        check_interval_ms,
        rotate_wait_ms,
        targets,
        max_line_bytes,
        http,
        tcp,
    })
}

fn check_max_line(key: &str, v: i64) -> Result<usize, Invalid> {
    if v < MIN_MAX_LINE_BYTES as i64 || v > MAX_MAX_LINE_BYTES as i64 {
        return Err(invalid(
            key,
            format!("{v} is outside {MIN_MAX_LINE_BYTES}..={MAX_MAX_LINE_BYTES} bytes"),
        ));
    }
    Ok(v as usize)
}

/// Lexically absolute and normalized, so two spellings of one file are one file.
pub fn normalize(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn validate_target(key: &str, t: raw::Target) -> Result<TargetConfig, Invalid> {
    let path_text = t
        .path
        .ok_or_else(|| invalid(key, "target is missing `path`"))?;
    if path_text.is_empty() {
        return Err(invalid(format!("{key}.path"), "path is empty"));
    }
    let path = PathBuf::from(&path_text);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(invalid(
            format!("{key}.path"),
            format!("`{path_text}` contains `..`; give the path without it"),
        ));
    }
    let start_at = match t.start_at.as_deref() {
        None | Some("end") => StartAt::End,
        Some("beginning") => StartAt::Beginning,
        Some(other) => {
            return Err(invalid(
                format!("{key}.start_at"),
                format!("`{other}` is not `end` or `beginning`"),
            ));
        }
    };
    let abs = normalize(&path);
    let is_file = t.is_file.unwrap_or(false);
    if is_file {
        if t.pattern
            .as_deref()
            .is_some_and(|p| !p.is_empty() && p != "*")
        {
            return Err(invalid(
                format!("{key}.pattern"),
                "a pattern applies to directories; drop it or set is_file = false",
            ));
        }
        let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
            return Err(invalid(
                format!("{key}.path"),
                format!("`{path_text}` does not name a file"),
            ));
        };
        let Some(name) = name.to_str() else {
            return Err(invalid(format!("{key}.path"), "file name is not UTF-8"));
        };
        Ok(TargetConfig {
            path,
            dir: dir.to_path_buf(),
            matcher: NameMatcher::Exact(name.to_string()),
            start_at,
        })
    } else {
        let pattern = t.pattern.unwrap_or_else(|| "*".to_string());
        if pattern.is_empty() {
            return Err(invalid(format!("{key}.pattern"), "pattern is empty"));
        }
        if pattern.contains('/') {
            return Err(invalid(
                format!("{key}.pattern"),
                format!("`{pattern}` contains `/`; patterns match names inside the directory"),
            ));
        }
        if let Err(why) = crate::tail::glob::validate(&pattern) {
            return Err(invalid(format!("{key}.pattern"), why));
        }
        Ok(TargetConfig {
            path,
            dir: abs,
            matcher: NameMatcher::Glob(pattern),
            start_at,
        })
    }
}

fn parse_address(key: &str, v: Option<String>) -> Result<IpAddr, Invalid> {
    match v {
        None => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        Some(s) => {
            let trimmed = s.trim_start_matches('[').trim_end_matches(']');
            if trimmed == "localhost" {
                return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
            }
            trimmed.parse().map_err(|_| {
                invalid(
                    format!("{key}.address"),
                    format!("`{s}` is not an IP address"),
                )
            })
        }
    }
}

fn parse_port(key: &str, v: Option<i64>, default: u16) -> Result<u16, Invalid> {
    match v {
        None => Ok(default),
        Some(p) if (0..=65535).contains(&p) => Ok(p as u16),
        Some(p) => Err(invalid(
            format!("{key}.port"),
            format!("{p} is not a port (1-65535, or 0 for any free port)"),
        )),
    }
}

fn parse_buffer(key: &str, v: Option<i64>) -> Result<usize, Invalid> {
    match v {
        None => Ok(DEFAULT_BUFFER_SIZE),
        Some(b) if b >= 1 && b as u64 <= MAX_BUFFER_SIZE as u64 => Ok(b as usize),
        Some(b) => Err(invalid(
            format!("{key}.buffer_size"),
            format!("{b} is outside 1..={MAX_BUFFER_SIZE} entries"),
        )),
    }
}

fn parse_path(key: &str, v: Option<String>, default: &str) -> Result<String, Invalid> {
    let p = v.unwrap_or_else(|| default.to_string());
    if !p.starts_with('/') {
        return Err(invalid(key, format!("`{p}` must start with `/`")));
    }
    if p.bytes()
        .any(|b| b <= b' ' || b == b'?' || b == b'#' || b == 0x7f)
    {
        return Err(invalid(
            key,
            format!("`{p}` may not contain spaces, `?`, `#` or control characters"),
        ));
    }
    Ok(p)
}

fn validate_http(key: &str, h: raw::Http) -> Result<HttpConfig, Invalid> {
    let stream_path = parse_path(&format!("{key}.stream_path"), h.stream_path, "/stream")?;
    let status_path = parse_path(&format!("{key}.status_path"), h.status_path, "/status")?;
    if stream_path == status_path {
        return Err(invalid(
            format!("{key}.status_path"),
            format!("`{status_path}` is also the stream_path; they must differ"),
        ));
    }
    Ok(HttpConfig {
        address: parse_address(key, h.address)?,
        port: parse_port(key, h.port, DEFAULT_HTTP_PORT)?,
        buffer_size: parse_buffer(key, h.buffer_size)?,
        stream_path,
        status_path,
        heartbeat: validate_heartbeat(&format!("{key}.heartbeat"), h.heartbeat, true)?,
        rate_limit: validate_rate_limit(&format!("{key}.rate_limit"), h.rate_limit)?,
    })
}

fn validate_tcp(key: &str, t: raw::Tcp) -> Result<TcpConfig, Invalid> {
    Ok(TcpConfig {
        address: parse_address(key, t.address)?,
        port: parse_port(key, t.port, DEFAULT_TCP_PORT)?,
        buffer_size: parse_buffer(key, t.buffer_size)?,
        heartbeat: validate_heartbeat(&format!("{key}.heartbeat"), t.heartbeat, false)?,
        rate_limit: validate_rate_limit(&format!("{key}.rate_limit"), t.rate_limit)?,
    })
}

/// SSE heartbeats are on unless `enabled = false`: a comment every 30 s is invisible to
/// EventSource and keeps proxies (nginx cuts an idle upstream after 60 s) from closing
/// quiet streams. TCP heartbeats are data to a client, so they stay off unless enabled.
fn validate_heartbeat(
    key: &str,
    h: Option<raw::Heartbeat>,
    http: bool,
) -> Result<Option<HeartbeatConfig>, Invalid> {
    let h = match h {
        Some(h) => h,
        None if http => raw::Heartbeat {
            enabled: None,
            interval_seconds: None,
            format: None,
            include_timestamp: None,
            include_stats: None,
        },
        None => return Ok(None),
    };
    let interval_secs = match h.interval_seconds {
        None => DEFAULT_HEARTBEAT_SECS,
        Some(v) if v >= 1 => v as u64,
        Some(v) => {
            return Err(invalid(
                format!("{key}.interval_seconds"),
                format!("{v} is below the minimum of 1 second"),
            ));
        }
    };
    let format = match h.format.as_deref() {
        None | Some("comment") => HeartbeatFormat::Comment,
        Some("json") => HeartbeatFormat::Json,
        Some(other) => {
            return Err(invalid(
                format!("{key}.format"),
                format!("`{other}` is not `comment` or `json`"),
            ));
        }
    };
    if !h.enabled.unwrap_or(http) {
        return Ok(None);
    }
    Ok(Some(HeartbeatConfig {
        interval_secs,
        // TCP heartbeats are JSON lines whatever the format says.
        format: if http { format } else { HeartbeatFormat::Json },
        include_timestamp: h.include_timestamp.unwrap_or(true),
        include_stats: h.include_stats.unwrap_or(false),
    }))
}

fn validate_rate_limit(
    key: &str,
    r: Option<raw::RateLimit>,
) -> Result<Option<RateLimitConfig>, Invalid> {
    let Some(r) = r else { return Ok(None) };
    if !r.enabled.unwrap_or(false) {
        return Ok(None);
    }
    let requests_per_second = r.requests_per_second.unwrap_or(10.0);
    if !(requests_per_second.is_finite() && requests_per_second > 0.0) {
        return Err(invalid(
            format!("{key}.requests_per_second"),
            format!("{requests_per_second} must be a positive number"),
        ));
    }
    let burst_size = match r.burst_size {
        None => 20,
        Some(b) if (1..=i64::from(u32::MAX)).contains(&b) => b as u32,
        Some(b) => {
            return Err(invalid(
                format!("{key}.burst_size"),
                format!("{b} must be a positive integer"),
            ));
        }
    };
    let limit_by = match r.limit_by.as_deref() {
        None | Some("ip") => LimitBy::Ip,
        Some("global") => LimitBy::Global,
        Some(other) => {
            return Err(invalid(
                format!("{key}.limit_by"),
                format!("`{other}` is not `ip` or `global`"),
            ));
        }
    };
    let response_code = match r.response_code {
        None => 429,
        Some(c) if (400..=599).contains(&c) => c as u16,
        Some(c) => {
            return Err(invalid(
                format!("{key}.response_code"),
                format!("{c} is not a 4xx or 5xx status"),
            ));
        }
    };
    let response_message = r
        .response_message
        .unwrap_or_else(|| "Rate limit exceeded".to_string());
    let count = |name: &str, v: Option<i64>| -> Result<u32, Invalid> {
        match v {
            None => Ok(0),
            Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => Ok(n as u32),
            Some(n) => Err(invalid(
                format!("{key}.{name}"),
                format!("{n} must be 0 (unlimited) or a positive integer"),
            )),
        }
    };
    let max_connections_per_ip = count("max_connections_per_ip", r.max_connections_per_ip)?;
    let max_total_connections = count("max_total_connections", r.max_total_connections)?;
    if max_connections_per_ip > 0
        && max_total_connections > 0
        && max_connections_per_ip > max_total_connections
    {
        return Err(invalid(
            format!("{key}.max_connections_per_ip"),
            format!(
                "{max_connections_per_ip} exceeds max_total_connections ({max_total_connections})"
            ),
        ));
    }
    Ok(Some(RateLimitConfig {
        requests_per_second,
        burst_size,
        limit_by,
        response_code,
        response_message,
        max_connections_per_ip,
        max_total_connections,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Config {
        parse(text, "t.toml", Overrides::default()).unwrap()
    }

    fn err(text: &str) -> ConfigError {
        parse(text, "t.toml", Overrides::default()).unwrap_err()
    }

    const MINIMAL: &str = r#"
[[streams]]
name = "app"
[streams.monitor]
targets = [{ path = "/var/log/app.log", is_file = true }]
[streams.tcpserver]
enabled = true
port = 9090
"#;

    #[test]
    fn built_in_default_is_valid() {
        let c = ok(BUILT_IN);
        assert_eq!(c.streams.len(), 1);
        let s = &c.streams[0];
        assert_eq!(s.name, "default");
        let h = s.http.as_ref().unwrap();
        assert_eq!((h.port, h.stream_path.as_str()), (8080, "/stream"));
        assert_eq!(h.heartbeat.as_ref().unwrap().interval_secs, 30);
        assert_eq!(s.targets[0].matcher, NameMatcher::Glob("*.log".into()));
    }

    #[test]
    fn minimal_stream_gets_defaults() {
        let c = ok(MINIMAL);
        let s = &c.streams[0];
        assert_eq!(s.check_interval_ms, DEFAULT_CHECK_INTERVAL_MS);
        assert_eq!(s.max_line_bytes, DEFAULT_MAX_LINE_BYTES);
        assert!(s.http.is_none());
        let t = s.tcp.as_ref().unwrap();
        assert_eq!(t.buffer_size, DEFAULT_BUFFER_SIZE);
        assert_eq!(s.targets[0].dir, PathBuf::from("/var/log"));
        assert_eq!(s.targets[0].matcher, NameMatcher::Exact("app.log".into()));
        assert_eq!(s.targets[0].start_at, StartAt::End);
    }

    #[test]
    fn unknown_key_names_path_and_line() {
        let e = err(&MINIMAL.replace("port = 9090", "port = 9090\nbogus = 1"));
        assert_eq!(e.key, "streams[0].tcpserver.bogus");
        assert_eq!(e.line, Some(9));
        assert!(e.message.contains("bogus"), "{e}");
        assert!(e.to_string().contains("t.toml"));
    }

    #[test]
    fn type_error_names_path() {
        let e = err(&MINIMAL.replace("port = 9090", "port = \"x\""));
        assert_eq!(e.key, "streams[0].tcpserver.port");
        assert_eq!(e.line, Some(8));
    }

    #[test]
    fn syntax_error_has_line() {
        let e = err("[[streams]]\nname = \n");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn bad_interval_is_located() {
        let text = MINIMAL.replace(
            "[streams.monitor]",
            "[streams.monitor]\ncheck_interval_ms = 5",
        );
        let e = err(&text);
        assert_eq!(e.key, "streams[0].monitor.check_interval_ms");
        assert_eq!(e.line, Some(5));
        let e = err(&MINIMAL.replace(
            "port = 9090",
            "port = 9090\n[streams.tcpserver.heartbeat]\nenabled = true\ninterval_seconds = 0",
        ));
        assert_eq!(e.key, "streams[0].tcpserver.heartbeat.interval_seconds");
        assert_eq!(e.line, Some(11));
    }

    #[test]
    fn duplicate_ports_rejected_unless_router_http() {
        let two = format!(
            "{MINIMAL}{}",
            MINIMAL.replace("[[streams]]\nname = \"app\"", "[[streams]]\nname = \"b\"")
        );
        let e = err(&two);
        assert_eq!(e.key, "streams[1].tcpserver.port");
        assert!(e.message.contains("9090"), "{e}");

        let http = |name: &str| {
            format!(
                "[[streams]]\nname = \"{name}\"\n[streams.monitor]\ntargets = [{{ path = \"/tmp\" }}]\n[streams.httpserver]\nenabled = true\nport = 8080\n"
            )
        };
        let shared = format!("{}{}", http("a"), http("b"));
        let e = err(&shared);
        assert!(e.message.contains("router"), "{e}");
        let routed = parse(
            &shared,
            "t.toml",
            Overrides {
                router: true,
                router_port: None,
            },
        )
        .unwrap();
        assert!(routed.router);
        let forced = parse(
            &format!("{}{MINIMAL}", http("a")),
            "t.toml",
            Overrides {
                router: false,
                router_port: Some(9090),
            },
        )
        .unwrap_err();
        assert_eq!(forced.key, "streams[1].tcpserver.port");
    }

    #[test]
    fn sse_heartbeats_are_on_by_default_tcp_ones_off() {
        let both = |extra: &str| {
            format!(
                "[[streams]]\nname = \"a\"\n[streams.monitor]\ntargets = [{{ path = \"/tmp\" }}]\n\
                 [streams.httpserver]\nenabled = true\nport = 8080\n[streams.tcpserver]\nenabled = true\nport = 9090\n{extra}"
            )
        };
        let default_sse = HeartbeatConfig {
            interval_secs: 30,
            format: HeartbeatFormat::Comment,
            include_timestamp: true,
            include_stats: false,
        };
        let c = ok(&both(""));
        let s = &c.streams[0];
        assert_eq!(s.http.as_ref().unwrap().heartbeat, Some(default_sse));
        assert_eq!(s.tcp.as_ref().unwrap().heartbeat, None);
        // A table without `enabled`: on for SSE, off for TCP, as before.
        let c = ok(&both(
            "[streams.httpserver.heartbeat]\ninterval_seconds = 5\n[streams.tcpserver.heartbeat]\ninterval_seconds = 5\n",
        ));
        let s = &c.streams[0];
        assert_eq!(s.http.as_ref().unwrap().heartbeat.unwrap().interval_secs, 5);
        assert_eq!(s.tcp.as_ref().unwrap().heartbeat, None);
        let c = ok(&both("[streams.httpserver.heartbeat]\nenabled = false\n"));
        assert_eq!(c.streams[0].http.as_ref().unwrap().heartbeat, None);
        let c = ok(&both("[streams.tcpserver.heartbeat]\nenabled = true\n"));
        let tcp = c.streams[0].tcp.as_ref().unwrap().heartbeat.unwrap();
        assert_eq!((tcp.interval_secs, tcp.format), (30, HeartbeatFormat::Json));
        let built_in = ok(BUILT_IN);
        assert_eq!(
            built_in.streams[0].http.as_ref().unwrap().heartbeat,
            Some(default_sse)
        );
    }

    #[test]
    fn a_config_may_declare_router_mode() {
        let http = |name: &str| {
            format!(
                "[[streams]]\nname = \"{name}\"\n[streams.monitor]\ntargets = [{{ path = \"/tmp\" }}]\n[streams.httpserver]\nenabled = true\nport = 8080\n"
            )
        };
        let shared = format!("{}{}", http("a"), http("b"));
        assert!(err(&shared).message.contains("router"));
        let declared = ok(&format!("router = true\n{shared}"));
        assert!(declared.router);
        assert!(!ok(&format!("router = false\n{}", http("a"))).router);
        // The flag turns it on whatever the file says.
        let forced = parse(
            &format!("router = false\n{shared}"),
            "t.toml",
            Overrides {
                router: true,
                router_port: None,
            },
        )
        .unwrap();
        assert!(forced.router);
        let e = err(&format!("router = \"yes\"\n{shared}"));
        assert_eq!((e.key.as_str(), e.line), ("router", Some(1)));
    }

    #[test]
    fn router_port_0_is_any_free_port_for_every_http_stream() {
        let http = |name: &str, port: u16| {
            format!(
                "[[streams]]\nname = \"{name}\"\n[streams.monitor]\ntargets = [{{ path = \"/tmp\" }}]\n[streams.httpserver]\nenabled = true\nport = {port}\n"
            )
        };
        let c = parse(
            &format!("{}{}", http("a", 8080), http("b", 8081)),
            "t.toml",
            Overrides {
                router: false,
                router_port: Some(0),
            },
        )
        .unwrap();
        assert!(c.router);
        let ports: Vec<u16> = c
            .streams
            .iter()
            .map(|s| s.http.as_ref().unwrap().port)
            .collect();
        assert_eq!(ports, [0, 0]);
    }

    #[test]
    fn rejects_each_invalid_value() {
        let cases: &[(&str, &str, &str)] = &[
            ("name = \"app\"", "name = \"a b\"", "streams[0].name"),
            ("name = \"app\"", "name = \"\"", "streams[0].name"),
            ("port = 9090", "port = 70000", "streams[0].tcpserver.port"),
            ("port = 9090", "port = -1", "streams[0].tcpserver.port"),
            (
                "port = 9090",
                "buffer_size = 0",
                "streams[0].tcpserver.buffer_size",
            ),
            ("enabled = true", "enabled = false", "streams[0]"),
            (
                "is_file = true }",
                "is_file = true, start_at = \"middle\" }",
                "streams[0].monitor.targets[0].start_at",
            ),
            (
                "/var/log/app.log",
                "/var/log/../app.log",
                "streams[0].monitor.targets[0].path",
            ),
            (
                "port = 9090",
                "port = 9090\n[streams.tcpserver.rate_limit]\nenabled = true\nlimit_by = \"user\"",
                "streams[0].tcpserver.rate_limit.limit_by",
            ),
            (
                "port = 9090",
                "port = 9090\n[streams.tcpserver.rate_limit]\nenabled = true\nrequests_per_second = 0.0",
                "streams[0].tcpserver.rate_limit.requests_per_second",
            ),
            (
                "port = 9090",
                "port = 9090\n[streams.tcpserver.rate_limit]\nenabled = true\nburst_size = 0",
                "streams[0].tcpserver.rate_limit.burst_size",
            ),
            (
                "port = 9090",
                "port = 9090\n[streams.tcpserver.heartbeat]\nformat = \"xml\"",
                "streams[0].tcpserver.heartbeat.format",
            ),
        ];
        for (from, to, key) in cases {
            let e = err(&MINIMAL.replace(from, to));
            assert_eq!(&e.key, key, "{from} -> {to}: {e}");
            assert!(e.line.is_some(), "{e}");
        }
        assert_eq!(err("").key, "streams");
        let no_targets = MINIMAL.replace(
            "targets = [{ path = \"/var/log/app.log\", is_file = true }]",
            "targets = []",
        );
        assert_eq!(err(&no_targets).key, "streams[0].monitor.targets");
    }

    #[test]
    fn http_paths_validated() {
        let http = |extra: &str| {
            format!(
                "[[streams]]\nname = \"a\"\n[streams.monitor]\ntargets = [{{ path = \"/tmp\" }}]\n[streams.httpserver]\nenabled = true\n{extra}\n"
            )
        };
        assert_eq!(
            err(&http("stream_path = \"stream\"")).key,
            "streams[0].httpserver.stream_path"
        );
        assert_eq!(
            err(&http("status_path = \"/stream\"")).key,
            "streams[0].httpserver.status_path"
        );
        let c = ok(&http("address = \"127.0.0.1\""));
        assert_eq!(
            c.streams[0].http.as_ref().unwrap().address,
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert!(
            err(&http("address = \"nowhere\""))
                .message
                .contains("nowhere")
        );
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("/a/./b//c")), PathBuf::from("/a/b/c"));
        assert!(normalize(Path::new("x.log")).is_absolute());
    }
}
