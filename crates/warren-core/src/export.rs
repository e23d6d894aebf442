//! RabbitMQ's definitions.json: exporting the broker's (or one vhost's)
//! users, vhosts, permissions, policies, exchanges, queues and bindings in
//! RabbitMQ's format, and importing such a file, so a RabbitMQ export loads
//! into Warren and a Warren export loads into RabbitMQ. The HTTP API's
//! `/api/definitions` is a thin layer over these two functions.
//!
//! Import goes through the same operations as management and clients
//! (`upsert_user`, `add_vhost`, `set_permissions`, `set_policy`, declares,
//! binds), so validation, persistence and equivalence checks are theirs.

use crate::admin::Credential;
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::exchange::{Destination, ExchangeKind, ExchangeOptions};
use crate::json::{json_to_table, table_to_json};
use crate::permissions::PermissionDef;
use crate::policy::PolicyDef;
use crate::queue::QueueOptions;
use crate::shortstr::ShortStr;
use crate::table::FieldTable;
use crate::vhost::VHost;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The RabbitMQ version Warren's exports claim (the format's version).
pub const RABBIT_VERSION: &str = "3.10.8";

/// Exchanges every vhost has: never exported or imported.
pub fn is_builtin_exchange(name: &str) -> bool {
    name.is_empty() || name.starts_with("amq.")
}

/// A policy in RabbitMQ's JSON shape.
pub fn policy_json(p: &PolicyDef, with_vhost: bool) -> Value {
    let mut o = Map::new();
    if with_vhost {
        o.insert("vhost".into(), json!(p.vhost));
    }
    o.insert("name".into(), json!(p.name));
    o.insert("pattern".into(), json!(p.pattern));
    o.insert("apply-to".into(), json!(p.apply_to));
    o.insert("definition".into(), Value::Object(p.definition.clone()));
    o.insert("priority".into(), json!(p.priority));
    Value::Object(o)
}

/// A binding in RabbitMQ's JSON shape (without `properties_key`).
pub fn binding_json(
    vhost: &str,
    source: &str,
    dest_type: &str,
    dest: &str,
    key: &str,
    args: &FieldTable,
    with_vhost: bool,
) -> Value {
    let mut o = Map::new();
    o.insert("source".into(), json!(source));
    if with_vhost {
        o.insert("vhost".into(), json!(vhost));
    }
    o.insert("destination".into(), json!(dest));
    o.insert("destination_type".into(), json!(dest_type));
    o.insert("routing_key".into(), json!(key));
    o.insert("arguments".into(), table_to_json(args));
    Value::Object(o)
}

fn sorted_vhosts(broker: &Broker, only: Option<&str>) -> Result<Vec<Arc<VHost>>> {
    match only {
        Some(v) => Ok(vec![broker.vhost(v).ok_or_else(|| {
            BrokerError::not_found(format!("Virtual host '{}' does not exist", v))
        })?]),
        None => {
            let mut all = broker.vhosts();
            all.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
            Ok(all)
        }
    }
}

