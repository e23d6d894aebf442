//! `GET /api/whoami`: the caller's name and tags.

use super::ok;
use crate::auth::Caller;
use axum::response::Response;
use serde_json::json;

pub async fn show(c: Caller) -> Response {
    ok(json!({"name": c.user.name, "tags": c.user.tags}))
}
