//! What a persistent session keeps durably besides its queues: the QoS 2
//! packet ids of unfinished exchanges in both directions (incoming: awaiting
//! PUBREL; outgoing: PUBREC'd, awaiting PUBCOMP), its shared subscriptions
//! (their queues belong to the group, not the session) and, for an MQTT 5
//! session expiry, when it ends.
//!
//! Stored as records in the retained-message file (`retained.rs`), so they
//! share its group commit and tickets: a PUBREC waits for the record holding
//! its packet id exactly as a retained publish's ack waits for its message.
//! A record is one [`Change`] (a packet id is two bytes, not the whole set:
//! a window of QoS 2 publishes costs a record each, not the window squared);
//! loading replays them, compaction writes what is live.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::HashSet;

use crate::packet::{QoS, SubscriptionOptions};

/// Marks a session-state record: where a retained record has its vhost
/// name's length, which never reaches this.
pub const TAG: u16 = 0xFFFF;

/// One shared subscription: the full `$share/…` filter, options, identifier.
pub type SharedSub = (Bytes, SubscriptionOptions, Option<u32>);

/// A persistent session's durable state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SessionState {
    pub incoming_qos2: HashSet<u16>,
    /// Outgoing QoS 2 ids the client PUBREC'd: it gets their PUBREL again.
    pub released: HashSet<u16>,
    pub shared: Vec<SharedSub>,
    pub expiry: Option<Expiry>,
}

/// When a session with an MQTT 5 session expiry interval ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Connected: it ends this long (ms) after its connection closes (also
    /// when that close is a broker crash: the interval counts from the load).
    Connected(u64),
    /// Disconnected: it ends at this time (ms since the epoch).
    At(u64),
}

impl SessionState {
    pub fn is_empty(&self) -> bool {
        self.incoming_qos2.is_empty()
            && self.released.is_empty()
            && self.shared.is_empty()
            && self.expiry.is_none()
    }

    /// Whether it holds more than its expiry: unfinished QoS 2 exchanges or
    /// shared subscriptions (a session to resume even without queues).
    pub fn has_exchanges_or_shared(&self) -> bool {
        !(self.incoming_qos2.is_empty() && self.released.is_empty() && self.shared.is_empty())
    }

    /// Whether the session has ended by `now` (ms since the epoch).
    pub fn expired(&self, now: u64) -> bool {
        matches!(self.expiry, Some(Expiry::At(t)) if t <= now)
    }

    /// Apply `change`; returns whether anything changed.
    pub fn apply(&mut self, change: &Change) -> bool {
        match change {
            Change::Received(id) => self.incoming_qos2.insert(*id),
            Change::Released(id) => self.incoming_qos2.remove(id),
            Change::OutReceived(id) => self.released.insert(*id),
            Change::OutCompleted(id) => self.released.remove(id),
            Change::Expiry(e) => {
                let changed = self.expiry != *e;
                self.expiry = *e;
                changed
            }
            Change::Shared(list) => {
                let changed = self.shared != *list;
                self.shared = list.clone();
                changed
            }
            Change::Forget => {
                let changed = !self.is_empty();
                *self = SessionState::default();
                changed
            }
        }
    }

    /// The changes that rebuild this state (compaction).
    pub fn changes(&self) -> impl Iterator<Item = Change> + '_ {
        (!self.shared.is_empty())
            .then(|| Change::Shared(self.shared.clone()))
            .into_iter()
            .chain(self.incoming_qos2.iter().map(|&id| Change::Received(id)))
            .chain(self.released.iter().map(|&id| Change::OutReceived(id)))
            .chain(self.expiry.map(|e| Change::Expiry(Some(e))))
    }
}

/// One record: a change to a session's durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A QoS 2 PUBLISH was routed: its id awaits PUBREL.
    Received(u16),
    /// PUBREL: the exchange is over.
    Released(u16),
    /// The session's shared subscriptions now.
    Shared(Vec<SharedSub>),
    /// Clean start: the session is gone.
    Forget,
    /// The client PUBREC'd an outgoing QoS 2 delivery: PUBREL it (again).
    OutReceived(u16),
    /// PUBCOMP: the outgoing exchange is over.
    OutCompleted(u16),
    /// The session's end (None: no expiry, or no longer any).
    Expiry(Option<Expiry>),
}

pub fn options_from_byte(byte: u8) -> SubscriptionOptions {
    SubscriptionOptions {
        qos: QoS::from_u8(byte & 3).unwrap_or(QoS::AtLeastOnce),
        no_local: byte & 4 != 0,
        retain_as_published: byte & 8 != 0,
        retain_handling: (byte >> 4) & 3,
    }
}

