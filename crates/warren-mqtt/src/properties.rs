//! MQTT 5 properties: every property of the specification (section 2.2.2.2),
//! decoded into one struct whose string and binary values are slices of the
//! packet buffer (no copies), and encoded back.
//!
//! Why one struct for every packet type rather than one per packet: the
//! properties share one wire format and one id space, and a packet that
//! carries a property it must not is a protocol error the decoder reports by
//! checking the id against the packet's allowed set ([`allowed`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::wire::{
    get_binary, get_u16, get_u32, get_u8, get_utf8, get_varint, put_binary, put_varint, varint_len,
};

pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
pub const CONTENT_TYPE: u8 = 0x03;
pub const RESPONSE_TOPIC: u8 = 0x08;
pub const CORRELATION_DATA: u8 = 0x09;
pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
pub const SERVER_KEEP_ALIVE: u8 = 0x13;
pub const AUTHENTICATION_METHOD: u8 = 0x15;
pub const AUTHENTICATION_DATA: u8 = 0x16;
pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
pub const WILL_DELAY_INTERVAL: u8 = 0x18;
pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
pub const RESPONSE_INFORMATION: u8 = 0x1A;
pub const SERVER_REFERENCE: u8 = 0x1C;
pub const REASON_STRING: u8 = 0x1F;
pub const RECEIVE_MAXIMUM: u8 = 0x21;
pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub const TOPIC_ALIAS: u8 = 0x23;
pub const MAXIMUM_QOS: u8 = 0x24;
pub const RETAIN_AVAILABLE: u8 = 0x25;
pub const USER_PROPERTY: u8 = 0x26;
pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// Which packet (or the will) a property list belongs to: each allows its own set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Connect,
    Will,
    Connack,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK.
    Ack,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Auth,
}

/// Whether property `id` may appear in `ctx` (specification table 2-4).
pub fn allowed(ctx: Context, id: u8) -> bool {
    use Context::*;
    match id {
        USER_PROPERTY => true,
        PAYLOAD_FORMAT_INDICATOR
        | MESSAGE_EXPIRY_INTERVAL
        | CONTENT_TYPE
        | RESPONSE_TOPIC
        | CORRELATION_DATA => matches!(ctx, Publish | Will),
        SUBSCRIPTION_IDENTIFIER => matches!(ctx, Publish | Subscribe),
        SESSION_EXPIRY_INTERVAL => matches!(ctx, Connect | Connack | Disconnect),
        ASSIGNED_CLIENT_IDENTIFIER
        | SERVER_KEEP_ALIVE
        | RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => ctx == Connack,
        AUTHENTICATION_METHOD | AUTHENTICATION_DATA => matches!(ctx, Connect | Connack | Auth),
        REQUEST_PROBLEM_INFORMATION | REQUEST_RESPONSE_INFORMATION => ctx == Connect,
        WILL_DELAY_INTERVAL => ctx == Will,
        SERVER_REFERENCE => matches!(ctx, Connack | Disconnect),
        REASON_STRING => matches!(ctx, Connack | Ack | Disconnect | Auth),
        RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | MAXIMUM_PACKET_SIZE => {
            matches!(ctx, Connect | Connack)
        }
        TOPIC_ALIAS => ctx == Publish,
        _ => false,
    }
}

/// A property list. `None` / empty means absent. Strings are checked UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<Bytes>,
    pub response_topic: Option<Bytes>,
    pub correlation_data: Option<Bytes>,
    /// Several in a PUBLISH to a client (one per matching subscription), one in SUBSCRIBE.
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<Bytes>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<Bytes>,
    pub authentication_data: Option<Bytes>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<u8>,
    pub response_information: Option<Bytes>,
    pub server_reference: Option<Bytes>,
    pub reason_string: Option<Bytes>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<u8>,
    pub user_properties: Vec<(Bytes, Bytes)>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<u8>,
    pub subscription_identifier_available: Option<u8>,
    pub shared_subscription_available: Option<u8>,
}

