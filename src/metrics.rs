//! Prometheus text exposition (format 0.0.4) of every stream's counters and the
//! process basics (SPEC §12). Pure: rendered from what it is given.

use std::fmt::Write;

use crate::stream::Stream;

/// Process-wide figures read once per scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Process {
    pub resident_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    pub start_time_seconds: i64,
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

/// The whole exposition.
pub fn render(streams: &[&Stream], process: Process, version: &str, commit: &str) -> Vec<u8> {
    let mut out = String::with_capacity(4096);
    let per_stream =
        |out: &mut String, name: &str, kind: &str, help: &str, value: &dyn Fn(&Stream) -> u64| {
            family(out, name, kind, help);
            for s in streams {
                let _ = writeln!(out, "{name}{{stream=\"{}\"}} {}", label(s.name()), value(s));
            }
        };
    per_stream(
        &mut out,
        "logwisp_lines_read_total",
        "counter",
        "Lines read from the stream's files.",
        &|s| s.monitor.counters.lines,
    );
    per_stream(
        &mut out,
        "logwisp_read_bytes_total",
        "counter",
        "Bytes read from the stream's files.",
        &|s| s.monitor.counters.bytes,
    );
    per_stream(
        &mut out,
        "logwisp_file_rotations_total",
        "counter",
        "Rotations detected.",
        &|s| s.monitor.counters.rotations,
    );
    per_stream(
        &mut out,
        "logwisp_files_watched",
        "gauge",
        "Files followed now.",
        &|s| s.monitor.active_watchers() as u64,
    );
    let _ = version;
    let _ = commit;
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
    out.into_bytes()
}
