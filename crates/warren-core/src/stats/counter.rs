//! One monotonic count and its rate.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A count that only grows (messages, octets), with its rate per second as the
/// sampler last computed it.
///
/// Relaxed atomics throughout: nothing is ordered against a statistic, and a
/// reader only needs a recent value.
#[derive(Default)]
pub struct Counter {
    value: AtomicU64,
    rate: Rate,
}

impl Counter {
    /// Count `n` more (one relaxed `fetch_add`).
    #[inline]
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Relaxed);
    }

    /// Count `n` more when every writer of this counter holds one and the same
    /// lock (a queue's counters are only written under the queue's lock): a
    /// plain load and store, no locked read-modify-write instruction on the
    /// message path. Calling it without that lock loses counts, nothing worse.
    #[inline]
    pub fn add_serialized(&self, n: u64) {
        self.value
            .store(self.value.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.value.load(Relaxed)
    }

    /// Per second, over the last sampling interval.
    pub fn rate(&self) -> f64 {
        self.rate.get()
    }

    pub(crate) fn sample(&self, secs: f64) {
        self.rate.sample(self.get(), secs);
    }
}

/// The rate of a count that something else keeps (a sum over objects): the
/// total at the last sample and the change per second since the one before.
#[derive(Default)]
pub struct Rate {
    last: AtomicU64,
    /// An `f64`'s bits (0 is 0.0), so readers need no lock.
    per_sec: AtomicU64,
}

impl Rate {
    /// Per second, over the last sampling interval.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.per_sec.load(Relaxed))
    }

    /// Record `total` as the count now, `secs` after the previous sample.
    pub(crate) fn sample(&self, total: u64, secs: f64) {
        let last = self.last.load(Relaxed);
        let per_sec = self.per_sec.load(Relaxed);
        // Idle since the last sample and already at 0/s: write nothing, so
        // sampling 100,000 idle queues dirties no cache line.
        if total == last && per_sec == 0 {
            return;
        }
        self.last.store(total, Relaxed);
        // A sum can shrink (an object went before its counts were folded
        // into a total): that reads as 0/s, never as a negative rate.
        let rate = if secs > 0.0 {
            total.saturating_sub(last) as f64 / secs
        } else {
            0.0
        };
        self.per_sec.store(rate.to_bits(), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_the_change_per_second_between_samples() {
        let c = Counter::default();
        c.add(50);
        c.sample(5.0);
        assert_eq!(c.rate(), 10.0);
        c.add_serialized(5);
        c.sample(5.0);
        assert_eq!(c.get(), 55);
        assert_eq!(c.rate(), 1.0);
        c.sample(5.0);
        assert_eq!(c.rate(), 0.0);
    }

    #[test]
    fn a_shrinking_total_reads_as_zero() {
        let r = Rate::default();
        r.sample(100, 1.0);
        r.sample(40, 1.0);
        assert_eq!(r.get(), 0.0);
    }
}
