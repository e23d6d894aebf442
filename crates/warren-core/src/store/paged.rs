//! Queue storage with a bounded in-memory window.
//!
//! A queue keeps the bodies of at most [`RAM_MESSAGES`] messages / [`RAM_BYTES`]
//! bytes in memory (the *window*, at the head); everything behind is *paged
//! out*: its body is in the message log and its entry (log location, seq,
//! expiry, priority, flags: [`DiskEntry`], 34 bytes) in the queue's on-disk
//! index, a [`SpillQueue`] (see `spill.rs` for the design). So a backlog costs
//! O(window + index segments) of RAM whatever its length. The body is read back
//! when the entry reaches the head. Persistent messages of durable queues are in
//! the log already; transient ones are written there when paged out (without
//! waiting for an fsync: they need not survive a restart, only leave memory).
//! This is what lets a queue hold a backlog far larger than RAM, like
//! RabbitMQ's lazy / v2 classic queues.
//!
//! Order: the window's messages always come before the paged ones. New
//! messages go to the window only while nothing is paged out; a paged entry is
//! loaded only when the window is empty; and a requeued message was delivered
//! from the head, so its seq is below every paged entry's.

use super::log::{Loc, MessageLog};
use super::record::Record;
use super::recovered::{RecoveredEntry, RecoveredQueue};
use super::spill::{Fixed, SpillDir, SpillQueue};
use super::QueueStorage;
use crate::message::{Message, QueuedMessage, Stored};
use crate::shortstr::ShortStr;
use std::collections::VecDeque;
use std::sync::Arc;
use tracing::error;

/// Bodies of at most this many ready messages stay in memory per queue...
pub const RAM_MESSAGES: usize = 4096;
/// ...and at most this many bytes.
pub const RAM_BYTES: usize = 8 * 1024 * 1024;

/// Entries dropped at once by purge / delete (their ids are read in bulk).
const DROP_BATCH: usize = 64 * 1024;
/// Bodies read ahead at once: at most this many entries...
const AHEAD_MESSAGES: usize = 256;
/// ...and about this many bytes.
const AHEAD_BYTES: u64 = 256 * 1024;
/// A recovered queue nobody has taken a message from yet reads this many at
/// a time, and nothing ahead (see `PagedStorage::cold`).
const COLD_MESSAGES: usize = 16;

/// A paged-out message: where its record is, and its place in the queue.
#[derive(Debug, Clone, Copy)]
pub(super) struct DiskEntry {
    seq: u64,
    expires_at: u64,
    loc: Loc,
    size: u32,
    priority: u8,
    /// This queue wrote the record (a transient page-out) and holds its own
    /// reference, rather than sharing the publisher's durable record.
    own: bool,
    redelivered: bool,
    /// Recovered at startup: `expires_at` is computed when it is loaded, from
    /// its record's publish time and `expiration`, and the queue's TTL; until
    /// then it holds the message id the record must have (a summary's entry
    /// pointing at a segment damaged since must not deliver another record).
    recovered: bool,
}

/// What a [`DiskEntry`] is delta-encoded against: the previous entry of its
/// spill file.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Prev {
    seq: u64,
    segment: u32,
    end: u32,
}

const OWN: u8 = 1;
const REDELIVERED: u8 = 2;
const RECOVERED: u8 = 4;
const EXPIRES: u8 = 8;
const PRIORITY: u8 = 16;

/// On disk (issue 16: ≤ 32 bytes per message in all): a flags byte, then
/// varints: seq, segment and offset as deltas from the previous entry (a
/// queue's records mostly follow each other in the log: 1 byte each), record
/// length, message size; `expires_at` and priority only if set. ~6 bytes for
/// a typical entry instead of 34 fixed.
impl Fixed for DiskEntry {
    type State = Prev;
    const MAX_SIZE: usize = 1 + 10 * 6 + 1;

