//! From the file as written ([`schema`]) to the [`Config`] logwisp runs on: ranges, defaults
//! that depend on other keys, and rules across keys and streams. Errors carry the key path;
//! `parse` finds its line.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Component, Path, PathBuf};

use super::schema;
use super::*;
use crate::auth::AuthKind;
use crate::filter::{FilterKind, FilterSpec, Logic, StreamFilters};
use crate::format::{Format, FormatError};

/// A validation failure: key path and message.
pub type Invalid = (String, String);

fn invalid(key: impl Into<String>, message: impl Into<String>) -> Invalid {
    (key.into(), message.into())
}

pub fn file(raw: schema::File, overrides: Overrides) -> Result<Config, Invalid> {
    let streams_raw = raw.streams.unwrap_or_default();
    if streams_raw.is_empty() {
        return Err(invalid("streams", "at least one [[streams]] is required"));
    }
    let mut streams = Vec::with_capacity(streams_raw.len());
    for (i, s) in streams_raw.into_iter().enumerate() {
        streams.push(stream(i, s)?);
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
    let router = raw.router || overrides.router || overrides.router_port.is_some();
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
        config_auto_reload: raw.config_auto_reload,
        logging: logging(raw.logging.unwrap_or_default())?,
    })
}

fn logging(l: schema::Logging) -> Result<LoggingConfig, Invalid> {
    let stats_interval_secs = match l.stats_interval_seconds {
        v if (0..=MAX_STATS_INTERVAL_SECS as i64).contains(&v) => v as u64,
        v => {
            return Err(invalid(
                "logging.stats_interval_seconds",
                format!(
                    "{v} is outside 0..={MAX_STATS_INTERVAL_SECS} seconds (0 turns the summary off)"
                ),
            ));
        }
    };
    let output = match (l.output, l.file) {
        (schema::Output::File, Some(f)) => {
            LogOutput::File(normalize(&file_path("logging.file", &f)?))
        }
        (schema::Output::File, None) => {
            return Err(invalid(
                "logging.output",
                "output = \"file\" needs `file`, the path to write to",
            ));
        }
        // A `file` that nothing writes to is a forgotten `output = "file"`.
        (other, Some(_)) => {
            return Err(invalid(
                "logging.file",
                format!(
                    "`file` is set but output is `{}`; set output = \"file\" or drop `file`",
                    other.as_str()
                ),
            ));
        }
        (schema::Output::Stderr, None) => LogOutput::Stderr,
        (schema::Output::Stdout, None) => LogOutput::Stdout,
    };
    Ok(LoggingConfig {
        level: l.level,
        format: l.format,
        output,
        stats_interval_secs,
    })
}

