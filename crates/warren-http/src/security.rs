//! Browser-facing protections for the management listener: security headers
//! on every response, and refusal of cross-site state-changing requests.
//!
//! **Headers.** `X-Content-Type-Options: nosniff` (a JSON error echoing a
//! name must never be sniffed as HTML), `X-Frame-Options: DENY` plus CSP
//! `frame-ancestors 'none'` (no clickjacking of the UI's delete buttons),
//! `Referrer-Policy: same-origin`, and `Cache-Control: no-store` on `/api`
//! (answers carry users, permissions, message bodies: no browser or proxy
//! cache should keep them; RabbitMQ sends `no-cache`). The CSP deliberately
//! leaves script sources alone: the UI's own modules are all same-origin.
//!
//! **CSRF.** The API authenticates with HTTP Basic, which a browser attaches
//! by itself to any request to the origin it logged in to; a page on another
//! site could otherwise make the logged-in browser `DELETE` a vhost. A
//! state-changing request (anything but GET, HEAD, OPTIONS) is refused with
//! 403 when the browser says it comes from another origin: an `Origin`
//! header naming another host:port than the request's `Host` (browsers send
//! `Origin` with every cross-origin non-GET request, forms included), or,
//! without `Origin`, `Sec-Fetch-Site` other than `same-origin`/`none`.
//! Programs (curl, requests, rabbitmqadmin, `warren ctl`) send neither
//! header, so nothing changes for them, whatever content type they send
//! (RabbitMQ accepts any, and `curl -d` sends a form type).
//!
//! **Allowed origins.** The web listeners' allow-list (`--web-allowed-origins`,
//! `[listeners] web_allowed_origins`, warren-web's [`Origins`]) applies here
//! too: a cross-origin state-changing request whose `Origin` is listed is let
//! through (a dashboard on another origin that manages the broker), every
//! other cross-origin one is refused as above. The default ("any origin")
//! lets nothing more through: for the web listeners it is RabbitMQ's
//! behaviour, for the API it would be CSRF.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use warren_web::Origins;

/// Add the security headers (see the module docs) to every response.
pub async fn headers(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'; object-src 'none'; base-uri 'self'"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Refuse cross-site state-changing requests, unless from an allowed origin
/// (see the module docs).
pub async fn same_origin(State(origins): State<Origins>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || !is_cross_site(req.headers())
        || origins.lists(req.headers())
    {
        return next.run(req).await;
    }
    tracing::warn!(
        method = %req.method(),
        path = %req.uri().path(),
        origin = ?req.headers().get(header::ORIGIN),
        "HTTP API: cross-site request refused"
    );
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "forbidden",
        "cross-site request refused (Origin does not match Host and is not an allowed origin)",
    )
    .into_response()
}

/// Whether the browser's headers say the request comes from another origin.
pub fn is_cross_site(h: &HeaderMap) -> bool {
    if let Some(origin) = h.get(header::ORIGIN) {
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest.trim_end_matches('/'));
        return match (origin_host, host) {
            (Some(o), Some(h)) => !o.eq_ignore_ascii_case(h),
            // "null" (sandboxed frames, file: pages) or no Host: refuse.
            _ => true,
        };
    }
    match h.get("sec-fetch-site").map(HeaderValue::as_bytes) {
        None | Some(b"same-origin") | Some(b"none") => false,
        Some(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_detection() {
        // Programs: no Origin, no Sec-Fetch-Site.
        assert!(!is_cross_site(&headers(&[("host", "localhost:15672")])));
        // The UI itself.
        assert!(!is_cross_site(&headers(&[
            ("host", "localhost:15672"),
            ("origin", "http://localhost:15672"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!is_cross_site(&headers(&[
            ("host", "Broker.example:443"),
            ("origin", "https://broker.example:443"),
        ])));
        // Another site, another port of the same host, a sandboxed page.
        assert!(is_cross_site(&headers(&[
            ("host", "localhost:15672"),
            ("origin", "http://evil.example"),
        ])));
        assert!(is_cross_site(&headers(&[
            ("host", "localhost:15672"),
            ("origin", "http://localhost:15674"),
        ])));
        assert!(is_cross_site(&headers(&[
            ("host", "localhost:15672"),
            ("origin", "null"),
        ])));
        assert!(is_cross_site(&headers(&[(
            "origin",
            "http://localhost:15672"
        )])));
        // No Origin but the fetch metadata says cross-site / same-site.
        assert!(is_cross_site(&headers(&[
            ("host", "localhost:15672"),
            ("sec-fetch-site", "cross-site"),
        ])));
        assert!(is_cross_site(&headers(&[
            ("host", "localhost:15672"),
            ("sec-fetch-site", "same-site"),
        ])));
        assert!(!is_cross_site(&headers(&[
            ("host", "localhost:15672"),
            ("sec-fetch-site", "none"),
        ])));
    }
}
