//! The one event loop. It owns every socket, the inotify descriptor, the signal source and
//! the timer wheel, reads the clock once per turn and passes `now` down.
//!
//! A turn: wait for readiness (or the next timer), handle socket events, fire timers, read
//! files within a budget, send new entries to every client of each stream that has them,
//! retry work that ran out of budget, then accept new connections (after the event batch,
//! so a slab key is never reused while events for its previous owner are pending).

mod conn;
mod http_conn;
mod listener;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::config::{Config, ConfigSource};
use crate::entry::{Stamp, unix_micros_now};
use crate::fanout::Flush;
use crate::ratelimit::Limiter;
use crate::sse;
use crate::state::{self, ID_RESERVE, Store, StreamState};
use crate::stats;
use crate::stream::{Ids, ServerKind, Stream};
use crate::tail::{Change, WatchOwner, Watcher, report};
use crate::timer::{TimerId, Wheel};
use conn::{Conn, ConnState, Finish, StreamClient};
use listener::Listener;
pub use listener::StartupError;

const SIGNAL_TOKEN: Token = Token(usize::MAX);
const INOTIFY_TOKEN: Token = Token(usize::MAX - 1);
/// Listener `i` has token `LISTENER_BASE - i`.
const LISTENER_BASE: usize = usize::MAX - 2;

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
const CONSOLE_STATS_MS: u64 = 30_000;
const LIMITER_SWEEP_MS: u64 = 60_000;
/// Saved state lags what was read by at most this long.
const STATE_SAVE_MS: u64 = 1_000;
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

    /// The tick at which `ms` from now has fully passed (rounded up: never early).
    fn deadline_in(&self, ms: u64) -> u64 {
        let micros = self.start.elapsed().as_micros() as u64 + ms * 1000;
        micros.div_ceil(1000)
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
    StreamWake(usize),
    Heartbeat(usize, ServerKind),
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
    ShutdownDeadline,
}

/// Who an inotify watch serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    stream: usize,
    what: WatchOwner,
}

const DIR_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MODIFY)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR);
const FILE_MASK: WatchMask = WatchMask::MODIFY
    .union(WatchMask::ATTRIB)
    .union(WatchMask::DELETE_SELF);

/// The inotify watches of every stream, and whom each one serves (several streams, or
/// several targets of one, may watch one directory).
struct WatchTable {
    watches: Watches,
    owners: HashMap<WatchDescriptor, Vec<Owner>>,
    by_token: HashMap<u64, WatchDescriptor>,
}

impl WatchTable {
    fn add(&mut self, path: &Path, mask: WatchMask, owner: Owner) -> io::Result<u64> {
        let wd = self.watches.add(path, mask)?;
        let token = wd.get_watch_descriptor_id() as u64;
        let owners = self.owners.entry(wd.clone()).or_default();
        if !owners.contains(&owner) {
            owners.push(owner);
        }
        self.by_token.insert(token, wd);
        Ok(token)
    }

    fn remove(&mut self, token: u64, owner: Owner) {
        let Some(wd) = self.by_token.get(&token).cloned() else {
            return;
        };
        let Some(owners) = self.owners.get_mut(&wd) else {
            return;
        };
        owners.retain(|o| *o != owner);
        if owners.is_empty() {
            self.owners.remove(&wd);
            self.by_token.remove(&token);
            let _ = self.watches.remove(wd);
        }
    }

    /// The kernel dropped the watch (its directory or file is gone): forget it.
    fn forget(&mut self, wd: &WatchDescriptor) -> Vec<Owner> {
        self.by_token.remove(&(wd.get_watch_descriptor_id() as u64));
        self.owners.remove(wd).unwrap_or_default()
    }
}

/// Adds and removes watches on behalf of one stream's tailer.
struct StreamWatcher<'a> {
    table: &'a mut WatchTable,
    stream: usize,
}

