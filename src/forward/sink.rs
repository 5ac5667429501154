//! A sink: a durable client of its stream that publishes every entry to a broker, at
//! least once and in order (SPEC §16). This is the part without sockets: which entry
//! goes next, what is in flight, what was acknowledged, and where to resume. The reactor
//! (`reactor/forward.rs`) owns the connection and drives the engine.
//!
//! A sink is positioned like a streaming client (SPEC §6): in the shared buffer, whose
//! NDJSON frames hold each entry's JSON ready to publish, or behind it, where entries are
//! rendered again from the files through the history. It never holds back reading (the
//! stream's pacing is for its live clients): a sink the tailer outruns reads from disk.
//!
//! Every publish carries a token; the engine reports each as acknowledged, refused, or
//! left unacknowledged when the connection closes. Entries are acknowledged in order, so
//! what the sink has done is a prefix of the stream: on a close it rewinds to the oldest
//! unacknowledged entry and republishes from there, with the same message ids, once
//! connected again.
//!
//! Message ids, the same however often an entry is read again:
//! - a line of a file: `<stream>:<dev>:<ino>:<offset of the line>` ([`super::message_id`]);
//! - a journal entry: `<stream>:j:<seqnum id>:<seqnum>` from its cursor (`s=`, `i=`),
//!   which name one entry of one journal for good;
//! - a notice of logwisp's own (a rotation): `<stream>:n:<sequence number>`, the entry's
//!   SSE id, which no other entry of the stream ever has, in this run or another.
//!
//! What survives a restart is the sink's cursor ([`Feed::cursor`]): per file, the offset
//! of the first line not yet acknowledged, for the files that have one. It is saved with
//! the stream's checkpoints, which stay where the tailer is (local clients resume as
//! before). The next run first reads each such file from the sink's offset up to the
//! stream's checkpoint (the entries of the earlier run that the broker did not confirm;
//! [`Feed::backlog`]), then goes on with the entries of the new run.

use std::collections::VecDeque;

use super::mqtt::{self, Mqtt, MqttOptions};
use super::nats::{self, Auth, Nats, NatsOptions, ServerInfo};
use super::resolve::{self, Url};
use crate::config::{ForwardConfig, ForwardKind};
use crate::entry::{self, Stamp};
use crate::fanout::Wire;
use crate::history::RunKind;
use crate::journal::replay::{ClientId, Output, RunRef, Step};
use crate::journal::{Pipes, entry::cursor_seq};
use crate::stream::Stream;
use crate::tail::{Replay, SourceRef, source::FileId};

/// Entries one sink publishes per turn before others get a go.
pub const PUBLISH_BUDGET: usize = 4096;
/// Bytes read from a file per step when reading entries again.
const REPLAY_READ: usize = 64 * 1024;

/// Where an entry in the shared buffer came from: enough to name it ([`Origins`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File { src: SourceRef, start: u64 },
    Journal(Box<str>),
    Notice,
}

/// The origin of each entry the shared buffer holds, kept while a stream has sinks.
#[derive(Debug, Default)]
pub struct Origins {
    base: u64,
    items: VecDeque<Origin>,
}

impl Origins {
    pub fn push(&mut self, seq: u64, origin: Origin) {
        if self.base + self.items.len() as u64 != seq {
            self.items.clear();
            self.base = seq;
        }
        self.items.push_back(origin);
    }

    pub fn get(&self, seq: u64) -> Option<&Origin> {
        self.items
            .get(usize::try_from(seq.checked_sub(self.base)?).ok()?)
    }

    /// Forgets entries the buffer evicted.
    pub fn evict_below(&mut self, seq: u64) {
        while self.base < seq && !self.items.is_empty() {
            self.items.pop_front();
            self.base += 1;
        }
    }

    /// Forgets everything (the tailer was replaced: its references mean nothing now).
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// The message id of a journal entry at `cursor`.
pub fn journal_message_id(stream: &str, cursor: &str) -> String {
    match cursor_seq(cursor) {
        Some((id, n)) => format!("{stream}:j:{id}:{n:x}"),
        None => format!("{stream}:j:{cursor}"),
    }
}

/// The message id of a notice (an entry logwisp made itself) with sequence number `seq`.
pub fn notice_message_id(stream: &str, seq: u64) -> String {
    format!("{stream}:n:{seq}")
}

/// What the engines report, alike for both protocols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkEvent {
    /// NATS asked for TLS after its INFO.
    StartTls,
    Connected(Option<ServerInfo>),
    /// A later NATS INFO (cluster URLs).
    ServerInfo(ServerInfo),
    Acked {
        token: u64,
        duplicate: bool,
    },
    Nacked {
        token: u64,
        reason: String,
    },
    /// A non-fatal server error (the connection stays).
    ServerError(String),
    Closed {
        reason: String,
        auth: bool,
    },
}

