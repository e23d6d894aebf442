//! One stream consumer's position and the loop that feeds it.
//!
//! Each consumer reads on its own: from the stream's in-memory tail when it is
//! close to the end, else from the log with its own sequential reader. The
//! loop runs on whichever task has something new for it (a publish becoming
//! durable, an ack giving credit back, the socket draining) and stops when the
//! consumer's prefetch is used up: acks only give credit. Only one task runs a
//! cursor at a time; another that finds it busy leaves a note (`wanted`) that
//! makes the running one look again before it stops, so nothing is missed and
//! nobody waits on a lock.
//!
//! A filtering consumer (`x-stream-filter`) passes over what it did not ask
//! for without spending credit on it, and over whole index blocks whose
//! summary says they cannot hold it without reading them.

use super::filter::{self, Filter};
use super::Stream;
use crate::message::{Message, QueuedMessage, NEVER};
use crate::queue::{Consumer, Queue};
use crate::stats::MessageField;
use crate::store::record::STREAM_FILTERED;
use crate::store::stream_index::Block;
use crate::store::stream_reader::{Next, StreamReader};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub(super) struct Cursor {
    pub(super) consumer: Arc<Consumer>,
    state: Mutex<CursorState>,
    wanted: AtomicBool,
    filter: Option<Filter>,
}

struct CursorState {
    /// The next offset to deliver.
    next: u64,
    /// Skip records appended before this (ms): a timestamp start.
    min_ts: u64,
    reader: Option<StreamReader>,
    /// Read but refused by the consumer (no room): offered first next time.
    held: Option<QueuedMessage>,
    /// The stream's durable end when last looked at: a reader below it goes
    /// on without taking the stream's lock per message.
    committed_seen: u64,
    /// A filtering reader looks at the index again when it reaches this
    /// offset (where the next block starts).
    block_end: u64,
}

impl Cursor {
    pub(super) fn new(
        consumer: Arc<Consumer>,
        next: u64,
        min_ts: u64,
        filter: Option<Filter>,
    ) -> Cursor {
        Cursor {
            consumer,
            state: Mutex::new(CursorState {
                next,
                min_ts,
                reader: None,
                held: None,
                committed_seen: 0,
                block_end: 0,
            }),
            wanted: AtomicBool::new(false),
            filter,
        }
    }

    /// Deliver what the consumer has room for.
    pub(super) fn drive(&self, queue: &Arc<Queue>, stream: &Stream) {
        self.wanted.store(true, Ordering::Release);
        while self.wanted.load(Ordering::Acquire) {
            let Some(mut st) = self.state.try_lock() else {
                return;
            };
            self.wanted.store(false, Ordering::Release);
            self.feed(&mut st, queue, stream);
        }
    }

    fn feed(&self, st: &mut CursorState, queue: &Arc<Queue>, stream: &Stream) {
        let c = &self.consumer;
        loop {
            if !c.is_active() || !c.has_credit() {
                return;
            }
            let msg = match st.held.take() {
                Some(m) => m,
                None => match self.next_message(st, stream) {
                    Some(m) => m,
                    None => return,
                },
            };
            if !c.sink.offer(c, queue, &msg) {
                st.held = Some(msg);
                return;
            }
            queue.stats.add(MessageField::Deliver, 1);
            st.next = msg.seq + 1;
        }
    }

    /// The message at `st.next`, if it is durable: from the tail or the log.
    fn next_message(&self, st: &mut CursorState, stream: &Stream) -> Option<QueuedMessage> {
        let mut retried = false;
        let fast = st.reader.is_some() && st.next < st.committed_seen;
        let seek = if fast {
            None
        } else {
            let s = stream.state.lock();
            st.committed_seen = s.committed;
            let first = s.index.first();
            if st.next < first {
                // Retention dropped what this consumer had not read yet.
                st.next = first;
                st.reader = None;
            }
            if st.next >= s.committed {
                return None;
            }
            if st.next >= s.tail_first && st.min_ts == 0 {
                st.reader = None;
                while st.next < s.committed {
                    let (m, tagged) = s.tail.get((st.next - s.tail_first) as usize)?;
                    if self.wants(&m.properties, *tagged) {
                        return Some(queued(st.next, m.clone()));
                    }
                    st.next += 1;
                }
                return None;
            }
            match st.reader {
                Some(_) => None,
                None => s.index.seek(st.next),
            }
        };
        if let Some(point) = seek {
            st.reader = Some(StreamReader::new(stream.id, point));
            st.block_end = 0;
        }
        loop {
            let reader = st.reader.as_mut()?;
            match reader.next(&stream.log) {
                Ok(Next::Record(r)) => {
                    if r.offset < st.next {
                        continue;
                    }
                    if r.offset >= st.committed_seen {
                        st.committed_seen = stream.state.lock().committed;
                        if r.offset >= st.committed_seen {
                            // Written, not yet durable: read it again later.
                            st.reader = None;
                            return None;
                        }
                    }
                    if r.timestamp < st.min_ts {
                        st.next = r.offset + 1;
                        continue;
                    }
                    st.min_ts = 0;
                    if let Some(f) = &self.filter {
                        if r.offset >= st.block_end {
                            // A new block: skip it, and the ones after it, if
                            // they cannot hold what the consumer wants.
                            let s = stream.state.lock();
                            match s.index.filter_block(r.offset, f) {
                                Block::Read { end } => st.block_end = end,
                                Block::Jump { point, end } => {
                                    st.next = point.offset;
                                    st.block_end = end;
                                    st.reader = Some(StreamReader::new(stream.id, point));
                                    continue;
                                }
                                Block::Past { next } => {
                                    st.next = st.next.max(next);
                                    st.reader = None;
                                    return None;
                                }
                            }
                        }
                        if !self.wants(&r.properties, r.flags & STREAM_FILTERED != 0) {
                            st.next = r.offset + 1;
                            continue;
                        }
                    }
                    let m = Message::new(r.exchange, r.routing_key, r.properties, r.body);
                    return Some(queued(r.offset, m));
                }
                Ok(Next::End) => return None,
                Ok(Next::SegmentDone(seg)) => {
                    let s = stream.state.lock();
                    st.reader = s
                        .index
                        .after_log_segment(seg)
                        .map(|p| StreamReader::new(stream.id, p));
                }
                Err(e) => {
                    // The segment went away under the reader (retention):
                    // seek again from the index, once.
                    tracing::debug!(error = %e, "stream read failed; seeking again");
                    let s = stream.state.lock();
                    st.next = st.next.max(s.index.first());
                    st.reader = match retried {
                        false => s
                            .index
                            .seek(st.next)
                            .map(|p| StreamReader::new(stream.id, p)),
                        true => None,
                    };
                    retried = true;
                }
            }
        }
    }
}

impl Cursor {
    /// Whether the consumer's filter lets a message through (`tagged`: it has
    /// a filter value, to be read from its properties).
    fn wants(&self, properties: &bytes::Bytes, tagged: bool) -> bool {
        let Some(f) = &self.filter else {
            return true;
        };
        match tagged {
            false => f.matches(None),
            true => f.matches(filter::value_of(properties).as_deref()),
        }
    }
}

fn queued(offset: u64, message: Arc<Message>) -> QueuedMessage {
    QueuedMessage {
        seq: offset,
        message,
        redelivered: false,
        expires_at: NEVER,
        priority: 0,
    }
}
