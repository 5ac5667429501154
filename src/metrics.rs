//! Prometheus text exposition (format 0.0.4) of every stream's counters and the process
//! basics (SPEC §12). Pure: rendered from what it is given; `/status` reads the same
//! counters. Counters end in `_total`; units are bytes and seconds; there are no per-file
//! labels (a directory of ten thousand files must not make ten thousand series).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::stream::{ServerKind, Stream};

/// Process-wide figures, read once per scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Process {
    pub resident_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: i64,
}

impl Process {
    /// Reads this process's figures from `/proc` and `getrusage`.
    pub fn read(start_time_seconds: i64) -> Process {
        // SAFETY: sysconf takes no pointers; getrusage writes only the struct we pass,
        // a zeroed local of the right type.
        let (page, usage) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            (libc::sysconf(libc::_SC_PAGESIZE).max(1) as u64, usage)
        };
        let resident_pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        // SAFETY: getrlimit writes only the struct we pass, a valid local.
        let max_fds = unsafe {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur
            } else {
                0
            }
        };
        Process {
            resident_bytes: resident_pages * page,
            cpu_seconds: secs(usage.ru_utime) + secs(usage.ru_stime),
            open_fds,
            max_fds,
            start_time_seconds,
        }
    }
}

/// Problems and events counted process-wide.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub accept_errors: u64,
    pub inotify_overflows: u64,
    pub reloads: u64,
    pub reload_failures: u64,
    pub state_saves: u64,
    pub state_save_errors: u64,
    /// TLS handshakes that did not finish in time, or failed.
    pub tls_handshake_timeouts: u64,
    pub tls_handshake_failures: u64,
    /// HTTP responses by status code.
    pub http_responses: BTreeMap<u16, u64>,
}

/// Writes one metric family's header.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value, escaped as the format asks (`\`, `"` and newlines).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn transport(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::Http => "sse",
        ServerKind::Tcp => "tcp",
    }
}

/// Every sink's counters and gauges (SPEC §16), labelled by stream and sink; the family
/// `logwisp_forward_acked_total` is declared by the caller (it is there without sinks).
#[cfg(feature = "forward")]
type SinkFigure<'a> = &'a dyn Fn(&Stream, &crate::forward::sink::Sink) -> u64;

#[cfg(feature = "forward")]
fn forward_metrics(out: &mut String, streams: &[&Stream]) {
    let each =
        |out: &mut String, name: &str, f: &dyn Fn(&Stream, &crate::forward::sink::Sink) -> u64| {
            for s in streams {
                for k in &s.sinks {
                    let _ = writeln!(
                        out,
                        "{name}{{stream=\"{}\",sink=\"{}\"}} {}",
                        label(s.name()),
                        label(&k.cfg.name),
                        f(s, k)
                    );
                }
            }
        };
    each(out, "logwisp_forward_acked_total", &|_, k| k.stats.acked);
    let families: [(&str, &str, &str, SinkFigure); 8] = [
        (
            "logwisp_forward_published_total",
            "counter",
            "Entries published to a broker (republished ones included).",
            &|_, k| k.stats.published,
        ),
        (
            "logwisp_forward_republished_total",
            "counter",
            "Entries published again after a connection closed with them unacknowledged.",
            &|_, k| k.stats.republished,
        ),
        (
            "logwisp_forward_duplicates_total",
            "counter",
            "Republished entries JetStream already had (Nats-Msg-Id).",
            &|_, k| k.stats.duplicates,
        ),
        (
            "logwisp_forward_nacked_total",
            "counter",
            "Publishes the broker refused or did not answer in time.",
            &|_, k| k.stats.nacked,
        ),
        (
            "logwisp_forward_connects_total",
            "counter",
            "Connections a sink completed.",
            &|_, k| k.stats.connects,
        ),
        (
            "logwisp_forward_errors_total",
            "counter",
            "Failed connection attempts, refusals and server errors of a sink.",
            &|_, k| k.stats.errors,
        ),
        (
            "logwisp_forward_lag",
            "gauge",
            "Entries of the stream a broker has not acknowledged yet.",
            &|s, k| k.lag(s),
        ),
        (
            "logwisp_forward_connected",
            "gauge",
            "1 while a sink is connected to its broker.",
            &|_, k| u64::from(k.state == crate::forward::sink::SinkState::Connected),
        ),
    ];
    for (name, kind, help, f) in families {
        family(out, name, kind, help);
        each(out, name, f);
    }
    family(
        out,
        "logwisp_forward_dropped_total",
        "counter",
        "Entries a sink could never send, by reason.",
    );
    for s in streams {
        for k in &s.sinks {
            for (reason, n) in [
                ("too_large", k.stats.dropped_too_large),
                ("gone", k.stats.dropped_gone),
            ] {
                let _ = writeln!(
                    out,
                    "logwisp_forward_dropped_total{{stream=\"{}\",sink=\"{}\",reason=\"{reason}\"}} {n}",
                    label(s.name()),
                    label(&k.cfg.name)
                );
            }
        }
    }
}

