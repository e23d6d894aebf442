//! `/api/parameters[/COMPONENT[/VHOST[/NAME]]]` (runtime parameters: vhost
//! limits, operator policies; other components answered as RabbitMQ without
//! the plugin that provides them) and `/api/global-parameters[/NAME]`.

use super::{created, no_content, ok, visible_vhosts};
use crate::auth::Caller;
use crate::body::{check_name, Body, Names, Params};
use crate::error::{ApiError, ApiResult};
use axum::response::Response;
use serde_json::{json, Value};
use warren_core::error::code;

fn listing(
    c: &Caller,
    component: Option<&str>,
    vhost: Option<&str>,
    p: &Params,
) -> ApiResult<Response> {
    // RabbitMQ: policymaker to read parameters.
    c.require_policymaker()?;
    let vhosts = visible_vhosts(c, vhost).map_err(|_| ApiError::object_not_found())?;
    Ok(ok(p
        .list
        .apply(c.http.broker.parameters(&vhosts, component))?))
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    listing(&c, None, None, &p)
}

pub async fn list_component(
    c: Caller,
    Names(component): Names<String>,
    p: Params,
) -> ApiResult<Response> {
    listing(&c, Some(&component), None, &p)
}

pub async fn list_component_vhost(
    c: Caller,
    Names((component, vhost)): Names<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    listing(&c, Some(&component), Some(&vhost), &p)
}

fn find(c: &Caller, component: &str, vhost: &str, name: &str) -> ApiResult<Value> {
    let v = c.existing_vhost(vhost)?;
    c.http
        .broker
        .parameters(&[v], Some(component))
        .into_iter()
        .find(|p| p["name"] == name)
        .ok_or_else(ApiError::object_not_found)
}

pub async fn show(
    c: Caller,
    Names((component, vhost, name)): Names<(String, String, String)>,
) -> ApiResult<Response> {
    c.require_policymaker()?;
    c.read_vhost(&vhost)
        .map_err(|_| ApiError::object_not_found())?;
    Ok(ok(find(&c, &component, &vhost, &name)?))
}

pub async fn put(
    c: Caller,
    Names((component, vhost, name)): Names<(String, String, String)>,
    body: Body,
) -> ApiResult<Response> {
    c.require_policymaker()?;
    check_name("parameter", &name)?;
    let value = body
        .get("value")
        .ok_or_else(|| ApiError::key_missing("value"))?;
    let existed = find(&c, &component, &vhost, &name).is_ok();
    c.http
        .broker
        .set_parameter(&component, &vhost, &name, value)
        .map_err(|e| match e.code {
            code::NOT_FOUND => ApiError::not_found(e.text),
            _ => ApiError::bad_request(e.text),
        })?;
    Ok(created(!existed))
}

pub async fn delete(
    c: Caller,
    Names((component, vhost, name)): Names<(String, String, String)>,
) -> ApiResult<Response> {
    c.require_policymaker()?;
    if !c.http.broker.clear_parameter(&component, &vhost, &name) {
        return Err(ApiError::object_not_found());
    }
    Ok(no_content())
}

/// Global parameters, with the node's `internal_cluster_id` first, as
/// RabbitMQ lists it.
fn globals(c: &Caller) -> Vec<Value> {
    let mut items = vec![json!({"name": "internal_cluster_id", "value": c.http.node})];
    items.extend(
        c.http
            .broker
            .global_parameters()
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value})),
    );
    items
}

// Global parameters need `policymaker` (RabbitMQ's
// `is_authorized_global_parameters`), for every method.
pub async fn list_global(c: Caller, p: Params) -> ApiResult<Response> {
    c.require_policymaker()?;
    Ok(ok(p.list.apply(globals(&c))?))
}

pub async fn show_global(c: Caller, Names(name): Names<String>) -> ApiResult<Response> {
    c.require_policymaker()?;
    globals(&c)
        .into_iter()
        .find(|g| g["name"] == name)
        .map(ok)
        .ok_or_else(ApiError::object_not_found)
}

pub async fn put_global(c: Caller, Names(name): Names<String>, body: Body) -> ApiResult<Response> {
    c.require_policymaker()?;
    check_name("global parameter", &name)?;
    if name == "internal_cluster_id" {
        return Err(ApiError::bad_request(
            "internal_cluster_id is the node's own",
        ));
    }
    let value = body
        .get("value")
        .cloned()
        .ok_or_else(|| ApiError::key_missing("value"))?;
    Ok(created(c.http.broker.set_global_parameter(&name, value)))
}

pub async fn delete_global(c: Caller, Names(name): Names<String>) -> ApiResult<Response> {
    c.require_policymaker()?;
    if !c.http.broker.clear_global_parameter(&name) {
        return Err(ApiError::object_not_found());
    }
    Ok(no_content())
}