impl Watcher for StreamWatcher<'_> {
    fn watch_dir(&mut self, dir: &Path, target: usize) -> io::Result<u64> {
        let owner = Owner {
            stream: self.stream,
            what: WatchOwner::Dir(target),
        };
        self.table.add(dir, DIR_MASK, owner)
    }

    fn watch_file(&mut self, file: &File, source: usize) -> io::Result<u64> {
        // A watch on a file follows its inode wherever it is renamed; the path through
        // our own descriptor reaches that inode whatever name it has now.
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        let owner = Owner {
            stream: self.stream,
            what: WatchOwner::File(source),
        };
        self.table.add(Path::new(&path), FILE_MASK, owner)
    }

    fn unwatch(&mut self, token: u64, owner: WatchOwner) {
        let owner = Owner {
            stream: self.stream,
            what: owner,
        };
        self.table.remove(token, owner);
    }
}

pub struct Reactor {
    poll: Poll,
    events: Events,
    clock: Clock,
    timers: Wheel<Timer>,
    fired: Vec<Timer>,
    streams: Vec<Stream>,
    listeners: Vec<Listener>,
    conns: Slab<Conn>,
    inotify: Inotify,
    watch_table: WatchTable,
    /// Each stream's pending wake-up (tick and timer), as its tailer asked.
    wakes: Vec<Option<(u64, TimerId)>>,
    store: Store,
    /// Per stream: the next sequence number at the last save, and the id ceiling saved.
    saved: Vec<(u64, u64)>,
    save_armed: bool,
    signals: Signals,
    file_buf: Vec<u8>,
    scratch: Vec<u8>,
    /// Connections whose budget ran out with work left: driven again next turn.
    ready: Vec<(usize, u64)>,
    next_generation: u64,
    next_client_id: u64,
    router: bool,
    started_unix_secs: i64,
    /// Unix seconds, read once per turn.
    unix_secs: i64,
    /// Set when shutdown starts.
    stopping: bool,
    stop_now: bool,
    accept_error_reported: bool,
}

impl Reactor {
    /// Sets everything up: listeners bound, tailers positioned (from saved state where an
    /// earlier run left it), timers armed. Prints the endpoints. Errors here are startup
    /// errors (exit 1).
    pub fn new(config: Config, source: &ConfigSource) -> Result<Reactor, StartupError> {
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
        let router = config.router;
        let store = Store::open(config.state_dir.clone().or_else(state::default_dir));
        let mut store = store;
        let files_per_stream = file_budget() / config.streams.len().max(1);
        let start_micros = unix_micros_now().max(1) as u64;
        let mut resumes = Vec::new();
        let streams: Vec<Stream> = config
            .streams
            .into_iter()
            .map(|cfg| {
                let http_limiter = cfg
                    .http
                    .as_ref()
                    .and_then(|h| h.rate_limit.clone())
                    .map(|r| Limiter::new(r, now));
                let tcp_limiter = cfg
                    .tcp
                    .as_ref()
                    .and_then(|t| t.rate_limit.clone())
                    .map(|r| Limiter::new(r, now));
                let saved = store.load(&cfg.name);
                let ids = Ids {
                    first: saved
                        .as_ref()
                        .map_or(start_micros, |st| st.id_ceiling.max(start_micros)),
                    prior: saved.as_ref().map(|st| (st.first_id, st.last_id)),
                };
                resumes.push(saved.map(|st| st.resume()));
                Stream::new(cfg, http_limiter, tcp_limiter, ids, files_per_stream)
            })
            .collect();
        let watches = inotify.watches();
        let unix_secs = unix_micros_now() / 1_000_000;
        let stream_count = streams.len();
        let mut reactor = Reactor {
            poll,
            events: Events::with_capacity(EVENTS_CAPACITY),
            clock,
            timers: Wheel::new(now),
            fired: Vec::new(),
            streams,
            listeners: Vec::new(),
            conns: Slab::new(),
            inotify,
            watch_table: WatchTable {
                watches,
                owners: HashMap::new(),
                by_token: HashMap::new(),
            },
            wakes: vec![None; stream_count],
            store,
            saved: vec![(0, 0); stream_count],
            save_armed: false,
            signals,
            file_buf: vec![0u8; FILE_READ_CHUNK],
            scratch: vec![0u8; 16 * 1024],
            ready: Vec::new(),
            next_generation: 1,
            next_client_id: 1,
            router,
            started_unix_secs: unix_secs,
            unix_secs,
            stopping: false,
            stop_now: false,
            accept_error_reported: false,
        };
        println!("logwisp {} starting", crate::version::TAG);
        println!("config: {source}");
        match &reactor.store.dir {
            Some(dir) => println!("state: {}", dir.display()),
            None => println!("state: not kept (positions are not saved across restarts)"),
        }
        // Listeners first: a directory of more files than descriptors must not take the
        // descriptors the listeners need (and a bind error then names its real cause).
        reactor.bind_all()?;
        for (s, resume) in resumes.into_iter().enumerate() {
            let mut watcher = StreamWatcher {
                table: &mut reactor.watch_table,
                stream: s,
            };
            reactor.streams[s].monitor.start(&mut watcher, now, resume);
            reactor.streams[s].read_pending = true;
            reactor.plan_wake(s);
        }
        reactor.print_endpoints();
        for s in 0..reactor.streams.len() {
            // Ids are reserved before any is handed out.
            reactor.save_stream(s, false);
        }
        reactor.arm(CONSOLE_STATS_MS, Timer::ConsoleStats);
        reactor.arm(LIMITER_SWEEP_MS, Timer::SweepLimiters);
        Ok(reactor)
    }

