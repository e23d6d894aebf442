"""Idle quorum queues park: their Raft members stop on every node (only a
small descriptor stays) and wake on the first operation, on any node, also
after the node of the parked leader died. Confirmed messages stay intact.

The nodes park a group after 1.5 s without activity
(WARREN_QQ_PARK_AFTER_MS; the default is 30 s). The tests run in file order
against one cluster.
"""

import os
import time

import pika
import pytest

from cluster_harness import WARREN_BIN, Cluster, wait_for

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")

QQ = {"x-queue-type": "quorum"}
PARK_MS = 1500


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(["n1", "n2", "n3"])
    c.env = {"WARREN_QQ_PARK_AFTER_MS": str(PARK_MS)}
    c.start()
    try:
        c.wait_leader(c.node("n1"))
        yield c
    finally:
        for n in c.nodes:
            if n.proc is not None:
                print(f"--- {n.name} log\n{n.log()[-2000:]}")
        c.cleanup()


def info(node, name):
    return node.api(f"/api/queues/%2F/{name}")


def wait_parked(nodes, name, messages, timeout=30.0):
    """Every node in `nodes` reports its member parked and the depth."""
    def all_parked():
        for n in nodes:
            q = info(n, name)
            assert q.get("parked") is True, (n.name, q)
            assert q.get("messages") == messages, (n.name, q)
        return True
    wait_for(all_parked, timeout=timeout, what=f"{name} parked on every node")
    return info(nodes[0], name)


def publish(node, name, bodies):
    """Publish with confirms; returns the seconds until the last confirm."""
    conn = node.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    t0 = time.monotonic()
    for b in bodies:
        ch.basic_publish("", name, b, pika.BasicProperties(delivery_mode=2))
    took = time.monotonic() - t0
    conn.close()
    return took


def drain(node, name, timeout=15.0):
    conn = node.connect()
    ch = conn.channel()
    got = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        m, _props, body = ch.basic_get(name, auto_ack=False)
        if m is None:
            if got:
                break
            time.sleep(0.2)
            continue
        got.append(body)
        ch.basic_ack(m.delivery_tag)
    conn.close()
    return got


def test_an_idle_queue_parks_on_every_node(cluster):
    n1 = cluster.node("n1")
    n1.connect().channel().queue_declare("qq.park", durable=True, arguments=QQ)
    publish(n1, "qq.park", [b"m0", b"m1", b"m2"])
    q = wait_parked(cluster.nodes, "qq.park", 3)
    # A parked queue still lists its leader and members.
    assert q["leader"] in ("n1", "n2", "n3"), q
    assert sorted(q["members"]) == ["n1", "n2", "n3"], q


def test_a_publish_on_a_non_leader_wakes_it(cluster):
    leader = info(cluster.node("n1"), "qq.park")["leader"]
    other = next(n for n in cluster.nodes if n.name != leader)
    took = publish(other, "qq.park", [b"m3"])
    print(f"wake-up publish on {other.name} (leader {leader}) confirmed in {took:.3f} s")
    assert took < 5.0, took
    # It parks again once idle.
    wait_parked(cluster.nodes, "qq.park", 4)


def test_a_consumer_keeps_it_awake(cluster):
    n2 = cluster.node("n2")
    conn = n2.connect()
    ch = conn.channel()
    got = []
    ch.basic_consume("qq.park", lambda c, m, p, b: got.append(b), auto_ack=False)
    deadline = time.time() + 10
    while len(got) < 4 and time.time() < deadline:
        conn.process_data_events(time_limit=0.2)
    assert got == [b"m0", b"m1", b"m2", b"m3"], got
    # Held unacked by a live consumer for twice the parking delay: awake.
    conn.process_data_events(time_limit=2 * PARK_MS / 1000)
    assert info(n2, "qq.park").get("parked") is False
    conn.close()  # unacked: back to the queue
    wait_parked(cluster.nodes, "qq.park", 4)


def test_publish_after_the_parked_leaders_node_died(cluster):
    n1 = cluster.node("n1")
    q = wait_parked(cluster.nodes, "qq.park", 4)
    leader = cluster.node(q["leader"])
    leader.kill()
    survivors = [n for n in cluster.nodes if n is not leader]
    t0 = time.monotonic()
    took = publish(survivors[0], "qq.park", [b"m4"])
    print(f"publish after kill -9 of the parked leader {leader.name}: "
          f"confirmed in {took:.3f} s")
    assert time.monotonic() - t0 < 10.0, took
    got = drain(survivors[1], "qq.park")
    assert got == [b"m0", b"m1", b"m2", b"m3", b"m4"], got
    # The dead node comes back, parked queues and all.
    cluster.restart(leader)
    publish(survivors[1], "qq.park", [b"m5"])
    wait_parked(cluster.nodes, "qq.park", 1, timeout=40)
    assert drain(leader, "qq.park") == [b"m5"]
    assert n1.alive()


def test_delete_a_parked_queue(cluster):
    n1 = cluster.node("n1")
    ch = n1.connect().channel()
    ch.queue_declare("qq.park2", durable=True, arguments=QQ)
    wait_parked(cluster.nodes, "qq.park2", 0)
    ch.queue_delete("qq.park2")
    for n in cluster.nodes:
        wait_for(lambda n=n: n.metadata("qq.park2")["queues"] == [],
                 what=f"qq.park2 gone on {n.name}")
