//! Where each entry of a stream came from, kept compactly: runs of consecutive entries
//! read from one file (first sequence number, count, file and epoch, offset of the first
//! line, when it was read). A position in the stream maps back to a file and offset, so a
//! client that falls behind the shared buffer, or reconnects with an old `Last-Event-ID`,
//! is served from the files themselves (SPEC §6).
//!
//! A run grows while entries keep coming from the same file and were read within a minute
//! of its first; plain lines replayed from disk get the run's read time. Runs are capped
//! in length (finding an entry inside a run re-reads its lines from the run's start) and
//! in number (the oldest are forgotten; their entries count as lost). Journal entries
//! (SPEC §17) make runs too, each known by the cursor of its first entry.

use std::collections::VecDeque;

use crate::tail::SourceRef;

/// Most runs kept per stream (about 48 bytes each).
pub const MAX_RUNS: usize = 16_384;
/// Most entries in one run: bounds the lines re-read to find an entry within it.
pub const MAX_RUN_ENTRIES: u32 = 4_096;
/// Entries read this long after a run's first join a new run (their replayed time).
pub const MERGE_WITHIN_MICROS: i64 = 60_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub source_json: Box<[u8]>,
    pub message: Box<str>,
    pub micros: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunKind {
    /// Lines of a file, the first starting at `start`.
    File {
        src: SourceRef,
        start: u64,
        micros: i64,
    },
    /// An entry logwisp made itself (a rotation notice).
    Notice(Box<Notice>),
    /// Entries of journal target `target` read by its follower number `epoch`, the
    /// first of them at `cursor`, all of one seqnum id with increasing numbers (`last`
    /// is the last one's): reading the journal again from that cursor, with the same
    /// filters, and keeping entries of that seqnum id with increasing numbers, yields
    /// them in order.
    Journal {
        target: u32,
        epoch: u32,
        cursor: Box<str>,
        last: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub first_seq: u64,
    pub count: u32,
    pub kind: RunKind,
}

impl Run {
    /// One past the last sequence number of the run.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + u64::from(self.count)
    }
}

#[derive(Debug)]
pub struct History {
    runs: VecDeque<Run>,
    /// Sequence number the next entry will have.
    next_seq: u64,
    /// Sequence numbers below this are no longer mapped.
    forgotten_below: u64,
    /// Files whose run count went up (+1) or down (-1), for the monitor to keep their
    /// records (and maybe descriptors) while history points at them.
    ref_changes: Vec<(u32, i32)>,
}

impl History {
    pub fn new(first_seq: u64) -> History {
        History {
            runs: VecDeque::new(),
            next_seq: first_seq,
            forgotten_below: first_seq,
            ref_changes: Vec::new(),
        }
    }

