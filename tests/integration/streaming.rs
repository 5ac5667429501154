//! Tailing and delivery: what lines become, who gets them, in which order.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::*;

/// The message of an SSE or TCP entry.
fn message(v: &Value) -> String {
    v["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {v}"))
        .to_string()
}

#[test]
fn fan_out_20000_lines_reach_3_sse_and_2_tcp_clients_in_order() {
    const N: usize = 20_000;
    let server = Server::start(&one_stream(&format!(
        "{HTTP}buffer_size = 50000\n{TCP}buffer_size = 50000\n"
    )));
    let log = server.path("app.log");
    append(&log, "");
    let sse: Vec<SseClient> = (0..3)
        .map(|_| SseClient::connect(server.http_port("app"), "/stream", &[]))
        .collect();
    let tcp: Vec<TcpLineClient> = (0..2)
        .map(|_| TcpLineClient::connect(server.tcp_port("app")))
        .collect();
    server.wait_status("app", "3 SSE and 2 TCP clients", |s| {
        s["delivery"]["sse_clients"] == 3 && s["delivery"]["tcp_clients"] == 2
    });

    let sse_readers: Vec<_> = sse
        .into_iter()
        .map(|mut c| {
            std::thread::spawn(move || {
                c.skip_connected();
                let mut got = Vec::with_capacity(N);
                while got.len() < N {
                    let (id, v) = c.next_entry();
                    got.push((id, message(&v)));
                }
                got
            })
        })
        .collect();
    let tcp_readers: Vec<_> = tcp
        .into_iter()
        .map(|mut c| {
            std::thread::spawn(move || (0..N).map(|_| c.next_message()).collect::<Vec<_>>())
        })
        .collect();

    let first = server.next_id("app");
    let lines: Vec<String> = (0..N).map(|i| format!("fan-out line {i:05} ok")).collect();
    for batch in lines.chunks(500) {
        let mut text = batch.join("\n");
        text.push('\n');
        append(&log, &text);
    }

    for (k, r) in sse_readers.into_iter().enumerate() {
        let got = r.join().expect("SSE reader");
        let ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
        let want_ids: Vec<u64> = (first..first + N as u64).collect();
        assert_same_seq(&format!("SSE client {k} ids"), &ids, &want_ids);
        let msgs: Vec<String> = got.into_iter().map(|(_, m)| m).collect();
        assert_same_seq(&format!("SSE client {k} messages"), &msgs, &lines);
    }
    for (k, r) in tcp_readers.into_iter().enumerate() {
        let got = r.join().expect("TCP reader");
        assert_same_seq(&format!("TCP client {k} messages"), &got, &lines);
    }
    let status = server.status("app");
    assert_eq!(status["monitor"]["total_entries"], N as u64);
    assert_eq!(status["delivery"]["dropped_entries"], 0);
}

#[test]
fn sse_response_head_and_connected_event_are_exact() {
    let server = Server::start(&one_stream(HTTP));
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    assert_eq!((c.head.status, c.head.reason.as_str()), (200, "OK"));
    for (name, value) in [
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-cache"),
        ("Connection", "keep-alive"),
        ("Access-Control-Allow-Origin", "*"),
        ("X-Accel-Buffering", "no"),
    ] {
        assert_eq!(c.head.header(name), Some(value), "header {name}");
    }
    // HTTP/1.1: chunked, so clients that hold back an unframed body (urllib3) do not.
    assert_eq!(c.head.header("Content-Length"), None);
    assert_eq!(c.head.header("Transfer-Encoding"), Some("chunked"));
    let first = c.next_block_within(TIMEOUT).expect("connected event");
    assert_eq!(
        first,
        "retry: 1000\nevent: connected\ndata: {\"client_id\":\"1\",\"stream\":\"app\",\
         \"stream_path\":\"/stream\",\"status_path\":\"/status\",\"buffer_size\":1000}\n\n"
    );
    let first = server.next_id("app");
    append(&server.path("app.log"), "hello\n");
    let (id, v) = c.next_entry();
    assert_eq!((id, message(&v)), (first, "hello".to_string()));
}

