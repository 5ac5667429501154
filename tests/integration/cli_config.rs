//! Command line and configuration: flags, exit codes, error messages, `--check`.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::util::*;

fn run(args: &[&str], cwd: &Path) -> Run {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run_logwisp(&args, &[], cwd)
}

fn write_config(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.join("logwisp.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The 1-based line holding `marker` in `text`.
fn line_of(text: &str, marker: &str) -> usize {
    text.lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("{marker:?} not in config"))
        + 1
}

const VALID: &str = "\
[[streams]]
name = \"app\"
[streams.monitor]
targets = [{ path = \"/tmp/logwisp-none\", pattern = \"*.log\" }]
[streams.tcpserver]
enabled = true
port = 0
";

fn http_stream(name: &str, port: u16) -> String {
    format!(
        "[[streams]]\nname = \"{name}\"\n[streams.monitor]\ntargets = [{{ path = \"/tmp/x\" }}]\n\
         [streams.httpserver]\nenabled = true\nport = {port} # <-\n"
    )
}

#[test]
fn version_is_one_line_with_tag_commit_and_build_time() {
    let dir = TempDir::new();
    let r = run(&["--version"], dir.path());
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stderr, "");
    let line = r.stdout.strip_suffix('\n').expect("ends with a newline");
    assert!(!line.contains('\n'), "more than one line: {:?}", r.stdout);
    let rest = line
        .strip_prefix("logwisp v")
        .unwrap_or_else(|| panic!("{line:?}"));
    let (version, rest) = rest
        .split_once(" (commit ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let numbers: Vec<&str> = version.split('-').next().unwrap().split('.').collect();
    assert_eq!(numbers.len(), 3, "version {version:?}");
    assert!(
        numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    );
    let (commit, rest) = rest
        .split_once(", built ")
        .unwrap_or_else(|| panic!("{line:?}"));
    // A hash when built from git, "unknown" from a tarball.
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "commit {commit:?}"
    );
    let built = rest.strip_suffix(')').unwrap_or_else(|| panic!("{line:?}"));
    assert!(is_rfc3339_utc(built, 0), "build time {built:?}");
}

#[test]
fn help_exits_0_and_shows_usage() {
    let dir = TempDir::new();
    let r = run(&["--help"], dir.path());
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout.contains("usage: logwisp [--config PATH]"),
        "{}",
        r.stdout
    );
}

#[test]
fn bad_flags_exit_2_with_one_error_line_and_the_usage() {
    let dir = TempDir::new();
    for args in [
        &["--bogus"][..],
        &["--router-port", "-1"],
        &["--router-port", "70000"],
        &["--router-port", "x"],
        &["--config"],
        &["stray"],
    ] {
        let r = run(args, dir.path());
        assert_eq!(r.code, Some(2), "{args:?}: {r:?}");
        assert_eq!(r.stdout, "", "{args:?}");
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{args:?}: {:?}", r.stderr);
        assert!(
            lines[0].starts_with("logwisp: "),
            "{args:?}: {:?}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("usage: logwisp "),
            "{args:?}: {:?}",
            lines[1]
        );
    }
}

#[test]
fn config_errors_exit_1_naming_file_line_and_key() {
    let dup_tcp = format!("{VALID}{}", VALID.replace("\"app\"", "\"b\""))
        .replacen("port = 0", "port = 19999", 1)
        .replacen("port = 0", "port = 19999 # <-", 1);
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "unknown key",
            VALID.replace("port = 0", "port = 0\nbogus = 1 # <-"),
            "streams[0].tcpserver.bogus",
            "bogus",
        ),
        (
            "unknown key in a stream",
            VALID.replace("name = \"app\"", "name = \"app\"\ncolour = \"red\" # <-"),
            "streams[0].colour",
            "colour",
        ),
        (
            "interval below 10 ms",
            VALID.replace("[streams.monitor]", "[streams.monitor]\ncheck_interval_ms = 5 # <-"),
            "streams[0].monitor.check_interval_ms",
            "5",
        ),
        ("duplicate TCP port", dup_tcp, "streams[1].tcpserver.port", "19999"),
        (
            "HTTP port shared outside router mode",
            format!("{}{}", http_stream("a", 18080).replace(" # <-", ""), http_stream("b", 18080)),
            "streams[1].httpserver.port",
            "router",
        ),
        (
            "heartbeat interval below 1 s",
            VALID.replace(
                "port = 0",
                "port = 0\n[streams.tcpserver.heartbeat]\nenabled = true\ninterval_seconds = 0 # <-",
            ),
            "streams[0].tcpserver.heartbeat.interval_seconds",
            "0",
        ),
        (
            "unknown limit_by",
            VALID.replace(
                "port = 0",
                "port = 0\n[streams.tcpserver.rate_limit]\nenabled = true\nlimit_by = \"user\" # <-",
            ),
            "streams[0].tcpserver.rate_limit.limit_by",
            "user",
        ),
        (
            "target path with ..",
            VALID.replace("/tmp/logwisp-none", "/tmp/../etc"),
            "streams[0].monitor.targets[0].path",
            "..",
        ),
        (
            "port of the wrong type",
            VALID.replace("port = 0", "port = \"x\" # <-"),
            "streams[0].tcpserver.port",
            "",
        ),
        (
            "port out of range",
            VALID.replace("port = 0", "port = 70000 # <-"),
            "streams[0].tcpserver.port",
            "70000",
        ),
        (
            "unknown logging level",
            format!("{VALID}[logging]\nlevel = \"loud\" # <-\n"),
            "logging.level",
            "`loud` is not `error`, `warn`, `info` or `debug`",
        ),
        (
            "file output without a file",
            format!("{VALID}[logging]\noutput = \"file\" # <-\n"),
            "logging.output",
            "needs `file`",
        ),
        (
            "metrics_path equal to the stream_path",
            http_stream("a", 0).replace(" # <-", "") + "metrics_path = \"/stream\" # <-\n",
            "streams[0].httpserver.metrics_path",
            "also the stream_path",
        ),
    ];
    for (what, text, key, detail) in cases {
        let dir = TempDir::new();
        let path = write_config(&dir, &text);
        let r = run(&["--config", path.to_str().unwrap()], dir.path());
        assert_eq!(r.code, Some(1), "{what}: {r:?}");
        assert!(!r.stdout.contains("listening"), "{what}: {}", r.stdout);
        let msg = r.stderr.trim_end();
        let prefix = format!("logwisp: config error in {}", path.display());
        assert!(msg.starts_with(&prefix), "{what}: {msg}");
        assert!(msg.contains(&format!("key `{key}`")), "{what}: {msg}");
        assert!(msg.contains(detail), "{what}: {msg}");
        if text.contains("# <-") {
            let line = line_of(&text, "# <-");
            assert!(
                msg.contains(&format!(", line {line},")),
                "{what}: want line {line}: {msg}"
            );
        }
    }
}

