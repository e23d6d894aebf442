//! `/api/definitions[/VHOST]` (administrator): GET exports RabbitMQ's
//! definitions.json, POST imports one (`warren_core::export`).

use super::{no_content, ok};
use crate::auth::Caller;
use crate::body::{Body, Names};
use crate::error::{ApiError, ApiResult};
use axum::response::Response;
use serde_json::Value;

pub async fn export(c: Caller) -> ApiResult<Response> {
    c.require_admin()?;
    Ok(ok(c.http.broker.export_definitions(None)?))
}

pub async fn export_vhost(c: Caller, Names(vhost): Names<String>) -> ApiResult<Response> {
    c.require_admin()?;
    if c.http.broker.vhost(&vhost).is_none() {
        return Err(ApiError::object_not_found());
    }
    Ok(ok(c.http.broker.export_definitions(Some(&vhost))?))
}

pub async fn import(c: Caller, body: Body) -> ApiResult<Response> {
    c.require_admin()?;
    c.http
        .broker
        .import_definitions(&Value::Object(body.0), None, Some(&c.user.name))
        .map_err(import_error)?;
    Ok(no_content())
}

pub async fn import_vhost(
    c: Caller,
    Names(vhost): Names<String>,
    body: Body,
) -> ApiResult<Response> {
    c.require_admin()?;
    if c.http.broker.vhost(&vhost).is_none() {
        return Err(ApiError::object_not_found());
    }
    c.http
        .broker
        .import_definitions(&Value::Object(body.0), Some(&vhost), Some(&c.user.name))
        .map_err(import_error)?;
    Ok(no_content())
}

/// RabbitMQ answers a failed import with 400 whatever the cause.
fn import_error(e: warren_core::BrokerError) -> ApiError {
    ApiError::bad_request(e.text)
}
