//! Fan-out: one bounded buffer of rendered frames per stream; a client is a position in it.
//!
//! Each entry is serialized once, then stored in the framings the stream's servers need:
//! SSE (`id: N\ndata: {json}\n\n`) and/or TCP (`{json}\n`). Frames are appended back to back
//! into chunks of about 64 KiB, so a client that is behind by a thousand entries is sent
//! them with one `writev` of a few slices, and no client ever owns a copy of an entry.
//!
//! The buffer keeps at most `capacity` entries (the largest `buffer_size` of the stream's
//! servers) and [`MAX_RING_BYTES`]. Eviction is explicit ([`Ring::evict_excess`]) and the
//! reactor calls it only after every client has been moved past what will be evicted
//! ([`Subscriber::enforce_lag`]): a client that falls too far behind skips ahead and counts
//! what it missed, and a frame it was halfway through is finished from a private copy, so
//! no client ever receives a torn frame.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

/// Frames are appended to the open chunk until it holds this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;
/// Byte ceiling for one stream's buffer, whatever `buffer_size` says: huge lines must not
/// turn a 1000-entry buffer into a gigabyte.
pub const MAX_RING_BYTES: usize = 64 * 1024 * 1024;
/// Slices per `writev`; each is a whole chunk or a control buffer.
const MAX_IOV: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Sse,
    Tcp,
}

#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    chunk: u64,
    sse: Span,
    tcp: Span,
}

impl Slot {
    fn span(&self, framing: Framing) -> Span {
        match framing {
            Framing::Sse => self.sse,
            Framing::Tcp => self.tcp,
        }
    }
}

#[derive(Default, Debug)]
struct Chunk {
    sse: Vec<u8>,
    tcp: Vec<u8>,
}

impl Chunk {
    fn bytes(&self, framing: Framing) -> &[u8] {
        match framing {
            Framing::Sse => &self.sse,
            Framing::Tcp => &self.tcp,
        }
    }

    fn held(&self) -> usize {
        self.sse.len() + self.tcp.len()
    }
}

#[derive(Debug)]
pub struct Ring {
    /// Sequence number of `slots[0]`; the first entry ever is 1.
    base_seq: u64,
    slots: VecDeque<Slot>,
    chunks: VecDeque<Chunk>,
    /// Absolute index of `chunks[0]`.
    chunk_base: u64,
    capacity: usize,
    keep_sse: bool,
    keep_tcp: bool,
    held_bytes: usize,
}

/// Where a client is: the next entry to send and how much of its frame already went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub seq: u64,
    pub offset: u32,
}

