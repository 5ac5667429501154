//! Listening sockets: binding at startup, accepting with back-off on descriptor
//! exhaustion, and turning accepted sockets into connections.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};

use super::conn::{Conn, ConnState, Finish, HttpState, StreamClient, Transport};
use super::{HEADER_TIMEOUT_MS, LISTENER_BASE, Reactor, Timer, report_once};
use crate::http::router::Routes;
use crate::ratelimit::Refusal;
use crate::stream::ServerKind;
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
    Tcp(usize),
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
}

fn host_for_url(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => "localhost".into(),
        IpAddr::V6(v6) if v6.is_unspecified() => "localhost".into(),
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

impl Reactor {
    fn bind(
        &mut self,
        addr: SocketAddr,
        kind: ListenerKind,
        who: &str,
    ) -> Result<usize, super::StartupError> {
        let mut socket = TcpListener::bind(addr).map_err(|e| StartupError {
            message: format!(
                "{who}: cannot listen on port {} ({}): {e}",
                addr.port(),
                addr.ip()
            ),
        })?;
        // mio listens with std's backlog of 128; a burst of connects (a thousand clients
        // at once) would overflow it and each dropped SYN waits a second to be retried.
        // SAFETY: `listen` only reads its two integer arguments; the descriptor is the
        // bound socket we own, and calling listen again on it just updates its backlog.
        unsafe {
            libc::listen(socket.as_raw_fd(), LISTEN_BACKLOG);
        }
        let index = self.listeners.len();
        self.poll
            .registry()
            .register(
                &mut socket,
                Token(LISTENER_BASE - index),
                Interest::READABLE,
            )
            .map_err(|e| StartupError::new("cannot register a listener", e))?;
        let bound = socket.local_addr().unwrap_or(addr);
        self.listeners.push(Listener {
            socket,
            addr: bound,
            requested: addr,
            kind,
            readable: true,
            paused: false,
        });
        Ok(index)
    }

    /// Binds every server; in router mode HTTP servers on one port share a listener.
    pub(super) fn bind_all(&mut self) -> Result<(), StartupError> {
        for s in 0..self.streams.len() {
            let name = self.streams[s].name().to_string();
            if let Some(h) = self.streams[s].cfg.http.clone() {
                let addr = SocketAddr::new(h.address, h.port);
                // Grouped by the configured port, so streams that share port 0
                // (`--router-port 0`) share one free port, like any other.
                let shared = if self.router {
                    self.listeners.iter().position(|l| {
                        matches!(l.kind, ListenerKind::Http(_)) && l.requested == addr
                    })
                } else {
                    None
                };
                let index = match shared {
                    Some(i) => i,
                    None => self.bind(
                        addr,
                        ListenerKind::Http(Routes::new(self.router)),
                        &format!("stream `{name}` http server"),
                    )?,
                };
                // Only HTTP listeners are ever shared or bound here.
                let ListenerKind::Http(routes) = &mut self.listeners[index].kind else {
                    return Err(StartupError {
                        message: format!(
                            "stream `{name}`: listener {index} is not an HTTP listener"
                        ),
                    });
                };
                let (stream_path, status_path) =
                    routes.add_stream(s, &name, &h.stream_path, &h.status_path);
                let bound = self.listeners[index].addr;
                let stream = &mut self.streams[s];
                stream.stream_path = stream_path;
                stream.status_path = status_path;
                if let Some(server) = stream.http.as_mut() {
                    server.listener = index;
                    server.bound = Some(bound);
                }
            }
            if let Some(t) = self.streams[s].cfg.tcp.clone() {
                let addr = SocketAddr::new(t.address, t.port);
                let index = self.bind(
                    addr,
                    ListenerKind::Tcp(s),
                    &format!("stream `{name}` tcp server"),
                )?;
                let bound = self.listeners[index].addr;
                if let Some(server) = self.streams[s].tcp.as_mut() {
                    server.listener = index;
                    server.bound = Some(bound);
                }
            }
        }
        Ok(())
    }

    pub(super) fn print_endpoints(&self) {
        for s in &self.streams {
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
        if self.router {
            for l in &self.listeners {
                if let ListenerKind::Http(_) = l.kind {
                    println!(
                        "[router] all streams: http://{}:{}/status",
                        host_for_url(l.addr.ip()),
                        l.addr.port()
                    );
                }
            }
        }
    }

    pub(super) fn accept_ready(&mut self, now: u64) {
        for l in 0..self.listeners.len() {
            if !self.listeners[l].readable || self.listeners[l].paused {
                continue;
            }
            let mut accepted = 0;
            while accepted < ACCEPT_BATCH {
                match self.listeners[l].socket.accept() {
                    Ok((socket, peer)) => {
                        accepted += 1;
                        self.admit(l, socket, peer, now);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.listeners[l].readable = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                    Err(e) => {
                        // EMFILE, ENFILE, ENOBUFS, ENOMEM…: the pending connection stays in
                        // the backlog; pause this listener instead of spinning on it.
                        report_once(
                            &mut self.accept_error_reported,
                            &format!(
                                "accept failed: {e}; pausing accepts and retrying every {ACCEPT_BACKOFF_MS} ms"
                            ),
                        );
                        self.listeners[l].paused = true;
                        self.arm(ACCEPT_BACKOFF_MS, Timer::ResumeAccept(l));
                        break;
                    }
                }
            }
        }
    }

    fn admit(&mut self, l: usize, mut socket: TcpStream, peer: SocketAddr, now: u64) {
        // Entries are small and latency matters more than packet count.
        let _ = socket.set_nodelay(true);
        let key = self.conns.vacant_key();
        if self
            .poll
            .registry()
            .register(
                &mut socket,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            return;
        }
        let generation = self.next_generation();
        let peer_ip = crate::ratelimit::canonical(peer.ip());
        let state = match self.listeners[l].kind {
            ListenerKind::Http(_) => ConnState::Http(HttpState::default()),
            ListenerKind::Tcp(s) => match self.admit_tcp(s, key, peer_ip, now) {
                Ok(client) => {
                    self.arm_heartbeat(s, ServerKind::Tcp);
                    ConnState::Stream(client)
                }
                Err(line) => ConnState::Http(HttpState {
                    out: line,
                    close_after: true,
                    ..HttpState::default()
                }),
            },
        };
        let is_http_request = matches!(self.listeners[l].kind, ListenerKind::Http(_));
        self.conns.insert(Conn {
            transport: Transport::Plain(socket),
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
        if is_http_request {
            let t = self.arm(HEADER_TIMEOUT_MS, Timer::HeaderTimeout { key, generation });
            self.conns[key].timer = Some(t);
        }
        self.drive(key, now);
    }

    /// A TCP client: takes a token and a connection slot, or gets its one refusal line.
    fn admit_tcp(
        &mut self,
        s: usize,
        key: usize,
        peer: IpAddr,
        now: u64,
    ) -> Result<Box<StreamClient>, Vec<u8>> {
        let stream = &mut self.streams[s];
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
                    Refusal::Rate { .. } => limiter.config.response_message.clone(),
                    Refusal::Connections => "Connection limit exceeded".to_string(),
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
        let sub = stream.subscribe(ServerKind::Tcp, start, false);
        let index = stream.clients.len();
        stream.clients.push(key);
        Ok(Box::new(StreamClient {
            stream: s,
            kind: ServerKind::Tcp,
            sub,
            index,
            counted,
            finish: Finish::Streaming,
        }))
    }
}
