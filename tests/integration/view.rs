//! The view for people (SPEC §14, §15): client filters in the stream URL, stream filters
//! from the config, output formats, and the browser page as served. WebSocket is in
//! `websocket.rs`; the page in a real browser in `browser.rs`.

use std::collections::HashMap;

use serde_json::Value;

use crate::util::*;

/// Reads entries from `c` until one carries `last` as its message; returns every
/// `(id, message)` up to and including it.
fn entries_until(c: &mut SseClient, last: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    loop {
        let (id, v) = c.next_entry();
        let m = v["message"].as_str().expect("message").to_string();
        let done = m == last;
        out.push((id, m));
        if done {
            return out;
        }
    }
}

fn messages(entries: &[(u64, String)]) -> Vec<&str> {
    entries.iter().map(|(_, m)| m.as_str()).collect()
}

/// Asserts that each of `some`'s entries carries the id the unfiltered client saw for the
/// same message (a filter picks entries; it does not renumber them).
fn assert_ids_of(what: &str, some: &[(u64, String)], all: &[(u64, String)]) {
    let ids: HashMap<&str, u64> = all.iter().map(|(id, m)| (m.as_str(), *id)).collect();
    for (id, m) in some {
        assert_eq!(Some(id), ids.get(m.as_str()), "{what}: id of {m:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Client filters (query)

#[test]
fn view_query_levels_filter_and_source_select_exactly_the_matching_entries() {
    let server = Server::start(&one_stream(HTTP));
    let port = server.http_port("app");
    let mut all = SseClient::subscribe_to(port, "/stream", &[]);
    // As curl sends it: the comma and the star unencoded.
    let mut some = SseClient::subscribe_to(
        port,
        "/stream?levels=ERROR,WARN&filter=timeout&source=app*.log",
        &[],
    );

    // Each file's lines are written once the previous file's were read, so the order
    // across files is known.
    append(
        &server.path("app.log"),
        "[ERROR] db timeout after 5s\n\
         [INFO] request timeout, retried\n\
         [WARN] upstream timeout\n\
         [ERROR] disk full\n\
         [ERROR] TIMEOUT in capitals\n\
         a timeout without a level\n\
         {\"level\":\"warn\",\"msg\":\"cache timeout\",\"k\":1}\n",
    );
    let mut seen = entries_until(&mut all, "cache timeout");
    append(&server.path("app-2.log"), "[ERROR] timeout in app-2\n");
    seen.extend(entries_until(&mut all, "[ERROR] timeout in app-2"));
    append(&server.path("db.log"), "[ERROR] timeout in db\n");
    seen.extend(entries_until(&mut all, "[ERROR] timeout in db"));
    append(&server.path("backup-app.log"), "[WARN] timeout in backup\n");
    seen.extend(entries_until(&mut all, "[WARN] timeout in backup"));
    append(&server.path("app.log"), "[ERROR] timeout END\n");
    seen.extend(entries_until(&mut all, "[ERROR] timeout END"));
    assert_eq!(seen.len(), 11, "{seen:?}");

    let got = entries_until(&mut some, "[ERROR] timeout END");
    assert_same_seq(
        "filtered client",
        &messages(&got),
        &[
            "[ERROR] db timeout after 5s",
            "[WARN] upstream timeout",
            "cache timeout",
            "[ERROR] timeout in app-2",
            "[ERROR] timeout END",
        ],
    );
    assert_ids_of("filtered client", &got, &seen);
}

#[test]
fn view_query_exclude_and_levels_none() {
    let server = Server::start(&one_stream(HTTP));
    let port = server.http_port("app");
    let mut all = SseClient::subscribe_to(port, "/stream", &[]);
    // `none` selects entries without a level; names are case-insensitive; `+` is a
    // space and %XX a byte, as forms send them.
    let mut plain =
        SseClient::subscribe_to(port, "/stream?levels=none,info&exclude=health%7Cready", &[]);
    let mut spaced = SseClient::subscribe_to(port, "/stream?filter=disk+full", &[]);
    append(
        &server.path("app.log"),
        "no level here\n\
         [INFO] started\n\
         GET /health 200\n\
         [INFO] GET /ready 200\n\
         [ERROR] disk full\n\
         [WARN] disk  full (two spaces)\n\
         disk full, no level\n",
    );
    let seen = entries_until(&mut all, "disk full, no level");
    let got = entries_until(&mut plain, "disk full, no level");
    assert_same_seq(
        "levels=none,info&exclude=health|ready",
        &messages(&got),
        &["no level here", "[INFO] started", "disk full, no level"],
    );
    assert_ids_of("levels=none", &got, &seen);
    let got = entries_until(&mut spaced, "disk full, no level");
    assert_same_seq(
        "filter=disk+full",
        &messages(&got),
        &["[ERROR] disk full", "disk full, no level"],
    );
}

/// The answer to a refused stream request: 400, JSON naming the parameter, then a close.
fn refused(port: u16, target: &str) -> Value {
    let mut c = HttpConn::connect(port);
    c.send(format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes());
    let r = c.read_response();
    assert_eq!(r.status, 400, "{target}: {}", r.text());
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json"),
        "{target}"
    );
    c.expect_closed();
    let v = r.json();
    assert_eq!(v["error"], "Bad Request", "{target}: {v}");
    let param = v["parameter"].as_str().expect("parameter");
    let message = v["message"].as_str().expect("message");
    assert!(
        message.starts_with(&format!("query parameter `{param}`: ")),
        "{target}: {message}"
    );
    v
}

#[test]
fn view_a_bad_regex_is_a_400_naming_the_parameter() {
    let server = Server::start(&one_stream(HTTP));
    let port = server.http_port("app");
    let v = refused(port, "/stream?filter=a(");
    assert_eq!(v["parameter"], "filter");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.starts_with("query parameter `filter`: `a(` is not a valid regex"),
        "{message}"
    );
    let v = refused(port, "/stream?levels=ERROR&exclude=%5Bz-a%5D");
    assert_eq!(v["parameter"], "exclude");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("query parameter `exclude`: `[z-a]` is not a valid regex"),
        "{v}"
    );
    // A pattern over 1 KiB, and one that compiles too big, are refused the same way.
    let long = "a".repeat(1025);
    let v = refused(port, &format!("/stream?filter={long}"));
    assert_eq!(v["parameter"], "filter");
    let v = refused(port, "/stream?filter=a%7B1000%7D%7B1000%7D");
    assert_eq!(v["parameter"], "filter");
    // Nothing of that reached the stream: no client was ever added.
    let status = server.status("app");
    assert_eq!(status["server"]["active_clients"], 0, "{status}");
}

