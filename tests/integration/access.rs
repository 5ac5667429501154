//! Who may connect and who may read (SPEC §13): IP lists checked before anything is read,
//! Basic (argon2id, bcrypt) and Bearer authentication on every HTTP endpoint, and a
//! reload that changes them.

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

/// "s3cret", hashed with cheap parameters so a debug build checks it quickly.
const ARGON2ID_S3CRET: &str =
    "$argon2id$v=19$m=8,t=1,p=1$zYsfCSFpidaxfCAAdBTdIg$oKilUEIH322wB/2U2OXqOyfEB8NGl2rpPeT+HwGWETc";
const BCRYPT_S3CRET: &str = "$2b$04$8Aww1zmPIFgmQfxIqI58e.XPfq6YJsucbK8U7LahMR9A.nW8vnQ12";

fn basic_header(user: &str, password: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import base64,sys; print(base64.b64encode(sys.argv[1].encode()).decode())",
        ])
        .arg(format!("{user}:{password}"))
        .output()
        .expect("python3");
    format!(
        "Authorization: Basic {}",
        String::from_utf8(out.stdout).unwrap().trim()
    )
}

fn get_with(port: u16, path: &str, headers: &[&str]) -> Response {
    let raw = get_request(path, &[headers, &["Connection: close"]].concat());
    http_request(port, raw.as_bytes())
}

#[test]
fn bearer_tokens_guard_stream_status_metrics_and_unknown_paths() {
    let toml = one_stream(&format!(
        "{HTTP}[streams.httpserver.auth]\ntype = \"bearer\"\nrealm = \"edge logs\"\n\
         tokens = [\"first-token\", \"second-token\"]\n"
    ));
    let server = Server::start(&toml);
    let port = server.http_port("app");
    for path in ["/stream", "/status", "/metrics", "/nope", "/"] {
        let r = get_with(port, path, &[]);
        assert_eq!(r.status, 401, "{path}: {}", r.text());
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Bearer realm=\"edge logs\""),
            "{path}"
        );
        assert_eq!(r.json()["error"], "Unauthorized", "{path}");
        let r = get_with(port, path, &["Authorization: Bearer wrong-token"]);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.json()["message"], "invalid credentials", "{path}");
    }
    let ok = get_with(port, "/status", &["Authorization: Bearer second-token"]);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["stream"], "app");
    // A CORS preflight carries no credentials, and must pass for the real request to come.
    let preflight = http_request(
        port,
        b"OPTIONS /stream HTTP/1.1\r\nHost: x\r\nOrigin: http://a\r\n\
          Access-Control-Request-Headers: authorization\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(preflight.status, 204);

    let mut sse = SseClient::connect(port, "/stream", &["Authorization: Bearer first-token"]);
    sse.skip_connected();
    append(&server.path("app.log"), "guarded line\n");
    assert_eq!(sse.next_message(), "guarded line");

    let status = get_with(port, "/status", &["Authorization: Bearer first-token"]).json();
    let rejected = &status["server"]["rejected"];
    assert_eq!(rejected["auth"], 10, "{status}");
    assert_eq!(rejected["ip"], 0, "{status}");
}

#[test]
fn basic_auth_takes_argon2id_and_bcrypt_hashes_and_refuses_wrong_passwords() {
    let dir = TempDir::new();
    let users_file = dir.join("users");
    std::fs::write(&users_file, format!("# ops team\nbob:{BCRYPT_S3CRET}\n")).unwrap();
    let toml = one_stream(&format!(
        "{HTTP}[streams.httpserver.auth]\ntype = \"basic\"\n\
         users = [ {{ username = \"alice\", password_hash = \"{ARGON2ID_S3CRET}\" }} ]\n\
         users_file = \"{}\"\n",
        users_file.display()
    ));
    let server = Server::start_in(dir, &toml, &[]);
    let port = server.http_port("app");
    let r = get_with(port, "/status", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"logwisp\", charset=\"UTF-8\"")
    );
    for user in ["alice", "bob"] {
        let r = get_with(port, "/status", &[&basic_header(user, "s3cret")]);
        assert_eq!(r.status, 200, "{user}: {}", r.text());
        let r = get_with(port, "/status", &[&basic_header(user, "s3cret!")]);
        assert_eq!(r.status, 401, "{user} with a wrong password");
    }
    let r = get_with(port, "/status", &[&basic_header("mallory", "s3cret")]);
    assert_eq!(r.status, 401, "unknown user");
    let r = get_with(port, "/status", &["Authorization: Basic %%%"]);
    assert_eq!(r.status, 401, "unreadable credentials");

    // curl speaks Basic itself.
    let out = Command::new("curl")
        .args(["-s", "-u", "bob:s3cret"])
        .arg(format!("http://127.0.0.1:{port}/status"))
        .output()
        .expect("curl is needed for this test");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(v["stream"], "app");
}

/// Reads what the server sends before it closes (or 5 s pass): the bytes, and whether it
/// closed (EOF or a reset).
fn read_to_close(stream: TcpStream) -> (Vec<u8>, bool) {
    let (end, got) = HttpConn::new(stream).end(Instant::now() + Duration::from_secs(5));
    (got, end != End::Open)
}