#[test]
fn config_without_an_enabled_server_or_streams_is_rejected() {
    for (what, text, key) in [
        ("no streams", String::new(), "streams"),
        (
            "server disabled",
            VALID.replace("enabled = true", "enabled = false"),
            "streams[0]",
        ),
        (
            "enabled left out",
            VALID.replace("enabled = true\n", ""),
            "streams[0]",
        ),
    ] {
        let dir = TempDir::new();
        let path = write_config(&dir, &text);
        let r = run(&["--check", "--config", path.to_str().unwrap()], dir.path());
        assert_eq!(r.code, Some(1), "{what}: {r:?}");
        assert!(
            r.stderr.contains(&format!("key `{key}`")),
            "{what}: {}",
            r.stderr
        );
    }
}

#[test]
fn bind_conflict_exits_1_naming_stream_protocol_and_port() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    for (table, proto) in [("tcpserver", "tcp"), ("httpserver", "http")] {
        let dir = TempDir::new();
        let text = format!(
            "[[streams]]\nname = \"busy\"\n[streams.monitor]\n\
             targets = [{{ path = \"{}\" }}]\n[streams.{table}]\nenabled = true\n\
             address = \"127.0.0.1\"\nport = {port}\n",
            dir.path().display()
        );
        let path = write_config(&dir, &text);
        let r = run(&["--config", path.to_str().unwrap()], dir.path());
        assert_eq!(r.code, Some(1), "{proto}: {r:?}");
        let named = r
            .stderr
            .lines()
            .any(|l| l.contains("busy") && l.contains(proto) && l.contains(&port.to_string()));
        assert!(
            named,
            "{proto}: stderr does not name stream, protocol and port: {}",
            r.stderr
        );
    }
    drop(taken);
}

