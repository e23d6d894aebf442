//! A connection's open channels, for the management API (`/api/channels`,
//! a connection's `channels`). The reader task owns its `Channel`s without a
//! lock; what a listing needs is in each channel's shared half, so the
//! connection keeps this index of those, changed only when a channel opens
//! or closes.

use crate::delivery::ChannelShared;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use warren_core::connections::{ChannelInfo, ChannelSource};
use warren_core::stats::ChannelStats;

pub struct ChannelList {
    /// The connection's name ("peer -> local"); channels are "name (N)".
    conn_name: String,
    open: Mutex<BTreeMap<u16, Arc<ChannelShared>>>,
}

impl ChannelList {
    pub fn new(conn_name: String) -> Arc<ChannelList> {
        Arc::new(ChannelList {
            conn_name,
            open: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn insert(&self, ch: Arc<ChannelShared>) {
        self.open.lock().insert(ch.id, ch);
    }

    pub fn remove(&self, number: u16) {
        self.open.lock().remove(&number);
    }

    pub fn clear(&self) {
        self.open.lock().clear();
    }

    fn all(&self) -> Vec<Arc<ChannelShared>> {
        self.open.lock().values().cloned().collect()
    }
}

impl ChannelSource for ChannelList {
    fn channels(&self) -> Vec<ChannelInfo> {
        // Not under `open`'s lock: `info` takes each channel's delivery lock.
        self.all().iter().map(|c| c.info(&self.conn_name)).collect()
    }

    fn each_stats(&self, visit: &mut dyn FnMut(&ChannelStats)) {
        for c in self.all() {
            visit(&c.listing.stats);
        }
    }
}