/// Why a publish did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not connected, or the window is full: later.
    Later,
    /// The entry can never be sent (over the broker's size limit).
    TooLarge(String),
}

/// The protocol engine of a sink.
#[derive(Debug)]
pub enum Engine {
    Nats(Nats),
    Mqtt(Mqtt),
}

macro_rules! both {
    ($self:ident, $e:ident => $body:expr) => {
        match $self {
            Engine::Nats($e) => $body,
            Engine::Mqtt($e) => $body,
        }
    };
}

impl Engine {
    /// The engine for `cfg` publishing `stream`'s entries; `host` names this machine (MQTT's
    /// default client id).
    pub fn new(cfg: &ForwardConfig, stream: &str, host: &str) -> Result<Engine, String> {
        let subject = super::expand_template(&cfg.subject, stream);
        // Credentials in a URL are taken when the config has none (validation did that
        // for the first URL with any).
        match cfg.kind {
            ForwardKind::Nats => {
                let mut o = NatsOptions::new(subject, cfg.jetstream);
                o.max_in_flight = cfg.max_in_flight;
                o.tls = cfg.tls.is_some();
                o.name = format!("logwisp {stream}");
                o.auth = match (&cfg.username, &cfg.password, &cfg.token) {
                    (Some(u), p, _) => Auth::UserPass {
                        user: u.clone(),
                        pass: p.clone().unwrap_or_default(),
                    },
                    (None, _, Some(t)) => Auth::Token(t.clone()),
                    _ => Auth::None,
                };
                Nats::new(o).map(Engine::Nats).map_err(|e| e.to_string())
            }
            ForwardKind::Mqtt => {
                let id = cfg
                    .client_id
                    .clone()
                    .unwrap_or_else(|| mqtt::default_client_id(host, stream));
                let mut o = MqttOptions::new(id, subject);
                o.max_in_flight = cfg.max_in_flight;
                o.username = cfg.username.clone();
                o.password = cfg.password.clone();
                Mqtt::new(o).map(Engine::Mqtt).map_err(|e| e.to_string())
            }
        }
    }

    pub fn is_nats(&self) -> bool {
        matches!(self, Engine::Nats(_))
    }

    pub fn can_publish(&self) -> bool {
        both!(self, e => e.can_publish())
    }

    pub fn is_connected(&self) -> bool {
        match self {
            Engine::Nats(e) => e.state() == nats::State::Connected,
            Engine::Mqtt(e) => e.state() == mqtt::State::Connected,
        }
    }

    pub fn publish(
        &mut self,
        token: u64,
        msg_id: &str,
        payload: &[u8],
        now: u64,
    ) -> Result<(), Refused> {
        match self {
            Engine::Nats(e) => match e.publish(token, msg_id, payload, now) {
                Ok(()) => Ok(()),
                Err(nats::PublishError::TooLarge { size, max }) => Err(Refused::TooLarge(format!(
                    "entry of {size} bytes is over the server's max_payload {max}"
                ))),
                Err(nats::PublishError::BadMsgId) => {
                    Err(Refused::TooLarge(format!("unusable message id {msg_id:?}")))
                }
                Err(_) => Err(Refused::Later),
            },
            Engine::Mqtt(e) => match e.publish(token, payload, now) {
                Ok(()) => Ok(()),
                Err(mqtt::PublishError::TooLarge { size, max }) => Err(Refused::TooLarge(format!(
                    "packet of {size} bytes is over MQTT's limit {max}"
                ))),
                Err(_) => Err(Refused::Later),
            },
        }
    }

    pub fn in_flight(&self) -> usize {
        both!(self, e => e.in_flight())
    }

    pub fn output(&self) -> &[u8] {
        both!(self, e => e.output())
    }

    pub fn consume_output(&mut self, n: usize) {
        both!(self, e => e.consume_output(n))
    }

    pub fn wants_write(&self) -> bool {
        both!(self, e => e.wants_write())
    }

    pub fn on_bytes(&mut self, bytes: &[u8], now: u64) {
        both!(self, e => e.on_bytes(bytes, now))
    }

    pub fn on_tick(&mut self, now: u64) {
        both!(self, e => e.on_tick(now))
    }

    pub fn next_deadline(&self) -> Option<u64> {
        both!(self, e => e.next_deadline())
    }

    pub fn connected(&mut self, now: u64) {
        both!(self, e => e.connected(now))
    }

    pub fn tls_ready(&mut self, now: u64) {
        if let Engine::Nats(e) = self {
            e.tls_ready(now);
        }
    }

