//! Who is calling: HTTP Basic credentials checked against the broker's users
//! (same users, hashes and loopback rule as AMQP), and what their tags let
//! them see and do, as RabbitMQ's management plugin decides it:
//!
//! | tag | may |
//! |---|---|
//! | `management` | use the API; see and change objects of vhosts it has permissions on |
//! | `policymaker` | also manage policies of those vhosts |
//! | `monitoring` | also see every vhost's objects, nodes, other users' connections |
//! | `administrator` | everything: users, vhosts, permissions, definitions |
//!
//! A user with none of these tags gets 401 "Not management user". Changing a
//! vhost's objects (declare, delete, bind, publish, get, purge) needs a
//! permission entry on the vhost and passes the same configure/write/read
//! regexes as an AMQP client's operation.

use crate::error::{ApiError, ApiResult};
use crate::Http;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use std::net::SocketAddr;
use std::sync::Arc;
use warren_core::auth::User;
use warren_core::permissions::{self, Access, Resource};

/// The authenticated caller of a request.
pub struct Caller {
    pub user: User,
    pub http: Arc<Http>,
}

const MANAGEMENT_TAGS: &[&str] = &["management", "policymaker", "monitoring", "administrator"];

impl Caller {
    fn has(&self, tag: &str) -> bool {
        self.user.tags.iter().any(|t| t == tag)
    }

    pub fn is_admin(&self) -> bool {
        self.has("administrator")
    }

    pub fn is_monitor(&self) -> bool {
        self.is_admin() || self.has("monitoring")
    }

    pub fn is_policymaker(&self) -> bool {
        self.is_admin() || self.has("policymaker")
    }

    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not administrator user"))
        }
    }

    pub fn require_monitor(&self) -> ApiResult<()> {
        if self.is_monitor() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not monitor user"))
        }
    }

    pub fn require_policymaker(&self) -> ApiResult<()> {
        if self.is_policymaker() {
            Ok(())
        } else {
            // RabbitMQ's `is_authorized_policies` text.
            Err(ApiError::not_authorised(
                "User not authorised to access object",
            ))
        }
    }

    /// Whether the user has a permission entry on `vhost` (may log into it).
    pub fn has_vhost_access(&self, vhost: &str) -> bool {
        self.http
            .broker
            .permission(&self.user.name, vhost)
            .is_some()
    }

    /// Whether listings show `vhost`'s objects to this user.
    pub fn sees_vhost(&self, vhost: &str) -> bool {
        self.is_monitor() || self.has_vhost_access(vhost)
    }

    /// The vhost called `name`, or RabbitMQ's 404 `Object Not Found` (for
    /// administrator endpoints, which need no vhost access).
    pub fn existing_vhost(&self, name: &str) -> ApiResult<Arc<warren_core::VHost>> {
        self.http
            .broker
            .vhost(name)
            .ok_or_else(ApiError::object_not_found)
    }

    /// Reading one vhost's objects: 404 if it does not exist, 401 if the
    /// user may not see it.
    pub fn read_vhost(&self, vhost: &str) -> ApiResult<Arc<warren_core::VHost>> {
        let v = self
            .http
            .broker
            .vhost(vhost)
            .ok_or_else(ApiError::object_not_found)?;
        if !self.sees_vhost(vhost) {
            return Err(ApiError::vhost_access());
        }
        Ok(v)
    }

    /// Changing one vhost's objects: 404 `vhost_not_found` if it does not
    /// exist, 401 without a permission entry.
    pub fn write_vhost(&self, vhost: &str) -> ApiResult<Arc<warren_core::VHost>> {
        let v = self
            .http
            .broker
            .vhost(vhost)
            .ok_or_else(|| ApiError::not_found("vhost_not_found"))?;
        if !self.has_vhost_access(vhost) {
            return Err(ApiError::vhost_access());
        }
        Ok(v)
    }

    /// The AMQP permission check for an operation on `name` in `vhost`.
    pub fn check(&self, vhost: &str, access: Access, kind: Resource, name: &[u8]) -> ApiResult<()> {
        let perm = self.http.broker.permission(&self.user.name, vhost);
        permissions::check(perm.as_deref(), access, kind, name, vhost, &self.user.name)
            .map_err(ApiError::from)
    }
}

impl FromRequestParts<Arc<Http>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, http: &Arc<Http>) -> ApiResult<Caller> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(ApiError::no_credentials)?;
        let (name, password) = warren_core::auth::basic_credentials(value.as_bytes())
            .ok_or_else(ApiError::login_failed)?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let user = match http.broker.authenticate(&name, &password, peer) {
            Ok(u) => u,
            Err(e) if e.text.contains("only connect via localhost") => {
                return Err(ApiError::not_authorised(
                    "User can only log in via localhost",
                ))
            }
            Err(_) => return Err(ApiError::login_failed()),
        };
        if !user
            .tags
            .iter()
            .any(|t| MANAGEMENT_TAGS.contains(&t.as_str()))
        {
            return Err(ApiError::not_authorised("Not management user"));
        }
        Ok(Caller {
            user,
            http: http.clone(),
        })
    }
}
