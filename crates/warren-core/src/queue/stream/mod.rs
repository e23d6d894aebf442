//! Stream queues (`x-queue-type: stream`): an append-only log that every
//! consumer reads from an offset of its choosing; consuming removes nothing.
//!
//! Storage is the broker's message log (see [`crate::store::stream_index`]):
//! a publish appends one record, under the stream's lock so offsets are in log
//! order, and shares the log's group commit and fsync with every other queue.
//! Consumers read what is *durable* only (a confirmed offset can never be
//! delivered with other contents after a crash): when the log's durable ticket
//! passes a stream's appends, one task per stream wakes its consumers.
//! Recent messages are also kept in memory (a small tail), so consumers that
//! keep up never read the disk; the others read it sequentially.

mod cursor;
pub mod filter;
pub mod offset;

pub use offset::OffsetSpec;

use crate::message::{Message, QueuedMessage};
use crate::properties::RawProperties;
use crate::queue::{now_ms, Queue};
use crate::stats::MessageField;
use crate::store::record::{STREAM_CHUNK_START, STREAM_FILTERED, STREAM_SEGMENT_START};
use crate::store::stream_index::{StreamIndex, StreamSegment};
use crate::store::MessageLog;
use cursor::Cursor;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

/// The header each delivery carries (its offset, a long).
pub const OFFSET_HEADER: &str = "x-stream-offset";

/// Recent messages kept in memory for consumers at the tail.
const TAIL_MESSAGES: usize = 4096;
const TAIL_BYTES: usize = 8 * 1024 * 1024;

/// Retention settings in force (from arguments and policies).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Retention {
    pub max_bytes: Option<u64>,
    pub max_age: Option<u64>,
    pub max_segment_size: u64,
}

pub struct Stream {
    id: u64,
    log: Arc<MessageLog>,
    state: Mutex<State>,
    cursors: Mutex<Vec<Arc<Cursor>>>,
    /// The task waiting for the log to make appends durable is running.
    committing: AtomicBool,
}

struct State {
    index: StreamIndex,
    retention: Retention,
    /// Messages `tail_first..index.next()`, properties with the offset
    /// header, and whether each has a filter value.
    tail: VecDeque<(Arc<Message>, bool)>,
    tail_first: u64,
    tail_bytes: usize,
    /// (offset after an append, its ticket), not yet durable.
    unsynced: VecDeque<(u64, u64)>,
    /// Offsets below this are durable: what consumers may receive.
    committed: u64,
    /// The log's batch count at the last append (a change starts a chunk).
    last_batch: u64,
}

impl Stream {
    /// A stream with id `id` (the queue's durable id), with the records a
    /// restart found.
    pub(crate) fn new(
        id: u64,
        log: Arc<MessageLog>,
        retention: Retention,
        filter_size: usize,
    ) -> Stream {
        let mut index = match log.take_recovered_stream(id) {
            // Its references were taken when the log was opened.
            Some(mut ix) => {
                ix.set_max_segment(retention.max_segment_size);
                ix
            }
            None => StreamIndex::new(retention.max_segment_size),
        };
        index.set_filter_size(filter_size);
        let next = index.next();
        let s = Stream {
            id,
            log,
            state: Mutex::new(State {
                index,
                retention,
                tail: VecDeque::new(),
                tail_first: next,
                tail_bytes: 0,
                unsynced: VecDeque::new(),
                committed: next,
                last_batch: u64::MAX,
            }),
            cursors: Mutex::new(Vec::new()),
            committing: AtomicBool::new(false),
        };
        s.apply_retention();
        s
    }

