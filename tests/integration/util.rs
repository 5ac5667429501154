//! What only the integration tests need: configs, sequence and date checks, logwisp run
//! to completion, certificates, python and nginx. The harness they share with the other
//! test binaries (temp dirs, the server, HTTP, SSE and TCP clients, waits) is
//! tests/support, re-exported here so a test needs only `use crate::util::*`.

use std::ffi::OsStr;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use serde_json::Value;

pub use crate::support::prelude::*;

/// `n` numbered lines `"{prefix} {i:05}\n"` for `i` in `range`.
pub fn numbered(prefix: &str, range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("{prefix} {i:05}\n")).collect()
}

/// Asserts two sequences are equal, reporting the first difference instead of both.
/// `String`s compare with `&str`s.
pub fn assert_same_seq<T, U>(what: &str, got: &[T], want: &[U])
where
    T: PartialEq<U> + std::fmt::Debug,
    U: std::fmt::Debug,
{
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: first difference at index {i}: got {:?}, want {:?} (lengths {} and {})",
            got[i],
            want[i],
            got.len(),
            want.len()
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: lengths differ (got ends with {:?})",
        got.last()
    );
}

/// A `Log rotation detected (#N): <reason>` notice (SPEC §4), not a line of a file.
pub fn is_rotation(v: &Value) -> bool {
    v["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("Log rotation detected"))
}

/// `YYYY-MM-DDTHH:MM:SSZ` (with `frac` digits of fraction before the `Z` when non-zero).
pub fn is_rfc3339_utc(s: &str, frac: usize) -> bool {
    let b = s.as_bytes();
    let want_len = 20 + if frac > 0 { frac + 1 } else { 0 };
    if b.len() != want_len {
        return false;
    }
    let digit = |i: usize| b[i].is_ascii_digit();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    digits.iter().all(|&i| digit(i))
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (frac == 0 || (b[19] == b'.' && (20..20 + frac).all(digit)))
        && b[b.len() - 1] == b'Z'
}

/// Unix seconds of an RFC 9110 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), checking
/// its exact shape and that the weekday matches the date.
pub fn parse_http_date(s: &str) -> Option<i64> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    if b.len() != 29 || &s[3..5] != ", " || &s[25..] != " GMT" {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (day, year) = (num(5..7)?, num(12..16)?);
    let month = MONTHS.iter().position(|m| *m == &s[8..11])? as i64 + 1;
    let (h, m, sec) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if [b[7], b[11], b[16], b[19], b[22]] != [b' ', b' ', b' ', b':', b':'] {
        return None;
    }
    // Days from civil (Howard Hinnant), as logwisp's own timefmt does.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    if DAYS[days.rem_euclid(7) as usize] != &s[0..3] {
        return None;
    }
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Asserts `r` has exactly one `Date`, an IMF-fixdate within `[from - 1, to + 1]`.
pub fn assert_dated(what: &str, r: &Response, from: i64, to: i64) {
    let date = r
        .header("Date")
        .unwrap_or_else(|| panic!("{what}: no Date header in {:?}", r.headers));
    let t = parse_http_date(date).unwrap_or_else(|| panic!("{what}: bad Date {date:?}"));
    assert!(
        (from - 1..=to + 1).contains(&t),
        "{what}: Date {date} is not now ({from}..={to})"
    );
}

/// One stream `app` tailing `$DIR/*.log` (checked every 20 ms), plus the given server tables.
pub fn one_stream(servers: &str) -> String {
    format!(
        "[[streams]]\nname = \"app\"\n[streams.monitor]\ncheck_interval_ms = 20\n\
         targets = [{{ path = \"$DIR\", pattern = \"*.log\" }}]\n{servers}"
    )
}

/// `python3` with `PYTHONPATH` set so it can import the PyPI package `package` (installed
/// once, with pip, into the build's temporary directory: `cargo test` needs nothing
/// installed by hand, only a reachable package index the first time).
pub fn python_with(package: &str) -> Command {
    static INSTALL: Mutex<()> = Mutex::new(());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("python")
        .join(package);
    {
        let _one_at_a_time = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
        let done = dir.join(".installed");
        if !done.exists() {
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg("--target")
                .arg(&dir)
                .arg(package)
                .status()
                .expect("python3 and pip are needed for this test");
            assert!(status.success(), "pip install {package} failed");
            fs::write(&done, b"").unwrap();
        }
    }
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONPATH", &dir);
    cmd
}

/// Outcome of a logwisp run that is expected to end by itself.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs logwisp with `args` (and extra environment) in `cwd`; kills it after 10 s.
pub fn run_logwisp(args: &[&OsStr], env: &[(&str, &OsStr)], cwd: &Path) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd).env_remove("LOGWISP_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Finished {
        status,
        stdout,
        stderr,
    } = run_within(&mut cmd, TIMEOUT);
    let Some(status) = status else {
        panic!("logwisp {args:?} did not exit\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    Run {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// Certificates made for a test: a CA, a server certificate for `localhost` and
/// 127.0.0.1, a client certificate from the same CA, one from another CA, and an expired
/// server certificate. All written as PEM files into the test's directory.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        };
        let ca = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name
                .push(rcgen::DnType::CommonName, name.to_string());
            let key = KeyPair::generate().unwrap();
            let cert = p.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(p, key))
        };
        let leaf = |issuer: &Issuer<KeyPair>, client: bool, expired: bool| {
            let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            let mut p = CertificateParams::new(names).unwrap();
            p.extended_key_usages = vec![if client {
                ExtendedKeyUsagePurpose::ClientAuth
            } else {
                ExtendedKeyUsagePurpose::ServerAuth
            }];
            if expired {
                p.not_before = rcgen::date_time_ymd(2020, 1, 1);
                p.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (ca_pem, issuer) = ca("logwisp test CA");
        let (_, other) = ca("another CA");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            fs::write(&path, text).unwrap();
            path
        };
        let (server, server_key) = leaf(&issuer, false, false);
        let (client, client_key) = leaf(&issuer, true, false);
        let (stranger, stranger_key) = leaf(&other, true, false);
        let (expired, expired_key) = leaf(&issuer, false, true);
        Pki {
            ca: write("ca.pem", &ca_pem),
            server_cert: write("server.pem", &server),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client),
            client_key: write("client.key", &client_key),
            stranger_cert: write("stranger.pem", &stranger),
            stranger_key: write("stranger.key", &stranger_key),
            expired_cert: write("expired.pem", &expired),
            expired_key: write("expired.key", &expired_key),
        }
    }
}

