//! TLS on HTTP and TCP servers (SPEC §13), with certificates made in the test and real
//! clients: curl, `openssl s_client` and Python's `ssl` module.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::util::*;

/// A TLS table for a server; `extra` adds keys (client_auth, min_version...).
fn tls_table(server: &str, pki: &Pki, extra: &str) -> String {
    format!(
        "[streams.{server}.tls]\nenabled = true\ncert_file = \"{}\"\nkey_file = \"{}\"\n{extra}",
        pki.server_cert.display(),
        pki.server_key.display()
    )
}

fn start_tls(extra: &str) -> (Server, Pki) {
    let dir = TempDir::new();
    let pki = Pki::new(dir.path());
    let toml = one_stream(&format!(
        "{HTTP}{}{TCP}{}",
        tls_table("httpserver", &pki, extra),
        tls_table("tcpserver", &pki, extra)
    ));
    let server = Server::start_in(dir, &toml, &[]);
    append(&server.path("app.log"), "");
    (server, pki)
}

/// `GET /status` over TLS (curl), with a client certificate when the server asks for one.
fn tls_status(pki: &Pki, port: u16) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&pki.ca)
        .arg("--cert")
        .arg(&pki.client_cert)
        .arg("--key")
        .arg(&pki.client_key)
        .arg(format!("https://localhost:{port}/status"))
        .output()
        .expect("curl is needed for this test");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Polls `/status` over TLS until `cond` holds.
fn wait_tls_status(pki: &Pki, port: u16, what: &str, cond: impl Fn(&serde_json::Value) -> bool) {
    assert!(
        wait_until(TIMEOUT, || cond(&tls_status(pki, port))),
        "timed out waiting for {what}"
    );
}

/// Waits for a line containing `needle`.
fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    line_with(rx, needle, TIMEOUT, |_| {})
        .unwrap_or_else(|e| panic!("no line with {needle:?}: {e}"))
}

const PY_SSE: &str = r#"
import http.client, json, os, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
if os.environ.get("CLIENT_CERT"):
    ctx.load_cert_chain(os.environ["CLIENT_CERT"], os.environ["CLIENT_KEY"])
if os.environ.get("MAX_TLS"):
    ctx.maximum_version = getattr(ssl.TLSVersion, os.environ["MAX_TLS"])
try:
    c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    c.request("GET", "/stream")
    r = c.getresponse()
except (ssl.SSLError, ConnectionError, OSError) as e:
    print("refused", type(e).__name__, e, flush=True)
    sys.exit(0)
print("status", r.status, c.sock.version(), flush=True)
while True:
    line = r.readline()
    if not line:
        break
    if line.startswith(b"data: ") and b"client_id" not in line:
        print("entry", json.loads(line[6:])["message"], flush=True)
"#;

