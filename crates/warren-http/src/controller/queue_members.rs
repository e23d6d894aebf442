//! `PUT`/`DELETE /api/queues/VHOST/NAME/members/NODE`: add a node to a
//! quorum queue's members or remove it (`warren ctl add-member`,
//! `delete-member`, `grow`, `shrink`). RabbitMQ 3.10 offers this only in its
//! CLI (`rabbitmq-queues add_member`/`delete_member`); Warren's `ctl` talks
//! to the API, hence these two routes. Administrators only, as the CLI.

use crate::auth::Caller;
use crate::body::Names;
use crate::error::{ApiError, ApiResult};
use axum::response::Response;

pub async fn add(
    c: Caller,
    Names((vhost, name, node)): Names<(String, String, String)>,
) -> ApiResult<Response> {
    change(c, vhost, name, node, true).await
}

pub async fn remove(
    c: Caller,
    Names((vhost, name, node)): Names<(String, String, String)>,
) -> ApiResult<Response> {
    change(c, vhost, name, node, false).await
}

async fn change(
    c: Caller,
    vhost: String,
    name: String,
    node: String,
    add: bool,
) -> ApiResult<Response> {
    c.require_admin()?;
    let v = c.read_vhost(&vhost)?;
    if v.named_queue(name.as_bytes()).is_none() {
        return Err(ApiError::object_not_found());
    }
    let Some(r) = c.http.broker.replicator().cloned() else {
        return Err(ApiError::bad_request("this node is not clustered"));
    };
    r.queue_member(vhost, name, node, add).await?;
    Ok(super::no_content())
}
