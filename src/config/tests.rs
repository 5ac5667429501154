use super::*;
use std::net::Ipv4Addr;

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

#[test]
fn config_auto_reload_is_off_unless_set() {
    assert!(!ok(MINIMAL).config_auto_reload);
    assert!(ok(&format!("config_auto_reload = true\n{MINIMAL}")).config_auto_reload);
    assert!(!ok(&format!("config_auto_reload = false\n{MINIMAL}")).config_auto_reload);
    let e = err(&format!("config_auto_reload = \"yes\"\n{MINIMAL}"));
    assert_eq!((e.key.as_str(), e.line), ("config_auto_reload", Some(1)));
    assert!(e.message.contains("boolean"), "{e}");
}

/// `[logging]` goes after the streams: a table header would swallow the top-level keys
/// written below it.
fn with_logging(keys: &str) -> String {
    format!("{MINIMAL}[logging]\n{keys}\n")
}

#[test]
fn logging_defaults_without_the_table_or_its_keys() {
    let want = LoggingConfig {
        level: LogLevel::Info,
        format: LogFormat::Text,
        output: LogOutput::Stderr,
        stats_interval_secs: DEFAULT_STATS_INTERVAL_SECS,
    };
    assert_eq!(ok(MINIMAL).logging, want);
    assert_eq!(ok(&with_logging("")).logging, want);
    assert_eq!(ok(BUILT_IN).logging, want);
}

#[test]
fn logging_keys_are_read() {
    let c = ok(&with_logging(
        "level = \"debug\"\nformat = \"json\"\noutput = \"stdout\"\nstats_interval_seconds = 0",
    ));
    let l = c.logging;
    assert_eq!((l.level, l.format), (LogLevel::Debug, LogFormat::Json));
    assert_eq!((l.output, l.stats_interval_secs), (LogOutput::Stdout, 0));
    for (text, level) in [
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("info", LogLevel::Info),
    ] {
        let c = ok(&with_logging(&format!("level = \"{text}\"")));
        assert_eq!(c.logging.level, level);
    }
    let c = ok(&with_logging("stats_interval_seconds = 86400"));
    assert_eq!(c.logging.stats_interval_secs, 86_400);
}

#[test]
fn log_levels_are_ordered_by_verbosity() {
    use LogLevel::*;
    assert!(Error < Warn && Warn < Info && Info < Debug);
    assert_eq!(Warn.as_str(), "warn");
}

#[test]
fn logging_values_are_validated_and_located() {
    let line = MINIMAL.lines().count() + 2;
    let cases: &[(&str, &str, &str)] = &[
        (
            "level = \"verbose\"",
            "logging.level",
            "`verbose` is not `error`, `warn`, `info` or `debug`",
        ),
        (
            "level = 3",
            "logging.level",
            "expected a string, found an integer",
        ),
        (
            "format = \"xml\"",
            "logging.format",
            "`xml` is not `text` or `json`",
        ),
        (
            "output = \"syslog\"",
            "logging.output",
            "`syslog` is not `stderr`, `stdout` or `file`",
        ),
        (
            "output = \"file\"",
            "logging.output",
            "output = \"file\" needs `file`, the path to write to",
        ),
        (
            "file = \"/var/log/logwisp.log\"",
            "logging.file",
            "`file` is set but output is `stderr`; set output = \"file\" or drop `file`",
        ),
        (
            "stats_interval_seconds = -1",
            "logging.stats_interval_seconds",
            "-1 is outside 0..=86400 seconds (0 turns the summary off)",
        ),
        (
            "stats_interval_seconds = 86401",
            "logging.stats_interval_seconds",
            "86401 is outside 0..=86400 seconds (0 turns the summary off)",
        ),
        (
            "stats_interval_seconds = 1.5",
            "logging.stats_interval_seconds",
            "expected an integer, found a float",
        ),
        (
            "colour = true",
            "logging.colour",
            "unknown key `colour` (expected one of: level, format, output, file, stats_interval_seconds)",
        ),
    ];
    for (keys, key, message) in cases {
        let e = err(&with_logging(keys));
        assert_eq!(
            (e.key.as_str(), e.message.as_str()),
            (*key, *message),
            "{keys}"
        );
        assert_eq!(e.line, Some(line), "{keys}");
    }
    let e = err(&format!("logging = \"debug\"\n{MINIMAL}"));
    assert_eq!((e.key.as_str(), e.line), ("logging", Some(1)));
}

