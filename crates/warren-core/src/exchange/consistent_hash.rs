//! The consistent-hash exchange (`x-consistent-hash`), as RabbitMQ's plugin:
//! each binding's routing key is a weight; every destination gets that many points
//! on a hash ring, and a message goes to the owner of the first point at or after
//! the hash of its routing key (or of a header / property named by the exchange's
//! `hash-header` / `hash-property` argument). The same key always lands on the same
//! queue, and adding a queue moves only the keys it takes over.

/// Ring points per unit of binding weight.
pub const POINTS_PER_WEIGHT: u32 = 64;

/// A hash ring over destinations `D`.
#[derive(Debug)]
pub struct HashRing<D> {
    /// (point, destination index), sorted by point.
    points: Vec<(u32, usize)>,
    dests: Vec<(D, u32)>,
}

impl<D> Default for HashRing<D> {
    fn default() -> Self {
        HashRing {
            points: Vec::new(),
            dests: Vec::new(),
        }
    }
}

/// SipHash-1-3 with fixed keys (std's `DefaultHasher::new()`): well mixed and the
/// same on every run, so a routing key keeps its queue across restarts.
fn hash(data: &[u8]) -> u32 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(data);
    let v = h.finish();
    (v ^ (v >> 32)) as u32
}

impl<D: PartialEq> HashRing<D> {
    /// Add `dest` with `weight` shares (the binding key parsed as an integer).
    /// Each share is [`POINTS_PER_WEIGHT`] points, so small weights still split
    /// the keys close to their ratio.
    pub fn bind(&mut self, dest: D, weight: u32, id: &[u8]) {
        let idx = self.dests.len();
        self.dests.push((dest, weight));
        for i in 0..weight.saturating_mul(POINTS_PER_WEIGHT) {
            let mut key = id.to_vec();
            key.extend_from_slice(&i.to_be_bytes());
            self.points.push((hash(&key), idx));
        }
        self.points.sort_unstable();
    }

    /// Remove every point of `dest`.
    pub fn unbind(&mut self, dest: &D) {
        let Some(idx) = self.dests.iter().position(|(d, _)| d == dest) else {
            return;
        };
        self.dests.remove(idx);
        self.points.retain(|(_, i)| *i != idx);
        for p in &mut self.points {
            if p.1 > idx {
                p.1 -= 1;
            }
        }
    }

    pub fn route(&self, key: &[u8]) -> Option<&D> {
        if self.points.is_empty() {
            return None;
        }
        let h = hash(key);
        let i = self.points.partition_point(|(p, _)| *p < h);
        let (_, idx) = self.points[if i == self.points.len() { 0 } else { i }];
        self.dests.get(idx).map(|(d, _)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_by_weight_and_is_stable() {
        let mut ring = HashRing::default();
        ring.bind("a", 1, b"qa");
        ring.bind("b", 2, b"qb");
        let mut counts = std::collections::HashMap::new();
        for i in 0..10_000 {
            let k = format!("key-{}", i);
            let d = *ring.route(k.as_bytes()).expect("routes");
            assert_eq!(ring.route(k.as_bytes()), Some(&d));
            *counts.entry(d).or_insert(0) += 1;
        }
        let share_b = counts["b"] as f64 / 10_000.0;
        assert!((0.6..0.73).contains(&share_b), "{counts:?}");
        ring.unbind(&"a");
        assert_eq!(ring.route(b"anything"), Some(&"b"));
    }
}
