//! Queue storage with a bounded in-memory window.
//!
//! A queue keeps the bodies of at most [`RAM_MESSAGES`] messages / [`RAM_BYTES`]
//! bytes in memory; beyond that, entries keep only the location of the message in
//! the message log (about 40 bytes each) and the body is read back when the entry
//! reaches the head of the queue. Persistent messages of durable queues are in the
//! log already; transient ones are written there when paged out (without waiting
//! for an fsync: they need not survive a restart, only leave memory). This is what
//! lets a queue hold a backlog far larger than RAM, like RabbitMQ's lazy / v2
//! classic queues.

use super::log::{Loc, MessageLog, RecoveredMessage};
use super::record::Record;
use super::QueueStorage;
use crate::message::{Message, QueuedMessage, Stored};
use std::collections::VecDeque;
use std::sync::Arc;
use tracing::error;

/// Bodies of at most this many ready messages stay in memory per queue...
pub const RAM_MESSAGES: usize = 4096;
/// ...and at most this many bytes.
pub const RAM_BYTES: usize = 8 * 1024 * 1024;

enum Entry {
    Ram(QueuedMessage),
    Disk {
        seq: u64,
        expires_at: u64,
        priority: u8,
        loc: Loc,
        /// This queue wrote the record (a transient page-out) and holds its own
        /// reference, rather than sharing the publisher's durable record.
        own: bool,
        redelivered: bool,
        size: u32,
    },
}

impl Entry {
    fn seq(&self) -> u64 {
        match self {
            Entry::Ram(m) => m.seq,
            Entry::Disk { seq, .. } => *seq,
        }
    }

    fn size(&self) -> usize {
        match self {
            Entry::Ram(m) => m.message.size(),
            Entry::Disk { size, .. } => *size as usize,
        }
    }
}

pub struct PagedStorage {
    log: Arc<MessageLog>,
    /// Durable queue id; 0 for transient queues (nothing they hold is recovered).
    queue_id: u64,
    ready: VecDeque<Entry>,
    ram_count: usize,
    ram_bytes: usize,
    bytes: usize,
}

impl PagedStorage {
    pub fn new(log: Arc<MessageLog>, queue_id: u64) -> Self {
        PagedStorage {
            log,
            queue_id,
            ready: VecDeque::new(),
            ram_count: 0,
            ram_bytes: 0,
            bytes: 0,
        }
    }
}

impl PagedStorage {
    /// Whether this queue counts as a durable home for `m` (its log record
    /// references us).
    fn durable_for(&self, m: &Message) -> Option<Stored> {
        if self.queue_id != 0 && m.persistent {
            m.stored.get().copied()
        } else {
            None
        }
    }

    fn page_out(&self, qm: &QueuedMessage) -> Entry {
        let m = &qm.message;
        let (loc, own) = match self.durable_for(m) {
            Some(stored) => (stored.loc, false),
            None => {
                let (loc, _) = self.log.append_publish(
                    None,
                    &[],
                    1,
                    m.exchange.as_bytes(),
                    m.routing_key.as_bytes(),
                    &m.properties,
                    &m.body,
                );
                (loc, true)
            }
        };
        Entry::Disk {
            seq: qm.seq,
            expires_at: qm.expires_at,
            priority: qm.priority,
            loc,
            own,
            redelivered: qm.redelivered,
            size: m.size() as u32,
        }
    }

    /// Make sure the head entry's body is in memory.
    fn load_front(&mut self) {
        let Some(Entry::Disk {
            seq,
            expires_at,
            priority,
            loc,
            own,
            redelivered,
            ..
        }) = self.ready.front()
        else {
            return;
        };
        let (seq, expires_at, priority, loc, own, redelivered) =
            (*seq, *expires_at, *priority, *loc, *own, *redelivered);
        match self.log.read(loc) {
            Ok(Record::Publish {
                msg_id,
                exchange,
                routing_key,
                properties,
                body,
                ..
            }) => {
                let message = Message::new(exchange, routing_key, properties, body);
                if own {
                    // Back in memory: this queue's transient copy on disk is done with.
                    self.log.release_page_out(loc);
                } else {
                    let _ = message.stored.set(Stored { msg_id, loc });
                }
                self.ram_count += 1;
                self.ram_bytes += message.size();
                if let Some(front) = self.ready.front_mut() {
                    *front = Entry::Ram(QueuedMessage {
                        seq,
                        message,
                        redelivered,
                        expires_at,
                        priority,
                    });
                }
            }
            other => {
                // Unreadable record: drop the entry rather than wedge the queue.
                error!(?loc, result = ?other.err(), "cannot read paged message back; dropping it");
                if let Some(e) = self.ready.pop_front() {
                    self.bytes -= e.size();
                    if own {
                        self.log.release_page_out(loc);
                    }
                }
            }
        }
    }

