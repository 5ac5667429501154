//! Splits a byte stream into lines with bounded memory.
//!
//! Lines end at `\n`; a trailing `\r` is dropped; empty lines are skipped. A line that is
//! still incomplete is held until its newline arrives. A line longer than `max` bytes is
//! cut at `max` (backed off to a UTF-8 boundary), delivered at once, and the rest of it up
//! to the next newline is discarded, so the splitter stays in sync and never holds more
//! than `max + 2` bytes.
//!
//! The splitter knows the file offset of what it is fed, so each line is delivered with
//! the offset where it starts: a line start is where a reader can begin again with a fresh
//! splitter and get the same lines (history replay, checkpoints).

/// Keep a big partial-line buffer around only while it is in use.
const RETAIN_CAPACITY: usize = 64 * 1024;

#[derive(Debug)]
pub struct LineSplitter {
    partial: Vec<u8>,
    max: usize,
    /// Inside the remainder of a line that was already cut and delivered.
    discarding: bool,
    /// File offset of the next byte to be fed.
    next_offset: u64,
    /// File offset where the line being assembled began.
    line_start: u64,
}

/// Receives lines. `cut` is true when the line was longer than the limit and has been
/// shortened; `start` is the file offset of the line's first byte. Returning `false` asks
/// the splitter to stop after this line.
pub trait LineSink {
    fn line(&mut self, line: &[u8], cut: bool, start: u64) -> bool;
}

impl<F: FnMut(&[u8], bool, u64) -> bool> LineSink for F {
    fn line(&mut self, line: &[u8], cut: bool, start: u64) -> bool {
        self(line, cut, start)
    }
}

/// Largest index `<= max` that does not split a UTF-8 sequence (looking back at most 3).
pub fn cut_point(line: &[u8], max: usize) -> usize {
    if line.len() <= max {
        return line.len();
    }
    let mut at = max;
    for _ in 0..3 {
        if at == 0 || (line[at] & 0xC0) != 0x80 {
            break;
        }
        at -= 1;
    }
    if at == 0 { max } else { at }
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter::at(max, 0)
    }

    /// A splitter whose first byte fed is at file offset `offset` (a line start).
    pub fn at(max: usize, offset: u64) -> LineSplitter {
        LineSplitter {
            partial: Vec::new(),
            max: max.max(1),
            discarding: false,
            next_offset: offset,
            line_start: offset,
        }
    }

    /// File offset of the next byte to feed.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// File offset where the unfinished line began: reading again from here with a fresh
    /// splitter delivers it whole. (After a cut line, the offset of that cut line.)
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    /// Forgets any held bytes and continues at `offset` (a truncated file read from 0).
    pub fn restart_at(&mut self, offset: u64) {
        self.partial.clear();
        self.release();
        self.discarding = false;
        self.next_offset = offset;
        self.line_start = offset;
    }

    /// Bytes held for a line whose newline has not arrived.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    fn release(&mut self) {
        if self.partial.capacity() > RETAIN_CAPACITY {
            self.partial = Vec::new();
        }
    }

    /// Delivers the held partial line as if its newline had arrived (the file ended).
    pub fn flush(&mut self, sink: &mut impl LineSink) {
        if !self.partial.is_empty() {
            let held = std::mem::take(&mut self.partial);
            emit(&held, self.max, self.line_start, sink);
            self.partial = held;
            self.partial.clear();
            self.release();
        }
        self.discarding = false;
        self.line_start = self.next_offset;
    }

    /// Splits `chunk`, continuing any held partial line. Returns how many bytes of `chunk`
    /// were consumed: all of it, unless the sink asked to stop, in which case the bytes
    /// after the last delivered line's newline are left for the caller to feed again.
    ///
    /// Whether a line is cut depends only on the line, never on where reads split it:
    /// a line is its bytes up to `\n` minus one trailing `\r`, and it is cut when that
    /// is longer than `max`.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl LineSink) -> usize {
        let max = self.max;
        let base = self.next_offset;
        let mut rest = chunk;
        while !rest.is_empty() {
            let Some(i) = memchr::memchr(b'\n', rest) else {
                if !self.discarding {
                    // Hold up to max + 2 bytes: enough to tell a line of exactly `max`
                    // bytes followed by `\r` from one that is too long.
                    let room = (max + 2).saturating_sub(self.partial.len());
                    self.partial
                        .extend_from_slice(&rest[..rest.len().min(room)]);
                    let held = self.partial.len();
                    let too_long =
                        held > max + 1 || (held == max + 1 && self.partial.last() != Some(&b'\r'));
                    if too_long {
                        let view = &self.partial[..max + 1];
                        sink.line(&view[..cut_point(view, max)], true, self.line_start);
                        self.partial.clear();
                        self.release();
                        self.discarding = true;
                    }
                }
                self.next_offset = base + chunk.len() as u64;
                return chunk.len();
            };
            let segment = &rest[..i];
            rest = &rest[i + 1..];
            let start = self.line_start;
            let more = if self.discarding {
                self.discarding = false;
                true
            } else if self.partial.is_empty() {
                emit(segment, max, start, sink)
            } else {
                let total = self.partial.len() + segment.len();
                let ends_in_cr = match segment.last() {
                    Some(&b) => b == b'\r',
                    None => self.partial.last() == Some(&b'\r'),
                };
                let line_len = total - usize::from(ends_in_cr);
                let more = if line_len > max {
                    let room = (max + 1).saturating_sub(self.partial.len());
                    self.partial
                        .extend_from_slice(&segment[..segment.len().min(room)]);
                    let view = &self.partial[..max + 1];
                    sink.line(&view[..cut_point(view, max)], true, start)
                } else {
                    self.partial.extend_from_slice(segment);
                    emit(&self.partial, max, start, sink)
                };
                self.partial.clear();
                self.release();
                more
            };
            let used = chunk.len() - rest.len();
            self.line_start = base + used as u64;
            if !more {
                self.next_offset = self.line_start;
                return used;
            }
        }
        self.next_offset = base + chunk.len() as u64;
        chunk.len()
    }
}

