//! Warren's broker core: everything that is the same whichever protocol a client
//! speaks. Vhosts hold exchanges and queues; exchanges route messages to queues
//! through bindings; queues hold messages and hand them to consumers under their
//! prefetch limits. Protocol adapters (AMQP 0-9-1 today; STOMP, MQTT and HTTP later)
//! translate their wire formats into calls on these types.

pub mod admin;
pub mod auth;
pub mod broker;
pub mod confirm;
pub mod connections;
pub mod control;
pub mod control_ops;
pub mod equivalence;
pub mod error;
pub mod events;
pub mod exchange;
pub mod export;
pub mod export_ops;
pub mod gate;
pub mod json;
pub mod limits;
pub mod message;
pub mod meta;
pub mod net;
pub mod outlet;
pub mod permissions;
pub mod policy;
pub mod properties;
pub mod queue;
pub mod random;
pub mod runtime;
pub mod runtime_export;
pub mod shortstr;
pub mod stats;
pub mod store;
pub mod table;
pub mod testing;
pub mod topic_permissions;
pub mod trace;
pub mod vhost;

pub use broker::{Broker, Limits};
pub use error::{BrokerError, Result};
pub use exchange::{Exchange, ExchangeKind, ExchangeOptions};
pub use message::{Message, QueuedMessage};
pub use properties::BasicProperties;
pub use queue::{ConnectionId, Consumer, ConsumerSink, Queue, QueueOptions};
pub use shortstr::ShortStr;
pub use table::{FieldTable, FieldValue};
pub use vhost::VHost;
