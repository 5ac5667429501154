//! Tailing: which files belong to a stream, when to look at them, and reading them.
//!
//! Three kinds of thing, each in a table:
//! - a **target** is a watched directory and a name pattern (or one file name);
//! - a **name** is a matching directory entry, which may or may not hold a file now;
//! - a **source** is a file, known by its identity `(dev, inode)` and read once per
//!   stream however many names reach it (a symlink and its target, hard links). A name
//!   that starts to hold another file is a rotation; a file that turns up under a new name
//!   (renamed into place, moved back) is continued where it was, never read again.
//!
//! inotify (owned by the reactor) watches every target directory, plus the file itself
//! while it is retired (renamed away, its writer perhaps not reopened yet) or reached only
//! through symlinks; its events queue names and sources, so the cost of an event does not
//! depend on how many files are watched. Where inotify cannot see (network and FUSE file
//! systems, a watch that could not be added, a directory that does not exist yet) the
//! stream's `check_interval_ms` drives a periodic check; elsewhere an idle monitor never
//! asks to be woken. Descriptors are a budget: idle files are closed and reopened (by
//! name, identity checked) when written to again.

pub mod glob;
pub mod lines;
pub mod source;

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};

use slab::Slab;

use crate::config::{NameMatcher, StartAt, StreamConfig};
use crate::entry::Stamp;
use lines::{LineSink, LineSplitter};
use source::{
    FileId, Fingerprint, Phase, ReadState, Rotation, Source, StopSink, file_id, mtime, open_regular,
};

pub use source::FINGERPRINT_BYTES;

/// A name whose file has been gone this long is forgotten (until then, a file created
/// under it again is announced as a rotation).
pub const FORGET_AFTER_MS: u64 = 60_000;

/// Where entries go: the stream (ring and history), or a test's vector.
pub trait EntrySink {
    /// A line of file `src`, starting at byte `start`.
    fn line(&mut self, src: SourceRef, start: u64, line: &[u8], source_json: &[u8], stamp: &Stamp);
    /// Something logwisp says about a file (a rotation).
    fn notice(&mut self, source_json: &[u8], message: &str, stamp: &Stamp);
}

/// A file's bytes as they are in one epoch (history points at these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceRef {
    pub key: u32,
    pub epoch: u32,
}

impl SourceRef {
    /// Refers to no file (bytes a restarted tailer does not have).
    pub const NOWHERE: SourceRef = SourceRef {
        key: u32::MAX,
        epoch: u32::MAX,
    };
}

/// How much one turn of the reactor may read for one stream: bytes (fairness between
/// streams and clients) and entries (pacing: no further ahead than the clients take).
#[derive(Debug, Clone, Copy)]
pub struct ReadBudget {
    bytes: usize,
    entries: usize,
}

impl ReadBudget {
    pub fn new(bytes: usize, entries: usize) -> ReadBudget {
        ReadBudget { bytes, entries }
    }

    pub fn exhausted(&self) -> bool {
        self.bytes == 0 || self.entries == 0
    }

    pub fn entries_left(&self) -> usize {
        self.entries
    }

    pub fn bytes_left(&self) -> usize {
        self.bytes
    }

    /// One entry was produced (by a source other than the files).
    pub fn take_entry(&mut self) {
        self.entries = self.entries.saturating_sub(1);
    }

    /// `n` bytes were read (by a source other than the files).
    pub fn take_bytes(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_sub(n);
    }
}

/// Adds and removes inotify watches on behalf of a monitor. Tokens identify a watch to
/// [`unwatch`](Self::unwatch); events reach the monitor as [`Monitor::on_dir_event`]
/// (target index) and [`Monitor::on_file_event`] (source key).
pub trait Watcher {
    fn watch_dir(&mut self, dir: &Path, target: usize) -> io::Result<u64>;
    fn watch_file(&mut self, file: &File, source: usize) -> io::Result<u64>;
    fn unwatch(&mut self, token: u64, owner: WatchOwner);
}

/// What a watch serves in one monitor: a target's directory or a source's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchOwner {
    Dir(usize),
    File(usize),
}

/// What an inotify event said about a name in a watched directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Written to (and nothing else).
    Written,
    /// Created, moved in, deleted, moved away or its attributes changed.
    Touched,
}

/// A file's position saved by an earlier run (SPEC §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub id: FileId,
    pub fingerprint: Fingerprint,
    /// Start of the first line not yet delivered.
    pub offset: u64,
    pub path: PathBuf,
}

/// What an earlier run left: where each file was, and when that was saved.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    pub checkpoints: Vec<Checkpoint>,
    /// Journal cursors (read by the stream's journal targets, not by the monitor).
    pub journals: Vec<crate::journal::SavedCursor>,
    /// Unix seconds of the save; files modified later and not checkpointed are read whole.
    pub saved_at: i64,
}

/// Problems and work, counted for `/status` and `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TailCounters {
    pub lines: u64,
    pub bytes: u64,
    pub rotations: u64,
    pub truncated_lines: u64,
    pub read_errors: u64,
    pub watch_errors: u64,
    pub skipped_files: u64,
    /// Descriptors closed to stay within the budget.
    pub descriptor_evictions: u64,
}

#[derive(Debug)]
pub struct Target {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub matcher: NameMatcher,
    pub start_at: StartAt,
    pub watch: Option<u64>,
    /// inotify cannot be trusted here (network or FUSE file system, no watch, no
    /// directory yet): checked every `check_interval_ms`.
    pub polled: bool,
    pub dir_exists: bool,
    /// Said once that it does not exist or matches nothing yet.
    announced_empty: bool,
    needs_scan: bool,
    by_name: HashMap<Box<str>, usize>,
    pub last_error: Option<String>,
}

