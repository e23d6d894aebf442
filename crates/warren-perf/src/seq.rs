//! Message stamps and the bookkeeping that checks every message.
//!
//! Every message body starts with a 16-byte stamp:
//!
//! ```text
//! send time: u64 (ns since the run's epoch) | producer: u16 | sequence: u48
//! ```
//!
//! all big-endian. 16 bytes is the smallest body the benchmarks use, so the stamp
//! costs nothing extra there; larger bodies are padded after it. The send time is
//! relative to an `Instant` of this process, so latency is only measured between
//! producers and consumers of the same `warren perf` run (which is what we want:
//! no clock skew, and a monotonic clock).
//!
//! Checks, per queue and producer (a queue receives each of a producer's messages
//! at most once, in publish order):
//! * [`SeqTracker`] counts duplicates and, at the end, what never arrived (lost),
//!   including holes in the middle. It is shared by the consumers of a queue
//!   (competing consumers split a producer's sequence between them).
//! * [`OrderCheck`] lives in one consumer and counts messages that arrive after a
//!   later message of the same producer (reordered). It has to be per consumer:
//!   two competing consumers legitimately see their halves interleaved in any
//!   order relative to each other.

use std::collections::BTreeMap;

pub const STAMP_LEN: usize = 16;
/// Sequence numbers are 48 bits on the wire.
pub const MAX_SEQ: u64 = (1 << 48) - 1;

/// The decoded stamp of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sent_ns: u64,
    pub producer: u16,
    pub seq: u64,
}

/// Write a stamp into the first [`STAMP_LEN`] bytes of `buf`.
#[inline]
pub fn write_stamp(buf: &mut [u8], stamp: Stamp) {
    buf[0..8].copy_from_slice(&stamp.sent_ns.to_be_bytes());
    let tail = ((stamp.producer as u64) << 48) | (stamp.seq & MAX_SEQ);
    buf[8..16].copy_from_slice(&tail.to_be_bytes());
}

/// Read the stamp at the start of a body; None if the body is too short to hold
/// one (a message not sent by `warren perf`).
#[inline]
pub fn read_stamp(body: &[u8]) -> Option<Stamp> {
    let head: &[u8; STAMP_LEN] = body.get(..STAMP_LEN)?.try_into().ok()?;
    let mut a = [0u8; 8];
    a.copy_from_slice(&head[0..8]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&head[8..16]);
    let tail = u64::from_be_bytes(b);
    Some(Stamp {
        sent_ns: u64::from_be_bytes(a),
        producer: (tail >> 48) as u16,
        seq: tail & MAX_SEQ,
    })
}

/// What recording one sequence number found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The next one expected.
    InOrder,
    /// Beyond the next expected: the ones in between are missing for now.
    Ahead,
    /// Fills an earlier hole: it arrived late.
    Late,
    /// Already received.
    Duplicate,
}

/// Which of one producer's sequence numbers (0, 1, 2, ...) a queue has delivered.
///
/// Everything below `next` has been seen except the `holes`, kept as ranges so
/// that memory stays proportional to the number of gaps, not of messages, even if
/// a broker loses a million messages.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    next: u64,
    /// start -> end (exclusive) of each run of missing sequence numbers below `next`.
    holes: BTreeMap<u64, u64>,
    distinct: u64,
    duplicates: u64,
}

impl SeqTracker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, seq: u64) -> Seen {
        if seq == self.next {
            self.next += 1;
            self.distinct += 1;
            return Seen::InOrder;
        }
        if seq > self.next {
            self.holes.insert(self.next, seq);
            self.next = seq + 1;
            self.distinct += 1;
            return Seen::Ahead;
        }
        // Below `next`: either it fills a hole or it is a duplicate.
        let hole = self
            .holes
            .range(..=seq)
            .next_back()
            .map(|(&s, &e)| (s, e))
            .filter(|&(_, e)| seq < e);
        match hole {
            Some((start, end)) => {
                self.holes.remove(&start);
                if start < seq {
                    self.holes.insert(start, seq);
                }
                if seq + 1 < end {
                    self.holes.insert(seq + 1, end);
                }
                self.distinct += 1;
                Seen::Late
            }
            None => {
                self.duplicates += 1;
                Seen::Duplicate
            }
        }
    }

    /// Distinct sequence numbers received.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// How many of `sent` messages (sequence numbers 0..sent) never arrived.
    pub fn missing(&self, sent: u64) -> u64 {
        let in_holes: u64 = self
            .holes
            .iter()
            .map(|(&s, &e)| e.min(sent).saturating_sub(s))
            .sum();
        in_holes + sent.saturating_sub(self.next)
    }

    /// Sequence numbers received that were never sent (>= `sent`).
    pub fn beyond(&self, sent: u64) -> u64 {
        if self.next <= sent {
            return 0;
        }
        let holes_beyond: u64 = self
            .holes
            .range(..)
            .map(|(&s, &e)| e.saturating_sub(s.max(sent)))
            .sum();
        (self.next - sent) - holes_beyond
    }
}

