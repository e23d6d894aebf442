//! Arbitrary JSON bodies into the management API's PUT/POST endpoints,
//! through the real router (`warren_http::router`: the same extractors,
//! body limits and controllers as the listener), as guest from loopback.
//!
//! Input layout: the first byte picks the endpoint, the second its content
//! type (JSON, none, or a form type), the rest is the body. Before it, a
//! queue `q1` and a vhost `v1` exist (so publish/get/bind reach their
//! handlers' body parsing, not a 404).
//!
//! Checks: no panic; no 5xx (a body is the client's mistake: RabbitMQ
//! answers 400); every error response is RabbitMQ's JSON error object.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use tower::ServiceExt;

const ENDPOINTS: &[(&str, &str)] = &[
    ("PUT", "/api/vhosts/v2"),
    ("PUT", "/api/users/u1"),
    ("POST", "/api/users/bulk-delete"),
    ("PUT", "/api/permissions/v1/guest"),
    ("PUT", "/api/exchanges/%2F/x1"),
    ("POST", "/api/exchanges/%2F/amq.direct/publish"),
    ("POST", "/api/exchanges/%2F/amq.default/publish"),
    ("PUT", "/api/queues/%2F/q2"),
    ("PUT", "/api/queues/%2F/q1"),
    ("POST", "/api/queues/%2F/q1/get"),
    ("POST", "/api/bindings/%2F/e/amq.direct/q/q1"),
    ("POST", "/api/bindings/%2F/e/amq.direct/e/amq.fanout"),
    ("PUT", "/api/policies/%2F/p1"),
    ("PUT", "/api/operator-policies/%2F/p1"),
    ("PUT", "/api/topic-permissions/%2F/guest"),
    ("PUT", "/api/vhost-limits/%2F/max-connections"),
    ("PUT", "/api/vhost-limits/%2F/max-queues"),
    ("PUT", "/api/user-limits/guest/max-channels"),
    ("PUT", "/api/parameters/federation-upstream/%2F/up1"),
    ("PUT", "/api/global-parameters/g1"),
    ("POST", "/api/definitions"),
    ("POST", "/api/definitions/%2F"),
    ("DELETE", "/api/queues/%2F/q1/contents"),
    ("DELETE", "/api/queues/%2F/q1"),
];

async fn call(
    app: axum::Router,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(path)
        // guest:guest
        .header(header::AUTHORIZATION, "Basic Z3Vlc3Q6Z3Vlc3Q=");
    if let Some(t) = ctype {
        req = req.header(header::CONTENT_TYPE, t);
    }
    let mut req = req.body(Body::from(body)).expect("request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let resp = app.oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("response body");
    (status, bytes.to_vec())
}

fuzz_target!(|data: &[u8]| {
    let [sel, ct, body @ ..] = data else {
        return;
    };
    let (method, path) = ENDPOINTS[*sel as usize % ENDPOINTS.len()];
    let ctype = match ct % 3 {
        0 => Some("application/json"),
        1 => None,
        _ => Some("text/plain"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (b, dir) = common::broker("http");
        let app = warren_http::router(warren_http::Http::new(b.clone(), Vec::new()));
        for (m, p) in [("PUT", "/api/vhosts/v1"), ("PUT", "/api/queues/%2F/q1")] {
            let (s, out) = call(app.clone(), m, p, Some("application/json"), b"{}".to_vec()).await;
            assert!(
                s.is_success(),
                "setup {p}: {s} {}",
                String::from_utf8_lossy(&out)
            );
        }
        let (status, out) = call(app, method, path, ctype, body.to_vec()).await;
        assert!(
            !status.is_server_error(),
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&out)
        );
        if status.is_client_error() {
            let v: serde_json::Value =
                serde_json::from_slice(&out).expect("error responses are JSON");
            assert!(v.get("error").is_some(), "error object: {v}");
        }
        common::close(b, dir);
    });
});
