//! What is counted, named as RabbitMQ's management API names it.

use super::set::{Counters, Field, Snapshot};

/// Message counts of a queue, an AMQP channel, a vhost or the broker
/// (RabbitMQ's `message_stats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageField {
    /// Queue: messages enqueued (dead-lettered ones too). Channel: messages
    /// the client published. Vhost and broker: messages published into
    /// exchanges (the sum of their `publish_in`).
    Publish,
    /// Delivered to consumers that acknowledge.
    Deliver,
    /// Delivered to consumers that do not (auto-ack).
    DeliverNoAck,
    /// basic.get answered, acknowledgement required.
    Get,
    /// basic.get answered, no acknowledgement.
    GetNoAck,
    /// basic.get on an empty queue.
    GetEmpty,
    /// Acknowledged by the client.
    Ack,
    /// Delivered or got again (the message had been delivered before).
    Redeliver,
}

impl Field for MessageField {
    const ALL: &'static [Self] = &[
        MessageField::Publish,
        MessageField::Deliver,
        MessageField::DeliverNoAck,
        MessageField::Get,
        MessageField::GetNoAck,
        MessageField::GetEmpty,
        MessageField::Ack,
        MessageField::Redeliver,
    ];

    #[inline]
    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            MessageField::Publish => "publish",
            MessageField::Deliver => "deliver",
            MessageField::DeliverNoAck => "deliver_no_ack",
            MessageField::Get => "get",
            MessageField::GetNoAck => "get_no_ack",
            MessageField::GetEmpty => "get_empty",
            MessageField::Ack => "ack",
            MessageField::Redeliver => "redeliver",
        }
    }
}

/// How many message figures there are.
pub const MESSAGE_FIELDS: usize = 8;

/// A queue's or a channel's message counters.
pub type MessageStats = Counters<MessageField, MESSAGE_FIELDS>;
/// Message counts and rates, as read.
pub type MessageSnapshot = Snapshot<MessageField, MESSAGE_FIELDS>;

impl MessageStats {
    /// Count one delivery to a consumer (`get` false) or one basic.get answer
    /// (`get` true), and a redelivery if it was one, with
    /// [`Counters::add_serialized`]: the caller holds the lock all writers of
    /// these counters hold.
    #[inline]
    pub fn count_delivery_serialized(&self, get: bool, no_ack: bool, redelivered: bool) {
        let field = match (get, no_ack) {
            (false, false) => MessageField::Deliver,
            (false, true) => MessageField::DeliverNoAck,
            (true, false) => MessageField::Get,
            (true, true) => MessageField::GetNoAck,
        };
        self.add_serialized(field, 1);
        if redelivered {
            self.add_serialized(MessageField::Redeliver, 1);
        }
    }
}

impl MessageSnapshot {
    /// RabbitMQ's derived `deliver_get`: deliver + deliver_no_ack + get +
    /// get_no_ack (not get_empty).
    pub fn deliver_get(&self) -> u64 {
        DELIVER_GET.iter().map(|f| self.get(*f)).sum()
    }

    /// The rate of [`Self::deliver_get`].
    pub fn deliver_get_rate(&self) -> f64 {
        DELIVER_GET.iter().map(|f| self.rate(*f)).sum()
    }
}

const DELIVER_GET: [MessageField; 4] = [
    MessageField::Deliver,
    MessageField::DeliverNoAck,
    MessageField::Get,
    MessageField::GetNoAck,
];

/// Message counts of an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeField {
    /// Messages published into the exchange (a delayed exchange counts a
    /// message when it releases it).
    PublishIn,
    /// Copies routed out to queues (a message reaching 3 queues counts 3).
    PublishOut,
}

impl Field for ExchangeField {
    const ALL: &'static [Self] = &[ExchangeField::PublishIn, ExchangeField::PublishOut];

    #[inline]
    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            ExchangeField::PublishIn => "publish_in",
            ExchangeField::PublishOut => "publish_out",
        }
    }
}

/// An exchange's counters.
pub type ExchangeStats = Counters<ExchangeField, 2>;
/// Exchange counts and rates, as read.
pub type ExchangeSnapshot = Snapshot<ExchangeField, 2>;

/// Traffic of a connection, counted per read and per write (batch), not per
/// message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionField {
    /// Octets received.
    RecvOct,
    /// Reads that returned data.
    RecvCnt,
    /// Octets sent.
    SendOct,
    /// Writes (one per batch of frames).
    SendCnt,
}

impl Field for ConnectionField {
    const ALL: &'static [Self] = &[
        ConnectionField::RecvOct,
        ConnectionField::RecvCnt,
        ConnectionField::SendOct,
        ConnectionField::SendCnt,
    ];

    #[inline]
    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            ConnectionField::RecvOct => "recv_oct",
            ConnectionField::RecvCnt => "recv_cnt",
            ConnectionField::SendOct => "send_oct",
            ConnectionField::SendCnt => "send_cnt",
        }
    }
}

/// A connection's counters.
pub type ConnectionStats = Counters<ConnectionField, 4>;

impl ConnectionStats {
    /// One read of `octets` (> 0).
    #[inline]
    pub fn received(&self, octets: usize) {
        self.add(ConnectionField::RecvOct, octets as u64);
        self.add(ConnectionField::RecvCnt, 1);
    }

    /// One write (or flushed batch of writes) of `octets`; nothing if 0.
    #[inline]
    pub fn sent(&self, octets: usize) {
        if octets > 0 {
            self.add(ConnectionField::SendOct, octets as u64);
            self.add(ConnectionField::SendCnt, 1);
        }
    }
}
/// Connection counts and rates, as read.
pub type ConnectionSnapshot = Snapshot<ConnectionField, 4>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_in_index_order() {
        for (i, f) in MessageField::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
        }
        for (i, f) in ExchangeField::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
        }
        for (i, f) in ConnectionField::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
        }
    }

    #[test]
    fn deliver_get_sums_deliveries_and_gets() {
        let s = MessageStats::default();
        s.add(MessageField::Publish, 100);
        s.add(MessageField::Deliver, 1);
        s.add(MessageField::DeliverNoAck, 2);
        s.add(MessageField::Get, 3);
        s.add(MessageField::GetNoAck, 4);
        s.add(MessageField::GetEmpty, 9);
        s.add(MessageField::Ack, 1);
        s.sample(2.0);
        let snap = s.snapshot();
        assert_eq!(snap.deliver_get(), 10);
        assert_eq!(snap.deliver_get_rate(), 5.0);
        let names: Vec<&str> = snap.iter().map(|(n, _, _)| n).collect();
        assert_eq!(
            names,
            [
                "publish",
                "deliver",
                "deliver_no_ack",
                "get",
                "get_no_ack",
                "get_empty",
                "ack",
                "redeliver"
            ]
        );
    }
}
