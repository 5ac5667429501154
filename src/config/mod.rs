//! Configuration: the TOML schema of the original logwisp, read strictly.
//!
//! Two layers, as in ripgrep's low/high args: [`schema`] mirrors the file (types checked,
//! unknown keys rejected, defaults that need no context applied) and [`Config`] is the
//! validated result the service runs on. Every error names the file, the key path and,
//! where it can be found, the line.
//!
//! A new key is one line in `schema.rs`, plus its rule and its field on the validated
//! type when it has them.

mod read;
mod schema;
mod validate;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use read::keywords;
pub use validate::normalize;

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
pub const DEFAULT_STATS_INTERVAL_SECS: u64 = 30;
/// A console summary less often than daily is no summary; 0 turns it off.
pub const MAX_STATS_INTERVAL_SECS: u64 = 86_400;

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
    /// Re-read the config when its file changes, as on SIGHUP.
    pub config_auto_reload: bool,
    pub logging: LoggingConfig,
}

/// logwisp's own messages (`[logging]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingConfig {
    /// Messages less severe than this are not written.
    pub level: LogLevel,
    pub format: LogFormat,
    pub output: LogOutput,
    /// Seconds between console summaries; 0 = none.
    pub stats_interval_secs: u64,
}

keywords! {
    /// Ordered by verbosity, `Error < Warn < Info < Debug`: a message is written when its
    /// level is at most the configured one.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub enum LogLevel { Error = "error", Warn = "warn", Info = "info", Debug = "debug" }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum LogFormat { Text = "text", Json = "json" }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    Stderr,
    Stdout,
    /// Normalized to an absolute path.
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    pub name: String,
    pub check_interval_ms: u64,
    pub rotate_wait_ms: u64,
    /// File and directory targets.
    pub targets: Vec<TargetConfig>,
    /// Journal targets (`journal = true`), in the order written.
    pub journals: Vec<JournalConfig>,
    pub max_line_bytes: usize,
    pub http: Option<HttpConfig>,
    pub tcp: Option<TcpConfig>,
    /// `[[streams.filters]]`: which lines enter the stream at all.
    pub filters: Vec<crate::filter::FilterSpec>,
    /// `[[streams.forward]]`: brokers every entry is forwarded to (SPEC §16).
    pub forward: Vec<ForwardConfig>,
}

impl StreamConfig {
    /// Whether `other` tails the same files the same way (a reload keeps the tailer).
    pub fn same_monitor(&self, other: &StreamConfig) -> bool {
        self.check_interval_ms == other.check_interval_ms
            && self.rotate_wait_ms == other.rotate_wait_ms
            && self.targets == other.targets
            && self.journals == other.journals
            && self.max_line_bytes == other.max_line_bytes
            // Entries are counted after the stream's filters: history depends on them.
            && self.filters == other.filters
    }

    /// Entries the shared buffer must hold: the deepest lag any of its servers allows.
    pub fn ring_capacity(&self) -> usize {
        let http = self.http.as_ref().map_or(0, |h| h.buffer_size);
        let tcp = self.tcp.as_ref().map_or(0, |t| t.buffer_size);
        http.max(tcp).max(1)
    }
}

keywords! {
    /// The broker protocol of a `[[streams.forward]]` sink.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ForwardKind { Nats = "nats", Mqtt = "mqtt" }
}

/// The default NATS subject and MQTT topic of a sink.
pub const DEFAULT_SUBJECT: &str = "logs.{stream}";
pub const DEFAULT_TOPIC: &str = "logs/{stream}";
/// Publishes awaiting their acknowledgement at once, by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// A sink: a durable client of its stream that publishes every entry to a broker
/// (SPEC §16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    /// Unique within its stream; names the sink in `/status`, `/metrics` and the state
    /// file (default `<type>:<subject or topic template>`).
    pub name: String,
    pub kind: ForwardKind,
    /// Broker URLs, tried in turn (`url` is a list of one).
    pub urls: Vec<String>,
    /// NATS subject or MQTT topic, with `{stream}` not yet replaced.
    pub subject: String,
    /// NATS: wait for JetStream's PubAck of every publish.
    pub jetstream: bool,
    pub tls: Option<ForwardTlsConfig>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// NATS only: `auth_token`.
    pub token: Option<String>,
    /// MQTT only; default `logwisp-<host>-<stream>`.
    pub client_id: Option<String>,
    pub max_in_flight: usize,
}

