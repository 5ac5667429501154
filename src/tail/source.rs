//! One file being followed, known by its identity `(dev, inode)` whatever names reach it:
//! its descriptor (opened on demand, within the descriptor budget), how far it has been
//! read, a fingerprint of its first bytes, and where it stands in its life (reached through
//! a watched name, retired after a rotation, or finished).

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::lines::{LineSink, LineSplitter};
use crate::entry;

/// `(st_dev, st_ino)`: what a file is, whatever its name.
pub type FileId = (u64, u64);

pub fn file_id(meta: &Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

pub fn mtime(meta: &Metadata) -> (i64, i64) {
    (meta.mtime(), meta.mtime_nsec())
}

/// How many leading bytes identify a file's content. A file truncated and written again
/// past its old size between two looks (`cmd > file`) keeps its inode and grows, so only
/// its content tells that it was replaced.
pub const FINGERPRINT_BYTES: usize = 512;

/// FNV-1a of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub len: u32,
    pub hash: u64,
}

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Fingerprint {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Fingerprint {
            len: bytes.len() as u32,
            hash,
        }
    }

    /// The fingerprint of `file`'s first `len` bytes, `None` when it is shorter.
    pub fn read(file: &File, len: usize) -> io::Result<Option<Fingerprint>> {
        let mut buf = [0u8; FINGERPRINT_BYTES];
        let want = len.min(FINGERPRINT_BYTES);
        let mut got = 0;
        while got < want {
            match file.read_at(&mut buf[got..want], got as u64) {
                Ok(0) => return Ok(None),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(Fingerprint::of(&buf[..want])))
    }
}

/// Opens a file for tailing without ever blocking the reactor: `O_NONBLOCK` keeps a FIFO
/// renamed into place from hanging `open()`, and only a regular file is kept.
pub fn open_regular(path: &Path) -> io::Result<(File, Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(not_regular(&meta)));
    }
    Ok((file, meta))
}

/// What kind of non-regular file a name holds, for the one report it gets.
pub fn not_regular(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "is a FIFO, not a regular file; skipped"
    } else if t.is_socket() {
        "is a socket, not a regular file; skipped"
    } else if t.is_block_device() || t.is_char_device() {
        "is a device, not a regular file; skipped"
    } else if t.is_dir() {
        "is a directory, not a regular file; skipped"
    } else {
        "is not a regular file; skipped"
    }
}

/// Where a source stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// At least one watched name reaches it.
    Named,
    /// Its last name went elsewhere (a rename rotation) while links remain: its writer may
    /// not have reopened yet, so it is read until quiet for `rotate_wait` after `since`.
    Retired { since: u64 },
    /// Read to its end and no longer followed; kept only while history refers to it.
    Finished,
}

/// A name (target index, base name) that reaches a source.
pub type NameRef = (usize, Box<str>);

#[derive(Debug)]
pub struct Source {
    pub id: FileId,
    /// Open descriptor; `None` while closed to stay within the descriptor budget.
    pub file: Option<File>,
    /// Lines and the read position (`splitter.next_offset()`).
    pub splitter: LineSplitter,
    pub fingerprint: Fingerprint,
    /// Bumped when bytes before the read position are gone (truncation, replaced
    /// content): history that points into an older epoch cannot be read back.
    pub epoch: u32,
    pub phase: Phase,
    /// Names reaching it now; the first is the one entries are attributed to.
    pub names: Vec<NameRef>,
    /// The primary name's base name as a JSON string literal (entries' `source`).
    pub display: Box<[u8]>,
    /// The last path known to reach it (to reopen a closed descriptor).
    pub path: PathBuf,
    pub last_size: u64,
    pub last_mtime: (i64, i64),
    /// Tick of the last read that found data.
    pub last_growth: u64,
    /// Waiting in the monitor's work queue.
    pub queued: bool,
    /// History runs that point into this file.
    pub history_refs: u32,
    /// Stamp of the last use, for closing the least recently used descriptor.
    pub lru: u64,
    /// An inotify watch on the file itself (retired files, files reached through links).
    pub inode_watch: Option<u64>,
    pub entries_read: u64,
    pub truncated_lines: u64,
    pub last_error: Option<String>,
}

pub fn display_name(path: &Path) -> Box<[u8]> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(name.len() + 2);
    entry::write_json_string(&mut out, name.as_bytes());
    out.into_boxed_slice()
}

impl Source {
    pub fn new(id: FileId, path: PathBuf, offset: u64, max_line: usize) -> Source {
        Source {
            id,
            file: None,
            splitter: LineSplitter::at(max_line, offset),
            fingerprint: Fingerprint::default(),
            epoch: 0,
            phase: Phase::Named,
            names: Vec::new(),
            display: display_name(&path),
            path,
            last_size: 0,
            last_mtime: (0, 0),
            last_growth: 0,
            queued: false,
            history_refs: 0,
            lru: 0,
            inode_watch: None,
            entries_read: 0,
            truncated_lines: 0,
            last_error: None,
        }
    }