    /// Append a message; returns the log ticket to wait for before confirming.
    pub(crate) fn publish(&self, queue: &Arc<Queue>, msg: &Message) -> u64 {
        let ticket = {
            let mut st = self.state.lock();
            let offset = st.index.next();
            let roll = st.index.should_roll();
            let batch = self.log.batch_count();
            let chunk = batch != st.last_batch;
            st.last_batch = batch;
            // Read before the offset header is added: most messages have no
            // headers at all, and then nothing is decoded.
            let value = filter::value_of(&msg.properties);
            let flags = (roll as u8 * STREAM_SEGMENT_START)
                | (chunk as u8 * STREAM_CHUNK_START)
                | (value.is_some() as u8 * STREAM_FILTERED);
            // Clocks can step back; a stream's timestamps never do.
            let ts = now_ms().max(st.index.last_ts());
            let properties =
                RawProperties::with_long_header(&msg.properties, OFFSET_HEADER, offset as i64);
            let (loc, ticket) = self.log.append_stream(
                self.id,
                offset,
                flags,
                ts,
                msg.exchange.as_bytes(),
                msg.routing_key.as_bytes(),
                &properties,
                &msg.body,
            );
            st.index.push(
                offset,
                loc,
                ts,
                roll,
                chunk,
                value.as_deref().map(filter::hash),
            );
            let copy = Message::new(
                msg.exchange.clone(),
                msg.routing_key.clone(),
                properties,
                msg.body.clone(),
            );
            st.tail_bytes += copy.body.len();
            st.tail.push_back((copy, value.is_some()));
            while st.tail.len() > TAIL_MESSAGES || st.tail_bytes > TAIL_BYTES {
                match st.tail.pop_front() {
                    Some((m, _)) => {
                        st.tail_bytes -= m.body.len();
                        st.tail_first += 1;
                    }
                    None => break,
                }
            }
            st.unsynced.push_back((offset + 1, ticket));
            queue.stats.add_serialized(MessageField::Publish, 1);
            if roll {
                self.retain_locked(&mut st);
            }
            ticket
        };
        self.await_commit(queue);
        ticket
    }

