//! Fan-out: one bounded buffer of rendered frames per stream; a client is a position in it.
//!
//! Each entry is serialized once, then framed in every wire format a connected client
//! uses (SSE `id: N\ndata: {json}\n\n`, NDJSON `{json}\n`); a format nobody uses costs
//! nothing, and with no client at all an entry is not rendered. Frames are appended back
//! to back into chunks of about 64 KiB, so a client behind by a thousand entries is sent
//! them with one `writev` of a few slices, and no client owns a copy of an entry.
//!
//! The buffer keeps at most `capacity` entries and [`MAX_RING_BYTES`]. Eviction is
//! explicit ([`Ring::evict_excess`]); before it, every client positioned in what will be
//! evicted moves to disk ([`Subscriber::fall_behind`]): it is then served from the files
//! themselves (the stream renders its frames from history) until it rejoins the buffer.
//! A frame a client was halfway through is finished from a private copy, so no client
//! ever receives a torn frame.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use crate::filter::FilterId;
use crate::format::Format;
use crate::tail::SourceRef;

/// Frames are appended to the open chunk until it holds this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;
/// Room a frame needs in a chunk beyond its line: frame head, time, level, source name.
/// A chunk without it for the next line is closed rather than grown, since growing copies
/// the chunk and, at twice 64 KiB, crosses malloc's mmap threshold (a fresh mapping and a
/// page fault per page for every chunk). A frame that is bigger still (escapes, a long
/// source name) just grows its chunk.
const FRAME_ROOM: usize = 1024;
/// Byte ceiling for one stream's buffer, whatever `buffer_size` says: huge lines must not
/// turn a 1000-entry buffer into a gigabyte.
pub const MAX_RING_BYTES: usize = 64 * 1024 * 1024;
/// Slices per `writev`; each is a whole chunk or a private buffer.
const MAX_IOV: usize = 64;
/// Wire formats a buffer can hold at once (more distinct ones are served from disk).
pub const MAX_WIRES: usize = 4;
/// A scratch buffer past this is released after use: one huge line must not keep its
/// size resident.
const JSON_SCRATCH_KEEP: usize = 64 * 1024;
/// Frames rendered from disk for a lagging client are topped up to about this much...
pub const REFILL_BYTES: usize = 64 * 1024;
/// ...while all of a stream's clients on disk together hold about this much rendered and
/// unsent (a thousand clients catching up must not each keep 64 KiB)...
pub const REFILL_BYTES_PER_STREAM: usize = 2 * 1024 * 1024;
/// ...and never less than this each, so catching up still moves in large writes.
pub const REFILL_BYTES_MIN: usize = 8 * 1024;

/// How much a client behind the buffer is rendered ahead when `on_disk` clients of its
/// stream are.
pub fn refill_bytes(on_disk: usize) -> usize {
    (REFILL_BYTES_PER_STREAM / on_disk.max(1)).clamp(REFILL_BYTES_MIN, REFILL_BYTES)
}

/// How an entry is framed on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Server-Sent Events: `id: N\ndata: {payload}\n\n`.
    Sse,
    /// One entry per line: `{payload}\n` (TCP).
    Lines,
    /// One WebSocket text frame per entry.
    Ws,
}

/// How entries are laid out on a connection: the framing, and which of the stream's
/// output formats (its index in the stream's table; 0 is JSON) fills the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Wire {
    pub framing: Framing,
    pub format: u8,
}

impl Wire {
    pub const SSE: Wire = Wire {
        framing: Framing::Sse,
        format: 0,
    };
    pub const NDJSON: Wire = Wire {
        framing: Framing::Lines,
        format: 0,
    };

    /// What precedes the payload, for framings whose head does not depend on it.
    fn frame_head(self, out: &mut Vec<u8>, seq: u64, ids: &mut SeqText) {
        if self.framing == Framing::Sse {
            out.extend_from_slice(b"id: ");
            ids.push(out, seq);
            out.extend_from_slice(b"\ndata: ");
        }
    }

    /// What follows the payload (SSE and lines).
    fn frame_tail(self, out: &mut Vec<u8>) {
        match self.framing {
            Framing::Sse => out.extend_from_slice(b"\n\n"),
            Framing::Lines => out.push(b'\n'),
            Framing::Ws => {}
        }
    }

    /// One whole frame for entry `seq` carrying `payload`.
    pub fn frame(self, out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
        self.frame_counted(out, seq, payload, &mut SeqText::default());
    }

    /// [`frame`](Self::frame), the id's text kept in `ids` for the next entry.
    fn frame_counted(self, out: &mut Vec<u8>, seq: u64, payload: &[u8], ids: &mut SeqText) {
        if self.framing == Framing::Ws {
            #[cfg(feature = "websocket")]
            out.extend_from_slice(crate::ws::text_head(payload.len()).as_bytes());
            out.extend_from_slice(payload);
            return;
        }
        self.frame_head(out, seq, ids);
        out.extend_from_slice(payload);
        self.frame_tail(out);
    }
}

/// The decimal text of a number that mostly grows by one, as entry ids do: the next
/// one's text is the last one's with a carry, not divided out again (for SSE ids of 16
/// digits the division chain cost a tenth of a line's CPU).
#[derive(Debug, Clone)]
struct SeqText {
    value: u64,
    /// The digits, left-aligned: `digits[..len]`.
    digits: [u8; 20],
    len: usize,
}

impl Default for SeqText {
    fn default() -> SeqText {
        let (digits, len) = decimal(0);
        SeqText {
            value: 0,
            digits,
            len,
        }
    }
}

impl SeqText {
    /// Appends `v` in decimal.
    #[inline]
    fn push(&mut self, out: &mut Vec<u8>, v: u64) {
        if self.value.checked_add(1) == Some(v) {
            self.increment();
        } else if v != self.value {
            (self.digits, self.len) = decimal(v);
            self.value = v;
        }
        push_cut(out, &self.digits, self.len);
    }

    #[inline]
    fn increment(&mut self) {
        self.value += 1;
        for i in (0..self.len).rev() {
            if self.digits[i] != b'9' {
                self.digits[i] += 1;
                return;
            }
            self.digits[i] = b'0';
        }
        // Every digit was a 9 (so fewer than 20 of them: 10^19 - 1 < u64::MAX): one more.
        self.digits[0] = b'1';
        self.digits[self.len] = b'0';
        self.len += 1;
    }
}

/// What an entry is made of, for every wire that frames it.
pub struct EntryParts<'a> {
    /// The line as read (a notice's message for notices).
    pub line: &'a [u8],
    /// Its JSON entry.
    pub json: &'a [u8],
    /// Bit `i` set: client filter `i` of the stream wants it.
    pub mask: u64,
}

impl EntryParts<'_> {
    /// For a ring that frames nothing.
    pub const NONE: EntryParts<'static> = EntryParts {
        line: b"",
        json: b"",
        mask: 0,
    };
}

#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    chunk: u64,
    spans: [Span; MAX_WIRES],
    mask: u64,
}

/// Which wires a pushed entry is framed for: made once per read by [`Ring::plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushPlan {
    /// The wire whose buffer the JSON is rendered into, between its frame's head and tail.
    home: Option<u8>,
    /// The other wires in use, which frame a copy or their own format.
    others: [u8; MAX_WIRES],
    other_count: u8,
    /// Bit p: wire p is in use.
    used: u8,
}

impl PushPlan {
    fn wires(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_WIRES).filter(|p| self.used & (1 << p) != 0)
    }
}

#[derive(Default, Debug)]
struct Chunk {
    bufs: [Vec<u8>; MAX_WIRES],
}

impl Chunk {
    fn held(&self) -> usize {
        self.bufs.iter().map(Vec::len).sum()
    }
}

