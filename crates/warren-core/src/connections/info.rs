//! What the registry knows about a connection and its channels: what
//! RabbitMQ's management API shows (`/api/connections`, `/api/channels`) and
//! what connection events carry.

use crate::queue::ConnectionId;
use crate::stats::{ChannelStats, ConnectionStats, MessageSnapshot, PublishSnapshot};
use crate::table::FieldTable;
use crate::vhost::VHost;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

/// An open client connection, as its adapter registered it. Fixed once
/// registered, apart from its counters.
pub struct ConnectionInfo {
    pub id: ConnectionId,
    /// "peer -> local", RabbitMQ's connection name (the NAME of
    /// `/api/connections/NAME`).
    pub name: String,
    /// As RabbitMQ's management shows it: "AMQP 0-9-1", "STOMP 1.2",
    /// "Web STOMP 1.2"; Warren's Server-Sent Events feeds: "SSE". A `Cow`
    /// so an adapter with a fixed set of names (MQTT) stores no copy per
    /// connection.
    pub protocol: Cow<'static, str>,
    /// The `protocol` header of connection events: RabbitMQ's Erlang term,
    /// "{0,9,1}" or "{'STOMP',\"1.2\"}".
    pub protocol_term: Cow<'static, str>,
    /// RabbitMQ's `type`: "network" (AMQP), or "direct" (STOMP, Web-STOMP and
    /// SSE: RabbitMQ's plugins run over direct connections).
    pub kind: &'static str,
    pub user: String,
    pub vhost: Arc<VHost>,
    /// The client's address (`peer_host`, `peer_port`).
    pub peer: SocketAddr,
    /// Our end (`host`, `port`).
    pub local: SocketAddr,
    /// Milliseconds since the epoch.
    pub connected_at: u64,
    /// AMQP: what the client sent in connection.start-ok. STOMP: RabbitMQ's
    /// `{"product": "STOMP client"}`.
    pub client_properties: FieldTable,
    /// "PLAIN", "AMQPLAIN"; None where RabbitMQ shows none (STOMP).
    pub auth_mechanism: Option<String>,
    /// Negotiated heartbeat, seconds (RabbitMQ's `timeout`); 0: none.
    pub heartbeat: u16,
    /// 0 where the protocol has none (STOMP, as RabbitMQ shows it).
    pub frame_max: u32,
    pub channel_max: u16,
    /// What TLS negotiated (`ssl`, `ssl_protocol`, `peer_cert_subject`...);
    /// None on a plain connection.
    pub tls: Option<Arc<crate::net::TlsInfo>>,
    /// `recv_oct`, `recv_cnt`, `send_oct`, `send_cnt`.
    pub stats: Arc<ConnectionStats>,
    /// Its channels, where the protocol has them (AMQP; a STOMP connection
    /// is RabbitMQ's one channel, numbered 1).
    pub channels: Option<Arc<dyn ChannelSource>>,
}

impl ConnectionInfo {
    /// Its open channels, ordered by number (none if the protocol has none).
    pub fn channel_list(&self) -> Vec<ChannelInfo> {
        self.channels
            .as_ref()
            .map(|c| c.channels())
            .unwrap_or_default()
    }

    /// RabbitMQ's name of channel `number`: "peer -> local (N)".
    pub fn channel_name(&self, number: u16) -> String {
        format!("{} ({})", self.name, number)
    }
}

/// A connection's channels, listed by its adapter (which owns them).
pub trait ChannelSource: Send + Sync {
    /// The open channels, ordered by number.
    fn channels(&self) -> Vec<ChannelInfo>;

    /// Hand each channel's message counters to `visit` (the stats sampler
    /// computes their rates; see [`crate::stats`]).
    fn each_stats(&self, visit: &mut dyn FnMut(&ChannelStats));
}

/// One channel as `/api/channels` shows it (connection, user and vhost
/// come from its [`ConnectionInfo`]).
#[derive(Clone, Debug)]
pub struct ChannelInfo {
    pub number: u16,
    /// "peer -> local (N)".
    pub name: String,
    /// basic.qos prefetch for new consumers (global=false).
    pub prefetch_count: u32,
    /// basic.qos global=true limit.
    pub global_prefetch_count: u32,
    pub messages_unacknowledged: u64,
    /// Publishes in confirm mode not confirmed yet.
    pub messages_unconfirmed: u64,
    pub consumer_count: u32,
    /// Confirm mode (confirm.select).
    pub confirm: bool,
    /// Transaction mode (tx.select).
    pub transactional: bool,
    /// Per channel: `publish` (published on it), `deliver`, `deliver_no_ack`,
    /// `get`, `get_no_ack`, `ack`, `redeliver`.
    pub message_stats: MessageSnapshot,
    /// `confirm`, `return_unroutable`, `drop_unroutable`.
    pub publish_stats: PublishSnapshot,
}
