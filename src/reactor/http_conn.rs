//! HTTP connections: read a head, answer it (status, errors, 404s with keep-alive and
//! pipelining), or turn the connection into an SSE stream.

use super::conn::{self, ConnState, Finish, Io, StreamClient};
use super::listener::ListenerKind;
use super::{HEADER_TIMEOUT_MS, Reactor, Timer};
use crate::http::request::{self, Body, HttpError, Method, Parse, Request};
use crate::http::response::{JsonResponse, error_body};
use crate::http::router::Endpoint;
use crate::ratelimit::Refusal;
use crate::sse;
use crate::stats;
use crate::stream::ServerKind;
use crate::timefmt;

/// Bytes read from an HTTP connection per read call.
const READ_CHUNK: usize = 4096;
/// Requests plus reads one HTTP connection gets per reactor turn.
const HTTP_STEPS_PER_TURN: usize = 64;
/// How long a closing connection waits for the peer to finish sending.
const LINGER_MS: u64 = 2_000;
/// Bytes discarded from a lingering connection per turn.
const LINGER_READ_BUDGET: usize = 256 * 1024;
/// Methods every endpoint answers (`Allow` of 405s and OPTIONS).
const ALLOW: &str = "GET, HEAD, OPTIONS";
/// Request headers a CORS preflight is told it may send when it names none we can echo:
/// what EventSource and fetch-based SSE clients add.
const CORS_ALLOW_HEADERS: &str =
    "Last-Event-ID, Cache-Control, Accept, Content-Type, Authorization";
/// How long a browser may cache a preflight answer (seconds; browsers cap it lower).
const CORS_MAX_AGE: &str = "86400";

enum Step {
    /// Something was done; go round again (write the response, look for the next request).
    Continue,
    /// Nothing buffered is complete: read more.
    NeedInput,
    /// The connection is now a stream client, or gone.
    Handed,
}

impl Reactor {
    pub(super) fn drive_http(&mut self, key: usize, now: u64) {
        // Requests answered and reads done this turn: a client pipelining as fast as it
        // reads must not keep the reactor from everyone else.
        let mut steps = 0;
        loop {
            if steps >= HTTP_STEPS_PER_TURN {
                if let Some(c) = self.conns.get(key) {
                    self.ready.push((key, c.generation));
                }
                return;
            }
            steps += 1;
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            let ConnState::Http(h) = &mut c.state else {
                return;
            };
            if h.out_pending() {
                if !c.writable {
                    return;
                }
                match conn::write_pending(&mut c.transport, &h.out, &mut h.sent) {
                    Ok(Io::WouldBlock) => {
                        c.writable = false;
                        return;
                    }
                    Ok(_) => {
                        h.out.clear();
                        h.sent = 0;
                        if h.out.capacity() > 64 * 1024 {
                            h.out = Vec::new();
                        }
                    }
                    Err(_) => {
                        self.close(key, now);
                        return;
                    }
                }
            }
            if h.close_after {
                self.linger(key, now);
                return;
            }
            match self.next_request(key, now) {
                Step::Continue => continue,
                Step::Handed => return,
                Step::NeedInput => {}
            }
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            let ConnState::Http(h) = &mut c.state else {
                return;
            };
            if c.read_closed {
                // The peer sent all it will; everything complete has been answered.
                self.close(key, now);
                return;
            }
            if !c.readable {
                return;
            }
            let len = h.inbuf.len();
            h.inbuf.resize(len + READ_CHUNK, 0);
            match conn::read_some(&mut c.transport, &mut h.inbuf[len..]) {
                Ok((Io::Done, n)) => h.inbuf.truncate(len + n),
                Ok((Io::WouldBlock, _)) => {
                    h.inbuf.truncate(len);
                    c.readable = false;
                    return;
                }
                Ok((Io::Eof, _)) => {
                    h.inbuf.truncate(len);
                    c.read_closed = true;
                }
                Err(_) => {
                    self.close(key, now);
                    return;
                }
            }
        }
    }