impl ForwardConfig {
    /// One line for `--check` and startup.
    pub fn describe(&self, stream: &str) -> String {
        let what = match self.kind {
            ForwardKind::Nats if self.jetstream => "jetstream subject",
            ForwardKind::Nats => "core nats subject",
            ForwardKind::Mqtt => "mqtt qos 1 topic",
        };
        let mut out = format!(
            "forward   {} -> {} {what} {} in flight {}",
            self.name,
            self.urls
                .iter()
                .map(|u| redact_url(u))
                .collect::<Vec<_>>()
                .join(","),
            self.subject.replace("{stream}", stream),
            self.max_in_flight
        );
        if self.tls.is_some() {
            out.push_str(" tls");
        }
        if self.username.is_some() || self.token.is_some() {
            out.push_str(" credentials");
        }
        out
    }
}

/// A broker URL without its `user:password@`, for output.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..end].rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{host}{}", &rest[end..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// A sink's TLS to its broker: whom to trust, and who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTlsConfig {
    /// CAs to verify the broker against; default the system's bundle.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (and its key) for brokers that ask for one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

keywords! {
    /// Where reading starts in a file that exists at startup and has no checkpoint.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum StartAt { End = "end", Beginning = "beginning" }
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

keywords! {
    /// A syslog priority, as journalctl names them; ordered from the most severe.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Priority {
        Emerg = "emerg", Alert = "alert", Crit = "crit", Err = "err",
        Warning = "warning", Notice = "notice", Info = "info", Debug = "debug",
    }
}

/// Fields of a journal entry kept under `fields` unless the target names its own.
pub const DEFAULT_JOURNAL_FIELDS: [&str; 4] = ["_SYSTEMD_UNIT", "_PID", "_HOSTNAME", "_BOOT_ID"];

/// A journal target (SPEC §17): which entries of which journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// `journal_dir`, normalized: another journal directory. `None`: this machine's journal.
    pub dir: Option<PathBuf>,
    /// Entries of any of these units (none: any unit).
    pub units: Vec<String>,
    /// Entries with any of these `SYSLOG_IDENTIFIER`s (none: any).
    pub identifiers: Vec<String>,
    /// The least severe priority kept (`None`: every entry, with or without a priority).
    pub priority: Option<Priority>,
    /// Journal fields copied into the entry's `fields`.
    pub fields: Vec<String>,
    /// Where reading starts without a saved cursor.
    pub start_at: StartAt,
}

impl JournalConfig {
    /// One line for `--check` and startup: which journal, narrowed how.
    pub fn describe(&self) -> String {
        let mut out = match &self.dir {
            Some(d) => format!("journal {}", d.display()),
            None => "journal (this machine)".to_string(),
        };
        if !self.units.is_empty() {
            out.push_str(&format!(" units {}", self.units.join(",")));
        }
        if !self.identifiers.is_empty() {
            out.push_str(&format!(" identifiers {}", self.identifiers.join(",")));
        }
        if let Some(p) = self.priority {
            out.push_str(&format!(" priority <= {}", p.as_str()));
        }
        if self.start_at == StartAt::Beginning {
            out.push_str(" from the beginning");
        }
        out
    }
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
    pub metrics_path: String,
    /// What each entry is sent as: its JSON, the raw line, or a `txt` template.
    pub format: crate::format::Format,
    pub heartbeat: Option<HeartbeatConfig>,
    pub rate_limit: Option<RateLimitConfig>,
    pub tls: Option<TlsConfig>,
    /// Who may use it; `None`: everyone.
    pub auth: Option<AuthConfig>,
    /// From which addresses (checked before anything is read).
    pub acl: crate::acl::Acl,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TcpConfig {
    pub address: IpAddr,
    pub port: u16,
    pub buffer_size: usize,
    pub format: crate::format::Format,
    pub heartbeat: Option<HeartbeatConfig>,
    pub rate_limit: Option<RateLimitConfig>,
    pub tls: Option<TlsConfig>,
    pub acl: crate::acl::Acl,
}

/// An HTTP server's authentication (SPEC §13). The files are read at start and at every
/// reload, like certificates.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub kind: crate::auth::AuthKind,
    pub realm: String,
    /// `(username, password_hash)` written in the config.
    pub users: Vec<(String, String)>,
    pub users_file: Option<PathBuf>,
    pub tokens: Vec<String>,
    pub tokens_file: Option<PathBuf>,
}