/// A place for one wire's frames: who uses it and since which entry it is rendered.
#[derive(Debug, Clone, Copy)]
struct WireUse {
    wire: Wire,
    users: u32,
    since: u64,
}

#[derive(Debug)]
pub struct Ring {
    /// Sequence number of `slots[0]`.
    base_seq: u64,
    slots: VecDeque<Slot>,
    chunks: VecDeque<Chunk>,
    /// Absolute index of `chunks[0]`.
    chunk_base: u64,
    capacity: usize,
    held_bytes: usize,
    wires: [WireUse; MAX_WIRES],
    /// Where non-JSON payloads are rendered before framing.
    scratch: Vec<u8>,
    /// Where the JSON entry is rendered when no wire in use frames it in place.
    json_scratch: Vec<u8>,
    /// The text of the last SSE id framed.
    ids: SeqText,
}

impl Ring {
    /// A buffer of `capacity` entries whose first entry will be `first_seq`.
    pub fn new(capacity: usize, first_seq: u64) -> Ring {
        Ring {
            base_seq: first_seq,
            slots: VecDeque::new(),
            chunks: VecDeque::new(),
            chunk_base: 0,
            capacity: capacity.max(1),
            held_bytes: 0,
            wires: [WireUse {
                wire: Wire::SSE,
                users: 0,
                since: u64::MAX,
            }; MAX_WIRES],
            scratch: Vec::new(),
            json_scratch: Vec::new(),
            ids: SeqText::default(),
        }
    }

    /// Sequence number the next entry will get.
    pub fn next_seq(&self) -> u64 {
        self.base_seq + self.slots.len() as u64
    }

    /// Oldest sequence number still held.
    pub fn base_seq(&self) -> u64 {
        self.base_seq
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A new capacity (a reload changed `buffer_size`); excess goes at the next eviction.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
    }

    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Where `wire`'s frames are, while some client uses it.
    fn position(&self, wire: Wire) -> Option<usize> {
        self.wires
            .iter()
            .position(|u| u.users > 0 && u.wire == wire)
    }

    /// A client of `wire` joins: entries from the next one on are framed for it. False
    /// when every place is taken by other wires (the client is then served from disk).
    /// Whether a pushed entry's bytes are kept at all (some client uses a wire).
    pub fn frames_entries(&self) -> bool {
        self.wires.iter().any(|u| u.users > 0)
    }

    pub fn enable(&mut self, wire: Wire) -> bool {
        let next = self.next_seq();
        if let Some(p) = self.position(wire) {
            self.wires[p].users += 1;
            return true;
        }
        let Some(p) = self.wires.iter().position(|u| u.users == 0) else {
            return false;
        };
        self.wires[p] = WireUse {
            wire,
            users: 1,
            since: next,
        };
        true
    }

    /// A client of `wire` left.
    pub fn disable(&mut self, wire: Wire) {
        if let Some(p) = self.position(wire) {
            let u = &mut self.wires[p];
            u.users -= 1;
            if u.users == 0 {
                u.since = u64::MAX;
            }
        }
    }

    /// Whether entry `seq`'s frame in `wire` is here.
    pub fn holds(&self, wire: Wire, seq: u64) -> bool {
        self.position(wire)
            .is_some_and(|p| seq >= self.wires[p].since)
            && seq >= self.base_seq
            && seq < self.next_seq()
    }

    /// Appends one entry whose JSON is ready (notices, tests); see [`push_with`](Self::push_with).
    pub fn push(&mut self, formats: &[Format], entry: &EntryParts) -> u64 {
        self.push_with(
            formats,
            entry.line,
            |out| out.extend_from_slice(entry.json),
            |_| entry.mask,
        )
    }

    /// How entries are framed while the wires in use and `formats` stay as they are
    /// (within one read: no client comes or goes meanwhile).
    pub fn plan(&self, formats: &[Format]) -> PushPlan {
        let is_json = |u: &WireUse| {
            matches!(
                formats.get(usize::from(u.wire.format)),
                None | Some(Format::Json)
            )
        };
        // The JSON's home: a wire whose frame head does not depend on the payload's
        // length (a WebSocket head does), else the scratch buffer.
        let home = self
            .wires
            .iter()
            .position(|u| u.users > 0 && is_json(u) && u.wire.framing != Framing::Ws);
        let mut plan = PushPlan {
            home: home.map(|p| p as u8),
            others: [0; MAX_WIRES],
            other_count: 0,
            used: 0,
        };
        for (p, u) in self.wires.iter().enumerate() {
            if u.users == 0 {
                continue;
            }
            plan.used |= 1 << p;
            if Some(p) != home {
                plan.others[usize::from(plan.other_count)] = p as u8;
                plan.other_count += 1;
            }
        }
        plan
    }

    /// Appends one entry, framed for every wire a client uses (nothing at all, not even
    /// rendered, without clients). `render` writes its JSON entry once, straight into
    /// the buffer of the first wire that frames JSON after a fixed prefix (SSE or lines);
    /// other wires copy it or render their format (`formats`) from it and from `line`.
    /// `mask_of` tells from the JSON which client filters want it. Returns its sequence
    /// number.
    pub fn push_with(
        &mut self,
        formats: &[Format],
        line: &[u8],
        render: impl FnOnce(&mut Vec<u8>),
        mask_of: impl FnOnce(&[u8]) -> u64,
    ) -> u64 {
        let plan = self.plan(formats);
        self.push_planned(&plan, formats, line, render, mask_of)
    }

    /// [`push_with`](Self::push_with) by a plan made for the wires in use now.
    #[inline]
    pub fn push_planned(
        &mut self,
        plan: &PushPlan,
        formats: &[Format],
        line: &[u8],
        render: impl FnOnce(&mut Vec<u8>),
        mask_of: impl FnOnce(&[u8]) -> u64,
    ) -> u64 {
        debug_assert_eq!(*plan, self.plan(formats), "a stale push plan");
        let seq = self.next_seq();
        if plan.used == 0 {
            self.slots.push_back(Slot {
                chunk: self.chunk_base + self.chunks.len().saturating_sub(1) as u64,
                spans: [Span::default(); MAX_WIRES],
                mask: 0,
            });
            return seq;
        }
        let need_new = match self.chunks.back() {
            None => true,
            Some(c) => plan.wires().any(|p| {
                let b = &c.bufs[p];
                b.len() >= CHUNK_BYTES
                    || (!b.is_empty() && b.len() + line.len() + FRAME_ROOM > b.capacity())
            }),
        };
        if need_new {
            let mut chunk = Chunk::default();
            for p in plan.wires() {
                // Full size at once: growing by doubling copies each chunk again.
                chunk.bufs[p] = Vec::with_capacity(CHUNK_BYTES);
            }
            self.chunks.push_back(chunk);
        }
        // Filled in place, not built on the stack and copied in: the copy reads the
        // spans back with wide loads right after their narrow stores (a store-forwarding
        // stall per entry).
        self.slots.push_back(Slot {
            chunk: self.chunk_base + self.chunks.len() as u64 - 1,
            spans: [Span::default(); MAX_WIRES],
            mask: 0,
        });
        let slot = self.slots.back_mut().expect("a slot was just pushed");
        let chunk = self.chunks.back_mut().expect("a chunk was just ensured");
        let before = chunk.held();
        let (mut json_buf, json_start, json_end) = match plan.home {
            Some(p) => {
                let p = usize::from(p);
                let mut buf = std::mem::take(&mut chunk.bufs[p]);
                let frame_start = buf.len();
                let wire = self.wires[p].wire;
                wire.frame_head(&mut buf, seq, &mut self.ids);
                let json_start = buf.len();
                render(&mut buf);
                let json_end = buf.len();
                wire.frame_tail(&mut buf);
                slot.spans[p] = Span {
                    start: frame_start as u32,
                    len: (buf.len() - frame_start) as u32,
                };
                (buf, json_start, json_end)
            }
            None => {
                let mut buf = std::mem::take(&mut self.json_scratch);
                buf.clear();
                render(&mut buf);
                let end = buf.len();
                (buf, 0, end)
            }
        };
        let json = &json_buf[json_start..json_end];
        slot.mask = mask_of(json);
        for &p in &plan.others[..usize::from(plan.other_count)] {
            let p = usize::from(p);
            let wire = self.wires[p].wire;
            let payload: &[u8] = match formats.get(usize::from(wire.format)) {
                None | Some(Format::Json) => json,
                Some(other) => {
                    self.scratch.clear();
                    other.render(&mut self.scratch, line, json);
                    &self.scratch
                }
            };
            let buf = &mut chunk.bufs[p];
            let start = buf.len();
            wire.frame_counted(buf, seq, payload, &mut self.ids);
            slot.spans[p] = Span {
                start: start as u32,
                len: (buf.len() - start) as u32,
            };
        }
        match plan.home {
            Some(p) => chunk.bufs[usize::from(p)] = json_buf,
            None => {
                if json_buf.capacity() > JSON_SCRATCH_KEEP {
                    json_buf = Vec::new();
                }
                self.json_scratch = json_buf;
            }
        }
        self.held_bytes += chunk.held() - before;
        seq
    }