    fn encode(&self, prev: &mut Prev, out: &mut Vec<u8>) {
        use super::summary::{put_signed, put_varint};
        let mut flags = 0;
        for (on, bit) in [
            (self.own, OWN),
            (self.redelivered, REDELIVERED),
            (self.recovered, RECOVERED),
            (self.expires_at != crate::message::NEVER, EXPIRES),
            (self.priority != 0, PRIORITY),
        ] {
            if on {
                flags |= bit;
            }
        }
        out.push(flags);
        put_signed(out, self.seq.wrapping_sub(prev.seq) as i64);
        put_signed(out, self.loc.segment as i64 - prev.segment as i64);
        put_signed(out, self.loc.offset as i64 - prev.end as i64);
        put_varint(out, self.loc.len as u64);
        put_varint(out, self.size as u64);
        if flags & EXPIRES != 0 {
            put_varint(out, self.expires_at);
        }
        if flags & PRIORITY != 0 {
            out.push(self.priority);
        }
        *prev = Prev {
            seq: self.seq,
            segment: self.loc.segment,
            end: self.loc.offset.wrapping_add(self.loc.len),
        };
    }

    fn decode(prev: &mut Prev, b: &[u8]) -> Option<(Self, usize)> {
        use super::summary::{get_signed, get_varint};
        let flags = *b.first()?;
        let mut at = 1;
        let seq = prev.seq.wrapping_add(get_signed(b, &mut at)? as u64);
        let segment = u32::try_from(prev.segment as i64 + get_signed(b, &mut at)?).ok()?;
        let offset = u32::try_from(prev.end as i64 + get_signed(b, &mut at)?).ok()?;
        let len = u32::try_from(get_varint(b, &mut at)?).ok()?;
        let size = u32::try_from(get_varint(b, &mut at)?).ok()?;
        let expires_at = match flags & EXPIRES != 0 {
            true => get_varint(b, &mut at)?,
            false => crate::message::NEVER,
        };
        let priority = match flags & PRIORITY != 0 {
            true => {
                let p = *b.get(at)?;
                at += 1;
                p
            }
            false => 0,
        };
        *prev = Prev {
            seq,
            segment,
            end: offset.wrapping_add(len),
        };
        Some((
            DiskEntry {
                seq,
                expires_at,
                loc: Loc {
                    segment,
                    offset,
                    len,
                },
                size,
                priority,
                own: flags & OWN != 0,
                redelivered: flags & REDELIVERED != 0,
                recovered: flags & RECOVERED != 0,
            },
            at,
        ))
    }

    fn weight(&self) -> u64 {
        self.size as u64
    }
}

/// Paged entries whose bodies are being read off the queue's lock.
struct Ahead {
    entries: Vec<DiskEntry>,
    rx: std::sync::mpsc::Receiver<Vec<std::io::Result<Record>>>,
}

pub struct PagedStorage {
    log: Arc<MessageLog>,
    /// Durable queue id; 0 for transient queues (nothing they hold is recovered).
    queue_id: u64,
    /// The queue's name: the routing key of records written without one
    /// (`record::KEY_IS_QUEUE`).
    name: ShortStr,
    /// The head, in memory, ordered by seq.
    window: VecDeque<QueuedMessage>,
    /// The backlog recovered at startup, behind the window and before
    /// `paged` (read lazily from the log's segment summaries)...
    recovered: Option<RecoveredQueue>,
    /// ...the seq of its next message...
    recovered_seq: u64,
    /// ...and the queue's message TTL, for their expiry.
    ttl: Option<u64>,
    /// The next paged entries (taken from `recovered`/`paged`), whose records
    /// the reader thread is reading: behind the window, before the rest.
    ahead: Option<Ahead>,
    /// Everything else behind the window.
    paged: SpillQueue<DiskEntry>,
    /// The broker-wide window budget (and the index files' directory).
    spill: Arc<SpillDir>,
    ram_bytes: usize,
    bytes: usize,
    /// Recovered at startup and not consumed from since: its head is read
    /// (the head's TTL timer needs it) in a small batch with no read-ahead.
    /// Why: every recovered queue's head is read at startup, and 1,000
    /// backlogged queues each loading a batch and a read-ahead of 256 held
    /// ~500 messages each in RAM (212 MiB) before any consumer came.
    cold: bool,
}

