//! The WAL's record codec.
//!
//! Every record is `len u32 | crc32c u32 | group u64 | kind u8 | payload`,
//! little-endian. `len` is the payload length; the CRC covers group, kind
//! and payload, so a torn write (a record whose tail never reached the disk)
//! or a flipped bit fails the check and recovery cuts the log there. The
//! group id lets one file carry the records of many Raft groups.

use bytes::{BufMut, Bytes};

/// Bytes before the payload.
pub const HEADER_LEN: usize = 4 + 4 + 8 + 1;

/// Largest payload a record may carry. A length field above it is treated as
/// corruption, so a garbage length never makes recovery allocate gigabytes.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// What a record says about its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// `index u64 | encoded entry`: the entry at `index`; any entry at or
    /// after `index` that the group had before is replaced.
    Entry = 1,
    /// The encoded vote.
    Vote = 2,
    /// `index u64`: entries at and after `index` are gone.
    Truncate = 3,
    /// `index u64 | encoded LogId`: entries up to and including `index` are
    /// gone (snapshotted); the LogId is the group's last purged log id.
    Purge = 4,
    /// The encoded committed `Option<LogId>`.
    Committed = 5,
    /// The group was deleted: forget everything about it.
    DropGroup = 6,
}

impl Kind {
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Entry,
            2 => Kind::Vote,
            3 => Kind::Truncate,
            4 => Kind::Purge,
            5 => Kind::Committed,
            6 => Kind::DropGroup,
            _ => return None,
        })
    }
}

/// A decoded record borrowing its payload from the buffer it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub group: u64,
    pub kind: Kind,
    pub payload: &'a [u8],
}

impl RecordRef<'_> {
    /// Bytes this record takes on disk.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }
}

/// Why a buffer holds no valid record at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header or the payload it announces: a torn tail
    /// (or simply the end of the data).
    Incomplete,
    /// Length out of range, CRC mismatch or unknown kind.
    Corrupt,
}

fn crc(group: u64, kind: u8, payload: &[u8]) -> u32 {
    let mut c = crc32c::crc32c(&group.to_le_bytes());
    c = crc32c::crc32c_append(c, &[kind]);
    crc32c::crc32c_append(c, payload)
}

/// Appends one record to `out`.
pub fn encode(out: &mut Vec<u8>, group: u64, kind: Kind, payload: &[u8]) {
    out.reserve(HEADER_LEN + payload.len());
    out.put_u32_le(payload.len() as u32);
    out.put_u32_le(crc(group, kind as u8, payload));
    out.put_u64_le(group);
    out.put_u8(kind as u8);
    out.extend_from_slice(payload);
}

/// Decodes the record at the start of `buf`.
pub fn decode(buf: &[u8]) -> Result<RecordRef<'_>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::Incomplete);
    }
    let len = read_u32(&buf[0..4]) as usize;
    if len > MAX_PAYLOAD {
        return Err(DecodeError::Corrupt);
    }
    if buf.len() < HEADER_LEN + len {
        return Err(DecodeError::Incomplete);
    }
    let want = read_u32(&buf[4..8]);
    let group = read_u64(&buf[8..16]);
    let kind_byte = buf[16];
    let payload = &buf[HEADER_LEN..HEADER_LEN + len];
    if crc(group, kind_byte, payload) != want {
        return Err(DecodeError::Corrupt);
    }
    let kind = Kind::from_u8(kind_byte).ok_or(DecodeError::Corrupt)?;
    Ok(RecordRef {
        group,
        kind,
        payload,
    })
}

/// Splits `buf` into its valid records; returns them with their offsets and
/// the length of the valid prefix (where a torn or corrupt tail begins).
pub fn scan(buf: &[u8]) -> (Vec<(usize, RecordRef<'_>)>, usize) {
    let mut out = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        match decode(&buf[off..]) {
            Ok(r) => {
                out.push((off, r));
                off += r.encoded_len();
            }
            Err(_) => break,
        }
    }
    (out, off)
}

pub fn read_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

pub fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// `index u64` followed by `rest`: the payload of Entry and Purge records.
pub fn indexed_payload(index: u64, rest: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(8 + rest.len());
    v.put_u64_le(index);
    v.extend_from_slice(rest);
    Bytes::from(v)
}

/// The index at the start of an Entry, Truncate or Purge payload.
pub fn payload_index(payload: &[u8]) -> Option<u64> {
    (payload.len() >= 8).then(|| read_u64(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tail() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, Kind::Entry, b"hello");
        encode(&mut buf, 9, Kind::Vote, b"");
        let full = buf.len();
        encode(&mut buf, 7, Kind::Entry, b"world");
        // Tear the last record anywhere: the first two survive.
        for cut in full..buf.len() {
            let (recs, good) = scan(&buf[..cut]);
            assert_eq!(recs.len(), 2);
            assert_eq!(good, full);
        }
        let (recs, good) = scan(&buf);
        assert_eq!(good, buf.len());
        assert_eq!(recs[2].1.payload, b"world");
        assert_eq!(recs[1].1.group, 9);
    }

    #[test]
    fn flipped_bit_is_corrupt() {
        let mut buf = Vec::new();
        encode(&mut buf, 1, Kind::Entry, b"payload");
        for i in 4..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x10;
            assert_eq!(decode(&b), Err(DecodeError::Corrupt), "byte {i}");
        }
    }

    #[test]
    fn huge_length_is_corrupt_not_an_allocation() {
        let mut b = vec![0xff; HEADER_LEN];
        b[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&b), Err(DecodeError::Corrupt));
    }
}