/// Delivers one complete line (bytes before its `\n`); returns the sink's wish to continue.
fn emit(segment: &[u8], max: usize, start: u64, sink: &mut impl LineSink) -> bool {
    let line = segment.strip_suffix(b"\r").unwrap_or(segment);
    if line.is_empty() {
        return true;
    }
    if line.len() > max {
        let end = cut_point(line, max);
        sink.line(&line[..end], true, start)
    } else {
        sink.line(line, false, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(max: usize, chunks: &[&[u8]]) -> (Vec<(String, bool)>, usize) {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut |l: &[u8], cut, _start| {
                out.push((String::from_utf8_lossy(l).into_owned(), cut));
                true
            });
        }
        (out, s.pending())
    }

    fn lines(v: &[(String, bool)]) -> Vec<&str> {
        v.iter().map(|(l, _)| l.as_str()).collect()
    }

    #[test]
    fn splits_strips_cr_and_skips_empty() {
        let (out, pending) = run(100, &[b"a\nb\r\n\n\r\nc"]);
        assert_eq!(lines(&out), ["a", "b"]);
        assert_eq!(pending, 1);
    }

    #[test]
    fn holds_partial_until_newline() {
        let (out, pending) = run(100, &[b"hel", b"lo", b" world\nnext"]);
        assert_eq!(lines(&out), ["hello world"]);
        assert_eq!(pending, 4);
    }

    #[test]
    fn cut_flag_is_independent_of_read_boundaries() {
        // A line of exactly max bytes then \r\n is not cut, however it is split.
        for split in 0..=4 {
            let text = b"ab\r\n";
            let (out, _) = run(2, &[&text[..split], &text[split..]]);
            assert_eq!(out, vec![("ab".into(), false)], "split at {split}");
        }
        // A line with a \r inside, longer than max, is cut, however it is split.
        let text = b"aaaa\rbbb\nz\n";
        for split in 0..text.len() {
            let (out, _) = run(4, &[&text[..split], &text[split..]]);
            assert_eq!(
                out,
                vec![("aaaa".into(), true), ("z".into(), false)],
                "split {split}"
            );
        }
    }

    #[test]
    fn cr_split_across_chunks() {
        let (out, _) = run(100, &[b"abc\r", b"\n"]);
        assert_eq!(lines(&out), ["abc"]);
    }

    #[test]
    fn cuts_long_lines_and_resyncs() {
        let long = vec![b'x'; 25];
        let mut input = long.clone();
        input.extend_from_slice(b"\nshort\n");
        let (out, pending) = run(10, &[&input]);
        assert_eq!(out, vec![("x".repeat(10), true), ("short".into(), false)]);
        assert_eq!(pending, 0);
        // The same when the long line arrives in pieces: cut delivered before its newline.
        let (out, pending) = run(10, &[&long[..7], &long[7..], b"\nnext\n"]);
        assert_eq!(out, vec![("x".repeat(10), true), ("next".into(), false)]);
        assert_eq!(pending, 0);
        let (out, _) = run(10, &[b"0123456789\n"]);
        assert_eq!(
            out,
            vec![("0123456789".into(), false)],
            "exactly max is not cut"
        );
    }

    #[test]
    fn cut_respects_utf8_boundaries() {
        // "aaaaaaaa" + "é" (2 bytes) crosses max = 9 in the middle of é.
        let (out, _) = run(9, &["aaaaaaaaéz\n".as_bytes()]);
        assert_eq!(out, vec![("aaaaaaaa".into(), true)]);
    }

    #[test]
    fn memory_bounded_without_newlines() {
        let mut s = LineSplitter::new(1000);
        let chunk = vec![b'y'; 4096];
        let mut count = 0;
        for _ in 0..1000 {
            s.feed(&chunk, &mut |_: &[u8], _, _| {
                count += 1;
                true
            });
            assert!(s.pending() <= 1002);
        }
        assert_eq!(count, 1);
    }

    #[test]
    fn flush_delivers_held_line() {
        let mut s = LineSplitter::new(100);
        let mut out = Vec::new();
        s.feed(b"tail-end", &mut |l: &[u8], _, _| {
            out.push(l.to_vec());
            true
        });
        assert!(out.is_empty());
        s.flush(&mut |l: &[u8], _, _| {
            out.push(l.to_vec());
            true
        });
        assert_eq!(out, vec![b"tail-end".to_vec()]);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn any_chunking_equals_whole_split() {
        let text = b"alpha\nbe\r\nta\n\ngamma delta\nepsilon\nzeta-eta-theta-iota\nk";
        let (whole, wp) = run(12, &[text]);
        for a in 0..text.len() {
            for b in a..text.len() {
                let (parts, pp) = run(12, &[&text[..a], &text[a..b], &text[b..]]);
                assert_eq!(parts, whole, "split at {a},{b}");
                assert_eq!(pp, wp);
            }
        }
    }

    #[test]
    fn stopping_leaves_the_rest_unconsumed() {
        let mut s = LineSplitter::new(100);
        let mut got = Vec::new();
        let input = b"one\ntwo\nthree\nfour";
        let stop_after = |n: usize, s: &mut LineSplitter, input: &[u8], got: &mut Vec<String>| {
            let mut count = 0;
            s.feed(input, &mut |l: &[u8], _, _| {
                got.push(String::from_utf8_lossy(l).into_owned());
                count += 1;
                count < n
            })
        };
        let used = stop_after(2, &mut s, input, &mut got);
        assert_eq!(used, 8);
        let used2 = stop_after(5, &mut s, &input[used..], &mut got);
        assert_eq!(used + used2, input.len());
        assert_eq!(got, ["one", "two", "three"]);
        assert_eq!(s.pending(), 4);
    }

    #[test]
    fn lines_carry_their_start_offsets_whatever_the_chunking() {
        let text = b"ab\n\ncdefghijklmno\r\nxy\nz";
        let mut whole = Vec::new();
        let mut s = LineSplitter::at(5, 100);
        s.feed(text, &mut |l: &[u8], cut, start| {
            whole.push((l.to_vec(), cut, start));
            true
        });
        assert_eq!(
            whole,
            vec![
                (b"ab".to_vec(), false, 100),
                (b"cdefg".to_vec(), true, 104),
                (b"xy".to_vec(), false, 119),
            ]
        );
        assert_eq!(s.line_start(), 122, "the held `z`");
        assert_eq!(s.next_offset(), 123);
        for split in 0..text.len() {
            let mut got = Vec::new();
            let mut s = LineSplitter::at(5, 100);
            for part in [&text[..split], &text[split..]] {
                s.feed(part, &mut |l: &[u8], cut, start| {
                    got.push((l.to_vec(), cut, start));
                    true
                });
            }
            assert_eq!(got, whole, "split at {split}");
            assert_eq!(s.line_start(), 122);
        }
        let mut flushed = Vec::new();
        s.flush(&mut |l: &[u8], _, start| {
            flushed.push((l.to_vec(), start));
            true
        });
        assert_eq!(flushed, vec![(b"z".to_vec(), 122)]);
        assert_eq!(s.line_start(), 123);
    }

    #[test]
    fn stopping_early_leaves_offsets_at_the_next_line() {
        let mut s = LineSplitter::at(100, 10);
        let used = s.feed(b"one\ntwo\nthree\n", &mut |_: &[u8], _, _| false);
        assert_eq!(used, 4);
        assert_eq!((s.next_offset(), s.line_start()), (14, 14));
    }
}
