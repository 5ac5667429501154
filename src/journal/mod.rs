//! The systemd journal as a stream source (SPEC §17), read through `journalctl`.
//!
//! Each journal target has one follower: `journalctl --follow --output=json
//! --after-cursor=… [--directory=…] [filters]`, a child whose stdout is a non-blocking
//! pipe registered with the reactor. journalctl blocks in its own process, so an idle
//! journal costs logwisp no wake-up; a full pipe blocks journalctl, so reading is paced
//! like a file's (the journal on disk is the buffer). A follower that exits is started
//! again after a back-off, from the cursor of the last entry read; its stderr is reported
//! once and counted.
//!
//! Why a child and not the journal files themselves: the file format (hash tables, entry
//! arrays, compression, sealing, rotation and vacuuming, several files interleaved) is
//! what libsystemd exists for, and linking it is not possible in this static build.
//! journalctl is that library's own client, present wherever a journal is.
//!
//! Where reading starts: after the saved cursor (SPEC §11); without one, at the end
//! (`start_at = "end"`: a one-shot `journalctl --lines=1` finds the last entry's cursor
//! first, so that entries written from then on are all delivered even if logwisp stops
//! before the first arrives) or at the beginning. A journal directory that appears after
//! startup is read from its beginning, like a file that appears later.
//!
//! `--follow` alone reads only the current boot; logwisp passes `--merge` (with a match
//! on this machine's id for the local journal) so that entries of an earlier boot after
//! the cursor (written while logwisp was down before a reboot) are not skipped.

pub mod child;
pub mod entry;
pub mod replay;

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::config::{JournalConfig, StartAt, StreamConfig};
use crate::entry::Stamp;
use crate::tail::ReadBudget;
use crate::tail::lines::{LineSink, LineSplitter};
pub use child::{PipeOf, Pipes, Proc};
use entry::Parsed;

/// The program that reads the journal.
pub const JOURNALCTL: &str = "journalctl";
/// Where this machine's journal lives (runtime, persistent).
pub const SYSTEM_DIRS: [&str; 2] = ["/run/log/journal", "/var/log/journal"];
/// A follower that ended is started again after this, doubling up to the maximum.
pub const RESTART_MIN_MS: u64 = 1_000;
pub const RESTART_MAX_MS: u64 = 60_000;
/// A follower that ran this long was healthy: the next restart waits the minimum again.
pub const HEALTHY_MS: u64 = 30_000;
/// A journal that does not exist yet is looked for at least this far apart.
pub const WAIT_MIN_MS: u64 = 1_000;
/// Room for the JSON around a message of `max_line_bytes`.
const JSON_SLACK: usize = 64 * 1024;

/// Where a journalctl run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start<'a> {
    /// One-shot: the last entry only, to learn its cursor.
    Seed,
    /// Follow, from the first entry there is.
    All,
    /// Follow, from the entry after this cursor.
    After(&'a str),
    /// One-shot, from this cursor's entry on (a client catching up).
    At(&'a str),
}

/// journalctl's arguments for target `cfg` (`machine`: this machine's id, for the local
/// journal).
pub fn args(cfg: &JournalConfig, machine: Option<&str>, start: Start) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    match start {
        Start::Seed => a.push("--lines=1".into()),
        // Without --lines=all, --follow shows only the last 10 entries after the cursor.
        Start::All => a.extend(["--follow".into(), "--lines=all".into()]),
        Start::After(c) => a.extend([
            "--follow".into(),
            "--lines=all".into(),
            format!("--after-cursor={c}").into(),
        ]),
        Start::At(c) => a.push(format!("--cursor={c}").into()),
    }
    a.push("--output=json".into());
    // Long fields in full (they are cut to max_line_bytes here), not as null.
    a.push("--all".into());
    a.push("--no-pager".into());
    // Not --quiet: its hints (not allowed to read the system journal) are worth a report.
    let mut fields: Vec<&str> = match start {
        Start::Seed => vec!["__CURSOR"],
        _ => entry::READ_FIELDS.to_vec(),
    };
    if start != Start::Seed {
        for f in &cfg.fields {
            if !fields.contains(&f.as_str()) {
                fields.push(f);
            }
        }
    }
    a.push(format!("--output-fields={}", fields.join(",")).into());
    match (&cfg.dir, machine) {
        (Some(dir), _) => {
            let mut d = OsString::from("--directory=");
            d.push(dir.as_os_str());
            a.push(d);
            a.push("--merge".into());
        }
        (None, Some(id)) => {
            a.push("--merge".into());
            a.push(format!("_MACHINE_ID={id}").into());
        }
        (None, None) => {}
    }
    for u in &cfg.units {
        a.push(format!("--unit={u}").into());
    }
    for i in &cfg.identifiers {
        a.push(format!("--identifier={i}").into());
    }
    if let Some(p) = cfg.priority {
        a.push(format!("--priority={}", p.as_str()).into());
    }
    a
}

