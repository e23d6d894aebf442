//! Decoding one packet from its fixed-header byte and its body (the
//! "remaining length" bytes). Framing (finding where a packet ends, the
//! maximum packet size) is the codec's job ([`crate::codec`]).
//!
//! Every check the specification makes a "malformed packet" or "protocol
//! error" is made here, so the session only sees well-formed packets: reserved
//! flag bits, QoS 3, packet id 0, an empty SUBSCRIBE, wildcards in a topic
//! name, bytes left over after the last field.

use bytes::{Buf, Bytes};

use crate::error::DecodeError;
use crate::packet::*;
use crate::properties::{Context, Properties};
use crate::reason::ReasonCode;
use crate::wire::{get_binary, get_u16, get_u8, get_utf8};

/// Decode a packet. `version` is the connection's once CONNECT is known;
/// `None` before (only a CONNECT can be decoded then, the rest as 3.1.1).
pub fn decode(first: u8, mut body: Bytes, version: Option<Version>) -> Result<Packet, DecodeError> {
    let kind = first >> 4;
    let flags = first & 0x0f;
    let v = version.unwrap_or(Version::V3_1_1);
    // Section 2.1.3: the flags of every packet but PUBLISH are fixed.
    let fixed = match kind {
        3 => None,
        6 | 8 | 10 => Some(0b0010),
        _ => Some(0),
    };
    if let Some(f) = fixed {
        if flags != f {
            return Err(DecodeError::Malformed("invalid fixed header flags"));
        }
    }
    let packet = match kind {
        1 => Packet::Connect(Box::new(connect(&mut body)?)),
        2 => Packet::Connack(connack(&mut body, v)?),
        3 => Packet::Publish(publish(flags, &mut body, v)?),
        4 => Packet::Puback(ack(&mut body, v)?),
        5 => Packet::Pubrec(ack(&mut body, v)?),
        6 => Packet::Pubrel(ack(&mut body, v)?),
        7 => Packet::Pubcomp(ack(&mut body, v)?),
        8 => Packet::Subscribe(subscribe(&mut body, v)?),
        9 => Packet::Suback(suback(&mut body, v)?),
        10 => Packet::Unsubscribe(unsubscribe(&mut body, v)?),
        11 => Packet::Unsuback(unsuback(&mut body, v)?),
        12 => Packet::Pingreq,
        13 => Packet::Pingresp,
        14 => Packet::Disconnect(disconnect(&mut body, v, Context::Disconnect)?),
        15 if v.is_v5() => Packet::Auth(disconnect(&mut body, v, Context::Auth)?),
        _ => return Err(DecodeError::Malformed("reserved packet type")),
    };
    if body.has_remaining() {
        return Err(DecodeError::Malformed("bytes after the end of the packet"));
    }
    Ok(packet)
}

fn packet_id(b: &mut Bytes) -> Result<u16, DecodeError> {
    match get_u16(b)? {
        0 => Err(DecodeError::Protocol("packet identifier 0")),
        id => Ok(id),
    }
}

fn props(b: &mut Bytes, v: Version, ctx: Context) -> Result<Properties, DecodeError> {
    if v.is_v5() {
        Properties::decode(b, ctx)
    } else {
        Ok(Properties::default())
    }
}

fn connect(b: &mut Bytes) -> Result<Connect, DecodeError> {
    let name = get_binary(b)?;
    let level = get_u8(b)?;
    let version = match (&name[..], level) {
        (b"MQIsdp", 3) => Version::V3_1,
        (b"MQTT", 4) => Version::V3_1_1,
        (b"MQTT", 5) => Version::V5,
        _ => {
            return Err(DecodeError::UnsupportedVersion {
                name: name.to_vec(),
                level,
            })
        }
    };
    let flags = get_u8(b)?;
    if flags & 1 != 0 {
        return Err(DecodeError::Malformed("reserved CONNECT flag set"));
    }
    let clean_start = flags & 0b10 != 0;
    let will_flag = flags & 0b100 != 0;
    let will_qos = (flags >> 3) & 3;
    let will_retain = flags & 0b10_0000 != 0;
    let has_password = flags & 0b100_0000 != 0;
    let has_username = flags & 0b1000_0000 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(DecodeError::Malformed("will QoS or retain without a will"));
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::Malformed("will QoS 3"))?;
    if version == Version::V3_1_1 && has_password && !has_username {
        return Err(DecodeError::Malformed("password without user name"));
    }
    let keep_alive = get_u16(b)?;
    let properties = props(b, version, Context::Connect)?;
    let client_id = get_utf8(b)?;
    let will = if will_flag {
        let properties = props(b, version, Context::Will)?;
        let topic = get_utf8(b)?;
        check_topic_name(&topic)?;
        if topic.is_empty() {
            return Err(DecodeError::TopicName("empty will topic"));
        }
        let payload = get_binary(b)?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(get_utf8(b)?)
    } else {
        None
    };
    let password = if has_password {
        Some(get_binary(b)?)
    } else {
        None
    };
    Ok(Connect {
        version,
        clean_start,
        keep_alive,
        properties,
        client_id,
        will,
        username,
        password,
    })
}

fn connack(b: &mut Bytes, v: Version) -> Result<Connack, DecodeError> {
    let flags = get_u8(b)?;
    if flags & !1 != 0 {
        return Err(DecodeError::Malformed("reserved CONNACK flag set"));
    }
    let raw = get_u8(b)?;
    let code = if v.is_v5() {
        ReasonCode(raw)
    } else {
        // 3.1.1 return codes, as the MQTT 5 reasons they stand for.
        match raw {
            0 => ReasonCode::SUCCESS,
            1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            3 => ReasonCode::SERVER_UNAVAILABLE,
            4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            5 => ReasonCode::NOT_AUTHORIZED,
            _ => return Err(DecodeError::Malformed("unknown CONNACK return code")),
        }
    };
    Ok(Connack {
        session_present: flags & 1 != 0,
        code,
        properties: props(b, v, Context::Connack)?.into(),
    })
}

