//! Hierarchical timer wheel. Every deadline in logwisp (heartbeats, rescans, header
//! timeouts, stats, bucket cleanup, accept back-off) lives here; the reactor's poll
//! timeout is [`Wheel::next_deadline`].
//!
//! The wheel never reads a clock: it is given the current tick (milliseconds since the
//! reactor started) and fires every timer whose deadline tick is at or before it. Callers
//! round deadlines up, so nothing fires early. Six levels of 64 slots cover 2^36 ms
//! (about two years); each level's occupied slots are a bitmap, so finding the next
//! deadline is a few bit operations per level. An entry in a coarse slot is moved down a
//! level when its slot comes due, until it fires from level 0 on its exact tick.
//! The top level wraps: a deadline across its boundary sits in a slot "behind" the
//! current one, which means the next revolution.

use slab::Slab;

const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const LEVELS: usize = 6;
/// Deadlines further out than this (about a year) are clamped; they are never meant
/// literally. Half the wheel's span, so a top-level slot is never a full revolution ahead.
pub const MAX_DELAY: u64 = 1 << (SLOT_BITS as usize * LEVELS - 1);

/// Handle to a pending timer. Stale handles (fired or cancelled) are harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerId {
    key: usize,
    generation: u64,
}

#[derive(Debug, Clone, Copy)]
enum Place {
    Slot { level: u8, slot: u8, index: u32 },
    Expired { index: u32 },
}

struct Entry<T> {
    deadline: u64,
    generation: u64,
    place: Place,
    value: T,
}

struct Level {
    occupied: u64,
    slots: [Vec<usize>; SLOTS],
}

impl Level {
    fn new() -> Level {
        Level {
            occupied: 0,
            slots: std::array::from_fn(|_| Vec::new()),
        }
    }
}

pub struct Wheel<T> {
    entries: Slab<Entry<T>>,
    levels: Vec<Level>,
    /// Deadlines at or before `elapsed`, inserted late; they fire on the next advance.
    expired: Vec<usize>,
    elapsed: u64,
    next_generation: u64,
}

