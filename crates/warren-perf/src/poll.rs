//! `--poll-api`: poll a RabbitMQ-compatible management HTTP API during the
//! throughput scenario, as a dashboard (or RabbitMQ's UI) does: every
//! interval, `GET /api/overview` and `GET /api/queues?page=1&page_size=100`
//! on each API given. Response times (median, p95, max) and failures go into
//! the report, so that one run answers both "what does polling cost the
//! broker's throughput" (compare with a run without it) and "how fast does the
//! API answer under load".
//!
//! The client is a minimal HTTP/1.1 GET over a fresh TCP connection per
//! request (`Connection: close`) with Basic auth: enough for the management
//! API, and no extra dependency.

use crate::client::{Error, Result};
use crate::fmt;
use crate::report::median;
use base64::Engine;
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// What each poll requests, in order.
pub const PATHS: [&str; 2] = ["/api/overview", "/api/queues?page=1&page_size=100"];

/// A request that takes longer counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One management API: `http://user:pass@host:port[/prefix]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// Path prefix before `/api` ("" or e.g. "/mgmt").
    pub prefix: String,
}

impl ApiTarget {
    pub fn parse(s: &str) -> std::result::Result<ApiTarget, String> {
        let rest = s
            .trim()
            .strip_prefix("http://")
            .ok_or_else(|| format!("--poll-api {s:?}: expected http://user:pass@host:port"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (&authority[..i], &authority[i + 1..]),
            None => ("guest:guest", authority),
        };
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("--poll-api {s:?}: bad port {p:?}"))?,
            ),
            None => (hostport, 15672),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("--poll-api {s:?}: no host"));
        }
        Ok(ApiTarget {
            host: host.to_string(),
            port,
            user: percent_decode(user),
            password: percent_decode(password),
            prefix: prefix.to_string(),
        })
    }

    /// The URL without the password, for reports.
    pub fn display(&self) -> String {
        format!(
            "http://{}@{}:{}{}",
            self.user, self.host, self.port, self.prefix
        )
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && s.is_char_boundary(i + 3) {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `1s`, `500ms`, `2.5` (seconds).
pub fn parse_interval(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(Duration::from_secs_f64(v * scale)),
        _ => Err(format!("bad interval {s:?} (e.g. 1s, 500ms)")),
    }
}

/// One GET; Ok(status, body length) once the server closed the connection.
pub async fn get(t: &ApiTarget, path: &str) -> Result<(u16, usize)> {
    let f = async {
        let peer = format!("{}:{}", t.host, t.port);
        let mut s = crate::net::connect(&t.host, t.port, &peer).await?;
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", t.user, t.password));
        let req = format!(
            "GET {}{} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            t.prefix, path, peer, auth
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::with_capacity(16 * 1024);
        s.read_to_end(&mut buf).await?;
        let head_end = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| Error::Other(format!("GET {path}: no HTTP response")))?;
        let status = std::str::from_utf8(&buf[..head_end])
            .ok()
            .and_then(|h| h.split_whitespace().nth(1))
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| Error::Other(format!("GET {path}: bad status line")))?;
        Ok((status, buf.len() - head_end - 4))
    };
    crate::net::with_timeout(format!("GET {path}"), REQUEST_TIMEOUT, f).await
}

/// Response times of one endpoint of one API.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointStats {
    pub api: String,
    pub path: String,
    pub requests: u64,
    pub failures: u64,
    pub median_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    /// Response body size of the last successful request.
    pub last_body_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip)]
    samples_ms: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiPollReport {
    pub interval_s: f64,
    pub endpoints: Vec<EndpointStats>,
}

impl ApiPollReport {
    pub fn failures(&self) -> u64 {
        self.endpoints.iter().map(|e| e.failures).sum()
    }

    pub fn human(&self) -> String {
        let mut s = format!("  api poll   every {:.2} s\n", self.interval_s);
        for e in &self.endpoints {
            let f = |ms: f64| fmt::ns((ms * 1e6) as u64);
            s += &format!(
                "    {} {}: {} requests, {} failed; median {}  p95 {}  max {}{}\n",
                e.api,
                e.path,
                e.requests,
                e.failures,
                f(e.median_ms),
                f(e.p95_ms),
                f(e.max_ms),
                e.last_error
                    .as_ref()
                    .map(|m| format!(" (last error: {m})"))
                    .unwrap_or_default()
            );
        }
        s
    }
}

/// Poll every target every `interval` until `stop`; then the statistics.
pub async fn run(
    targets: Vec<ApiTarget>,
    interval: Duration,
    stop: CancellationToken,
) -> ApiPollReport {
    let mut stats: Vec<EndpointStats> = targets
        .iter()
        .flat_map(|t| {
            PATHS.iter().map(move |p| EndpointStats {
                api: t.display(),
                path: p.to_string(),
                requests: 0,
                failures: 0,
                median_ms: 0.0,
                p95_ms: 0.0,
                max_ms: 0.0,
                last_body_bytes: 0,
                last_error: None,
                samples_ms: Vec::new(),
            })
        })
        .collect();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    'poll: loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        for (ti, t) in targets.iter().enumerate() {
            for (pi, path) in PATHS.iter().enumerate() {
                let st = &mut stats[ti * PATHS.len() + pi];
                let started = Instant::now();
                let r = tokio::select! {
                    _ = stop.cancelled() => break 'poll,
                    r = get(t, path) => r,
                };
                let ms = started.elapsed().as_secs_f64() * 1e3;
                st.requests += 1;
                match r {
                    Ok((200, len)) => {
                        st.samples_ms.push(ms);
                        st.last_body_bytes = len;
                    }
                    Ok((code, _)) => {
                        st.failures += 1;
                        st.last_error = Some(format!("HTTP {code}"));
                    }
                    Err(e) => {
                        st.failures += 1;
                        st.last_error = Some(e.to_string());
                    }
                }
            }
        }
    }
    for st in &mut stats {
        let mut v = st.samples_ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        st.median_ms = median(&v);
        st.max_ms = v.last().copied().unwrap_or(0.0);
        st.p95_ms = if v.is_empty() {
            0.0
        } else {
            v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1]
        };
    }
    ApiPollReport {
        interval_s: interval.as_secs_f64(),
        endpoints: stats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = ApiTarget::parse("http://admin:s%40cret@127.0.0.1:15673").unwrap();
        assert_eq!(
            (
                t.user.as_str(),
                t.password.as_str(),
                t.host.as_str(),
                t.port
            ),
            ("admin", "s@cret", "127.0.0.1", 15673)
        );
        assert_eq!(t.prefix, "");
        assert_eq!(t.display(), "http://admin@127.0.0.1:15673");
        let t = ApiTarget::parse("http://localhost/mgmt/").unwrap();
        assert_eq!(
            (t.user.as_str(), t.port, t.prefix.as_str()),
            ("guest", 15672, "/mgmt")
        );
        assert!(ApiTarget::parse("https://x:1").is_err());
        assert!(ApiTarget::parse("http://u:p@h:port").is_err());
    }

    #[test]
    fn parses_intervals() {
        assert_eq!(parse_interval("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("x").is_err());
    }
}
