//! `/api/topic-permissions[/VHOST/USER[/EXCHANGE]]`,
//! `/api/vhosts/V/topic-permissions`, `/api/users/U/topic-permissions`
//! (administrator): per-exchange routing-key regexes, enforced by the core's
//! permission check (see `warren_core::topic_permissions`).

use super::{created, no_content, ok};
use crate::auth::Caller;
use crate::body::{Body, Names, Params};
use crate::error::{ApiError, ApiResult};
use axum::response::Response;
use serde_json::Value;
use warren_core::meta::MetaOp;
use warren_core::runtime_export::topic_permission_json;
use warren_core::topic_permissions::TopicPermissionDef;

fn listing(c: &Caller, user: Option<&str>, vhost: Option<&str>, p: &Params) -> ApiResult<Response> {
    c.require_admin()?;
    let items: Vec<Value> = c
        .http
        .broker
        .list_topic_permissions(user, vhost)
        .iter()
        .map(topic_permission_json)
        .collect();
    Ok(ok(p.list.apply(items)?))
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    listing(&c, None, None, &p)
}

pub async fn of_vhost(c: Caller, Names(vhost): Names<String>, p: Params) -> ApiResult<Response> {
    c.require_admin()?;
    c.existing_vhost(&vhost)?;
    listing(&c, None, Some(&vhost), &p)
}

pub async fn of_user(c: Caller, Names(user): Names<String>, p: Params) -> ApiResult<Response> {
    c.require_admin()?;
    c.http
        .broker
        .user(&user)
        .ok_or_else(ApiError::object_not_found)?;
    listing(&c, Some(&user), None, &p)
}

/// GET `/api/topic-permissions/V/U`: the user's list on the vhost (404 if
/// it has none).
pub async fn show(
    c: Caller,
    Names((vhost, user)): Names<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    c.require_admin()?;
    let items = c
        .http
        .broker
        .list_topic_permissions(Some(&user), Some(&vhost));
    if items.is_empty() {
        return Err(ApiError::object_not_found());
    }
    Ok(ok(p.list.apply(
        items.iter().map(topic_permission_json).collect(),
    )?))
}

pub async fn put(
    c: Caller,
    Names((vhost, user)): Names<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    c.require_admin()?;
    let def = TopicPermissionDef {
        user,
        vhost,
        exchange: body.required_str("exchange")?.into(),
        write: body.required_str("write")?.into(),
        read: body.required_str("read")?.into(),
    };
    // 201 for the user's first on the vhost: decided before a cluster
    // applies it (the local call below then finds it set).
    super::replicate::sync(&c).await?;
    let had = !c
        .http
        .broker
        .list_topic_permissions(Some(&def.user), Some(&def.vhost))
        .is_empty();
    super::replicate::replicate_or(
        &c,
        |_| MetaOp::SetTopicPermission { def: def.clone() },
        super::permissions::vhost_or_user_error,
    )
    .await?;
    c.http
        .broker
        .set_topic_permission(def)
        .map_err(super::permissions::vhost_or_user_error)?;
    Ok(created(!had))
}

/// DELETE `/api/topic-permissions/V/U`: all of the user's on the vhost
/// (404 if none).
pub async fn delete(
    c: Caller,
    Names((vhost, user)): Names<(String, String)>,
) -> ApiResult<Response> {
    c.require_admin()?;
    super::replicate::sync(&c).await?;
    let had = !c
        .http
        .broker
        .list_topic_permissions(Some(&user), Some(&vhost))
        .is_empty();
    if had {
        clear_replicated(&c, &user, &vhost, None).await?;
    }
    if c.http.broker.clear_topic_permissions(&user, &vhost, None) == 0 && !had {
        return Err(ApiError::object_not_found());
    }
    Ok(no_content())
}

/// DELETE `/api/topic-permissions/V/U/EXCHANGE`: one exchange's (204 even
/// when there was none, as RabbitMQ answers).
pub async fn delete_exchange(
    c: Caller,
    Names((vhost, user, exchange)): Names<(String, String, String)>,
) -> ApiResult<Response> {
    c.require_admin()?;
    super::replicate::sync(&c).await?;
    clear_replicated(&c, &user, &vhost, Some(&exchange)).await?;
    c.http
        .broker
        .clear_topic_permissions(&user, &vhost, Some(&exchange));
    Ok(no_content())
}

/// On a cluster node, clear on every node first.
async fn clear_replicated(
    c: &Caller,
    user: &str,
    vhost: &str,
    exchange: Option<&str>,
) -> ApiResult<()> {
    super::replicate::replicate(c, |_| MetaOp::ClearTopicPermissions {
        user: user.to_string(),
        vhost: vhost.to_string(),
        exchange: exchange.map(str::to_string),
    })
    .await
}
