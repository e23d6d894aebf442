//! Socket conventions every protocol adapter shares.
//!
//! Closing a TCP socket that still has unread bytes in its receive buffer makes
//! the kernel answer with a reset (RST) instead of a FIN, and a reset can destroy
//! what the peer has not read yet: the close-ok we just sent included. A client
//! that queued a burst of writes and then asked to close would see EPIPE or
//! ECONNRESET instead of its close confirmation (RabbitMQ's Node client then
//! never fires its close callback). So, like RabbitMQ, after the closing
//! handshake a connection keeps reading and throwing away whatever the client
//! still sends, until the client closes its side or a timeout passes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};

/// RabbitMQ's upper bound on how long a closed connection waits for the client
/// (rabbit_reader's `CLOSING_TIMEOUT`).
pub const CLOSING_TIMEOUT: Duration = Duration::from_secs(30);

/// After a framing error the input can no longer be parsed, so the client's
/// close-ok cannot be recognised: the connection then drops what arrives for at
/// most this long and closes (RabbitMQ's `SILENT_CLOSE_DELAY`).
pub const SILENT_CLOSE_DELAY: Duration = Duration::from_secs(3);

/// How long a closing connection waits for its client: the heartbeat interval
/// when one was negotiated and it is shorter, [`CLOSING_TIMEOUT`] otherwise
/// (RabbitMQ's rule).
pub fn closing_timeout(heartbeat_secs: u64) -> Duration {
    if heartbeat_secs > 0 && Duration::from_secs(heartbeat_secs) < CLOSING_TIMEOUT {
        Duration::from_secs(heartbeat_secs)
    } else {
        CLOSING_TIMEOUT
    }
}

/// Read and discard until the peer closes its side (EOF or an error) or
/// `timeout` passes. Returns the number of bytes discarded.
pub async fn discard_until_eof<R: AsyncRead + Unpin>(reader: &mut R, timeout: Duration) -> u64 {
    let mut scratch = [0u8; 4096];
    let mut discarded = 0u64;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut scratch)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return discarded,
            Ok(Ok(n)) => discarded += n as u64,
        }
    }
}

/// The two ends of a client connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// The client's address.
    pub peer: SocketAddr,
    /// Ours.
    pub local: SocketAddr,
    /// When the socket was accepted: the handshake deadline counts from here
    /// (a TLS handshake included).
    pub accepted: tokio::time::Instant,
    /// What the TLS handshake negotiated; None on a plain TCP listener.
    pub tls: Option<Arc<TlsInfo>>,
}

/// What a TLS connection negotiated, as RabbitMQ's management shows it
/// (`ssl_protocol`, `ssl_cipher`, `ssl_key_exchange`, `ssl_hash`) and what
/// certificate logins read (the verified client certificate). Filled in by
/// the TLS acceptor (warren-tls); plain strings, so the core needs no TLS
/// library.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// "tlsv1.2", "tlsv1.3".
    pub protocol: String,
    /// Erlang's names, as RabbitMQ shows them: "aes_256_gcm".
    pub cipher: String,
    /// "ecdhe_rsa", "ecdhe_ecdsa"; "any" for TLS 1.3.
    pub key_exchange: String,
    /// The MAC: "aead" for every suite rustls offers.
    pub hash: String,
    /// The client's certificate, only when one was presented and verified
    /// against the configured CA (`--tls-verify peer`).
    pub peer_cert: Option<PeerCert>,
    /// The user a certificate login logs in as: the verified certificate's
    /// CN (or its whole subject DN, RabbitMQ's `ssl_cert_login_from`); None
    /// without a verified certificate or without exactly one CN.
    pub login: Option<String>,
    /// Whether STOMP and MQTT clients that send no credentials log in as
    /// [`TlsInfo::login`] (RabbitMQ's `ssl_cert_login`). AMQP's EXTERNAL is
    /// offered whenever `login` is set.
    pub cert_login: bool,
}

