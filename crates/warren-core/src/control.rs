//! Management commands over the broker itself (the control bus): `warren ctl`
//! publishes a JSON command to the `amq.warren.control` pseudo-exchange with a
//! `reply_to`, and gets a JSON answer back. This needs no extra port or
//! protocol and uses AMQP's own authentication: only users tagged
//! `administrator` or `policymaker` may run commands.

use crate::broker::Broker;
use crate::policy::PolicyDef;
use serde_json::{json, Value};

/// The exchange name commands are published to.
pub const CONTROL_EXCHANGE: &str = "amq.warren.control";

/// Run one command; the answer is `{"ok": true, ...}` or `{"ok": false, "error": ...}`.
pub fn execute(broker: &Broker, tags: &[String], body: &[u8]) -> Value {
    if !tags
        .iter()
        .any(|t| t == "administrator" || t == "policymaker")
    {
        return json!({"ok": false, "error": "access refused: administrator or policymaker tag required"});
    }
    let cmd: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return json!({"ok": false, "error": format!("invalid JSON: {}", e)}),
    };
    match run(broker, &cmd) {
        Ok(mut v) => {
            if let Some(o) = v.as_object_mut() {
                o.insert("ok".into(), Value::Bool(true));
            }
            v
        }
        Err(e) => json!({"ok": false, "error": e}),
    }
}

fn run(broker: &Broker, cmd: &Value) -> Result<Value, String> {
    let field = |k: &str| cmd.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let vhost_name = field("vhost").unwrap_or_else(|| "/".into());
    let vhost = broker
        .vhost(&vhost_name)
        .ok_or_else(|| format!("no vhost '{}'", vhost_name))?;
    match field("command").as_deref() {
        Some("set_policy") => {
            let def = PolicyDef {
                vhost: vhost_name.clone(),
                name: field("name").ok_or("missing name")?,
                pattern: field("pattern").ok_or("missing pattern")?,
                apply_to: field("apply_to").unwrap_or_else(|| "all".into()),
                priority: cmd.get("priority").and_then(|v| v.as_i64()).unwrap_or(0),
                definition: cmd
                    .get("definition")
                    .and_then(|v| v.as_object())
                    .cloned()
                    .ok_or("missing definition object")?,
            };
            vhost.set_policy(def, true).map_err(|e| e.text)?;
            Ok(json!({}))
        }
        Some("clear_policy") => {
            vhost
                .clear_policy(&field("name").ok_or("missing name")?)
                .map_err(|e| e.text)?;
            Ok(json!({}))
        }
        Some("list_policies") => Ok(json!({"policies": vhost.policies()})),
        Some("trace_on") => {
            vhost.set_tracing(true);
            Ok(json!({}))
        }
        Some("trace_off") => {
            vhost.set_tracing(false);
            Ok(json!({}))
        }
        Some("list_queues") => {
            let queues: Vec<Value> = vhost
                .queues()
                .iter()
                .map(|q| {
                    json!({
                        "name": q.name.to_string(),
                        "messages": q.message_count(),
                        "consumers": q.consumer_count(),
                        "durable": q.options.durable,
                    })
                })
                .collect();
            Ok(json!({"queues": queues}))
        }
        Some(other) => Err(format!("unknown command '{}'", other)),
        None => Err("missing command".into()),
    }
}