    fn arm(&mut self, ms: u64, timer: Timer) -> TimerId {
        let deadline = self.clock.deadline_in(ms);
        self.timers.insert(deadline, timer)
    }

    fn uptime_secs(&self) -> u64 {
        (self.unix_secs - self.started_unix_secs).max(0) as u64
    }

    fn has_pending_work(&self) -> bool {
        !self.ready.is_empty()
            || (!self.stopping && self.streams.iter().any(Stream::wants_read))
            || self.listeners.iter().any(|l| l.readable && !l.paused)
    }

    /// Heartbeats tick while a server has clients, so an idle logwisp is not woken for
    /// nobody.
    fn arm_heartbeat(&mut self, s: usize, kind: ServerKind) {
        let Some(server) = self.streams[s].server_mut(kind) else {
            return;
        };
        let Some(hb) = server.heartbeat else { return };
        if server.heartbeat_armed || server.active_clients == 0 {
            return;
        }
        server.heartbeat_armed = true;
        self.arm(hb.interval_secs * 1000, Timer::Heartbeat(s, kind));
    }

    /// Keeps one timer per stream at the tick its tailer wants to be woken, if any.
    fn plan_wake(&mut self, s: usize) {
        let want = self.streams[s].monitor.next_wakeup();
        let have = self.wakes[s].map(|(tick, _)| tick);
        if want == have {
            return;
        }
        if let Some((_, id)) = self.wakes[s].take() {
            self.timers.cancel(id);
        }
        if let Some(tick) = want {
            let id = self
                .timers
                .insert(tick.max(self.timers.elapsed()), Timer::StreamWake(s));
            self.wakes[s] = Some((tick, id));
        }
    }

    /// Writes stream `s`'s positions and ids. `clean`: the last save of this run.
    fn save_stream(&mut self, s: usize, clean: bool) {
        let stream = &mut self.streams[s];
        let next = stream.ring.next_seq();
        let ceiling = if clean { next } else { next + ID_RESERVE };
        let state = StreamState {
            first_id: stream.ids.first,
            last_id: next - 1,
            id_ceiling: ceiling,
            saved_at: self.unix_secs,
            checkpoints: stream.monitor.checkpoints(),
        };
        stream.monitor.checkpoint_dirty = false;
        let name = stream.cfg.name.clone();
        if self.store.save(&name, &state) || self.store.dir.is_none() {
            self.saved[s] = (next, ceiling);
        }
    }

