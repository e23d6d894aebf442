//! A definitions import as replicated metadata changes.
//!
//! On a cluster node, `POST /api/definitions` must reach every node, like
//! the API's single-object changes. The import is turned into the same
//! [`MetaOp`]s those use (users, vhosts, permissions, policies, exchanges,
//! queues homed on the importing node, bindings), in the order a single
//! node's import applies them, topic permissions too; the adapter replicates them one by one and
//! then runs the usual local import, which finds them done (and imports the
//! parts that are not replicated yet: see docs/CLUSTERING.md).
//!
//! Clear-text passwords are hashed first ([`prehash_passwords`]), once, so
//! every node stores the same hash.

use crate::admin::Credential;
use crate::auth::hash_new_password;
use crate::error::Result;
use crate::exchange::ExchangeKind;
use crate::export::{
    args_field, bad, bool_field, is_builtin_exchange, list_field, permission_def, policy_def,
    str_field, tags_of, user_credential,
};
use crate::meta::MetaOp;
use crate::store::definitions::table_to_hex;
use crate::topic_permissions::TopicPermissionDef;
use serde_json::{Map, Value};

/// Replace each user's clear-text `password` by a `password_hash` (fresh
/// salt), in place.
pub fn prehash_passwords(defs: &mut Map<String, Value>) {
    let Some(Value::Array(users)) = defs.get_mut("users") else {
        return;
    };
    for u in users {
        let Some(o) = u.as_object_mut() else { continue };
        if o.get("password_hash").is_some_and(Value::is_string) {
            continue;
        }
        if let Some(Value::String(p)) = o.remove("password") {
            o.insert("password_hash".into(), Value::String(hash_new_password(&p)));
            o.remove("hashing_algorithm");
        }
    }
}

