//! A small set of recent verification answers with a size bound (least recently used goes
//! first) and a lifetime per entry. Keys are digests, never passwords; time is an argument.
//!
//! Eviction scans for the oldest entry: it runs only after a password hash was computed
//! (tens to hundreds of milliseconds), next to which a scan of a thousand entries is noise,
//! and it keeps the structure a plain `HashMap`.

use std::collections::HashMap;

pub type Key = [u8; 32];

#[derive(Debug)]
struct Entry {
    expires_ms: u64,
    last_used: u64,
}

#[derive(Debug)]
pub struct Cache {
    entries: HashMap<Key, Entry>,
    capacity: usize,
    ttl_ms: u64,
    /// Use counter: orders entries by recency without reading a clock.
    uses: u64,
}

impl Cache {
    pub fn new(capacity: usize, ttl_ms: u64) -> Cache {
        Cache {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            ttl_ms,
            uses: 0,
        }
    }

    /// Whether `key` is here and alive; an expired entry is dropped on the way.
    pub fn contains(&mut self, key: &Key, now_ms: u64) -> bool {
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        if now_ms >= entry.expires_ms {
            self.entries.remove(key);
            return false;
        }
        self.uses += 1;
        entry.last_used = self.uses;
        true
    }

    /// Adds `key` for the cache's lifetime from `now_ms`, making room first: expired
    /// entries go, then the least recently used one.
    pub fn insert(&mut self, key: Key, now_ms: u64) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| now_ms < e.expires_ms);
            if self.entries.len() >= self.capacity {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.entries.remove(&k);
                }
            }
        }
        self.uses += 1;
        let entry = Entry {
            expires_ms: now_ms.saturating_add(self.ttl_ms),
            last_used: self.uses,
        };
        self.entries.insert(key, entry);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        [n; 32]
    }

    #[test]
    fn entries_live_for_the_ttl_and_no_longer() {
        let mut c = Cache::new(4, 1000);
        c.insert(key(1), 5000);
        assert!(c.contains(&key(1), 5000));
        assert!(c.contains(&key(1), 5999));
        assert!(!c.contains(&key(1), 6000));
        assert!(c.is_empty(), "an expired entry is dropped when seen");
        assert!(!c.contains(&key(2), 0));
    }

    #[test]
    fn a_use_does_not_extend_the_lifetime() {
        let mut c = Cache::new(4, 1000);
        c.insert(key(1), 0);
        for t in (0..1000).step_by(100) {
            assert!(c.contains(&key(1), t));
        }
        assert!(!c.contains(&key(1), 1000));
    }

    #[test]
    fn full_cache_drops_the_least_recently_used() {
        let mut c = Cache::new(3, 1_000_000);
        for n in 1..=3 {
            c.insert(key(n), 0);
        }
        // 1 is used again, so 2 is now the least recently used.
        assert!(c.contains(&key(1), 1));
        c.insert(key(4), 2);
        assert_eq!(c.len(), 3);
        assert!(!c.contains(&key(2), 3));
        for n in [1, 3, 4] {
            assert!(c.contains(&key(n), 3), "{n}");
        }
    }

    #[test]
    fn expired_entries_make_room_before_live_ones() {
        let mut c = Cache::new(2, 100);
        c.insert(key(1), 0);
        c.insert(key(2), 90);
        assert!(c.contains(&key(1), 95)); // 1 is the most recently used...
        c.insert(key(3), 100); // ...but it has expired, so it goes rather than 2.
        assert!(c.contains(&key(2), 101));
        assert!(c.contains(&key(3), 101));
    }

    #[test]
    fn inserting_again_renews_without_evicting() {
        let mut c = Cache::new(2, 100);
        c.insert(key(1), 0);
        c.insert(key(2), 0);
        c.insert(key(2), 50);
        assert_eq!(c.len(), 2);
        assert!(c.contains(&key(1), 60));
        assert!(
            c.contains(&key(2), 140),
            "a new lifetime from the second insert"
        );
    }

    #[test]
    fn the_bound_holds_under_churn() {
        let mut c = Cache::new(16, 1_000_000);
        for n in 0..=255u8 {
            c.insert(key(n), u64::from(n));
            assert!(c.len() <= 16);
        }
        for n in 240..=255u8 {
            assert!(c.contains(&key(n), 300), "{n}");
        }
    }
}