/// This machine's id (`/etc/machine-id`), when it has one.
pub fn machine_id() -> Option<String> {
    let text = std::fs::read_to_string("/etc/machine-id").ok()?;
    let id = text.trim();
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// A cursor saved with the checkpoints, and the journal it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCursor {
    /// `journal_dir`, or `None` for this machine's journal.
    pub dir: Option<std::path::PathBuf>,
    /// The target's description (its filters): a cursor goes back to the same target
    /// first, else to a target of the same journal.
    pub target: String,
    pub cursor: String,
}

/// Receives what the followers read.
pub trait JournalSink {
    /// An entry of target `target`; `message` is its message, cut to the line limit.
    /// `epoch` numbers the target's followers (entries of one follower are in journal
    /// order); `now` dates an entry that has no time of its own.
    fn entry(
        &mut self,
        target: u32,
        epoch: u32,
        p: &Parsed,
        names: &[String],
        message: &[u8],
        now: &Stamp,
    );
    /// A line journalctl wrote that is not an entry (it is announced, not dropped).
    fn unreadable(&mut self, target: u32, source_json: &[u8], message: &str);
}

/// What a follower is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not running: (re)started at `retry_at`.
    Idle,
    /// The one-shot run that finds the last entry's cursor.
    Seeding,
    Following,
}

/// Counted for `/status` and `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JournalCounters {
    pub entries: u64,
    pub bytes: u64,
    /// Followers started again after one ended.
    pub restarts: u64,
    /// Failed starts, followers that ended in error, lines they wrote on stderr.
    pub errors: u64,
    /// Lines that were not entries.
    pub unreadable: u64,
    /// Messages cut to `max_line_bytes`.
    pub truncated: u64,
    /// Children started to read the journal again for clients behind the buffer.
    pub replays: u64,
}

/// One journal target.
#[derive(Debug)]
pub struct JournalTarget {
    pub cfg: JournalConfig,
    /// `source` of the notices about this target (JSON string).
    source_json: Box<[u8]>,
    /// Cursor of the last entry read into the stream.
    pub cursor: Option<String>,
    pub phase: Phase,
    proc: Option<Proc>,
    splitter: LineSplitter,
    /// Bytes read from the pipe that the budget left unsplit.
    held: Vec<u8>,
    /// Tick at which to start the follower (while idle).
    retry_at: Option<u64>,
    backoff_ms: u64,
    /// Lines read from the running child.
    lines_this_run: u64,
    /// Followers started so far (history keeps their entries apart).
    epoch: u32,
    /// Where to start is settled: a follower ran, or the run that finds the last
    /// entry's cursor succeeded (without a cursor, then, every entry is new).
    started_once: bool,
    /// A follower ran (the next one is a restart).
    followed_once: bool,
    /// Its journal did not exist when logwisp looked first: all of it is new (like a
    /// file that appears later, it is read from its beginning).
    appeared_later: bool,
    pub entries_read: u64,
    pub restarts: u64,
    pub errors: u64,
    /// What it waits for (no journal yet, no journalctl), said once.
    pub waiting: Option<String>,
    pub last_error: Option<String>,
}

