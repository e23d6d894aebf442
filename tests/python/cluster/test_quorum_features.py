"""Quorum queue features as RabbitMQ 3.10 has them, across a 3-node cluster
(issue 17): message TTL decided by the group (the leader's clock, the
expiry fixed at publish) and kept over a leader failover, the
`delivery-limit` and `message-ttl` policies set on one node reaching the
group's leader, single-active-consumer handing over to a consumer on
another node when the active one's node dies, consumer priorities across
nodes. The scenario versions of these (one node, RabbitMQ too) are in
tests/python/features/test_quorum_queues.py.
"""

import os
import time

import pika
import pytest

from cluster_harness import started_cluster, WARREN_BIN

from test_quorum import (QQ, Taker, get_one, queue_info, text, wait_leader_of)

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")


@pytest.fixture(scope="module")
def cluster():
    yield from started_cluster(log_tail=2000)


def declare(node, name, **args):
    conn = node.connect()
    ch = conn.channel()
    a = dict(QQ)
    a.update(args)
    ch.queue_declare(name, durable=True, arguments=a)
    conn.close()
    return wait_leader_of(node, name)


def dead_letter_target(node, dlx, dlq):
    conn = node.connect()
    ch = conn.channel()
    ch.exchange_declare(dlx, "fanout", durable=True)
    ch.queue_declare(dlq, durable=True)
    ch.queue_bind(dlq, dlx)
    conn.close()


def publish(node, queue, bodies, props=None):
    conn = node.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    for b in bodies:
        ch.basic_publish("", queue, b, props or pika.BasicProperties(delivery_mode=2))
    conn.close()


def others(cluster, name):
    return [n for n in cluster.nodes if n.name != name]


def test_ttl_expires_on_the_leader_and_dead_letters(cluster):
    n1 = cluster.node("n1")
    dead_letter_target(n1, "qf.dlx", "qf.dlq")
    leader = declare(n1, "qf.ttl", **{"x-message-ttl": 300,
                                      "x-dead-letter-exchange": "qf.dlx"})
    # Published on a node that does not lead: the expiry goes with it.
    other = others(cluster, leader)[0]
    publish(other, "qf.ttl", [b"t1", b"t2"])
    publish(other, "qf.ttl", [b"t3"], pika.BasicProperties(expiration="100"))
    for _ in range(3):
        props, body = get_one(other, "qf.dlq")
        assert body in (b"t1", b"t2", b"t3")
        assert text(props.headers["x-death"][0]["reason"]) == "expired"
        assert text(props.headers["x-first-death-queue"]) == "qf.ttl"
    for n in cluster.nodes:
        queue_info(n, "qf.ttl", want=lambda q: q["messages"] == 0)


def test_ttl_survives_a_leader_failover(cluster):
    n1 = cluster.node("n1")
    leader = declare(n1, "qf.ttlf", **{"x-message-ttl": 4000})
    other = others(cluster, leader)[0]
    publish(other, "qf.ttlf", [b"a", b"b"])
    queue_info(other, "qf.ttlf", want=lambda q: q["messages"] == 2)
    cluster.node(leader).kill()
    new = wait_leader_of(other, "qf.ttlf", timeout=30, not_=leader)
    assert new != leader
    # The new leader arms the expiry timer of the head it finds.
    queue_info(other, "qf.ttlf", timeout=20, want=lambda q: q["messages"] == 0)
    conn = other.connect()
    assert conn.channel().basic_get("qf.ttlf", auto_ack=True)[0] is None
    conn.close()
    cluster.restart(cluster.node(leader))
    queue_info(cluster.node(leader), "qf.ttlf", timeout=30,
               want=lambda q: q["messages"] == 0 and len(q.get("online", [])) == 3)


