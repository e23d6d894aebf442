//! TLS between cluster nodes (RabbitMQ's inter-node TLS).
//!
//! Both ends of a link present the node's certificate and must chain to the
//! configured CA: a mutual handshake, whatever `--tls-verify` says for
//! clients. The dialing side checks the chain but not the host name: nodes
//! dial each other by the address a seed list or a join gave, often an IP
//! or a loopback address no certificate names, and the link's cookie
//! handshake that follows names the peer anyway (RabbitMQ's inter-node
//! examples turn `server_name_indication` off for the same reason).
//!
//! The configurations are built from the files for each new link, so a
//! renewed certificate is used by the next link without a restart; links
//! already up keep theirs.

use crate::settings::TlsSettings;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, Error, ServerConfig};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

pub use tokio_rustls::client::TlsStream as ClientTlsStream;
pub use tokio_rustls::server::TlsStream as ServerTlsStream;

/// The node's certificate, key and CA, for links to and from its peers.
#[derive(Debug)]
pub struct PeerTls {
    settings: TlsSettings,
}

impl PeerTls {
    /// Check the files once now (a mistake stops the node at start rather
    /// than at its first link).
    pub fn new(settings: TlsSettings) -> Result<Arc<PeerTls>, String> {
        let peer = PeerTls { settings };
        peer.server_config()?;
        peer.client_config()?;
        Ok(Arc::new(peer))
    }

    fn server_config(&self) -> Result<ServerConfig, String> {
        let (certs, key) = self.settings.cert_and_key()?;
        let provider = Arc::new(self.settings.provider()?);
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.settings.roots()?),
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("tls ca: {e}"))?;
        ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.settings.protocol_versions()?)
            .map_err(|e| format!("tls: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| format!("tls cert/key: {e}"))
    }

    fn client_config(&self) -> Result<ClientConfig, String> {
        let (certs, key) = self.settings.cert_and_key()?;
        let provider = Arc::new(self.settings.provider()?);
        let chain = WebPkiServerVerifier::builder_with_provider(
            Arc::new(self.settings.roots()?),
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("tls ca: {e}"))?;
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.settings.protocol_versions()?)
            .map_err(|e| format!("tls: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(chain)))
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("tls cert/key: {e}"))
    }

    /// The dialing side's handshake on `stream` (to `host`, sent as SNI
    /// when it is a name).
    pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        host: &str,
    ) -> std::io::Result<ClientTlsStream<S>> {
        let config = self.client_config().map_err(std::io::Error::other)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::other(format!("{host}: {e}")))?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await
    }

    /// The accepting side's handshake on `stream`.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> std::io::Result<ServerTlsStream<S>> {
        let config = self.server_config().map_err(std::io::Error::other)?;
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
            .accept(stream)
            .await
    }
}

/// WebPKI's server verification without its host-name check (see the
/// module comment).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
