//! On-disk FIFO of fixed-size records: where a queue's paged-out region lives.
//!
//! # Design (issue 16: backlogs in flat memory)
//!
//! Before, a paged-out message left its body in the message log but kept a
//! ~48-byte entry (log location, seq, expiry, priority, flags) in the queue's
//! in-memory deque: 10M queued messages cost ~400 MiB of RSS. Those entries are
//! only ever touched in FIFO order (pushed at the tail, popped at the head, or
//! all dropped by purge/delete): requeues go to the in-memory window, because a
//! requeued message always sorts before everything paged out (it was delivered
//! from the head). So the entries can live in an append-only file read front
//! to back, like the per-queue index segments of RabbitMQ's CQv2 or LavinMQ.
//!
//! A [`SpillQueue`] is that file, split in *spill segments* of
//! [`RECORDS_PER_FILE`] records (`<log dir>/paged/<queue>-<n>.idx`). RAM holds:
//! a read-ahead buffer of at most [`CHUNK`] records at the head, a write buffer
//! of at most [`CHUNK`] records at the tail, and per spill segment its number,
//! record count, read position and byte weight — O(segments), ~40 bytes per
//! million messages. Records in between are on disk only. A segment is deleted
//! as soon as its last record has been read (the one being appended to is
//! deleted too once drained, and a fresh one started), so the space goes back
//! as the queue drains.
//!
//! Why not fsynced, and not used by recovery: the message log stays the only
//! durable truth (publish records + ack files; recovery is unchanged). The
//! spill files are a cache of which log records a queue holds, in order; they
//! are wiped at start. A recovered backlog is read lazily from the log's
//! segment summaries instead (see `super::recovered`), so it never sits in
//! RAM either.
//!
//! Read-ahead off the queue's lock: once the head buffer is down to half a
//! chunk, the next chunk's bytes are read by the spill directory's reader
//! thread ([`SpillDir`]), so a consumer popping the head finds them in memory
//! and only decodes them (a few µs per chunk) instead of opening and reading
//! the file while the queue is locked. If the prefetch is not there yet or
//! failed, the read is done in place as before.
//!
//! Errors: a write that fails keeps the records in the write buffer (memory
//! grows, nothing is lost) and is retried at the next flush. A read that fails
//! drops the segment's unread records (logged) and reports how many and their
//! weight, so the queue's length and byte counts stay exact.

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use tracing::error;

use super::budget::MemoryBudget;

/// Records read or written at once (and the most each buffer holds).
pub const CHUNK: usize = 256;
/// Records per spill segment file.
pub const RECORDS_PER_FILE: u64 = 64 * 1024;

/// A record as stored in a spill file: variable-size, delta-encoded against
/// the previous record of the same file (`State`, reset at each file start),
/// so that a typical paged entry takes ~6 bytes instead of a fixed 34.
pub trait Fixed: Sized {
    /// What encoding or decoding a record carries over to the next one.
    type State: Default + Clone;
    /// The most bytes one record can take.
    const MAX_SIZE: usize;
    fn encode(&self, state: &mut Self::State, out: &mut Vec<u8>);
    /// Decode the record at the front of `b`: it and its length, or `None` if
    /// `b` does not start with a whole, valid record (`state` untouched then).
    fn decode(state: &mut Self::State, b: &[u8]) -> Option<(Self, usize)>;
    /// What the record counts for in its queue's byte total.
    fn weight(&self) -> u64;
}

/// Where the spill files of a broker go, unique names for them, and the
/// broker-wide budget of in-memory windows.
///
/// Why a shared budget: with a fixed window per queue, 1,000 queues with a
/// backlog each would hold 1,000 windows (4M bodies); with it they hold what one
/// big queue holds, and a queue without a backlog is not affected (its window
/// is near empty).
pub struct SpillDir {
    path: PathBuf,
    next: AtomicU64,
    window_messages: AtomicUsize,
    window_bytes: AtomicUsize,
    /// Read-ahead jobs for the reader thread (started with the first one).
    reads: Mutex<Option<mpsc::Sender<ReadJob>>>,
    /// The most messages and bytes all windows hold together.
    budget: MemoryBudget,
}

