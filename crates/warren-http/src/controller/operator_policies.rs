//! `/api/operator-policies[/VHOST[/NAME]]` (administrator): policies whose
//! numeric limits (`max-length`, `max-length-bytes`, `message-ttl`,
//! `expires`) cap what users' policies and queue arguments set.

use super::policies::{policy_def, policy_listing};
use super::{created, no_content, ok};
use crate::auth::Caller;
use crate::body::{check_name, Body, Names, Params};
use crate::error::{ApiError, ApiResult};
use axum::response::Response;
use warren_core::export::policy_json;
use warren_core::meta::MetaOp;
use warren_core::runtime::check_operator_policy;
use warren_core::{BrokerError, VHost};

/// Listing: any management user, over the vhosts it sees (RabbitMQ's
/// `is_authorized_vhost`); one policy and changes: administrator.
fn listing(c: &Caller, only: Option<&str>, p: &Params) -> ApiResult<Response> {
    policy_listing(c, only, p, VHost::operator_policies)
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    listing(&c, None, &p)
}

pub async fn list_vhost(c: Caller, Names(vhost): Names<String>, p: Params) -> ApiResult<Response> {
    listing(&c, Some(&vhost), &p)
}

pub async fn show(c: Caller, Names((vhost, name)): Names<(String, String)>) -> ApiResult<Response> {
    c.require_admin()?;
    let p = c
        .existing_vhost(&vhost)?
        .operator_policies()
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
    c.require_admin()?;
    check_name("operator policy", &name)?;
    let v = c.write_vhost(&vhost)?;
    let existed = v.operator_policies().iter().any(|p| p.name == name);
    let def = policy_def(&vhost, name, &body)?;
    let invalid = |e: BrokerError| {
        // Its own validation texts are RabbitMQ's whole reason already.
        if e.text.starts_with("Validation failed") {
            ApiError::bad_request(e.text)
        } else {
            ApiError::bad_request(format!("Validation failed\n\n{}\n", e.text))
        }
    };
    // A definition every node would refuse is answered here, not replicated.
    check_operator_policy(&def).map_err(invalid)?;
    super::replicate::replicate_or(
        &c,
        |_| MetaOp::SetOperatorPolicy {
            vhost: vhost.clone(),
            def: def.clone(),
        },
        invalid,
    )
    .await?;
    v.set_operator_policy(def, true).map_err(invalid)?;
    Ok(created(!existed))
}

pub async fn delete(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    c.require_admin()?;
    let v = c.existing_vhost(&vhost)?;
    if !v.operator_policies().iter().any(|p| p.name == name) {
        return Err(ApiError::object_not_found());
    }
    super::replicate::replicate(&c, |_| MetaOp::ClearOperatorPolicy {
        vhost: vhost.clone(),
        name: name.clone(),
    })
    .await?;
    // Cleared already by the replicated change on a cluster member.
    v.clear_operator_policy(&name);
    Ok(no_content())
}
