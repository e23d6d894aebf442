//! An MQTT connection's channel for the management API: RabbitMQ's MQTT plugin
//! (before 3.12) ran each connection over one AMQP channel, numbered 1.

use warren_core::connections::{ChannelInfo, ChannelSource};
use warren_core::stats::ChannelStats;

use crate::delivery::Outgoing;

impl ChannelSource for Outgoing {
    fn channels(&self) -> Vec<ChannelInfo> {
        let consumers = self.subs.read().subs.len() as u32;
        vec![ChannelInfo {
            number: 1,
            name: format!("{} (1)", self.origin.connection),
            prefetch_count: self.window() as u32,
            global_prefetch_count: 0,
            messages_unacknowledged: self.inflight_count() as u64,
            messages_unconfirmed: 0,
            consumer_count: consumers,
            confirm: false,
            transactional: false,
            message_stats: self
                .stats
                .existing()
                .map(|s| s.messages.snapshot())
                .unwrap_or_default(),
            publish_stats: self
                .stats
                .existing()
                .map(|s| s.publishing.snapshot())
                .unwrap_or_default(),
        }]
    }

    fn each_stats(&self, visit: &mut dyn FnMut(&ChannelStats)) {
        if let Some(s) = self.stats.existing() {
            visit(s);
        }
    }
}
