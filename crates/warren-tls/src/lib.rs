//! TLS for every Warren listener (AMQPS, STOMPS, MQTTS, HTTPS and WSS), with
//! rustls on ring.
//!
//! One implementation: [`Tls`] holds the configuration (reloaded on SIGHUP
//! or when its files change), [`accept_loop`] accepts TCP, runs the
//! handshake in the connection's task and hands the encrypted stream to the
//! adapter's usual connection function, which is generic over
//! `AsyncRead + AsyncWrite`. What was negotiated, and the verified client
//! certificate, travel with the connection's [`warren_core::net::Endpoints`]
//! to management (`ssl`, `ssl_protocol`, `peer_cert_subject`) and to
//! certificate logins (AMQP's EXTERNAL, STOMP and MQTT without credentials).

mod acceptor;
pub mod cert;
pub mod peer;
mod settings;

pub use acceptor::{accept_loop, watch, Tls, HANDSHAKE_TIMEOUT};
pub use peer::PeerTls;
pub use settings::{suite_names, LoginFrom, TlsSettings, Verify};
pub use tokio_rustls::server::TlsStream;
