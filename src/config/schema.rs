//! The file as written: every key logwisp accepts, with its type and, where it does not
//! depend on other keys, its default. Adding a key is one line here (see [`read`] for the
//! forms); validation in `validate.rs` turns these into [`super::Config`].
//!
//! [`read`]: super::read

use super::read::{keywords, schema};
use super::{ForwardKind, LogFormat, LogLevel, Priority, StartAt};

keywords! {
    /// `[logging] output`; with `file`, becomes [`super::LogOutput`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Output { Stderr = "stderr", Stdout = "stdout", File = "file" }
}

schema! {
    pub struct File {
        router: bool = false,
        state_dir: String,
        config_auto_reload: bool = false,
        logging: Logging,
        streams: Vec<Stream>,
    }

    pub struct Logging {
        level: LogLevel = LogLevel::Info,
        format: LogFormat = LogFormat::Text,
        output: Output = Output::Stderr,
        file: String,
        stats_interval_seconds: i64 = super::DEFAULT_STATS_INTERVAL_SECS as i64,
    }

    pub struct Stream {
        name: String,
        monitor: Monitor,
        httpserver: Http,
        tcpserver: Tcp,
        filters: Vec<Filter>,
        // Also allowed in [streams.monitor]; at most one of the two.
        max_line_bytes: i64,
        // Sinks feeding a broker (SPEC §16).
        forward: Vec<Forward>,
    }

    // Read only by the `forward` feature's validation; without it a sink is refused.
    #[cfg_attr(not(feature = "forward"), allow(dead_code))]
    pub struct Forward {
        kind("type"): ForwardKind,
        name: String,
        url: String,
        urls: Vec<String>,
        subject: String,
        topic: String,
        jetstream: bool = true,
        username: String,
        password: String,
        token: String,
        client_id: String,
        max_in_flight: i64,
        tls: ForwardTls,
    }

    #[cfg_attr(not(feature = "forward"), allow(dead_code))]
    pub struct ForwardTls {
        enabled: bool = true,
        ca_file: String,
        cert_file: String,
        key_file: String,
    }

    pub struct Filter {
        // `FilterKind` and `Logic`, checked in validation.
        kind("type"): String,
        logic: String,
        patterns: Vec<String>,
    }

    pub struct Monitor {
        check_interval_ms: i64 = super::DEFAULT_CHECK_INTERVAL_MS as i64,
        rotate_wait_ms: i64 = super::DEFAULT_ROTATE_WAIT_MS as i64,
        targets: Vec<Target>,
        max_line_bytes: i64,
    }

    pub struct Target {
        path: String,
        pattern: String,
        is_file: bool = false,
        start_at: StartAt = StartAt::End,
        // The systemd journal (SPEC §17) instead of a path; the keys below need it.
        journal: bool = false,
        units: Vec<String>,
        identifiers: Vec<String>,
        priority: Priority,
        journal_dir: String,
        fields: Vec<String>,
    }

    pub struct Http {
        enabled: bool = false,
        address: String,
        port: i64 = super::DEFAULT_HTTP_PORT.into(),
        buffer_size: i64 = super::DEFAULT_BUFFER_SIZE as i64,
        stream_path: String = "/stream".into(),
        status_path: String = "/status".into(),
        // Defaulted in validation, which must know whether it was written.
        metrics_path: String,
        format: String = "json".into(),
        txt_template: String,
        heartbeat: Heartbeat,
        rate_limit: RateLimit,
        tls: Tls,
        auth: Auth,
        acl: Acl,
    }

    pub struct Tcp {
        enabled: bool = false,
        address: String,
        port: i64 = super::DEFAULT_TCP_PORT.into(),
        buffer_size: i64 = super::DEFAULT_BUFFER_SIZE as i64,
        format: String = "json".into(),
        txt_template: String,
        heartbeat: Heartbeat,
        rate_limit: RateLimit,
        tls: Tls,
        // Only to say why it cannot be used here (TCP has no request to carry credentials).
        auth: Auth,
        acl: Acl,
    }

    pub struct Tls {
        enabled: bool = false,
        cert_file: String,
        key_file: String,
        client_auth: bool = false,
        client_ca_file: String,
        min_version: String,
    }

    pub struct Auth {
        // `AuthKind`, checked in validation.
        kind("type"): String,
        realm: String = "logwisp".into(),
        users: Vec<User>,
        users_file: String,
        tokens: Vec<String>,
        tokens_file: String,
    }

    pub struct User {
        username: String,
        password_hash: String,
    }

    pub struct Acl {
        ip_allow: Vec<String>,
        ip_deny: Vec<String>,
    }

    pub struct Heartbeat {
        // On for SSE, off for TCP.
        enabled: bool,
        interval_seconds: i64 = super::DEFAULT_HEARTBEAT_SECS as i64,
        // `HeartbeatFormat`, checked in validation (see `limit_by`).
        format: String,
        include_timestamp: bool = true,
        include_stats: bool = false,
    }

    pub struct RateLimit {
        enabled: bool = false,
        requests_per_second: f64 = 10.0,
        burst_size: i64 = 20,
        // `LimitBy`, read as text and checked in validation: a disabled table's values
        // were never checked, and configs that carry one must keep loading.
        limit_by: String,
        response_code: i64 = 429,
        response_message: String = "Rate limit exceeded".into(),
        max_connections_per_ip: i64 = 0,
        max_total_connections: i64 = 0,
    }
}