fn deploy_configs() -> Vec<PathBuf> {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&deploy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// A start that fails says what failed and nothing else: one line on stderr, no
/// "shutting down" (nothing was running), no endpoints on stdout, exit 1. The failure
/// comes after another listener was already bound, the latest point a start can fail.
#[test]
fn a_failed_start_prints_only_its_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new();
    let text = format!(
        "[[streams]]\nname = \"first\"\n[streams.monitor]\ntargets = [{{ path = \"{d}\" }}]\n\
         [streams.httpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = 0\n\
         [[streams]]\nname = \"busy\"\n[streams.monitor]\ntargets = [{{ path = \"{d}\" }}]\n\
         [streams.tcpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = {port}\n",
        d = dir.path().display()
    );
    let path = write_config(&dir, &text);
    let r = run(&["--config", path.to_str().unwrap()], dir.path());
    assert_eq!(r.code, Some(1), "{r:?}");
    let want =
        format!("logwisp: stream `busy` tcp server: cannot listen on port {port} (127.0.0.1): ");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {:?}", r.stderr);
    assert!(lines[0].starts_with(&want), "{:?}", lines[0]);
    assert!(lines[0].contains("in use"), "{:?}", lines[0]);
    assert!(!r.stdout.contains("listening"), "{}", r.stdout);
    assert!(!format!("{}{}", r.stdout, r.stderr).contains("shutting down"));
    drop(taken);
}

#[test]
fn check_passes_on_every_deploy_config() {
    let files = deploy_configs();
    let names: Vec<&str> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    for known in [
        "journal.toml",
        "multi-stream.toml",
        "production.toml",
        "router.toml",
    ] {
        assert!(names.contains(&known), "{known} missing from {names:?}");
    }
    let cwd = TempDir::new();
    // As they are, without flags: router.toml declares its router mode itself.
    for file in &files {
        let path = file.to_str().unwrap();
        let r = run(&["--check", "--config", path], cwd.path());
        assert_eq!(r.code, Some(0), "{path}: {r:?}");
        assert!(r.stdout.starts_with("config OK"), "{path}: {}", r.stdout);
        assert!(
            !r.stdout.contains("listening"),
            "--check must not bind: {}",
            r.stdout
        );
        if file.ends_with("journal.toml") {
            assert!(
                r.stdout
                    .contains("  journal (this machine) units nginx.service,ssh.service\n"),
                "{}",
                r.stdout
            );
        }
        if file.ends_with("router.toml") {
            // Both streams on 8080, reached under their names.
            for route in ["/app/stream", "/system/logs"] {
                assert!(r.stdout.contains(route), "{route}: {}", r.stdout);
            }
        }
    }
}

/// Every `logwisp … deploy/config/…` command README.md shows passes `--check` as written.
#[test]
fn readme_commands_on_deploy_configs_pass_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands: Vec<&str> = readme
        .lines()
        .map(|l| l.split(" #").next().unwrap().trim())
        .filter(|l| l.starts_with("logwisp ") && l.contains("deploy/config/"))
        .collect();
    let mut checked = Vec::new();
    for command in &commands {
        let mut args: Vec<String> = command
            .split_whitespace()
            .skip(1)
            .map(|a| match a.strip_prefix("deploy/config/") {
                Some(_) => root.join(a).display().to_string(),
                None => a.to_string(),
            })
            .collect();
        if !args.iter().any(|a| a == "--check") {
            args.insert(0, "--check".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let cwd = TempDir::new();
        let r = run(&args, cwd.path());
        assert_eq!(r.code, Some(0), "README: `{command}`: {r:?}");
        checked.push(command.to_string());
    }
    for file in deploy_configs() {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            checked
                .iter()
                .any(|c| c.contains(&format!("deploy/config/{name}"))),
            "README shows no command for deploy/config/{name}: {checked:?}"
        );
    }
}

