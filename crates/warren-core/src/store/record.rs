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
/// The compact publish record (see [`encode_publish`]); `PUBLISH` records of
/// older logs are still read.
const PUBLISH2: u8 = 4;
/// The compact ack record: varint queue and count, ids as zigzag varint
/// deltas (acks come mostly in id order: a byte or two per message instead
/// of 8). `ACK` records of older logs are still read.
const ACK2: u8 = 5;
/// `PUBLISH2` with two more optional fields (see [`encode_publish`]):
/// [`NO_TIME`] and [`KEY_IS_QUEUE`]. `PUBLISH2` records are read by the
/// same code (their flags never have those bits).
const PUBLISH3: u8 = 6;
/// `PUBLISH3` flag bit: no publish time (a queue's own transient copy: its
/// expiry is in the queue's index entry, and it is never recovered).
const NO_TIME: u8 = 8;
/// `PUBLISH3` flag bit: exchange and routing key are not stored; the message
/// went through the default exchange to one queue, so its routing key is that
/// queue's name, and the queue reading it back fills it in (issue 16: the
/// routing key was the biggest part of a small message's record).
const KEY_IS_QUEUE: u8 = 16;
/// `PUBLISH2` flag bits beside [`FLAG_PERSISTENT`]: the properties are the
/// two most common encodings, and are not stored.
const PROPS_EMPTY: u8 = 2;
const PROPS_PERSISTENT_ONLY: u8 = 4;
/// Properties with no flag set...
const EMPTY_PROPERTIES: &[u8] = &[0x00, 0x00];
/// ...and with only `delivery_mode = 2`.
const PERSISTENT_ONLY_PROPERTIES: &[u8] = &[0x10, 0x00, 0x02];

/// Flag bit: the message is persistent and must be recovered after a restart.
pub const FLAG_PERSISTENT: u8 = 1;

