//! What a persistent session keeps durably besides its queues: the incoming
//! QoS 2 packet ids awaiting PUBREL (exactly once across a restart) and its
//! shared subscriptions (their queues belong to the group, not the session).
//!
//! Stored as records in the retained-message file (`retained.rs`), so they
//! share its group commit and tickets: a PUBREC waits for the record holding
//! its packet id exactly as a retained publish's ack waits for its message.
//! Each record is the session's whole state (small: at most Receive Maximum
//! ids); the last one wins, an empty one deletes.

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
    pub shared: Vec<SharedSub>,
}

impl SessionState {
    pub fn is_empty(&self) -> bool {
        self.incoming_qos2.is_empty() && self.shared.is_empty()
    }
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
pub fn encode(vhost: &str, client_id: &[u8], s: &SessionState) -> BytesMut {
    let mut p = BytesMut::new();
    p.put_u16(TAG);
    p.put_u16(vhost.len() as u16);
    p.put_slice(vhost.as_bytes());
    p.put_u16(client_id.len() as u16);
    p.put_slice(client_id);
    p.put_u16(s.incoming_qos2.len() as u16);
    for &id in &s.incoming_qos2 {
        p.put_u16(id);
    }
    p.put_u16(s.shared.len() as u16);
    for (filter, options, id) in &s.shared {
        p.put_u16(filter.len() as u16);
        p.put_slice(filter);
        p.put_u8(options.to_byte());
        p.put_u32(id.unwrap_or(0));
    }
    p
}

/// A record's payload (after the tag) → (vhost, client id, state).
pub fn decode(mut b: Bytes) -> Option<(String, Bytes, SessionState)> {
    let take = |b: &mut Bytes| -> Option<Bytes> {
        if b.remaining() < 2 {
            return None;
        }
        let n = b.get_u16() as usize;
        (b.remaining() >= n).then(|| b.split_to(n))
    };
    let vhost = String::from_utf8(take(&mut b)?.to_vec()).ok()?;
    let client = take(&mut b)?;
    let mut s = SessionState::default();
    if b.remaining() < 2 {
        return None;
    }
    for _ in 0..b.get_u16() {
        if b.remaining() < 2 {
            return None;
        }
        s.incoming_qos2.insert(b.get_u16());
    }
    if b.remaining() < 2 {
        return None;
    }
    for _ in 0..b.get_u16() {
        let filter = take(&mut b)?;
        if b.remaining() < 5 {
            return None;
        }
        let options = options_from_byte(b.get_u8());
        let id = b.get_u32();
        s.shared.push((filter, options, (id != 0).then_some(id)));
    }
    Some((vhost, client, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut s = SessionState::default();
        s.incoming_qos2.extend([1, 65535]);
        s.shared.push((
            Bytes::from_static(b"$share/g/a/+"),
            SubscriptionOptions::qos(QoS::ExactlyOnce),
            Some(7),
        ));
        let mut rec = encode("/", b"client", &s).freeze();
        assert_eq!(rec.get_u16(), TAG);
        let (v, c, back) = decode(rec).unwrap();
        assert_eq!((v.as_str(), &c[..]), ("/", &b"client"[..]));
        assert_eq!(back, s);
    }
}
