//! Management commands over the broker itself (the control bus): `warren ctl`
//! publishes a JSON command to the `amq.warren.control` pseudo-exchange with a
//! `reply_to`, and gets a JSON answer back. This needs no extra port or
//! protocol and uses AMQP's own authentication: users, vhosts and permissions
//! are managed by users tagged `administrator` only; policies, tracing and
//! queue listing also by `policymaker`.

use crate::broker::Broker;
use crate::permissions::PermissionDef;
use crate::policy::PolicyDef;
use serde_json::{json, Value};

/// The exchange name commands are published to.
pub const CONTROL_EXCHANGE: &str = "amq.warren.control";

/// Commands that manage users, vhosts and permissions (administrator only).
pub(crate) const ADMIN_COMMANDS: &[&str] = &[
    "add_vhost",
    "delete_vhost",
    "list_vhosts",
    "add_user",
    "delete_user",
    "change_password",
    "set_user_tags",
    "list_users",
    "set_permissions",
    "clear_permissions",
    "list_permissions",
    "list_user_permissions",
    "set_vhost_limits",
    "clear_vhost_limits",
    "list_vhost_limits",
];

/// Run one command for a user with `tags` (its current tags); the answer is
/// `{"ok": true, ...}` or `{"ok": false, "error": ...}`.
pub fn execute(broker: &Broker, tags: &[String], body: &[u8]) -> Value {
    let has = |tag: &str| tags.iter().any(|t| t == tag);
    if !has("administrator") && !has("policymaker") {
        return json!({"ok": false, "error": "access refused: administrator or policymaker tag required"});
    }
    let cmd: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return json!({"ok": false, "error": format!("invalid JSON: {}", e)}),
    };
    let name = cmd.get("command").and_then(|v| v.as_str()).unwrap_or("");
    let result = if ADMIN_COMMANDS.contains(&name) {
        if has("administrator") {
            run_admin(broker, name, &cmd)
        } else {
            Err("access refused: administrator tag required".into())
        }
    } else {
        run(broker, &cmd)
    };
    match result {
        Ok(mut v) => {
            if let Some(o) = v.as_object_mut() {
                o.insert("ok".into(), Value::Bool(true));
            }
            v
        }
        Err(e) => json!({"ok": false, "error": e}),
    }
}

/// User, vhost and permission management (see [`crate::admin`]).
fn run_admin(broker: &Broker, command: &str, cmd: &Value) -> Result<Value, String> {
    let field = |k: &str| {
        cmd.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("missing {}", k))
    };
    let vhost = || cmd.get("vhost").and_then(|v| v.as_str()).unwrap_or("/");
    let done = |r: crate::Result<()>| r.map(|()| json!({})).map_err(|e| e.text);
    match command {
        "add_vhost" => done(broker.add_vhost(&field("name")?)),
        "delete_vhost" => done(broker.delete_vhost(&field("name")?)),
        "list_vhosts" => Ok(json!({"vhosts": broker.list_vhosts()})),
        "add_user" => done(broker.add_user(&field("name")?, &field("password")?)),
        "delete_user" => done(broker.delete_user(&field("name")?)),
        "change_password" => done(broker.change_password(&field("name")?, &field("password")?)),
        "set_user_tags" => done(broker.set_user_tags(&field("name")?, &tags(cmd))),
        "list_users" => Ok(json!({"users": broker.list_users()})),
        "set_permissions" => done(broker.set_permissions(PermissionDef {
            user: field("user")?,
            vhost: vhost().to_string(),
            configure: field("configure")?,
            write: field("write")?,
            read: field("read")?,
        })),
        "clear_permissions" => done(broker.clear_permissions(&field("user")?, vhost())),
        "list_permissions" => broker
            .list_permissions(vhost())
            .map(|p| json!({"permissions": p}))
            .map_err(|e| e.text),
        "list_user_permissions" => broker
            .list_user_permissions(&field("user")?)
            .map(|p| json!({"permissions": p}))
            .map_err(|e| e.text),
        "set_vhost_limits" => done(broker.set_vhost_limits(vhost(), vhost_limits(cmd)?)),
        "clear_vhost_limits" => done(broker.clear_vhost_limit(vhost(), None)),
        "list_vhost_limits" => broker
            .vhost(vhost())
            .map(|v| json!({ "limits": v.limits() }))
            .ok_or_else(|| format!("Virtual host '{}' does not exist", vhost())),
        other => Err(format!("unknown command '{}'", other)),
    }
}