/// Per-consumer reorder detection: the last sequence number seen from each
/// producer.
#[derive(Debug, Default, Clone)]
pub struct OrderCheck {
    last: Vec<Option<u64>>,
    reordered: u64,
}

impl OrderCheck {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record a (non-duplicate) message; returns false if it came after a later
    /// message from the same producer.
    pub fn record(&mut self, producer: u16, seq: u64) -> bool {
        let p = producer as usize;
        if self.last.len() <= p {
            self.last.resize(p + 1, None);
        }
        match self.last[p] {
            Some(last) if seq < last => {
                self.reordered += 1;
                false
            }
            _ => {
                self.last[p] = Some(seq);
                true
            }
        }
    }

    pub fn reordered(&self) -> u64 {
        self.reordered
    }
}

/// Publisher-confirm bookkeeping for one channel: which delivery tags (1, 2, ...)
/// are still unconfirmed.
///
/// Brokers usually confirm in order with `multiple`, but may confirm single tags
/// out of order (RabbitMQ does across queues); a deque of flags from the oldest
/// unconfirmed tag handles both in amortised O(1).
///
/// It also measures confirm latency (publish written to confirm read) of every
/// acked message: the send instant of each pending tag is kept beside its flag.
#[derive(Debug, Default)]
pub struct ConfirmWindow {
    /// The oldest tag still in `pending`.
    base: u64,
    /// pending[i]: whether tag base+i has been settled.
    pending: std::collections::VecDeque<bool>,
    /// sent[i]: when tag base+i was published (same length as `pending`).
    sent: std::collections::VecDeque<std::time::Instant>,
    outstanding: u64,
    acked: u64,
    nacked: u64,
    /// Publish-to-ack times of acked messages (nanoseconds).
    latency: crate::histogram::Histogram,
}

impl ConfirmWindow {
    pub fn new() -> Self {
        ConfirmWindow {
            base: 1,
            ..Default::default()
        }
    }

    /// A message was published now; it gets the next delivery tag.
    pub fn published(&mut self) {
        self.published_at(std::time::Instant::now());
    }

    /// A message was published at `at` (one instant per written batch); it
    /// gets the next delivery tag.
    pub fn published_at(&mut self, at: std::time::Instant) {
        self.pending.push_back(false);
        self.sent.push_back(at);
        self.outstanding += 1;
    }

    /// Publish-to-ack times of the messages acked so far.
    pub fn latency(&self) -> &crate::histogram::Histogram {
        &self.latency
    }

    /// Unconfirmed messages.
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The oldest tag not yet settled (the next one to publish if none is out).
    pub fn oldest_tag(&self) -> u64 {
        self.base
    }

    pub fn nacked(&self) -> u64 {
        self.nacked
    }

