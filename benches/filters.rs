//! Question: what do filters cost per line or entry (ns) — stream filters on raw lines, one client filter, and a FilterSet of 4 and of 64 distinct filters evaluated once per entry — and is regex-lite fast enough that filtering clients keep up with unfiltered ones?
//!
//! `cargo bench --bench filters [-- --quick] [-- FILTER]`: plain timing loops like
//! `hot_paths`; each case runs for about a second (0.2 s with `--quick`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use logwisp::filter::{ClientFilter, FilterKind, FilterSet, FilterSpec, Logic, StreamFilters};

/// Nanoseconds per call of `f`, the fastest of five rounds after a warm-up.
fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < budget / 10 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < budget / 5 {
            f();
            calls += 1;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / calls as f64);
    }
    best
}

fn client(q: &str) -> ClientFilter {
    ClientFilter::from_query(Some(q)).expect("valid query")
}

fn stream(kind: FilterKind, logic: Logic, patterns: &[&str]) -> StreamFilters {
    StreamFilters::new(&[FilterSpec {
        kind,
        logic,
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
    }])
    .expect("valid patterns")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let budget = if args.iter().any(|a| a == "--quick") {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    };
    let only = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(String::as_str);
    let case = |name: &str, f: &mut dyn FnMut()| {
        if only.is_some_and(|o| !name.contains(o)) {
            return;
        }
        let ns = time(budget, f);
        println!("{name:<52} {ns:>9.1} ns/op {:>12.0} op/s", 1e9 / ns);
    };

    // A typical access-log line (~150 bytes) and a typical application message.
    let line: &[u8] =
        b"10.1.2.3 - - [07/Jan/2025:10:30:00 +0000] \"GET /api/v1/orders?page=2 HTTP/1.1\" \
200 5123 \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\" rt=0.012";
    let message = "[ERROR] payment service: upstream request failed after 3 retries (order 81723, \
user 5521): connection reset by peer";
    let long: String = message.repeat(64);

    let none = StreamFilters::new(&[]).expect("empty");
    case("stream: no filters", &mut || {
        black_box(none.keep(black_box(line)));
    });
    let health = stream(
        FilterKind::Exclude,
        Logic::Or,
        &["GET /health", "GET /ready"],
    );
    case("stream: exclude 2 literals (no match)", &mut || {
        black_box(health.keep(black_box(line)));
    });
    let status = stream(FilterKind::Include, Logic::Or, &[r#"" [45]\d\d "#]);
    case("stream: include 1 regex (no match)", &mut || {
        black_box(status.keep(black_box(line)));
    });

    let levels = client("levels=ERROR,WARN");
    case("client: levels", &mut || {
        black_box(levels.matches(black_box("ERROR"), message, "app.log"));
    });
    let literal = client("filter=timeout");
    case("client: filter=timeout (no match, 130 B)", &mut || {
        black_box(literal.matches("ERROR", black_box(message), "app.log"));
    });
    case("client: filter=timeout (no match, 8 KiB)", &mut || {
        black_box(literal.matches("ERROR", black_box(&long), "app.log"));
    });
    let folded = client("filter=(?i)TIMEOUT");
    case("client: filter=(?i)TIMEOUT (no match, 130 B)", &mut || {
        black_box(folded.matches("ERROR", black_box(message), "app.log"));
    });
    let alternation = client("filter=reset|refused|timed?\\s*out");
    case("client: filter=alternation (match, 130 B)", &mut || {
        black_box(alternation.matches("ERROR", black_box(message), "app.log"));
    });
    let glob = client("source=app*.log");
    case("client: source=app*.log", &mut || {
        black_box(glob.matches("ERROR", message, black_box("app.log")));
    });

    // What a page's users produce: level toggles over one shared search.
    let mut four = FilterSet::new();
    for q in [
        "levels=ERROR",
        "levels=ERROR,WARN",
        "levels=ERROR,WARN&filter=payment",
        "filter=payment&exclude=retries",
    ] {
        four.add(client(q), 0).expect("room");
    }
    case("set: 4 distinct filters, 2 shared regexes", &mut || {
        black_box(four.evaluate(black_box("ERROR"), black_box(message), "app.log"));
    });
    let mut full = FilterSet::new();
    for i in 0..64 {
        full.add(client(&format!("filter=order {i}\\b")), 0)
            .expect("room");
    }
    case("set: 64 distinct regexes (worst case)", &mut || {
        black_box(full.evaluate(black_box("ERROR"), black_box(message), "app.log"));
    });

    case("parse: levels=ERROR,WARN&filter=timeout", &mut || {
        black_box(client(black_box("levels=ERROR,WARN&filter=timeout")));
    });
}
