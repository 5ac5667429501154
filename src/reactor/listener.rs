//! Listening sockets: binding, accepting with back-off on descriptor exhaustion, and
//! turning accepted sockets into connections. Which listeners exist is decided from the
//! config in [`super::reload`], at startup and at every reload.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};

use super::conn::{Conn, ConnState, Finish, HttpState, StreamClient, Transport};
use super::{HEADER_TIMEOUT_MS, LISTENER_BASE, MAX_LISTENERS, Reactor, Timer, report_once};
use crate::fanout::Framing;
use crate::http::router::Routes;
use crate::ratelimit::Refusal;
use crate::stream::{ServerKind, StreamId};
use crate::tcp;

/// Pending-connection queue per listener (the kernel caps it at net.core.somaxconn).
const LISTEN_BACKLOG: i32 = 4096;
/// Connections accepted from one listener per turn before others get a go.
const ACCEPT_BATCH: usize = 256;
/// Pause after EMFILE and friends before trying `accept` again.
const ACCEPT_BACKOFF_MS: u64 = 100;

/// A problem that stops logwisp from starting (exit 1).
#[derive(Debug)]
pub struct StartupError {
    pub message: String,
}

impl StartupError {
    pub fn new(what: &str, e: io::Error) -> StartupError {
        StartupError {
            message: format!("{what}: {e}"),
        }
    }
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartupError {}

pub enum ListenerKind {
    Http(Routes),
    Tcp(StreamId),
}

pub struct Listener {
    pub socket: TcpListener,
    /// Where it is bound (the kernel's choice of port when `requested` has port 0).
    pub addr: SocketAddr,
    /// The address and port from the config, by which router mode groups HTTP streams.
    pub requested: SocketAddr,
    pub kind: ListenerKind,
    /// Connections may be waiting (edge-triggered: set by an event, cleared by WouldBlock).
    pub readable: bool,
    /// Accepting is paused after descriptor exhaustion.
    pub paused: bool,
    /// Connections are TLS sessions with these settings (re-read at every reload).
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Who may send requests (HTTP), with the digest of the credentials it holds.
    pub auth: Option<(u64, crate::auth::Auth)>,
    /// Which addresses may connect at all.
    pub acl: crate::acl::Acl,
}

pub fn host_for_url(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => "localhost".into(),
        IpAddr::V6(v6) if v6.is_unspecified() => "localhost".into(),
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// Binds a listening socket (not yet registered with the reactor).
pub fn bind_socket(addr: SocketAddr, who: &str) -> Result<TcpListener, String> {
    let socket = TcpListener::bind(addr).map_err(|e| {
        format!(
            "{who}: cannot listen on port {} ({}): {e}",
            addr.port(),
            addr.ip()
        )
    })?;
    // mio listens with std's backlog of 128; a burst of connects (a thousand clients at
    // once) would overflow it and each dropped SYN waits a second to be retried.
    // SAFETY: `listen` only reads its two integer arguments; the descriptor is the bound
    // socket we own, and calling listen again on it just updates its backlog.
    unsafe {
        libc::listen(socket.as_raw_fd(), LISTEN_BACKLOG);
    }
    Ok(socket)
}

impl Reactor {
    /// Takes a bound socket into the reactor; returns its key.
    pub(super) fn install_listener(
        &mut self,
        mut socket: TcpListener,
        requested: SocketAddr,
        kind: ListenerKind,
    ) -> Result<usize, String> {
        let key = self.listeners.vacant_key();
        if key >= MAX_LISTENERS {
            return Err("too many listeners".into());
        }
        self.poll
            .registry()
            .register(&mut socket, Token(LISTENER_BASE - key), Interest::READABLE)
            .map_err(|e| format!("cannot register a listener: {e}"))?;
        let addr = socket.local_addr().unwrap_or(requested);
        self.listeners.insert(Listener {
            socket,
            addr,
            requested,
            kind,
            readable: true,
            paused: false,
            #[cfg(feature = "tls")]
            tls: None,
            auth: None,
            acl: crate::acl::Acl::default(),
        });
        Ok(key)
    }

    /// Stops listening; connections it accepted go on (idle HTTP ones are closed).
    pub(super) fn close_listener(&mut self, key: usize) {
        if !self.listeners.contains(key) {
            return;
        }
        let mut l = self.listeners.remove(key);
        let _ = self.poll.registry().deregister(&mut l.socket);
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.listener == key && matches!(&c.state, ConnState::Http(h) if !h.out_pending())
            })
            .map(|(k, _)| k)
            .collect();
        for k in idle {
            self.close(k, self.now);
        }
    }

