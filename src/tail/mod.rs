//! Tailing: which files belong to a stream, when to look at them, and reading them.
//!
//! inotify (owned by the reactor) watches every target's directory, so creates, renames
//! and deletes are seen as well as writes; its events only mark files dirty. The stream's
//! `check_interval_ms` timer rescans directories and re-checks every file, which catches
//! what inotify cannot see (network file systems, a directory that appears later, a queue
//! overflow). All reading happens in [`Monitor::poll`] under a per-turn budget.

pub mod file;
pub mod glob;
pub mod lines;

use std::ffi::OsStr;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::{NameMatcher, StartAt, StreamConfig};
use crate::entry::Stamp;
use file::{ReadState, StartPos, TailedFile, file_id};

/// A discovered file whose name has vanished is remembered this long (see
/// [`Monitor::poll`]), so that a delete-and-recreate is recognised as a rotation.
pub const FORGET_AFTER_MS: u64 = 60_000;

/// Where entries go: the stream's fan-out buffer, or a test's vector.
pub trait EntrySink {
    fn push_entry(&mut self, write: impl FnOnce(&mut Vec<u8>));
}

/// How much one turn of the reactor may read for one stream: bytes (fairness between
/// streams and clients) and entries (so a client that keeps up never falls further behind
/// than its buffer allows between two flushes).
#[derive(Debug, Clone, Copy)]
pub struct ReadBudget {
    bytes: usize,
    entries: usize,
}

impl ReadBudget {
    pub fn new(bytes: usize, entries: usize) -> ReadBudget {
        ReadBudget {
            bytes: bytes.max(1),
            entries: entries.max(1),
        }
    }

    pub fn exhausted(&self) -> bool {
        self.bytes == 0 || self.entries == 0
    }

    pub fn bytes_left(&self) -> usize {
        self.bytes
    }

    pub fn take_bytes(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_sub(n);
    }

    /// Counts one entry; false once the entry allowance is used up.
    pub fn take_entry(&mut self) -> bool {
        self.entries = self.entries.saturating_sub(1);
        self.entries > 0
    }
}

/// What one reading pass works with: the tick, the scratch buffer, the turn's budget, the
/// time given to plain lines, and where entries go.
pub struct Pass<'a, S> {
    pub now: u64,
    pub buf: &'a mut [u8],
    pub budget: &'a mut ReadBudget,
    pub stamp: Stamp,
    pub sink: &'a mut S,
}

/// Adds inotify watches on behalf of a monitor.
pub trait DirWatcher {
    fn watch(&mut self, dir: &Path, target: usize) -> io::Result<()>;
}

/// What an inotify event said about a name in a watched directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Written to (and nothing else).
    Written,
    /// Created, moved in or its attributes changed.
    Touched,
    /// Deleted or moved away.
    Gone,
}

#[derive(Debug)]
pub struct TargetState {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub matcher: NameMatcher,
    pub start_at: StartAt,
    pub watched: bool,
    /// The directory's mtime at the last listing; unchanged means no new names.
    listed_mtime: Option<(i64, i64)>,
    pub needs_scan: bool,
    pub dir_exists: bool,
    pub last_error: Option<String>,
}

#[derive(Debug)]
pub struct Monitor {
    pub stream: String,
    pub targets: Vec<TargetState>,
    pub files: Vec<TailedFile>,
    max_line: usize,
    /// Set after the startup scan: files found from then on are new and read from 0.
    started: bool,
    /// Round-robin start for the next poll, so one busy file cannot starve the others.
    next_file: usize,
}

enum PathState {
    File(Metadata),
    Missing,
    NotAFile,
}

fn stat_path(path: &Path) -> io::Result<PathState> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(PathState::File(m)),
        Ok(_) => Ok(PathState::NotAFile),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(PathState::Missing),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(PathState::Missing),
        Err(e) => Err(e),
    }
}

/// Prints a diagnostic line on stderr.
pub fn report(stream: &str, what: &str) {
    eprintln!("logwisp: [{stream}] {what}");
}

impl Monitor {
    pub fn new(cfg: &StreamConfig) -> Monitor {
        let targets = cfg
            .targets
            .iter()
            .map(|t| TargetState {
                path: t.path.clone(),
                dir: t.dir.clone(),
                matcher: t.matcher.clone(),
                start_at: t.start_at,
                watched: false,
                listed_mtime: None,
                needs_scan: true,
                dir_exists: false,
                last_error: None,
            })
            .collect();
        Monitor {
            stream: cfg.name.clone(),
            targets,
            files: Vec::new(),
            max_line: cfg.max_line_bytes,
            started: false,
            next_file: 0,
        }
    }

