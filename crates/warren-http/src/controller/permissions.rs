//! `/api/permissions[/VHOST/USER]`, `/api/vhosts/V/permissions`,
//! `/api/users/U/permissions` (administrator): configure/write/read regexes.

use super::{created, no_content, ok};
use crate::auth::Caller;
use crate::body::{Body, Names, Params};
use crate::error::{ApiError, ApiResult};
use axum::response::Response;
use serde_json::{json, Value};
use warren_core::error::code;
use warren_core::permissions::PermissionDef;

fn perm_json(p: &PermissionDef) -> Value {
    json!({"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read})
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    c.require_admin()?;
    let mut items = Vec::new();
    for v in c.http.broker.list_vhosts() {
        for perm in c.http.broker.list_permissions(&v)? {
            items.push(perm_json(&perm));
        }
    }
    Ok(ok(p.list.apply(items)?))
}

pub async fn of_vhost(c: Caller, Names(vhost): Names<String>, p: Params) -> ApiResult<Response> {
    c.require_admin()?;
    let perms = c
        .http
        .broker
        .list_permissions(&vhost)
        .map_err(|_| ApiError::object_not_found())?;
    Ok(ok(p.list.apply(perms.iter().map(perm_json).collect())?))
}

pub async fn of_user(c: Caller, Names(user): Names<String>, p: Params) -> ApiResult<Response> {
    c.require_admin()?;
    let perms = c
        .http
        .broker
        .list_user_permissions(&user)
        .map_err(|_| ApiError::object_not_found())?;
    Ok(ok(p.list.apply(perms.iter().map(perm_json).collect())?))
}

pub async fn show(c: Caller, Names((vhost, user)): Names<(String, String)>) -> ApiResult<Response> {
    c.require_admin()?;
    let p = c
        .http
        .broker
        .permission(&user, &vhost)
        .ok_or_else(ApiError::object_not_found)?;
    Ok(ok(perm_json(&p.def)))
}

pub async fn put(
    c: Caller,
    Names((vhost, user)): Names<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    c.require_admin()?;
    let def = PermissionDef {
        user: user.clone(),
        vhost: vhost.clone(),
        configure: body.required_str("configure")?.into(),
        write: body.required_str("write")?.into(),
        read: body.required_str("read")?.into(),
    };
    let existed = c.http.broker.permission(&user, &vhost).is_some();
    if c.http.broker.user(&user).is_some() && c.http.broker.vhost(&vhost).is_some() {
        super::replicate::replicate(&c, |_| warren_core::meta::MetaOp::SetPermissions {
            def: def.clone(),
        })
        .await?;
    }
    c.http
        .broker
        .set_permissions(def)
        .map_err(vhost_or_user_error)?;
    Ok(created(!existed))
}

/// Setting a (topic) permission: a missing vhost or user is RabbitMQ's 400
/// `vhost_or_user_not_found`, anything else 400 with its text.
pub fn vhost_or_user_error(e: warren_core::BrokerError) -> ApiError {
    if e.code == code::NOT_FOUND {
        ApiError::bad_request("vhost_or_user_not_found")
    } else {
        ApiError::bad_request(e.text)
    }
}

pub async fn delete(
    c: Caller,
    Names((vhost, user)): Names<(String, String)>,
) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    c.require_admin()?;
    if c.http.broker.permission(&user, &vhost).is_none() {
        return Err(ApiError::object_not_found());
    }
    super::replicate::replicate(&c, |_| warren_core::meta::MetaOp::ClearPermissions {
        user: user.clone(),
        vhost: vhost.clone(),
    })
    .await?;
    if c.http.broker.permission(&user, &vhost).is_some() {
        c.http.broker.clear_permissions(&user, &vhost)?;
    }
    Ok(no_content())
}
