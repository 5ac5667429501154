//! The one event loop. It owns every socket, the inotify descriptor, the signal source and
//! the timer wheel, reads the clock once per turn and passes `now` down.
//!
//! A turn: wait for readiness (or the next timer), handle socket events, fire timers, read
//! files within a budget, send new entries to every client of each stream that has them,
//! retry work that ran out of budget, then accept new connections (after the event batch,
//! so a slab key is never reused while events for its previous owner are pending).
//!
//! - [`files`]: inotify watches and reading the streams' files;
//! - [`listener`]: listening sockets, kept in step with the config (startup and reload);
//! - [`http_conn`]: HTTP connections, from request head to response or stream;
//! - [`streaming`]: streaming clients, from the shared buffer or from disk;
//! - [`reload`]: a new config applied to the running service.

mod conn;
mod files;
#[cfg(feature = "forward")]
mod forward;
mod http_conn;
mod listener;
mod reload;
mod streaming;

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use inotify::Inotify;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::config::{Config, ConfigSource, Overrides};
use crate::entry::unix_micros_now;
use crate::state::{self, ID_RESERVE, Store, StreamState};
use crate::stats;
use crate::stream::{ServerKind, Stream, StreamId};
use crate::timer::{TimerId, Wheel};
use conn::ConnState;
use files::{PipeTable, WatchTable};
use listener::Listener;
pub use listener::StartupError;

const SIGNAL_TOKEN: Token = Token(usize::MAX);
const INOTIFY_TOKEN: Token = Token(usize::MAX - 1);
/// Listener `k` has token `LISTENER_BASE - k`.
const LISTENER_BASE: usize = usize::MAX - 2;
/// Listener keys stay below this, so their tokens never meet connection keys.
const MAX_LISTENERS: usize = 1 << 16;
/// Pipe `k` of a journalctl child has token `PIPE_BASE - k`.
const PIPE_BASE: usize = LISTENER_BASE - MAX_LISTENERS;
/// Pipe keys stay below this (two per child).
const MAX_PIPES: usize = 1 << 16;
/// Children whose pipes closed are looked at this often until they are reaped.
const REAP_MS: u64 = 1_000;

/// Readiness events taken per poll.
const EVENTS_CAPACITY: usize = 1024;
/// Scratch buffer for file reads.
const FILE_READ_CHUNK: usize = 256 * 1024;
/// Bytes one client may be sent per turn before others get a go.
const WRITE_BUDGET: usize = 4 * 1024 * 1024;
/// Bytes read and discarded from one streaming client per turn.
const DISCARD_BUDGET: usize = 64 * 1024;
/// A request head must arrive within this long (and an idle keep-alive is closed after it).
pub const HEADER_TIMEOUT_MS: u64 = 10_000;
/// How often a half-closed streaming client is asked whether it is still there.
const PROBE_MS: u64 = 10_000;
/// How long shutdown waits for clients to take their last bytes.
/// (The spec allows 2 s; the margin covers process teardown.)
const SHUTDOWN_GRACE_MS: u64 = 1_500;
const LIMITER_SWEEP_MS: u64 = 60_000;
/// Saved state lags what was read by at most this long.
const STATE_SAVE_MS: u64 = 1_000;
/// A config file changed on disk is read again once it has been quiet this long (editors
/// write in several steps).
const RELOAD_SETTLE_MS: u64 = 200;
/// Descriptors kept free for listeners and clients, whatever the files want.
const MIN_SOCKET_RESERVE: usize = 64;

/// Milliseconds since the reactor started: the timer wheel's ticks.
struct Clock {
    start: Instant,
}

impl Clock {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn timeout_until(&self, tick: Option<u64>) -> Option<Duration> {
        let tick = tick?;
        let now = self.start.elapsed().as_micros() as u64;
        Some(Duration::from_micros((tick * 1000).saturating_sub(now)))
    }
}

