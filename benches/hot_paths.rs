//! Question: what does each step on a line's way through logwisp cost on its own (ns per operation) — splitting file bytes into lines, turning a line into JSON, framing it into the fan-out ring, copying ring frames out to a client, and the timer wheel?
//!
//! `cargo bench --bench hot_paths [-- --quick] [-- FILTER]`: plain timing loops, no
//! framework; each case runs for about a second (0.2 s with `--quick`) and prints ns/op
//! and ops/s. Compare runs on the same machine only.
//!
//! `--calls=N` runs each selected case exactly N times, untimed, for instruction counts
//! that neighbours on a shared machine cannot disturb: run it under
//! `valgrind --tool=callgrind` with N and with 0, and divide the difference by N.

use std::hint::black_box;
use std::io::{self, IoSlice, Write};
use std::time::{Duration, Instant};

use logwisp::entry::{Stamp, detect_level, write_entry, write_json_string};
use logwisp::fanout::{At, ControlRenderer, EntryParts, Flush, Ring, Subscriber, Wire};
use logwisp::format::Format;
use logwisp::tail::lines::LineSplitter;
use logwisp::timer::Wheel;

/// Runs `f` (which does `ops_per_call` operations) until `budget` has passed; returns
/// nanoseconds per operation of the fastest of a few rounds.
fn time(budget: Duration, ops_per_call: u64, mut f: impl FnMut()) -> f64 {
    // Warm up caches and the branch predictor.
    let warm = Instant::now();
    while warm.elapsed() < budget / 10 {
        f();
    }
    let mut best = f64::MAX;
    let rounds = 5;
    for _ in 0..rounds {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < budget / rounds {
            f();
            calls += 1;
        }
        let ns = start.elapsed().as_nanos() as f64 / (calls * ops_per_call) as f64;
        best = best.min(ns);
    }
    best
}

struct Report {
    filter: Option<String>,
    budget: Duration,
    calls: Option<u64>,
}

impl Report {
    fn case(&self, name: &str, unit: &str, ops_per_call: u64, bytes_per_op: f64, f: impl FnMut()) {
        if self
            .filter
            .as_ref()
            .is_some_and(|f| !name.contains(f.as_str()))
        {
            return;
        }
        if let Some(calls) = self.calls {
            let mut f = f;
            for _ in 0..calls {
                f();
            }
            println!("{name:<46} {calls} calls of {ops_per_call} {unit}");
            return;
        }
        let ns = time(self.budget, ops_per_call, f);
        let mbps = if bytes_per_op > 0.0 {
            format!("{:>9.0} MB/s", bytes_per_op / ns * 1e3)
        } else {
            String::new()
        };
        println!(
            "{name:<46} {ns:>9.1} ns/{unit:<6} {:>12.0} {unit}/s {mbps}",
            1e9 / ns
        );
    }
}

/// The 100-byte lines of the load bench, plus some variety.
/// The default output: every wire carries the JSON entry.
const JSON_ONLY: [Format; 1] = [Format::Json];

fn json_parts(json: &[u8]) -> EntryParts<'_> {
    EntryParts {
        line: b"",
        json,
        mask: 0,
    }
}