    /// Saves, at most about once a second, what moved; at once when ids near the ceiling.
    fn plan_save(&mut self) {
        if self.store.dir.is_none() {
            return;
        }
        for s in 0..self.streams.len() {
            let next = self.streams[s].ring.next_seq();
            if next + ID_RESERVE / 2 >= self.saved[s].1 {
                self.save_stream(s, false);
            }
        }
        if self.save_armed {
            return;
        }
        let moved =
            self.streams.iter().enumerate().any(|(s, st)| {
                st.monitor.checkpoint_dirty || st.ring.next_seq() != self.saved[s].0
            });
        if moved {
            self.save_armed = true;
            self.arm(STATE_SAVE_MS, Timer::SaveState);
        }
    }

    /// Runs until SIGINT/SIGTERM and the shutdown that follows.
    pub fn run(&mut self) -> io::Result<()> {
        loop {
            let timeout = if self.has_pending_work() {
                Some(Duration::ZERO)
            } else {
                self.clock.timeout_until(self.timers.next_deadline())
            };
            let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let now = self.clock.now_ms();
            self.unix_secs = unix_micros_now() / 1_000_000;
            for event in events.iter() {
                match event.token() {
                    SIGNAL_TOKEN => self.handle_signals(now),
                    INOTIFY_TOKEN => self.handle_inotify(now),
                    Token(t) if t > LISTENER_BASE - self.listeners.len() && t <= LISTENER_BASE => {
                        self.listeners[LISTENER_BASE - t].readable = true;
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
            self.fire_timers(now);
            if !self.stopping {
                self.read_files(now);
            }
            self.flush_fresh_streams(now);
            self.retry_ready(now);
            if !self.stopping {
                self.accept_ready(now);
                self.plan_save();
            }
            if self.stopping && (self.stop_now || self.conns.is_empty()) {
                for s in 0..self.streams.len() {
                    self.save_stream(s, true);
                }
                return Ok(());
            }
        }
    }

    fn handle_signals(&mut self, now: u64) {
        let pending: Vec<i32> = self.signals.pending().collect();
        for signal in pending {
            match signal {
                SIGINT | SIGTERM => self.begin_shutdown(now),
                SIGHUP => {
                    // No reload: a hang-up asks for an immediate rescan of every target.
                    for s in &mut self.streams {
                        s.monitor.rescan_all();
                        s.read_pending = true;
                    }
                }
                _ => {}
            }
        }
    }

    fn handle_inotify(&mut self, now: u64) {
        let mut buf = [0u8; 8192];
        loop {
            let events = match self.inotify.read_events(&mut buf) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("logwisp: inotify read failed: {e}; relying on periodic checks");
                    for s in &mut self.streams {
                        s.monitor.rescan_all();
                        s.read_pending = true;
                    }
                    return;
                }
            };
            let mut any = false;
            for event in events {
                any = true;
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    for s in &mut self.streams {
                        s.monitor.rescan_all();
                        s.read_pending = true;
                    }
                    continue;
                }
                if event.mask.contains(EventMask::IGNORED) {
                    for o in self.watch_table.forget(&event.wd) {
                        let m = &mut self.streams[o.stream].monitor;
                        match o.what {
                            WatchOwner::Dir(t) => m.dir_unwatched(t),
                            WatchOwner::File(k) => m.file_watch_gone(k),
                        }
                        self.streams[o.stream].read_pending = true;
                    }
                    continue;
                }
                let Some(owners) = self.watch_table.owners.get(&event.wd) else {
                    continue;
                };
                if event.mask.contains(EventMask::MOVE_SELF)
                    && owners.iter().any(|o| matches!(o.what, WatchOwner::Dir(_)))
                {
                    // The watch follows the moved directory; the path is what we want.
                    let owners = self.watch_table.forget(&event.wd);
                    let _ = self.watch_table.watches.remove(event.wd.clone());
                    for o in owners {
                        if let WatchOwner::Dir(t) = o.what {
                            self.streams[o.stream].monitor.dir_unwatched(t);
                            self.streams[o.stream].read_pending = true;
                        }
                    }
                    continue;
                }
                let change = if event.mask == EventMask::MODIFY {
                    Change::Written
                } else {
                    Change::Touched
                };
                for &o in owners {
                    let m = &mut self.streams[o.stream].monitor;
                    match (o.what, event.name) {
                        (WatchOwner::Dir(t), Some(name)) => m.on_dir_event(t, name, change, now),
                        (WatchOwner::Dir(t), None)
                            if event.mask.contains(EventMask::DELETE_SELF) =>
                        {
                            m.dir_unwatched(t)
                        }
                        (WatchOwner::File(k), _) => m.on_file_event(k),
                        _ => continue,
                    }
                    self.streams[o.stream].read_pending = true;
                }
            }
            if !any {
                return;
            }
        }
    }