impl Ring {
    pub fn new(capacity: usize, keep_sse: bool, keep_tcp: bool) -> Ring {
        Ring {
            base_seq: 1,
            slots: VecDeque::new(),
            chunks: VecDeque::new(),
            chunk_base: 0,
            capacity: capacity.max(1),
            keep_sse,
            keep_tcp,
            held_bytes: 0,
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

    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// A cursor at the live end: the client gets entries from the next one on.
    pub fn tail(&self) -> Cursor {
        Cursor {
            seq: self.next_seq(),
            offset: 0,
        }
    }

    /// Appends one entry; `write_json` writes its JSON (no newlines) into the buffer it is
    /// given. Returns the entry's sequence number.
    pub fn push(&mut self, write_json: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let seq = self.next_seq();
        let need_new = match self.chunks.back() {
            None => true,
            Some(c) => c.sse.len() >= CHUNK_BYTES || c.tcp.len() >= CHUNK_BYTES,
        };
        if need_new {
            // Full size at once: growing by doubling would copy each chunk several times.
            let reserve = |keep: bool| {
                if keep {
                    Vec::with_capacity(CHUNK_BYTES)
                } else {
                    Vec::new()
                }
            };
            self.chunks.push_back(Chunk {
                sse: reserve(self.keep_sse),
                tcp: reserve(self.keep_tcp),
            });
        }
        let chunk_index = self.chunk_base + self.chunks.len() as u64 - 1;
        let chunk = self.chunks.back_mut().expect("a chunk was just ensured");
        let before = chunk.held();
        let mut slot = Slot {
            chunk: chunk_index,
            sse: Span::default(),
            tcp: Span::default(),
        };
        if self.keep_sse {
            let start = chunk.sse.len();
            chunk.sse.extend_from_slice(b"id: ");
            push_decimal(&mut chunk.sse, seq);
            chunk.sse.extend_from_slice(b"\ndata: ");
            let json_start = chunk.sse.len();
            write_json(&mut chunk.sse);
            let json_end = chunk.sse.len();
            chunk.sse.extend_from_slice(b"\n\n");
            slot.sse = Span {
                start: start as u32,
                len: (chunk.sse.len() - start) as u32,
            };
            if self.keep_tcp {
                let start = chunk.tcp.len();
                let (sse, tcp) = (&chunk.sse, &mut chunk.tcp);
                tcp.extend_from_slice(&sse[json_start..json_end]);
                chunk.tcp.push(b'\n');
                slot.tcp = Span {
                    start: start as u32,
                    len: (chunk.tcp.len() - start) as u32,
                };
            }
        } else {
            let start = chunk.tcp.len();
            write_json(&mut chunk.tcp);
            chunk.tcp.push(b'\n');
            slot.tcp = Span {
                start: start as u32,
                len: (chunk.tcp.len() - start) as u32,
            };
        }
        self.held_bytes += chunk.held() - before;
        self.slots.push_back(slot);
        seq
    }

    /// Where the buffer will start after [`evict_excess`](Self::evict_excess): every
    /// client must be at or past it before that call.
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

    /// A cursor that resumes after entry `last_seen` (SSE `Last-Event-ID`), and how many
    /// entries after it are no longer held.
    pub fn resume_after(&self, last_seen: u64) -> (Cursor, u64) {
        let want = last_seen.saturating_add(1);
        if want > self.next_seq() {
            // An id from before a restart: everything held is new to this client.
            return (
                Cursor {
                    seq: self.base_seq,
                    offset: 0,
                },
                0,
            );
        }
        let seq = want.max(self.base_seq);
        (Cursor { seq, offset: 0 }, seq - want)
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        let i = seq.checked_sub(self.base_seq)?;
        self.slots.get(usize::try_from(i).ok()?)
    }

    fn chunk(&self, index: u64) -> &Chunk {
        &self.chunks[(index - self.chunk_base) as usize]
    }

    /// The unsent part of the frame under the cursor.
    fn frame_rest(&self, framing: Framing, cursor: Cursor) -> &[u8] {
        match self.slot(cursor.seq) {
            None => &[],
            Some(slot) => {
                let span = slot.span(framing);
                let start = (span.start + cursor.offset) as usize;
                let end = (span.start + span.len) as usize;
                &self.chunk(slot.chunk).bytes(framing)[start.min(end)..end]
            }
        }
    }

    /// Appends slices covering everything from `cursor` on, at most `room` of them.
    fn gather<'a>(&'a self, framing: Framing, cursor: Cursor, out: &mut IovList<'a>) {
        let Some(first) = self.slot(cursor.seq) else {
            return;
        };
        let start = (first.span(framing).start + cursor.offset) as usize;
        let mut chunk = first.chunk;
        let mut from = start;
        let end_chunk = self.chunk_base + self.chunks.len() as u64;
        while chunk < end_chunk && !out.full() {
            let bytes = self.chunk(chunk).bytes(framing);
            if from < bytes.len() {
                out.push(&bytes[from..]);
            }
            chunk += 1;
            from = 0;
        }
    }

    /// Moves `cursor` forward by `n` bytes of frames.
    fn advance(&self, framing: Framing, cursor: &mut Cursor, mut n: usize) {
        while n > 0 {
            let Some(slot) = self.slot(cursor.seq) else {
                return;
            };
            let rest = (slot.span(framing).len - cursor.offset) as usize;
            if n < rest {
                cursor.offset += n as u32;
                return;
            }
            n -= rest;
            cursor.seq += 1;
            cursor.offset = 0;
        }
    }
}

pub fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A fixed array of I/O slices, so a write needs no allocation.
struct IovList<'a> {
    slices: [IoSlice<'a>; MAX_IOV],
    len: usize,
    bytes: usize,
}

impl<'a> IovList<'a> {
    fn new() -> IovList<'a> {
        IovList {
            slices: [IoSlice::new(&[]); MAX_IOV],
            len: 0,
            bytes: 0,
        }
    }

    fn full(&self) -> bool {
        self.len == MAX_IOV
    }

    fn push(&mut self, bytes: &'a [u8]) {
        if !bytes.is_empty() && !self.full() {
            self.slices[self.len] = IoSlice::new(bytes);
            self.len += 1;
            self.bytes += bytes.len();
        }
    }