/// nginx in the foreground, one process, everything (config, logs, temp files) under a
/// test's dir; killed on drop.
pub struct Nginx {
    child: Child,
    pub port: u16,
    error_log: PathBuf,
}

impl Nginx {
    /// Proxies `location` (e.g. `/logwisp/`) to `http://127.0.0.1:{upstream}/` with HTTP/1.1
    /// and no buffering, as README shows; `directives` go into the location block too
    /// (`proxy_set_header Connection "";`, timeouts). `$connection_upgrade` is defined for
    /// WebSocket (`Connection: upgrade` when the client asks to upgrade, else empty).
    /// Fails with how to install nginx when it is not there.
    pub fn start(dir: &TempDir, upstream: u16, location: &str, directives: &str) -> Nginx {
        let bin = find_program("nginx", &["/usr/sbin/nginx", "/usr/local/sbin/nginx"])
            .expect("this test needs nginx: apt-get install -y nginx (.ci/run installs it)");
        let port = free_port();
        let d = dir.path().display();
        // chunked_transfer_encoding off: the test's SSE client reads a plain body.
        let conf = format!(
            "worker_processes 1;\nmaster_process off;\ndaemon off;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             chunked_transfer_encoding off;\n\
             map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}\n\
             server {{\n    listen 127.0.0.1:{port};\n\
             location {location} {{\n\
               proxy_pass http://127.0.0.1:{upstream}/;\n\
               proxy_http_version 1.1;\n\
               proxy_buffering off;\n\
               {directives}\n\
             }}\n  }}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        fs::write(&path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx {
            child,
            port,
            error_log: dir.join("error.log"),
        };
        let up = wait_until(TIMEOUT, || {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.errors());
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "nginx did not listen: {}", nginx.errors());
        nginx
    }

    pub fn errors(&self) -> String {
        fs::read_to_string(&self.error_log).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
