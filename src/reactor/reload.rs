//! A config applied to the running service: at startup (everything is new) and at every
//! reload (SIGHUP, or a change to the file with `config_auto_reload`). Streams that did not
//! change keep their clients, positions and files; a stream whose tailing changed starts
//! its tailer again from where it was; added streams start; removed streams tell their SSE
//! clients `stream_removed`. Listeners are kept, bound or closed to match. Nothing is
//! changed until every new listener is bound: a reload that cannot bind keeps the running
//! config.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::conn::ConnState;
use super::files::StreamWatcher;
use super::listener::{ListenerKind, bind_socket};
use super::{Reactor, Timer, file_budget};

/// How long the clients of a removed stream have to take their goodbye.
const REAP_GRACE_MS: u64 = 2_000;
use crate::acl::Acl;
use crate::auth::Auth;
use crate::config::{self, Config, StreamConfig};
use crate::entry::unix_micros_now;
use crate::http::router::{Routes, StreamPaths};
use crate::ratelimit::Limiter;
use crate::sse;
use crate::stream::{Ids, ServerKind, ServerState, Stream, StreamId};
use crate::tail::{Monitor, Resume};

/// A listener the config asks for.
struct Want {
    requested: SocketAddr,
    kind: WantKind,
    who: String,
    /// TLS settings, the files read for this config.
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Authentication (HTTP), its files read for this config, with their digest.
    auth: Option<(u64, Auth)>,
    acl: Acl,
}

enum WantKind {
    Http {
        router: bool,
        streams: Vec<StreamId>,
    },
    Tcp(StreamId),
}

impl Reactor {
    /// SIGHUP or a changed config file: read the config again and apply it. An invalid
    /// config is reported and the running one kept.
    pub(super) fn reload(&mut self, _now: u64) {
        let new = match config::load(&self.source, self.overrides) {
            Ok(c) => c,
            Err(e) => {
                self.counters.reload_failures += 1;
                crate::log::error("", &format!("reload: {e}; keeping the running config"));
                return;
            }
        };
        let unchanged = new == self.config;
        // Applied even when the file is unchanged: certificates and users or tokens files
        // are read again, so a renewed certificate needs only a reload.
        match self.apply_config(new) {
            Ok(()) if unchanged => {
                crate::log::info(
                    "",
                    &format!(
                        "reload: {} is unchanged; certificates and credential files read again",
                        self.source
                    ),
                );
            }
            Ok(()) => {
                self.counters.reloads += 1;
                crate::log::info("", &format!("reloaded {}", self.source));
            }
            Err(e) => {
                self.counters.reload_failures += 1;
                crate::log::error("", &format!("reload: {e}; keeping the running config"));
            }
        }
    }

    /// Makes the running service what `new` describes.
    pub(super) fn apply_config(&mut self, new: Config) -> Result<(), String> {
        let running: HashMap<String, StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.removing)
            .map(|(_, s)| (s.cfg.name.clone(), s.id))
            .collect();
        // New streams exist from here on (nothing started), so listeners can route to them.
        let mut plan: Vec<(StreamId, StreamConfig)> = Vec::new();
        let mut added: Vec<(StreamId, Option<Resume>)> = Vec::new();
        for cfg in &new.streams {
            match running.get(&cfg.name) {
                Some(&id) => plan.push((id, cfg.clone())),
                None => {
                    let (id, resume) = self.create_stream(cfg.clone(), new.streams.len());
                    added.push((id, resume));
                    plan.push((id, cfg.clone()));
                }
            }
        }
        let removed: Vec<StreamId> = running
            .values()
            .copied()
            .filter(|id| !plan.iter().any(|(p, _)| p == id))
            .collect();

        let mut wants = match wanted_listeners(&plan, new.router) {
            Ok(w) => w,
            Err(e) => {
                for (id, _) in added {
                    self.streams.remove(id.index);
                }
                return Err(e);
            }
        };
        let mut keep: Vec<(usize, usize)> = Vec::new();
        let mut bound = Vec::new();
        let mut deferred = Vec::new();
        for (i, want) in wants.iter().enumerate() {
            if let Some(k) = self.matching_listener(want) {
                keep.push((i, k));
                continue;
            }
            // A port an old listener still holds is bound once that one is closed.
            let held = want.requested.port() != 0
                && self
                    .listeners
                    .iter()
                    .any(|(_, l)| l.addr.port() == want.requested.port());
            if held {
                deferred.push(i);
                continue;
            }
            match bind_socket(want.requested, &want.who) {
                Ok(socket) => bound.push((i, socket)),
                Err(e) => {
                    for (id, _) in added {
                        self.streams.remove(id.index);
                    }
                    return Err(e);
                }
            }
        }

