//! The model's picture of the file system it drives: every file (inode) with its current
//! names and the lines written to it, the logical logs whose writers hold descriptors, and
//! for each line the facts SPEC §4 needs to say whether logwisp owes it.
//!
//! All file-system changes go through this type, so the picture cannot drift from the disk.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Rng;

/// How long after its file left every watched name a write through an old descriptor is
/// still owed. logwisp keeps a retired descriptor for a grace period counted from when it
/// notices the rotation (5 s today; README: "watched a little longer in case its writer
/// has not reopened yet"); 2 s leaves room for a slow machine and a shorter default.
pub const GRACE_DEMANDED: Duration = Duration::from_secs(2);

/// A writer that has not reopened this long (planned time) after its file was rotated
/// away usually reopens before writing again, so most old-descriptor writes are owed.
const WRITER_REOPENS_AFTER: Duration = Duration::from_millis(1_200);

/// Why a line is owed or not, fixed when it is written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cover {
    /// Written before logwisp started: files present at start are read from their end.
    PreStart,
    /// The file had a watched name when the line was written.
    Watched,
    /// Written through an old descriptor, this long after the file lost its watched name.
    Grace(Duration),
    /// Not owed, for this reason.
    Not(&'static str),
}

pub struct Line {
    pub text: String,
    pub file: usize,
    /// Index among the lines of its file (write order).
    pub n: usize,
    pub action: usize,
    pub at: Duration,
    pub cover: Cover,
}

/// One file (inode) the test created.
pub struct FileM {
    pub names: Vec<PathBuf>,
    /// Every base name it ever had: an entry's `source` must be one of them.
    pub ever: Vec<String>,
    /// Had a watched name when logwisp started, so logwisp holds it from the start.
    pub startup: bool,
    /// A copy made by copytruncate: never watched, never written.
    pub copy: bool,
    pub lines: Vec<usize>,
    pub watched: bool,
    /// When it last lost every watched name (real and planned time), while it has none.
    pub left_at: Option<(Duration, Duration)>,
    /// Truncated while it had no watched name (a rotated file): what is written to it
    /// afterwards may or may not be read (logwisp may drop such a descriptor), but never in
    /// pieces.
    pub truncated_away: bool,
    /// Came back to a watched name later than [`GRACE_DEMANDED`] after leaving: whether
    /// logwisp still knows it is then unspecified, so its lines are judged leniently.
    pub late_return: bool,
    /// Lines before this index were seen delivered (or are not owed) at a sync.
    pub synced: usize,
    pub history: Vec<String>,
    /// What happened to it, for the one-line summary of a failing seed.
    pub tags: BTreeSet<&'static str>,
}

/// A writer's open descriptor (always `O_APPEND`, like a logger's).
pub struct Writer {
    pub file: File,
    pub id: usize,
}

/// A log by name: what a program writing `path` does, and what was rotated off it.
pub struct Log {
    pub path: PathBuf,
    /// In the glob-watched directory (else the `is_file` target).
    pub in_dir: bool,
    pub writer: Option<Writer>,
    pub rotated: Vec<Rotated>,
}

pub struct Rotated {
    pub path: PathBuf,
    pub id: usize,
    /// Planned time of the rotation.
    pub planned: Duration,
    /// Renamed (the file itself, untouched since) rather than copied: it may be moved back.
    pub renamed: bool,
}

#[derive(Clone, Copy)]
pub enum WriteMode {
    /// All lines in one `write`.
    One,
    /// One `write` per line.
    PerLine,
    /// The last line in two `write`s with a short pause between (a partial line on disk).
    SplitLast,
}

pub struct World {
    pub seed: u64,
    root: PathBuf,
    pub dir: PathBuf,
    pub file_target: PathBuf,
    /// Set when logwisp is ready: times are measured from here.
    t0: Option<Instant>,
    /// The generator's own clock: the sum of planned pauses, so its choices do not depend
    /// on how fast this machine is.
    pub planned: Duration,
    pub files: Vec<FileM>,
    at: HashMap<PathBuf, usize>,
    pub logs: Vec<Log>,
    pub lines: Vec<Line>,
    pub tokens: HashMap<String, usize>,
    pub actions: Vec<String>,
    next_suffix: usize,
    next_name: usize,
}