/// The journal targets of a stream.
#[derive(Debug)]
pub struct Journals {
    stream: String,
    pub targets: Vec<JournalTarget>,
    machine: Option<String>,
    program: OsString,
    max_line: usize,
    wait_ms: u64,
    /// Cursors moved since the state was last saved.
    pub cursor_dirty: bool,
    pub counters: JournalCounters,
    /// Children reading the journal again for clients behind the buffer.
    pub replays: replay::Replays,
}

impl JournalTarget {
    /// `waiting`, `starting`, `reading`, `restarting` or `error`, for `/status`.
    pub fn state(&self) -> &'static str {
        match self.phase {
            Phase::Seeding => "starting",
            Phase::Following => "reading",
            Phase::Idle if self.waiting.is_some() => "waiting",
            Phase::Idle if self.last_error.is_some() => "error",
            Phase::Idle if self.followed_once => "restarting",
            Phase::Idle => "starting",
        }
    }

    /// What `/status` shows as the watcher's path.
    pub fn path(&self) -> String {
        match &self.cfg.dir {
            Some(d) => format!("journal:{}", d.display()),
            None => "journal".to_string(),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(Proc::pid)
    }
}

impl Journals {
    pub fn new(cfg: &StreamConfig) -> Journals {
        let machine = if cfg.journals.iter().any(|j| j.dir.is_none()) {
            machine_id()
        } else {
            None
        };
        let max_line = cfg.max_line_bytes;
        let targets = cfg
            .journals
            .iter()
            .map(|j| {
                let mut source_json = Vec::new();
                let what = match &j.dir {
                    Some(d) => format!("journal {}", d.display()),
                    None => "journal".to_string(),
                };
                crate::entry::write_json_string(&mut source_json, what.as_bytes());
                JournalTarget {
                    cfg: j.clone(),
                    source_json: source_json.into_boxed_slice(),
                    cursor: None,
                    phase: Phase::Idle,
                    proc: None,
                    splitter: LineSplitter::new(
                        max_line.saturating_mul(6).saturating_add(JSON_SLACK),
                    ),
                    held: Vec::new(),
                    retry_at: None,
                    backoff_ms: RESTART_MIN_MS,
                    lines_this_run: 0,
                    epoch: 0,
                    started_once: false,
                    followed_once: false,
                    appeared_later: false,
                    entries_read: 0,
                    restarts: 0,
                    errors: 0,
                    waiting: None,
                    last_error: None,
                }
            })
            .collect();
        Journals {
            stream: cfg.name.clone(),
            targets,
            machine,
            program: OsString::from(JOURNALCTL),
            max_line,
            wait_ms: cfg.check_interval_ms.max(WAIT_MIN_MS),
            cursor_dirty: false,
            counters: JournalCounters::default(),
            replays: replay::Replays::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Takes the cursors an earlier run saved (each target its own first, else one of
    /// the same journal) and plans every follower's start for the next poll.
    pub fn start(&mut self, now: u64, saved: &[SavedCursor]) {
        let mut taken = vec![false; saved.len()];
        for pass in 0..2 {
            for t in &mut self.targets {
                if t.cursor.is_some() {
                    continue;
                }
                let desc = t.cfg.describe();
                let found = saved.iter().enumerate().position(|(i, s)| {
                    !taken[i] && s.dir == t.cfg.dir && (pass == 1 || s.target == desc)
                });
                if let Some(i) = found {
                    taken[i] = true;
                    t.cursor = Some(saved[i].cursor.clone());
                }
            }
        }
        for t in &mut self.targets {
            t.retry_at = Some(now);
        }
    }

    /// The cursors to save.
    pub fn cursors(&self) -> Vec<SavedCursor> {
        self.targets
            .iter()
            .filter_map(|t| {
                Some(SavedCursor {
                    dir: t.cfg.dir.clone(),
                    target: t.cfg.describe(),
                    cursor: t.cursor.clone()?,
                })
            })
            .collect()
    }

    /// A pipe of `of` is readable (or closed).
    pub fn on_pipe(&mut self, target: usize, stderr: bool) {
        if let Some(p) = self.targets.get_mut(target).and_then(|t| t.proc.as_mut()) {
            if stderr {
                p.err_ready = true;
            } else {
                p.out_ready = true;
            }
        }
    }

    /// The earliest tick a follower is to be (re)started at.
    pub fn next_wakeup(&self) -> Option<u64> {
        self.targets
            .iter()
            .filter(|t| t.proc.is_none())
            .filter_map(|t| t.retry_at)
            .min()
    }

    /// Something was read and not yet turned into entries, or a pipe has more.
    pub fn has_work(&self) -> bool {
        self.targets.iter().any(|t| {
            !t.held.is_empty() || t.proc.as_ref().is_some_and(|p| p.out_ready || p.err_ready)
        })
    }

    /// Followers running now.
    pub fn active(&self) -> usize {
        self.targets
            .iter()
            .filter(|t| t.phase == Phase::Following)
            .count()
    }

    /// Starts due followers, reads what they wrote within `budget`, and notices the ones
    /// that ended. Returns true when a follower has more to read than the budget allowed.
    pub fn poll<S: JournalSink>(
        &mut self,
        now: u64,
        pipes: &mut dyn Pipes,
        buf: &mut [u8],
        budget: &mut ReadBudget,
        stamp: &Stamp,
        sink: &mut S,
    ) -> bool {
        let mut more = false;
        for t in 0..self.targets.len() {
            let target = &mut self.targets[t];
            if target.proc.is_none() && target.retry_at.is_some_and(|at| at <= now) {
                self.launch(t, now, pipes);
            }
            more |= self.read(t, buf, budget, stamp, sink);
            let target = &mut self.targets[t];
            let Some(p) = target.proc.as_mut() else {
                continue;
            };
            let lines = p.read_err();
            let (said, done) = (p.stderr_line(), p.done());
            if lines > 0 {
                // What it says is reported once while it runs, and again when it ends.
                target.errors += lines as u64;
                self.counters.errors += lines as u64;
                if !said.is_empty() && target.phase == Phase::Following {
                    error(&self.stream, target, format!("journalctl: {said}"));
                }
            }
            if done {
                self.ended(t, now, pipes);
            }
        }
        more
    }

    /// Starts target `t`'s follower (or the run that finds where it starts).
    fn launch(&mut self, t: usize, now: u64, pipes: &mut dyn Pipes) {
        let wait_ms = self.wait_ms;
        let target = &mut self.targets[t];
        target.retry_at = None;
        if let Some(why) = missing_journal(&target.cfg) {
            if target.waiting.as_deref() != Some(why.as_str()) {
                crate::log::warn(&self.stream, &format!("{why}; waiting for it"));
            }
            target.waiting = Some(why);
            target.retry_at = Some(now + wait_ms);
            target.appeared_later = true;
            return;
        }
        let (start, phase) = match (&target.cursor, target.cfg.start_at) {
            (Some(c), _) => (Start::After(c), Phase::Following),
            (None, StartAt::Beginning) => (Start::All, Phase::Following),
            // Seeded already and the journal had no entry, or the journal appeared after
            // logwisp started: all of it is new.
            (None, StartAt::End) if target.started_once || target.appeared_later => {
                (Start::All, Phase::Following)
            }
            (None, StartAt::End) => (Start::Seed, Phase::Seeding),
        };
        let args = args(&target.cfg, self.machine.as_deref(), start);
        match Proc::spawn(&self.program, &args, PipeOf::Target(t), pipes, now) {
            Ok(p) => {
                if phase == Phase::Following {
                    if target.followed_once {
                        target.restarts += 1;
                        self.counters.restarts += 1;
                    }
                    target.followed_once = true;
                }
                if target.waiting.take().is_some() {
                    crate::log::info(&self.stream, "the journal can be read now");
                }
                target.proc = Some(p);
                target.phase = phase;
                target.epoch = target.epoch.wrapping_add(1);
                target.lines_this_run = 0;
                target.splitter.restart_at(0);
                target.held.clear();
            }
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "cannot read the journal: {} is not installed (not found in PATH); install systemd's journalctl",
                        self.program.to_string_lossy()
                    )
                } else {
                    format!("cannot start {}: {e}", self.program.to_string_lossy())
                };
                target.errors += 1;
                self.counters.errors += 1;
                if target.waiting.as_deref() != Some(why.as_str()) {
                    crate::log::warn(&self.stream, &format!("{why}; waiting for it"));
                }
                target.waiting = Some(why);
                target.retry_at = Some(now + target.backoff_ms);
                target.backoff_ms = (target.backoff_ms * 2).min(RESTART_MAX_MS);
            }
        }
    }