fn sample_lines(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let line = match i % 4 {
            0 => format!(
                "seq={i:08}:0 lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incid"
            ),
            1 => format!(
                "2024-01-01T12:00:00Z [INFO] request {i} served in 3 ms from cache, user=alice path=/api/v1/x"
            ),
            2 => format!(
                "seq={i:08}:0 WARN: disk usage at 91 percent on /var, consider cleanup of old logs ok ok"
            ),
            _ => format!(
                "seq={i:08}:0 the quick brown fox jumps over the lazy dog, again and again and again ok"
            ),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

struct Renderer;

impl ControlRenderer for Renderer {
    fn dropped(&self, out: &mut Vec<u8>, count: u64, _exact: bool) {
        logwisp::sse::dropped(out, count, true);
    }
    fn heartbeat(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b": heartbeat\n\n");
    }
}

/// A writer that accepts everything (a socket that is never full) and keeps nothing.
struct NullSink {
    bytes: u64,
}

impl Write for NullSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n: usize = bufs.iter().map(|b| b.len()).sum();
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn main() {
    let mut quick = false;
    let mut filter = None;
    let mut calls = None;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--bench" => {}
            "--quick" => quick = true,
            s if s
                .strip_prefix("--calls=")
                .is_some_and(|n| n.parse::<u64>().is_ok()) =>
            {
                calls = s["--calls=".len()..].parse().ok();
            }
            s if !s.starts_with('-') => filter = Some(s.to_string()),
            s => {
                eprintln!("hot_paths: unknown flag {s}; usage: [--quick] [--calls=N] [FILTER]");
                std::process::exit(2);
            }
        }
    }
    let r = Report {
        filter,
        budget: Duration::from_millis(if quick { 200 } else { 1000 }),
        calls,
    };
    println!("hot paths (best of 5 rounds; ns per operation)\n");

    // --- line splitting -----------------------------------------------------------------
    let chunk = sample_lines(10_000); // ~1 MB, like one file read
    let lines_in_chunk = 10_000u64;
    let per_line_bytes = chunk.len() as f64 / lines_in_chunk as f64;
    r.case(
        "split: LineSplitter::feed, 1 MB chunk",
        "line",
        lines_in_chunk,
        per_line_bytes,
        || {
            let mut s = LineSplitter::new(1 << 20);
            let mut n = 0usize;
            s.feed(black_box(&chunk), &mut |l: &[u8], _cut, _start| {
                n += l.len();
                true
            });
            black_box(n);
        },
    );
    // The same bytes arriving in 4 KiB reads: partial lines carried between calls.
    r.case(
        "split: LineSplitter::feed, 4 KiB reads",
        "line",
        lines_in_chunk,
        per_line_bytes,
        || {
            let mut s = LineSplitter::new(1 << 20);
            let mut n = 0usize;
            for part in chunk.chunks(4096) {
                s.feed(black_box(part), &mut |l: &[u8], _cut, _start| {
                    n += l.len();
                    true
                });
            }
            black_box(n);
        },
    );

    // --- entries ------------------------------------------------------------------------
    let stamp = Stamp::from_micros(1_704_110_400_123_456);
    let mut source = Vec::new();
    write_json_string(&mut source, b"app.log");
    let plain: &[u8] = b"seq=00000123:0 lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incid";
    let leveled: &[u8] = b"2024-01-01T12:00:00Z [ERROR] request 42 failed after 3 retries: upstream timeout, user=alice";
    let json: &[u8] = br#"{"ts":"2024-05-01T10:00:00.123Z","level":"info","msg":"request served","user_id":"12345","latency_ms":3.5,"path":"/api/v1/items","fields":{"request_id":"abc-123"}}"#;
    // Off the common path: escapes, non-ASCII text and a time with an offset.
    let json_rare: &[u8] = r#"{"time":"2024-05-01T12:00:00.123456+02:00","level":"warn","msg":"caf\u00e9 \"ouvert\" à 8h","user":"zoë","tags":["a","b"],"n":-1.5e3}"#.as_bytes();
    // Looks like JSON, is not: scanned, refused, then written as a plain line.
    let not_json: &[u8] = br#"{"ts":"2024-05-01T10:00:00.123Z","level":"info","msg":"request served","user_id":12345,"latency_ms":3.5,"path":"/api/v1/items" [truncated]}"#;
    let mut out = Vec::with_capacity(4096);
    r.case(
        "entry: detect_level, plain 99-byte line",
        "op",
        1,
        plain.len() as f64,
        || {
            black_box(detect_level(black_box(plain)));
        },
    );
    r.case(
        "entry: detect_level, line with [ERROR]",
        "op",
        1,
        leveled.len() as f64,
        || {
            black_box(detect_level(black_box(leveled)));
        },
    );
    r.case(
        "entry: write_entry, plain 99-byte line",
        "op",
        1,
        plain.len() as f64,
        || {
            out.clear();
            write_entry(&mut out, black_box(plain), &source, &stamp);
            black_box(&out);
        },
    );
    r.case(
        "entry: write_entry, JSON line (165 B)",
        "op",
        1,
        json.len() as f64,
        || {
            out.clear();
            write_entry(&mut out, black_box(json), &source, &stamp);
            black_box(&out);
        },
    );
    r.case(
        &format!("entry: write_entry, JSON, escapes ({} B)", json_rare.len()),
        "op",
        1,
        json_rare.len() as f64,
        || {
            out.clear();
            write_entry(&mut out, black_box(json_rare), &source, &stamp);
            black_box(&out);
        },
    );
    r.case(
        &format!("entry: write_entry, not JSON ({} B)", not_json.len()),
        "op",
        1,
        not_json.len() as f64,
        || {
            out.clear();
            write_entry(&mut out, black_box(not_json), &source, &stamp);
            black_box(&out);
        },
    );
    r.case("entry: Stamp::now (clock + RFC 3339)", "op", 1, 0.0, || {
        black_box(Stamp::now());
    });

    // --- fan-out ring -------------------------------------------------------------------
    let mut rendered = Vec::new();
    write_entry(&mut rendered, plain, &source, &stamp);
    for (name, wires) in [
        ("ring: push + evict, SSE framing", &[Wire::SSE][..]),
        ("ring: push + evict, TCP framing", &[Wire::NDJSON][..]),
        (
            "ring: push + evict, SSE + TCP framing",
            &[Wire::SSE, Wire::NDJSON][..],
        ),
    ] {
        let mut ring = Ring::new(1000, 1);
        for &w in wires {
            ring.enable(w);
        }
        r.case(name, "entry", 1000, rendered.len() as f64, || {
            for _ in 0..1000 {
                ring.push(&JSON_ONLY, &json_parts(black_box(&rendered)));
            }
            ring.evict_excess();
        });
    }
    let mut ring = Ring::new(1000, 1);
    ring.enable(Wire::SSE);
    let mut json = Vec::new();
    r.case(
        "ring: write_entry + push, SSE framing",
        "entry",
        1000,
        plain.len() as f64,
        || {
            for _ in 0..1000 {
                json.clear();
                write_entry(&mut json, black_box(plain), &source, &stamp);
                ring.push(&JSON_ONLY, &json_parts(&json));
            }
            ring.evict_excess();
        },
    );

    // --- delivery to one client ---------------------------------------------------------
    for (name, wire) in [
        ("flush: 1000 entries to a client, SSE", Wire::SSE),
        ("flush: 1000 entries to a client, TCP", Wire::NDJSON),
    ] {
        let mut ring = Ring::new(1000, 1);
        ring.enable(wire);
        for _ in 0..1000 {
            ring.push(&JSON_ONLY, &json_parts(&rendered));
        }
        let frame_bytes = ring.held_bytes() as f64 / 1000.0;
        let start = ring.base_seq();
        let mut sink = NullSink { bytes: 0 };
        r.case(name, "entry", 1000, frame_bytes, || {
            let mut sub = Subscriber::new(wire, None, &ring, start, false, true);
            let res = sub.flush(&ring, &Renderer, &mut sink, usize::MAX);
            assert_eq!(res.ok(), Some(Flush::Drained));
        });
        // The same into a Vec (a memcpy of every byte, like the kernel's copy).
        let mut vec_out: Vec<u8> = Vec::with_capacity(ring.held_bytes() + 1024);
        r.case(
            &format!("{name}, into a Vec"),
            "entry",
            1000,
            frame_bytes,
            || {
                vec_out.clear();
                let mut sub = Subscriber::new(wire, None, &ring, start, false, true);
                let res = sub.flush(&ring, &Renderer, &mut vec_out, usize::MAX);
                assert_eq!(res.ok(), Some(Flush::Drained));
            },
        );
    }
    // One new entry to each of 1000 caught-up clients: the per-client cost of a fan-out.
    {
        let mut ring = Ring::new(1000, 1);
        ring.enable(Wire::SSE);
        ring.push(&JSON_ONLY, &json_parts(&rendered));
        let mut sink = NullSink { bytes: 0 };
        let tail = ring.base_seq();
        let mut subs: Vec<Subscriber> = (0..1000)
            .map(|_| Subscriber::new(Wire::SSE, None, &ring, tail, false, true))
            .collect();
        r.case(
            "flush: 1 new entry to each of 1000 clients",
            "client",
            1000,
            0.0,
            || {
                for s in subs.iter_mut() {
                    s.at = At::Live {
                        seq: tail,
                        offset: 0,
                    };
                    let _ = s.flush(&ring, &Renderer, &mut sink, usize::MAX);
                }
            },
        );
    }

    // --- timer wheel --------------------------------------------------------------------
    let deadlines: Vec<u64> = (0..10_000u64)
        .map(|i| 1 + (i.wrapping_mul(2_654_435_761) % 120_000))
        .collect();
    r.case(
        "timer: insert 10k (1 ms–2 min), advance all",
        "timer",
        10_000,
        0.0,
        || {
            let mut w: Wheel<u32> = Wheel::new(0);
            for (i, d) in deadlines.iter().enumerate() {
                w.insert(*d, i as u32);
            }
            let mut fired = Vec::with_capacity(10_000);
            let mut now = 0;
            while let Some(next) = w.next_deadline() {
                now = next.max(now);
                w.advance(now, &mut fired);
            }
            assert_eq!(fired.len(), 10_000);
        },
    );
    r.case(
        "timer: insert + cancel (header timeout)",
        "op",
        10_000,
        0.0,
        || {
            let mut w: Wheel<u32> = Wheel::new(0);
            let ids: Vec<_> = deadlines.iter().map(|d| w.insert(10_000 + d, 0)).collect();
            for id in ids {
                black_box(w.cancel(id));
            }
        },
    );
    {
        // A steady state: 10k armed timers, one re-armed heartbeat fired per call.
        let mut w: Wheel<u32> = Wheel::new(0);
        for (i, d) in deadlines.iter().enumerate() {
            w.insert(d + 1_000_000, i as u32);
        }
        let mut now = 0u64;
        let mut fired = Vec::new();
        r.case(
            "timer: next_deadline + advance, 10k armed",
            "turn",
            1,
            0.0,
            || {
                now += 1;
                w.insert(now, 0);
                black_box(w.next_deadline());
                fired.clear();
                w.advance(now, &mut fired);
            },
        );
    }
}