#[test]
fn log_file_is_required_for_file_output_and_normalized() {
    let file = |path: &str| with_logging(&format!("output = \"file\"\nfile = \"{path}\""));
    let c = ok(&file("/var/log/./logwisp.log"));
    assert_eq!(
        c.logging.output,
        LogOutput::File(PathBuf::from("/var/log/logwisp.log"))
    );
    let c = ok(&file("logs/logwisp.log"));
    let want = std::env::current_dir().unwrap().join("logs/logwisp.log");
    assert_eq!(c.logging.output, LogOutput::File(want));
    for (path, message) in [
        ("", "path is empty"),
        ("/var/log/../logwisp.log", "contains `..`"),
        ("/var/log/", "does not name a file"),
        ("/", "does not name a file"),
        (".", "does not name a file"),
    ] {
        let e = err(&file(path));
        assert_eq!(e.key, "logging.file", "{path:?}: {e}");
        assert!(e.message.contains(message), "{path:?}: {e}");
        assert!(e.line.is_some(), "{e}");
    }
}

#[test]
fn metrics_path_defaults_and_must_differ_from_the_other_paths() {
    let http = |extra: &str| {
        format!(
            "[[streams]]\nname = \"a\"\n[streams.monitor]\ntargets = [{{ path = \"/tmp\" }}]\n[streams.httpserver]\nenabled = true\n{extra}\n"
        )
    };
    let metrics = |text: &str| {
        ok(text).streams[0]
            .http
            .as_ref()
            .unwrap()
            .metrics_path
            .clone()
    };
    assert_eq!(metrics(&http("")), "/metrics");
    assert_eq!(metrics(&http("metrics_path = \"/prom\"")), "/prom");
    let cases: &[(&str, &str, &str)] = &[
        (
            "metrics_path = \"prom\"",
            "metrics_path",
            "`prom` must start with `/`",
        ),
        (
            "metrics_path = \"/a b\"",
            "metrics_path",
            "`/a b` may not contain spaces, `?`, `#` or control characters",
        ),
        (
            "metrics_path = \"/stream\"",
            "metrics_path",
            "`/stream` is also the stream_path; they must differ",
        ),
        (
            "status_path = \"/s\"\nmetrics_path = \"/s\"",
            "metrics_path",
            "`/s` is also the status_path; they must differ",
        ),
        // Left at its default, it is the other key that was written to clash.
        (
            "status_path = \"/metrics\"",
            "status_path",
            "`/metrics` is also the default metrics_path; set metrics_path to another path",
        ),
        (
            "stream_path = \"/metrics\"",
            "stream_path",
            "`/metrics` is also the default metrics_path; set metrics_path to another path",
        ),
    ];
    for (extra, name, message) in cases {
        let text = http(extra);
        let e = err(&text);
        let key = format!("streams[0].httpserver.{name}");
        assert_eq!(
            (e.key.as_str(), e.message.as_str()),
            (key.as_str(), *message),
            "{extra}"
        );
        let lines: Vec<&str> = text.lines().collect();
        let written = lines.iter().rposition(|l| l.starts_with(name)).unwrap() + 1;
        assert_eq!(e.line, Some(written), "{extra}");
    }
    assert!(
        ok(&http("status_path = \"/metrics\"\nmetrics_path = \"/m\"")).streams[0]
            .http
            .is_some()
    );
    // Not a key of TCP servers.
    let e = err(&MINIMAL.replace("port = 9090", "port = 9090\nmetrics_path = \"/m\""));
    assert_eq!(e.key, "streams[0].tcpserver.metrics_path");
}

const WITH_HTTP: &str = r#"
[[streams]]
name = "app"
[streams.monitor]
targets = [{ path = "/var/log/app.log", is_file = true }]
[streams.httpserver]
enabled = true
port = 8080
"#;

#[test]
fn bearer_auth_and_ip_lists_are_read() {
    let c = ok(&format!(
        "{WITH_HTTP}[streams.httpserver.auth]\ntype = \"bearer\"\ntokens = [\"abc\"]\n\
         [streams.httpserver.acl]\nip_allow = [\"10.0.0.0/8\", \"::1\"]\nip_deny = [\"10.9.9.9\"]\n"
    ));
    let h = c.streams[0].http.as_ref().unwrap();
    let auth = h.auth.as_ref().unwrap();
    assert_eq!(auth.kind, crate::auth::AuthKind::Bearer);
    assert_eq!(auth.realm, "logwisp");
    assert!(
        !format!("{auth:?}").contains("abc"),
        "tokens stay out of debug output"
    );
    assert!(h.acl.allows("10.1.2.3".parse().unwrap()));
    assert!(!h.acl.allows("10.9.9.9".parse().unwrap()));
    assert!(!h.acl.allows("192.168.1.1".parse().unwrap()));
    assert!(h.acl.allows("::1".parse().unwrap()));
}