        // Committed from here on.
        for id in removed {
            self.remove_stream(id);
        }
        for (id, cfg) in &plan {
            if !added.iter().any(|(a, _)| a == id) {
                self.reconfigure_stream(*id, cfg.clone(), new.streams.len());
            }
        }
        let kept: Vec<usize> = keep.iter().map(|&(_, k)| k).collect();
        let old: Vec<usize> = self
            .listeners
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !kept.contains(k))
            .collect();
        for k in old {
            self.close_listener(k);
        }
        for (_, s) in &mut self.streams {
            for server in [s.http.as_mut(), s.tcp.as_mut()].into_iter().flatten() {
                server.listener = usize::MAX;
                server.bound = None;
            }
        }
        let mut problems = Vec::new();
        let mut installed: Vec<(usize, usize)> = keep;
        let unrouted = || ListenerKind::Http(Routes::new(false));
        for (i, socket) in bound {
            match self.install_listener(socket, wants[i].requested, unrouted()) {
                Ok(k) => installed.push((i, k)),
                Err(e) => problems.push(format!("{}: {e}", wants[i].who)),
            }
        }
        for i in deferred {
            let attempt = bind_socket(wants[i].requested, &wants[i].who)
                .and_then(|socket| self.install_listener(socket, wants[i].requested, unrouted()));
            match attempt {
                Ok(k) => installed.push((i, k)),
                Err(e) => problems.push(e),
            }
        }
        for (i, k) in installed {
            self.route_listener(k, &mut wants[i], &plan, self.now);
        }
        for (id, resume) in added {
            self.start_stream_tailing(id, resume);
        }
        if let Err(e) = crate::log::configure(&new.logging) {
            problems.push(e);
        }
        let stats_was_off = self.config.logging.stats_interval_secs == 0;
        self.config = new;
        if stats_was_off {
            self.arm_console_stats();
        }
        self.watch_config();
        self.print_endpoints();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// A new stream, not started: its ids and where its files were come from the state an
    /// earlier run saved.
    fn create_stream(&mut self, cfg: StreamConfig, streams: usize) -> (StreamId, Option<Resume>) {
        let now = self.now;
        let limiter =
            |r: Option<&config::RateLimitConfig>| r.cloned().map(|r| Limiter::new(r, now));
        let http_limiter = limiter(cfg.http.as_ref().and_then(|h| h.rate_limit.as_ref()));
        let tcp_limiter = limiter(cfg.tcp.as_ref().and_then(|t| t.rate_limit.as_ref()));
        let saved = self.store.load(&cfg.name);
        let start_micros = unix_micros_now().max(1) as u64;
        let ids = Ids {
            first: saved
                .as_ref()
                .map_or(start_micros, |st| st.id_ceiling.max(start_micros)),
            prior: saved.as_ref().map(|st| (st.first_id, st.last_id)),
        };
        let id = StreamId {
            index: self.streams.vacant_key(),
            generation: self.next_stream_generation,
        };
        self.next_stream_generation += 1;
        let files = file_budget() / streams.max(1);
        self.streams
            .insert(Stream::new(id, cfg, http_limiter, tcp_limiter, ids, files));
        #[cfg(feature = "forward")]
        if let Some(st) = &saved {
            self.streams[id.index].saved_sinks = st.sinks.clone();
        }
        (id, saved.map(|st| st.resume()))
    }

    /// Starts a stream's tailer (from `resume` where an earlier run left off) and reserves
    /// its ids before any is handed out.
    fn start_stream_tailing(&mut self, id: StreamId, resume: Option<Resume>) {
        let now = self.now;
        let mut watcher = StreamWatcher {
            table: &mut self.watch_table,
            stream: id,
        };
        let stream = &mut self.streams[id.index];
        let journals = resume.as_ref().map_or(&[][..], |r| &r.journals[..]);
        stream.journals.start(now, journals);
        #[cfg(feature = "forward")]
        let started: Vec<((u64, u64), u64)> = resume
            .as_ref()
            .map(|r| r.checkpoints.iter().map(|c| (c.id, c.offset)).collect())
            .unwrap_or_default();
        stream.monitor.start(&mut watcher, now, resume);
        stream.read_pending = true;
        #[cfg(feature = "forward")]
        {
            let saved = std::mem::take(&mut stream.saved_sinks);
            let seq = stream.ring.next_seq();
            self.plan_sinks(id, seq, &saved, &started);
        }
        self.plan_wake(id);
        self.save_stream(id.index, false);
    }

    /// A stream the new config no longer has: its clients get what they are owed, SSE
    /// ones then `stream_removed`, and it goes once they are gone.
    fn remove_stream(&mut self, id: StreamId) {
        self.watch_table.remove_stream(id);
        self.save_stream(id.index, true);
        #[cfg(feature = "forward")]
        self.drop_stream_sinks(id);
        self.stop_journals(id.index);
        let stream = &mut self.streams[id.index];
        stream.removing = true;
        if let Some((_, t)) = stream.wake.take() {
            self.timers.cancel(t);
        }
        let clients = stream.clients.clone();
        if clients.is_empty() {
            self.streams.remove(id.index);
            return;
        }
        // Its clients' goodbyes may still be rendered from the journal meanwhile.
        for key in clients {
            self.say_goodbye(key, sse::STREAM_REMOVED, self.now);
        }
        self.arm(REAP_GRACE_MS, Timer::ReapStream(id));
    }

    /// Drops a removed stream once its last client is gone, or when the grace for their
    /// goodbyes is over (`force`).
    pub(super) fn reap_stream(&mut self, id: StreamId, force: bool) {
        let Some(stream) = self.stream(id).filter(|s| s.removing) else {
            return;
        };
        if force {
            for key in stream.clients.clone() {
                self.close(key, self.now);
            }
        }
        if self.stream(id).is_some_and(|s| s.clients.is_empty()) {
            self.stop_journals(id.index);
            self.streams.remove(id.index);
        }
    }

    /// A stream that stays, with a possibly changed config: servers' settings change in
    /// place; a server that went away says goodbye to its clients; a changed way of
    /// tailing starts the tailer again from where it was (positions kept).
    fn reconfigure_stream(&mut self, id: StreamId, cfg: StreamConfig, streams: usize) {
        let now = self.now;
        let stream = &mut self.streams[id.index];
        if stream.cfg == cfg {
            return;
        }
        let restart_tailer = !stream.cfg.same_monitor(&cfg);
        // Entries counted from a file's lines map back to the same lines only if lines
        // are cut and filtered as before.
        let counted_alike =
            stream.cfg.filters == cfg.filters && stream.cfg.max_line_bytes == cfg.max_line_bytes;
        // Journal runs name their target by its place in the list.
        let journals_alike = counted_alike && stream.cfg.journals == cfg.journals;
        // Clients of a server whose output format changed are framed for the old one:
        // they reconnect and get the new.
        let reformatted = [
            (
                ServerKind::Http,
                stream.cfg.http.as_ref().map(|h| &h.format) != cfg.http.as_ref().map(|h| &h.format),
            ),
            (
                ServerKind::Tcp,
                stream.cfg.tcp.as_ref().map(|t| &t.format) != cfg.tcp.as_ref().map(|t| &t.format),
            ),
        ];
        stream.http = reconfigure_server(
            stream.http.take(),
            ServerKind::Http,
            cfg.http
                .as_ref()
                .map(|h| (h.buffer_size, h.heartbeat, h.rate_limit.clone())),
            now,
        );
        stream.tcp = reconfigure_server(
            stream.tcp.take(),
            ServerKind::Tcp,
            cfg.tcp
                .as_ref()
                .map(|t| (t.buffer_size, t.heartbeat, t.rate_limit.clone())),
            now,
        );
        stream.ring.set_capacity(cfg.ring_capacity());
        stream.cfg = cfg;
        let index_before =
            [ServerKind::Http, ServerKind::Tcp].map(|k| stream.server(k).map(|s| s.format));
        stream.set_formats_and_filters();
        let index_after =
            [ServerKind::Http, ServerKind::Tcp].map(|k| stream.server(k).map(|s| s.format));
        let reformatted = [
            (
                ServerKind::Http,
                reformatted[0].1 || index_before[0] != index_after[0],
            ),
            (
                ServerKind::Tcp,
                reformatted[1].1 || index_before[1] != index_after[1],
            ),
        ];
        let gone: Vec<usize> = stream
            .clients
            .iter()
            .copied()
            .filter(|&key| match self.conns.get(key).map(|c| &c.state) {
                Some(ConnState::Stream(client)) => {
                    stream.server(client.kind).is_none()
                        || reformatted
                            .iter()
                            .any(|&(k, changed)| changed && k == client.kind)
                }
                _ => false,
            })
            .collect();
        for key in gone {
            self.say_goodbye(key, sse::STREAM_REMOVED, now);
        }
        if restart_tailer {
            self.watch_table.remove_stream(id);
            let stream = &mut self.streams[id.index];
            let resume = Resume {
                checkpoints: stream.monitor.checkpoints(),
                saved_at: self.unix_secs,
                journals: stream.journals.cursors(),
            };
            self.stop_journals(id.index);
            let stream = &mut self.streams[id.index];
            let old_monitor = std::mem::replace(
                &mut stream.monitor,
                Monitor::new(&stream.cfg, file_budget() / streams.max(1)),
            );
            stream.journals = crate::journal::Journals::new(&stream.cfg);
            // History points into the old tailer's files: each run is pointed at the new
            // tailer's record of the same file, so clients behind the buffer (and those
            // resuming) are still served from disk. Otherwise (lines cut or filtered
            // differently) they count as lost, never as other lines under their ids.
            let identities: std::collections::HashMap<_, _> = stream
                .history
                .sources()
                .filter(|_| counted_alike)
                .filter_map(|src| Some((src, old_monitor.file_identity(src)?)))
                .collect();
            drop(old_monitor);
            let clients = stream.clients.clone();
            self.start_stream_tailing(id, Some(resume));
            let stream = &mut self.streams[id.index];
            let monitor = &stream.monitor;
            stream.history.remap(
                |src| {
                    identities
                        .get(&src)
                        .and_then(|file| monitor.reference_to(*file))
                },
                journals_alike,
            );
            for (key, delta) in stream.history.take_ref_changes() {
                stream.monitor.history_ref(key, delta);
            }
            // Where a client was in the old tailer's files means nothing to the new one.
            for key in clients {
                if let Some(ConnState::Stream(client)) =
                    self.conns.get_mut(key).map(|c| &mut c.state)
                    && let crate::fanout::At::Disk { hint, .. } = &mut client.sub.at
                {
                    *hint = None;
                }
            }
        }
        #[cfg(feature = "forward")]
        {
            let stream = &mut self.streams[id.index];
            if restart_tailer {
                // Origins and disk positions name the old tailer's files.
                stream.origins.clear();
                for sink in &mut stream.sinks {
                    if let crate::forward::sink::FeedAt::Disk { hint, .. } = &mut sink.feed.at {
                        *hint = None;
                    }
                }
            }
            let seq = stream.ring.next_seq();
            self.plan_sinks(id, seq, &[], &[]);
        }
        for kind in [ServerKind::Http, ServerKind::Tcp] {
            self.arm_heartbeat(id, kind);
        }
    }

    /// The running listener that serves `want` already.
    fn matching_listener(&self, want: &Want) -> Option<usize> {
        self.listeners
            .iter()
            .find(|(_, l)| {
                l.requested == want.requested
                    && match (&want.kind, &l.kind) {
                        (WantKind::Tcp(id), ListenerKind::Tcp(lid)) => id == lid,
                        (WantKind::Http { router: true, .. }, ListenerKind::Http(r)) => {
                            r.is_router()
                        }
                        (
                            WantKind::Http {
                                router: false,
                                streams,
                            },
                            ListenerKind::Http(r),
                        ) => !r.is_router() && r.streams().eq(streams.iter().copied()),
                        _ => false,
                    }
            })
            .map(|(k, _)| k)
    }

    /// Gives listener `key` what `want` serves, and tells its streams where they are.
    fn route_listener(
        &mut self,
        key: usize,
        want: &mut Want,
        plan: &[(StreamId, StreamConfig)],
        now: u64,
    ) {
        let addr = self.listeners[key].addr;
        let kind = match &want.kind {
            WantKind::Tcp(id) => {
                if let Some(server) = self.stream_mut(*id).and_then(|s| s.tcp.as_mut()) {
                    server.listener = key;
                    server.bound = Some(addr);
                }
                ListenerKind::Tcp(*id)
            }
            WantKind::Http { router, streams } => {
                let mut routes = Routes::new(*router);
                for id in streams {
                    let Some((_, cfg)) = plan.iter().find(|(p, _)| p == id) else {
                        continue;
                    };
                    let Some(h) = &cfg.http else { continue };
                    let paths = StreamPaths {
                        stream: &h.stream_path,
                        status: &h.status_path,
                        metrics: &h.metrics_path,
                    };
                    let (stream_path, status_path) = routes.add_stream(*id, &cfg.name, paths);
                    if let Some(stream) = self.stream_mut(*id) {
                        stream.stream_path = stream_path;
                        stream.status_path = status_path;
                        if let Some(server) = stream.http.as_mut() {
                            server.listener = key;
                            server.bound = Some(addr);
                        }
                    }
                }
                ListenerKind::Http(routes)
            }
        };
        self.listeners[key].kind = kind;
        #[cfg(feature = "tls")]
        {
            self.listeners[key].tls = want.tls.clone();
        }
        self.guard_listener(key, want.auth.take(), want.acl.clone(), now);
    }

    /// New access rules for listener `key`. Connections the new IP lists refuse are
    /// closed; when the authentication changed, its streaming clients are asked to
    /// reconnect (with their last id, so nothing is lost) and show their credentials again.
    fn guard_listener(&mut self, key: usize, auth: Option<(u64, Auth)>, acl: Acl, now: u64) {
        let listener = &mut self.listeners[key];
        let auth_changed =
            listener.auth.as_ref().map(|(d, _)| *d) != auth.as_ref().map(|(d, _)| *d);
        listener.auth = match (auth, listener.auth.take()) {
            (Some((digest, mut new)), Some((_, mut old))) => {
                new.take_cache_from(&mut old);
                Some((digest, new))
            }
            (new, _) => new,
        };
        let acl_changed = listener.acl != acl;
        listener.acl = acl;
        if !auth_changed && !acl_changed {
            return;
        }
        let affected: Vec<(usize, bool)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.listener == key)
            .map(|(k, c)| (k, matches!(c.state, ConnState::Stream(_))))
            .collect();
        for (conn, streaming) in affected {
            let peer = self.conns[conn].peer;
            if !self.listeners[key].acl.allows(peer) {
                self.close(conn, now);
            } else if auth_changed && streaming && self.listeners[key].auth.is_some() {
                self.say_goodbye(conn, sse::AUTH_CHANGED, now);
            }
        }
    }
}

