//! Warren's AMQP 0-9-1 adapter.

pub mod codec;
