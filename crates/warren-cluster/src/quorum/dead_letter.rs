//! A quorum queue's dead letters: its state machine decides which messages
//! die (rejected without requeue, returned more often than
//! `x-delivery-limit`, dropped for length, expired) and every member applies that;
//! only the group's leader carries the `DeadLetter` effects out (see
//! `consume.rs`), through the core's dead-lettering, so `x-death` and the
//! routing are those of a classic queue. As RabbitMQ's default
//! (`at-most-once`): republished unconfirmed; a leader that dies between
//! the apply and the republish loses them.

use super::hub::to_core;
use crate::node::Cluster;
use std::sync::Arc;
use tracing::debug;
use warren_core::queue::{dead_letter_messages, Reason};
use warren_core::{Message, ShortStr};
use warren_quorum::DeadLetterReason;

fn reason(r: DeadLetterReason) -> Reason {
    match r {
        DeadLetterReason::Rejected => Reason::Rejected,
        DeadLetterReason::DeliveryLimit => Reason::DeliveryLimit,
        DeadLetterReason::MaxLength => Reason::Maxlen,
        DeadLetterReason::Expired => Reason::Expired,
    }
}

impl Cluster {
    /// Route `group`'s dead messages to its queue's dead-letter exchange
    /// (dropped if it has none).
    pub(crate) fn dead_letter(
        &self,
        group: u64,
        dead: Vec<(DeadLetterReason, warren_quorum::Message)>,
    ) {
        let key = self
            .quorum
            .queues
            .lock()
            .iter()
            .find(|(_, q)| q.group == group)
            .map(|(k, _)| k.clone());
        let queue = key.and_then(|(vhost, name)| {
            self.broker
                .vhost(&vhost)
                .and_then(|v| v.named_queue(ShortStr::from(name.as_str()).as_bytes()))
        });
        let Some(queue) = queue else {
            debug!(
                "quorum group {group:#x}: {} dead letters dropped (no queue)",
                dead.len()
            );
            return;
        };
        let dead: Vec<(Arc<Message>, Reason)> = dead
            .into_iter()
            .map(|(r, m)| (to_core(&m), reason(r)))
            .collect();
        dead_letter_messages(&queue, dead);
    }
}