impl PagedStorage {
    pub fn new(log: Arc<MessageLog>, queue_id: u64, name: ShortStr) -> Self {
        let spill = log.spill_dir();
        PagedStorage {
            paged: SpillQueue::new(spill.clone()),
            spill,
            log,
            queue_id,
            name,
            window: VecDeque::new(),
            recovered: None,
            recovered_seq: 0,
            ahead: None,
            cold: false,
            ttl: None,
            ram_bytes: 0,
            bytes: 0,
        }
    }
}

impl PagedStorage {
    pub(super) fn log(&self) -> &Arc<MessageLog> {
        &self.log
    }

    /// Whether this queue counts as a durable home for `m` (its log record
    /// references us).
    fn durable_for(&self, m: &Message) -> Option<Stored> {
        if self.queue_id != 0 && m.persistent {
            m.stored.get().copied()
        } else {
            None
        }
    }

    fn page_out(&self, qm: &QueuedMessage) -> DiskEntry {
        let m = &qm.message;
        let (loc, own) = match self.durable_for(m) {
            Some(stored) => (stored.loc, false),
            None => {
                // The usual work queue's message (default exchange, our name
                // as key) is written without its key: we fill it in again.
                let key_is_queue = m.exchange.is_empty() && m.routing_key == self.name;
                let key =
                    (!key_is_queue).then(|| (m.exchange.as_bytes(), m.routing_key.as_bytes()));
                let (loc, _) = self
                    .log
                    .append_publish(None, &[], 1, key, &m.properties, &m.body);
                (loc, true)
            }
        };
        DiskEntry {
            seq: qm.seq,
            expires_at: qm.expires_at,
            priority: qm.priority,
            loc,
            own,
            redelivered: qm.redelivered,
            size: m.size() as u32,
            recovered: false,
        }
    }

    /// A recovered message as a paged entry with sequence number `seq`.
    fn recovered_entry(e: RecoveredEntry, seq: u64) -> DiskEntry {
        DiskEntry {
            seq,
            expires_at: e.msg_id,
            priority: e.priority,
            loc: e.loc,
            own: false,
            redelivered: true,
            size: e.loc.len,
            recovered: true,
        }
    }

    /// The next paged entry: the recovered backlog's first, then `paged`'s.
    fn pop_paged(&mut self) -> Option<DiskEntry> {
        if let Some(r) = self.recovered.as_mut() {
            let next = r.pop(&self.log);
            let lost = r.take_lost();
            self.bytes = self.bytes.saturating_sub(lost.weight as usize);
            if let Some(e) = next {
                let seq = self.recovered_seq;
                self.recovered_seq += 1;
                return Some(Self::recovered_entry(e, seq));
            }
            self.recovered = None;
        }
        let e = self.paged.pop();
        self.count_lost();
        e
    }

    /// Account for index entries lost to an unreadable index file.
    fn count_lost(&mut self) {
        let lost = self.paged.take_lost();
        if lost.count > 0 {
            self.bytes = self.bytes.saturating_sub(lost.weight as usize);
        }
    }