impl World {
    pub fn new(seed: u64, root: &Path) -> World {
        let dir = root.join("A");
        let file_target = root.join("B").join("app.log");
        fs::create_dir_all(&dir).unwrap();
        fs::create_dir_all(file_target.parent().unwrap()).unwrap();
        World {
            seed,
            root: root.to_path_buf(),
            dir,
            file_target,
            t0: None,
            planned: Duration::ZERO,
            files: Vec::new(),
            at: HashMap::new(),
            logs: Vec::new(),
            lines: Vec::new(),
            tokens: HashMap::new(),
            actions: Vec::new(),
            next_suffix: 1,
            next_name: 0,
        }
    }

    /// logwisp is up and a client is connected: from now on files are new and lines owed.
    pub fn mark_started(&mut self) {
        self.t0 = Some(Instant::now());
        for f in &mut self.files {
            f.startup = f.watched;
        }
    }

    pub fn now(&self) -> Duration {
        self.t0.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// A path as the report shows it (relative to the test's directory).
    pub fn show(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .display()
            .to_string()
    }

    pub fn is_watched(&self, p: &Path) -> bool {
        if p == self.file_target {
            return true;
        }
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        p.parent() == Some(self.dir.as_path()) && name.ends_with(".log") && !name.starts_with('.')
    }

    pub fn file_at(&self, p: &Path) -> Option<usize> {
        self.at.get(p).copied()
    }

    pub fn tag(&mut self, id: usize, tag: &'static str) {
        self.files[id].tags.insert(tag);
    }

    fn note(&mut self, id: usize, what: String) {
        let when = match self.t0 {
            Some(t0) => format!("#{} +{}ms", self.actions.len(), t0.elapsed().as_millis()),
            None => "before start".to_string(),
        };
        self.files[id].history.push(format!("{when} {what}"));
    }

    pub fn fname(id: usize) -> String {
        format!("f{id:03}")
    }

    /// A new log name in the watched directory.
    pub fn new_log(&mut self) -> usize {
        let path = self.dir.join(format!("l{:02}.log", self.next_name));
        self.next_name += 1;
        self.logs.push(Log {
            path,
            in_dir: true,
            writer: None,
            rotated: Vec::new(),
        });
        self.logs.len() - 1
    }

    pub fn add_file_target_log(&mut self) -> usize {
        self.logs.push(Log {
            path: self.file_target.clone(),
            in_dir: false,
            writer: None,
            rotated: Vec::new(),
        });
        self.logs.len() - 1
    }

    /// Where a rotation of `path` goes: `path.N`, never a watched name.
    pub fn rotated_name(&mut self, path: &Path) -> PathBuf {
        let n = self.next_suffix;
        self.next_suffix += 1;
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn register(&mut self, path: &Path, copy: bool) -> usize {
        let id = self.files.len();
        let watched = self.is_watched(path);
        self.files.push(FileM {
            names: vec![path.to_path_buf()],
            ever: vec![base(path)],
            startup: false,
            copy,
            lines: Vec::new(),
            watched,
            left_at: None,
            truncated_away: false,
            late_return: false,
            synced: 0,
            history: Vec::new(),
            tags: BTreeSet::new(),
        });
        self.at.insert(path.to_path_buf(), id);
        let what = if copy { "copied to" } else { "created at" };
        self.note(id, format!("{what} {}", self.show(path)));
        id
    }

    /// Opens `path` for appending, creating it if needed.
    pub fn open_append(&mut self, path: &Path) -> Writer {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let id = match self.file_at(path) {
            Some(id) => id,
            None => self.register(path, false),
        };
        Writer { file, id }
    }

    /// Creates an empty file at `path` (which must not exist) and closes it.
    pub fn create_empty(&mut self, path: &Path) -> usize {
        assert!(self.file_at(path).is_none());
        File::create(path).unwrap();
        self.register(path, false)
    }

    /// The log's writer opens its path again (creating the file if it is gone), as a
    /// program does on SIGHUP or when it notices the rotation.
    pub fn reopen(&mut self, log: usize) -> usize {
        let path = self.logs[log].path.clone();
        let w = self.open_append(&path);
        let id = w.id;
        self.logs[log].writer = Some(w);
        id
    }

    /// Whether the log's writer would reopen before its next write: its descriptor is
    /// gone, or names a file deleted or rotated away some time ago (planned time).
    pub fn writer_is_stale(&self, log: usize) -> bool {
        let Some(w) = &self.logs[log].writer else {
            return true;
        };
        let f = &self.files[w.id];
        f.names.is_empty()
            || f.left_at
                .is_some_and(|(_, planned)| self.planned - planned > WRITER_REOPENS_AFTER)
    }

    fn rewatch(&mut self, id: usize) {
        let watched = self.files[id].names.iter().any(|p| self.is_watched(p));
        let (real, planned) = (self.now(), self.planned);
        let f = &mut self.files[id];
        match (f.watched, watched) {
            (true, false) => f.left_at = Some((real, planned)),
            (false, true) => {
                if let Some((left, _)) = f.left_at.take()
                    && real - left > GRACE_DEMANDED
                {
                    f.late_return = true;
                }
            }
            _ => {}
        }
        f.watched = watched;
    }

    fn drop_name(&mut self, id: usize, p: &Path) {
        self.files[id].names.retain(|n| n != p);
        let what = if self.files[id].names.is_empty() {
            "deleted"
        } else {
            "unlinked"
        };
        self.note(id, format!("{what} ({})", self.show(p)));
        self.rewatch(id);
    }

    pub fn rename(&mut self, from: &Path, to: &Path) {
        fs::rename(from, to)
            .unwrap_or_else(|e| panic!("rename {} {}: {e}", from.display(), to.display()));
        let id = self.at.remove(from).expect("renamed file is known");
        if let Some(replaced) = self.at.insert(to.to_path_buf(), id) {
            self.tag(replaced, "replaced by a rename");
            self.drop_name(replaced, to);
        }
        let f = &mut self.files[id];
        f.names.retain(|n| n != from);
        f.names.push(to.to_path_buf());
        let b = base(to);
        if !f.ever.contains(&b) {
            f.ever.push(b);
        }
        self.note(
            id,
            format!("renamed {} -> {}", self.show(from), self.show(to)),
        );
        self.rewatch(id);
    }

    pub fn unlink(&mut self, p: &Path) {
        fs::remove_file(p).unwrap_or_else(|e| panic!("rm {}: {e}", p.display()));
        let id = self.at.remove(p).expect("deleted file is known");
        self.tag(id, "deleted");
        self.drop_name(id, p);
    }

    /// `cp from to` (a new file, never watched).
    pub fn copy(&mut self, from: &Path, to: &Path) -> usize {
        fs::copy(from, to).unwrap();
        self.register(to, true)
    }

    /// Truncates the file at `p` in place (same inode).
    pub fn truncate(&mut self, p: &Path) {
        let id = self.file_at(p).unwrap();
        OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(0)
            .unwrap();
        self.note(id, format!("truncated ({})", self.show(p)));
        if self.files[id].watched {
            self.tag(id, "copytruncated");
        } else {
            self.tag(id, "truncated after rotation");
            self.files[id].truncated_away = true;
        }
    }

    /// Whether a write to file `id` now is owed (before the file's later fate is known).
    fn cover(&self, id: usize) -> Cover {
        let f = &self.files[id];
        if self.t0.is_none() {
            Cover::PreStart
        } else if f.watched {
            Cover::Watched
        } else if f.names.is_empty() {
            Cover::Not("written after the file was deleted")
        } else if f.copy {
            Cover::Not("a copy, never watched")
        } else if f.truncated_away {
            Cover::Not("written to a rotated file after it was truncated")
        } else if let Some((left, _)) = f.left_at {
            let age = self.now() - left;
            if age <= GRACE_DEMANDED {
                Cover::Grace(age)
            } else {
                Cover::Not("written through an old descriptor after the grace period")
            }
        } else {
            Cover::Not("never watched")
        }
    }

    /// `k` new unique lines for file `id`. A line is its token (`{n}-f{file}-s{seed}`, the
    /// line number first so that a file's new content differs from its old content in its
    /// first bytes, which is what a content fingerprint looks at), then padding of random
    /// length so that any piece of a line is recognisably not a whole one.
    fn texts(&self, id: usize, k: usize, rng: &mut Rng) -> Vec<String> {
        let first = self.files[id].lines.len();
        (first..first + k).map(|n| self.text(id, n, rng)).collect()
    }

    fn text(&self, id: usize, n: usize, rng: &mut Rng) -> String {
        let mut t = format!("{n:06}-{}-s{}", World::fname(id), self.seed);
        if !rng.chance(25) {
            t.push(' ');
            t.extend(std::iter::repeat_n('x', rng.below(150)));
        }
        t
    }

    fn record(&mut self, id: usize, texts: Vec<String>) {
        let cover = self.cover(id);
        match cover {
            Cover::Grace(_) => self.tag(id, "old-descriptor writes"),
            Cover::Not(_) if self.files[id].names.is_empty() => {
                self.tag(id, "written after deletion")
            }
            _ => {}
        }
        let (action, at) = (self.actions.len(), self.now());
        for text in texts {
            let n = self.files[id].lines.len();
            let l = self.lines.len();
            self.tokens.insert(token(&text).to_string(), l);
            self.files[id].lines.push(l);
            self.lines.push(Line {
                text,
                file: id,
                n,
                action,
                at,
                cover,
            });
        }
    }

    /// Appends `k` lines through the log's writer (opening it if it has none).
    pub fn append(&mut self, log: usize, k: usize, mode: WriteMode, rng: &mut Rng) -> usize {
        if self.logs[log].writer.is_none() {
            self.reopen(log);
        }
        let mut w = self.logs[log].writer.take().unwrap();
        let texts = self.texts(w.id, k, rng);
        let joined: String = texts.iter().map(|t| format!("{t}\n")).collect();
        match mode {
            WriteMode::One => w.file.write_all(joined.as_bytes()).unwrap(),
            WriteMode::PerLine => {
                for t in &texts {
                    w.file.write_all(format!("{t}\n").as_bytes()).unwrap();
                }
            }
            WriteMode::SplitLast => {
                let last = texts.last().unwrap().len() + 1;
                let cut = joined.len() - last + 1 + rng.below(last - 1);
                w.file.write_all(&joined.as_bytes()[..cut]).unwrap();
                std::thread::sleep(Duration::from_millis(1 + rng.below(3) as u64));
                w.file.write_all(&joined.as_bytes()[cut..]).unwrap();
            }
        }
        let id = w.id;
        self.logs[log].writer = Some(w);
        self.record(id, texts);
        id
    }

    /// `echo … >> path` by another process: opens the path (creating the file), appends,
    /// closes; the log's own writer keeps whatever descriptor it has.
    pub fn append_by_path(&mut self, path: &Path, k: usize, rng: &mut Rng) -> usize {
        let mut w = self.open_append(path);
        let texts = self.texts(w.id, k, rng);
        let joined: String = texts.iter().map(|t| format!("{t}\n")).collect();
        w.file.write_all(joined.as_bytes()).unwrap();
        self.record(w.id, texts);
        w.id
    }

    /// `cmd > path`: `O_TRUNC`, then the new content in one write. `longer`: more bytes than
    /// the file had, so its size alone never shows the change.
    pub fn refill(&mut self, path: &Path, longer: bool, rng: &mut Rng) -> (u64, usize) {
        let id = self.file_at(path).unwrap();
        let old = fs::metadata(path).unwrap().len();
        let mut texts = Vec::new();
        let mut len = 0;
        let want = if longer { old + 1 } else { 1 };
        while (len as u64) < want {
            let t = self.text(id, self.files[id].lines.len() + texts.len(), rng);
            len += t.len() + 1;
            texts.push(t);
        }
        let joined: String = texts.iter().map(|t| format!("{t}\n")).collect();
        let mut f = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .unwrap();
        f.write_all(joined.as_bytes()).unwrap();
        self.note(
            id,
            format!("refilled ({}, {old} -> {len} bytes)", self.show(path)),
        );
        self.tag(
            id,
            if len as u64 > old {
                "refilled longer"
            } else {
                "refilled"
            },
        );
        let k = texts.len();
        self.record(id, texts);
        (old, k)
    }

    /// The log's current file, if its path names one.
    pub fn log_file(&self, log: usize) -> Option<usize> {
        self.file_at(&self.logs[log].path)
    }
}

fn base(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The token of a line: up to the first space.
pub fn token(text: &str) -> &str {
    text.split(' ').next().unwrap()
}