    /// Where the buffer will start after [`evict_excess`](Self::evict_excess): every
    /// client must be at or past it, or moved to disk, before that call.
    pub fn planned_base(&self) -> u64 {
        let over_count = self.slots.len().saturating_sub(self.capacity);
        let mut base = self.base_seq + over_count as u64;
        if self.held_bytes > MAX_RING_BYTES {
            // Drop whole chunks from the front until under the ceiling; never the newest.
            let mut held = self.held_bytes;
            let mut first_kept_chunk = self.chunk_base;
            for c in self.chunks.iter().take(self.chunks.len().saturating_sub(1)) {
                if held <= MAX_RING_BYTES {
                    break;
                }
                held -= c.held();
                first_kept_chunk += 1;
            }
            let first_kept = self
                .slots
                .iter()
                .position(|s| s.chunk >= first_kept_chunk)
                .map_or(self.next_seq(), |i| self.base_seq + i as u64);
            base = base.max(first_kept);
        }
        base
    }

    /// Entries that may be added before the buffer must evict entry `lead` (the next
    /// entry of its most advanced client).
    pub fn room_before(&self, lead: u64) -> usize {
        let ahead = self.next_seq().saturating_sub(lead) as usize;
        if self.held_bytes > MAX_RING_BYTES {
            return 0;
        }
        self.capacity.saturating_sub(ahead)
    }

    /// Drops entries (and the chunks they emptied) down to `planned_base`.
    pub fn evict_excess(&mut self) {
        let target = self.planned_base();
        while self.base_seq < target {
            self.slots.pop_front();
            self.base_seq += 1;
        }
        let first_live_chunk = self
            .slots
            .front()
            .map_or(self.chunk_base + self.chunks.len() as u64, |s| s.chunk);
        // Keep the open chunk even when empty of live entries: it is reused for appends.
        while self.chunk_base < first_live_chunk && self.chunks.len() > 1 {
            if let Some(c) = self.chunks.pop_front() {
                self.held_bytes -= c.held();
            }
            self.chunk_base += 1;
        }
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        let i = seq.checked_sub(self.base_seq)?;
        self.slots.get(usize::try_from(i).ok()?)
    }

    fn bytes(&self, chunk: u64, p: usize) -> &[u8] {
        match chunk
            .checked_sub(self.chunk_base)
            .and_then(|i| self.chunks.get(i as usize))
        {
            Some(c) => &c.bufs[p],
            None => &[],
        }
    }

    /// The first entry at or after `seq` that `filter` wants (all do without one).
    fn next_wanted(&self, seq: u64, filter: Option<u64>) -> u64 {
        let Some(bit) = filter else { return seq };
        let mut s = seq;
        while let Some(slot) = self.slot(s) {
            if slot.mask & bit != 0 {
                break;
            }
            s += 1;
        }
        s
    }

    /// The unsent part of entry `seq`'s frame, `offset` bytes of which went out.
    /// Entry `seq`'s whole frame in `wire`, while the buffer holds it.
    pub fn frame(&self, wire: Wire, seq: u64) -> Option<&[u8]> {
        self.holds(wire, seq)
            .then(|| self.frame_rest(wire, seq, 0))
            .filter(|f| !f.is_empty())
    }

    fn frame_rest(&self, wire: Wire, seq: u64, offset: u32) -> &[u8] {
        let (Some(p), Some(slot)) = (self.position(wire), self.slot(seq)) else {
            return &[];
        };
        let span = slot.spans[p];
        let start = (span.start + offset) as usize;
        let end = (span.start + span.len) as usize;
        let bytes = self.bytes(slot.chunk, p);
        &bytes[start.min(end).min(bytes.len())..end.min(bytes.len())]
    }

    /// Appends slices covering everything from (`seq`, `offset`) on that `filter`
    /// wants; runs of wanted frames that lie back to back go as one slice.
    fn gather<'a>(
        &'a self,
        wire: Wire,
        filter: Option<u64>,
        seq: u64,
        offset: u32,
        out: &mut IovList<'a>,
    ) {
        let Some(p) = self.position(wire) else {
            return;
        };
        let Some(bit) = filter else {
            let Some(first) = self.slot(seq) else {
                return;
            };
            let mut chunk = first.chunk;
            let mut from = (first.spans[p].start + offset) as usize;
            let end_chunk = self.chunk_base + self.chunks.len() as u64;
            while chunk < end_chunk && !out.full() {
                let bytes = self.bytes(chunk, p);
                if from < bytes.len() {
                    out.push(&bytes[from..]);
                }
                chunk += 1;
                from = 0;
            }
            return;
        };
        // (chunk, start, end) of the run being built.
        let mut run: Option<(u64, usize, usize)> = None;
        let mut s = seq;
        let mut skip = offset as usize;
        while let Some(slot) = self.slot(s) {
            s += 1;
            if slot.mask & bit == 0 {
                continue;
            }
            let span = slot.spans[p];
            let start = span.start as usize + std::mem::take(&mut skip);
            let end = (span.start + span.len) as usize;
            match &mut run {
                Some((c, _, e)) if *c == slot.chunk && *e == start => *e = end,
                _ => {
                    if let Some((c, a, e)) = run.take() {
                        out.push(&self.bytes(c, p)[a..e]);
                        if out.full() {
                            return;
                        }
                    }
                    run = Some((slot.chunk, start, end));
                }
            }
        }
        if let Some((c, a, e)) = run {
            out.push(&self.bytes(c, p)[a..e]);
        }
    }

    /// Moves (`seq`, `offset`) forward by `n` bytes of the frames `filter` wants.
    fn advance(
        &self,
        wire: Wire,
        filter: Option<u64>,
        seq: &mut u64,
        offset: &mut u32,
        mut n: usize,
    ) {
        let Some(p) = self.position(wire) else {
            return;
        };
        while n > 0 {
            *seq = self.next_wanted(*seq, filter);
            let Some(slot) = self.slot(*seq) else {
                return;
            };
            let rest = (slot.spans[p].len - *offset) as usize;
            if n < rest {
                *offset += n as u32;
                return;
            }
            n -= rest;
            *seq += 1;
            *offset = 0;
        }
        if *offset == 0 {
            *seq = self.next_wanted(*seq, filter);
        }
    }
}