    /// The oldest sequence number that can still be found.
    pub fn first_seq(&self) -> u64 {
        self.forgotten_below
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Records entry `seq`: a line of `src` starting at `start`, read at `micros`.
    pub fn note_line(&mut self, seq: u64, src: SourceRef, start: u64, micros: i64) {
        self.note_lines(seq, 1, src, start, micros);
    }

    /// Records entries `seq..seq + count`: consecutive lines of `src`, the first starting
    /// at `start`, read at `micros`. They join the last run only all together.
    pub fn note_lines(&mut self, seq: u64, count: u32, src: SourceRef, start: u64, micros: i64) {
        debug_assert_eq!(seq, self.next_seq);
        debug_assert!((1..=MAX_RUN_ENTRIES).contains(&count));
        self.next_seq = seq + u64::from(count);
        if let Some(last) = self.runs.back_mut()
            && last.end_seq() == seq
            && last.count + count <= MAX_RUN_ENTRIES
            && let RunKind::File {
                src: run_src,
                micros: run_micros,
                ..
            } = last.kind
            && run_src == src
            && (micros - run_micros).abs() < MERGE_WITHIN_MICROS
        {
            last.count += count;
            return;
        }
        self.ref_changes.push((src.key, 1));
        self.push(Run {
            first_seq: seq,
            count,
            kind: RunKind::File { src, start, micros },
        });
    }

    /// Records entry `seq`: the journal entry at `cursor` of journal target `target`,
    /// read by its follower number `epoch`.
    pub fn note_journal(&mut self, seq: u64, target: u32, epoch: u32, cursor: &str) {
        debug_assert_eq!(seq, self.next_seq);
        self.next_seq = seq + 1;
        let at = crate::journal::entry::cursor_seq(cursor);
        if let Some(run) = self.runs.back_mut()
            && run.end_seq() == seq
            && run.count < MAX_RUN_ENTRIES
            && let RunKind::Journal {
                target: t,
                epoch: e,
                cursor: first,
                last,
            } = &mut run.kind
            && (*t, *e) == (target, epoch)
            && let Some((id, n)) = at
            && crate::journal::entry::cursor_seq(first).is_some_and(|(fid, _)| fid == id)
            && n > *last
        {
            *last = n;
            run.count += 1;
            return;
        }
        self.push(Run {
            first_seq: seq,
            count: 1,
            kind: RunKind::Journal {
                target,
                epoch,
                cursor: cursor.into(),
                last: at.map_or(0, |(_, n)| n),
            },
        });
    }

    /// Records entry `seq`, made by logwisp itself.
    pub fn note_notice(&mut self, seq: u64, notice: Notice) {
        debug_assert_eq!(seq, self.next_seq);
        self.next_seq = seq + 1;
        self.push(Run {
            first_seq: seq,
            count: 1,
            kind: RunKind::Notice(Box::new(notice)),
        });
    }

    fn push(&mut self, run: Run) {
        self.runs.push_back(run);
        while self.runs.len() > MAX_RUNS {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some(old) = self.runs.pop_front() {
            self.forgotten_below = old.end_seq();
            if let RunKind::File { src, .. } = old.kind {
                self.ref_changes.push((src.key, -1));
            }
        }
    }

    /// The run holding `seq`, if it is still known.
    pub fn locate(&self, seq: u64) -> Option<&Run> {
        if seq < self.forgotten_below || seq >= self.next_seq {
            return None;
        }
        let i = self.runs.partition_point(|r| r.first_seq <= seq);
        let run = self.runs.get(i.checked_sub(1)?)?;
        (seq < run.end_seq()).then_some(run)
    }

    /// The runs holding `seq` and every later entry, oldest first.
    pub fn runs_from(&self, seq: u64) -> impl Iterator<Item = &Run> + '_ {
        let i = self.runs.partition_point(|r| r.end_seq() <= seq);
        self.runs.range(i..)
    }

    /// Reference changes since the last call.
    pub fn take_ref_changes(&mut self) -> Vec<(u32, i32)> {
        std::mem::take(&mut self.ref_changes)
    }

    /// The file references runs hold (with repeats).
    pub fn sources(&self) -> impl Iterator<Item = SourceRef> + '_ {
        self.runs.iter().filter_map(|r| match r.kind {
            RunKind::File { src, .. } => Some(src),
            RunKind::Notice(_) | RunKind::Journal { .. } => None,
        })
    }

    /// Points every run at a new tailer's reference for its file (`map` gives it, or
    /// `None` when the new tailer does not have those bytes: the run then finds nothing,
    /// and its entries count as lost). Pending reference changes are for the old tailer
    /// and are dropped; the new references are counted instead.
    /// Journal runs stay as they are when `journals_alike` (same targets, entries counted
    /// alike), else they too find nothing.
    pub fn remap(
        &mut self,
        mut map: impl FnMut(SourceRef) -> Option<SourceRef>,
        journals_alike: bool,
    ) {
        self.ref_changes.clear();
        for run in &mut self.runs {
            match &mut run.kind {
                RunKind::File { src, .. } => {
                    *src = map(*src).unwrap_or(SourceRef::NOWHERE);
                    self.ref_changes.push((src.key, 1));
                }
                RunKind::Journal { target, .. } if !journals_alike => *target = u32::MAX,
                RunKind::Journal { .. } | RunKind::Notice(_) => {}
            }
        }
    }

