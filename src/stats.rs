//! The status JSON (`GET {status_path}`, router `/status`) and the console summary.
//! Field names follow the original logwisp README so existing dashboards keep working.

use serde_json::{Map, Value, json};

use crate::config::{HeartbeatFormat, NameMatcher};
use crate::ratelimit::Limiter;
use crate::stream::{ServerState, Stream};
use crate::tail::source::Phase;
use crate::version;

/// Integral floats print as integers (`10`, not `10.0`), as the original did.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

pub fn rate_limit_json(limiter: Option<&Limiter>) -> Value {
    match limiter {
        None => json!({ "enabled": false }),
        Some(l) => json!({
            "enabled": true,
            "total_requests": l.total_requests,
            "blocked_requests": l.blocked_requests,
            "active_ips": l.active_ips(),
            "total_connections": l.total_connections,
            "config": {
                "requests_per_second": number(l.config.requests_per_second),
                "burst_size": l.config.burst_size,
                "limit_by": l.config.limit_by.as_str(),
                "response_code": l.config.response_code,
                "max_connections_per_ip": l.config.max_connections_per_ip,
                "max_total_connections": l.config.max_total_connections,
            }
        }),
    }
}

fn heartbeat_json(server: &ServerState) -> Value {
    match &server.heartbeat {
        None => json!({ "enabled": false }),
        Some(h) => json!({
            "enabled": true,
            "interval": h.interval_secs,
            "format": match h.format {
                HeartbeatFormat::Comment => "comment",
                HeartbeatFormat::Json => "json",
            },
            "include_timestamp": h.include_timestamp,
            "include_stats": h.include_stats,
        }),
    }
}

fn server_json(server: &ServerState, uptime_secs: u64, router: bool) -> Value {
    let mut v = json!({
        "type": server.kind.name(),
        "port": server.bound.map_or(0, |a| a.port()),
        "address": server.bound.map(|a| a.ip().to_string()),
        "active_clients": server.active_clients,
        "clients_served": server.clients_served,
        "buffer_size": server.buffer_size,
        "uptime_seconds": uptime_secs,
        "heartbeat": heartbeat_json(server),
        "rate_limit": rate_limit_json(server.limiter.as_ref()),
        "lines_sent": server.lines_sent,
        "bytes_sent": server.bytes_sent,
        "rejected": {
            "rate_limit": server.rejected_rate,
            "connection_limit": server.rejected_connections,
            "ip": server.rejected_ip,
            "auth": server.rejected_auth,
            "auth_busy": server.rejected_auth_busy,
        },
    });
    if server.kind == crate::stream::ServerKind::Http {
        v["mode"] = json!({ "standalone": !router, "router": router });
    }
    v
}

