//! The TLS acceptor every TLS listener shares, and its accept loop.
//!
//! The handshake runs in the connection's own task, never in the accept
//! loop, so a client that stalls mid-handshake holds only itself up, and at
//! most [`HANDSHAKE_TIMEOUT`]. After it the adapter gets a
//! `TlsStream<TcpStream>`, one more `AsyncRead + AsyncWrite` for the same
//! connection code that serves plain TCP.

use crate::settings::{LoginFrom, TlsSettings};
use parking_lot::RwLock;
use rustls::ServerConfig;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};
use warren_core::net::{Endpoints, TlsInfo};

/// RabbitMQ's `ssl_handshake_timeout` (5 s).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The configured certificates, reloadable. One is shared by every TLS
/// listener of the node.
pub struct Tls {
    settings: TlsSettings,
    /// Swapped whole on reload: a handshake in progress keeps the config it
    /// started with, established connections are not touched.
    current: RwLock<Arc<ServerConfig>>,
    /// Log in STOMP and MQTT clients that send no credentials by their
    /// certificate (RabbitMQ's `ssl_cert_login`).
    cert_login: bool,
}

impl Tls {
    /// Read the certificate, key and CA files; an error names the file.
    pub fn load(settings: TlsSettings, cert_login: bool) -> Result<Arc<Tls>, String> {
        let config = settings.server_config()?;
        Ok(Arc::new(Tls {
            settings,
            current: RwLock::new(Arc::new(config)),
            cert_login,
        }))
    }

    /// Read the files again: new connections use the new certificate, open
    /// ones keep theirs. On error the old configuration stays.
    pub fn reload(&self) -> Result<(), String> {
        let config = self.settings.server_config()?;
        *self.current.write() = Arc::new(config);
        Ok(())
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The server side of a TLS handshake on `tcp`, bounded by
    /// [`HANDSHAKE_TIMEOUT`]; on success `ends.tls` says what was negotiated.
    /// A failed handshake (a plain-text client, an untrusted certificate, no
    /// certificate when one is required) just closes the socket: rustls has
    /// sent the TLS alert where there is one.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        ends: &mut Endpoints,
    ) -> Option<TlsStream<TcpStream>> {
        let config = self.current.read().clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                warn!(peer = %ends.peer, error = %e, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                debug!(peer = %ends.peer, "TLS handshake timed out");
                return None;
            }
        };
        ends.tls = Some(Arc::new(self.info(stream.get_ref().1)));
        Some(stream)
    }

    fn info(&self, conn: &rustls::ServerConnection) -> TlsInfo {
        let protocol = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "tlsv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "tlsv1.2".to_string(),
            Some(v) => format!("{v:?}").to_ascii_lowercase(),
            None => String::new(),
        };
        let suite = conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        let (key_exchange, cipher) = erlang_suite(&suite);
        let peer_cert = conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| crate::cert::parse(leaf));
        let login = peer_cert
            .as_ref()
            .and_then(|c| match self.settings.login_from {
                LoginFrom::CommonName => c.common_name.clone(),
                LoginFrom::DistinguishedName => Some(c.subject.clone()),
            });
        TlsInfo {
            protocol,
            cipher,
            key_exchange,
            hash: "aead".into(),
            peer_cert,
            login,
            cert_login: self.cert_login,
        }
    }
}

/// Erlang's (key exchange, cipher) names of a rustls suite, as RabbitMQ's
/// management shows `ssl_key_exchange` and `ssl_cipher`.
fn erlang_suite(rustls_name: &str) -> (String, String) {
    let kx = if rustls_name.starts_with("TLS13_") {
        "any"
    } else if rustls_name.contains("ECDHE_ECDSA") {
        "ecdhe_ecdsa"
    } else if rustls_name.contains("ECDHE_RSA") {
        "ecdhe_rsa"
    } else {
        ""
    };
    let cipher = if rustls_name.contains("AES_256_GCM") {
        "aes_256_gcm"
    } else if rustls_name.contains("AES_128_GCM") {
        "aes_128_gcm"
    } else if rustls_name.contains("CHACHA20_POLY1305") {
        "chacha20_poly1305"
    } else {
        ""
    };
    (kx.into(), cipher.into())
}

/// Accept TLS connections forever: TCP accept (warren-core's loop), then in
/// the connection's own task the handshake, then `serve`, the adapter's
/// connection function (the same generic one its plain listener runs).
pub async fn accept_loop<F, Fut>(listener: TcpListener, tls: Arc<Tls>, name: &'static str, serve: F)
where
    F: Fn(TlsStream<TcpStream>, Endpoints) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "{name} (TLS) listener started");
    }
    let serve = Arc::new(serve);
    warren_core::net::accept_loop(listener, move |tcp, mut ends| {
        let (tls, serve) = (tls.clone(), serve.clone());
        tokio::spawn(async move {
            if let Some(stream) = tls.accept(tcp, &mut ends).await {
                serve(stream, ends).await;
            }
        });
    })
    .await
}

/// Reload the certificates on SIGHUP and when one of the files changes
/// (checked every few seconds), forever. Errors are logged; the old
/// certificates stay in use.
pub async fn watch(tls: Arc<Tls>) {
    const POLL: Duration = Duration::from_secs(5);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen = stamps(&tls.settings);
    loop {
        let signalled = match hup.as_mut() {
            Some(h) => tokio::select! {
                _ = h.recv() => true,
                _ = tokio::time::sleep(POLL) => false,
            },
            None => {
                tokio::time::sleep(POLL).await;
                false
            }
        };
        let now = stamps(&tls.settings);
        if !signalled && now == seen {
            continue;
        }
        seen = now;
        match tls.reload() {
            Ok(()) => info!(
                cert = %tls.settings.cert.display(),
                "TLS certificates reloaded ({})",
                if signalled { "SIGHUP" } else { "file changed" }
            ),
            Err(e) => warn!("TLS certificates not reloaded, keeping the old ones: {e}"),
        }
    }
}

/// Modification times of the configured files.
fn stamps(s: &TlsSettings) -> Vec<Option<SystemTime>> {
    [Some(&s.cert), Some(&s.key), s.ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}
