//! The message log's record format.
//!
//! Every record is framed as `[len: u32 LE][crc32c(payload): u32 LE][payload]`.
//! The checksum lets recovery tell a complete record from a torn or corrupted tail
//! after a crash: the first record that fails its check ends the readable log.
//!
//! Payloads:
//! - `Publish`: a message and the durable queues it was enqueued to. Written once
//!   per message however many queues it reaches (fanout stores the body once).
//! - `Ack`: messages of one queue that were acknowledged (or otherwise removed).
//!   For a stream, an ack `[X]` in a segment's ack file means "this stream's
//!   records in this segment below offset X were dropped by retention".
//! - `Stream`: one message of one stream queue at its stream offset. Its
//!   properties already carry the `x-stream-offset` header, so reading it back
//!   for a consumer needs no re-encoding.

use crate::shortstr::ShortStr;
use bytes::{Buf, BufMut, Bytes};

pub const HEADER_LEN: usize = 8;
const PUBLISH: u8 = 1;
const ACK: u8 = 2;
const STREAM: u8 = 3;

/// Flag bit: the message is persistent and must be recovered after a restart.
pub const FLAG_PERSISTENT: u8 = 1;

/// A decoded record. Message parts are slices of the read buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Publish {
        msg_id: u64,
        flags: u8,
        /// When it was published (ms since the epoch): TTLs count from here.
        published_at: u64,
        queues: Vec<u64>,
        exchange: ShortStr,
        routing_key: ShortStr,
        properties: Bytes,
        body: Bytes,
    },
    Ack {
        queue: u64,
        msg_ids: Vec<u64>,
    },
    Stream(StreamRecord),
}

/// A stream queue's message as stored (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    pub stream: u64,
    pub offset: u64,
    /// [`STREAM_SEGMENT_START`], [`STREAM_CHUNK_START`], [`STREAM_FILTERED`].
    pub flags: u8,
    /// When it was appended (ms since the epoch): timestamp offsets and x-max-age.
    pub timestamp: u64,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub properties: Bytes,
    pub body: Bytes,
}

/// Stream record flag: the first record of a stream segment (retention unit),
/// so recovery rebuilds the same segments.
pub const STREAM_SEGMENT_START: u8 = 1;
/// Stream record flag: the first record of a write batch (RabbitMQ's chunk:
/// `x-stream-offset: last` starts at the last one).
pub const STREAM_CHUNK_START: u8 = 2;
/// Stream record flag: the message has an `x-stream-filter-value` header
/// (recovery reads the value back only for these).
pub const STREAM_FILTERED: u8 = 4;
/// An ack record `[TRUNCATED, X]` under a stream's id: the stream's records in
/// this segment below offset X were dropped (no message id is ever this big).
pub const TRUNCATED: u64 = u64::MAX;

/// Append a framed stream record to `out`; returns the record's total length.
#[allow(clippy::too_many_arguments)]
pub fn encode_stream(
    out: &mut Vec<u8>,
    stream: u64,
    offset: u64,
    flags: u8,
    timestamp: u64,
    exchange: &[u8],
    routing_key: &[u8],
    properties: &[u8],
    body: &[u8],
) -> usize {
    let start = begin(out);
    out.put_u8(STREAM);
    out.put_u64_le(stream);
    out.put_u64_le(offset);
    out.put_u8(flags);
    out.put_u64_le(timestamp);
    put_message(out, exchange, routing_key, properties, body);
    finish(out, start)
}

/// Append a framed publish record to `out`; returns the record's total length.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish(
    out: &mut Vec<u8>,
    msg_id: u64,
    flags: u8,
    published_at: u64,
    queues: &[u64],
    exchange: &[u8],
    routing_key: &[u8],
    properties: &[u8],
    body: &[u8],
) -> usize {
    let start = begin(out);
    out.put_u8(PUBLISH);
    out.put_u64_le(msg_id);
    out.put_u8(flags);
    out.put_u64_le(published_at);
    out.put_u16_le(queues.len() as u16);
    for q in queues {
        out.put_u64_le(*q);
    }
    put_message(out, exchange, routing_key, properties, body);
    finish(out, start)
}

pub fn encode_ack(out: &mut Vec<u8>, queue: u64, msg_ids: &[u64]) -> usize {
    let start = begin(out);
    out.put_u8(ACK);
    out.put_u64_le(queue);
    out.put_u32_le(msg_ids.len() as u32);
    for id in msg_ids {
        out.put_u64_le(*id);
    }
    finish(out, start)
}

/// The message part shared by publish and stream records.
fn put_message(
    out: &mut Vec<u8>,
    exchange: &[u8],
    routing_key: &[u8],
    properties: &[u8],
    body: &[u8],
) {
    out.put_u8(exchange.len() as u8);
    out.put_slice(exchange);
    out.put_u8(routing_key.len() as u8);
    out.put_slice(routing_key);
    out.put_u32_le(properties.len() as u32);
    out.put_slice(properties);
    out.put_u32_le(body.len() as u32);
    out.put_slice(body);
}

/// Exchange, routing key, properties and body (see [`put_message`]).
type MessageParts = (ShortStr, ShortStr, Bytes, Bytes);

fn take_message(p: &mut Bytes) -> Option<MessageParts> {
    let elen = take_u8(p)? as usize;
    let exchange = ShortStr(take_bytes(p, elen)?);
    let rlen = take_u8(p)? as usize;
    let routing_key = ShortStr(take_bytes(p, rlen)?);
    let plen = take_u32(p)? as usize;
    let properties = take_bytes(p, plen)?;
    let blen = take_u32(p)? as usize;
    let body = take_bytes(p, blen)?;
    Some((exchange, routing_key, properties, body))
}