/// `set_user_tags`' tags (none: cleared).
pub(crate) fn tags(cmd: &Value) -> Vec<String> {
    cmd.get("tags")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `set_vhost_limits`' limits, or the HTTP API's text for bad ones (both
/// transports answer alike).
pub(crate) fn vhost_limits(cmd: &Value) -> Result<crate::limits::LimitMap, String> {
    let limits = cmd
        .get("limits")
        .and_then(Value::as_object)
        .ok_or("missing limits object")?;
    crate::limits::parse_all(crate::limits::VHOST_LIMITS, limits)
        .map_err(|e| format!("Validation failed\n\n{}\n", e.text))
}

/// `set_policy`'s policy in `vhost`.
pub(crate) fn policy_def(cmd: &Value, vhost: &str) -> Result<PolicyDef, String> {
    let field = |k: &str| cmd.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Ok(PolicyDef {
        vhost: vhost.to_string(),
        name: field("name").ok_or("missing name")?,
        pattern: field("pattern").ok_or("missing pattern")?,
        apply_to: field("apply_to").unwrap_or_else(|| "all".into()),
        priority: cmd.get("priority").and_then(|v| v.as_i64()).unwrap_or(0),
        definition: cmd
            .get("definition")
            .and_then(|v| v.as_object())
            .cloned()
            .ok_or("missing definition object")?,
    })
}

fn run(broker: &Broker, cmd: &Value) -> Result<Value, String> {
    let field = |k: &str| cmd.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let vhost_name = field("vhost").unwrap_or_else(|| "/".into());
    let vhost = broker
        .vhost(&vhost_name)
        .ok_or_else(|| format!("no vhost '{}'", vhost_name))?;
    match field("command").as_deref() {
        Some("set_policy") => {
            vhost
                .set_policy(policy_def(cmd, &vhost_name)?, true)
                .map_err(|e| e.text)?;
            Ok(json!({}))
        }
        Some("clear_policy") => {
            vhost
                .clear_policy(&field("name").ok_or("missing name")?)
                .map_err(|e| e.text)?;
            Ok(json!({}))
        }
        Some("list_policies") => {
            let mut policies = vhost.policies();
            policies.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(json!({ "policies": policies }))
        }
        Some("trace_on") => {
            vhost.set_tracing(true);
            Ok(json!({}))
        }
        Some("trace_off") => {
            vhost.set_tracing(false);
            Ok(json!({}))
        }
        Some("list_queues") => {
            let mut queues = vhost.listed_queues();
            queues.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
            let queues: Vec<Value> = queues
                .iter()
                .map(|q| {
                    let mut line = json!({
                        "name": q.name.to_string(),
                        "messages": q.message_count(),
                        "consumers": q.consumer_count(),
                        "durable": q.options.durable,
                        "type": if q.is_stream() { "stream" } else { "classic" },
                    });
                    // A replicated queue: its type and, as rabbitmqctl
                    // list_queues shows them, leader, members and online
                    // (the same columns `warren ctl` asks the HTTP API for).
                    if let Some(b) = q.backend() {
                        line["type"] = json!(b.kind());
                        let info = b.info(q);
                        for k in ["leader", "members", "online"] {
                            if let Some(v) = info.get(k) {
                                line[k] = v.clone();
                            }
                        }
                    }
                    line
                })
                .collect();
            Ok(json!({"queues": queues}))
        }
        Some(other) => Err(format!("unknown command '{}'", other)),
        None => Err("missing command".into()),
    }
}
