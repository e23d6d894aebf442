//! A STOMP connection's channel for the management API. RabbitMQ runs each
//! STOMP connection over one AMQP channel, numbered 1, and lists it in
//! `/api/channels` with the subscriptions' prefetch and unacknowledged
//! deliveries; [`Deliveries`] holds all of that, so it is the connection's
//! [`ChannelSource`].

use crate::subscription::Deliveries;
use std::sync::atomic::Ordering::Relaxed;
use warren_core::connections::{ChannelInfo, ChannelSource};
use warren_core::stats::ChannelStats;

/// The number of a STOMP connection's one channel.
pub const CHANNEL: u16 = 1;

impl ChannelSource for Deliveries {
    fn channels(&self) -> Vec<ChannelInfo> {
        let (unacked, subscriptions) = self.counts();
        vec![ChannelInfo {
            number: CHANNEL,
            name: format!("{} ({})", self.connection_name(), CHANNEL),
            prefetch_count: self.prefetch.load(Relaxed),
            global_prefetch_count: 0,
            messages_unacknowledged: unacked as u64,
            messages_unconfirmed: 0,
            consumer_count: subscriptions as u32,
            confirm: false,
            transactional: false,
            message_stats: self.stats.messages.snapshot(),
            publish_stats: self.stats.publishing.snapshot(),
        }]
    }

    fn each_stats(&self, visit: &mut dyn FnMut(&ChannelStats)) {
        visit(&self.stats);
    }
}