    /// Forgets every run (the stream's files are gone with it).
    pub fn clear(&mut self) {
        while !self.runs.is_empty() {
            self.forget_oldest();
        }
        self.forgotten_below = self.next_seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: SourceRef = SourceRef { key: 1, epoch: 0 };
    const B: SourceRef = SourceRef { key: 2, epoch: 0 };

    #[test]
    fn remapped_runs_point_at_the_new_references_and_unknown_ones_nowhere() {
        let mut h = History::new(1);
        h.note_line(1, A, 0, 5);
        h.note_line(2, B, 0, 5);
        h.note_line(3, A, 10, 5);
        h.take_ref_changes();
        let new_a = SourceRef { key: 7, epoch: 3 };
        h.remap(|r| (r == A).then_some(new_a), true);
        assert_eq!(
            h.sources().collect::<Vec<_>>(),
            [new_a, SourceRef::NOWHERE, new_a]
        );
        assert_eq!(
            h.take_ref_changes(),
            vec![(7, 1), (SourceRef::NOWHERE.key, 1), (7, 1)]
        );
    }

    #[test]
    fn consecutive_lines_of_one_file_share_a_run() {
        let mut h = History::new(100);
        for i in 0..10 {
            h.note_line(100 + i, A, i * 10, 5);
        }
        h.note_line(110, B, 0, 5);
        h.note_line(111, A, 100, 5);
        assert_eq!(h.runs(), 3);
        let run = h.locate(105).unwrap();
        assert_eq!((run.first_seq, run.count), (100, 10));
        assert_eq!(
            run.kind,
            RunKind::File {
                src: A,
                start: 0,
                micros: 5
            }
        );
        assert_eq!(h.locate(111).unwrap().first_seq, 111);
        assert!(h.locate(99).is_none());
        assert!(h.locate(112).is_none());
        assert_eq!(h.take_ref_changes(), vec![(1, 1), (2, 1), (1, 1)]);
    }

    #[test]
    fn runs_split_on_epoch_time_length_and_notices() {
        let mut h = History::new(1);
        h.note_line(1, A, 0, 0);
        h.note_line(2, SourceRef { key: 1, epoch: 1 }, 0, 0);
        h.note_line(3, SourceRef { key: 1, epoch: 1 }, 5, MERGE_WITHIN_MICROS);
        h.note_notice(
            4,
            Notice {
                source_json: b"\"a\"".to_vec().into_boxed_slice(),
                message: "rotated".into(),
                micros: 0,
            },
        );
        h.note_line(5, A, 9, 0);
        assert_eq!(h.runs(), 5);
        let mut h = History::new(1);
        for i in 0..u64::from(MAX_RUN_ENTRIES) + 1 {
            h.note_line(1 + i, A, i, 0);
        }
        assert_eq!(h.runs(), 2);
    }

    #[test]
    fn lines_noted_together_join_the_last_run_only_if_all_fit() {
        let mut h = History::new(1);
        h.note_lines(1, 10, A, 0, 5);
        h.note_lines(11, 20, A, 1_000, 5);
        assert_eq!(h.runs(), 1);
        assert_eq!(h.locate(30).map(|r| (r.first_seq, r.count)), Some((1, 30)));
        // 30 + MAX_RUN_ENTRIES - 30 fill it exactly; one more batch starts a new run at
        // its own first line.
        let fill = MAX_RUN_ENTRIES - 30;
        h.note_lines(31, fill, A, 3_000, 5);
        assert_eq!(h.runs(), 1);
        let next = 31 + u64::from(fill);
        h.note_lines(next, 2, A, 9_000, 5);
        assert_eq!(h.runs(), 2);
        let run = h.locate(next + 1).unwrap();
        assert_eq!((run.first_seq, run.count), (next, 2));
        assert_eq!(
            run.kind,
            RunKind::File {
                src: A,
                start: 9_000,
                micros: 5
            }
        );
        // A batch that does not fit whole is not split: it starts a run of its own.
        let mut h = History::new(1);
        h.note_lines(1, MAX_RUN_ENTRIES - 1, A, 0, 5);
        h.note_lines(MAX_RUN_ENTRIES.into(), 2, A, 500, 5);
        assert_eq!(h.runs(), 2);
        assert_eq!(h.next_seq(), u64::from(MAX_RUN_ENTRIES) + 2);
    }

    #[test]
    fn journal_entries_share_a_run_per_follower_and_seqnum_id() {
        let mut h = History::new(1);
        h.note_journal(1, 0, 0, "s=a;i=1");
        h.note_journal(2, 0, 0, "s=a;i=5");
        // Another target, a file line, another seqnum id, a number not after the last,
        // another follower, cursors without a sequence: each starts a run.
        h.note_journal(3, 1, 0, "s=a;i=6");
        h.note_line(4, A, 0, 0);
        h.note_journal(5, 0, 0, "s=a;i=7");
        h.note_journal(6, 0, 0, "s=b;i=8");
        h.note_journal(7, 0, 0, "s=b;i=8");
        h.note_journal(8, 0, 1, "s=b;i=9");
        h.note_journal(9, 0, 1, "bogus");
        h.note_journal(10, 0, 1, "bogus");
        assert_eq!(h.runs(), 9);
        let run = h.locate(2).unwrap();
        assert_eq!((run.first_seq, run.count), (1, 2));
        assert_eq!(
            run.kind,
            RunKind::Journal {
                target: 0,
                epoch: 0,
                cursor: "s=a;i=1".into(),
                last: 5,
            }
        );
        assert_eq!(
            h.take_ref_changes(),
            vec![(1, 1)],
            "journal runs hold no file"
        );
    }

    #[test]
    fn the_oldest_runs_are_forgotten_beyond_the_cap() {
        let mut h = History::new(1);
        for i in 0..(MAX_RUNS as u64 + 10) {
            let src = if i % 2 == 0 { A } else { B };
            h.note_line(1 + i, src, i, 0);
        }
        assert_eq!(h.runs(), MAX_RUNS);
        assert_eq!(h.first_seq(), 11);
        assert!(h.locate(10).is_none());
        assert!(h.locate(11).is_some());
        let changes = h.take_ref_changes();
        assert_eq!(changes.iter().filter(|c| c.1 < 0).count(), 10);
    }
}
