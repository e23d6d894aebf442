//! Encoding packets for a given protocol version. Each packet's body size is
//! computed first, so the fixed header is written once and the buffer grows
//! once; a PUBLISH's payload is copied exactly once, into the output buffer.

use bytes::{BufMut, BytesMut};

use crate::packet::*;
use crate::properties::Properties;
use crate::reason::ReasonCode;
use crate::wire::{put_binary, put_varint, varint_len};

/// Bytes `p` encodes to (fixed header included) for `v`.
pub fn encoded_len(p: &Packet, v: Version) -> usize {
    let body = body_len(p, v);
    1 + varint_len(body as u32) + body
}

fn props_len(p: &Properties, v: Version) -> usize {
    if v.is_v5() {
        p.encoded_len()
    } else {
        0
    }
}

fn put_props(out: &mut BytesMut, p: &Properties, v: Version) {
    if v.is_v5() {
        p.encode(out);
    }
}

/// Whether an MQTT 5 ack may be shortened to its packet id (section 3.4.2.1).
fn ack_len(a: &Ack, v: Version) -> usize {
    if !v.is_v5() || (a.code == ReasonCode::SUCCESS && a.properties.is_empty()) {
        2
    } else if a.properties.is_empty() {
        3
    } else {
        3 + a.properties.encoded_len()
    }
}

fn body_len(p: &Packet, v: Version) -> usize {
    match p {
        Packet::Connect(c) => {
            let mut n = 2 + c.version.protocol_name().len() + 1 + 1 + 2;
            n += props_len(&c.properties, c.version);
            n += 2 + c.client_id.len();
            if let Some(w) = &c.will {
                n += props_len(&w.properties, c.version) + 2 + w.topic.len() + 2 + w.payload.len();
            }
            n += c.username.as_ref().map_or(0, |u| 2 + u.len());
            n += c.password.as_ref().map_or(0, |u| 2 + u.len());
            n
        }
        Packet::Connack(c) => 2 + props_len(&c.properties, v),
        Packet::Publish(p) => publish_body_len(p, v),
        Packet::Puback(a) | Packet::Pubrec(a) | Packet::Pubrel(a) | Packet::Pubcomp(a) => {
            ack_len(a, v)
        }
        Packet::Subscribe(s) => {
            2 + props_len(&s.properties, v)
                + s.filters
                    .iter()
                    .map(|(f, _)| 2 + f.len() + 1)
                    .sum::<usize>()
        }
        Packet::Suback(s) => 2 + props_len(&s.properties, v) + s.codes.len(),
        Packet::Unsubscribe(u) => {
            2 + props_len(&u.properties, v) + u.filters.iter().map(|f| 2 + f.len()).sum::<usize>()
        }
        Packet::Unsuback(u) => {
            2 + if v.is_v5() {
                u.properties.encoded_len() + u.codes.len()
            } else {
                0
            }
        }
        Packet::Pingreq | Packet::Pingresp => 0,
        Packet::Disconnect(d) | Packet::Auth(d) => {
            if !v.is_v5() || (d.code == ReasonCode::SUCCESS && d.properties.is_empty()) {
                0
            } else {
                1 + d.properties.encoded_len()
            }
        }
    }
}

/// Body bytes of a PUBLISH (everything after the fixed header).
pub fn publish_body_len(p: &Publish, v: Version) -> usize {
    2 + p.topic.len()
        + if p.qos == QoS::AtMostOnce { 0 } else { 2 }
        + props_len(&p.properties, v)
        + p.payload.len()
}

/// Append `p`, encoded for `v`, to `out`.
pub fn encode(p: &Packet, v: Version, out: &mut BytesMut) {
    let body = body_len(p, v);
    out.reserve(1 + varint_len(body as u32) + body);
    let flags = match p {
        Packet::Publish(p) => (p.dup as u8) << 3 | (p.qos as u8) << 1 | p.retain as u8,
        Packet::Pubrel(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) => 0b0010,
        _ => 0,
    };
    out.put_u8(p.kind() << 4 | flags);
    put_varint(out, body as u32);
    match p {
        Packet::Connect(c) => {
            put_binary(out, c.version.protocol_name());
            out.put_u8(c.version.level());
            let mut f = (c.clean_start as u8) << 1;
            if let Some(w) = &c.will {
                f |= 0b100 | (w.qos as u8) << 3 | (w.retain as u8) << 5;
            }
            if c.password.is_some() {
                f |= 0b100_0000;
            }
            if c.username.is_some() {
                f |= 0b1000_0000;
            }
            out.put_u8(f);
            out.put_u16(c.keep_alive);
            put_props(out, &c.properties, c.version);
            put_binary(out, &c.client_id);
            if let Some(w) = &c.will {
                put_props(out, &w.properties, c.version);
                put_binary(out, &w.topic);
                put_binary(out, &w.payload);
            }
            if let Some(u) = &c.username {
                put_binary(out, u);
            }
            if let Some(pw) = &c.password {
                put_binary(out, pw);
            }
        }
        Packet::Connack(c) => {
            out.put_u8(c.session_present as u8);
            out.put_u8(if v.is_v5() {
                c.code.0
            } else {
                c.code.v3_connack()
            });
            put_props(out, &c.properties, v);
        }
        Packet::Publish(p) => {
            put_binary(out, &p.topic);
            if let Some(id) = p.packet_id {
                out.put_u16(id);
            }
            put_props(out, &p.properties, v);
            out.put_slice(&p.payload);
        }
        Packet::Puback(a) | Packet::Pubrec(a) | Packet::Pubrel(a) | Packet::Pubcomp(a) => {
            out.put_u16(a.packet_id);
            let n = ack_len(a, v);
            if n > 2 {
                out.put_u8(a.code.0);
            }
            if n > 3 {
                a.properties.encode(out);
            }
        }
        Packet::Subscribe(s) => {
            out.put_u16(s.packet_id);
            put_props(out, &s.properties, v);
            for (f, o) in &s.filters {
                put_binary(out, f);
                out.put_u8(if v.is_v5() { o.to_byte() } else { o.qos as u8 });
            }
        }
        Packet::Suback(s) => {
            out.put_u16(s.packet_id);
            put_props(out, &s.properties, v);
            for c in &s.codes {
                // 3.1.1 knows one failure code.
                let c = if !v.is_v5() && c.is_error() {
                    0x80
                } else {
                    c.0
                };
                out.put_u8(c);
            }
        }
        Packet::Unsubscribe(u) => {
            out.put_u16(u.packet_id);
            put_props(out, &u.properties, v);
            for f in &u.filters {
                put_binary(out, f);
            }
        }
        Packet::Unsuback(u) => {
            out.put_u16(u.packet_id);
            if v.is_v5() {
                u.properties.encode(out);
                for c in &u.codes {
                    out.put_u8(c.0);
                }
            }
        }
        Packet::Pingreq | Packet::Pingresp => {}
        Packet::Disconnect(d) | Packet::Auth(d) => {
            if body > 0 {
                out.put_u8(d.code.0);
                d.properties.encode(out);
            }
        }
    }
}
