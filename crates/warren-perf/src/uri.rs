//! `amqp://user:pass@host:port/vhost` URIs, as RabbitMQ's URI spec describes them,
//! and their STOMP twin `stomp://user:pass@host:port/vhost` (default port 61613;
//! the vhost goes into CONNECT's `host` header, as RabbitMQ's STOMP plugin reads it).
//!
//! `amqps://`, `stomps://` and `mqtts://` are the same over TLS (default ports
//! 5671, 61614, 8883; see `crate::tls`). Query parameters are accepted and
//! ignored, so URIs copied from other tools still work.

use clap::ValueEnum;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The wire protocol a run speaks.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Amqp,
    Stomp,
    /// MQTT 3.1.1 (the vhost, if not "/", goes into the username as `vhost:user`,
    /// as RabbitMQ's MQTT plugin reads it).
    Mqtt,
}

impl Protocol {
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Amqp => "amqp",
            Protocol::Stomp => "stomp",
            Protocol::Mqtt => "mqtt",
        }
    }

    /// RabbitMQ's TLS ports.
    pub fn default_tls_port(self) -> u16 {
        match self {
            Protocol::Amqp => 5671,
            Protocol::Stomp => 61614,
            Protocol::Mqtt => 8883,
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Amqp => 5672,
            Protocol::Stomp => 61613,
            Protocol::Mqtt => 1883,
        }
    }
}

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpUri {
    /// From the scheme: `amqp://` or `stomp://`.
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
    /// From an `amqps://`, `stomps://` or `mqtts://` scheme: TLS.
    pub tls: bool,
}

impl Default for AmqpUri {
    fn default() -> Self {
        AmqpUri {
            protocol: Protocol::Amqp,
            host: "127.0.0.1".into(),
            port: 5672,
            user: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            tls: false,
        }
    }
}

impl fmt::Display for AmqpUri {
    /// The URI without the password, for reports and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}://{}@{}/{}",
            self.protocol.scheme(),
            if self.tls { "s" } else { "" },
            self.user,
            authority(&self.host, self.port),
            percent_encode(&self.vhost, b"-._~")
        )
    }
}

/// `host:port`, an IPv6 host in brackets (as in every URL this crate takes).
pub(crate) fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Split `host[:port]` or `[v6 host][:port]` into host and port text; None
/// when a `[` is not closed.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        Some((host, after.strip_prefix(':')))
    } else {
        Some(match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        })
    }
}

/// Percent-encode all but ASCII letters, digits and the bytes in `keep`.
pub(crate) fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

impl FromStr for AmqpUri {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?}: expected amqp://user:pass@host:port/vhost"))?;
        let lower = scheme.to_ascii_lowercase();
        let tls = matches!(lower.as_str(), "amqps" | "stomps" | "mqtts");
        let scheme = if tls {
            &scheme[..scheme.len() - 1]
        } else {
            scheme
        };
        let protocol = if scheme.eq_ignore_ascii_case("amqp") {
            Protocol::Amqp
        } else if scheme.eq_ignore_ascii_case("stomp") {
            Protocol::Stomp
        } else if scheme.eq_ignore_ascii_case("mqtt") {
            Protocol::Mqtt
        } else {
            return Err(format!(
                "{s:?}: unknown scheme {scheme:?}, expected amqp, stomp or mqtt"
            ));
        };
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let mut uri = AmqpUri {
            protocol,
            port: if tls {
                protocol.default_tls_port()
            } else {
                protocol.default_port()
            },
            tls,
            ..AmqpUri::default()
        };
        let hostport = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                uri.user = percent_decode(user)?;
                uri.password = percent_decode(pass)?;
                hostport
            }
            None => authority,
        };
        let (host, port) =
            split_host_port(hostport).ok_or_else(|| format!("{s:?}: unterminated IPv6 address"))?;
        if !host.is_empty() {
            uri.host = percent_decode(host)?;
        }
        if let Some(p) = port.filter(|p| !p.is_empty()) {
            uri.port = p.parse().map_err(|_| format!("{s:?}: bad port {p:?}"))?;
        }
        // The spec makes `amqp://host/` name the vhost "", which no broker has;
        // every client library treats it as the default vhost, and so do we.
        if let Some(path) = path {
            let vhost = percent_decode(path)?;
            if !vhost.is_empty() {
                uri.vhost = vhost;
            }
        }
        Ok(uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_uri() {
        let u: AmqpUri = "amqp://bob:s%40cret@example.com:5673/prod%2Fa"
            .parse()
            .unwrap();
        assert_eq!(u.user, "bob");
        assert_eq!(u.password, "s@cret");
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, 5673);
        assert_eq!(u.vhost, "prod/a");
    }

    #[test]
    fn defaults_and_default_vhost() {
        let u: AmqpUri = "amqp://localhost".parse().unwrap();
        assert_eq!(
            (u.port, u.user.as_str(), u.vhost.as_str()),
            (5672, "guest", "/")
        );
        let u: AmqpUri = "amqp://guest:guest@127.0.0.1:5672/%2F".parse().unwrap();
        assert_eq!(u.vhost, "/");
        let u: AmqpUri = "amqp://[::1]:5700/v?heartbeat=10".parse().unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.vhost.as_str()),
            ("::1", 5700, "v")
        );
        let u: AmqpUri = "amqps://x".parse().unwrap();
        assert_eq!((u.tls, u.port), (true, 5671));
        assert_eq!(u.to_string(), "amqps://guest@x:5671/%2F");
        let u: AmqpUri = "mqtts://x".parse().unwrap();
        assert_eq!((u.protocol, u.tls, u.port), (Protocol::Mqtt, true, 8883));
        assert!("amqp://x:notaport".parse::<AmqpUri>().is_err());
        assert!("http://x".parse::<AmqpUri>().is_err());
    }

    #[test]
    fn stomp_uris() {
        let u: AmqpUri = "stomp://guest:guest@127.0.0.1:61614/".parse().unwrap();
        assert_eq!(
            (u.protocol, u.port, u.vhost.as_str()),
            (Protocol::Stomp, 61614, "/")
        );
        let u: AmqpUri = "stomp://localhost".parse().unwrap();
        assert_eq!((u.protocol, u.port), (Protocol::Stomp, 61613));
        assert_eq!(u.to_string(), "stomp://guest@localhost:61613/%2F");
    }
}