    /// Make sure a task waits for the log to make the appends durable, then
    /// lets consumers have them.
    fn await_commit(&self, queue: &Arc<Queue>) {
        if self.committing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime (unit tests): everything appended counts as durable.
            self.committing.store(false, Ordering::Release);
            self.advance(u64::MAX);
            return;
        };
        let weak: Weak<Queue> = Arc::downgrade(queue);
        let mut durable = self.log.durable();
        rt.spawn(async move {
            loop {
                let ticket = *durable.borrow_and_update();
                let Some(q) = weak.upgrade() else { return };
                let Some(s) = q.stream() else { return };
                let (advanced, more) = s.advance(ticket);
                if advanced {
                    s.drive_all(&q);
                }
                if !more {
                    s.committing.store(false, Ordering::Release);
                    // A publish may have come in between: take over again.
                    if s.state.lock().unsynced.is_empty()
                        || s.committing.swap(true, Ordering::AcqRel)
                    {
                        return;
                    }
                    continue;
                }
                drop(q);
                if durable.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    /// The log made tickets up to `durable` durable. Returns (whether more
    /// offsets are deliverable, whether appends are still waiting).
    fn advance(&self, durable: u64) -> (bool, bool) {
        let mut st = self.state.lock();
        let before = st.committed;
        while let Some(&(end, ticket)) = st.unsynced.front() {
            if ticket > durable {
                break;
            }
            st.committed = end;
            st.unsynced.pop_front();
        }
        (st.committed > before, !st.unsynced.is_empty())
    }

    /// Drop whole segments beyond the retention limits.
    fn retain_locked(&self, st: &mut State) {
        let r = st.retention;
        let dropped = st.index.retain(r.max_bytes, r.max_age, now_ms());
        if !dropped.is_empty() {
            self.release(&dropped, st.index.first());
        }
    }

    fn apply_retention(&self) {
        let mut st = self.state.lock();
        self.retain_locked(&mut st);
    }

    /// Give up dropped segments: their log references, and a note in each log
    /// segment's ack file so a restart does not bring them back.
    fn release(&self, dropped: &[StreamSegment], first: u64) {
        let mut segments: Vec<u32> = Vec::new();
        for s in dropped {
            for &(seg, n) in &s.log_refs {
                self.log.stream_refs(seg, n, false);
                if !segments.contains(&seg) {
                    segments.push(seg);
                }
            }
        }
        self.log.append_stream_truncation(self.id, first, &segments);
    }

    /// New retention settings (a policy changed).
    pub(crate) fn set_retention(&self, retention: Retention) {
        let mut st = self.state.lock();
        st.retention = retention;
        st.index.set_max_segment(retention.max_segment_size);
        self.retain_locked(&mut st);
    }

    /// Offsets stored, bytes stored, first and next offset.
    pub fn summary(&self) -> StreamSummary {
        let st = self.state.lock();
        StreamSummary {
            messages: st.index.len(),
            bytes: st.index.bytes(),
            first: st.index.first(),
            next: st.index.next(),
            segments: st.index.segment_count(),
        }
    }

    /// Start a consumer at `spec`.
    pub(crate) fn add_consumer(&self, consumer: Arc<crate::queue::Consumer>, spec: OffsetSpec) {
        let (start, min_ts) = {
            let st = self.state.lock();
            let ix = &st.index;
            match spec {
                OffsetSpec::First => (ix.first(), 0),
                OffsetSpec::Last => (ix.last_chunk(), 0),
                OffsetSpec::Next => (ix.next(), 0),
                OffsetSpec::Offset(n) => (n.clamp(ix.first(), ix.next()), 0),
                OffsetSpec::Timestamp(ts) => match ix.seek_time(ts) {
                    Some(p) => (p.offset, ts),
                    None => (ix.next(), 0),
                },
            }
        };
        let filter = filter::Filter::from_args(&consumer.arguments);
        self.cursors
            .lock()
            .push(Arc::new(Cursor::new(consumer, start, min_ts, filter)));
    }

    pub(crate) fn remove_consumer(&self, consumer: &Arc<crate::queue::Consumer>) {
        self.cursors
            .lock()
            .retain(|c| !Arc::ptr_eq(&c.consumer, consumer));
    }

    /// Deliver to every consumer what it has room for.
    pub(crate) fn drive_all(&self, queue: &Arc<Queue>) {
        let cursors: Vec<Arc<Cursor>> = self.cursors.lock().clone();
        for c in cursors {
            c.drive(queue, self);
        }
    }

    /// The queue is deleted: drop every record.
    pub(crate) fn delete(&self) -> u64 {
        self.cursors.lock().clear();
        let mut st = self.state.lock();
        let n = st.index.len();
        let next = st.index.next();
        let all = st.index.take_all();
        st.tail.clear();
        drop(st);
        self.release(&all, next);
        n
    }
}

/// One empty message shared by every stream delivery awaiting its ack.
fn empty_message() -> Arc<Message> {
    static EMPTY: std::sync::OnceLock<Arc<Message>> = std::sync::OnceLock::new();
    EMPTY
        .get_or_init(|| {
            Message::new(
                Default::default(),
                Default::default(),
                bytes::Bytes::new(),
                bytes::Bytes::new(),
            )
        })
        .clone()
}

/// A stream's size, for the management API and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSummary {
    pub messages: u64,
    pub bytes: u64,
    pub first: u64,
    pub next: u64,
    pub segments: usize,
}

impl Queue {
    /// What a consumer's sink keeps of a delivery from this queue until the
    /// client acknowledges it. A stream never takes a delivery back (an ack
    /// only returns credit; requeue and reject do nothing), so its deliveries
    /// keep only their offset: the content, a slice of a reader's 256 KiB
    /// read buffer, would otherwise keep that buffer alive for as long as the
    /// consumer's prefetch window holds the message.
    pub fn unacked_entry(&self, msg: &QueuedMessage) -> QueuedMessage {
        match self.is_stream() {
            false => msg.clone(),
            true => QueuedMessage {
                message: empty_message(),
                ..*msg
            },
        }
    }

    /// "`what` not supported by stream queues queue 'q' in vhost 'v'" (540),
    /// RabbitMQ's answer to basic.get, queue.purge, nack/reject on a stream.
    pub fn stream_refusal(&self, what: &str) -> crate::error::BrokerError {
        crate::error::BrokerError::not_implemented(format!(
            "{} not supported by stream queues queue '{}' in vhost '{}'",
            what,
            self.name,
            self.vhost_name()
        ))
    }

    /// Refuse `what` on a stream queue.
    pub fn check_not_stream(&self, what: &str) -> crate::Result<()> {
        match self.is_stream() {
            true => Err(self.stream_refusal(what)),
            false => Ok(()),
        }
    }

    /// A stream consumer has no `x-priority` (406), needs a prefetch (406)
    /// and manual acks (540), checked in that order, as in RabbitMQ 3.10.
    pub fn check_stream_consume(
        &self,
        arguments: &crate::table::FieldTable,
        no_ack: bool,
        prefetch: u32,
    ) -> crate::Result<()> {
        if !self.is_stream() {
            return Ok(());
        }
        if arguments.get("x-priority").is_some() {
            return Err(crate::error::BrokerError::precondition_failed(format!(
                "invalid arg 'x-priority' for queue '{}' in vhost '{}' of queue type rabbit_stream_queue",
                self.name,
                self.vhost_name()
            )));
        }
        if prefetch == 0 {
            return Err(crate::error::BrokerError::precondition_failed(format!(
                "consumer prefetch count is not set for 'queue '{}' in vhost '{}''",
                self.name,
                self.vhost_name()
            )));
        }
        if no_ack {
            return Err(self.stream_refusal("automatic acknowledgement"));
        }
        Ok(())
    }
}