/// A read for the reader thread; it sends its answer to a channel whose
/// receiver may be gone (the queue moved on, or was deleted).
type ReadJob = Box<dyn FnOnce() + Send>;

/// A read-ahead in flight: the bytes at `pos` of spill segment `n`.
struct Prefetch {
    n: u32,
    pos: u64,
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
}

fn read_bytes(path: &Path, pos: u64, want: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; want];
    fs::File::open(path).and_then(|file| file.read_exact_at(&mut buf, pos))?;
    Ok(buf)
}

impl SpillDir {
    /// Create `path`, deleting what a previous run left there (spill files are
    /// never read across restarts).
    pub fn open(path: PathBuf, budget: MemoryBudget) -> io::Result<Arc<SpillDir>> {
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)?;
        Ok(Arc::new(SpillDir {
            path,
            next: AtomicU64::new(1),
            window_messages: AtomicUsize::new(0),
            window_bytes: AtomicUsize::new(0),
            reads: Mutex::new(None),
            budget,
        }))
    }

    /// Start reading `want` bytes at `pos` of `path` on the reader thread.
    /// `None` if the thread cannot be started (the caller reads in place).
    fn prefetch(
        &self,
        path: PathBuf,
        pos: u64,
        want: usize,
    ) -> Option<mpsc::Receiver<io::Result<Vec<u8>>>> {
        self.read_ahead(move || read_bytes(&path, pos, want))
    }

    /// Run `read` on the reader thread; its answer comes on the receiver.
    /// `None` if the thread cannot be started (the caller reads in place).
    pub(super) fn read_ahead<R: Send + 'static>(
        &self,
        read: impl FnOnce() -> R + Send + 'static,
    ) -> Option<mpsc::Receiver<R>> {
        let (reply, rx) = mpsc::sync_channel(1);
        let job: ReadJob = Box::new(move || {
            let _ = reply.send(read());
        });
        let mut reads = self.reads.lock().ok()?;
        if reads.is_none() {
            let (tx, jobs) = mpsc::channel::<ReadJob>();
            // One thread for all queues: reads are small (≤ 256 index entries,
            // or a batch of bodies) and mostly from the page cache; it ends
            // when the directory is dropped.
            std::thread::Builder::new()
                .name("warren-spill-read".into())
                .spawn(move || {
                    for job in jobs {
                        job();
                    }
                })
                .ok()?;
            *reads = Some(tx);
        }
        reads.as_ref()?.send(job).ok()?;
        Some(rx)
    }

    /// Take room for a body of `size` bytes in the windows, if the budget has it.
    pub fn try_take(&self, size: usize) -> bool {
        if self.window_messages.load(Ordering::Relaxed) >= self.budget.window_messages
            || self.window_bytes.load(Ordering::Relaxed) + size > self.budget.window_bytes
        {
            return false;
        }
        self.take(1, size);
        true
    }

    /// Take room regardless of the budget (a message read back for delivery,
    /// or requeued: the head must be in memory).
    pub fn take(&self, n: usize, bytes: usize) {
        self.window_messages.fetch_add(n, Ordering::Relaxed);
        self.window_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn give(&self, n: usize, bytes: usize) {
        self.window_messages.fetch_sub(n, Ordering::Relaxed);
        self.window_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

struct SpillFile<S> {
    n: u32,
    /// Records written to the file...
    written: u64,
    /// ...and their bytes.
    written_bytes: u64,
    /// Records read from it...
    read: u64,
    /// ...and their bytes.
    read_bytes: u64,
    /// Weight of the unread records.
    weight: u64,
    /// The decoder's state after the last record read...
    decode: S,
    /// ...and the encoder's after the last one written.
    encode: S,
}

/// Records lost to an unreadable spill file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    pub count: u64,
    pub weight: u64,
}

pub struct SpillQueue<T: Fixed> {
    dir: Arc<SpillDir>,
    id: u64,
    files: VecDeque<SpillFile<T::State>>,
    next_file: u32,
    /// Read ahead from the oldest file (before everything on disk).
    head: VecDeque<T>,
    /// Not yet written (after everything on disk).
    tail: Vec<T>,
    len: u64,
    /// Records lost to read errors, not yet reported.
    lost: Lost,
    /// The next chunk, being read by the reader thread.
    prefetch: Option<Prefetch>,
    /// Chunks that came from a prefetch (for tests).
    prefetched: u64,
}

impl<T: Fixed> SpillQueue<T> {
    pub fn new(dir: Arc<SpillDir>) -> Self {
        let id = dir.next.fetch_add(1, Ordering::Relaxed);
        SpillQueue {
            dir,
            id,
            files: VecDeque::new(),
            next_file: 1,
            head: VecDeque::new(),
            tail: Vec::new(),
            len: 0,
            lost: Lost::default(),
            prefetch: None,
            prefetched: 0,
        }
    }

    /// How many bytes the next read of the file at `pos..end` takes.
    fn want(pos: u64, end: u64) -> usize {
        (end.saturating_sub(pos)).min((CHUNK * T::MAX_SIZE) as u64) as usize
    }

    /// Start reading the next chunk if the head is down to half a chunk and
    /// nothing is in flight.
    fn maybe_prefetch(&mut self) {
        if self.prefetch.is_some() || self.head.len() > CHUNK / 2 {
            return;
        }
        let Some(f) = self.files.iter().find(|f| f.read < f.written) else {
            return;
        };
        let (n, pos) = (f.n, f.read_bytes);
        let want = Self::want(pos, f.written_bytes);
        if want == 0 {
            return;
        }
        if let Some(rx) = self.dir.prefetch(self.path(n), pos, want) {
            self.prefetch = Some(Prefetch { n, pos, rx });
        }
    }

    /// The bytes at `pos` of segment `n`: the prefetched ones if they are for
    /// that place (waiting for them if still in flight: the thread is reading
    /// them already), else read here.
    fn chunk(&mut self, n: u32, pos: u64, want: usize) -> io::Result<Vec<u8>> {
        if let Some(p) = self.prefetch.take() {
            if p.n == n && p.pos == pos {
                if let Ok(Ok(buf)) = p.rx.recv() {
                    if !buf.is_empty() {
                        self.prefetched += 1;
                        return Ok(buf);
                    }
                }
            }
        }
        read_bytes(&self.path(n), pos, want)
    }

    fn path(&self, n: u32) -> PathBuf {
        self.dir.path.join(format!("{}-{}.idx", self.id, n))
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records dropped because their spill file could not be read since the
    /// last call (already taken out of `len`).
    pub fn take_lost(&mut self) -> Lost {
        std::mem::take(&mut self.lost)
    }

    pub fn push(&mut self, rec: T) {
        self.len += 1;
        // Nothing on disk and the read-ahead has room: no I/O at all for a
        // short backlog.
        if self.files.is_empty() && self.tail.is_empty() && self.head.len() < CHUNK {
            self.head.push_back(rec);
            return;
        }
        self.tail.push(rec);
        if self.tail.len() >= CHUNK {
            self.flush();
        }
    }

    /// Write the tail buffer to the newest file (failures keep it buffered).
    fn flush(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        let full = self
            .files
            .back()
            .is_none_or(|f| f.written >= RECORDS_PER_FILE);
        if full {
            let n = self.next_file;
            self.next_file += 1;
            self.files.push_back(SpillFile {
                n,
                written: 0,
                written_bytes: 0,
                read: 0,
                read_bytes: 0,
                weight: 0,
                decode: T::State::default(),
                encode: T::State::default(),
            });
        }
        let Some((n, mut state)) = self.files.back().map(|f| (f.n, f.encode.clone())) else {
            return;
        };
        let mut buf = Vec::with_capacity(self.tail.len() * 8);
        let mut weight = 0;
        for r in &self.tail {
            r.encode(&mut state, &mut buf);
            weight += r.weight();
        }
        let res = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(n))
            .and_then(|mut f| f.write_all(&buf));
        match res {
            Ok(()) => {
                if let Some(f) = self.files.back_mut() {
                    f.written += self.tail.len() as u64;
                    f.written_bytes += buf.len() as u64;
                    f.weight += weight;
                    f.encode = state;
                }
                self.tail.clear();
                if self.tail.capacity() > CHUNK {
                    self.tail.shrink_to(CHUNK);
                }
            }
            Err(e) => {
                // A partial append would misalign the file: cut it back.
                if let Some(f) = self.files.back() {
                    if let Ok(file) = OpenOptions::new().write(true).open(self.path(n)) {
                        let _ = file.set_len(f.written_bytes);
                    }
                    if f.written == 0 {
                        self.files.pop_back();
                        let _ = fs::remove_file(self.path(n));
                    }
                }
                error!(error = %e, "paged queue index: cannot write; keeping it in memory");
            }
        }
    }

    /// Fill the read-ahead buffer from the oldest file (or the tail buffer when
    /// nothing is on disk).
    fn refill(&mut self) {
        while self.head.is_empty() {
            let Some(f) = self.files.front() else {
                // Nothing on disk: the write buffer is next.
                self.head.extend(self.tail.drain(..));
                return;
            };
            let (n, read, written) = (f.n, f.read, f.written);
            if read >= written {
                // Drained: give the space back.
                self.files.pop_front();
                let _ = fs::remove_file(self.path(n));
                continue;
            }
            let (pos, end) = (f.read_bytes, f.written_bytes);
            let mut state = f.decode.clone();
            let want = Self::want(pos, end);
            let res = self.chunk(n, pos, want).and_then(|buf| {
                let mut at = 0;
                let mut out = Vec::new();
                while out.len() < CHUNK && read + (out.len() as u64) < written {
                    match T::decode(&mut state, &buf[at..]) {
                        Some((r, len)) => {
                            out.push(r);
                            at += len;
                        }
                        None => break,
                    }
                }
                if out.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "undecodable entry",
                    ));
                }
                Ok((out, at, state))
            });
            match res {
                Ok((recs, consumed, state)) => {
                    let count = recs.len() as u64;
                    let mut w = 0;
                    for r in recs {
                        w += r.weight();
                        self.head.push_back(r);
                    }
                    if let Some(f) = self.files.front_mut() {
                        f.read += count;
                        f.read_bytes += consumed as u64;
                        f.weight = f.weight.saturating_sub(w);
                        f.decode = state;
                    }
                }
                Err(e) => {
                    error!(error = %e, file = n, lost = written - read,
                        "paged queue index: cannot read; dropping its entries");
                    if let Some(f) = self.files.pop_front() {
                        let k = f.written - f.read;
                        self.len -= k;
                        self.lost.count += k;
                        self.lost.weight += f.weight;
                    }
                    let _ = fs::remove_file(self.path(n));
                }
            }
        }
    }

    pub fn front(&mut self) -> Option<&T> {
        if self.head.is_empty() {
            self.refill();
        }
        self.head.front()
    }

    pub fn pop(&mut self) -> Option<T> {
        if self.head.is_empty() {
            self.refill();
        }
        let r = self.head.pop_front()?;
        self.len -= 1;
        if self.len == 0 {
            // Drained: the newest file is fully read too.
            self.refill();
        }
        self.maybe_prefetch();
        Some(r)
    }

    /// Take up to `max` records from the front (purge, delete: in chunks, so a
    /// huge backlog is never all in memory at once).
    pub fn pop_many(&mut self, max: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(max.min(self.len as usize));
        while out.len() < max {
            match self.pop() {
                Some(r) => out.push(r),
                None => break,
            }
        }
        out
    }
}

