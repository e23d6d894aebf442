//! What RabbitMQ keeps as runtime parameters and friends: topic
//! permissions, operator policies and global parameters (limits are in
//! [`crate::limits`]). Each change is applied in memory and appended to the
//! definitions file before it returns (as `admin.rs`'s changes), under the
//! broker's admin lock.

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::policy::{Policy, PolicyDef};
use crate::topic_permissions::{self, TopicPermission, TopicPermissionDef, Variables};
use crate::vhost::VHost;

/// The operator policy keys RabbitMQ accepts that Warren implements (all
/// numeric limits).
const OPERATOR_POLICY_KEYS: &[&str] = &["expires", "message-ttl", "max-length", "max-length-bytes"];

/// The policy an operator policy definition makes, or RabbitMQ's validation
/// error (checked before a cluster replicates it, so that every node's apply
/// succeeds).
pub fn check_operator_policy(def: &PolicyDef) -> Result<Policy> {
    let bad: Vec<String> = def
        .definition
        .iter()
        .filter(|(k, _)| !OPERATOR_POLICY_KEYS.contains(&k.as_str()))
        .map(|(k, v)| format!("{{<<\"{}\">>,{}}}", k, crate::json::erl_term(v)))
        .collect();
    if !bad.is_empty() {
        return Err(BrokerError::precondition_failed(format!(
            "Validation failed\n\n[{}] are not recognised policy settings\n",
            bad.join(",")
        )));
    }
    Policy::new(def.clone()).map_err(BrokerError::precondition_failed)
}

impl VHost {
    /// Set (add or replace) an operator policy and apply it to matching
    /// queues now.
    pub fn set_operator_policy(&self, def: PolicyDef, persist: bool) -> Result<()> {
        let policy = check_operator_policy(&def)?;
        {
            let mut ps = self.operator_policies.write();
            ps.retain(|p| p.def.name != def.name);
            ps.push(policy);
        }
        if persist {
            self.store().definitions.save_operator_policy(&def);
        }
        self.reapply_policies();
        Ok(())
    }

    /// Remove an operator policy; false if there was none by that name.
    pub fn clear_operator_policy(&self, name: &str) -> bool {
        let removed = {
            let mut ps = self.operator_policies.write();
            let before = ps.len();
            ps.retain(|p| p.def.name != name);
            before != ps.len()
        };
        if removed {
            self.store()
                .definitions
                .delete_operator_policy(&self.name.to_string_lossy(), name);
            self.reapply_policies();
        }
        removed
    }

    pub fn operator_policies(&self) -> Vec<PolicyDef> {
        self.operator_policies
            .read()
            .iter()
            .map(|p| p.def.clone())
            .collect()
    }

    /// The operator policy that applies to queue `name`, if any.
    pub fn queue_operator_policy(&self, name: &str) -> Option<PolicyDef> {
        crate::policy::pick_for_queue(&self.operator_policies.read(), name).map(|p| p.def.clone())
    }

    /// Restore operator policies and limits from the definitions (after the
    /// queues: a limit lowered below what exists refuses new queues only).
    pub(crate) fn restore_runtime(&self, defs: &crate::store::definitions::Definitions) {
        let vname = self.name.to_string();
        for p in defs.operator_policies.values().filter(|p| p.vhost == vname) {
            if let Ok(policy) = Policy::new(p.clone()) {
                self.operator_policies.write().push(policy);
            }
        }
        if let Some(l) = defs.vhost_limits.get(&vname) {
            *self.limits.write() = l.clone();
        }
        if !self.operator_policies.read().is_empty() {
            self.reapply_policies();
        }
    }
}

impl Broker {
    // ---- topic permissions ----

