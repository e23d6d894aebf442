//! TLS for the load generator's connections (amqps://, stomps://, mqtts://):
//! a rustls client and the connection halves the hot loops use, one enum
//! for plain TCP and TLS so every scenario runs over either.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::client::{Error, Result};

/// How TLS connections check the broker (from the command line).
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// CA certificates (PEM) the broker's certificate must chain to; without
    /// it, the system's... none here: give --tls-ca or --tls-insecure.
    pub ca: Option<PathBuf>,
    /// Accept any server certificate (benchmarks on loopback only).
    pub insecure: bool,
    /// A client certificate and key (PEM), for brokers that require one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

static CONFIG: OnceLock<std::result::Result<Arc<ClientConfig>, String>> = OnceLock::new();
static OPTIONS: OnceLock<TlsOptions> = OnceLock::new();

/// Set once, before the first connection.
pub fn configure(options: TlsOptions) {
    let _ = OPTIONS.set(options);
}

fn config() -> Result<Arc<ClientConfig>> {
    CONFIG
        .get_or_init(|| client_config(OPTIONS.get().cloned().unwrap_or_default()))
        .clone()
        .map_err(Error::Other)
}

/// A rustls client configuration from the command line's TLS options (also
/// what `warren ctl` uses for an https:// management API).
pub fn client_config(o: TlsOptions) -> std::result::Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if o.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
    } else {
        let ca =
            o.ca.ok_or("TLS needs --tls-ca FILE (or --tls-insecure on a test machine)")?;
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&ca).map_err(|e| format!("{}: {e}", ca.display()))? {
            roots
                .add(c.map_err(|e| format!("{}: {e}", ca.display()))?)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        builder.with_root_certificates(roots)
    };
    let config = match (o.cert, o.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(&cert)
                .map_err(|e| format!("{}: {e}", cert.display()))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| format!("{}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The TLS handshake on `tcp` with `host` as the server name.
pub(crate) async fn handshake(tcp: TcpStream, host: &str) -> Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| Error::Other(format!("TLS server name {host:?}: {e}")))?;
    tokio_rustls::TlsConnector::from(config()?)
        .connect(name, tcp)
        .await
        .map_err(|e| Error::Other(format!("TLS handshake with {host}: {e}")))
}

/// --tls-insecure: any certificate (the signatures are still checked, so
/// the handshake itself is the real one and costs what it costs).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connection's read half: plain TCP (owned half, no lock) or TLS.
pub(crate) enum ReadHalf {
    Tcp(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// A connection's write half.
pub(crate) enum WriteHalf {
    Tcp(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

/// Split a connected socket, after a TLS handshake when `tls`.
pub(crate) async fn split(tcp: TcpStream, tls: bool, host: &str) -> Result<(ReadHalf, WriteHalf)> {
    if !tls {
        let (r, w) = tcp.into_split();
        return Ok((ReadHalf::Tcp(r), WriteHalf::Tcp(w)));
    }
    let (r, w) = tokio::io::split(handshake(tcp, host).await?);
    Ok((ReadHalf::Tls(r), WriteHalf::Tls(w)))
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            ReadHalf::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            WriteHalf::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_flush(cx),
            WriteHalf::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            WriteHalf::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
