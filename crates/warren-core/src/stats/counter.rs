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
/// change per second between the last two samples.
///
/// One word per rate, so a queue's eight counters cost 128 bytes, not 192:
/// the high half holds the rate as an `f32`'s bits (0 is 0.0), the low half
/// the low 32 bits of the total at the last sample. A count never grows by
/// 2^31 in one interval, so the wrapping difference of low halves is exact.
#[derive(Default)]
pub struct Rate {
    packed: AtomicU64,
}

impl Rate {
    /// Per second, over the last sampling interval.
    pub fn get(&self) -> f64 {
        f32::from_bits((self.packed.load(Relaxed) >> 32) as u32) as f64
    }

    /// Record `total` as the count now, `secs` after the previous sample.
    pub(crate) fn sample(&self, total: u64, secs: f64) {
        let packed = self.packed.load(Relaxed);
        let (last, rate_bits) = (packed as u32, (packed >> 32) as u32);
        let now = total as u32;
        // Idle since the last sample and already at 0/s: write nothing, so
        // sampling 100,000 idle queues dirties no cache line.
        if now == last && rate_bits == 0 {
            return;
        }
        // A sum that shrank (an object went before its counts were folded
        // into a total) wraps to a huge difference: that reads as 0/s, never
        // as a negative or absurd rate.
        let delta = now.wrapping_sub(last);
        let rate = if secs > 0.0 && delta < 1 << 31 {
            (delta as f64 / secs) as f32
        } else {
            0.0
        };
        self.packed
            .store(((rate.to_bits() as u64) << 32) | now as u64, Relaxed);
    }
}

/// The rate of a level that goes up and down (a queue's depth): the change
/// per second between the last two samples, negative when it shrank (as
/// RabbitMQ's `messages_details.rate`). Packed as [`Rate`]: a level never
/// moves by 2^31 in one interval, so the wrapping difference of the low
/// halves, read as signed, is exact.
#[derive(Default)]
pub struct GaugeRate {
    packed: AtomicU64,
}

impl GaugeRate {
    /// Per second over the last sampling interval (negative: shrinking).
    pub fn get(&self) -> f64 {
        f32::from_bits((self.packed.load(Relaxed) >> 32) as u32) as f64
    }

    /// Record `level` as the level now, `secs` after the previous sample.
    pub(crate) fn sample(&self, level: u64, secs: f64) {
        let packed = self.packed.load(Relaxed);
        let (last, rate_bits) = (packed as u32, (packed >> 32) as u32);
        let now = level as u32;
        if now == last && rate_bits == 0 {
            return;
        }
        let delta = now.wrapping_sub(last) as i32;
        let rate = if secs > 0.0 {
            (delta as f64 / secs) as f32
        } else {
            0.0
        };
        self.packed
            .store(((rate.to_bits() as u64) << 32) | now as u64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_rate_goes_negative_when_the_level_falls() {
        let g = GaugeRate::default();
        g.sample(100, 5.0);
        assert_eq!(g.get(), 20.0);
        g.sample(50, 5.0);
        assert_eq!(g.get(), -10.0);
        g.sample(50, 5.0);
        assert_eq!(g.get(), 0.0);
    }

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
    fn rates_stay_exact_across_the_low_word_wrapping() {
        let r = Rate::default();
        let base = (1u64 << 32) - 10;
        r.sample(base, 1.0);
        r.sample(base + 20, 2.0);
        assert_eq!(r.get(), 10.0);
    }

    #[test]
    fn a_shrinking_total_reads_as_zero() {
        let r = Rate::default();
        r.sample(100, 1.0);
        r.sample(40, 1.0);
        assert_eq!(r.get(), 0.0);
    }
}