    /// `set_topic_permissions -p VHOST USER EXCHANGE WRITE READ`. Returns
    /// whether the user had no topic permission on the vhost before (the
    /// API's 201).
    pub fn set_topic_permission(&self, def: TopicPermissionDef) -> Result<bool> {
        let _g = self.admin_lock.lock();
        if self.user(&def.user).is_none() || self.vhost(&def.vhost).is_none() {
            return Err(BrokerError::not_found("vhost_or_user_not_found"));
        }
        topic_permissions::validate(&def)?;
        self.store.definitions.save_topic_permission(&def);
        let mut all = self.topic_permissions.write();
        let first = !all
            .keys()
            .any(|(u, v, _)| *u == def.user && *v == def.vhost);
        all.insert(
            (def.user.clone(), def.vhost.clone(), def.exchange.clone()),
            def,
        );
        drop(all);
        self.bump_auth_generation();
        Ok(first)
    }

    /// `clear_topic_permissions -p VHOST USER [EXCHANGE]`: returns how many
    /// were removed.
    pub fn clear_topic_permissions(
        &self,
        user: &str,
        vhost: &str,
        exchange: Option<&str>,
    ) -> usize {
        let _g = self.admin_lock.lock();
        let mut all = self.topic_permissions.write();
        let before = all.len();
        all.retain(|(u, v, x), _| !(u == user && v == vhost && exchange.is_none_or(|e| e == x)));
        let removed = before - all.len();
        drop(all);
        if removed > 0 {
            self.store
                .definitions
                .delete_topic_permission(user, vhost, exchange);
            self.bump_auth_generation();
        }
        removed
    }

    /// Topic permissions whose user and vhost pass the filters, sorted by
    /// user, vhost, exchange.
    pub fn list_topic_permissions(
        &self,
        user: Option<&str>,
        vhost: Option<&str>,
    ) -> Vec<TopicPermissionDef> {
        self.topic_permissions
            .read()
            .values()
            .filter(|t| user.is_none_or(|u| u == t.user) && vhost.is_none_or(|v| v == t.vhost))
            .cloned()
            .collect()
    }

    /// `user`'s topic permissions on `vhost`, compiled with a connection's
    /// variables (what its permission cache holds).
    pub fn topic_permissions_for(&self, vars: &Variables) -> Vec<TopicPermission> {
        self.topic_permissions
            .read()
            .values()
            .filter(|t| t.user == vars.username && t.vhost == vars.vhost)
            .map(|t| TopicPermission::compile(t, vars))
            .collect()
    }

    /// Check a topic permission without a connection's cache (the HTTP API).
    pub fn check_topic(
        &self,
        user: &str,
        vhost: &str,
        access: crate::permissions::Access,
        exchange: &crate::Exchange,
        key: &[u8],
    ) -> Result<()> {
        let vars = Variables {
            username: user,
            vhost,
            client_id: None,
        };
        let perms = self.topic_permissions_for(&vars);
        topic_permissions::check(
            &perms,
            access,
            exchange.name.as_bytes(),
            exchange.kind(),
            key,
            vhost,
            user,
        )
    }

    // ---- global parameters ----

    pub fn global_parameters(&self) -> Vec<(String, serde_json::Value)> {
        self.global_parameters
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Set a global parameter; returns whether it was new.
    pub fn set_global_parameter(&self, name: &str, value: serde_json::Value) -> bool {
        let _g = self.admin_lock.lock();
        self.store.definitions.save_global_parameter(name, &value);
        self.global_parameters
            .write()
            .insert(name.to_string(), value)
            .is_none()
    }

    /// Remove a global parameter; false if it was not set.
    pub fn clear_global_parameter(&self, name: &str) -> bool {
        let _g = self.admin_lock.lock();
        let removed = self.global_parameters.write().remove(name).is_some();
        if removed {
            self.store.definitions.delete_global_parameter(name);
        }
        removed
    }

    /// Load topic permissions and global parameters from the definitions.
    pub(crate) fn restore_runtime(&self, defs: &crate::store::definitions::Definitions) {
        let mut t = self.topic_permissions.write();
        for (k, def) in &defs.topic_permissions {
            if topic_permissions::validate(def).is_ok() {
                t.insert(k.clone(), def.clone());
            }
        }
        drop(t);
        *self.global_parameters.write() = defs.global_parameters.clone();
    }
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
