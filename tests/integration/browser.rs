//! The page in headless Chromium against the real binary: `tests/browser/page_test.mjs`
//! (playwright-core driving Debian's `chromium`) with entries written to the files logwisp
//! tails. It checks what a person sees and what goes over the wire: entries appear,
//! filter and level toggles change the stream request and what the server sends, pause
//! and resume fill the gap exactly, markup in lines is shown as text, 100 000 lines keep
//! the DOM at its row cap and the JS heap flat, a dropped connection resumes after the last
//! entry seen, and WebSocket works from the browser — directly, behind nginx under a
//! sub-path, and in router mode. See tests/browser/README.md.
//!
//! Needs `node` and `chromium` (`apt-get install -y chromium nodejs npm`, as `.ci/run`
//! does) and fails saying so without them; `npm ci` is run in tests/browser when its
//! `node_modules` is missing. Runs one browser at a time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::util::*;

/// One Chromium at a time: each is heavy, and the machine may have two cores. Held also
/// while `npm ci` runs, so only one runs.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// The longest one run of the harness may take.
const HARNESS_DEADLINE: Duration = Duration::from_secs(600);

const INSTALL: &str = "the browser tests need Node.js and Chromium: \
    `apt-get install -y chromium nodejs npm` on Debian (.ci/run does this when run as root), \
    then `npm ci` in tests/browser (done here when npm is there)";

struct Harness {
    node: PathBuf,
    chromium: PathBuf,
    dir: PathBuf,
}

fn harness() -> Harness {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let node = find_program("node", &[]).or_else(|| find_program("nodejs", &[]));
    let chromium = find_program("chromium", &[]).or_else(|| find_program("chromium-browser", &[]));
    let (Some(node), Some(chromium)) = (node, chromium) else {
        panic!("{INSTALL}");
    };
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        let npm = find_program("npm", &[]).unwrap_or_else(|| panic!("no npm: {INSTALL}"));
        let out = Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .expect("run npm ci");
        assert!(
            out.status.success(),
            "npm ci in {} failed ({INSTALL}):\n{}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Harness {
        node,
        chromium,
        dir,
    }
}

impl Harness {
    /// Runs page_test.mjs against `base`, entries going to `log_dir`; panics with its
    /// output unless every test it ran passed. The output is printed either way (it has
    /// the page's size and memory numbers).
    fn run(&self, base: &str, log_dir: &Path, extra: &[&str]) -> String {
        self.run_trusting(base, log_dir, extra, None)
    }

    /// [`run`](Self::run), with `ca` (PEM) a trusted root for Chromium and for the
    /// script's own requests.
    fn run_trusting(
        &self,
        base: &str,
        log_dir: &Path,
        extra: &[&str],
        ca: Option<&Path>,
    ) -> String {
        // A build without WebSocket has nothing to test there.
        let extra: Vec<&str> = extra
            .iter()
            .copied()
            .filter(|a| cfg!(feature = "websocket") || *a != "--websocket")
            .collect();
        let mut cmd = Command::new(&self.node);
        cmd.arg("page_test.mjs")
            .args(["--base", base, "--log-dir"])
            .arg(log_dir)
            .arg("--chromium")
            .arg(&self.chromium)
            .args(&extra)
            .current_dir(&self.dir);
        if let Some(ca) = ca {
            cmd.arg("--ca").arg(ca).env("NODE_EXTRA_CA_CERTS", ca);
        }
        let run = run_within(&mut cmd, HARNESS_DEADLINE);
        let out = format!("{}{}", run.stdout, run.stderr);
        println!("page_test.mjs --base {base} {}\n{out}", extra.join(" "));
        let Some(status) = run.status else {
            panic!("page_test.mjs did not finish in {HARNESS_DEADLINE:?}:\n{out}");
        };
        assert!(status.success(), "page_test.mjs failed ({status}):\n{out}");
        assert!(
            out.lines().any(|l| l.ends_with(" passed, 0 failed")),
            "no summary:\n{out}"
        );
        out
    }
}

