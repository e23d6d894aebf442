//! `/api/definitions[/VHOST]` (administrator): GET exports RabbitMQ's
//! definitions.json, POST imports one (`warren_core::export`). On a cluster
//! node the import is replicated first (`warren_core::export_ops`).

use super::replicate;
use super::{no_content, ok};
use crate::auth::Caller;
use crate::body::{Body, Names};
use crate::error::{ApiError, ApiResult};
use axum::response::Response;
use serde_json::{Map, Value};
use warren_core::export_ops;

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
    let defs = replicate_import(&c, body.0, None).await?;
    c.http
        .broker
        .import_definitions(&Value::Object(defs), None, Some(&c.user.name))
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
    let defs = replicate_import(&c, body.0, Some(&vhost)).await?;
    c.http
        .broker
        .import_definitions(&Value::Object(defs), Some(&vhost), Some(&c.user.name))
        .map_err(import_error)?;
    Ok(no_content())
}

/// On a cluster node: replicate what the import changes, in import order,
/// before the local import runs (and finds it done). Returns the definitions
/// with clear-text passwords replaced by their hash, so the local import
/// stores the hash every other node got. A change refused on the way stops
/// the import with 400, as a single node's import stops at its first error
/// (what was imported before stays, as in RabbitMQ).
async fn replicate_import(
    c: &Caller,
    mut defs: Map<String, Value>,
    vhost: Option<&str>,
) -> ApiResult<Map<String, Value>> {
    let Some(r) = c.http.broker.replicator().cloned() else {
        return Ok(defs);
    };
    replicate::sync(c).await?;
    export_ops::prehash_passwords(&mut defs);
    let ops = export_ops::definitions_to_ops(&defs, vhost, Some(&c.user.name), &r.node_name())
        .map_err(import_error)?;
    for op in ops {
        replicate::replicate_or(c, |_| op, import_error).await?;
    }
    // Then the runtime part (parameters, global parameters, users' limits),
    // as the local import does it last.
    let runtime =
        warren_core::runtime_export::runtime_import_ops(&defs, vhost).map_err(import_error)?;
    for op in runtime {
        replicate::replicate_or(c, |_| op, import_error).await?;
    }
    Ok(defs)
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