/// A matching name in a target's directory.
#[derive(Debug)]
pub struct Name {
    pub target: usize,
    pub base: Box<str>,
    pub source: Option<usize>,
    /// Reached through a symlink (entries prefer the real file's name).
    pub is_link: bool,
    queued: bool,
    /// Something other than a write happened: stat the name before reading.
    verify: bool,
    pub rotations: u64,
    /// A file was here before: the next one is a rotation.
    had_file: bool,
    /// The file this name reached before it went away (renamed, deleted), while it may
    /// still hold lines: read to its end before the next file at the name.
    previous: Option<(usize, FileId)>,
    pub gone_since: Option<u64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Work {
    Name(usize),
    Source(usize),
}

/// Open descriptors within a budget; the least recently used idle one is closed first.
#[derive(Debug)]
struct FdBudget {
    max_open: usize,
    open: usize,
    clock: u64,
    lru: VecDeque<(usize, u64)>,
}

#[derive(Debug)]
pub struct Monitor {
    pub stream: String,
    pub targets: Vec<Target>,
    pub names: Slab<Name>,
    pub sources: Slab<Source>,
    by_id: HashMap<FileId, usize>,
    queue: VecDeque<Work>,
    max_line: usize,
    pub rotate_wait_ms: u64,
    pub check_interval_ms: u64,
    started: bool,
    resume: Option<Resume>,
    fds: FdBudget,
    /// Tick of the next periodic check, while any target needs one.
    next_poll: Option<u64>,
    /// Sources that were retired (some may have moved on since): the timers' view of the
    /// files, so a wake-up costs the retired few, not every file followed.
    retired: Vec<usize>,
    /// Average bytes per line, to size reads to the entries the budget allows.
    avg_line: usize,
    /// Positions moved since the state was last saved.
    pub checkpoint_dirty: bool,
    pub counters: TailCounters,
}

/// A problem with a stream's files, for logwisp's log.
pub fn report(stream: &str, what: &str) {
    crate::log::warn(stream, what);
}

/// A problem that went away.
fn recovered(stream: &str, what: &str) {
    crate::log::info(stream, what);
}

enum PathState {
    File(Metadata),
    Missing,
    Other(Metadata),
}

fn stat_path(path: &Path) -> io::Result<PathState> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(PathState::File(m)),
        Ok(m) => Ok(PathState::Other(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(PathState::Missing),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(PathState::Missing),
        Err(e) => Err(e),
    }
}

/// Whether `file` still starts with the bytes `fp` was taken of (an unknown fingerprint
/// matches nothing).
fn fingerprint_matches(file: &File, fp: Fingerprint) -> bool {
    fp.len > 0 && Fingerprint::read(file, fp.len as usize).ok().flatten() == Some(fp)
}

/// Whether `file` is the one a checkpoint was taken of, as far as its first bytes tell
/// (a checkpoint of an empty file has nothing to compare).
fn checkpoint_matches(file: &File, cp: &Checkpoint) -> bool {
    cp.fingerprint.len == 0 || fingerprint_matches(file, cp.fingerprint)
}

/// Whether the source's file still has a name somewhere (not deleted).
fn linked(s: &Source) -> bool {
    s.file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .is_some_and(|m| m.nlink() > 0)
}

/// File systems whose changes inotify does not report (changes made by other hosts).
fn inotify_blind(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call and `st` is
    // a zeroed, properly sized statfs struct that the kernel only writes into.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    const BLIND: &[i64] = &[
        0x6969,                // NFS
        0x517B,                // SMB
        0xFF53_4D42,           // CIFS
        0xFE53_4D42,           // SMB2
        0x6573_5546,           // FUSE
        0x00C3_6400,           // Ceph
        0x0102_1997,           // 9P
        0x5346_414F,           // AFS
        0x7375_7245,           // Coda
        0x0116_1970,           // GFS2
        0x7461_636F,           // OCFS2
        0x0BD0_0BD0,           // Lustre
        0x786F_4256,           // VirtualBox shared folders
        0x564C,                // NCP
        0x0000_0000_7366_746E, // Samba (legacy)
    ];
    BLIND.contains(&(st.f_type as i64))
}

impl FdBudget {
    /// Closes least recently used descriptors of idle named or finished sources until one
    /// more may be opened. Retired sources cannot be reopened by name, so they stay.
    fn make_room(&mut self, sources: &mut Slab<Source>, counters: &mut TailCounters) {
        while self.open >= self.max_open {
            let Some((k, stamp)) = self.lru.pop_front() else {
                return;
            };
            let Some(s) = sources.get_mut(k) else {
                continue;
            };
            if s.lru != stamp || s.file.is_none() || matches!(s.phase, Phase::Retired { .. }) {
                continue;
            }
            s.file = None;
            self.open -= 1;
            counters.descriptor_evictions += 1;
        }
    }

    fn touch(&mut self, s: &mut Source, key: usize) {
        self.clock += 1;
        s.lru = self.clock;
        self.lru.push_back((key, self.clock));
        if self.lru.len() > 2 * self.open + 64 {
            // Stale entries (used again since) pile up; keep only each source's latest.
            self.lru.retain(|&(_, stamp)| stamp != 0);
            let mut seen = std::collections::HashSet::new();
            let mut kept: VecDeque<(usize, u64)> = VecDeque::with_capacity(self.open + 8);
            for &(k, stamp) in self.lru.iter().rev() {
                if seen.insert(k) {
                    kept.push_front((k, stamp));
                }
            }
            self.lru = kept;
        }
    }
}

/// What one reading pass works with.
struct Pass<'a, S> {
    now: u64,
    buf: &'a mut [u8],
    budget: &'a mut ReadBudget,
    stamp: Stamp,
    sink: &'a mut S,
    watcher: &'a mut dyn Watcher,
}

/// Turns what a splitter delivers into entries of one source, within the budget.
struct Lines<'p, S: EntrySink> {
    src: SourceRef,
    source_json: &'p [u8],
    stamp: &'p Stamp,
    sink: &'p mut S,
    budget: &'p mut ReadBudget,
    avg_line: usize,
    entries: u64,
    cut: u64,
    bytes: u64,
}

impl<S: EntrySink> LineSink for Lines<'_, S> {
    fn line(&mut self, line: &[u8], cut: bool, start: u64) -> bool {
        self.sink
            .line(self.src, start, line, self.source_json, self.stamp);
        self.entries += 1;
        self.cut += u64::from(cut);
        self.bytes += line.len() as u64 + 1;
        self.budget.entries = self.budget.entries.saturating_sub(1);
        self.budget.entries > 0
    }
}

impl<S: EntrySink> StopSink for Lines<'_, S> {
    fn stopped(&self) -> bool {
        self.budget.exhausted()
    }

    fn read_hint(&self) -> usize {
        // Enough for the entries still allowed with a little to spare: what a read takes
        // beyond them is copied out of the page cache again next turn (at 1.5× the
        // average, a third of all bytes read were read twice). Lines longer than the
        // average only cost a second, smaller read.
        self.budget
            .entries
            .saturating_mul(self.avg_line + self.avg_line / 8 + 16)
            .max(4096)
    }
}