    pub fn connection_lost(&mut self) {
        both!(self, e => e.connection_lost())
    }

    pub fn close(&mut self) {
        both!(self, e => e.close())
    }

    pub fn poll_event(&mut self) -> Option<SinkEvent> {
        match self {
            Engine::Nats(e) => e.poll_event().map(|ev| match ev {
                nats::Event::StartTls => SinkEvent::StartTls,
                nats::Event::Connected(info) => SinkEvent::Connected(Some(info)),
                nats::Event::ServerInfo(info) => SinkEvent::ServerInfo(info),
                nats::Event::Acked { token, duplicate } => SinkEvent::Acked { token, duplicate },
                nats::Event::Nacked { token, reason } => SinkEvent::Nacked {
                    token,
                    reason: reason.to_string(),
                },
                nats::Event::ServerError(m) => SinkEvent::ServerError(m),
                nats::Event::Closed { reason, .. } => SinkEvent::Closed {
                    auth: reason.is_auth(),
                    reason: reason.to_string(),
                },
            }),
            Engine::Mqtt(e) => e.poll_event().map(|ev| match ev {
                mqtt::Event::Connected { .. } => SinkEvent::Connected(None),
                mqtt::Event::Acked { token } => SinkEvent::Acked {
                    token,
                    duplicate: false,
                },
                mqtt::Event::Closed { reason, .. } => SinkEvent::Closed {
                    auth: reason.is_auth(),
                    reason: reason.to_string(),
                },
            }),
        }
    }
}

/// Where the next entry of this run comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedAt {
    /// In the shared buffer.
    Live(u64),
    /// Behind it; `hint` is where entry `seq` starts in its file, when known.
    Disk {
        seq: u64,
        hint: Option<(SourceRef, u64)>,
    },
}

impl FeedAt {
    pub fn seq(self) -> u64 {
        match self {
            FeedAt::Live(seq) | FeedAt::Disk { seq, .. } => seq,
        }
    }
}

/// A file with lines of an earlier run the broker did not confirm: from `next` (a line
/// start) to `end` (where this run's tailer started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacklogFile {
    pub id: FileId,
    pub src: SourceRef,
    pub next: u64,
    pub end: u64,
    /// Every line was published (acknowledgements may still be due).
    pub done: bool,
}

#[derive(Debug, Clone, Copy)]
enum Pos {
    /// Entry `seq` of this run; `line` is its file and line start, for the cursor.
    Seq {
        seq: u64,
        line: Option<(FileId, u64)>,
    },
    /// A line of backlog file `file` starting at `start`.
    Backlog { file: FileId, start: u64 },
}

#[derive(Debug)]
struct Flight {
    token: u64,
    pos: Pos,
    acked: bool,
}

/// A sink's place in its stream.
#[derive(Debug)]
pub struct Feed {
    pub at: FeedAt,
    pub backlog: VecDeque<BacklogFile>,
    flights: VecDeque<Flight>,
    next_token: u64,
    /// The shared buffer frames NDJSON for this sink (it had a place for the wire).
    pub in_ring: bool,
    /// Waiting for a journalctl child reading entries again.
    pub journal_wait: bool,
    /// Sources of backlog files finished since the caller last took them (it held them).
    pub released: Vec<SourceRef>,
}

/// What a turn of publishing came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Filled {
    pub published: u64,
    /// Entries that can never be sent (too large), skipped.
    pub too_large: u64,
    /// Entries whose bytes were gone from disk before the sink got to them.
    pub lost: u64,
    /// More is ready than this turn took.
    pub more: bool,
}

impl Feed {
    /// A sink whose next entry is `seq`.
    pub fn new(seq: u64, in_ring: bool) -> Feed {
        Feed {
            at: FeedAt::Disk { seq, hint: None },
            backlog: VecDeque::new(),
            flights: VecDeque::new(),
            next_token: 1,
            in_ring,
            journal_wait: false,
            released: Vec::new(),
        }
    }

    /// Where a feed replacing this one starts so that nothing unconfirmed is skipped: the
    /// first unacknowledged entry of this run, and the backlog with each file back at its
    /// first line in flight (as [`rewind`](Self::rewind) puts them).
    pub fn handover(&self) -> (u64, Vec<BacklogFile>) {
        let backlog = self
            .backlog
            .iter()
            .map(|b| match self.first_in_flight(b.id) {
                Some(start) => BacklogFile {
                    next: start,
                    done: false,
                    ..b.clone()
                },
                None => b.clone(),
            })
            .collect();
        (self.unacked_seq(), backlog)
    }