/// Set `slot` once; a second occurrence is a protocol error (only user
/// properties and subscription identifiers may repeat).
fn once<T>(slot: &mut Option<T>, v: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::Protocol("duplicate property"));
    }
    *slot = Some(v);
    Ok(())
}

fn flag(v: u8) -> Result<u8, DecodeError> {
    if v > 1 {
        return Err(DecodeError::Protocol("property value must be 0 or 1"));
    }
    Ok(v)
}

impl Properties {
    /// No property (what `Default` gives, usable in a `static`).
    pub const EMPTY: Properties = Properties {
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        subscription_identifiers: Vec::new(),
        session_expiry_interval: None,
        assigned_client_identifier: None,
        server_keep_alive: None,
        authentication_method: None,
        authentication_data: None,
        request_problem_information: None,
        will_delay_interval: None,
        request_response_information: None,
        response_information: None,
        server_reference: None,
        reason_string: None,
        receive_maximum: None,
        topic_alias_maximum: None,
        topic_alias: None,
        maximum_qos: None,
        retain_available: None,
        user_properties: Vec::new(),
        maximum_packet_size: None,
        wildcard_subscription_available: None,
        subscription_identifier_available: None,
        shared_subscription_available: None,
    };

    pub fn is_empty(&self) -> bool {
        *self == Properties::EMPTY
    }

