//! Forwarding (SPEC §16) through the real binary to real brokers started here:
//! nats-server with JetStream (file storage) and mosquitto. Counts and order are checked
//! by a subscriber of the test's own; every wait has a deadline.
#![cfg(feature = "forward")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use logwisp::forward::nats::proto::Op;
use serde_json::{Value, json};

use crate::support::brokers::{self, Broker};
use crate::support::nats::NatsClient;
use crate::util::{HTTP, Server, SseClient, TempDir, append, free_port, one_stream, wait_until};

/// How long a batch of entries may take to reach the broker.
const DELIVERY: Duration = Duration::from_secs(30);

/// Stream `LOGS` on `logs.>`, with `replicas` copies.
fn create_logs(nats: &mut NatsClient, replicas: u32) {
    nats.create_stream("LOGS", &["logs.>"], replicas);
}

/// Messages in `LOGS` (0 while it has no leader to answer).
fn messages(nats: &mut NatsClient) -> u64 {
    nats.stream_messages("LOGS", Duration::from_secs(2))
        .unwrap_or(0)
}

/// Every message of `LOGS`, in stream order, through a push consumer.
fn read_all(nats: &mut NatsClient, n: u64) -> Vec<String> {
    // A cluster that lost a node may take a while to place the consumer.
    nats.js_call(
        "$JS.API.CONSUMER.CREATE.LOGS",
        &json!({"stream_name": "LOGS", "config": {"deliver_subject": "_deliver.t",
                "ack_policy": "none", "deliver_policy": "all"}}),
        DELIVERY,
    );
    nats.send(b"SUB _deliver.t 7\r\n");
    let mut out = Vec::new();
    while (out.len() as u64) < n {
        let m = nats.until(DELIVERY, |op| match op {
            Op::Msg {
                sid: 7, payload, ..
            } => Some(message_of(payload)),
            _ => None,
        });
        match m {
            Some(m) => out.push(m),
            None => panic!("only {} of {n} messages read back", out.len()),
        }
    }
    out
}

/// The `message` of an entry's JSON.
fn message_of(payload: &[u8]) -> String {
    let v: Value = serde_json::from_slice(payload)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(payload)));
    v["message"].as_str().unwrap_or_default().to_string()
}

fn lines(from: usize, to: usize) -> String {
    (from..to).map(|i| format!("line {i:06}\n")).collect()
}

fn want(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("line {i:06}")).collect()
}

/// A stream `app` with an HTTP server and the sink tables `forward`.
fn config(forward: &str) -> String {
    format!("state_dir = \"$DIR/state\"\n{}{forward}", one_stream(HTTP))
}

fn nats_sink(ports: &[u16], extra: &str) -> String {
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("\"nats://127.0.0.1:{p}\""))
        .collect();
    format!(
        "[[streams.forward]]\ntype = \"nats\"\nurls = [{}]\nsubject = \"logs.{{stream}}\"\n{extra}",
        urls.join(", ")
    )
}

fn sink_status(s: &Server) -> Value {
    s.status("app")["forward"][0].clone()
}