#[test]
fn check_prints_streams_and_endpoints() {
    let dir = TempDir::new();
    let text = format!(
        "{}{}",
        http_stream("web", 18081).replace(" # <-", ""),
        VALID.replace("port = 0", "port = 19091")
    );
    let path = write_config(&dir, &text);
    let r = run(&["--check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(r.code, Some(0), "{r:?}");
    for want in [
        "web",
        "app",
        "18081",
        "19091",
        "/stream",
        "/status",
        "metrics /metrics",
        "logging: level info, format text, to stderr, console summary every 30 s\n",
        "config auto-reload: off\n",
    ] {
        assert!(r.stdout.contains(want), "{want} missing: {}", r.stdout);
    }
    let tuned = format!(
        "config_auto_reload = true\n{text}[logging]\nlevel = \"debug\"\nformat = \"json\"\n\
         output = \"file\"\nfile = \"logs/logwisp.log\"\nstats_interval_seconds = 0\n"
    );
    let path = write_config(&dir, &tuned);
    let r = run(&["--check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(r.code, Some(0), "{r:?}");
    let want = format!(
        "logging: level debug, format json, to file {}/logs/logwisp.log, console summary off\n\
         config auto-reload: on\n",
        dir.path().display()
    );
    assert!(r.stdout.contains(&want), "{want:?} missing: {}", r.stdout);
    assert!(!dir.join("logs").exists(), "--check creates nothing");
    // Where positions are kept: state_dir when given, else the documented default.
    let with_state = format!("state_dir = \"{}/st\"\n{text}", dir.path().display());
    let path = write_config(&dir, &with_state);
    let r = run(&["--check", "--config", path.to_str().unwrap()], dir.path());
    let want = format!("state kept in {}/st\n", dir.path().display());
    assert!(r.stdout.contains(&want), "{want:?} missing: {}", r.stdout);
    assert!(!dir.join("st").exists(), "--check creates nothing");
}

#[test]
fn config_is_looked_up_from_flag_then_env_then_home_then_built_in() {
    let dir = TempDir::new();
    let flag = write_config(&dir, VALID);
    let env_cfg = dir.join("env.toml");
    std::fs::write(&env_cfg, VALID.replace("\"app\"", "\"from-env\"")).unwrap();
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".config")).unwrap();
    std::fs::write(
        home.join(".config/logwisp.toml"),
        VALID.replace("\"app\"", "\"from-home\""),
    )
    .unwrap();
    let empty_home = dir.join("empty-home");
    std::fs::create_dir_all(&empty_home).unwrap();
    let check = |args: &[&str], env: &[(&str, &OsStr)]| {
        let mut all = vec![OsStr::new("--check")];
        all.extend(args.iter().map(OsStr::new));
        let r = run_logwisp(&all, env, dir.path());
        assert_eq!(r.code, Some(0), "{args:?} {env:?}: {r:?}");
        r.stdout
    };
    let out = check(
        &["--config", flag.to_str().unwrap()],
        &[
            ("LOGWISP_CONFIG", env_cfg.as_os_str()),
            ("HOME", home.as_os_str()),
        ],
    );
    assert!(out.contains(flag.to_str().unwrap()), "{out}");
    assert!(
        !out.contains("from-env") && !out.contains("from-home"),
        "{out}"
    );
    let out = check(
        &[],
        &[
            ("LOGWISP_CONFIG", env_cfg.as_os_str()),
            ("HOME", home.as_os_str()),
        ],
    );
    assert!(
        out.contains("from-env") && out.contains(env_cfg.to_str().unwrap()),
        "{out}"
    );
    let out = check(&[], &[("HOME", home.as_os_str())]);
    assert!(
        out.contains("from-home") && out.contains(home.to_str().unwrap()),
        "{out}"
    );
    let out = check(&[], &[("HOME", empty_home.as_os_str())]);
    assert!(out.contains("default") && out.contains("8080"), "{out}");
}

/// A target that does not exist yet, or matches nothing yet, is said once at startup
/// (and still waited for).
#[test]
fn missing_or_empty_targets_are_announced_once_and_waited_for() {
    let toml = "[[streams]]\nname = \"app\"\n[streams.monitor]\n\
        targets = [{ path = \"$DIR/later\", pattern = \"*.log\" }, { path = \"$DIR\", pattern = \"*.txt\" }]\n"
        .to_string()
        + HTTP;
    let server = Server::start(&toml);
    let said = |needle: &str| server.stderr().matches(needle).count();
    assert!(
        wait_until(TIMEOUT, || said("does not exist yet") == 1
            && said("no file matches") == 1),
        "stderr: {}",
        server.stderr()
    );
    let err = server.stderr();
    assert!(
        err.contains(&format!("{}/later", server.dir.path().display())),
        "{err}"
    );
    assert!(err.contains("(pattern *.txt)"), "{err}");
    // Both are still followed once they appear.
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    std::fs::create_dir(server.path("later")).unwrap();
    append(&server.path("later/a.log"), "from the new dir\n");
    assert_eq!(c.next_message(), "from the new dir");
    append(&server.path("b.txt"), "from the new file\n");
    assert_eq!(c.next_message(), "from the new file");
    assert_eq!(said("does not exist yet"), 1);
}
