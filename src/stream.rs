//! A stream at run time: its tailer, its buffer of rendered entries, the history that maps
//! entries back to files, and the state of its servers. Sockets stay in the reactor; this
//! is the part that has none.
//!
//! Reading is paced by delivery (SPEC §6): a stream reads no further ahead of its most
//! advanced client than its buffer holds, so the files on disk are the real buffer. A
//! client that falls behind the buffer is served from the files through the history.

use std::net::SocketAddr;

use crate::config::{HeartbeatConfig, StreamConfig};
use crate::entry::{self, Stamp};
use crate::fanout::{
    At, ControlRenderer, FilterBit, Framing, PushPlan, Ring, Subscriber, Wire, refill_bytes,
};
use crate::filter::{ClientFilter, FilterId, FilterSet, SetFull, StreamFilters};
use crate::format::{Format, Parts};
use crate::history::{History, MAX_RUN_ENTRIES, Notice, RunKind};
use crate::journal::replay::{ClientId, Output, RunRef, Step};
use crate::journal::{JournalSink, Journals, Pipes, entry::Parsed};
use crate::ratelimit::Limiter;
use crate::sse::{self, HeartbeatStats};
use crate::tail::{EntrySink, Monitor, ReadBudget, Replay, SourceRef, Watcher};
use crate::tcp;
use crate::timer::TimerId;

/// A stream in the reactor's table: its slot and the generation it was created with, so
/// a timer, watch or route that outlived the stream (removed by a reload) is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub index: usize,
    pub generation: u64,
}

/// Bytes one stream may read from its files per turn.
pub const READ_BYTES_PER_TURN: usize = 4 * 1024 * 1024;
/// Bytes read from a file per step of a client catching up from disk.
const REPLAY_READ: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Http,
    Tcp,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Http => "http",
            ServerKind::Tcp => "tcp",
        }
    }

    /// How this server frames entries (HTTP: SSE, or WebSocket after an upgrade).
    pub fn framing(self, websocket: bool) -> Framing {
        match (self, websocket) {
            (ServerKind::Http, false) => Framing::Sse,
            (ServerKind::Http, true) => Framing::Ws,
            (ServerKind::Tcp, _) => Framing::Lines,
        }
    }
}

/// One server (HTTP/SSE or TCP) of a stream.
#[derive(Debug)]
pub struct ServerState {
    pub kind: ServerKind,
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
    /// Entries and bytes sent to this server's clients.
    pub lines_sent: u64,
    pub bytes_sent: u64,
    /// Connections refused by the rate limit and by the connection caps.
    pub rejected_rate: u64,
    pub rejected_connections: u64,
    /// Connections refused by the IP lists; requests refused for their credentials, and
    /// for want of password-hash budget.
    pub rejected_ip: u64,
    pub rejected_auth: u64,
    pub rejected_auth_busy: u64,
    /// A heartbeat timer is pending.
    pub heartbeat_armed: bool,
    /// Its output format's index in the stream's table of formats.
    pub format: u8,
}

impl ServerState {
    pub fn new(
        kind: ServerKind,
        buffer_size: usize,
        heartbeat: Option<HeartbeatConfig>,
        limiter: Option<Limiter>,
    ) -> ServerState {
        ServerState {
            kind,
            listener: usize::MAX,
            bound: None,
            buffer_size,
            heartbeat,
            limiter,
            active_clients: 0,
            clients_served: 0,
            requests: 0,
            lines_sent: 0,
            bytes_sent: 0,
            rejected_rate: 0,
            rejected_connections: 0,
            rejected_ip: 0,
            rejected_auth: 0,
            rejected_auth_busy: 0,
            heartbeat_armed: false,
            format: 0,
        }
    }

    pub fn blocked(&self) -> u64 {
        self.limiter.as_ref().map_or(0, |l| l.blocked_requests)
    }
}

/// Sequence numbers (SSE ids) of this run and of the run that saved the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// The first id of this run: above every id an earlier run handed out.
    pub first: u64,
    /// `(first, last)` ids of the earlier run whose checkpoints this run resumed from;
    /// the entries up to `last` lie before those checkpoints.
    pub prior: Option<(u64, u64)>,
}