/// No two listeners on one port, except HTTP servers sharing one in router mode.
fn check_ports(
    streams: &[StreamConfig],
    router: bool,
    router_port: Option<u16>,
) -> Result<(), Invalid> {
    struct Use<'a> {
        key: String,
        http: bool,
        address: IpAddr,
        port: u16,
        tls: Option<&'a TlsConfig>,
        auth: Option<&'a AuthConfig>,
        acl: &'a crate::acl::Acl,
    }
    let mut uses: Vec<Use> = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        if let Some(h) = &s.http {
            uses.push(Use {
                key: format!("streams[{i}].httpserver.port"),
                http: true,
                address: h.address,
                port: h.port,
                tls: h.tls.as_ref(),
                auth: h.auth.as_ref(),
                acl: &h.acl,
            });
        }
        if let Some(t) = &s.tcp {
            uses.push(Use {
                key: format!("streams[{i}].tcpserver.port"),
                http: false,
                address: t.address,
                port: t.port,
                tls: t.tls.as_ref(),
                auth: None,
                acl: &t.acl,
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
                // One listener, one handshake, one check before routing: a request is
                // authenticated before the stream it names is known.
                let differs = [
                    ("tls", u.tls != prev.tls),
                    ("auth", u.auth != prev.auth),
                    ("acl", u.acl != prev.acl),
                ]
                .into_iter()
                .find(|(_, d)| *d);
                if let Some((table, _)) = differs {
                    return Err(invalid(
                        &u.key,
                        format!(
                            "streams sharing port {} in router mode must have the same [{table}] settings (they differ from {})",
                            u.port, prev.key
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

/// A keyword read as text by the schema (so that it is checked only where its table is
/// used), or `default` when absent.
fn keyword<K>(
    key: String,
    text: Option<String>,
    default: K,
    parse: fn(&str) -> Result<K, String>,
) -> Result<K, Invalid> {
    match text {
        None => Ok(default),
        Some(t) => parse(&t).map_err(|m| (key, m)),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn stream(i: usize, s: schema::Stream) -> Result<StreamConfig, Invalid> {
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
        v if v >= MIN_CHECK_INTERVAL_MS as i64 => v as u64,
        v => {
            return Err(invalid(
                at("monitor.check_interval_ms"),
                format!("{v} is below the minimum of {MIN_CHECK_INTERVAL_MS} ms"),
            ));
        }
    };
    let rotate_wait_ms = match monitor.rotate_wait_ms {
        v if (0..=3_600_000).contains(&v) => v as u64,
        v => {
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
    let mut journals = Vec::new();
    for (j, t) in targets_raw.into_iter().enumerate() {
        let key = at(&format!("monitor.targets[{j}]"));
        if t.journal {
            journals.push(journal(&key, t)?);
        } else {
            targets.push(target(&key, t)?);
        }
    }

    let http = match s.httpserver {
        Some(h) if h.enabled => Some(http(&at("httpserver"), h)?),
        _ => None,
    };
    let tcp = match s.tcpserver {
        Some(t) if t.enabled => Some(tcp(&at("tcpserver"), t)?),
        _ => None,
    };
    let forward = forwards(&at("forward"), &name, s.forward.unwrap_or_default())?;
    if http.is_none() && tcp.is_none() && forward.is_empty() {
        return Err(invalid(
            format!("streams[{i}]"),
            format!(
                "stream `{name}` has no enabled server (set enabled = true in [streams.httpserver] or [streams.tcpserver]) and forwards nowhere"
            ),
        ));
    }
    let filters = filters(&at("filters"), s.filters.unwrap_or_default())?;
    Ok(StreamConfig {
        name,
        check_interval_ms,
        rotate_wait_ms,
        targets,
        journals,
        max_line_bytes,
        http,
        tcp,
        filters,
        forward,
    })
}

/// `[[streams.forward]]` (SPEC §16): URLs, subject or topic, credentials and TLS files
/// are checked here, so `--check` finds what the sink would only find when connecting.
fn forwards(
    key: &str,
    stream: &str,
    raw: Vec<schema::Forward>,
) -> Result<Vec<ForwardConfig>, Invalid> {
    let mut out: Vec<ForwardConfig> = Vec::with_capacity(raw.len());
    for (j, f) in raw.into_iter().enumerate() {
        let at = |k: &str| format!("{key}[{j}].{k}");
        if !cfg!(feature = "forward") {
            return Err(invalid(
                format!("{key}[{j}]"),
                "this logwisp was built without forwarding (cargo feature `forward`)",
            ));
        }
        let cfg = forward(&at, stream, f)?;
        if let Some(k) = out.iter().position(|o| o.name == cfg.name) {
            return Err(invalid(
                at("name"),
                format!(
                    "two sinks are named `{}` (also {key}[{k}]); give each its own `name`",
                    cfg.name
                ),
            ));
        }
        out.push(cfg);
    }
    Ok(out)
}

#[cfg(not(feature = "forward"))]
fn forward(
    at: &dyn Fn(&str) -> String,
    _stream: &str,
    _f: schema::Forward,
) -> Result<ForwardConfig, Invalid> {
    Err(invalid(
        at("type"),
        "this logwisp was built without forwarding (cargo feature `forward`)",
    ))
}

#[cfg(feature = "forward")]
fn forward(
    at: &dyn Fn(&str) -> String,
    stream: &str,
    f: schema::Forward,
) -> Result<ForwardConfig, Invalid> {
    use crate::forward::{expand_template, mqtt, nats, resolve};
    let kind = f
        .kind
        .ok_or_else(|| invalid(at("type"), "a sink needs `type`: \"nats\" or \"mqtt\""))?;
    let nats = kind == ForwardKind::Nats;
    let urls = match (f.url, f.urls) {
        (Some(_), Some(_)) => {
            return Err(invalid(at("urls"), "set `url` or `urls`, not both"));
        }
        (Some(u), None) => vec![u],
        (None, Some(us)) if !us.is_empty() => us,
        (None, _) => return Err(invalid(at("url"), "a sink needs `url` (or `urls`)")),
    };
    let mut url_user = None;
    for (u, text) in urls.iter().enumerate() {
        let k = if urls.len() == 1 {
            at("url")
        } else {
            at(&format!("urls[{u}]"))
        };
        let parsed = resolve::parse_url(text).map_err(|e| invalid(&k, e.to_string()))?;
        if parsed.scheme.is_nats() != nats {
            let want = if nats {
                "nats:// or tls://"
            } else {
                "mqtt:// or mqtts://"
            };
            return Err(invalid(
                k,
                format!("a {} sink needs a {want} URL", kind.as_str()),
            ));
        }
        if parsed.username.is_some() {
            url_user = Some((parsed.username, parsed.password));
        }
    }
    for (name, set, allowed) in [
        ("subject", f.subject.is_some(), nats),
        ("jetstream", !f.jetstream, nats),
        ("token", f.token.is_some(), nats),
        ("topic", f.topic.is_some(), !nats),
        ("client_id", f.client_id.is_some(), !nats),
    ] {
        if set && !allowed {
            return Err(invalid(
                at(name),
                format!("`{name}` does not apply to a {} sink", kind.as_str()),
            ));
        }
    }
    let subject = match kind {
        ForwardKind::Nats => f.subject.unwrap_or_else(|| DEFAULT_SUBJECT.into()),
        ForwardKind::Mqtt => f.topic.unwrap_or_else(|| DEFAULT_TOPIC.into()),
    };
    let expanded = expand_template(&subject, stream);
    match kind {
        ForwardKind::Nats => nats::validate_subject(&expanded)
            .map_err(|e| invalid(at("subject"), format!("`{expanded}`: {e}")))?,
        ForwardKind::Mqtt => mqtt::validate_topic(&expanded)
            .map_err(|e| invalid(at("topic"), format!("`{expanded}`: {e}")))?,
    }
    let text = |k: &str, v: Option<String>| -> Result<Option<String>, Invalid> {
        match v {
            Some(v) if v.is_empty() => Err(invalid(at(k), format!("`{k}` is empty"))),
            Some(v) if v.chars().any(char::is_control) => {
                Err(invalid(at(k), format!("`{k}` holds a control character")))
            }
            v => Ok(v),
        }
    };
    let mut username = text("username", f.username)?;
    let mut password = text("password", f.password)?;
    let token = text("token", f.token)?;
    let client_id = text("client_id", f.client_id)?;
    if username.is_none()
        && password.is_none()
        && let Some((u, p)) = url_user
    {
        username = u;
        password = p;
    }
    if password.is_some() && username.is_none() {
        return Err(invalid(at("password"), "`password` needs `username`"));
    }
    if token.is_some() && username.is_some() {
        return Err(invalid(
            at("token"),
            "set `username`/`password` or `token`, not both",
        ));
    }
    let max = if nats { 1 << 20 } else { usize::from(u16::MAX) };
    let max_in_flight = match f.max_in_flight {
        None => DEFAULT_MAX_IN_FLIGHT,
        Some(v) if v >= 1 && v as u64 <= max as u64 => v as usize,
        Some(v) => {
            return Err(invalid(
                at("max_in_flight"),
                format!("{v} is outside 1..={max}"),
            ));
        }
    };
    let tls = forward_tls(&at("tls"), f.tls)?;
    let name = match f.name {
        Some(n) if n.is_empty() || n.chars().any(|c| c.is_control() || c == '"') => {
            return Err(invalid(
                at("name"),
                format!("`{n}` is not a usable sink name"),
            ));
        }
        Some(n) => n,
        None => format!("{}:{subject}", kind.as_str()),
    };
    Ok(ForwardConfig {
        name,
        kind,
        urls,
        subject,
        jetstream: nats && f.jetstream,
        tls,
        username,
        password,
        token,
        client_id,
        max_in_flight,
    })
}

/// A sink's `[tls]`: the files are read here, so a bad one is a config error naming it.
#[cfg(feature = "forward")]
fn forward_tls(
    key: &str,
    t: Option<schema::ForwardTls>,
) -> Result<Option<ForwardTlsConfig>, Invalid> {
    let Some(t) = t.filter(|t| t.enabled) else {
        return Ok(None);
    };
    if !cfg!(feature = "tls") {
        return Err(invalid(
            format!("{key}.enabled"),
            "this logwisp was built without TLS (cargo feature `tls`)",
        ));
    }
    let path = |v: Option<String>| {
        v.filter(|v| !v.is_empty())
            .map(|v| normalize(Path::new(&v)))
    };
    let cfg = ForwardTlsConfig {
        ca_file: path(t.ca_file),
        cert_file: path(t.cert_file),
        key_file: path(t.key_file),
    };
    if cfg.cert_file.is_some() != cfg.key_file.is_some() {
        return Err(invalid(
            key,
            "a client certificate needs both `cert_file` and `key_file`",
        ));
    }
    #[cfg(feature = "tls")]
    if let Err(e) = crate::tls::client_config(&cfg) {
        return Err(invalid(key, e));
    }
    Ok(Some(cfg))
}

/// `[[streams.filters]]`, compiled once here so a bad pattern is a config error naming it.
fn filters(key: &str, raw: Vec<schema::Filter>) -> Result<Vec<FilterSpec>, Invalid> {
    let mut specs = Vec::with_capacity(raw.len());
    for (j, f) in raw.into_iter().enumerate() {
        let at = |k: &str| format!("{key}[{j}].{k}");
        let kind = match f.kind.as_deref() {
            Some(k) => FilterKind::parse(k).ok_or_else(|| {
                invalid(at("type"), format!("`{k}` is not `include` or `exclude`"))
            })?,
            None => return Err(invalid(format!("{key}[{j}]"), "a filter needs `type`")),
        };
        let logic = match f.logic.as_deref() {
            None => Logic::Or,
            Some(l) => Logic::parse(l)
                .ok_or_else(|| invalid(at("logic"), format!("`{l}` is not `or` or `and`")))?,
        };
        specs.push(FilterSpec {
            kind,
            logic,
            patterns: f.patterns.unwrap_or_default(),
        });
    }
    if let Err(e) = StreamFilters::new(&specs) {
        let stream = key.trim_end_matches("filters");
        return Err(invalid(format!("{stream}{}", e.key()), e.message));
    }
    Ok(specs)
}

/// A server's `format` and `txt_template`.
fn output_format(key: &str, format: String, template: Option<String>) -> Result<Format, Invalid> {
    Format::from_config(&format, template.as_deref()).map_err(|e| {
        let which = match e {
            FormatError::UnknownFormat(_) => "format",
            _ => "txt_template",
        };
        invalid(format!("{key}.{which}"), e.to_string())
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

/// A path as written at `key`, absolute or relative. `..` is refused: normalizing it
/// lexically would be wrong past a symlink, and resolving it would depend on the disk.
fn plain_path(key: &str, text: &str) -> Result<PathBuf, Invalid> {
    if text.is_empty() {
        return Err(invalid(key, "path is empty"));
    }
    let path = PathBuf::from(text);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(invalid(
            key,
            format!("`{text}` contains `..`; give the path without it"),
        ));
    }
    Ok(path)
}

/// A path that must name a file, not a directory.
fn file_path(key: &str, text: &str) -> Result<PathBuf, Invalid> {
    let path = plain_path(key, text)?;
    let named = matches!(path.components().next_back(), Some(Component::Normal(_)));
    if !named || text.ends_with('/') {
        return Err(invalid(key, format!("`{text}` does not name a file")));
    }
    Ok(path)
}

fn target(key: &str, t: schema::Target) -> Result<TargetConfig, Invalid> {
    let journal_only = [
        ("units", t.units.is_some()),
        ("identifiers", t.identifiers.is_some()),
        ("priority", t.priority.is_some()),
        ("journal_dir", t.journal_dir.is_some()),
        ("fields", t.fields.is_some()),
    ];
    if let Some((name, _)) = journal_only.iter().find(|(_, set)| *set) {
        return Err(invalid(
            format!("{key}.{name}"),
            format!("`{name}` applies to journal targets; add journal = true or drop it"),
        ));
    }
    let path_text = t
        .path
        .ok_or_else(|| invalid(key, "target is missing `path`"))?;
    let path = plain_path(&format!("{key}.path"), &path_text)?;
    let abs = normalize(&path);
    if t.is_file {
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
            start_at: t.start_at,
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
            start_at: t.start_at,
        })
    }
}

/// A journal target (`journal = true`, SPEC §17).
fn journal(key: &str, t: schema::Target) -> Result<JournalConfig, Invalid> {
    for (name, set) in [
        ("path", t.path.is_some()),
        ("pattern", t.pattern.is_some()),
        ("is_file", t.is_file),
    ] {
        if set {
            return Err(invalid(
                format!("{key}.{name}"),
                format!(
                    "a journal target has no `{name}`; journal_dir names another journal directory"
                ),
            ));
        }
    }
    // Passed to journalctl as `--unit=NAME`: nothing in them can become an option, but a
    // control character or an empty name is surely a mistake.
    let names = |what: &str, list: Option<Vec<String>>, spaces: bool| {
        let list = list.unwrap_or_default();
        for (i, n) in list.iter().enumerate() {
            let bad = n.is_empty()
                || n.chars()
                    .any(|c| c.is_control() || (!spaces && c.is_whitespace()));
            if bad {
                return Err(invalid(
                    format!("{key}.{what}[{i}]"),
                    format!("`{}` is not a valid name", n.escape_debug()),
                ));
            }
        }
        Ok(list)
    };
    let units = names("units", t.units, false)?;
    let identifiers = names("identifiers", t.identifiers, true)?;
    let fields = match t.fields {
        None => DEFAULT_JOURNAL_FIELDS
            .iter()
            .map(|f| f.to_string())
            .collect(),
        Some(list) => {
            for (i, f) in list.iter().enumerate() {
                if !valid_journal_field(f) {
                    return Err(invalid(
                        format!("{key}.fields[{i}]"),
                        format!(
                            "`{}` is not a journal field name (upper-case letters, digits and `_`, not starting with a digit, at most 64)",
                            f.escape_debug()
                        ),
                    ));
                }
                if list[..i].contains(f) {
                    return Err(invalid(
                        format!("{key}.fields[{i}]"),
                        format!("`{f}` is listed twice"),
                    ));
                }
            }
            list
        }
    };
    let dir = match t.journal_dir {
        None => None,
        Some(d) => Some(normalize(&plain_path(&format!("{key}.journal_dir"), &d)?)),
    };
    Ok(JournalConfig {
        dir,
        units,
        identifiers,
        priority: t.priority,
        fields,
        start_at: t.start_at,
    })
}

/// A journal field name as journald accepts it (`_PID`, `SYSLOG_IDENTIFIER`).
fn valid_journal_field(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn address(key: &str, v: Option<String>) -> Result<IpAddr, Invalid> {
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

fn port(key: &str, p: i64) -> Result<u16, Invalid> {
    u16::try_from(p).map_err(|_| {
        invalid(
            format!("{key}.port"),
            format!("{p} is not a port (1-65535, or 0 for any free port)"),
        )
    })
}

fn buffer(key: &str, b: i64) -> Result<usize, Invalid> {
    match b {
        b if b >= 1 && b as u64 <= MAX_BUFFER_SIZE as u64 => Ok(b as usize),
        b => Err(invalid(
            format!("{key}.buffer_size"),
            format!("{b} is outside 1..={MAX_BUFFER_SIZE} entries"),
        )),
    }
}

fn url_path(key: &str, p: String) -> Result<String, Invalid> {
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

fn http(key: &str, h: schema::Http) -> Result<HttpConfig, Invalid> {
    let stream_path = url_path(&format!("{key}.stream_path"), h.stream_path)?;
    let status_path = url_path(&format!("{key}.status_path"), h.status_path)?;
    if stream_path == status_path {
        return Err(invalid(
            format!("{key}.status_path"),
            format!("`{status_path}` is also the stream_path; they must differ"),
        ));
    }
    let written = h.metrics_path.is_some();
    let metrics_path = url_path(
        &format!("{key}.metrics_path"),
        h.metrics_path.unwrap_or_else(|| "/metrics".into()),
    )?;
    for (other, path) in [("stream_path", &stream_path), ("status_path", &status_path)] {
        if metrics_path != *path {
            continue;
        }
        // Blame the key that was written: a config from before metrics existed may use
        // `/metrics` for its status page, and must be told which key to add.
        return Err(if written {
            invalid(
                format!("{key}.metrics_path"),
                format!("`{metrics_path}` is also the {other}; they must differ"),
            )
        } else {
            invalid(
                format!("{key}.{other}"),
                format!(
                    "`{path}` is also the default metrics_path; set metrics_path to another path"
                ),
            )
        });
    }
    let tls_config = tls(&format!("{key}.tls"), h.tls)?;
    Ok(HttpConfig {
        address: address(key, h.address)?,
        port: port(key, h.port)?,
        buffer_size: buffer(key, h.buffer_size)?,
        stream_path,
        status_path,
        metrics_path,
        heartbeat: heartbeat(&format!("{key}.heartbeat"), h.heartbeat, true)?,
        rate_limit: rate_limit(&format!("{key}.rate_limit"), h.rate_limit)?,
        auth: auth(&format!("{key}.auth"), h.auth, tls_config.as_ref())?,
        tls: tls_config,
        acl: acl(&format!("{key}.acl"), h.acl)?,
        format: output_format(key, h.format, h.txt_template)?,
    })
}

fn tcp(key: &str, t: schema::Tcp) -> Result<TcpConfig, Invalid> {
    let tls_config = tls(&format!("{key}.tls"), t.tls)?;
    tcp_auth(&format!("{key}.auth"), t.auth, tls_config.as_ref())?;
    Ok(TcpConfig {
        address: address(key, t.address)?,
        port: port(key, t.port)?,
        buffer_size: buffer(key, t.buffer_size)?,
        heartbeat: heartbeat(&format!("{key}.heartbeat"), t.heartbeat, false)?,
        rate_limit: rate_limit(&format!("{key}.rate_limit"), t.rate_limit)?,
        tls: tls_config,
        acl: acl(&format!("{key}.acl"), t.acl)?,
        format: output_format(key, t.format, t.txt_template)?,
    })
}

/// `[auth]` of an HTTP server; built here once (files read, hashes parsed) so a bad one is
/// a config error that `--check` finds.
fn auth(
    key: &str,
    a: Option<schema::Auth>,
    tls: Option<&TlsConfig>,
) -> Result<Option<AuthConfig>, Invalid> {
    let Some(a) = a else { return Ok(None) };
    let kind = keyword(format!("{key}.type"), a.kind, AuthKind::None, |s| s.parse())?;
    let client_certs = tls.is_some_and(|t| t.client_ca_file.is_some());
    if kind == AuthKind::Mtls && !client_certs {
        return Err(invalid(
            format!("{key}.type"),
            "mtls needs TLS with client certificates: set tls.enabled = true, tls.client_auth = true and tls.client_ca_file",
        ));
    }
    let path = |name: &str, v: Option<String>| -> Result<Option<PathBuf>, Invalid> {
        match v.filter(|v| !v.is_empty()) {
            Some(v) => file_path(&format!("{key}.{name}"), &v).map(Some),
            None => Ok(None),
        }
    };
    let users_file = path("users_file", a.users_file)?;
    let tokens_file = path("tokens_file", a.tokens_file)?;
    let users = a.users.unwrap_or_default();
    let tokens = a.tokens.unwrap_or_default();
    let misplaced = match kind {
        AuthKind::Basic if !tokens.is_empty() || tokens_file.is_some() => Some("tokens"),
        AuthKind::Bearer if !users.is_empty() || users_file.is_some() => Some("users"),
        AuthKind::None | AuthKind::Mtls if !users.is_empty() || users_file.is_some() => {
            Some("users")
        }
        AuthKind::None | AuthKind::Mtls if !tokens.is_empty() || tokens_file.is_some() => {
            Some("tokens")
        }
        _ => None,
    };
    if let Some(what) = misplaced {
        return Err(invalid(
            format!("{key}.{what}"),
            format!("{what} are not used by auth type \"{}\"", kind.as_str()),
        ));
    }
    let mut pairs = Vec::with_capacity(users.len());
    for (i, u) in users.into_iter().enumerate() {
        let name = u.username.unwrap_or_default();
        let hash = u.password_hash.unwrap_or_default();
        if name.is_empty() || hash.is_empty() {
            return Err(invalid(
                format!("{key}.users[{i}]"),
                "each user needs `username` and `password_hash`",
            ));
        }
        pairs.push((name, hash));
    }
    let cfg = AuthConfig {
        kind,
        realm: a.realm,
        users: pairs,
        users_file,
        tokens,
        tokens_file,
    };
    if let Err(e) = cfg.build() {
        return Err(invalid(key, e));
    }
    Ok((kind != AuthKind::None).then_some(cfg))
}

/// `[auth]` under a TCP server: only to explain what to use instead.
fn tcp_auth(key: &str, a: Option<schema::Auth>, tls: Option<&TlsConfig>) -> Result<(), Invalid> {
    let Some(a) = a else { return Ok(()) };
    let client_certs = tls.is_some_and(|t| t.client_ca_file.is_some());
    match a.kind.as_deref() {
        None | Some("none") => Ok(()),
        Some("mtls") if client_certs => Ok(()),
        _ => Err(invalid(
            format!("{key}.type"),
            "a TCP server has no request to carry a password or token; use client certificates (tls.client_auth = true) and the IP lists ([acl])",
        )),
    }
}

fn acl(key: &str, a: Option<schema::Acl>) -> Result<crate::acl::Acl, Invalid> {
    let Some(a) = a else {
        return Ok(crate::acl::Acl::default());
    };
    crate::acl::Acl::new(
        &a.ip_allow.unwrap_or_default(),
        &a.ip_deny.unwrap_or_default(),
    )
    .map_err(|e| {
        invalid(
            format!("{key}.{}[{}]", e.list, e.index),
            format!("{:?}: {}", e.entry, e.reason),
        )
    })
}

/// TLS settings; with the `tls` feature the files are read here too, so a bad
/// certificate is a config error naming its file (and `--check` finds it).
fn tls(key: &str, t: Option<schema::Tls>) -> Result<Option<TlsConfig>, Invalid> {
    let Some(t) = t.filter(|t| t.enabled) else {
        return Ok(None);
    };
    if !cfg!(feature = "tls") {
        return Err(invalid(
            format!("{key}.enabled"),
            "this logwisp was built without TLS (cargo feature `tls`)",
        ));
    }
    let file = |name: &str, v: Option<String>| match v.filter(|v| !v.is_empty()) {
        Some(v) => Ok(normalize(Path::new(&v))),
        None => Err(invalid(
            format!("{key}.{name}"),
            format!("TLS needs `{name}`"),
        )),
    };
    let cert_file = file("cert_file", t.cert_file)?;
    let key_file = file("key_file", t.key_file)?;
    let client_ca_file = match (t.client_auth, t.client_ca_file) {
        (true, ca) => Some(file("client_ca_file", ca)?),
        (false, Some(_)) => {
            return Err(invalid(
                format!("{key}.client_ca_file"),
                "client_ca_file is set but client_auth is false; set client_auth = true to require client certificates",
            ));
        }
        (false, None) => None,
    };
    let tls13_only = match t.min_version.as_deref() {
        None | Some("1.2") => false,
        Some("1.3") => true,
        Some(other) => {
            return Err(invalid(
                format!("{key}.min_version"),
                format!("`{other}` is not \"1.2\" or \"1.3\""),
            ));
        }
    };
    let cfg = TlsConfig {
        cert_file,
        key_file,
        client_ca_file,
        tls13_only,
    };
    #[cfg(feature = "tls")]
    if let Err(e) = crate::tls::server_config(&cfg) {
        return Err(invalid(key, e));
    }
    Ok(Some(cfg))
}

/// SSE heartbeats are on unless `enabled = false`: a comment every 30 s is invisible to
/// EventSource and keeps proxies (nginx cuts an idle upstream after 60 s) from closing
/// quiet streams. TCP heartbeats are data to a client, so they stay off unless enabled.
fn heartbeat(
    key: &str,
    h: Option<schema::Heartbeat>,
    http: bool,
) -> Result<Option<HeartbeatConfig>, Invalid> {
    let h = match h {
        Some(h) => h,
        None if http => schema::Heartbeat::default(),
        None => return Ok(None),
    };
    if h.interval_seconds < 1 {
        return Err(invalid(
            format!("{key}.interval_seconds"),
            format!("{} is below the minimum of 1 second", h.interval_seconds),
        ));
    }
    let format = keyword(
        format!("{key}.format"),
        h.format,
        HeartbeatFormat::Comment,
        HeartbeatFormat::from_keyword,
    )?;
    if !h.enabled.unwrap_or(http) {
        return Ok(None);
    }
    Ok(Some(HeartbeatConfig {
        interval_secs: h.interval_seconds as u64,
        // TCP heartbeats are JSON lines whatever the format says.
        format: if http { format } else { HeartbeatFormat::Json },
        include_timestamp: h.include_timestamp,
        include_stats: h.include_stats,
    }))
}

fn rate_limit(key: &str, r: Option<schema::RateLimit>) -> Result<Option<RateLimitConfig>, Invalid> {
    let Some(r) = r else { return Ok(None) };
    if !r.enabled {
        return Ok(None);
    }
    let requests_per_second = r.requests_per_second;
    if !(requests_per_second.is_finite() && requests_per_second > 0.0) {
        return Err(invalid(
            format!("{key}.requests_per_second"),
            format!("{requests_per_second} must be a positive number"),
        ));
    }
    let burst_size = match u32::try_from(r.burst_size) {
        Ok(b) if b >= 1 => b,
        _ => {
            return Err(invalid(
                format!("{key}.burst_size"),
                format!("{} must be a positive integer", r.burst_size),
            ));
        }
    };
    let limit_by = keyword(
        format!("{key}.limit_by"),
        r.limit_by,
        LimitBy::Ip,
        LimitBy::from_keyword,
    )?;
    let response_code = match r.response_code {
        c if (400..=599).contains(&c) => c as u16,
        c => {
            return Err(invalid(
                format!("{key}.response_code"),
                format!("{c} is not a 4xx or 5xx status"),
            ));
        }
    };
    let count = |name: &str, n: i64| -> Result<u32, Invalid> {
        u32::try_from(n).map_err(|_| {
            invalid(
                format!("{key}.{name}"),
                format!("{n} must be 0 (unlimited) or a positive integer"),
            )
        })
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
        response_message: r.response_message,
        max_connections_per_ip,
        max_total_connections,
    }))
}