fn level_for(elapsed: u64, deadline: u64) -> usize {
    // Deadlines are at most MAX_DELAY ahead, but may still cross a top-level boundary;
    // those go to the top level, whose slots wrap around.
    let masked =
        ((elapsed ^ deadline) | (SLOTS as u64 - 1)).min((1 << (SLOT_BITS as usize * LEVELS)) - 1);
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

fn slot_for(level: usize, deadline: u64) -> usize {
    ((deadline >> (SLOT_BITS as usize * level)) & (SLOTS as u64 - 1)) as usize
}

impl<T> Wheel<T> {
    pub fn new(now: u64) -> Wheel<T> {
        Wheel {
            entries: Slab::new(),
            levels: (0..LEVELS).map(|_| Level::new()).collect(),
            expired: Vec::new(),
            elapsed: now,
            next_generation: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tick up to which the wheel has been advanced.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Schedules `value` to fire at tick `deadline` (clamped to [`MAX_DELAY`] ahead).
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerId {
        let deadline = deadline.min(self.elapsed.saturating_add(MAX_DELAY));
        let generation = self.next_generation;
        self.next_generation += 1;
        let key = self.entries.insert(Entry {
            deadline,
            generation,
            place: Place::Expired { index: 0 },
            value,
        });
        self.place(key);
        TimerId { key, generation }
    }

    /// Removes a pending timer and returns its value; `None` if it already fired.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        match self.entries.get(id.key) {
            Some(e) if e.generation == id.generation => {}
            _ => return None,
        }
        self.unplace(id.key);
        Some(self.entries.remove(id.key).value)
    }

    pub fn is_pending(&self, id: TimerId) -> bool {
        self.entries
            .get(id.key)
            .is_some_and(|e| e.generation == id.generation)
    }

    /// Earliest tick at which a timer is due; `None` when none is pending. Advancing to it
    /// fires that timer (splitting coarse slots on the way).
    pub fn next_deadline(&self) -> Option<u64> {
        if !self.expired.is_empty() {
            return Some(self.elapsed);
        }
        let (level, slot, slot_start) = self.next_slot()?;
        if level == 0 {
            return Some(slot_start);
        }
        // A coarse slot is split when it comes due; report its earliest entry instead of
        // its start, so an idle reactor wakes once per timer rather than once per level.
        self.levels[level].slots[slot]
            .iter()
            .map(|&key| self.entries[key].deadline)
            .min()
            .map(|d| d.max(slot_start))
    }

    /// Fires every timer due at or before `now`, in deadline order, into `fired`.
    pub fn advance(&mut self, now: u64, fired: &mut Vec<T>) {
        for key in std::mem::take(&mut self.expired) {
            fired.push(self.entries.remove(key).value);
        }
        while let Some((level, slot, deadline)) = self.next_slot() {
            if deadline > now {
                break;
            }
            self.elapsed = self.elapsed.max(deadline);
            let keys = std::mem::take(&mut self.levels[level].slots[slot]);
            self.levels[level].occupied &= !(1u64 << slot);
            for key in keys {
                if self.entries[key].deadline <= self.elapsed {
                    fired.push(self.entries.remove(key).value);
                } else {
                    self.place(key);
                }
            }
        }
        self.elapsed = self.elapsed.max(now);
    }

    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        for (level, lv) in self.levels.iter().enumerate() {
            if lv.occupied == 0 {
                continue;
            }
            let shift = SLOT_BITS as usize * level;
            let now_slot = slot_for(level, self.elapsed);
            // Rotate so the search starts at the current slot; only the top level ever
            // holds slots "behind" it, and those belong to its next revolution.
            let distance = lv.occupied.rotate_right(now_slot as u32).trailing_zeros() as usize;
            let slot = (now_slot + distance) % SLOTS;
            let revolution = 1u64 << (shift + SLOT_BITS as usize);
            let block = self.elapsed & !(revolution - 1);
            let mut deadline = block + ((slot as u64) << shift);
            if slot < now_slot {
                deadline += revolution;
            }
            return Some((level, slot, deadline.max(self.elapsed)));
        }
        None
    }

    fn place(&mut self, key: usize) {
        let deadline = self.entries[key].deadline;
        if deadline <= self.elapsed {
            let index = self.expired.len() as u32;
            self.expired.push(key);
            self.entries[key].place = Place::Expired { index };
            return;
        }
        let level = level_for(self.elapsed, deadline);
        let slot = slot_for(level, deadline);
        let lv = &mut self.levels[level];
        let index = lv.slots[slot].len() as u32;
        lv.slots[slot].push(key);
        lv.occupied |= 1u64 << slot;
        self.entries[key].place = Place::Slot {
            level: level as u8,
            slot: slot as u8,
            index,
        };
    }

    fn unplace(&mut self, key: usize) {
        let (list, index) = match self.entries[key].place {
            Place::Expired { index } => (&mut self.expired, index as usize),
            Place::Slot { level, slot, index } => {
                let lv = &mut self.levels[level as usize];
                if lv.slots[slot as usize].len() == 1 {
                    lv.occupied &= !(1u64 << slot);
                }
                (&mut lv.slots[slot as usize], index as usize)
            }
        };
        list.swap_remove(index);
        if let Some(&moved) = list.get(index) {
            match &mut self.entries[moved].place {
                Place::Expired { index: i } | Place::Slot { index: i, .. } => *i = index as u32,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(w: &mut Wheel<u32>, now: u64) -> Vec<u32> {
        let mut out = Vec::new();
        w.advance(now, &mut out);
        out
    }

    #[test]
    fn fires_in_deadline_order_and_never_early() {
        let mut w = Wheel::new(0);
        for (i, d) in [50u64, 3, 700, 64, 65, 4096, 1].iter().enumerate() {
            w.insert(*d, i as u32);
        }
        assert_eq!(w.next_deadline(), Some(1));
        assert_eq!(fire(&mut w, 0), Vec::<u32>::new());
        assert_eq!(fire(&mut w, 2), vec![6]);
        assert_eq!(fire(&mut w, 49), vec![1]);
        assert_eq!(fire(&mut w, 64), vec![0, 3]);
        assert_eq!(fire(&mut w, 699), vec![4]);
        assert_eq!(fire(&mut w, 5000), vec![2, 5]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn next_deadline_never_passes_a_timer() {
        // Stepping only to next_deadline must reach every timer at its exact tick.
        let mut w = Wheel::new(7);
        let deadlines = [8u64, 100, 4095, 4096, 4097, 262_200, 1_000_000, 70_000_000];
        for d in deadlines {
            w.insert(d, d as u32);
        }
        let mut seen = Vec::new();
        while let Some(next) = w.next_deadline() {
            let fired = fire(&mut w, next);
            for v in fired {
                assert_eq!(u64::from(v), next, "fired at the wrong tick");
                seen.push(u64::from(v));
            }
        }
        assert_eq!(seen, deadlines);
    }

    #[test]
    fn cancel_and_rearm() {
        let mut w = Wheel::new(0);
        let a = w.insert(10, 1);
        let b = w.insert(10, 2);
        let c = w.insert(5000, 3);
        assert_eq!(w.cancel(a), Some(1));
        assert_eq!(w.cancel(a), None, "second cancel is a no-op");
        assert!(!w.is_pending(a) && w.is_pending(b));
        assert_eq!(w.cancel(c), Some(3));
        let c2 = w.insert(20, 4);
        assert_eq!(fire(&mut w, 30), vec![2, 4]);
        assert_eq!(w.cancel(b), None, "fired timers cannot be cancelled");
        assert_eq!(w.cancel(c2), None);
        assert!(w.is_empty());
    }

    #[test]
    fn stale_handle_does_not_cancel_reused_slot() {
        let mut w = Wheel::new(0);
        let a = w.insert(10, 1);
        assert_eq!(fire(&mut w, 10), vec![1]);
        let b = w.insert(20, 2);
        assert_eq!(w.cancel(a), None);
        assert!(w.is_pending(b));
    }

    #[test]
    fn past_deadlines_fire_on_next_advance() {
        let mut w = Wheel::new(100);
        w.insert(50, 1);
        w.insert(100, 2);
        assert_eq!(w.next_deadline(), Some(100));
        assert_eq!(fire(&mut w, 100), vec![1, 2]);
    }

    #[test]
    fn many_timers_fire_exactly_once() {
        let mut w = Wheel::new(0);
        let mut ids = Vec::new();
        for i in 0..20_000u32 {
            let d = u64::from(i.wrapping_mul(2_654_435_761) % 300_000) + 1;
            ids.push((w.insert(d, i), d));
        }
        for (id, _) in ids.iter().step_by(3) {
            assert!(w.cancel(*id).is_some());
        }
        let mut fired = Vec::new();
        let mut now = 0;
        while now < 300_001 {
            now += 997;
            let before = fired.len();
            w.advance(now, &mut fired);
            for v in &fired[before..] {
                let d = ids[*v as usize].1;
                assert!(d <= now && d + 997 > now, "timer {v} at {d} fired at {now}");
            }
        }
        let expected = ids.len() - ids.len().div_ceil(3);
        assert_eq!(fired.len(), expected);
        fired.sort_unstable();
        fired.dedup();
        assert_eq!(fired.len(), expected);
        assert!(w.is_empty());
    }

    #[test]
    fn long_delays_wrap_levels() {
        let start = (1u64 << 36) - 10; // near a top-level boundary
        let mut w = Wheel::new(start);
        w.insert(start + 20, 1);
        w.insert(start + 3 * 86_400_000, 2); // three days
        w.insert(start + u64::MAX / 2, 3); // clamped to MAX_DELAY
        assert_eq!(fire(&mut w, start + 19), Vec::<u32>::new());
        assert_eq!(fire(&mut w, start + 20), vec![1]);
        assert_eq!(fire(&mut w, start + 3 * 86_400_000 - 1), Vec::<u32>::new());
        assert_eq!(fire(&mut w, start + 3 * 86_400_000), vec![2]);
        assert_eq!(w.len(), 1);
        assert_eq!(fire(&mut w, start + MAX_DELAY), vec![3]);
    }

    #[test]
    fn advancing_in_big_jumps_keeps_order() {
        let mut w = Wheel::new(0);
        for d in (1..=5000u64).rev() {
            w.insert(d * 13, d as u32);
        }
        let out = fire(&mut w, 13 * 5000);
        assert_eq!(out, (1..=5000).collect::<Vec<u32>>());
    }
}