    /// basic.ack / basic.nack from the broker. Returns how many messages it
    /// settled; tags already settled or never published are ignored (and
    /// counted as 0) rather than trusted.
    pub fn settle(&mut self, tag: u64, multiple: bool, ack: bool) -> u64 {
        let mut settled = 0;
        let now = std::time::Instant::now();
        let mut record = |sent: std::time::Instant| {
            if ack {
                let ns = now.saturating_duration_since(sent).as_nanos();
                self.latency.record(ns.min(u64::MAX as u128) as u64);
            }
        };
        if multiple {
            while self.base <= tag {
                let Some(done) = self.pending.pop_front() else {
                    break;
                };
                let sent = self.sent.pop_front();
                if !done {
                    settled += 1;
                    if let Some(sent) = sent {
                        record(sent);
                    }
                }
                self.base += 1;
            }
        } else if tag >= self.base {
            let i = (tag - self.base) as usize;
            if let Some(slot) = self.pending.get_mut(i) {
                if !*slot {
                    *slot = true;
                    settled = 1;
                    if let Some(&sent) = self.sent.get(i) {
                        record(sent);
                    }
                }
            }
            while self.pending.front() == Some(&true) {
                self.pending.pop_front();
                self.sent.pop_front();
                self.base += 1;
            }
        }
        self.outstanding -= settled;
        if ack {
            self.acked += settled;
        } else {
            self.nacked += settled;
        }
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_roundtrip() {
        let s = Stamp {
            sent_ns: 0x0102_0304_0506_0708,
            producer: 513,
            seq: MAX_SEQ - 1,
        };
        let mut buf = [0u8; 20];
        write_stamp(&mut buf, s);
        assert_eq!(read_stamp(&buf), Some(s));
        assert_eq!(read_stamp(&buf[..15]), None);
    }

    #[test]
    fn in_order_stream_has_nothing_missing() {
        let mut t = SeqTracker::new();
        for s in 0..1000 {
            assert_eq!(t.record(s), Seen::InOrder);
        }
        assert_eq!(
            (t.missing(1000), t.duplicates(), t.distinct()),
            (0, 0, 1000)
        );
        // Three sent but still in flight: reported as missing.
        assert_eq!(t.missing(1003), 3);
    }

    #[test]
    fn lost_in_the_middle_and_at_the_end() {
        let mut t = SeqTracker::new();
        for s in (0..10).chain(15..20).chain(22..30) {
            t.record(s);
        }
        // 10..15 and 20..22 lost, 30..35 never arrived.
        assert_eq!(t.missing(35), 5 + 2 + 5);
        assert_eq!(t.duplicates(), 0);
    }

    #[test]
    fn duplicates_are_counted_once_each() {
        let mut t = SeqTracker::new();
        for s in [0, 1, 1, 2, 0, 2, 3] {
            t.record(s);
        }
        assert_eq!(t.duplicates(), 3);
        assert_eq!(t.distinct(), 4);
        assert_eq!(t.missing(4), 0);
        // A duplicate of something inside a still-open hole is not a duplicate.
        let mut t = SeqTracker::new();
        t.record(0);
        t.record(5);
        assert_eq!(t.record(5), Seen::Duplicate);
        assert_eq!(t.record(3), Seen::Late);
        assert_eq!(t.record(3), Seen::Duplicate);
        assert_eq!(t.missing(6), 3); // 1, 2, 4
    }

    #[test]
    fn late_arrivals_fill_holes() {
        let mut t = SeqTracker::new();
        assert_eq!(t.record(0), Seen::InOrder);
        assert_eq!(t.record(3), Seen::Ahead);
        assert_eq!(t.record(1), Seen::Late);
        assert_eq!(t.record(2), Seen::Late);
        assert_eq!(t.missing(4), 0);
        assert_eq!(t.beyond(4), 0);
        assert_eq!(t.beyond(2), 2);
    }

    #[test]
    fn reorder_is_detected_per_consumer() {
        let mut o = OrderCheck::new();
        assert!(o.record(0, 0));
        assert!(o.record(1, 5));
        assert!(o.record(0, 2));
        assert!(!o.record(0, 1));
        assert!(o.record(1, 6));
        assert_eq!(o.reordered(), 1);
    }

    #[test]
    fn confirm_window_multiple_and_single() {
        let mut w = ConfirmWindow::new();
        for _ in 0..10 {
            w.published();
        }
        assert_eq!(w.settle(4, true, true), 4);
        assert_eq!(w.outstanding(), 6);
        // Out-of-order singles.
        assert_eq!(w.settle(7, false, true), 1);
        assert_eq!(w.settle(5, false, false), 1);
        assert_eq!(w.settle(5, false, true), 0); // already settled
        assert_eq!(w.settle(6, false, true), 1);
        assert_eq!(w.settle(10, true, true), 3); // 8, 9, 10
        assert_eq!(w.settle(99, true, true), 0);
        assert_eq!((w.outstanding(), w.acked(), w.nacked()), (0, 9, 1));
        // One latency sample per acked message, none for the nack.
        assert_eq!(w.latency().count(), 9);
    }
}