#[test]
fn auth_type_none_is_no_auth() {
    let c = ok(&format!(
        "{WITH_HTTP}[streams.httpserver.auth]\ntype = \"none\"\n"
    ));
    assert!(c.streams[0].http.as_ref().unwrap().auth.is_none());
}

#[test]
fn auth_mistakes_name_their_key() {
    let cases = [
        (
            "type = \"digest\"",
            "streams[0].httpserver.auth.type",
            "expected none, basic",
        ),
        (
            "type = \"bearer\"",
            "streams[0].httpserver.auth",
            "at least one token",
        ),
        (
            "type = \"basic\"",
            "streams[0].httpserver.auth",
            "at least one user",
        ),
        (
            "type = \"mtls\"",
            "streams[0].httpserver.auth.type",
            "client certificates",
        ),
        (
            "type = \"bearer\"\ntokens = [\"a\"]\nusers = [{ username = \"u\", password_hash = \"x\" }]",
            "streams[0].httpserver.auth.users",
            "not used by auth type \"bearer\"",
        ),
        (
            "type = \"basic\"\nusers = [{ username = \"u\", password_hash = \"plain\" }]",
            "streams[0].httpserver.auth",
            "users[0]",
        ),
        (
            "type = \"basic\"\nusers = [{ username = \"u\" }]",
            "streams[0].httpserver.auth.users[0]",
            "password_hash",
        ),
        (
            "type = \"bearer\"\ntokens_file = \"/nonexistent/tokens\"",
            "streams[0].httpserver.auth",
            "/nonexistent/tokens",
        ),
    ];
    for (table, key, message) in cases {
        let e = err(&format!("{WITH_HTTP}[streams.httpserver.auth]\n{table}\n"));
        assert_eq!(e.key, key, "{table}: {e}");
        assert!(e.message.contains(message), "{table}: {e}");
    }
}

#[test]
fn a_bad_address_in_an_ip_list_names_its_entry() {
    let e = err(&format!(
        "{WITH_HTTP}[streams.httpserver.acl]\nip_deny = [\"10.0.0.1\", \"10.0.0.0/33\"]\n"
    ));
    assert_eq!(e.key, "streams[0].httpserver.acl.ip_deny[1]");
    assert!(e.message.contains("10.0.0.0/33"), "{e}");
}

#[test]
fn tcp_servers_take_ip_lists_but_not_passwords() {
    let c = ok(&format!(
        "{MINIMAL}[streams.tcpserver.acl]\nip_allow = [\"127.0.0.1\"]\n"
    ));
    assert!(!c.streams[0].tcp.as_ref().unwrap().acl.is_open());
    let e = err(&format!(
        "{MINIMAL}[streams.tcpserver.auth]\ntype = \"bearer\"\ntokens = [\"a\"]\n"
    ));
    assert_eq!(e.key, "streams[0].tcpserver.auth.type");
    assert!(e.message.contains("client certificates"), "{e}");
}

#[test]
fn router_streams_on_one_port_must_agree_on_auth_and_ip_lists() {
    let two = |extra_b: &str| {
        format!(
            "{WITH_HTTP}\n[[streams]]\nname = \"b\"\n[streams.monitor]\n\
             targets = [{{ path = \"/var/log/b.log\", is_file = true }}]\n\
             [streams.httpserver]\nenabled = true\nport = 8080\n{extra_b}"
        )
    };
    let router = Overrides {
        router: true,
        ..Overrides::default()
    };
    assert!(parse(&two(""), "t.toml", router).is_ok());
    let e = parse(
        &two("[streams.httpserver.acl]\nip_allow = [\"127.0.0.1\"]\n"),
        "t.toml",
        router,
    )
    .unwrap_err();
    assert!(e.message.contains("same [acl] settings"), "{e}");
    let e = parse(
        &two("[streams.httpserver.auth]\ntype = \"bearer\"\ntokens = [\"a\"]\n"),
        "t.toml",
        router,
    )
    .unwrap_err();
    assert!(e.message.contains("same [auth] settings"), "{e}");
}

const JOURNAL: &str = r#"
[[streams]]
name = "sys"
[streams.monitor]
targets = [ { journal = true } ]
[streams.tcpserver]
enabled = true
port = 9090
"#;

