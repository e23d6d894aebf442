//! `/api/vhosts[/VHOST]`: list and show (visible vhosts), PUT creates (and
//! switches tracing with `{"tracing": bool}`), DELETE deletes with everything
//! in it (administrator).

use super::{channel_stats, created, no_content, ok, put_opt, rate, visible_vhosts};
use crate::auth::Caller;
use crate::body::{check_name, Body, Names, Params};
use crate::error::{ApiError, ApiResult};
use axum::response::Response;
use serde_json::{json, Value};
use warren_core::stats::ConnectionField;
use warren_core::VHost;

/// A vhost with its queues' totals, `message_stats` (left out without
/// activity) and its connections' `recv_oct`/`send_oct` (open and closed
/// ones) with rates.
pub fn vhost_json(c: &Caller, v: &VHost) -> Value {
    let (mut ready, mut unacked) = (0u64, 0u64);
    for q in v.listed_queues() {
        ready += q.message_count() as u64;
        unacked += q.unacked_count() as u64;
    }
    let io = c.http.broker.connections.vhost_totals(v);
    let mut j = json!({
        "name": v.name.to_string_lossy(),
        "description": "",
        "tags": [],
        "default_queue_type": "undefined",
        "metadata": {"description": "", "tags": []},
        "tracing": v.is_tracing(),
        "cluster_state": {c.http.node.clone(): "running"},
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
        "recv_oct": io.get(ConnectionField::RecvOct),
        "recv_oct_details": rate(io.rate(ConnectionField::RecvOct)),
        "send_oct": io.get(ConnectionField::SendOct),
        "send_oct_details": rate(io.rate(ConnectionField::SendOct)),
    });
    put_opt(
        &mut j,
        "message_stats",
        channel_stats(&v.message_stats(), &v.totals().publishing()),
    );
    j
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    let items = visible_vhosts(&c, None)?
        .iter()
        .map(|v| vhost_json(&c, v))
        .collect();
    Ok(ok(p.list.apply(items)?))
}

pub async fn show(c: Caller, Names(name): Names<String>, p: Params) -> ApiResult<Response> {
    let v = c.read_vhost(&name)?;
    Ok(ok(p.list.project_single(vhost_json(&c, &v))))
}

/// Creates the vhost if missing; `{"tracing": true|false}` switches the
/// firehose tracer on or off, as RabbitMQ's PUT does (absent: unchanged).
pub async fn put(c: Caller, Names(name): Names<String>, body: Body) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    c.require_admin()?;
    check_name("vhost", &name)?;
    let tracing = match body.get("tracing") {
        None => None,
        Some(_) => Some(body.bool("tracing", false)?),
    };
    let existed = c.http.broker.vhost(&name).is_some();
    if !existed {
        super::replicate::replicate(&c, |_| warren_core::meta::MetaOp::AddVhost {
            name: name.clone(),
            creator: Some(c.user.name.clone()),
        })
        .await?;
    }
    c.http.broker.add_vhost_for(&name, Some(&c.user.name))?;
    let was_created = !existed;
    if let (Some(on), Some(v)) = (tracing, c.http.broker.vhost(&name)) {
        v.set_tracing(on);
    }
    Ok(created(was_created))
}

pub async fn delete(c: Caller, Names(name): Names<String>) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    c.require_admin()?;
    if c.http.broker.vhost(&name).is_none() {
        return Err(ApiError::object_not_found());
    }
    super::replicate::replicate(&c, |_| warren_core::meta::MetaOp::DeleteVhost {
        name: name.clone(),
    })
    .await?;
    // Deleted already by the replicated change on a cluster member.
    if c.http.broker.vhost(&name).is_some() {
        c.http.broker.delete_vhost(&name)?;
    }
    Ok(no_content())
}
