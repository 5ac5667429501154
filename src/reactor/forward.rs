//! Sinks' connections to their brokers (SPEC §16): name resolution over a UDP socket in
//! the loop, non-blocking connects to each address of each URL in turn (NATS cluster
//! URLs learnt from INFO too), TLS through rustls, and the engine driven as
//! `forward`'s module docs say. Reconnects back off (doubling, bounded, with jitter) on
//! the timer wheel; a sink never blocks the loop, a client or the tailer.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Token};

use super::files::StreamPipes;
use super::{Reactor, Timer};
use crate::forward::resolve::{self, Host, Lookup, Resolution, ResolvConf, Scheme};
use crate::forward::sink::{BacklogFile, FillCtx, PUBLISH_BUDGET, Sink, SinkEvent, SinkState};
use crate::state::SavedSink;
use crate::stream::StreamId;
use crate::tail::source::FileId;
use crate::timer::TimerId;

/// Sink connection `k` has token `SINK_BASE - 2k` (TCP) and `SINK_BASE - 2k - 1` (DNS).
pub(super) const SINK_BASE: usize = super::PIPE_BASE - super::MAX_PIPES;
/// Sink keys stay below this, so their tokens never meet others.
pub(super) const MAX_SINKS: usize = 1 << 12;
/// A sink reading the journal again is this journal client id (minus its key).
pub(super) const SINK_CLIENT_BASE: usize = usize::MAX / 2;
/// A TCP connect (and TLS handshake) must be done within this.
const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// The first retry after a failure, doubling to the ceiling.
const BACKOFF_MIN_MS: u64 = 100;
const BACKOFF_MAX_MS: u64 = 30_000;
/// A removed sink waits this long for the acks of what it sent.
const STOP_GRACE_MS: u64 = 5_000;
/// Bytes read from one broker per turn.
const READ_BUDGET: usize = 1024 * 1024;

enum Pipe {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<crate::tls::TlsClient>),
}