/// Status of one stream.
pub fn stream_status(stream: &Stream, uptime_secs: u64, router: bool) -> Value {
    let m = &stream.monitor;
    let mut watchers: Vec<Value> = m
        .names
        .iter()
        .map(|(n, name)| {
            let source = name.source.and_then(|k| m.sources.get(k));
            let primary = source.is_some_and(|s| {
                s.names
                    .first()
                    .is_some_and(|(t, b)| *t == name.target && *b == name.base)
            });
            let state = match source {
                Some(_) if !primary => "alias",
                Some(s) if s.file.is_some() => "reading",
                Some(_) => "idle",
                None if name.last_error.is_some() => "error",
                None => "waiting",
            };
            let counted = source.filter(|_| primary);
            json!({
                "path": m.name_path(n).display().to_string(),
                "state": state,
                "size": source.map_or(0, |s| s.last_size),
                "position": source.map_or(0, |s| s.position()),
                "entries_read": counted.map_or(0, |s| s.entries_read),
                "rotations": name.rotations,
                "truncated_lines": counted.map_or(0, |s| s.truncated_lines),
                "last_error": name.last_error.as_ref().or(source.and_then(|s| s.last_error.as_ref())),
            })
        })
        .collect();
    watchers.extend(
        m.sources
            .iter()
            .filter(|(_, s)| matches!(s.phase, Phase::Retired { .. }))
            .map(|(_, s)| {
                json!({
                    "path": s.path.display().to_string(),
                    "state": "retired",
                    "size": s.last_size,
                    "position": s.position(),
                    "entries_read": s.entries_read,
                    "rotations": 0,
                    "truncated_lines": s.truncated_lines,
                    "last_error": s.last_error,
                })
            }),
    );
    watchers.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    let journals = &stream.journals;
    watchers.extend(journals.targets.iter().map(|t| {
        json!({
            "path": t.path(),
            "journal": true,
            "state": t.state(),
            "cursor": t.cursor,
            "entries_read": t.entries_read,
            "restarts": t.restarts,
            "errors": t.errors,
            "pid": t.pid(),
            "size": 0,
            "position": 0,
            "rotations": 0,
            "truncated_lines": 0,
            "last_error": t.waiting.as_ref().or(t.last_error.as_ref()),
        })
    }));
    let targets: Vec<Value> = m
        .targets
        .iter()
        .map(|t| {
            let (pattern, is_file) = match &t.matcher {
                NameMatcher::Exact(_) => (None, true),
                NameMatcher::Glob(g) => (Some(g.as_str()), false),
            };
            json!({
                "path": t.path.display().to_string(),
                "pattern": pattern,
                "is_file": is_file,
                "exists": t.dir_exists,
                "watched": t.watch.is_some(),
                "polled": t.polled,
                "last_error": t.last_error,
            })
        })
        .chain(journals.targets.iter().map(|t| {
            json!({
                "path": t.path(),
                "journal": true,
                "units": t.cfg.units,
                "identifiers": t.cfg.identifiers,
                "priority": t.cfg.priority.map(|p| p.as_str()),
                "fields": t.cfg.fields,
                "exists": t.waiting.is_none(),
                "last_error": t.waiting.as_ref().or(t.last_error.as_ref()),
            })
        }))
        .collect();
    let truncated = m.counters.truncated_lines + journals.counters.truncated;
    let jc = journals.counters;
    let sse_clients = stream.http.as_ref().map_or(0, |s| s.active_clients);
    let tcp_clients = stream.tcp.as_ref().map_or(0, |s| s.active_clients);

    let mut root = Map::new();
    root.insert("service".into(), json!("LogWisp"));
    root.insert("version".into(), json!(version::TAG));
    root.insert("stream".into(), json!(stream.name()));
    root.insert("uptime_seconds".into(), json!(uptime_secs));
    if let Some(h) = &stream.http {
        root.insert("server".into(), server_json(h, uptime_secs, router));
        root.insert(
            "endpoints".into(),
            json!({ "stream": stream.stream_path, "status": stream.status_path }),
        );
    }
    if let Some(t) = &stream.tcp {
        let key = if stream.http.is_some() {
            "tcp_server"
        } else {
            "server"
        };
        root.insert(key.into(), server_json(t, uptime_secs, router));
    }
    root.insert(
        "monitor".into(),
        json!({
            "active_watchers": m.active_watchers() + journals.active(),
            "total_entries": stream.total_entries(),
            "dropped_entries": stream.dropped,
            "truncated_lines": truncated,
            "filtered_lines": stream.filtered_lines,
            "lines_read": m.counters.lines + jc.entries,
            "bytes_read": m.counters.bytes + jc.bytes,
            "rotations": m.counters.rotations,
            "open_files": m.open_files(),
            "errors": {
                "read": m.counters.read_errors,
                "watch": m.counters.watch_errors,
                "not_regular_file": m.counters.skipped_files,
                "descriptor_eviction": m.counters.descriptor_evictions,
                "journal": jc.errors,
                "journal_unreadable": jc.unreadable,
            },
            "journal": {
                "entries_read": jc.entries,
                "bytes_read": jc.bytes,
                "restarts": jc.restarts,
                "replays": jc.replays,
                "replaying": journals.replays.len(),
            },
            "check_interval_ms": stream.cfg.check_interval_ms,
            "max_line_bytes": stream.cfg.max_line_bytes,
            "targets": targets,
            "watchers": watchers,
        }),
    );
    root.insert(
        "delivery".into(),
        json!({
            "first_sequence": stream.ids.first,
            "next_sequence": stream.ring.next_seq(),
            "oldest_sequence": stream.history.first_seq(),
            "buffer_oldest_sequence": stream.ring.base_seq(),
            "history_runs": stream.history.runs(),
            "catching_up_clients": stream.catch_up.clients,
            "catch_up_max_lag": stream.catch_up.max_lag,
            "paced": stream.paced,
            "buffered_entries": stream.ring.len(),
            "buffer_capacity": stream.ring.capacity(),
            "buffered_bytes": stream.ring.held_bytes(),
            "sse_clients": sse_clients,
            "tcp_clients": tcp_clients,
            "bytes_sent": stream.bytes_sent,
            "dropped_entries": stream.dropped,
            "dropped_by_reason": {
                "gone": stream.dropped_gone,
                "forgotten": stream.dropped_forgotten,
                "earlier_run": stream.dropped_earlier_run,
            },
        }),
    );
    let http_limiter = stream.http.as_ref().and_then(|h| h.limiter.as_ref());
    let tcp_limiter = stream.tcp.as_ref().and_then(|t| t.limiter.as_ref());
    let mut features = Map::new();
    if let Some(h) = &stream.http {
        features.insert("heartbeat".into(), heartbeat_json(h));
    } else if let Some(t) = &stream.tcp {
        features.insert("heartbeat".into(), heartbeat_json(t));
    }
    features.insert(
        "rate_limit".into(),
        rate_limit_json(if stream.http.is_some() {
            http_limiter
        } else {
            tcp_limiter
        }),
    );
    root.insert("features".into(), Value::Object(features));
    #[cfg(feature = "forward")]
    if !stream.sinks.is_empty() {
        root.insert(
            "forward".into(),
            Value::Array(stream.sinks.iter().map(|k| sink_json(stream, k)).collect()),
        );
    }
    Value::Object(root)
}