#[derive(Debug, Clone, Copy)]
enum Timer {
    /// The stream's tailer asked to be woken (a periodic check, a retired file's grace).
    StreamWake(StreamId),
    Heartbeat(StreamId, ServerKind),
    HeaderTimeout {
        key: usize,
        generation: u64,
    },
    /// A lingering close gives up waiting for the peer.
    Linger {
        key: usize,
        generation: u64,
    },
    /// Asks a half-closed streaming client whether it is still there.
    Probe {
        key: usize,
        generation: u64,
    },
    ConsoleStats,
    SweepLimiters,
    ResumeAccept(usize),
    SaveState,
    /// The config file changed: read it again.
    Reload,
    /// A stream a reload removed: its clients' time to take their goodbye is over.
    ReapStream(StreamId),
    /// Children that ended (or were killed) and are not reaped yet.
    ReapChildren,
    ShutdownDeadline,
    /// A sink's connection has something due (SPEC §16).
    #[cfg(feature = "forward")]
    Sink {
        key: usize,
        generation: u64,
    },
}

pub struct Reactor {
    poll: Poll,
    events: Events,
    clock: Clock,
    /// This turn's tick (milliseconds since start).
    now: u64,
    timers: Wheel<Timer>,
    fired: Vec<Timer>,
    streams: Slab<Stream>,
    next_stream_generation: u64,
    listeners: Slab<Listener>,
    conns: Slab<conn::Conn>,
    inotify: Inotify,
    watch_table: WatchTable,
    /// Pipes of journalctl children, and children waiting to be reaped.
    pipes: PipeTable,
    store: Store,
    save_armed: bool,
    signals: Signals,
    /// What the running config came from, and the command line that shaped it.
    source: ConfigSource,
    overrides: Overrides,
    config: Config,
    /// The watch on the config file's directory (`config_auto_reload`).
    config_watch: Option<u64>,
    reload_armed: Option<TimerId>,
    file_buf: Vec<u8>,
    scratch: Vec<u8>,
    /// Connections whose budget ran out with work left: driven again next turn.
    ready: Vec<(usize, u64)>,
    next_generation: u64,
    next_client_id: u64,
    started_unix_secs: i64,
    /// Unix seconds, read once per turn.
    unix_secs: i64,
    /// Set when shutdown starts.
    stopping: bool,
    stop_now: bool,
    accept_error_reported: bool,
    /// inotify events may be waiting (edge-triggered: set by an event, cleared once a
    /// read would block; a turn reads a bounded number of them).
    inotify_pending: bool,
    /// Refusals by IP list or authentication already logged, per address.
    audit: crate::audit::Audit,
    counters: crate::metrics::Counters,
    /// Sinks' connections, and sinks to drive again next turn.
    #[cfg(feature = "forward")]
    sink_io: Slab<forward::SinkIo>,
    #[cfg(feature = "forward")]
    sinks_ready: Vec<usize>,
}

