//! A stream at run time: its tailer, its fan-out buffer and the state of its servers.
//! Sockets stay in the reactor; this is the part that has none.

use std::net::SocketAddr;

use crate::config::{HeartbeatConfig, StreamConfig};
use crate::fanout::{ControlRenderer, Framing, Ring};
use crate::ratelimit::Limiter;
use crate::sse::{self, HeartbeatStats};
use crate::tail::{EntrySink, Monitor};
use crate::tcp;

impl EntrySink for Ring {
    fn push_entry(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.push(write);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Tcp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Tcp => "tcp",
        }
    }

    pub fn framing(self) -> Framing {
        match self {
            Protocol::Http => Framing::Sse,
            Protocol::Tcp => Framing::Tcp,
        }
    }
}

/// One server (HTTP/SSE or TCP) of a stream.
#[derive(Debug)]
pub struct ServerState {
    pub protocol: Protocol,
    /// Index of the listener serving it (shared between streams in router mode).
    pub listener: usize,
    pub bound: Option<SocketAddr>,
    pub buffer_size: usize,
    pub heartbeat: Option<HeartbeatConfig>,
    pub limiter: Option<Limiter>,
    /// Open streaming clients.
    pub active_clients: usize,
    /// Streaming clients accepted since start.
    pub clients_served: u64,
    /// Requests answered (HTTP) or connections accepted (TCP).
    pub requests: u64,
}

impl ServerState {
    pub fn new(
        protocol: Protocol,
        buffer_size: usize,
        heartbeat: Option<HeartbeatConfig>,
        limiter: Option<Limiter>,
    ) -> ServerState {
        ServerState {
            protocol,
            listener: usize::MAX,
            bound: None,
            buffer_size,
            heartbeat,
            limiter,
            active_clients: 0,
            clients_served: 0,
            requests: 0,
        }
    }

    pub fn blocked(&self) -> u64 {
        self.limiter.as_ref().map_or(0, |l| l.blocked_requests)
    }
}

#[derive(Debug)]
pub struct Stream {
    pub cfg: StreamConfig,
    pub monitor: Monitor,
    pub ring: Ring,
    pub http: Option<ServerState>,
    pub tcp: Option<ServerState>,
    /// Full paths served for this stream (router-prefixed in router mode).
    pub stream_path: String,
    pub status_path: String,
    /// Connection keys of every streaming client (SSE and TCP).
    pub clients: Vec<usize>,
    /// Entries skipped by clients that fell behind, over all clients ever.
    pub dropped: u64,
    pub bytes_sent: u64,
    /// Entries were added since the last flush to clients.
    pub fresh: bool,
    /// Tailing has more to read than one turn allowed.
    pub read_pending: bool,
}

impl Stream {
    pub fn new(
        cfg: StreamConfig,
        http_limiter: Option<Limiter>,
        tcp_limiter: Option<Limiter>,
    ) -> Stream {
        let monitor = Monitor::new(&cfg);
        let ring = Ring::new(cfg.ring_capacity(), cfg.http.is_some(), cfg.tcp.is_some());
        let http = cfg
            .http
            .as_ref()
            .map(|h| ServerState::new(Protocol::Http, h.buffer_size, h.heartbeat, http_limiter));
        let tcp = cfg
            .tcp
            .as_ref()
            .map(|t| ServerState::new(Protocol::Tcp, t.buffer_size, t.heartbeat, tcp_limiter));
        let (stream_path, status_path) = cfg
            .http
            .as_ref()
            .map(|h| (h.stream_path.clone(), h.status_path.clone()))
            .unwrap_or_default();
        Stream {
            cfg,
            monitor,
            ring,
            http,
            tcp,
            stream_path,
            status_path,
            clients: Vec::new(),
            dropped: 0,
            bytes_sent: 0,
            fresh: false,
            read_pending: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn server(&self, protocol: Protocol) -> Option<&ServerState> {
        match protocol {
            Protocol::Http => self.http.as_ref(),
            Protocol::Tcp => self.tcp.as_ref(),
        }
    }

    pub fn server_mut(&mut self, protocol: Protocol) -> Option<&mut ServerState> {
        match protocol {
            Protocol::Http => self.http.as_mut(),
            Protocol::Tcp => self.tcp.as_mut(),
        }
    }

    /// Entries produced since start.
    pub fn total_entries(&self) -> u64 {
        self.ring.next_seq() - 1
    }

    /// Entries a reading turn may add before clients are flushed: half the smallest
    /// buffer, so a client that keeps up never lags further than its buffer allows.
    pub fn entries_per_turn(&self) -> usize {
        let smallest = [self.http.as_ref(), self.tcp.as_ref()]
            .into_iter()
            .flatten()
            .map(|s| s.buffer_size)
            .min()
            .unwrap_or(1);
        (smallest / 2).max(1)
    }

    /// What a client of `protocol` needs to render heartbeats and notices now.
    pub fn renderer(&self, protocol: Protocol, unix_secs: i64, uptime_secs: u64) -> WireRenderer {
        let server = self.server(protocol);
        WireRenderer {
            protocol,
            heartbeat: server.and_then(|s| s.heartbeat),
            stats: HeartbeatStats {
                unix_secs,
                active_clients: server.map_or(0, |s| s.active_clients),
                uptime_secs,
            },
        }
    }
}

/// Renders control output (heartbeats, drop notices) in a server's wire format.
pub struct WireRenderer {
    pub protocol: Protocol,
    pub heartbeat: Option<HeartbeatConfig>,
    pub stats: HeartbeatStats,
}

impl ControlRenderer for WireRenderer {
    fn dropped(&self, out: &mut Vec<u8>, count: u64) {
        // TCP clients have no event channel; their drops show in /status.
        if self.protocol == Protocol::Http {
            sse::dropped(out, count);
        }
    }

    fn heartbeat(&self, out: &mut Vec<u8>) {
        if let Some(cfg) = &self.heartbeat {
            match self.protocol {
                Protocol::Http => sse::heartbeat(out, cfg, self.stats),
                Protocol::Tcp => tcp::heartbeat(out, cfg, self.stats),
            }
        }
    }
}