/// Where a new client starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartPoint {
    pub seq: u64,
    /// Entries after the client's last id that no longer exist anywhere.
    pub lost: u64,
    /// False when `lost` is only a lower bound (an id of an older run).
    pub exact: bool,
}

/// Clients of a stream catching up from disk, for `/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchUp {
    pub clients: usize,
    /// Entries between the slowest of them and the newest entry.
    pub max_lag: u64,
}

#[derive(Debug)]
pub struct Stream {
    pub id: StreamId,
    pub cfg: StreamConfig,
    pub monitor: Monitor,
    /// Its journal targets (SPEC §17).
    pub journals: Journals,
    pub ring: Ring,
    pub history: History,
    pub ids: Ids,
    pub http: Option<ServerState>,
    pub tcp: Option<ServerState>,
    /// Full paths served for this stream (router-prefixed in router mode).
    pub stream_path: String,
    pub status_path: String,
    /// Connection keys of every streaming client (SSE and TCP).
    pub clients: Vec<usize>,
    /// Entries clients never got because their bytes were gone from disk (`gone`), were
    /// older than what history still maps (`forgotten`), or were read by an earlier run
    /// (`earlier_run`, counted when a client resumes with an id of that run).
    pub dropped: u64,
    pub dropped_gone: u64,
    pub dropped_forgotten: u64,
    pub dropped_earlier_run: u64,
    pub bytes_sent: u64,
    /// Entries were added since the last flush to clients.
    pub fresh: bool,
    /// The tailer has work left (events queued, budget ran out).
    pub read_pending: bool,
    /// Reading waits until a client takes entries (the buffer is full ahead of the most
    /// advanced client).
    pub paced: bool,
    pub catch_up: CatchUp,
    /// The reactor's timer for the tailer's next wake-up, and its tick.
    pub wake: Option<(u64, TimerId)>,
    /// At the last save of the state: the next sequence number, and the id ceiling.
    pub saved: (u64, u64),
    /// A reload removed it: it reads nothing more and goes once its clients are gone.
    pub removing: bool,
    /// The output formats its servers use; 0 is JSON.
    pub formats: Vec<Format>,
    /// `[[streams.filters]]`, and lines they kept out.
    pub filters: StreamFilters,
    pub filtered_lines: u64,
    /// The distinct filters its clients asked for, evaluated once per entry.
    pub client_filters: FilterSet,
    /// Its sinks (SPEC §16), and where each entry in the buffer came from while it has
    /// any (their message ids).
    #[cfg(feature = "forward")]
    pub sinks: Vec<crate::forward::sink::Sink>,
    #[cfg(feature = "forward")]
    pub origins: crate::forward::sink::Origins,
    /// Sinks attached to the buffer (origins are kept while there are any).
    #[cfg(feature = "forward")]
    pub sink_wires: usize,
    /// A sink's acknowledged position moved since the state was last saved.
    #[cfg(feature = "forward")]
    pub sinks_dirty: bool,
    /// Sink cursors an earlier run saved, until the sinks start.
    #[cfg(feature = "forward")]
    pub saved_sinks: Vec<crate::state::SavedSink>,
}

/// Where the tailer's entries go: through the stream's filters, framed into the buffer
/// once, noted in the history.
struct Intake<'a> {
    ring: &'a mut Ring,
    history: &'a mut History,
    formats: &'a [Format],
    /// The ring's framing for this read (no client comes or goes during one).
    plan: PushPlan,
    filters: &'a StreamFilters,
    clients: &'a FilterSet,
    filtered: &'a mut u64,
    #[cfg(feature = "forward")]
    origins: Option<&'a mut crate::forward::sink::Origins>,
    /// Consecutive lines of one file not yet noted in the history: noted as one at the
    /// end of the read (or when something else comes between), not one by one.
    lines_run: Option<LinesRun>,
}

#[derive(Clone, Copy)]
struct LinesRun {
    first_seq: u64,
    count: u32,
    src: SourceRef,
    start: u64,
    micros: i64,
}

