//! MQTT publishes ↔ AMQP 0-9-1 properties, as RabbitMQ 3.13's `mc_mqtt` maps
//! them, so that AMQP and STOMP clients see MQTT 5 properties and MQTT 5
//! clients see AMQP ones:
//!
//! | MQTT 5 | AMQP 0-9-1 |
//! |---|---|
//! | QoS 0 / QoS ≥ 1 | delivery_mode 1 / 2 (persistent) |
//! | Content Type | content_type |
//! | Correlation Data | correlation_id (if a short string), else header `x-correlation-id` |
//! | Response Topic | header `x-reply-to-topic` (as an AMQP routing key) |
//! | User Property | headers (string values; other headers become strings on the way back) |
//! | Message Expiry Interval (s) | expiration (ms) |
//!
//! Two Warren headers carry what only MQTT subscribers need, and only when
//! set, so a plain publish has no headers to decode: `x-mqtt-publish-qos` for
//! QoS 2 (a QoS 2 subscriber gets QoS 2 only from a QoS 2 publish) and
//! `x-mqtt-retain` for a retained publish (retain-as-published).

use bytes::Bytes;
use std::io::Write;
use warren_core::{BasicProperties, FieldTable, FieldValue, ShortStr};

use crate::packet::QoS;
use crate::properties::Properties;
use crate::topic;

pub const QOS_HEADER: &str = "x-mqtt-publish-qos";
pub const RETAIN_HEADER: &str = "x-mqtt-retain";
/// MQTT 5's Payload Format Indicator 1 (UTF-8 payload); AMQP has no field for it.
pub const PAYLOAD_FORMAT_HEADER: &str = "x-mqtt-payload-format";
const REPLY_TO_TOPIC: &str = "x-reply-to-topic";
const CORRELATION_ID: &str = "x-correlation-id";

/// The encoded AMQP properties of an MQTT publish. The two most common cases
/// (QoS 0 or 1, no properties, not retained) are encoded once per process: a
/// stream of plain publishes allocates nothing for its properties.
pub fn encoded(qos: QoS, retain: bool, p: &Properties) -> Bytes {
    static PLAIN: std::sync::OnceLock<[Bytes; 2]> = std::sync::OnceLock::new();
    if !retain && qos != QoS::ExactlyOnce && p.is_empty() {
        let plain = PLAIN.get_or_init(|| {
            let none = Properties::default();
            [
                to_amqp(QoS::AtMostOnce, false, &none).encode(),
                to_amqp(QoS::AtLeastOnce, false, &none).encode(),
            ]
        });
        return plain[qos as usize].clone();
    }
    to_amqp(qos, retain, p).encode()
}

/// AMQP properties of an MQTT publish.
pub fn to_amqp(qos: QoS, retain: bool, p: &Properties) -> BasicProperties {
    let mut props = BasicProperties {
        delivery_mode: Some(if qos == QoS::AtMostOnce { 1 } else { 2 }),
        ..BasicProperties::default()
    };
    let mut h = FieldTable::new();
    if qos == QoS::ExactlyOnce {
        h.insert(QOS_HEADER, FieldValue::U8(2));
    }
    if retain {
        h.insert(RETAIN_HEADER, FieldValue::Bool(true));
    }
    if p.payload_format_indicator == Some(1) {
        h.insert(PAYLOAD_FORMAT_HEADER, FieldValue::U8(1));
    }
    if let Some(ct) = &p.content_type {
        if ct.len() <= 255 {
            props.content_type = Some(ShortStr(ct.clone()));
        }
    }
    for (k, v) in &p.user_properties {
        if k.len() <= 255 {
            h.insert(&String::from_utf8_lossy(k), FieldValue::LongStr(v.clone()));
        }
    }
    if let Some(t) = &p.response_topic {
        h.insert(REPLY_TO_TOPIC, FieldValue::LongStr(topic::to_amqp(t)));
    }
    if let Some(c) = &p.correlation_data {
        if c.len() <= 255 && std::str::from_utf8(c).is_ok() {
            props.correlation_id = Some(ShortStr(c.clone()));
        } else {
            h.insert(CORRELATION_ID, FieldValue::LongStr(c.clone()));
        }
    }
    if let Some(s) = p.message_expiry_interval {
        props.expiration = Some(ShortStr::from((u64::from(s) * 1000).to_string()));
    }
    if !h.is_empty() {
        props.headers = Some(h);
    }
    props
}

/// What a delivery needs from a message's AMQP properties.
#[derive(Debug, Default)]
pub struct FromAmqp {
    /// The publisher's QoS: 2 only with the QoS header, else 1 if persistent.
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 properties (left empty for 3.1.1 clients).
    pub properties: Properties,
}

