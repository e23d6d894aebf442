"""`/metrics` and `/metrics/per-object` as RabbitMQ's rabbitmq_prometheus plugin
serves them: parsed with prometheus_client's text parser, the same assertions
against RabbitMQ 3.10 and Warren. RabbitMQ refreshes its figures every few
seconds (collect_statistics_interval), so figures are polled."""

import time
import uuid

import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import PROMETHEUS_URL
from helpers import connect

# Families both brokers serve, with their types (prometheus_client names a
# counter family without `_total`, an untyped one "unknown").
NODE = {
    "rabbitmq_alarms_free_disk_space_watermark": "unknown",
    "rabbitmq_alarms_memory_used_watermark": "unknown",
    "rabbitmq_connections_opened": "counter",
    "rabbitmq_connections_closed": "counter",
    "rabbitmq_channels_opened": "counter",
    "rabbitmq_channels_closed": "counter",
    "rabbitmq_queues_declared": "counter",
    "rabbitmq_queues_created": "counter",
    "rabbitmq_queues_deleted": "counter",
    "rabbitmq_process_open_fds": "gauge",
    "rabbitmq_process_max_fds": "gauge",
    "rabbitmq_process_open_tcp_sockets": "gauge",
    "rabbitmq_process_max_tcp_sockets": "gauge",
    "rabbitmq_process_resident_memory_bytes": "gauge",
    "rabbitmq_disk_space_available_bytes": "gauge",
    "rabbitmq_disk_space_available_limit_bytes": "gauge",
    "rabbitmq_resident_memory_limit_bytes": "gauge",
    "rabbitmq_connections": "gauge",
    "rabbitmq_channels": "gauge",
    "rabbitmq_consumers": "gauge",
    "rabbitmq_queues": "gauge",
    "rabbitmq_build_info": "unknown",
    "rabbitmq_identity_info": "unknown",
    "rabbitmq_global_consumers": "gauge",
    "rabbitmq_global_messages_received": "counter",
    "rabbitmq_global_messages_delivered": "counter",
    "rabbitmq_global_messages_acknowledged": "counter",
    "rabbitmq_global_messages_redelivered": "counter",
    "rabbitmq_global_messages_delivered_consume_auto_ack": "counter",
    "rabbitmq_global_messages_delivered_consume_manual_ack": "counter",
    "rabbitmq_global_messages_delivered_get_auto_ack": "counter",
    "rabbitmq_global_messages_delivered_get_manual_ack": "counter",
    "rabbitmq_global_messages_get_empty": "counter",
    "rabbitmq_global_messages_confirmed": "counter",
    "rabbitmq_global_messages_received_confirm": "counter",
    "rabbitmq_global_messages_routed": "counter",
    "rabbitmq_global_messages_unroutable_dropped": "counter",
    "rabbitmq_global_messages_unroutable_returned": "counter",
    "rabbitmq_global_messages_dead_lettered_expired": "counter",
    "rabbitmq_global_messages_dead_lettered_maxlen": "counter",
    "rabbitmq_global_messages_dead_lettered_rejected": "counter",
    "rabbitmq_global_publishers": "gauge",
}
QUEUE = {
    "rabbitmq_queue_messages_ready": "gauge",
    "rabbitmq_queue_messages_unacked": "gauge",
    "rabbitmq_queue_messages": "gauge",
    "rabbitmq_queue_consumers": "gauge",
    "rabbitmq_queue_messages_bytes": "gauge",
    "rabbitmq_queue_messages_ready_bytes": "gauge",
    "rabbitmq_queue_messages_unacked_bytes": "gauge",
}
CHANNEL = {
    "rabbitmq_channel_consumers": "gauge",
    "rabbitmq_channel_messages_unacked": "gauge",
    "rabbitmq_channel_messages_unconfirmed": "gauge",
    "rabbitmq_consumer_prefetch": "gauge",
    "rabbitmq_channel_prefetch": "gauge",
    "rabbitmq_channel_messages_published": "counter",
    "rabbitmq_channel_messages_confirmed": "counter",
    "rabbitmq_channel_messages_unroutable_returned": "counter",
    "rabbitmq_channel_messages_unroutable_dropped": "counter",
    "rabbitmq_channel_messages_delivered": "counter",
    "rabbitmq_channel_messages_delivered_ack": "counter",
    "rabbitmq_channel_messages_acked": "counter",
    "rabbitmq_channel_messages_redelivered": "counter",
    "rabbitmq_channel_get": "counter",
    "rabbitmq_channel_get_ack": "counter",
    "rabbitmq_channel_get_empty": "counter",
}
CONNECTION = {
    "rabbitmq_connection_incoming_bytes": "counter",
    "rabbitmq_connection_outgoing_bytes": "counter",
    "rabbitmq_connection_incoming_packets": "counter",
    "rabbitmq_connection_outgoing_packets": "counter",
    "rabbitmq_connection_channels": "gauge",
}