#[test]
fn existing_content_is_not_replayed_and_a_half_written_line_arrives_whole() {
    let dir = TempDir::new();
    append(&dir.join("app.log"), "old 1\nold 2\nhalf-wri");
    let server = Server::start_in(dir, &one_stream(HTTP), &[]);
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    let first = server.next_id("app");
    append(&server.path("app.log"), "tten\nnew 1\n");
    let (id, v) = c.next_entry();
    assert_eq!((id, message(&v)), (first, "half-written".to_string()));
    assert_eq!(c.next_message(), "new 1");
    let status = server.status("app");
    assert_eq!(status["monitor"]["total_entries"], 2);
}

#[test]
fn new_file_in_watched_directory_is_read_from_its_start() {
    let server = Server::start(&one_stream(HTTP));
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    // Not matching `*.log`: never tailed.
    append(&server.path("notes.txt"), "ignored\n");
    append(&server.path("fresh.log"), "first\nsecond\n");
    for want in ["first", "second"] {
        let (_, v) = c.next_entry();
        assert_eq!(message(&v), want);
        assert_eq!(v["source"], "fresh.log");
    }
    append(&server.path("fresh.log"), "third\n");
    assert_eq!(c.next_message(), "third");
    let status = server.status("app");
    let paths: Vec<&str> = status["monitor"]["watchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    let fresh = server.path("fresh.log").display().to_string();
    assert_eq!(paths, [fresh.as_str()]);
    assert_eq!(status["monitor"]["total_entries"], 3);
}

#[test]
fn watched_file_created_later_is_read_from_its_start() {
    let toml = format!(
        "[[streams]]\nname = \"app\"\n[streams.monitor]\ncheck_interval_ms = 20\n\
         targets = [{{ path = \"$DIR/later/app.log\", is_file = true }}]\n{HTTP}"
    );
    let server = Server::start(&toml);
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    // Neither the directory nor the file exists yet: both are waited for.
    std::fs::create_dir(server.path("later")).unwrap();
    append(&server.path("later/app.log"), "one\ntwo\n");
    assert_eq!(c.next_message(), "one");
    assert_eq!(c.next_message(), "two");
}

#[test]
fn partial_line_is_held_until_its_newline() {
    let server = Server::start(&one_stream(HTTP));
    let log = server.path("app.log");
    append(&log, "");
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    append(&log, "hello wo");
    // Once logwisp has read the 8 bytes, it must still hold them as an unfinished line.
    let s = server.wait_status("app", "the partial line read", |s| {
        s["monitor"]["watchers"][0]["position"] == 8
    });
    assert_eq!(s["monitor"]["total_entries"], 0, "{s:#}");
    let first = s["delivery"]["next_sequence"].as_u64().unwrap();
    append(&log, "rld\nnext\n");
    let (id, v) = c.next_entry();
    assert_eq!((id, message(&v)), (first, "hello world".to_string()));
    assert_eq!(c.next_message(), "next");
    let s = server.status("app");
    assert_eq!(s["monitor"]["total_entries"], 2);
}

#[test]
fn partial_line_is_delivered_whole_with_its_text() {
    let server = Server::start(&one_stream(HTTP));
    let log = server.path("app.log");
    append(&log, "");
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    for piece in ["par", "tial ", "li"] {
        append(&log, piece);
    }
    server.wait_status("app", "the pieces read", |s| {
        s["monitor"]["watchers"][0]["position"] == 10
    });
    append(&log, "ne\n");
    assert_eq!(c.next_message(), "partial line");
}

#[test]
fn crlf_endings_are_stripped_and_empty_lines_skipped() {
    let server = Server::start(&one_stream(HTTP));
    let log = server.path("app.log");
    append(&log, "");
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    append(&log, "a\r\n\r\n\n  \nb\r\nend\n");
    let got: Vec<String> = (0..4).map(|_| c.next_message()).collect();
    // A line of spaces is not empty: it is delivered as it is.
    assert_eq!(got, ["a", "  ", "b", "end"]);
}

#[test]
fn line_over_max_line_bytes_is_cut_and_the_next_line_still_arrives() {
    const MAX: usize = 1024 * 1024; // the default max_line_bytes
    let server = Server::start(&one_stream(HTTP));
    let log = server.path("app.log");
    append(&log, "");
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    let mut huge = "x".repeat(3 * MAX);
    huge.push_str("\nafter the long one\n");
    append(&log, &huge);
    let cut = c.next_message();
    assert_eq!(cut.len(), MAX);
    assert!(cut.bytes().all(|b| b == b'x'));
    assert_eq!(c.next_message(), "after the long one");
    let s = server.status("app");
    assert_eq!(s["monitor"]["truncated_lines"], 1);
    assert_eq!(s["monitor"]["total_entries"], 2);
}

#[test]
fn configured_max_line_bytes_cuts_at_that_length() {
    let toml = one_stream(HTTP).replace(
        "check_interval_ms = 20\n",
        "check_interval_ms = 20\nmax_line_bytes = 100\n",
    );
    let server = Server::start(&toml);
    let log = server.path("app.log");
    append(&log, "");
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    append(
        &log,
        &format!("{}\nshort\n{}\n", "a".repeat(250), "b".repeat(100)),
    );
    assert_eq!(c.next_message(), "a".repeat(100));
    assert_eq!(c.next_message(), "short");
    assert_eq!(
        c.next_message(),
        "b".repeat(100),
        "exactly the limit is not cut"
    );
    assert_eq!(server.status("app")["monitor"]["truncated_lines"], 1);
}

#[test]
fn plain_lines_get_levels_from_keywords_and_the_exact_entry_shape() {
    let cases = [
        ("[ERROR] disk full", "ERROR"),
        ("ERROR: disk full", "ERROR"),
        ("request failed ERROR now", "ERROR"),
        ("[FATAL] gone", "ERROR"),
        ("[warn] low memory", "WARN"),
        ("WARNING: low memory", "WARN"),
        ("[INFO] started", "INFO"),
        ("debug: x=1", "DEBUG"),
        ("just a line", ""),
        ("quote \" and \\ and \t tab", ""),
    ];
    let server = Server::start(&one_stream(HTTP));
    let log = server.path("app.log");
    append(&log, "");
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    let text: String = cases.iter().map(|(l, _)| format!("{l}\n")).collect();
    append(&log, &text);
    for (line, level) in cases {
        let e = c.next_event();
        let v = e.json();
        let time = v["time"].as_str().unwrap();
        assert!(is_rfc3339_utc(time, 6), "time {time}");
        let want = format!(
            "{{\"time\":\"{time}\",\"source\":\"app.log\",\"level\":\"{level}\",\"message\":{}}}",
            serde_json::to_string(line).unwrap()
        );
        assert_eq!(e.data.as_deref(), Some(want.as_str()), "line {line:?}");
    }
}

#[test]
fn json_lines_are_parsed_into_time_level_message_and_fields() {
    let server = Server::start(&one_stream(HTTP));
    let log = server.path("app.log");
    append(&log, "");
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    append(
        &log,
        concat!(
            r#"{"time":"2024-01-01T12:00:00.123456Z","level":"ERROR","msg":"Connection timeout","user_id":"12345","request_id":"abc-def-ghi"}"#,
            "\n",
            r#"{"timestamp":"2024-01-01T13:00:00.5+01:00","lvl":"INFO","message":"offset"}"#,
            "\n",
            r#"{"ts":"2024-02-03T04:05:06Z","severity":"warn","msg":"merged","c":true,"fields":{"a":1,"b":[1,2]}}"#,
            "\n",
            r#"{"msg":"no time"}"#,
            "\n",
            r#"{"broken": "#,
            "\n",
        ),
    );
    let e = c.next_event();
    assert_eq!(
        e.data.as_deref(),
        Some(concat!(
            r#"{"time":"2024-01-01T12:00:00.123456Z","source":"app.log","level":"ERROR","#,
            r#""message":"Connection timeout","fields":{"user_id":"12345","request_id":"abc-def-ghi"}}"#
        ))
    );
    let e = c.next_event();
    assert_eq!(
        e.data.as_deref(),
        Some(
            r#"{"time":"2024-01-01T12:00:00.500000Z","source":"app.log","level":"INFO","message":"offset"}"#
        ),
        "an offset time is converted to UTC"
    );
    let v = c.next_entry().1;
    assert_eq!(v["time"], "2024-02-03T04:05:06.000000Z");
    assert_eq!(
        (v["level"].as_str(), v["message"].as_str()),
        (Some("warn"), Some("merged"))
    );
    assert_eq!(
        v["fields"],
        serde_json::json!({"c": true, "a": 1, "b": [1, 2]})
    );
    let e = c.next_event();
    let v = e.json();
    let time = v["time"].as_str().unwrap();
    assert!(is_rfc3339_utc(time, 6), "time {time}");
    assert_eq!(
        e.data.unwrap(),
        format!(r#"{{"time":"{time}","source":"app.log","level":"","message":"no time"}}"#),
        "no fields key when there are none"
    );
    let v = c.next_entry().1;
    assert_eq!(
        (v["level"].as_str(), message(&v)),
        (Some(""), r#"{"broken": "#.to_string())
    );
    assert!(v.get("fields").is_none());
}

#[test]
fn last_event_id_resumes_from_the_buffer_or_from_disk_without_loss() {
    let server = Server::start(&one_stream(&format!("{HTTP}buffer_size = 5\n")));
    let port = server.http_port("app");
    let log = server.path("app.log");
    append(&log, "");
    let mut first = SseClient::connect(port, "/stream", &[]);
    first.skip_connected();
    let base = server.next_id("app");
    let id_of = |i: u64| base + i - 1;
    append(&log, &numbered("entry", 1..9));
    for i in 1..9u64 {
        let (id, v) = first.next_entry();
        assert_eq!((id, message(&v)), (id_of(i), format!("entry {i:05}")));
    }
    drop(first);

    // Entries 6..8 are still in the buffer: replayed, then live entries continue.
    let last = format!("Last-Event-ID: {}", id_of(5));
    let mut again = SseClient::connect(port, "/stream", &[&last]);
    again.skip_connected();
    for i in 6..9u64 {
        assert_eq!(again.next_entry().0, id_of(i));
    }
    append(&log, &numbered("entry", 9..10));
    let (id, v) = again.next_entry();
    assert_eq!((id, message(&v)), (id_of(9), "entry 00009".to_string()));

    // The buffer keeps 5 (5..9); entries 2..4 are read again from the file, whole.
    let last = format!("Last-Event-ID: {}", id_of(1));
    let mut late = SseClient::connect(port, "/stream", &[&last]);
    late.skip_connected();
    for i in 2..10u64 {
        let (id, v) = late.next_entry();
        assert_eq!((id, message(&v)), (id_of(i), format!("entry {i:05}")));
    }
    let s = server.status("app");
    assert_eq!(s["monitor"]["dropped_entries"], 0);
    assert_eq!(s["delivery"]["dropped_entries"], 0);
}

#[test]
fn stalled_client_does_not_slow_a_healthy_one_and_catches_up_from_disk() {
    const N: usize = 8_000;
    const BATCH: usize = 25;
    let server = Server::start(&one_stream(&format!("{HTTP}buffer_size = 100\n")));
    let port = server.http_port("app");
    let log = server.path("app.log");
    append(&log, "");
    // Asks for the stream with a tiny receive window, then never reads.
    let mut stalled = connect_tcp(None, Some(4096), port);
    stalled
        .write_all(SseClient::request("/stream", &[]).as_bytes())
        .unwrap();
    let mut healthy = SseClient::connect(port, "/stream", &[]);
    server.wait_status("app", "2 SSE clients", |s| {
        s["delivery"]["sse_clients"] == 2
    });
    let first = server.next_id("app");
    let pad = "p".repeat(980);
    let line = |i: usize| format!("stall {i:05} {pad}");

    let received = Arc::new(AtomicUsize::new(0));
    let progress = Arc::clone(&received);
    let reader = std::thread::spawn(move || {
        healthy.skip_connected();
        let mut got = Vec::with_capacity(N);
        while got.len() < N {
            // Any `event: dropped` here fails the test: the healthy client lost nothing.
            got.push(healthy.next_entry());
            progress.store(got.len(), Ordering::Release);
        }
        got
    });
    let started = Instant::now();
    for from in (0..N).step_by(BATCH) {
        // Paced by the healthy client only: a stuck reactor would stop it and time out here.
        let keeping_up = wait_until(TIMEOUT, || received.load(Ordering::Acquire) + BATCH >= from);
        assert!(keeping_up, "healthy client stuck at {from} lines written");
        let text: String = (from..from + BATCH).map(|i| line(i) + "\n").collect();
        append(&log, &text);
    }
    let got = reader.join().expect("healthy reader");
    let elapsed = started.elapsed();
    for (k, (id, v)) in got.iter().enumerate() {
        assert_eq!(*id, first + k as u64);
        assert_eq!(message(v), line(k));
    }
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    let status = server.status("app");
    assert_eq!(
        status["delivery"]["catching_up_clients"], 1,
        "the stalled client fell behind the buffer: {status:#}"
    );

    // Now the stalled client reads: every entry, in order, served from the file.
    let mut late = SseClient::read_head(stalled).unwrap_or_else(|r| panic!("{}", r.text()));
    late.skip_connected();
    for k in 0..N {
        let e = late.next_event();
        assert!(e.is_entry(), "unexpected event {:?}", e.raw);
        let id: u64 = e.id.as_deref().unwrap().parse().unwrap();
        assert_eq!(id, first + k as u64);
        assert_eq!(message(&e.json()), line(k));
    }
    let status = server.status("app");
    assert_eq!(status["monitor"]["dropped_entries"], 0);
    assert_eq!(status["delivery"]["dropped_entries"], 0);
}

/// `heartbeat <ts> clients=<n> uptime=<s>s` → (ts, n, s).
fn parse_comment_heartbeat(text: &str) -> (String, u64, u64) {
    let rest = text
        .strip_prefix("heartbeat ")
        .unwrap_or_else(|| panic!("{text:?}"));
    let parts: Vec<&str> = rest.split(' ').collect();
    assert_eq!(parts.len(), 3, "{text:?}");
    let clients = parts[1].strip_prefix("clients=").unwrap().parse().unwrap();
    let uptime = parts[2]
        .strip_prefix("uptime=")
        .and_then(|u| u.strip_suffix('s'))
        .unwrap()
        .parse()
        .unwrap();
    (parts[0].to_string(), clients, uptime)
}

fn heartbeat_config(table: &str, keys: &str) -> String {
    one_stream(&format!(
        "{table}[streams.{}.heartbeat]\nenabled = true\ninterval_seconds = 1\n{keys}",
        if table == HTTP {
            "httpserver"
        } else {
            "tcpserver"
        }
    ))
}

/// Without a heartbeat table, SSE streams get comment heartbeats every 30 s (invisible to
/// EventSource; they keep proxies from cutting idle streams) and TCP clients get none.
#[test]
fn heartbeats_default_to_sse_comments_every_30s_and_tcp_off() {
    let server = Server::start(&one_stream(&format!("{HTTP}{TCP}")));
    let s = server.status("app");
    assert_eq!(
        s["server"]["heartbeat"],
        json!({
            "enabled": true,
            "interval": 30,
            "format": "comment",
            "include_timestamp": true,
            "include_stats": false,
        })
    );
    assert_eq!(s["tcp_server"]["heartbeat"], json!({ "enabled": false }));
    // `enabled = false` still turns them off.
    let off = Server::start(&one_stream(&format!(
        "{HTTP}[streams.httpserver.heartbeat]\nenabled = false\n"
    )));
    assert_eq!(
        off.status("app")["server"]["heartbeat"],
        json!({ "enabled": false })
    );
}

#[test]
fn sse_comment_heartbeat_has_timestamp_and_stats_and_no_id() {
    let started = Instant::now();
    let server = Server::start(&heartbeat_config(
        HTTP,
        "format = \"comment\"\ninclude_timestamp = true\ninclude_stats = true\n",
    ));
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    for _ in 0..2 {
        let hb = c
            .next_event_within(Duration::from_secs(3))
            .expect("heartbeat");
        assert_eq!(hb.comments.len(), 1, "{:?}", hb.raw);
        assert_eq!(
            (hb.id.as_ref(), hb.event.as_ref(), hb.data.as_ref()),
            (None, None, None)
        );
        let (ts, clients, uptime) = parse_comment_heartbeat(&hb.comments[0]);
        assert!(is_rfc3339_utc(&ts, 0), "{ts}");
        assert_eq!(clients, 1);
        assert!(uptime <= started.elapsed().as_secs() + 1, "uptime {uptime}");
        assert_eq!(
            hb.raw,
            format!(": heartbeat {ts} clients=1 uptime={uptime}s\n\n")
        );
    }
    // Heartbeats did not use up sequence numbers.
    let first = server.next_id("app").to_string();
    append(&server.path("app.log"), "after heartbeats\n");
    loop {
        let e = c.next_event();
        if e.comments.is_empty() {
            assert_eq!(e.id.as_deref(), Some(first.as_str()), "{:?}", e.raw);
            break;
        }
    }
}

#[test]
fn sse_comment_heartbeat_without_timestamp_or_stats_is_bare() {
    let server = Server::start(&heartbeat_config(
        HTTP,
        "include_timestamp = false\ninclude_stats = false\n",
    ));
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    let hb = c
        .next_block_within(Duration::from_secs(3))
        .expect("heartbeat");
    assert_eq!(hb, ": heartbeat\n\n");
}

#[test]
fn sse_json_heartbeat_is_a_heartbeat_event_without_id() {
    let server = Server::start(&heartbeat_config(
        HTTP,
        "format = \"json\"\ninclude_timestamp = true\ninclude_stats = true\n",
    ));
    let _first = SseClient::connect(server.http_port("app"), "/stream", &[]);
    // Any heartbeat the second client gets was written while both were connected.
    let mut c = SseClient::connect(server.http_port("app"), "/stream", &[]);
    c.skip_connected();
    let hb = c
        .next_event_within(Duration::from_secs(3))
        .expect("heartbeat");
    assert_eq!(hb.event.as_deref(), Some("heartbeat"), "{:?}", hb.raw);
    assert_eq!(hb.id, None);
    let v = hb.json();
    let ts = v["timestamp"].as_str().unwrap();
    assert!(is_rfc3339_utc(ts, 0), "{ts}");
    let uptime = v["uptime_seconds"].as_u64().unwrap();
    assert_eq!(
        hb.raw,
        format!(
            "event: heartbeat\ndata: {{\"type\":\"heartbeat\",\"timestamp\":\"{ts}\",\
             \"active_clients\":2,\"uptime_seconds\":{uptime}}}\n\n"
        )
    );
}

#[test]
fn tcp_heartbeat_is_a_json_line() {
    let toml = heartbeat_config(TCP, "include_timestamp = true\ninclude_stats = true\n");
    let server = Server::start(&toml);
    let mut c = TcpLineClient::connect(server.tcp_port("app"));
    let line = c
        .next_line_within(Duration::from_secs(3))
        .expect("heartbeat");
    let v: Value = serde_json::from_str(&line).unwrap();
    let ts = v["timestamp"].as_str().unwrap();
    assert!(is_rfc3339_utc(ts, 0), "{ts}");
    let uptime = v["uptime_seconds"].as_u64().unwrap();
    assert_eq!(
        line,
        format!(
            "{{\"type\":\"heartbeat\",\"timestamp\":\"{ts}\",\"active_clients\":1,\"uptime_seconds\":{uptime}}}"
        )
    );
    // Heartbeats keep coming, and entries are plain lines between them.
    append(&server.path("app.log"), "between beats\n");
    let mut seen_entry = false;
    let mut beats = 1;
    while !(seen_entry && beats >= 2) {
        let v = c.next_json();
        if v["type"] == "heartbeat" {
            beats += 1;
        } else {
            assert_eq!(message(&v), "between beats");
            assert!(!seen_entry, "entry delivered twice");
            seen_entry = true;
        }
    }
}

/// A client that shuts down its sending side (`nc -N`, `nc host port < /dev/null`) keeps
/// receiving, on SSE and on TCP.
#[test]
fn half_closed_clients_keep_receiving() {
    let server = Server::start(&one_stream(&format!("{HTTP}{TCP}")));
    let log = server.path("app.log");
    append(&log, "");
    let mut sse_sock = connect_tcp(None, None, server.http_port("app"));
    sse_sock
        .write_all(SseClient::request("/stream", &[]).as_bytes())
        .unwrap();
    sse_sock.shutdown(std::net::Shutdown::Write).unwrap();
    let mut sse = SseClient::read_head(sse_sock).unwrap_or_else(|r| panic!("{}", r.text()));
    sse.skip_connected();
    let tcp_sock = connect_tcp(None, None, server.tcp_port("app"));
    tcp_sock.shutdown(std::net::Shutdown::Write).unwrap();
    let mut tcp = TcpLineClient::from_stream(tcp_sock);
    server.wait_status("app", "1 SSE and 1 TCP client", |s| {
        s["delivery"]["sse_clients"] == 1 && s["delivery"]["tcp_clients"] == 1
    });
    append(&log, "after half-close\n");
    assert_eq!(sse.next_message(), "after half-close");
    // Nothing but the entry reaches the TCP reader: the liveness probe is out of band.
    let line = tcp.next_line();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(v["message"], "after half-close");
    append(&log, "second\n");
    assert_eq!(sse.next_message(), "second");
    assert_eq!(tcp.next_message(), "second");
}