/// Read an AMQP message's properties for an MQTT subscriber. `v5` asks for
/// the MQTT 5 properties too.
pub fn from_amqp(p: &BasicProperties, v5: bool) -> FromAmqp {
    let mut out = FromAmqp {
        qos: if p.delivery_mode == Some(2) { 1 } else { 0 },
        ..FromAmqp::default()
    };
    if let Some(h) = &p.headers {
        if let Some(q) = h.get(QOS_HEADER).and_then(|v| v.as_i64()) {
            out.qos = out.qos.max(q.clamp(0, 2) as u8);
        }
        out.retain = h.get(RETAIN_HEADER).and_then(|v| v.as_bool()) == Some(true);
    }
    if !v5 {
        return out;
    }
    let props = &mut out.properties;
    props.content_type = p.content_type.as_ref().map(|c| c.0.clone());
    props.correlation_data = p.correlation_id.as_ref().map(|c| c.0.clone());
    if let Some(e) = p
        .expiration
        .as_ref()
        .and_then(|e| warren_core::message::parse_expiration(e.as_bytes()))
    {
        props.message_expiry_interval = Some(u32::try_from(e / 1000).unwrap_or(u32::MAX));
    }
    if let Some(h) = &p.headers {
        for (k, v) in h.iter() {
            match k.as_bytes() {
                b"x-mqtt-publish-qos" | b"x-mqtt-retain" => {}
                b"x-mqtt-payload-format" => {
                    props.payload_format_indicator = v.as_i64().map(|i| (i == 1) as u8);
                }
                b"x-reply-to-topic" => {
                    if let Some(t) = v.as_bytes() {
                        let mut buf = Vec::new();
                        topic::from_amqp(t, &mut buf);
                        props.response_topic = Some(buf.into());
                    }
                }
                b"x-correlation-id" if props.correlation_data.is_none() => {
                    props.correlation_data = v.as_bytes().map(Bytes::copy_from_slice);
                }
                key => {
                    if let Some(s) = header_string(v) {
                        props.user_properties.push((Bytes::copy_from_slice(key), s));
                    }
                }
            }
        }
    }
    out
}

/// A header value as an MQTT user property value (UTF-8 strings; numbers and
/// booleans as text, as RabbitMQ converts them).
fn header_string(v: &FieldValue) -> Option<Bytes> {
    let mut s = Vec::new();
    match v {
        FieldValue::LongStr(b) => {
            return crate::wire::check_utf8(b).ok().map(|_| b.clone());
        }
        FieldValue::Bool(b) => {
            let _ = write!(s, "{b}");
        }
        FieldValue::F32(f) => {
            let _ = write!(s, "{f}");
        }
        FieldValue::F64(f) => {
            let _ = write!(s, "{f}");
        }
        other => {
            let _ = write!(s, "{}", other.as_i64()?);
        }
    }
    Some(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_mqtt5_properties() {
        let p = Properties {
            content_type: Some(Bytes::from_static(b"application/json")),
            correlation_data: Some(Bytes::from_static(b"req-1")),
            response_topic: Some(Bytes::from_static(b"reply/to/me")),
            user_properties: vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v"))],
            message_expiry_interval: Some(30),
            payload_format_indicator: Some(1),
            ..Properties::default()
        };
        let amqp = to_amqp(QoS::ExactlyOnce, true, &p);
        assert_eq!(amqp.delivery_mode, Some(2));
        assert_eq!(
            amqp.expiration.as_ref().map(|e| e.to_string()),
            Some("30000".into())
        );
        let h = amqp.headers.as_ref().expect("headers");
        assert_eq!(
            h.get("x-reply-to-topic").and_then(|v| v.as_bytes()),
            Some(&b"reply.to.me"[..])
        );
        let back = from_amqp(&amqp, true);
        assert_eq!(back.qos, 2);
        assert!(back.retain);
        assert_eq!(back.properties.content_type, p.content_type);
        assert_eq!(back.properties.correlation_data, p.correlation_data);
        assert_eq!(back.properties.response_topic, p.response_topic);
        assert_eq!(back.properties.user_properties, p.user_properties);
        assert_eq!(back.properties.message_expiry_interval, Some(30));
        assert_eq!(back.properties.payload_format_indicator, Some(1));
    }

    #[test]
    fn binary_correlation_data_goes_to_a_header() {
        let p = Properties {
            correlation_data: Some(Bytes::from_static(&[0xff, 0])),
            ..Properties::default()
        };
        let amqp = to_amqp(QoS::AtLeastOnce, false, &p);
        assert!(amqp.correlation_id.is_none());
        assert_eq!(
            from_amqp(&amqp, true).properties.correlation_data,
            p.correlation_data
        );
        assert_eq!(from_amqp(&amqp, true).qos, 1);
    }
}