impl Monitor {
    pub fn new(cfg: &StreamConfig, max_open_files: usize) -> Monitor {
        let targets = cfg
            .targets
            .iter()
            .map(|t| Target {
                path: t.path.clone(),
                dir: t.dir.clone(),
                matcher: t.matcher.clone(),
                start_at: t.start_at,
                watch: None,
                polled: true,
                dir_exists: false,
                announced_empty: false,
                needs_scan: true,
                by_name: HashMap::new(),
                last_error: None,
            })
            .collect();
        Monitor {
            stream: cfg.name.clone(),
            targets,
            names: Slab::new(),
            sources: Slab::new(),
            by_id: HashMap::new(),
            queue: VecDeque::new(),
            max_line: cfg.max_line_bytes,
            rotate_wait_ms: cfg.rotate_wait_ms,
            check_interval_ms: cfg.check_interval_ms,
            started: false,
            resume: None,
            fds: FdBudget {
                max_open: max_open_files.max(1),
                open: 0,
                clock: 0,
                lru: VecDeque::new(),
            },
            next_poll: None,
            retired: Vec::new(),
            avg_line: 128,
            checkpoint_dirty: false,
            counters: TailCounters::default(),
        }
    }

    /// Watches, discovers and positions everything that exists now: per its checkpoint
    /// when an earlier run left one, else per `start_at` (existing content is not
    /// replayed). Files renamed away while logwisp was down are found by identity and
    /// their rest read. Nothing is read here; the first [`poll`](Self::poll) does it.
    pub fn start(&mut self, watcher: &mut dyn Watcher, now: u64, resume: Option<Resume>) {
        self.resume = resume;
        for t in 0..self.targets.len() {
            self.scan_target(t, watcher, now);
        }
        let mut no_budget = ReadBudget::new(0, 0);
        let mut sink = NullSink;
        let mut pass = Pass {
            now,
            buf: &mut [],
            budget: &mut no_budget,
            stamp: Stamp::from_micros(0),
            sink: &mut sink,
            watcher,
        };
        while let Some(work) = self.queue.pop_front() {
            match work {
                Work::Name(n) => {
                    if let Some(name) = self.names.get_mut(n) {
                        name.queued = false;
                        self.check_name(n, &mut pass);
                    }
                }
                Work::Source(k) => {
                    if let Some(s) = self.sources.get_mut(k) {
                        s.queued = false;
                    }
                }
            }
        }
        self.resume_renamed_away(&mut pass);
        self.started = true;
        self.resume = None;
        // Read whatever the checkpoints left unread, and anything written meanwhile.
        for k in 0..self.sources.capacity() {
            if self.sources.contains(k) {
                self.queue_source(k);
            }
        }
        for t in 0..self.targets.len() {
            self.announce_if_empty(t);
        }
        self.plan_polling(now);
    }

    /// Checkpointed files that no watched name holds any more (rotated while logwisp was
    /// down): found by inode in their target's directory and read to their end.
    fn resume_renamed_away(&mut self, pass: &mut Pass<NullSink>) {
        let Some(resume) = self.resume.take() else {
            return;
        };
        for cp in &resume.checkpoints {
            if self.by_id.contains_key(&cp.id) {
                continue;
            }
            let Some((file, path)) = self.find_by_inode(cp.id) else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            if !checkpoint_matches(&file, cp) || meta.len() < cp.offset {
                continue;
            }
            let mut s = Source::new(cp.id, path, cp.offset, self.max_line);
            s.fingerprint = cp.fingerprint;
            s.last_size = meta.len();
            s.last_mtime = mtime(&meta);
            s.phase = Phase::Retired { since: pass.now };
            let k = self.sources.insert(s);
            self.note_retired(k);
            self.by_id.insert(cp.id, k);
            self.adopt_descriptor(k, file);
            self.update_inode_watch(k, pass.watcher);
        }
        self.resume = Some(resume);
    }

    /// An inotify event for a name in target `t`'s directory.
    pub fn on_dir_event(&mut self, t: usize, name: &OsStr, change: Change, now: u64) {
        let Some(target) = self.targets.get(t) else {
            return;
        };
        let Some(name) = name.to_str() else { return };
        if let Some(&n) = target.by_name.get(name) {
            let entry = &mut self.names[n];
            if change != Change::Written {
                entry.verify = true;
            }
            self.queue_name(n);
            return;
        }
        if !target.matcher.matches(name) {
            return;
        }
        let n = self.add_name(t, name);
        self.names[n].gone_since = Some(now);
        self.queue_name(n);
    }

    /// An inotify event on a file watched directly (retired, or reached through links).
    pub fn on_file_event(&mut self, source: usize) {
        if self.sources.contains(source) {
            self.queue_source(source);
        }
    }

    /// The watch on source `k`'s file is gone (the kernel dropped it).
    pub fn file_watch_gone(&mut self, k: usize) {
        if let Some(s) = self.sources.get_mut(k) {
            s.inode_watch = None;
        }
    }

    /// Target `t`'s directory watch is gone (the directory was deleted or moved).
    pub fn dir_unwatched(&mut self, t: usize) {
        let Some(target) = self.targets.get_mut(t) else {
            return;
        };
        target.watch = None;
        target.polled = true;
        target.needs_scan = true;
        let names: Vec<usize> = target.by_name.values().copied().collect();
        for n in names {
            self.names[n].verify = true;
            self.queue_name(n);
        }
    }

    /// Look at everything again: inotify lost events (queue overflow) or a rescan was asked.
    pub fn rescan_all(&mut self) {
        for t in &mut self.targets {
            t.needs_scan = true;
        }
        let names: Vec<usize> = self.names.iter().map(|(n, _)| n).collect();
        for n in names {
            self.names[n].verify = true;
            self.queue_name(n);
        }
        let sources: Vec<usize> = self.sources.iter().map(|(k, _)| k).collect();
        for k in sources {
            self.queue_source(k);
        }
    }

    /// Something is waiting to be read or scanned.
    pub fn has_work(&self) -> bool {
        !self.queue.is_empty() || self.targets.iter().any(|t| t.needs_scan)
    }

