"""RabbitMQ's published Grafana dashboards work on this broker: every
`rabbitmq_*` metric their queries use is served by `/metrics` (RabbitMQ's
default, aggregated endpoint, which the dashboards are written for), with the
labels their selectors and joins use, and shows the traffic a pika client
makes. Same file against RabbitMQ 3.10 and Warren.

The metric names and labels are in data/dashboard_metrics.json, extracted
from rabbitmq-server v3.10.8's deps/rabbitmq_prometheus/docker/grafana/
dashboards by tools/dashboard_metrics.py (names only, no dashboard text).
"""

import json
import os
import time
import uuid

import pika
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import PROMETHEUS_URL
from helpers import connect

DATA = os.path.join(os.path.dirname(__file__), "data", "dashboard_metrics.json")
DASHBOARDS = json.load(open(DATA))["dashboards"]

# Labels Prometheus adds when it scrapes (and Kubernetes' namespace), not
# the exporter's.
SCRAPE_LABELS = {"instance", "job", "namespace"}

# What the dashboards chart that no Warren node has, by design. The rest of
# those dashboards (node identity, memory) must still work.
NOT_APPLICABLE = {
    "rabbitmq_raft_": "quorum queues (Raft): Warren has classic queues only",
    "rabbitmq_global_stream_": "the stream protocol: Warren has no streams",
}
# Dashboards about one thing Warren does not have: the stream protocol's
# panels filter every global counter by protocol="stream".
NOT_APPLICABLE_DASHBOARDS = {"RabbitMQ-Stream.json": "the stream protocol"}


def applicable(metric):
    return not any(metric.startswith(p) for p in NOT_APPLICABLE)


def scrape():
    r = requests.get(PROMETHEUS_URL + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    fams = {}
    for f in text_string_to_metric_families(r.text):
        for s in f.samples:
            fams.setdefault(s.name, []).append(s)
    return fams


CASES = [(d, m, labels) for d, v in sorted(DASHBOARDS.items())
         if d not in NOT_APPLICABLE_DASHBOARDS
         for m, labels in sorted(v["metrics"].items()) if applicable(m)]


def test_the_vendored_list_covers_the_overview_dashboard():
    overview = DASHBOARDS["RabbitMQ-Overview.json"]["metrics"]
    assert len(overview) >= 35
    assert "rabbitmq_global_messages_confirmed_total" in overview


@pytest.mark.parametrize("dashboard,metric,labels", CASES,
                         ids=[f"{d}:{m}" for d, m, _ in CASES])
def test_dashboard_metric_is_served_with_its_labels(dashboard, metric, labels):
    fams = scrape()
    assert metric in fams, f"{dashboard} queries {metric}"
    needed = set(labels) - SCRAPE_LABELS
    for label in needed:
        assert any(label in s.labels for s in fams[metric]), (metric, label)


@pytest.mark.parametrize("dashboard", sorted(DASHBOARDS))
def test_dashboard_joins_find_their_labels_on_identity_info(dashboard):
    """Every panel joins `* on(instance) group_left(rabbitmq_cluster,
    rabbitmq_node) rabbitmq_identity_info`: one sample carrying both."""
    joins = DASHBOARDS[dashboard]["joins"]
    ident = scrape()["rabbitmq_identity_info"]
    assert len(ident) == 1
    for label in joins.get("group_left", []):
        assert ident[0].labels.get(label), label


def total(fams, name):
    return sum(s.value for s in fams.get(name, []))


def test_overview_panels_show_client_traffic():
    """The counters behind the Overview dashboard's rate panels move with a
    pika client's confirms, returns, drops, deliveries and churn."""
    before = scrape()
    q = "dash-" + uuid.uuid4().hex[:10]
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q)
        for _ in range(5):
            ch.basic_publish("", q, b"x")
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish("amq.direct", "nowhere-" + q, b"x", mandatory=True)
        ch.basic_publish("amq.direct", "nowhere-" + q, b"x")
        got = ch.basic_get(q, auto_ack=False)
        ch.basic_ack(got[0].delivery_tag)
        ch.basic_get(q, auto_ack=True)
        ch.queue_delete(q)
    finally:
        conn.close()
    grew = {
        "rabbitmq_global_messages_received_total": 7,
        "rabbitmq_global_messages_received_confirm_total": 7,
        "rabbitmq_global_messages_confirmed_total": 7,
        "rabbitmq_global_messages_routed_total": 5,
        "rabbitmq_global_messages_unroutable_returned_total": 1,
        "rabbitmq_global_messages_unroutable_dropped_total": 1,
        "rabbitmq_global_messages_delivered_get_manual_ack_total": 1,
        "rabbitmq_global_messages_delivered_get_auto_ack_total": 1,
        "rabbitmq_global_messages_acknowledged_total": 1,
        "rabbitmq_connections_opened_total": 1,
        "rabbitmq_connections_closed_total": 1,
        "rabbitmq_channels_opened_total": 1,
        "rabbitmq_channels_closed_total": 1,
        "rabbitmq_queues_declared_total": 1,
        "rabbitmq_queues_created_total": 1,
        "rabbitmq_queues_deleted_total": 1,
    }
    deadline = time.monotonic() + 15
    while True:
        after = scrape()
        short = {m: total(after, m) - total(before, m) for m, n in grew.items()
                 if total(after, m) - total(before, m) < n}
        if not short or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not short, short