impl Broker {
    /// Export definitions: the whole broker (`vhost` None: users, vhosts and
    /// permissions too, each object with its `vhost`), or one vhost (objects
    /// without `vhost`, as RabbitMQ's `/api/definitions/VHOST`). Exclusive
    /// queues and the built-in exchanges are left out, as RabbitMQ does.
    pub fn export_definitions(&self, vhost: Option<&str>) -> Result<Value> {
        let all = vhost.is_none();
        let vhosts = sorted_vhosts(self, vhost)?;
        let (mut policies, mut queues, mut exchanges, mut bindings) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for v in &vhosts {
            let vname = v.name.to_string_lossy().into_owned();
            let mut ps = v.policies();
            ps.sort_by(|a, b| a.name.cmp(&b.name));
            policies.extend(ps.iter().map(|p| policy_json(p, all)));
            let mut qs = v.listed_queues();
            qs.retain(|q| !q.options.exclusive);
            qs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
            for q in qs {
                let mut o = Map::new();
                o.insert("name".into(), json!(q.name.to_string_lossy()));
                if all {
                    o.insert("vhost".into(), json!(vname));
                }
                o.insert("durable".into(), json!(q.options.durable));
                o.insert("auto_delete".into(), json!(q.options.auto_delete));
                o.insert("arguments".into(), table_to_json(&q.options.arguments));
                queues.push(Value::Object(o));
            }
            let mut es = v.exchanges();
            es.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
            for e in &es {
                let name = e.name.to_string_lossy();
                for b in e.bindings() {
                    let (t, d) = match &b.destination {
                        Destination::Queue(q) => ("queue", q.name.to_string_lossy()),
                        Destination::Exchange(x) => ("exchange", x.name.to_string_lossy()),
                    };
                    bindings.push(binding_json(
                        &vname,
                        &name,
                        t,
                        &d,
                        &b.routing_key.to_string_lossy(),
                        &b.arguments,
                        all,
                    ));
                }
                if is_builtin_exchange(&name) {
                    continue;
                }
                let mut o = Map::new();
                o.insert("name".into(), json!(name));
                if all {
                    o.insert("vhost".into(), json!(vname));
                }
                o.insert("type".into(), json!(e.options.kind.as_str()));
                o.insert("durable".into(), json!(e.options.durable));
                o.insert("auto_delete".into(), json!(e.options.auto_delete));
                o.insert("internal".into(), json!(e.options.internal));
                o.insert("arguments".into(), table_to_json(&e.options.arguments));
                exchanges.push(Value::Object(o));
            }
        }
        let mut out = Map::new();
        out.insert("rabbit_version".into(), json!(RABBIT_VERSION));
        if all {
            out.insert("rabbitmq_version".into(), json!(RABBIT_VERSION));
            out.insert("product_name".into(), json!("Warren"));
            out.insert("product_version".into(), json!(env!("CARGO_PKG_VERSION")));
            let users: Vec<Value> = self
                .list_users()
                .into_iter()
                .map(|u| {
                    json!({
                        "name": u.name,
                        "password_hash": self.password_hash(&u.name).unwrap_or_default(),
                        "hashing_algorithm": "rabbit_password_hashing_sha256",
                        "tags": u.tags,
                        "limits": self.user(&u.name).map(|x| x.limits).unwrap_or_default(),
                    })
                })
                .collect();
            out.insert("users".into(), Value::Array(users));
            let vs: Vec<Value> = vhosts
                .iter()
                .map(|v| json!({"name": v.name.to_string_lossy(), "limits": [], "metadata": {"description": "", "tags": []}}))
                .collect();
            out.insert("vhosts".into(), Value::Array(vs));
            let mut perms = Vec::new();
            for v in &vhosts {
                for p in self.list_permissions(&v.name.to_string_lossy())? {
                    perms.push(json!({"user": p.user, "vhost": p.vhost,
                        "configure": p.configure, "write": p.write, "read": p.read}));
                }
            }
            out.insert("permissions".into(), Value::Array(perms));
        }
        self.export_runtime(&vhosts, all, &mut out);
        out.insert("policies".into(), Value::Array(policies));
        out.insert("queues".into(), Value::Array(queues));
        out.insert("exchanges".into(), Value::Array(exchanges));
        out.insert("bindings".into(), Value::Array(bindings));
        Ok(Value::Object(out))
    }