    /// The earliest tick at which the monitor wants [`wake`](Self::wake) called: a
    /// periodic check of targets inotify cannot see, or a retired file's grace ending.
    /// `None` when idle on local file systems.
    pub fn next_wakeup(&self) -> Option<u64> {
        let retired = self.retired.iter().filter_map(|&k| self.grace_end(k)).min();
        match (retired, self.next_poll) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs due periodic checks and ends the grace of quiet retired files.
    pub fn wake(&mut self, now: u64) {
        if self.next_poll.is_some_and(|t| t <= now) {
            for t in 0..self.targets.len() {
                if self.targets[t].polled {
                    self.targets[t].needs_scan = true;
                    let names: Vec<usize> = self.targets[t].by_name.values().copied().collect();
                    for n in names {
                        self.names[n].verify = true;
                        self.queue_name(n);
                    }
                }
            }
            self.next_poll = None;
            self.plan_polling(now);
        }
        self.prune_retired();
        let due: Vec<usize> = self
            .retired
            .iter()
            .copied()
            .filter(|&k| self.grace_end(k).is_some_and(|end| end <= now))
            .collect();
        for k in due {
            // One last read (in `poll`), then it is finished there.
            self.queue_source(k);
        }
    }

    /// When the grace of retired source `k` ends (`None`: it is not retired).
    fn grace_end(&self, k: usize) -> Option<u64> {
        let s = self.sources.get(k)?;
        match s.phase {
            Phase::Retired { since } => {
                Some(since.max(s.last_growth).saturating_add(self.rotate_wait_ms))
            }
            _ => None,
        }
    }

    fn note_retired(&mut self, k: usize) {
        if !self.retired.contains(&k) {
            self.retired.push(k);
        }
        if self.retired.len() > 64 {
            self.prune_retired();
        }
    }

    /// Drops sources that are no longer retired (finished, reopened or gone).
    fn prune_retired(&mut self) {
        let mut retired = std::mem::take(&mut self.retired);
        retired.retain(|&k| self.grace_end(k).is_some());
        self.retired = retired;
    }

    fn plan_polling(&mut self, now: u64) {
        if self.next_poll.is_none() && self.targets.iter().any(|t| t.polled) {
            self.next_poll = Some(now + self.check_interval_ms);
        }
    }

    /// Forgets names whose file has been gone for [`FORGET_AFTER_MS`], and lets go of
    /// finished files that were deleted since (their disk space is freed).
    pub fn sweep(&mut self, now: u64) {
        let deleted: Vec<usize> = self
            .sources
            .iter()
            .filter(|(_, s)| s.phase == Phase::Finished && s.file.is_some() && !linked(s))
            .map(|(k, _)| k)
            .collect();
        for k in deleted {
            self.close_descriptor(k);
        }
        let stale: Vec<usize> = self
            .names
            .iter()
            .filter(|(_, n)| {
                n.source.is_none()
                    && !n.queued
                    && n.gone_since
                        .is_some_and(|g| now.saturating_sub(g) >= FORGET_AFTER_MS)
                    && !matches!(self.targets[n.target].matcher, NameMatcher::Exact(_))
            })
            .map(|(k, _)| k)
            .collect();
        for n in stale {
            let name = self.names.remove(n);
            self.targets[name.target].by_name.remove(&name.base);
        }
    }

    /// Files followed now (named).
    pub fn active_watchers(&self) -> usize {
        self.sources
            .iter()
            .filter(|(_, s)| s.phase == Phase::Named)
            .count()
    }

    /// Open descriptors.
    pub fn open_files(&self) -> usize {
        self.fds.open
    }

    fn queue_name(&mut self, n: usize) {
        let name = &mut self.names[n];
        if !name.queued {
            name.queued = true;
            self.queue.push_back(Work::Name(n));
        }
    }

    fn queue_source(&mut self, k: usize) {
        let s = &mut self.sources[k];
        if !s.queued {
            s.queued = true;
            self.queue.push_back(Work::Source(k));
        }
    }

    fn add_name(&mut self, t: usize, base: &str) -> usize {
        let n = self.names.insert(Name {
            target: t,
            base: base.into(),
            source: None,
            is_link: false,
            queued: false,
            verify: true,
            rotations: 0,
            had_file: false,
            previous: None,
            gone_since: None,
            last_error: None,
        });
        self.targets[t].by_name.insert(base.into(), n);
        n
    }

    pub fn name_path(&self, n: usize) -> PathBuf {
        let name = &self.names[n];
        self.targets[name.target].dir.join(&*name.base)
    }

    fn scan_target(&mut self, t: usize, watcher: &mut dyn Watcher, now: u64) {
        self.targets[t].needs_scan = false;
        let dir = self.targets[t].dir.clone();
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                self.target_error(t, format!("{} is not a directory", dir.display()));
                self.targets[t].dir_exists = false;
                return;
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    self.target_error(t, format!("cannot access {}: {e}", dir.display()));
                } else if self.targets[t].dir_exists {
                    report(
                        &self.stream,
                        &format!("{} was removed; waiting for it", dir.display()),
                    );
                }
                let target = &mut self.targets[t];
                target.dir_exists = false;
                target.polled = true;
                if let Some(w) = target.watch.take() {
                    watcher.unwatch(w, WatchOwner::Dir(t));
                }
                self.plan_polling(now);
                return;
            }
        }
        self.targets[t].dir_exists = true;
        if self.targets[t].watch.is_none() {
            match watcher.watch_dir(&dir, t) {
                Ok(w) => {
                    self.targets[t].watch = Some(w);
                    self.targets[t].polled = inotify_blind(&dir);
                }
                Err(e) => {
                    // Without a watch the periodic check still finds everything, only later.
                    self.counters.watch_errors += 1;
                    self.targets[t].polled = true;
                    self.target_error(t, format!("cannot watch {}: {e}", dir.display()));
                }
            }
        }
        self.plan_polling(now);
        match self.targets[t].matcher.clone() {
            NameMatcher::Exact(name) => {
                let n = match self.targets[t].by_name.get(name.as_str()) {
                    Some(&n) => n,
                    None => self.add_name(t, &name),
                };
                self.names[n].verify = true;
                self.queue_name(n);
            }
            NameMatcher::Glob(_) => {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) => {
                        self.target_error(t, format!("cannot list {}: {e}", dir.display()));
                        return;
                    }
                };
                for entry in entries.flatten() {
                    if let Some(name) = entry.file_name().to_str()
                        && self.targets[t].matcher.matches(name)
                    {
                        let n = match self.targets[t].by_name.get(name) {
                            Some(&n) => n,
                            None => self.add_name(t, name),
                        };
                        self.names[n].verify = true;
                        self.queue_name(n);
                    }
                }
                // Names that were not listed may be gone: look at them too.
                let known: Vec<usize> = self.targets[t].by_name.values().copied().collect();
                for n in known {
                    self.names[n].verify = true;
                    self.queue_name(n);
                }
            }
        }
        if self.targets[t].last_error.take().is_some() {
            recovered(
                &self.stream,
                &format!("{} is accessible again", dir.display()),
            );
        }
    }

    /// Says once, at startup, that a target's directory is missing or holds no matching
    /// file yet (it is still waited for).
    fn announce_if_empty(&mut self, t: usize) {
        let target = &self.targets[t];
        if target.announced_empty {
            return;
        }
        let what = match &target.matcher {
            NameMatcher::Exact(_) => target.path.display().to_string(),
            NameMatcher::Glob(g) => format!("{} (pattern {g})", target.dir.display()),
        };
        let message = if !target.dir_exists {
            format!(
                "{} does not exist yet; waiting for it",
                target.dir.display()
            )
        } else if !target
            .by_name
            .values()
            .any(|&n| self.names[n].source.is_some())
        {
            format!("no file matches {what} yet; waiting for one")
        } else {
            return;
        };
        self.targets[t].announced_empty = true;
        report(&self.stream, &message);
    }

    fn target_error(&mut self, t: usize, message: String) {
        if self.targets[t].last_error.as_deref() != Some(message.as_str()) {
            report(&self.stream, &message);
        }
        self.targets[t].last_error = Some(message);
    }

    /// Records a problem with a name; true (and reported) the first time it is seen.
    fn name_error(&mut self, n: usize, message: String) -> bool {
        let new = self.names[n].last_error.as_deref() != Some(message.as_str());
        if new {
            report(&self.stream, &message);
        }
        self.names[n].last_error = Some(message);
        new
    }

    fn source_error(&mut self, k: usize, message: String) {
        self.counters.read_errors += 1;
        if self.sources[k].set_error(message.clone()) {
            report(&self.stream, &message);
        }
    }

    /// Reads queued sources (and checks queued names, rescans flagged directories) within
    /// `budget`. Returns true when work is left for the next turn.
    pub fn poll<S: EntrySink>(
        &mut self,
        watcher: &mut dyn Watcher,
        now: u64,
        buf: &mut [u8],
        budget: &mut ReadBudget,
        stamp: Stamp,
        sink: &mut S,
    ) -> bool {
        for t in 0..self.targets.len() {
            if self.targets[t].needs_scan {
                self.scan_target(t, watcher, now);
            }
        }
        let mut pass = Pass {
            now,
            buf,
            budget,
            stamp,
            sink,
            watcher,
        };
        while let Some(work) = self.queue.pop_front() {
            if pass.budget.exhausted() {
                self.queue.push_front(work);
                return true;
            }
            match work {
                Work::Name(n) => {
                    if let Some(name) = self.names.get_mut(n) {
                        name.queued = false;
                        self.check_name(n, &mut pass);
                    }
                }
                Work::Source(k) => {
                    if let Some(s) = self.sources.get_mut(k) {
                        s.queued = false;
                        if self.read_source(k, &mut pass) == ReadState::More {
                            self.queue_source(k);
                        }
                    }
                }
            }
        }
        false
    }

    /// Looks at what a name holds now and follows it: the same file (read on), another file
    /// (a rotation: the old one is read to its end first), or nothing.
    fn check_name<S: EntrySink>(&mut self, n: usize, pass: &mut Pass<S>) {
        let current = self.names[n].source;
        if !self.names[n].verify
            && let Some(k) = current
        {
            // Only written to since the last look: read on.
            if self.read_source(k, pass) == ReadState::More {
                self.queue_source(k);
            }
            return;
        }
        self.names[n].verify = false;
        let path = self.name_path(n);
        let meta = match stat_path(&path) {
            Ok(PathState::File(meta)) => meta,
            Ok(PathState::Missing) => {
                self.name_gone(n, pass);
                return;
            }
            Ok(PathState::Other(meta)) => {
                // A subdirectory matching a glob is simply not a log; anything else at a
                // watched name (a FIFO, a device, a directory where a file should be) is
                // reported once.
                let exact = matches!(
                    self.targets[self.names[n].target].matcher,
                    NameMatcher::Exact(_)
                );
                if (exact || !meta.is_dir())
                    && self.name_error(
                        n,
                        format!("{} {}", path.display(), source::not_regular(&meta)),
                    )
                {
                    self.counters.skipped_files += 1;
                }
                self.name_gone(n, pass);
                return;
            }
            Err(e) => {
                self.name_error(n, format!("cannot stat {}: {e}", path.display()));
                return;
            }
        };
        if self.names[n].last_error.take().is_some() {
            recovered(
                &self.stream,
                &format!("{} is readable again", path.display()),
            );
        }
        self.names[n].gone_since = None;
        let id = file_id(&meta);
        if let Some(k) = current {
            if self.sources[k].id == id {
                if self.read_source(k, pass) == ReadState::More {
                    self.queue_source(k);
                }
                return;
            }
            // Another file under this name: finish reading the old one through the
            // descriptor we hold before anything of the new one.
            if self.read_source(k, pass) == ReadState::More {
                self.names[n].verify = true;
                self.names[n].queued = true;
                self.queue.push_front(Work::Name(n));
                self.queue_source(k);
                return;
            }
            self.detach(n, k, pass);
        }
        // The file that was here went away before this one came (renamed, then a new file
        // created): its writer may have appended since it was last read, and all of that
        // comes before anything of the new file (SPEC §4), however the reads were paced.
        if let Some((k, old_id)) = self.names[n].previous.take()
            && old_id != id
            && self
                .sources
                .get(k)
                .is_some_and(|s| s.id == old_id && matches!(s.phase, Phase::Retired { .. }))
            && self.read_source(k, pass) == ReadState::More
        {
            self.names[n].previous = Some((k, old_id));
            self.names[n].verify = true;
            self.names[n].queued = true;
            self.queue.push_front(Work::Name(n));
            self.queue_source(k);
            return;
        }
        self.attach(n, id, &meta, pass);
    }

    /// The name holds no file (deleted, renamed away, or not a regular file any more).
    fn name_gone<S: EntrySink>(&mut self, n: usize, pass: &mut Pass<S>) {
        if self.names[n].gone_since.is_none() {
            self.names[n].gone_since = Some(pass.now);
        }
        if let Some(k) = self.names[n].source {
            if self.read_source(k, pass) == ReadState::More {
                self.names[n].verify = true;
                self.names[n].queued = true;
                self.queue.push_front(Work::Name(n));
                self.queue_source(k);
                return;
            }
            self.detach(n, k, pass);
        }
    }

    /// Name `n` no longer reaches source `k`. A file that no name reaches any more is
    /// retired: its writer may still append until it reopens, so it is read for
    /// `rotate_wait` after its last growth. A deleted file is finished at once (SPEC §4:
    /// read to its end, then dropped; holding it open would also hide its directory's
    /// removal from inotify), unless it ends in a line the writer has only half written:
    /// that one is waited for, within the same grace, so it is delivered whole.
    fn detach<S: EntrySink>(&mut self, n: usize, k: usize, pass: &mut Pass<S>) {
        self.names[n].source = None;
        self.names[n].previous = Some((k, self.sources[k].id));
        let s = &mut self.sources[k];
        s.names
            .retain(|&(t, ref b)| !(t == self.names[n].target && *b == self.names[n].base));
        if let Some(first) = self.source_primary(k) {
            let path = self.name_path(first);
            let s = &mut self.sources[k];
            s.display = source::display_name(&path);
            s.path = path;
            self.update_inode_watch(k, pass.watcher);
            return;
        }
        let s = &self.sources[k];
        if linked(s) || (s.file.is_some() && s.splitter.pending() > 0) {
            self.sources[k].phase = Phase::Retired { since: pass.now };
            self.note_retired(k);
            self.update_inode_watch(k, pass.watcher);
        } else {
            self.finish(k, pass);
        }
    }

    fn source_primary(&self, k: usize) -> Option<usize> {
        let (t, base) = self.sources[k].names.first()?;
        self.targets[*t].by_name.get(base).copied()
    }

    /// Name `n` now holds the file `id`: one we already follow (renamed into place, a
    /// second link, a retired file moved back) is continued where it was; a new one is
    /// read from its beginning (after startup) or from its start position.
    fn attach<S: EntrySink>(&mut self, n: usize, id: FileId, meta: &Metadata, pass: &mut Pass<S>) {
        let path = self.name_path(n);
        let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        self.names[n].is_link = is_link;
        let name_ref = (self.names[n].target, self.names[n].base.clone());
        if let Some(&k) = self.by_id.get(&id)
            && self.sources[k].phase == Phase::Finished
            && !open_regular(&path)
                .is_ok_and(|(f, _)| fingerprint_matches(&f, self.sources[k].fingerprint))
        {
            // A new file that reuses a finished one's inode number.
            self.by_id.remove(&id);
        }
        if let Some(&k) = self.by_id.get(&id) {
            let prefer = !is_link
                && self
                    .source_primary(k)
                    .is_some_and(|p| self.names[p].is_link);
            let s = &mut self.sources[k];
            if prefer || s.names.is_empty() {
                s.names.insert(0, name_ref);
                s.display = source::display_name(&path);
                s.path = path;
            } else {
                s.names.push(name_ref);
            }
            if s.phase != Phase::Named {
                s.phase = Phase::Named;
            }
            self.names[n].source = Some(k);
            self.names[n].had_file = true;
            self.update_inode_watch(k, pass.watcher);
            self.queue_source(k);
            return;
        }
        let rotated = self.names[n].had_file && self.started;
        let (start, fingerprint, file) = self.start_position(n, id, meta);
        let mut s = Source::new(id, path, start, self.max_line);
        s.names.push(name_ref);
        s.last_size = meta.len();
        s.last_mtime = mtime(meta);
        if let Some(fp) = fingerprint {
            s.fingerprint = fp;
        }
        let k = self.sources.insert(s);
        self.by_id.insert(id, k);
        if let Some(file) = file {
            self.adopt_descriptor(k, file);
        }
        self.names[n].source = Some(k);
        self.names[n].had_file = true;
        if rotated {
            self.rotation(k, Rotation::InodeChange, pass);
        }
        self.update_inode_watch(k, pass.watcher);
        self.queue_source(k);
    }

    /// Where a newly found file starts, with its fingerprint and descriptor when it had to
    /// be opened to tell.
    fn start_position(
        &mut self,
        n: usize,
        id: FileId,
        meta: &Metadata,
    ) -> (u64, Option<Fingerprint>, Option<File>) {
        if self.started {
            return (0, None, None);
        }
        let path = self.name_path(n);
        let opened = open_regular(&path).ok().filter(|(_, m)| file_id(m) == id);
        if let Some(resume) = &self.resume {
            if let Some(cp) = resume.checkpoints.iter().find(|c| c.id == id)
                && let Some((file, m)) = &opened
                && m.len() >= cp.offset
                && checkpoint_matches(file, cp)
            {
                let (file, _) = opened.expect("checked above");
                return (cp.offset, Some(cp.fingerprint), Some(file));
            }
            // Not followed last time and written since it stopped: new content.
            if meta.mtime() > resume.saved_at {
                return (0, None, opened.map(|(f, _)| f));
            }
        }
        match self.targets[self.names[n].target].start_at {
            StartAt::Beginning => (0, None, opened.map(|(f, _)| f)),
            StartAt::End => match opened {
                Some((file, m)) => {
                    let at = source::start_of_last_partial_line(&file, m.len(), self.max_line);
                    // What is there now is known content: a truncate-and-refill before
                    // the first new line must be told from growth.
                    let fingerprint =
                        Fingerprint::read(&file, (at as usize).min(FINGERPRINT_BYTES))
                            .ok()
                            .flatten();
                    (at, fingerprint, Some(file))
                }
                // Unreadable for now: it starts where it ends now once it can be read.
                None => (meta.len(), None, None),
            },
        }
    }

    /// Takes an already open descriptor into the budget.
    fn adopt_descriptor(&mut self, k: usize, file: File) {
        self.fds.make_room(&mut self.sources, &mut self.counters);
        let s = &mut self.sources[k];
        s.file = Some(file);
        self.fds.open += 1;
        self.fds.touch(s, k);
    }

    /// Opens source `k` if it is closed: through its path, checking it is still the same
    /// file. False when it cannot be read now.
    fn ensure_open(&mut self, k: usize) -> bool {
        if self.sources[k].file.is_some() {
            let s = &mut self.sources[k];
            self.fds.touch(s, k);
            return true;
        }
        self.fds.make_room(&mut self.sources, &mut self.counters);
        let path = self.sources[k].path.clone();
        match open_regular(&path) {
            Ok((file, meta)) if file_id(&meta) == self.sources[k].id => {
                let s = &self.sources[k];
                if s.phase == Phase::Finished && !fingerprint_matches(&file, s.fingerprint) {
                    // Another file under a reused inode number: the one history points
                    // into is gone.
                    self.sources[k].epoch += 1;
                    if self.by_id.get(&self.sources[k].id) == Some(&k) {
                        self.by_id.remove(&self.sources[k].id);
                    }
                    return false;
                }
                self.adopt_descriptor(k, file);
                true
            }
            Ok(_) => {
                // The path now holds another file: this one was renamed while its
                // descriptor was closed. Find it by inode to finish reading it; its names
                // will find out about the new file.
                if self.sources[k].phase != Phase::Finished
                    && let Some((file, path)) = self.find_by_inode(self.sources[k].id)
                {
                    self.sources[k].path = path;
                    self.adopt_descriptor(k, file);
                    return true;
                }
                let names: Vec<source::NameRef> = self.sources[k].names.clone();
                for (t, base) in names {
                    if let Some(&n) = self.targets[t].by_name.get(&base) {
                        self.names[n].verify = true;
                        self.queue_name(n);
                    }
                }
                false
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                let message = format!("cannot read {}: {e}", path.display());
                self.source_error(k, message);
                false
            }
        }
    }

    /// The file `id`, wherever it is in the watched directories now.
    fn find_by_inode(&self, id: FileId) -> Option<(File, PathBuf)> {
        self.targets.iter().find_map(|t| {
            let entries = std::fs::read_dir(&t.dir).ok()?;
            entries.flatten().find_map(|e| {
                if e.ino() != id.1 {
                    return None;
                }
                let path = e.path();
                let (file, meta) = open_regular(&path).ok()?;
                (file_id(&meta) == id).then_some((file, path))
            })
        })
    }

    fn close_descriptor(&mut self, k: usize) {
        if self.sources[k].file.take().is_some() {
            self.fds.open -= 1;
        }
    }

    /// Watches the file itself while directory events cannot tell us it is written: it
    /// is retired (renamed out of sight) or every name reaching it is a symlink.
    fn update_inode_watch(&mut self, k: usize, watcher: &mut dyn Watcher) {
        let s = &self.sources[k];
        let want = match s.phase {
            Phase::Retired { .. } => true,
            Phase::Finished => false,
            Phase::Named => s.names.iter().all(|(t, base)| {
                self.targets[*t]
                    .by_name
                    .get(base)
                    .is_some_and(|&n| self.names[n].is_link)
            }),
        };
        if want && s.inode_watch.is_none() {
            if !self.ensure_open(k) {
                return;
            }
            let Some(file) = self.sources[k].file.as_ref() else {
                return;
            };
            match watcher.watch_file(file, k) {
                Ok(w) => self.sources[k].inode_watch = Some(w),
                Err(_) => {
                    // Checked at the poll interval instead.
                    self.counters.watch_errors += 1;
                    for t in &mut self.targets {
                        t.polled = true;
                    }
                }
            }
        } else if !want && let Some(w) = self.sources[k].inode_watch.take() {
            watcher.unwatch(w, WatchOwner::File(k));
        }
    }

    /// A file with the same identity has been rewritten (truncated, replaced content):
    /// what was held of an unfinished line is delivered, the notice emitted, and reading
    /// starts again at 0.
    fn restart_source<S: EntrySink>(&mut self, k: usize, kind: Rotation, pass: &mut Pass<S>) {
        self.flush_partial(k, pass);
        let s = &mut self.sources[k];
        s.epoch += 1;
        s.splitter.restart_at(0);
        s.fingerprint = Fingerprint::default();
        self.rotation(k, kind, pass);
    }

    /// Emits `Log rotation detected (#N): <reason>` for source `k`'s primary name.
    fn rotation<S: EntrySink>(&mut self, k: usize, kind: Rotation, pass: &mut Pass<S>) {
        self.counters.rotations += 1;
        let count = match self.source_primary(k) {
            Some(n) => {
                self.names[n].rotations += 1;
                self.names[n].rotations
            }
            None => self.counters.rotations,
        };
        let message = format!("Log rotation detected (#{count}): {}", kind.reason());
        pass.sink
            .notice(&self.sources[k].display, &message, &pass.stamp);
        self.checkpoint_dirty = true;
    }

    /// Delivers the unfinished last line a source holds (its file is done with).
    fn flush_partial<S: EntrySink>(&mut self, k: usize, pass: &mut Pass<S>) {
        let s = &mut self.sources[k];
        let src = SourceRef {
            key: k as u32,
            epoch: s.epoch,
        };
        let mut lines = Lines {
            src,
            source_json: &s.display,
            stamp: &pass.stamp,
            sink: pass.sink,
            budget: &mut ReadBudget::new(usize::MAX, usize::MAX),
            avg_line: self.avg_line,
            entries: 0,
            cut: 0,
            bytes: 0,
        };
        s.splitter.flush(&mut lines);
        let (entries, cut) = (lines.entries, lines.cut);
        s.entries_read += entries;
        s.truncated_lines += cut;
        self.counters.lines += entries;
        self.counters.truncated_lines += cut;
    }

    /// Done with source `k`: its last partial line is delivered and its descriptor closed;
    /// it stays known only while history refers to it.
    fn finish<S: EntrySink>(&mut self, k: usize, pass: &mut Pass<S>) {
        self.flush_partial(k, pass);
        let s = &mut self.sources[k];
        s.phase = Phase::Finished;
        if let Some(w) = s.inode_watch.take() {
            pass.watcher.unwatch(w, WatchOwner::File(k));
        }
        // A renamed-away file stays readable for clients catching up from disk while
        // history points into it (its descriptor yields to the budget like any idle one).
        let still_linked = linked(s);
        if s.history_refs == 0 || !still_linked {
            self.close_descriptor(k);
        }
        if !still_linked {
            // Its inode number may be given to the next file created.
            let id = self.sources[k].id;
            if self.by_id.get(&id) == Some(&k) {
                self.by_id.remove(&id);
            }
        }
        self.checkpoint_dirty = true;
        self.drop_if_unused(k);
    }

    fn drop_if_unused(&mut self, k: usize) {
        let s = &self.sources[k];
        if s.phase == Phase::Finished && s.history_refs == 0 && !s.queued {
            let id = s.id;
            self.close_descriptor(k);
            self.sources.remove(k);
            if self.by_id.get(&id) == Some(&k) {
                self.by_id.remove(&id);
            }
        }
    }

    /// History holds one more (or one less) run of source `key`.
    /// The identity of the file `src` refers to, while its bytes are still those.
    pub fn file_identity(&self, src: SourceRef) -> Option<FileId> {
        let s = self.sources.get(src.key as usize)?;
        (s.epoch == src.epoch).then_some(s.id)
    }

    /// This tailer's reference to the file with identity `id`, if it follows it.
    pub fn reference_to(&self, id: FileId) -> Option<SourceRef> {
        let k = *self.by_id.get(&id)?;
        Some(SourceRef {
            key: k as u32,
            epoch: self.sources[k].epoch,
        })
    }

    pub fn history_ref(&mut self, key: u32, delta: i32) {
        let k = key as usize;
        if let Some(s) = self.sources.get_mut(k) {
            s.history_refs = s.history_refs.saturating_add_signed(delta);
            if delta < 0 {
                self.drop_if_unused(k);
            }
        }
    }

    /// Reads source `k` from where it was until EOF or the budget, after checking that its
    /// bytes are still the ones read (not truncated, not replaced).
    fn read_source<S: EntrySink>(&mut self, k: usize, pass: &mut Pass<S>) -> ReadState {
        if self.sources[k].phase == Phase::Finished {
            self.drop_if_unused(k);
            return ReadState::Eof;
        }
        if !self.ensure_open(k) {
            return ReadState::Eof;
        }
        let meta = match self.sources[k].file.as_ref().map(File::metadata) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                let message = format!("cannot read {}: {e}", self.sources[k].path.display());
                self.source_error(k, message);
                return ReadState::Eof;
            }
            None => return ReadState::Eof,
        };
        let s = &self.sources[k];
        if let Some(kind) = source::classify(
            s.position(),
            s.last_size,
            s.last_mtime,
            meta.len(),
            mtime(&meta),
        ) {
            self.restart_source(k, kind, pass);
        } else if s.fingerprint.len > 0 && meta.len() >= s.position() {
            let file = s.file.as_ref().expect("opened above");
            let now_fp = Fingerprint::read(file, s.fingerprint.len as usize)
                .ok()
                .flatten();
            if now_fp != Some(s.fingerprint) {
                self.restart_source(k, Rotation::ContentChange, pass);
            }
        }
        let s = &mut self.sources[k];
        s.last_size = meta.len();
        s.last_mtime = mtime(&meta);
        let before = s.position();
        let state = self.read_lines_of(k, pass);
        let s = &mut self.sources[k];
        let after = s.position();
        if after != before {
            s.last_growth = pass.now;
            s.last_size = s.last_size.max(after);
            self.checkpoint_dirty = true;
            if s.fingerprint.len < FINGERPRINT_BYTES as u32
                && let Some(file) = s.file.as_ref()
                && let Ok(Some(fp)) =
                    Fingerprint::read(file, (after as usize).min(FINGERPRINT_BYTES))
            {
                s.fingerprint = fp;
            }
        }
        if state == ReadState::Eof
            && let Phase::Retired { since } = s.phase
            && (since.max(s.last_growth).saturating_add(self.rotate_wait_ms) <= pass.now
                || (s.splitter.pending() == 0 && !linked(s)))
        {
            // Its grace is over, or it is a deleted file whose last line has now ended.
            self.finish(k, pass);
        }
        state
    }

    fn read_lines_of<S: EntrySink>(&mut self, k: usize, pass: &mut Pass<S>) -> ReadState {
        let s = &mut self.sources[k];
        let Some(file) = s.file.as_ref() else {
            return ReadState::Eof;
        };
        let mut lines = Lines {
            src: SourceRef {
                key: k as u32,
                epoch: s.epoch,
            },
            source_json: &s.display,
            stamp: &pass.stamp,
            sink: pass.sink,
            budget: pass.budget,
            avg_line: self.avg_line,
            entries: 0,
            cut: 0,
            bytes: 0,
        };
        let max_bytes = lines.budget.bytes;
        let result = source::read_lines(file, &mut s.splitter, pass.buf, max_bytes, &mut lines);
        let (entries, cut, bytes) = (lines.entries, lines.cut, lines.bytes);
        s.entries_read += entries;
        s.truncated_lines += cut;
        self.counters.lines += entries;
        self.counters.truncated_lines += cut;
        if let Some(avg) = bytes.checked_div(entries) {
            self.avg_line = (self.avg_line * 3 + avg as usize) / 4;
        }
        match result {
            Ok((state, consumed)) => {
                self.counters.bytes += consumed as u64;
                pass.budget.bytes = pass.budget.bytes.saturating_sub(consumed);
                if self.sources[k].last_error.take().is_some() {
                    let path = self.sources[k].path.display().to_string();
                    recovered(&self.stream, &format!("{path} is readable again"));
                }
                state
            }
            Err(e) => {
                let message = format!("cannot read {}: {e}", self.sources[k].path.display());
                self.source_error(k, message);
                ReadState::Eof
            }
        }
    }

    /// Where each followed file is, for the state file.
    pub fn checkpoints(&self) -> Vec<Checkpoint> {
        self.sources
            .iter()
            .filter(|(_, s)| s.phase != Phase::Finished)
            .map(|(_, s)| Checkpoint {
                id: s.id,
                fingerprint: s.fingerprint,
                offset: s.resume_offset(),
                path: s.path.clone(),
            })
            .collect()
    }

    /// Reads source `src` again from `from` (a line start) for a client catching up from
    /// disk: lines go to `each` until it returns false or the file ends. At the end an
    /// unfinished line is delivered when `flush_at_eof` (the tailer delivered it that way
    /// when the file was done with).
    pub fn replay(
        &mut self,
        src: SourceRef,
        from: u64,
        buf: &mut [u8],
        flush_at_eof: bool,
        each: &mut dyn FnMut(&[u8], bool, u64) -> bool,
    ) -> Replay {
        let k = src.key as usize;
        match self.sources.get(k) {
            Some(s) if s.epoch == src.epoch => {}
            _ => return Replay::Gone,
        }
        if !self.ensure_open(k) {
            return Replay::Gone;
        }
        let Some(file) = self.sources[k].file.as_ref() else {
            return Replay::Gone;
        };
        struct Each<'f> {
            f: &'f mut dyn FnMut(&[u8], bool, u64) -> bool,
            stop: bool,
        }
        impl LineSink for Each<'_> {
            fn line(&mut self, line: &[u8], cut: bool, start: u64) -> bool {
                let more = (self.f)(line, cut, start);
                self.stop |= !more;
                more
            }
        }
        impl StopSink for Each<'_> {
            fn stopped(&self) -> bool {
                self.stop
            }
        }
        let mut sink = Each {
            f: each,
            stop: false,
        };
        let mut splitter = LineSplitter::at(self.max_line, from);
        let eof = match source::read_lines(file, &mut splitter, buf, usize::MAX, &mut sink) {
            Ok((state, _)) => state == ReadState::Eof,
            Err(_) => return Replay::Gone,
        };
        if eof && flush_at_eof && !sink.stop {
            splitter.flush(&mut sink);
        }
        Replay::Read {
            next: splitter.line_start(),
            eof,
        }
    }
}

/// Outcome of [`Monitor::replay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// The bytes are gone (file deleted and closed, truncated or rewritten since).
    Gone,
    /// Lines were delivered; `next` is where to go on.
    Read { next: u64, eof: bool },
}

struct NullSink;

impl EntrySink for NullSink {
    fn line(&mut self, _: SourceRef, _: u64, _: &[u8], _: &[u8], _: &Stamp) {}
    fn notice(&mut self, _: &[u8], _: &str, _: &Stamp) {}
}

#[cfg(test)]
mod tests;