#[test]
fn view_bad_levels_source_and_last_event_id_values_are_400s_naming_them() {
    let server = Server::start(&one_stream(HTTP));
    let port = server.http_port("app");
    // A control character, a name over 32 bytes, more than 32 names.
    let v = refused(port, "/stream?levels=ERROR,%07");
    assert_eq!(v["parameter"], "levels", "{v}");
    let v = refused(port, &format!("/stream?levels={}", "X".repeat(33)));
    assert_eq!(v["parameter"], "levels", "{v}");
    let many: Vec<String> = (0..33).map(|i| format!("L{i}")).collect();
    let v = refused(port, &format!("/stream?levels={}", many.join(",")));
    assert_eq!(v["parameter"], "levels", "{v}");
    assert_eq!(
        v["message"], "query parameter `levels`: more than 32 levels",
        "{v}"
    );
    let v = refused(port, "/stream?source=app%5B.log");
    assert_eq!(v["parameter"], "source", "{v}");
    let v = refused(port, "/stream?last_event_id=abc");
    assert_eq!(
        v["message"], "query parameter `last_event_id`: `abc` is not an event id",
        "{v}"
    );
    let v = refused(port, "/stream?filter=a&filter=b");
    assert_eq!(
        v["message"], "query parameter `filter`: given more than once",
        "{v}"
    );
    // Empty values are absent parameters, and unknown parameters are passed over.
    let mut ok = SseClient::subscribe_to(
        port,
        "/stream?levels=&filter=&source=&last_event_id=&token=xyz",
        &[],
    );
    append(&server.path("app.log"), "[DEBUG] anything\n");
    assert_eq!(ok.next_message(), "[DEBUG] anything");
}

