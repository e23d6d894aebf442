//! RabbitMQ 3.10.8's metric families (names, TYPEs and HELP texts copied from
//! `rabbitmq_prometheus`'s output), the subset Warren has data for, in the
//! order RabbitMQ writes them.

use super::text::{Family, Kind};

pub const ALARMS_FILE_DESCRIPTOR_LIMIT: Family = Family::new(
    "rabbitmq_alarms_file_descriptor_limit",
    Kind::Untyped,
    "is 1 if file descriptor limit alarm is in effect",
);
pub const ALARMS_FREE_DISK_SPACE_WATERMARK: Family = Family::new(
    "rabbitmq_alarms_free_disk_space_watermark",
    Kind::Untyped,
    "is 1 if free disk space watermark alarm is in effect",
);
pub const ALARMS_MEMORY_USED_WATERMARK: Family = Family::new(
    "rabbitmq_alarms_memory_used_watermark",
    Kind::Untyped,
    "is 1 if VM memory watermark alarm is in effect",
);
pub const CONNECTIONS_OPENED_TOTAL: Family = Family::new(
    "rabbitmq_connections_opened_total",
    Kind::Counter,
    "Total number of connections opened",
);
pub const CONNECTIONS_CLOSED_TOTAL: Family = Family::new(
    "rabbitmq_connections_closed_total",
    Kind::Counter,
    "Total number of connections closed or terminated",
);
pub const CHANNELS_OPENED_TOTAL: Family = Family::new(
    "rabbitmq_channels_opened_total",
    Kind::Counter,
    "Total number of channels opened",
);
pub const CHANNELS_CLOSED_TOTAL: Family = Family::new(
    "rabbitmq_channels_closed_total",
    Kind::Counter,
    "Total number of channels closed",
);
pub const QUEUES_DECLARED_TOTAL: Family = Family::new(
    "rabbitmq_queues_declared_total",
    Kind::Counter,
    "Total number of queues declared",
);
pub const QUEUES_CREATED_TOTAL: Family = Family::new(
    "rabbitmq_queues_created_total",
    Kind::Counter,
    "Total number of queues created",
);
pub const QUEUES_DELETED_TOTAL: Family = Family::new(
    "rabbitmq_queues_deleted_total",
    Kind::Counter,
    "Total number of queues deleted",
);
pub const PROCESS_OPEN_FDS: Family = Family::new(
    "rabbitmq_process_open_fds",
    Kind::Gauge,
    "Open file descriptors",
);
pub const PROCESS_OPEN_TCP_SOCKETS: Family = Family::new(
    "rabbitmq_process_open_tcp_sockets",
    Kind::Gauge,
    "Open TCP sockets",
);
pub const PROCESS_RESIDENT_MEMORY_BYTES: Family = Family::new(
    "rabbitmq_process_resident_memory_bytes",
    Kind::Gauge,
    "Memory used in bytes",
);
pub const DISK_SPACE_AVAILABLE_BYTES: Family = Family::new(
    "rabbitmq_disk_space_available_bytes",
    Kind::Gauge,
    "Disk space available in bytes",
);
pub const PROCESS_MAX_FDS: Family = Family::new(
    "rabbitmq_process_max_fds",
    Kind::Gauge,
    "Open file descriptors limit",
);
pub const PROCESS_MAX_TCP_SOCKETS: Family = Family::new(
    "rabbitmq_process_max_tcp_sockets",
    Kind::Gauge,
    "Open TCP sockets limit",
);
pub const RESIDENT_MEMORY_LIMIT_BYTES: Family = Family::new(
    "rabbitmq_resident_memory_limit_bytes",
    Kind::Gauge,
    "Memory high watermark in bytes",
);
pub const DISK_SPACE_AVAILABLE_LIMIT_BYTES: Family = Family::new(
    "rabbitmq_disk_space_available_limit_bytes",
    Kind::Gauge,
    "Free disk space low watermark in bytes",
);
pub const QUEUE_MESSAGES_READY: Family = Family::new(
    "rabbitmq_queue_messages_ready",
    Kind::Gauge,
    "Messages ready to be delivered to consumers",
);
pub const QUEUE_MESSAGES_UNACKED: Family = Family::new(
    "rabbitmq_queue_messages_unacked",
    Kind::Gauge,
    "Messages delivered to consumers but not yet acknowledged",
);
pub const QUEUE_MESSAGES: Family = Family::new(
    "rabbitmq_queue_messages",
    Kind::Gauge,
    "Sum of ready and unacknowledged messages - total queue depth",
);
pub const QUEUE_CONSUMERS: Family = Family::new(
    "rabbitmq_queue_consumers",
    Kind::Gauge,
    "Consumers on a queue",
);
pub const QUEUE_MESSAGES_BYTES: Family = Family::new(
    "rabbitmq_queue_messages_bytes",
    Kind::Gauge,
    "Size in bytes of ready and unacknowledged messages",
);
pub const QUEUE_MESSAGES_READY_BYTES: Family = Family::new(
    "rabbitmq_queue_messages_ready_bytes",
    Kind::Gauge,
    "Size in bytes of ready messages",
);
pub const QUEUE_MESSAGES_UNACKED_BYTES: Family = Family::new(
    "rabbitmq_queue_messages_unacked_bytes",
    Kind::Gauge,
    "Size in bytes of all unacknowledged messages",
);
pub const CHANNEL_CONSUMERS: Family = Family::new(
    "rabbitmq_channel_consumers",
    Kind::Gauge,
    "Consumers on a channel",
);
pub const CHANNEL_MESSAGES_UNACKED: Family = Family::new(
    "rabbitmq_channel_messages_unacked",
    Kind::Gauge,
    "Delivered but not yet acknowledged messages",
);
pub const CHANNEL_MESSAGES_UNCONFIRMED: Family = Family::new(
    "rabbitmq_channel_messages_unconfirmed",
    Kind::Gauge,
    "Published but not yet confirmed messages",
);
pub const CONSUMER_PREFETCH: Family = Family::new(
    "rabbitmq_consumer_prefetch",
    Kind::Gauge,
    "Limit of unacknowledged messages for each consumer",
);
pub const CHANNEL_PREFETCH: Family = Family::new(
    "rabbitmq_channel_prefetch",
    Kind::Gauge,
    "Total limit of unacknowledged messages for all consumers on a channel",
);
pub const CHANNEL_MESSAGES_PUBLISHED_TOTAL: Family = Family::new(
    "rabbitmq_channel_messages_published_total",
    Kind::Counter,
    "Total number of messages published into an exchange on a channel",
);
pub const CHANNEL_MESSAGES_CONFIRMED_TOTAL: Family = Family::new(
    "rabbitmq_channel_messages_confirmed_total",
    Kind::Counter,
    "Total number of messages published into an exchange and confirmed on the channel",
);
pub const CHANNEL_MESSAGES_UNROUTABLE_RETURNED_TOTAL: Family = Family::new(
    "rabbitmq_channel_messages_unroutable_returned_total",
    Kind::Counter,
    "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
);
pub const CHANNEL_MESSAGES_UNROUTABLE_DROPPED_TOTAL: Family = Family::new(
    "rabbitmq_channel_messages_unroutable_dropped_total",
    Kind::Counter,
    "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
);
pub const CHANNEL_GET_ACK_TOTAL: Family = Family::new(
    "rabbitmq_channel_get_ack_total",
    Kind::Counter,
    "Total number of messages fetched with basic.get in manual acknowledgement mode",
);
pub const CHANNEL_GET_TOTAL: Family = Family::new(
    "rabbitmq_channel_get_total",
    Kind::Counter,
    "Total number of messages fetched with basic.get in automatic acknowledgement mode",
);
pub const CHANNEL_MESSAGES_DELIVERED_ACK_TOTAL: Family = Family::new(
    "rabbitmq_channel_messages_delivered_ack_total",
    Kind::Counter,
    "Total number of messages delivered to consumers in manual acknowledgement mode",
);
pub const CHANNEL_MESSAGES_DELIVERED_TOTAL: Family = Family::new(
    "rabbitmq_channel_messages_delivered_total",
    Kind::Counter,
    "Total number of messages delivered to consumers in automatic acknowledgement mode",
);
pub const CHANNEL_MESSAGES_REDELIVERED_TOTAL: Family = Family::new(
    "rabbitmq_channel_messages_redelivered_total",
    Kind::Counter,
    "Total number of messages redelivered to consumers",
);
pub const CHANNEL_MESSAGES_ACKED_TOTAL: Family = Family::new(
    "rabbitmq_channel_messages_acked_total",
    Kind::Counter,
    "Total number of messages acknowledged by consumers",
);
pub const CHANNEL_GET_EMPTY_TOTAL: Family = Family::new(
    "rabbitmq_channel_get_empty_total",
    Kind::Counter,
    "Total number of times basic.get operations fetched no message",
);
pub const CONNECTION_INCOMING_BYTES_TOTAL: Family = Family::new(
    "rabbitmq_connection_incoming_bytes_total",
    Kind::Counter,
    "Total number of bytes received on a connection",
);
pub const CONNECTION_OUTGOING_BYTES_TOTAL: Family = Family::new(
    "rabbitmq_connection_outgoing_bytes_total",
    Kind::Counter,
    "Total number of bytes sent on a connection",
);
pub const CONNECTION_INCOMING_PACKETS_TOTAL: Family = Family::new(
    "rabbitmq_connection_incoming_packets_total",
    Kind::Counter,
    "Total number of packets received on a connection",
);
pub const CONNECTION_OUTGOING_PACKETS_TOTAL: Family = Family::new(
    "rabbitmq_connection_outgoing_packets_total",
    Kind::Counter,
    "Total number of packets sent on a connection",
);
pub const CONNECTION_CHANNELS: Family = Family::new(
    "rabbitmq_connection_channels",
    Kind::Gauge,
    "Channels on a connection",
);
pub const CONNECTIONS: Family = Family::new(
    "rabbitmq_connections",
    Kind::Gauge,
    "Connections currently open",
);
pub const CHANNELS: Family =
    Family::new("rabbitmq_channels", Kind::Gauge, "Channels currently open");
