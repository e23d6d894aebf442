//! The consumer loop, written once for both protocols ([`crate::load::Consumer`]
//! over AMQP, [`crate::stomp::StompConsumer`] over STOMP): they differ only in
//! how a delivery reads and how it is acknowledged.
//!
//! A consumer handles every frame already read before it writes its acks and
//! records statistics, so acks go out batched and the shared locks are taken
//! once per batch.

use futures_util::StreamExt;
use std::future::Future;
use tokio_util::sync::CancellationToken;

use crate::client::Result;
use crate::load::{Recorder, Shared};
use crate::wire::{flush, or_closed, try_next, Item, Wire};

/// Frames a consumer handles before it writes its acks and records statistics.
pub(crate) const CONSUME_BATCH: usize = 4096;

/// A subscribed consumer of one protocol.
pub(crate) trait Consume {
    type Conn: Wire;

    fn conn(&mut self) -> &mut Self::Conn;

    /// Handle what the broker sent: record a delivery in `rec`, append its
    /// ack (if one is due) to the output buffer.
    fn on_item(
        &mut self,
        item: Item<Self::Conn>,
        rec: &mut Recorder,
        shared: &Shared,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Acknowledge every this many messages: `--multi-ack-every`, but never
/// waiting for more unacked messages than the prefetch lets through.
pub(crate) fn ack_every(prefetch: u16, multi_ack_every: u32) -> u32 {
    match (prefetch, multi_ack_every.max(1)) {
        (0, n) => n,
        (p, n) => n.min(p as u32),
    }
}

/// Consume until `stop`, checking and timing every message into queue
/// `queue_idx` of `shared`; returns how many arrived. The caller closes.
pub(crate) async fn consume<C: Consume>(
    c: &mut C,
    queue_idx: usize,
    shared: &Shared,
    stop: &CancellationToken,
) -> Result<u64> {
    let mut rec = Recorder::new();
    let mut received = 0u64;
    loop {
        let item = tokio::select! {
            biased;
            item = c.conn().wire().0.next() => or_closed(item)?,
            _ = stop.cancelled() => break,
        };
        c.on_item(item, &mut rec, shared).await?;
        let mut n = 1;
        while n < CONSUME_BATCH {
            match try_next(c.conn().wire().0) {
                Some(item) => c.on_item(item?, &mut rec, shared).await?,
                None => break,
            }
            n += 1;
        }
        received += rec.commit(shared, queue_idx);
        let (_, writer, out) = c.conn().wire();
        flush(writer, out).await?;
    }
    received += rec.commit(shared, queue_idx);
    Ok(received)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ack_every_is_capped_by_the_prefetch() {
        assert_eq!(super::ack_every(0, 50), 50);
        assert_eq!(super::ack_every(10, 50), 10);
        assert_eq!(super::ack_every(100, 0), 1);
    }
}