#[test]
fn view_two_clients_with_different_filters_each_get_their_own_sequence() {
    let server = Server::start(&one_stream(&format!("{HTTP}{TCP}")));
    let port = server.http_port("app");
    let mut all = SseClient::subscribe_to(port, "/stream", &[]);
    let mut errors = SseClient::subscribe_to(port, "/stream?levels=ERROR", &[]);
    let mut db = SseClient::subscribe_to(port, "/stream?filter=db&exclude=slow", &[]);
    // The same filter spelt otherwise shares the first client's slot, and gets the same.
    let mut errors2 = SseClient::subscribe_to(port, "/stream?levels=error,Error", &[]);
    let mut tcp = TcpLineClient::connect(server.tcp_port("app"));
    server.wait_tcp_clients("app", 1);
    append(
        &server.path("app.log"),
        "[ERROR] db down\n\
         [INFO] db slow query\n\
         [INFO] db connected\n\
         [ERROR] cache slow\n\
         [WARN] db fast\n\
         [DEBUG] nothing\n\
         [ERROR] db END\n",
    );
    let seen = entries_until(&mut all, "[ERROR] db END");
    assert_eq!(seen.len(), 7);
    let want_errors = ["[ERROR] db down", "[ERROR] cache slow", "[ERROR] db END"];
    for (what, c) in [
        ("levels=ERROR", &mut errors),
        ("levels=error,Error", &mut errors2),
    ] {
        let got = entries_until(c, "[ERROR] db END");
        assert_same_seq(what, &messages(&got), &want_errors);
        assert_ids_of(what, &got, &seen);
    }
    let got = entries_until(&mut db, "[ERROR] db END");
    assert_same_seq(
        "filter=db&exclude=slow",
        &messages(&got),
        &[
            "[ERROR] db down",
            "[INFO] db connected",
            "[WARN] db fast",
            "[ERROR] db END",
        ],
    );
    assert_ids_of("filter=db", &got, &seen);
    // TCP has no query: every entry.
    let tcp_got: Vec<String> = (0..7).map(|_| tcp.next_message()).collect();
    assert_same_seq("tcp", &tcp_got, &messages(&seen));
}

// ---------------------------------------------------------------------------------------
// Resume with filters

/// Writes `lines` and waits until logwisp has read them all (by the stream's next id).
fn write_and_wait(server: &Server, lines: &[&str]) {
    let want = server.next_id("app") + lines.len() as u64;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    append(&server.path("app.log"), &text);
    server.wait_status("app", &format!("next_sequence {want}"), |s| {
        s["delivery"]["next_sequence"] == want
    });
}

/// A client with `?filter=keep` reads two entries and goes; entries written meanwhile
/// (with no client at all, so none is rendered until asked for) are read by logwisp;
/// then the client comes back, the resume position given by `resume`. It must get
/// exactly the missed entries its filter wants, then live ones.
fn resume_with_filter(buffer_size: usize, resume: impl Fn(u64) -> (String, Vec<String>)) {
    let server = Server::start(&one_stream(&format!("{HTTP}buffer_size = {buffer_size}\n")));
    let port = server.http_port("app");
    let mut first = SseClient::subscribe_to(port, "/stream?filter=keep", &[]);
    append(&server.path("app.log"), "keep 1\ndrop 2\nkeep 3\n");
    assert_eq!(first.next_message(), "keep 1");
    let (last_seen, v) = first.next_entry();
    assert_eq!(v["message"], "keep 3");
    drop(first);
    server.wait_status("app", "no client", |s| s["server"]["active_clients"] == 0);
    let missed: Vec<String> = (4..24)
        .map(|i| format!("{} {i}", if i % 3 == 0 { "keep" } else { "drop" }))
        .collect();
    let refs: Vec<&str> = missed.iter().map(String::as_str).collect();
    write_and_wait(&server, &refs);

    let (target, extra) = resume(last_seen);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut again = SseClient::subscribe_to(port, &target, &extra);
    let mut got = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..6 {
        let (id, v) = again.next_entry();
        ids.push(id);
        got.push(v["message"].as_str().unwrap().to_string());
    }
    let want: Vec<String> = (6..24).step_by(3).map(|i| format!("keep {i}")).collect();
    assert_same_seq(&format!("resumed {target}"), &got, &want);
    // Ids are the stream's: line i has id last_seen + (i - 3).
    let want_ids: Vec<u64> = (6..24).step_by(3).map(|i| last_seen + i - 3).collect();
    assert_same_seq("resumed ids", &ids, &want_ids);
    // Then live entries, filtered the same way.
    append(&server.path("app.log"), "drop 24\nkeep 25\n");
    let (id, v) = again.next_entry();
    assert_eq!(
        (id, v["message"].as_str()),
        (last_seen + 22, Some("keep 25"))
    );
}

