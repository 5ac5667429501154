//! Server-Sent Events framing for everything that is not a log entry (entries are framed
//! once, in the fan-out buffer).

use crate::config::{HeartbeatConfig, HeartbeatFormat};
use crate::entry::write_json_string;
use crate::fanout::push_decimal;
use crate::timefmt;

/// Writes the response head of a stream. An HTTP/1.1 body is chunked (clients such as
/// urllib3 hold back a body that is neither chunked nor sized); an HTTP/1.0 one ends with
/// the connection. `date` is the `Date` value ([`timefmt::http_date`] of the reactor's
/// turn).
pub fn response_head(out: &mut Vec<u8>, date: &[u8; 29], chunked: bool) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n");
    if chunked {
        out.extend_from_slice(b"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n");
    } else {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(
        b"Access-Control-Allow-Origin: *\r\nX-Accel-Buffering: no\r\nServer: logwisp\r\n\r\n",
    );
}

/// Reconnect delay suggested to browsers (ms): prompt, since a reconnect loses nothing.
pub const RETRY_MS: u64 = 1000;

/// The goodbye at shutdown.
pub const DISCONNECT: &[u8] = b"event: disconnect\ndata: {\"reason\":\"server_shutdown\"}\n\n";
/// The goodbye when a reload removes the stream (or its HTTP server).
pub const STREAM_REMOVED: &[u8] = b"event: disconnect\ndata: {\"reason\":\"stream_removed\"}\n\n";
/// The goodbye when a reload changes who may connect: reconnect and authenticate again.
pub const AUTH_CHANGED: &[u8] = b"event: disconnect\ndata: {\"reason\":\"auth_changed\"}\n\n";

/// Counters a heartbeat may carry.
#[derive(Debug, Clone, Copy)]
pub struct HeartbeatStats {
    pub unix_secs: i64,
    pub active_clients: usize,
    pub uptime_secs: u64,
}

/// The first event: `retry:` hint, then `event: connected` with the client's details.
pub fn connected(
    out: &mut Vec<u8>,
    client_id: &str,
    stream: &str,
    stream_path: &str,
    status_path: &str,
    buffer_size: usize,
) {
    out.extend_from_slice(b"retry: ");
    push_decimal(out, RETRY_MS);
    out.extend_from_slice(b"\nevent: connected\ndata: {\"client_id\":");
    write_json_string(out, client_id.as_bytes());
    out.extend_from_slice(b",\"stream\":");
    write_json_string(out, stream.as_bytes());
    out.extend_from_slice(b",\"stream_path\":");
    write_json_string(out, stream_path.as_bytes());
    out.extend_from_slice(b",\"status_path\":");
    write_json_string(out, status_path.as_bytes());
    out.extend_from_slice(b",\"buffer_size\":");
    push_decimal(out, buffer_size as u64);
    out.extend_from_slice(b"}\n\n");
}

/// `count` entries will never reach the client; `exact` is false when more may be
/// missing than counted (an id from an older run).
pub fn dropped(out: &mut Vec<u8>, count: u64, exact: bool) {
    out.extend_from_slice(b"event: dropped\ndata: {\"dropped\":");
    push_decimal(out, count);
    if !exact {
        out.extend_from_slice(b",\"exact\":false");
    }
    out.extend_from_slice(b"}\n\n");
}

/// `{"type":"heartbeat",...}` with the parts the config enables (shared with TCP).
pub fn heartbeat_json(out: &mut Vec<u8>, cfg: &HeartbeatConfig, stats: HeartbeatStats) {
    out.extend_from_slice(b"{\"type\":\"heartbeat\"");
    if cfg.include_timestamp {
        out.extend_from_slice(b",\"timestamp\":\"");
        out.extend_from_slice(&timefmt::rfc3339_seconds(stats.unix_secs));
        out.push(b'"');
    }
    if cfg.include_stats {
        out.extend_from_slice(b",\"active_clients\":");
        push_decimal(out, stats.active_clients as u64);
        out.extend_from_slice(b",\"uptime_seconds\":");
        push_decimal(out, stats.uptime_secs);
    }
    out.push(b'}');
}

/// A heartbeat event. It never carries an `id:`, so it never moves a resume position.
pub fn heartbeat(out: &mut Vec<u8>, cfg: &HeartbeatConfig, stats: HeartbeatStats) {
    match cfg.format {
        HeartbeatFormat::Comment => {
            out.extend_from_slice(b": heartbeat");
            if cfg.include_timestamp {
                out.push(b' ');
                out.extend_from_slice(&timefmt::rfc3339_seconds(stats.unix_secs));
            }
            if cfg.include_stats {
                out.extend_from_slice(b" clients=");
                push_decimal(out, stats.active_clients as u64);
                out.extend_from_slice(b" uptime=");
                push_decimal(out, stats.uptime_secs);
                out.push(b's');
            }
            out.extend_from_slice(b"\n\n");
        }
        HeartbeatFormat::Json => {
            out.extend_from_slice(b"event: heartbeat\ndata: ");
            heartbeat_json(out, cfg, stats);
            out.extend_from_slice(b"\n\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: HeartbeatStats = HeartbeatStats {
        unix_secs: 1_736_245_800, // 2025-01-07T10:30:00Z
        active_clients: 5,
        uptime_secs: 3600,
    };

    fn cfg(format: HeartbeatFormat, ts: bool, stats: bool) -> HeartbeatConfig {
        HeartbeatConfig {
            interval_secs: 30,
            format,
            include_timestamp: ts,
            include_stats: stats,
        }
    }

    fn render(c: &HeartbeatConfig) -> String {
        let mut out = Vec::new();
        heartbeat(&mut out, c, STATS);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn comment_heartbeats_match_the_original() {
        assert_eq!(
            render(&cfg(HeartbeatFormat::Comment, true, true)),
            ": heartbeat 2025-01-07T10:30:00Z clients=5 uptime=3600s\n\n"
        );
        assert_eq!(
            render(&cfg(HeartbeatFormat::Comment, false, false)),
            ": heartbeat\n\n"
        );
    }

    #[test]
    fn json_heartbeats_match_the_original() {
        assert_eq!(
            render(&cfg(HeartbeatFormat::Json, true, true)),
            "event: heartbeat\ndata: {\"type\":\"heartbeat\",\"timestamp\":\"2025-01-07T10:30:00Z\",\"active_clients\":5,\"uptime_seconds\":3600}\n\n"
        );
    }

    #[test]
    fn response_head_carries_the_date() {
        let mut out = Vec::new();
        response_head(&mut out, b"Tue, 07 Jan 2025 10:30:00 GMT", true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\n\
             Date: Tue, 07 Jan 2025 10:30:00 GMT\r\n\
             Content-Type: text/event-stream\r\n\
             Cache-Control: no-cache\r\n\
             Connection: keep-alive\r\n\
             Transfer-Encoding: chunked\r\n\
             Access-Control-Allow-Origin: *\r\n\
             X-Accel-Buffering: no\r\n\
             Server: logwisp\r\n\r\n"
        );
        let mut out = Vec::new();
        response_head(&mut out, b"Tue, 07 Jan 2025 10:30:00 GMT", false);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("\r\nConnection: close\r\n")
        );
    }

    #[test]
    fn connected_event() {
        let mut out = Vec::new();
        connected(&mut out, "7", "app", "/stream", "/status", 1000);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "retry: 1000\nevent: connected\ndata: {\"client_id\":\"7\",\"stream\":\"app\",\"stream_path\":\"/stream\",\"status_path\":\"/status\",\"buffer_size\":1000}\n\n"
        );
    }
}