    /// Target `t`'s child closed its pipes: a seed run hands over to the follower, an
    /// ended follower is started again after a back-off.
    fn ended(&mut self, t: usize, now: u64, pipes: &mut dyn Pipes) {
        let target = &mut self.targets[t];
        let Some(p) = target.proc.take() else { return };
        let started = p.started;
        let ended = p.finish(pipes);
        let was = target.phase;
        target.phase = Phase::Idle;
        if was == Phase::Following || ended.success() {
            target.started_once = true;
        }
        if was == Phase::Seeding && ended.success() {
            // Straight on to following, from the cursor found (if the journal had any).
            target.retry_at = Some(now);
            if target.last_error.take().is_some() {
                crate::log::info(&self.stream, "the journal is readable again");
            }
            return;
        }
        let message = ended.describe(JOURNALCTL);
        // A follower never ends by itself: however it went, that is a problem.
        if was == Phase::Following || !ended.success() {
            target.errors += 1;
            self.counters.errors += 1;
        }
        if target.cursor.is_some() && ended.stderr.contains("cursor") && target.lines_this_run == 0
        {
            // A cursor journalctl cannot use (damaged state): start where start_at says.
            target.cursor = None;
            target.started_once = false;
            target.followed_once = false;
            crate::log::warn(
                &self.stream,
                "the saved journal cursor cannot be used; starting again without it",
            );
        }
        let healthy = now.saturating_sub(started) >= HEALTHY_MS || target.lines_this_run > 0;
        if healthy {
            target.backoff_ms = RESTART_MIN_MS;
        }
        let wait = target.backoff_ms;
        target.backoff_ms = (target.backoff_ms * 2).min(RESTART_MAX_MS);
        target.retry_at = Some(now + wait);
        error(
            &self.stream,
            target,
            format!("{message}; starting it again in {} s", wait.div_ceil(1000)),
        );
    }

