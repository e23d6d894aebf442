//! `/api/policies[/VHOST[/NAME]]`: list and show (visible vhosts); PUT and
//! DELETE need `policymaker` (or `administrator`) and access to the vhost.

use super::{created, no_content, ok, visible_vhosts};
use crate::auth::Caller;
use crate::body::{check_name, Body, Names, Params};
use crate::error::{ApiError, ApiResult};
use axum::response::Response;
use serde_json::Value;
use warren_core::export::policy_json;
use warren_core::policy::PolicyDef;
use warren_core::VHost;

fn listing(c: &Caller, only: Option<&str>, p: &Params) -> ApiResult<Response> {
    policy_listing(c, only, p, VHost::policies)
}

/// The policies (or operator policies: `of`) of the vhosts the caller sees,
/// sorted by name within each vhost.
pub fn policy_listing(
    c: &Caller,
    only: Option<&str>,
    p: &Params,
    of: fn(&VHost) -> Vec<PolicyDef>,
) -> ApiResult<Response> {
    let mut items = Vec::new();
    for v in visible_vhosts(c, only)? {
        let mut ps = of(&v);
        ps.sort_by(|a, b| a.name.cmp(&b.name));
        items.extend(ps.iter().map(|p| policy_json(p, true)));
    }
    Ok(ok(p.list.apply(items)?))
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    listing(&c, None, &p)
}

pub async fn list_vhost(c: Caller, Names(vhost): Names<String>, p: Params) -> ApiResult<Response> {
    listing(&c, Some(&vhost), &p)
}

pub async fn show(c: Caller, Names((vhost, name)): Names<(String, String)>) -> ApiResult<Response> {
    let v = c.read_vhost(&vhost)?;
    let p = v
        .policies()
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(ApiError::object_not_found)?;
    Ok(ok(policy_json(&p, true)))
}

pub async fn put(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    c.require_policymaker()?;
    check_name("policy", &name)?;
    let v = c.write_vhost(&vhost)?;
    let existed = v.policies().iter().any(|p| p.name == name);
    let def = policy_def(&vhost, name, &body)?;
    let invalid = |e: warren_core::BrokerError| {
        // RabbitMQ HTML-escapes its policy validation texts.
        let text = format!("Validation failed\n\n{}\n", e.text);
        ApiError::bad_request(text.replace('<', "&lt;").replace('>', "&gt;"))
    };
    // A definition every node would refuse is answered here, not replicated.
    warren_core::policy::Policy::new(def.clone())
        .map_err(|e| invalid(warren_core::BrokerError::precondition_failed(e)))?;
    super::replicate::replicate_or(
        &c,
        |_| warren_core::meta::MetaOp::SetPolicy {
            vhost: vhost.clone(),
            def: def.clone(),
        },
        invalid,
    )
    .await?;
    v.set_policy(def, true).map_err(invalid)?;
    Ok(created(!existed))
}

fn priority_error(body: &Body) -> ApiError {
    let shown = body
        .get("priority")
        .map(warren_core::json::erl_term)
        .unwrap_or_default();
    ApiError::bad_request(format!(
        "Validation failed\n\npriority should be a number, actually was {}\n",
        shown.replace('<', "&lt;").replace('>', "&gt;")
    ))
}

/// A policy (or operator policy) from a PUT body, with RabbitMQ's 400s.
pub fn policy_def(vhost: &str, name: String, body: &Body) -> ApiResult<PolicyDef> {
    let pattern = body.required_str("pattern")?.to_string();
    let definition = match body.get("definition") {
        None => return Err(ApiError::key_missing("definition")),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ApiError::bad_request("definition must be an object")),
    };
    let priority = match body.get("priority") {
        None => 0,
        Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().map_err(|_| priority_error(body))?,
        Some(_) => return Err(priority_error(body)),
    };
    let apply_to = body.str("apply-to")?.unwrap_or("all").to_string();
    Ok(PolicyDef {
        vhost: vhost.into(),
        name,
        pattern,
        apply_to,
        priority,
        definition,
    })
}

pub async fn delete(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    c.require_policymaker()?;
    let v = c.write_vhost(&vhost)?;
    if !v.policies().iter().any(|p| p.name == name) {
        return Err(ApiError::object_not_found());
    }
    super::replicate::replicate(&c, |_| warren_core::meta::MetaOp::ClearPolicy {
        vhost: vhost.clone(),
        name: name.clone(),
    })
    .await?;
    // Cleared already by the replicated change on a cluster member.
    if v.policies().iter().any(|p| p.name == name) {
        v.clear_policy(&name)
            .map_err(|_| ApiError::object_not_found())?;
    }
    Ok(no_content())
}
