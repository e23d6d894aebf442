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
    check_vhost(&c, &vhost)?;
    Ok(ok(c.http.broker.export_definitions(Some(&vhost))?))
}

pub async fn import(c: Caller, body: Result<Body, ApiError>) -> ApiResult<Response> {
    c.require_admin()?;
    let body = body.map_err(parse_error)?;
    c.http
        .broker
        .import_definitions(&Value::Object(body.0), None, Some(&c.user.name))
        .map_err(import_error)?;
    Ok(no_content())
}

pub async fn import_vhost(
    c: Caller,
    Names(vhost): Names<String>,
    body: Result<Body, ApiError>,
) -> ApiResult<Response> {
    c.require_admin()?;
    check_vhost(&c, &vhost)?;
    let body = body.map_err(parse_error)?;
    c.http
        .broker
        .import_definitions(&Value::Object(body.0), Some(&vhost), Some(&c.user.name))
        .map_err(import_error)?;
    Ok(no_content())
}

/// RabbitMQ's answer for definitions of a vhost that does not exist.
fn check_vhost(c: &Caller, vhost: &str) -> ApiResult<()> {
    match c.http.broker.vhost(vhost) {
        Some(_) => Ok(()),
        None => Err(ApiError::bad_request("vhost_not_found")),
    }
}

/// An import body that is not JSON: RabbitMQ's `failed_to_parse_json`.
fn parse_error(e: ApiError) -> ApiError {
    if e.reason == "not_json" {
        ApiError::bad_request("failed_to_parse_json")
    } else {
        e
    }
}

/// RabbitMQ answers a failed import with 400 whatever the cause.
fn import_error(e: warren_core::BrokerError) -> ApiError {
    ApiError::bad_request(e.text)
}
