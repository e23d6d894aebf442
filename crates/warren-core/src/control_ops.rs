//! The control bus's changes on a cluster node (`warren ctl --amqp-url`):
//! which [`MetaOp`]s a command makes, so that the adapter replicates them
//! as the management API replicates its own (see [`crate::meta`]).
//!
//! Only a command that would succeed here is mapped (the caller may run
//! it, the things it names exist or do not, its values parse); anything
//! else runs locally as before and answers its own error, so no refused
//! command is replicated. Read-only commands and tracing (per node, as
//! `rabbitmqctl trace_on`) are not mapped either.

use crate::broker::Broker;
use crate::meta::MetaOp;
use crate::permissions::PermissionDef;
use serde_json::{json, Value};

/// The changes `body` (a control command) makes, for a user with `tags`;
/// None when it changes no metadata or would be refused.
pub fn replicated_ops(broker: &Broker, tags: &[String], body: &[u8]) -> Option<Vec<MetaOp>> {
    let has = |tag: &str| tags.iter().any(|t| t == tag);
    let cmd: Value = serde_json::from_slice(body).ok()?;
    let name = cmd.get("command")?.as_str()?;
    let field = |k: &str| cmd.get(k).and_then(Value::as_str).map(str::to_string);
    let vhost = field("vhost").unwrap_or_else(|| "/".into());
    let user_exists = |n: &str| broker.user(n).is_some();
    let vhost_exists = |n: &str| broker.vhost(n).is_some();
    let admin = has("administrator");
    if !admin && !has("policymaker") {
        return None;
    }
    if crate::control::ADMIN_COMMANDS.contains(&name) && !admin {
        return None;
    }
    let one = |op: MetaOp| Some(vec![op]);
    match name {
        "add_vhost" => {
            let n = field("name")?;
            (!n.is_empty() && n.len() <= 255 && !vhost_exists(&n)).then_some(())?;
            one(MetaOp::AddVhost {
                name: n,
                creator: None,
            })
        }
        "delete_vhost" => {
            let n = field("name")?;
            vhost_exists(&n).then_some(())?;
            one(MetaOp::DeleteVhost { name: n })
        }
        "add_user" => {
            let (n, pw) = (field("name")?, field("password")?);
            (!n.is_empty() && !user_exists(&n)).then_some(())?;
            one(MetaOp::PutUser {
                name: n,
                password_hash: Some(crate::auth::hash_new_password(&pw)),
                tags: Vec::new(),
            })
        }
        "delete_user" => {
            let n = field("name")?;
            user_exists(&n).then_some(())?;
            one(MetaOp::DeleteUser { name: n })
        }
        "change_password" => {
            let (n, pw) = (field("name")?, field("password")?);
            let u = broker.user(&n)?;
            one(MetaOp::PutUser {
                name: n,
                password_hash: Some(crate::auth::hash_new_password(&pw)),
                tags: u.tags,
            })
        }
        "set_user_tags" => {
            let n = field("name")?;
            user_exists(&n).then_some(())?;
            one(MetaOp::PutUser {
                name: n,
                password_hash: None,
                tags: crate::control::tags(&cmd),
            })
        }
        "set_permissions" => {
            let def = PermissionDef {
                user: field("user")?,
                vhost,
                configure: field("configure")?,
                write: field("write")?,
                read: field("read")?,
            };
            (user_exists(&def.user) && vhost_exists(&def.vhost)).then_some(())?;
            crate::permissions::Permission::new(def.clone()).ok()?;
            one(MetaOp::SetPermissions { def })
        }
        "clear_permissions" => {
            let user = field("user")?;
            broker.permission(&user, &vhost)?;
            one(MetaOp::ClearPermissions { user, vhost })
        }
        "set_vhost_limits" => {
            vhost_exists(&vhost).then_some(())?;
            let limits = crate::control::vhost_limits(&cmd).ok()?;
            let mut ops = vec![MetaOp::SetVhostLimit {
                vhost: vhost.clone(),
                name: None,
                value: None,
            }];
            for (k, v) in limits {
                ops.push(MetaOp::SetVhostLimit {
                    vhost: vhost.clone(),
                    name: Some(k),
                    value: Some(json!(v)),
                });
            }
            Some(ops)
        }
        "clear_vhost_limits" => {
            vhost_exists(&vhost).then_some(())?;
            one(MetaOp::SetVhostLimit {
                vhost,
                name: None,
                value: None,
            })
        }
        "set_policy" => {
            vhost_exists(&vhost).then_some(())?;
            let def = crate::control::policy_def(&cmd, &vhost).ok()?;
            crate::policy::Policy::new(def.clone()).ok()?;
            one(MetaOp::SetPolicy { vhost, def })
        }
        "clear_policy" => {
            let n = field("name")?;
            let v = broker.vhost(&vhost)?;
            v.policies().iter().any(|p| p.name == n).then_some(())?;
            one(MetaOp::ClearPolicy { vhost, name: n })
        }
        _ => None,
    }
}

/// The answer to a command whose changes were replicated: what the local
/// call would have answered (`{"ok": true}`), or the cluster's refusal.
pub fn answer(result: crate::Result<()>) -> Value {
    match result {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e.text}),
    }
}
