//! What a channel counts besides deliveries: publisher confirms and
//! unroutable messages (RabbitMQ's channel `confirm`, `return_unroutable`,
//! `drop_unroutable`), and the node's churn (connections, channels and
//! queues opened, closed, declared: RabbitMQ's overview `churn_rates` and
//! the `rabbitmq_*_opened_total`... Prometheus counters).

use super::fields::MessageStats;
use super::set::{Counters, Field, Snapshot};
use std::sync::Arc;

/// Figures of the publishing side of a channel (and summed per vhost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishField {
    /// Publishes confirmed (basic.ack to a confirm-mode publisher).
    Confirm,
    /// Mandatory publishes that reached no queue, returned (basic.return).
    ReturnUnroutable,
    /// Non-mandatory publishes that reached no queue, dropped.
    DropUnroutable,
}

impl Field for PublishField {
    const ALL: &'static [Self] = &[
        PublishField::Confirm,
        PublishField::ReturnUnroutable,
        PublishField::DropUnroutable,
    ];

    #[inline]
    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            PublishField::Confirm => "confirm",
            PublishField::ReturnUnroutable => "return_unroutable",
            PublishField::DropUnroutable => "drop_unroutable",
        }
    }
}

/// A channel's or vhost's publishing counters.
pub type PublishStats = Counters<PublishField, 3>;
/// Publishing counts and rates, as read.
pub type PublishSnapshot = Snapshot<PublishField, 3>;

/// The node's churn, named as RabbitMQ's overview `churn_rates`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChurnField {
    ConnectionCreated,
    ConnectionClosed,
    ChannelCreated,
    ChannelClosed,
    /// queue.declare calls that named or created a queue (redeclares too).
    QueueDeclared,
    QueueCreated,
    QueueDeleted,
}

impl Field for ChurnField {
    const ALL: &'static [Self] = &[
        ChurnField::ConnectionCreated,
        ChurnField::ConnectionClosed,
        ChurnField::ChannelCreated,
        ChurnField::ChannelClosed,
        ChurnField::QueueDeclared,
        ChurnField::QueueCreated,
        ChurnField::QueueDeleted,
    ];

    #[inline]
    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            ChurnField::ConnectionCreated => "connection_created",
            ChurnField::ConnectionClosed => "connection_closed",
            ChurnField::ChannelCreated => "channel_created",
            ChurnField::ChannelClosed => "channel_closed",
            ChurnField::QueueDeclared => "queue_declared",
            ChurnField::QueueCreated => "queue_created",
            ChurnField::QueueDeleted => "queue_deleted",
        }
    }
}

/// The broker's churn counters: one set per broker, shared by its
/// connection registry and vhosts (off the message path: counted when a
/// connection, channel or queue comes or goes). Node-wide as RabbitMQ's, so
/// deleting a vhost does not take its counts away.
pub type ChurnStats = Counters<ChurnField, 7>;
/// Churn counts and rates, as read.
pub type ChurnSnapshot = Snapshot<ChurnField, 7>;

/// One channel's counters (an AMQP channel, a STOMP connection's one
/// channel). Creating one counts a channel created, dropping it a channel
/// closed, so every adapter's channels are in the churn figures.
pub struct ChannelStats {
    /// Publishes, deliveries, gets, acks (as a queue's, but per channel).
    pub messages: MessageStats,
    pub publishing: PublishStats,
    churn: Arc<ChurnStats>,
}

impl ChannelStats {
    /// A new channel's counters; counts it in `churn` as created.
    pub fn new(churn: Arc<ChurnStats>) -> ChannelStats {
        churn.add(ChurnField::ChannelCreated, 1);
        ChannelStats {
            messages: MessageStats::default(),
            publishing: PublishStats::default(),
            churn,
        }
    }

    pub(crate) fn sample(&self, secs: f64) {
        self.messages.sample(secs);
        self.publishing.sample(secs);
    }
}

impl Drop for ChannelStats {
    fn drop(&mut self) {
        self.churn.add(ChurnField::ChannelClosed, 1);
    }
}

/// A channel's counters made on first use. An idle MQTT connection never
/// counts anything on its one channel, and ~180 B of counters per idle
/// connection is most of what stands between it and a smaller allocation;
/// this keeps 24 B until the first publish, delivery or ack. Counted in
/// `churn` as a channel created at once and closed on drop, as a
/// [`ChannelStats`] is.
pub struct LazyChannelStats {
    churn: Arc<ChurnStats>,
    stats: std::sync::OnceLock<Box<ChannelStats>>,
}

impl LazyChannelStats {
    pub fn new(churn: Arc<ChurnStats>) -> LazyChannelStats {
        churn.add(ChurnField::ChannelCreated, 1);
        LazyChannelStats {
            churn,
            stats: std::sync::OnceLock::new(),
        }
    }

    /// The counters, made now if nothing was counted yet.
    pub fn get(&self) -> &ChannelStats {
        self.stats.get_or_init(|| {
            // Already counted as created by `new`; the drop of these
            // counters counts the close.
            Box::new(ChannelStats {
                messages: MessageStats::default(),
                publishing: PublishStats::default(),
                churn: self.churn.clone(),
            })
        })
    }

    /// The counters if anything was counted (None reads as all zero).
    pub fn existing(&self) -> Option<&ChannelStats> {
        self.stats.get().map(|b| &**b)
    }
}

impl Drop for LazyChannelStats {
    fn drop(&mut self) {
        // Made counters count the close themselves when dropped.
        if self.stats.get().is_none() {
            self.churn.add(ChurnField::ChannelClosed, 1);
        }
    }
}