    /// Watches, discovers and opens everything that exists now, positioned per `start_at`,
    /// without reading: existing content is not replayed.
    pub fn start(&mut self, watcher: &mut dyn DirWatcher, now: u64) {
        for t in 0..self.targets.len() {
            self.scan_target(t, watcher);
        }
        let mut no_budget = ReadBudget::new(0, 0);
        let mut pass = Pass {
            now,
            buf: &mut [],
            budget: &mut no_budget,
            stamp: Stamp::now(),
            sink: &mut NullSink,
        };
        for i in 0..self.files.len() {
            match stat_path(&self.files[i].path) {
                Ok(PathState::File(meta)) => {
                    self.open_file(i, &meta, &mut pass);
                }
                // Not there yet: whatever appears under the name later is new content.
                _ => self.files[i].start = StartPos::Beginning,
            }
        }
        self.started = true;
    }

    /// An inotify event for a name in target `t`'s directory.
    pub fn on_event(&mut self, t: usize, name: &OsStr, change: Change) {
        let Some(target) = self.targets.get(t) else {
            return;
        };
        let Some(name) = name.to_str() else { return };
        // A file already followed is found by name, without a glob match or a path
        // allocation: this runs for every write.
        let known = self.files.iter_mut().find(|f| {
            f.path.parent() == Some(target.dir.as_path())
                && f.path.file_name().is_some_and(|n| n == name)
        });
        if let Some(f) = known {
            f.dirty = true;
            if change != Change::Written {
                f.verify = true;
            }
            return;
        }
        if !target.matcher.matches(name) {
            // Possibly the old name of a rotated file (`app.log.1`) whose writer has not
            // reopened yet: look at the files that still hold retired descriptors now
            // rather than at the next periodic check.
            for f in self.files.iter_mut().filter(|f| !f.retired.is_empty()) {
                f.dirty = true;
            }
            return;
        }
        if change != Change::Gone {
            let path = target.dir.join(name);
            self.files
                .push(TailedFile::new(path, t, StartPos::Beginning));
        }
    }

    /// Target `t`'s directory watch is gone (the directory was deleted or moved).
    pub fn unwatched(&mut self, t: usize) {
        if let Some(target) = self.targets.get_mut(t) {
            target.watched = false;
            target.needs_scan = true;
            target.listed_mtime = None;
        }
        for f in self.files.iter_mut().filter(|f| f.target == t) {
            f.dirty = true;
            f.verify = true;
        }
    }

    /// Periodic check: rescan every directory and look at every file.
    pub fn mark_all(&mut self) {
        for t in &mut self.targets {
            t.needs_scan = true;
        }
        for f in &mut self.files {
            f.dirty = true;
            f.verify = true;
        }
    }

    /// Something is waiting to be read or scanned.
    pub fn has_work(&self) -> bool {
        self.targets.iter().any(|t| t.needs_scan) || self.files.iter().any(|f| f.dirty)
    }

    pub fn active_watchers(&self) -> usize {
        self.files
            .iter()
            .filter(|f| f.open.is_some() && !f.alias)
            .count()
    }

    fn discover(&mut self, t: usize, name: &str) {
        let path = self.targets[t].dir.join(name);
        if self.files.iter().any(|f| f.path == path) {
            return;
        }
        let start = if !self.started && self.targets[t].start_at == StartAt::End {
            StartPos::End
        } else {
            StartPos::Beginning
        };
        self.files.push(TailedFile::new(path, t, start));
    }

