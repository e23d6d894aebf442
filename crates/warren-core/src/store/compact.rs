//! Compaction: rewriting a mostly-acked segment with only its live records.
//!
//! Why: segments are deleted whole once no queue references them, so one message
//! left unacked for hours (or a small queue nobody drains) would pin its whole
//! segment. Compaction copies the segment's live records, byte for byte, into a
//! new file that replaces the segment under the same number, and keeps only the
//! acks that still refer to them. Message ids do not change, so recovery reads a
//! compacted segment like any other; locations handed out before the rewrite are
//! translated through the offset map installed with the new file.
//!
//! Which records are live is decided from the disk alone: a persistent record is
//! live while some queue it lists has not acked it (acks are in the segment's ack
//! file); a transient record (a queue's page-out) is live until that queue writes
//! its release under queue id 0. Acks still in memory only make compaction keep
//! a record that could have gone, never drop one that is needed.
//!
//! Crash safety: the new segment is written to `NNNNNNNN.seg.compact`, synced and
//! renamed over the segment (atomic), then the ack file is replaced the same way.
//! A crash before the first rename leaves the old segment; between the two, the
//! compacted segment with its old ack file (a superset of the acks it needs).
//! Leftover `.compact` files are deleted at start.

use super::log::{acks_path, segment_path, MessageLog, SegmentReader};
use super::record::{self, Record};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// A segment is compacted once at most this fraction of the references it held
/// are still live...
const LIVE_FRACTION: u64 = 8;
/// ...and it has stayed that sparse this long (messages in flight are usually
/// acked within moments; compacting around them would be wasted work).
pub(super) const SPARSE_FOR: Duration = Duration::from_secs(2);

/// Whether a segment with `refs` live of `total` references is sparse.
pub(super) fn is_sparse(refs: u64, total: u64) -> bool {
    refs.saturating_mul(LIVE_FRACTION) <= total
}

