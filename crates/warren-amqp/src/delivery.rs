//! The delivery side of a channel: the part queues call into.
//!
//! [`ChannelShared`] implements the core's [`ConsumerSink`]. Under one lock it
//! checks prefetch, assigns the delivery tag, records the unacknowledged delivery
//! and queues the `basic.deliver` for the writer, so delivery tags reach the client
//! in increasing order and an ack can never refer to a delivery not yet sent.

use crate::codec::{BasicCancel, BasicDeliver, Method};
use crate::writer::{Outlet, SendFrames};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use warren_core::connections::ChannelInfo;
use warren_core::error::BrokerError;
use warren_core::stats::ChannelStats;
use warren_core::{Consumer, ConsumerSink, Queue, QueuedMessage, ShortStr};

/// A delivery the client has not acknowledged yet.
pub struct Unacked {
    pub tag: u64,
    pub queue: Arc<Queue>,
    pub msg: QueuedMessage,
    /// None for basic.get deliveries.
    pub consumer: Option<Arc<Consumer>>,
}

/// A consumer registered on this channel.
#[derive(Clone)]
pub struct ConsumerEntry {
    pub consumer: Arc<Consumer>,
    pub queue: Arc<Queue>,
}

pub struct DeliveryState {
    next_tag: u64,
    pub unacked: VecDeque<Unacked>,
    /// basic.qos global=true limit (0 = unlimited) and the count it applies to.
    pub global_prefetch: u32,
    consumer_unacked: u32,
    /// channel.flow: false stops deliveries.
    pub flow_active: bool,
    pub closed: bool,
    pub consumers: HashMap<ShortStr, ConsumerEntry>,
    /// While Some, server-sent basic.cancels wait here: set around a queue.delete
    /// on this channel so that, as with RabbitMQ, delete-ok goes out first.
    deferred_cancels: Option<Vec<ShortStr>>,
}

pub struct ChannelShared {
    pub id: u16,
    pub outlet: Arc<Outlet>,
    /// Whether the client understands server-sent basic.cancel.
    pub cancel_notify: bool,
    /// Who this channel is, for firehose delivery traces.
    pub origin: warren_core::trace::Origin,
    pub vhost: Arc<warren_core::VHost>,
    pub state: Mutex<DeliveryState>,
    /// What the management API shows of the channel (see [`Self::info`]).
    pub listing: Listing,
}

/// A channel's figures for the management API. The counters are written
/// either under the delivery lock (deliveries, gets) or by the reader task
/// alone (publishes, acks), so each has serialized writers.
pub struct Listing {
    /// Counts the channel in the broker's churn when made and dropped.
    pub stats: ChannelStats,
    /// The channel's `Mode`, mirrored when it changes.
    pub confirm: AtomicBool,
    pub transactional: AtomicBool,
    /// basic.qos global=false prefetch, mirrored when it changes.
    pub prefetch: AtomicU32,
    /// Publishes awaiting their confirm, updated once per read batch.
    pub unconfirmed: AtomicU64,
}

impl ChannelShared {
    pub fn new(
        id: u16,
        outlet: Arc<Outlet>,
        cancel_notify: bool,
        origin: warren_core::trace::Origin,
        vhost: Arc<warren_core::VHost>,
    ) -> Arc<ChannelShared> {
        let stats = ChannelStats::new(vhost.churn().clone());
        Arc::new(ChannelShared {
            id,
            outlet,
            origin,
            vhost,
            cancel_notify,
            state: Mutex::new(DeliveryState {
                next_tag: 1,
                unacked: VecDeque::new(),
                global_prefetch: 0,
                consumer_unacked: 0,
                flow_active: true,
                closed: false,
                consumers: HashMap::new(),
                deferred_cancels: None,
            }),
            listing: Listing {
                stats,
                confirm: AtomicBool::new(false),
                transactional: AtomicBool::new(false),
                prefetch: AtomicU32::new(0),
                unconfirmed: AtomicU64::new(0),
            },
        })
    }

    /// The channel as `/api/channels` lists it; `conn_name` is its
    /// connection's name.
    pub fn info(&self, conn_name: &str) -> ChannelInfo {
        let l = &self.listing;
        let st = self.state.lock();
        ChannelInfo {
            number: self.id,
            name: format!("{} ({})", conn_name, self.id),
            prefetch_count: l.prefetch.load(Relaxed),
            global_prefetch_count: st.global_prefetch,
            messages_unacknowledged: st.unacked.len() as u64,
            messages_unconfirmed: l.unconfirmed.load(Relaxed),
            consumer_count: st.consumers.len() as u32,
            confirm: l.confirm.load(Relaxed),
            transactional: l.transactional.load(Relaxed),
            message_stats: l.stats.messages.snapshot(),
            publish_stats: l.stats.publishing.snapshot(),
        }
    }

    /// Record a basic.get delivery and return its tag.
    pub fn record_get(&self, queue: &Arc<Queue>, msg: &QueuedMessage, no_ack: bool) -> u64 {
        let mut st = self.state.lock();
        let tag = st.next_tag;
        st.next_tag += 1;
        self.listing
            .stats
            .messages
            .count_delivery_serialized(true, no_ack, msg.redelivered);
        if !no_ack {
            st.unacked.push_back(Unacked {
                tag,
                queue: queue.clone(),
                msg: msg.clone(),
                consumer: None,
            });
        }
        tag
    }

