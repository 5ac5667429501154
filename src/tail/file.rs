//! One tailed path: the descriptor currently read, descriptors retired by a rotation, and
//! the decision of what a fresh `stat` of the path means.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

use super::lines::LineSplitter;
use super::{EntrySink, Pass};
use crate::entry;

/// Retired descriptors (the old file after a rename) are kept this long after they last
/// grew, so a writer that has not reopened yet loses nothing.
pub const RETIRE_GRACE_MS: u64 = 5_000;

/// `(st_dev, st_ino)`: what a file is, whatever its name.
pub type FileId = (u64, u64);

pub fn file_id(meta: &Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

fn mtime(meta: &Metadata) -> (i64, i64) {
    (meta.mtime(), meta.mtime_nsec())
}

/// An open descriptor and how far it has been read.
#[derive(Debug)]
pub struct OpenFile {
    pub file: File,
    pub id: FileId,
    pub pos: u64,
    pub splitter: LineSplitter,
    /// Tick of the last read that returned data (for retiring).
    pub last_growth: u64,
}

/// Where to start reading a file the first time it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPos {
    /// Skip existing content (the file existed when logwisp started).
    End,
    /// At this offset (recorded while the file was unreadable).
    At(u64),
    /// From byte 0 (the file appeared after startup).
    Beginning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    InodeChange,
    SizeDecrease,
    MtimeReset,
    PositionBeyondSize,
}

impl Rotation {
    pub fn reason(self) -> &'static str {
        match self {
            Rotation::InodeChange => "inode change",
            Rotation::SizeDecrease => "size decrease",
            Rotation::MtimeReset => "modification time reset",
            Rotation::PositionBeyondSize => "position beyond file size",
        }
    }
}

/// What a `stat` of an open file's path says about the descriptor we read, given the size
/// and mtime we saw last time. Pure, so every case is unit-tested.
pub fn classify(
    open_id: FileId,
    pos: u64,
    last_size: u64,
    last_mtime: (i64, i64),
    now_id: FileId,
    now_size: u64,
    now_mtime: (i64, i64),
) -> Option<Rotation> {
    if now_id != open_id {
        Some(Rotation::InodeChange)
    } else if now_size < pos {
        if now_size < last_size {
            Some(Rotation::SizeDecrease)
        } else {
            Some(Rotation::PositionBeyondSize)
        }
    } else if now_mtime < last_mtime && now_size <= last_size {
        // Rewritten in place with an older timestamp (`cp -p` over it): read it again.
        Some(Rotation::MtimeReset)
    } else {
        None
    }
}

#[derive(Debug)]
pub struct TailedFile {
    pub path: PathBuf,
    /// Base name, as a JSON string literal (the entries' `source`).
    pub source_json: Box<[u8]>,
    pub target: usize,
    pub open: Option<OpenFile>,
    /// Old descriptors after an inode change, read until quiet for [`RETIRE_GRACE_MS`].
    pub retired: Vec<OpenFile>,
    pub start: StartPos,
    /// Identity of the last file opened at this path, to recognise a replacement.
    pub last_id: Option<FileId>,
    /// The file we were reading vanished: the next one is a rotation.
    pub lost: bool,
    pub last_size: u64,
    pub last_mtime: (i64, i64),
    pub entries_read: u64,
    pub rotations: u64,
    pub truncated_lines: u64,
    pub last_error: Option<String>,
    /// Needs a check on the next pass (an inotify event named it).
    pub dirty: bool,
    /// The check must stat the path (something other than a write happened, or it is
    /// the periodic check); a file that was only written to is just read.
    pub verify: bool,
    /// The path is another name of a file this stream already reads.
    pub alias: bool,
    /// Tick since which the path has named nothing we read (for forgetting it).
    pub gone_since: Option<u64>,
}

/// Outcome of reading a descriptor until EOF or the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadState {
    Eof,
    /// Budget exhausted with data left.
    More,
}

