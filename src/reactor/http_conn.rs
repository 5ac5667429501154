//! HTTP connections: read a head, answer it (status, errors, 404s with keep-alive and
//! pipelining), or turn the connection into an SSE stream.

use super::conn::{self, ConnState, Finish, Io, StreamClient};
use super::listener::ListenerKind;
use super::{HEADER_TIMEOUT_MS, Reactor, Timer};
use crate::http::decide::{self, Content, Decision, Reply};
use crate::http::request::{self, Body, HttpError, Parse, Request};
use crate::http::response::{JsonResponse, error_body};
use crate::http::router::Endpoint;
use crate::ratelimit::Refusal;
use crate::sse;
use crate::stats;
use crate::stream::{ServerKind, StreamId};
use crate::timefmt;

/// Bytes read from an HTTP connection per read call.
const READ_CHUNK: usize = 4096;
/// Requests plus reads one HTTP connection gets per reactor turn.
const HTTP_STEPS_PER_TURN: usize = 64;
/// How long a closing connection waits for the peer to finish sending.
const LINGER_MS: u64 = 2_000;
/// Bytes discarded from a lingering connection per turn.
const LINGER_READ_BUDGET: usize = 256 * 1024;

/// How a client starts streaming.
struct Start {
    last_event_id: Option<u64>,
    chunked: bool,
    filter: Box<crate::filter::ClientFilter>,
    websocket: Option<decide::WebSocket>,
}

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
            if c.writable {
                // What the transport holds (a TLS handshake or record) goes first.
                match c.transport.push_pending() {
                    Ok(Io::WouldBlock) => c.writable = false,
                    Ok(_) => {}
                    Err(_) => {
                        self.close(key, now);
                        return;
                    }
                }
            }
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
            c.transport.shutdown_write();
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

    /// Writes `reply` into the connection's output; bodies that need run-time state
    /// (status, metrics) are rendered here.
    fn send_reply(&mut self, key: usize, reply: Reply) {
        let body: Vec<u8> = match &reply.content {
            Content::None | Content::StreamHead { .. } => Vec::new(),
            Content::Page(id) => match self.stream(*id) {
                Some(stream) => {
                    let configured = stream
                        .cfg
                        .http
                        .as_ref()
                        .map_or("/stream", |h| h.stream_path.as_str());
                    crate::page::stream_page_for(configured).into_owned()
                }
                None => error_body("Not Found", Some("the stream was removed")),
            },
            Content::Index => {
                let views: Vec<(String, String)> = self
                    .routes_of(key)
                    .map(|r| {
                        r.views()
                            .filter_map(|(id, _)| {
                                let s = self.stream(id)?;
                                let path = s.cfg.http.as_ref()?.stream_path.clone();
                                Some((s.name().to_string(), path))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let refs: Vec<(&str, &str)> = views
                    .iter()
                    .map(|(n, p)| (n.as_str(), p.as_str()))
                    .collect();
                crate::page::router_index(&refs)
            }
            Content::Json(b) => b.clone(),
            Content::StreamStatus(id) => match self.stream(*id) {
                Some(stream) => serde_json::to_vec(&stats::stream_status(
                    stream,
                    self.uptime_secs(),
                    self.config.router,
                ))
                .unwrap_or_default(),
                None => error_body("Not Found", Some("the stream was removed")),
            },
            Content::AllStatus => {
                let streams: Vec<_> = self.streams.iter().map(|(_, s)| s).collect();
                serde_json::to_vec(&stats::global_status(&streams, self.uptime_secs()))
                    .unwrap_or_default()
            }
            Content::Metrics => {
                let streams: Vec<_> = self.streams.iter().map(|(_, s)| s).collect();
                let mut counters = self.counters.clone();
                counters.state_saves = self.store.saves;
                counters.state_save_errors = self.store.save_errors;
                crate::metrics::render(
                    &streams,
                    &counters,
                    crate::metrics::Process::read(self.started_unix_secs),
                    crate::version::TAG,
                    crate::version::COMMIT,
                )
            }
        };
        let date = timefmt::http_date(self.unix_secs);
        *self
            .counters
            .http_responses
            .entry(reply.status)
            .or_default() += 1;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let ConnState::Http(h) = &mut c.state else {
            return;
        };
        if let Content::StreamHead { chunked } = reply.content {
            sse::response_head(&mut h.out, &date, chunked);
            h.close_after = true;
            return;
        }
        let mut headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let content_type = match reply.content {
            Content::Metrics => "text/plain; version=0.0.4; charset=utf-8",
            Content::Page(_) => {
                headers.extend_from_slice(&crate::page::PAGE_HEADERS);
                crate::page::CONTENT_TYPE
            }
            Content::Index => {
                headers.extend_from_slice(&crate::page::INDEX_HEADERS);
                crate::page::CONTENT_TYPE
            }
            _ => "application/json",
        };
        JsonResponse {
            status: reply.status,
            body: &body,
            keep_alive: reply.keep_alive,
            head_only: reply.head_only,
            extra_headers: &headers,
            date,
            content_type,
        }
        .write(&mut h.out);
        if !reply.keep_alive {
            h.close_after = true;
        }
    }

    /// The routes of the listener a connection came through.
    fn routes_of(&self, key: usize) -> Option<&crate::http::router::Routes> {
        let l = self.conns.get(key)?.listener;
        match &self.listeners.get(l)?.kind {
            ListenerKind::Http(routes) => Some(routes),
            ListenerKind::Tcp(_) => None,
        }
    }

    /// The stream whose limits apply to a request on this connection's listener: the one
    /// it names, else the listener's first.
    fn limiting_stream(&self, key: usize, endpoint: Option<Endpoint>) -> Option<StreamId> {
        endpoint
            .and_then(Endpoint::stream)
            .or_else(|| self.routes_of(key)?.streams().next())
    }

    /// Takes a token for a request; on refusal queues the configured answer and closes.
    fn take_token(&mut self, key: usize, stream: Option<StreamId>, now: u64) -> bool {
        let Some(id) = stream else { return true };
        let Some(peer) = self.conns.get(key).map(|c| c.peer) else {
            return false;
        };
        let Some(server) = self.stream_mut(id).and_then(|s| s.http.as_mut()) else {
            return true;
        };
        server.requests += 1;
        let Some(limiter) = server.limiter.as_mut() else {
            return true;
        };
        match limiter.check_request(peer, now) {
            Ok(()) => true,
            Err(refusal) => {
                server.rejected_rate += 1;
                let retry = match refusal {
                    Refusal::Rate { retry_after_secs } => retry_after_secs,
                    Refusal::Connections => 1,
                };
                let reply = decide::refusal_reply(
                    limiter.config.response_code,
                    &limiter.config.response_message.clone(),
                    retry,
                );
                self.send_reply(key, reply);
                false
            }
        }
    }

    /// The listener's authentication of a request on connection `key`.
    fn authenticate(
        &mut self,
        key: usize,
        req: &Request,
        now: u64,
    ) -> Result<(), (decide::AuthRefusal, Reply)> {
        let Some(conn) = self.conns.get(key) else {
            return Ok(());
        };
        let Some((_, auth)) = self
            .listeners
            .get_mut(conn.listener)
            .and_then(|l| l.auth.as_mut())
        else {
            return Ok(());
        };
        let certificate = conn.transport.has_client_certificate();
        decide::authenticate(req, auth, certificate, now).map(|_| ())
    }

    fn count_auth_refusal(
        &mut self,
        key: usize,
        stream: Option<StreamId>,
        why: decide::AuthRefusal,
        req: &Request,
        now: u64,
    ) {
        if let Some(server) = stream
            .and_then(|id| self.stream_mut(id))
            .and_then(|s| s.http.as_mut())
        {
            match why {
                decide::AuthRefusal::Unauthorized => server.rejected_auth += 1,
                decide::AuthRefusal::Busy => server.rejected_auth_busy += 1,
            }
        }
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let peer = conn.peer;
        let port = self
            .listeners
            .get(conn.listener)
            .map_or(0, |l| l.addr.port());
        if self.audit.should_log(peer, now) {
            let what = match (why, req.authorization.is_some()) {
                (decide::AuthRefusal::Unauthorized, true) => "refused credentials",
                (decide::AuthRefusal::Unauthorized, false) => {
                    "refused a request without credentials"
                }
                (decide::AuthRefusal::Busy, _) => "deferred a password check (hash budget spent)",
            };
            crate::log::warn(
                "",
                &format!(
                    "auth: {what} from {peer} on port {port} (further refusals from this address are counted, not logged, for a minute)"
                ),
            );
        }
    }

    fn answer_error(&mut self, key: usize, e: HttpError, now: u64) {
        let stream = self.limiting_stream(key, None);
        if !self.take_token(key, stream, now) {
            return;
        }
        self.send_reply(key, decide::error_reply(e));
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
        let Some(routes) = self.routes_of(key) else {
            return Step::Handed;
        };
        let endpoint = routes.lookup(&req.path);
        let decision = decide::decide(&req, routes);
        let limited_by = self.limiting_stream(key, endpoint);
        if !self.take_token(key, limited_by, now) {
            return Step::Continue;
        }
        self.re_arm_header_timer(key);
        if let Err((why, reply)) = self.authenticate(key, &req, now) {
            self.count_auth_refusal(key, limited_by, why, &req, now);
            self.send_reply(key, reply);
            return Step::Continue;
        }
        match decision {
            Decision::Reply(reply) => {
                self.send_reply(key, reply);
                Step::Continue
            }
            Decision::Stream {
                stream,
                last_event_id,
                chunked,
                filter,
                websocket,
            } => self.start_stream(
                key,
                stream,
                Start {
                    last_event_id,
                    chunked,
                    filter,
                    websocket,
                },
                now,
            ),
        }
    }

    /// Turns the connection into an SSE (or WebSocket) client of stream `id`.
    fn start_stream(&mut self, key: usize, id: StreamId, start: Start, now: u64) -> Step {
        let Start {
            last_event_id,
            chunked,
            filter,
            websocket,
        } = start;
        let Some(peer) = self.conns.get(key).map(|c| c.peer) else {
            return Step::Handed;
        };
        let unix_secs = self.unix_secs;
        let Some(stream) = self.stream_mut(id).filter(|s| !s.removing) else {
            let body = error_body("Not Found", Some("the stream was removed"));
            self.send_reply(
                key,
                Reply {
                    status: 404,
                    content: Content::Json(body),
                    keep_alive: false,
                    head_only: false,
                    headers: Vec::new(),
                },
            );
            return Step::Continue;
        };
        let Some(server) = stream.http.as_mut() else {
            return Step::Continue;
        };
        let mut counted = false;
        if let Some(limiter) = server.limiter.as_mut() {
            if limiter.open_connection(peer, now).is_err() {
                server.rejected_connections += 1;
                let reply = decide::refusal_reply(
                    limiter.config.response_code,
                    "Connection limit exceeded",
                    1,
                );
                self.send_reply(key, reply);
                return Step::Continue;
            }
            counted = true;
        }
        let buffer_size = server.buffer_size;
        let start = stream.start_point(last_event_id);
        let framing = ServerKind::Http.framing(websocket.is_some());
        let Ok(mut sub) = stream.subscribe(ServerKind::Http, framing, start.seq, chunked, *filter)
        else {
            // As many distinct filters as a stream evaluates per entry are in use.
            if counted && let Some(l) = stream.http.as_mut().and_then(|s| s.limiter.as_mut()) {
                l.close_connection(peer, now);
            }
            let body = error_body(
                "Service Unavailable",
                Some(
                    "too many distinct filters on this stream; try again later or use a filter already in use",
                ),
            );
            self.send_reply(
                key,
                Reply {
                    status: 503,
                    content: Content::Json(body),
                    keep_alive: false,
                    head_only: false,
                    headers: vec![("Retry-After", "10".to_string())],
                },
            );
            return Step::Continue;
        };
        if let Some(server) = stream.http.as_mut() {
            server.active_clients += 1;
            server.clients_served += 1;
        }
        let mut head = Vec::with_capacity(256);
        let date = timefmt::http_date(unix_secs);
        match &websocket {
            #[cfg(feature = "websocket")]
            Some(accept) => crate::ws::write_accept_head(&mut head, &date, accept),
            _ => sse::response_head(&mut head, &date, chunked),
        }
        sub.queue_raw(&head);
        let client_id = self.next_client_id.to_string();
        self.next_client_id += 1;
        let Some(stream) = self.stream_mut(id) else {
            return Step::Handed;
        };
        if websocket.is_none() {
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
        }
        sub.note_lost(start.lost, start.exact);
        stream.dropped += start.lost;
        if start.exact {
            stream.dropped_forgotten += start.lost;
        } else {
            stream.dropped_earlier_run += start.lost;
        }
        let index = stream.clients.len();
        stream.clients.push(key);
        let finish = if self.stopping {
            Finish::Draining(sse::DISCONNECT)
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
            stream: id,
            kind: ServerKind::Http,
            framing,
            #[cfg(feature = "websocket")]
            ws: websocket.map(|_| crate::ws::Decoder::default()),
            sub,
            index,
            counted,
            finish,
        }));
        self.arm_heartbeat(id, ServerKind::Http);
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
        if c.transport.handshaking() {
            // A TLS handshake that did not finish in time (slowloris): nothing to say.
            self.counters.tls_handshake_timeouts += 1;
            self.close(key, now);
            return;
        }
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
        self.send_reply(key, decide::error_reply(HttpError::Timeout));
        self.drive_http(key, now);
    }
}