/// A topic name must have no wildcards (sections 4.7.1, 3.3.2.1).
pub fn check_topic_name(topic: &[u8]) -> Result<(), DecodeError> {
    if topic.iter().any(|&c| c == b'+' || c == b'#') {
        return Err(DecodeError::TopicName("wildcard in a topic name"));
    }
    Ok(())
}

fn publish(flags: u8, b: &mut Bytes, v: Version) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((flags >> 1) & 3).ok_or(DecodeError::Malformed("PUBLISH with QoS 3"))?;
    let dup = flags & 0b1000 != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::Malformed("DUP set on a QoS 0 PUBLISH"));
    }
    let topic = get_utf8(b)?;
    check_topic_name(&topic)?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(packet_id(b)?)
    };
    let properties = props(b, v, Context::Publish)?;
    if topic.is_empty() && properties.topic_alias.is_none() {
        return Err(DecodeError::TopicName("empty topic name"));
    }
    if properties.topic_alias == Some(0) {
        return Err(DecodeError::Protocol("topic alias 0"));
    }
    let payload = b.split_to(b.remaining());
    Ok(Publish {
        dup,
        qos,
        retain: flags & 1 != 0,
        topic,
        packet_id,
        properties: properties.into(),
        payload,
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP: in MQTT 5 the reason code and properties
/// may be left out (remaining length 2 means success, 3 means no properties).
fn ack(b: &mut Bytes, v: Version) -> Result<Ack, DecodeError> {
    let packet_id = packet_id(b)?;
    let mut a = Ack::new(packet_id, ReasonCode::SUCCESS);
    if v.is_v5() && b.has_remaining() {
        a.code = ReasonCode(get_u8(b)?);
        if b.has_remaining() {
            a.properties = Properties::decode(b, Context::Ack)?.into();
        }
    }
    Ok(a)
}

fn subscribe(b: &mut Bytes, v: Version) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(b)?;
    let properties = props(b, v, Context::Subscribe)?;
    let mut filters = Vec::new();
    while b.has_remaining() {
        let filter = get_utf8(b)?;
        let o = get_u8(b)?;
        let reserved = if v.is_v5() { 0b1100_0000 } else { 0b1111_1100 };
        if o & reserved != 0 {
            return Err(DecodeError::Malformed(
                "reserved subscription option bits set",
            ));
        }
        let qos = QoS::from_u8(o & 3).ok_or(DecodeError::Malformed("subscription QoS 3"))?;
        let retain_handling = (o >> 4) & 3;
        if retain_handling == 3 {
            return Err(DecodeError::Protocol("retain handling 3"));
        }
        filters.push((
            filter,
            SubscriptionOptions {
                qos,
                no_local: o & 0b100 != 0,
                retain_as_published: o & 0b1000 != 0,
                retain_handling,
            },
        ));
    }
    if filters.is_empty() {
        return Err(DecodeError::Protocol("SUBSCRIBE without topic filters"));
    }
    Ok(Subscribe {
        packet_id,
        properties: properties.into(),
        filters,
    })
}

fn suback(b: &mut Bytes, v: Version) -> Result<Suback, DecodeError> {
    let packet_id = packet_id(b)?;
    let properties = props(b, v, Context::Ack)?;
    let codes: Vec<ReasonCode> = b
        .split_to(b.remaining())
        .iter()
        .map(|&c| ReasonCode(c))
        .collect();
    // 3.1.1 knows granted QoS 0-2 and one failure code.
    if !v.is_v5() && codes.iter().any(|c| c.0 > 2 && c.0 != 0x80) {
        return Err(DecodeError::Malformed("invalid SUBACK return code"));
    }
    Ok(Suback {
        packet_id,
        properties: properties.into(),
        codes,
    })
}

fn unsubscribe(b: &mut Bytes, v: Version) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(b)?;
    let properties = props(b, v, Context::Unsubscribe)?;
    let mut filters = Vec::new();
    while b.has_remaining() {
        filters.push(get_utf8(b)?);
    }
    if filters.is_empty() {
        return Err(DecodeError::Protocol("UNSUBSCRIBE without topic filters"));
    }
    Ok(Unsubscribe {
        packet_id,
        properties: properties.into(),
        filters,
    })
}

fn unsuback(b: &mut Bytes, v: Version) -> Result<Unsuback, DecodeError> {
    let packet_id = packet_id(b)?;
    let properties = props(b, v, Context::Ack)?;
    let codes = if v.is_v5() {
        b.split_to(b.remaining())
            .iter()
            .map(|&c| ReasonCode(c))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Unsuback {
        packet_id,
        properties: properties.into(),
        codes,
    })
}

/// DISCONNECT (and AUTH): empty means "normal disconnection" / success.
fn disconnect(b: &mut Bytes, v: Version, ctx: Context) -> Result<Disconnect, DecodeError> {
    let mut d = Disconnect::new(ReasonCode::SUCCESS);
    if v.is_v5() && b.has_remaining() {
        d.code = ReasonCode(get_u8(b)?);
        if b.has_remaining() {
            d.properties = Properties::decode(b, ctx)?.into();
        }
    }
    Ok(d)
}