    fn scan_target(&mut self, t: usize, watcher: &mut dyn DirWatcher) {
        self.targets[t].needs_scan = false;
        let dir = self.targets[t].dir.clone();
        let dir_meta = match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => m,
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
                self.targets[t].dir_exists = false;
                self.targets[t].watched = false;
                return;
            }
        };
        self.targets[t].dir_exists = true;
        if !self.targets[t].watched {
            match watcher.watch(&dir, t) {
                Ok(()) => self.targets[t].watched = true,
                // Without a watch the periodic check still finds everything, only later.
                Err(e) => self.target_error(t, format!("cannot watch {}: {e}", dir.display())),
            }
        }
        match self.targets[t].matcher.clone() {
            NameMatcher::Exact(name) => self.discover(t, &name),
            NameMatcher::Glob(_) => {
                let mtime = (dir_meta.mtime(), dir_meta.mtime_nsec());
                if self.targets[t].listed_mtime == Some(mtime) {
                    return;
                }
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) => {
                        self.target_error(t, format!("cannot list {}: {e}", dir.display()));
                        return;
                    }
                };
                self.targets[t].listed_mtime = Some(mtime);
                for entry in entries.flatten() {
                    if let Some(name) = entry.file_name().to_str()
                        && self.targets[t].matcher.matches(name)
                    {
                        self.discover(t, name);
                    }
                }
            }
        }
        if self.targets[t].last_error.take().is_some() {
            report(
                &self.stream,
                &format!("{} is accessible again", dir.display()),
            );
        }
    }

    fn target_error(&mut self, t: usize, message: String) {
        if self.targets[t].last_error.as_deref() != Some(message.as_str()) {
            report(&self.stream, &message);
        }
        self.targets[t].last_error = Some(message);
    }

    /// Opens file `i`; reports (once) when it cannot be read and remembers where it was to
    /// be started, so a file that becomes readable later loses nothing.
    fn open_file<S: EntrySink>(&mut self, i: usize, meta: &Metadata, pass: &mut Pass<S>) -> bool {
        let max_line = self.max_line;
        let f = &mut self.files[i];
        match f.open_new(max_line, pass) {
            Ok(()) => {
                if f.last_error.take().is_some() {
                    report(
                        &self.stream,
                        &format!("{} is readable again", f.path.display()),
                    );
                }
                true
            }
            Err(e) => {
                if f.start == StartPos::End {
                    f.start = StartPos::At(meta.len());
                }
                self.file_error(
                    i,
                    format!("cannot read {}: {e}", self.files[i].path.display()),
                );
                false
            }
        }
    }

    /// Records a problem with file `i`, reporting it the first time it is seen.
    fn file_error(&mut self, i: usize, message: String) {
        if self.files[i].set_error(message.clone()) {
            report(&self.stream, &message);
        }
    }

    /// Reads dirty files (and rescans flagged directories) within `budget`. Returns true
    /// when work is left for the next turn.
    pub fn poll(
        &mut self,
        watcher: &mut dyn DirWatcher,
        now: u64,
        buf: &mut [u8],
        budget: &mut ReadBudget,
        sink: &mut impl EntrySink,
    ) -> bool {
        for t in 0..self.targets.len() {
            if self.targets[t].needs_scan {
                self.scan_target(t, watcher);
            }
        }
        let mut pass = Pass {
            now,
            buf,
            budget,
            stamp: Stamp::now(),
            sink,
        };
        let n = self.files.len();
        let mut more = false;
        for k in 0..n {
            let i = (self.next_file + k) % n;
            if !self.files[i].dirty {
                continue;
            }
            if pass.budget.exhausted() {
                more = true;
                self.next_file = i;
                break;
            }
            if self.check_file(i, &mut pass) == ReadState::More {
                self.files[i].dirty = true;
                more = true;
            }
        }
        if !more {
            self.next_file = 0;
            self.forget_vanished(now);
        }
        more
    }

    /// Drops discovered files whose path has been gone for [`FORGET_AFTER_MS`] and that
    /// hold nothing more to read. Until then a file recreated under the name counts as a
    /// rotation of it.
    fn forget_vanished(&mut self, now: u64) {
        let targets = &self.targets;
        self.files.retain_mut(|f| {
            let exact = matches!(targets[f.target].matcher, NameMatcher::Exact(_));
            if exact || f.open.is_some() || !f.retired.is_empty() {
                f.gone_since = None;
                return true;
            }
            let since = *f.gone_since.get_or_insert(now);
            now.saturating_sub(since) < FORGET_AFTER_MS
        });
    }

    fn check_file<S: EntrySink>(&mut self, i: usize, pass: &mut Pass<S>) -> ReadState {
        self.files[i].dirty = false;
        // Descriptors retired by a rotation hold what was written before the switch: read
        // them first, so late lines of the old file come before the new file's.
        let retired = self.files[i].drain_retired(pass);
        let state = if !self.files[i].verify && self.files[i].open.is_some() {
            // Only written to since the last look: read on without a stat. Finding
            // nothing new falls through to the full check, which sees a truncation.
            let f = &mut self.files[i];
            let before = f.position();
            match f.read_open(pass) {
                Ok(state) if state == ReadState::More || f.position() != before => {
                    f.last_size = f.last_size.max(f.position());
                    Some(state)
                }
                _ => None,
            }
        } else {
            None
        };
        let state = state.unwrap_or_else(|| {
            self.files[i].verify = false;
            match stat_path(&self.files[i].path) {
                Ok(PathState::File(meta)) => self.check_present(i, &meta, pass),
                Ok(PathState::Missing) => self.read_gone(i, pass),
                Ok(PathState::NotAFile) => {
                    let why = format!("{} is not a regular file", self.files[i].path.display());
                    self.file_error(i, why);
                    self.read_gone(i, pass)
                }
                Err(e) => {
                    let why = format!("cannot stat {}: {e}", self.files[i].path.display());
                    self.file_error(i, why);
                    self.read_gone(i, pass)
                }
            }
        });
        if state == ReadState::More || retired == ReadState::More {
            ReadState::More
        } else {
            ReadState::Eof
        }
    }

    /// The path names no regular file: read what the open descriptor still has.
    fn read_gone<S: EntrySink>(&mut self, i: usize, pass: &mut Pass<S>) -> ReadState {
        match self.files[i].path_gone(pass) {
            Ok(s) => s,
            Err(e) => {
                self.file_error(
                    i,
                    format!("cannot read {}: {e}", self.files[i].path.display()),
                );
                ReadState::Eof
            }
        }
    }

    fn check_present<S: EntrySink>(
        &mut self,
        i: usize,
        meta: &Metadata,
        pass: &mut Pass<S>,
    ) -> ReadState {
        let id = file_id(meta);
        let already_ours = self.files[i].open.as_ref().is_some_and(|o| o.id == id);
        if !already_ours {
            // The file under this name may be one we already read under another name
            // (renamed into place, or a hard link): follow that descriptor, never re-read.
            if let Some(k) = (0..self.files.len()).find(|&k| k != i && self.files[k].holds(id)) {
                let other_still_there =
                    std::fs::metadata(&self.files[k].path).is_ok_and(|m| file_id(&m) == id);
                if other_still_there {
                    self.files[i].alias = true;
                    return ReadState::Eof;
                }
                if let Some(open) = self.files[k].surrender(id) {
                    let f = &mut self.files[i];
                    if let Some(old) = f.open.take() {
                        f.retired.push(old);
                    }
                    f.adopt(open, meta);
                }
            }
        }
        self.files[i].alias = false;
        let mut fresh = None;
        if self.files[i].open.is_none() {
            if !self.open_file(i, meta, pass) {
                return ReadState::Eof;
            }
            // The path's stat predates the open; what was just recorded comes from the
            // descriptor. Compare like with like, or a write in between would look like
            // the file's mtime going backwards.
            fresh = self.files[i]
                .open
                .as_ref()
                .and_then(|o| o.file.metadata().ok());
        }
        let meta = fresh.as_ref().unwrap_or(meta);
        let max_line = self.max_line;
        match self.files[i].follow(meta, max_line, pass) {
            Ok(s) => {
                let f = &mut self.files[i];
                if f.last_error.take().is_some() {
                    report(
                        &self.stream,
                        &format!("{} is readable again", f.path.display()),
                    );
                }
                s
            }
            Err(e) => {
                self.file_error(
                    i,
                    format!("cannot read {}: {e}", self.files[i].path.display()),
                );
                ReadState::Eof
            }
        }
    }
}

