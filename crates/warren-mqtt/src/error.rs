//! Why a packet could not be decoded, and the MQTT 5 reason code the server
//! sends in its DISCONNECT (or CONNACK) before closing.

use std::fmt;

use crate::reason::ReasonCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a valid packet (section 4.13: malformed packet).
    Malformed(&'static str),
    /// A valid packet the specification forbids here (protocol error).
    Protocol(&'static str),
    /// Over the maximum packet size the server announced.
    TooLarge { size: usize, max: usize },
    /// CONNECT names a protocol or level the server does not speak.
    UnsupportedVersion { name: Vec<u8>, level: u8 },
    /// A topic name that is not valid (wildcards in a PUBLISH, empty).
    TopicName(&'static str),
}

impl DecodeError {
    /// The reason code of the DISCONNECT an MQTT 5 client gets.
    pub fn reason(&self) -> ReasonCode {
        match self {
            DecodeError::Malformed(_) => ReasonCode::MALFORMED_PACKET,
            DecodeError::Protocol(_) => ReasonCode::PROTOCOL_ERROR,
            DecodeError::TooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            DecodeError::UnsupportedVersion { .. } => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            DecodeError::TopicName(_) => ReasonCode::TOPIC_NAME_INVALID,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Malformed(m) => write!(f, "malformed packet: {m}"),
            DecodeError::Protocol(m) => write!(f, "protocol error: {m}"),
            DecodeError::TooLarge { size, max } => {
                write!(
                    f,
                    "packet of {size} bytes exceeds the maximum packet size {max}"
                )
            }
            DecodeError::UnsupportedVersion { name, level } => write!(
                f,
                "unsupported protocol {:?} level {level}",
                String::from_utf8_lossy(name)
            ),
            DecodeError::TopicName(m) => write!(f, "invalid topic name: {m}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<std::io::Error> for DecodeError {
    fn from(_: std::io::Error) -> DecodeError {
        // tokio-util's Decoder needs it; socket errors end the read loop before
        // they reach here as a decode error.
        DecodeError::Malformed("I/O error")
    }
}