impl Intake<'_> {
    /// Notes the lines read since the last call in the history.
    fn note_lines(&mut self) {
        if let Some(r) = self.lines_run.take() {
            self.history
                .note_lines(r.first_seq, r.count, r.src, r.start, r.micros);
        }
    }
}

/// Which client filters want the entry whose JSON is `json`.
#[inline]
fn filter_mask(clients: &FilterSet, json: &[u8]) -> u64 {
    // Inlined, so a stream without client filters pays one compare per entry, not a call.
    if clients.is_empty() {
        0
    } else {
        evaluated_mask(clients, json)
    }
}

#[inline(never)]
fn evaluated_mask(clients: &FilterSet, json: &[u8]) -> u64 {
    match Parts::of_entry(json) {
        Some(p) => clients.evaluate(&p.level, &p.message, &p.source),
        None => 0,
    }
}

impl EntrySink for Intake<'_> {
    fn line(&mut self, src: SourceRef, start: u64, line: &[u8], source_json: &[u8], stamp: &Stamp) {
        if !self.filters.keep(line) {
            *self.filtered += 1;
            return;
        }
        let clients = self.clients;
        let seq = self.ring.push_planned(
            &self.plan,
            self.formats,
            line,
            |out| entry::write_entry(out, line, source_json, stamp),
            |json| filter_mask(clients, json),
        );
        #[cfg(feature = "forward")]
        if let Some(o) = self.origins.as_deref_mut() {
            o.push(seq, crate::forward::sink::Origin::File { src, start });
        }
        match &mut self.lines_run {
            Some(r)
                if r.src == src
                    && r.first_seq + u64::from(r.count) == seq
                    && r.micros == stamp.micros
                    && r.count < MAX_RUN_ENTRIES =>
            {
                r.count += 1
            }
            _ => {
                self.note_lines();
                self.lines_run = Some(LinesRun {
                    first_seq: seq,
                    count: 1,
                    src,
                    start,
                    micros: stamp.micros,
                });
            }
        }
    }

    fn notice(&mut self, source_json: &[u8], message: &str, stamp: &Stamp) {
        let clients = self.clients;
        let seq = self.ring.push_planned(
            &self.plan,
            self.formats,
            message.as_bytes(),
            |out| entry::write_notice(out, stamp, source_json, "INFO", message),
            |json| filter_mask(clients, json),
        );
        #[cfg(feature = "forward")]
        if let Some(o) = self.origins.as_deref_mut() {
            o.push(seq, crate::forward::sink::Origin::Notice);
        }
        self.note_lines();
        self.history.note_notice(
            seq,
            Notice {
                source_json: source_json.into(),
                message: message.into(),
                micros: stamp.micros,
            },
        );
    }
}

impl JournalSink for Intake<'_> {
    fn entry(
        &mut self,
        target: u32,
        epoch: u32,
        p: &Parsed,
        names: &[String],
        message: &[u8],
        now: &Stamp,
    ) {
        if !self.filters.keep(message) {
            *self.filtered += 1;
            return;
        }
        let cursor = p.cursor.as_deref().unwrap_or("");
        let clients = self.clients;
        let seq = self.ring.push_planned(
            &self.plan,
            self.formats,
            message,
            |out| crate::journal::entry::write_entry(out, p, names, message, now),
            |json| filter_mask(clients, json),
        );
        #[cfg(feature = "forward")]
        if let Some(o) = self.origins.as_deref_mut() {
            o.push(seq, crate::forward::sink::Origin::Journal(cursor.into()));
        }
        self.note_lines();
        self.history.note_journal(seq, target, epoch, cursor);
    }

    fn unreadable(&mut self, _target: u32, source_json: &[u8], message: &str) {
        self.notice(source_json, message, &Stamp::now());
    }
}

