//! One scrape: walk the core's objects once and write every family.

use super::families as f;
pub use super::text::Format;
use super::text::Writer;
use std::sync::Arc;
use warren_core::connections::{ChannelInfo, ConnectionInfo};
use warren_core::queue::QueueDepth;
use warren_core::queue::Reason;
use warren_core::stats::{
    ChurnField as Churn, ConnectionField as C, DeadLetterStrategy, MessageField as M,
    PublishField as P,
};
use warren_core::Broker;

/// Node figures the core does not hold (the binary's resource monitor knows
/// its limits and where the data directory is).
#[derive(Clone)]
pub struct NodeProbe {
    /// `warren@HOST`: `rabbitmq_identity_info`'s node and cluster.
    pub node: String,
    /// The memory high watermark, bytes.
    pub memory_limit: u64,
    /// The disk free limit, bytes.
    pub disk_free_limit: u64,
    /// Free space where the data directory is, bytes.
    pub disk_free: Arc<dyn Fn() -> Option<u64> + Send + Sync>,
}

impl NodeProbe {
    /// For tests and embedding: no limits known, disk free unknown.
    pub fn unknown(node: &str) -> NodeProbe {
        NodeProbe {
            node: node.into(),
            memory_limit: 0,
            disk_free_limit: 0,
            disk_free: Arc::new(|| None),
        }
    }
}

struct QueueRow {
    vhost: String,
    name: String,
    depth: QueueDepth,
}

struct ChannelRow {
    pid: String,
    vhost: Arc<str>,
    info: ChannelInfo,
}