impl<T: Fixed> Drop for SpillQueue<T> {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = fs::remove_file(self.path(f.n));
        }
    }
}

/// The little-endian u64 at `b[i..i + 8]` (fixed-size entry fields; `b` is
/// always a whole entry, so the range is in bounds).
pub(crate) fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

/// The little-endian u32 at `b[i..i + 4]`.
pub(crate) fn u32_at(b: &[u8], i: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct R(u64);

    impl Fixed for R {
        type State = u64;
        const MAX_SIZE: usize = 10;
        fn encode(&self, prev: &mut u64, out: &mut Vec<u8>) {
            super::super::summary::put_varint(out, self.0 - *prev);
            *prev = self.0;
        }
        fn decode(prev: &mut u64, b: &[u8]) -> Option<(Self, usize)> {
            let mut at = 0;
            let v = *prev + super::super::summary::get_varint(b, &mut at)?;
            *prev = v;
            Some((R(v), at))
        }
        fn weight(&self) -> u64 {
            1
        }
    }

    #[test]
    fn fifo_across_files_and_space_returned() {
        let dir = std::env::temp_dir().join(format!("warren-spill-test-{}", std::process::id()));
        let d = SpillDir::open(dir.clone(), MemoryBudget::default()).expect("dir");
        let mut q: SpillQueue<R> = SpillQueue::new(d);
        let n = RECORDS_PER_FILE * 2 + 1000;
        let mut next_out = 0;
        for i in 0..n {
            q.push(R(i));
            // Interleave some pops while pushing.
            if i % 3 == 0 {
                assert_eq!(q.pop(), Some(R(next_out)));
                next_out += 1;
            }
        }
        assert_eq!(q.len(), n - next_out);
        assert!(fs::read_dir(&dir).expect("ls").count() >= 1);
        while let Some(r) = q.pop() {
            assert_eq!(r, R(next_out));
            next_out += 1;
        }
        assert_eq!(next_out, n);
        assert_eq!(
            fs::read_dir(&dir).expect("ls").count(),
            0,
            "drained files deleted"
        );
        // Nearly every chunk was read ahead by the reader thread.
        let chunks = n / CHUNK as u64;
        assert!(
            q.prefetched * 2 > chunks,
            "{} of {chunks} chunks prefetched",
            q.prefetched
        );
        let _ = fs::remove_dir_all(&dir);
    }

    /// A prefetch in flight when the queue is purged (its file deleted) or
    /// dropped is discarded; order holds for what is pushed afterwards.
    #[test]
    fn prefetch_survives_purge_and_drop() {
        let dir = std::env::temp_dir().join(format!("warren-spill-purge-{}", std::process::id()));
        let d = SpillDir::open(dir.clone(), MemoryBudget::default()).expect("dir");
        let mut q: SpillQueue<R> = SpillQueue::new(d.clone());
        for i in 0..RECORDS_PER_FILE + 5000 {
            q.push(R(i));
        }
        for i in 0..CHUNK as u64 {
            assert_eq!(q.pop(), Some(R(i)));
        }
        // The head is below half a chunk: a read-ahead is in flight.
        assert!(q.prefetch.is_some());
        let mut purged = 0;
        while !q.is_empty() {
            purged += q.pop_many(64 * 1024).len() as u64;
        }
        assert_eq!(purged, RECORDS_PER_FILE + 5000 - CHUNK as u64);
        for i in 0..3 * CHUNK as u64 {
            q.push(R(1_000_000 + i));
        }
        for i in 0..3 * CHUNK as u64 {
            assert_eq!(q.pop(), Some(R(1_000_000 + i)));
        }
        let mut other: SpillQueue<R> = SpillQueue::new(d);
        for i in 0..4 * CHUNK as u64 {
            other.push(R(i));
        }
        for i in 0..CHUNK as u64 + 1 {
            assert_eq!(other.pop(), Some(R(i)));
        }
        drop(other);
        drop(q);
        let _ = fs::remove_dir_all(&dir);
    }
}
