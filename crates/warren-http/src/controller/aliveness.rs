//! `GET /api/aliveness-test/VHOST`: declare the queue `aliveness-test`,
//! publish a message to it and get it back, as RabbitMQ does (the queue
//! stays, as in RabbitMQ).

use super::ok;
use crate::auth::Caller;
use crate::body::Names;
use crate::error::ApiResult;
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;
use warren_core::{BasicProperties, Message, QueueOptions, ShortStr};

pub async fn check(c: Caller, Names(vhost): Names<String>) -> ApiResult<Response> {
    let v = c.write_vhost(&vhost)?;
    let name = ShortStr::from("aliveness-test");
    let opts = QueueOptions {
        durable: false,
        exclusive: false,
        auto_delete: false,
        arguments: Default::default(),
    };
    let conn = c.http.broker.next_connection_id();
    let (q, _) = v.declare_queue(Some(name.clone()), opts, false, conn)?;
    let default = v.get_exchange(&ShortStr::from(""))?;
    let msg = Message::new(
        ShortStr::from(""),
        name,
        BasicProperties::default().encode(),
        Bytes::from_static(b"test_message"),
    );
    v.publish(&default, msg, &mut Vec::new());
    let got = q.get(true);
    Ok(match got {
        Some((m, _)) if m.message.body.as_ref() == b"test_message" => ok(json!({"status": "ok"})),
        _ => ok(json!({"status": "failed", "reason": "aliveness-test message not received"})),
    })
}
