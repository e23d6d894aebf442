//! The AMQP side of a connection's outbound half: what an item is (a method, or
//! a method with a message's content) and how it is encoded. The FIFO, the
//! batched writer task and consumer backpressure are the core's
//! ([`warren_core::outlet`]), shared with every adapter.

use crate::codec::{write_content, write_heartbeat, write_method, Method};
use bytes::BytesMut;
use std::sync::Arc;
use warren_core::outlet::WireEncoder;
use warren_core::Message;

pub use warren_core::outlet::{run_writer, OutletReceiver};

/// One item for the writer.
pub enum Outbound {
    Method(u16, Method),
    /// A method with content (deliver, get-ok, return) and the message.
    Content(u16, Method, Arc<Message>),
}

/// An AMQP connection's outlet.
pub type Outlet = warren_core::outlet::Outlet<Outbound>;

/// Queueing AMQP frames on an outlet.
pub trait SendFrames {
    fn send_method(&self, channel: u16, method: Method);
    fn send_content(&self, channel: u16, method: Method, message: Arc<Message>);
}

impl SendFrames for Outlet {
    fn send_method(&self, channel: u16, method: Method) {
        self.send(Outbound::Method(channel, method), 64);
    }

    fn send_content(&self, channel: u16, method: Method, message: Arc<Message>) {
        let size = 128 + message.body.len() + message.properties.len();
        self.send(Outbound::Content(channel, method, message), size);
    }
}

/// Encodes AMQP frames, splitting bodies at the negotiated `frame_max`.
pub struct AmqpEncoder {
    pub frame_max: u32,
}

impl WireEncoder<Outbound> for AmqpEncoder {
    fn encode(&mut self, out: &mut BytesMut, item: &Outbound) {
        match item {
            Outbound::Method(ch, m) => write_method(out, *ch, m),
            Outbound::Content(ch, m, msg) => {
                write_method(out, *ch, m);
                write_content(out, *ch, 60, &msg.properties, &msg.body, self.frame_max);
            }
        }
    }

    fn heartbeat(&mut self, out: &mut BytesMut) {
        write_heartbeat(out);
    }
}
