//! A fixed-size log-linear latency histogram.
//!
//! Values (nanoseconds) below 64 get a bucket each; above that every power of two
//! is split into 64 equal buckets, so a reported percentile is at most 1/64
//! (1.6%) above the true value, whatever the range, in 3,776 counters (30 KiB).
//! Recording is an index computation and an increment: cheap enough to do for
//! every message on the consumer's hot path. Percentiles are reported as the
//! upper edge of their bucket (never optimistic), clamped to the exact maximum.

/// Sub-buckets per power of two, as a bit count.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS + 1) as usize) * SUB as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("min", &self.min())
            .field("max", &self.max)
            .finish()
    }
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let shift = exp - SUB_BITS;
    (((shift as u64 + 1) << SUB_BITS) + ((v >> shift) - SUB)) as usize
}

/// The largest value that lands in bucket `idx`.
fn upper_edge(idx: usize) -> u64 {
    let idx = idx as u64;
    if idx < SUB {
        return idx;
    }
    let shift = idx / SUB - 1;
    let mantissa = idx % SUB + SUB;
    // Saturate: the last bucket's edge is u64::MAX.
    ((mantissa as u128 + 1) << shift)
        .saturating_sub(1)
        .min(u64::MAX as u128) as u64
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v as u128;
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn clear(&mut self) {
        if self.total != 0 {
            self.counts.fill(0);
        }
        self.total = 0;
        self.min = u64::MAX;
        self.max = 0;
        self.sum = 0;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Smallest value recorded (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value below or at which `q` percent of the recorded values lie
    /// (nearest-rank definition: the value of rank ceil(q/100 * n)); 0 when empty.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let rank = rank.min(self.total);
        let mut seen = 0u64;
        for (idx, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper_edge(idx).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        let mut prev_edge = None;
        for idx in 0..BUCKETS {
            let edge = upper_edge(idx);
            if let Some(p) = prev_edge {
                assert!(edge > p, "bucket {idx}");
                // The first value of this bucket maps back to it.
                assert_eq!(index(p + 1), idx);
            }
            assert_eq!(index(edge), idx);
            prev_edge = Some(edge);
        }
        assert_eq!(upper_edge(BUCKETS - 1), u64::MAX);
        for v in [0, 1, 63, 64, 65, 127, 128, 1000, 123_456_789, u64::MAX] {
            let e = upper_edge(index(v));
            assert!(e >= v);
            assert!((e - v) as f64 <= v as f64 / 64.0 + 1.0, "{v} -> {e}");
        }
    }

    #[test]
    fn exact_percentiles_for_small_values() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), 50);
        assert_eq!(h.percentile(99.0), 99);
        assert_eq!(h.percentile(100.0), 100);
        assert_eq!(h.percentile(0.0), 1);
        assert_eq!(h.min(), 1);
        assert_eq!(h.mean(), 50.5);
    }

    #[test]
    fn percentiles_of_large_values_within_error() {
        let mut h = Histogram::new();
        // 990 fast messages at ~50 µs and 10 slow ones at 5 ms: p99 must still be
        // the fast population, p99.9 the slow one.
        for i in 0..990 {
            h.record(50_000 + i);
        }
        for _ in 0..10 {
            h.record(5_000_000);
        }
        let p50 = h.percentile(50.0);
        assert!((50_000..=51_000 + 50_000 / 64).contains(&p50), "{p50}");
        let p99 = h.percentile(99.0);
        assert!(p99 < 52_000, "{p99}");
        assert_eq!(h.percentile(99.9), 5_000_000);
        assert_eq!(h.max(), 5_000_000);
    }

    #[test]
    fn merge_and_clear() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(10);
        b.record(1_000_000);
        b.record(20);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.min(), 10);
        assert_eq!(a.max(), 1_000_000);
        assert_eq!(a.percentile(50.0), 20);
        a.clear();
        assert_eq!((a.count(), a.percentile(50.0), a.min()), (0, 0, 0));
    }
}