/// Appends `v` in decimal, two digits per division (the ring's SSE ids are counted on
/// by [`SeqText`] instead).
pub fn push_decimal(out: &mut Vec<u8>, v: u64) {
    let (digits, len) = decimal(v);
    push_cut(out, &digits, len);
}

/// Appends `digits[..len]` as one fixed 20-byte copy cut back to length, which compiles
/// to two vector moves where a copy of a variable length is a call to memmove.
#[inline]
fn push_cut(out: &mut Vec<u8>, digits: &[u8; 20], len: usize) {
    let start = out.len();
    out.extend_from_slice(digits);
    out.truncate(start + len);
}

/// `v`'s decimal digits, left-aligned: `digits[..len]`.
fn decimal(v: u64) -> ([u8; 20], usize) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let len = v.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut digits = [0u8; 20];
    let mut end = len;
    let mut rest = v;
    while rest >= 100 {
        let pair = (rest % 100) as usize * 2;
        rest /= 100;
        digits[end - 2..end].copy_from_slice(&PAIRS[pair..pair + 2]);
        end -= 2;
    }
    if rest >= 10 {
        let pair = rest as usize * 2;
        digits[end - 2..end].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        digits[end - 1] = b'0' + rest as u8;
    }
    (digits, len)
}

/// A fixed array of I/O slices, so a write needs no allocation.
struct IovList<'a> {
    slices: [IoSlice<'a>; MAX_IOV],
    len: usize,
    bytes: usize,
    /// No more than this many bytes are taken (a chunk in progress).
    limit: usize,
}

impl<'a> IovList<'a> {
    fn new(limit: usize) -> IovList<'a> {
        IovList {
            slices: [IoSlice::new(&[]); MAX_IOV],
            len: 0,
            bytes: 0,
            limit,
        }
    }

    fn full(&self) -> bool {
        self.len >= MAX_IOV - 1 || self.bytes >= self.limit
    }

    /// Adds `bytes` (cut to the limit); returns how many were taken.
    fn push(&mut self, bytes: &'a [u8]) -> usize {
        let take = bytes.len().min(self.limit - self.bytes);
        if take > 0 && self.len < MAX_IOV - 1 {
            self.slices[self.len] = IoSlice::new(&bytes[..take]);
            self.len += 1;
            self.bytes += take;
            take
        } else {
            0
        }
    }

    /// A place for a slice known later (the chunk head); it does not count to the limit.
    fn reserve(&mut self) -> usize {
        self.len += 1;
        self.len - 1
    }

    fn set(&mut self, i: usize, bytes: &'a [u8]) {
        self.slices[i] = IoSlice::new(bytes);
    }

    /// Adds a slice that does not count to the limit (the chunk's closing CRLF); `full`
    /// keeps one place free for it.
    fn set_extra(&mut self, bytes: &'a [u8]) {
        self.slices[self.len] = IoSlice::new(bytes);
        self.len += 1;
    }

    fn total(&self) -> usize {
        self.slices[..self.len].iter().map(|s| s.len()).sum()
    }

    fn as_slice(&self) -> &[IoSlice<'a>] {
        &self.slices[..self.len]
    }
}

/// What rendering hooks a subscriber needs from its server when it is about to write.
pub trait ControlRenderer {
    /// Appends an "entries were lost" notice (SSE `event: dropped`); TCP has none.
    /// `exact` is false when the count is only a lower bound (ids of an earlier run).
    fn dropped(&self, out: &mut Vec<u8>, count: u64, exact: bool);
    /// Appends a heartbeat.
    fn heartbeat(&self, out: &mut Vec<u8>);
}

/// Result of trying to send a subscriber what it is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything owed has been written.
    Drained,
    /// The socket is full; wait for it to become writable.
    Blocked,
    /// The per-turn byte budget ran out with more to send and the socket still writable.
    Budget,
    /// Behind the buffer and everything rendered was sent: render more from disk.
    Refill,
}

/// Where a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// In the shared buffer: the next entry, and how much of its frame already went out.
    Live { seq: u64, offset: u32 },
    /// Behind the buffer: entries from `seq` on are rendered from disk. `hint` is where
    /// entry `seq` starts in its file, when known.
    Disk {
        seq: u64,
        hint: Option<(SourceRef, u64)>,
    },
}

/// Losses not yet told to the client.
#[derive(Debug, Clone, Copy, Default)]
struct Drops {
    count: u64,
    inexact: bool,
    any: bool,
}

/// The framing of a chunked HTTP/1.1 body: each write is one chunk.
#[derive(Debug, Clone, Copy, Default)]
struct Chunking {
    head: [u8; 18],
    head_len: u8,
    head_sent: u8,
    payload_left: usize,
    tail_left: u8,
}

impl Chunking {
    fn in_progress(&self) -> bool {
        self.head_sent < self.head_len || self.payload_left > 0 || self.tail_left > 0
    }

    fn start(&mut self, payload: usize) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digits = (usize::BITS - payload.leading_zeros()).div_ceil(4).max(1) as usize;
        self.head = [0; 18];
        for i in 0..digits {
            self.head[digits - 1 - i] = HEX[(payload >> (4 * i)) & 0xf];
        }
        self.head[digits] = b'\r';
        self.head[digits + 1] = b'\n';
        self.head_len = (digits + 2) as u8;
        self.head_sent = 0;
        self.payload_left = payload;
        self.tail_left = 2;
    }
}

/// A client's filter as the buffer knows it: its bit in each entry's mask, and the first
/// entry whose mask has that bit (older ones are judged from disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterBit {
    pub id: FilterId,
    pub valid_from: u64,
}

/// One streaming client of a stream.
#[derive(Debug)]
pub struct Subscriber {
    pub wire: Wire,
    pub at: At,
    /// Only entries this filter wants (SPEC §14 client filters).
    pub filter: Option<FilterBit>,
    /// The buffer had no place for this client's wire: every entry comes from disk.
    disk_only: bool,
    /// Written as is, outside any body framing: the response head first, the end of a
    /// chunked body last.
    raw: Vec<u8>,
    raw_sent: usize,
    /// Whole frames owed before the position: the rest of a frame the buffer evicted
    /// halfway, or frames rendered from disk.
    pending: Vec<u8>,
    pending_sent: usize,
    /// Events owed at the next frame boundary (connected, dropped, heartbeat, goodbye).
    control: Vec<u8>,
    control_sent: usize,
    chunking: Option<Chunking>,
    /// The body is over: end it (chunked) once everything is sent.
    ending: bool,
    ended: bool,
    unannounced: Drops,
    heartbeat_due: bool,
    /// Entries lost over this client's life (their bytes were gone from disk).
    pub dropped: u64,
    pub bytes_sent: u64,
}

#[derive(Clone, Copy, Default)]
enum Seg {
    Raw,
    ChunkHead,
    Pending,
    FrameRest,
    Control,
    #[default]
    Frames,
    ChunkTail,
}

impl Subscriber {
    /// A client of `ring` in `wire` whose first entry is `seq`; `chunked` frames its body
    /// as HTTP/1.1 chunks. `in_ring`: the buffer frames `wire` (it had a place for it).
    pub fn new(
        wire: Wire,
        filter: Option<FilterBit>,
        ring: &Ring,
        seq: u64,
        chunked: bool,
        in_ring: bool,
    ) -> Subscriber {
        let mut sub = Subscriber {
            wire,
            at: At::Disk { seq, hint: None },
            filter,
            disk_only: !in_ring,
            raw: Vec::new(),
            raw_sent: 0,
            pending: Vec::new(),
            pending_sent: 0,
            control: Vec::new(),
            control_sent: 0,
            chunking: chunked.then(Chunking::default),
            ending: false,
            ended: false,
            unannounced: Drops::default(),
            heartbeat_due: false,
            dropped: 0,
            bytes_sent: 0,
        };
        sub.rejoin(ring);
        sub
    }