    /// The first line of backlog file `id` published and not yet acknowledged.
    fn first_in_flight(&self, id: FileId) -> Option<u64> {
        self.flights.iter().find_map(|f| match f.pos {
            Pos::Backlog { file, start } if file == id => Some(start),
            _ => None,
        })
    }

    /// Starts where another feed of the same sink had got to ([`handover`](Self::handover)):
    /// the files of an earlier run in `backlog`, then entry `seq` of this run on.
    pub fn carry_on(&mut self, seq: u64, backlog: impl IntoIterator<Item = BacklogFile>) {
        self.at = FeedAt::Disk { seq, hint: None };
        self.backlog = backlog.into_iter().collect();
    }

    /// Publishes awaiting their acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// The oldest entry of this run not yet acknowledged.
    pub fn unacked_seq(&self) -> u64 {
        self.flights
            .iter()
            .find_map(|f| match f.pos {
                Pos::Seq { seq, .. } => Some(seq),
                Pos::Backlog { .. } => None,
            })
            .unwrap_or(self.at.seq())
    }

    /// Token `token` was acknowledged; returns whether it was one of this sink's.
    pub fn ack(&mut self, token: u64) -> bool {
        let Some(f) = self.flights.iter_mut().find(|f| f.token == token) else {
            return false;
        };
        f.acked = true;
        while self.flights.front().is_some_and(|f| f.acked) {
            self.flights.pop_front();
        }
        self.settle_backlog();
        true
    }

    /// Drops backlog files that are done and fully acknowledged (their sources go to
    /// `released`).
    fn settle_backlog(&mut self) {
        while let Some(b) = self.backlog.front() {
            let unacked = self
                .flights
                .iter()
                .any(|f| matches!(f.pos, Pos::Backlog { file, .. } if file == b.id));
            if b.done && !unacked {
                self.released.push(b.src);
                self.backlog.pop_front();
            } else {
                break;
            }
        }
    }

    /// The connection closed: everything in flight is published again, from the oldest.
    /// Returns how many entries will be republished.
    pub fn rewind(&mut self) -> u64 {
        let n = self.flights.len() as u64;
        let mut seen_seq = false;
        let mut rewound: Vec<FileId> = Vec::new();
        for f in &self.flights {
            match f.pos {
                Pos::Seq { seq, .. } => {
                    if !seen_seq {
                        seen_seq = true;
                        self.at = FeedAt::Disk { seq, hint: None };
                    }
                }
                Pos::Backlog { file, start } => {
                    if !rewound.contains(&file)
                        && let Some(b) = self.backlog.iter_mut().find(|b| b.id == file)
                    {
                        rewound.push(file);
                        b.next = start;
                        b.done = false;
                    }
                }
            }
        }
        self.flights.clear();
        n
    }

