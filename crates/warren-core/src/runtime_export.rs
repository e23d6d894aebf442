//! Runtime parameters in RabbitMQ's JSON: `/api/parameters` and the
//! definitions' `parameters` (vhost limits as component `vhost-limits`, name
//! `limits`; operator policies as component `operator_policy`),
//! `global_parameters`, `topic_permissions`, and their import.

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::export::policy_json;
use crate::limits::{self, LimitMap};
use crate::meta::MetaOp;
use crate::policy::PolicyDef;
use crate::topic_permissions::TopicPermissionDef;
use crate::vhost::VHost;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The runtime parameter components Warren has (RabbitMQ's core ones; the
/// federation and shovel plugins' are answered "component ... not found",
/// as by a RabbitMQ without those plugins).
pub const COMPONENTS: &[&str] = &["vhost-limits", "operator_policy"];

/// RabbitMQ's 400 text for a component no plugin provides.
pub fn unknown_component(component: &str) -> BrokerError {
    BrokerError::precondition_failed(format!(
        "Validation failed\n\ncomponent {} not found\n",
        component
    ))
}

/// One runtime parameter as RabbitMQ shows it.
pub fn parameter_json(vhost: &str, component: &str, name: &str, value: Value) -> Value {
    json!({"value": value, "vhost": vhost, "component": component, "name": name})
}

pub fn topic_permission_json(t: &TopicPermissionDef) -> Value {
    json!({"user": t.user, "vhost": t.vhost, "exchange": t.exchange, "write": t.write, "read": t.read})
}

fn limits_json(l: &LimitMap) -> Value {
    Value::Object(l.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// An operator policy as a parameter's value (no vhost, no name).
fn operator_policy_value(p: &PolicyDef) -> Value {
    let mut v = policy_json(p, false);
    if let Value::Object(o) = &mut v {
        o.remove("name");
    }
    v
}

impl Broker {
    /// The runtime parameters of `vhosts`, optionally of one component.
    pub fn parameters(&self, vhosts: &[Arc<VHost>], component: Option<&str>) -> Vec<Value> {
        let mut out = Vec::new();
        for v in vhosts {
            let vname = v.name.to_string_lossy();
            let l = v.limits();
            if !l.is_empty() && component.is_none_or(|c| c == "vhost-limits") {
                out.push(parameter_json(
                    &vname,
                    "vhost-limits",
                    "limits",
                    limits_json(&l),
                ));
            }
            if component.is_none_or(|c| c == "operator_policy") {
                let mut ps = v.operator_policies();
                ps.sort_by(|a, b| a.name.cmp(&b.name));
                for p in ps {
                    out.push(parameter_json(
                        &vname,
                        "operator_policy",
                        &p.name,
                        operator_policy_value(&p),
                    ));
                }
            }
        }
        out
    }

    /// Set a runtime parameter (`PUT /api/parameters/C/V/N`, definitions).
    pub fn set_parameter(
        &self,
        component: &str,
        vhost: &str,
        name: &str,
        value: &Value,
    ) -> Result<()> {
        let v = self
            .vhost(vhost)
            .ok_or_else(|| BrokerError::not_found("vhost_not_found"))?;
        match component {
            "vhost-limits" => {
                // RabbitMQ keeps (and exports) `[]` once a vhost's limits
                // were all cleared: no limits.
                if value.as_array().is_some_and(|a| a.is_empty()) {
                    return self.set_vhost_limits(vhost, LimitMap::new());
                }
                let obj = value
                    .as_object()
                    .ok_or_else(|| BrokerError::precondition_failed("limits must be an object"))?;
                let l = limits::parse_all(limits::VHOST_LIMITS, obj)?;
                self.set_vhost_limits(vhost, l)
            }
            "operator_policy" => {
                let def = policy_from_json(vhost, name, value)?;
                v.set_operator_policy(def, true)
            }
            "policy" => Err(BrokerError::precondition_failed(
                "policies may not be set using this method",
            )),
            other => Err(unknown_component(other)),
        }
    }

    /// Clear a runtime parameter; false if it was not set.
    pub fn clear_parameter(&self, component: &str, vhost: &str, name: &str) -> bool {
        let Some(v) = self.vhost(vhost) else {
            return false;
        };
        match component {
            "vhost-limits" if !v.limits().is_empty() => self.clear_vhost_limit(vhost, None).is_ok(),
            "operator_policy" => v.clear_operator_policy(name),
            _ => false,
        }
    }

    /// The definitions' `parameters`, `global_parameters` and
    /// `topic_permissions` (the last two only for a whole-broker export).
    pub fn export_runtime(&self, vhosts: &[Arc<VHost>], all: bool, out: &mut Map<String, Value>) {
        if all {
            let topics: Vec<Value> = self
                .list_topic_permissions(None, None)
                .iter()
                .map(topic_permission_json)
                .collect();
            out.insert("topic_permissions".into(), Value::Array(topics));
        }
        let mut params = self.parameters(vhosts, None);
        if !all {
            for p in &mut params {
                if let Value::Object(o) = p {
                    o.remove("vhost");
                }
            }
        }
        out.insert("parameters".into(), Value::Array(params));
        if all {
            let globals: Vec<Value> = self
                .global_parameters()
                .into_iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            out.insert("global_parameters".into(), Value::Array(globals));
        }
    }

    /// Import `parameters` (into `vhost`, or each one's own), and for a
    /// whole-broker import `global_parameters`, `topic_permissions` and the
    /// users' `limits`.
    pub fn import_runtime(&self, obj: &Map<String, Value>, vhost: Option<&str>) -> Result<()> {
        let list = |k: &str| obj.get(k).and_then(Value::as_array).map_or(&[][..], |a| a);
        let text = |o: &Value, k: &str| -> Result<String> {
            o.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| BrokerError::precondition_failed(format!("[{{key_missing,{}}}]", k)))
        };
        for p in list("parameters") {
            let v = match vhost {
                Some(v) => v.to_string(),
                None => text(p, "vhost")?,
            };
            let value = p.get("value").cloned().unwrap_or(Value::Null);
            self.set_parameter(&text(p, "component")?, &v, &text(p, "name")?, &value)?;
        }
        if vhost.is_some() {
            return Ok(());
        }
        for g in list("global_parameters") {
            let name = text(g, "name")?;
            // The cluster id is the node's own, never imported.
            if name != "internal_cluster_id" {
                self.set_global_parameter(&name, g.get("value").cloned().unwrap_or(Value::Null));
            }
        }
        for t in list("topic_permissions") {
            self.set_topic_permission(TopicPermissionDef {
                user: text(t, "user")?,
                vhost: text(t, "vhost")?,
                exchange: text(t, "exchange")?,
                write: text(t, "write")?,
                read: text(t, "read")?,
            })?;
        }
        for u in list("users") {
            if let (Some(name), Some(Value::Object(l))) =
                (u.get("name").and_then(Value::as_str), u.get("limits"))
            {
                if !l.is_empty() {
                    self.set_user_limits(name, limits::parse_all(limits::USER_LIMITS, l)?)?;
                }
            }
        }
        Ok(())
    }
}

/// The replicated changes setting runtime parameter `component`/`vhost`/
/// `name` to `value` makes on a cluster (an operator policy; a vhost's
/// limits replaced: cleared, then each one set), or the error a node's
/// [`Broker::set_parameter`] answers (checked before anything is
/// replicated). Shared by `PUT /api/parameters` and the definitions import.
pub fn parameter_ops(
    component: &str,
    vhost: &str,
    name: &str,
    value: &Value,
) -> Result<Vec<MetaOp>> {
    match component {
        "vhost-limits" => {
            let limits = if value.as_array().is_some_and(|a| a.is_empty()) {
                LimitMap::new()
            } else {
                let obj = value
                    .as_object()
                    .ok_or_else(|| BrokerError::precondition_failed("limits must be an object"))?;
                limits::parse_all(limits::VHOST_LIMITS, obj)?
            };
            let set = |name: Option<String>, value: Option<Value>| MetaOp::SetVhostLimit {
                vhost: vhost.to_string(),
                name,
                value,
            };
            let mut ops = vec![set(None, None)];
            ops.extend(
                limits
                    .into_iter()
                    .map(|(k, v)| set(Some(k), Some(json!(v)))),
            );
            Ok(ops)
        }
        "operator_policy" => {
            let def = policy_from_json(vhost, name, value)?;
            crate::runtime::check_operator_policy(&def)?;
            Ok(vec![MetaOp::SetOperatorPolicy {
                vhost: vhost.to_string(),
                def,
            }])
        }
        "policy" => Err(BrokerError::precondition_failed(
            "policies may not be set using this method",
        )),
        other => Err(unknown_component(other)),
    }
}

/// The replicated changes of a definitions import's runtime part (see
/// [`Broker::import_runtime`]): `parameters`, and for a whole-broker import
/// `global_parameters` and the users' `limits` (its topic permissions are
/// in [`crate::export_ops::definitions_to_ops`]).
pub fn runtime_import_ops(obj: &Map<String, Value>, vhost: Option<&str>) -> Result<Vec<MetaOp>> {
    let list = |k: &str| obj.get(k).and_then(Value::as_array).map_or(&[][..], |a| a);
    let text = |o: &Value, k: &str| -> Result<String> {
        o.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| BrokerError::precondition_failed(format!("[{{key_missing,{}}}]", k)))
    };
    let mut ops = Vec::new();
    for p in list("parameters") {
        let v = match vhost {
            Some(v) => v.to_string(),
            None => text(p, "vhost")?,
        };
        let value = p.get("value").cloned().unwrap_or(Value::Null);
        ops.extend(parameter_ops(
            &text(p, "component")?,
            &v,
            &text(p, "name")?,
            &value,
        )?);
    }
    if vhost.is_some() {
        return Ok(ops);
    }
    for g in list("global_parameters") {
        let name = text(g, "name")?;
        if name != "internal_cluster_id" {
            let value = g.get("value").cloned().unwrap_or(Value::Null);
            ops.push(MetaOp::SetGlobalParameter { name, value });
        }
    }
    for u in list("users") {
        if let (Some(name), Some(Value::Object(l))) =
            (u.get("name").and_then(Value::as_str), u.get("limits"))
        {
            if l.is_empty() {
                continue;
            }
            let set = |n: Option<String>, v: Option<Value>| MetaOp::SetUserLimit {
                user: name.to_string(),
                name: n,
                value: v,
            };
            ops.push(set(None, None));
            for (k, v) in limits::parse_all(limits::USER_LIMITS, l)? {
                ops.push(set(Some(k), Some(json!(v))));
            }
        }
    }
    Ok(ops)
}

/// An operator policy from `PUT /api/operator-policies/V/N`'s body or an
/// `operator_policy` parameter's value.
pub fn policy_from_json(vhost: &str, name: &str, body: &Value) -> Result<PolicyDef> {
    let missing = |k: &str| BrokerError::precondition_failed(format!("[{{key_missing,{}}}]", k));
    let pattern = body
        .get("pattern")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("pattern"))?;
    let definition = body
        .get("definition")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| missing("definition"))?;
    Ok(PolicyDef {
        vhost: vhost.into(),
        name: name.into(),
        pattern: pattern.into(),
        apply_to: body
            .get("apply-to")
            .and_then(Value::as_str)
            .unwrap_or("all")
            .into(),
        priority: body.get("priority").and_then(Value::as_i64).unwrap_or(0),
        definition,
    })
}