    fn as_slice(&self) -> &[IoSlice<'a>] {
        &self.slices[..self.len]
    }
}

/// What rendering hooks a subscriber needs from its server when it is about to write.
pub trait ControlRenderer {
    /// Appends an "entries were skipped" notice (SSE `event: dropped`); TCP has none.
    fn dropped(&self, out: &mut Vec<u8>, count: u64);
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
}

/// One streaming client of a stream.
#[derive(Debug)]
pub struct Subscriber {
    pub framing: Framing,
    pub cursor: Cursor,
    /// How far behind (in entries) this client may fall: its server's `buffer_size`.
    pub lag_limit: usize,
    /// Bytes owed before the next frame: response head, SSE events, heartbeats.
    control: Vec<u8>,
    control_sent: usize,
    /// The rest of a frame this client was halfway through when it was evicted.
    detached: Vec<u8>,
    detached_sent: usize,
    /// Skipped entries not yet announced to the client.
    unannounced_drops: u64,
    heartbeat_due: bool,
    /// Entries skipped over this client's life.
    pub dropped: u64,
    pub bytes_sent: u64,
}

#[derive(Clone, Copy, Default)]
enum Seg {
    Detached,
    FrameRest,
    Control,
    #[default]
    Frames,
}

impl Subscriber {
    pub fn new(framing: Framing, cursor: Cursor, lag_limit: usize) -> Subscriber {
        Subscriber {
            framing,
            cursor,
            lag_limit: lag_limit.max(1),
            control: Vec::new(),
            control_sent: 0,
            detached: Vec::new(),
            detached_sent: 0,
            unannounced_drops: 0,
            heartbeat_due: false,
            dropped: 0,
            bytes_sent: 0,
        }
    }

    /// Queues bytes to go out before the next frame (at a frame boundary).
    pub fn queue_control(&mut self, bytes: &[u8]) {
        self.control.extend_from_slice(bytes);
    }

    /// Asks for a heartbeat at the next write; several due heartbeats collapse into one.
    pub fn request_heartbeat(&mut self) {
        self.heartbeat_due = true;
    }

    /// Counts entries skipped before the client even started (replay gap).
    pub fn note_skipped(&mut self, count: u64) {
        if count > 0 {
            self.dropped += count;
            self.unannounced_drops += count;
        }
    }

    /// True when nothing is owed: no control bytes, no frames behind the ring's end.
    pub fn is_caught_up(&self, ring: &Ring) -> bool {
        self.control_sent >= self.control.len()
            && self.detached_sent >= self.detached.len()
            && !self.heartbeat_due
            && self.unannounced_drops == 0
            && self.cursor.seq >= ring.next_seq()
    }

    /// Moves a client that is behind `min_seq` up to it, keeping any half-sent frame
    /// whole. Returns the number of entries skipped.
    pub fn enforce_lag(&mut self, ring: &Ring, planned_base: u64) -> u64 {
        let limit_floor = ring.next_seq().saturating_sub(self.lag_limit as u64);
        let min_seq = planned_base.max(limit_floor);
        if self.cursor.seq >= min_seq {
            return 0;
        }
        if self.cursor.offset > 0 {
            // Finish the torn frame from a private copy.
            self.detached.clear();
            self.detached
                .extend_from_slice(ring.frame_rest(self.framing, self.cursor));
            self.detached_sent = 0;
            self.cursor.seq += 1;
            self.cursor.offset = 0;
        }
        if self.cursor.seq >= min_seq {
            return 0;
        }
        let skipped = min_seq - self.cursor.seq;
        self.cursor.seq = min_seq;
        self.dropped += skipped;
        self.unannounced_drops += skipped;
        skipped
    }

