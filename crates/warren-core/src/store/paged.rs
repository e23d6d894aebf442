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

    /// Make sure the head entry's body is in memory (or the queue is empty).
    ///
    /// Why a loop: an unreadable record is dropped, and the entry behind it may be
    /// on disk too. Loading only one would leave a paged entry at the head, which
    /// `front()` reports as `None` while `len() > 0`: the queue would stop
    /// offering with messages ready and nothing would call `deliver()` again
    /// (and `pop_front()` would drop that next entry unread).
    fn load_front(&mut self) {
        while matches!(self.ready.front(), Some(Entry::Disk { .. })) {
            self.load_one();
        }
    }

    /// Read the head entry back from the log, or drop it if it cannot be read.
    fn load_one(&mut self) {
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
                // Unreachable: load_front leaves a Ram entry (or nothing) at the
                // head. Keep the accounting right anyway.
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

#[cfg(test)]
mod tests {
    use super::super::log::{segment_path, LogOptions};
    use super::super::PriorityStorage;
    use super::*;
    use crate::message::NEVER;
    use crate::shortstr::ShortStr;
    use bytes::Bytes;
    use std::os::unix::fs::FileExt;
    use std::path::PathBuf;

    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn open_log(name: &str) -> (TempDir, Arc<MessageLog>) {
        let dir =
            std::env::temp_dir().join(format!("warren-paged-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (log, _) = MessageLog::open(
            &dir,
            &LogOptions {
                fsync: false,
                ..Default::default()
            },
        )
        .expect("open log");
        (TempDir(dir), log)
    }

    /// A 3 MiB message whose body starts with `tag`: two fit in the RAM window,
    /// the third and later are paged out.
    fn big(seq: u64, tag: u8, priority: u8) -> QueuedMessage {
        let mut body = vec![0u8; 3 << 20];
        body[0] = tag;
        QueuedMessage {
            seq,
            message: Message::new(
                ShortStr::from(""),
                ShortStr::from("k"),
                Bytes::new(),
                Bytes::from(body),
            ),
            redelivered: false,
            expires_at: NEVER,
            priority,
        }
    }

    /// Wait until the log writer has put `bytes` in segment 1, then flip a byte
    /// in the body of its first record, so that record fails its CRC.
    fn corrupt_first_record(dir: &std::path::Path, bytes: u64) {
        let path = segment_path(dir, 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) < bytes {
            assert!(std::time::Instant::now() < deadline, "log writer too slow");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open segment");
        f.write_at(&[0xff], 4096).expect("corrupt");
    }

    #[test]
    fn an_unreadable_paged_head_does_not_hide_the_messages_behind_it() {
        let (dir, log) = open_log("unreadable-head");
        let mut s = PagedStorage::new(log, 0);
        for (seq, tag) in [(1, b'a'), (2, b'b'), (3, b'c'), (4, b'd')] {
            s.push(big(seq, tag, 0));
        }
        assert!(matches!(s.ready[2], Entry::Disk { .. }), "c is paged out");
        assert!(matches!(s.ready[3], Entry::Disk { .. }), "d is paged out");
        assert_eq!(s.pop_front().map(|m| m.message.body[0]), Some(b'a'));
        assert_eq!(s.pop_front().map(|m| m.message.body[0]), Some(b'b'));
        corrupt_first_record(&dir.0, 6 << 20);
        // c is lost (logged), but d must be the head now: a `None` here with a
        // message still ready is a queue that stops delivering.
        assert_eq!(s.front().map(|m| m.message.body[0]), Some(b'd'));
        assert_eq!(s.len(), 1);
        assert_eq!(s.pop_front().map(|m| m.message.body[0]), Some(b'd'));
        assert_eq!(s.len(), 0);
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn an_unreadable_top_priority_level_falls_through_to_the_next() {
        let (dir, log) = open_log("unreadable-priority");
        let mut s = PriorityStorage::new(log, 0, 5);
        // Priority 5: a, b in RAM, c paged out (and made unreadable).
        for (seq, tag) in [(1, b'a'), (2, b'b'), (3, b'c')] {
            s.push(big(seq, tag, 5));
        }
        // Priority 1: one small message in RAM.
        let mut low = big(4, b'l', 1);
        low.message = Message::new(
            ShortStr::from(""),
            ShortStr::from("k"),
            Bytes::new(),
            Bytes::from_static(b"l"),
        );
        s.push(low);
        assert_eq!(s.pop_front().map(|m| m.message.body[0]), Some(b'a'));
        assert_eq!(s.pop_front().map(|m| m.message.body[0]), Some(b'b'));
        corrupt_first_record(&dir.0, 3 << 20);
        assert_eq!(s.front().map(|m| m.message.body[0]), Some(b'l'));
        assert_eq!(s.pop_front().map(|m| m.message.body[0]), Some(b'l'));
        assert!(s.is_empty());
    }
}