    /// Reads what target `t`'s child wrote, within the budget. True when more is there.
    fn read<S: JournalSink>(
        &mut self,
        t: usize,
        buf: &mut [u8],
        budget: &mut ReadBudget,
        stamp: &Stamp,
        sink: &mut S,
    ) -> bool {
        let JournalTarget {
            cfg,
            source_json,
            cursor,
            phase,
            proc,
            splitter,
            held,
            lines_this_run,
            entries_read,
            last_error,
            epoch,
            ..
        } = &mut self.targets[t];
        let Some(p) = proc.as_mut() else {
            return false;
        };
        let mut lines = Lines {
            target: t as u32,
            epoch: *epoch,
            seeding: *phase == Phase::Seeding,
            max_line: self.max_line,
            stream: &self.stream,
            cfg,
            source_json,
            cursor,
            lines_this_run,
            entries_read,
            last_error,
            counters: &mut self.counters,
            dirty: &mut self.cursor_dirty,
            budget,
            stamp,
            sink,
        };
        let mut more = false;
        // What an earlier turn read but had no budget for goes first.
        if !held.is_empty() {
            let chunk = std::mem::take(held);
            let used = splitter.feed(&chunk, &mut lines);
            if used < chunk.len() {
                held.extend_from_slice(&chunk[used..]);
                more = true;
            }
        }
        while !more && !lines.budget.exhausted() {
            let want = buf.len().min(lines.budget.bytes_left()).max(1);
            let Some(n) = p.read_out(&mut buf[..want]) else {
                break;
            };
            if n == 0 {
                // journalctl ends every line; anything left is a line all the same.
                splitter.flush(&mut lines);
                break;
            }
            lines.counters.bytes += n as u64;
            lines.budget.take_bytes(n);
            let used = splitter.feed(&buf[..n], &mut lines);
            if used < n {
                held.extend_from_slice(&buf[used..n]);
                more = true;
            }
        }
        more || (lines.budget.exhausted() && p.out_ready)
    }