#[test]
fn view_resume_with_a_filter_from_last_event_id_gets_exactly_the_filtered_missed_entries() {
    resume_with_filter(1000, |id| {
        (
            "/stream?filter=keep".into(),
            vec![format!("Last-Event-ID: {id}")],
        )
    });
}

#[test]
fn view_resume_with_a_filter_from_the_query_gets_exactly_the_filtered_missed_entries() {
    resume_with_filter(1000, |id| {
        (format!("/stream?filter=keep&last_event_id={id}"), vec![])
    });
    // The header wins over the query (it is the newer position).
    resume_with_filter(1000, |id| {
        (
            "/stream?filter=keep&last_event_id=1".into(),
            vec![format!("Last-Event-ID: {id}")],
        )
    });
}

#[test]
fn view_resume_with_a_filter_from_the_files_when_the_buffer_is_smaller_than_the_gap() {
    resume_with_filter(2, |id| {
        (format!("/stream?last_event_id={id}&filter=keep"), vec![])
    });
}

// ---------------------------------------------------------------------------------------
// Stream filters (config)

/// `one_stream` with `[[streams.filters]]` tables between the monitor and the servers.
fn filtered_stream(filters: &str, servers: &str) -> String {
    format!(
        "[[streams]]\nname = \"app\"\n[streams.monitor]\ncheck_interval_ms = 20\n\
         targets = [{{ path = \"$DIR\", pattern = \"*.log\" }}]\n{filters}{servers}"
    )
}

/// Lines kept out by the stream filters are never entries: no client sees them, they take
/// no id, and `/status` counts them as `monitor.filtered_lines`.
fn assert_stream_filters(filters: &str, lines: &[&str], kept: &[&str]) {
    let server = Server::start(&filtered_stream(filters, &format!("{HTTP}{TCP}")));
    let port = server.http_port("app");
    let mut all = SseClient::subscribe_to(port, "/stream", &[]);
    let mut tcp = TcpLineClient::connect(server.tcp_port("app"));
    server.wait_tcp_clients("app", 1);
    let first = server.next_id("app");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    append(&server.path("app.log"), &text);
    let got = entries_until(&mut all, kept.last().unwrap());
    assert_same_seq("sse", &messages(&got), kept);
    let ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
    let want_ids: Vec<u64> = (first..first + kept.len() as u64).collect();
    assert_same_seq("ids", &ids, &want_ids);
    let tcp_got: Vec<String> = kept.iter().map(|_| tcp.next_message()).collect();
    assert_same_seq("tcp", &tcp_got, kept);
    let dropped = (lines.len() - kept.len()) as u64;
    let status = server.wait_status("app", "every line read", |s| {
        s["monitor"]["lines_read"] == lines.len() as u64
    });
    let m = &status["monitor"];
    assert_eq!(m["filtered_lines"], dropped, "{m:#}");
    assert_eq!(m["total_entries"], kept.len() as u64, "{m:#}");
    assert_eq!(m["dropped_entries"], 0, "{m:#}");
    assert_eq!(
        status["delivery"]["next_sequence"],
        first + kept.len() as u64
    );
    let metrics = http_get(port, "/metrics").text();
    let sample = format!("logwisp_lines_filtered_total{{stream=\"app\"}} {dropped}\n");
    assert!(metrics.contains(&sample), "no {sample:?} in\n{metrics}");
}

