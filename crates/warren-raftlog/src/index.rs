//! One group's in-memory view of the shared log.
//!
//! It holds no typed data: the shared WAL serves groups of different Raft
//! type configs, so entries, votes and log ids stay encoded here and
//! `GroupLog<C>` decodes them. Per entry it keeps a 12-byte location in the
//! segment files; the newest entries are also cached encoded (`Bytes`) so
//! replication and apply rarely read a file, and the cache is trimmed once
//! entries are committed (and applied), which keeps an idle group small.

use std::collections::VecDeque;

use bytes::Bytes;

/// Where an entry's record sits: segment number, offset, record length.
/// `seg == PENDING` means the writer has not written it yet; `off` then holds
/// the low bits of the append's ticket, so a write that a later truncate
/// overtook does not claim the slot of the entry that replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub seg: u32,
    pub off: u32,
    pub len: u32,
}

pub const PENDING: u32 = u32::MAX;

impl Loc {
    pub fn pending(ticket: u64) -> Loc {
        Loc {
            seg: PENDING,
            off: ticket as u32,
            len: 0,
        }
    }

    pub fn is_pending(&self) -> bool {
        self.seg == PENDING
    }
}

#[derive(Debug, Default)]
pub struct GroupIndex {
    /// Log index of `locs[0]` (after a purge: the purged index + 1).
    pub first: u64,
    pub locs: VecDeque<Loc>,
    /// Encoded entries for the last `cache.len()` indexes.
    pub cache: VecDeque<Bytes>,
    pub cache_bytes: usize,
    /// Cached entries at or below this index may go (see `trim_cache`).
    pub evict_upto: u64,
    pub vote: Option<Bytes>,
    pub committed: Option<Bytes>,
    /// Last purged index and its encoded LogId.
    pub purged: Option<(u64, Bytes)>,
}

impl GroupIndex {
    /// One past the last entry's index.
    pub fn end(&self) -> u64 {
        self.first + self.locs.len() as u64
    }

    pub fn cache_first(&self) -> u64 {
        self.end() - self.cache.len() as u64
    }

    /// Drops entries at and after `index`.
    pub fn truncate(&mut self, index: u64) {
        while self.end() > index && !self.locs.is_empty() {
            self.locs.pop_back();
            if let Some(b) = self.cache.pop_back() {
                self.cache_bytes -= b.len();
            }
        }
    }

    /// Drops entries up to and including `index`.
    pub fn purge(&mut self, index: u64, log_id: Bytes) {
        if self.purged.as_ref().is_some_and(|(p, _)| *p >= index) {
            return;
        }
        while self.first <= index && !self.locs.is_empty() {
            self.locs.pop_front();
            self.first += 1;
            if self.cache.len() > self.locs.len() {
                if let Some(b) = self.cache.pop_front() {
                    self.cache_bytes -= b.len();
                }
            }
        }
        if self.locs.is_empty() {
            self.first = index.saturating_add(1);
        }
        self.purged = Some((index, log_id));
        self.shrink();
    }

    /// Places the entry at `index` (replacing what was there and after it).
    pub fn put(&mut self, index: u64, loc: Loc, cached: Option<Bytes>) {
        if index == u64::MAX {
            // Not a real log index (only a damaged record could say so);
            // ignoring it keeps `end()` from overflowing.
            return;
        }
        if index >= self.first && index < self.end() {
            self.truncate(index);
        } else if index != self.end() {
            // Past the end: after a purge beyond the log's end (an installed
            // snapshot). Before the start: the whole log is replaced (openraft
            // does not do that, its storage test suite does). Either way the
            // log restarts at `index`.
            self.locs.clear();
            self.cache.clear();
            self.cache_bytes = 0;
            self.first = index;
        }
        self.locs.push_back(loc);
        match cached {
            // The cache stays a suffix of the log: appending at the end keeps it one.
            Some(b) => {
                self.cache_bytes += b.len();
                self.cache.push_back(b);
            }
            None => {
                self.cache.clear();
                self.cache_bytes = 0;
            }
        }
    }

