//! Framing: a tokio-util `Decoder` that finds where each packet ends (fixed
//! header byte, remaining length) and hands the body to [`crate::decode`].
//!
//! The remaining length is checked against the maximum packet size *before*
//! the body is buffered, so a client announcing a 256 MB packet costs nothing
//! but the error. The version is unknown until CONNECT: the codec learns it
//! from the first packet it decodes (or from [`MqttCodec::set_version`]).

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::decode::decode;
use crate::encode::encode;
use crate::error::DecodeError;
use crate::packet::{Packet, Version};
use crate::wire::peek_varint;

/// The default maximum packet size the server accepts: RabbitMQ's
/// `mqtt.max_packet_size_authenticated` default (256 MiB is the protocol's own
/// limit; RabbitMQ uses 256 MiB too, Warren is stricter by default).
pub const DEFAULT_MAX_PACKET_SIZE: usize = 16 * 1024 * 1024;
/// Before CONNECT is accepted, as RabbitMQ's `max_packet_size_unauthenticated`.
pub const UNAUTHENTICATED_MAX_PACKET_SIZE: usize = 65_536;

#[derive(Debug, Clone)]
pub struct MqttCodec {
    version: Option<Version>,
    /// Whole packet (fixed header included), as MQTT 5's Maximum Packet Size.
    max_packet_size: usize,
    /// Bytes consumed so far (keep-alive counts any traffic).
    received: u64,
}

impl MqttCodec {
    pub fn new(max_packet_size: usize) -> MqttCodec {
        MqttCodec {
            version: None,
            max_packet_size,
            received: 0,
        }
    }

    pub fn version(&self) -> Option<Version> {
        self.version
    }

    pub fn set_version(&mut self, v: Version) {
        self.version = Some(v);
    }

    pub fn set_max_packet_size(&mut self, n: usize) {
        self.max_packet_size = n;
    }

    pub fn bytes_received(&self) -> u64 {
        self.received
    }
}

impl Decoder for MqttCodec {
    type Item = Packet;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        if src.len() < 2 {
            return Ok(None);
        }
        let Some((len, n)) = peek_varint(&src[1..])? else {
            return Ok(None);
        };
        let total = 1 + n + len as usize;
        if total > self.max_packet_size {
            return Err(DecodeError::TooLarge {
                size: total,
                max: self.max_packet_size,
            });
        }
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let first = src[0];
        src.advance(1 + n);
        let body = src.split_to(len as usize).freeze();
        self.received += total as u64;
        let packet = decode(first, body, self.version)?;
        if let Packet::Connect(c) = &packet {
            if self.version.is_none() {
                self.version = Some(c.version);
            }
        }
        Ok(Some(packet))
    }
}

/// For clients (tests, the load generator): encode packets for the version
/// set with [`MqttCodec::set_version`] (3.1.1 until then; CONNECT carries its own).
impl Encoder<&Packet> for MqttCodec {
    type Error = std::io::Error;

    fn encode(&mut self, p: &Packet, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        let v = match p {
            Packet::Connect(c) => c.version,
            _ => self.version.unwrap_or(Version::V3_1_1),
        };
        encode(p, v, dst);
        Ok(())
    }
}