    pub(super) fn print_endpoints(&self) {
        for (_, s) in &self.streams {
            let targets: Vec<String> = s
                .monitor
                .targets
                .iter()
                .map(|t| match &t.matcher {
                    crate::config::NameMatcher::Exact(_) => t.path.display().to_string(),
                    crate::config::NameMatcher::Glob(g) => {
                        format!("{}/{g}", t.path.display().to_string().trim_end_matches('/'))
                    }
                })
                .collect();
            println!("[{}] tailing {}", s.name(), targets.join(", "));
            if let Some(h) = &s.http
                && let Some(addr) = h.bound
            {
                let base = format!("http://{}:{}", host_for_url(addr.ip()), addr.port());
                println!("[{}] http listening on {addr}", s.name());
                println!("[{}]   stream: {base}{}", s.name(), s.stream_path);
                println!("[{}]   status: {base}{}", s.name(), s.status_path);
                if let Some(cfg) = &s.cfg.http
                    && cfg.tls.is_none()
                    && let Some(auth) = &cfg.auth
                    && auth.kind != crate::auth::AuthKind::None
                {
                    crate::log::warn(
                        s.name(),
                        &format!(
                            "{} credentials travel in clear over plain HTTP: enable [streams.httpserver.tls] or serve through a TLS proxy",
                            auth.kind.as_str()
                        ),
                    );
                }
            }
            if let Some(t) = &s.tcp
                && let Some(addr) = t.bound
            {
                println!("[{}] tcp listening on {addr}", s.name());
                println!(
                    "[{}]   stream: tcp://{}:{}",
                    s.name(),
                    host_for_url(addr.ip()),
                    addr.port()
                );
            }
        }
        for (_, l) in &self.listeners {
            if let ListenerKind::Http(routes) = &l.kind
                && routes.is_router()
            {
                println!(
                    "[router] all streams: http://{}:{}/status",
                    host_for_url(l.addr.ip()),
                    l.addr.port()
                );
            }
        }
    }

