//! Reading the journal again for a client behind the buffer (SPEC §6), the journal's
//! equivalent of reading a file from an offset: a history run of journal entries is
//! known by its first entry's cursor, so a short-lived `journalctl --cursor=… ` child
//! (same journal, same filters, no `--follow`) yields the run's entries again, in order.
//! The child's stdout is a non-blocking pipe in the reactor like a follower's; it is read
//! only as fast as the client takes what it produced (the pipe, then journalctl, wait
//! meanwhile), and it is killed when its run is done or its client goes.
//!
//! The first entry must be the run's own (its cursor is compared): when the journal no
//! longer has it (vacuumed, rotated away), the run's entries are gone and counted as lost.
//! Entries of another seqnum id, or not after the last one taken, belong to other runs
//! (journals merged from several sources) and are passed over.

use slab::Slab;

use super::child::{PipeOf, Pipes, Proc};
use super::entry::{self, cursor_seq};
use crate::entry::Stamp;
use crate::tail::lines::{LineSink, LineSplitter};

/// Children reading the journal again at once, per stream; more clients wait their turn.
pub const MAX_REPLAYS: usize = 8;

/// A client, as the reactor knows it: connection key and generation.
pub type ClientId = (usize, u64);

/// One client's reading of one run.
#[derive(Debug)]
pub struct Job {
    client: ClientId,
    target: u32,
    run_first: u64,
    state: JobState,
    proc: Proc,
    splitter: LineSplitter,
    held: Vec<u8>,
}

/// What a step of a replay came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The client has as much as it wanted for now.
    Progress,
    /// Nothing more to read now: the pipe will say when (or a child is not free yet).
    Waiting,
    /// Every entry of the run was handed over.
    Done,
    /// The journal does not have the run's entries from `from` on.
    Gone { from: u64 },
}

/// A run to read again: its first sequence number, one past its last, and the cursor of
/// its first entry.
#[derive(Debug, Clone, Copy)]
pub struct RunRef<'a> {
    pub target: u32,
    pub first: u64,
    pub end: u64,
    pub cursor: &'a str,
}

/// Takes entry `seq` (its message, JSON and journal cursor); false when the client has
/// enough.
pub type TakeEntry<'a> = &'a mut dyn FnMut(u64, &[u8], &[u8], &str) -> bool;

/// What an entry read again turns into, and where it goes.
pub struct Output<'a> {
    /// The stream's filters: whether an entry with this message entered the stream.
    pub keep: &'a dyn Fn(&[u8]) -> bool,
    pub each: TakeEntry<'a>,
}

/// The replays of a stream.
#[derive(Debug, Default)]
pub struct Replays {
    jobs: Slab<Job>,
    /// Clients waiting for a free child, and those to drive again now that one is.
    waiting: Vec<ClientId>,
    woken: Vec<ClientId>,
}

impl Replays {
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    fn find(&self, client: ClientId) -> Option<usize> {
        self.jobs
            .iter()
            .find(|(_, j)| j.client == client)
            .map(|(k, _)| k)
    }

    /// A pipe of job `job` is readable: the client to drive.
    pub fn on_pipe(&mut self, job: usize, stderr: bool) -> Option<ClientId> {
        let j = self.jobs.get_mut(job)?;
        if stderr {
            j.proc.err_ready = true;
        } else {
            j.proc.out_ready = true;
        }
        Some(j.client)
    }

    /// Ends job `k`; a waiting client gets its turn.
    fn end(&mut self, k: usize, pipes: &mut dyn Pipes) {
        let job = self.jobs.remove(k);
        job.proc.finish(pipes);
        self.woken.append(&mut self.waiting);
    }

    /// The client is gone, or back in the buffer: its child goes.
    pub fn cancel(&mut self, client: ClientId, pipes: &mut dyn Pipes) {
        self.waiting.retain(|c| *c != client);
        if let Some(k) = self.find(client) {
            self.end(k, pipes);
        }
    }

    /// Clients to drive again (a child became free for them).
    pub fn take_woken(&mut self) -> Vec<ClientId> {
        std::mem::take(&mut self.woken)
    }