impl Stream {
    pub fn new(
        id: StreamId,
        cfg: StreamConfig,
        http_limiter: Option<Limiter>,
        tcp_limiter: Option<Limiter>,
        ids: Ids,
        max_open_files: usize,
    ) -> Stream {
        let monitor = Monitor::new(&cfg, max_open_files);
        let journals = Journals::new(&cfg);
        let ring = Ring::new(cfg.ring_capacity(), ids.first);
        let mut http = cfg
            .http
            .as_ref()
            .map(|h| ServerState::new(ServerKind::Http, h.buffer_size, h.heartbeat, http_limiter));
        let mut tcp = cfg
            .tcp
            .as_ref()
            .map(|t| ServerState::new(ServerKind::Tcp, t.buffer_size, t.heartbeat, tcp_limiter));
        let formats = formats_of(&cfg, http.as_mut(), tcp.as_mut());
        // Validated with the config: a failure here would mean no filter at all.
        let filters = StreamFilters::new(&cfg.filters).unwrap_or_default();
        let (stream_path, status_path) = cfg
            .http
            .as_ref()
            .map(|h| (h.stream_path.clone(), h.status_path.clone()))
            .unwrap_or_default();
        Stream {
            id,
            cfg,
            monitor,
            journals,
            ring,
            history: History::new(ids.first),
            ids,
            http,
            tcp,
            stream_path,
            status_path,
            clients: Vec::new(),
            dropped: 0,
            dropped_gone: 0,
            dropped_forgotten: 0,
            dropped_earlier_run: 0,
            bytes_sent: 0,
            fresh: false,
            read_pending: false,
            paced: false,
            catch_up: CatchUp::default(),
            wake: None,
            saved: (0, 0),
            removing: false,
            formats,
            filters,
            filtered_lines: 0,
            client_filters: FilterSet::new(),
            #[cfg(feature = "forward")]
            sinks: Vec::new(),
            #[cfg(feature = "forward")]
            origins: Default::default(),
            #[cfg(feature = "forward")]
            sink_wires: 0,
            #[cfg(feature = "forward")]
            sinks_dirty: false,
            #[cfg(feature = "forward")]
            saved_sinks: Vec::new(),
        }
    }