pub const CONSUMERS: Family = Family::new(
    "rabbitmq_consumers",
    Kind::Gauge,
    "Consumers currently connected",
);
pub const QUEUES: Family = Family::new("rabbitmq_queues", Kind::Gauge, "Queues available");
pub const BUILD_INFO: Family = Family::new(
    "rabbitmq_build_info",
    Kind::Untyped,
    "RabbitMQ & Erlang/OTP version info",
);
pub const IDENTITY_INFO: Family = Family::new(
    "rabbitmq_identity_info",
    Kind::Untyped,
    "RabbitMQ node & cluster identity info",
);
pub const GLOBAL_CONSUMERS: Family = Family::new(
    "rabbitmq_global_consumers",
    Kind::Gauge,
    "Current number of consumers",
);
pub const GLOBAL_MESSAGES_ACKNOWLEDGED_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_acknowledged_total",
    Kind::Counter,
    "Total number of messages acknowledged by consumers",
);
pub const GLOBAL_MESSAGES_CONFIRMED_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_confirmed_total",
    Kind::Counter,
    "Total number of messages confirmed to publishers",
);
pub const GLOBAL_MESSAGES_DEAD_LETTERED_EXPIRED_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_dead_lettered_expired_total",
    Kind::Counter,
    "Total number of messages dead-lettered due to message TTL exceeded",
);
pub const GLOBAL_MESSAGES_DEAD_LETTERED_MAXLEN_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_dead_lettered_maxlen_total",
    Kind::Counter,
    "Total number of messages dead-lettered due to overflow drop-head or reject-publish-dlx",
);
pub const GLOBAL_MESSAGES_DEAD_LETTERED_REJECTED_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_dead_lettered_rejected_total",
    Kind::Counter,
    "Total number of messages dead-lettered due to basic.reject or basic.nack",
);
pub const GLOBAL_MESSAGES_DELIVERED_CONSUME_AUTO_ACK_TOTAL: Family = Family::new("rabbitmq_global_messages_delivered_consume_auto_ack_total", Kind::Counter, "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment");
pub const GLOBAL_MESSAGES_DELIVERED_CONSUME_MANUAL_ACK_TOTAL: Family = Family::new("rabbitmq_global_messages_delivered_consume_manual_ack_total", Kind::Counter, "Total number of messages delivered to consumers using basic.consume with manual acknowledgment");
pub const GLOBAL_MESSAGES_DELIVERED_GET_AUTO_ACK_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_delivered_get_auto_ack_total",
    Kind::Counter,
    "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
);
pub const GLOBAL_MESSAGES_DELIVERED_GET_MANUAL_ACK_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_delivered_get_manual_ack_total",
    Kind::Counter,
    "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
);
pub const GLOBAL_MESSAGES_DELIVERED_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_delivered_total",
    Kind::Counter,
    "Total number of messages delivered to consumers",
);
pub const GLOBAL_MESSAGES_GET_EMPTY_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_get_empty_total",
    Kind::Counter,
    "Total number of times basic.get operations fetched no message",
);
pub const GLOBAL_MESSAGES_RECEIVED_CONFIRM_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_received_confirm_total",
    Kind::Counter,
    "Total number of messages received from publishers expecting confirmations",
);
pub const GLOBAL_MESSAGES_RECEIVED_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_received_total",
    Kind::Counter,
    "Total number of messages received from publishers",
);
pub const GLOBAL_MESSAGES_REDELIVERED_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_redelivered_total",
    Kind::Counter,
    "Total number of messages redelivered to consumers",
);
pub const GLOBAL_MESSAGES_ROUTED_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_routed_total",
    Kind::Counter,
    "Total number of messages routed to queues or streams",
);
pub const GLOBAL_MESSAGES_UNROUTABLE_DROPPED_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_unroutable_dropped_total",
    Kind::Counter,
    "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
);
pub const GLOBAL_MESSAGES_UNROUTABLE_RETURNED_TOTAL: Family = Family::new(
    "rabbitmq_global_messages_unroutable_returned_total",
    Kind::Counter,
    "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
);
pub const GLOBAL_PUBLISHERS: Family = Family::new(
    "rabbitmq_global_publishers",
    Kind::Gauge,
    "Current number of publishers",
);