def scrape(path="/metrics", headers=None):
    r = requests.get(PROMETHEUS_URL + path, headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    return r, {f.name: f for f in text_string_to_metric_families(r.text)}


def value(families, name, **labels):
    """The value of `name`'s one sample whose labels include `labels`."""
    fam = families[name]
    hits = [s.value for s in fam.samples
            if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, (name, labels, fam.samples[:5])
    return hits[0]


def poll(check, timeout=20.0):
    """Scrape /metrics/per-object until `check(families)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        _, fams = scrape("/metrics/per-object")
        try:
            return check(fams)
        except (AssertionError, KeyError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def test_content_type_is_text_0_0_4():
    r, _ = scrape()
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "version=0.0.4" in r.headers["Content-Type"]


def test_aggregated_families_types_and_no_object_labels():
    _, fams = scrape()
    for group in (NODE, QUEUE, CHANNEL, CONNECTION):
        for name, kind in group.items():
            assert name in fams, name
            assert fams[name].type == kind, (name, fams[name].type)
    # Aggregated (return_per_object_metrics = false): one unlabelled sample.
    for name in list(QUEUE) + list(CHANNEL) + list(CONNECTION):
        assert [s.labels for s in fams[name].samples] == [{}], name
    ident = fams["rabbitmq_identity_info"].samples[0].labels
    assert set(ident) == {"rabbitmq_node", "rabbitmq_cluster", "rabbitmq_cluster_permanent_id"}
    assert "rabbitmq_version" in fams["rabbitmq_build_info"].samples[0].labels
    received = fams["rabbitmq_global_messages_received"].samples
    assert [s.labels for s in received] == [{"protocol": "amqp091"}]
    delivered = fams["rabbitmq_global_messages_delivered"].samples
    assert {"protocol": "amqp091", "queue_type": "rabbit_classic_queue"} in [s.labels for s in delivered]


def test_published_messages_show_in_queue_metrics():
    n = 7
    q = "prom-" + uuid.uuid4().hex[:10]
    conn = connect()
    try:
        ch = conn.channel()
        ch.queue_declare(q)
        for i in range(n):
            ch.basic_publish("", q, b"x" * 10)
        ch.basic_get(q, auto_ack=False)  # one unacknowledged

        def check(fams):
            assert value(fams, "rabbitmq_queue_messages_ready", vhost="/", queue=q) == n - 1
            assert value(fams, "rabbitmq_queue_messages_unacked", vhost="/", queue=q) == 1
            assert value(fams, "rabbitmq_queue_messages", vhost="/", queue=q) == n
            assert value(fams, "rabbitmq_queue_consumers", vhost="/", queue=q) == 0
            for s in fams["rabbitmq_queue_messages"].samples:
                assert set(s.labels) == {"vhost", "queue"}
            return fams

        poll(check)
        _, agg = scrape()
        assert agg["rabbitmq_queue_messages"].samples[0].value >= n
        assert agg["rabbitmq_queues"].samples[0].value >= 1
        ch.queue_delete(q)
    finally:
        conn.close()


def test_connection_gauge_counts_a_pika_connection():
    conn = connect()
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=5)
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_consume(q, lambda *a: None)

        def check(fams):
            assert value(fams, "rabbitmq_connections") >= 1
            assert value(fams, "rabbitmq_channels") >= 1
            # Per connection: RabbitMQ 3.10 labels connection series `channel`.
            conns = fams["rabbitmq_connection_incoming_bytes"].samples
            assert conns and all(set(s.labels) == {"channel"} for s in conns)
            assert any(s.value > 0 for s in conns)
            gauges = fams["rabbitmq_consumer_prefetch"].samples
            assert all(set(s.labels) == {"channel"} for s in gauges)
            assert any(s.value == 5 for s in gauges)
            assert value(fams, "rabbitmq_queue_consumers", vhost="/", queue=q) == 1

        poll(check)
        opened = scrape()[1]["rabbitmq_connections_opened"].samples[0].value
        assert opened >= 1
    finally:
        conn.close()


def test_per_object_has_the_node_families():
    _, fams = scrape("/metrics/per-object")
    for name in ("rabbitmq_connections", "rabbitmq_queues", "rabbitmq_identity_info",
                 "rabbitmq_queues_declared", "rabbitmq_connections_opened"):
        assert name in fams, name


def dead_lettered(fams):
    """Classic queues' dead-letter counters by (reason, strategy)."""
    out = {}
    for name, fam in fams.items():
        if name.startswith("rabbitmq_global_messages_dead_lettered_"):
            reason = name[len("rabbitmq_global_messages_dead_lettered_"):]
            for s in fam.samples:
                if s.labels.get("queue_type") == "rabbit_classic_queue":
                    out[(reason, s.labels["dead_letter_strategy"])] = s.value
    return out


def test_dead_lettering_is_counted_by_reason_and_strategy():
    """Expired without a dead-letter exchange counts as "disabled"; dropped
    for length and rejected with one as "at_most_once"."""
    before = dead_lettered(scrape()[1])
    q1, q2 = "prom-dl1-" + uuid.uuid4().hex[:8], "prom-dl2-" + uuid.uuid4().hex[:8]
    conn = connect()
    try:
        ch = conn.channel()
        ch.queue_declare(q1, arguments={"x-message-ttl": 0})
        ch.queue_declare(q2, arguments={"x-max-length": 1, "x-dead-letter-exchange": "amq.fanout"})
        ch.basic_publish("", q1, b"x")
        ch.basic_publish("", q2, b"a")
        ch.basic_publish("", q2, b"b")  # drops "a" (maxlen)
        got = ch.basic_get(q2)
        ch.basic_reject(got[0].delivery_tag, requeue=False)
        ch.basic_get(q1)  # the expired one goes, if it had not already
        expected = {("expired", "disabled"): 1, ("maxlen", "at_most_once"): 1,
                    ("rejected", "at_most_once"): 1}
        deadline = time.monotonic() + 10
        while True:
            after = dead_lettered(scrape()[1])
            moved = {k: after[k] - before.get(k, 0) for k in after
                     if after[k] != before.get(k, 0)}
            # At least: other tests' queues may expire messages meanwhile.
            if all(moved.get(k, 0) >= n for k, n in expected.items()) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert all(moved.get(k, 0) >= n for k, n in expected.items()), moved
        ch.queue_delete(q1)
        ch.queue_delete(q2)
    finally:
        conn.close()
