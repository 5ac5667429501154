//! Router mode: HTTP streams sharing one port, reached at `/{name}{path}`.

use serde_json::json;

use crate::util::*;

/// Two streams, `app` (files in `$DIR/app`) and `sys` (in `$DIR/sys`, other paths), with
/// their HTTP servers on `app_port` and `sys_port`.
fn two_streams(app_port: u16, sys_port: u16) -> String {
    format!(
        "[[streams]]\nname = \"app\"\n[streams.monitor]\ncheck_interval_ms = 20\n\
         targets = [{{ path = \"$DIR/app\", pattern = \"*.log\" }}]\n\
         [streams.httpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = {app_port}\n\
         [[streams]]\nname = \"sys\"\n[streams.monitor]\ncheck_interval_ms = 20\n\
         targets = [{{ path = \"$DIR/sys\", pattern = \"*.log\" }}]\n\
         [streams.httpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = {sys_port}\n\
         stream_path = \"/logs\"\nstatus_path = \"/info\"\n"
    )
}

fn dirs() -> TempDir {
    let dir = TempDir::new();
    std::fs::create_dir(dir.join("app")).unwrap();
    std::fs::create_dir(dir.join("sys")).unwrap();
    dir
}

#[test]
fn router_serves_two_streams_on_one_port_each_with_only_its_own_files() {
    let port = free_port();
    let server = Server::start_in(dirs(), &two_streams(port, port), &["--router"]);
    assert_eq!(
        (server.http_port("app"), server.http_port("sys")),
        (port, port)
    );
    let mut app = SseClient::connect(port, "/app/stream", &[]);
    let hello = app.skip_connected();
    assert_eq!(hello["stream_path"], "/app/stream");
    assert_eq!(hello["status_path"], "/app/status");
    let mut sys = SseClient::connect(port, "/sys/logs", &[]);
    let hello = sys.skip_connected();
    assert_eq!(
        (hello["stream"].as_str(), hello["stream_path"].as_str()),
        (Some("sys"), Some("/sys/logs"))
    );

    append(&server.path("app/a.log"), "a1\n");
    append(&server.path("sys/s.log"), "s1\n");
    append(&server.path("app/a.log"), "a2\n");
    append(&server.path("sys/s.log"), "s2\n");
    assert_eq!(sys.next_message(), "s1");
    assert_eq!(sys.next_message(), "s2");
    assert_eq!(app.next_message(), "a1");
    assert_eq!(app.next_message(), "a2");
    // The other stream's lines were read before this one: none of them came in between.
    append(&server.path("app/a.log"), "a3\n");
    assert_eq!(app.next_message(), "a3");

    let app_status = http_get(port, "/app/status").json();
    assert_eq!(app_status["stream"], "app");
    assert_eq!(app_status["monitor"]["total_entries"], 3);
    let sys_status = http_get(port, "/sys/info").json();
    assert_eq!(sys_status["stream"], "sys");
    assert_eq!(sys_status["monitor"]["total_entries"], 2);

    let all = http_get(port, "/status").json();
    assert_eq!(all["service"], "LogWisp");
    assert_eq!(all["mode"], "router");
    let streams = all["streams"].as_object().unwrap();
    let mut names: Vec<&String> = streams.keys().collect();
    names.sort();
    assert_eq!(names, ["app", "sys"]);
    assert_eq!(streams["app"]["monitor"]["total_entries"], 3);
    assert_eq!(streams["sys"]["monitor"]["total_entries"], 2);
    assert_eq!(streams["sys"]["server"]["active_clients"], 1);
}

#[test]
fn router_404_lists_every_route() {
    let port = free_port();
    let server = Server::start_in(dirs(), &two_streams(port, port), &["--router"]);
    for path in ["/stream", "/ap", "/sys/status", "/nope"] {
        let r = http_get(server.http_port("app"), path);
        assert_eq!(r.status, 404, "{path}");
        let mut endpoints: Vec<String> = r.json()["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect();
        endpoints.sort();
        assert_eq!(
            endpoints,
            [
                "/",
                "/app/",
                "/app/status",
                "/app/stream",
                "/metrics",
                "/status",
                "/sys/",
                "/sys/info",
                "/sys/logs"
            ]
        );
    }
    // A stream's name alone leads to its view.
    let r = http_get(server.http_port("app"), "/app");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("/app/"));
}

#[test]
fn router_port_puts_every_http_stream_on_that_port() {
    let port = free_port();
    let server = Server::start_in(
        dirs(),
        &two_streams(0, 0),
        &["--router-port", &port.to_string()],
    );
    assert_eq!(
        (server.http_port("app"), server.http_port("sys")),
        (port, port)
    );
    let mut sys = SseClient::connect(port, "/sys/logs", &[]);
    sys.skip_connected();
    append(&server.path("sys/s.log"), "via the router port\n");
    assert_eq!(sys.next_message(), "via the router port");
    let all = http_get(port, "/status").json();
    assert_eq!(all["mode"], "router");
    assert_eq!(
        json!([
            all["streams"]["app"]["stream"],
            all["streams"]["sys"]["stream"]
        ]),
        json!(["app", "sys"])
    );
    assert_eq!(all["streams"]["app"]["server"]["port"], port);
    assert_eq!(all["streams"]["sys"]["server"]["port"], port);
}

/// `--router-port 0` is accepted like `port = 0`: every HTTP stream on one free port.
#[test]
fn router_port_0_puts_every_http_stream_on_one_free_port() {
    // The configured ports are overridden, so they are never bound.
    let server = Server::start_in(dirs(), &two_streams(18081, 18082), &["--router-port", "0"]);
    let port = server.http_port("app");
    assert_ne!(port, 0);
    assert_eq!(server.http_port("sys"), port, "{}", server.stdout());
    let mut app = SseClient::connect(port, "/app/stream", &[]);
    app.skip_connected();
    let mut sys = SseClient::connect(port, "/sys/logs", &[]);
    sys.skip_connected();
    append(&server.path("app/a.log"), "to app\n");
    append(&server.path("sys/s.log"), "to sys\n");
    assert_eq!(app.next_message(), "to app");
    assert_eq!(sys.next_message(), "to sys");
    let all = http_get(port, "/status").json();
    assert_eq!(all["mode"], "router");
    assert_eq!(all["streams"]["app"]["server"]["port"], port);
    assert_eq!(all["streams"]["sys"]["server"]["port"], port);
}