/// Waits until the JetStream stream holds `n` messages; fails with the sink's status.
fn wait_count(nats: &mut NatsClient, s: &Server, n: u64) {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let got = messages(nats);
        if got == n {
            return;
        }
        assert!(got <= n, "{got} messages, more than the {n} written");
        assert!(
            Instant::now() < deadline,
            "{got} of {n} messages; sink: {}\nstderr:\n{}",
            sink_status(s),
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn js_server(dir: &TempDir) -> Broker {
    brokers::nats_server(dir.path(), 0, None)
}

#[test]
fn jetstream_gets_every_entry_in_order() {
    let bdir = TempDir::new();
    let broker = js_server(&bdir);
    let mut nats = NatsClient::connect(broker.port);
    create_logs(&mut nats, 1);
    let s = Server::start(&config(&nats_sink(&[broker.port], "")));
    wait_until(Duration::from_secs(10), || {
        sink_status(&s)["state"] == "connected"
    });
    const N: usize = 100_000;
    append(&s.path("app.log"), &lines(0, N));
    wait_count(&mut nats, &s, N as u64);
    assert_eq!(read_all(&mut nats, N as u64), want(0, N));
    let st = sink_status(&s);
    assert_eq!(st["acked"], N as u64, "{st}");
    assert_eq!(st["lag"], 0, "{st}");
    assert_eq!(st["dropped"], 0, "{st}");
    let metrics = crate::util::http_get(s.http_port("app"), "/metrics").text();
    assert!(
        metrics.contains(&format!(
            "logwisp_forward_acked_total{{stream=\"app\",sink=\"nats:logs.{{stream}}\"}} {N}"
        )),
        "{metrics}"
    );
}

/// NATS over TLS (a `tls://` URL by name, resolved without libc and checked against the
/// certificate's name, the CA from `[streams.forward.tls]`) to a nats-server that requires
/// it: every entry is acknowledged, and the stream holds them in order.
#[test]
fn jetstream_over_tls_gets_every_entry_in_order() {
    let bdir = TempDir::new();
    let pki_dir = TempDir::new();
    let pki = crate::util::Pki::new(pki_dir.path());
    // The test's NATS client speaks no TLS: the stream is made, and later read, by a
    // plain server on the same store.
    create_logs(&mut NatsClient::connect(js_server(&bdir).port), 1);
    let (cert, key) = (pki.server_cert.display(), pki.server_key.display());
    let tls_broker = brokers::nats_server_with(
        bdir.path(),
        0,
        None,
        &[
            "--tls",
            "--tlscert",
            &cert.to_string(),
            "--tlskey",
            &key.to_string(),
        ],
    );
    let s = Server::start(&config(&format!(
        "[[streams.forward]]\ntype = \"nats\"\nurls = [\"tls://localhost:{}\"]\n\
         subject = \"logs.{{stream}}\"\n[streams.forward.tls]\nca_file = \"{}\"\n",
        tls_broker.port,
        pki.ca.display()
    )));
    const N: usize = 20_000;
    append(&s.path("app.log"), &lines(0, N));
    let st = s.wait_status("app", "every entry acknowledged over TLS", |v| {
        v["forward"][0]["acked"] == N as u64
    });
    let st = &st["forward"][0];
    assert_eq!(st["state"], "connected", "{st}");
    assert_eq!(st["tls_failures"], 0, "{st}");
    assert_eq!(st["dropped"], 0, "{st}");
    drop(tls_broker);
    let plain = js_server(&bdir);
    let mut nats = NatsClient::connect(plain.port);
    assert!(
        wait_until(DELIVERY, || messages(&mut nats) == N as u64),
        "{} messages in the store",
        messages(&mut nats)
    );
    assert_eq!(read_all(&mut nats, N as u64), want(0, N));
}

/// The broker moves while it is down: the sink's URL changes on reload, and the new
/// broker gets what the old one never confirmed, then what follows, in order.
#[test]
fn a_sink_moved_to_another_broker_on_reload_loses_nothing() {
    let (old_dir, new_dir) = (TempDir::new(), TempDir::new());
    let old = js_server(&old_dir);
    create_logs(&mut NatsClient::connect(old.port), 1);
    let mut s = Server::start(&config(&nats_sink(&[old.port], "")));
    append(&s.path("app.log"), &lines(0, 100));
    s.wait_status("app", "the first entries acknowledged", |v| {
        v["forward"][0]["acked"] == 100
    });
    drop(old);
    append(&s.path("app.log"), &lines(100, 1_100));
    s.wait_status("app", "the sink to notice its broker gone", |v| {
        v["forward"][0]["state"] != "connected"
    });
    let new = js_server(&new_dir);
    let mut nats = NatsClient::connect(new.port);
    create_logs(&mut nats, 1);
    s.reload_with(&config(&nats_sink(&[new.port], "")));
    append(&s.path("app.log"), &lines(1_100, 2_000));
    wait_count(&mut nats, &s, 1_900);
    assert_eq!(read_all(&mut nats, 1_900), want(100, 2_000));
}

#[test]
fn mqtt_subscriber_gets_every_entry_in_order_at_qos_1() {
    let bdir = TempDir::new();
    let mut broker = brokers::mosquitto(bdir.path(), &[]);
    const N: usize = 100_000;
    let mut sub = Command::new(brokers::find_binary("mosquitto_sub", "mosquitto-clients"))
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-q", "1", "-t", "logs/app", "-C", &N.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    let out = sub.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .map(|l| message_of(l.as_bytes()))
            .collect::<Vec<_>>()
    });
    let s = Server::start(&config(&format!(
        "[[streams.forward]]\ntype = \"mqtt\"\nurl = \"mqtt://127.0.0.1:{}\"\n",
        broker.port
    )));
    assert!(wait_until(Duration::from_secs(10), || {
        sink_status(&s)["state"] == "connected"
    }));
    // The subscriber is in before anything is published.
    broker
        .wait_log(" 1 logs/app")
        .unwrap_or_else(|| panic!("mosquitto exited:\n{}", broker.log.join("\n")));
    append(&s.path("app.log"), &lines(0, N));
    let done = wait_until(DELIVERY, || reader.is_finished());
    if !done {
        let _ = sub.kill();
    }
    let got = reader.join().unwrap();
    let _ = sub.wait();
    assert!(
        done,
        "subscriber got {} of {N}; sink {}",
        got.len(),
        sink_status(&s)
    );
    assert_eq!(got, want(0, N));
    assert!(wait_until(Duration::from_secs(10), || {
        sink_status(&s)["acked"] == N as u64
    }));
}