    /// Decode a property list (its varint length first) for `ctx`.
    pub fn decode(buf: &mut Bytes, ctx: Context) -> Result<Properties, DecodeError> {
        let len = get_varint(buf)? as usize;
        if buf.remaining() < len {
            return Err(DecodeError::Malformed("property length exceeds packet"));
        }
        let mut b = buf.split_to(len);
        let mut p = Properties::default();
        while b.has_remaining() {
            let id = get_varint(&mut b)?;
            let id = u8::try_from(id).map_err(|_| DecodeError::Malformed("unknown property"))?;
            if !allowed(ctx, id) {
                return Err(DecodeError::Protocol("property not allowed in this packet"));
            }
            match id {
                PAYLOAD_FORMAT_INDICATOR => {
                    once(&mut p.payload_format_indicator, flag(get_u8(&mut b)?)?)?
                }
                MESSAGE_EXPIRY_INTERVAL => once(&mut p.message_expiry_interval, get_u32(&mut b)?)?,
                CONTENT_TYPE => once(&mut p.content_type, get_utf8(&mut b)?)?,
                RESPONSE_TOPIC => once(&mut p.response_topic, get_utf8(&mut b)?)?,
                CORRELATION_DATA => once(&mut p.correlation_data, get_binary(&mut b)?)?,
                SUBSCRIPTION_IDENTIFIER => {
                    let v = get_varint(&mut b)?;
                    if v == 0 {
                        return Err(DecodeError::Protocol("subscription identifier 0"));
                    }
                    if ctx == Context::Subscribe && !p.subscription_identifiers.is_empty() {
                        return Err(DecodeError::Protocol("duplicate property"));
                    }
                    p.subscription_identifiers.push(v);
                }
                SESSION_EXPIRY_INTERVAL => once(&mut p.session_expiry_interval, get_u32(&mut b)?)?,
                ASSIGNED_CLIENT_IDENTIFIER => {
                    once(&mut p.assigned_client_identifier, get_utf8(&mut b)?)?
                }
                SERVER_KEEP_ALIVE => once(&mut p.server_keep_alive, get_u16(&mut b)?)?,
                AUTHENTICATION_METHOD => once(&mut p.authentication_method, get_utf8(&mut b)?)?,
                AUTHENTICATION_DATA => once(&mut p.authentication_data, get_binary(&mut b)?)?,
                REQUEST_PROBLEM_INFORMATION => {
                    once(&mut p.request_problem_information, flag(get_u8(&mut b)?)?)?
                }
                WILL_DELAY_INTERVAL => once(&mut p.will_delay_interval, get_u32(&mut b)?)?,
                REQUEST_RESPONSE_INFORMATION => {
                    once(&mut p.request_response_information, flag(get_u8(&mut b)?)?)?
                }
                RESPONSE_INFORMATION => once(&mut p.response_information, get_utf8(&mut b)?)?,
                SERVER_REFERENCE => once(&mut p.server_reference, get_utf8(&mut b)?)?,
                REASON_STRING => once(&mut p.reason_string, get_utf8(&mut b)?)?,
                RECEIVE_MAXIMUM => {
                    let v = get_u16(&mut b)?;
                    if v == 0 {
                        return Err(DecodeError::Protocol("receive maximum 0"));
                    }
                    once(&mut p.receive_maximum, v)?
                }
                TOPIC_ALIAS_MAXIMUM => once(&mut p.topic_alias_maximum, get_u16(&mut b)?)?,
                TOPIC_ALIAS => once(&mut p.topic_alias, get_u16(&mut b)?)?,
                MAXIMUM_QOS => {
                    let v = get_u8(&mut b)?;
                    if v > 1 {
                        return Err(DecodeError::Protocol("maximum QoS must be 0 or 1"));
                    }
                    once(&mut p.maximum_qos, v)?
                }
                RETAIN_AVAILABLE => once(&mut p.retain_available, flag(get_u8(&mut b)?)?)?,
                USER_PROPERTY => {
                    let k = get_utf8(&mut b)?;
                    let v = get_utf8(&mut b)?;
                    p.user_properties.push((k, v));
                }
                MAXIMUM_PACKET_SIZE => {
                    let v = get_u32(&mut b)?;
                    if v == 0 {
                        return Err(DecodeError::Protocol("maximum packet size 0"));
                    }
                    once(&mut p.maximum_packet_size, v)?
                }
                WILDCARD_SUBSCRIPTION_AVAILABLE => once(
                    &mut p.wildcard_subscription_available,
                    flag(get_u8(&mut b)?)?,
                )?,
                SUBSCRIPTION_IDENTIFIER_AVAILABLE => once(
                    &mut p.subscription_identifier_available,
                    flag(get_u8(&mut b)?)?,
                )?,
                SHARED_SUBSCRIPTION_AVAILABLE => {
                    once(&mut p.shared_subscription_available, flag(get_u8(&mut b)?)?)?
                }
                _ => return Err(DecodeError::Malformed("unknown property")),
            }
        }
        Ok(p)
    }