impl fmt::Debug for AuthConfig {
    // Tokens are secrets: a debug print of the config must not show them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("kind", &self.kind)
            .field("realm", &self.realm)
            .field("users", &self.users.len())
            .field("users_file", &self.users_file)
            .field("tokens", &self.tokens.len())
            .field("tokens_file", &self.tokens_file)
            .finish()
    }
}

impl AuthConfig {
    /// The server's [`Auth`](crate::auth::Auth), reading the users and tokens files. The
    /// error names the file (and line) or the key at fault.
    pub fn build(&self) -> Result<crate::auth::Auth, String> {
        self.load().map(|(auth, _)| auth)
    }

    /// [`build`](Self::build), with a digest of every credential it holds (the files'
    /// text included): a reload tells from it whether credentials changed, also when
    /// only a users or tokens file did.
    pub fn load(&self) -> Result<(crate::auth::Auth, u64), String> {
        use crate::auth::{self, Auth, AuthKind};
        use std::hash::{BuildHasher, Hash, Hasher};
        // Fixed keys: the digest is compared within one process only.
        let mut digest =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .build_hasher();
        (self.kind.as_str(), &self.realm, &self.users, &self.tokens).hash(&mut digest);
        let mut read = |path: &Path| {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            text.hash(&mut digest);
            Ok::<String, String>(text)
        };
        let in_file = |path: &Path, e: auth::AuthError| match e.line {
            Some(line) => format!("{}, line {line}: {}", path.display(), e.message),
            None => format!("{}: {}", path.display(), e.message),
        };
        let auth = match self.kind {
            AuthKind::None => Auth::none(),
            AuthKind::Mtls => Auth::mtls(),
            AuthKind::Basic => {
                let mut users = Vec::with_capacity(self.users.len());
                for (i, (name, hash)) in self.users.iter().enumerate() {
                    users.push(
                        auth::User::new(name, hash)
                            .map_err(|e| format!("users[{i}]: {}", e.message))?,
                    );
                }
                if let Some(path) = &self.users_file {
                    let text = read(path)?;
                    users.extend(auth::parse_users_file(&text).map_err(|e| in_file(path, e))?);
                }
                Auth::basic(&self.realm, users).map_err(|e| e.message)?
            }
            AuthKind::Bearer => {
                let mut tokens = Vec::with_capacity(self.tokens.len());
                for (i, t) in self.tokens.iter().enumerate() {
                    tokens.push(
                        auth::Token::new(t).map_err(|e| format!("tokens[{i}]: {}", e.message))?,
                    );
                }
                if let Some(path) = &self.tokens_file {
                    let text = read(path)?;
                    tokens.extend(auth::parse_tokens_file(&text).map_err(|e| in_file(path, e))?);
                }
                Auth::bearer(&self.realm, tokens).map_err(|e| e.message)?
            }
        };
        Ok((auth, digest.finish()))
    }
}

/// A server's TLS (SPEC §13). The files are read at start and at every reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert_file: PathBuf,
    /// PKCS#8, PKCS#1 or SEC1 private key, PEM.
    pub key_file: PathBuf,
    /// Clients must present a certificate signed by a CA in this file (mTLS).
    pub client_ca_file: Option<PathBuf>,
    /// `min_version = "1.3"`: TLS 1.2 is refused.
    pub tls13_only: bool,
}

keywords! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum HeartbeatFormat { Comment = "comment", Json = "json" }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatConfig {
    pub interval_secs: u64,
    pub format: HeartbeatFormat,
    pub include_timestamp: bool,
    pub include_stats: bool,
}

keywords! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum LimitBy { Ip = "ip", Global = "global" }
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
    let raw = schema::File::read(doc.get_ref(), "", &mut offsets)
        .map_err(|p| located(p.key, p.offset, p.message))?;
    validate::file(raw, overrides).map_err(|(key, message)| {
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

#[cfg(test)]
mod tests;