    /// Whether entry `seq` can be sent from the buffer (held in this client's wire, and
    /// judged by its filter).
    fn in_buffer(&self, ring: &Ring, seq: u64) -> bool {
        if self.disk_only || self.filter.is_some_and(|f| seq < f.valid_from) {
            return false;
        }
        ring.holds(self.wire, seq) || seq >= ring.next_seq()
    }

    fn mask(&self) -> Option<u64> {
        self.filter.map(|f| f.id.bit())
    }

    /// The buffer frames this client's wire (it is not served from disk only).
    pub fn in_ring(&self) -> bool {
        !self.disk_only
    }

    /// The next entry this client will get.
    pub fn next_seq(&self) -> u64 {
        match self.at {
            At::Live { seq, .. } | At::Disk { seq, .. } => seq,
        }
    }

    /// The position in the shared buffer, for pacing; `None` while served from disk.
    pub fn live_seq(&self) -> Option<u64> {
        match self.at {
            At::Live { seq, .. } => Some(seq),
            At::Disk { .. } => None,
        }
    }

    pub fn on_disk(&self) -> bool {
        matches!(self.at, At::Disk { .. })
    }

    /// Queues bytes to go out as they are, before anything else (the response head).
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
    }

    /// Queues bytes to go out before the next frame (at a frame boundary).
    pub fn queue_control(&mut self, bytes: &[u8]) {
        self.control.extend_from_slice(bytes);
    }

    /// Ends the body once everything owed is sent (the last chunk of a chunked body).
    pub fn end_body(&mut self) {
        self.ending = true;
    }

    /// Asks for a heartbeat at the next write; several due heartbeats collapse into one.
    pub fn request_heartbeat(&mut self) {
        self.heartbeat_due = true;
    }

    /// Counts entries this client will never get; it is told at the next frame boundary.
    pub fn note_lost(&mut self, count: u64, exact: bool) {
        if count > 0 || !exact {
            self.dropped += count;
            self.unannounced.count += count;
            self.unannounced.inexact |= !exact;
            self.unannounced.any = true;
        }
    }

    /// Frames rendered from disk still unsent.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len() - self.pending_sent
    }

    /// Room for frames rendered from disk: a buffer where the caller appends whole frames.
    pub fn pending_buffer(&mut self) -> &mut Vec<u8> {
        if self.pending_sent > 0 && self.pending_sent * 2 >= self.pending.len() {
            self.pending.drain(..self.pending_sent);
            self.pending_sent = 0;
        }
        &mut self.pending
    }

    /// True when nothing is owed: no bytes queued, nothing behind the buffer's end.
    pub fn is_caught_up(&self, ring: &Ring) -> bool {
        self.raw_sent >= self.raw.len()
            && self.pending_sent >= self.pending.len()
            && self.control_sent >= self.control.len()
            && !self.heartbeat_due
            && !self.unannounced.any
            && !self.chunking.is_some_and(|c| c.in_progress())
            && matches!(self.at, At::Live { seq, .. } if seq >= ring.next_seq())
    }

    /// A client in the part of the buffer about to be evicted moves to disk, keeping any
    /// half-sent frame whole. Returns true when it moved.
    pub fn fall_behind(&mut self, ring: &Ring, planned_base: u64) -> bool {
        let At::Live { seq, offset } = self.at else {
            return false;
        };
        if seq >= planned_base {
            return false;
        }
        let mut next = seq;
        if offset > 0 {
            let rest = ring.frame_rest(self.wire, seq, offset);
            debug_assert!(
                !rest.is_empty(),
                "the rest of frame {seq} is still buffered"
            );
            self.pending_buffer().extend_from_slice(rest);
            next += 1;
        }
        self.at = At::Disk {
            seq: next,
            hint: None,
        };
        true
    }

    /// Back into the shared buffer once the position is held there again.
    pub fn rejoin(&mut self, ring: &Ring) -> bool {
        if let At::Disk { seq, .. } = self.at
            && self.in_buffer(ring, seq)
        {
            self.at = At::Live {
                seq: seq.min(ring.next_seq()),
                offset: 0,
            };
            return true;
        }
        false
    }

    fn render_pending(&mut self, render: &dyn ControlRenderer) {
        if self.control_sent >= self.control.len() && !self.control.is_empty() {
            self.control.clear();
            self.control_sent = 0;
            if self.control.capacity() > 4096 {
                self.control = Vec::new();
            }
        }
        if self.unannounced.any {
            let d = std::mem::take(&mut self.unannounced);
            render.dropped(&mut self.control, d.count, !d.inexact);
        }
        if self.heartbeat_due {
            render.heartbeat(&mut self.control);
            self.heartbeat_due = false;
        }
    }

    /// Writes what is owed until the socket blocks, everything is sent, or `budget` bytes
    /// went out. Errors (including a peer that closed) are returned for the caller to close.
    pub fn flush<W: Write>(
        &mut self,
        ring: &Ring,
        render: &dyn ControlRenderer,
        out: &mut W,
        mut budget: usize,
    ) -> io::Result<Flush> {
        self.render_pending(render);
        loop {
            if budget == 0 {
                return Ok(Flush::Budget);
            }
            let in_chunk = self.chunking.is_some_and(|c| c.in_progress());
            let limit = match self.chunking {
                Some(c) if in_chunk => c.payload_left,
                _ => usize::MAX,
            };
            // Declared before the slices that borrow it.
            let head: [u8; 18];
            let mut iov = IovList::new(limit);
            let mut segs = SegList::default();
            if !in_chunk && self.raw_sent < self.raw.len() {
                segs.add(Seg::Raw, iov.push(&self.raw[self.raw_sent..]));
            }
            let head_slot = match self.chunking {
                Some(c) if !in_chunk || c.head_sent < c.head_len => {
                    Some((iov.reserve(), segs.reserve()))
                }
                _ => None,
            };
            let payload_start = iov.bytes;
            // Order on the wire: owed frames, then the rest of a torn frame when control
            // bytes wait for its end, control bytes, then frames from the buffer.
            if self.pending_sent < self.pending.len() {
                segs.add(Seg::Pending, iov.push(&self.pending[self.pending_sent..]));
            }
            let has_control = self.control_sent < self.control.len();
            let mut frames_from = None;
            if let At::Live { seq, offset } = self.at {
                frames_from = Some((seq, offset));
                if offset > 0 && has_control {
                    let rest = ring.frame_rest(self.wire, seq, offset);
                    segs.add(Seg::FrameRest, iov.push(rest));
                    frames_from = Some((seq + 1, 0));
                }
            }
            if has_control {
                segs.add(Seg::Control, iov.push(&self.control[self.control_sent..]));
            }
            if let Some((seq, offset)) = frames_from {
                let before = iov.bytes;
                ring.gather(self.wire, self.mask(), seq, offset, &mut iov);
                segs.add(Seg::Frames, iov.bytes - before);
            }
            let payload = iov.bytes - payload_start;
            let mut started_chunk = false;
            if let Some(c) = self.chunking.as_mut() {
                if !in_chunk && payload > 0 {
                    c.start(payload);
                    started_chunk = true;
                }
                head = c.head;
                if let Some((io_slot, seg_slot)) = head_slot {
                    let rest: &[u8] = if c.in_progress() {
                        &head[c.head_sent as usize..c.head_len as usize]
                    } else {
                        &[]
                    };
                    iov.set(io_slot, rest);
                    segs.set(seg_slot, Seg::ChunkHead, rest.len());
                }
                if c.in_progress() && payload >= c.payload_left && c.tail_left > 0 {
                    let tail = &b"\r\n"[2 - c.tail_left as usize..];
                    iov.set_extra(tail);
                    segs.add(Seg::ChunkTail, tail.len());
                }
            }
            let total = iov.total();
            if total == 0 {
                if self.ending && !self.ended && !self.on_disk() {
                    self.ended = true;
                    if self.chunking.is_some() {
                        self.raw.extend_from_slice(b"0\r\n\r\n");
                        continue;
                    }
                }
                return Ok(if self.on_disk() {
                    Flush::Refill
                } else {
                    Flush::Drained
                });
            }
            let written = match out.write_vectored(iov.as_slice()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    if started_chunk {
                        // Nothing of it went out: not a commitment. The next write sizes
                        // its chunk to what it has then.
                        self.chunking = Some(Chunking::default());
                    }
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Ok(Flush::Blocked);
                }
                Err(e) => return Err(e),
            };
            self.bytes_sent += written as u64;
            budget = budget.saturating_sub(written);
            self.consume(ring, &segs, written);
            if started_chunk && self.chunking.is_some_and(|c| c.head_sent == 0) {
                // The write ended before the chunk began (in the head before it).
                self.chunking = Some(Chunking::default());
            }
        }
    }

    fn consume(&mut self, ring: &Ring, segs: &SegList, written: usize) {
        let mut left = written;
        for &(kind, len) in &segs.items[..segs.len] {
            let take = left.min(len);
            match kind {
                Seg::Raw => {
                    self.raw_sent += take;
                    if self.raw_sent >= self.raw.len() {
                        self.raw = Vec::new();
                        self.raw_sent = 0;
                    }
                }
                Seg::ChunkHead => {
                    if let Some(c) = &mut self.chunking {
                        c.head_sent += take as u8;
                    }
                }
                Seg::ChunkTail => {
                    if let Some(c) = &mut self.chunking {
                        c.tail_left -= take as u8;
                    }
                }
                Seg::Pending => {
                    self.pending_sent += take;
                    if self.pending_sent >= self.pending.len() {
                        self.pending.clear();
                        self.pending_sent = 0;
                        if self.pending.capacity() > REFILL_BYTES_MIN {
                            self.pending = Vec::new();
                        }
                    }
                }
                Seg::FrameRest | Seg::Frames => {
                    if let At::Live { seq, offset } = &mut self.at {
                        ring.advance(
                            self.wire,
                            self.filter.map(|f| f.id.bit()),
                            seq,
                            offset,
                            take,
                        );
                    }
                }
                Seg::Control => {
                    self.control_sent += take;
                    if self.control_sent >= self.control.len() {
                        // Idle clients are the common case: hold no buffer between sends.
                        self.control = Vec::new();
                        self.control_sent = 0;
                    }
                }
            }
            if matches!(
                kind,
                Seg::Pending | Seg::FrameRest | Seg::Control | Seg::Frames
            ) && let Some(c) = &mut self.chunking
            {
                c.payload_left = c.payload_left.saturating_sub(take);
            }
            left -= take;
            if take < len {
                break;
            }
        }
    }
}