    /// The read position: bytes consumed (whole lines plus any held partial line).
    pub fn position(&self) -> u64 {
        self.splitter.next_offset()
    }

    /// Where a restart resumes: the start of the line not yet delivered.
    pub fn resume_offset(&self) -> u64 {
        self.splitter.line_start()
    }

    /// Records a problem; true the first time this message is seen (report it once).
    pub fn set_error(&mut self, message: String) -> bool {
        let new = self.last_error.as_deref() != Some(message.as_str());
        self.last_error = Some(message);
        new
    }
}

/// Rotations of a file that keeps its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    InodeChange,
    SizeDecrease,
    MtimeReset,
    PositionBeyondSize,
    ContentChange,
}

impl Rotation {
    pub fn reason(self) -> &'static str {
        match self {
            Rotation::InodeChange => "inode change",
            Rotation::SizeDecrease => "size decrease",
            Rotation::MtimeReset => "modification time reset",
            Rotation::PositionBeyondSize => "position beyond file size",
            Rotation::ContentChange => "content replaced",
        }
    }
}

/// What a fresh `fstat` says about a file read up to `pos`, given the size and mtime seen
/// last time. (A content change is found by the fingerprint, not here.) Pure.
pub fn classify(
    pos: u64,
    last_size: u64,
    last_mtime: (i64, i64),
    size: u64,
    now_mtime: (i64, i64),
) -> Option<Rotation> {
    if size < pos {
        if size < last_size {
            Some(Rotation::SizeDecrease)
        } else {
            Some(Rotation::PositionBeyondSize)
        }
    } else if now_mtime < last_mtime && size <= last_size && pos > 0 {
        // Rewritten in place with an older timestamp (`cp -p` over it): read it again.
        Some(Rotation::MtimeReset)
    } else {
        None
    }
}

/// For `start_at = "end"`: begin after the last newline, so a line being written while we
/// start is delivered whole rather than as a fragment. Falls back to the end of file.
pub fn start_of_last_partial_line(file: &File, size: u64, max_line: usize) -> u64 {
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

/// Outcome of reading a descriptor until EOF or the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadState {
    Eof,
    /// Budget exhausted with data left.
    More,
}

/// Reads `file` from `splitter`'s position, feeding lines to `sink`, until EOF, a short
/// read, `max_bytes`, or the sink asking to stop. Returns the state and bytes consumed.
pub fn read_lines(
    file: &File,
    splitter: &mut LineSplitter,
    buf: &mut [u8],
    max_bytes: usize,
    sink: &mut impl StopSink,
) -> io::Result<(ReadState, usize)> {
    let mut consumed = 0;
    loop {
        if sink.stopped() || consumed >= max_bytes {
            return Ok((ReadState::More, consumed));
        }
        let want = buf.len().min(max_bytes - consumed).min(sink.read_hint());
        let pos = splitter.next_offset();
        let n = match file.read_at(&mut buf[..want], pos) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok((ReadState::Eof, consumed));
        }
        let used = splitter.feed(&buf[..n], sink);
        consumed += used;
        if used == n && n < want {
            // A short read of a regular file is its end (for now): save the syscall
            // that would only say so.
            return Ok((ReadState::Eof, consumed));
        }
    }
}

/// A line sink that can say it wants no more (its budget is spent) and how much it is
/// likely to take, so reads are not much larger than what will be used.
pub trait StopSink: LineSink {
    fn stopped(&self) -> bool;
    fn read_hint(&self) -> usize {
        usize::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: (i64, i64) = (100, 0);
    const T1: (i64, i64) = (101, 0);

    #[test]
    fn classify_rotations() {
        assert_eq!(classify(50, 50, T0, 80, T1), None, "growth");
        assert_eq!(classify(50, 50, T0, 50, T0), None, "no change");
        assert_eq!(classify(50, 50, T0, 10, T1), Some(Rotation::SizeDecrease));
        assert_eq!(
            classify(50, 40, T0, 45, T1),
            Some(Rotation::PositionBeyondSize)
        );
        assert_eq!(classify(50, 50, T1, 50, T0), Some(Rotation::MtimeReset));
        assert_eq!(classify(50, 50, T1, 60, T0), None, "grew: an append");
        assert_eq!(classify(0, 0, T1, 0, T0), None, "nothing read yet");
    }

    #[test]
    fn fingerprints_tell_content_apart() {
        assert_eq!(Fingerprint::of(b"abc"), Fingerprint::of(b"abc"));
        assert_ne!(Fingerprint::of(b"abc"), Fingerprint::of(b"abd"));
        assert_eq!(Fingerprint::of(b"").len, 0);
    }
}