    /// Import definitions (RabbitMQ's format): into the whole broker (`vhost`
    /// None: each object names its vhost; users, vhosts and permissions are
    /// imported too) or into one vhost (objects' `vhost` is ignored). Stops
    /// at the first invalid object with a 400-style error (`precondition_failed`
    /// text) or 404 for a missing vhost; what was imported before stays.
    /// A vhost the import creates gives `acting_user` (the importing user)
    /// full permissions on it first, as RabbitMQ does.
    pub fn import_definitions(
        &self,
        defs: &Value,
        vhost: Option<&str>,
        acting_user: Option<&str>,
    ) -> Result<()> {
        let obj = defs
            .as_object()
            .ok_or_else(|| bad("definitions must be a JSON object"))?;
        let list = |k: &str| list_field(obj, k);
        if vhost.is_none() {
            for u in list("users")? {
                let name = str_field(u, "name")?;
                let tags = tags_of(u.get("tags"))?;
                self.upsert_user(name, user_credential(u)?, tags)?;
            }
            for v in list("vhosts")? {
                let name = str_field(v, "name")?;
                self.add_vhost_for(name, acting_user)?;
            }
            for p in list("permissions")? {
                self.set_permissions(permission_def(p)?).map_err(|e| {
                    if e.code == crate::error::code::NOT_FOUND {
                        bad(e.text)
                    } else {
                        e
                    }
                })?;
            }
        }
        let target = |o: &Value| -> Result<Arc<VHost>> {
            let name = match vhost {
                Some(v) => v,
                None => str_field(o, "vhost")?,
            };
            self.vhost(name)
                .ok_or_else(|| BrokerError::not_found(format!("vhost '{}' not found", name)))
        };
        // Limits and operator policies before the queues they limit.
        self.import_runtime(obj, vhost)?;
        for p in list("policies")? {
            let v = target(p)?;
            v.set_policy(policy_def(p, &v.name.to_string())?, true)?;
        }
        for e in list("exchanges")? {
            let v = target(e)?;
            let name = str_field(e, "name")?;
            if is_builtin_exchange(name) {
                continue;
            }
            let kind = str_field(e, "type")?;
            let opts = ExchangeOptions {
                kind: ExchangeKind::parse(kind.as_bytes())
                    .ok_or_else(|| bad(format!("invalid exchange type '{}'", kind)))?,
                durable: bool_field(e, "durable", true)?,
                auto_delete: bool_field(e, "auto_delete", false)?,
                internal: bool_field(e, "internal", false)?,
                arguments: args_field(e)?,
            };
            v.declare_exchange(ShortStr::from(name), opts, false)?;
        }
        for q in list("queues")? {
            let v = target(q)?;
            let opts = QueueOptions {
                durable: bool_field(q, "durable", true)?,
                exclusive: false,
                auto_delete: bool_field(q, "auto_delete", false)?,
                arguments: args_field(q)?,
            };
            v.declare_queue(Some(ShortStr::from(str_field(q, "name")?)), opts, false, 0)?;
        }
        for b in list("bindings")? {
            let v = target(b)?;
            let source = ShortStr::from(str_field(b, "source")?);
            let dest = ShortStr::from(str_field(b, "destination")?);
            let key = ShortStr::from(b.get("routing_key").and_then(Value::as_str).unwrap_or(""));
            let args = args_field(b)?;
            match str_field(b, "destination_type")? {
                "queue" => v.bind_queue(&dest, &source, key, args, 0)?,
                "exchange" => v.bind_exchange(&dest, &source, key, args)?,
                other => return Err(bad(format!("invalid destination_type '{}'", other))),
            }
        }
        Ok(())
    }
}

/// A definitions file's list `k` (absent or null: empty).
pub(crate) fn list_field<'a>(defs: &'a Map<String, Value>, k: &str) -> Result<&'a [Value]> {
    match defs.get(k) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(bad(format!("'{}' must be a list", k))),
    }
}

/// A user object's credential: a RabbitMQ sha256 hash as given, or a
/// clear-text password (kept clear here; each caller decides when to hash).
pub(crate) fn user_credential(u: &Value) -> Result<Credential> {
    Ok(match (u.get("password_hash"), u.get("password")) {
        (Some(Value::String(h)), _) => {
            match u.get("hashing_algorithm").and_then(Value::as_str) {
                None | Some("rabbit_password_hashing_sha256") => {}
                Some(other) => {
                    return Err(bad(format!("unsupported hashing_algorithm '{}'", other)))
                }
            }
            Credential::Hash(h.clone())
        }
        (_, Some(Value::String(p))) => Credential::Password(p.clone()),
        _ => Credential::Keep,
    })
}

/// A permissions object.
pub(crate) fn permission_def(p: &Value) -> Result<PermissionDef> {
    Ok(PermissionDef {
        user: str_field(p, "user")?.into(),
        vhost: str_field(p, "vhost")?.into(),
        configure: str_field(p, "configure")?.into(),
        write: str_field(p, "write")?.into(),
        read: str_field(p, "read")?.into(),
    })
}