/// The pieces of one `writev`, in order, to account a partial write.
#[derive(Default)]
struct SegList {
    items: [(Seg, usize); 8],
    len: usize,
}

impl SegList {
    fn add(&mut self, kind: Seg, bytes: usize) {
        if bytes > 0 {
            self.items[self.len] = (kind, bytes);
            self.len += 1;
        }
    }

    /// A place for an item known later (the chunk head, sized by what follows it).
    fn reserve(&mut self) -> usize {
        self.items[self.len] = (Seg::ChunkHead, 0);
        self.len += 1;
        self.len - 1
    }

    fn set(&mut self, i: usize, kind: Seg, bytes: usize) {
        self.items[i] = (kind, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Marks;
    impl ControlRenderer for Marks {
        fn dropped(&self, out: &mut Vec<u8>, count: u64, exact: bool) {
            out.extend_from_slice(format!("<dropped {count} {exact}>").as_bytes());
        }
        fn heartbeat(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(b"<hb>");
        }
    }

    /// A socket that accepts at most `room` bytes per call and `cap` in total before it
    /// reports WouldBlock.
    struct Sink {
        data: Vec<u8>,
        room: usize,
        cap: usize,
    }

    impl Sink {
        fn new(room: usize, cap: usize) -> Sink {
            Sink {
                data: Vec::new(),
                room,
                cap,
            }
        }
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut n = 0;
            let limit = self.room.min(self.cap - self.data.len());
            if limit == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            for b in bufs {
                let take = b.len().min(limit - n);
                self.data.extend_from_slice(&b[..take]);
                n += take;
                if n == limit {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn push_json(r: &mut Ring, json: &[u8]) -> u64 {
        r.push(
            &[Format::Json],
            &EntryParts {
                line: b"",
                json,
                mask: 0,
            },
        )
    }

    fn ring_with(n: u64, capacity: usize, wires: &[Wire]) -> Ring {
        let mut r = Ring::new(capacity, 1);
        for &w in wires {
            r.enable(w);
        }
        for i in 0..n {
            push_json(&mut r, format!("{{\"n\":{}}}", i + 1).as_bytes());
        }
        r
    }

    fn lines(range: std::ops::RangeInclusive<u64>) -> String {
        range.map(|i| format!("{{\"n\":{i}}}\n")).collect()
    }

    /// The payload of a chunked body cut anywhere (the last chunk may be unfinished).
    fn dechunk_partial(mut body: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        loop {
            let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
                return (out, false);
            };
            let size = usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap(), 16)
                .expect("chunk size");
            body = &body[eol + 2..];
            let take = size.min(body.len());
            out.extend_from_slice(&body[..take]);
            if take < size || body.len() < size + 2 {
                return (out, false);
            }
            body = &body[size + 2..];
        }
    }

    /// The payload of a chunked body, checking its framing.
    fn dechunk(mut body: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        loop {
            let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
                assert!(body.is_empty(), "stray bytes {body:?}");
                return (out, false);
            };
            let size = usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap(), 16)
                .expect("chunk size");
            body = &body[eol + 2..];
            if size == 0 {
                assert_eq!(body, b"\r\n");
                return (out, true);
            }
            out.extend_from_slice(&body[..size]);
            assert_eq!(&body[size..size + 2], b"\r\n", "chunk data ends with CRLF");
            body = &body[size + 2..];
        }
    }

    #[test]
    fn decimals_are_the_numbers_at_every_length() {
        let mut values = vec![0, u64::MAX, u64::MAX - 1];
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            values.extend([p - 1, p, p + 1, next / 2]);
            p = next;
        }
        values.extend([p - 1, p, p + 1]);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
        }
        let mut out = b"id: ".to_vec();
        for v in values {
            out.truncate(4);
            push_decimal(&mut out, v);
            assert_eq!(&out[4..], v.to_string().as_bytes(), "{v}");
        }
    }

    /// Counting on across every carry (9 → 10 … 10^19 - 1 → 10^19), jumping back and
    /// ahead, and repeating a number: the text is always the number's.
    #[test]
    fn seq_text_counts_on_and_follows_jumps() {
        let mut ids = SeqText::default();
        let mut starts = vec![0, 1, 5, u64::MAX - 3, 42, 42];
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            starts.extend([p.saturating_sub(3), next - 1]);
            p = next;
        }
        starts.push(p - 3);
        let mut out = Vec::new();
        for start in starts {
            for v in (start..=start.saturating_add(5)).chain([start]) {
                out.clear();
                out.extend_from_slice(b"id: ");
                ids.push(&mut out, v);
                assert_eq!(&out[4..], v.to_string().as_bytes(), "{v} after {start}");
            }
        }
    }

    /// Random pushes, writes of random sizes, clients falling behind to "disk" (frames
    /// rendered again from the payloads, as `Stream::refill` does) and rejoining, eviction
    /// after every round, chunked and not: every client's bytes are exactly every frame,
    /// in order, nothing torn, nothing repeated.
    #[test]
    fn clients_moving_between_buffer_and_disk_get_every_frame_whole() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n.max(1)
        };
        for round in 0..200 {
            let capacity = 1 + next(12) as usize;
            let mut ring = Ring::new(capacity, 1);
            let payload = |seq: u64| {
                format!(
                    "{{\"n\":{seq},\"pad\":\"{}\"}}",
                    "x".repeat((seq * 7 % 23) as usize)
                )
            };
            let chunked = round % 2 == 0;
            let mut subs: Vec<(Subscriber, Sink)> = (0..4)
                .map(|_| {
                    assert!(ring.enable(Wire::SSE));
                    (
                        Subscriber::new(Wire::SSE, None, &ring, ring.next_seq(), chunked, true),
                        Sink::new(usize::MAX, usize::MAX),
                    )
                })
                .collect();
            let total = 200 + next(200);
            let mut pushed = 0;
            let mut turns = 0;
            while pushed < total || subs.iter().any(|(s, _)| !s.is_caught_up(&ring)) {
                turns += 1;
                if turns == 100_000 {
                    let want: Vec<u8> = (1..=total)
                        .flat_map(|seq| {
                            let mut f = Vec::new();
                            Wire::SSE.frame(&mut f, seq, payload(seq).as_bytes());
                            f
                        })
                        .collect();
                    for (i, (_, sink)) in subs.iter().enumerate() {
                        let (body, _) = dechunk_partial(&sink.data);
                        let d = body.iter().zip(&want).position(|(a, b)| a != b);
                        if let Some(d) = d {
                            eprintln!(
                                "client {i} differs at {d}: got {:?} want {:?}",
                                String::from_utf8_lossy(
                                    &body[d.saturating_sub(60)..(d + 60).min(body.len())]
                                ),
                                String::from_utf8_lossy(
                                    &want[d.saturating_sub(60)..(d + 60).min(want.len())]
                                )
                            );
                        } else {
                            eprintln!(
                                "client {i}: {} of {} bytes, same so far",
                                body.len(),
                                want.len()
                            );
                        }
                    }
                }
                assert!(
                    turns < 100_000,
                    "round {round}: stuck: {:?}",
                    subs.iter()
                        .map(|(s, _)| (
                            s.at,
                            s.pending_bytes(),
                            s.chunking,
                            ring.next_seq(),
                            pushed,
                            total
                        ))
                        .collect::<Vec<_>>()
                );
                for _ in 0..next(6) {
                    if pushed < total {
                        pushed += 1;
                        let p = payload(ring.next_seq());
                        let seq = push_json(&mut ring, p.as_bytes());
                        assert_eq!(seq, pushed);
                    }
                }
                let planned = ring.planned_base();
                for (sub, sink) in subs.iter_mut() {
                    sub.fall_behind(&ring, planned);
                    sink.room = 1 + next(300) as usize;
                    sink.cap = sink.data.len() + next(900) as usize;
                    let budget = 1 + next(2000) as usize;
                    let mut refills = 0;
                    loop {
                        match sub.flush(&ring, &Marks, sink, budget) {
                            Ok(Flush::Refill) if refills < 3 => {
                                refills += 1;
                                // What `Stream::refill` does, from the payloads.
                                let At::Disk { mut seq, .. } = sub.at else {
                                    unreachable!()
                                };
                                let mut n = 0;
                                loop {
                                    sub.at = At::Disk { seq, hint: None };
                                    if sub.rejoin(&ring) || seq >= ring.next_seq() || n == 3 {
                                        break;
                                    }
                                    let p = payload(seq);
                                    Wire::SSE.frame(sub.pending_buffer(), seq, p.as_bytes());
                                    seq += 1;
                                    n += 1;
                                }
                            }
                            _ => break,
                        }
                    }
                    // As `flush_stream` does: a client that rejoined in the part about to
                    // be evicted leaves it again, keeping any half-sent frame whole.
                    sub.fall_behind(&ring, planned);
                }
                ring.evict_excess();
            }
            let want: Vec<u8> = (1..=total)
                .flat_map(|seq| {
                    let mut f = Vec::new();
                    Wire::SSE.frame(&mut f, seq, payload(seq).as_bytes());
                    f
                })
                .collect();
            for (i, (_, sink)) in subs.iter().enumerate() {
                let body = if chunked {
                    dechunk(&sink.data).0
                } else {
                    sink.data.clone()
                };
                assert!(
                    body == want,
                    "round {round} client {i}: got {} bytes, want {}; first difference at {:?}",
                    body.len(),
                    want.len(),
                    body.iter().zip(&want).position(|(a, b)| a != b)
                );
            }
        }
    }

    #[test]
    fn clients_on_disk_share_a_bounded_amount_of_rendered_frames() {
        assert_eq!(refill_bytes(0), REFILL_BYTES);
        assert_eq!(refill_bytes(1), REFILL_BYTES);
        assert_eq!(refill_bytes(32), REFILL_BYTES);
        assert_eq!(refill_bytes(64), 32 * 1024);
        assert_eq!(refill_bytes(1000), REFILL_BYTES_MIN);
        for n in 1..5000 {
            assert!(refill_bytes(n) * n <= REFILL_BYTES_PER_STREAM.max(n * REFILL_BYTES_MIN));
        }
    }

    #[test]
    fn frames_are_rendered_once_in_each_wire_in_use() {
        let r = ring_with(2, 10, &[Wire::SSE, Wire::NDJSON]);
        let mut s = Subscriber::new(Wire::SSE, None, &r, 1, false, true);
        let mut sink = Sink::new(usize::MAX, usize::MAX);
        assert_eq!(
            s.flush(&r, &Marks, &mut sink, usize::MAX).unwrap(),
            Flush::Drained
        );
        assert_eq!(
            String::from_utf8(sink.data).unwrap(),
            "id: 1\ndata: {\"n\":1}\n\nid: 2\ndata: {\"n\":2}\n\n"
        );
        let mut t = Subscriber::new(Wire::NDJSON, None, &r, 1, false, true);
        let mut sink = Sink::new(usize::MAX, usize::MAX);
        t.flush(&r, &Marks, &mut sink, usize::MAX).unwrap();
        assert_eq!(String::from_utf8(sink.data).unwrap(), lines(1..=2));
        assert!(t.is_caught_up(&r));
    }

    #[test]
    fn nothing_is_rendered_for_nobody() {
        let mut r = Ring::new(10, 7);
        assert_eq!(push_json(&mut r, b"{}"), 7);
        assert_eq!((r.next_seq(), r.held_bytes()), (8, 0));
        r.enable(Wire::NDJSON);
        assert!(
            !r.holds(Wire::NDJSON, 7),
            "rendered only from the next entry on"
        );
        push_json(&mut r, b"x");
        assert!(r.holds(Wire::NDJSON, 8));
        assert!(!r.holds(Wire::SSE, 8));
        let s = Subscriber::new(Wire::NDJSON, None, &r, 7, false, true);
        assert!(
            s.on_disk(),
            "an entry the buffer has not in this wire comes from disk"
        );
    }

    #[test]
    fn tiny_writes_keep_every_byte_in_order() {
        let r = ring_with(3000, 5000, &[Wire::NDJSON]);
        let mut s = Subscriber::new(Wire::NDJSON, None, &r, 1, false, true);
        s.queue_raw(b"HEAD\n");
        s.queue_control(b"HELLO\n");
        let mut sink = Sink::new(7, usize::MAX);
        assert_eq!(
            s.flush(&r, &Marks, &mut sink, usize::MAX).unwrap(),
            Flush::Drained
        );
        assert_eq!(
            String::from_utf8(sink.data).unwrap(),
            format!("HEAD\nHELLO\n{}", lines(1..=3000))
        );
    }

    #[test]
    fn control_waits_for_a_frame_boundary() {
        let r = ring_with(3, 10, &[Wire::NDJSON]);
        let mut s = Subscriber::new(Wire::NDJSON, None, &r, 1, false, true);
        let mut sink = Sink::new(usize::MAX, 4);
        assert_eq!(
            s.flush(&r, &Marks, &mut sink, usize::MAX).unwrap(),
            Flush::Blocked
        );
        assert_eq!(s.at, At::Live { seq: 1, offset: 4 });
        s.request_heartbeat();
        sink.cap = usize::MAX;
        s.flush(&r, &Marks, &mut sink, usize::MAX).unwrap();
        assert_eq!(
            String::from_utf8(sink.data).unwrap(),
            format!("{{\"n\":1}}\n<hb>{}", lines(2..=3))
        );
    }

    #[test]
    fn a_client_behind_the_buffer_moves_to_disk_finishing_its_torn_frame() {
        let mut r = ring_with(5, 5, &[Wire::NDJSON]);
        let mut s = Subscriber::new(Wire::NDJSON, None, &r, 1, false, true);
        let mut sink = Sink::new(usize::MAX, 3);
        assert_eq!(
            s.flush(&r, &Marks, &mut sink, usize::MAX).unwrap(),
            Flush::Blocked
        );
        for i in 6..=12u64 {
            push_json(&mut r, format!("{{\"n\":{i}}}").as_bytes());
        }
        let base = r.planned_base();
        assert_eq!(base, 8);
        assert!(s.fall_behind(&r, base));
        assert_eq!(s.at, At::Disk { seq: 2, hint: None });
        r.evict_excess();
        sink.cap = usize::MAX;
        assert_eq!(
            s.flush(&r, &Marks, &mut sink, usize::MAX).unwrap(),
            Flush::Refill,
            "the rest of its frame, then entries 2.. from disk"
        );
        assert_eq!(String::from_utf8(sink.data.clone()).unwrap(), lines(1..=1));
        // What the stream renders from disk goes out before the buffer's frames.
        s.pending_buffer()
            .extend_from_slice(lines(2..=7).as_bytes());
        s.at = At::Disk { seq: 8, hint: None };
        assert!(s.rejoin(&r));
        s.flush(&r, &Marks, &mut sink, usize::MAX).unwrap();
        assert_eq!(String::from_utf8(sink.data).unwrap(), lines(1..=12));
        assert_eq!(s.dropped, 0);
    }

    #[test]
    fn losses_are_told_at_a_frame_boundary() {
        let r = ring_with(2, 10, &[Wire::SSE]);
        let mut s = Subscriber::new(Wire::SSE, None, &r, 1, false, true);
        s.note_lost(5, false);
        let mut sink = Sink::new(usize::MAX, usize::MAX);
        s.flush(&r, &Marks, &mut sink, usize::MAX).unwrap();
        assert!(
            String::from_utf8(sink.data)
                .unwrap()
                .starts_with("<dropped 5 false>id: 1\n")
        );
        assert_eq!(s.dropped, 5);
    }

    #[test]
    fn a_chunked_body_frames_each_write_whatever_the_socket_takes() {
        for room in [1, 2, 3, 5, 7, 64, 1000, usize::MAX] {
            let mut r = ring_with(50, 100, &[Wire::SSE]);
            let mut s = Subscriber::new(Wire::SSE, None, &r, 1, true, true);
            s.queue_raw(b"HTTP/1.1 200 OK\r\n\r\n");
            s.queue_control(b"event: connected\n\n");
            let mut sink = Sink::new(room, usize::MAX);
            s.flush(&r, &Marks, &mut sink, usize::MAX).unwrap();
            for i in 51..=60u64 {
                push_json(&mut r, format!("{{\"n\":{i}}}").as_bytes());
            }
            s.request_heartbeat();
            s.flush(&r, &Marks, &mut sink, usize::MAX).unwrap();
            s.end_body();
            assert_eq!(
                s.flush(&r, &Marks, &mut sink, usize::MAX).unwrap(),
                Flush::Drained
            );
            let text = sink.data;
            let body = text
                .strip_prefix(b"HTTP/1.1 200 OK\r\n\r\n".as_slice())
                .unwrap_or_else(|| {
                    panic!(
                        "room {room}: the head goes first, unframed: {:?}",
                        String::from_utf8_lossy(&text[..60.min(text.len())])
                    )
                });
            let (payload, ended) = dechunk(body);
            assert!(ended, "room {room}");
            let want: String = std::iter::once("event: connected\n\n".to_string())
                .chain((1..=50).map(|i| format!("id: {i}\ndata: {{\"n\":{i}}}\n\n")))
                .chain(std::iter::once("<hb>".to_string()))
                .chain((51..=60).map(|i| format!("id: {i}\ndata: {{\"n\":{i}}}\n\n")))
                .collect();
            assert_eq!(String::from_utf8(payload).unwrap(), want, "room {room}");
        }
    }

    #[test]
    fn a_chunk_that_was_not_started_is_not_owed() {
        let r = ring_with(2, 10, &[Wire::SSE]);
        let mut s = Subscriber::new(Wire::SSE, None, &r, 1, true, true);
        let mut sink = Sink::new(usize::MAX, 0);
        assert_eq!(
            s.flush(&r, &Marks, &mut sink, usize::MAX).unwrap(),
            Flush::Blocked
        );
        assert!(!s.chunking.unwrap().in_progress());
    }

    #[test]
    fn eviction_frees_chunks_and_bytes() {
        let mut r = Ring::new(10, 1);
        r.enable(Wire::NDJSON);
        let line = vec![b'x'; 1000];
        for _ in 0..1000 {
            push_json(&mut r, &line);
            r.evict_excess();
        }
        assert_eq!(r.len(), 10);
        assert!(
            r.held_bytes() < 2 * CHUNK_BYTES + 20_000,
            "{}",
            r.held_bytes()
        );
        assert!(r.chunks.len() <= 2);
    }

    #[test]
    fn byte_ceiling_bounds_huge_entries() {
        let mut r = Ring::new(1000, 1);
        r.enable(Wire::NDJSON);
        let line = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            push_json(&mut r, &line);
            r.evict_excess();
        }
        assert!(
            r.held_bytes() <= MAX_RING_BYTES + (1 << 20) + 1,
            "{}",
            r.held_bytes()
        );
        assert!(r.len() < 100);
    }

    #[test]
    fn room_before_paces_reading_to_the_most_advanced_client() {
        let r = ring_with(8, 10, &[Wire::NDJSON]);
        assert_eq!(r.room_before(1), 2);
        assert_eq!(r.room_before(9), 10);
    }

    #[test]
    fn budget_stops_a_hungry_client() {
        let r = ring_with(10_000, 10_000, &[Wire::NDJSON]);
        let mut s = Subscriber::new(Wire::NDJSON, None, &r, 1, false, true);
        let mut sink = Sink::new(1000, usize::MAX);
        assert_eq!(s.flush(&r, &Marks, &mut sink, 5000).unwrap(), Flush::Budget);
        assert_eq!(sink.data.len(), 5000);
    }
}
