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
use warren_core::meta::MetaOp;
use warren_core::BrokerError;

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
    super::replicate::sync(&c).await?;
    c.require_policymaker()?;
    check_name("parameter", &name)?;
    let value = body
        .get("value")
        .ok_or_else(|| ApiError::key_missing("value"))?;
    let existed = find(&c, &component, &vhost, &name).is_ok();
    let refused = |e: BrokerError| match e.code {
        code::NOT_FOUND => ApiError::not_found(e.text),
        _ => ApiError::bad_request(e.text),
    };
    if c.http.broker.replicator().is_some() {
        // Checked here (every node would refuse what fails), then each
        // change the parameter makes is replicated.
        c.http
            .broker
            .vhost(&vhost)
            .ok_or_else(|| BrokerError::not_found("vhost_not_found"))
            .map_err(refused)?;
        let ops = warren_core::runtime_export::parameter_ops(&component, &vhost, &name, value);
        for op in ops.map_err(refused)? {
            super::replicate::replicate_or(&c, |_| op, refused).await?;
        }
    }
    c.http
        .broker
        .set_parameter(&component, &vhost, &name, value)
        .map_err(refused)?;
    Ok(created(!existed))
}

pub async fn delete(
    c: Caller,
    Names((component, vhost, name)): Names<(String, String, String)>,
) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    c.require_policymaker()?;
    if find(&c, &component, &vhost, &name).is_err() {
        return Err(ApiError::object_not_found());
    }
    let op = match component.as_str() {
        "operator_policy" => Some(MetaOp::ClearOperatorPolicy {
            vhost: vhost.clone(),
            name: name.clone(),
        }),
        "vhost-limits" => Some(MetaOp::SetVhostLimit {
            vhost: vhost.clone(),
            name: None,
            value: None,
        }),
        _ => None,
    };
    if let Some(op) = op {
        super::replicate::replicate(&c, |_| op).await?;
    }
    // Cleared already by the replicated change on a cluster member.
    c.http.broker.clear_parameter(&component, &vhost, &name);
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
    super::replicate::sync(&c).await?;
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
    let existed = c
        .http
        .broker
        .global_parameters()
        .iter()
        .any(|(n, _)| n == &name);
    super::replicate::replicate(&c, |_| MetaOp::SetGlobalParameter {
        name: name.clone(),
        value: value.clone(),
    })
    .await?;
    c.http.broker.set_global_parameter(&name, value);
    Ok(created(!existed))
}

pub async fn delete_global(c: Caller, Names(name): Names<String>) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    c.require_policymaker()?;
    let exists = c
        .http
        .broker
        .global_parameters()
        .iter()
        .any(|(n, _)| n == &name);
    if !exists {
        return Err(ApiError::object_not_found());
    }
    super::replicate::replicate(&c, |_| MetaOp::ClearGlobalParameter { name: name.clone() })
        .await?;
    c.http.broker.clear_global_parameter(&name);
    Ok(no_content())
}
