//! Warren's broker core: everything that is the same whichever protocol a client
//! speaks. Vhosts hold exchanges and queues; exchanges route messages to queues
//! through bindings; queues hold messages and hand them to consumers under their
//! prefetch limits. Protocol adapters (AMQP 0-9-1 today; STOMP, MQTT and HTTP later)
//! translate their wire formats into calls on these types.

pub mod exchange;
pub mod properties;
pub mod shortstr;
pub mod table;

pub use properties::BasicProperties;
pub use shortstr::ShortStr;
pub use table::{FieldTable, FieldValue};
