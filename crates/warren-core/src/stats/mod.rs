//! Statistics for the management API: per-object counters, read when asked.
//!
//! Nothing here sends an event per message. Each object (queue, exchange,
//! connection, AMQP channel) owns a few relaxed `AtomicU64` counters that the
//! message path bumps where it already is (a queue's under the queue's lock,
//! with a plain load and store; a connection's once per read and per write
//! batch). Totals for a vhost or the broker are sums over live objects taken
//! when read, plus what deleted objects had counted ([`VHostStats`]).
//!
//! Rates (`<name>_details.rate`, per second) are not computed by readers: a
//! background thread ([`sampler`]) visits every object every 5 s and stores
//! each counter's rate next to it, so any number of polling HTTP clients read
//! the same figures without disturbing each other or the broker. An idle
//! counter costs that thread two loads and no store.
//!
//! Names follow RabbitMQ's management API (`publish`, `deliver_no_ack`,
//! `recv_oct`...): see [`MessageField`], [`ExchangeField`],
//! [`ConnectionField`], and [`Snapshot::iter`] for printing them.

mod channel;
mod counter;
mod fields;
mod global;
mod io;
pub mod sampler;
mod set;
mod vhost;

pub use channel::{
    ChannelStats, ChurnField, ChurnSnapshot, ChurnStats, LazyChannelStats, PublishField,
    PublishSnapshot, PublishStats,
};
pub use counter::{Counter, GaugeRate, Rate};
pub use fields::{
    ConnectionField, ConnectionSnapshot, ConnectionStats, ExchangeField, ExchangeSnapshot,
    ExchangeStats, MessageField, MessageSnapshot, MessageStats, MESSAGE_FIELDS,
};
pub use global::{GlobalTotals, RetiredVHosts};
pub use io::CountingReader;
pub(crate) use set::add_into;
pub use set::{Aggregate, Counters, Field, Snapshot};
pub(crate) use vhost::vhost_messages;
pub use vhost::{DeadLetterStrategy, VHostStats};

#[cfg(test)]
pub(crate) mod tests;