impl TailedFile {
    pub fn new(path: PathBuf, target: usize, start: StartPos) -> TailedFile {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut source_json = Vec::with_capacity(name.len() + 2);
        entry::write_json_string(&mut source_json, name.as_bytes());
        TailedFile {
            path,
            source_json: source_json.into_boxed_slice(),
            target,
            open: None,
            retired: Vec::new(),
            start,
            last_id: None,
            lost: false,
            last_size: 0,
            last_mtime: (0, 0),
            entries_read: 0,
            rotations: 0,
            truncated_lines: 0,
            last_error: None,
            dirty: true,
            verify: true,
            alias: false,
            gone_since: None,
        }
    }

    pub fn position(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| o.pos)
    }

    /// Records a problem; returns true the first time this message is seen, so the caller
    /// reports it once rather than at every retry.
    pub fn set_error(&mut self, message: String) -> bool {
        let new = self.last_error.as_deref() != Some(message.as_str());
        self.last_error = Some(message);
        new
    }

    fn emit_rotation<S: EntrySink>(&mut self, kind: Rotation, pass: &mut Pass<S>) {
        self.rotations += 1;
        let message = format!(
            "Log rotation detected (#{}): {}",
            self.rotations,
            kind.reason()
        );
        let (source, stamp) = (&self.source_json, &pass.stamp);
        pass.sink
            .push_entry(|out| entry::write_notice(out, stamp, source, "INFO", &message));
    }

    fn count(&mut self, c: Count) {
        self.entries_read += c.entries;
        self.truncated_lines += c.cut;
    }

    /// Opens the file at `self.path`, positioned per `self.start` (or at 0 after a
    /// rotation). Emits the rotation notice when this replaces a file we read.
    pub fn open_new<S: EntrySink>(
        &mut self,
        max_line: usize,
        pass: &mut Pass<S>,
    ) -> io::Result<()> {
        let file = File::open(&self.path)?;
        // The path may have been replaced between stat and open; trust the descriptor.
        let meta_now = file.metadata()?;
        if !meta_now.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let id = file_id(&meta_now);
        let replaced = self.lost || self.last_id.is_some_and(|old| old != id);
        let pos = if replaced {
            0
        } else {
            match self.start {
                StartPos::Beginning => 0,
                StartPos::At(p) => p.min(meta_now.len()),
                StartPos::End => start_of_last_partial_line(&file, meta_now.len(), max_line),
            }
        };
        if replaced {
            self.emit_rotation(Rotation::InodeChange, pass);
        }
        self.open = Some(OpenFile {
            file,
            id,
            pos,
            splitter: LineSplitter::new(max_line),
            last_growth: pass.now,
        });
        self.last_id = Some(id);
        self.lost = false;
        self.last_size = meta_now.len();
        self.last_mtime = mtime(&meta_now);
        // Anything opened later (recreated after a delete, say) is new content.
        self.start = StartPos::Beginning;
        Ok(())
    }

    /// Applies a fresh stat of the path to the open descriptor: detects rotation, retires the
    /// old descriptor (after reading it to the end) and switches to the new file. Returns
    /// `More` when the old file still has unread data beyond the budget (switch next time).
    pub fn follow<S: EntrySink>(
        &mut self,
        meta: &Metadata,
        max_line: usize,
        pass: &mut Pass<S>,
    ) -> io::Result<ReadState> {
        let Some(open) = self.open.as_ref() else {
            return Ok(ReadState::Eof);
        };
        let rotation = classify(
            open.id,
            open.pos,
            self.last_size,
            self.last_mtime,
            file_id(meta),
            meta.len(),
            mtime(meta),
        );
        match rotation {
            None => {
                self.last_size = meta.len();
                self.last_mtime = mtime(meta);
                if meta.len() > self.position() {
                    return self.read_open(pass);
                }
                Ok(ReadState::Eof)
            }
            Some(Rotation::InodeChange) => {
                // Finish the old file through the descriptor we hold before the new one.
                if self.read_open(pass)? == ReadState::More {
                    return Ok(ReadState::More);
                }
                if let Some(old) = self.open.take() {
                    self.retired.push(old);
                }
                self.lost = true;
                self.open_new(max_line, pass)?;
                self.read_open(pass)
            }
            Some(kind) => {
                // Same file, shorter: truncated (copytruncate) or rewritten. What was held of
                // an unfinished line is delivered rather than glued to new content.
                if let Some(mut open) = self.open.take() {
                    let c = flush_partial(&mut open, &self.source_json, pass);
                    self.count(c);
                    open.pos = 0;
                    self.open = Some(open);
                }
                self.emit_rotation(kind, pass);
                self.last_size = meta.len();
                self.last_mtime = mtime(meta);
                self.read_open(pass)
            }
        }
    }

    /// The path no longer names a regular file: read what the descriptor still has. A file
    /// that was deleted (no links left) is dropped once read; one that was renamed away is
    /// kept, since its writer may still be appending until it reopens.
    pub fn path_gone<S: EntrySink>(&mut self, pass: &mut Pass<S>) -> io::Result<ReadState> {
        if self.open.is_none() {
            return Ok(ReadState::Eof);
        }
        if self.read_open(pass)? == ReadState::More {
            return Ok(ReadState::More);
        }
        let unlinked = self
            .open
            .as_ref()
            .and_then(|o| o.file.metadata().ok())
            .is_none_or(|m| m.nlink() == 0);
        if unlinked && let Some(mut old) = self.open.take() {
            let c = flush_partial(&mut old, &self.source_json, pass);
            self.count(c);
            self.lost = true;
        }
        Ok(ReadState::Eof)
    }

    /// Reads the open descriptor from where it was; the fast path after a write event.
    pub fn read_open<S: EntrySink>(&mut self, pass: &mut Pass<S>) -> io::Result<ReadState> {
        let Some(open) = self.open.as_mut() else {
            return Ok(ReadState::Eof);
        };
        let (state, c) = read_to_end(open, &self.source_json, pass)?;
        self.count(c);
        Ok(state)
    }

    /// Reads retired descriptors; drops those quiet for the grace period (delivering any
    /// unfinished last line).
    pub fn drain_retired<S: EntrySink>(&mut self, pass: &mut Pass<S>) -> ReadState {
        let mut state = ReadState::Eof;
        let mut i = 0;
        while i < self.retired.len() {
            match read_to_end(&mut self.retired[i], &self.source_json, pass) {
                Ok((s, c)) => {
                    self.count(c);
                    if s == ReadState::More {
                        state = ReadState::More;
                        i += 1;
                        continue;
                    }
                }
                // An unreadable old descriptor has nothing more to give.
                Err(_) => self.retired[i].last_growth = 0,
            }
            if pass.now.saturating_sub(self.retired[i].last_growth) >= RETIRE_GRACE_MS {
                let mut old = self.retired.swap_remove(i);
                let c = flush_partial(&mut old, &self.source_json, pass);
                self.count(c);
            } else {
                i += 1;
            }
        }
        state
    }

    /// Takes the descriptor for `id` out of this path (open or retired), for a path that
    /// now carries that file under a new name.
    pub fn surrender(&mut self, id: FileId) -> Option<OpenFile> {
        if self.open.as_ref().is_some_and(|o| o.id == id) {
            self.lost = true;
            return self.open.take();
        }
        let i = self.retired.iter().position(|o| o.id == id)?;
        Some(self.retired.swap_remove(i))
    }

    pub fn holds(&self, id: FileId) -> bool {
        self.open.as_ref().is_some_and(|o| o.id == id) || self.retired.iter().any(|o| o.id == id)
    }

    /// Adopts a descriptor handed over by [`surrender`](Self::surrender).
    pub fn adopt(&mut self, open: OpenFile, meta: &Metadata) {
        self.last_id = Some(open.id);
        self.last_size = meta.len();
        self.last_mtime = mtime(meta);
        self.open = Some(open);
        self.lost = false;
        self.start = StartPos::Beginning;
    }
}

