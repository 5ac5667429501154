//! SSE client libraries people use, against the real binary: Node's `eventsource` package
//! (it reconnects by itself with Last-Event-ID) and Python's `sseclient-py` (a parser; the
//! script reconnects with the last id as a program using it does). Each gets every entry
//! once, in order, across a restart of logwisp with lines written while it was down
//! (SPEC §7, §11).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

use crate::util::*;

const PY_SSECLIENT: &str = r#"
import http.client, json, sys, time
import sseclient
port, last = int(sys.argv[1]), None
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Accept": "text/event-stream"}
        if last is not None:
            headers["Last-Event-ID"] = last
        c.request("GET", "/stream", headers=headers)
        r = c.getresponse()
        def chunks():
            while True:
                b = r.read1(65536)
                if not b:
                    return
                yield b
        for ev in sseclient.SSEClient(chunks()).events():
            if ev.event == "connected":
                print("connected", flush=True)
            elif ev.event == "message":
                last = ev.id
                print("entry", ev.id, json.loads(ev.data)["message"], flush=True)
            else:
                print(ev.event, ev.data, flush=True)
    except (OSError, http.client.HTTPException):
        pass
    print("error", flush=True)
    time.sleep(0.2)  # reconnect backoff, as a real client has
"#;

/// logwisp with a state dir and its HTTP server on a fixed port, so that a client can
/// reconnect to the same address after a restart.
fn stateful_on_fixed_port() -> (Server, u16) {
    let port = free_port();
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.join("state")).expect("create state dir");
    let toml = format!(
        "state_dir = \"$DIR/state\"\n{}",
        one_stream(&format!(
            "[streams.httpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = {port}\n"
        ))
    );
    let server = Server::start_in(dir, &toml, &[]);
    append(&server.path("app.log"), "");
    (server, port)
}

fn write(log: &Path, prefix: &str, n: usize) -> Vec<String> {
    let lines: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    append(
        log,
        &lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    );
    lines
}

/// The client's entries until one with message `last`, as (id, message).
fn entries_until(out: &Receiver<String>, last: &str, got: &mut Vec<(u64, String)>) {
    let found = line_with(out, &format!(" {last}"), TIMEOUT, |line| {
        if let Some(rest) = line.strip_prefix("entry ") {
            let (id, message) = rest.split_once(' ').expect("entry <id> <message>");
            got.push((id.parse().expect("numeric id"), message.to_string()));
        } else {
            assert!(!line.starts_with("dropped"), "nothing was lost: {line}");
        }
    });
    assert!(
        found.is_ok(),
        "no entry {last:?} ({found:?}); entries so far: {got:?}"
    );
}

/// Lines before, during (logwisp stopped) and after a restart reach `client` exactly once,
/// in order, with increasing ids.
fn every_entry_across_a_restart(mut server: Server, mut client: Child) {
    let out = stdout_lines(&mut client);
    assert!(
        line_with(&out, "connected", TIMEOUT, |_| {}).is_ok(),
        "the client never connected"
    );
    let log = server.path("app.log");
    let mut want = write(&log, "before-", 5);
    let mut got = Vec::new();
    entries_until(&out, "before-4", &mut got);

    server.signal(libc::SIGTERM);
    let status = server.wait_exit(TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    want.extend(write(&log, "down-", 5));
    server.restart();
    entries_until(&out, "down-4", &mut got);
    want.extend(write(&log, "after-", 3));
    entries_until(&out, "after-2", &mut got);
    let _ = client.kill();

    let messages: Vec<&str> = got.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(messages, want, "every entry once, in order");
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "ids increase across the restart: {got:?}"
    );
}

#[test]
fn node_eventsource_gets_every_entry_across_a_restart() {
    let node = find_program("node", &[])
        .or_else(|| find_program("nodejs", &[]))
        .expect("node is needed: apt-get install -y nodejs npm (.ci/run does this)");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/eventsource/package.json").exists(),
        "run `npm ci` in {} (.ci/run does this)",
        dir.display()
    );
    let (server, port) = stateful_on_fixed_port();
    let client = Command::new(node)
        .arg("sse_client.mjs")
        .arg(format!("http://127.0.0.1:{port}/stream"))
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start node");
    every_entry_across_a_restart(server, client);
}

#[test]
fn python_sseclient_gets_every_entry_across_a_restart() {
    let (server, port) = stateful_on_fixed_port();
    let client = python_with("sseclient-py==1.8.0")
        .args(["-c", PY_SSECLIENT])
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    every_entry_across_a_restart(server, client);
}