impl Reactor {
    /// Sets everything up: listeners bound, tailers positioned (from saved state where an
    /// earlier run left it), timers armed. Prints the endpoints. Errors here are startup
    /// errors (exit 1).
    pub fn new(
        config: Config,
        source: &ConfigSource,
        overrides: Overrides,
    ) -> Result<Reactor, StartupError> {
        let poll = Poll::new().map_err(|e| StartupError::new("cannot create the event loop", e))?;
        let inotify =
            Inotify::init().map_err(|e| StartupError::new("cannot initialise inotify", e))?;
        let fd = inotify.as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), INOTIFY_TOKEN, Interest::READABLE)
            .map_err(|e| StartupError::new("cannot watch inotify", e))?;
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| StartupError::new("cannot install signal handlers", e))?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)
            .map_err(|e| StartupError::new("cannot watch signals", e))?;
        let clock = Clock {
            start: Instant::now(),
        };
        let now = clock.now_ms();
        let store = Store::open(config.state_dir.clone().or_else(state::default_dir));
        let unix_secs = unix_micros_now() / 1_000_000;
        let watches = inotify.watches();
        let empty = Config {
            streams: Vec::new(),
            ..config.clone()
        };
        let mut reactor = Reactor {
            poll,
            events: Events::with_capacity(EVENTS_CAPACITY),
            clock,
            now,
            timers: Wheel::new(now),
            fired: Vec::new(),
            streams: Slab::new(),
            next_stream_generation: 1,
            listeners: Slab::new(),
            conns: Slab::new(),
            inotify,
            watch_table: WatchTable::new(watches),
            pipes: PipeTable::default(),
            store,
            save_armed: false,
            signals,
            source: source.clone(),
            overrides,
            config: empty,
            config_watch: None,
            reload_armed: None,
            file_buf: vec![0u8; FILE_READ_CHUNK],
            scratch: vec![0u8; 16 * 1024],
            ready: Vec::new(),
            next_generation: 1,
            next_client_id: 1,
            started_unix_secs: unix_secs,
            unix_secs,
            stopping: false,
            stop_now: false,
            accept_error_reported: false,
            inotify_pending: true,
            audit: crate::audit::Audit::default(),
            counters: crate::metrics::Counters::default(),
            #[cfg(feature = "forward")]
            sink_io: Slab::new(),
            #[cfg(feature = "forward")]
            sinks_ready: Vec::new(),
        };
        println!("logwisp {} starting", crate::version::TAG);
        println!("config: {source}");
        match &reactor.store.dir {
            Some(dir) => println!("state: {}", dir.display()),
            None => println!("state: not kept (positions are not saved across restarts)"),
        }
        reactor
            .apply_config(config)
            .map_err(|message| StartupError { message })?;
        reactor.arm_console_stats();
        reactor.arm(LIMITER_SWEEP_MS, Timer::SweepLimiters);
        Ok(reactor)
    }

    /// Schedules `timer` `ms` from this turn (never early: the turn's tick is rounded
    /// down, so one more tick is added).
    fn arm(&mut self, ms: u64, timer: Timer) -> TimerId {
        self.timers.insert(self.now + ms + 1, timer)
    }

    fn uptime_secs(&self) -> u64 {
        (self.unix_secs - self.started_unix_secs).max(0) as u64
    }

    /// The stream `id` names, unless a reload removed it.
    fn stream(&self, id: StreamId) -> Option<&Stream> {
        self.streams.get(id.index).filter(|s| s.id == id)
    }

    fn stream_mut(&mut self, id: StreamId) -> Option<&mut Stream> {
        self.streams.get_mut(id.index).filter(|s| s.id == id)
    }

    fn has_pending_work(&self) -> bool {
        #[cfg(feature = "forward")]
        if !self.sinks_ready.is_empty() {
            return true;
        }
        self.inotify_pending
            || !self.ready.is_empty()
            || (!self.stopping && self.streams.iter().any(|(_, s)| s.wants_read()))
            || self.listeners.iter().any(|(_, l)| l.readable && !l.paused)
    }

    /// Keeps one timer per stream at the tick its tailer wants to be woken, if any.
    fn plan_wake(&mut self, id: StreamId) {
        let Some(stream) = self.stream_mut(id) else {
            return;
        };
        let want = match (stream.monitor.next_wakeup(), stream.journals.next_wakeup()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let have = stream.wake.map(|(tick, _)| tick);
        if want == have {
            return;
        }
        let old = stream.wake.take();
        if let Some((_, timer)) = old {
            self.timers.cancel(timer);
        }
        if let Some(tick) = want {
            let timer = self
                .timers
                .insert(tick.max(self.timers.elapsed()), Timer::StreamWake(id));
            if let Some(stream) = self.stream_mut(id) {
                stream.wake = Some((tick, timer));
            }
        }
    }

    /// The console summary every `stats_interval_seconds` (none when 0).
    fn arm_console_stats(&mut self) {
        let secs = self.config.logging.stats_interval_secs;
        if secs > 0 {
            self.arm(secs * 1000, Timer::ConsoleStats);
        }
    }

    /// Heartbeats tick while a server has clients, so an idle logwisp is not woken for
    /// nobody.
    fn arm_heartbeat(&mut self, id: StreamId, kind: ServerKind) {
        let Some(server) = self.stream_mut(id).and_then(|s| s.server_mut(kind)) else {
            return;
        };
        let Some(hb) = server.heartbeat else { return };
        if server.heartbeat_armed || server.active_clients == 0 {
            return;
        }
        server.heartbeat_armed = true;
        self.arm(hb.interval_secs * 1000, Timer::Heartbeat(id, kind));
    }

    /// Writes a stream's positions and ids. `clean`: the last save of this stream's run.
    fn save_stream(&mut self, index: usize, clean: bool) {
        let unix_secs = self.unix_secs;
        let Some(stream) = self.streams.get(index) else {
            return;
        };
        let next = stream.ring.next_seq();
        let ceiling = if clean { next } else { next + ID_RESERVE };
        let state = StreamState {
            first_id: stream.ids.first,
            last_id: next - 1,
            id_ceiling: ceiling,
            saved_at: unix_secs,
            checkpoints: stream.monitor.checkpoints(),
            journals: stream.journals.cursors(),
            #[cfg(feature = "forward")]
            sinks: self.sink_cursors(index),
            #[cfg(not(feature = "forward"))]
            sinks: Vec::new(),
        };
        let Some(stream) = self.streams.get_mut(index) else {
            return;
        };
        #[cfg(feature = "forward")]
        {
            stream.sinks_dirty = false;
        }
        stream.monitor.checkpoint_dirty = false;
        stream.journals.cursor_dirty = false;
        let name = stream.cfg.name.clone();
        if self.store.save(&name, &state) || self.store.dir.is_none() {
            self.streams[index].saved = (next, ceiling);
        }
    }

    /// Saves, at most about once a second, what moved; at once when ids near the ceiling.
    fn plan_save(&mut self) {
        if self.store.dir.is_none() {
            return;
        }
        let near_ceiling: Vec<usize> = self
            .streams
            .iter()
            .filter(|(_, s)| s.ring.next_seq() + ID_RESERVE / 2 >= s.saved.1)
            .map(|(k, _)| k)
            .collect();
        for k in near_ceiling {
            self.save_stream(k, false);
        }
        if self.save_armed {
            return;
        }
        let moved = self
            .streams
            .iter()
            .any(|(_, s)| s.checkpoint_dirty() || s.ring.next_seq() != s.saved.0);
        if moved {
            self.save_armed = true;
            self.arm(STATE_SAVE_MS, Timer::SaveState);
        }
    }

    /// Runs until SIGINT/SIGTERM and the shutdown that follows.
    pub fn run(&mut self) -> io::Result<()> {
        let mut started = false;
        loop {
            let timeout = if self.has_pending_work() {
                Some(Duration::ZERO)
            } else {
                if !started {
                    // The first time there is nothing to do: start-up is over.
                    started = true;
                    crate::memory::release_startup_pages();
                }
                self.clock.timeout_until(self.timers.next_deadline())
            };
            let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.now = self.clock.now_ms();
            self.unix_secs = unix_micros_now() / 1_000_000;
            let now = self.now;
            for event in events.iter() {
                match event.token() {
                    SIGNAL_TOKEN => self.handle_signals(now),
                    INOTIFY_TOKEN => self.inotify_pending = true,
                    Token(t) if t > LISTENER_BASE - MAX_LISTENERS && t <= LISTENER_BASE => {
                        if let Some(l) = self.listeners.get_mut(LISTENER_BASE - t) {
                            l.readable = true;
                        }
                    }
                    Token(t) if t > PIPE_BASE - MAX_PIPES && t <= PIPE_BASE => {
                        self.handle_pipe(PIPE_BASE - t);
                    }
                    #[cfg(feature = "forward")]
                    Token(t) if Self::sink_token(t).is_some() => {
                        if let Some((key, dns)) = Self::sink_token(t) {
                            self.sink_event(
                                key,
                                dns,
                                event.is_readable() || event.is_read_closed() || event.is_error(),
                                event.is_writable() || event.is_write_closed() || event.is_error(),
                            );
                        }
                    }
                    Token(key) => {
                        if let Some(conn) = self.conns.get_mut(key) {
                            // Error and hang-up flags are hints: the next read or write
                            // reports what really happened.
                            conn.readable |=
                                event.is_readable() || event.is_read_closed() || event.is_error();
                            conn.writable |=
                                event.is_writable() || event.is_write_closed() || event.is_error();
                            conn.broken |= event.is_error() || event.is_write_closed();
                            self.drive(key, now);
                        }
                    }
                }
            }
            self.events = events;
            if self.inotify_pending {
                self.handle_inotify(now);
            }
            self.fire_timers(now);
            if !self.stopping {
                self.read_files(now);
            }
            self.flush_fresh_streams(now);
            self.retry_ready(now);
            #[cfg(feature = "forward")]
            self.retry_sinks();
            self.wake_replay_waiters();
            if !self.stopping {
                self.accept_ready(now);
                self.plan_save();
            }
            #[cfg(feature = "forward")]
            let sinks_busy = self.sinks_busy();
            #[cfg(not(feature = "forward"))]
            let sinks_busy = false;
            if self.stopping && (self.stop_now || (self.conns.is_empty() && !sinks_busy)) {
                let keys: Vec<usize> = self.streams.iter().map(|(k, _)| k).collect();
                for k in keys {
                    self.save_stream(k, true);
                    self.stop_journals(k);
                }
                self.pipes.reap(true);
                return Ok(());
            }
            self.plan_reaping();
        }
    }

    fn handle_signals(&mut self, now: u64) {
        let pending: Vec<i32> = self.signals.pending().collect();
        for signal in pending {
            match signal {
                SIGINT | SIGTERM => self.begin_shutdown(now),
                SIGHUP if !self.stopping => self.reload(now),
                _ => {}
            }
        }
    }

    fn fire_timers(&mut self, now: u64) {
        let mut fired = std::mem::take(&mut self.fired);
        self.timers.advance(now, &mut fired);
        for timer in fired.drain(..) {
            match timer {
                Timer::StreamWake(id) => {
                    if let Some(stream) = self.stream_mut(id) {
                        stream.wake = None;
                        stream.monitor.wake(now);
                        stream.read_pending = true;
                        self.plan_wake(id);
                    }
                }
                Timer::Heartbeat(id, kind) => {
                    if let Some(server) = self.stream_mut(id).and_then(|s| s.server_mut(kind)) {
                        server.heartbeat_armed = false;
                        self.heartbeat(id, kind, now);
                        self.arm_heartbeat(id, kind);
                    }
                }
                Timer::HeaderTimeout { key, generation } => {
                    self.header_timeout(key, generation, now)
                }
                Timer::Linger { key, generation } => {
                    if self
                        .conns
                        .get(key)
                        .is_some_and(|c| c.generation == generation)
                    {
                        self.close(key, now);
                    }
                }
                Timer::Probe { key, generation } => self.probe(key, generation),
                Timer::ConsoleStats => {
                    if self.config.logging.stats_interval_secs > 0 {
                        let streams: Vec<&Stream> = self.streams.iter().map(|(_, s)| s).collect();
                        print!("{}", stats::console_summary(&streams, self.unix_secs));
                    }
                    self.arm_console_stats();
                }
                Timer::SweepLimiters => {
                    for (_, s) in &mut self.streams {
                        for server in [s.http.as_mut(), s.tcp.as_mut()].into_iter().flatten() {
                            if let Some(l) = server.limiter.as_mut() {
                                l.sweep(now);
                            }
                        }
                        s.monitor.sweep(now);
                    }
                    self.arm(LIMITER_SWEEP_MS, Timer::SweepLimiters);
                }
                Timer::ResumeAccept(l) => {
                    if let Some(listener) = self.listeners.get_mut(l) {
                        listener.paused = false;
                        listener.readable = true;
                    }
                }
                Timer::SaveState => {
                    self.save_armed = false;
                    let moved: Vec<usize> = self
                        .streams
                        .iter()
                        .filter(|(_, s)| s.checkpoint_dirty() || s.ring.next_seq() != s.saved.0)
                        .map(|(k, _)| k)
                        .collect();
                    for k in moved {
                        self.save_stream(k, false);
                    }
                }
                Timer::Reload => {
                    self.reload_armed = None;
                    if !self.stopping {
                        self.reload(now);
                    }
                }
                Timer::ReapStream(id) => self.reap_stream(id, true),
                Timer::ReapChildren => {
                    self.pipes.reap_armed = false;
                    self.pipes.reap(false);
                }
                Timer::ShutdownDeadline => self.stop_now = true,
                #[cfg(feature = "forward")]
                Timer::Sink { key, generation } => self.sink_timer(key, generation),
            }
        }
        self.fired = fired;
    }

    fn retry_ready(&mut self, now: u64) {
        let ready = std::mem::take(&mut self.ready);
        for (key, generation) in ready {
            #[cfg(feature = "forward")]
            if self.sink_client_ready((key, generation)) {
                continue;
            }
            if self
                .conns
                .get(key)
                .is_some_and(|c| c.generation == generation)
            {
                self.drive(key, now);
            }
        }
    }

    /// Acts on a connection's readiness.
    fn drive(&mut self, key: usize, now: u64) {
        match self.conns.get(key).map(|c| &c.state) {
            Some(ConnState::Http(_)) => self.drive_http(key, now),
            Some(ConnState::Stream(_)) => self.drive_stream_client(key, now),
            None => {}
        }
    }

    /// Closes and forgets a connection, releasing its place in its stream and limits.
    fn close(&mut self, key: usize, now: u64) {
        if !self.conns.contains(key) {
            return;
        }
        let mut conn = self.conns.remove(key);
        if conn.transport.handshaking() {
            self.counters.tls_handshake_failures += 1;
        }
        let _ = self.poll.registry().deregister(conn.transport.socket());
        if let Some(t) = conn.timer.take() {
            self.timers.cancel(t);
        }
        if let ConnState::Stream(client) = conn.state {
            self.forget_client((key, conn.generation), &client, conn.peer, now);
        }
    }

    /// SIGINT/SIGTERM: stop accepting and reading, say goodbye to SSE clients after what
    /// they are owed, and leave once everyone is gone or after the grace period.
    fn begin_shutdown(&mut self, now: u64) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        crate::log::info("", "shutting down");
        let keys: Vec<usize> = self.listeners.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.close_listener(k);
        }
        self.arm(SHUTDOWN_GRACE_MS, Timer::ShutdownDeadline);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            match &mut conn.state {
                ConnState::Http(h) => {
                    if !h.out_pending() {
                        self.close(key, now);
                    } else {
                        h.close_after = true;
                    }
                }
                ConnState::Stream(_) => {
                    self.say_goodbye(key, crate::sse::DISCONNECT, now);
                }
            }
        }
    }

    /// Keeps a timer while children wait to be reaped.
    fn plan_reaping(&mut self) {
        if !self.pipes.reap_armed && self.pipes.has_zombies() {
            self.pipes.reap_armed = true;
            self.arm(REAP_MS, Timer::ReapChildren);
        }
    }

    fn next_generation(&mut self) -> u64 {
        let g = self.next_generation;
        self.next_generation += 1;
        g
    }
}

/// Raises the soft open-files limit to the hard limit: each client is a descriptor, and
/// the default soft limit (often 1024) is far below what one box can serve.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the `rlimit` struct we pass, which
    // is a valid, initialised local for the duration of each call.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Descriptors the tailers may hold in all: the open-files limit less room for
/// listeners, clients and the reactor's own descriptors.
fn file_budget() -> usize {
    // SAFETY: getrlimit only writes the `rlimit` struct we pass, a valid local.
    let limit = unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur as usize
        } else {
            1024
        }
    };
    let reserve = MIN_SOCKET_RESERVE.max(limit / 4);
    limit.saturating_sub(reserve + 16).max(8)
}

/// Logs a problem the first time it happens.
fn report_once(flag: &mut bool, message: &str) {
    if !*flag {
        *flag = true;
        crate::log::warn("", message);
    }
}
