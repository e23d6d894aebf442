//! The MQTT side of a connection's outbound half: items (ready packets, or
//! deliveries) and their encoder. The FIFO, the batched writer task and
//! consumer backpressure are the core's ([`warren_core::outlet`]).
//!
//! A delivery is not a `Packet`: its topic comes from the message's routing
//! key and is written straight into the output buffer, and the payload is
//! copied once, from the shared message body. Outgoing topic aliases live
//! here, in the writer task, because only the writer knows the order in which
//! PUBLISH packets reach the client.

use bytes::{BufMut, Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::Arc;
use warren_core::outlet::WireEncoder;
use warren_core::Message;

use crate::encode::encode;
use crate::packet::{Packet, QoS, Version};
use crate::props::Props;
use crate::topic;
use crate::wire::{put_binary, put_varint, varint_len};

pub type Outlet = warren_core::outlet::Outlet<Outbound>;

pub enum Outbound {
    Packet(Packet),
    Delivery(Delivery),
}

/// A message for the client.
pub struct Delivery {
    pub message: Arc<Message>,
    /// Present iff `qos` > 0.
    pub packet_id: Option<u16>,
    pub qos: QoS,
    pub dup: bool,
    pub retain: bool,
    /// MQTT 5 properties (subscription identifiers included); none for 3.1.1.
    pub properties: Props,
}

impl Outbound {
    /// Roughly the encoded size, for the outlet's backpressure accounting.
    pub fn size(&self) -> usize {
        match self {
            Outbound::Packet(Packet::Publish(p)) => 32 + p.topic.len() + p.payload.len(),
            Outbound::Packet(_) => 32,
            Outbound::Delivery(d) => 64 + d.message.routing_key.len() + d.message.body.len(),
        }
    }
}

pub fn send(outlet: &Outlet, item: Outbound) {
    let size = item.size();
    outlet.send(item, size);
}

pub fn send_packet(outlet: &Outlet, p: Packet) {
    send(outlet, Outbound::Packet(p));
}

/// Encodes one connection's packets.
pub struct MqttWire {
    version: Version,
    topic: Vec<u8>,
    /// Topic → alias, for MQTT 5 clients that accept aliases.
    aliases: HashMap<Bytes, u16>,
    alias_max: u16,
    /// One write per packet (WebSocket transports).
    packet_per_write: bool,
}

impl MqttWire {
    pub fn new(version: Version, alias_max: u16) -> MqttWire {
        MqttWire {
            version,
            topic: Vec::new(),
            aliases: HashMap::new(),
            alias_max: if version.is_v5() { alias_max } else { 0 },
            packet_per_write: false,
        }
    }

    pub fn packet_per_write(mut self, yes: bool) -> MqttWire {
        self.packet_per_write = yes;
        self
    }

    fn write_delivery(&mut self, out: &mut BytesMut, d: &Delivery) {
        topic::from_amqp(d.message.routing_key.as_bytes(), &mut self.topic);
        // An alias already known to the client replaces the topic; a new one
        // is announced with it.
        let mut props = std::borrow::Cow::Borrowed(&d.properties);
        let mut send_topic = true;
        if self.alias_max > 0 {
            if let Some(&a) = self.aliases.get(&self.topic[..]) {
                props.to_mut().topic_alias = Some(a);
                send_topic = false;
            } else if (self.aliases.len() as u16) < self.alias_max {
                let a = self.aliases.len() as u16 + 1;
                self.aliases.insert(Bytes::copy_from_slice(&self.topic), a);
                props.to_mut().topic_alias = Some(a);
            }
        }
        let topic_len = if send_topic { self.topic.len() } else { 0 };
        let props_len = if self.version.is_v5() {
            props.encoded_len()
        } else {
            0
        };
        let body = 2 + topic_len + d.packet_id.map_or(0, |_| 2) + props_len + d.message.body.len();
        out.reserve(1 + varint_len(body as u32) + body);
        out.put_u8(3 << 4 | (d.dup as u8) << 3 | (d.qos as u8) << 1 | d.retain as u8);
        put_varint(out, body as u32);
        put_binary(out, if send_topic { &self.topic } else { b"" });
        if let Some(id) = d.packet_id {
            out.put_u16(id);
        }
        if self.version.is_v5() {
            props.encode(out);
        }
        out.put_slice(&d.message.body);
    }
}

impl WireEncoder<Outbound> for MqttWire {
    fn encode(&mut self, out: &mut BytesMut, item: &Outbound) {
        match item {
            Outbound::Packet(p) => encode(p, self.version, out),
            Outbound::Delivery(d) => self.write_delivery(out, d),
        }
    }

    /// MQTT's keep-alive is the client's job (PINGREQ); the server sends nothing.
    fn heartbeat(&mut self, _out: &mut BytesMut) {}

    fn item_per_write(&self) -> bool {
        self.packet_per_write
    }
}