/// Entries and cut lines one read delivered.
#[derive(Debug, Clone, Copy, Default)]
struct Count {
    entries: u64,
    cut: u64,
}

/// Turns what a splitter delivers into entries of one file, counting them.
struct Lines<'p, 'a, S: EntrySink> {
    source: &'p [u8],
    pass: &'p mut Pass<'a, S>,
    count: Count,
}

impl<S: EntrySink> super::lines::LineSink for Lines<'_, '_, S> {
    fn line(&mut self, line: &[u8], cut: bool) -> bool {
        let (source, stamp) = (self.source, &self.pass.stamp);
        self.pass
            .sink
            .push_entry(|out| entry::write_entry(out, line, source, stamp));
        self.count.entries += 1;
        self.count.cut += u64::from(cut);
        self.pass.budget.take_entry()
    }
}

/// Delivers the unfinished last line a descriptor holds (its file is done with).
fn flush_partial<S: EntrySink>(open: &mut OpenFile, source: &[u8], pass: &mut Pass<S>) -> Count {
    let mut lines = Lines {
        source,
        pass,
        count: Count::default(),
    };
    open.splitter.flush(&mut lines);
    lines.count
}

/// Reads `open` from its position until EOF or the budget runs out.
fn read_to_end<S: EntrySink>(
    open: &mut OpenFile,
    source: &[u8],
    pass: &mut Pass<S>,
) -> io::Result<(ReadState, Count)> {
    let now = pass.now;
    let mut lines = Lines {
        source,
        pass,
        count: Count::default(),
    };
    loop {
        if lines.pass.budget.exhausted() {
            return Ok((ReadState::More, lines.count));
        }
        let want = lines.pass.buf.len().min(lines.pass.budget.bytes_left());
        let n = match open.file.read_at(&mut lines.pass.buf[..want], open.pos) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok((ReadState::Eof, lines.count));
        }
        open.last_growth = now;
        // The chunk is moved out of the pass's buffer for the splitter's sake (it borrows
        // the pass mutably through `lines`); `take` leaves an empty slice, nothing copies.
        let buf = std::mem::take(&mut lines.pass.buf);
        let used = open.splitter.feed(&buf[..n], &mut lines);
        lines.pass.buf = buf;
        open.pos += used as u64;
        lines.pass.budget.take_bytes(used);
        if used == n && n < want {
            // A short read of a regular file is its end (for now): save the syscall
            // that would only say so.
            return Ok((ReadState::Eof, lines.count));
        }
    }
}