    /// Hands `client` the entries of history run `run` from `want` on, read again from
    /// the journal (see [`replay`]).
    pub fn replay(
        &mut self,
        client: replay::ClientId,
        run: replay::RunRef,
        want: u64,
        pipes: &mut dyn Pipes,
        buf: &mut [u8],
        out: replay::Output,
    ) -> replay::Step {
        let Some(target) = self.targets.get(run.target as usize) else {
            return replay::Step::Gone { from: want };
        };
        let (cfg, machine, program) = (&target.cfg, self.machine.as_deref(), &self.program);
        let counters = &mut self.counters;
        let mut spawn = |cursor: &str, of: PipeOf, pipes: &mut dyn Pipes| {
            let args = args(cfg, machine, Start::At(cursor));
            match Proc::spawn(program, &args, of, pipes, 0) {
                Ok(p) => {
                    counters.replays += 1;
                    Some(p)
                }
                Err(_) => {
                    counters.errors += 1;
                    None
                }
            }
        };
        self.replays.step(
            client,
            run,
            want,
            &mut spawn,
            &cfg.fields,
            self.max_line,
            pipes,
            buf,
            out,
        )
    }

    /// Ends every child (the stream goes, its tailer restarts, or logwisp stops).
    pub fn stop(&mut self, pipes: &mut dyn Pipes) {
        self.replays.stop(pipes);
        for t in &mut self.targets {
            if let Some(p) = t.proc.take() {
                p.finish(pipes);
            }
            t.phase = Phase::Idle;
            t.retry_at = None;
        }
    }
}

/// Turns the lines a follower wrote into entries (or, while seeding, into a cursor).
struct Lines<'a, S> {
    target: u32,
    epoch: u32,
    seeding: bool,
    max_line: usize,
    stream: &'a str,
    cfg: &'a JournalConfig,
    source_json: &'a [u8],
    cursor: &'a mut Option<String>,
    lines_this_run: &'a mut u64,
    entries_read: &'a mut u64,
    last_error: &'a mut Option<String>,
    counters: &'a mut JournalCounters,
    dirty: &'a mut bool,
    budget: &'a mut ReadBudget,
    stamp: &'a Stamp,
    sink: &'a mut S,
}

impl<S: JournalSink> LineSink for Lines<'_, S> {
    fn line(&mut self, line: &[u8], cut: bool, _start: u64) -> bool {
        *self.lines_this_run += 1;
        if self.last_error.take().is_some() {
            crate::log::info(self.stream, "the journal is readable again");
        }
        let parsed = if cut {
            Err(entry::Unreadable(format!(
                "a journal entry longer than {} bytes of JSON was cut off",
                splitter_max(self.max_line)
            )))
        } else {
            entry::parse(line, &self.cfg.fields)
        };
        match parsed {
            Ok(e) => {
                *self.cursor = e.cursor.as_deref().map(str::to_string);
                *self.dirty = true;
                if !self.seeding {
                    let (message, was_cut) = entry::message(&e, self.max_line);
                    self.counters.truncated += u64::from(was_cut);
                    self.sink.entry(
                        self.target,
                        self.epoch,
                        &e,
                        &self.cfg.fields,
                        message,
                        self.stamp,
                    );
                    *self.entries_read += 1;
                    self.counters.entries += 1;
                }
            }
            Err(entry::Unreadable(why)) => {
                self.counters.unreadable += 1;
                if !self.seeding {
                    self.sink.unreadable(self.target, self.source_json, &why);
                }
            }
        }
        self.budget.take_entry();
        !self.budget.exhausted()
    }
}

/// The largest line of journalctl JSON read whole for a `max_line_bytes` limit.
fn splitter_max(max_line: usize) -> usize {
    max_line.saturating_mul(6).saturating_add(JSON_SLACK)
}