    fn fire_timers(&mut self, now: u64) {
        let mut fired = std::mem::take(&mut self.fired);
        self.timers.advance(now, &mut fired);
        for timer in fired.drain(..) {
            match timer {
                Timer::StreamWake(s) => {
                    self.wakes[s] = None;
                    self.streams[s].monitor.wake(now);
                    self.streams[s].read_pending = true;
                    self.plan_wake(s);
                }
                Timer::Heartbeat(s, kind) => {
                    if let Some(server) = self.streams[s].server_mut(kind) {
                        server.heartbeat_armed = false;
                    }
                    self.heartbeat(s, kind, now);
                    self.arm_heartbeat(s, kind);
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
                Timer::Probe { key, generation } => {
                    // A half-closed client that closed for good since sends nothing more
                    // (its FIN is already in): only a probe tells it is gone.
                    if let Some(c) = self.conns.get_mut(key)
                        && c.generation == generation
                    {
                        conn::probe_peer(&mut c.transport);
                        let t = self.arm(PROBE_MS, Timer::Probe { key, generation });
                        self.conns[key].timer = Some(t);
                    }
                }
                Timer::ConsoleStats => {
                    print!("{}", stats::console_summary(&self.streams, self.unix_secs));
                    self.arm(CONSOLE_STATS_MS, Timer::ConsoleStats);
                }
                Timer::SweepLimiters => {
                    for s in &mut self.streams {
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
                    for s in 0..self.streams.len() {
                        let st = &self.streams[s];
                        if st.monitor.checkpoint_dirty || st.ring.next_seq() != self.saved[s].0 {
                            self.save_stream(s, false);
                        }
                    }
                }
                Timer::ShutdownDeadline => self.stop_now = true,
            }
        }
        self.fired = fired;
    }

    /// The next entry of stream `s`'s most advanced client in the shared buffer: reading
    /// may run ahead of it by what the buffer holds, no further.
    fn lead(&self, s: usize) -> Option<u64> {
        self.streams[s]
            .clients
            .iter()
            .filter_map(|&key| match self.conns.get(key).map(|c| &c.state) {
                Some(ConnState::Stream(client)) => client.sub.live_seq(),
                _ => None,
            })
            .max()
    }

    fn read_files(&mut self, now: u64) {
        let stamp = Stamp::now();
        for s in 0..self.streams.len() {
            if !self.streams[s].read_pending {
                continue;
            }
            let lead = self.lead(s);
            let mut watcher = StreamWatcher {
                table: &mut self.watch_table,
                stream: s,
            };
            if self.streams[s].read(&mut watcher, now, &mut self.file_buf, stamp, lead) {
                self.streams[s].fresh = true;
            }
            self.plan_wake(s);
        }
    }

    fn flush_fresh_streams(&mut self, now: u64) {
        for s in 0..self.streams.len() {
            if self.streams[s].fresh {
                self.streams[s].fresh = false;
                self.flush_stream(s, now);
            }
        }
    }

    /// Sends new entries to every client of stream `s`: moves clients about to lose their
    /// place in the buffer to disk, writes to those that can take it, then evicts.
    fn flush_stream(&mut self, s: usize, now: u64) {
        let planned_base = self.streams[s].ring.planned_base();
        let keys = std::mem::take(&mut self.streams[s].clients);
        let mut to_close = Vec::new();
        let mut catch_up = crate::stream::CatchUp::default();
        for &key in &keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let ConnState::Stream(client) = &mut conn.state else {
                continue;
            };
            let stream = &mut self.streams[s];
            client.sub.fall_behind(&stream.ring, planned_base);
            if conn.writable {
                match write_client(
                    conn,
                    stream,
                    self.unix_secs,
                    self.started_unix_secs,
                    &mut self.file_buf,
                ) {
                    ClientWrite::Wait => {}
                    ClientWrite::Again => self.ready.push((key, conn.generation)),
                    ClientWrite::Close => to_close.push(key),
                }
            }
            if let ConnState::Stream(client) = &conn.state
                && client.sub.on_disk()
            {
                catch_up.clients += 1;
                let lag = stream.ring.next_seq().saturating_sub(client.sub.next_seq());
                catch_up.max_lag = catch_up.max_lag.max(lag);
            }
        }
        self.streams[s].clients = keys;
        self.streams[s].catch_up = catch_up;
        self.streams[s].ring.evict_excess();
        for key in to_close {
            self.close(key, now);
        }
    }

    fn heartbeat(&mut self, s: usize, kind: ServerKind, now: u64) {
        let keys = self.streams[s].clients.clone();
        for key in keys {
            if let Some(conn) = self.conns.get_mut(key)
                && let ConnState::Stream(client) = &mut conn.state
                && client.kind == kind
            {
                client.sub.request_heartbeat();
                if conn.writable {
                    self.write_stream_client(key, now);
                }
            }
        }
    }

    fn retry_ready(&mut self, now: u64) {
        let ready = std::mem::take(&mut self.ready);
        for (key, generation) in ready {
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

    fn drive_stream_client(&mut self, key: usize, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.broken {
            self.close(key, now);
            return;
        }
        if conn.readable && !conn.read_closed {
            // Whatever a streaming client sends is read and discarded.
            let mut taken = 0;
            loop {
                match conn::read_some(&mut conn.transport, &mut self.scratch) {
                    Ok((conn::Io::Done, n)) => {
                        taken += n;
                        if taken >= DISCARD_BUDGET {
                            self.ready.push((key, conn.generation));
                            break;
                        }
                    }
                    Ok((conn::Io::WouldBlock, _)) => {
                        conn.readable = false;
                        break;
                    }
                    // A client that shuts down its sending side still reads the stream:
                    // only a failed write or a reset ends it.
                    Ok((conn::Io::Eof, _)) => {
                        conn.read_closed = true;
                        conn.readable = false;
                        conn::probe_peer(&mut conn.transport);
                        let generation = conn.generation;
                        let t = self.arm(PROBE_MS, Timer::Probe { key, generation });
                        self.conns[key].timer = Some(t);
                        break;
                    }
                    Err(_) => {
                        self.close(key, now);
                        return;
                    }
                }
            }
        }
        if self.conns.get(key).is_some_and(|c| c.writable) {
            self.write_stream_client(key, now);
        }
    }

    fn write_stream_client(&mut self, key: usize, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let ConnState::Stream(client) = &conn.state else {
            return;
        };
        let stream = &mut self.streams[client.stream];
        match write_client(
            conn,
            stream,
            self.unix_secs,
            self.started_unix_secs,
            &mut self.file_buf,
        ) {
            ClientWrite::Wait => {}
            ClientWrite::Again => self.ready.push((key, conn.generation)),
            ClientWrite::Close => self.close(key, now),
        }
    }

    /// Closes and forgets a connection, releasing its place in its stream and limits.
    fn close(&mut self, key: usize, now: u64) {
        if !self.conns.contains(key) {
            return;
        }
        let mut conn = self.conns.remove(key);
        let _ = self.poll.registry().deregister(conn.transport.socket());
        if let Some(t) = conn.timer.take() {
            self.timers.cancel(t);
        }
        if let ConnState::Stream(client) = conn.state {
            let stream = &mut self.streams[client.stream];
            stream.unsubscribe(&client.sub);
            // A client that was the most advanced one may have held reading back.
            stream.paced = false;
            let idx = client.index;
            if idx < stream.clients.len() && stream.clients[idx] == key {
                stream.clients.swap_remove(idx);
                if let Some(&moved) = stream.clients.get(idx)
                    && let Some(ConnState::Stream(m)) =
                        self.conns.get_mut(moved).map(|c| &mut c.state)
                {
                    m.index = idx;
                }
            }
            if let Some(server) = stream.server_mut(client.kind) {
                server.active_clients = server.active_clients.saturating_sub(1);
                if client.counted
                    && let Some(l) = server.limiter.as_mut()
                {
                    l.close_connection(conn.peer, now);
                }
            }
        }
    }

    /// SIGINT/SIGTERM: stop accepting and reading, say goodbye to SSE clients after what
    /// they are owed, and leave once everyone is gone or after the grace period.
    fn begin_shutdown(&mut self, now: u64) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        eprintln!("logwisp: shutting down");
        for l in &mut self.listeners {
            let _ = self.poll.registry().deregister(&mut l.socket);
        }
        self.listeners.clear();
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
                ConnState::Stream(client) => {
                    client.finish = Finish::Draining;
                    if conn.writable {
                        self.write_stream_client(key, now);
                    }
                }
            }
        }
    }