#[test]
fn view_stream_filters_exclude_or_include_or_exclude_and_drop_lines_before_anyone_sees_them() {
    assert_stream_filters(
        "[[streams.filters]]\ntype = \"exclude\"\npatterns = [\"GET /health\", \"GET /ready\"]\n\
         [[streams.filters]]\ntype = \"include\"\nlogic = \"or\"\n\
         patterns = ['^\\[(ERROR|WARN)\\]', 'req=']\n\
         [[streams.filters]]\ntype = \"exclude\"\nlogic = \"and\"\npatterns = [\"timeout\", \"retrying\"]\n",
        &[
            "[ERROR] GET /health failed",
            "[ERROR] disk full",
            "[INFO] started",
            "[INFO] req=42 ok",
            "[WARN] timeout, retrying",
            "[WARN] timeout",
            "GET /ready 200 req=7",
            "[WARN] retrying",
        ],
        &[
            "[ERROR] disk full",
            "[INFO] req=42 ok",
            "[WARN] timeout",
            "[WARN] retrying",
        ],
    );
}

#[test]
fn view_stream_filters_include_and_keeps_lines_matching_every_pattern() {
    assert_stream_filters(
        "[[streams.filters]]\ntype = \"include\"\nlogic = \"and\"\n\
         patterns = ['user=\\d+', 'status=5\\d\\d']\n",
        &[
            "user=1 status=500",
            "user=2 status=200",
            "status=503",
            "user=x status=501",
            "status=502 user=3",
        ],
        &["user=1 status=500", "status=502 user=3"],
    );
}

#[test]
fn view_stream_filters_apply_to_a_client_resuming_from_the_files() {
    // Buffer of 2: the resumed entries are read again from the file, where the filtered
    // lines still are; they must stay out and the ids must still line up.
    let server = Server::start(&filtered_stream(
        "[[streams.filters]]\ntype = \"exclude\"\npatterns = [\"noise\"]\n",
        &format!("{HTTP}buffer_size = 2\n"),
    ));
    let port = server.http_port("app");
    let first = server.next_id("app");
    let lines: Vec<String> = (0..30)
        .map(|i| {
            if i % 2 == 1 {
                format!("noise {i}")
            } else {
                format!("line {i}")
            }
        })
        .collect();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    append(&server.path("app.log"), &text);
    server.wait_status("app", "15 entries", |s| {
        s["delivery"]["next_sequence"] == first + 15
    });
    let mut c = SseClient::subscribe_to(port, &format!("/stream?last_event_id={}", first + 2), &[]);
    for k in 3..15u64 {
        let (id, v) = c.next_entry();
        assert_eq!(
            (id, v["message"].as_str().unwrap()),
            (first + k, format!("line {}", 2 * k).as_str())
        );
    }
    assert_eq!(server.status("app")["monitor"]["filtered_lines"], 15);
}

// ---------------------------------------------------------------------------------------
// Output formats

/// Lines that show what `raw` keeps and what it must change to stay on one line of UTF-8.
const FORMAT_LINES: &[u8] = b"[ERROR] plain line\n\
{\"level\":\"warn\",\"msg\":\"json line\",\"k\":1}\n\
tab\there\n\
cr\rinside\n\
bad \xff byte\n\
crlf line\r\n\
\x20 leading spaces\n";

