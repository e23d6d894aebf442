//! On a cluster member, the API's metadata changes go through the cluster's
//! replicator first (`warren_core::meta`), as the AMQP adapter's do: a
//! change is committed on a majority and applied here before the handler
//! runs its usual local call (which then finds it done). A single node has
//! no replicator and skips this. A minority node answers 503 with the
//! replicator's reason. Handlers that change metadata pass the read barrier
//! ([`sync`]) first, as the AMQP adapter does.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::http::StatusCode;
use warren_core::error::code;
use warren_core::meta::MetaOp;
use warren_core::BrokerError;

/// Before a handler decides on a change from this node's metadata: the read
/// barrier (`MetadataReplicator::sync`), so a node still catching up does not
/// answer 404 for what was just made elsewhere, or 204 to re-creating what
/// was just deleted without replicating it. A node that cannot pass it
/// answers 503.
pub async fn sync(c: &Caller) -> ApiResult<()> {
    let Some(r) = c.http.broker.replicator().cloned() else {
        return Ok(());
    };
    r.sync().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            e.text,
        )
    })
}

pub async fn replicate(c: &Caller, op: impl FnOnce(&str) -> MetaOp) -> ApiResult<()> {
    replicate_or(c, op, ApiError::from).await
}

/// [`replicate`], with the caller's own answer to a change every node
/// refused (a policy's validation error...).
pub async fn replicate_or(
    c: &Caller,
    op: impl FnOnce(&str) -> MetaOp,
    refused: impl FnOnce(BrokerError) -> ApiError,
) -> ApiResult<()> {
    let Some(r) = c.http.broker.replicator().cloned() else {
        return Ok(());
    };
    match r.replicate(op(&r.node_name())).await {
        Ok(()) => Ok(()),
        Err(e) if e.code == code::INTERNAL_ERROR => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            e.text,
        )),
        Err(e) => Err(refused(e)),
    }
}
