//! Managing vhosts, users and permissions at runtime — what `rabbitmqctl
//! add_vhost`, `add_user`, `set_permissions`… do — with RabbitMQ's validation
//! and error texts.
//!
//! These are plain broker operations, independent of any protocol: `warren ctl`
//! reaches them through the control bus today, an HTTP management API can call
//! them tomorrow. Every change is applied in memory and appended to the
//! definitions file (fsynced) before it returns, so it survives a restart.
//! Changes are serialized by one lock, so memory and file agree on the order.
//!
//! Users and permissions from the config file are applied in memory at every
//! start (see [`Broker::put_user`], [`Broker::put_permission`]) and are not
//! written to the data dir, unless changed at runtime.

use crate::auth::User;
use crate::broker::Broker;
use crate::error::{code, BrokerError, Result};
use crate::permissions::{Permission, PermissionDef};
use crate::store::definitions::Definitions;
use std::sync::atomic::Ordering;
use tracing::{info, warn};

/// How [`Broker::upsert_user`] sets a user's password.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A clear-text password, hashed with a fresh salt.
    Password(String),
    /// A RabbitMQ `rabbit_password_hashing_sha256` hash, stored as given.
    Hash(String),
    /// Keep the current password (none for a new user: it cannot log in
    /// with a password).
    Keep,
}

/// A user as listed (no password hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserInfo {
    pub name: String,
    pub tags: Vec<String>,
}

pub(crate) fn no_user(name: &str) -> BrokerError {
    BrokerError::not_found(format!("User \"{}\" does not exist", name))
}

pub(crate) fn no_vhost(name: &str) -> BrokerError {
    BrokerError::not_found(format!("Virtual host '{}' does not exist", name))
}

impl Broker {
    /// Load the users and permissions stored in the definitions (at startup).
    pub(crate) fn restore_access(&self, defs: &Definitions) {
        {
            let mut users = self.users.write();
            for u in defs.users.values() {
                users.insert(u.name.clone(), u.clone());
            }
        }
        for p in defs.permissions.values() {
            match Permission::new(p.clone()) {
                Ok(p) => self.put_permission(p),
                Err(e) => warn!(user = %p.user, vhost = %p.vhost, error = %e.text,
                    "definitions: skipping permission"),
            }
        }
        self.initialized.store(defs.initialized, Ordering::Release);
    }

    /// RabbitMQ's first boot: create vhost "/" and, if `default_user`, the
    /// user guest/guest (administrator, full permissions on "/", loopback
    /// only). Done once per data dir, so an administrator who deletes guest or
    /// "/" does not see them come back at the next start.
    pub fn create_defaults_once(&self, default_user: bool) {
        let _g = self.admin_lock.lock();
        if self.initialized.swap(true, Ordering::AcqRel) {
            return;
        }
        self.ensure_vhost("/");
        self.store.definitions.save_vhost("/");
        if default_user && self.user("guest").is_none() {
            let mut guest = User::new("guest", "guest");
            guest.tags.push("administrator".into());
            guest.loopback_only = true;
            self.store.definitions.save_user(&guest);
            self.put_user(guest);
            let full = Permission::full("guest", "/");
            self.store.definitions.save_permission(&full.def);
            self.put_permission(full);
        }
        self.store.definitions.mark_initialized();
    }

    /// `add_vhost`: create a vhost. Like RabbitMQ, adding one that exists is
    /// not an error (nothing changes).
    pub fn add_vhost(&self, name: &str) -> Result<()> {
        if name.is_empty() || name.len() > 255 {
            return Err(BrokerError::precondition_failed(
                "vhost name must be 1 to 255 bytes long",
            ));
        }
        let _g = self.admin_lock.lock();
        if self.vhost(name).is_some() {
            return Ok(());
        }
        self.store.definitions.save_vhost(name);
        self.ensure_vhost(name);
        info!(vhost = name, "vhost added");
        Ok(())
    }

    /// Create a vhost for `creator`, as RabbitMQ's management API and
    /// definitions import do: a vhost that did not exist gives its creator
    /// full permissions on it. Returns whether it was created.
    pub fn add_vhost_for(&self, name: &str, creator: Option<&str>) -> Result<bool> {
        let existed = self.vhost(name).is_some();
        self.add_vhost(name)?;
        if let (false, Some(user)) = (existed, creator) {
            if self.user(user).is_some() {
                self.set_permissions(PermissionDef {
                    user: user.into(),
                    vhost: name.into(),
                    configure: ".*".into(),
                    write: ".*".into(),
                    read: ".*".into(),
                })?;
            }
        }
        Ok(!existed)
    }

