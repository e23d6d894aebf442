//! STOMP transactions: BEGIN, then SENDs and ACK/NACKs naming the transaction
//! are held back, COMMIT performs them in order, ABORT drops them.
//!
//! As RabbitMQ: a transaction lives on its connection, any number can be open
//! at once, BEGIN of an open one starts it afresh, and a held-back SEND's
//! RECEIPT is only sent if the transaction commits (and the message is safely
//! stored). What a held-back frame needs (its destination declared, its
//! `reply-to` temp queue created) happens when the frame arrives; only the
//! publish or acknowledgement itself waits.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use warren_core::Message;

/// A held-back frame.
pub enum Action {
    /// Publish `message` to `exchange`; RECEIPT `receipt` once it is stored.
    Send {
        exchange: Bytes,
        message: Arc<Message>,
        receipt: Option<Bytes>,
    },
    /// ACK (`nack: None`) or NACK (`Some(requeue)`) of delivery `tag`.
    Ack {
        tag: u64,
        multiple: bool,
        nack: Option<bool>,
    },
}

/// The open transactions of a connection.
#[derive(Default)]
pub struct Transactions {
    open: HashMap<Bytes, Vec<Action>>,
}

impl Transactions {
    pub fn begin(&mut self, id: Bytes) {
        self.open.insert(id, Vec::new());
    }

    /// Hold `action` back in transaction `id`; false if there is no such
    /// transaction.
    pub fn extend(&mut self, id: &[u8], action: Action) -> bool {
        match self.open.get_mut(id) {
            Some(actions) => {
                actions.push(action);
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, id: &[u8]) -> bool {
        self.open.contains_key(id)
    }

    /// End transaction `id`, returning what it held (None if not open).
    pub fn end(&mut self, id: &[u8]) -> Option<Vec<Action>> {
        self.open.remove(id)
    }
}