    /// After a final response: shut our side, discard input until the peer closes (or the
    /// linger timer fires), then close.
    fn linger(&mut self, key: usize, now: u64) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let ConnState::Http(h) = &mut c.state else {
            return;
        };
        if c.read_closed {
            self.close(key, now);
            return;
        }
        if !h.lingering {
            h.lingering = true;
            h.inbuf = Vec::new();
            let _ = c.transport.socket().shutdown(std::net::Shutdown::Write);
            let generation = c.generation;
            if let Some(t) = c.timer.take() {
                self.timers.cancel(t);
            }
            let t = self.arm(LINGER_MS, Timer::Linger { key, generation });
            self.conns[key].timer = Some(t);
        }
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let mut taken = 0;
        while c.readable {
            match conn::read_some(&mut c.transport, &mut self.scratch) {
                Ok((Io::Done, n)) => {
                    taken += n;
                    if taken >= LINGER_READ_BUDGET {
                        self.ready.push((key, c.generation));
                        return;
                    }
                }
                Ok((Io::WouldBlock, _)) => c.readable = false,
                Ok((Io::Eof, _)) | Err(_) => {
                    self.close(key, now);
                    return;
                }
            }
        }
    }

    /// Parses and answers one buffered request, if a whole one is there.
    fn next_request(&mut self, key: usize, now: u64) -> Step {
        let Some(c) = self.conns.get_mut(key) else {
            return Step::Handed;
        };
        let ConnState::Http(h) = &mut c.state else {
            return Step::Handed;
        };
        if h.discard > 0 {
            let n = (h.discard as usize).min(h.inbuf.len());
            h.inbuf.drain(..n);
            h.discard -= n as u64;
            if h.discard > 0 {
                return Step::NeedInput;
            }
        }
        if h.inbuf.is_empty() {
            return Step::NeedInput;
        }
        match request::parse(&h.inbuf) {
            Parse::Partial => Step::NeedInput,
            Parse::Error(e) => {
                h.inbuf.clear();
                self.answer_error(key, e, now);
                Step::Continue
            }
            Parse::Done(req) => {
                h.inbuf.drain(..req.head_len);
                if let Body::Length(n) = req.body {
                    h.discard = n;
                }
                h.requests += 1;
                self.handle_request(key, req, now)
            }
        }
    }

    fn queue(
        &mut self,
        key: usize,
        status: u16,
        body: &[u8],
        keep_alive: bool,
        head_only: bool,
        extra: &[(&str, &str)],
    ) {
        if let Some(c) = self.conns.get_mut(key)
            && let ConnState::Http(h) = &mut c.state
        {
            JsonResponse {
                status,
                body,
                keep_alive,
                head_only,
                extra_headers: extra,
                date: timefmt::http_date(self.unix_secs),
            }
            .write(&mut h.out);
            if !keep_alive {
                h.close_after = true;
            }
        }
    }

    /// The stream whose limits apply to a request on this connection's listener: the one
    /// it names, else the listener's first.
    fn limiting_stream(&self, key: usize, endpoint: Option<Endpoint>) -> Option<usize> {
        match endpoint {
            Some(Endpoint::Stream(i) | Endpoint::Status(i)) => Some(i),
            _ => {
                let l = self.conns.get(key)?.listener;
                match &self.listeners.get(l)?.kind {
                    ListenerKind::Http(routes) => routes.streams().next(),
                    ListenerKind::Tcp(s) => Some(*s),
                }
            }
        }
    }

    /// Takes a token for a request; on refusal queues the configured answer and closes.
    fn take_token(&mut self, key: usize, stream: Option<usize>, now: u64) -> bool {
        let Some(s) = stream else { return true };
        let Some(peer) = self.conns.get(key).map(|c| c.peer) else {
            return false;
        };
        let Some(server) = self.streams[s].http.as_mut() else {
            return true;
        };
        server.requests += 1;
        let Some(limiter) = server.limiter.as_mut() else {
            return true;
        };
        match limiter.check_request(peer, now) {
            Ok(()) => true,
            Err(refusal) => {
                let (code, message) = (
                    limiter.config.response_code,
                    limiter.config.response_message.clone(),
                );
                let retry = match refusal {
                    Refusal::Rate { retry_after_secs } => retry_after_secs,
                    Refusal::Connections => 1,
                };
                let body = error_body(&message, None);
                let retry = retry.to_string();
                self.queue(key, code, &body, false, false, &[("Retry-After", &retry)]);
                false
            }
        }
    }

    fn answer_error(&mut self, key: usize, e: HttpError, now: u64) {
        let stream = self.limiting_stream(key, None);
        if !self.take_token(key, stream, now) {
            return;
        }
        let body = error_body(crate::http::response::reason(e.status()), Some(e.detail()));
        self.queue(key, e.status(), &body, false, false, &[]);
    }

    fn re_arm_header_timer(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let generation = c.generation;
        if let Some(t) = c.timer.take() {
            self.timers.cancel(t);
        }
        let t = self.arm(HEADER_TIMEOUT_MS, Timer::HeaderTimeout { key, generation });
        self.conns[key].timer = Some(t);
    }

    fn handle_request(&mut self, key: usize, req: Request, now: u64) -> Step {
        let Some(listener) = self.conns.get(key).map(|c| c.listener) else {
            return Step::Handed;
        };
        let endpoint = match &self.listeners[listener].kind {
            ListenerKind::Http(routes) => routes.lookup(&req.path),
            ListenerKind::Tcp(_) => None,
        };
        let limited_by = self.limiting_stream(key, endpoint);
        if !self.take_token(key, limited_by, now) {
            return Step::Continue;
        }
        self.re_arm_header_timer(key);
        let head_only = req.method == Method::Head;
        if req.method == Method::Options && req.path == "*" {
            // RFC 9110 §9.3.7: OPTIONS * asks about the server as a whole.
            self.queue(key, 204, b"", req.keep_alive, false, &[("Allow", ALLOW)]);
            return Step::Continue;
        }
        let Some(endpoint) = endpoint else {
            let body = self.not_found_body(listener, &req.path);
            self.queue(key, 404, &body, req.keep_alive, head_only, &[]);
            return Step::Continue;
        };
        match req.method {
            Method::Get | Method::Head => {}
            Method::Options => {
                // A CORS preflight (a cross-origin fetch that adds Last-Event-ID or
                // Authorization) must succeed before the browser sends the real GET.
                let allow_headers = req
                    .cors_request_headers
                    .as_deref()
                    .unwrap_or(CORS_ALLOW_HEADERS);
                let headers = [
                    ("Allow", ALLOW),
                    ("Access-Control-Allow-Methods", ALLOW),
                    ("Access-Control-Allow-Headers", allow_headers),
                    ("Access-Control-Max-Age", CORS_MAX_AGE),
                    ("Vary", "Access-Control-Request-Headers"),
                ];
                self.queue(key, 204, b"", req.keep_alive, false, &headers);
                return Step::Continue;
            }
            Method::Other => {
                let body = error_body(
                    "Method Not Allowed",
                    Some("only GET, HEAD and OPTIONS are supported"),
                );
                self.queue(key, 405, &body, false, false, &[("Allow", ALLOW)]);
                return Step::Continue;
            }
        }
        match endpoint {
            Endpoint::Status(s) => {
                let v = stats::stream_status(&self.streams[s], self.uptime_secs(), self.router);
                let body = serde_json::to_vec(&v).unwrap_or_default();
                self.queue(key, 200, &body, req.keep_alive, head_only, &[]);
                Step::Continue
            }
            Endpoint::GlobalStatus => {
                let v = stats::global_status(&self.streams, self.uptime_secs());
                let body = serde_json::to_vec(&v).unwrap_or_default();
                self.queue(key, 200, &body, req.keep_alive, head_only, &[]);
                Step::Continue
            }
            Endpoint::Stream(s) => {
                if head_only {
                    let date = timefmt::http_date(self.unix_secs);
                    if let Some(c) = self.conns.get_mut(key)
                        && let ConnState::Http(h) = &mut c.state
                    {
                        sse::response_head(&mut h.out, &date, !req.http10);
                        h.close_after = true;
                    }
                    return Step::Continue;
                }
                let last = req
                    .last_event_id
                    .as_deref()
                    .and_then(|v| v.parse::<u64>().ok());
                self.start_stream(key, s, last, !req.http10, now)
            }
        }
    }

    fn not_found_body(&self, listener: usize, path: &str) -> Vec<u8> {
        let mut endpoints = Vec::new();
        let mut described = Vec::new();
        if let ListenerKind::Http(routes) = &self.listeners[listener].kind {
            for (p, e) in routes.paths() {
                endpoints.push(p.to_string());
                described.push(match e {
                    Endpoint::Stream(_) => format!("{p} (SSE stream)"),
                    Endpoint::Status(_) => format!("{p} (status)"),
                    Endpoint::GlobalStatus => format!("{p} (all streams)"),
                });
            }
        }
        let v = serde_json::json!({
            "error": "Not Found",
            "path": path,
            "message": format!("Available endpoints: {}", described.join(", ")),
            "endpoints": endpoints,
        });
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// Turns the connection into an SSE client of stream `s`.
    fn start_stream(
        &mut self,
        key: usize,
        s: usize,
        last_event_id: Option<u64>,
        chunked: bool,
        now: u64,
    ) -> Step {
        let Some(peer) = self.conns.get(key).map(|c| c.peer) else {
            return Step::Handed;
        };
        let stream = &mut self.streams[s];
        let Some(server) = stream.http.as_mut() else {
            return Step::Continue;
        };
        let mut counted = false;
        if let Some(limiter) = server.limiter.as_mut() {
            if limiter.open_connection(peer, now).is_err() {
                let code = limiter.config.response_code;
                let body = error_body("Connection limit exceeded", None);
                self.queue(key, code, &body, false, false, &[("Retry-After", "1")]);
                return Step::Continue;
            }
            counted = true;
        }
        server.active_clients += 1;
        server.clients_served += 1;
        let buffer_size = server.buffer_size;
        let start = stream.start_point(last_event_id);
        let mut sub = stream.subscribe(ServerKind::Http, start.seq, chunked);
        let mut head = Vec::with_capacity(256);
        sse::response_head(&mut head, &timefmt::http_date(self.unix_secs), chunked);
        sub.queue_raw(&head);
        let client_id = self.next_client_id.to_string();
        self.next_client_id += 1;
        let mut hello = Vec::with_capacity(256);
        sse::connected(
            &mut hello,
            &client_id,
            stream.name(),
            &stream.stream_path,
            &stream.status_path,
            buffer_size,
        );
        sub.queue_control(&hello);
        sub.note_lost(start.lost, start.exact);
        stream.dropped += start.lost;
        let index = stream.clients.len();
        stream.clients.push(key);
        let finish = if self.stopping {
            Finish::Draining
        } else {
            Finish::Streaming
        };
        let Some(c) = self.conns.get_mut(key) else {
            return Step::Handed;
        };
        if let Some(t) = c.timer.take() {
            self.timers.cancel(t);
        }
        c.state = ConnState::Stream(Box::new(StreamClient {
            stream: s,
            kind: ServerKind::Http,
            sub,
            index,
            counted,
            finish,
        }));
        self.arm_heartbeat(s, ServerKind::Http);
        self.write_stream_client(key, now);
        Step::Handed
    }

    /// No complete head in time: 408 (or a quiet close of an idle keep-alive connection).
    pub(super) fn header_timeout(&mut self, key: usize, generation: u64, now: u64) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.generation != generation {
            return;
        }
        c.timer = None;
        let ConnState::Http(h) = &mut c.state else {
            return;
        };
        if h.lingering {
            return;
        }
        if h.close_after || h.out_pending() || (h.inbuf.is_empty() && h.requests > 0) {
            self.close(key, now);
            return;
        }
        h.inbuf.clear();
        let e = HttpError::Timeout;
        let body = error_body(crate::http::response::reason(e.status()), Some(e.detail()));
        self.queue(key, e.status(), &body, false, false, &[]);
        self.drive_http(key, now);
    }
}