#[test]
fn ip_lists_refuse_before_reading_and_let_listed_addresses_in() {
    let toml = one_stream(&format!(
        "{HTTP}[streams.httpserver.acl]\nip_allow = [\"127.0.0.2\"]\n\
         {TCP}[streams.tcpserver.acl]\nip_allow = [\"127.0.0.0/8\"]\nip_deny = [\"127.0.0.1\"]\n"
    ));
    let server = Server::start(&toml);
    let (http, tcp) = (server.http_port("app"), server.tcp_port("app"));
    let other = Ipv4Addr::new(127, 0, 0, 2);

    // HTTP from 127.0.0.1: closed without a byte, even with a request already sent.
    let mut refused = connect_tcp(None, None, http);
    let _ = refused.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
    let (got, closed) = read_to_close(refused);
    assert!(closed, "the refused connection is closed");
    assert!(
        got.is_empty(),
        "nothing is answered: {:?}",
        String::from_utf8_lossy(&got)
    );
    // From 127.0.0.2: served.
    let mut conn = HttpConn::connect_from(Some(other), http);
    conn.send(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = conn.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["server"]["rejected"]["ip"], 1, "{}", r.text());

    // TCP from 127.0.0.1 (denied): one JSON error line, then the close.
    let refused = connect_tcp(None, None, tcp);
    let (got, closed) = read_to_close(refused);
    assert!(closed);
    let text = String::from_utf8(got).unwrap();
    assert_eq!(text.matches('\n').count(), 1, "{text:?}");
    let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    assert!(
        line["error"].as_str().unwrap().contains("Forbidden"),
        "{line}"
    );
    // From 127.0.0.2 (allowed): entries flow.
    let mut client = TcpLineClient::from_stream(connect_tcp(Some(other), None, tcp));
    let connected = wait_until(TIMEOUT, || {
        conn.send(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
        conn.read_response().json()["delivery"]["tcp_clients"] == 1
    });
    assert!(connected, "the TCP client from 127.0.0.2 is served");
    append(&server.path("app.log"), "over tcp\n");
    assert_eq!(client.next_message(), "over tcp");

    let stderr = server.stderr();
    assert!(
        stderr.contains("acl: refused a connection from 127.0.0.1"),
        "{stderr}"
    );
}

#[test]
fn refusals_are_logged_once_per_address_per_minute_but_all_counted() {
    let toml = one_stream(&format!(
        "{HTTP}[streams.httpserver.acl]\nip_deny = [\"127.0.0.1\"]\n"
    ));
    let server = Server::start(&toml);
    let port = server.http_port("app");
    for _ in 0..20 {
        let c = connect_tcp(None, None, port);
        let (_, closed) = read_to_close(c);
        assert!(closed);
    }
    let mut conn = HttpConn::connect_from(Some(Ipv4Addr::new(127, 0, 0, 3)), port);
    conn.send(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().json()["server"]["rejected"]["ip"], 20);
    let stderr = server.stderr();
    assert_eq!(
        stderr
            .matches("acl: refused a connection from 127.0.0.1")
            .count(),
        1,
        "{stderr}"
    );
}

#[test]
fn a_reload_that_revokes_a_token_ends_its_streams_and_refuses_it() {
    let with_tokens = |tokens: &str| {
        one_stream(&format!(
            "{HTTP}[streams.httpserver.auth]\ntype = \"bearer\"\ntokens = [{tokens}]\n"
        ))
    };
    let mut server = Server::start(&with_tokens("\"old\", \"kept\""));
    let port = server.http_port("app");
    let mut revoked = SseClient::connect(port, "/stream", &["Authorization: Bearer old"]);
    revoked.skip_connected();
    append(&server.path("app.log"), "before\n");
    assert_eq!(revoked.next_message(), "before");

    server.reload_with(&with_tokens("\"kept\""));
    let goodbye = revoked.next_event();
    assert_eq!(goodbye.event.as_deref(), Some("disconnect"), "{goodbye:?}");
    assert_eq!(goodbye.json()["reason"], "auth_changed");
    revoked.expect_closed();
    let r = get_with(port, "/status", &["Authorization: Bearer old"]);
    assert_eq!(r.status, 401);
    let r = get_with(port, "/status", &["Authorization: Bearer kept"]);
    assert_eq!(r.status, 200);
}

#[test]
fn a_reload_rereads_the_tokens_file_even_when_the_config_is_unchanged() {
    let dir = TempDir::new();
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "# deploy tokens\nold-token\nkept-token\n").unwrap();
    let toml = one_stream(&format!(
        "{HTTP}[streams.httpserver.auth]\ntype = \"bearer\"\ntokens_file = \"{}\"\n",
        tokens.display()
    ));
    let mut server = Server::start_in(dir, &toml, &[]);
    let port = server.http_port("app");
    let mut revoked = SseClient::connect(port, "/stream", &["Authorization: Bearer old-token"]);
    revoked.skip_connected();
    std::fs::write(&tokens, "kept-token\n").unwrap();
    server.reload_with(&toml);
    let goodbye = revoked.next_event();
    assert_eq!(
        goodbye.json()["reason"],
        "auth_changed",
        "{:?}",
        goodbye.raw
    );
    assert_eq!(
        get_with(port, "/status", &["Authorization: Bearer old-token"]).status,
        401
    );
    assert_eq!(
        get_with(port, "/status", &["Authorization: Bearer kept-token"]).status,
        200
    );
}