/// Records (and the first time, reports) a target's problem.
fn error(stream: &str, target: &mut JournalTarget, message: String) {
    if target.last_error.as_deref() != Some(message.as_str()) {
        crate::log::warn(stream, &message);
    }
    target.last_error = Some(message);
}

/// Why target `cfg`'s journal cannot be read yet: its directory does not exist, or this
/// machine keeps no journal.
fn missing_journal(cfg: &JournalConfig) -> Option<String> {
    match &cfg.dir {
        Some(d) if !d.is_dir() => Some(format!(
            "journal directory {} does not exist yet",
            d.display()
        )),
        Some(_) => None,
        None if !SYSTEM_DIRS.iter().any(|d| Path::new(d).is_dir()) => Some(format!(
            "this machine has no systemd journal ({} and {} do not exist)",
            SYSTEM_DIRS[0], SYSTEM_DIRS[1]
        )),
        None => None,
    }
}

/// For tests and benchmarks: which program reads the journal.
impl Journals {
    pub fn set_program(&mut self, program: &OsStr) {
        self.program = program.to_os_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Priority;

    fn cfg() -> JournalConfig {
        JournalConfig {
            dir: None,
            units: vec![],
            identifiers: vec![],
            priority: None,
            fields: vec!["_PID".into(), "MESSAGE".into()],
            start_at: StartAt::End,
        }
    }

    fn text(a: &[OsString]) -> String {
        a.iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn follower_arguments() {
        let fields = "--output-fields=MESSAGE,PRIORITY,SYSLOG_IDENTIFIER,_SYSTEMD_UNIT,_COMM,_PID";
        assert_eq!(
            text(&args(&cfg(), Some("ab"), Start::After("s=1;i=2"))),
            format!(
                "--follow --lines=all --after-cursor=s=1;i=2 --output=json --all --no-pager {fields} --merge _MACHINE_ID=ab"
            )
        );
        let mut c = cfg();
        c.dir = Some("/srv/j".into());
        c.units = vec!["a.service".into(), "-b".into()];
        c.identifiers = vec!["x y".into()];
        c.priority = Some(Priority::Warning);
        let a = args(&c, Some("ab"), Start::All);
        assert_eq!(
            text(&a),
            format!(
                "--follow --lines=all --output=json --all --no-pager {fields} --directory=/srv/j --merge --unit=a.service --unit=-b --identifier=x y --priority=warning"
            )
        );
        assert_eq!(a.len(), 12, "one argument each");
        assert_eq!(
            text(&args(&cfg(), None, Start::Seed)),
            "--lines=1 --output=json --all --no-pager --output-fields=__CURSOR"
        );
        assert!(text(&args(&cfg(), None, Start::At("c"))).starts_with("--cursor=c --output"));
    }

    #[test]
    fn saved_cursors_go_back_to_their_target_first() {
        let mut sc = crate::config::parse(
            "[[streams]]\nname = \"a\"\n[streams.monitor]\ntargets = [{ journal = true, units = [\"x.service\"] }, { journal = true }, { journal = true, journal_dir = \"/j\" }]\n[streams.tcpserver]\nenabled = true\n",
            "t",
            Default::default(),
        )
        .unwrap()
        .streams
        .remove(0);
        sc.check_interval_ms = 20;
        let mut j = Journals::new(&sc);
        let saved = |dir: Option<&str>, target: &str, cursor: &str| SavedCursor {
            dir: dir.map(Into::into),
            target: target.into(),
            cursor: cursor.into(),
        };
        j.start(
            5,
            &[
                saved(None, "journal (this machine)", "bare"),
                saved(None, "journal (this machine) units y.service", "other"),
                saved(Some("/k"), "journal /k", "elsewhere"),
            ],
        );
        let cursors: Vec<Option<&str>> = j.targets.iter().map(|t| t.cursor.as_deref()).collect();
        assert_eq!(cursors, [Some("other"), Some("bare"), None]);
        assert_eq!(j.next_wakeup(), Some(5));
        assert_eq!(j.cursors().len(), 2);
        assert_eq!(j.targets[2].path(), "journal:/j");
    }
}