    fn next_generation(&mut self) -> u64 {
        let g = self.next_generation;
        self.next_generation += 1;
        g
    }
}

/// What to do with a streaming client after a write attempt.
enum ClientWrite {
    /// Wait for the socket to become writable (or for new entries).
    Wait,
    /// Budget used up with more to send: go again next turn.
    Again,
    Close,
}

/// Sends a streaming client what it is owed (rendering it from disk when it is behind the
/// buffer); handles the shutdown goodbye.
fn write_client(
    conn: &mut Conn,
    stream: &mut Stream,
    unix_secs: i64,
    started: i64,
    scratch: &mut [u8],
) -> ClientWrite {
    let ConnState::Stream(client) = &mut conn.state else {
        return ClientWrite::Wait;
    };
    let client: &mut StreamClient = client;
    let mut budget = WRITE_BUDGET;
    loop {
        let renderer = stream.renderer(client.kind, unix_secs, (unix_secs - started).max(0) as u64);
        let before = client.sub.bytes_sent;
        let result = client
            .sub
            .flush(&stream.ring, &renderer, &mut conn.transport, budget);
        let sent = client.sub.bytes_sent - before;
        stream.bytes_sent += sent;
        budget = budget.saturating_sub(sent as usize);
        if sent > 0 {
            // Reading may have waited for this client to take entries.
            stream.paced = false;
        }
        match result {
            Err(_) => return ClientWrite::Close,
            Ok(Flush::Blocked) => {
                conn.writable = false;
                return ClientWrite::Wait;
            }
            Ok(Flush::Budget) => return ClientWrite::Again,
            Ok(Flush::Refill) => {
                if budget == 0 {
                    return ClientWrite::Again;
                }
                let (seq, pending) = (client.sub.next_seq(), client.sub.pending_bytes());
                stream.refill(&mut client.sub, scratch);
                let moved = client.sub.next_seq() != seq
                    || client.sub.pending_bytes() != pending
                    || !client.sub.on_disk();
                if !moved {
                    return ClientWrite::Wait;
                }
            }
            Ok(Flush::Drained) => match client.finish {
                Finish::Streaming => return ClientWrite::Wait,
                Finish::Draining => {
                    client.finish = Finish::Closing;
                    if client.kind == ServerKind::Http {
                        client.sub.queue_control(sse::DISCONNECT);
                    }
                    client.sub.end_body();
                }
                Finish::Closing => return ClientWrite::Close,
            },
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

/// Report helper for listener code.
fn report_once(flag: &mut bool, message: &str) {
    if !*flag {
        *flag = true;
        report("*", message);
    }
}