/// One sink (SPEC §16) in `/status`.
#[cfg(feature = "forward")]
fn sink_json(stream: &Stream, k: &crate::forward::sink::Sink) -> Value {
    let st = &k.stats;
    json!({
        "name": k.cfg.name,
        "type": k.cfg.kind.as_str(),
        "state": k.state.name(),
        "url": k.url,
        "subject": crate::forward::expand_template(&k.cfg.subject, stream.name()),
        "lag": k.lag(stream),
        "backlog_files": k.feed.backlog.len(),
        "catching_up": !matches!(k.feed.at, crate::forward::sink::FeedAt::Live(_)),
        "in_flight": k.engine.in_flight(),
        "published": st.published,
        "acked": st.acked,
        "duplicates": st.duplicates,
        "republished": st.republished,
        "nacked": st.nacked,
        "dropped": st.dropped(),
        "dropped_by_reason": { "too_large": st.dropped_too_large, "gone": st.dropped_gone },
        "connects": st.connects,
        "disconnects": st.disconnects,
        "connect_failures": st.connect_failures,
        "auth_failures": st.auth_failures,
        "tls_failures": st.tls_failures,
        "errors": st.errors,
        "last_error": k.last_error,
    })
}

/// Router mode `/status`: every stream.
pub fn global_status(streams: &[&Stream], uptime_secs: u64) -> Value {
    let mut all = Map::new();
    for s in streams {
        all.insert(s.name().to_string(), stream_status(s, uptime_secs, true));
    }
    let total_clients: usize = streams
        .iter()
        .map(|s| {
            s.http.as_ref().map_or(0, |h| h.active_clients)
                + s.tcp.as_ref().map_or(0, |t| t.active_clients)
        })
        .sum();
    json!({
        "service": "LogWisp",
        "version": version::TAG,
        "mode": "router",
        "uptime_seconds": uptime_secs,
        "total_streams": streams.len(),
        "total_clients": total_clients,
        "streams": all,
    })
}

/// Local wall-clock `HH:MM:SS` for console lines.
pub fn local_hms(unix_secs: i64) -> String {
    // time_t is left to inference: naming it is deprecated on musl (its width changed),
    // and a time that does not fit (32-bit time_t) takes the fallback below. Where
    // time_t is i64 the conversion is the identity, which clippy would flag.
    #[allow(clippy::useless_conversion)]
    let tm = unix_secs.try_into().ok().and_then(|t| {
        // SAFETY: `tm` is plain data that localtime_r fully initialises on success; both
        // pointers are valid for the duration of the call and localtime_r is thread-safe.
        unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            (!libc::localtime_r(&t, &mut tm).is_null()).then_some(tm)
        }
    });
    match tm {
        Some(tm) => format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec),
        None => {
            let c = crate::timefmt::Civil::from_unix_micros(unix_secs.saturating_mul(1_000_000));
            format!("{:02}:{:02}:{:02}", c.hour, c.minute, c.second)
        }
    }
}

/// The periodic console block: a header line and one line per stream.
pub fn console_summary(streams: &[&Stream], unix_secs: i64) -> String {
    let mut out = format!(
        "[{}] Active streams: {}\n",
        local_hms(unix_secs),
        streams.len()
    );
    for s in streams {
        let tcp = s.tcp.as_ref().map_or(0, |t| t.active_clients);
        let http = s.http.as_ref().map_or(0, |h| h.active_clients);
        let blocked =
            s.http.as_ref().map_or(0, |h| h.blocked()) + s.tcp.as_ref().map_or(0, |t| t.blocked());
        out.push_str(&format!(
            "  {}: watchers={} entries={} tcp_conns={} http_conns={} dropped={} blocked={}\n",
            s.name(),
            s.monitor.active_watchers() + s.journals.active(),
            s.total_entries(),
            tcp,
            http,
            s.dropped,
            blocked
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::local_hms;

    fn is_hms(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 8
            && b[2] == b':'
            && b[5] == b':'
            && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
    }

    #[test]
    fn console_times_are_hh_mm_ss_even_for_times_localtime_refuses() {
        for secs in [0, 1_796_000_000, -1, i64::MAX, i64::MIN] {
            let hms = local_hms(secs);
            assert!(is_hms(&hms), "{secs}: {hms:?}");
        }
    }
}
