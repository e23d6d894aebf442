//! The packets of MQTT 3.1, 3.1.1 and 5.0 as one set of types. Fields only MQTT
//! 5 has (reason codes, properties) are ignored when encoding for 3.1/3.1.1 and
//! come out as their defaults when decoding 3.1/3.1.1.
//!
//! Strings and payloads are `Bytes` slices of the read buffer: a PUBLISH's
//! payload reaches the broker core without a copy.

use bytes::Bytes;
use std::fmt;

use crate::properties::Properties;
use crate::props::Props;
use crate::reason::ReasonCode;

/// The protocol version, from CONNECT's protocol name and level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// "MQIsdp", level 3.
    V3_1,
    /// "MQTT", level 4.
    V3_1_1,
    /// "MQTT", level 5.
    V5,
}

impl Version {
    pub fn level(self) -> u8 {
        match self {
            Version::V3_1 => 3,
            Version::V3_1_1 => 4,
            Version::V5 => 5,
        }
    }

    pub fn protocol_name(self) -> &'static [u8] {
        match self {
            Version::V3_1 => b"MQIsdp",
            _ => b"MQTT",
        }
    }

    /// As RabbitMQ names it in the management API ("3.1.1", "5-0" style is
    /// RabbitMQ 3.13's `{'MQTT', "5.0"}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V3_1 => "3.1.0",
            Version::V3_1_1 => "3.1.1",
            Version::V5 => "5.0",
        }
    }

    pub fn is_v5(self) -> bool {
        self == Version::V5
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: Bytes,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub version: Version,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub properties: Properties,
    pub client_id: Bytes,
    pub will: Option<Will>,
    pub username: Option<Bytes>,
    pub password: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connack {
    pub session_present: bool,
    /// MQTT 5 reason code; for 3.1/3.1.1 encoded as its return code.
    pub code: ReasonCode,
    pub properties: Props,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty when an MQTT 5 client sends a topic alias alone.
    pub topic: Bytes,
    /// Present iff qos > 0.
    pub packet_id: Option<u16>,
    pub properties: Props,
    pub payload: Bytes,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub packet_id: u16,
    pub code: ReasonCode,
    pub properties: Props,
}

impl Ack {
    pub fn new(packet_id: u16, code: ReasonCode) -> Ack {
        Ack {
            packet_id,
            code,
            properties: Props::NONE,
        }
    }
}

/// SUBSCRIBE options byte (MQTT 5 section 3.8.3.1; 3.1.1 has the QoS only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: send retained on subscribe; 1: only if the subscription is new; 2: never.
    pub retain_handling: u8,
}

impl SubscriptionOptions {
    pub fn qos(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        }
    }

    pub fn to_byte(self) -> u8 {
        self.qos as u8
            | (self.no_local as u8) << 2
            | (self.retain_as_published as u8) << 3
            | self.retain_handling << 4
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    pub properties: Props,
    pub filters: Vec<(Bytes, SubscriptionOptions)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suback {
    pub packet_id: u16,
    pub properties: Props,
    /// Granted QoS (0, 1, 2) or a failure (0x80 in 3.1.1, an MQTT 5 reason).
    pub codes: Vec<ReasonCode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub properties: Props,
    pub filters: Vec<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsuback {
    pub packet_id: u16,
    pub properties: Props,
    /// MQTT 5 only.
    pub codes: Vec<ReasonCode>,
}

/// DISCONNECT and AUTH: a reason code and properties (MQTT 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    pub code: ReasonCode,
    pub properties: Props,
}

impl Disconnect {
    pub fn new(code: ReasonCode) -> Disconnect {
        Disconnect {
            code,
            properties: Props::NONE,
        }
    }

    pub fn with_reason(code: ReasonCode, text: impl Into<String>) -> Disconnect {
        Disconnect {
            code,
            properties: Properties {
                reason_string: Some(Bytes::from(text.into())),
                ..Properties::default()
            }
            .into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    Connack(Connack),
    Publish(Publish),
    Puback(Ack),
    Pubrec(Ack),
    Pubrel(Ack),
    Pubcomp(Ack),
    Subscribe(Subscribe),
    Suback(Suback),
    Unsubscribe(Unsubscribe),
    Unsuback(Unsuback),
    Pingreq,
    Pingresp,
    Disconnect(Disconnect),
    Auth(Disconnect),
}

impl Packet {
    /// The control packet type (upper four bits of the first byte).
    pub fn kind(&self) -> u8 {
        match self {
            Packet::Connect(_) => 1,
            Packet::Connack(_) => 2,
            Packet::Publish(_) => 3,
            Packet::Puback(_) => 4,
            Packet::Pubrec(_) => 5,
            Packet::Pubrel(_) => 6,
            Packet::Pubcomp(_) => 7,
            Packet::Subscribe(_) => 8,
            Packet::Suback(_) => 9,
            Packet::Unsubscribe(_) => 10,
            Packet::Unsuback(_) => 11,
            Packet::Pingreq => 12,
            Packet::Pingresp => 13,
            Packet::Disconnect(_) => 14,
            Packet::Auth(_) => 15,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::Connack(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::Puback(_) => "PUBACK",
            Packet::Pubrec(_) => "PUBREC",
            Packet::Pubrel(_) => "PUBREL",
            Packet::Pubcomp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::Suback(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::Unsuback(_) => "UNSUBACK",
            Packet::Pingreq => "PINGREQ",
            Packet::Pingresp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}
