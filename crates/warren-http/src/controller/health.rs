//! `/api/health/checks/...`: RabbitMQ's health checks. `{"status": "ok"}`
//! with 200, or `{"status": "failed", ...}` with 503.

use super::ok;
use crate::auth::Caller;
use crate::body::Names;
use crate::error::{ApiError, ApiResult};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

fn failed(body: serde_json::Value) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

/// `alarms` and `local-alarms` (one node: the same).
pub async fn alarms(c: Caller) -> Response {
    let alarm = c.http.broker.alarm().borrow().clone();
    match alarm {
        None => ok(json!({"status": "ok"})),
        Some(reason) => {
            let resource = if reason.contains("disk") {
                "disk"
            } else {
                "memory"
            };
            failed(
                json!({"status": "failed", "reason": "resource alarm(s) in effect in the cluster",
                "alarms": [{"node": c.http.node, "resource": resource}]}),
            )
        }
    }
}

/// `virtual-hosts`: every vhost is up while the broker runs.
pub async fn virtual_hosts(_c: Caller) -> Response {
    ok(json!({"status": "ok"}))
}

/// `port-listener/PORT`: whether the broker listens on PORT.
pub async fn port_listener(c: Caller, Names(port): Names<String>) -> ApiResult<Response> {
    let port: u16 = port
        .parse()
        .map_err(|_| ApiError::bad_request("Invalid port"))?;
    let ports: Vec<u16> = c.http.listeners.iter().map(|l| l.addr.port()).collect();
    if ports.contains(&port) {
        Ok(ok(json!({"status": "ok", "port": port})))
    } else {
        Ok(failed(
            json!({"status": "failed", "reason": "No active listener",
            "missing": port, "ports": ports}),
        ))
    }
}