    fn flight(&mut self, pos: Pos) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.flights.push_back(Flight {
            token,
            pos,
            acked: false,
        });
        token
    }

    fn unflight(&mut self) {
        self.flights.pop_back();
        self.next_token -= 1;
    }

    /// Publishes one entry as a new flight at `pos`. Published: counted and taken from
    /// `budget`; too large ever to go: skipped and counted. `false` when the engine wants
    /// it later (no flight is left for it): the caller stops for this turn.
    #[allow(clippy::too_many_arguments)]
    fn publish_one(
        &mut self,
        engine: &mut Engine,
        pos: Pos,
        msg_id: &str,
        json: &[u8],
        now: u64,
        filled: &mut Filled,
        budget: &mut usize,
    ) -> bool {
        let token = self.flight(pos);
        match engine.publish(token, msg_id, json, now) {
            Ok(()) => {
                filled.published += 1;
                *budget -= 1;
                true
            }
            Err(Refused::TooLarge(_)) => {
                self.unflight();
                filled.too_large += 1;
                true
            }
            Err(Refused::Later) => {
                self.unflight();
                false
            }
        }
    }

    /// The entry `seq` is about to leave the shared buffer: go on from disk.
    pub fn fall_behind(&mut self, planned_base: u64) {
        if let FeedAt::Live(seq) = self.at
            && seq < planned_base
        {
            self.at = FeedAt::Disk { seq, hint: None };
        }
    }

    /// Per file, the offset of the first line not yet acknowledged (files without one are
    /// done up to the stream's checkpoint): what a restart resumes from.
    pub fn cursor(&self, stream: &Stream) -> Vec<(FileId, u64)> {
        let mut out: Vec<(FileId, u64)> = Vec::new();
        let add = |id: FileId, offset: u64, out: &mut Vec<(FileId, u64)>| {
            if !out.iter().any(|(i, _)| *i == id) {
                out.push((id, offset));
            }
        };
        for b in &self.backlog {
            match self.first_in_flight(b.id) {
                Some(start) => add(b.id, start, &mut out),
                None if !b.done => add(b.id, b.next, &mut out),
                None => {}
            }
        }
        // This run: the first unacknowledged entry, exactly where known.
        let (s0, exact) = match self.flights.iter().find_map(|f| match f.pos {
            Pos::Seq { seq, line } => Some((seq, line)),
            Pos::Backlog { .. } => None,
        }) {
            Some(first) => first,
            None => {
                let seq = self.at.seq();
                let exact = match self.at {
                    FeedAt::Disk {
                        hint: Some((src, offset)),
                        ..
                    } => stream.monitor.file_identity(src).map(|id| (id, offset)),
                    _ => match stream.origins.get(seq) {
                        Some(Origin::File { src, start }) => {
                            stream.monitor.file_identity(*src).map(|id| (id, *start))
                        }
                        _ => None,
                    },
                };
                (seq, exact)
            }
        };
        if let Some((id, offset)) = exact {
            add(id, offset, &mut out);
        }
        for run in stream.history.runs_from(s0) {
            if let RunKind::File { src, start, .. } = run.kind
                && let Some(id) = stream.monitor.file_identity(src)
            {
                // A run that began before s0 is resumed from its start (some lines may
                // go again: at least once).
                add(id, start, &mut out);
            }
        }
        out
    }

    /// Publishes what is ready, in order, while the engine takes it and within `budget`
    /// entries: backlog first, then this run's entries from the buffer or from disk.
    pub fn fill(&mut self, ctx: FillCtx, engine: &mut Engine, budget: usize) -> Filled {
        let mut filled = Filled::default();
        let mut budget = budget;
        let FillCtx {
            stream,
            now,
            buf,
            pipes,
            client,
        } = ctx;
        let name = stream.cfg.name.clone();
        while engine.can_publish() && budget > 0 {
            // The backlog of an earlier run.
            if let Some(i) = self.backlog.iter().position(|b| !b.done) {
                let (src, from, end, id) = {
                    let b = &self.backlog[i];
                    (b.src, b.next, b.end, b.id)
                };
                let stamp = Stamp::now();
                let source_json = stream
                    .monitor
                    .sources
                    .get(src.key as usize)
                    .map(|s| s.display.clone())
                    .unwrap_or_else(|| b"\"\"".to_vec().into_boxed_slice());
                let mut stop_at = None;
                let mut reached_end = false;
                let mut json = Vec::new();
                let filters = &stream.filters;
                let n = buf.len().min(REPLAY_READ);
                let flights = &mut *self;
                let result = stream.monitor.replay(
                    src,
                    from,
                    &mut buf[..n],
                    false,
                    &mut |line, _, start| {
                        if start >= end {
                            reached_end = true;
                            return false;
                        }
                        if !engine.can_publish() || budget == 0 {
                            stop_at = Some(start);
                            return false;
                        }
                        if !filters.keep(line) {
                            return true;
                        }
                        json.clear();
                        entry::write_entry(&mut json, line, &source_json, &stamp);
                        let msg = super::message_id(&name, id.0, id.1, start);
                        let pos = Pos::Backlog { file: id, start };
                        if !flights.publish_one(
                            engine,
                            pos,
                            &msg,
                            &json,
                            now,
                            &mut filled,
                            &mut budget,
                        ) {
                            stop_at = Some(start);
                            return false;
                        }
                        true
                    },
                );
                let b = &mut self.backlog[i];
                match (result, stop_at) {
                    (_, Some(at)) => {
                        b.next = at;
                        break;
                    }
                    (Replay::Read { .. }, None) if reached_end => {
                        b.next = b.end;
                        b.done = true;
                    }
                    (Replay::Read { next, eof }, None) => {
                        b.next = next;
                        if eof {
                            // The file ends before where the tailer started: the rest of
                            // its bytes are gone (truncated).
                            b.done = true;
                            filled.lost += u64::from(next < end);
                        }
                    }
                    (Replay::Gone, None) => {
                        b.done = true;
                        filled.lost += 1;
                    }
                }
                self.settle_backlog();
                continue;
            }
            let seq = self.at.seq();
            let next = stream.ring.next_seq();
            if seq >= next {
                break;
            }
            // From the shared buffer.
            if self.in_ring && stream.ring.holds(Wire::NDJSON, seq) {
                let json = stream
                    .ring
                    .frame(Wire::NDJSON, seq)
                    .and_then(|f| f.strip_suffix(b"\n"));
                let origin = stream.origins.get(seq);
                if let (Some(json), Some(origin)) = (json, origin) {
                    self.at = FeedAt::Live(seq);
                    let (msg, line) = match origin {
                        Origin::File { src, start } => {
                            match stream.monitor.sources.get(src.key as usize).map(|s| s.id) {
                                Some(id) => (
                                    super::message_id(&name, id.0, id.1, *start),
                                    Some((id, *start)),
                                ),
                                None => (notice_message_id(&name, seq), None),
                            }
                        }
                        Origin::Journal(cursor) => (journal_message_id(&name, cursor), None),
                        Origin::Notice => (notice_message_id(&name, seq), None),
                    };
                    let pos = Pos::Seq { seq, line };
                    if !self.publish_one(engine, pos, &msg, json, now, &mut filled, &mut budget) {
                        break;
                    }
                    self.at = FeedAt::Live(seq + 1);
                    continue;
                }
            }
            // From disk.
            let FeedAt::Disk { seq, hint } = self.at else {
                // Live, but the buffer no longer holds it: from disk.
                self.at = FeedAt::Disk { seq, hint: None };
                continue;
            };
            let Some(run) = stream.history.locate(seq) else {
                let first = stream.history.first_seq().max(seq + 1).min(next);
                filled.lost += first - seq;
                self.at = FeedAt::Disk {
                    seq: first,
                    hint: None,
                };
                continue;
            };
            let (run_first, run_end) = (run.first_seq, run.end_seq());
            match run.kind.clone() {
                RunKind::Notice(n) => {
                    let mut json = Vec::new();
                    let stamp = Stamp::from_micros(n.micros);
                    entry::write_notice(&mut json, &stamp, &n.source_json, "INFO", &n.message);
                    let pos = Pos::Seq { seq, line: None };
                    let msg = notice_message_id(&name, seq);
                    if !self.publish_one(engine, pos, &msg, &json, now, &mut filled, &mut budget) {
                        break;
                    }
                    self.at = FeedAt::Disk {
                        seq: seq + 1,
                        hint: None,
                    };
                }
                RunKind::File { src, start, micros } => {
                    let (from, mut skip) = match hint {
                        Some((h, offset)) if h == src && seq > run_first => (offset, 0),
                        _ => (start, seq - run_first),
                    };
                    let id = stream.monitor.file_identity(src);
                    let source_json = stream
                        .monitor
                        .sources
                        .get(src.key as usize)
                        .map(|s| s.display.clone())
                        .unwrap_or_else(|| b"\"\"".to_vec().into_boxed_slice());
                    let stamp = Stamp::from_micros(micros);
                    let mut cur = seq;
                    let mut stop_at = None;
                    let mut json = Vec::new();
                    let filters = &stream.filters;
                    let n = buf.len().min(REPLAY_READ);
                    let flights = &mut *self;
                    let result = match id {
                        None => Replay::Gone,
                        Some(id) => stream.monitor.replay(
                            src,
                            from,
                            &mut buf[..n],
                            true,
                            &mut |line, _, start| {
                                if cur >= run_end {
                                    stop_at = Some(start);
                                    return false;
                                }
                                if !filters.keep(line) {
                                    return true;
                                }
                                if skip > 0 {
                                    skip -= 1;
                                    return true;
                                }
                                if !engine.can_publish() || budget == 0 {
                                    stop_at = Some(start);
                                    return false;
                                }
                                json.clear();
                                entry::write_entry(&mut json, line, &source_json, &stamp);
                                let pos = Pos::Seq {
                                    seq: cur,
                                    line: Some((id, start)),
                                };
                                let msg = super::message_id(&name, id.0, id.1, start);
                                if !flights.publish_one(
                                    engine,
                                    pos,
                                    &msg,
                                    &json,
                                    now,
                                    &mut filled,
                                    &mut budget,
                                ) {
                                    stop_at = Some(start);
                                    return false;
                                }
                                cur += 1;
                                true
                            },
                        ),
                    };
                    match (result, stop_at) {
                        (Replay::Read { .. }, Some(at)) => {
                            let hint = (cur < run_end).then_some((src, at));
                            self.at = FeedAt::Disk { seq: cur, hint };
                            if cur < run_end {
                                break;
                            }
                        }
                        (Replay::Read { next, eof }, None) if !eof || cur >= run_end => {
                            let hint = (cur < run_end).then_some((src, next));
                            self.at = FeedAt::Disk { seq: cur, hint };
                        }
                        // The file ends (or is gone) before the run does: those bytes
                        // were truncated or deleted.
                        _ => {
                            filled.lost += run_end - cur;
                            self.at = FeedAt::Disk {
                                seq: run_end,
                                hint: None,
                            };
                        }
                    }
                }
                RunKind::Journal { target, cursor, .. } => {
                    let run = RunRef {
                        target,
                        first: run_first,
                        end: run_end,
                        cursor: &cursor,
                    };
                    let mut cur = seq;
                    let filters = &stream.filters;
                    let flights = &mut *self;
                    let mut refused = false;
                    let mut each = |s: u64, _message: &[u8], json: &[u8], cursor: &str| {
                        if !engine.can_publish() || budget == 0 {
                            refused = true;
                            return false;
                        }
                        let pos = Pos::Seq { seq: s, line: None };
                        let msg = journal_message_id(&name, cursor);
                        if !flights.publish_one(
                            engine,
                            pos,
                            &msg,
                            json,
                            now,
                            &mut filled,
                            &mut budget,
                        ) {
                            refused = true;
                            return false;
                        }
                        cur = s + 1;
                        engine.can_publish() && budget > 0
                    };
                    let out = Output {
                        keep: &|m: &[u8]| filters.keep(m),
                        each: &mut each,
                    };
                    let step = stream.journals.replay(client, run, seq, pipes, buf, out);
                    self.journal_wait = false;
                    self.at = FeedAt::Disk {
                        seq: cur,
                        hint: None,
                    };
                    match step {
                        Step::Progress => {
                            if refused {
                                break;
                            }
                        }
                        Step::Done => {
                            self.at = FeedAt::Disk {
                                seq: run_end,
                                hint: None,
                            };
                        }
                        Step::Waiting => {
                            self.journal_wait = true;
                            break;
                        }
                        Step::Gone { from } => {
                            let from = from.max(cur);
                            filled.lost += run_end - from;
                            self.at = FeedAt::Disk {
                                seq: run_end,
                                hint: None,
                            };
                        }
                    }
                }
            }
        }
        filled.more = budget == 0 && engine.can_publish();
        // Back in the buffer: a journalctl child reading for it is not needed any more.
        if matches!(self.at, FeedAt::Live(_)) && !stream.journals.replays.is_empty() {
            stream.journals.replays.cancel(client, pipes);
        }
        filled
    }
}