#[test]
fn a_broker_stopped_and_restarted_under_load_loses_nothing() {
    let bdir = TempDir::new();
    let mut broker = js_server(&bdir);
    let port = broker.port;
    create_logs(&mut NatsClient::connect(port), 1);
    let s = Server::start(&config(&nats_sink(&[port], "")));
    let log = s.path("app.log");
    let mut written = 0;
    let mut write = |n: usize| {
        append(&log, &lines(written, written + n));
        written += n;
    };
    write(20_000);
    wait_until(Duration::from_secs(10), || {
        sink_status(&s)["acked"].as_u64() > Some(1000)
    });
    broker.kill();
    // Logs keep coming while the broker is away.
    for _ in 0..10 {
        write(2_000);
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(wait_until(Duration::from_secs(10), || {
        sink_status(&s)["state"] != "connected"
    }));
    let broker = brokers::nats_server(bdir.path(), port, None);
    write(10_000);
    let mut nats = NatsClient::connect(broker.port);
    wait_count(&mut nats, &s, written as u64);
    assert_eq!(read_all(&mut nats, written as u64), want(0, written));
    let st = sink_status(&s);
    assert!(st["connects"].as_u64() >= Some(2), "{st}");
}

#[test]
fn a_killed_cluster_node_is_left_for_another_and_nothing_is_lost() {
    let bdir = TempDir::new();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let cports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes: Vec<Broker> = (0..3)
        .map(|i| {
            let store = bdir.path().join(format!("n{i}"));
            let routes: Vec<u16> = (0..3).filter(|&j| j != i).map(|j| cports[j]).collect();
            brokers::nats_node(&store, &format!("n{i}"), ports[i], cports[i], &routes)
        })
        .collect();
    let mut nats = NatsClient::connect(ports[2]);
    create_logs(&mut nats, 3);
    let s = Server::start(&config(&nats_sink(&ports, "")));
    let log = s.path("app.log");
    append(&log, &lines(0, 10_000));
    assert!(wait_until(Duration::from_secs(15), || {
        sink_status(&s)["acked"].as_u64() > Some(500)
    }));
    assert!(
        sink_status(&s)["url"]
            .as_str()
            .unwrap()
            .contains(&ports[0].to_string())
    );
    nodes[0].kill();
    append(&log, &lines(10_000, 20_000));
    let deadline = Instant::now() + DELIVERY;
    loop {
        if messages(&mut nats) == 20_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of 20000; sink {}",
            messages(&mut nats),
            sink_status(&s)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(read_all(&mut nats, 20_000), want(0, 20_000));
    assert!(
        !sink_status(&s)["url"]
            .as_str()
            .unwrap()
            .contains(&ports[0].to_string())
    );
}

#[test]
fn a_sigkilled_logwisp_resumes_from_the_last_acknowledged_entry() {
    let bdir = TempDir::new();
    let mut broker = js_server(&bdir);
    let port = broker.port;
    create_logs(&mut NatsClient::connect(port), 1);
    let mut s = Server::start(&config(&nats_sink(&[port], "")));
    let log = s.path("app.log");
    append(&log, &lines(0, 30_000));
    let mut nats = NatsClient::connect(port);
    wait_count(&mut nats, &s, 30_000);
    drop(nats);
    // The broker goes: what is written now is read, but never acknowledged.
    broker.kill();
    append(&log, &lines(30_000, 40_000));
    assert!(wait_until(Duration::from_secs(10), || {
        s.status("app")["monitor"]["lines_read"] == 40_000
    }));
    // Long enough for the state (with the sink's cursor) to be saved.
    let state = s.path("state/app.json");
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&state).is_ok_and(|t| t.contains("\"sinks\""))
    }));
    // SIGKILL mid-stream, more lines while it is down, then both come back.
    s.restart();
    append(&log, &lines(40_000, 45_000));
    let broker = brokers::nats_server(bdir.path(), port, None);
    let mut nats = NatsClient::connect(broker.port);
    wait_count(&mut nats, &s, 45_000);
    assert_eq!(read_all(&mut nats, 45_000), want(0, 45_000));
    // Once everything is confirmed, the cursor is gone from the state.
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&state).is_ok_and(|t| !t.contains("\"sinks\""))
    }));
}

