//! WebSocket on the stream path (SPEC §15, RFC 6455): a raw-socket client here checks
//! frames byte for byte (fragmented, oversized and unmasked client frames, close codes),
//! and Python's `websockets` (from PyPI, as users run it) checks the same from a real
//! client library: entries, query filters, resume, pings both ways, close on shutdown.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::*;

/// RFC 6455 §1.3's example key and the accept value it must get.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// An HTTP server whose heartbeat (a ping on WebSocket) comes every second.
fn http_with_heartbeat() -> String {
    format!("{HTTP}[streams.httpserver.heartbeat]\ninterval_seconds = 1\n")
}

fn upgrade_request(path: &str, extra: &[&str]) -> String {
    let key = format!("Sec-WebSocket-Key: {KEY}");
    let upgrade = [
        "Upgrade: websocket",
        "Connection: Upgrade",
        &key,
        "Sec-WebSocket-Version: 13",
    ];
    get_request(path, &[&upgrade, extra].concat())
}

/// One frame from the server.
#[derive(Debug, PartialEq)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl Frame {
    fn text(&self) -> &str {
        assert_eq!((self.fin, self.opcode), (true, TEXT), "not a text frame");
        std::str::from_utf8(&self.payload).expect("a text frame is UTF-8")
    }
}

/// The bytes of a client frame, masked with `mask` (or unmasked, which is an error).
fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

const MASK: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

/// A close frame from the server: code and reason.
fn close_frame(code: u16, reason: &str) -> Frame {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    Frame {
        fin: true,
        opcode: CLOSE,
        payload,
    }
}

/// A WebSocket client over a plain socket: frames parsed by hand, nothing assumed.
struct WsClient {
    conn: HttpConn,
    head: Response,
}

impl WsClient {
    /// Upgrades `path`; panics unless the answer is `101` with the right accept value.
    fn connect(port: u16, path: &str) -> WsClient {
        let mut conn = HttpConn::new(TcpStream::connect(("127.0.0.1", port)).unwrap());
        conn.send(upgrade_request(path, &[]).as_bytes());
        let head = match conn.head(Instant::now() + TIMEOUT) {
            Ok(Some(head)) => head,
            other => panic!(
                "no response head ({:?}): {:?}",
                other.map(|_| ()),
                String::from_utf8_lossy(conn.unread())
            ),
        };
        assert_eq!(
            (head.status, head.reason.as_str()),
            (101, "Switching Protocols"),
            "{head:?}"
        );
        assert_eq!(head.header("Upgrade"), Some("websocket"));
        assert_eq!(head.header("Connection"), Some("Upgrade"));
        assert_eq!(head.header("Sec-WebSocket-Accept"), Some(ACCEPT));
        // Nothing is negotiated: no extension, no subprotocol, no length.
        for h in [
            "Sec-WebSocket-Extensions",
            "Sec-WebSocket-Protocol",
            "Content-Length",
            "Transfer-Encoding",
        ] {
            assert_eq!(head.header(h), None, "{h}");
        }
        WsClient { conn, head }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.conn.stream.write_all(bytes).expect("send frame");
    }

    /// The next frame, or `None` on timeout or EOF. Server frames are never masked and
    /// carry no RSV bit.
    fn next_frame_within(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        let n = loop {
            let unread = self.conn.unread();
            if let Some(n) = frame_len(unread).filter(|&n| unread.len() >= n) {
                break n;
            }
            if !matches!(self.conn.fill(deadline), Ok(true)) {
                return None;
            }
        };
        let b = self.conn.consume(n);
        assert_eq!(b[0] & 0x70, 0, "RSV bits set: {:#x}", b[0]);
        assert_eq!(b[1] & 0x80, 0, "a server frame is masked");
        let skip = match b[1] & 0x7F {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        Some(Frame {
            fin: b[0] & 0x80 != 0,
            opcode: b[0] & 0x0F,
            payload: b[skip..].to_vec(),
        })
    }

    fn next_frame(&mut self) -> Frame {
        self.next_frame_within(TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no frame in time; unread: {:?}",
                String::from_utf8_lossy(self.conn.unread())
            )
        })
    }

    /// The next data frame's text (pings are answered, as a client library would).
    fn next_text(&mut self) -> String {
        loop {
            let f = self.next_frame();
            if f.opcode == PING {
                self.send(&client_frame(true, PONG, &f.payload, MASK));
                continue;
            }
            return f.text().to_string();
        }
    }

    fn expect_closed(&mut self) {
        self.conn.expect_closed();
    }
}