    /// Records where the writer put entry `index` of append `ticket`.
    pub fn written(&mut self, index: u64, ticket: u64, loc: Loc) {
        if index < self.first || index >= self.end() {
            return;
        }
        let slot = &mut self.locs[(index - self.first) as usize];
        if slot.is_pending() && slot.off == ticket as u32 {
            *slot = loc;
        }
    }

    /// Evicts cached entries that are at or below `evict_upto` or beyond the
    /// byte budget, oldest first, never one not yet written.
    pub fn trim_cache(&mut self, max_bytes: usize) {
        while let Some(front) = self.cache.front() {
            let idx = self.cache_first();
            let loc = self.locs[(idx - self.first) as usize];
            if loc.is_pending() || (idx > self.evict_upto && self.cache_bytes <= max_bytes) {
                break;
            }
            self.cache_bytes -= front.len();
            self.cache.pop_front();
        }
        self.shrink();
    }

    /// Gives back deque capacity an idle group no longer needs.
    fn shrink(&mut self) {
        if self.locs.capacity() > 16 && self.locs.len() < self.locs.capacity() / 4 {
            self.locs.shrink_to(self.locs.len() * 2);
        }
        if self.cache.capacity() > 16 && self.cache.len() < self.cache.capacity() / 4 {
            self.cache.shrink_to(self.cache.len() * 2);
        }
    }

    /// The oldest segment this group still needs, if any.
    pub fn min_segment(&self) -> Option<u32> {
        // Locations only grow along the log, and pending ones (not yet
        // written) sit at its end.
        self.locs.front().filter(|l| !l.is_pending()).map(|l| l.seg)
    }

    /// Bytes of heap this group holds (for the memory benchmark and stats).
    pub fn heap_bytes(&self) -> usize {
        self.locs.capacity() * std::mem::size_of::<Loc>()
            + self.cache.capacity() * std::mem::size_of::<Bytes>()
            + self.cache_bytes
            + self.vote.as_ref().map_or(0, |b| b.len())
            + self.committed.as_ref().map_or(0, |b| b.len())
            + self.purged.as_ref().map_or(0, |(_, b)| b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(n: u32) -> Loc {
        Loc {
            seg: 0,
            off: n,
            len: 1,
        }
    }

    #[test]
    fn put_truncate_purge() {
        let mut g = GroupIndex::default();
        for i in 0..10 {
            g.put(i, loc(i as u32), Some(Bytes::from(vec![0; 4])));
        }
        assert_eq!(g.end(), 10);
        g.put(5, loc(99), Some(Bytes::from_static(b"x")));
        assert_eq!(g.end(), 6);
        assert_eq!(g.locs[5].off, 99);
        g.purge(2, Bytes::new());
        assert_eq!(g.first, 3);
        assert_eq!(g.locs.len(), 3);
        assert_eq!(g.cache.len(), 3);
        g.purge(20, Bytes::new());
        assert_eq!(g.first, 21);
        assert!(g.locs.is_empty());
        g.put(21, loc(1), None);
        assert_eq!((g.first, g.end()), (21, 22));
        // Damaged indexes must not overflow.
        g.purge(u64::MAX, Bytes::new());
        g.put(u64::MAX, loc(1), None);
        assert_eq!(g.end(), u64::MAX);
    }

    #[test]
    fn cache_trim_keeps_pending() {
        let mut g = GroupIndex::default();
        g.put(1, Loc::pending(1), Some(Bytes::from_static(b"a")));
        g.put(2, loc(2), Some(Bytes::from_static(b"b")));
        g.evict_upto = 2;
        g.trim_cache(0);
        assert_eq!(g.cache.len(), 2, "pending entry 1 blocks eviction");
        g.written(1, 1, loc(1));
        g.trim_cache(0);
        assert!(g.cache.is_empty());
    }
}