#[test]
fn a_bare_journal_target_takes_everything_with_the_default_fields() {
    let c = ok(JOURNAL);
    let s = &c.streams[0];
    assert!(s.targets.is_empty());
    let j = &s.journals[0];
    assert_eq!(j.dir, None);
    assert!(j.units.is_empty() && j.identifiers.is_empty());
    assert_eq!(j.priority, None);
    assert_eq!(j.fields, DEFAULT_JOURNAL_FIELDS);
    assert_eq!(j.start_at, StartAt::End);
    assert_eq!(j.describe(), "journal (this machine)");
}

#[test]
fn journal_targets_are_read_beside_file_targets() {
    let c = ok(&JOURNAL.replace(
        "targets = [ { journal = true } ]",
        "targets = [\n  { path = \"/var/log/app.log\", is_file = true },\n  { journal = true, units = [\"nginx.service\", \"ssh.service\"], identifiers = [\"sshd\"],\n    priority = \"warning\", journal_dir = \"/srv/remote/journal\", fields = [\"_PID\", \"_COMM\"],\n    start_at = \"beginning\" },\n]",
    ));
    let s = &c.streams[0];
    assert_eq!(s.targets.len(), 1);
    let j = &s.journals[0];
    assert_eq!(j.dir, Some(PathBuf::from("/srv/remote/journal")));
    assert_eq!(j.units, ["nginx.service", "ssh.service"]);
    assert_eq!(j.identifiers, ["sshd"]);
    assert_eq!(j.priority, Some(Priority::Warning));
    assert_eq!(j.fields, ["_PID", "_COMM"]);
    assert_eq!(j.start_at, StartAt::Beginning);
    assert_eq!(
        j.describe(),
        "journal /srv/remote/journal units nginx.service,ssh.service identifiers sshd priority <= warning from the beginning"
    );
    assert!(Priority::Err < Priority::Warning && Priority::Info < Priority::Debug);
    let none = ok(&JOURNAL.replace("journal = true", "journal = true, fields = []"));
    assert!(none.streams[0].journals[0].fields.is_empty());
}

#[test]
fn journal_mistakes_name_their_key_and_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "journal = true",
            "journal = true, path = \"/var/log\"",
            "streams[0].monitor.targets[0].path",
        ),
        (
            "journal = true",
            "journal = true, is_file = true",
            "streams[0].monitor.targets[0].is_file",
        ),
        (
            "journal = true",
            "journal = true, priority = \"loud\"",
            "streams[0].monitor.targets[0].priority",
        ),
        (
            "journal = true",
            "journal = true, units = [\"a.service\", \"\"]",
            "streams[0].monitor.targets[0].units[1]",
        ),
        (
            "journal = true",
            "journal = true, units = [\"a b.service\"]",
            "streams[0].monitor.targets[0].units[0]",
        ),
        (
            "journal = true",
            "journal = true, identifiers = [\"x\\n\"]",
            "streams[0].monitor.targets[0].identifiers[0]",
        ),
        (
            "journal = true",
            "journal = true, fields = [\"_PID\", \"pid\"]",
            "streams[0].monitor.targets[0].fields[1]",
        ),
        (
            "journal = true",
            "journal = true, fields = [\"_PID\", \"_PID\"]",
            "streams[0].monitor.targets[0].fields[1]",
        ),
        (
            "journal = true",
            "journal = true, journal_dir = \"/var/../log\"",
            "streams[0].monitor.targets[0].journal_dir",
        ),
        (
            "journal = true",
            "journal = true, journal_dir = \"\"",
            "streams[0].monitor.targets[0].journal_dir",
        ),
        (
            "{ journal = true }",
            "{ path = \"/tmp\", units = [\"a.service\"] }",
            "streams[0].monitor.targets[0].units",
        ),
        (
            "{ journal = true }",
            "{ path = \"/tmp\", journal = false, priority = \"err\" }",
            "streams[0].monitor.targets[0].priority",
        ),
        (
            "journal = true",
            "journal = true, bogus = 1",
            "streams[0].monitor.targets[0].bogus",
        ),
    ];
    for (from, to, key) in cases {
        let e = err(&JOURNAL.replace(from, to));
        assert_eq!(&e.key, key, "{from} -> {to}: {e}");
        assert_eq!(e.line, Some(5), "{e}");
    }
    let e = err(&JOURNAL.replace("journal = true", "journal = true, priority = \"loud\""));
    assert!(
        e.message.contains("`emerg`") && e.message.contains("`debug`"),
        "{e}"
    );
}

#[test]
fn a_changed_journal_target_restarts_the_tailer() {
    let a = ok(JOURNAL);
    let b = ok(&JOURNAL.replace("journal = true", "journal = true, priority = \"err\""));
    assert!(a.streams[0].same_monitor(&a.streams[0]));
    assert!(!a.streams[0].same_monitor(&b.streams[0]));
}