/// The whole length of the frame at the start of `b`, once its head is there.
fn frame_len(b: &[u8]) -> Option<usize> {
    if b.len() < 2 {
        return None;
    }
    let (head, len) = match b[1] & 0x7F {
        126 if b.len() >= 4 => (4, u16::from_be_bytes([b[2], b[3]]) as usize),
        127 if b.len() >= 10 => (
            10,
            u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
        ),
        126 | 127 => return None,
        n => (2, n as usize),
    };
    Some(head + len)
}

// ---------------------------------------------------------------------------------------
// Raw socket

#[test]
fn ws_one_text_frame_per_entry_with_the_same_bytes_as_sse_data() {
    let server = Server::start(&one_stream(HTTP));
    let port = server.http_port("app");
    let mut ws = WsClient::connect(port, "/stream");
    assert!(ws.head.header("Date").is_some());
    let mut sse = SseClient::connect(port, "/stream", &[]);
    sse.skip_connected();
    // Short, 16-bit and 64-bit payload lengths.
    let lines = [
        "[ERROR] short".to_string(),
        format!("[WARN] {}", "m".repeat(200)),
        format!("[INFO] {}", "l".repeat(70_000)),
        "{\"level\":\"debug\",\"msg\":\"json \\u00e9\",\"k\":[1,2]}".to_string(),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    append(&server.path("app.log"), &text);
    for line in &lines {
        let e = sse.next_event();
        let data = e.data.expect("data");
        let f = ws.next_frame();
        assert_eq!(f.text(), data, "frame of {:?}", &line[..20.min(line.len())]);
    }
    let status = server.status("app");
    assert_eq!(status["server"]["active_clients"], 2, "{status}");
}

#[test]
fn ws_query_filters_apply() {
    let server = Server::start(&one_stream(HTTP));
    let mut ws = WsClient::connect(
        server.http_port("app"),
        "/stream?levels=ERROR&filter=db&source=app.log",
    );
    append(
        &server.path("app.log"),
        "[ERROR] db down\n[INFO] db up\n[ERROR] cache down\n",
    );
    append(&server.path("other.log"), "[ERROR] db other\n");
    append(&server.path("app.log"), "[ERROR] db END\n");
    let got: Vec<String> = (0..2)
        .map(|_| {
            let v: Value = serde_json::from_str(&ws.next_text()).unwrap();
            v["message"].as_str().unwrap().to_string()
        })
        .collect();
    assert_same_seq("ws filtered", &got, &["[ERROR] db down", "[ERROR] db END"]);
}

#[test]
fn ws_a_fragmented_client_message_with_a_ping_between_fragments_is_read_and_the_ping_answered() {
    let server = Server::start(&one_stream(HTTP));
    let mut ws = WsClient::connect(server.http_port("app"), "/stream");
    ws.send(&client_frame(false, TEXT, b"hel", MASK));
    // A control frame may come between the fragments of a message (RFC 6455 §5.4).
    ws.send(&client_frame(true, PING, b"p1", MASK));
    assert_eq!(
        ws.next_frame(),
        Frame {
            fin: true,
            opcode: PONG,
            payload: b"p1".to_vec()
        }
    );
    ws.send(&client_frame(false, CONTINUATION, b"l", MASK));
    ws.send(&client_frame(true, CONTINUATION, b"o", MASK));
    // A fragmented binary message (within the 64 KiB a message may have), split across
    // writes inside its frames too.
    let mut bytes = client_frame(false, BINARY, &[0u8; 300], MASK);
    bytes.extend(client_frame(true, CONTINUATION, &[1u8; 60_000], MASK));
    for piece in bytes.chunks(777) {
        ws.send(piece);
    }
    ws.send(&client_frame(true, PING, b"", MASK));
    assert_eq!(
        ws.next_frame(),
        Frame {
            fin: true,
            opcode: PONG,
            payload: vec![]
        }
    );
    append(&server.path("app.log"), "after fragments\n");
    let v: Value = serde_json::from_str(&ws.next_text()).unwrap();
    assert_eq!(v["message"], "after fragments");
}

#[test]
fn ws_an_oversized_message_is_closed_with_1009() {
    let server = Server::start(&one_stream(HTTP));
    let port = server.http_port("app");
    // One frame over 64 KiB: refused on its head, before its payload is sent.
    let mut ws = WsClient::connect(port, "/stream");
    let head = &client_frame(true, TEXT, &vec![b'a'; 64 * 1024 + 1], MASK)[..14];
    ws.send(head);
    assert_eq!(ws.next_frame(), close_frame(1009, "message too big"));
    ws.expect_closed();
    // Fragments that add up to more.
    let mut ws = WsClient::connect(port, "/stream");
    ws.send(&client_frame(false, TEXT, &vec![b'a'; 40_000], MASK));
    let head = &client_frame(true, CONTINUATION, &vec![b'a'; 30_000], MASK)[..8];
    ws.send(head);
    assert_eq!(ws.next_frame(), close_frame(1009, "message too big"));
    ws.expect_closed();
    // Exactly 64 KiB is fine.
    let mut ws = WsClient::connect(port, "/stream");
    ws.send(&client_frame(true, TEXT, &vec![b'a'; 64 * 1024], MASK));
    ws.send(&client_frame(true, PING, b"still here", MASK));
    assert_eq!(ws.next_frame().payload, b"still here");
    server.wait_status("app", "one client left", |s| {
        s["server"]["active_clients"] == 1
    });
}

#[test]
fn ws_an_unmasked_client_frame_is_a_protocol_error_1002() {
    let server = Server::start(&one_stream(HTTP));
    let mut ws = WsClient::connect(server.http_port("app"), "/stream");
    ws.send(&client_frame(true, TEXT, b"hi", None));
    assert_eq!(
        ws.next_frame(),
        close_frame(1002, "client frames must be masked")
    );
    ws.expect_closed();
    // Another protocol error for good measure: a fragmented control frame.
    let mut ws = WsClient::connect(server.http_port("app"), "/stream");
    ws.send(&client_frame(false, PING, b"x", MASK));
    assert_eq!(
        ws.next_frame(),
        close_frame(1002, "fragmented control frame")
    );
    ws.expect_closed();
    server.wait_status("app", "no client", |s| s["server"]["active_clients"] == 0);
}

#[test]
fn ws_a_client_close_is_echoed_and_the_connection_ends() {
    let server = Server::start(&one_stream(HTTP));
    let mut ws = WsClient::connect(server.http_port("app"), "/stream");
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    ws.send(&client_frame(true, CLOSE, &payload, MASK));
    assert_eq!(ws.next_frame(), close_frame(1000, ""));
    ws.expect_closed();
    server.wait_status("app", "no client", |s| s["server"]["active_clients"] == 0);
}

#[test]
fn ws_server_heartbeats_are_pings_and_pongs_are_taken() {
    let server = Server::start(&one_stream(&http_with_heartbeat()));
    let mut ws = WsClient::connect(server.http_port("app"), "/stream");
    for _ in 0..2 {
        let f = ws
            .next_frame_within(Duration::from_millis(2500))
            .expect("a ping within 2.5 s");
        assert_eq!((f.fin, f.opcode), (true, PING), "{f:?}");
        assert!(f.payload.len() <= 125);
        let v: Value = serde_json::from_slice(&f.payload).expect("JSON heartbeat");
        assert_eq!(v["type"], "heartbeat", "{v}");
        ws.send(&client_frame(true, PONG, &f.payload, MASK));
    }
    append(&server.path("app.log"), "after heartbeats\n");
    let v: Value = serde_json::from_str(&ws.next_text()).unwrap();
    assert_eq!(v["message"], "after heartbeats");
}

#[test]
fn ws_shutdown_sends_what_is_owed_then_close_1001() {
    let mut server = Server::start(&one_stream(HTTP));
    let mut ws = WsClient::connect(server.http_port("app"), "/stream");
    let first = server.next_id("app");
    append(&server.path("app.log"), "one\ntwo\nthree\n");
    server.wait_status("app", "three entries", |s| {
        s["delivery"]["next_sequence"] == first + 3
    });
    server.signal(libc::SIGTERM);
    for m in ["one", "two", "three"] {
        let v: Value = serde_json::from_str(ws.next_frame().text()).unwrap();
        assert_eq!(v["message"], m);
    }
    assert_eq!(ws.next_frame(), close_frame(1001, "server shutdown"));
    ws.expect_closed();
    let status = server.wait_exit(TIMEOUT).expect("logwisp exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn ws_handshake_refusals() {
    let server = Server::start(&one_stream(HTTP));
    let port = server.http_port("app");
    let ask = |path: &str, extra: &[&str], drop_header: &str| {
        let req: String = upgrade_request(path, extra)
            .split_inclusive("\r\n")
            .filter(|l| drop_header.is_empty() || !l.starts_with(drop_header))
            .collect();
        http_request(port, req.as_bytes())
    };
    let r = ask(
        "/stream",
        &["Sec-WebSocket-Version: 8"],
        "Sec-WebSocket-Version: 13",
    );
    assert_eq!(r.status, 426, "{}", r.text());
    assert_eq!(r.header("Sec-WebSocket-Version"), Some("13"));
    for (drop, why) in [
        ("Sec-WebSocket-Key", "missing Sec-WebSocket-Key"),
        (
            "Connection",
            "\"Upgrade: websocket\" without \"Connection: Upgrade\"",
        ),
        ("Sec-WebSocket-Version", "missing Sec-WebSocket-Version"),
    ] {
        let r = ask("/stream", &[], drop);
        assert_eq!(r.status, 400, "without {drop}: {}", r.text());
        assert_eq!(r.json()["message"], why, "without {drop}");
    }
    // The query is checked first: a bad filter is the same 400 naming it.
    let r = ask("/stream?filter=a(", &[], "");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["parameter"], "filter");
    // An upgrade is only for the stream path.
    let r = ask("/status", &[], "");
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------------------------------
// Python `websockets`

/// Drives one `websockets` client (sync API) by commands on stdin; every answer is a
/// JSON line on stdout. Server pings are recorded as they arrive (the library answers
/// them by itself).
const DRIVER: &str = r#"
import json, ssl, sys, threading, time
from websockets.sync.client import connect, ClientConnection
from websockets.frames import Frame, Opcode
from websockets.exceptions import ConnectionClosed, InvalidStatus

lock = threading.Lock()
def out(**kw):
    with lock:
        sys.stdout.write(json.dumps(kw) + "\n")
        sys.stdout.flush()

pings = []
class Conn(ClientConnection):
    def process_event(self, event):
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            pings.append(bytes(event.data).decode("utf-8", "replace"))
        super().process_event(event)

def closed(ws):
    r = ws.protocol.close_rcvd
    return dict(event="closed", code=r.code if r else None, reason=r.reason if r else None)

ws = None
for line in sys.stdin:
    c = json.loads(line)
    cmd = c["cmd"]
    try:
        if cmd == "connect":
            try:
                tls = {}
                if "cafile" in c:
                    tls["ssl"] = ssl.create_default_context(cafile=c["cafile"])
                ws = connect(c["url"], create_connection=Conn, ping_interval=None,
                             compression=None, open_timeout=10, **tls)
                out(event="open", status=ws.response.status_code)
            except InvalidStatus as e:
                out(event="refused", status=e.response.status_code,
                    body=e.response.body.decode("utf-8", "replace"))
        elif cmd == "recv":
            for _ in range(c["n"]):
                try:
                    m = ws.recv(timeout=c.get("timeout", 10))
                    if isinstance(m, str):
                        out(event="text", data=m)
                    else:
                        out(event="binary", data=m.hex())
                except TimeoutError:
                    out(event="timeout")
                    break
                except ConnectionClosed:
                    out(**closed(ws))
                    break
        elif cmd == "ping":
            ok = ws.ping(c["data"]).wait(c.get("timeout", 10))
            out(event="pong" if ok else "no_pong", data=c["data"])
        elif cmd == "pings":
            deadline = time.monotonic() + c.get("timeout", 10)
            while len(pings) < c["n"] and time.monotonic() < deadline:
                time.sleep(0.01)
            out(event="pings", data=list(pings))
        elif cmd == "close":
            ws.close(c.get("code", 1000), c.get("reason", ""))
            out(**closed(ws))
    except Exception as e:
        out(event="error", error=f"{type(e).__name__}: {e}")
"#;

/// The PyPI package, pinned so the test means the same thing next year.
const WEBSOCKETS: &str = "websockets==17.4";

/// A Python `websockets` client, driven line by line.
struct PyWs {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl PyWs {
    fn start(dir: &TempDir) -> PyWs {
        let script = dir.join("ws_driver.py");
        std::fs::write(&script, DRIVER).unwrap();
        let mut child = python_with(WEBSOCKETS)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 with websockets");
        let stdin = child.stdin.take().unwrap();
        let lines = stdout_lines(&mut child);
        let (stderr, _) = drain(child.stderr.take().unwrap());
        PyWs {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    fn send(&mut self, cmd: Value) {
        writeln!(self.stdin, "{cmd}").expect("write to the Python driver");
    }

    fn next(&mut self) -> Value {
        match self.lines.recv_timeout(TIMEOUT * 2) {
            Ok(line) => {
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver said {line:?}: {e}"))
            }
            Err(_) => panic!(
                "no answer from the Python driver; stderr:\n{}",
                self.stderr.lock().unwrap()
            ),
        }
    }

    fn connect(&mut self, url: &str) -> Value {
        self.send(json!({"cmd": "connect", "url": url}));
        self.next()
    }

    /// `n` messages' events (texts, then a timeout or close if one came first).
    fn recv(&mut self, n: usize) -> Vec<Value> {
        self.send(json!({"cmd": "recv", "n": n}));
        let mut got = Vec::new();
        while got.len() < n {
            let v = self.next();
            let done = v["event"] != "text" && v["event"] != "binary";
            got.push(v);
            if done {
                break;
            }
        }
        got
    }

    /// The messages of `n` text frames, each an entry's JSON.
    fn messages(&mut self, n: usize) -> Vec<String> {
        self.recv(n)
            .into_iter()
            .map(|v| {
                assert_eq!(v["event"], "text", "{v}");
                let entry: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
                entry["message"].as_str().unwrap().to_string()
            })
            .collect()
    }
}

impl Drop for PyWs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ws_python_one_text_message_per_entry_with_query_filters_like_sse() {
    let server = Server::start(&one_stream(HTTP));
    let port = server.http_port("app");
    let query = "levels=ERROR,WARN&filter=timeout&source=app*.log";
    let mut py = PyWs::start(&server.dir);
    let refused = py.connect(&format!("ws://127.0.0.1:{port}/stream?filter=a("));
    assert_eq!(refused["event"], "refused", "{refused}");
    assert_eq!(refused["status"], 400);
    let body: Value = serde_json::from_str(refused["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["parameter"], "filter");

    let open = py.connect(&format!("ws://127.0.0.1:{port}/stream?{query}"));
    assert_eq!(open, json!({"event": "open", "status": 101}));
    let mut sse = SseClient::connect(port, &format!("/stream?{query}"), &[]);
    sse.skip_connected();
    append(
        &server.path("app.log"),
        "[ERROR] db timeout\n[INFO] timeout\n[WARN] slow\n[WARN] upstream timeout \"quoted\"\n",
    );
    append(&server.path("db.log"), "[ERROR] timeout in db\n");
    append(&server.path("app.log"), "[ERROR] timeout END\n");
    let got = py.recv(3);
    for v in &got {
        let data = sse.next_event().data.expect("data");
        assert_eq!(v, &json!({"event": "text", "data": data}));
    }
    let messages: Vec<String> = got
        .iter()
        .map(|v| {
            let e: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
            e["message"].as_str().unwrap().to_string()
        })
        .collect();
    assert_same_seq(
        "python websockets",
        &messages,
        &[
            "[ERROR] db timeout",
            "[WARN] upstream timeout \"quoted\"",
            "[ERROR] timeout END",
        ],
    );
}

#[test]
fn ws_python_resume_with_last_event_id_in_the_query() {
    let server = Server::start(&one_stream(HTTP));
    let port = server.http_port("app");
    let mut py = PyWs::start(&server.dir);
    py.connect(&format!("ws://127.0.0.1:{port}/stream?filter=keep"));
    append(&server.path("app.log"), "keep 1\ndrop 2\nkeep 3\n");
    assert_same_seq("first", &py.messages(2), &["keep 1", "keep 3"]);
    // WebSocket frames carry no id: the last one is the stream's latest, read from
    // /status (no line was written since).
    let last = server.next_id("app") - 1;
    // A clean close from the client: the server echoes its code.
    py.send(json!({"cmd": "close", "code": 1000}));
    assert_eq!(
        py.next(),
        json!({"event": "closed", "code": 1000, "reason": ""})
    );
    server.wait_status("app", "no client", |s| s["server"]["active_clients"] == 0);
    let want = last + 10;
    let missed: String = (4..14)
        .map(|i| format!("{} {i}\n", if i % 2 == 0 { "keep" } else { "drop" }))
        .collect();
    append(&server.path("app.log"), &missed);
    server.wait_status("app", "ten more", |s| {
        s["delivery"]["next_sequence"] == want + 1
    });

    py.connect(&format!(
        "ws://127.0.0.1:{port}/stream?filter=keep&last_event_id={last}"
    ));
    assert_same_seq(
        "resumed",
        &py.messages(5),
        &["keep 4", "keep 6", "keep 8", "keep 10", "keep 12"],
    );
    append(&server.path("app.log"), "drop 14\nkeep 15\n");
    assert_same_seq("live", &py.messages(1), &["keep 15"]);
}

#[test]
fn ws_python_client_pings_are_answered_and_server_heartbeats_are_pings() {
    let server = Server::start(&one_stream(&http_with_heartbeat()));
    let port = server.http_port("app");
    let mut py = PyWs::start(&server.dir);
    py.connect(&format!("ws://127.0.0.1:{port}/stream"));
    py.send(json!({"cmd": "ping", "data": "hello"}));
    assert_eq!(py.next(), json!({"event": "pong", "data": "hello"}));
    py.send(json!({"cmd": "pings", "n": 2, "timeout": 5}));
    let pings = py.next();
    let pings = pings["data"].as_array().expect("pings");
    assert!(pings.len() >= 2, "{pings:?}");
    for p in pings {
        let v: Value = serde_json::from_str(p.as_str().unwrap()).expect("JSON heartbeat");
        assert_eq!(v["type"], "heartbeat", "{v}");
        assert!(is_rfc3339_utc(v["timestamp"].as_str().unwrap(), 0), "{v}");
    }
    // Heartbeats were no messages: the next message is the next entry.
    append(&server.path("app.log"), "after heartbeats\n");
    assert_same_seq("after pings", &py.messages(1), &["after heartbeats"]);
}

#[test]
fn ws_python_sees_close_1001_after_every_owed_entry_on_shutdown() {
    let mut server = Server::start(&one_stream(HTTP));
    let port = server.http_port("app");
    let mut py = PyWs::start(&server.dir);
    py.connect(&format!("ws://127.0.0.1:{port}/stream"));
    server.wait_status("app", "one client", |s| s["server"]["active_clients"] == 1);
    let first = server.next_id("app");
    let text = numbered("line", 0..200);
    append(&server.path("app.log"), &text);
    server.wait_status("app", "200 entries", |s| {
        s["delivery"]["next_sequence"] == first + 200
    });
    server.signal(libc::SIGTERM);
    let got = py.recv(201);
    let texts: Vec<String> = got[..200]
        .iter()
        .map(|v| {
            let e: Value = serde_json::from_str(v["data"].as_str().expect("text")).unwrap();
            e["message"].as_str().unwrap().to_string()
        })
        .collect();
    let want: Vec<String> = (0..200).map(|i| format!("line {i:05}")).collect();
    assert_same_seq("before the close", &texts, &want);
    assert_eq!(
        got[200],
        json!({"event": "closed", "code": 1001, "reason": "server shutdown"})
    );
    assert_eq!(server.wait_exit(TIMEOUT).and_then(|s| s.code()), Some(0));
}

#[cfg(feature = "tls")]
#[test]
fn ws_python_over_tls_is_wss() {
    let dir = TempDir::new();
    let pki = Pki::new(dir.path());
    let toml = one_stream(&format!(
        "{HTTP}[streams.httpserver.tls]\nenabled = true\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki.server_cert.display(),
        pki.server_key.display()
    ));
    let server = Server::start_in(dir, &toml, &[]);
    let port = server.http_port("app");
    let mut py = PyWs::start(&server.dir);
    py.send(json!({
        "cmd": "connect",
        "url": format!("wss://localhost:{port}/stream?levels=ERROR"),
        "cafile": pki.ca.display().to_string(),
    }));
    assert_eq!(py.next(), json!({"event": "open", "status": 101}));
    append(&server.path("app.log"), "[INFO] no\n[ERROR] over tls\n");
    assert_same_seq("wss", &py.messages(1), &["[ERROR] over tls"]);
}

#[test]
fn ws_frames_carry_the_servers_format() {
    let server = Server::start(&one_stream(&format!(
        "{HTTP}format = \"txt\"\ntxt_template = \"{{level}}|{{message}}\"\n"
    )));
    let mut ws = WsClient::connect(server.http_port("app"), "/stream?levels=warn");
    append(
        &server.path("app.log"),
        "[INFO] a\n[WARN] b\r\n[WARN] c\rd\n",
    );
    assert_eq!(ws.next_text(), "WARN|[WARN] b");
    assert_eq!(ws.next_text(), "WARN|[WARN] c\\rd");
}