    /// Take the deliveries an ack/nack/reject refers to. `multiple` takes every
    /// delivery up to and including `tag` (tag 0 with multiple: all of them).
    pub fn take(&self, tag: u64, multiple: bool) -> Result<Vec<Unacked>, BrokerError> {
        let mut st = self.state.lock();
        let taken: Vec<Unacked> = if multiple {
            let end = if tag == 0 {
                st.unacked.len()
            } else {
                st.unacked.partition_point(|u| u.tag <= tag)
            };
            // As RabbitMQ: the tag itself must be outstanding, even with
            // `multiple` (else 406 and nothing is acked).
            if tag != 0 && (end == 0 || st.unacked[end - 1].tag != tag) {
                return Err(unknown_tag(tag));
            }
            st.unacked.drain(..end).collect()
        } else {
            let pos = st.unacked.partition_point(|u| u.tag < tag);
            match st.unacked.get(pos) {
                Some(u) if u.tag == tag => st.unacked.remove(pos).into_iter().collect(),
                _ => return Err(unknown_tag(tag)),
            }
        };
        for u in &taken {
            if let Some(c) = &u.consumer {
                c.sub_unacked(1);
                st.consumer_unacked = st.consumer_unacked.saturating_sub(1);
            }
        }
        Ok(taken)
    }

    /// Take every unacknowledged delivery (channel closing, basic.recover).
    pub fn take_all(&self) -> Vec<Unacked> {
        let mut st = self.state.lock();
        let all: Vec<Unacked> = st.unacked.drain(..).collect();
        for u in &all {
            if let Some(c) = &u.consumer {
                c.sub_unacked(1);
            }
        }
        st.consumer_unacked = 0;
        all
    }

    /// Hold back server-sent basic.cancels until [`Self::send_deferred_cancels`].
    pub fn defer_cancels(&self) {
        self.state
            .lock()
            .deferred_cancels
            .get_or_insert_with(Vec::new);
    }

    /// Send the basic.cancels held back since [`Self::defer_cancels`].
    pub fn send_deferred_cancels(&self) {
        let mut st = self.state.lock();
        let Some(tags) = st.deferred_cancels.take() else {
            return;
        };
        if st.closed {
            return;
        }
        for tag in tags {
            self.send_cancel(tag);
        }
    }

    fn send_cancel(&self, consumer_tag: ShortStr) {
        self.outlet.send_method(
            self.id,
            Method::BasicCancel(BasicCancel {
                consumer_tag,
                nowait: true,
            }),
        );
    }

    /// Queues whose consumers on this channel may now have room.
    pub fn consumer_queues(&self) -> Vec<Arc<Queue>> {
        let st = self.state.lock();
        let mut qs: Vec<Arc<Queue>> = Vec::with_capacity(st.consumers.len());
        for e in st.consumers.values() {
            if !qs.iter().any(|q| Arc::ptr_eq(q, &e.queue)) {
                qs.push(e.queue.clone());
            }
        }
        qs
    }
}

fn unknown_tag(tag: u64) -> BrokerError {
    BrokerError::precondition_failed(format!("unknown delivery tag {}", tag))
}

impl ConsumerSink for ChannelShared {
    fn offer(&self, consumer: &Arc<Consumer>, queue: &Arc<Queue>, msg: &QueuedMessage) -> bool {
        if !consumer.is_active() || !consumer.has_credit() || !self.outlet.has_room(queue) {
            return false;
        }
        let mut st = self.state.lock();
        if st.closed || !st.flow_active {
            return false;
        }
        if !consumer.no_ack && st.global_prefetch > 0 && st.consumer_unacked >= st.global_prefetch {
            return false;
        }
        let tag = st.next_tag;
        st.next_tag += 1;
        self.listing.stats.messages.count_delivery_serialized(
            false,
            consumer.no_ack,
            msg.redelivered,
        );
        if !consumer.no_ack {
            consumer.add_unacked();
            st.consumer_unacked += 1;
            st.unacked.push_back(Unacked {
                tag,
                queue: queue.clone(),
                msg: queue.unacked_entry(msg),
                consumer: Some(consumer.clone()),
            });
        }
        let m = &msg.message;
        if self.vhost.is_tracing() {
            warren_core::trace::deliver(queue, m, msg.redelivered, &self.origin);
        }
        self.outlet.send_content(
            self.id,
            Method::BasicDeliver(BasicDeliver {
                consumer_tag: consumer.tag.clone(),
                delivery_tag: tag,
                redelivered: msg.redelivered,
                exchange: m.exchange.clone(),
                routing_key: m.routing_key.clone(),
            }),
            m.clone(),
        );
        true
    }

    fn cancelled(&self, consumer: &Arc<Consumer>) {
        let mut st = self.state.lock();
        let mine = matches!(st.consumers.get(&consumer.tag), Some(e) if Arc::ptr_eq(&e.consumer, consumer));
        if !mine {
            return;
        }
        st.consumers.remove(&consumer.tag);
        if !self.cancel_notify || st.closed {
            return;
        }
        match st.deferred_cancels.as_mut() {
            Some(tags) => tags.push(consumer.tag.clone()),
            None => self.send_cancel(consumer.tag.clone()),
        }
    }
}