    /// `delete_vhost`: close its connections (320 "vhost 'x' is down"),
    /// delete its queues (and their messages), exchanges, policies and
    /// permissions, durable ones included.
    pub fn delete_vhost(&self, name: &str) -> Result<()> {
        let _g = self.admin_lock.lock();
        let vhost = self
            .vhosts
            .write()
            .remove(name)
            .ok_or_else(|| no_vhost(name))?;
        {
            let mut perms = self.permissions.write();
            for by_vhost in perms.values_mut() {
                by_vhost.remove(name);
            }
        }
        self.topic_permissions
            .write()
            .retain(|(_, v, _), _| v != name);
        self.bump_auth_generation();
        let closed = self.connections.close_vhost(
            name,
            &BrokerError::new(code::CONNECTION_FORCED, format!("vhost '{}' is down", name)),
        );
        // The node's counters keep what it counted (taken before its
        // exchanges go: the built-in ones are dropped, not folded in).
        self.retired.retire(&vhost);
        vhost.delete_contents();
        // After the per-queue/exchange deletions: replaying this line drops
        // whatever is left of the vhost.
        self.store.definitions.delete_vhost(name);
        info!(vhost = name, connections = closed, "vhost deleted");
        Ok(())
    }

    /// `list_vhosts`, sorted by name.
    pub fn list_vhosts(&self) -> Vec<String> {
        let mut v: Vec<String> = self.vhosts.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// `add_user NAME PASSWORD`: a user with no tags and no permissions.
    pub fn add_user(&self, name: &str, password: &str) -> Result<()> {
        if name.is_empty() {
            return Err(BrokerError::precondition_failed(
                "user name must not be empty",
            ));
        }
        let _g = self.admin_lock.lock();
        if self.user(name).is_some() {
            return Err(BrokerError::precondition_failed(format!(
                "User \"{}\" already exists",
                name
            )));
        }
        let user = User::new(name, password);
        self.store.definitions.save_user(&user);
        self.put_user(user);
        info!(user = name, "user added");
        Ok(())
    }

    /// `delete_user`: the user, its permissions, and its open connections
    /// (closed with 320 "user 'u' is deleted").
    pub fn delete_user(&self, name: &str) -> Result<()> {
        let _g = self.admin_lock.lock();
        self.users
            .write()
            .remove(name)
            .ok_or_else(|| no_user(name))?;
        self.permissions.write().remove(name);
        self.topic_permissions
            .write()
            .retain(|(u, _, _), _| u != name);
        self.bump_auth_generation();
        self.store.definitions.delete_user(name);
        let closed = self.connections.close_user(
            name,
            &BrokerError::new(
                code::CONNECTION_FORCED,
                format!("user '{}' is deleted", name),
            ),
        );
        info!(user = name, connections = closed, "user deleted");
        Ok(())
    }

    /// Apply `change` to a stored user and persist the result.
    fn update_user(&self, name: &str, change: impl FnOnce(&mut User)) -> Result<()> {
        let _g = self.admin_lock.lock();
        let updated = {
            let mut users = self.users.write();
            let u = users.get_mut(name).ok_or_else(|| no_user(name))?;
            change(u);
            u.clone()
        };
        self.store.definitions.save_user(&updated);
        self.bump_auth_generation();
        Ok(())
    }

    /// `change_password`. Open connections stay open (as in RabbitMQ).
    pub fn change_password(&self, name: &str, password: &str) -> Result<()> {
        self.update_user(name, |u| u.set_password(password))
    }

    /// `set_user_tags NAME TAG...` (replaces the tags; none clears them).
    pub fn set_user_tags(&self, name: &str, tags: &[String]) -> Result<()> {
        self.update_user(name, |u| u.tags = tags.to_vec())
    }

    /// `list_users`, sorted by name.
    pub fn list_users(&self) -> Vec<UserInfo> {
        let mut v: Vec<UserInfo> = self
            .users
            .read()
            .values()
            .map(|u| UserInfo {
                name: u.name.clone(),
                tags: u.tags.clone(),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Create or update a user, as RabbitMQ's `PUT /api/users/NAME` and a
    /// definitions import do: the tags are replaced; the password is set from
    /// `credential` (a new user without one cannot log in with a password; an
    /// existing one keeps its password). Returns whether the user was created.
    pub fn upsert_user(
        &self,
        name: &str,
        credential: Credential,
        tags: Vec<String>,
    ) -> Result<bool> {
        if name.is_empty() || name.len() > 255 {
            return Err(BrokerError::precondition_failed(
                "user name must be 1 to 255 bytes long",
            ));
        }
        if let Credential::Hash(h) = &credential {
            if !crate::auth::is_valid_hash(h) {
                return Err(BrokerError::precondition_failed(
                    "password_hash is not a valid rabbit_password_hashing_sha256 hash",
                ));
            }
        }
        let _g = self.admin_lock.lock();
        let (user, created) = {
            let mut users = self.users.write();
            let created = !users.contains_key(name);
            let u = users.entry(name.to_string()).or_insert_with(|| User {
                name: name.to_string(),
                password_hash: String::new(),
                tags: Vec::new(),
                loopback_only: false,
                limits: Default::default(),
            });
            match credential {
                Credential::Password(p) => u.set_password(&p),
                Credential::Hash(h) => u.password_hash = h,
                Credential::Keep => {}
            }
            u.tags = tags;
            (u.clone(), created)
        };
        self.store.definitions.save_user(&user);
        self.bump_auth_generation();
        info!(user = name, created, "user set");
        Ok(created)
    }

    /// Users with no permission on any vhost, sorted by name.
    pub fn users_without_permissions(&self) -> Vec<UserInfo> {
        let perms = self.permissions.read();
        self.list_users()
            .into_iter()
            .filter(|u| {
                perms
                    .get(&u.name)
                    .is_none_or(|by_vhost| by_vhost.is_empty())
            })
            .collect()
    }

    /// A user's stored password hash (for administrators' listings and the
    /// definitions export).
    pub fn password_hash(&self, name: &str) -> Option<String> {
        self.users.read().get(name).map(|u| u.password_hash.clone())
    }

    /// `set_permissions -p VHOST USER CONF WRITE READ`. Takes effect on open
    /// connections at their next operation.
    pub fn set_permissions(&self, def: PermissionDef) -> Result<()> {
        let _g = self.admin_lock.lock();
        if self.user(&def.user).is_none() {
            return Err(BrokerError::not_found(format!(
                "User {} does not exist",
                def.user
            )));
        }
        if self.vhost(&def.vhost).is_none() {
            return Err(BrokerError::not_found(format!(
                "Virtual host {} does not exist",
                def.vhost
            )));
        }
        let p = Permission::new(def)?;
        self.store.definitions.save_permission(&p.def);
        info!(user = %p.def.user, vhost = %p.def.vhost, configure = %p.def.configure,
            write = %p.def.write, read = %p.def.read, "permissions set");
        self.put_permission(p);
        Ok(())
    }

    /// `clear_permissions -p VHOST USER`: no access to the vhost any more (open
    /// connections are refused every operation from now on). Clearing
    /// permissions that are not set is not an error.
    pub fn clear_permissions(&self, user: &str, vhost: &str) -> Result<()> {
        let _g = self.admin_lock.lock();
        if self.user(user).is_none() {
            return Err(BrokerError::not_found(format!(
                "User {} does not exist",
                user
            )));
        }
        if self.vhost(vhost).is_none() {
            return Err(BrokerError::not_found(format!(
                "Virtual host {} does not exist",
                vhost
            )));
        }
        if let Some(by_vhost) = self.permissions.write().get_mut(user) {
            by_vhost.remove(vhost);
        }
        self.bump_auth_generation();
        self.store.definitions.delete_permission(user, vhost);
        Ok(())
    }

    /// `list_permissions -p VHOST`, sorted by user.
    pub fn list_permissions(&self, vhost: &str) -> Result<Vec<PermissionDef>> {
        if self.vhost(vhost).is_none() {
            return Err(no_vhost(vhost));
        }
        let mut v: Vec<PermissionDef> = self
            .permissions
            .read()
            .values()
            .filter_map(|by_vhost| by_vhost.get(vhost).map(|p| p.def.clone()))
            .collect();
        v.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(v)
    }

    /// `list_user_permissions USER`, sorted by vhost.
    pub fn list_user_permissions(&self, user: &str) -> Result<Vec<PermissionDef>> {
        if self.user(user).is_none() {
            return Err(no_user(user));
        }
        let mut v: Vec<PermissionDef> = self
            .permissions
            .read()
            .get(user)
            .map(|by_vhost| by_vhost.values().map(|p| p.def.clone()).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.vhost.cmp(&b.vhost));
        Ok(v)
    }

    /// Forget permissions whose user or vhost no longer exists (a user removed
    /// from the config file), so a user created later with that name does not
    /// inherit them. Called once the config has been applied at startup.
    pub fn prune_orphan_permissions(&self) {
        let _g = self.admin_lock.lock();
        let orphans: Vec<(String, String)> = {
            let users = self.users.read();
            let vhosts = self.vhosts.read();
            self.permissions
                .read()
                .iter()
                .flat_map(|(u, by_vhost)| by_vhost.keys().map(move |v| (u.clone(), v.clone())))
                .filter(|(u, v)| !users.contains_key(u) || !vhosts.contains_key(v))
                .collect()
        };
        if orphans.is_empty() {
            return;
        }
        let mut perms = self.permissions.write();
        for (u, v) in orphans {
            if let Some(by_vhost) = perms.get_mut(&u) {
                by_vhost.remove(&v);
            }
            self.store.definitions.delete_permission(&u, &v);
            info!(user = %u, vhost = %v, "dropping permission of a user or vhost that no longer exists");
        }
        drop(perms);
        self.bump_auth_generation();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Limits;
    use std::path::PathBuf;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "warren-admin-{}-{}-{}",
            name,
            std::process::id(),
            crate::queue::now_ms()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn perm(user: &str, vhost: &str) -> PermissionDef {
        PermissionDef {
            user: user.into(),
            vhost: vhost.into(),
            configure: "^feed\\.".into(),
            write: "^feed\\.".into(),
            read: ".*".into(),
        }
    }

    #[test]
    fn runtime_changes_survive_reopen_and_deletions_stick() {
        let dir = temp_dir("reopen");
        {
            let b = Broker::open(
                &dir,
                Limits::default(),
                &crate::store::LogOptions::default(),
            )
            .expect("open");
            b.create_defaults_once(true);
            b.add_vhost("v").expect("add vhost");
            assert!(b.add_vhost("v").is_ok(), "adding an existing vhost is fine");
            b.add_user("u", "p").expect("add user");
            assert_eq!(
                b.add_user("u", "p").expect_err("exists").text,
                "User \"u\" already exists"
            );
            b.set_permissions(perm("u", "v")).expect("set");
            b.set_user_tags("u", &["monitoring".into()]).expect("tags");
            b.add_user("gone", "p").expect("add");
            b.set_permissions(perm("gone", "v")).expect("set");
            b.delete_user("gone").expect("delete");
            b.add_vhost("w").expect("add");
            b.delete_vhost("w").expect("delete");
            b.delete_user("guest").expect("delete guest");
        }
        let b = Broker::open(
            &dir,
            Limits::default(),
            &crate::store::LogOptions::default(),
        )
        .expect("reopen");
        b.create_defaults_once(true);
        assert_eq!(b.list_vhosts(), vec!["/".to_string(), "v".to_string()]);
        let users = b.list_users();
        assert_eq!(users.len(), 1, "guest stays deleted: {:?}", users);
        assert_eq!(users[0].tags, vec!["monitoring".to_string()]);
        let u = b.user("u").expect("u");
        assert!(u.check_password(b"p"));
        let p = b.permission("u", "v").expect("permission");
        assert_eq!(p.def, perm("u", "v"));
        assert!(b.permission("gone", "v").is_none());
        assert_eq!(
            b.delete_vhost("w").expect_err("gone").text,
            "Virtual host 'w' does not exist"
        );
        assert_eq!(
            b.list_user_permissions("gone").expect_err("gone").text,
            "User \"gone\" does not exist"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn deleting_a_vhost_deletes_its_durable_queues() {
        let dir = temp_dir("delvhost");
        {
            let b = Broker::open(
                &dir,
                Limits::default(),
                &crate::store::LogOptions::default(),
            )
            .expect("open");
            b.add_vhost("v").expect("add");
            let v = b.vhost("v").expect("v");
            let opts = crate::QueueOptions {
                durable: true,
                exclusive: false,
                auto_delete: false,
                arguments: crate::FieldTable::new(),
            };
            v.declare_queue(Some("q".into()), opts, false, 1)
                .expect("declare");
            b.delete_vhost("v").expect("delete");
            assert!(v.is_deleted());
            assert!(v.queue(b"q").is_none());
        }
        let b = Broker::open(
            &dir,
            Limits::default(),
            &crate::store::LogOptions::default(),
        )
        .expect("reopen");
        assert!(b.vhost("v").is_none(), "deleted vhost came back");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
