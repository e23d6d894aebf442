//! `/api/channels`, `/api/channels/NAME`, `/api/vhosts/V/channels`: the
//! channels of the connections the caller may see (see `connections.rs` for
//! the visibility rule), listed by each connection's adapter (an AMQP
//! connection's channels; a STOMP connection is one channel, numbered 1, as
//! in RabbitMQ). Prefetch, unacked and consumer counts, confirm/tx modes and
//! the channel's `message_stats` (`publish`, `deliver`, `get`, `ack`...).

use super::connections::visible;
use super::{channel_stats, ok, put_opt};
use crate::auth::Caller;
use crate::body::{Names, Params};
use crate::error::{ApiError, ApiResult};
use axum::response::Response;
use serde_json::{json, Value};
use warren_core::connections::{ChannelInfo, ConnectionInfo};

/// One channel as RabbitMQ 3.10 shows it (without `reductions`,
/// `garbage_collection`, `idle_since`). `message_stats` is left out until the
/// channel has counted something, as RabbitMQ does.
pub fn channel_json(node: &str, c: &ConnectionInfo, ch: &ChannelInfo) -> Value {
    let mut j = json!({
        "name": ch.name,
        "node": node,
        "number": ch.number,
        "vhost": c.vhost.name.to_string_lossy(),
        "user": c.user,
        "user_who_performed_action": c.user,
        "connection_details": {
            "name": c.name,
            "peer_host": c.peer.ip().to_string(),
            "peer_port": c.peer.port(),
        },
        "state": "running",
        "prefetch_count": ch.prefetch_count,
        "global_prefetch_count": ch.global_prefetch_count,
        "messages_unacknowledged": ch.messages_unacknowledged,
        "messages_unconfirmed": ch.messages_unconfirmed,
        "messages_uncommitted": 0,
        "acks_uncommitted": 0,
        "pending_raft_commands": 0,
        "consumer_count": ch.consumer_count,
        "confirm": ch.confirm,
        "transactional": ch.transactional,
    });
    put_opt(
        &mut j,
        "message_stats",
        channel_stats(&ch.message_stats, &ch.publish_stats),
    );
    j
}

fn all(c: &Caller, vhost: Option<&str>) -> Vec<Value> {
    let mut items = Vec::new();
    for x in visible(c, vhost) {
        for ch in x.channel_list() {
            items.push(channel_json(&c.http.node, &x, &ch));
        }
    }
    items
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    Ok(ok(p.list.apply(all(&c, None))?))
}

pub async fn list_vhost(c: Caller, Names(vhost): Names<String>, p: Params) -> ApiResult<Response> {
    c.read_vhost(&vhost)?;
    Ok(ok(p.list.apply(all(&c, Some(&vhost)))?))
}

/// `NAME` is "peer -> local (N)": the connection's name and the number.
pub async fn show(c: Caller, Names(name): Names<String>, p: Params) -> ApiResult<Response> {
    let (conn, number) = name
        .rsplit_once(" (")
        .and_then(|(conn, n)| Some((conn, n.strip_suffix(')')?.parse::<u16>().ok()?)))
        .ok_or_else(ApiError::object_not_found)?;
    let x = c
        .http
        .broker
        .connections
        .get_by_name(conn)
        .ok_or_else(ApiError::object_not_found)?;
    if !super::connections::sees_user(&c, &x.user) {
        return Err(ApiError::not_authorised(
            "User not authorised to access object",
        ));
    }
    let ch = x
        .channel_list()
        .into_iter()
        .find(|ch| ch.number == number)
        .ok_or_else(ApiError::object_not_found)?;
    Ok(ok(p.list.project_single(channel_json(
        &c.http.node,
        &x,
        &ch,
    ))))
}