struct NullSink;

impl EntrySink for NullSink {
    fn push_entry(&mut self, _write: impl FnOnce(&mut Vec<u8>)) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use std::io::Write;

    struct Collect(Vec<serde_json::Value>);

    impl EntrySink for Collect {
        fn push_entry(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
            let mut out = Vec::new();
            write(&mut out);
            self.0
                .push(serde_json::from_slice(&out).expect("entry is JSON"));
        }
    }

    struct NoWatch;
    impl DirWatcher for NoWatch {
        fn watch(&mut self, _dir: &Path, _target: usize) -> io::Result<()> {
            Ok(())
        }
    }

    fn monitor_for(dir: &Path, pattern: &str) -> Monitor {
        let text = format!(
            "[[streams]]\nname = \"t\"\n[streams.monitor]\ntargets = [{{ path = \"{}\", pattern = \"{pattern}\" }}]\n[streams.tcpserver]\nenabled = true\nport = 0\n",
            dir.display()
        );
        let cfg = config::parse(&text, "t", config::Overrides::default()).unwrap();
        Monitor::new(&cfg.streams[0])
    }

    fn poll_all(m: &mut Monitor, now: u64) -> Vec<String> {
        let mut sink = Collect(Vec::new());
        let mut buf = vec![0u8; 4096];
        m.mark_all();
        loop {
            let mut budget = ReadBudget::new(1 << 20, 1 << 20);
            if !m.poll(&mut NoWatch, now, &mut buf, &mut budget, &mut sink) {
                break;
            }
        }
        sink.0
            .iter()
            .map(|v| v["message"].as_str().unwrap().to_string())
            .collect()
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("logwisp-tail-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn existing_content_skipped_new_files_from_start() {
        let d = tempdir("start");
        append(&d.join("old.log"), "before 1\nbefore 2\npartial");
        let mut m = monitor_for(&d, "*.log");
        m.start(&mut NoWatch, 0);
        assert_eq!(poll_all(&mut m, 1), Vec::<String>::new());
        append(&d.join("old.log"), " line\nafter\n");
        append(&d.join("new.log"), "fresh 1\n");
        assert_eq!(poll_all(&mut m, 2), ["partial line", "after", "fresh 1"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rename_rotation_reads_old_then_new() {
        let d = tempdir("rename");
        let log = d.join("app.log");
        append(&log, "");
        let mut m = monitor_for(&d, "*.log");
        m.start(&mut NoWatch, 0);
        append(&log, "a1\n");
        assert_eq!(poll_all(&mut m, 1), ["a1"]);
        append(&log, "a2\n");
        std::fs::rename(&log, d.join("app.log.1")).unwrap();
        append(&d.join("app.log.1"), "a3 written to the old file\n");
        append(&log, "b1\n");
        let got = poll_all(&mut m, 2);
        assert_eq!(
            got,
            [
                "a2",
                "a3 written to the old file",
                "Log rotation detected (#1): inode change",
                "b1"
            ]
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn truncation_and_pattern_star_rename_do_not_duplicate() {
        let d = tempdir("trunc");
        let log = d.join("app.log");
        append(&log, "");
        let mut m = monitor_for(&d, "*");
        m.start(&mut NoWatch, 0);
        append(&log, "one\ntwo\n");
        assert_eq!(poll_all(&mut m, 1), ["one", "two"]);
        std::fs::write(&log, "").unwrap();
        append(&log, "x\n");
        assert_eq!(
            poll_all(&mut m, 2),
            ["Log rotation detected (#1): size decrease", "x"]
        );
        // With pattern `*` the renamed file is itself a target: it must not be re-read.
        append(&log, "y\n");
        std::fs::rename(&log, d.join("app.log.1")).unwrap();
        append(&log, "z\n");
        let got = poll_all(&mut m, 3);
        assert_eq!(got.iter().filter(|l| *l == "y").count(), 1, "{got:?}");
        assert_eq!(got.iter().filter(|l| *l == "x").count(), 0, "{got:?}");
        assert!(got.contains(&"z".to_string()), "{got:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn deleted_file_is_read_then_dropped_and_recreation_is_a_rotation() {
        let d = tempdir("delete");
        let log = d.join("app.log");
        append(&log, "");
        let mut m = monitor_for(&d, "*.log");
        m.start(&mut NoWatch, 0);
        append(&log, "last words\nno newline");
        std::fs::remove_file(&log).unwrap();
        assert_eq!(poll_all(&mut m, 1), ["last words", "no newline"]);
        append(&log, "reborn\n");
        assert_eq!(
            poll_all(&mut m, 2),
            ["Log rotation detected (#1): inode change", "reborn"]
        );
        std::fs::remove_file(&log).unwrap();
        assert_eq!(poll_all(&mut m, 3), Vec::<String>::new());
        assert_eq!(m.files.len(), 1, "remembered for a while");
        poll_all(&mut m, 3 + FORGET_AFTER_MS);
        assert_eq!(m.files.len(), 0, "then forgotten");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