#[test]
fn view_format_raw_over_tcp_is_each_line_as_read_and_json_stays_json_on_http() {
    let server = Server::start(&one_stream(&format!("{HTTP}{TCP}format = \"raw\"\n")));
    let mut tcp = TcpLineClient::connect(server.tcp_port("app"));
    server.wait_tcp_clients("app", 1);
    let mut json = SseClient::subscribe_to(server.http_port("app"), "/stream", &[]);
    append(&server.path("app.log"), FORMAT_LINES);
    let want = [
        "[ERROR] plain line",
        "{\"level\":\"warn\",\"msg\":\"json line\",\"k\":1}",
        "tab\there",
        "cr\\rinside",
        "bad \u{fffd} byte",
        "crlf line",
        "\x20 leading spaces",
    ];
    let got: Vec<String> = want.iter().map(|_| tcp.next_line()).collect();
    assert_same_seq("raw over tcp", &got, &want);
    // The HTTP server of the same stream still sends JSON entries.
    let (_, v) = json.next_entry();
    assert_eq!(v["message"], "[ERROR] plain line");
    assert_eq!(v["level"], "ERROR");
    let (_, v) = json.next_entry();
    assert_eq!(
        (&v["message"], &v["level"], &v["fields"]["k"]),
        (
            &Value::from("json line"),
            &Value::from("warn"),
            &Value::from(1)
        )
    );
}

#[test]
fn view_format_txt_over_tcp_fills_the_template() {
    let server = Server::start(&one_stream(&format!(
        "{HTTP}{TCP}format = \"txt\"\ntxt_template = \"<{{level}}> {{source}}: {{message}} {{{{literal}}}}\"\n"
    )));
    let mut tcp = TcpLineClient::connect(server.tcp_port("app"));
    server.wait_tcp_clients("app", 1);
    append(
        &server.path("app.log"),
        "[ERROR] plain line\n\
         {\"level\":\"warn\",\"msg\":\"line one\\nline two\",\"k\":1}\n\
         no level\n",
    );
    let want = [
        "<ERROR> app.log: [ERROR] plain line {literal}",
        "<warn> app.log: line one\\nline two {literal}",
        "<> app.log: no level {literal}",
    ];
    let got: Vec<String> = want.iter().map(|_| tcp.next_line()).collect();
    assert_same_seq("txt over tcp", &got, &want);
}

#[test]
fn view_format_txt_default_template_over_sse() {
    let server = Server::start(&one_stream(&format!("{HTTP}format = \"txt\"\n")));
    let mut c = SseClient::subscribe_to(server.http_port("app"), "/stream", &[]);
    append(
        &server.path("app.log"),
        "[WARN] disk 90%\n\
         {\"time\":\"2024-05-06T07:08:09.5Z\",\"level\":\"info\",\"msg\":\"from json\"}\n",
    );
    let e = c.next_event();
    let id = e.id.as_deref().expect("id");
    let data = e.data.as_deref().expect("data");
    let (time, rest) = data.split_once(' ').unwrap();
    assert!(is_rfc3339_utc(time, 6), "{data:?}");
    assert_eq!(rest, "[WARN] app.log: [WARN] disk 90%");
    assert_eq!(e.raw, format!("id: {id}\ndata: {data}\n\n"));
    let e = c.next_event();
    // A JSON line's own time, normalised to microseconds like every entry time.
    assert_eq!(
        e.data.as_deref(),
        Some("2024-05-06T07:08:09.500000Z [info] app.log: from json")
    );
}

#[test]
fn view_format_raw_over_sse_is_one_data_line_per_entry() {
    let server = Server::start(&one_stream(&format!("{HTTP}format = \"raw\"\n")));
    let mut c = SseClient::subscribe_to(server.http_port("app"), "/stream", &[]);
    let first = server.next_id("app");
    append(&server.path("app.log"), FORMAT_LINES);
    let want = [
        "[ERROR] plain line",
        "{\"level\":\"warn\",\"msg\":\"json line\",\"k\":1}",
        "tab\there",
        "cr\\rinside",
        "bad \u{fffd} byte",
        "crlf line",
        "\x20 leading spaces",
    ];
    for (i, line) in want.iter().enumerate() {
        let e = c.next_event();
        assert_eq!(e.raw, format!("id: {}\ndata: {line}\n\n", first + i as u64));
    }
    // Client filters still work on the entry (its level and message), not the raw text.
    let mut warn = SseClient::subscribe_to(server.http_port("app"), "/stream?levels=warn", &[]);
    append(&server.path("app.log"), "[INFO] x\n[WARN] y\n");
    let e = warn.next_event();
    assert_eq!(
        e.raw,
        format!("id: {}\ndata: [WARN] y\n\n", first + want.len() as u64 + 1)
    );
}

