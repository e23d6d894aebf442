//! What an operator configures (`--tls-*` flags, `[tls]`), and the rustls
//! server configuration built from it.

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::Arc;

/// RabbitMQ's `ssl_options.verify`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verify {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A client certificate is asked for and, if sent, must be signed by the
    /// CA (`--tls-ca`); without `fail_if_no_peer_cert` a client may send none.
    Peer,
}

impl std::str::FromStr for Verify {
    type Err = String;
    fn from_str(s: &str) -> Result<Verify, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "verify_none" => Ok(Verify::None),
            "peer" | "verify_peer" => Ok(Verify::Peer),
            other => Err(format!("tls verify: expected none or peer, got '{other}'")),
        }
    }
}

/// Which certificate field names the user of a certificate login
/// (RabbitMQ's `ssl_cert_login_from`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoginFrom {
    #[default]
    CommonName,
    DistinguishedName,
}

impl std::str::FromStr for LoginFrom {
    type Err = String;
    fn from_str(s: &str) -> Result<LoginFrom, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "common_name" | "cn" => Ok(LoginFrom::CommonName),
            "distinguished_name" | "dn" => Ok(LoginFrom::DistinguishedName),
            other => Err(format!(
                "tls cert_login_from: expected common_name or distinguished_name, got '{other}'"
            )),
        }
    }
}

/// Everything the TLS listeners are configured with.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    /// The server's certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to.
    pub ca: Option<PathBuf>,
    pub verify: Verify,
    /// Refuse the handshake of a client that sends no certificate.
    pub fail_if_no_peer_cert: bool,
    /// "tlsv1.2", "tlsv1.3" (also "1.2", "TLSv1.3"); empty: both.
    pub versions: Vec<String>,
    /// Cipher suites by IANA ("TLS_AES_256_GCM_SHA384",
    /// "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256") or OpenSSL name
    /// ("ECDHE-RSA-AES128-GCM-SHA256"), in order of preference; empty: all
    /// of rustls's.
    pub ciphers: Vec<String>,
    pub login_from: LoginFrom,
}

/// The suites rustls (ring) offers with their IANA and OpenSSL names.
pub fn suite_names(s: SupportedCipherSuite) -> (String, String) {
    let rustls_name = format!("{:?}", s.suite());
    let iana = rustls_name.replacen("TLS13_", "TLS_", 1);
    let openssl = if rustls_name.starts_with("TLS13_") {
        iana.clone()
    } else {
        // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 -> ECDHE-RSA-AES128-GCM-SHA256
        let body = iana.trim_start_matches("TLS_").replace("_WITH_", "_");
        body.replace("AES_128", "AES128")
            .replace("AES_256", "AES256")
            .replace("CHACHA20_POLY1305_SHA256", "CHACHA20_POLY1305")
            .replace('_', "-")
    };
    (iana, openssl)
}

fn normalize(name: &str) -> String {
    name.trim().to_ascii_uppercase().replace('-', "_")
}