/// A policy object, in `vhost` (the import's target, not the object's).
pub(crate) fn policy_def(p: &Value, vhost: &str) -> Result<PolicyDef> {
    let definition = p
        .get("definition")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| bad("policy definition must be an object"))?;
    Ok(PolicyDef {
        vhost: vhost.to_string(),
        name: str_field(p, "name")?.into(),
        pattern: str_field(p, "pattern")?.into(),
        apply_to: p
            .get("apply-to")
            .and_then(Value::as_str)
            .unwrap_or("all")
            .into(),
        priority: p.get("priority").and_then(Value::as_i64).unwrap_or(0),
        definition,
    })
}

pub(crate) fn bad(text: impl Into<String>) -> BrokerError {
    BrokerError::precondition_failed(text)
}

pub(crate) fn str_field<'a>(o: &'a Value, k: &str) -> Result<&'a str> {
    o.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("[{{key_missing,{}}}]", k)))
}

pub(crate) fn bool_field(o: &Value, k: &str, default: bool) -> Result<bool> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(other) => Err(bad(format!("'{}' must be a boolean, not {}", k, other))),
    }
}

pub(crate) fn args_field(o: &Value) -> Result<FieldTable> {
    match o.get("arguments") {
        None | Some(Value::Null) => Ok(FieldTable::new()),
        Some(a) => json_to_table(a).ok_or_else(|| bad("arguments must be an object")),
    }
}

/// Tags as RabbitMQ writes them: a list, or (older exports and the HTTP API)
/// one comma-separated string.
pub fn tags_of(v: Option<&Value>) -> Result<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("tags must be strings"))
            })
            .collect(),
        Some(_) => Err(bad("tags must be a string or a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Limits;

    #[test]
    fn a_rabbitmq_export_imports_and_exports_again() {
        let dir = std::env::temp_dir().join(format!(
            "warren-export-{}-{}",
            std::process::id(),
            crate::queue::now_ms()
        ));
        let b = Broker::open(
            &dir,
            Limits::default(),
            &crate::store::LogOptions::default(),
        )
        .expect("open");
        b.create_defaults_once(true);
        let defs = json!({
            "rabbit_version": "3.10.8",
            "users": [{"name": "app", "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                       "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["monitoring"], "limits": {}}],
            "vhosts": [{"name": "v1"}],
            "permissions": [{"user": "app", "vhost": "v1", "configure": ".*", "write": ".*", "read": ".*"}],
            "topic_permissions": [], "parameters": [], "global_parameters": [],
            "policies": [{"vhost": "v1", "name": "p", "pattern": "^q", "apply-to": "queues",
                          "definition": {"max-length": 5}, "priority": 1}],
            "queues": [{"name": "q1", "vhost": "v1", "durable": true, "auto_delete": false,
                        "arguments": {"x-message-ttl": 1000}}],
            "exchanges": [{"name": "x1", "vhost": "v1", "type": "topic", "durable": true,
                           "auto_delete": false, "internal": false, "arguments": {}}],
            "bindings": [{"source": "x1", "vhost": "v1", "destination": "q1",
                          "destination_type": "queue", "routing_key": "a.#", "arguments": {}}]
        });
        b.import_definitions(&defs, None, Some("guest"))
            .expect("import");
        assert!(b.user("app").expect("user").check_password(b"test12"));
        let out = b.export_definitions(Some("v1")).expect("export");
        assert_eq!(
            out["queues"],
            json!([{"name": "q1", "durable": true, "auto_delete": false,
            "arguments": {"x-message-ttl": 1000}}])
        );
        assert_eq!(out["bindings"][0]["routing_key"], json!("a.#"));
        assert_eq!(out["policies"][0]["apply-to"], json!("queues"));
        let all = b.export_definitions(None).expect("export all");
        assert_eq!(all["permissions"].as_array().map(Vec::len), Some(3));
        let bad = json!({"queues": [{"name": "q2", "vhost": "nope"}]});
        assert_eq!(
            b.import_definitions(&bad, None, None)
                .expect_err("no vhost")
                .code,
            404
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