/// Delete temporary files of a compaction a crash interrupted.
pub(super) fn remove_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(".compact"))
        {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Compact `segments` on a background thread, unless one is running already.
/// The segments are marked so that reclaim does not delete them meanwhile.
pub(super) fn start(log: &Arc<MessageLog>, segments: Vec<u32>) {
    if log.compacting.swap(true, Ordering::AcqRel) {
        return;
    }
    {
        let mut segs = log.segments.lock();
        for n in &segments {
            if let Some(info) = segs.get_mut(n) {
                info.compacting = true;
            }
        }
    }
    let log2 = log.clone();
    let spawned = std::thread::Builder::new()
        .name("warren-log-compact".into())
        .spawn(move || run(&log2, segments.clone()));
    if spawned.is_err() {
        log.compacting.store(false, Ordering::Release);
    }
}

fn run(log: &MessageLog, segments: Vec<u32>) {
    for n in segments {
        let started = Instant::now();
        match compact_segment(log, n) {
            Ok((before, after, kept)) => info!(
                segment = n,
                bytes_before = before,
                bytes_after = after,
                live_records = kept,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "message log: compacted segment"
            ),
            Err(e) => warn!(segment = n, error = %e, "message log: cannot compact segment"),
        }
        let mut segs = log.segments.lock();
        if let Some(info) = segs.get_mut(&n) {
            info.compacting = false;
            info.sparse_since = None;
            // Compacted or not, judge it again from what is live now.
            info.total_refs = info.refs;
        }
    }
    log.compacting.store(false, Ordering::Release);
}

/// The acks in a segment's ack file, in memory bounded by the segment's
/// size rather than by how many records it held (a segment of 16 B messages
/// holds a million: a hash set of them peaked at ~70 MiB, issue 16).
#[derive(Default)]
struct Acked {
    /// Releases of queues' own transient copies (queue 0): their ids are
    /// their offsets in the segment as first written, and records are more
    /// than 8 bytes long, so a bit per 8 bytes of segment tells them apart.
    own: Vec<u64>,
    /// Queue-0 ids beyond the bitmap (none expected; kept to be safe).
    own_other: HashSet<u64>,
    /// Persistent messages' acks, sorted: (queue, message id).
    durable: Vec<(u64, u64)>,
}

impl Acked {
    fn new(segment_size: u64) -> Self {
        Acked {
            own: vec![0; (segment_size / 8 / 64 + 1) as usize],
            ..Default::default()
        }
    }

    fn insert(&mut self, queue: u64, id: u64) {
        if queue != 0 {
            self.durable.push((queue, id));
            return;
        }
        let bit = id / 8;
        match self.own.get_mut((bit / 64) as usize) {
            Some(w) => *w |= 1 << (bit % 64),
            None => {
                self.own_other.insert(id);
            }
        }
    }

    fn seal(&mut self) {
        self.durable.sort_unstable();
        self.durable.dedup();
    }

    fn contains(&self, queue: u64, id: u64) -> bool {
        if queue != 0 {
            return self.durable.binary_search(&(queue, id)).is_ok();
        }
        let bit = id / 8;
        match self.own.get((bit / 64) as usize) {
            Some(w) => w & (1 << (bit % 64)) != 0,
            None => self.own_other.contains(&id),
        }
    }
}

/// The acks in an ack file (see [`Acked`]).
fn read_acks(path: &Path, n: u32, segment_size: u64) -> io::Result<Acked> {
    let mut acked = Acked::new(segment_size);
    super::log::read_records(path, n, false, |rec, _| {
        if let Record::Ack { queue, msg_ids } = rec {
            for id in msg_ids {
                acked.insert(queue, id);
            }
        }
    })?;
    acked.seal();
    Ok(acked)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Rewrite segment `n` with its live records. Returns (bytes before, bytes
/// after, live records).
fn compact_segment(log: &MessageLog, n: u32) -> io::Result<(u64, u64, usize)> {
    let seg = segment_path(&log.dir, n);
    let acks = acks_path(&log.dir, n);
    let acked = {
        let _io = log.acks_io.lock();
        read_acks(&acks, n, log.segment_size)?
    };
    // Streamed (a megabyte at a time), not read whole: only the live records'
    // places are kept, then copied byte for byte.
    let mut live: Vec<(u32, u32)> = Vec::new();
    let mut kept: HashSet<u64> = HashSet::new();
    // Sealed segments are whole (recovery cut any torn tail).
    super::log::read_records(&seg, n, false, |rec, loc| {
        if let Record::Publish {
            msg_id,
            flags,
            queues,
            ..
        } = rec
        {
            let is_live = if flags & record::FLAG_PERSISTENT != 0 {
                queues.iter().any(|q| !acked.contains(*q, msg_id))
            } else {
                !acked.contains(0, msg_id)
            };
            if is_live {
                live.push((loc.offset, loc.len));
                kept.insert(msg_id);
            }
        }
    })?;
    drop(acked);
    let before = fs::metadata(&seg)?.len();
    let file = File::open(&seg)?;
    let mut out = Vec::new();
    // (offset in the file as it is, offset in the new file)
    let mut moved: Vec<(u32, u32)> = Vec::with_capacity(live.len());
    for (offset, len) in live {
        moved.push((offset, out.len() as u32));
        let at = out.len();
        out.resize(at + len as usize, 0);
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut out[at..], offset as u64)?;
    }
    drop(file);
    let tmp_seg = with_suffix(&seg, ".compact");
    write_synced(&tmp_seg, &out)?;
    let tmp_acks = with_suffix(&acks, ".compact");
    {
        // Acks may have been appended since they were read: take them all now,
        // and keep appends out until the file is replaced.
        let _io = log.acks_io.lock();
        let mut ack_out = Vec::new();
        let mut by_queue: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
        super::log::read_records(&acks, n, false, |rec, _| {
            if let Record::Ack { queue, msg_ids } = rec {
                for id in msg_ids {
                    if kept.contains(&id) {
                        by_queue.entry(queue).or_default().push(id);
                    }
                }
            }
        })?;
        for (q, ids) in by_queue {
            record::encode_ack(&mut ack_out, q, &ids);
        }
        write_synced(&tmp_acks, &ack_out)?;
        // Readers opening the segment must see the new file and its offset map
        // together: both change under the readers lock.
        let mut readers = log.readers.lock();
        fs::rename(&tmp_seg, &seg)?;
        fs::rename(&tmp_acks, &acks)?;
        File::open(&log.dir)?.sync_all()?;
        let remap = compose(readers.get(&n).and_then(|r| r.remap.clone()), &moved);
        readers.insert(
            n,
            SegmentReader {
                file: Arc::new(File::open(&seg)?),
                remap: Some(Arc::new(remap)),
            },
        );
    }
    Ok((before, out.len() as u64, kept.len()))
}

/// The offset map after a rewrite that moved records per `moved` (file offset
/// before → after), given the map already in force (original → file offset).
fn compose(previous: Option<Arc<Vec<(u32, u32)>>>, moved: &[(u32, u32)]) -> Vec<(u32, u32)> {
    match previous {
        None => moved.to_vec(),
        Some(prev) => {
            let mut out: Vec<(u32, u32)> = prev
                .iter()
                .filter_map(|&(orig, cur)| {
                    moved
                        .binary_search_by_key(&cur, |&(from, _)| from)
                        .ok()
                        .map(|i| (orig, moved[i].1))
                })
                .collect();
            out.sort_unstable();
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_follows_two_rewrites() {
        let first = vec![(0, 0), (100, 40), (300, 80)];
        let second = vec![(40, 0), (80, 20)];
        assert_eq!(
            compose(Some(Arc::new(first)), &second),
            vec![(100, 0), (300, 20)]
        );
        assert_eq!(compose(None, &second), second);
    }

    #[test]
    fn acked_tells_neighbouring_records_apart() {
        let mut a = Acked::new(4096);
        for (q, id) in [
            (0, 0),
            (0, 12),
            (0, 4100),
            (0, 1 << 40),
            (7, 3),
            (7, 1),
            (9, 3),
        ] {
            a.insert(q, id);
        }
        a.seal();
        for (q, id) in [
            (0, 0),
            (0, 12),
            (0, 4100),
            (0, 1 << 40),
            (7, 3),
            (7, 1),
            (9, 3),
        ] {
            assert!(a.contains(q, id), "{q} {id}");
        }
        for (q, id) in [(0, 24), (0, 4112), (7, 2), (9, 1), (8, 3)] {
            assert!(!a.contains(q, id), "{q} {id}");
        }
    }

    #[test]
    fn sparse_threshold() {
        assert!(is_sparse(1, 8));
        assert!(!is_sparse(2, 8));
        assert!(is_sparse(0, 0));
    }
}
