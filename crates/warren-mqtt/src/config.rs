//! The MQTT listener's settings (`[mqtt]` in Warren's config file).

use crate::codec::DEFAULT_MAX_PACKET_SIZE;

#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// The vhost of a login whose user name has no `vhost:` prefix
    /// (RabbitMQ's `mqtt.vhost`).
    pub default_vhost: String,
    /// Log in clients without credentials as this user (RabbitMQ's
    /// `mqtt.allow_anonymous` with `mqtt.default_user`). Off by default.
    pub anonymous_user: Option<String>,
    /// The exchange topics map onto (RabbitMQ's `mqtt.exchange`).
    pub exchange: String,
    /// Largest packet the server accepts (announced to MQTT 5 clients).
    pub max_packet_size: usize,
    /// QoS ≥ 1 deliveries a client may have unacknowledged (RabbitMQ's
    /// `mqtt.prefetch`); an MQTT 5 client's Receive Maximum lowers it.
    pub max_inflight: u16,
    /// QoS ≥ 1 publishes from a client that may await their PUBACK/PUBCOMP
    /// (the server's Receive Maximum, announced to MQTT 5 clients).
    pub receive_maximum: u16,
    /// Topic aliases an MQTT 5 client may use towards the server.
    pub topic_alias_maximum: u16,
    /// Longest keep-alive granted, seconds (0: whatever the client asks); a
    /// longer one is lowered and announced as Server Keep Alive.
    pub max_keep_alive: u16,
    /// Longest session expiry granted to MQTT 5 clients, seconds (RabbitMQ's
    /// `mqtt.max_session_expiry_interval_seconds`, default one day).
    pub max_session_expiry: u32,
    /// How long a 3.1.1 persistent session (clean session 0) outlives its
    /// connection, ms (RabbitMQ 3.10's `mqtt.subscription_ttl`, default one
    /// day, set as `x-expires` on the session's queue); None: forever.
    pub subscription_ttl: Option<u64>,
}

impl MqttConfig {
    /// The `x-expires` of a persistent session's queues: the longest any
    /// session may get (the session sweeper ends each one at its own expiry,
    /// which an MQTT 5 DISCONNECT may lengthen, so the queue must not go
    /// first); None when some session may live forever.
    pub fn session_queue_expires(&self) -> Option<u64> {
        let v5 = (self.max_session_expiry != u32::MAX)
            .then(|| u64::from(self.max_session_expiry) * 1000)?;
        Some(v5.max(self.subscription_ttl?))
    }
}

impl Default for MqttConfig {
    fn default() -> MqttConfig {
        MqttConfig {
            default_vhost: "/".into(),
            anonymous_user: None,
            exchange: "amq.topic".into(),
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_inflight: 100,
            receive_maximum: 1024,
            topic_alias_maximum: 64,
            max_keep_alive: 0,
            max_session_expiry: 86_400,
            subscription_ttl: Some(86_400_000),
        }
    }
}