/// The listeners `plan` needs: one per TCP server, one per HTTP server, or in router mode
/// one per HTTP address shared by every stream on it.
fn wanted_listeners(plan: &[(StreamId, StreamConfig)], router: bool) -> Result<Vec<Want>, String> {
    let mut wants: Vec<Want> = Vec::new();
    for (id, cfg) in plan {
        if let Some(h) = &cfg.http {
            let requested = SocketAddr::new(h.address, h.port);
            let shared = wants.iter_mut().find(|w| {
                router
                    && w.requested == requested
                    && matches!(w.kind, WantKind::Http { router: true, .. })
            });
            match shared {
                Some(Want {
                    kind: WantKind::Http { streams, .. },
                    ..
                }) => streams.push(*id),
                _ => wants.push(Want {
                    requested,
                    kind: WantKind::Http {
                        router,
                        streams: vec![*id],
                    },
                    who: format!("stream `{}` http server", cfg.name),
                    #[cfg(feature = "tls")]
                    tls: tls_config(&h.tls, &cfg.name)?,
                    auth: match &h.auth {
                        Some(a) => {
                            let (auth, digest) = a
                                .load()
                                .map_err(|e| format!("stream `{}`: {e}", cfg.name))?;
                            Some((digest, auth))
                        }
                        None => None,
                    },
                    acl: h.acl.clone(),
                }),
            }
        }
        if let Some(t) = &cfg.tcp {
            wants.push(Want {
                requested: SocketAddr::new(t.address, t.port),
                kind: WantKind::Tcp(*id),
                who: format!("stream `{}` tcp server", cfg.name),
                #[cfg(feature = "tls")]
                tls: tls_config(&t.tls, &cfg.name)?,
                auth: None,
                acl: t.acl.clone(),
            });
        }
    }
    Ok(wants)
}

