//! Newline-delimited JSON framing for TCP clients (entries are framed in the fan-out
//! buffer; this is everything else).

use crate::config::HeartbeatConfig;
use crate::entry::write_json_string;
use crate::sse::{HeartbeatStats, heartbeat_json};

/// A heartbeat line; TCP heartbeats are always JSON.
pub fn heartbeat(out: &mut Vec<u8>, cfg: &HeartbeatConfig, stats: HeartbeatStats) {
    heartbeat_json(out, cfg, stats);
    out.push(b'\n');
}

/// The one line a refused connection gets before it is closed.
pub fn error_line(out: &mut Vec<u8>, message: &str) {
    out.extend_from_slice(b"{\"error\":");
    write_json_string(out, message.as_bytes());
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HeartbeatFormat;

    #[test]
    fn lines() {
        let mut out = Vec::new();
        error_line(&mut out, "Rate limit exceeded");
        assert_eq!(out, b"{\"error\":\"Rate limit exceeded\"}\n");
        let mut out = Vec::new();
        let cfg = HeartbeatConfig {
            interval_secs: 1,
            format: HeartbeatFormat::Json,
            include_timestamp: false,
            include_stats: true,
        };
        heartbeat(
            &mut out,
            &cfg,
            HeartbeatStats {
                unix_secs: 0,
                active_clients: 2,
                uptime_secs: 9,
            },
        );
        assert_eq!(
            out,
            b"{\"type\":\"heartbeat\",\"active_clients\":2,\"uptime_seconds\":9}\n"
        );
    }
}
