//! Question: how fast does logwisp forward a file's lines to NATS JetStream (file storage) and
//! to mosquitto, as a ratio of a trivial publisher (the same engine driven by a plain blocking
//! loop) against the same server in the same run; what CPU does each forwarded line cost
//! logwisp; and what is its RSS with a sink one million entries behind (broker down)?
//!
//! `cargo bench --bench forward [-- --lines N]` (default 200 000). Needs `nats-server` and
//! `mosquitto` (Debian packages of those names). Prints a table to paste in BENCHMARKS.md.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use logwisp::forward::message_id;
use logwisp::forward::mqtt::{self, Mqtt, MqttOptions};
use logwisp::forward::nats::{self, Nats, NatsOptions};

fn bin(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found (apt-get install nats-server mosquitto)"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd`, waits for `needle` on stderr (or stdout with `stdout`), returns the line.
fn spawn(mut cmd: Command, needle: &str, stdout: bool) -> (Proc, String) {
    cmd.stdin(Stdio::null());
    if stdout {
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    } else {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    }
    // Waited for when the returned `Proc` drops.
    let child = Proc(cmd.spawn().expect("spawn"));
    let mut child = child;
    let out: Box<dyn Read + Send> = if stdout {
        Box::new(child.0.stdout.take().unwrap())
    } else {
        Box::new(child.0.stderr.take().unwrap())
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no {needle:?}"));
        if line.contains(needle) {
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return (child, line);
        }
    }
}

fn entry(i: u64) -> Vec<u8> {
    format!(
        "{{\"time\":\"2026-01-01T00:00:00.000000Z\",\"source\":\"app.log\",\"level\":\"INFO\",\"message\":\"line {i:09} of the forwarding benchmark, padded to about a hundred bytes\"}}"
    )
    .into_bytes()
}

/// The engine driven by a plain blocking loop: entries/s until all `n` are acknowledged.
fn trivial<E>(
    port: u16,
    n: u64,
    mut engine: E,
    publish: impl Fn(&mut E, u64, &[u8]) -> bool,
    acked: impl Fn(&mut E) -> u64,
    io: (
        impl Fn(&mut E, u64),
        impl Fn(&mut E, &[u8], u64),
        impl Fn(&E) -> Vec<u8>,
        impl Fn(&mut E, usize),
    ),
) -> f64 {
    let (connected, on_bytes, output, consume) = io;
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_nodelay(true).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let t0 = Instant::now();
    let now = |t0: Instant| t0.elapsed().as_millis() as u64;
    connected(&mut engine, now(t0));
    let mut next = 0;
    let mut done = 0;
    let mut start = None;
    let mut buf = vec![0u8; 256 * 1024];
    while done < n {
        if start.is_some() {
            while next < n && publish(&mut engine, next, &entry(next)) {
                next += 1;
            }
        }
        let out = output(&engine);
        if !out.is_empty() {
            sock.write_all(&out).unwrap();
            consume(&mut engine, out.len());
        }
        match sock.read(&mut buf) {
            Ok(0) => panic!("broker closed"),
            Ok(k) => on_bytes(&mut engine, &buf[..k], now(t0)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("{e}"),
        }
        let a = acked(&mut engine);
        if a == u64::MAX {
            start.get_or_insert_with(Instant::now);
        } else {
            done += a;
        }
    }
    n as f64 / start.unwrap().elapsed().as_secs_f64()
}

fn nats_trivial(port: u16, n: u64) -> f64 {
    let mut o = NatsOptions::new("bench.trivial", true);
    o.max_in_flight = 1024;
    let engine = Nats::new(o).unwrap();
    trivial(
        port,
        n,
        engine,
        |e, i, p| e.can_publish() && e.publish(i, &message_id("b", 1, 2, i), p, 0).is_ok(),
        |e| {
            let mut a = 0;
            while let Some(ev) = e.poll_event() {
                match ev {
                    nats::Event::Connected(_) => return u64::MAX,
                    nats::Event::Acked { .. } => a += 1,
                    other => panic!("{other:?}"),
                }
            }
            a
        },
        (
            |e: &mut Nats, t| e.connected(t),
            |e: &mut Nats, b: &[u8], t| e.on_bytes(b, t),
            |e: &Nats| e.output().to_vec(),
            |e: &mut Nats, k| e.consume_output(k),
        ),
    )
}

fn mqtt_trivial(port: u16, n: u64) -> f64 {
    let mut o = MqttOptions::new("bench-trivial", "bench/trivial");
    o.max_in_flight = 1024;
    let engine = Mqtt::new(o).unwrap();
    trivial(
        port,
        n,
        engine,
        |e, i, p| e.can_publish() && e.publish(i, p, 0).is_ok(),
        |e| {
            let mut a = 0;
            while let Some(ev) = e.poll_event() {
                match ev {
                    mqtt::Event::Connected { .. } => return u64::MAX,
                    mqtt::Event::Acked { .. } => a += 1,
                    other => panic!("{other:?}"),
                }
            }
            a
        },
        (
            |e: &mut Mqtt, t| e.connected(t),
            |e: &mut Mqtt, b: &[u8], t| e.on_bytes(b, t),
            |e: &Mqtt| e.output().to_vec(),
            |e: &mut Mqtt, k| e.consume_output(k),
        ),
    )
}

fn create_stream(port: u16, name: &str, subjects: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body =
        format!("{{\"name\":\"{name}\",\"subjects\":[\"{subjects}\"],\"storage\":\"file\"}}");
    write!(
        s,
        "CONNECT {{}}\r\nSUB _INBOX.r 1\r\nPUB $JS.API.STREAM.CREATE.{name} _INBOX.r {}\r\n{body}\r\n",
        body.len()
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("stream_create_resp") {
        let k = s.read(&mut buf).expect("stream create");
        got.extend_from_slice(&buf[..k]);
    }
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn status(port: u16) -> serde_json::Value {
    serde_json::from_str(&http_get(port, "/status")).unwrap_or_default()
}

/// User+system CPU seconds of a process.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn rss_kib(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

struct Run {
    rate: f64,
    cpu_us_per_line: f64,
}

/// logwisp forwarding `n` lines written at once to a file: entries/s until all are acked.
fn logwisp(dir: &Path, sink: &str, n: u64, lines: &[u8], expect_acked: bool) -> (Run, Proc, u16) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let conf = dir.join("logwisp.toml");
    std::fs::write(
        &conf,
        format!(
            "state_dir = \"{d}/state\"\n[[streams]]\nname = \"app\"\n[streams.monitor]\n\
             targets = [{{ path = \"{d}\", pattern = \"*.log\" }}]\n[streams.httpserver]\n\
             enabled = true\naddress = \"127.0.0.1\"\nport = 0\n[logging]\nstats_interval_seconds = 0\n{sink}",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("app.log"), b"").unwrap();
    let exe =
        std::env::var("LOGWISP_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_logwisp").into());
    let mut cmd = Command::new(exe);
    cmd.arg("--config").arg(&conf);
    let (p, line) = spawn(cmd, "http listening on", true);
    let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    let pid = p.0.id();
    if expect_acked {
        let deadline = Instant::now() + Duration::from_secs(10);
        while status(port)["forward"][0]["state"] != "connected" {
            assert!(Instant::now() < deadline, "sink never connected");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let cpu0 = cpu_secs(pid);
    let t = Instant::now();
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("app.log"))
        .unwrap()
        .write_all(lines)
        .unwrap();
    let key = if expect_acked { "acked" } else { "" };
    loop {
        let st = status(port);
        let done = if expect_acked {
            st["forward"][0][key].as_u64() == Some(n)
        } else {
            st["monitor"]["lines_read"].as_u64() == Some(n)
        };
        if done {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(300), "stuck: {st}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu0;
    (
        Run {
            rate: n as f64 / secs,
            cpu_us_per_line: cpu * 1e6 / n as f64,
        },
        p,
        port,
    )
}

fn main() {
    let mut n: u64 = 200_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--lines" {
            n = args.next().and_then(|v| v.parse().ok()).expect("--lines N");
        }
    }
    let tmp = std::env::temp_dir().join(format!("logwisp-bench-forward-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let mut lines = Vec::new();
    for i in 0..n {
        writeln!(
            lines,
            "line {i:09} of the forwarding benchmark, padded to about a hundred bytes"
        )
        .unwrap();
    }
    let mut rows = Vec::new();

    // JetStream, file storage.
    let nport = free_port();
    let mut cmd = Command::new(bin("nats-server"));
    cmd.args(["-a", "127.0.0.1", "-p", &nport.to_string(), "-js", "-sd"])
        .arg(tmp.join("js"));
    let (nats_proc, _) = spawn(cmd, "Server is ready", false);
    create_stream(nport, "BENCH", "bench.>");
    create_stream(nport, "LOGS", "logs.>");
    let trivial_js = nats_trivial(nport, n);
    let (lw, p, _) = logwisp(
        &tmp.join("lw-nats"),
        &format!("[[streams.forward]]\ntype = \"nats\"\nurl = \"nats://127.0.0.1:{nport}\"\n"),
        n,
        &lines,
        true,
    );
    drop(p);
    rows.push((
        "JetStream (file storage)",
        lw.rate,
        trivial_js,
        lw.cpu_us_per_line,
    ));
    drop(nats_proc);

    // mosquitto.
    let mport = free_port();
    let conf = tmp.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {mport} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bin("mosquitto"));
    cmd.arg("-c").arg(&conf);
    let (mq, _) = spawn(cmd, " running", false);
    let trivial_mq = mqtt_trivial(mport, n);
    let (lw, p, _) = logwisp(
        &tmp.join("lw-mqtt"),
        &format!("[[streams.forward]]\ntype = \"mqtt\"\nurl = \"mqtt://127.0.0.1:{mport}\"\n"),
        n,
        &lines,
        true,
    );
    drop(p);
    rows.push(("mosquitto (QoS 1)", lw.rate, trivial_mq, lw.cpu_us_per_line));
    drop(mq);

    // No sink, for the CPU a line costs logwisp anyway.
    let (base, p, _) = logwisp(&tmp.join("lw-none"), "", n, &lines, false);
    drop(p);

    // A sink a million entries behind: the broker is down the whole time.
    let big = 1_000_000u64;
    let mut many = Vec::with_capacity(big as usize * 80);
    for i in 0..big {
        writeln!(
            many,
            "line {i:09} of the forwarding benchmark, padded to about a hundred bytes"
        )
        .unwrap();
    }
    let dead = free_port();
    let (_, p, port) = logwisp(
        &tmp.join("lw-behind"),
        &format!("[[streams.forward]]\ntype = \"nats\"\nurl = \"nats://127.0.0.1:{dead}\"\n"),
        big,
        &many,
        false,
    );
    let lag = status(port)["forward"][0]["lag"].as_u64().unwrap_or(0);
    let rss = rss_kib(p.0.id(), "VmRSS:");
    let hwm = rss_kib(p.0.id(), "VmHWM:");
    drop(p);
    let _ = std::fs::remove_dir_all(&tmp);

    println!(
        "| broker | logwisp entries/s | trivial publisher entries/s | ratio | logwisp CPU µs/line (no sink: {:.2}) |",
        base.cpu_us_per_line
    );
    println!("|---|---|---|---|---|");
    for (name, lw, triv, cpu) in rows {
        println!(
            "| {name} | {lw:.0} | {triv:.0} | {:.2}× | {cpu:.2} (+{:.2}) |",
            lw / triv,
            cpu - base.cpu_us_per_line
        );
    }
    println!(
        "\nsink {lag} entries behind (broker down, 1 000 000 lines written): RSS {rss} KiB, peak {hwm} KiB"
    );
}