/// A server's TLS session settings, its certificate files read now (so a reload picks up
/// a renewed certificate).
#[cfg(feature = "tls")]
fn tls_config(
    tls: &Option<config::TlsConfig>,
    stream: &str,
) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>, String> {
    tls.as_ref()
        .map(|t| crate::tls::server_config(t).map_err(|e| format!("stream `{stream}`: {e}")))
        .transpose()
}

/// A server's run-time state under its new settings (`None`: the server is gone).
fn reconfigure_server(
    old: Option<ServerState>,
    kind: ServerKind,
    new: Option<(
        usize,
        Option<config::HeartbeatConfig>,
        Option<config::RateLimitConfig>,
    )>,
    now: u64,
) -> Option<ServerState> {
    let (buffer_size, heartbeat, rate_limit) = new?;
    let Some(mut server) = old else {
        return Some(ServerState::new(
            kind,
            buffer_size,
            heartbeat,
            rate_limit.map(|r| Limiter::new(r, now)),
        ));
    };
    server.buffer_size = buffer_size;
    server.heartbeat = heartbeat;
    let same_limits = server.limiter.as_ref().map(|l| &l.config) == rate_limit.as_ref();
    if !same_limits {
        server.limiter = rate_limit.map(|r| Limiter::new(r, now));
    }
    Some(server)
}