/// For `start_at = "end"`: begin after the last newline, so a line being written while we
/// start is delivered whole rather than as a fragment. Falls back to the end of file.
fn start_of_last_partial_line(file: &File, size: u64, max_line: usize) -> u64 {
    if size == 0 {
        return 0;
    }
    let window = (max_line as u64).min(size).min(64 * 1024);
    let mut tail = vec![0u8; window as usize];
    let from = size - window;
    match file.read_exact_at(&mut tail, from) {
        Ok(()) => match tail.iter().rposition(|&b| b == b'\n') {
            Some(i) => from + i as u64 + 1,
            None if from == 0 => 0,
            None => size,
        },
        Err(_) => size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: FileId = (1, 10);
    const T0: (i64, i64) = (100, 0);
    const T1: (i64, i64) = (101, 0);

    #[test]
    fn classify_rotations() {
        assert_eq!(classify(ID, 50, 50, T0, ID, 80, T1), None, "growth");
        assert_eq!(classify(ID, 50, 50, T0, ID, 50, T0), None, "no change");
        assert_eq!(
            classify(ID, 50, 50, T0, (1, 11), 80, T1),
            Some(Rotation::InodeChange)
        );
        assert_eq!(
            classify(ID, 50, 50, T0, ID, 10, T1),
            Some(Rotation::SizeDecrease)
        );
        assert_eq!(
            classify(ID, 50, 40, T0, ID, 45, T1),
            Some(Rotation::PositionBeyondSize)
        );
        assert_eq!(
            classify(ID, 50, 50, T1, ID, 50, T0),
            Some(Rotation::MtimeReset)
        );
        assert_eq!(
            classify(ID, 50, 50, T1, ID, 60, T0),
            None,
            "grew: an append"
        );
    }
}