/// The metadata changes importing `defs` makes (into `vhost`, or each
/// object's own); queues get `owner` as their home. Errors are the import's
/// own (RabbitMQ answers 400): nothing is replicated when one comes back.
pub fn definitions_to_ops(
    defs: &Map<String, Value>,
    vhost: Option<&str>,
    acting_user: Option<&str>,
    owner: &str,
) -> Result<Vec<MetaOp>> {
    let list = |k: &str| list_field(defs, k);
    let target = |o: &Value| -> Result<String> {
        Ok(match vhost {
            Some(v) => v.to_string(),
            None => str_field(o, "vhost")?.to_string(),
        })
    };
    let mut ops = Vec::new();
    if vhost.is_none() {
        for u in list("users")? {
            let credential = match user_credential(u)? {
                Credential::Password(p) => Credential::Hash(hash_new_password(&p)),
                c => c,
            };
            ops.push(MetaOp::PutUser {
                name: str_field(u, "name")?.to_string(),
                password_hash: match credential {
                    Credential::Hash(h) => Some(h),
                    _ => None,
                },
                tags: tags_of(u.get("tags"))?,
            });
        }
        for v in list("vhosts")? {
            ops.push(MetaOp::AddVhost {
                name: str_field(v, "name")?.to_string(),
                creator: acting_user.map(str::to_string),
            });
        }
        for p in list("permissions")? {
            ops.push(MetaOp::SetPermissions {
                def: permission_def(p)?,
            });
        }
        for t in list("topic_permissions")? {
            ops.push(MetaOp::SetTopicPermission {
                def: TopicPermissionDef {
                    user: str_field(t, "user")?.into(),
                    vhost: str_field(t, "vhost")?.into(),
                    exchange: str_field(t, "exchange")?.into(),
                    write: str_field(t, "write")?.into(),
                    read: str_field(t, "read")?.into(),
                },
            });
        }
    }
    for p in list("policies")? {
        let v = target(p)?;
        ops.push(MetaOp::SetPolicy {
            def: policy_def(p, &v)?,
            vhost: v,
        });
    }
    for e in list("exchanges")? {
        let name = str_field(e, "name")?;
        if is_builtin_exchange(name) {
            continue;
        }
        let kind = str_field(e, "type")?;
        let kind = ExchangeKind::parse(kind.as_bytes())
            .ok_or_else(|| bad(format!("invalid exchange type '{}'", kind)))?;
        ops.push(MetaOp::DeclareExchange {
            vhost: target(e)?,
            name: name.to_string(),
            kind: kind.as_str().to_string(),
            durable: bool_field(e, "durable", true)?,
            auto_delete: bool_field(e, "auto_delete", false)?,
            internal: bool_field(e, "internal", false)?,
            arguments: table_to_hex(&args_field(e)?),
        });
    }
    for q in list("queues")? {
        ops.push(MetaOp::DeclareQueue {
            vhost: target(q)?,
            name: str_field(q, "name")?.to_string(),
            durable: bool_field(q, "durable", true)?,
            auto_delete: bool_field(q, "auto_delete", false)?,
            arguments: table_to_hex(&args_field(q)?),
            owner: owner.to_string(),
            quorum: None,
        });
    }
    for b in list("bindings")? {
        let vhost = target(b)?;
        let source = str_field(b, "source")?.to_string();
        let destination = str_field(b, "destination")?.to_string();
        let routing_key = b
            .get("routing_key")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let arguments = table_to_hex(&args_field(b)?);
        ops.push(match str_field(b, "destination_type")? {
            "queue" => MetaOp::BindQueue {
                vhost,
                queue: destination,
                exchange: source,
                routing_key,
                arguments,
            },
            "exchange" => MetaOp::BindExchange {
                vhost,
                destination,
                source,
                routing_key,
                arguments,
            },
            other => return Err(bad(format!("invalid destination_type '{}'", other))),
        });
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_export_becomes_ops_in_import_order() {
        let mut defs = json!({
            "users": [{"name": "app", "password": "s3cret", "tags": "monitoring"}],
            "vhosts": [{"name": "v1"}],
            "permissions": [{"user": "app", "vhost": "v1", "configure": ".*", "write": ".*", "read": ".*"}],
            "policies": [{"vhost": "v1", "name": "p", "pattern": "^q", "definition": {"max-length": 5}}],
            "exchanges": [{"name": "amq.direct", "vhost": "v1", "type": "direct"},
                          {"name": "x1", "vhost": "v1", "type": "topic"}],
            "queues": [{"name": "q1", "vhost": "v1", "arguments": {"x-message-ttl": 1000}}],
            "bindings": [{"source": "x1", "vhost": "v1", "destination": "q1",
                          "destination_type": "queue", "routing_key": "a.#"}]
        });
        let obj = defs.as_object_mut().unwrap();
        prehash_passwords(obj);
        let hash = obj["users"][0]["password_hash"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(obj["users"][0].get("password").is_none());
        let ops = definitions_to_ops(obj, None, Some("guest"), "n1").unwrap();
        let kinds: Vec<&str> = ops
            .iter()
            .map(|o| match o {
                MetaOp::PutUser { password_hash, .. } => {
                    assert_eq!(password_hash.as_deref(), Some(hash.as_str()));
                    "user"
                }
                MetaOp::AddVhost { .. } => "vhost",
                MetaOp::SetPermissions { .. } => "perm",
                MetaOp::SetPolicy { .. } => "policy",
                MetaOp::DeclareExchange { .. } => "exchange",
                MetaOp::DeclareQueue { owner, .. } => {
                    assert_eq!(owner, "n1");
                    "queue"
                }
                MetaOp::BindQueue { .. } => "bind",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            ["user", "vhost", "perm", "policy", "exchange", "queue", "bind"]
        );
        let bad = json!({"bindings": [{"source": "x", "vhost": "/", "destination": "q",
                                        "destination_type": "nowhere"}]});
        assert!(definitions_to_ops(bad.as_object().unwrap(), None, None, "n1").is_err());
    }
}