    fn render_pending(&mut self, render: &dyn ControlRenderer) {
        if self.control_sent >= self.control.len() && !self.control.is_empty() {
            self.control.clear();
            self.control_sent = 0;
            if self.control.capacity() > 4096 {
                self.control = Vec::new();
            }
        }
        if self.unannounced_drops > 0 {
            render.dropped(&mut self.control, self.unannounced_drops);
            self.unannounced_drops = 0;
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
            let mut iov = IovList::new();
            let mut segs = SegList::default();
            let has_control = self.control_sent < self.control.len();
            // Order on the wire: the rest of a torn frame, control bytes, then frames.
            let split_frame =
                self.detached_sent >= self.detached.len() && self.cursor.offset > 0 && has_control;
            if self.detached_sent < self.detached.len() {
                let before = iov.bytes;
                iov.push(&self.detached[self.detached_sent..]);
                segs.add(Seg::Detached, iov.bytes - before);
            } else if split_frame {
                let before = iov.bytes;
                iov.push(ring.frame_rest(self.framing, self.cursor));
                segs.add(Seg::FrameRest, iov.bytes - before);
            }
            if has_control {
                let before = iov.bytes;
                iov.push(&self.control[self.control_sent..]);
                segs.add(Seg::Control, iov.bytes - before);
            }
            let frames_from = if split_frame {
                Cursor {
                    seq: self.cursor.seq + 1,
                    offset: 0,
                }
            } else {
                self.cursor
            };
            let before = iov.bytes;
            ring.gather(self.framing, frames_from, &mut iov);
            segs.add(Seg::Frames, iov.bytes - before);
            if iov.len == 0 {
                return Ok(Flush::Drained);
            }
            if budget == 0 {
                return Ok(Flush::Budget);
            }
            let total = iov.bytes;
            let written = match out.write_vectored(iov.as_slice()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.bytes_sent += written as u64;
            budget = budget.saturating_sub(written);
            self.consume(ring, &segs, written);
            if written < total {
                // A short write almost always means the socket is full; one more try
                // either proves it (WouldBlock) or sends more.
                continue;
            }
        }
    }

    fn consume(&mut self, ring: &Ring, segs: &SegList, written: usize) {
        let mut left = written;
        for &(kind, len) in &segs.items[..segs.len] {
            let take = left.min(len);
            match kind {
                Seg::Detached => {
                    self.detached_sent += take;
                    if self.detached_sent >= self.detached.len() {
                        self.detached.clear();
                        self.detached_sent = 0;
                    }
                }
                Seg::FrameRest | Seg::Frames => {
                    ring.advance(self.framing, &mut self.cursor, take);
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
    items: [(Seg, usize); 4],
    len: usize,
}

impl SegList {
    fn add(&mut self, kind: Seg, bytes: usize) {
        if bytes > 0 {
            self.items[self.len] = (kind, bytes);
            self.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoControl;
    impl ControlRenderer for NoControl {
        fn dropped(&self, out: &mut Vec<u8>, count: u64) {
            out.extend_from_slice(format!("<dropped {count}>").as_bytes());
        }
        fn heartbeat(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(b"<hb>");
        }
    }

    /// A socket that accepts at most `room` bytes per call and `cap` in total before
    /// it reports WouldBlock.
    struct Sink {
        data: Vec<u8>,
        room: usize,
        cap: usize,
    }

    impl Sink {
        /// At most `room` bytes per write, `cap` in all before WouldBlock.
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

    fn ring_with(n: u64, capacity: usize) -> Ring {
        let mut r = Ring::new(capacity, true, true);
        for i in 0..n {
            r.push(|out| out.extend_from_slice(format!("{{\"n\":{}}}", i + 1).as_bytes()));
        }
        r
    }

    fn tcp_lines(range: std::ops::RangeInclusive<u64>) -> String {
        range.map(|i| format!("{{\"n\":{i}}}\n")).collect()
    }

    #[test]
    fn frames_are_rendered_once_in_both_framings() {
        let r = ring_with(2, 10);
        let mut s = Subscriber::new(Framing::Sse, Cursor { seq: 1, offset: 0 }, 10);
        let mut sink = Sink::new(usize::MAX, usize::MAX);
        assert_eq!(
            s.flush(&r, &NoControl, &mut sink, usize::MAX).unwrap(),
            Flush::Drained
        );
        assert_eq!(
            String::from_utf8(sink.data).unwrap(),
            "id: 1\ndata: {\"n\":1}\n\nid: 2\ndata: {\"n\":2}\n\n"
        );
        let mut t = Subscriber::new(Framing::Tcp, Cursor { seq: 1, offset: 0 }, 10);
        let mut sink = Sink::new(usize::MAX, usize::MAX);
        t.flush(&r, &NoControl, &mut sink, usize::MAX).unwrap();
        assert_eq!(String::from_utf8(sink.data).unwrap(), tcp_lines(1..=2));
        assert!(t.is_caught_up(&r));
    }

    #[test]
    fn tiny_writes_keep_every_byte_in_order() {
        let r = ring_with(3000, 5000);
        let mut s = Subscriber::new(Framing::Tcp, Cursor { seq: 1, offset: 0 }, 5000);
        s.queue_control(b"HEAD\n");
        let mut sink = Sink::new(7, usize::MAX);
        assert_eq!(
            s.flush(&r, &NoControl, &mut sink, usize::MAX).unwrap(),
            Flush::Drained
        );
        assert_eq!(
            String::from_utf8(sink.data).unwrap(),
            format!("HEAD\n{}", tcp_lines(1..=3000))
        );
    }

    #[test]
    fn control_waits_for_a_frame_boundary() {
        let r = ring_with(3, 10);
        let mut s = Subscriber::new(Framing::Tcp, Cursor { seq: 1, offset: 0 }, 10);
        let mut sink = Sink::new(usize::MAX, 4);
        assert_eq!(
            s.flush(&r, &NoControl, &mut sink, usize::MAX).unwrap(),
            Flush::Blocked
        );
        assert_eq!(s.cursor, Cursor { seq: 1, offset: 4 });
        s.request_heartbeat();
        sink.cap = usize::MAX;
        s.flush(&r, &NoControl, &mut sink, usize::MAX).unwrap();
        assert_eq!(
            String::from_utf8(sink.data).unwrap(),
            format!("{{\"n\":1}}\n<hb>{}", tcp_lines(2..=3))
        );
    }

    #[test]
    fn lagging_client_skips_ahead_and_finishes_its_torn_frame() {
        let mut r = ring_with(5, 5);
        let mut s = Subscriber::new(Framing::Tcp, Cursor { seq: 1, offset: 0 }, 5);
        let mut sink = Sink::new(usize::MAX, 3);
        assert_eq!(
            s.flush(&r, &NoControl, &mut sink, usize::MAX).unwrap(),
            Flush::Blocked
        );
        for i in 6..=12u64 {
            r.push(|out| out.extend_from_slice(format!("{{\"n\":{i}}}").as_bytes()));
        }
        let base = r.planned_base();
        assert_eq!(base, 8);
        assert_eq!(s.enforce_lag(&r, base), 6, "2..=7 skipped; 1 finishes");
        r.evict_excess();
        assert_eq!(r.base_seq(), 8);
        sink.cap = usize::MAX;
        s.flush(&r, &NoControl, &mut sink, usize::MAX).unwrap();
        assert_eq!(
            String::from_utf8(sink.data).unwrap(),
            format!("{{\"n\":1}}\n<dropped 6>{}", tcp_lines(8..=12))
        );
        assert_eq!(s.dropped, 6);
    }

    #[test]
    fn lag_limit_below_capacity_applies_per_client() {
        let r = ring_with(100, 100);
        let mut s = Subscriber::new(Framing::Sse, Cursor { seq: 1, offset: 0 }, 10);
        assert_eq!(s.enforce_lag(&r, r.planned_base()), 90);
        assert_eq!(s.cursor.seq, 91);
    }

    #[test]
    fn resume_after_last_event_id() {
        let mut r = ring_with(20, 10);
        r.evict_excess();
        assert_eq!(r.base_seq(), 11);
        assert_eq!(r.resume_after(15), (Cursor { seq: 16, offset: 0 }, 0));
        assert_eq!(r.resume_after(5), (Cursor { seq: 11, offset: 0 }, 5));
        assert_eq!(r.resume_after(20), (Cursor { seq: 21, offset: 0 }, 0));
        assert_eq!(r.resume_after(999), (Cursor { seq: 11, offset: 0 }, 0));
    }

    #[test]
    fn eviction_frees_chunks_and_bytes() {
        let mut r = Ring::new(10, false, true);
        let line = vec![b'x'; 1000];
        for _ in 0..1000 {
            r.push(|out| out.extend_from_slice(&line));
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
        let mut r = Ring::new(1000, false, true);
        let line = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            r.push(|out| out.extend_from_slice(&line));
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
    fn budget_stops_a_hungry_client() {
        let r = ring_with(10_000, 10_000);
        let mut s = Subscriber::new(Framing::Tcp, Cursor { seq: 1, offset: 0 }, 10_000);
        let mut sink = Sink::new(1000, usize::MAX);
        assert_eq!(
            s.flush(&r, &NoControl, &mut sink, 5000).unwrap(),
            Flush::Budget
        );
        assert_eq!(sink.data.len(), 5000);
    }
}