/// Write `/metrics` (`per_object` false: every object family summed into one
/// unlabelled sample) or `/metrics/per-object`.
pub fn render(broker: &Broker, probe: &NodeProbe, per_object: bool, format: Format) -> String {
    // Read everything first: each family's samples must be contiguous.
    let mut queues = Vec::new();
    for v in broker.vhosts() {
        let vname = v.name.to_string();
        for q in v.listed_queues() {
            queues.push(QueueRow {
                vhost: vname.clone(),
                name: q.name.to_string_lossy().into_owned(),
                depth: q.depth(),
            });
        }
    }
    let conns = broker.connections.list();
    let mut channels = Vec::new();
    for c in &conns {
        let vhost: Arc<str> = Arc::from(c.vhost.name.to_string());
        for ch in c.channel_list() {
            channels.push(ChannelRow {
                pid: pid(c.id, ch.number),
                vhost: vhost.clone(),
                info: ch,
            });
        }
    }
    let cap = if per_object {
        16_384 + queues.len() * 7 * 90 + channels.len() * 14 * 110
    } else {
        16_384
    };
    let mut w = Writer::new(format, cap);

    // Node: alarms, churn, process and disk.
    let alarm = broker.alarm().borrow().clone().unwrap_or_default();
    w.single(&f::ALARMS_FILE_DESCRIPTOR_LIMIT, 0);
    w.single(
        &f::ALARMS_FREE_DISK_SPACE_WATERMARK,
        alarm.contains("disk") as u64,
    );
    w.single(
        &f::ALARMS_MEMORY_USED_WATERMARK,
        alarm.contains("memory") as u64,
    );
    let churn = broker.churn.snapshot();
    let churn_families = [
        (&f::CONNECTIONS_OPENED_TOTAL, Churn::ConnectionCreated),
        (&f::CONNECTIONS_CLOSED_TOTAL, Churn::ConnectionClosed),
        (&f::CHANNELS_OPENED_TOTAL, Churn::ChannelCreated),
        (&f::CHANNELS_CLOSED_TOTAL, Churn::ChannelClosed),
        (&f::QUEUES_DECLARED_TOTAL, Churn::QueueDeclared),
        (&f::QUEUES_CREATED_TOTAL, Churn::QueueCreated),
        (&f::QUEUES_DELETED_TOTAL, Churn::QueueDeleted),
    ];
    for (fam, field) in churn_families {
        w.single(fam, churn.get(field));
    }
    w.single(&f::PROCESS_OPEN_FDS, open_fds());
    // RabbitMQ counts the sockets its listeners accepted: client connections.
    w.single(&f::PROCESS_OPEN_TCP_SOCKETS, conns.len() as u64);
    w.single(&f::PROCESS_RESIDENT_MEMORY_BYTES, rss_bytes());
    if let Some(free) = (probe.disk_free)() {
        w.single(&f::DISK_SPACE_AVAILABLE_BYTES, free);
    }
    if let Some(max) = max_fds() {
        w.single(&f::PROCESS_MAX_FDS, max);
        // Warren's sockets are file descriptors like any other.
        w.single(&f::PROCESS_MAX_TCP_SOCKETS, max);
    }
    if probe.memory_limit > 0 {
        w.single(&f::RESIDENT_MEMORY_LIMIT_BYTES, probe.memory_limit);
    }
    if probe.disk_free_limit > 0 {
        w.single(&f::DISK_SPACE_AVAILABLE_LIMIT_BYTES, probe.disk_free_limit);
    }

    // Queues: labels vhost, queue.
    type QueueValue = fn(&QueueDepth) -> u64;
    let queue_families: [(&super::text::Family, QueueValue); 7] = [
        (&f::QUEUE_MESSAGES_READY, |d| d.messages_ready),
        (&f::QUEUE_MESSAGES_UNACKED, |d| d.messages_unacknowledged),
        (&f::QUEUE_MESSAGES, |d| d.messages()),
        (&f::QUEUE_CONSUMERS, |d| d.consumers as u64),
        (&f::QUEUE_MESSAGES_BYTES, |d| d.message_bytes()),
        (&f::QUEUE_MESSAGES_READY_BYTES, |d| d.message_bytes_ready),
        (&f::QUEUE_MESSAGES_UNACKED_BYTES, |d| {
            d.message_bytes_unacknowledged
        }),
    ];
    for (fam, value) in queue_families {
        w.family(fam);
        if per_object {
            for q in &queues {
                w.sample(&[("vhost", &q.vhost), ("queue", &q.name)], value(&q.depth));
            }
        } else {
            w.sample(&[], queues.iter().map(|q| value(&q.depth)).sum());
        }
    }

    // Channels: label channel (RabbitMQ's channel pid; Warren's
    // `<warren.CONNECTION.CHANNEL>`, as its events name them).
    type ChannelValue = fn(&ChannelInfo) -> u64;
    let channel_gauges: [(&super::text::Family, ChannelValue); 5] = [
        (&f::CHANNEL_CONSUMERS, |c| c.consumer_count as u64),
        (&f::CHANNEL_MESSAGES_UNACKED, |c| c.messages_unacknowledged),
        (&f::CHANNEL_MESSAGES_UNCONFIRMED, |c| c.messages_unconfirmed),
        (&f::CONSUMER_PREFETCH, |c| c.prefetch_count as u64),
        (&f::CHANNEL_PREFETCH, |c| c.global_prefetch_count as u64),
    ];
    for (fam, value) in channel_gauges {
        w.family(fam);
        if per_object {
            for c in &channels {
                w.sample(&[("channel", &c.pid)], value(&c.info));
            }
        } else {
            w.sample(&[], channels.iter().map(|c| value(&c.info)).sum());
        }
    }
    // Channel counters: RabbitMQ labels them channel, vhost and exchange
    // (published) or queue (the others); Warren counts per channel, so
    // labels channel, vhost.
    type Stat = fn(&ChannelInfo) -> u64;
    let channel_counters: [(&super::text::Family, Stat); 11] = [
        (&f::CHANNEL_MESSAGES_PUBLISHED_TOTAL, |c| {
            c.message_stats.get(M::Publish)
        }),
        (&f::CHANNEL_MESSAGES_CONFIRMED_TOTAL, |c| {
            c.publish_stats.get(P::Confirm)
        }),
        (&f::CHANNEL_MESSAGES_UNROUTABLE_RETURNED_TOTAL, |c| {
            c.publish_stats.get(P::ReturnUnroutable)
        }),
        (&f::CHANNEL_MESSAGES_UNROUTABLE_DROPPED_TOTAL, |c| {
            c.publish_stats.get(P::DropUnroutable)
        }),
        (&f::CHANNEL_GET_ACK_TOTAL, |c| c.message_stats.get(M::Get)),
        (&f::CHANNEL_GET_TOTAL, |c| c.message_stats.get(M::GetNoAck)),
        (&f::CHANNEL_MESSAGES_DELIVERED_ACK_TOTAL, |c| {
            c.message_stats.get(M::Deliver)
        }),
        (&f::CHANNEL_MESSAGES_DELIVERED_TOTAL, |c| {
            c.message_stats.get(M::DeliverNoAck)
        }),
        (&f::CHANNEL_MESSAGES_REDELIVERED_TOTAL, |c| {
            c.message_stats.get(M::Redeliver)
        }),
        (&f::CHANNEL_MESSAGES_ACKED_TOTAL, |c| {
            c.message_stats.get(M::Ack)
        }),
        (&f::CHANNEL_GET_EMPTY_TOTAL, |c| {
            c.message_stats.get(M::GetEmpty)
        }),
    ];
    for (fam, value) in channel_counters {
        w.family(fam);
        if per_object {
            for c in &channels {
                w.sample(&[("channel", &c.pid), ("vhost", &c.vhost)], value(&c.info));
            }
        } else {
            w.sample(&[], channels.iter().map(|c| value(&c.info)).sum());
        }
    }

    // Connections: RabbitMQ 3.10 labels them `channel` too (with the
    // connection's pid); Warren's `<warren.CONNECTION.0>`.
    type ConnValue = fn(&ConnectionInfo) -> u64;
    let conn_families: [(&super::text::Family, ConnValue); 5] = [
        (&f::CONNECTION_INCOMING_BYTES_TOTAL, |c| {
            c.stats.get(C::RecvOct)
        }),
        (&f::CONNECTION_OUTGOING_BYTES_TOTAL, |c| {
            c.stats.get(C::SendOct)
        }),
        (&f::CONNECTION_INCOMING_PACKETS_TOTAL, |c| {
            c.stats.get(C::RecvCnt)
        }),
        (&f::CONNECTION_OUTGOING_PACKETS_TOTAL, |c| {
            c.stats.get(C::SendCnt)
        }),
        (&f::CONNECTION_CHANNELS, |c| c.channel_list().len() as u64),
    ];
    for (fam, value) in conn_families {
        w.family(fam);
        if per_object {
            for c in &conns {
                w.sample(&[("channel", &pid(c.id, 0))], value(c));
            }
        } else {
            w.sample(&[], conns.iter().map(|c| value(c)).sum());
        }
    }

    // Totals.
    let consumers: u64 = queues.iter().map(|q| q.depth.consumers as u64).sum();
    w.single(&f::CONNECTIONS, conns.len() as u64);
    w.single(&f::CHANNELS, channels.len() as u64);
    w.single(&f::CONSUMERS, consumers);
    w.single(&f::QUEUES, queues.len() as u64);
    w.family(&f::BUILD_INFO);
    let version = warren_core::export::RABBIT_VERSION;
    w.sample(
        &[
            ("rabbitmq_version", version),
            ("prometheus_plugin_version", version),
            ("prometheus_client_version", ""),
            ("erlang_version", ""),
            ("warren_version", env!("CARGO_PKG_VERSION")),
        ],
        1,
    );
    w.family(&f::IDENTITY_INFO);
    w.sample(
        &[
            ("rabbitmq_node", &probe.node),
            ("rabbitmq_cluster", &probe.node),
            ("rabbitmq_cluster_permanent_id", &probe.node),
        ],
        1,
    );

    // RabbitMQ 3.10's global counters (deleted queues' counts included).
    // Warren counts every protocol together; it reports them as amqp091's,
    // on classic queues.
    let totals = broker.global_totals();
    let (global, publishing) = (totals.messages, totals.publishing);
    let (received_confirm, dead) = (totals.received_confirm, totals.dead_lettered);
    let received = global.get(M::Publish);
    let unroutable = publishing.get(P::ReturnUnroutable) + publishing.get(P::DropUnroutable);
    w.family(&f::GLOBAL_CONSUMERS);
    w.sample(&[("protocol", "amqp091")], consumers);
    let pq = [
        ("protocol", "amqp091"),
        ("queue_type", "rabbit_classic_queue"),
    ];
    w.family(&f::GLOBAL_MESSAGES_ACKNOWLEDGED_TOTAL);
    w.sample(&pq, global.get(M::Ack));
    w.family(&f::GLOBAL_MESSAGES_CONFIRMED_TOTAL);
    w.sample(&[("protocol", "amqp091")], publishing.get(P::Confirm));
    // Classic queues' dead-lettering: "disabled" without a dead-letter
    // exchange, "at_most_once" with one (rows: DeadLetterStrategy).
    let dead_letter_families = [
        (
            &f::GLOBAL_MESSAGES_DEAD_LETTERED_EXPIRED_TOTAL,
            Reason::Expired,
        ),
        (
            &f::GLOBAL_MESSAGES_DEAD_LETTERED_MAXLEN_TOTAL,
            Reason::Maxlen,
        ),
        (
            &f::GLOBAL_MESSAGES_DEAD_LETTERED_REJECTED_TOTAL,
            Reason::Rejected,
        ),
    ];
    for (fam, reason) in dead_letter_families {
        w.family(fam);
        for (strategy, label) in [
            (DeadLetterStrategy::AtMostOnce, "at_most_once"),
            (DeadLetterStrategy::Disabled, "disabled"),
        ] {
            w.sample(
                &[
                    ("queue_type", "rabbit_classic_queue"),
                    ("dead_letter_strategy", label),
                ],
                dead[strategy as usize][reason as usize],
            );
        }
    }
    let global_counters: [(&super::text::Family, u64); 6] = [
        (
            &f::GLOBAL_MESSAGES_DELIVERED_CONSUME_AUTO_ACK_TOTAL,
            global.get(M::DeliverNoAck),
        ),
        (
            &f::GLOBAL_MESSAGES_DELIVERED_CONSUME_MANUAL_ACK_TOTAL,
            global.get(M::Deliver),
        ),
        (
            &f::GLOBAL_MESSAGES_DELIVERED_GET_AUTO_ACK_TOTAL,
            global.get(M::GetNoAck),
        ),
        (
            &f::GLOBAL_MESSAGES_DELIVERED_GET_MANUAL_ACK_TOTAL,
            global.get(M::Get),
        ),
        (&f::GLOBAL_MESSAGES_DELIVERED_TOTAL, global.deliver_get()),
        (&f::GLOBAL_MESSAGES_GET_EMPTY_TOTAL, global.get(M::GetEmpty)),
    ];
    for (fam, v) in global_counters {
        w.family(fam);
        w.sample(&pq, v);
    }
    let amqp = [("protocol", "amqp091")];
    w.family(&f::GLOBAL_MESSAGES_RECEIVED_CONFIRM_TOTAL);
    w.sample(&amqp, received_confirm);
    w.family(&f::GLOBAL_MESSAGES_RECEIVED_TOTAL);
    w.sample(&amqp, global.get(M::Publish));
    w.family(&f::GLOBAL_MESSAGES_REDELIVERED_TOTAL);
    w.sample(&pq, global.get(M::Redeliver));
    // Routed: received minus what reached no queue (returned or dropped).
    w.family(&f::GLOBAL_MESSAGES_ROUTED_TOTAL);
    w.sample(&amqp, received.saturating_sub(unroutable));
    w.family(&f::GLOBAL_MESSAGES_UNROUTABLE_DROPPED_TOTAL);
    w.sample(&amqp, publishing.get(P::DropUnroutable));
    w.family(&f::GLOBAL_MESSAGES_UNROUTABLE_RETURNED_TOTAL);
    w.sample(&amqp, publishing.get(P::ReturnUnroutable));
    // A publisher is a channel that has published, as RabbitMQ counts them.
    w.family(&f::GLOBAL_PUBLISHERS);
    let publishers = channels
        .iter()
        .filter(|c| c.info.message_stats.get(M::Publish) > 0)
        .count();
    w.sample(&amqp, publishers as u64);
    w.finish()
}

/// A connection's (channel 0) or channel's Erlang-style pid, as Warren's
/// events name them.
fn pid(connection: u64, channel: u16) -> String {
    format!("<warren.{}.{}>", connection, channel)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// The soft open-file limit, from /proc/self/limits.
fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