/// One sample per stream.
fn per_stream(
    out: &mut String,
    streams: &[&Stream],
    (name, kind, help): (&str, &str, &str),
    value: impl Fn(&Stream) -> u64,
) {
    family(out, name, kind, help);
    for s in streams {
        let _ = writeln!(out, "{name}{{stream=\"{}\"}} {}", label(s.name()), value(s));
    }
}

/// One sample per stream and extra label value (transport, reason, kind).
fn per_stream_by(
    out: &mut String,
    streams: &[&Stream],
    (name, kind, help): (&str, &str, &str),
    key: &str,
    values: impl Fn(&Stream) -> Vec<(&'static str, u64)>,
) {
    family(out, name, kind, help);
    for s in streams {
        for (v, n) in values(s) {
            let _ = writeln!(
                out,
                "{name}{{stream=\"{}\",{key}=\"{v}\"}} {n}",
                label(s.name())
            );
        }
    }
}

/// Per server of a stream (transport label), from a server's figure.
fn servers(s: &Stream, f: impl Fn(&crate::stream::ServerState) -> u64) -> Vec<(&'static str, u64)> {
    [ServerKind::Http, ServerKind::Tcp]
        .into_iter()
        .filter_map(|k| s.server(k).map(|srv| (transport(k), f(srv))))
        .collect()
}

/// The whole exposition.
pub fn render(
    streams: &[&Stream],
    counters: &Counters,
    process: Process,
    version: &str,
    commit: &str,
) -> Vec<u8> {
    let mut out = String::with_capacity(8192);
    family(
        &mut out,
        "logwisp_build_info",
        "gauge",
        "The running build (always 1).",
    );
    let _ = writeln!(
        out,
        "logwisp_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        label(version),
        label(commit)
    );
    per_stream(
        &mut out,
        streams,
        (
            "logwisp_lines_read_total",
            "counter",
            "Lines read from the stream's files, and entries from its journals.",
        ),
        |s| s.monitor.counters.lines + s.journals.counters.entries,
    );
    per_stream(
        &mut out,
        streams,
        (
            "logwisp_read_bytes_total",
            "counter",
            "Bytes read from the stream's files and journalctl.",
        ),
        |s| s.monitor.counters.bytes + s.journals.counters.bytes,
    );
    per_stream(
        &mut out,
        streams,
        (
            "logwisp_entries_total",
            "counter",
            "Entries the stream produced (lines and notices).",
        ),
        Stream::total_entries,
    );
    per_stream_by(
        &mut out,
        streams,
        (
            "logwisp_lines_sent_total",
            "counter",
            "Entries sent to clients, by transport.",
        ),
        "transport",
        |s| servers(s, |srv| srv.lines_sent),
    );
    per_stream_by(
        &mut out,
        streams,
        (
            "logwisp_sent_bytes_total",
            "counter",
            "Bytes sent to clients, by transport.",
        ),
        "transport",
        |s| servers(s, |srv| srv.bytes_sent),
    );
    per_stream_by(
        &mut out,
        streams,
        (
            "logwisp_lines_dropped_total",
            "counter",
            "Entries clients never got, by why.",
        ),
        "reason",
        |s| {
            vec![
                ("gone", s.dropped_gone),
                ("forgotten", s.dropped_forgotten),
                ("earlier_run", s.dropped_earlier_run),
            ]
        },
    );
    per_stream_by(
        &mut out,
        streams,
        (
            "logwisp_clients",
            "gauge",
            "Connected clients, by transport.",
        ),
        "transport",
        |s| servers(s, |srv| srv.active_clients as u64),
    );
    per_stream(
        &mut out,
        streams,
        (
            "logwisp_clients_catching_up",
            "gauge",
            "Clients behind the in-memory buffer, served from the files.",
        ),
        |s| s.catch_up.clients as u64,
    );
    per_stream_by(
        &mut out,
        streams,
        (
            "logwisp_connections_rejected_total",
            "counter",
            "Connections and requests refused, by why.",
        ),
        "reason",
        |s| {
            let sum = |f: fn(&crate::stream::ServerState) -> u64| {
                [s.http.as_ref(), s.tcp.as_ref()]
                    .into_iter()
                    .flatten()
                    .map(f)
                    .sum()
            };
            vec![
                ("rate_limit", sum(|srv| srv.rejected_rate)),
                ("connection_limit", sum(|srv| srv.rejected_connections)),
                ("ip_denied", sum(|srv| srv.rejected_ip)),
                ("auth", sum(|srv| srv.rejected_auth)),
                ("auth_busy", sum(|srv| srv.rejected_auth_busy)),
            ]
        },
    );
    per_stream(
        &mut out,
        streams,
        (
            "logwisp_file_rotations_total",
            "counter",
            "Rotations detected.",
        ),
        |s| s.monitor.counters.rotations,
    );
    per_stream(
        &mut out,
        streams,
        ("logwisp_files_watched", "gauge", "Files followed now."),
        |s| s.monitor.active_watchers() as u64,
    );
    per_stream(
        &mut out,
        streams,
        (
            "logwisp_truncated_lines_total",
            "counter",
            "Lines longer than max_line_bytes, cut and delivered.",
        ),
        |s| s.monitor.counters.truncated_lines + s.journals.counters.truncated,
    );
    per_stream(
        &mut out,
        streams,
        (
            "logwisp_journal_entries_total",
            "counter",
            "Entries read from the systemd journal.",
        ),
        |s| s.journals.counters.entries,
    );
    per_stream(
        &mut out,
        streams,
        (
            "logwisp_journal_restarts_total",
            "counter",
            "journalctl followers started again after one ended.",
        ),
        |s| s.journals.counters.restarts,
    );
    per_stream(
        &mut out,
        streams,
        (
            "logwisp_lines_filtered_total",
            "counter",
            "Lines kept out by the stream's [[streams.filters]].",
        ),
        |s| s.filtered_lines,
    );
    per_stream_by(
        &mut out,
        streams,
        (
            "logwisp_errors_total",
            "counter",
            "Problems met while tailing, by kind.",
        ),
        "kind",
        |s| {
            let c = s.monitor.counters;
            vec![
                ("read", c.read_errors),
                ("watch", c.watch_errors),
                ("not_regular_file", c.skipped_files),
                ("descriptor_eviction", c.descriptor_evictions),
                ("journal", s.journals.counters.errors),
                ("journal_unreadable", s.journals.counters.unreadable),
            ]
        },
    );
    family(
        &mut out,
        "logwisp_forward_acked_total",
        "counter",
        "Entries a broker acknowledged, by sink.",
    );
    #[cfg(feature = "forward")]
    forward_metrics(&mut out, streams);
    let global = [
        (
            "logwisp_accept_errors_total",
            "Accepts that failed (descriptor exhaustion and the like).",
            counters.accept_errors,
        ),
        (
            "logwisp_inotify_overflows_total",
            "inotify queue overflows (each followed by a full rescan).",
            counters.inotify_overflows,
        ),
        (
            "logwisp_reloads_total",
            "Configuration reloads applied.",
            counters.reloads,
        ),
        (
            "logwisp_reload_failures_total",
            "Configuration reloads refused (the running config was kept).",
            counters.reload_failures,
        ),
        (
            "logwisp_tls_handshake_failures_total",
            "TLS handshakes that never finished: refused (bad or missing client certificate, not TLS at all) or timed out.",
            counters.tls_handshake_failures,
        ),
        (
            "logwisp_tls_handshake_timeouts_total",
            "TLS handshakes that did not finish within the request-head timeout.",
            counters.tls_handshake_timeouts,
        ),
        (
            "logwisp_state_saves_total",
            "State files written.",
            counters.state_saves,
        ),
        (
            "logwisp_state_save_errors_total",
            "State files that could not be written.",
            counters.state_save_errors,
        ),
    ];
    for (name, help, value) in global {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    family(
        &mut out,
        "logwisp_http_responses_total",
        "counter",
        "HTTP responses, by status code.",
    );
    for (code, n) in &counters.http_responses {
        let _ = writeln!(out, "logwisp_http_responses_total{{code=\"{code}\"}} {n}");
    }
    family(
        &mut out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    );
    let _ = writeln!(
        out,
        "process_resident_memory_bytes {}",
        process.resident_bytes
    );
    family(
        &mut out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    );
    let _ = writeln!(out, "process_cpu_seconds_total {}", process.cpu_seconds);
    family(
        &mut out,
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
    );
    let _ = writeln!(out, "process_open_fds {}", process.open_fds);
    family(
        &mut out,
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
    );
    let _ = writeln!(out, "process_max_fds {}", process.max_fds);
    family(
        &mut out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    );
    let _ = writeln!(
        out,
        "process_start_time_seconds {}",
        process.start_time_seconds
    );
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_declared_once_and_labels_escaped() {
        let mut c = Counters::default();
        c.http_responses.insert(200, 3);
        let text = String::from_utf8(render(&[], &c, Process::default(), "v1\"x", "abc")).unwrap();
        let mut seen = std::collections::HashSet::new();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            assert!(seen.insert(line.to_string()), "declared twice: {line}");
        }
        assert!(text.contains("logwisp_build_info{version=\"v1\\\"x\",commit=\"abc\"} 1\n"));
        assert!(text.contains("logwisp_http_responses_total{code=\"200\"} 3\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            if line.contains("_total") {
                assert!(name.ends_with("_total"), "{line}");
            }
        }
    }
}