impl Pipe {
    fn socket(&mut self) -> &mut TcpStream {
        match self {
            Pipe::Plain(s) => s,
            #[cfg(feature = "tls")]
            Pipe::Tls(t) => t.socket(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Pipe::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Pipe::Tls(t) => t.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Pipe::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Pipe::Tls(t) => t.write(buf),
        }
    }

    /// Sends what the transport holds itself (TLS records); true when nothing is left.
    fn push_pending(&mut self) -> io::Result<bool> {
        match self {
            Pipe::Plain(_) => Ok(true),
            #[cfg(feature = "tls")]
            Pipe::Tls(t) => t.push_pending(),
        }
    }

    fn shutdown(&mut self) {
        match self {
            Pipe::Plain(s) => {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            #[cfg(feature = "tls")]
            Pipe::Tls(t) => t.shutdown_write(),
        }
    }
}

enum Link {
    Idle,
    Resolving {
        lookup: Box<Lookup>,
        sock: UdpSocket,
    },
    Connecting(TcpStream),
    /// TLS handshake; then the engine starts (`mqtts://`) or is told TLS is ready (NATS).
    Handshaking(Pipe),
    Open(Pipe),
}

/// The reactor's side of a sink: its connection and timers.
pub(super) struct SinkIo {
    stream: StreamId,
    generation: u64,
    link: Link,
    readable: bool,
    writable: bool,
    /// Broker of the attempt: scheme, host (certificate name), port.
    target: Option<(Scheme, Host, u16)>,
    addrs: VecDeque<SocketAddr>,
    /// Turns of the URL list (configured URLs, then cluster URLs from INFO).
    next_url: usize,
    discovered: Vec<(Host, u16)>,
    failures: u32,
    /// The broker acknowledged something on this connection.
    progressed: bool,
    /// The last problem logged (each is logged once until the sink connects again).
    logged: Option<String>,
    retry_at: Option<u64>,
    connect_deadline: Option<u64>,
    stop_deadline: Option<u64>,
    timer: Option<(u64, TimerId)>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
}

fn token(key: usize) -> Token {
    Token(SINK_BASE - 2 * key)
}

fn dns_token(key: usize) -> Token {
    Token(SINK_BASE - 2 * key - 1)
}

/// This machine's name, for MQTT's default client id.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Reactor {
    /// Token `t` is a sink's: (key, dns).
    pub(super) fn sink_token(t: usize) -> Option<(usize, bool)> {
        let base = SINK_BASE;
        if t > base || t <= base - 2 * MAX_SINKS {
            return None;
        }
        let d = base - t;
        Some((d / 2, d % 2 == 1))
    }

    /// The stream and index of the sink whose connection is `key`.
    fn sink_of(&self, key: usize) -> Option<(StreamId, usize)> {
        let io = self.sink_io.get(key)?;
        let stream = self
            .streams
            .get(io.stream.index)
            .filter(|s| s.id == io.stream)?;
        let i = stream.sinks.iter().position(|s| s.io == key)?;
        Some((io.stream, i))
    }

    /// Gives a stream the sinks its config asks for, keeping those that did not change
    /// and stopping those that went. New sinks start at `seq` unless `saved` has their
    /// cursor (a restart) or they replace a sink of the same name whose settings changed
    /// (a reload): they carry on where it had got to, so a broker that moved while down
    /// gets what the old address never confirmed.
    pub(super) fn plan_sinks(
        &mut self,
        id: StreamId,
        seq: u64,
        saved: &[SavedSink],
        started: &[(FileId, u64)],
    ) {
        let host = host_name();
        let Some(stream) = self.stream(id) else {
            return;
        };
        let want = stream.cfg.forward.clone();
        let have: Vec<(String, crate::config::ForwardConfig, usize)> = stream
            .sinks
            .iter()
            .filter(|s| s.state != SinkState::Stopping)
            .map(|s| (s.cfg.name.clone(), s.cfg.clone(), s.io))
            .collect();
        let mut replaced: Vec<(String, u64, Vec<BacklogFile>)> = Vec::new();
        for (name, cfg, io) in &have {
            if !want.iter().any(|w| w == cfg) {
                if let Some((_, i)) = self.sink_of(*io) {
                    let stream = &mut self.streams[id.index];
                    let (from, backlog) = stream.sinks[i].feed.handover();
                    // Held for a replacement before this sink lets go of them (a file
                    // nothing refers to is closed at once).
                    for b in &backlog {
                        stream.monitor.history_ref(b.src.key, 1);
                    }
                    replaced.push((name.clone(), from, backlog));
                }
                crate::log::info(
                    &self.streams[id.index].cfg.name,
                    &format!("sink {name}: removed, finishing what is in flight"),
                );
                self.stop_sink(*io);
            }
        }
        for cfg in want {
            if have.iter().any(|(_, c, _)| *c == cfg) {
                continue;
            }
            if self.sink_io.len() >= MAX_SINKS {
                crate::log::error("", "too many sinks; not starting more");
                break;
            }
            let stream = &mut self.streams[id.index];
            let name = cfg.name.clone();
            let mut sink = match Sink::new(cfg, stream, seq, &host) {
                Ok(s) => s,
                Err(e) => {
                    crate::log::error(stream.name(), &format!("sink {name}: {e}"));
                    continue;
                }
            };
            if let Some(s) = saved.iter().find(|s| s.name == name) {
                self.attach_backlog(id, &mut sink, s, started);
            } else if let Some(at) = replaced.iter().position(|(n, ..)| *n == name) {
                let (_, from, backlog) = replaced.swap_remove(at);
                sink.feed.carry_on(from, backlog);
            }
            #[cfg(feature = "tls")]
            let tls = {
                let wants_tls =
                    sink.cfg.tls.is_some() || sink.urls.iter().any(|u| u.scheme.is_tls());
                if wants_tls {
                    let c = sink
                        .cfg
                        .tls
                        .clone()
                        .unwrap_or(crate::config::ForwardTlsConfig {
                            ca_file: None,
                            cert_file: None,
                            key_file: None,
                        });
                    match crate::tls::client_config(&c) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            sink.last_error = Some(format!("tls: {e}"));
                            None
                        }
                    }
                } else {
                    None
                }
            };
            let generation = self.next_generation();
            let key = self.sink_io.insert(SinkIo {
                stream: id,
                generation,
                link: Link::Idle,
                readable: false,
                writable: false,
                target: None,
                addrs: VecDeque::new(),
                next_url: 0,
                discovered: Vec::new(),
                failures: 0,
                progressed: false,
                logged: None,
                retry_at: None,
                connect_deadline: None,
                stop_deadline: None,
                timer: None,
                #[cfg(feature = "tls")]
                tls,
            });
            sink.io = key;
            self.streams[id.index].sinks.push(sink);
            self.sink_connect(key);
            self.plan_sink_timer(key);
        }
        // Replaced sinks that no new one carried on: their files are let go.
        for (_, _, backlog) in replaced {
            for b in backlog {
                self.streams[id.index].monitor.history_ref(b.src.key, -1);
            }
        }
    }

    /// Lines of an earlier run the broker had not confirmed: read again first, from the
    /// sink's offset to where this run's tailer started in each file.
    fn attach_backlog(
        &mut self,
        id: StreamId,
        sink: &mut Sink,
        saved: &SavedSink,
        started: &[(FileId, u64)],
    ) {
        let stream = &mut self.streams[id.index];
        for &(file, offset) in &saved.files {
            let end = started.iter().find(|(f, _)| *f == file).map(|&(_, o)| o);
            let src = stream.monitor.reference_to(file);
            let resumed = src.and_then(|s| {
                stream
                    .monitor
                    .sources
                    .get(s.key as usize)
                    .map(|x| x.resume_offset())
            });
            match (src, end, resumed) {
                (Some(src), Some(end), Some(at)) if at == end => {
                    if offset < end {
                        stream.monitor.history_ref(src.key, 1);
                        sink.feed.backlog.push_back(BacklogFile {
                            id: file,
                            src,
                            next: offset,
                            end,
                            done: false,
                        });
                    }
                }
                _ => {
                    sink.stats.dropped_gone += 1;
                    crate::log::warn(
                        stream.name(),
                        &format!(
                            "sink {}: lines of file {}:{} from offset {offset} were not confirmed by the broker and are gone from disk",
                            sink.cfg.name, file.0, file.1
                        ),
                    );
                }
            }
        }
    }

    /// A sink the config no longer has: no more publishing; it goes once its broker has
    /// acknowledged what is in flight (or after a grace).
    pub(super) fn stop_sink(&mut self, key: usize) {
        let now = self.now;
        let Some((stream, i)) = self.sink_of(key) else {
            return;
        };
        let sink = &mut self.streams[stream.index].sinks[i];
        sink.state = SinkState::Stopping;
        let idle = sink.engine.in_flight() == 0 || !sink.engine.is_connected();
        if idle {
            self.drop_sink(key);
        } else {
            self.sink_io[key].stop_deadline = Some(now + STOP_GRACE_MS);
            self.plan_sink_timer(key);
        }
    }

    /// Closes a sink's connection cleanly and forgets it.
    fn drop_sink(&mut self, key: usize) {
        let Some((_, i)) = self.sink_of(key) else {
            if self.sink_io.contains(key) {
                let mut io = self.sink_io.remove(key);
                close_link(self.poll.registry(), &mut io);
                if let Some((_, t)) = io.timer.take() {
                    self.timers.cancel(t);
                }
            }
            return;
        };
        let mut io = self.sink_io.remove(key);
        let stream = &mut self.streams[io.stream.index];
        let mut sink = stream.sinks.remove(i);
        sink.engine.close();
        if let Link::Open(pipe) = &mut io.link {
            let out = sink.engine.output();
            if !out.is_empty() {
                let _ = pipe.write(out);
            }
            let _ = pipe.push_pending();
        }
        sink.detach(stream);
        let mut pipes = StreamPipes {
            registry: self.poll.registry(),
            table: &mut self.pipes,
            stream: io.stream,
        };
        stream
            .journals
            .replays
            .cancel((SINK_CLIENT_BASE - key, io.generation), &mut pipes);
        close_link(self.poll.registry(), &mut io);
        if let Some((_, t)) = io.timer.take() {
            self.timers.cancel(t);
        }
        stream_sinks_dirty(&mut self.streams[io.stream.index]);
    }

    /// Every sink of a stream stops (the stream goes).
    pub(super) fn drop_stream_sinks(&mut self, id: StreamId) {
        let keys: Vec<usize> = self
            .stream(id)
            .map(|s| s.sinks.iter().map(|k| k.io).collect())
            .unwrap_or_default();
        for key in keys {
            self.drop_sink(key);
        }
    }

    /// Starts the next connection attempt: the next URL in turn, resolved, then each of
    /// its addresses.
    fn sink_connect(&mut self, key: usize) {
        let now = self.now;
        let Some((stream, i)) = self.sink_of(key) else {
            return;
        };
        let io = &mut self.sink_io[key];
        let sink = &mut self.streams[stream.index].sinks[i];
        let configured = sink.urls.len();
        let turn = io.next_url % (configured + io.discovered.len()).max(1);
        io.next_url = io.next_url.wrapping_add(1);
        let (scheme, host, port) = if turn < configured {
            let u = &sink.urls[turn];
            sink.url = crate::config::redact_url(&sink.cfg.urls[turn]);
            (u.scheme, u.host.clone(), u.port)
        } else {
            let (h, p) = io.discovered[turn - configured].clone();
            let scheme = sink.urls[0].scheme;
            sink.url = format!(
                "{}://{h}:{p} (cluster)",
                if scheme == Scheme::NatsTls {
                    "tls"
                } else {
                    "nats"
                }
            );
            (scheme, h, p)
        };
        io.target = Some((scheme, host.clone(), port));
        io.addrs.clear();
        sink.state = SinkState::Resolving;
        let conf = ResolvConf::from_system();
        match resolve::resolve(
            &host,
            &resolve::system_hosts(),
            &conf,
            now,
            crate::forward::random_u64(),
        ) {
            Resolution::Ready(ips) => {
                io.addrs = ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect();
                self.sink_try_next_addr(key);
            }
            Resolution::Dns(lookup) => {
                let bind: SocketAddr = if conf.nameservers.iter().all(|n| n.is_ipv6()) {
                    "[::]:0".parse().expect("an address")
                } else {
                    "0.0.0.0:0".parse().expect("an address")
                };
                match UdpSocket::bind(bind) {
                    Ok(mut sock) => {
                        if let Err(e) = self.poll.registry().register(
                            &mut sock,
                            dns_token(key),
                            Interest::READABLE,
                        ) {
                            self.sink_failed(key, format!("dns socket: {e}"));
                            return;
                        }
                        let io = &mut self.sink_io[key];
                        io.link = Link::Resolving {
                            lookup: Box::new(lookup),
                            sock,
                        };
                        self.sink_dns(key);
                    }
                    Err(e) => self.sink_failed(key, format!("dns socket: {e}")),
                }
            }
        }
    }

    /// Sends a lookup's queries, reads its answers; connects once it has addresses.
    fn sink_dns(&mut self, key: usize) {
        let now = self.now;
        let Some(io) = self.sink_io.get_mut(key) else {
            return;
        };
        let Link::Resolving { lookup, sock } = &mut io.link else {
            return;
        };
        let mut buf = [0u8; 1500];
        loop {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => lookup.on_datagram(from, &buf[..n], now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        lookup.on_tick(now);
        while let Some(t) = lookup.poll_transmit() {
            let _ = sock.send_to(&t.payload, t.to);
        }
        let Some(outcome) = lookup.outcome().cloned() else {
            return;
        };
        if let Link::Resolving { mut sock, .. } = std::mem::replace(&mut io.link, Link::Idle) {
            let _ = self.poll.registry().deregister(&mut sock);
        }
        match outcome {
            Ok(ips) => {
                let port = io.target.as_ref().map_or(0, |t| t.2);
                io.addrs = ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect();
                self.sink_try_next_addr(key);
            }
            Err(e) => self.sink_failed(key, format!("resolve: {e}")),
        }
    }

    fn sink_try_next_addr(&mut self, key: usize) {
        let now = self.now;
        let Some((stream, i)) = self.sink_of(key) else {
            return;
        };
        let io = &mut self.sink_io[key];
        let Some(addr) = io.addrs.pop_front() else {
            let host = io
                .target
                .as_ref()
                .map(|t| t.1.to_string())
                .unwrap_or_default();
            self.sink_failed(key, format!("no address of {host} answered"));
            return;
        };
        match TcpStream::connect(addr) {
            Ok(mut sock) => {
                if let Err(e) = self.poll.registry().register(
                    &mut sock,
                    token(key),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    self.sink_failed(key, format!("register: {e}"));
                    return;
                }
                let io = &mut self.sink_io[key];
                io.link = Link::Connecting(sock);
                io.connect_deadline = Some(now + CONNECT_TIMEOUT_MS);
                self.streams[stream.index].sinks[i].state = SinkState::Connecting;
            }
            Err(e) => {
                let sink = &mut self.streams[stream.index].sinks[i];
                sink.last_error = Some(format!("connect {addr}: {e}"));
                self.sink_try_next_addr(key);
            }
        }
    }

    /// An attempt failed (or a connection ended): note why, and try again later.
    fn sink_failed(&mut self, key: usize, why: String) {
        let now = self.now;
        let Some(io) = self.sink_io.get_mut(key) else {
            return;
        };
        close_link(self.poll.registry(), io);
        io.failures = io.failures.saturating_add(1);
        let base = (BACKOFF_MIN_MS << io.failures.min(9)).min(BACKOFF_MAX_MS);
        let jitter = crate::forward::random_u64() % (base / 2 + 1);
        io.retry_at = Some(now + base + jitter);
        if let Some((stream, i)) = self.sink_of(key) {
            let s = &mut self.streams[stream.index];
            let sink = &mut s.sinks[i];
            sink.stats.connect_failures += 1;
            sink.stats.errors += 1;
            let io = &mut self.sink_io[key];
            if io.logged.as_deref() != Some(why.as_str()) {
                crate::log::warn(&s.cfg.name, &format!("sink {}: {why}", sink.cfg.name));
                io.logged = Some(why.clone());
            }
            sink.last_error = Some(why);
            if sink.state != SinkState::Stopping {
                sink.state = SinkState::Backoff;
            } else {
                self.drop_sink(key);
                return;
            }
        }
        self.plan_sink_timer(key);
    }

    /// Readiness of a sink's socket.
    pub(super) fn sink_event(&mut self, key: usize, dns: bool, readable: bool, writable: bool) {
        if dns {
            self.sink_dns(key);
            self.plan_sink_timer(key);
            return;
        }
        if let Some(io) = self.sink_io.get_mut(key) {
            io.readable |= readable;
            io.writable |= writable;
        }
        self.drive_sink(key);
    }

    /// Everything a sink can do now: finish connecting, read, handle events, publish,
    /// write.
    pub(super) fn drive_sink(&mut self, key: usize) {
        if !self.sink_io.contains(key) {
            return;
        }
        // A connect in progress.
        if matches!(self.sink_io[key].link, Link::Connecting(_)) {
            if !self.sink_io[key].writable {
                return;
            }
            let io = &mut self.sink_io[key];
            let Link::Connecting(sock) = std::mem::replace(&mut io.link, Link::Idle) else {
                return;
            };
            let outcome = match sock.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => sock.peer_addr().map(|_| ()),
            };
            match outcome {
                Ok(()) => {
                    let _ = sock.set_nodelay(true);
                    io.connect_deadline = None;
                    self.sink_transport_up(key, sock);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    // Not yet: a spurious wake-up.
                    io.writable = false;
                    io.link = Link::Connecting(sock);
                }
                Err(e) => {
                    let mut sock = sock;
                    let _ = self.poll.registry().deregister(&mut sock);
                    if let Some((stream, i)) = self.sink_of(key) {
                        self.streams[stream.index].sinks[i].last_error =
                            Some(format!("connect: {e}"));
                    }
                    self.sink_try_next_addr(key);
                }
            }
            self.plan_sink_timer(key);
            return;
        }
        if matches!(self.sink_io[key].link, Link::Handshaking(_)) {
            self.sink_tls_step(key);
            if !matches!(self.sink_io.get(key).map(|i| &i.link), Some(Link::Open(_))) {
                self.plan_sink_timer(key);
                return;
            }
        }
        for _ in 0..8 {
            if !self.sink_io.contains(key) {
                return;
            }
            let read_any = self.sink_read(key);
            let evented = self.sink_events(key);
            if !self.sink_io.contains(key) {
                return;
            }
            let published = self.sink_fill(key);
            let wrote = self.sink_write(key);
            let evented2 = self.sink_events(key);
            if !(read_any || evented || published || wrote || evented2) {
                break;
            }
        }
        if let Some((stream, i)) = self.sink_of(key) {
            let sink = &self.streams[stream.index].sinks[i];
            if sink.state == SinkState::Stopping && sink.engine.in_flight() == 0 {
                self.drop_sink(key);
                return;
            }
        }
        self.plan_sink_timer(key);
    }

    /// TCP is up: TLS first (`mqtts://`), else the protocol starts.
    fn sink_transport_up(&mut self, key: usize, sock: TcpStream) {
        let now = self.now;
        let Some((stream, i)) = self.sink_of(key) else {
            return;
        };
        let io = &mut self.sink_io[key];
        let tls_first = io.target.as_ref().is_some_and(|t| t.0 == Scheme::Mqtts)
            || (io.target.as_ref().is_some_and(|t| !t.0.is_nats())
                && self.streams[stream.index].sinks[i].cfg.tls.is_some());
        let sink = &mut self.streams[stream.index].sinks[i];
        sink.state = SinkState::Handshaking;
        let io = &mut self.sink_io[key];
        if tls_first {
            match start_tls(io, sock) {
                Ok(p) => {
                    io.link = Link::Handshaking(p);
                    self.sink_tls_step(key);
                }
                Err(e) => {
                    if let Some((stream, i)) = self.sink_of(key) {
                        self.streams[stream.index].sinks[i].stats.tls_failures += 1;
                    }
                    self.sink_failed(key, format!("tls: {e}"));
                }
            }
        } else {
            io.link = Link::Open(Pipe::Plain(sock));
            io.readable = true;
            sink.engine.connected(now);
            self.drive_sink(key);
        }
    }

    /// Moves a TLS handshake on; once done, the engine starts or goes on.
    fn sink_tls_step(&mut self, key: usize) {
        let now = self.now;
        let Some((stream, i)) = self.sink_of(key) else {
            return;
        };
        let io = &mut self.sink_io[key];
        let Link::Handshaking(pipe) = &mut io.link else {
            return;
        };
        #[cfg(feature = "tls")]
        let step = match pipe {
            Pipe::Tls(t) => t.handshake(),
            Pipe::Plain(_) => Ok(true),
        };
        #[cfg(not(feature = "tls"))]
        let step: io::Result<bool> = {
            let _ = pipe;
            Ok(true)
        };
        match step {
            Ok(true) => {
                let Link::Handshaking(p) = std::mem::replace(&mut io.link, Link::Idle) else {
                    return;
                };
                io.link = Link::Open(p);
                io.readable = true;
                io.writable = true;
                let sink = &mut self.streams[stream.index].sinks[i];
                if sink.engine.is_nats() {
                    sink.engine.tls_ready(now);
                } else {
                    sink.engine.connected(now);
                }
                self.drive_sink(key);
            }
            Ok(false) => {
                io.readable = false;
                io.writable = false;
            }
            Err(e) => {
                self.streams[stream.index].sinks[i].stats.tls_failures += 1;
                let why = format!("tls: {e}");
                let sink = &mut self.streams[stream.index].sinks[i];
                sink.engine.connection_lost();
                while sink.engine.poll_event().is_some() {}
                sink.stats.republished += sink.feed.rewind();
                self.sink_failed(key, why);
            }
        }
    }

    /// Reads what the broker sent into the engine; EOF or an error ends the connection.
    fn sink_read(&mut self, key: usize) -> bool {
        let now = self.now;
        let Some((stream, i)) = self.sink_of(key) else {
            return false;
        };
        let io = &mut self.sink_io[key];
        if !io.readable {
            return false;
        }
        let io = &mut self.sink_io[key];
        let Link::Open(pipe) = &mut io.link else {
            return false;
        };
        let sink = &mut self.streams[stream.index].sinks[i];
        let mut taken = 0;
        let mut any = false;
        loop {
            match pipe.read(&mut self.scratch) {
                Ok(0) => {
                    sink.engine.connection_lost();
                    return true;
                }
                Ok(n) => {
                    sink.engine.on_bytes(&self.scratch[..n], now);
                    taken += n;
                    any = true;
                    if taken >= READ_BUDGET {
                        self.sinks_ready.push(key);
                        return true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    io.readable = false;
                    return any;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    sink.last_error = Some(format!("read: {e}"));
                    sink.engine.connection_lost();
                    return true;
                }
            }
        }
    }

    /// Writes what the engine queued, until the socket is full.
    fn sink_write(&mut self, key: usize) -> bool {
        let Some((stream, i)) = self.sink_of(key) else {
            return false;
        };
        let io = &mut self.sink_io[key];
        let Link::Open(pipe) = &mut io.link else {
            return false;
        };
        let sink = &mut self.streams[stream.index].sinks[i];
        let mut wrote = false;
        if !io.writable {
            return false;
        }
        loop {
            match pipe.push_pending() {
                Ok(true) => {}
                Ok(false) => {
                    io.writable = false;
                    return wrote;
                }
                Err(e) => {
                    sink.last_error = Some(format!("write: {e}"));
                    sink.engine.connection_lost();
                    return true;
                }
            }
            let out = sink.engine.output();
            if out.is_empty() {
                return wrote;
            }
            match pipe.write(out) {
                Ok(0) => {
                    sink.engine.connection_lost();
                    return true;
                }
                Ok(n) => {
                    sink.engine.consume_output(n);
                    wrote = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    io.writable = false;
                    return wrote;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    sink.last_error = Some(format!("write: {e}"));
                    sink.engine.connection_lost();
                    return true;
                }
            }
        }
    }

    /// Publishes what is ready, while the engine takes it.
    fn sink_fill(&mut self, key: usize) -> bool {
        let now = self.now;
        let Some((stream, i)) = self.sink_of(key) else {
            return false;
        };
        let (stream_id, generation) = (stream, self.sink_io[key].generation);
        let stream = &mut self.streams[stream_id.index];
        if stream.sinks[i].state == SinkState::Stopping || self.stopping {
            return false;
        }
        if !stream.sinks[i].engine.can_publish() {
            return false;
        }
        let mut sinks = std::mem::take(&mut stream.sinks);
        let sink = &mut sinks[i];
        let mut pipes = StreamPipes {
            registry: self.poll.registry(),
            table: &mut self.pipes,
            stream: stream_id,
        };
        let filled = sink.feed.fill(
            FillCtx {
                stream,
                now,
                buf: &mut self.file_buf,
                pipes: &mut pipes,
                client: (SINK_CLIENT_BASE - key, generation),
            },
            &mut sink.engine,
            PUBLISH_BUDGET,
        );
        sink.stats.published += filled.published;
        sink.stats.dropped_too_large += filled.too_large;
        sink.stats.dropped_gone += filled.lost;
        for src in sink.feed.released.drain(..) {
            stream.monitor.history_ref(src.key, -1);
        }
        if filled.too_large + filled.lost > 0 {
            stream.dropped += filled.lost;
            stream.dropped_gone += filled.lost;
        }
        stream.sinks = sinks;
        if filled.more {
            self.sinks_ready.push(key);
        }
        filled.published > 0
    }

    /// Acts on what the engine reports.
    fn sink_events(&mut self, key: usize) -> bool {
        let now = self.now;
        let mut any = false;
        loop {
            let Some((stream, i)) = self.sink_of(key) else {
                return any;
            };
            let s = &mut self.streams[stream.index];
            let sink = &mut s.sinks[i];
            let Some(ev) = sink.engine.poll_event() else {
                return any;
            };
            any = true;
            match ev {
                SinkEvent::StartTls => {
                    let io = &mut self.sink_io[key];
                    let Link::Open(Pipe::Plain(sock)) = std::mem::replace(&mut io.link, Link::Idle)
                    else {
                        sink.engine.connection_lost();
                        continue;
                    };
                    match start_tls(io, sock) {
                        Ok(p) => {
                            io.link = Link::Handshaking(p);
                            io.connect_deadline = Some(now + CONNECT_TIMEOUT_MS);
                            self.sink_tls_step(key);
                            return true;
                        }
                        Err(e) => {
                            sink.stats.tls_failures += 1;
                            sink.last_error = Some(format!("tls: {e}"));
                            sink.engine.connection_lost();
                        }
                    }
                }
                SinkEvent::Connected(info) => {
                    sink.state = SinkState::Connected;
                    sink.stats.connects += 1;
                    let io = &mut self.sink_io[key];
                    io.connect_deadline = None;
                    io.progressed = false;
                    if let Some(info) = info {
                        learn_cluster(io, &info);
                    }
                    if sink.stats.connects == 1 || io.logged.take().is_some() {
                        crate::log::info(
                            &s.cfg.name,
                            &format!("sink {}: connected to {}", sink.cfg.name, sink.url),
                        );
                    }
                }
                SinkEvent::ServerInfo(info) => learn_cluster(&mut self.sink_io[key], &info),
                SinkEvent::Acked { token, duplicate } => {
                    if sink.feed.ack(token) {
                        let io = &mut self.sink_io[key];
                        io.progressed = true;
                        io.failures = 0;
                        sink.stats.acked += 1;
                        sink.stats.duplicates += u64::from(duplicate);
                        s.sinks_dirty = true;
                    }
                    for src in sink.feed.released.drain(..) {
                        s.monitor.history_ref(src.key, -1);
                    }
                }
                SinkEvent::Nacked { token: _, reason } => {
                    // In order or not at all: publish again from the oldest unacknowledged
                    // entry, on a new connection.
                    sink.stats.nacked += 1;
                    sink.stats.errors += 1;
                    sink.last_error = Some(reason);
                    sink.engine.close();
                }
                SinkEvent::ServerError(m) => {
                    sink.stats.errors += 1;
                    sink.last_error = Some(format!("server error: {m}"));
                }
                SinkEvent::Closed { reason, auth } => {
                    let was = sink.state;
                    sink.stats.disconnects += u64::from(was == SinkState::Connected);
                    sink.stats.auth_failures += u64::from(auth);
                    sink.stats.republished += sink.feed.rewind();
                    let why = match sink.last_error.take() {
                        Some(e) if reason == "connection lost" || reason == "closed" => {
                            format!("{reason} ({e})")
                        }
                        _ => reason,
                    };
                    if was == SinkState::Stopping {
                        self.drop_sink(key);
                        return true;
                    }
                    self.sink_failed(key, why);
                    if was == SinkState::Connected
                        && let Some(io) = self.sink_io.get_mut(key)
                        && io.progressed
                    {
                        // A connection that worked: the next URL at once, then back off.
                        io.failures = 0;
                        io.retry_at = Some(now + crate::forward::random_u64() % 50);
                        self.plan_sink_timer(key);
                    }
                    return true;
                }
            }
        }
    }

    /// The sink's timer: engine deadlines, the retry, the connect and stop deadlines.
    pub(super) fn plan_sink_timer(&mut self, key: usize) {
        let Some((stream, i)) = self.sink_of(key) else {
            return;
        };
        let io = &mut self.sink_io[key];
        let sink = &self.streams[stream.index].sinks[i];
        let lookup = match &io.link {
            Link::Resolving { lookup, .. } => lookup.next_deadline(),
            _ => None,
        };
        let engine = match io.link {
            Link::Open(_) => sink.engine.next_deadline(),
            _ => None,
        };
        let want = [
            engine,
            io.retry_at,
            io.connect_deadline,
            io.stop_deadline,
            lookup,
        ]
        .into_iter()
        .flatten()
        .min();
        let have = io.timer.map(|(t, _)| t);
        if want == have {
            return;
        }
        if let Some((_, t)) = io.timer.take() {
            self.timers.cancel(t);
        }
        if let Some(tick) = want {
            let generation = io.generation;
            let t = self.timers.insert(
                tick.max(self.timers.elapsed()),
                Timer::Sink { key, generation },
            );
            self.sink_io[key].timer = Some((tick, t));
        }
    }

    pub(super) fn sink_timer(&mut self, key: usize, generation: u64) {
        let now = self.now;
        let Some(io) = self
            .sink_io
            .get_mut(key)
            .filter(|i| i.generation == generation)
        else {
            return;
        };
        io.timer = None;
        if io.stop_deadline.is_some_and(|d| now >= d) {
            self.drop_sink(key);
            return;
        }
        if io.retry_at.is_some_and(|r| now >= r) {
            io.retry_at = None;
            self.sink_connect(key);
            self.plan_sink_timer(key);
            return;
        }
        if io.connect_deadline.is_some_and(|d| now >= d) {
            io.connect_deadline = None;
            match &io.link {
                Link::Connecting(_) => {
                    if let Link::Connecting(mut s) = std::mem::replace(&mut io.link, Link::Idle) {
                        let _ = self.poll.registry().deregister(&mut s);
                    }
                    self.sink_try_next_addr(key);
                }
                Link::Handshaking(_) => {
                    if let Some((stream, i)) = self.sink_of(key) {
                        self.streams[stream.index].sinks[i].stats.tls_failures += 1;
                    }
                    self.sink_failed(key, "tls: handshake timed out".into());
                }
                _ => {}
            }
            self.plan_sink_timer(key);
            return;
        }
        if matches!(io.link, Link::Resolving { .. }) {
            self.sink_dns(key);
            self.plan_sink_timer(key);
            return;
        }
        if let Some((stream, i)) = self.sink_of(key) {
            self.streams[stream.index].sinks[i].engine.on_tick(now);
        }
        self.drive_sink(key);
    }

    /// New entries (or a ready-again turn): every sink of the stream publishes.
    pub(super) fn drive_stream_sinks(&mut self, id: StreamId) {
        let keys: Vec<usize> = match self.stream(id) {
            Some(s) => s.sinks.iter().map(|k| k.io).collect(),
            None => return,
        };
        for key in keys {
            self.drive_sink(key);
        }
    }

    /// Moves sinks about to lose their place in the buffer to disk, and drops origins the
    /// buffer no longer holds (call around eviction).
    pub(super) fn sinks_fall_behind(&mut self, id: StreamId, planned_base: u64) {
        if let Some(stream) = self.stream_mut(id) {
            for sink in &mut stream.sinks {
                sink.feed.fall_behind(planned_base);
            }
        }
    }

    pub(super) fn retry_sinks(&mut self) {
        let mut ready = std::mem::take(&mut self.sinks_ready);
        ready.sort_unstable();
        ready.dedup();
        for key in ready {
            self.drive_sink(key);
        }
    }

    /// Whether any sink still waits for acknowledgements (shutdown waits for them).
    pub(super) fn sinks_busy(&self) -> bool {
        self.streams.iter().any(|(_, s)| {
            s.sinks
                .iter()
                .any(|k| k.engine.in_flight() > 0 && k.engine.is_connected())
        })
    }

    /// A journalctl child reading for sink `key` has output.
    pub(super) fn sink_client_ready(&mut self, client: (usize, u64)) -> bool {
        if client.0 < SINK_CLIENT_BASE - MAX_SINKS || client.0 > SINK_CLIENT_BASE {
            return false;
        }
        let key = SINK_CLIENT_BASE - client.0;
        if self
            .sink_io
            .get(key)
            .is_some_and(|i| i.generation == client.1)
        {
            self.sinks_ready.push(key);
        }
        true
    }

    /// Each sink's cursor, for the state file.
    pub(super) fn sink_cursors(&self, index: usize) -> Vec<SavedSink> {
        let Some(stream) = self.streams.get(index) else {
            return Vec::new();
        };
        stream
            .sinks
            .iter()
            .map(|s| SavedSink {
                name: s.cfg.name.clone(),
                files: s.feed.cursor(stream),
            })
            .filter(|s| !s.files.is_empty())
            .collect()
    }
}

fn close_link(registry: &mio::Registry, io: &mut SinkIo) {
    match std::mem::replace(&mut io.link, Link::Idle) {
        Link::Idle => {}
        Link::Resolving { mut sock, .. } => {
            let _ = registry.deregister(&mut sock);
        }
        Link::Connecting(mut s) => {
            let _ = registry.deregister(&mut s);
        }
        Link::Handshaking(mut p) | Link::Open(mut p) => {
            p.shutdown();
            let _ = registry.deregister(p.socket());
        }
    }
    io.readable = false;
    io.writable = false;
    io.connect_deadline = None;
}

fn stream_sinks_dirty(stream: &mut crate::stream::Stream) {
    stream.sinks_dirty = true;
}

/// Cluster URLs a NATS server told of, tried after the configured ones.
fn learn_cluster(io: &mut SinkIo, info: &crate::forward::nats::ServerInfo) {
    for u in &info.connect_urls {
        if let Ok((h, p)) = resolve::parse_host_port(u, 4222)
            && !io.discovered.contains(&(h.clone(), p))
            && io.discovered.len() < 32
        {
            io.discovered.push((h, p));
        }
    }
}

#[cfg(feature = "tls")]
fn start_tls(io: &mut SinkIo, sock: TcpStream) -> io::Result<Pipe> {
    let Some(config) = io.tls.clone() else {
        return Err(io::Error::other(
            "TLS is wanted but its settings could not be loaded",
        ));
    };
    let host = io
        .target
        .as_ref()
        .map(|t| t.1.to_string())
        .unwrap_or_default();
    crate::tls::TlsClient::new(sock, config, &host).map(|t| Pipe::Tls(Box::new(t)))
}

#[cfg(not(feature = "tls"))]
fn start_tls(_io: &mut SinkIo, _sock: TcpStream) -> io::Result<Pipe> {
    Err(io::Error::other(
        "this logwisp was built without TLS (cargo feature `tls`)",
    ))
}
