//! What Warren's web listeners share, so each protocol's web adapter is only
//! its routes:
//!
//! * [`listener`]: hyper's HTTP/1 server on a TCP listener, giving handlers
//!   the client's two socket ends ([`ClientEnds`]) as `ConnectInfo`.
//! * [`websocket`]: a WebSocket as the two halves a protocol adapter's
//!   connection loop reads and writes (bytes in, one message per write out),
//!   so STOMP or MQTT over WebSocket is the TCP adapter unchanged.
//! * [`origin`]: which pages' `Origin` a web listener accepts.
//! * [`takeover`]: a response that takes its connection out of hyper once
//!   its head is written (SSE feeds write their events straight to the socket).

pub mod listener;
pub mod origin;
pub mod takeover;
pub mod websocket;

pub use listener::{serve, serve_with, ClientEnds};
pub use origin::Origins;
pub use takeover::Takeover;
pub use websocket::{byte_stream, byte_stream_closing, Framing};