/// Every test of the harness except the kick needs nothing but the page and the files;
/// `--proxy` puts a relay in front that can drop the connections, `--websocket` adds the
/// browser WebSocket test.
#[test]
fn browser_page_against_logwisp() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let h = harness();
    let server = Server::start(&one_stream(HTTP));
    let base = format!("http://127.0.0.1:{}/", server.http_port("app"));
    let out = h.run(&base, server.dir.path(), &["--proxy", "--websocket"]);
    if cfg!(feature = "websocket") {
        assert!(!out.contains("\nskip "), "a test was skipped:\n{out}");
    }
}

/// The page over HTTPS, its EventSource and WebSocket (wss) too, in a Chromium that
/// trusts the test CA the way a person would make it (SPEC §13): nothing is told to
/// ignore certificate errors, so a certificate Chromium does not accept fails the run.
#[test]
fn browser_page_over_tls_with_a_trusted_test_ca() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let h = harness();
    let dir = TempDir::new();
    let pki = Pki::new(dir.path());
    let tls = format!(
        "[streams.httpserver.tls]\nenabled = true\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    let server = Server::start_in(dir, &one_stream(&format!("{HTTP}{tls}")), &[]);
    let base = format!("https://localhost:{}/", server.http_port("app"));
    let out = h.run_trusting(
        &base,
        server.dir.path(),
        &[
            "--proxy",
            "--websocket",
            "--only",
            "self-contained,live entries,filter box,dropped,WebSocket,Security",
        ],
        Some(&pki.ca),
    );
    for name in ["live entries", "dropped", "Security"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("ok ") && l.contains(name)),
            "{name} did not pass:\n{out}"
        );
    }
}

/// Tests that depend on where the page is: under /logs/ behind nginx (with the headers
/// WebSocket needs), the stream and status reached relative to the page.
#[test]
fn browser_page_behind_nginx_under_a_sub_path() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let h = harness();
    let server = Server::start(&one_stream(&format!(
        "{HTTP}stream_path = \"/events/live\"\n"
    )));
    let dir = TempDir::new();
    let nginx = Nginx::start(
        &dir,
        server.http_port("app"),
        "/logs/",
        "proxy_set_header Upgrade $http_upgrade;\n\
         proxy_set_header Connection $connection_upgrade;",
    );
    let base = format!("http://127.0.0.1:{}/logs/", nginx.port);
    h.run(
        &base,
        server.dir.path(),
        &[
            "--stream-path",
            "/events/live",
            "--proxy",
            "--websocket",
            "--only",
            "self-contained,live entries,markup,filter box,refused,pause,dropped,relative,WebSocket,Security",
        ],
    );
    assert!(!nginx.errors().contains("[error]"), "{}", nginx.errors());
}

/// Router mode: the page at /app/ (and /app redirected there), its stream /app/stream,
/// its status /app/status.
#[test]
fn browser_page_in_router_mode() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let h = harness();
    let port = free_port();
    let dir = TempDir::new();
    for d in ["app", "sys"] {
        std::fs::create_dir(dir.join(d)).unwrap();
    }
    let stream = |name: &str| {
        format!(
            "[[streams]]\nname = \"{name}\"\n[streams.monitor]\ncheck_interval_ms = 20\n\
             targets = [{{ path = \"$DIR/{name}\", pattern = \"*.log\" }}]\n\
             [streams.httpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = {port}\n"
        )
    };
    let toml = format!("{}{}", stream("app"), stream("sys"));
    let server = Server::start_in(dir, &toml, &["--router"]);
    let base = format!("http://127.0.0.1:{port}/app/");
    h.run(
        &base,
        &server.path("app"),
        &[
            "--proxy",
            "--websocket",
            "--only",
            "self-contained,live entries,filter box,dropped,relative,WebSocket,Security",
        ],
    );
}