    /// Forget entries for good: ack durable ones in the log, release references.
    fn drop_entries(&mut self, entries: impl IntoIterator<Item = Entry>) {
        let mut acked = Vec::new();
        // Paged durable messages: their ids are in their records, read in bulk.
        let mut paged = Vec::new();
        for e in entries {
            match e {
                Entry::Ram(qm) => {
                    if let Some(s) = self.durable_for(&qm.message) {
                        acked.push((s.msg_id, s.loc.segment));
                        self.log.release(s.loc.segment, 1);
                    }
                }
                Entry::Disk { loc, own: true, .. } => self.log.release_page_out(loc),
                Entry::Disk {
                    loc, own: false, ..
                } => paged.push(loc),
            }
        }
        for (loc, id) in paged.iter().zip(self.log.read_msg_ids(&paged)) {
            if let Some(id) = id {
                acked.push((id, loc.segment));
            }
            self.log.release(loc.segment, 1);
        }
        if !acked.is_empty() {
            self.log.append_ack(self.queue_id, &acked);
        }
    }
}

impl QueueStorage for PagedStorage {
    fn recover(&mut self, msgs: Vec<RecoveredMessage>, first_seq: u64) -> u64 {
        let mut seq = first_seq;
        for m in msgs {
            self.log.add_ref(m.loc.segment);
            self.bytes += m.loc.len as usize;
            self.ready.push_back(Entry::Disk {
                seq,
                expires_at: m.expires_at,
                priority: m.priority,
                loc: m.loc,
                own: false,
                redelivered: true,
                size: m.loc.len,
            });
            seq += 1;
        }
        seq
    }

    fn push(&mut self, msg: QueuedMessage) {
        let size = msg.message.size();
        self.bytes += size;
        let has_disk_tail = matches!(self.ready.back(), Some(Entry::Disk { .. }));
        if !has_disk_tail && self.ram_count < RAM_MESSAGES && self.ram_bytes + size <= RAM_BYTES {
            self.ram_count += 1;
            self.ram_bytes += size;
            self.ready.push_back(Entry::Ram(msg));
        } else {
            let e = self.page_out(&msg);
            self.ready.push_back(e);
        }
    }

    fn front(&mut self) -> Option<&QueuedMessage> {
        self.load_front();
        match self.ready.front() {
            Some(Entry::Ram(m)) => Some(m),
            _ => None,
        }
    }

    fn pop_front(&mut self) -> Option<QueuedMessage> {
        self.load_front();
        // A drained backlog gives its index memory back (40 bytes an entry: 80 MB
        // after 2M messages); halving keeps this amortised O(1).
        let cap = self.ready.capacity();
        if cap > 8192 && self.ready.len() < cap / 4 {
            self.ready.shrink_to(cap / 2);
        }
        match self.ready.pop_front()? {
            Entry::Ram(m) => {
                let size = m.message.size();
                self.bytes -= size;
                self.ram_count -= 1;
                self.ram_bytes -= size;
                Some(m)
            }
            disk => {
                // load_front failed and already dropped it; put nothing back.
                self.bytes -= disk.size();
                None
            }
        }
    }

    fn requeue(&mut self, msg: QueuedMessage) {
        let size = msg.message.size();
        self.bytes += size;
        self.ram_count += 1;
        self.ram_bytes += size;
        let pos = self.ready.partition_point(|e| e.seq() < msg.seq);
        self.ready.insert(pos, Entry::Ram(msg));
    }

    fn settle(&mut self, msgs: &[QueuedMessage]) {
        let mut acked = Vec::new();
        for qm in msgs {
            if let Some(s) = self.durable_for(&qm.message) {
                acked.push((s.msg_id, s.loc.segment));
                self.log.release(s.loc.segment, 1);
            }
        }
        if !acked.is_empty() {
            self.log.append_ack(self.queue_id, &acked);
        }
    }

    fn len(&self) -> usize {
        self.ready.len()
    }

    fn bytes(&self) -> usize {
        self.bytes
    }

    fn purge(&mut self) -> usize {
        let n = self.ready.len();
        let entries: Vec<Entry> = self.ready.drain(..).collect();
        self.drop_entries(entries);
        self.ram_count = 0;
        self.ram_bytes = 0;
        self.bytes = 0;
        n
    }
}