fn python_sse(
    port: u16,
    pki: &Pki,
    cert: &[&std::path::Path],
    max: Option<&str>,
) -> std::process::Child {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(PY_SSE).arg(port.to_string()).arg(&pki.ca);
    if let [cert, key] = cert {
        cmd.env("CLIENT_CERT", cert).env("CLIENT_KEY", key);
    }
    if let Some(m) = max {
        cmd.env("MAX_TLS", m);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3")
}

#[test]
fn sse_over_tls_reaches_python_and_curl_clients() {
    let (server, pki) = start_tls("");
    let port = server.http_port("app");
    let mut py = python_sse(port, &pki, &[], None);
    let py_lines = stdout_lines(&mut py);
    let status = wait_line(&py_lines, "status");
    assert!(status.starts_with("status 200 TLSv1.3"), "{status}");
    let mut curl = Command::new("curl")
        .args(["-sN", "--cacert"])
        .arg(&pki.ca)
        .arg(format!("https://localhost:{port}/stream"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl is needed for this test");
    let curl_lines = stdout_lines(&mut curl);
    wait_line(&curl_lines, "event: connected");
    wait_tls_status(&pki, port, "two TLS clients", |s| {
        s["delivery"]["sse_clients"] == 2
    });
    append(&server.path("app.log"), "over tls\n");
    assert_eq!(wait_line(&py_lines, "entry"), "entry over tls");
    assert!(wait_line(&curl_lines, "\"message\":\"over tls\"").starts_with("data: {"));
    // Status over TLS too; plain HTTP on the TLS port gets nothing it could parse.
    let out = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&pki.ca)
        .arg(format!("https://localhost:{port}/status"))
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["stream"], "app");
    let _ = py.kill();
    let _ = curl.kill();
}

#[test]
fn tcp_over_tls_streams_ndjson_to_openssl_s_client() {
    let (server, pki) = start_tls("");
    let port = server.tcp_port("app");
    let mut client = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-CAfile"])
        .arg(&pki.ca)
        .arg("-connect")
        .arg(format!("localhost:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is needed for this test");
    let lines = stdout_lines(&mut client);
    let http = server.http_port("app");
    wait_tls_status(&pki, http, "the TLS TCP client", |s| {
        s["delivery"]["tcp_clients"] == 1
    });
    // The handshake may still be on its way: write until an entry comes through.
    let mut got = None;
    for i in 0..50 {
        append(&server.path("app.log"), &format!("tcp over tls {i}\n"));
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            got = Some(line);
            break;
        }
    }
    let line = got.expect("an entry over TLS");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(v["message"].as_str().unwrap().starts_with("tcp over tls"));
    let _ = client.stdin.take().map(|mut s| s.flush());
    let _ = client.kill();
}

#[test]
fn tls_12_and_13_are_spoken_and_min_version_13_refuses_12() {
    let (server, pki) = start_tls("");
    let port = server.http_port("app");
    let mut p12 = python_sse(port, &pki, &[], Some("TLSv1_2"));
    let lines = stdout_lines(&mut p12);
    assert!(wait_line(&lines, "status").starts_with("status 200 TLSv1.2"));
    let _ = p12.kill();
    drop(server);

    let (server, pki) = start_tls("min_version = \"1.3\"\n");
    let mut p12 = python_sse(server.http_port("app"), &pki, &[], Some("TLSv1_2"));
    let lines = stdout_lines(&mut p12);
    assert!(wait_line(&lines, "refused").contains("SSL"));
    let mut p13 = python_sse(server.http_port("app"), &pki, &[], None);
    let lines = stdout_lines(&mut p13);
    assert!(wait_line(&lines, "status").starts_with("status 200 TLSv1.3"));
    let _ = p13.kill();
}

#[test]
fn mtls_admits_a_client_of_the_ca_and_refuses_others_in_the_handshake() {
    let dir = TempDir::new();
    let pki = Pki::new(dir.path());
    let extra = format!(
        "client_auth = true\nclient_ca_file = \"{}\"\n",
        pki.ca.display()
    );
    let toml = one_stream(&format!(
        "{HTTP}{}{TCP}{}",
        tls_table("httpserver", &pki, &extra),
        tls_table("tcpserver", &pki, &extra)
    ));
    let server = Server::start_in(dir, &toml, &[]);
    append(&server.path("app.log"), "");
    let port = server.http_port("app");

    let mut none = python_sse(port, &pki, &[], None);
    assert!(wait_line(&stdout_lines(&mut none), "refused").len() > 7);
    let mut stranger = python_sse(port, &pki, &[&pki.stranger_cert, &pki.stranger_key], None);
    assert!(wait_line(&stdout_lines(&mut stranger), "refused").len() > 7);
    let mut good = python_sse(port, &pki, &[&pki.client_cert, &pki.client_key], None);
    let lines = stdout_lines(&mut good);
    wait_line(&lines, "status 200");
    append(&server.path("app.log"), "for the certified\n");
    assert_eq!(wait_line(&lines, "entry"), "entry for the certified");
    let _ = good.kill();

    // TCP: the same, with openssl s_client.
    let tcp = server.tcp_port("app");
    let refused = Command::new("openssl")
        .args(["s_client", "-quiet", "-CAfile"])
        .arg(&pki.ca)
        .arg("-connect")
        .arg(format!("localhost:{tcp}"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() || err.contains("alert") || err.contains("error"),
        "a client without a certificate must be refused: {err}"
    );
    let status = tls_status(&pki, port);
    assert_eq!(status["stream"], "app");
    let metrics = http_get_tls_metrics(&pki, port);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("logwisp_tls_handshake_failures_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

/// `/metrics` over mTLS with the good client certificate (curl).
fn http_get_tls_metrics(pki: &Pki, port: u16) -> String {
    let out = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&pki.ca)
        .arg("--cert")
        .arg(&pki.client_cert)
        .arg("--key")
        .arg(&pki.client_key)
        .arg(format!("https://localhost:{port}/metrics"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn clients_refuse_an_expired_certificate_and_a_wrong_host() {
    let dir = TempDir::new();
    let pki = Pki::new(dir.path());
    let expired = format!(
        "[streams.httpserver.tls]\nenabled = true\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki.expired_cert.display(),
        pki.expired_key.display()
    );
    let server = Server::start_in(dir, &one_stream(&format!("{HTTP}{expired}")), &[]);
    let port = server.http_port("app");
    let out = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&pki.ca)
        .arg(format!("https://localhost:{port}/status"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(60),
        "curl: certificate problem (expired)"
    );
    drop(server);
    let (server, pki) = start_tls("");
    let port = server.http_port("app");
    let out = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&pki.ca)
        .arg("--resolve")
        .arg(format!("wrong.example:{port}:127.0.0.1"))
        .arg(format!("https://wrong.example:{port}/status"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(60), "curl: no name match");
}

#[test]
fn garbage_and_stalled_handshakes_do_not_starve_anyone() {
    let (server, pki) = start_tls("");
    let port = server.http_port("app");
    // Plain HTTP on a TLS port, random bytes, and 50 handshakes that never finish.
    let mut plain = connect_tcp(None, None, port);
    plain
        .write_all(b"GET /status HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut junk = connect_tcp(None, None, port);
    junk.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
        .unwrap();
    let stalled: Vec<_> = (0..50)
        .map(|_| {
            let mut s = connect_tcp(None, None, port);
            // The first bytes of a ClientHello, and then nothing.
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
            s
        })
        .collect();
    let mut py = python_sse(port, &pki, &[], None);
    let lines = stdout_lines(&mut py);
    wait_line(&lines, "status 200");
    append(&server.path("app.log"), "still served\n");
    assert_eq!(wait_line(&lines, "entry"), "entry still served");
    let _ = py.kill();
    drop(stalled);
}

#[test]
fn a_bad_certificate_file_is_a_config_error_naming_it() {
    let dir = TempDir::new();
    let pki = Pki::new(dir.path());
    std::fs::write(dir.join("broken.pem"), "not a certificate\n").unwrap();
    let cfg = dir.join("bad.toml");
    let toml = one_stream(&format!(
        "{HTTP}[streams.httpserver.tls]\nenabled = true\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        dir.join("broken.pem").display(),
        pki.server_key.display()
    ))
    .replace("$DIR", &dir.path().display().to_string());
    std::fs::write(&cfg, toml).unwrap();
    let r = run_logwisp(
        &[
            std::ffi::OsStr::new("--check"),
            std::ffi::OsStr::new("--config"),
            cfg.as_os_str(),
        ],
        &[],
        dir.path(),
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("broken.pem"), "{}", r.stderr);
    assert!(r.stderr.contains("httpserver.tls"), "{}", r.stderr);
}

/// A renewed certificate is taken at the next reload, with the config file unchanged.
#[test]
fn a_reload_takes_a_renewed_certificate_without_a_restart() {
    let dir = TempDir::new();
    let (old_dir, new_dir, live_dir) = (dir.join("old"), dir.join("new"), dir.join("live"));
    for d in [&old_dir, &new_dir, &live_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (old, new) = (Pki::new(&old_dir), Pki::new(&new_dir));
    let live = Pki {
        server_cert: live_dir.join("server.pem"),
        server_key: live_dir.join("server.key"),
        ..Pki::new(&live_dir)
    };
    let install = |from: &Pki| {
        std::fs::copy(&from.server_cert, &live.server_cert).unwrap();
        std::fs::copy(&from.server_key, &live.server_key).unwrap();
    };
    install(&old);
    let toml = one_stream(&format!("{HTTP}{}", tls_table("httpserver", &live, "")));
    let mut server = Server::start_in(dir, &toml, &[]);
    let port = server.http_port("app");
    assert_eq!(tls_status(&old, port)["stream"], "app");
    assert_eq!(
        tls_status(&new, port),
        serde_json::Value::Null,
        "not trusted yet"
    );

    install(&new);
    server.reload_with(&toml);
    assert_eq!(
        tls_status(&new, port)["stream"],
        "app",
        "the renewed certificate"
    );
    assert_eq!(tls_status(&old, port), serde_json::Value::Null);
}