/// The record's payload (framing and checksum are the file's).
pub fn encode(vhost: &str, client_id: &[u8], change: &Change) -> BytesMut {
    let mut p = BytesMut::new();
    p.put_u16(TAG);
    p.put_u16(vhost.len() as u16);
    p.put_slice(vhost.as_bytes());
    p.put_u16(client_id.len() as u16);
    p.put_slice(client_id);
    match change {
        Change::Received(id) => {
            p.put_u8(1);
            p.put_u16(*id);
        }
        Change::Released(id) => {
            p.put_u8(2);
            p.put_u16(*id);
        }
        Change::Shared(list) => {
            p.put_u8(3);
            p.put_u16(list.len() as u16);
            for (filter, options, id) in list {
                p.put_u16(filter.len() as u16);
                p.put_slice(filter);
                p.put_u8(options.to_byte());
                p.put_u32(id.unwrap_or(0));
            }
        }
        Change::Forget => p.put_u8(4),
        Change::OutReceived(id) => {
            p.put_u8(5);
            p.put_u16(*id);
        }
        Change::OutCompleted(id) => {
            p.put_u8(6);
            p.put_u16(*id);
        }
        Change::Expiry(e) => {
            p.put_u8(7);
            let (kind, value) = match e {
                None => (0, 0),
                Some(Expiry::Connected(ms)) => (1, *ms),
                Some(Expiry::At(t)) => (2, *t),
            };
            p.put_u8(kind);
            p.put_u64(value);
        }
    }
    p
}

/// A record's payload (after the tag) → (vhost, client id, change).
pub fn decode(mut b: Bytes) -> Option<(String, Bytes, Change)> {
    let take = |b: &mut Bytes| -> Option<Bytes> {
        if b.remaining() < 2 {
            return None;
        }
        let n = b.get_u16() as usize;
        (b.remaining() >= n).then(|| b.split_to(n))
    };
    let vhost = String::from_utf8(take(&mut b)?.to_vec()).ok()?;
    let client = take(&mut b)?;
    if b.remaining() < 1 {
        return None;
    }
    let change = match b.get_u8() {
        k @ (1 | 2 | 5 | 6) => {
            if b.remaining() < 2 {
                return None;
            }
            let id = b.get_u16();
            match k {
                1 => Change::Received(id),
                2 => Change::Released(id),
                5 => Change::OutReceived(id),
                _ => Change::OutCompleted(id),
            }
        }
        7 => {
            if b.remaining() < 9 {
                return None;
            }
            let kind = b.get_u8();
            let value = b.get_u64();
            Change::Expiry(match kind {
                0 => None,
                1 => Some(Expiry::Connected(value)),
                2 => Some(Expiry::At(value)),
                _ => return None,
            })
        }
        3 => {
            if b.remaining() < 2 {
                return None;
            }
            let mut list = Vec::new();
            for _ in 0..b.get_u16() {
                let filter = take(&mut b)?;
                if b.remaining() < 5 {
                    return None;
                }
                let options = options_from_byte(b.get_u8());
                let id = b.get_u32();
                list.push((filter, options, (id != 0).then_some(id)));
            }
            Change::Shared(list)
        }
        4 => Change::Forget,
        _ => return None,
    };
    Some((vhost, client, change))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let shared = vec![(
            Bytes::from_static(b"$share/g/a/+"),
            SubscriptionOptions::qos(QoS::ExactlyOnce),
            Some(7),
        )];
        for change in [
            Change::Received(65535),
            Change::Released(1),
            Change::Shared(shared.clone()),
            Change::Forget,
            Change::OutReceived(9),
            Change::OutCompleted(9),
            Change::Expiry(None),
            Change::Expiry(Some(Expiry::Connected(600_000))),
            Change::Expiry(Some(Expiry::At(1 << 40))),
        ] {
            let mut rec = encode("/", b"client", &change).freeze();
            assert_eq!(rec.get_u16(), TAG);
            let (v, c, back) = decode(rec).unwrap();
            assert_eq!((v.as_str(), &c[..]), ("/", &b"client"[..]));
            assert_eq!(back, change);
        }
        let mut s = SessionState::default();
        assert!(s.apply(&Change::Received(3)));
        assert!(!s.apply(&Change::Received(3)));
        assert!(s.apply(&Change::Shared(shared)));
        assert!(s.apply(&Change::OutReceived(4)));
        assert!(s.apply(&Change::Expiry(Some(Expiry::At(10)))));
        assert!(s.expired(10) && !s.expired(9));
        let mut rebuilt = SessionState::default();
        for c in s.changes() {
            rebuilt.apply(&c);
        }
        assert_eq!(rebuilt, s);
        assert!(s.apply(&Change::Forget) && s.is_empty());
    }
}