// ---------------------------------------------------------------------------------------
// The page

/// The page as served: 200, HTML, at most 50 KB, self-contained.
fn assert_page(r: &Response, stream_url: &str) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert!(r.body.len() <= 50 * 1024, "page is {} bytes", r.body.len());
    let csp = r.header("Content-Security-Policy").expect("a policy");
    assert!(csp.starts_with("default-src 'none'; "), "{csp}");
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(r.header("Cache-Control"), Some("no-cache"));
    let html = r.text();
    assert!(html.starts_with("<!doctype html>"), "{}", &html[..40]);
    for external in [
        "http://",
        "https://",
        "src=\"//",
        "href=\"//",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(external), "the page has {external:?}");
    }
    let meta = format!("<meta name=\"logwisp-stream\" content=\"{stream_url}\">");
    assert!(html.contains(&meta), "no {meta} in the page");
    html
}

#[test]
fn view_get_slash_serves_the_page_small_and_self_contained() {
    let server = Server::start(&one_stream(HTTP));
    let port = server.http_port("app");
    let page = assert_page(&http_get(port, "/"), "./stream");
    // The query is the page's own business (it reads its filters from it).
    assert_eq!(
        assert_page(&http_get(port, "/?levels=ERROR&filter=x"), "./stream"),
        page
    );
    // A stream path of its own is what the page connects to, relative to itself.
    let server = Server::start(&one_stream(&format!(
        "{HTTP}stream_path = \"/events/live\"\n"
    )));
    assert_page(&http_get(server.http_port("app"), "/"), "./events/live");
}

#[test]
fn view_router_index_lists_the_streams_and_each_page_is_under_its_name() {
    let port = free_port();
    let dir = TempDir::new();
    for d in ["app", "sys"] {
        std::fs::create_dir(dir.join(d)).unwrap();
    }
    let stream = |name: &str, extra: &str| {
        format!(
            "[[streams]]\nname = \"{name}\"\n[streams.monitor]\ncheck_interval_ms = 20\n\
             targets = [{{ path = \"$DIR/{name}\", pattern = \"*.log\" }}]\n\
             [streams.httpserver]\nenabled = true\naddress = \"127.0.0.1\"\nport = {port}\n{extra}"
        )
    };
    let toml = format!(
        "{}{}",
        stream("app", ""),
        stream("sys", "stream_path = \"/logs\"\n")
    );
    let _server = Server::start_in(dir, &toml, &["--router"]);

    let r = http_get(port, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    let index = r.text();
    for item in [
        "<li><a href=\"./app/\">app</a><code>/app/stream</code></li>",
        "<li><a href=\"./sys/\">sys</a><code>/sys/logs</code></li>",
    ] {
        assert!(index.contains(item), "no {item} in\n{index}");
    }
    assert!(!index.contains("http://") && !index.contains("https://"));

    assert_page(&http_get(port, "/app/"), "./stream");
    assert_page(&http_get(port, "/sys/"), "./logs");
    for (from, to) in [
        ("/app", "/app/"),
        ("/sys", "/sys/"),
        ("/app?levels=ERROR&filter=x", "/app/?levels=ERROR&filter=x"),
    ] {
        let r = http_get(port, from);
        assert_eq!(r.status, 301, "{from}: {}", r.text());
        assert_eq!(r.header("Location"), Some(to), "{from}");
    }
}

#[test]
fn view_at_most_8_distinct_regular_expressions_are_evaluated_per_stream() {
    let server = Server::start(&one_stream(HTTP));
    let port = server.http_port("app");
    let mut regex_clients: Vec<SseClient> = (0..8)
        .map(|i| SseClient::subscribe_to(port, &format!("/stream?filter=%5Eline%20{i}%24"), &[]))
        .collect();
    let r = http_get(port, "/stream?filter=%5Eline%208%24");
    assert_eq!(r.status, 503, "a ninth regex: {}", r.text());
    // A word list is not a regex for this limit, and a regex in use is shared.
    let mut words = SseClient::subscribe_to(port, "/stream?filter=line%208|nothing", &[]);
    let mut shared =
        SseClient::subscribe_to(port, "/stream?filter=%5Eline%203%24&levels=none", &[]);
    append(
        &server.path("app.log"),
        "line 3
line 8
",
    );
    assert_eq!(regex_clients[3].next_message(), "line 3");
    assert_eq!(shared.next_message(), "line 3");
    assert_eq!(words.next_message(), "line 8");
    drop(regex_clients.remove(0));
    server.wait_status("app", "9 clients", |s| s["server"]["active_clients"] == 9);
    let mut ninth = SseClient::subscribe_to(port, "/stream?filter=%5Eline%208%24", &[]);
    append(
        &server.path("app.log"),
        "line 8
",
    );
    assert_eq!(ninth.next_message(), "line 8");
}

#[test]
fn view_a_stream_evaluates_at_most_64_distinct_filters_and_frees_a_slot_when_its_clients_go() {
    let server = Server::start(&one_stream(HTTP));
    let port = server.http_port("app");
    let mut clients: Vec<SseClient> = (0..64)
        .map(|i| SseClient::subscribe_to(port, &format!("/stream?filter=f{i:02}"), &[]))
        .collect();
    // A 65th filter is refused for now; a filter already in use is not.
    let r = http_get(port, "/stream?filter=f64");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("Retry-After"), Some("10"));
    assert!(
        r.text().contains("too many distinct filters"),
        "{}",
        r.text()
    );
    let mut shared = SseClient::subscribe_to(port, "/stream?filter=f07", &[]);
    // Once every client of a filter has gone, its slot serves a new one.
    drop(clients.remove(3));
    server.wait_status("app", "64 clients", |s| s["server"]["active_clients"] == 64);
    let mut new = SseClient::subscribe_to(port, "/stream?filter=f64", &[]);
    append(&server.path("app.log"), "f07 x\nf64 y\nf03 z\nf00 w\n");
    assert_eq!(new.next_message(), "f64 y");
    assert_eq!(shared.next_message(), "f07 x");
    assert_eq!(clients[0].next_message(), "f00 w");
    assert_eq!(clients[6].next_message(), "f07 x");
}

