//! MQTT 3.1, 3.1.1 and 5.0 for Warren, behaving as RabbitMQ's MQTT plugin where
//! it has behaviour and as the MQTT 5 specification beyond it.
//!
//! Two layers, as in the STOMP adapter:
//!
//! * The packet layer knows bytes and packets only: [`wire`] (data types),
//!   [`properties`], [`reason`], [`packet`], [`decode`], [`encode`], [`codec`]
//!   (framing and the maximum packet size).
//! * The adapter turns packets into broker-core calls: [`server`] (listener),
//!   [`connection`] (CONNECT, read loop, keep-alive, will, closing),
//!   [`session`] (PUBLISH, SUBSCRIBE, acks), [`delivery`] (the consumer side:
//!   packet ids, in-flight window), [`topic`] (MQTT topics ↔ AMQP routing keys),
//!   [`retained`] (the retained-message index and its file), [`mapping`]
//!   (MQTT 5 properties ↔ AMQP properties), [`registry`] (client ids:
//!   takeover, session state kept between connections), [`session_state`]
//!   (what a persistent session keeps durably besides its queues), [`writer`].
//!
//! docs/ARCHITECTURE.md, "The MQTT adapter", tells the whole story.
//!
//! Other transports (MQTT over WebSocket) reuse the whole adapter: hand the
//! connection's two halves to [`connection::serve_transport`] with a
//! [`connection::Transport`] whose `packet_per_write` is true (a WebSocket
//! message per packet) and whose `protocol` is what management shows
//! ("Web MQTT"); the codec already copes with packets split over or packed
//! into reads. Clients (a load generator) can use [`MqttCodec`] both ways: it
//! also encodes packets.

pub mod codec;
pub mod config;
pub mod connection;
pub mod decode;
pub mod delivery;
pub mod encode;
pub mod error;
pub mod listing;
pub mod mapping;
pub mod packet;
pub mod properties;
pub mod props;
pub mod publish;
pub mod reader;
pub mod reason;
pub mod registry;
pub mod retained;
pub mod server;
pub mod session;
pub mod session_state;
pub mod topic;
pub mod wire;
pub mod writer;

pub use codec::MqttCodec;
pub use config::MqttConfig;
pub use error::DecodeError;
pub use packet::*;
pub use properties::Properties;
pub use props::Props;
pub use reason::ReasonCode;
pub use registry::Node;
pub use server::{serve, serve_tls};

#[cfg(test)]
mod tests;