/// A verified client certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerCert {
    /// The subject's distinguished name as RabbitMQ formats it
    /// (`peer_cert_subject`, and the user name with
    /// `ssl_cert_login_from = distinguished_name`): "CN=alice,O=Example".
    pub subject: String,
    /// The issuer's, the same way.
    pub issuer: String,
    /// "2026-11-30T12:00:00Z - 2027-11-30T12:00:00Z".
    pub validity: String,
    /// The subject's common name (the last CN), if it has one.
    pub common_name: Option<String>,
}

impl Endpoints {
    /// A plain TCP connection's ends.
    pub fn tcp(peer: SocketAddr, local: SocketAddr) -> Endpoints {
        Endpoints {
            peer,
            local,
            accepted: tokio::time::Instant::now(),
            tls: None,
        }
    }
}

impl Endpoints {
    /// The connection's name as RabbitMQ shows it: "peer -> local".
    pub fn name(&self) -> String {
        format!("{} -> {}", self.peer, self.local)
    }

    /// When a client that has not logged in yet is dropped: `timeout` (the
    /// broker's `handshake_timeout`) after accept, whatever it sent meanwhile.
    pub fn handshake_deadline(&self, timeout: Duration) -> tokio::time::Instant {
        self.accepted + timeout
    }
}

/// Accept connections forever, handing each socket (with Nagle off) and its
/// endpoints to `serve`, which spawns the connection's task (so connections
/// spread over all cores).
pub async fn accept_loop<F>(listener: TcpListener, mut serve: F)
where
    F: FnMut(TcpStream, Endpoints),
{
    // Only if the socket cannot tell its own address (it always can).
    let fallback = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    // A listener bound to one address accepts only on that address: every
    // socket's local end is the listener's, and asking the kernel
    // (`getsockname`) would be one system call more per connect, one of the
    // seven an MQTT connect storm makes. A wildcard listener must ask.
    let fixed = !fallback.ip().is_unspecified() && fallback.port() != 0;
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                let _ = socket.set_nodelay(true);
                let local = match fixed {
                    true => fallback,
                    false => socket.local_addr().unwrap_or(fallback),
                };
                serve(socket, Endpoints::tcp(peer, local));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn closing_timeout_follows_rabbitmq() {
        assert_eq!(closing_timeout(0), CLOSING_TIMEOUT);
        assert_eq!(closing_timeout(5), Duration::from_secs(5));
        assert_eq!(closing_timeout(60), CLOSING_TIMEOUT);
    }

    #[tokio::test]
    async fn discards_until_the_peer_closes() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for _ in 0..100 {
                b.write_all(&[7u8; 100]).await.unwrap();
            }
            // Dropping b is the peer closing its side.
        });
        let n = discard_until_eof(&mut a, Duration::from_secs(10)).await;
        writer.await.unwrap();
        assert_eq!(n, 10_000);
    }

    #[tokio::test]
    async fn gives_up_after_the_timeout() {
        let (mut a, _b) = tokio::io::duplex(64);
        let started = std::time::Instant::now();
        assert_eq!(
            discard_until_eof(&mut a, Duration::from_millis(50)).await,
            0
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}

/// Why a connection ended, for a transport that can tell its peer (a
/// WebSocket's close frame: code and reason). The adapter, which knows the
/// protocol error, and the transport, which sends the close, share it; the
/// first cause set wins (a text message read by the transport is why the
/// adapter then fails to decode).
#[derive(Debug, Default)]
pub struct CloseReason(parking_lot::Mutex<Option<(u16, String)>>);

impl CloseReason {
    /// WebSocket close codes (RFC 6455, 7.4.1).
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;

    /// Record `code` and `reason` unless a cause is recorded already.
    pub fn set(&self, code: u16, reason: impl Into<String>) {
        let mut r = self.0.lock();
        if r.is_none() {
            *r = Some((code, reason.into()));
        }
    }

    pub fn get(&self) -> Option<(u16, String)> {
        self.0.lock().clone()
    }
}

/// This machine's host name (from the kernel, "localhost" if it has none):
/// the host part of node names and what a node advertises to its peers.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
