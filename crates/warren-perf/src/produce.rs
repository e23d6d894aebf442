//! The producer loop, written once for both protocols ([`crate::load::Producer`]
//! over AMQP, [`crate::stomp::StompProducer`] over STOMP): they differ only in
//! how a message is encoded and how a confirm (or receipt) reads.
//!
//! Per iteration the loop handles what already arrived, encodes a batch of
//! stamped messages if the schedule ([`Pace`]), the confirm window and the
//! output buffer allow, and writes with one syscall while still reading
//! confirms in the same `select!`.

use futures_util::StreamExt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::client::{Error, Result};
use crate::load::{ProducerOutcome, Shared};
use crate::pace::{sleep_until_opt, Pace};
use crate::seq::{ConfirmWindow, Stamp, MAX_SEQ};
use crate::wire::{or_closed, try_next, write_some, Item, Wire};

/// Publishes encoded per loop iteration at most; bounds the time between two
/// looks at incoming confirms.
pub(crate) const PUBLISH_BATCH: u64 = 128;
/// Stop encoding while this much is still waiting to be written: the socket is
/// the bottleneck then, and stamps should be taken close to the write.
pub(crate) const OUT_HIGH_WATER: usize = 64 * 1024;
/// How long a producer waits for its last confirms after it stopped publishing.
pub(crate) const CONFIRM_DRAIN: Duration = Duration::from_secs(30);

/// A connected producer of one protocol.
pub(crate) trait Publish {
    type Conn: Wire;

    fn conn(&mut self) -> &mut Self::Conn;

    /// Append one message carrying `stamp` to the connection's output buffer.
    fn append(&mut self, stamp: Stamp);

    /// Handle what the broker sent: settle confirms (or receipts) in `window`.
    fn on_item(
        &mut self,
        item: Item<Self::Conn>,
        window: &mut ConfirmWindow,
        shared: &Shared,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// What to publish, whatever the protocol.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Publishing {
    /// The producer id in the stamps.
    pub id: u16,
    /// Stop after this many messages.
    pub limit: u64,
    /// Outstanding-confirm window; 0 = no confirms.
    pub confirm: u64,
    /// Messages per second; None = as fast as the broker takes them.
    pub rate: Option<f64>,
}

/// Publish from `start` until `deadline`, the limit or `stop`, whichever
/// comes first; then wait (a while) for outstanding confirms. The caller
/// closes.
pub(crate) async fn publish<P: Publish>(
    p: &mut P,
    plan: Publishing,
    start: Instant,
    deadline: Option<Instant>,
    shared: &Shared,
    stop: &CancellationToken,
) -> Result<ProducerOutcome> {
    let Publishing {
        id,
        limit,
        confirm,
        rate,
    } = plan;
    let pace = Pace {
        start,
        rate,
        deadline,
    };
    let limit = limit.min(MAX_SEQ);
    let mut window = ConfirmWindow::new();
    let mut seq = 0u64;
    loop {
        while let Some(item) = try_next(p.conn().wire().0) {
            p.on_item(item?, &mut window, shared).await?;
        }
        let now = Instant::now();
        let done = seq >= limit || pace.over(now) || stop.is_cancelled();
        if !done && p.conn().wire().2.len() < OUT_HIGH_WATER {
            let mut n = PUBLISH_BATCH.min(limit - seq);
            if confirm > 0 {
                n = n.min(confirm.saturating_sub(window.outstanding()));
            }
            let n = pace.due(now, seq, n);
            if n > 0 {
                // One timestamp per batch: the batch is encoded in well under
                // a microsecond and written as one piece.
                let sent_ns = shared.now_ns();
                let sent_at = Instant::now();
                for _ in 0..n {
                    p.append(Stamp {
                        sent_ns,
                        producer: id,
                        seq,
                    });
                    seq += 1;
                    if confirm > 0 {
                        window.published_at(sent_at);
                    }
                }
                shared.published.fetch_add(n, Ordering::Relaxed);
            }
        }
        let (reader, writer, out) = p.conn().wire();
        if !out.is_empty() {
            // Write what we can without ever blocking confirm processing.
            tokio::select! {
                biased;
                item = reader.next() => p.on_item(or_closed(item)?, &mut window, shared).await?,
                written = write_some(writer, out) => written?,
            }
            continue;
        }
        if done {
            break;
        }
        // Nothing to write: wait for a confirm (window full), the next due
        // time (rate limit), the deadline or a stop.
        tokio::select! {
            item = reader.next() => p.on_item(or_closed(item)?, &mut window, shared).await?,
            _ = sleep_until_opt(pace.wake(seq)) => {}
            _ = stop.cancelled() => {}
        }
    }
    if confirm > 0 {
        let wait = async {
            while window.outstanding() > 0 {
                let item = or_closed(p.conn().wire().0.next().await)?;
                p.on_item(item, &mut window, shared).await?;
            }
            Ok::<(), Error>(())
        };
        // A timeout is not an error: what is left is reported as unconfirmed.
        if let Ok(r) = tokio::time::timeout(CONFIRM_DRAIN, wait).await {
            r?;
        }
    }
    shared.confirm_latency.lock().merge(window.latency());
    Ok(ProducerOutcome {
        sent: seq,
        acked: window.acked(),
        nacked: window.nacked(),
        unconfirmed: window.outstanding(),
    })
}