    pub(super) fn accept_ready(&mut self, now: u64) {
        let keys: Vec<usize> = self.listeners.iter().map(|(k, _)| k).collect();
        for l in keys {
            let Some(listener) = self.listeners.get(l) else {
                continue;
            };
            if !listener.readable || listener.paused {
                continue;
            }
            let mut accepted = 0;
            while accepted < ACCEPT_BATCH {
                let Some(listener) = self.listeners.get_mut(l) else {
                    break;
                };
                match listener.socket.accept() {
                    Ok((socket, peer)) => {
                        accepted += 1;
                        self.admit(l, socket, peer, now);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        listener.readable = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                    Err(e) => {
                        // EMFILE, ENFILE, ENOBUFS, ENOMEM…: the pending connection stays in
                        // the backlog; pause this listener instead of spinning on it.
                        listener.paused = true;
                        self.counters.accept_errors += 1;
                        report_once(
                            &mut self.accept_error_reported,
                            &format!(
                                "accept failed: {e}; pausing accepts and retrying every {ACCEPT_BACKOFF_MS} ms"
                            ),
                        );
                        self.arm(ACCEPT_BACKOFF_MS, Timer::ResumeAccept(l));
                        break;
                    }
                }
            }
        }
    }

    fn admit(&mut self, l: usize, socket: TcpStream, peer: SocketAddr, now: u64) {
        let peer_ip = crate::ratelimit::canonical(peer.ip());
        if !self.listeners[l].acl.allows(peer_ip) {
            self.refuse_address(l, socket, peer_ip, now);
            return;
        }
        // Entries are small and latency matters more than packet count.
        let _ = socket.set_nodelay(true);
        let key = self.conns.vacant_key();
        let mut transport = match self.listener_transport(l, socket) {
            Ok(t) => t,
            Err(_) => return,
        };
        if self
            .poll
            .registry()
            .register(
                transport.socket(),
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            return;
        }
        let tls = transport.handshaking();
        let generation = self.next_generation();
        let tcp_stream = match self.listeners[l].kind {
            ListenerKind::Http(_) => None,
            ListenerKind::Tcp(s) => Some(s),
        };
        let state = match tcp_stream {
            None => ConnState::Http(HttpState::default()),
            Some(s) => match self.admit_tcp(s, key, peer_ip, now) {
                Ok(client) => ConnState::Stream(client),
                Err(line) => ConnState::Http(HttpState {
                    out: line,
                    close_after: true,
                    ..HttpState::default()
                }),
            },
        };
        self.conns.insert(Conn {
            transport,
            peer: peer_ip,
            listener: l,
            generation,
            // Optimistic: try at once; WouldBlock clears these.
            readable: true,
            writable: true,
            read_closed: false,
            broken: false,
            timer: None,
            state,
        });
        // A request head, or a TLS handshake, must come in time.
        if tcp_stream.is_none() || tls {
            let t = self.arm(HEADER_TIMEOUT_MS, Timer::HeaderTimeout { key, generation });
            self.conns[key].timer = Some(t);
        }
        if let Some(s) = tcp_stream {
            self.arm_heartbeat(s, ServerKind::Tcp);
        }
        self.drive(key, now);
    }

    /// A connection from an address the IP lists refuse: closed before anything is read.
    /// A plain TCP client is told why in one JSON line (a TLS one would not read it, and
    /// an HTTP client would take it for a broken response).
    fn refuse_address(&mut self, l: usize, socket: TcpStream, peer: IpAddr, now: u64) {
        let listener = &self.listeners[l];
        let port = listener.addr.port();
        let (stream, tcp) = match &listener.kind {
            ListenerKind::Tcp(s) => (Some(*s), true),
            ListenerKind::Http(routes) => (routes.streams().next(), false),
        };
        #[cfg(feature = "tls")]
        let tls = listener.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let tls = false;
        if tcp && !tls {
            let mut line = Vec::new();
            tcp::error_line(&mut line, "Forbidden: your address may not connect");
            // A fresh socket's send buffer takes one short line; if not, the close says it.
            let _ = io::Write::write(&mut &socket, &line);
        }
        drop(socket);
        let kind = if tcp {
            ServerKind::Tcp
        } else {
            ServerKind::Http
        };
        if let Some(server) = stream
            .and_then(|s| self.stream_mut(s))
            .and_then(|s| s.server_mut(kind))
        {
            server.rejected_ip += 1;
        }
        if self.audit.should_log(peer, now) {
            crate::log::warn(
                "",
                &format!(
                    "acl: refused a connection from {peer} on port {port} (further refusals from this address are counted, not logged, for a minute)"
                ),
            );
        }
    }

    /// The byte pipe for a connection accepted by listener `l`: a TLS session when it
    /// serves TLS.
    fn listener_transport(&mut self, l: usize, socket: TcpStream) -> std::io::Result<Transport> {
        #[cfg(feature = "tls")]
        if let Some(cfg) = &self.listeners[l].tls {
            let session = crate::tls::TlsStream::new(socket, std::sync::Arc::clone(cfg))?;
            return Ok(Transport::Tls(Box::new(session)));
        }
        let _ = l;
        Ok(Transport::Plain(socket))
    }

    /// A TCP client: takes a token and a connection slot, or gets its one refusal line.
    fn admit_tcp(
        &mut self,
        s: StreamId,
        key: usize,
        peer: IpAddr,
        now: u64,
    ) -> Result<Box<StreamClient>, Vec<u8>> {
        let Some(stream) = self.stream_mut(s) else {
            return Err(Vec::new());
        };
        let Some(server) = stream.tcp.as_mut() else {
            return Err(Vec::new());
        };
        server.requests += 1;
        let mut counted = false;
        if let Some(limiter) = server.limiter.as_mut() {
            let refusal = limiter
                .check_request(peer, now)
                .and_then(|()| limiter.open_connection(peer, now));
            if let Err(r) = refusal {
                let message = match r {
                    Refusal::Rate { .. } => {
                        server.rejected_rate += 1;
                        limiter.config.response_message.clone()
                    }
                    Refusal::Connections => {
                        server.rejected_connections += 1;
                        "Connection limit exceeded".to_string()
                    }
                };
                let mut line = Vec::new();
                tcp::error_line(&mut line, &message);
                return Err(line);
            }
            counted = true;
        }
        server.active_clients += 1;
        server.clients_served += 1;
        let start = stream.ring.next_seq();
        // TCP has no query, so no filter: every entry, and never a full filter set.
        let Ok(sub) = stream.subscribe(
            ServerKind::Tcp,
            Framing::Lines,
            start,
            false,
            crate::filter::ClientFilter::all(),
        ) else {
            return Err(Vec::new());
        };
        let index = stream.clients.len();
        stream.clients.push(key);
        Ok(Box::new(StreamClient {
            stream: s,
            kind: ServerKind::Tcp,
            framing: Framing::Lines,
            #[cfg(feature = "websocket")]
            ws: None,
            sub,
            index,
            counted,
            finish: Finish::Streaming,
        }))
    }
}
