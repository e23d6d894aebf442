//! Server-side stream filtering, as RabbitMQ 3.13 offers it over AMQP 0-9-1.
//!
//! A publisher tags a message with an `x-stream-filter-value` header (a
//! string); a consumer asks for one or more values with the `x-stream-filter`
//! argument (a string or an array of strings), and for untagged messages too
//! with `x-stream-match-unfiltered: true`.
//!
//! Two stages, as in RabbitMQ: every block of the stream's index (the records
//! between two index points, about 1 MiB) has a summary, a Bloom filter of the
//! values in it (`x-stream-filter-size-bytes`, 16 by default) plus whether it
//! holds untagged messages, so a filtering consumer skips blocks that cannot
//! hold what it wants without reading them. RabbitMQ stops there (its Bloom
//! filter lets other values through, and clients must filter again); Warren
//! then checks each message's value, so a consumer gets exactly the messages
//! it asked for (client-side filtering still works, it just finds nothing to
//! drop).

use crate::properties::{BasicProperties, RawProperties};
use crate::table::{FieldTable, FieldValue};
use bytes::Bytes;

/// The publish header that tags a message.
pub const VALUE_HEADER: &str = "x-stream-filter-value";
/// The consumer argument: a string or an array of strings.
pub const FILTER_ARG: &str = "x-stream-filter";
/// The consumer argument: also deliver messages without a value.
pub const MATCH_UNFILTERED_ARG: &str = "x-stream-match-unfiltered";
/// The queue argument: bytes of each block's Bloom filter (RabbitMQ: 16..=255).
pub const SIZE_ARG: &str = "x-stream-filter-size-bytes";
pub const DEFAULT_SIZE: usize = 16;
pub const MIN_SIZE: usize = 16;
pub const MAX_SIZE: usize = 255;

/// Block summary flag: the block holds messages without a filter value.
pub const HAS_UNFILTERED: u8 = 1;
/// Block summary flag: the block holds messages with a filter value.
pub const HAS_FILTERED: u8 = 2;

/// Bits set per value in a Bloom filter.
const HASHES: u64 = 3;

/// What a filtering consumer asked for.
#[derive(Debug, Clone)]
pub struct Filter {
    values: Vec<Bytes>,
    hashes: Vec<u64>,
    match_unfiltered: bool,
}

impl Filter {
    /// The consumer's filter from its arguments; None when it asked for no
    /// values (it gets every message, as in RabbitMQ).
    pub fn from_args(args: &FieldTable) -> Option<Filter> {
        let values: Vec<Bytes> = match args.get(FILTER_ARG)? {
            FieldValue::LongStr(s) => vec![s.clone()],
            FieldValue::Array(items) => items
                .iter()
                .filter_map(|v| match v {
                    FieldValue::LongStr(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => return None,
        };
        if values.is_empty() {
            return None;
        }
        let match_unfiltered =
            matches!(args.get(MATCH_UNFILTERED_ARG), Some(FieldValue::Bool(true)));
        Some(Filter {
            hashes: values.iter().map(|v| hash(v)).collect(),
            values,
            match_unfiltered,
        })
    }

    /// Whether a message with this filter value (None: untagged) is wanted.
    pub fn matches(&self, value: Option<&[u8]>) -> bool {
        match value {
            None => self.match_unfiltered,
            Some(v) => self.values.iter().any(|w| &w[..] == v),
        }
    }

    /// Whether a block with this summary ([`Summary`]) may hold a wanted
    /// message.
    pub fn may_match(&self, summary: &[u8]) -> bool {
        let Some((&flags, bloom)) = summary.split_first() else {
            return true;
        };
        (self.match_unfiltered && flags & HAS_UNFILTERED != 0)
            || (flags & HAS_FILTERED != 0 && self.hashes.iter().any(|&h| contains(bloom, h)))
    }
}

/// A message's filter value, from its raw content-header properties.
pub fn value_of(properties: &Bytes) -> Option<Bytes> {
    if !RawProperties::has_headers(properties) {
        return None;
    }
    match BasicProperties::decode(properties)
        .ok()?
        .headers?
        .get(VALUE_HEADER)?
    {
        FieldValue::LongStr(s) => Some(s.clone()),
        _ => None,
    }
}

/// The hash a value is filed under (blocks are rebuilt at startup, never
/// stored, so the function is free to change between versions).
pub fn hash(value: &[u8]) -> u64 {
    // FNV-1a, then a final mix so that the bit positions below spread well.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in value {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

fn bits(bloom_len: usize, h: u64) -> impl Iterator<Item = usize> {
    let n = (bloom_len as u64 * 8).max(1);
    let (h1, h2) = (h, (h >> 32) | 1);
    (0..HASHES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % n) as usize)
}

fn contains(bloom: &[u8], h: u64) -> bool {
    bits(bloom.len(), h).all(|b| bloom[b / 8] & (1 << (b % 8)) != 0)
}

/// A block's summary: a flags byte, then the Bloom filter.
pub struct Summary;

impl Summary {
    /// Note a record with this value hash (None: untagged) in `summary`.
    pub fn add(summary: &mut [u8], value: Option<u64>) {
        let Some((flags, bloom)) = summary.split_first_mut() else {
            return;
        };
        match value {
            None => *flags |= HAS_UNFILTERED,
            Some(h) => {
                *flags |= HAS_FILTERED;
                for b in bits(bloom.len(), h) {
                    bloom[b / 8] |= 1 << (b % 8);
                }
            }
        }
    }
}

/// `x-stream-filter-size-bytes` from the queue's arguments, clamped to what
/// RabbitMQ allows.
pub fn size_from_args(args: &FieldTable) -> usize {
    args.get(SIZE_ARG)
        .and_then(|v| v.as_i64())
        .map_or(DEFAULT_SIZE, |n| {
            n.clamp(MIN_SIZE as i64, MAX_SIZE as i64) as usize
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(values: &[&str], unfiltered: bool) -> Filter {
        let mut t = FieldTable::new();
        t.insert(
            FILTER_ARG,
            FieldValue::Array(values.iter().map(FieldValue::string).collect()),
        );
        t.insert(MATCH_UNFILTERED_ARG, FieldValue::Bool(unfiltered));
        Filter::from_args(&t).expect("a filter")
    }

    #[test]
    fn blocks_and_messages() {
        let f = filter(&["emea", "apac"], false);
        assert!(f.matches(Some(b"emea")) && !f.matches(Some(b"amer")) && !f.matches(None));
        let mut s = vec![0u8; 1 + DEFAULT_SIZE];
        assert!(!f.may_match(&s));
        Summary::add(&mut s, None);
        assert!(!f.may_match(&s));
        assert!(filter(&["x"], true).may_match(&s));
        Summary::add(&mut s, Some(hash(b"amer")));
        Summary::add(&mut s, Some(hash(b"apac")));
        assert!(f.may_match(&s));
        let mut t = FieldTable::new();
        t.insert(FILTER_ARG, FieldValue::string("a"));
        assert!(Filter::from_args(&t).is_some_and(|f| f.matches(Some(b"a"))));
        assert!(Filter::from_args(&FieldTable::new()).is_none());
    }
}