/// What [`Feed::fill`] reads from.
pub struct FillCtx<'a> {
    pub stream: &'a mut Stream,
    pub now: u64,
    pub buf: &'a mut [u8],
    pub pipes: &'a mut dyn Pipes,
    /// The sink as a reader of the journal (for journalctl children reading it again).
    pub client: ClientId,
}

/// How a sink is doing, for `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkState {
    /// Looking up the broker's address.
    Resolving,
    Connecting,
    /// TCP (and TLS) up, protocol handshake under way.
    Handshaking,
    Connected,
    /// Waiting before the next attempt.
    Backoff,
    /// Removed by a reload: finishing what is in flight.
    Stopping,
}

impl SinkState {
    pub fn name(self) -> &'static str {
        match self {
            SinkState::Resolving => "resolving",
            SinkState::Connecting => "connecting",
            SinkState::Handshaking => "handshaking",
            SinkState::Connected => "connected",
            SinkState::Backoff => "backoff",
            SinkState::Stopping => "stopping",
        }
    }
}

/// Counters of one sink.
#[derive(Debug, Clone, Default)]
pub struct SinkStats {
    /// Entries the broker confirmed (core NATS: handed to the kernel).
    pub acked: u64,
    /// Of those, JetStream already had (republished after a reconnect).
    pub duplicates: u64,
    pub published: u64,
    /// Entries published again after a connection closed with them unacknowledged.
    pub republished: u64,
    /// Refusals (JetStream errors, timeouts).
    pub nacked: u64,
    pub dropped_too_large: u64,
    /// Entries gone from disk before the sink read them.
    pub dropped_gone: u64,
    pub connects: u64,
    pub connect_failures: u64,
    pub auth_failures: u64,
    pub tls_failures: u64,
    pub disconnects: u64,
    pub errors: u64,
}

