//! Delayed messages (`x-delayed-message` exchanges, as the community plugin
//! users install on RabbitMQ): a message with an `x-delay` header of N > 0 ms is
//! held N ms, then routed with the exchange's `x-delayed-type` semantics, carrying
//! `x-delay: -N` as the plugin does.
//!
//! One scheduler per vhost: a time-ordered map and a single task that sleeps until
//! the earliest deadline, so a million waiting messages cost memory, not CPU.
//! Persistent messages held by a durable delayed exchange are also written to the
//! message log under the exchange's `delay_id`; after a restart they are
//! rescheduled for their original deadline (publish time + delay).

use crate::exchange::Exchange;
use crate::message::{Message, Stored};
use crate::queue::now_ms;
use crate::store::{MessageLog, RecoveredEntry};
use crate::table::FieldValue;
use crate::vhost::VHost;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// (deadline ms, tie-breaking sequence number)
type Due = (u64, u64);
/// A held message, the exchange it was published to, and its log record.
type Held = (Arc<Exchange>, Arc<Message>, Option<Stored>);

#[derive(Default)]
pub struct DelayedStore {
    waiting: Mutex<BTreeMap<Due, Held>>,
    seq: AtomicU64,
    wake: tokio::sync::Notify,
    started: AtomicBool,
}

/// The `x-delay` of a message in ms (integers or numeric strings), if positive.
pub fn delay_of(m: &Message) -> Option<u64> {
    let props = m.decode_properties();
    let v = props.headers.as_ref()?.get("x-delay")?.clone();
    let n = match v {
        FieldValue::LongStr(s) => std::str::from_utf8(&s).ok()?.trim().parse::<i64>().ok()?,
        other => other.as_i64()?,
    };
    (n > 0).then_some(n as u64)
}

/// The message as delivered after waiting: `x-delay` becomes `-delay`.
pub fn released(m: &Message, delay: u64) -> Arc<Message> {
    let mut props = m.decode_properties();
    if let Some(h) = props.headers.as_mut() {
        h.insert(
            "x-delay",
            FieldValue::I32(-(delay.min(i32::MAX as u64) as i32)),
        );
    }
    Message::new(
        m.exchange.clone(),
        m.routing_key.clone(),
        props.encode(),
        m.body.clone(),
    )
}

impl DelayedStore {
    /// Hold `msg` until `due_ms`, then publish it to `exchange` in `vhost`.
    pub fn schedule(
        &self,
        vhost: &Arc<VHost>,
        exchange: Arc<Exchange>,
        msg: Arc<Message>,
        stored: Option<Stored>,
        due_ms: u64,
    ) {
        let due = (due_ms, self.seq.fetch_add(1, Ordering::Relaxed));
        let earliest = {
            let mut w = self.waiting.lock();
            w.insert(due, (exchange, msg, stored));
            w.keys().next() == Some(&due)
        };
        self.start(vhost);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Start the scheduler task (once, and only inside the runtime).
    pub fn start(&self, vhost: &Arc<VHost>) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            if !self.started.swap(true, Ordering::AcqRel) {
                rt.spawn(run(Arc::downgrade(vhost)));
            }
        }
    }

    /// Reschedule held messages found in the message log at startup (before the
    /// runtime runs: [`DelayedStore::start`] is called once it does).
    pub fn recover(&self, log: &MessageLog, exchange: &Arc<Exchange>, held: Vec<RecoveredEntry>) {
        use crate::store::record::Record;
        for r in held {
            let Ok(Record::Publish {
                exchange: ex,
                routing_key,
                properties,
                body,
                published_at,
                ..
            }) = log.read(r.loc)
            else {
                continue;
            };
            log.add_refs(r.loc.segment, 1);
            let msg = Message::new(ex, routing_key, properties, body);
            // The held copy carries x-delay = -delay.
            let delay = msg
                .decode_properties()
                .headers
                .and_then(|h| h.get("x-delay").and_then(|v| v.as_i64()))
                .map_or(0, |d| d.unsigned_abs());
            let due = (
                published_at.saturating_add(delay),
                self.seq.fetch_add(1, Ordering::Relaxed),
            );
            let stored = Stored {
                msg_id: r.msg_id,
                loc: r.loc,
            };
            self.waiting
                .lock()
                .insert(due, (exchange.clone(), msg, Some(stored)));
        }
    }

    pub fn len(&self) -> usize {
        self.waiting.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

async fn run(vhost: Weak<VHost>) {
    loop {
        let Some(v) = vhost.upgrade() else { return };
        let store = v.delayed();
        let now = now_ms();
        let mut ready = Vec::new();
        let next = {
            let mut w = store.waiting.lock();
            while let Some((&due, _)) = w.iter().next() {
                if due.0 > now {
                    break;
                }
                if let Some(item) = w.remove(&due) {
                    ready.push(item);
                }
            }
            w.keys().next().map(|d| d.0)
        };
        for (exchange, msg, stored) in ready {
            if !exchange.is_deleted() {
                let mut out = Vec::new();
                v.publish(&exchange, msg, &mut out);
            }
            // Routed (into durable queues' own records if persistent): the held
            // copy is done with.
            if let Some(s) = stored {
                let log = &v.store().log;
                log.append_ack(exchange.delay_id, &[(s.msg_id, s.loc.segment)]);
                log.release(s.loc.segment, 1);
            }
        }
        let wait = next.map_or(3_600_000, |d| d.saturating_sub(now_ms()));
        let notified = store.wake.notified();
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
            _ = notified => {}
        }
    }
}