fn begin(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    start
}

fn finish(out: &mut [u8], start: usize) -> usize {
    let payload = &out[start + HEADER_LEN..];
    let len = payload.len() as u32;
    let crc = crc32c::crc32c(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    HEADER_LEN + len as usize
}

/// A publish record's message id ends this many bytes into the record: header,
/// kind byte, id.
pub const PUBLISH_ID_END: usize = HEADER_LEN + 1 + 8;

/// The message id of the publish record at the start of `buf`, without
/// decoding (or checksumming) the rest: for acks of records known to be whole.
pub fn peek_publish_id(buf: &[u8]) -> Option<u64> {
    if buf.len() < PUBLISH_ID_END || buf[HEADER_LEN] != PUBLISH {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&buf[HEADER_LEN + 1..PUBLISH_ID_END]);
    Some(u64::from_le_bytes(id))
}

/// Why a record could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Not enough bytes for the header or the payload: a torn write at the tail.
    Truncated,
    /// The checksum does not match: corrupted or torn.
    Checksum,
    /// The payload is not a valid record.
    Malformed,
}

/// Split one framed record off the front of `buf`.
pub fn read_record(buf: &mut Bytes) -> Result<Record, ReadError> {
    if buf.len() < HEADER_LEN {
        return Err(ReadError::Truncated);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 {
        // Zeroed space (preallocated or torn): not a record.
        return Err(ReadError::Truncated);
    }
    if buf.len() < HEADER_LEN + len {
        return Err(ReadError::Truncated);
    }
    if crc32c::crc32c(&buf[HEADER_LEN..HEADER_LEN + len]) != crc {
        return Err(ReadError::Checksum);
    }
    buf.advance(HEADER_LEN);
    let mut p = buf.split_to(len);
    decode_payload(&mut p).ok_or(ReadError::Malformed)
}

fn decode_payload(p: &mut Bytes) -> Option<Record> {
    let kind = take_u8(p)?;
    match kind {
        PUBLISH => {
            let msg_id = take_u64(p)?;
            let flags = take_u8(p)?;
            let published_at = take_u64(p)?;
            let n = take_u16(p)? as usize;
            let mut queues = Vec::with_capacity(n);
            for _ in 0..n {
                queues.push(take_u64(p)?);
            }
            let (exchange, routing_key, properties, body) = take_message(p)?;
            Some(Record::Publish {
                msg_id,
                flags,
                published_at,
                queues,
                exchange,
                routing_key,
                properties,
                body,
            })
        }
        ACK => {
            let queue = take_u64(p)?;
            let n = take_u32(p)? as usize;
            if p.remaining() < n.checked_mul(8)? {
                return None;
            }
            let msg_ids = (0..n).map(|_| p.get_u64_le()).collect();
            Some(Record::Ack { queue, msg_ids })
        }
        STREAM => {
            let stream = take_u64(p)?;
            let offset = take_u64(p)?;
            let flags = take_u8(p)?;
            let timestamp = take_u64(p)?;
            let (exchange, routing_key, properties, body) = take_message(p)?;
            Some(Record::Stream(StreamRecord {
                stream,
                offset,
                flags,
                timestamp,
                exchange,
                routing_key,
                properties,
                body,
            }))
        }
        _ => None,
    }
}

fn take_u8(p: &mut Bytes) -> Option<u8> {
    (p.remaining() >= 1).then(|| p.get_u8())
}
fn take_u16(p: &mut Bytes) -> Option<u16> {
    (p.remaining() >= 2).then(|| p.get_u16_le())
}
fn take_u32(p: &mut Bytes) -> Option<u32> {
    (p.remaining() >= 4).then(|| p.get_u32_le())
}
fn take_u64(p: &mut Bytes) -> Option<u64> {
    (p.remaining() >= 8).then(|| p.get_u64_le())
}
fn take_bytes(p: &mut Bytes, n: usize) -> Option<Bytes> {
    (p.remaining() >= n).then(|| p.split_to(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tail() {
        let mut out = Vec::new();
        encode_publish(
            &mut out,
            7,
            FLAG_PERSISTENT,
            1234,
            &[1, 2],
            b"ex",
            b"rk",
            b"\x80\x00",
            b"body",
        );
        encode_ack(&mut out, 1, &[7]);
        let full = Bytes::from(out.clone());
        let mut b = full.clone();
        assert!(matches!(
            read_record(&mut b),
            Ok(Record::Publish { msg_id: 7, .. })
        ));
        assert_eq!(
            read_record(&mut b),
            Ok(Record::Ack {
                queue: 1,
                msg_ids: vec![7]
            })
        );
        assert_eq!(read_record(&mut b), Err(ReadError::Truncated));
        // Every truncation of the log reads as a clean prefix then Truncated.
        for cut in 0..out.len() {
            let mut b = Bytes::copy_from_slice(&out[..cut]);
            while read_record(&mut b).is_ok() {}
        }
        let mut stream = Vec::new();
        encode_stream(&mut stream, 9, 42, 1, 5, b"", b"s", b"\x00\x00", b"hi");
        let mut b = Bytes::from(stream);
        match read_record(&mut b) {
            Ok(Record::Stream(r)) => {
                assert_eq!((r.stream, r.offset, &r.body[..]), (9, 42, &b"hi"[..]))
            }
            other => panic!("{:?}", other),
        }
        // A flipped bit is caught by the checksum.
        let mut bad = out.clone();
        bad[20] ^= 1;
        let mut b = Bytes::from(bad);
        assert_eq!(read_record(&mut b), Err(ReadError::Checksum));
    }
}
