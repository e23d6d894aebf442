//! `/api/users[/USER]` (administrator): list, show, PUT (create or update:
//! `tags` required, `password` or `password_hash`), DELETE;
//! `/api/users/without-permissions` and `POST /api/users/bulk-delete`.

use super::{created, no_content, ok};
use crate::auth::Caller;
use crate::body::{check_name, Body, Names, Params};
use crate::error::{ApiError, ApiResult};
use axum::response::Response;
use serde_json::{json, Value};
use warren_core::admin::{Credential, UserInfo};

fn user_json(c: &Caller, u: &UserInfo) -> Value {
    json!({
        "name": u.name,
        "password_hash": c.http.broker.password_hash(&u.name).unwrap_or_default(),
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": u.tags,
        "limits": c.http.broker.user(&u.name).map(|x| x.limits).unwrap_or_default(),
    })
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    c.require_admin()?;
    let items = c
        .http
        .broker
        .list_users()
        .iter()
        .map(|u| user_json(&c, u))
        .collect();
    Ok(ok(p.list.apply(items)?))
}

pub async fn without_permissions(c: Caller, p: Params) -> ApiResult<Response> {
    c.require_admin()?;
    let items = c
        .http
        .broker
        .users_without_permissions()
        .iter()
        .map(|u| user_json(&c, u))
        .collect();
    Ok(ok(p.list.apply(items)?))
}

pub async fn show(c: Caller, Names(name): Names<String>, p: Params) -> ApiResult<Response> {
    c.require_admin()?;
    let u = c
        .http
        .broker
        .user(&name)
        .ok_or_else(ApiError::object_not_found)?;
    let info = UserInfo {
        name: u.name,
        tags: u.tags,
    };
    Ok(ok(p.list.project_single(user_json(&c, &info))))
}

pub async fn put(c: Caller, Names(name): Names<String>, body: Body) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    c.require_admin()?;
    check_name("user", &name)?;
    if body.get("tags").is_none() {
        return Err(ApiError::bad_request("tags_not_present"));
    }
    let tags = warren_core::export::tags_of(body.get("tags"))?;
    let credential = if let Some(h) = body.str("password_hash")? {
        match body.str("hashing_algorithm")? {
            None | Some("rabbit_password_hashing_sha256") => Credential::Hash(h.to_string()),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "unsupported hashing_algorithm '{}'",
                    other
                )))
            }
        }
    } else if let Some(p) = body.str("password")? {
        Credential::Password(p.to_string())
    } else {
        Credential::Keep
    };
    let existed = c.http.broker.user(&name).is_some();
    let credential = if c.http.broker.replicator().is_some() {
        // Hashed once here, so every node stores the same hash.
        let hash = match credential {
            Credential::Password(p) => Some(warren_core::auth::hash_new_password(&p)),
            Credential::Hash(h) => Some(h),
            Credential::Keep => None,
        };
        if let Some(h) = &hash {
            if !warren_core::auth::is_valid_hash(h) {
                return Err(ApiError::bad_request(
                    "password_hash is not a valid rabbit_password_hashing_sha256 hash",
                ));
            }
        }
        super::replicate::replicate(&c, |_| warren_core::meta::MetaOp::PutUser {
            name: name.clone(),
            password_hash: hash.clone(),
            tags: tags.clone(),
        })
        .await?;
        hash.map_or(Credential::Keep, Credential::Hash)
    } else {
        credential
    };
    // On a cluster member the replicated change made it already: what
    // counts is whether it existed before this request.
    let was_created = c.http.broker.upsert_user(&name, credential, tags)?;
    Ok(created(was_created || !existed))
}

pub async fn delete(c: Caller, Names(name): Names<String>) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    c.require_admin()?;
    if c.http.broker.user(&name).is_none() {
        return Err(ApiError::object_not_found());
    }
    super::replicate::replicate(&c, |_| warren_core::meta::MetaOp::DeleteUser {
        name: name.clone(),
    })
    .await?;
    if c.http.broker.user(&name).is_some() {
        c.http.broker.delete_user(&name)?;
    }
    Ok(no_content())
}

/// `{"users": ["a", "b"]}`: delete each (missing ones are skipped).
pub async fn bulk_delete(c: Caller, body: Body) -> ApiResult<Response> {
    c.require_admin()?;
    let users = body
        .get("users")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::key_missing("users"))?;
    for u in users {
        let name = u
            .as_str()
            .ok_or_else(|| ApiError::bad_request("users must be strings"))?;
        if c.http.broker.user(name).is_some() {
            c.http.broker.delete_user(name)?;
        }
    }
    Ok(no_content())
}