impl SinkStats {
    pub fn dropped(&self) -> u64 {
        self.dropped_too_large + self.dropped_gone
    }
}

/// One sink of a stream: its config, engine, place and counters. The reactor's record of
/// its connection is `io` (a key into its table of sink connections).
#[derive(Debug)]
pub struct Sink {
    pub cfg: ForwardConfig,
    pub urls: Vec<Url>,
    pub engine: Engine,
    pub feed: Feed,
    pub state: SinkState,
    pub stats: SinkStats,
    /// The URL tried or connected now, for `/status` (no credentials).
    pub url: String,
    pub last_error: Option<String>,
    /// The reactor's key for its connection.
    pub io: usize,
}

impl Sink {
    /// `cfg` for `stream`, positioned at entry `seq`. URLs were validated with the config.
    pub fn new(
        cfg: ForwardConfig,
        stream: &mut Stream,
        seq: u64,
        host: &str,
    ) -> Result<Sink, String> {
        let urls = cfg
            .urls
            .iter()
            .map(|u| resolve::parse_url(u).map_err(|e| format!("{u}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let engine = Engine::new(&cfg, stream.name(), host)?;
        let in_ring = stream.ring.enable(Wire::NDJSON);
        stream.sink_wires += 1;
        Ok(Sink {
            url: crate::config::redact_url(&cfg.urls[0]),
            cfg,
            urls,
            engine,
            feed: Feed::new(seq, in_ring),
            state: SinkState::Connecting,
            stats: SinkStats::default(),
            last_error: None,
            io: usize::MAX,
        })
    }

    /// The sink leaves its stream: its place in the buffer goes.
    pub fn detach(&self, stream: &mut Stream) {
        if self.feed.in_ring {
            stream.ring.disable(Wire::NDJSON);
        }
        stream.sink_wires = stream.sink_wires.saturating_sub(1);
        for b in &self.feed.backlog {
            stream.monitor.history_ref(b.src.key, -1);
        }
    }

    /// Entries of this run not yet confirmed.
    pub fn lag(&self, stream: &Stream) -> u64 {
        stream
            .ring
            .next_seq()
            .saturating_sub(self.feed.unacked_seq())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_follow_the_buffer() {
        let mut o = Origins::default();
        o.push(10, Origin::Notice);
        o.push(11, Origin::Journal("s=a;i=1".into()));
        assert_eq!(o.get(11), Some(&Origin::Journal("s=a;i=1".into())));
        assert_eq!(o.get(12), None);
        o.evict_below(11);
        assert_eq!(o.get(10), None);
        assert!(o.get(11).is_some());
        // A gap (entries pushed while nobody kept origins) starts again.
        o.push(20, Origin::Notice);
        assert_eq!(o.get(11), None);
        assert_eq!(o.get(20), Some(&Origin::Notice));
    }

    #[test]
    fn message_ids_name_journal_entries_and_notices_for_good() {
        assert_eq!(
            journal_message_id("app", "s=75308cbb;i=1f;b=6539;m=3e8;t=66;x=9d31"),
            "app:j:75308cbb:1f"
        );
        assert_eq!(journal_message_id("app", "odd"), "app:j:odd");
        assert_eq!(notice_message_id("app", 42), "app:n:42");
    }

    #[test]
    fn acks_in_any_order_release_a_prefix_and_a_close_rewinds_to_the_oldest() {
        let mut f = Feed::new(100, false);
        let t: Vec<u64> = (100..105)
            .map(|seq| f.flight(Pos::Seq { seq, line: None }))
            .collect();
        f.at = FeedAt::Disk {
            seq: 105,
            hint: None,
        };
        assert!(f.ack(t[1]));
        assert_eq!(f.unacked_seq(), 100, "an ack after a gap releases nothing");
        assert!(f.ack(t[0]));
        assert_eq!(f.unacked_seq(), 102);
        assert!(!f.ack(999));
        assert_eq!(f.rewind(), 3);
        assert_eq!(f.at.seq(), 102);
        assert_eq!(f.in_flight(), 0);
    }

    #[test]
    fn a_rewind_goes_back_into_the_backlog() {
        let mut f = Feed::new(100, false);
        let id = (1, 2);
        f.backlog.push_back(BacklogFile {
            id,
            src: SourceRef { key: 0, epoch: 0 },
            next: 300,
            end: 300,
            done: true,
        });
        let a = f.flight(Pos::Backlog {
            file: id,
            start: 100,
        });
        f.flight(Pos::Backlog {
            file: id,
            start: 200,
        });
        f.flight(Pos::Seq {
            seq: 100,
            line: None,
        });
        f.at = FeedAt::Disk {
            seq: 101,
            hint: None,
        };
        f.ack(a);
        // A sink replacing this one on reload starts where a rewind would, and this
        // one's flights are left as they are (it finishes them).
        let (seq, backlog) = f.handover();
        assert_eq!((seq, backlog[0].next, backlog[0].done), (100, 200, false));
        assert_eq!(f.in_flight(), 2);
        let mut next = Feed::new(101, false);
        next.carry_on(seq, backlog);
        assert_eq!(f.rewind(), 2);
        assert_eq!(f.backlog[0].next, 200);
        assert!(!f.backlog[0].done);
        assert_eq!(f.at.seq(), 100);
        assert_eq!(next.at.seq(), f.at.seq());
        assert_eq!(next.backlog, f.backlog);
    }
}