    /// Visit every property as (id, value) in a fixed order: one walk serves
    /// both sizing and writing, so they cannot disagree.
    fn visit(&self, mut f: impl FnMut(u8, Value<'_>)) {
        let b = |f: &mut dyn FnMut(u8, Value<'_>), id, v: &Option<u8>| {
            if let Some(v) = v {
                f(id, Value::Byte(*v))
            }
        };
        let s = |f: &mut dyn FnMut(u8, Value<'_>), id, v: &Option<Bytes>| {
            if let Some(v) = v {
                f(id, Value::Str(v))
            }
        };
        let w = |f: &mut dyn FnMut(u8, Value<'_>), id, v: &Option<u32>| {
            if let Some(v) = v {
                f(id, Value::U32(*v))
            }
        };
        let h = |f: &mut dyn FnMut(u8, Value<'_>), id, v: &Option<u16>| {
            if let Some(v) = v {
                f(id, Value::U16(*v))
            }
        };
        b(
            &mut f,
            PAYLOAD_FORMAT_INDICATOR,
            &self.payload_format_indicator,
        );
        w(
            &mut f,
            MESSAGE_EXPIRY_INTERVAL,
            &self.message_expiry_interval,
        );
        s(&mut f, CONTENT_TYPE, &self.content_type);
        s(&mut f, RESPONSE_TOPIC, &self.response_topic);
        s(&mut f, CORRELATION_DATA, &self.correlation_data);
        for id in &self.subscription_identifiers {
            f(SUBSCRIPTION_IDENTIFIER, Value::Varint(*id));
        }
        w(
            &mut f,
            SESSION_EXPIRY_INTERVAL,
            &self.session_expiry_interval,
        );
        s(
            &mut f,
            ASSIGNED_CLIENT_IDENTIFIER,
            &self.assigned_client_identifier,
        );
        h(&mut f, SERVER_KEEP_ALIVE, &self.server_keep_alive);
        s(&mut f, AUTHENTICATION_METHOD, &self.authentication_method);
        s(&mut f, AUTHENTICATION_DATA, &self.authentication_data);
        b(
            &mut f,
            REQUEST_PROBLEM_INFORMATION,
            &self.request_problem_information,
        );
        w(&mut f, WILL_DELAY_INTERVAL, &self.will_delay_interval);
        b(
            &mut f,
            REQUEST_RESPONSE_INFORMATION,
            &self.request_response_information,
        );
        s(&mut f, RESPONSE_INFORMATION, &self.response_information);
        s(&mut f, SERVER_REFERENCE, &self.server_reference);
        s(&mut f, REASON_STRING, &self.reason_string);
        h(&mut f, RECEIVE_MAXIMUM, &self.receive_maximum);
        h(&mut f, TOPIC_ALIAS_MAXIMUM, &self.topic_alias_maximum);
        h(&mut f, TOPIC_ALIAS, &self.topic_alias);
        b(&mut f, MAXIMUM_QOS, &self.maximum_qos);
        b(&mut f, RETAIN_AVAILABLE, &self.retain_available);
        for (k, v) in &self.user_properties {
            f(USER_PROPERTY, Value::Pair(k, v));
        }
        w(&mut f, MAXIMUM_PACKET_SIZE, &self.maximum_packet_size);
        b(
            &mut f,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            &self.wildcard_subscription_available,
        );
        b(
            &mut f,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            &self.subscription_identifier_available,
        );
        b(
            &mut f,
            SHARED_SUBSCRIPTION_AVAILABLE,
            &self.shared_subscription_available,
        );
    }

    /// Bytes of the property list without its length prefix.
    pub fn body_len(&self) -> usize {
        let mut n = 0;
        self.visit(|_, v| n += 1 + v.len());
        n
    }

    /// Bytes of the property list including its varint length.
    pub fn encoded_len(&self) -> usize {
        let n = self.body_len();
        varint_len(n as u32) + n
    }

    pub fn encode(&self, out: &mut BytesMut) {
        put_varint(out, self.body_len() as u32);
        self.visit(|id, v| {
            out.put_u8(id);
            v.put(out);
        });
    }
}

enum Value<'a> {
    Byte(u8),
    U16(u16),
    U32(u32),
    Varint(u32),
    Str(&'a Bytes),
    Pair(&'a Bytes, &'a Bytes),
}

impl Value<'_> {
    fn len(&self) -> usize {
        match self {
            Value::Byte(_) => 1,
            Value::U16(_) => 2,
            Value::U32(_) => 4,
            Value::Varint(v) => varint_len(*v),
            Value::Str(s) => 2 + s.len(),
            Value::Pair(k, v) => 4 + k.len() + v.len(),
        }
    }

    fn put(&self, out: &mut BytesMut) {
        match self {
            Value::Byte(v) => out.put_u8(*v),
            Value::U16(v) => out.put_u16(*v),
            Value::U32(v) => out.put_u32(*v),
            Value::Varint(v) => put_varint(out, *v),
            Value::Str(s) => put_binary(out, s),
            Value::Pair(k, v) => {
                put_binary(out, k);
                put_binary(out, v);
            }
        }
    }
}