#[test]
fn wrong_credentials_and_tls_failures_are_reported_and_retried() {
    let bdir = TempDir::new();
    let broker = brokers::nats_server(bdir.path(), 0, Some(("logwisp", "s3cret")));
    let mqtt_dir = TempDir::new();
    let mqtt = brokers::mosquitto(mqtt_dir.path(), &[]);
    let ca = TempDir::new();
    let ca_file = ca.join("ca.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    std::fs::write(&ca_file, cert.cert.pem()).unwrap();
    let s = Server::start(&config(&format!(
        "{}name = \"bad-pass\"\nusername = \"logwisp\"\npassword = \"wrong\"\n\
         [[streams.forward]]\ntype = \"mqtt\"\nname = \"bad-tls\"\nurl = \"mqtts://127.0.0.1:{}\"\n\
         [streams.forward.tls]\nca_file = \"{}\"\n",
        nats_sink(&[broker.port], ""),
        mqtt.port,
        ca_file.display()
    )));
    let status = s.wait_status("app", "both sinks retried", |v| {
        let f = &v["forward"];
        f[0]["auth_failures"].as_u64() >= Some(2) && f[1]["tls_failures"].as_u64() >= Some(2)
    });
    let f = &status["forward"];
    assert!(
        f[0]["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("authorization"),
        "{f}"
    );
    assert!(f[1]["last_error"].as_str().unwrap().contains("tls"), "{f}");
    assert_ne!(f[0]["state"], "connected");
    let metrics = crate::util::http_get(s.http_port("app"), "/metrics").text();
    assert!(metrics.contains("logwisp_forward_errors_total{stream=\"app\",sink=\"bad-pass\"}"));
}

#[test]
fn a_stopped_broker_does_not_slow_an_sse_client() {
    let bdir = TempDir::new();
    let broker = js_server(&bdir);
    create_logs(&mut NatsClient::connect(broker.port), 1);
    let s = Server::start(&config(&nats_sink(&[broker.port], "")));
    assert!(wait_until(Duration::from_secs(10), || {
        sink_status(&s)["state"] == "connected"
    }));
    // Stopped, not gone: connections hang rather than fail.
    unsafe { libc::kill(broker.pid() as i32, libc::SIGSTOP) };
    let mut sse = SseClient::connect(s.http_port("app"), "/stream", &[]);
    sse.skip_connected();
    let log = s.path("app.log");
    for round in 0..5 {
        let t = Instant::now();
        append(&log, &lines(round * 2000, round * 2000 + 2000));
        for i in round * 2000..round * 2000 + 2000 {
            assert_eq!(sse.next_message(), format!("line {i:06}"));
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "2000 entries took {:?} to reach the SSE client",
            t.elapsed()
        );
    }
    assert!(sink_status(&s)["lag"].as_u64() > Some(0));
    unsafe { libc::kill(broker.pid() as i32, libc::SIGCONT) };
    let mut nats = NatsClient::connect(broker.port);
    wait_count(&mut nats, &s, 10_000);
}
