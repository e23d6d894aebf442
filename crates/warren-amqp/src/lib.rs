//! Warren's AMQP 0-9-1 adapter: the wire codec, and the connection and channel
//! state machines that turn AMQP methods into broker-core calls.

pub mod access;
pub mod channel;
pub mod channels;
mod cluster;
pub mod codec;
pub mod connection;
pub mod delivery;
pub mod error;
pub mod events;
pub mod server;
pub mod writer;

pub use server::{serve, serve_tls};