    /// Make sure the head message's body is in memory (or the queue is empty).
    ///
    /// Bodies come in batches read by the reader thread (see [`Ahead`]): the
    /// one read ahead is taken (waiting for it only if it is not back yet:
    /// the thread is reading it already), and the next batch is started, so
    /// consumers of a backlog usually find its bodies read without a `pread`
    /// under the queue's lock.
    ///
    /// Why a loop: an unreadable record is dropped, and the entry behind it is
    /// paged too. Loading only one would leave the window empty with messages
    /// ready: `front()` would report `None` while `len() > 0`, the queue would
    /// stop offering and nothing would call `deliver()` again.
    fn load_front(&mut self) {
        while self.window.is_empty() {
            let (entries, read) = match self.ahead.take() {
                Some(a) => {
                    let read = a.rx.recv().ok().filter(|r| r.len() == a.entries.len());
                    (a.entries, read)
                }
                None => (self.take_batch(), None),
            };
            if entries.is_empty() {
                return;
            }
            let read = read.unwrap_or_else(|| {
                let locs: Vec<Loc> = entries.iter().map(|e| e.loc).collect();
                self.log.read_many(&locs)
            });
            for (e, r) in entries.into_iter().zip(read) {
                self.load(e, r);
            }
            if !self.cold {
                self.start_ahead();
            }
        }
    }

    /// The next paged entries to read, up to a batch's worth.
    fn take_batch(&mut self) -> Vec<DiskEntry> {
        let mut batch = Vec::new();
        let mut bytes = 0u64;
        let max = if self.cold {
            COLD_MESSAGES
        } else {
            AHEAD_MESSAGES
        };
        while batch.len() < max && bytes < AHEAD_BYTES {
            let Some(e) = self.pop_paged() else {
                break;
            };
            bytes += e.loc.len as u64;
            batch.push(e);
        }
        batch
    }

    /// Start reading the next batch's bodies on the reader thread.
    fn start_ahead(&mut self) {
        if self.ahead.is_some() {
            return;
        }
        let entries = self.take_batch();
        if entries.is_empty() {
            return;
        }
        let locs: Vec<Loc> = entries.iter().map(|e| e.loc).collect();
        let log = self.log.clone();
        match self.spill.read_ahead(move || log.read_many(&locs)) {
            Some(rx) => self.ahead = Some(Ahead { entries, rx }),
            // No reader thread: read them here.
            None => {
                let locs: Vec<Loc> = entries.iter().map(|e| e.loc).collect();
                let read = self.log.read_many(&locs);
                for (e, r) in entries.into_iter().zip(read) {
                    self.load(e, r);
                }
            }
        }
    }

