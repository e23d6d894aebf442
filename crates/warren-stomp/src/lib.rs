//! STOMP 1.0/1.1/1.2 for Warren, behaving like RabbitMQ 3.10's STOMP plugin: the
//! frame layer (codec), and on top of it the adapter that turns frames into
//! broker-core calls ([`server`], [`connection`], [`session`], [`subscription`],
//! [`destination`], [`mapping`], [`transaction`], [`heartbeat`], [`writer`],
//! [`failure`], [`names`]; docs/ARCHITECTURE.md, "The STOMP adapter", tells the
//! whole story).
//!
//! The frame layer only turns bytes into frames and frames into bytes; it knows
//! nothing of sessions, subscriptions or the broker:
//!
//! ```text
//! socket ─ FramedRead<_, StompCodec> ─ Item::{Frame, Heartbeat} ─▶ adapter
//! adapter ─ StompEncoder / FrameWriter ─▶ output buffer ─▶ socket
//! ```
//!
//! One concept per file:
//!
//! * [`command`]: the command line; unknown commands decode (RabbitMQ answers them
//!   with an ERROR frame but keeps the connection), as `Command::Other`.
//! * [`headers`]: headers as offsets into one shared buffer (zero-copy, no
//!   per-header allocation), first occurrence wins, typed accessors.
//! * [`version`]: versions, and the [`Dialect`] that decides escaping and
//!   `content-length` handling: RabbitMQ's (default) or the specification's.
//! * [`decode`]: the resumable decoder and its [`Limits`].
//! * [`encode`]: the serializer, including [`FrameWriter`] for MESSAGE deliveries
//!   straight into the output buffer.
//! * [`error`]: decoding errors (all close the connection without an ERROR frame,
//!   as RabbitMQ does) and the "Bad command" ERROR frame.
//! * [`codec`]: [`StompCodec`], both halves configured together.
//!
//! Why follow RabbitMQ rather than the spec where they differ? Warren replaces
//! RabbitMQ, and clients written against it depend on what it accepts: RabbitMQ
//! unescapes headers in every frame whatever the version, ignores `content-length`
//! except on SEND, and escapes every header it sends. [`Dialect::Spec`] keeps the
//! by-the-book behaviour for the client side (tests, load generator).
//!
//! Driving it from an adapter:
//!
//! 1. `FramedRead::new(socket, StompCodec::new(Config::default()))`.
//! 2. On [`Item::Heartbeat`], note client activity (also compare
//!    [`StompDecoder::bytes_received`] between heart-beat ticks: RabbitMQ counts
//!    any received octet, and a big frame can take longer than a heart-beat period).
//! 3. On CONNECT/STOMP, negotiate, then call `set_version` on the decoder (and on
//!    the encoder the writer uses) before polling for the next frame.
//! 4. On `Err(e)`: close the socket; RabbitMQ sends no ERROR frame for a parse
//!    error (`e.error_frame()` is `None`). Warren's adapter sends one first
//!    (`Invalid frame`, as issue 10 asks), then closes.
//! 5. On `Command::Other`: send [`bad_command_error`] and go on.

pub mod codec;
pub mod command;
pub mod decode;
pub mod encode;
pub mod error;
mod escape;
pub mod frame;
pub mod headers;
pub mod version;

// The adapter: from a socket to broker-core calls and back.
mod cluster;
pub mod connection;
pub mod destination;
pub mod failure;
pub mod heartbeat;
pub mod listing;
pub mod mapping;
pub mod names;
pub mod server;
pub mod session;
pub mod stream_offset;
pub mod subscription;
pub mod transaction;
pub mod writer;

pub use codec::{Config, StompCodec};
pub use command::Command;
pub use decode::{Limits, StompDecoder};
pub use encode::{FrameWriter, StompEncoder};
pub use error::{bad_command_error, DecodeError, Part};
pub use frame::{Frame, Item, SUPPORTED_VERSIONS};
pub use headers::{parse_integer, Headers, HeadersBuilder, IntegerError};
pub use server::{serve, serve_tls};
pub use version::{Dialect, Escaping, Version};

#[cfg(test)]
mod tests;