    /// Takes a changed config's formats and stream filters (a reload).
    pub fn set_formats_and_filters(&mut self) {
        self.formats = formats_of(&self.cfg, self.http.as_mut(), self.tcp.as_mut());
        self.filters = StreamFilters::new(&self.cfg.filters).unwrap_or_default();
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn server(&self, kind: ServerKind) -> Option<&ServerState> {
        match kind {
            ServerKind::Http => self.http.as_ref(),
            ServerKind::Tcp => self.tcp.as_ref(),
        }
    }

    pub fn server_mut(&mut self, kind: ServerKind) -> Option<&mut ServerState> {
        match kind {
            ServerKind::Http => self.http.as_mut(),
            ServerKind::Tcp => self.tcp.as_mut(),
        }
    }

    /// Entries produced by this run.
    pub fn total_entries(&self) -> u64 {
        self.ring.next_seq() - self.ids.first
    }

    /// Positions (file offsets, journal cursors) moved since the state was last saved.
    pub fn checkpoint_dirty(&self) -> bool {
        #[cfg(feature = "forward")]
        if self.sinks_dirty {
            return true;
        }
        self.monitor.checkpoint_dirty || self.journals.cursor_dirty
    }

    /// Whether the reactor should read for this stream in the coming turn.
    pub fn wants_read(&self) -> bool {
        self.read_pending && !self.paced && !self.removing
    }

    /// Reads the stream's files for one turn, no further ahead of `lead` (the next entry of
    /// the most advanced client in the buffer; `None` when no client is there) than the
    /// buffer holds. Returns whether entries were added.
    pub fn read(
        &mut self,
        watcher: &mut dyn Watcher,
        pipes: &mut dyn Pipes,
        now: u64,
        buf: &mut [u8],
        stamp: Stamp,
        lead: Option<u64>,
    ) -> bool {
        let entries = match lead {
            None => usize::MAX,
            Some(seq) => self.ring.room_before(seq),
        };
        if entries == 0 {
            self.paced = true;
            self.read_pending = self.monitor.has_work() || self.journals.has_work();
            return false;
        }
        self.paced = false;
        let before = self.ring.next_seq();
        let mut budget = ReadBudget::new(READ_BYTES_PER_TURN, entries);
        let plan = self.ring.plan(&self.formats);
        let mut intake = Intake {
            plan,
            ring: &mut self.ring,
            history: &mut self.history,
            formats: &self.formats,
            filters: &self.filters,
            clients: &self.client_filters,
            filtered: &mut self.filtered_lines,
            #[cfg(feature = "forward")]
            origins: (self.sink_wires > 0).then_some(&mut self.origins),
            lines_run: None,
        };
        let files_left = self
            .monitor
            .poll(watcher, now, buf, &mut budget, stamp, &mut intake);
        let journal_left = self
            .journals
            .poll(now, pipes, buf, &mut budget, &stamp, &mut intake);
        intake.note_lines();
        self.read_pending = files_left || journal_left;
        for (key, delta) in self.history.take_ref_changes() {
            self.monitor.history_ref(key, delta);
        }
        if lead.is_some() && budget.entries_left() == 0 && self.read_pending {
            self.paced = true;
        }
        self.ring.next_seq() != before
    }

    /// Where a client with `Last-Event-ID: last` (or none) starts (SPEC §7).
    pub fn start_point(&self, last: Option<u64>) -> StartPoint {
        let next = self.ring.next_seq();
        let live = StartPoint {
            seq: next,
            lost: 0,
            exact: true,
        };
        let Some(last) = last else { return live };
        let want = last.saturating_add(1);
        let oldest = self.history.first_seq().min(self.ring.base_seq());
        if want >= self.ids.first && want <= next {
            return StartPoint {
                seq: want.max(oldest),
                lost: oldest.saturating_sub(want),
                exact: true,
            };
        }
        // An id of an earlier run (or one never handed out, which could be anything): this
        // run's entries are all new to the client, and what it missed before them is known
        // only for the run this one resumed from.
        let (earlier, exact) = match self.ids.prior {
            Some((first, last_saved)) if want >= first && want < self.ids.first => {
                (last_saved.saturating_sub(last), true)
            }
            _ => (0, false),
        };
        StartPoint {
            seq: oldest,
            lost: earlier + (oldest - self.ids.first),
            exact,
        }
    }

    /// A new streaming client of `kind` (framed as `framing`) starting at `seq`, getting
    /// the entries `filter` wants. Fails when the stream already evaluates as many
    /// distinct filters as it can.
    pub fn subscribe(
        &mut self,
        kind: ServerKind,
        framing: Framing,
        seq: u64,
        chunked: bool,
        filter: ClientFilter,
    ) -> Result<Subscriber, SetFull> {
        let format = self.server(kind).map_or(0, |s| s.format);
        let wire = Wire { framing, format };
        let filter = if filter.is_all() {
            None
        } else {
            let id = self.client_filters.add(filter, self.ring.next_seq())?;
            Some(FilterBit {
                id,
                valid_from: self.client_filters.valid_from(id),
            })
        };
        let in_ring = self.ring.enable(wire);
        Ok(Subscriber::new(
            wire, filter, &self.ring, seq, chunked, in_ring,
        ))
    }

    /// A streaming client left.
    pub fn unsubscribe(&mut self, sub: &Subscriber) {
        if sub.in_ring() {
            self.ring.disable(sub.wire);
        }
        if let Some(f) = sub.filter {
            self.client_filters.remove(f.id);
        }
    }

    /// Renders frames from disk for a client behind the buffer, until it has about
    /// [`refill_bytes`] to send or reaches the buffer (where it rejoins).
    ///
    /// Journal entries are read again by a journalctl child (see [`crate::journal::replay`])
    /// whose output arrives later: the client `id` is driven again when it does.
    pub fn refill(
        &mut self,
        sub: &mut Subscriber,
        buf: &mut [u8],
        id: ClientId,
        pipes: &mut dyn Pipes,
    ) {
        let At::Disk { mut seq, mut hint } = sub.at else {
            return;
        };
        let wire = sub.wire;
        let client = sub.filter.map(|f| f.id);
        let n = buf.len().min(REPLAY_READ);
        let buf = &mut buf[..n];
        let mut json = Vec::new();
        // The clients on disk counted at the last delivery pass, this one among them.
        let refill = refill_bytes(self.catch_up.clients.max(1));
        loop {
            sub.at = At::Disk { seq, hint };
            if sub.rejoin(&self.ring) || seq >= self.ring.next_seq() {
                if !self.journals.replays.is_empty() {
                    self.journals.replays.cancel(id, pipes);
                }
                return;
            }
            if sub.pending_bytes() >= refill {
                break;
            }
            let Some(run) = self.history.locate(seq) else {
                // Older than anything still known: lost. (Entries after the history's
                // start are always found: the history ends where the buffer does.)
                let first = self.history.first_seq().max(seq + 1);
                let lost = first - seq;
                sub.note_lost(lost, true);
                self.dropped += lost;
                self.dropped_forgotten += lost;
                seq = first;
                hint = None;
                // The notice goes out after the frames rendered so far and before any
                // that follow: stop here so the next write puts it between them.
                break;
            };
            let (run_first, run_end) = (run.first_seq, run.end_seq());
            match run.kind.clone() {
                RunKind::Notice(n) => {
                    json.clear();
                    let stamp = Stamp::from_micros(n.micros);
                    entry::write_notice(&mut json, &stamp, &n.source_json, "INFO", &n.message);
                    let clients = &self.client_filters;
                    frame_if_wanted(
                        sub.pending_buffer(),
                        (wire, &self.formats, client.map(|id| (clients, id))),
                        seq,
                        n.message.as_bytes(),
                        &json,
                    );
                    seq += 1;
                    hint = None;
                }
                RunKind::Journal { target, cursor, .. } => {
                    let run = RunRef {
                        target,
                        first: run_first,
                        end: run_end,
                        cursor: &cursor,
                    };
                    let (filters, formats, clients) =
                        (&self.filters, &self.formats, &self.client_filters);
                    let pending = sub.pending_buffer();
                    let target_len = pending.len() + refill;
                    let mut next = seq;
                    let mut each = |s: u64, message: &[u8], json: &[u8], _cursor: &str| {
                        frame_if_wanted(
                            pending,
                            (wire, formats, client.map(|id| (clients, id))),
                            s,
                            message,
                            json,
                        );
                        next = s + 1;
                        pending.len() < target_len
                    };
                    let out = Output {
                        keep: &|m: &[u8]| filters.keep(m),
                        each: &mut each,
                    };
                    let step = self.journals.replay(id, run, seq, pipes, buf, out);
                    seq = next;
                    hint = None;
                    match step {
                        Step::Progress => {}
                        Step::Done => seq = run_end,
                        Step::Waiting => break,
                        Step::Gone { from } => {
                            let lost = run_end - from.max(seq);
                            sub.note_lost(lost, true);
                            self.dropped += lost;
                            self.dropped_gone += lost;
                            seq = run_end;
                        }
                    }
                }
                RunKind::File { src, start, micros } => {
                    let (from, mut skip) = match hint {
                        Some((h, offset)) if h == src && seq > run_first => (offset, 0),
                        _ => (start, seq - run_first),
                    };
                    let source_json = self
                        .monitor
                        .sources
                        .get(src.key as usize)
                        .map(|s| s.display.clone())
                        .unwrap_or_else(|| b"\"\"".to_vec().into_boxed_slice());
                    let stamp = Stamp::from_micros(micros);
                    let mut left = run_end - seq;
                    let mut produced = 0u64;
                    let pending = sub.pending_buffer();
                    let target = pending.len() + refill;
                    let first_seq = seq;
                    let (filters, formats, clients) =
                        (&self.filters, &self.formats, &self.client_filters);
                    let result =
                        self.monitor
                            .replay(src, from, buf, true, &mut |line, _cut, _start| {
                                // The same lines the tailer let in, in the same order.
                                if !filters.keep(line) {
                                    return true;
                                }
                                if skip > 0 {
                                    skip -= 1;
                                    return true;
                                }
                                json.clear();
                                entry::write_entry(&mut json, line, &source_json, &stamp);
                                frame_if_wanted(
                                    pending,
                                    (wire, formats, client.map(|id| (clients, id))),
                                    first_seq + produced,
                                    line,
                                    &json,
                                );
                                produced += 1;
                                left -= 1;
                                left > 0 && pending.len() < target
                            });
                    seq += produced;
                    match result {
                        Replay::Read { next, eof } if left > 0 && !eof => {
                            hint = Some((src, next));
                        }
                        Replay::Read { next, .. } if left == 0 => {
                            hint = Some((src, next));
                        }
                        // The file ends (or is gone) before the run does: those bytes
                        // were truncated or deleted.
                        _ => {
                            sub.note_lost(left, true);
                            self.dropped += left;
                            self.dropped_gone += left;
                            seq = run_end;
                            hint = None;
                            // As above: the notice between what came before and after.
                            break;
                        }
                    }
                }
            }
        }
        sub.at = At::Disk { seq, hint };
    }

    /// What a client of `kind` needs to render heartbeats and notices now.
    pub fn renderer(
        &self,
        kind: ServerKind,
        framing: Framing,
        unix_secs: i64,
        uptime_secs: u64,
    ) -> WireRenderer {
        let server = self.server(kind);
        WireRenderer {
            framing,
            heartbeat: server.and_then(|s| s.heartbeat),
            stats: HeartbeatStats {
                unix_secs,
                active_clients: server.map_or(0, |s| s.active_clients),
                uptime_secs,
            },
        }
    }
}

/// The output formats of a stream's servers (0 is JSON), each server told its index.
fn formats_of(
    cfg: &StreamConfig,
    http: Option<&mut ServerState>,
    tcp: Option<&mut ServerState>,
) -> Vec<Format> {
    let mut formats = vec![Format::Json];
    let mut index_of = |f: &Format| -> u8 {
        match formats.iter().position(|g| g == f) {
            Some(i) => i as u8,
            None => {
                formats.push(f.clone());
                (formats.len() - 1) as u8
            }
        }
    };
    if let (Some(server), Some(h)) = (http, &cfg.http) {
        server.format = index_of(&h.format);
    }
    if let (Some(server), Some(t)) = (tcp, &cfg.tcp) {
        server.format = index_of(&t.format);
    }
    formats
}

/// Frames one entry for a client from disk, if its filter wants it: `payload` rendered
/// in the wire's format from the line and its JSON.
fn frame_if_wanted(
    out: &mut Vec<u8>,
    (wire, formats, filter): (Wire, &[Format], Option<(&FilterSet, FilterId)>),
    seq: u64,
    line: &[u8],
    json: &[u8],
) {
    if let Some((set, id)) = filter {
        let wanted =
            Parts::of_entry(json).is_some_and(|p| set.matches(id, &p.level, &p.message, &p.source));
        if !wanted {
            return;
        }
    }
    match formats.get(usize::from(wire.format)) {
        None | Some(Format::Json) => wire.frame(out, seq, json),
        Some(format) => {
            let mut payload = Vec::with_capacity(json.len());
            format.render(&mut payload, line, json);
            wire.frame(out, seq, &payload);
        }
    }
}

/// Renders control output (heartbeats, loss notices) in a client's framing.
pub struct WireRenderer {
    pub framing: Framing,
    pub heartbeat: Option<HeartbeatConfig>,
    pub stats: HeartbeatStats,
}

impl ControlRenderer for WireRenderer {
    fn dropped(&self, out: &mut Vec<u8>, count: u64, exact: bool) {
        // TCP and WebSocket clients have no event channel; their losses show in /status.
        if self.framing == Framing::Sse {
            sse::dropped(out, count, exact);
        }
    }

    fn heartbeat(&self, out: &mut Vec<u8>) {
        if let Some(cfg) = &self.heartbeat {
            match self.framing {
                Framing::Sse => sse::heartbeat(out, cfg, self.stats),
                Framing::Lines => tcp::heartbeat(out, cfg, self.stats),
                // A ping: clients answer it without showing anything.
                Framing::Ws => {
                    #[cfg(feature = "websocket")]
                    {
                        let mut json = Vec::new();
                        sse::heartbeat_json(&mut json, cfg, self.stats);
                        crate::ws::write_ping(out, &json);
                    }
                }
            }
        }
    }
}
