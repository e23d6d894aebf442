//! Raft groups on a node, and the registry the transport dispatches to.
//!
//! The metadata group is [`META_GROUP`]; each quorum queue will register its
//! own group id (any other value but [`NODE_GROUP`], which answers node-level
//! questions such as status). A group implements [`GroupHandler`]: given an
//! RPC code and its payload, answer with a payload. [`crate::raft_net`] has
//! the generic implementation for an openraft `Raft<C>`.

use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type GroupId = u64;

/// The metadata Raft group.
pub const META_GROUP: GroupId = 0;
/// Not a Raft group: node-level RPCs (status, ping).
pub const NODE_GROUP: GroupId = u64::MAX;

/// What a group's handler answers: the reply payload, or an error text the
/// caller gets as [`crate::transport::CallError::Remote`].
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send>>;

pub trait GroupHandler: Send + Sync + 'static {
    fn handle(&self, rpc: u8, payload: Bytes) -> HandlerFuture;
}

/// The groups this node serves.
#[derive(Default)]
pub struct Registry {
    groups: RwLock<HashMap<GroupId, Arc<dyn GroupHandler>>>,
}

impl Registry {
    pub fn register(&self, group: GroupId, h: Arc<dyn GroupHandler>) {
        self.groups.write().insert(group, h);
    }

    pub fn unregister(&self, group: GroupId) {
        self.groups.write().remove(&group);
    }

    pub fn get(&self, group: GroupId) -> Option<Arc<dyn GroupHandler>> {
        self.groups.read().get(&group).cloned()
    }
}
