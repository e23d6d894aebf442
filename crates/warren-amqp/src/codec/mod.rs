//! AMQP 0-9-1 frame and method codec (being written).
