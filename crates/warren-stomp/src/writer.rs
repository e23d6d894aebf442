//! The STOMP side of a connection's outbound half: what an item is (a ready
//! frame, or a delivery) and how it is encoded. The FIFO, the batched writer
//! task and consumer backpressure are the core's ([`warren_core::outlet`]).
//!
//! Why deliveries are not `Frame`s: a MESSAGE's headers come from the
//! subscription (fixed), the delivery (tag, redelivered) and the message's AMQP
//! properties. Building a `Frame` would copy all of them into a header buffer
//! and then copy again into the output; instead the encoder writes them
//! straight into the output buffer with [`FrameWriter`](crate::FrameWriter), and
//! the body is copied exactly once, from the shared message into that buffer.

use bytes::{Bytes, BytesMut};
use std::io::Write;
use std::sync::Arc;
use warren_core::outlet::WireEncoder;
use warren_core::properties::RawProperties;
use warren_core::{BasicProperties, Message};

use crate::command::Command;
use crate::destination;
use crate::encode::StompEncoder;
use crate::frame::Frame;
use crate::mapping;
use crate::version::{Dialect, Version};

/// A connection's outlet.
pub type Outlet = warren_core::outlet::Outlet<Outbound>;

/// One item for the writer.
pub enum Outbound {
    Frame(Frame),
    Message(Delivery),
}

/// What the MESSAGE headers of one subscription's deliveries share.
#[derive(Debug)]
pub struct SubInfo {
    /// The consumer tag: `T_<id>`, or `Q_<destination>` for a 1.0 SUBSCRIBE
    /// without id (the first part of every `message-id`).
    pub tag: Bytes,
    /// The `subscription` header: the id (absent for `Q_` tags, as RabbitMQ).
    pub subscription: Option<Bytes>,
    /// Send the STOMP 1.2 `ack` header (client acknowledgement modes).
    pub ack_header: bool,
}

/// A message for a subscription.
pub struct Delivery {
    pub sub: Arc<SubInfo>,
    pub tag: u64,
    pub redelivered: bool,
    pub message: Arc<Message>,
}

impl Outbound {
    /// Roughly the encoded size, for the outlet's backpressure accounting.
    pub fn size(&self) -> usize {
        match self {
            Outbound::Frame(f) => 64 + f.body.len(),
            Outbound::Message(d) => 256 + d.message.body.len() + d.message.properties.len(),
        }
    }
}

/// Queues `item` on the outlet.
pub fn send(outlet: &Outlet, item: Outbound) {
    let size = item.size();
    outlet.send(item, size);
}

/// Encodes frames for one connection.
pub struct StompWire {
    encoder: StompEncoder,
    /// The session id, the middle part of every `message-id`.
    session: Bytes,
    /// Reused buffers: `message-id`, `destination`, formatted values.
    id_buf: Vec<u8>,
    dest_buf: Vec<u8>,
    scratch: Vec<u8>,
    /// One write per frame (WebSocket: one frame per message).
    frame_per_write: bool,
}

impl StompWire {
    pub fn new(dialect: Dialect, version: Version, session: Bytes, trailing_lf: bool) -> StompWire {
        let mut encoder = StompEncoder::new(dialect, trailing_lf);
        encoder.set_version(version);
        StompWire {
            encoder,
            session,
            id_buf: Vec::new(),
            dest_buf: Vec::new(),
            scratch: Vec::new(),
            frame_per_write: false,
        }
    }

    /// Write every frame (and heart-beat) on its own, for transports where a
    /// write is a message (STOMP over WebSocket).
    pub fn frame_per_write(mut self, yes: bool) -> StompWire {
        self.frame_per_write = yes;
        self
    }

    fn write_message(&mut self, out: &mut BytesMut, d: &Delivery) {
        let m = &d.message;
        // `<tag>@@<session>@@<delivery tag>`
        self.id_buf.clear();
        self.id_buf.extend_from_slice(&d.sub.tag);
        self.id_buf.extend_from_slice(b"@@");
        self.id_buf.extend_from_slice(&self.session);
        self.id_buf.extend_from_slice(b"@@");
        let _ = write!(self.id_buf, "{}", d.tag);
        self.dest_buf.clear();
        destination::format(
            m.exchange.as_bytes(),
            m.routing_key.as_bytes(),
            &mut self.dest_buf,
        );
        let hint = 200 + self.id_buf.len() * 2 + m.properties.len() + m.body.len();
        let mut w = self.encoder.writer(out, &Command::Message, hint);
        if let Some(s) = &d.sub.subscription {
            w.header(b"subscription", s);
        }
        w.header(b"destination", &self.dest_buf);
        w.header(b"message-id", &self.id_buf);
        let redelivered: &[u8] = if d.redelivered { b"true" } else { b"false" };
        w.header(b"redelivered", redelivered);
        if d.sub.ack_header {
            w.header(b"ack", &self.id_buf);
        }
        // Only messages that carry properties pay for decoding them.
        if RawProperties::flags(&m.properties) != 0 {
            let props = BasicProperties::decode(&m.properties).unwrap_or_default();
            mapping::message_headers(&props, &mut self.scratch, |n, v| {
                w.header(n, v);
            });
        }
        w.finish(&m.body);
    }
}

impl WireEncoder<Outbound> for StompWire {
    fn encode(&mut self, out: &mut BytesMut, item: &Outbound) {
        match item {
            Outbound::Frame(f) => self.encoder.encode_frame(f, out),
            Outbound::Message(d) => self.write_message(out, d),
        }
    }

    fn heartbeat(&mut self, out: &mut BytesMut) {
        StompEncoder::encode_heartbeat(out);
    }

    fn item_per_write(&self) -> bool {
        self.frame_per_write
    }
}
