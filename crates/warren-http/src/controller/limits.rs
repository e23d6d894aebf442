//! `/api/vhost-limits[/VHOST[/NAME]]` and `/api/user-limits[/USER[/NAME]]`
//! (administrator to change; listing as RabbitMQ: vhost limits to users who
//! see the vhost, user limits to administrators). Enforced by the core (see
//! `warren_core::limits`).

use super::{no_content, ok, visible_vhosts};
use crate::auth::Caller;
use crate::body::{Body, Names, Params};
use crate::error::{ApiError, ApiResult};
use axum::response::Response;
use serde_json::{json, Value};
use warren_core::error::code;
use warren_core::limits::LimitMap;
use warren_core::meta::MetaOp;

fn limits_json(l: &LimitMap) -> Value {
    Value::Object(l.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn vhost_listing(c: &Caller, only: Option<&str>, p: &Params) -> ApiResult<Response> {
    let items = visible_vhosts(c, only)?
        .iter()
        .filter_map(|v| {
            let l = v.limits();
            (!l.is_empty())
                .then(|| json!({"vhost": v.name.to_string_lossy(), "value": limits_json(&l)}))
        })
        .collect();
    Ok(ok(p.list.apply(items)?))
}

pub async fn list_vhosts(c: Caller, p: Params) -> ApiResult<Response> {
    vhost_listing(&c, None, &p)
}

pub async fn show_vhost(c: Caller, Names(vhost): Names<String>, p: Params) -> ApiResult<Response> {
    c.existing_vhost(&vhost)?;
    vhost_listing(&c, Some(&vhost), &p)
}

/// The body's `value` (400 `key_missing` without one).
fn value(body: &Body) -> ApiResult<&Value> {
    body.get("value")
        .ok_or_else(|| ApiError::key_missing("value"))
}

pub async fn put_vhost(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    c.require_admin()?;
    let value = value(&body)?;
    let missing = || ApiError::not_found("vhost_not_found");
    replicate_limit(
        &c,
        MetaOp::SetVhostLimit {
            vhost: vhost.clone(),
            name: Some(name.clone()),
            value: Some(value.clone()),
        },
        missing,
    )
    .await?;
    changed(c.http.broker.set_vhost_limit(&vhost, &name, value), missing)
}

/// On a cluster node: the change on every node first (refused as the local
/// call would refuse it).
async fn replicate_limit(
    c: &Caller,
    op: MetaOp,
    missing: impl FnOnce() -> ApiError,
) -> ApiResult<()> {
    super::replicate::sync(c).await?;
    super::replicate::replicate_or(c, |_| op, |e| refusal(e, missing)).await
}

fn refusal(e: warren_core::BrokerError, missing: impl FnOnce() -> ApiError) -> ApiError {
    match e.code {
        code::NOT_FOUND => missing(),
        _ => ApiError::bad_request(e.text),
    }
}

/// 204 after a change; `missing` answers a vhost or user that does not
/// exist, other refusals are 400 with their text.
fn changed(r: warren_core::Result<()>, missing: impl FnOnce() -> ApiError) -> ApiResult<Response> {
    r.map_err(|e| refusal(e, missing))?;
    Ok(no_content())
}

pub async fn delete_vhost(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
) -> ApiResult<Response> {
    c.require_admin()?;
    replicate_limit(
        &c,
        MetaOp::SetVhostLimit {
            vhost: vhost.clone(),
            name: Some(name.clone()),
            value: None,
        },
        ApiError::object_not_found,
    )
    .await?;
    changed(
        c.http.broker.clear_vhost_limit(&vhost, Some(&name)),
        ApiError::object_not_found,
    )
}

/// Listing: any management user (RabbitMQ's `is_authorized_vhost_visible`);
/// one user's limit changes: administrator.
fn user_listing(c: &Caller, only: Option<&str>, p: &Params) -> ApiResult<Response> {
    let broker = &c.http.broker;
    let names: Vec<String> = match only {
        Some(u) => vec![u.to_string()],
        None => broker.list_users().into_iter().map(|u| u.name).collect(),
    };
    let items = names
        .iter()
        .filter_map(|n| broker.user(n))
        .filter(|u| !u.limits.is_empty())
        .map(|u| json!({"user": u.name, "value": limits_json(&u.limits)}))
        .collect();
    Ok(ok(p.list.apply(items)?))
}

pub async fn list_users(c: Caller, p: Params) -> ApiResult<Response> {
    user_listing(&c, None, &p)
}

pub async fn show_user(c: Caller, Names(user): Names<String>, p: Params) -> ApiResult<Response> {
    if c.http.broker.user(&user).is_none() {
        return Err(ApiError::object_not_found());
    }
    user_listing(&c, Some(&user), &p)
}

pub async fn put_user(
    c: Caller,
    Names((user, name)): Names<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    c.require_admin()?;
    let value = value(&body)?;
    let missing = || ApiError::bad_request_term(json!(["no_such_user", user]));
    replicate_limit(
        &c,
        MetaOp::SetUserLimit {
            user: user.clone(),
            name: Some(name.clone()),
            value: Some(value.clone()),
        },
        missing,
    )
    .await?;
    changed(c.http.broker.set_user_limit(&user, &name, value), missing)
}

pub async fn delete_user(
    c: Caller,
    Names((user, name)): Names<(String, String)>,
) -> ApiResult<Response> {
    c.require_admin()?;
    replicate_limit(
        &c,
        MetaOp::SetUserLimit {
            user: user.clone(),
            name: Some(name.clone()),
            value: None,
        },
        ApiError::object_not_found,
    )
    .await?;
    changed(
        c.http.broker.clear_user_limit(&user, Some(&name)),
        ApiError::object_not_found,
    )
}
