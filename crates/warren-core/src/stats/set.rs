//! Fixed sets of counters named by an enum, as RabbitMQ's management API
//! names the figures (`publish`, `deliver_no_ack`, `recv_oct`, ...).
//!
//! An object's counters ([`Counters`]), what a reader gets ([`Snapshot`]:
//! values and rates copied out), and totals over objects that come and go
//! ([`Aggregate`]: what deleted ones had counted, and the rate of the total).

use super::counter::{Counter, Rate};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The enum naming a set's counters.
pub trait Field: Copy + 'static {
    /// Every field, in index order.
    const ALL: &'static [Self];
    /// Position in the set.
    fn index(self) -> usize;
    /// The name RabbitMQ's management API gives the figure.
    fn name(self) -> &'static str;
}

/// One object's counters, one per field of `F` (`N` is the number of fields).
pub struct Counters<F: Field, const N: usize> {
    counters: [Counter; N],
    _fields: PhantomData<fn(F)>,
}

impl<F: Field, const N: usize> Default for Counters<F, N> {
    fn default() -> Self {
        Counters {
            counters: std::array::from_fn(|_| Counter::default()),
            _fields: PhantomData,
        }
    }
}

impl<F: Field, const N: usize> Counters<F, N> {
    /// Count `n` more of `f` (see [`Counter::add`]).
    #[inline]
    pub fn add(&self, f: F, n: u64) {
        self.counters[f.index()].add(n);
    }

    /// Count `n` more of `f` under the lock every writer of this set holds
    /// (see [`Counter::add_serialized`]).
    #[inline]
    pub fn add_serialized(&self, f: F, n: u64) {
        self.counters[f.index()].add_serialized(n);
    }

    /// The count of `f` so far.
    pub fn get(&self, f: F) -> u64 {
        self.counters[f.index()].get()
    }

    /// Per second over the last sampling interval.
    pub fn rate(&self, f: F) -> f64 {
        self.counters[f.index()].rate()
    }

    /// Every count and rate, copied out.
    pub fn snapshot(&self) -> Snapshot<F, N> {
        Snapshot {
            values: std::array::from_fn(|i| self.counters[i].get()),
            rates: std::array::from_fn(|i| self.counters[i].rate()),
            _fields: PhantomData,
        }
    }

    pub(crate) fn values(&self) -> [u64; N] {
        std::array::from_fn(|i| self.counters[i].get())
    }

    pub(crate) fn sample(&self, secs: f64) {
        for c in &self.counters {
            c.sample(secs);
        }
    }
}

/// Counts and rates of one object (or a sum over objects) at one moment:
/// what readers (the HTTP API) get.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot<F: Field, const N: usize> {
    values: [u64; N],
    rates: [f64; N],
    _fields: PhantomData<fn(F)>,
}

impl<F: Field, const N: usize> Default for Snapshot<F, N> {
    fn default() -> Self {
        Snapshot {
            values: [0; N],
            rates: [0.0; N],
            _fields: PhantomData,
        }
    }
}

impl<F: Field, const N: usize> Snapshot<F, N> {
    /// The count of `f`.
    pub fn get(&self, f: F) -> u64 {
        self.values[f.index()]
    }

    /// The rate of `f`, per second (RabbitMQ's `<name>_details.rate`).
    pub fn rate(&self, f: F) -> f64 {
        self.rates[f.index()]
    }

    /// `(name, count, rate)` for every field, in `F::ALL` order: what the
    /// API prints as `"name": count, "name_details": {"rate": rate}`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64, f64)> + '_ {
        F::ALL
            .iter()
            .map(|f| (f.name(), self.get(*f), self.rate(*f)))
    }

    /// Add `other`'s counts and rates (a sum over objects).
    pub fn add(&mut self, other: &Snapshot<F, N>) {
        add_into(&mut self.values, &other.values);
        for (r, o) in self.rates.iter_mut().zip(&other.rates) {
            *r += o;
        }
    }

    pub(crate) fn from_parts(values: [u64; N], rates: [f64; N]) -> Self {
        Snapshot {
            values,
            rates,
            _fields: PhantomData,
        }
    }
}

/// Totals over objects that come and go (a vhost's queues): the counts of
/// those already gone, folded in when each went, so a total never shrinks;
/// and the rate of the total, which the sampler keeps.
pub struct Aggregate<F: Field, const N: usize> {
    retired: [AtomicU64; N],
    rates: [Rate; N],
    _fields: PhantomData<fn(F)>,
}

impl<F: Field, const N: usize> Default for Aggregate<F, N> {
    fn default() -> Self {
        Aggregate {
            retired: std::array::from_fn(|_| AtomicU64::new(0)),
            rates: std::array::from_fn(|_| Rate::default()),
            _fields: PhantomData,
        }
    }
}

impl<F: Field, const N: usize> Aggregate<F, N> {
    /// Fold in the final counts of an object that goes away.
    pub(crate) fn retire(&self, values: &[u64; N]) {
        for (r, v) in self.retired.iter().zip(values) {
            if *v != 0 {
                r.fetch_add(*v, Relaxed);
            }
        }
    }

    /// The totals given the live objects' sum (`live`): `live` plus what
    /// retired objects counted, with the sampled rates.
    pub(crate) fn with_live(&self, live: &[u64; N]) -> Snapshot<F, N> {
        Snapshot::from_parts(
            std::array::from_fn(|i| self.retired[i].load(Relaxed).wrapping_add(live[i])),
            std::array::from_fn(|i| self.rates[i].get()),
        )
    }

    /// Sample the rates, the live objects summing to `live`.
    pub(crate) fn sample(&self, live: &[u64; N], secs: f64) {
        for ((rate, retired), live) in self.rates.iter().zip(&self.retired).zip(live) {
            rate.sample(retired.load(Relaxed).wrapping_add(*live), secs);
        }
    }
}

/// Add `b` into `a`, field by field (summing live objects' counts).
pub(crate) fn add_into<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_add(*y);
    }
}