impl TlsSettings {
    /// The protocol versions to enable.
    pub(crate) fn protocol_versions(
        &self,
    ) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
        if self.versions.is_empty() {
            return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
        }
        let mut out = Vec::new();
        for v in &self.versions {
            let norm = v.trim().to_ascii_lowercase();
            let norm = norm.trim_start_matches("tlsv").trim_start_matches("tls");
            let version: &'static SupportedProtocolVersion = match norm {
                "1.3" => &rustls::version::TLS13,
                "1.2" => &rustls::version::TLS12,
                _ => {
                    return Err(format!(
                        "tls versions: '{v}' is not supported (tlsv1.2, tlsv1.3)"
                    ))
                }
            };
            out.push(version);
        }
        Ok(out)
    }

    /// ring's provider limited to the configured suites, in their order.
    pub(crate) fn provider(&self) -> Result<CryptoProvider, String> {
        let mut provider = rustls::crypto::ring::default_provider();
        if self.ciphers.is_empty() {
            return Ok(provider);
        }
        let all = provider.cipher_suites.clone();
        let mut chosen = Vec::new();
        for want in &self.ciphers {
            let w = normalize(want);
            let found = all.iter().find(|s| {
                let (iana, openssl) = suite_names(**s);
                normalize(&iana) == w
                    || normalize(&openssl) == w
                    || normalize(&format!("{:?}", s.suite())) == w
            });
            match found {
                Some(s) => chosen.push(*s),
                None => {
                    let known: Vec<String> = all.iter().map(|s| suite_names(*s).0).collect();
                    return Err(format!(
                        "tls ciphers: unknown or unsupported suite '{want}' (supported: {})",
                        known.join(", ")
                    ));
                }
            }
        }
        provider.cipher_suites = chosen;
        Ok(provider)
    }

    /// The certificate chain and private key files.
    pub(crate) fn cert_and_key(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| format!("tls cert {}: {e}", self.cert.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls cert {}: {e}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "tls cert {}: no certificate in it",
                self.cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("tls key {}: {e}", self.key.display()))?;
        Ok((certs, key))
    }

    /// The CA file's certificates (verify peer needs one).
    pub(crate) fn roots(&self) -> Result<RootCertStore, String> {
        let Some(ca) = &self.ca else {
            return Err("tls verify peer needs a CA file (--tls-ca)".into());
        };
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("tls ca {}: {e}", ca.display()))?
        {
            let c = c.map_err(|e| format!("tls ca {}: {e}", ca.display()))?;
            roots
                .add(c)
                .map_err(|e| format!("tls ca {}: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("tls ca {}: no certificate in it", ca.display()));
        }
        Ok(roots)
    }

    /// Read the files and build the server configuration.
    pub fn server_config(&self) -> Result<ServerConfig, String> {
        let (certs, key) = self.cert_and_key()?;
        let provider = Arc::new(self.provider()?);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.protocol_versions()?)
            .map_err(|e| format!("tls: {e}"))?;
        let builder = match self.verify {
            Verify::None => builder.with_no_client_auth(),
            Verify::Peer => {
                let roots = self.roots()?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if self.fail_if_no_peer_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier.build().map_err(|e| format!("tls ca: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("tls cert/key: {e}"))?;
        // Honour the configured suite order, as RabbitMQ's
        // honor_cipher_order would.
        config.ignore_client_order = !self.ciphers.is_empty();
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_suites() {
        let p = rustls::crypto::ring::default_provider();
        let names: Vec<(String, String)> =
            p.cipher_suites.iter().map(|s| suite_names(*s)).collect();
        assert!(names.contains(&(
            "TLS_AES_256_GCM_SHA384".into(),
            "TLS_AES_256_GCM_SHA384".into()
        )));
        assert!(names.contains(&(
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
            "ECDHE-RSA-AES128-GCM-SHA256".into()
        )));
        assert!(names.contains(&(
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256".into(),
            "ECDHE-ECDSA-CHACHA20-POLY1305".into()
        )));
    }

    #[test]
    fn chooses_suites_and_versions_by_name() {
        let s = TlsSettings {
            ciphers: vec![
                "ECDHE-RSA-AES256-GCM-SHA384".into(),
                "tls_aes_128_gcm_sha256".into(),
            ],
            versions: vec!["tlsv1.2".into()],
            ..Default::default()
        };
        assert_eq!(s.provider().unwrap().cipher_suites.len(), 2);
        assert_eq!(s.protocol_versions().unwrap().len(), 1);
        let bad = TlsSettings {
            ciphers: vec!["RC4-MD5".into()],
            versions: vec!["sslv3".into()],
            ..Default::default()
        };
        assert!(bad.provider().unwrap_err().contains("RC4-MD5"));
        assert!(bad.protocol_versions().is_err());
    }
}