    /// Take a paged entry whose record was read back into the window, or drop
    /// it if it could not be read.
    fn load(&mut self, mut e: DiskEntry, read: std::io::Result<Record>) {
        let read = match read {
            Ok(Record::Publish { msg_id, .. }) if e.recovered && msg_id != e.expires_at => {
                Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("record has message id {msg_id}, expected {}", e.expires_at),
                ))
            }
            other => other,
        };
        match read {
            Ok(Record::Publish {
                msg_id,
                exchange,
                mut routing_key,
                key_is_queue,
                properties,
                body,
                published_at,
                ..
            }) => {
                if key_is_queue {
                    routing_key = self.name.clone();
                }
                if e.recovered {
                    // TTLs count from the original publish, as if there had
                    // been no restart.
                    let t = match (self.ttl, super::log::recovered_expiration(&properties)) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    e.expires_at =
                        t.map_or(crate::message::NEVER, |t| published_at.saturating_add(t));
                }
                let message = Message::new(exchange, routing_key, properties, body);
                if e.own {
                    // Back in memory: this queue's transient copy on disk is done with.
                    self.log.release_page_out(e.loc);
                } else {
                    let _ = message.stored.set(Stored { msg_id, loc: e.loc });
                }
                // Recovered entries were counted by record length.
                self.bytes = self.bytes - e.size as usize + message.size();
                self.ram_bytes += message.memory_size();
                self.spill.take(1, message.memory_size());
                self.window.push_back(QueuedMessage {
                    seq: e.seq,
                    message,
                    redelivered: e.redelivered,
                    expires_at: e.expires_at,
                    priority: e.priority,
                });
            }
            other => {
                // Unreadable record: drop the entry rather than wedge the queue.
                error!(loc = ?e.loc, result = ?other.err(), "cannot read paged message back; dropping it");
                self.bytes -= e.size as usize;
                if e.own {
                    self.log.release_page_out(e.loc);
                }
            }
        }
    }

    /// Forget paged entries for good: ack durable ones in the log, release
    /// references.
    fn drop_paged(&mut self, entries: Vec<DiskEntry>) {
        let mut acked = Vec::new();
        // Paged durable messages: their ids are in their records, read in bulk.
        let mut shared = Vec::new();
        for e in entries {
            self.bytes -= e.size as usize;
            if e.own {
                self.log.release_page_out(e.loc);
            } else {
                shared.push(e.loc);
            }
        }
        for (loc, id) in shared.iter().zip(self.log.read_msg_ids(&shared)) {
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
    fn recover(&mut self, msgs: RecoveredQueue, first_seq: u64, ttl: Option<u64>) -> u64 {
        if msgs.is_empty() {
            return first_seq;
        }
        // Nothing per message here: the queue holds the segments' references
        // and reads the entries as it gets to them.
        for (segment, n) in msgs.segments() {
            self.log.add_refs(segment, n);
        }
        self.ttl = ttl;
        self.bytes += msgs.bytes() as usize;
        self.recovered_seq = first_seq;
        let next = first_seq + msgs.len();
        self.recovered = Some(msgs);
        self.cold = true;
        next
    }

    fn push(&mut self, msg: QueuedMessage) {
        self.bytes += msg.message.size();
        // The window is bounded by what its messages hold in memory,
        // properties included, not by their body size alone.
        let mem = msg.message.memory_size();
        if self.paged.is_empty()
            && self.recovered.is_none()
            && self.ahead.is_none()
            && self.window.len() < RAM_MESSAGES
            && self.ram_bytes + mem <= RAM_BYTES
            && self.spill.try_take(mem)
        {
            self.ram_bytes += mem;
            self.window.push_back(msg);
        } else {
            let e = self.page_out(&msg);
            self.paged.push(e);
        }
    }

    fn front(&mut self) -> Option<&QueuedMessage> {
        self.load_front();
        self.window.front()
    }

    fn pop_front(&mut self) -> Option<QueuedMessage> {
        // Taken from: read in full batches, ahead of need, from now on.
        if std::mem::take(&mut self.cold) && !self.window.is_empty() {
            self.start_ahead();
        }
        self.load_front();
        let m = self.window.pop_front()?;
        let mem = m.message.memory_size();
        self.bytes -= m.message.size();
        self.ram_bytes -= mem;
        self.spill.give(1, mem);
        // Requeues can grow the window past its bound; give that back.
        let cap = self.window.capacity();
        if cap > 2 * RAM_MESSAGES && self.window.len() < cap / 4 {
            self.window.shrink_to(cap / 2);
        }
        Some(m)
    }

    fn requeue(&mut self, msg: QueuedMessage) {
        let mem = msg.message.memory_size();
        self.bytes += msg.message.size();
        self.ram_bytes += mem;
        self.spill.take(1, mem);
        let pos = self.window.partition_point(|m| m.seq < msg.seq);
        self.window.insert(pos, msg);
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
        self.window.len()
            + self.ahead.as_ref().map_or(0, |a| a.entries.len())
            + self.paged.len() as usize
            + self.recovered.as_ref().map_or(0, |r| r.len() as usize)
    }

    fn bytes(&self) -> usize {
        self.bytes
    }

    fn purge(&mut self) -> usize {
        let window: Vec<QueuedMessage> = self.window.drain(..).collect();
        let mut n = window.len();
        self.spill.give(n, self.ram_bytes);
        self.ram_bytes = 0;
        self.settle(&window);
        self.window.shrink_to_fit();
        if let Some(a) = self.ahead.take() {
            // Their read, if still going, answers no one.
            n += a.entries.len();
            self.drop_paged(a.entries);
        }
        if let Some(mut r) = self.recovered.take() {
            // Their ids are in the entries: acked without reading the log.
            loop {
                let batch = r.pop_many(&self.log, DROP_BATCH);
                if batch.is_empty() {
                    break;
                }
                n += batch.len();
                let acked: Vec<(u64, u32)> =
                    batch.iter().map(|e| (e.msg_id, e.loc.segment)).collect();
                for e in &batch {
                    self.log.release(e.loc.segment, 1);
                }
                self.log.append_ack(self.queue_id, &acked);
            }
        }
        loop {
            let batch = self.paged.pop_many(DROP_BATCH);
            self.count_lost();
            if batch.is_empty() {
                break;
            }
            n += batch.len();
            self.drop_paged(batch);
        }
        self.bytes = 0;
        n
    }
}

impl Drop for PagedStorage {
    fn drop(&mut self) {
        // A deleted queue's window leaves the shared budget (its index files
        // go with `paged`).
        self.spill.give(self.window.len(), self.ram_bytes);
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

    /// Every other one has the queue's name as key (written without it).
    fn small(seq: u64) -> QueuedMessage {
        QueuedMessage {
            seq,
            message: Message::new(
                ShortStr::from(""),
                ShortStr::from(if seq.is_multiple_of(2) { "q" } else { "k" }),
                Bytes::new(),
                Bytes::from(seq.to_le_bytes().to_vec()),
            ),
            redelivered: false,
            expires_at: seq,
            priority: 0,
        }
    }

    fn seq_of(m: &QueuedMessage) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&m.message.body[..8]);
        let seq = u64::from_le_bytes(a);
        let key = if seq.is_multiple_of(2) { "q" } else { "k" };
        assert_eq!(m.message.routing_key, ShortStr::from(key));
        assert!(m.message.exchange.is_empty());
        seq
    }

    #[test]
    fn a_paged_backlog_keeps_order_through_requeues_and_counts_exactly() {
        let (_dir, log) = open_log("order");
        let mut s = PagedStorage::new(log, 0, ShortStr::from("q"));
        let n = (RAM_MESSAGES as u64) + 3 * super::super::spill::RECORDS_PER_FILE / 2;
        for seq in 1..=n {
            s.push(small(seq));
        }
        assert_eq!(s.len() as u64, n);
        assert_eq!(s.bytes() as u64, 8 * n);
        assert!(
            s.paged.len() > super::super::spill::RECORDS_PER_FILE,
            "most are on disk"
        );
        let mut next = 1;
        // Deliver a few beyond the window, requeue them out of order: they
        // come back first, in seq order, with what they carried.
        let mut taken = Vec::new();
        for _ in 0..RAM_MESSAGES + 10 {
            taken.push(s.pop_front().expect("message"));
        }
        for m in taken.drain(RAM_MESSAGES..).rev() {
            s.requeue(m);
        }
        next += RAM_MESSAGES as u64;
        while let Some(m) = s.pop_front() {
            assert_eq!(m.seq, next);
            assert_eq!(seq_of(&m), next);
            assert_eq!(m.expires_at, next);
            next += 1;
            if next == n / 2 {
                // New messages while half drained go behind the backlog.
                s.push(small(n + 1));
            }
        }
        assert_eq!(next, n + 2);
        assert_eq!(s.len(), 0);
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn properties_count_against_the_window() {
        // Messages whose weight is in their headers (an empty body): the
        // window holds RAM_BYTES of them, not RAM_MESSAGES; the rest is paged.
        let (_dir, log) = open_log("props");
        let mut s = PagedStorage::new(log, 0, ShortStr::from("q"));
        let props = Bytes::from(vec![0u8; 512 * 1024]);
        for seq in 1..=64u64 {
            s.push(QueuedMessage {
                seq,
                message: Message::new(
                    ShortStr::from(""),
                    ShortStr::from("k"),
                    props.clone(),
                    Bytes::new(),
                ),
                redelivered: false,
                expires_at: NEVER,
                priority: 0,
            });
        }
        assert_eq!(s.window.len(), RAM_BYTES / (512 * 1024));
        assert_eq!(s.len(), 64);
        assert_eq!(s.bytes(), 0, "message_bytes counts bodies, as RabbitMQ");
        let mut n = 0;
        while let Some(m) = s.pop_front() {
            n += 1;
            assert_eq!(m.seq, n);
            assert_eq!(m.message.properties.len(), 512 * 1024);
        }
        assert_eq!((n, s.ram_bytes), (64, 0));
    }

    #[test]
    fn purge_drops_a_paged_backlog_and_the_budget_comes_back() {
        let (dir, log) = open_log("purge");
        let mut s = PagedStorage::new(log.clone(), 0, ShortStr::from("q"));
        let n = 200_000;
        for seq in 1..=n {
            s.push(small(seq));
        }
        assert_eq!(s.purge(), n as usize);
        assert_eq!((s.len(), s.bytes()), (0, 0));
        // The shared window budget is all free again: a new queue gets a full window.
        let mut t = PagedStorage::new(log, 0, ShortStr::from("q"));
        for seq in 1..=RAM_MESSAGES as u64 {
            t.push(small(seq));
        }
        assert_eq!(t.window.len(), RAM_MESSAGES);
        assert_eq!(
            std::fs::read_dir(dir.0.join("paged")).expect("ls").count(),
            0,
            "purged index files are deleted"
        );
    }

    /// Paged bodies come back in batches read ahead by the reader thread:
    /// order and counts stay exact while a batch is in flight, new messages
    /// go behind it, and a purge with a batch in flight drops it.
    #[test]
    fn bodies_read_ahead_keep_order_and_purge_drops_the_batch_in_flight() {
        let (_dir, log) = open_log("ahead");
        let mut s = PagedStorage::new(log, 0, ShortStr::from("q"));
        let n = 10_000u64;
        for seq in 1..=n {
            s.push(small(seq));
        }
        for want in 1..=RAM_MESSAGES as u64 + 10 {
            assert_eq!(s.pop_front().map(|m| seq_of(&m)), Some(want));
        }
        assert!(s.ahead.is_some(), "the next batch is being read ahead");
        assert_eq!(s.len() as u64, n - RAM_MESSAGES as u64 - 10);
        s.push(small(n + 1));
        let mut want = RAM_MESSAGES as u64 + 11;
        while let Some(m) = s.pop_front() {
            assert_eq!(seq_of(&m), want);
            want += 1;
            if want == 7_000 {
                break;
            }
        }
        assert!(s.ahead.is_some());
        assert_eq!(s.purge() as u64, n + 2 - 7_000);
        assert_eq!((s.len(), s.bytes()), (0, 0));
        assert!(s.ahead.is_none());
    }

    #[test]
    fn an_unreadable_paged_head_does_not_hide_the_messages_behind_it() {
        let (dir, log) = open_log("unreadable-head");
        let mut s = PagedStorage::new(log, 0, ShortStr::from("q"));
        for (seq, tag) in [(1, b'a'), (2, b'b'), (3, b'c'), (4, b'd')] {
            s.push(big(seq, tag, 0));
        }
        assert_eq!(s.window.len(), 2, "a, b in memory");
        assert_eq!(s.paged.len(), 2, "c, d paged out");
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
        let mut s = PriorityStorage::new(log, 0, ShortStr::from("q"), 5);
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
    /// A recovered priority backlog is split per level without reading it into
    /// any index: lengths exact at once, higher levels first, each level in
    /// publish order, acked messages left out, and messages published after
    /// the restart come after the recovered ones of their level.
    #[test]
    fn a_recovered_queue_reads_a_small_head_until_taken_from() {
        let (dir, log) = open_log("cold-recovery");
        log.shutdown();
        let opts = LogOptions {
            fsync: false,
            segment_size: 4096,
            ..Default::default()
        };
        {
            let (log, _) = MessageLog::open(&dir.0, &opts).expect("open");
            let mut ticket = 0;
            for i in 0..600u64 {
                let id = log.next_msg_id();
                let (_, t) = log.append_publish(Some(id), &[9], 1, None, &[0, 0], &i.to_le_bytes());
                ticket = t;
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while log.durable_ticket() < ticket {
                assert!(std::time::Instant::now() < deadline, "not durable");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            log.shutdown();
        }
        let (log, mut rec) = MessageLog::open(&dir.0, &opts).expect("reopen");
        let mut s = PagedStorage::new(log.clone(), 9, ShortStr::from("q"));
        s.recover(rec.remove(&9).expect("queue 9"), 1, None);
        // Peeking (as the head's TTL timer does) reads a few, nothing ahead.
        assert!(s.front().is_some());
        assert!(s.window.len() <= COLD_MESSAGES && s.ahead.is_none());
        assert_eq!(s.len(), 600);
        // Taking one starts the read-ahead; everything comes, in order.
        let mut got = Vec::new();
        while let Some(m) = s.pop_front() {
            if got.is_empty() {
                assert!(s.ahead.is_some(), "no read-ahead after the first take");
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&m.message.body[..8]);
            got.push(u64::from_le_bytes(b));
        }
        assert_eq!(got, (0..600).collect::<Vec<u64>>());
        log.shutdown();
    }

    #[test]
    fn a_recovered_priority_backlog_drains_by_level_in_order() {
        let (dir, log) = open_log("prio-recovery");
        log.shutdown();
        let opts = LogOptions {
            fsync: false,
            segment_size: 4096,
            ..Default::default()
        };
        let mut want: Vec<Vec<u64>> = vec![Vec::new(); 4];
        {
            let (log, _) = MessageLog::open(&dir.0, &opts).expect("open");
            let mut ticket = 0;
            let mut acked = Vec::new();
            for i in 0..600u64 {
                let id = log.next_msg_id();
                // Priority 0..=4 with a max of 3: 4 counts as 3.
                let p = (i % 5) as u8;
                let props = [0x08, 0x00, p];
                let (loc, t) =
                    log.append_publish(Some(id), &[9], 1, None, &props, &i.to_le_bytes());
                ticket = t;
                if i % 7 == 0 {
                    acked.push((id, loc.segment));
                } else {
                    want[p.min(3) as usize].push(i);
                }
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while log.durable_ticket() < ticket {
                assert!(std::time::Instant::now() < deadline, "not durable");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            log.append_ack(9, &acked);
            // Let summaries be written for the sealed segments.
            std::thread::sleep(std::time::Duration::from_millis(700));
            log.shutdown();
        }
        let (log, mut rec) = MessageLog::open(&dir.0, &opts).expect("reopen");
        let mut s = PriorityStorage::new(log.clone(), 9, ShortStr::from("pq"), 3);
        let total: usize = want.iter().map(Vec::len).sum();
        let next = s.recover(rec.remove(&9).expect("queue 9"), 1, None);
        assert_eq!(next, 1 + total as u64);
        assert_eq!(s.len(), total);
        // A message published after the restart at level 3 (RAM).
        let mut late = small(next);
        late.priority = 3;
        s.push(late);
        for level in (0..4u8).rev() {
            for &i in &want[level as usize] {
                let m = s.pop_front().expect("message");
                let mut b = [0u8; 8];
                b.copy_from_slice(&m.message.body[..8]);
                assert_eq!((m.priority.min(3), u64::from_le_bytes(b)), (level, i));
                assert_eq!(m.message.routing_key, ShortStr::from("pq"));
                assert!(m.redelivered);
            }
            if level == 3 {
                let m = s.pop_front().expect("the late one");
                assert_eq!(m.seq, next);
            }
        }
        assert!(s.pop_front().is_none());
        assert_eq!(s.len(), 0);
        log.shutdown();
    }
}