def test_policies_reach_the_group(cluster):
    """delivery-limit and message-ttl set by policy through one node's API;
    the group's leader (another node, maybe) applies them."""
    n3 = cluster.node("n3")
    dead_letter_target(n3, "qf.dlx", "qf.dlq2")
    conn = n3.connect()
    conn.channel().queue_bind("qf.dlq2", "qf.dlx")
    conn.close()
    leader = declare(n3, "qf.pol", **{"x-dead-letter-exchange": "qf.dlx"})
    assert n3.put("/api/policies/%2F/qf-pol", {
        "pattern": "^qf\\.pol$", "apply-to": "queues",
        "definition": {"delivery-limit": 1, "message-ttl": 60000}}) in (201, 204)
    for n in cluster.nodes:
        queue_info(n, "qf.pol", want=lambda q: q.get("policy") == "qf-pol")
    time.sleep(1.0)  # the leader proposes the config
    consumer_node = others(cluster, leader)[-1]
    publish(consumer_node, "qf.pol", [b"poison"])
    t = Taker(consumer_node, "qf.pol", prefetch=1)
    deadline = time.time() + 20
    seen = 0
    while seen < 2 and time.time() < deadline:
        t.conn.process_data_events(time_limit=0.1)
        while seen < len(t.got):
            t.ch.basic_nack(t.got[seen][0], requeue=True)
            seen += 1
    t.settle_quietly()
    props, body = get_one(n3, "qf.dlq2")
    assert body == b"poison"
    assert text(props.headers["x-death"][0]["reason"]) == "delivery_limit"
    assert [r for _, _, r in t.got] == [False, True]
    t.close()
    # The policy's TTL applies to what is published from now on.
    assert n3.put("/api/policies/%2F/qf-pol", {
        "pattern": "^qf\\.pol$", "apply-to": "queues",
        "definition": {"message-ttl": 200}}) in (201, 204)
    for n in cluster.nodes:
        queue_info(n, "qf.pol", want=lambda q: q.get("effective_policy_definition", {})
                   .get("message-ttl") == 200 or q.get("policy") == "qf-pol")
    time.sleep(0.5)
    publish(consumer_node, "qf.pol", [b"short-lived"])
    _, body = get_one(n3, "qf.dlq2")
    assert body == b"short-lived"
    assert n3.delete("/api/policies/%2F/qf-pol") in (200, 204)


def test_single_active_consumer_moves_when_its_node_dies(cluster):
    n1 = cluster.node("n1")
    leader = declare(n1, "qf.sac", **{"x-single-active-consumer": True})
    victim, keeper = others(cluster, leader)
    a = Taker(victim, "qf.sac", prefetch=10)
    b = Taker(keeper, "qf.sac", prefetch=10)
    publish(cluster.node(leader), "qf.sac", [b"s%d" % i for i in range(5)])
    assert len(a.wait(5)) == 5
    b.settle_quietly(0.5)
    assert b.got == []

    def status(node):
        return [(c["active"], c["activity_status"]) for c in node.api("/api/consumers")
                if c["queue"]["name"] == "qf.sac"]

    # Each node lists its own consumers, as the group's state says.
    assert status(victim) == [(True, "single_active")]
    assert status(keeper) == [(False, "waiting")]
    victim.kill()
    # After the leader finds the node down (6 s) the next consumer is
    # active and gets the unacked messages again, flagged.
    got = b.wait(5, timeout=40)
    assert [x for _, x, _ in got] == [b"s%d" % i for i in range(5)]
    assert all(r for _, _, r in got)
    publish(cluster.node(leader), "qf.sac", [b"later"])
    assert b.wait(6)[5][1] == b"later"
    assert status(keeper) == [(True, "single_active")]
    b.close()
    a.close()
    cluster.restart(victim)
    queue_info(victim, "qf.sac", timeout=30,
               want=lambda q: len(q.get("online", [])) == 3)


def test_consumer_priorities_across_nodes(cluster):
    n1 = cluster.node("n1")
    leader = declare(n1, "qf.prio")
    low_node, high_node = others(cluster, leader)
    def consumer(node, priority):
        conn = node.connect()
        ch = conn.channel()
        ch.basic_qos(prefetch_count=3)
        got = []
        ch.basic_consume("qf.prio", lambda c, m, p, b: got.append(b),
                         arguments={"x-priority": priority})
        return conn, got

    low_conn, low = consumer(low_node, 1)
    high_conn, high = consumer(high_node, 9)
    publish(cluster.node(leader), "qf.prio", [b"p%d" % i for i in range(5)])
    deadline = time.time() + 20
    while (len(high) < 3 or len(low) < 2) and time.time() < deadline:
        for c in (low_conn, high_conn):
            c.process_data_events(time_limit=0.05)
    # The high-priority consumer (another node) gets the first three.
    assert high == [b"p0", b"p1", b"p2"]
    assert low == [b"p3", b"p4"]
    high_conn.close()
    low_conn.close()
