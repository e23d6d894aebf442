//! The TLS part of the server's configuration: `--tls-*` flags (and their
//! `WARREN_TLS_*` variables) over the config file's `[tls]` section, and
//! the TLS listeners' ports.

use crate::config::FileConfig;
use clap::Args;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use warren_tls::{LoginFrom, Tls, TlsSettings, Verify};

#[derive(Args, Debug, Default)]
pub struct TlsArgs {
    /// AMQP 0-9-1 over TLS port (default 5671 when a certificate is
    /// configured); 0 disables it.
    #[arg(long, env = "WARREN_AMQPS_PORT")]
    pub amqps_port: Option<u16>,
    /// STOMP over TLS port (default 61614 when a certificate is configured);
    /// 0 disables it.
    #[arg(long, env = "WARREN_STOMPS_PORT")]
    pub stomps_port: Option<u16>,
    /// MQTT over TLS port (default 8883 when a certificate is configured);
    /// 0 disables it.
    #[arg(long, env = "WARREN_MQTTS_PORT")]
    pub mqtts_port: Option<u16>,
    /// Serve the management HTTP API, Web-STOMP/SSE and Web-MQTT over TLS
    /// (HTTPS, WSS) on their usual ports.
    #[arg(long, env = "WARREN_HTTP_TLS", num_args = 0..=1, default_missing_value = "true")]
    pub http_tls: Option<bool>,
    /// The server's certificate chain (PEM, leaf first). TLS listeners start
    /// only when one is configured.
    #[arg(long, env = "WARREN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "WARREN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must be signed by.
    #[arg(long, env = "WARREN_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// `none` (default): no client certificate is asked for; `peer`: one is
    /// asked for and verified against --tls-ca (RabbitMQ's verify_peer).
    #[arg(long, env = "WARREN_TLS_VERIFY")]
    pub tls_verify: Option<String>,
    /// With `peer`: refuse clients that send no certificate.
    #[arg(long, env = "WARREN_TLS_FAIL_IF_NO_PEER_CERT", num_args = 0..=1, default_missing_value = "true")]
    pub tls_fail_if_no_peer_cert: Option<bool>,
}

/// `[tls]` in the config file (RabbitMQ's `ssl_options.*`, `ssl_cert_login_from`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    /// "none" or "peer".
    pub verify: Option<String>,
    pub fail_if_no_peer_cert: Option<bool>,
    /// e.g. ["tlsv1.3"] (default both 1.2 and 1.3).
    #[serde(default)]
    pub versions: Vec<String>,
    /// IANA or OpenSSL names, in preference order (default: rustls's).
    #[serde(default)]
    pub ciphers: Vec<String>,
    /// "common_name" (default) or "distinguished_name": the user of a
    /// certificate login.
    pub cert_login_from: Option<String>,
    /// STOMP and MQTT clients without credentials log in by their verified
    /// certificate (RabbitMQ's `ssl_cert_login`; default true).
    pub cert_login: Option<bool>,
    /// HTTPS/WSS for the HTTP API, Web-STOMP and Web-MQTT.
    pub http: Option<bool>,
    pub amqps_port: Option<u16>,
    pub stomps_port: Option<u16>,
    pub mqtts_port: Option<u16>,
}

/// The TLS configuration in force.
pub struct TlsSetup {
    pub tls: Arc<Tls>,
    pub amqps_port: u16,
    pub stomps_port: u16,
    pub mqtts_port: u16,
    pub http: bool,
}

/// None when no certificate is configured (then no TLS listener starts).
pub fn resolve(args: &TlsArgs, file: &FileConfig) -> Result<Option<TlsSetup>, String> {
    let f = file.tls.as_ref();
    let pick = |a: &Option<PathBuf>, b: Option<&PathBuf>| a.clone().or_else(|| b.cloned());
    let Some(cert) = pick(&args.tls_cert, f.and_then(|f| f.cert.as_ref())) else {
        if args.http_tls.unwrap_or(false) || args.tls_key.is_some() {
            return Err("TLS needs a certificate: --tls-cert FILE (and --tls-key FILE)".into());
        }
        return Ok(None);
    };
    let key = pick(&args.tls_key, f.and_then(|f| f.key.as_ref()))
        .ok_or("--tls-cert needs --tls-key FILE (the certificate's private key)")?;
    let verify: Verify = match args
        .tls_verify
        .clone()
        .or_else(|| f.and_then(|f| f.verify.clone()))
    {
        Some(v) => v.parse()?,
        None => Verify::None,
    };
    let login_from: LoginFrom = match f.and_then(|f| f.cert_login_from.clone()) {
        Some(v) => v.parse()?,
        None => LoginFrom::CommonName,
    };
    let fail_if_no_peer_cert = args
        .tls_fail_if_no_peer_cert
        .or_else(|| f.and_then(|f| f.fail_if_no_peer_cert))
        .unwrap_or(false);
    if fail_if_no_peer_cert && verify == Verify::None {
        tracing::warn!("tls fail_if_no_peer_cert has no effect with verify none");
    }
    let settings = TlsSettings {
        cert,
        key,
        ca: pick(&args.tls_ca, f.and_then(|f| f.ca.as_ref())),
        verify,
        fail_if_no_peer_cert,
        versions: f.map(|f| f.versions.clone()).unwrap_or_default(),
        ciphers: f.map(|f| f.ciphers.clone()).unwrap_or_default(),
        login_from,
    };
    let cert_login = f.and_then(|f| f.cert_login).unwrap_or(true);
    let tls = Tls::load(settings, cert_login)?;
    Ok(Some(TlsSetup {
        tls,
        amqps_port: args
            .amqps_port
            .or_else(|| f.and_then(|f| f.amqps_port))
            .unwrap_or(5671),
        stomps_port: args
            .stomps_port
            .or_else(|| f.and_then(|f| f.stomps_port))
            .unwrap_or(61614),
        mqtts_port: args
            .mqtts_port
            .or_else(|| f.and_then(|f| f.mqtts_port))
            .unwrap_or(8883),
        http: args
            .http_tls
            .or_else(|| f.and_then(|f| f.http))
            .unwrap_or(false),
    }))
}
