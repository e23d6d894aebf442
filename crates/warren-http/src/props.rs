//! AMQP message properties as the management API shows and takes them
//! (`/get` answers, `/publish` requests): RabbitMQ's field names.

use crate::error::{ApiError, ApiResult};
use serde_json::{Map, Value};
use warren_core::json::{json_to_table, table_to_json};
use warren_core::{BasicProperties, ShortStr};

/// Properties as a JSON object. RabbitMQ renders "no properties" as `[]`
/// (an empty Erlang proplist), and so does Warren.
pub fn to_json(p: &BasicProperties) -> Value {
    let mut o = Map::new();
    let mut s = |k: &str, v: &Option<ShortStr>| {
        if let Some(v) = v {
            o.insert(k.into(), Value::String(v.to_string_lossy().into_owned()));
        }
    };
    s("content_type", &p.content_type);
    s("content_encoding", &p.content_encoding);
    s("correlation_id", &p.correlation_id);
    s("reply_to", &p.reply_to);
    s("expiration", &p.expiration);
    s("message_id", &p.message_id);
    s("type", &p.kind);
    s("user_id", &p.user_id);
    s("app_id", &p.app_id);
    s("cluster_id", &p.cluster_id);
    if let Some(h) = &p.headers {
        o.insert("headers".into(), table_to_json(h));
    }
    if let Some(d) = p.delivery_mode {
        o.insert("delivery_mode".into(), d.into());
    }
    if let Some(pr) = p.priority {
        o.insert("priority".into(), pr.into());
    }
    if let Some(t) = p.timestamp {
        o.insert("timestamp".into(), t.into());
    }
    if o.is_empty() {
        Value::Array(Vec::new())
    } else {
        Value::Object(o)
    }
}

/// A `properties` object of a publish request.
pub fn from_json(v: &Value) -> ApiResult<BasicProperties> {
    let o = match v {
        Value::Object(o) => o,
        Value::Array(a) if a.is_empty() => return Ok(BasicProperties::default()),
        _ => return Err(ApiError::bad_request("properties must be an object")),
    };
    let mut p = BasicProperties::default();
    for (k, v) in o {
        let string = || -> ApiResult<Option<ShortStr>> {
            match v {
                Value::String(s) if s.len() <= 255 => Ok(Some(ShortStr::from(s.as_str()))),
                Value::Null => Ok(None),
                _ => Err(ApiError::bad_request(format!(
                    "invalid property {}: {}",
                    k, v
                ))),
            }
        };
        let int = |max: u64| -> ApiResult<Option<u64>> {
            match v {
                Value::Number(n) => {
                    n.as_u64().filter(|n| *n <= max).map(Some).ok_or_else(|| {
                        ApiError::bad_request(format!("invalid property {}: {}", k, v))
                    })
                }
                Value::String(s) => s
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n <= max)
                    .map(Some)
                    .ok_or_else(|| ApiError::bad_request(format!("invalid property {}: {}", k, v))),
                Value::Null => Ok(None),
                _ => Err(ApiError::bad_request(format!(
                    "invalid property {}: {}",
                    k, v
                ))),
            }
        };
        match k.as_str() {
            "content_type" => p.content_type = string()?,
            "content_encoding" => p.content_encoding = string()?,
            "correlation_id" => p.correlation_id = string()?,
            "reply_to" => p.reply_to = string()?,
            "expiration" => p.expiration = string()?,
            "message_id" => p.message_id = string()?,
            "type" => p.kind = string()?,
            "user_id" => p.user_id = string()?,
            "app_id" => p.app_id = string()?,
            "cluster_id" => p.cluster_id = string()?,
            "delivery_mode" => p.delivery_mode = int(255)?.map(|n| n as u8),
            "priority" => p.priority = int(255)?.map(|n| n as u8),
            "timestamp" => p.timestamp = int(u64::MAX)?,
            "headers" => {
                p.headers = match v {
                    Value::Null => None,
                    _ => Some(
                        json_to_table(v)
                            .ok_or_else(|| ApiError::bad_request("headers must be an object"))?,
                    ),
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown property '{}'",
                    other
                )))
            }
        }
    }
    Ok(p)
}
