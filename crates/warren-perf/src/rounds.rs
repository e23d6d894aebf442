//! What the two fanout scenarios ([`crate::fanout`]: AMQP queues,
//! [`crate::web_fanout`]: web subscribers) share: a fanout exchange for the
//! run, and the round loop. Each round publishes one stamped message and waits
//! until all N receivers have it; rounds run one after the other with a pause,
//! so each starts from an idle broker, and the first few are warm-up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use crate::client::{self, Connection, Error, Result};
use crate::seq::Stamp;
use crate::uri::AmqpUri;

pub(crate) const WARMUP_ROUNDS: usize = 3;

/// Arrivals at all receivers, counted across rounds; the round loop waits on
/// them. `latency` is what the scenario keeps of each arrival's time.
pub(crate) struct Arrivals<L> {
    /// Stamps carry nanoseconds since this instant: publisher and receivers
    /// are one process, so send and arrival times are on one clock.
    epoch: Instant,
    arrived: AtomicU64,
    /// Arrivals that complete the current round.
    target: AtomicU64,
    done: Notify,
    pub latency: L,
}

impl<L> Arrivals<L> {
    pub fn new(latency: L) -> Arc<Arrivals<L>> {
        Arc::new(Arrivals {
            epoch: Instant::now(),
            arrived: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            done: Notify::new(),
            latency,
        })
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// One receiver got one message.
    pub fn arrive(&self) {
        let arrived = self.arrived.fetch_add(1, Ordering::SeqCst) + 1;
        if arrived >= self.target.load(Ordering::SeqCst) {
            self.done.notify_one();
        }
    }
}

/// The round loop's parameters.
pub(crate) struct Rounds {
    /// Receivers, each of which must get every round's message.
    pub n: usize,
    /// What the receivers are, for the error of a round that timed out.
    pub noun: &'static str,
    /// Measured rounds (after [`WARMUP_ROUNDS`]).
    pub repeats: usize,
    /// A round that takes longer is a failure, not a slow sample.
    pub timeout: Duration,
    /// Quiet time between rounds.
    pub pause: Duration,
}

/// How the rounds went: messages published, and the error that cut the
/// rounds short (the receivers' checks are still worth collecting then).
pub(crate) struct Sent {
    pub rounds: u64,
    pub failure: Option<Error>,
}

impl Rounds {
    /// Run the rounds: `publish` appends the round's message (its stamp
    /// given) to the producer's output; `measured(k)` is called once the
    /// k-th measured round (from 1) is complete, to take its sample.
    pub async fn run<L>(
        &self,
        arrivals: &Arrivals<L>,
        producer: &mut Connection,
        mut publish: impl FnMut(&mut Connection, Stamp),
        mut measured: impl FnMut(usize),
    ) -> Result<Sent> {
        let n = self.n;
        let mut sent = Sent {
            rounds: 0,
            failure: None,
        };
        for r in 0..WARMUP_ROUNDS + self.repeats {
            let target = (n * (r + 1)) as u64;
            arrivals.target.store(target, Ordering::SeqCst);
            let stamp = Stamp {
                sent_ns: arrivals.now_ns(),
                producer: 0,
                seq: r as u64,
            };
            publish(producer, stamp);
            producer.flush().await?;
            sent.rounds += 1;
            let deadline = tokio::time::Instant::now() + self.timeout;
            let complete = loop {
                // Registered before the check, so an arrival in between wakes us.
                let notified = arrivals.done.notified();
                if arrivals.arrived.load(Ordering::SeqCst) >= target {
                    break true;
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    break false;
                }
            };
            if !complete {
                sent.failure = Some(Error::Other(format!(
                    "round {r}: only {} of {n} {} got the message within {:?}",
                    arrivals
                        .arrived
                        .load(Ordering::SeqCst)
                        .saturating_sub((n * r) as u64),
                    self.noun,
                    self.timeout
                )));
                break;
            }
            if r >= WARMUP_ROUNDS {
                measured(r - WARMUP_ROUNDS + 1);
            }
            tokio::time::sleep(self.pause).await;
        }
        Ok(sent)
    }
}

/// The publisher's connection, with a fanout exchange declared for the run.
pub(crate) async fn open_exchange(uri: &AmqpUri, exchange: &str) -> Result<Connection> {
    let mut producer = Connection::open(uri).await?;
    producer.open_channel(1).await?;
    producer
        .rpc(
            1,
            client::exchange_declare(exchange, "fanout", false, false),
        )
        .await?;
    Ok(producer)
}

/// Delete the run's exchange and close. On a new channel: an error may have
/// closed the first.
pub(crate) async fn close_exchange(mut producer: Connection, exchange: &str) {
    if producer.open_channel(2).await.is_ok() {
        let _ = producer.rpc(2, client::exchange_delete(exchange)).await;
    }
    let _ = producer.close().await;
}