#[test]
fn view_a_reload_that_changes_the_stream_filters_never_renumbers_older_entries() {
    let filters = "[[streams.filters]]\ntype = \"exclude\"\npatterns = [\"noise\"]\n";
    let servers = format!("{HTTP}buffer_size = 2\n");
    let mut server = Server::start(&filtered_stream(filters, &servers));
    let first = server.next_id("app");
    let text: String = (0..10)
        .map(|i| {
            if i % 2 == 1 {
                format!("noise {i}\n")
            } else {
                format!("line {i}\n")
            }
        })
        .collect();
    append(&server.path("app.log"), &text);
    server.wait_status("app", "5 entries", |s| {
        s["delivery"]["next_sequence"] == first + 5
    });
    // The same stream without its filter: lines read from now on are all entries.
    server.reload_with(&filtered_stream("", &servers));
    append(&server.path("app.log"), "noise after\nline after\n");
    server.wait_status("app", "7 entries", |s| {
        s["delivery"]["next_sequence"] == first + 7
    });
    let port = server.http_port("app");
    let mut c = SseClient::subscribe_to(port, &format!("/stream?last_event_id={first}"), &[]);
    // Entries first+1.. were "line 2", "line 4", "line 6", "line 8", counted under the
    // old filter. The reload restarted the tailer and its history, so they cannot be read
    // again under their ids: the client is told exactly how many are gone, and is never
    // given other lines under their ids.
    let e = c.next_event();
    assert_eq!(
        (e.event.as_deref(), e.data.as_deref()),
        (Some("dropped"), Some("{\"dropped\":4}")),
        "{:?}",
        e.raw
    );
    for (k, m) in ["noise after", "line after"].iter().enumerate() {
        let (id, v) = c.next_entry();
        assert_eq!(
            (id, v["message"].as_str()),
            (first + 5 + k as u64, Some(*m))
        );
    }
}
