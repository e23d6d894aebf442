//! The node's totals for Prometheus' `rabbitmq_global_*` counters: every
//! vhost's, plus what deleted vhosts had counted (folded in when each goes),
//! so the counters never go backwards, as Prometheus counters must not.

use super::channel::PublishSnapshot;
use super::fields::{MessageField, MessageSnapshot, MESSAGE_FIELDS};
use crate::vhost::VHost;
use parking_lot::Mutex;

/// What the node counted, as read for one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GlobalTotals {
    /// Deliveries, gets, acks, redeliveries; `publish`: messages received.
    pub messages: MessageSnapshot,
    /// Confirms, returned and dropped unroutable messages.
    pub publishing: PublishSnapshot,
    /// Publishes received on confirm-mode channels.
    pub received_confirm: u64,
    /// Dead-lettered: `[strategy][reason]` (see `VHostStats::dead_lettered`).
    pub dead_lettered: [[u64; 4]; 2],
}

impl GlobalTotals {
    /// One vhost's totals.
    pub fn of(v: &VHost) -> GlobalTotals {
        let t = v.totals();
        GlobalTotals {
            messages: v.message_stats(),
            publishing: t.publishing(),
            received_confirm: t.received_confirm(),
            dead_lettered: t.dead_lettered(),
        }
    }

    /// Add `o`'s counts (rates are not kept: Prometheus takes counts).
    pub fn add(&mut self, o: &GlobalTotals) {
        let mut values = [0u64; MESSAGE_FIELDS];
        for (i, f) in <MessageField as super::Field>::ALL.iter().enumerate() {
            values[i] = self.messages.get(*f) + o.messages.get(*f);
        }
        self.messages = MessageSnapshot::from_parts(values, [0.0; MESSAGE_FIELDS]);
        let mut p = self.publishing;
        p.add(&o.publishing);
        self.publishing = p;
        self.received_confirm += o.received_confirm;
        for (s, os) in self.dead_lettered.iter_mut().zip(o.dead_lettered) {
            for (x, y) in s.iter_mut().zip(os) {
                *x += y;
            }
        }
    }
}

/// Deleted vhosts' totals (the broker keeps one).
#[derive(Default)]
pub struct RetiredVHosts(Mutex<GlobalTotals>);

impl RetiredVHosts {
    /// Keep what `v` counted; called once when it is deleted.
    pub(crate) fn retire(&self, v: &VHost) {
        self.0.lock().add(&GlobalTotals::of(v));
    }

    pub(crate) fn get(&self) -> GlobalTotals {
        *self.0.lock()
    }
}