    /// Ends every child; every client that had or wanted one is to be driven again.
    pub fn stop(&mut self, pipes: &mut dyn Pipes) {
        let keys: Vec<usize> = self.jobs.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.woken.push(self.jobs[k].client);
            self.end(k, pipes);
        }
        self.woken.append(&mut self.waiting);
    }

    /// Hands `client` the entries of `run` from `want` on, as it takes them. `spawn`
    /// starts the child for a run (`None`: it cannot be started).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        client: ClientId,
        run: RunRef,
        want: u64,
        spawn: &mut dyn FnMut(&str, PipeOf, &mut dyn Pipes) -> Option<Proc>,
        fields: &[String],
        max_line: usize,
        pipes: &mut dyn Pipes,
        buf: &mut [u8],
        out: Output,
    ) -> Step {
        let k = match self.find(client) {
            Some(k) => {
                let j = &self.jobs[k];
                if (j.target, j.run_first) == (run.target, run.first) && want >= j.state.next {
                    k
                } else {
                    self.end(k, pipes);
                    return self.step(client, run, want, spawn, fields, max_line, pipes, buf, out);
                }
            }
            None => {
                if self.jobs.len() >= MAX_REPLAYS {
                    if !self.waiting.contains(&client) {
                        self.waiting.push(client);
                    }
                    return Step::Waiting;
                }
                let key = self.jobs.vacant_key();
                let Some(proc) = spawn(run.cursor, PipeOf::Replay(key), pipes) else {
                    return Step::Gone { from: want };
                };
                self.jobs.insert(Job {
                    client,
                    target: run.target,
                    run_first: run.first,
                    state: JobState {
                        run_end: run.end,
                        cursor: run.cursor.into(),
                        seqnum_id: cursor_seq(run.cursor).map(|(id, _)| id.to_string()),
                        last: 0,
                        next: run.first,
                        verified: false,
                        gone: false,
                    },
                    proc,
                    // The follower's limit: the same lines are cut the same way.
                    splitter: LineSplitter::new(super::splitter_max(max_line)),
                    held: Vec::new(),
                })
            }
        };
        let step = self.jobs[k].read(want, fields, max_line, buf, out);
        if matches!(step, Step::Done | Step::Gone { .. }) {
            self.end(k, pipes);
        }
        step
    }
}

/// Hands the entries a job's child wrote to its client.
struct Taker<'a, 'o> {
    job: &'a mut JobState,
    want: u64,
    fields: &'a [String],
    max_line: usize,
    out: &'a mut Output<'o>,
    json: Vec<u8>,
    /// The client wants no more for now.
    full: bool,
}

/// Where a job is in its run (what its line sink changes).
#[derive(Debug)]
struct JobState {
    run_end: u64,
    /// The run's first entry: the first the child gives must be this one.
    cursor: Box<str>,
    /// Seqnum id of the run, and the number of the last entry taken.
    seqnum_id: Option<String>,
    last: u64,
    /// Sequence number of the next entry of the run the child will give.
    next: u64,
    verified: bool,
    gone: bool,
}

impl LineSink for Taker<'_, '_> {
    fn line(&mut self, line: &[u8], cut: bool, _start: u64) -> bool {
        let j = &mut *self.job;
        // A line the follower could not read made no entry of this run.
        let Some(e) = (!cut)
            .then(|| entry::parse(line, self.fields).ok())
            .flatten()
        else {
            return true;
        };
        let cursor = e.cursor.as_deref().unwrap_or("");
        if !j.verified {
            if cursor != &*j.cursor {
                j.gone = true;
                return false;
            }
            j.verified = true;
        } else if let Some(id) = &j.seqnum_id {
            match cursor_seq(cursor) {
                Some((cid, n)) if cid == id && n > j.last => {}
                _ => return true,
            }
        }
        if let Some((_, n)) = cursor_seq(cursor) {
            j.last = n;
        }
        let (message, _) = entry::message(&e, self.max_line);
        if !(self.out.keep)(message) {
            return true;
        }
        let seq = j.next;
        j.next += 1;
        if seq >= self.want {
            self.json.clear();
            entry::write_entry(
                &mut self.json,
                &e,
                self.fields,
                message,
                &Stamp::from_micros(0),
            );
            if !(self.out.each)(seq, message, &self.json, cursor) {
                self.full = true;
            }
        }
        !self.full && j.next < j.run_end
    }
}

impl Job {
    /// Reads what the child wrote until the client has enough, the run is done, or the
    /// pipe is empty.
    fn read(
        &mut self,
        want: u64,
        fields: &[String],
        max_line: usize,
        buf: &mut [u8],
        mut out: Output,
    ) -> Step {
        self.proc.read_err();
        let mut taker = Taker {
            job: &mut self.state,
            want,
            fields,
            max_line,
            out: &mut out,
            json: Vec::new(),
            full: false,
        };
        let mut eof = false;
        let mut stopped = false;
        if !self.held.is_empty() {
            let chunk = std::mem::take(&mut self.held);
            let used = self.splitter.feed(&chunk, &mut taker);
            if used < chunk.len() {
                self.held.extend_from_slice(&chunk[used..]);
                stopped = true;
            }
        }
        while !stopped && taker.job.next < taker.job.run_end && !taker.job.gone {
            match self.proc.read_out(buf) {
                None => break,
                Some(0) => {
                    self.splitter.flush(&mut taker);
                    eof = true;
                    break;
                }
                Some(n) => {
                    let used = self.splitter.feed(&buf[..n], &mut taker);
                    if used < n {
                        self.held.extend_from_slice(&buf[used..n]);
                        stopped = true;
                    }
                }
            }
        }
        let full = taker.full;
        let j = &self.state;
        if j.gone {
            return Step::Gone {
                from: want.max(self.run_first),
            };
        }
        if j.next >= j.run_end {
            return Step::Done;
        }
        if eof || self.proc.out_eof {
            return Step::Gone {
                from: want.max(j.next),
            };
        }
        if full { Step::Progress } else { Step::Waiting }
    }
}