/// A decoded record. Message parts are slices of the read buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Publish {
        msg_id: u64,
        flags: u8,
        /// When it was published (ms since the epoch): TTLs count from here.
        /// 0 for a queue's own transient copy (written without it).
        published_at: u64,
        queues: Vec<u64>,
        exchange: ShortStr,
        /// Empty when `key_is_queue`.
        routing_key: ShortStr,
        /// Published to the default exchange with the reading queue's name as
        /// routing key (not stored; see `KEY_IS_QUEUE`).
        key_is_queue: bool,
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
///
/// Compact (issue 16: disk use per message): `[PUBLISH3][flags]`, then
/// LEB128 varints for the message id, the publish time (unless `None`: flag
/// [`NO_TIME`]), the queue count and ids, the exchange and routing key as
/// length-prefixed bytes (unless `key_is_queue`: flag [`KEY_IS_QUEUE`]), the
/// properties as a varint length and bytes unless a flag says they are one of
/// the two usual encodings, and the body as the rest of the record (its length
/// is the frame's). A queue's own copy takes 15 bytes plus the body; the
/// first format took 54 plus exchange and routing key.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish(
    out: &mut Vec<u8>,
    msg_id: u64,
    flags: u8,
    published_at: Option<u64>,
    queues: &[u64],
    key: Option<(&[u8], &[u8])>,
    properties: &[u8],
    body: &[u8],
) -> usize {
    let start = begin(out);
    out.put_u8(PUBLISH3);
    let props_flag = match properties {
        EMPTY_PROPERTIES => PROPS_EMPTY,
        PERSISTENT_ONLY_PROPERTIES => PROPS_PERSISTENT_ONLY,
        _ => 0,
    };
    let time_flag = if published_at.is_none() { NO_TIME } else { 0 };
    let key_flag = if key.is_none() { KEY_IS_QUEUE } else { 0 };
    out.put_u8((flags & FLAG_PERSISTENT) | props_flag | time_flag | key_flag);
    put_varint(out, msg_id);
    if let Some(t) = published_at {
        put_varint(out, t);
    }
    put_varint(out, queues.len() as u64);
    for q in queues {
        put_varint(out, *q);
    }
    if let Some((exchange, routing_key)) = key {
        out.put_u8(exchange.len() as u8);
        out.put_slice(exchange);
        out.put_u8(routing_key.len() as u8);
        out.put_slice(routing_key);
    }
    if props_flag == 0 {
        put_varint(out, properties.len() as u64);
        out.put_slice(properties);
    }
    out.put_slice(body);
    finish(out, start)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.put_u8(v as u8 | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn take_varint(p: &mut Bytes) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = take_u8(p)?;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

pub fn encode_ack(out: &mut Vec<u8>, queue: u64, msg_ids: &[u64]) -> usize {
    let start = begin(out);
    out.put_u8(ACK2);
    put_varint(out, queue);
    put_varint(out, msg_ids.len() as u64);
    let mut prev = 0u64;
    for &id in msg_ids {
        let d = id.wrapping_sub(prev) as i64;
        put_varint(out, ((d << 1) ^ (d >> 63)) as u64);
        prev = id;
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

/// A publish record's message id ends at most this many bytes into the
/// record (header, kind byte, then the id: `PUBLISH`; or flags and a varint
/// id: `PUBLISH2`). Every publish record is at least this long.
pub const PUBLISH_ID_END: usize = HEADER_LEN + 2 + 10;

/// The message id of the publish record at the start of `buf`, without
/// decoding (or checksumming) the rest: for acks of records known to be whole.
pub fn peek_publish_id(buf: &[u8]) -> Option<u64> {
    match *buf.get(HEADER_LEN)? {
        PUBLISH => {
            let b = buf.get(HEADER_LEN + 1..HEADER_LEN + 9)?;
            let mut id = [0u8; 8];
            id.copy_from_slice(b);
            Some(u64::from_le_bytes(id))
        }
        PUBLISH2 | PUBLISH3 => {
            let rest = buf.get(HEADER_LEN + 2..)?;
            let mut b = Bytes::copy_from_slice(&rest[..rest.len().min(10)]);
            take_varint(&mut b)
        }
        _ => None,
    }
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
                key_is_queue: false,
                properties,
                body,
            })
        }
        PUBLISH2 | PUBLISH3 => {
            let flags = take_u8(p)?;
            if kind == PUBLISH2 && flags & (NO_TIME | KEY_IS_QUEUE) != 0 {
                return None;
            }
            let msg_id = take_varint(p)?;
            let published_at = if flags & NO_TIME != 0 {
                0
            } else {
                take_varint(p)?
            };
            let n = take_varint(p)? as usize;
            // Each id takes at least a byte: a bogus count fails here.
            if n > p.remaining() {
                return None;
            }
            let mut queues = Vec::with_capacity(n);
            for _ in 0..n {
                queues.push(take_varint(p)?);
            }
            let key_is_queue = flags & KEY_IS_QUEUE != 0;
            let (exchange, routing_key) = if key_is_queue {
                (ShortStr(Bytes::new()), ShortStr(Bytes::new()))
            } else {
                let elen = take_u8(p)? as usize;
                let exchange = ShortStr(take_bytes(p, elen)?);
                let rlen = take_u8(p)? as usize;
                (exchange, ShortStr(take_bytes(p, rlen)?))
            };
            let properties = if flags & PROPS_EMPTY != 0 {
                Bytes::from_static(EMPTY_PROPERTIES)
            } else if flags & PROPS_PERSISTENT_ONLY != 0 {
                Bytes::from_static(PERSISTENT_ONLY_PROPERTIES)
            } else {
                let plen = usize::try_from(take_varint(p)?).ok()?;
                take_bytes(p, plen)?
            };
            let body = p.split_off(0);
            Some(Record::Publish {
                msg_id,
                flags: flags & FLAG_PERSISTENT,
                published_at,
                queues,
                exchange,
                routing_key,
                key_is_queue,
                properties,
                body,
            })
        }
        ACK2 => {
            let queue = take_varint(p)?;
            let n = usize::try_from(take_varint(p)?).ok()?;
            if n > p.remaining() {
                return None;
            }
            let mut prev = 0u64;
            let mut msg_ids = Vec::with_capacity(n);
            for _ in 0..n {
                let z = take_varint(p)?;
                let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
                prev = prev.wrapping_add(d as u64);
                msg_ids.push(prev);
            }
            Some(Record::Ack { queue, msg_ids })
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
            Some(1234),
            &[1, 2],
            Some((b"ex", b"rk")),
            b"\x80\x00",
            b"body",
        );
        encode_ack(&mut out, 1, &[7]);
        let full = Bytes::from(out.clone());
        // The usual properties are flagged, not stored; ids of any order and
        // the stream truncation marker survive the delta encoding.
        let mut more = Vec::new();
        for props in [&b"\x00\x00"[..], b"\x10\x00\x02", b"\x10\x00\x01"] {
            encode_publish(
                &mut more,
                1 << 40,
                1,
                Some(1 << 41),
                &[3, 1 << 33],
                Some((b"", b"k")),
                props,
                b"",
            );
        }
        let ids = vec![5, 3, 900_000, TRUNCATED, 0];
        encode_ack(&mut more, 9, &ids);
        let mut b = Bytes::from(more);
        for props in [&b"\x00\x00"[..], b"\x10\x00\x02", b"\x10\x00\x01"] {
            match read_record(&mut b) {
                Ok(Record::Publish {
                    msg_id,
                    flags,
                    published_at,
                    queues,
                    properties,
                    body,
                    ..
                }) => {
                    assert_eq!((msg_id, flags, published_at), (1 << 40, 1, 1 << 41));
                    assert_eq!(queues, vec![3, 1 << 33]);
                    assert_eq!(&properties[..], props);
                    assert!(body.is_empty());
                }
                other => panic!("{:?}", other),
            }
        }
        assert_eq!(
            read_record(&mut b),
            Ok(Record::Ack {
                queue: 9,
                msg_ids: ids
            })
        );
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

    /// A queue's own transient copy without time or key: 15 bytes plus the
    /// body; decoded with the key left for the queue to fill in. A `PUBLISH2`
    /// record carrying the new flag bits is malformed.
    #[test]
    fn own_copy_without_time_or_key() {
        let mut out = Vec::new();
        let len = encode_publish(&mut out, 1 << 24, 0, None, &[], None, b"\x00\x00", &[7; 16]);
        assert_eq!(len, 15 + 16);
        let mut b = Bytes::from(out.clone());
        match read_record(&mut b) {
            Ok(Record::Publish {
                msg_id,
                published_at,
                queues,
                exchange,
                routing_key,
                key_is_queue,
                properties,
                body,
                ..
            }) => {
                assert_eq!((msg_id, published_at, queues.len()), (1 << 24, 0, 0));
                assert!(key_is_queue && exchange.is_empty() && routing_key.is_empty());
                assert_eq!(
                    (&properties[..], &body[..]),
                    (&b"\x00\x00"[..], &[7u8; 16][..])
                );
            }
            other => panic!("{:?}", other),
        }
        assert_eq!(peek_publish_id(&out), Some(1 << 24));
        let mut old = out.clone();
        old[HEADER_LEN] = PUBLISH2;
        let crc = crc32c::crc32c(&old[HEADER_LEN..]);
        old[4..8].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            read_record(&mut Bytes::from(old)),
            Err(ReadError::Malformed)
        );
    }
}
