//! AMQP 0-9-1 frame and method codec.
//!
//! Two layers, kept apart on purpose:
//!
//! * [`frame`]: splits the byte stream into frames (method, content header, content
//!   body, heartbeat) and enforces the framing rules (size limit, frame-end octet).
//!   It is a [`tokio_util::codec::Decoder`], so the connection reads with
//!   `FramedRead<_, FrameDecoder>`; writes go through the `write_*` functions, which
//!   append whole frames to an output buffer so that several frames can be flushed
//!   with one syscall.
//! * [`method`]: the arguments of each method. It is generated from RabbitMQ's
//!   machine-readable spec by `tools/gen_methods.py` and must not be edited by hand.
//!
//! Neither layer knows about connection state: whether a frame is *allowed* where it
//! arrives (a body frame with no publish before it, a heartbeat on channel 1) is the
//! connection's business, which answers those with 505 UNEXPECTED_FRAME. The codec
//! only rejects what cannot be parsed at all.

mod error;
pub mod frame;
pub mod method;
mod wire;

pub use error::MethodDecodeError;
pub use frame::*;
pub use method::*;

#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod tests;
