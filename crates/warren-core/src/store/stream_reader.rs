//! Reading one stream's records back from the shared log, sequentially.
//!
//! A reader starts at an index point and scans forward with large `pread`s
//! ([`READ_SIZE`]), skipping other queues' records, so replaying old data is
//! a sequential read the page cache and read-ahead like. Record parts are
//! slices of the read buffer (no copy per message). A delivery keeps its
//! buffer alive only until it is written to the socket (what waits for the
//! client's ack keeps no content: [`crate::Queue::unacked_entry`]), and the
//! reader reuses a buffer once nothing sliced from it is left ([`POOL`]), so a
//! replaying reader's memory is a few buffers whatever the stream's size, and
//! it does not churn the allocator with a fresh 256 KiB buffer per read.

use super::log::MessageLog;
use super::record::{self, Record, StreamRecord};
use super::stream_index::Point;
use bytes::{Bytes, BytesMut};
use std::io;

/// Bytes read per `pread`.
pub const READ_SIZE: usize = 256 * 1024;

/// Buffers a reader keeps for reuse. Deliveries waiting in a connection's
/// outbound queue hold at most half a MiB of a stream (the outlet's stream
/// mark), so by the time a reader has filled this many, the oldest is usually
/// free again.
const POOL: usize = 4;

pub struct StreamReader {
    stream: u64,
    segment: u32,
    /// File position of the first byte of `buf`.
    pos: u64,
    /// Read, not yet parsed.
    buf: Bytes,
    /// The unused ends of earlier read buffers: each shares its allocation
    /// with the messages sliced from it, and can take the whole allocation
    /// back once they are gone (`BytesMut::try_reclaim`).
    pool: Vec<BytesMut>,
}

/// What the reader found.
pub enum Next {
    Record(StreamRecord),
    /// Read everything written so far in this segment.
    End,
    /// The segment is complete: continue at the stream's first point in a
    /// later log segment.
    SegmentDone(u32),
}

impl StreamReader {
    pub fn new(stream: u64, at: Point) -> StreamReader {
        StreamReader {
            stream,
            segment: at.segment,
            pos: at.pos as u64,
            buf: Bytes::new(),
            pool: Vec::new(),
        }
    }

    pub fn segment(&self) -> u32 {
        self.segment
    }

    /// The next record of this stream.
    pub fn next(&mut self, log: &MessageLog) -> io::Result<Next> {
        loop {
            if let Some(len) = whole_record(&self.buf) {
                let mut rec = self.buf.split_to(len);
                self.pos += len as u64;
                match record::read_record(&mut rec) {
                    Ok(Record::Stream(r)) if r.stream == self.stream => return Ok(Next::Record(r)),
                    Ok(_) => continue,
                    // Only a torn tail can fail, and only beyond what is durable
                    // (a stream delivers only durable offsets): stop here.
                    Err(_) => {
                        self.buf = Bytes::new();
                        return Ok(Next::End);
                    }
                }
            }
            // Sealed before the read: what the read returns is all there is.
            let sealed = log.is_sealed(self.segment);
            let have = self.buf.len();
            let want = READ_SIZE.max(have + record::HEADER_LEN + 1024);
            let mut fresh = self.buffer(want);
            fresh.extend_from_slice(&self.buf);
            fresh.resize(want, 0);
            let n =
                log.read_segment(self.segment, self.pos + have as u64, &mut fresh[have..want])?;
            fresh.truncate(have + n);
            self.buf = fresh.split().freeze();
            self.pool.push(fresh);
            if n > 0 {
                // A record bigger than the buffer: grow it on the next round.
                if whole_record(&self.buf).is_none() && self.buf.len() >= record::HEADER_LEN {
                    let need = record_len(&self.buf);
                    let mut bigger = BytesMut::zeroed(need);
                    let got = self.buf.len();
                    bigger[..got].copy_from_slice(&self.buf);
                    let k =
                        log.read_segment(self.segment, self.pos + got as u64, &mut bigger[got..])?;
                    bigger.truncate(got + k);
                    self.buf = bigger.freeze();
                    if whole_record(&self.buf).is_none() {
                        return Ok(Next::End);
                    }
                }
                continue;
            }
            // Caught up: a consumer at the end holds no buffers.
            self.pool.clear();
            if sealed {
                return Ok(Next::SegmentDone(self.segment));
            }
            return Ok(Next::End);
        }
    }

    /// An empty buffer with room for `want` bytes: a pooled one whose earlier
    /// messages are all gone, else a new one (the oldest pooled buffer is then
    /// let go: it is freed when its last message is).
    fn buffer(&mut self, want: usize) -> BytesMut {
        if let Some(i) = self.pool.iter_mut().position(|b| b.try_reclaim(want)) {
            return self.pool.remove(i);
        }
        if self.pool.len() >= POOL {
            self.pool.remove(0);
        }
        BytesMut::with_capacity(want)
    }
}

fn record_len(buf: &[u8]) -> usize {
    record::HEADER_LEN + u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize
}

/// The length of the framed record at the start of `buf`, if all of it is there.
fn whole_record(buf: &[u8]) -> Option<usize> {
    if buf.len() < record::HEADER_LEN {
        return None;
    }
    let len = record_len(buf);
    (buf.len() >= len && len > record::HEADER_LEN).then_some(len)
}
