"""Classic queues across nodes: a classic queue lives on the node whose
client declared it (its home) and is reachable from every node. Publishes
with confirms on n2 land in n1's queue; consumers on n3 get its messages and
their acks, rejects and requeues go back to n1; basic.get too. When the
home node dies, remote consumers get basic.cancel, declares get RabbitMQ's
404 and confirm-mode publishes are nacked; once it is back, what it had on
disk is consumable from the other nodes again.

The tests run in file order against one cluster.
"""

import os
import time

import pika
import pika.exceptions
import pytest

from cluster_harness import (WARREN_BIN, Cluster, declare_error, drain, has_queue,
                             hold_deliveries, publish_confirmed, pump, started_cluster,
                             wait_for)

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")

PERSISTENT = pika.BasicProperties(delivery_mode=2)


@pytest.fixture(scope="module")
def cluster():
    yield from started_cluster(log_tail=3000)


def declared_everywhere(cluster, queue, timeout=5.0):
    for n in cluster.nodes:
        wait_for(lambda: has_queue(n, queue), timeout=timeout, what=f"{queue} on {n.name}")


def home_depth(node, queue):
    return node.api(f"/api/queues/%2F/{queue}")["messages"]


def test_publish_on_n2_consume_on_n3(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    conn = n1.connect()
    conn.channel().queue_declare("cr.q", durable=True)
    conn.close()
    declared_everywhere(cluster, "cr.q")

    conn = n2.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    for i in range(200):
        # Raises on a nack: every publish is confirmed by n1.
        ch.basic_publish("", "cr.q", b"m%d" % i, PERSISTENT)
    conn.close()
    # The messages are in n1's queue, not in n2's or n3's instance.
    assert home_depth(n1, "cr.q") == 200

    conn = n3.connect()
    ch = conn.channel()
    ch.basic_qos(prefetch_count=20)
    got = []

    def on_msg(c, method, props, body):
        got.append(body)
        c.basic_ack(method.delivery_tag)
        if len(got) == 200:
            c.stop_consuming()

    ch.basic_consume("cr.q", on_msg)
    conn.call_later(20, ch.stop_consuming)
    ch.start_consuming()
    conn.close()
    assert got == [b"m%d" % i for i in range(200)]
    wait_for(lambda: home_depth(n1, "cr.q") == 0, what="acks to reach n1")


def test_get_reject_requeue_from_another_node(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    conn = n2.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "cr.q", b"a", PERSISTENT)
    ch.basic_publish("", "cr.q", b"b", PERSISTENT)
    conn.close()

    conn = n3.connect()
    ch = conn.channel()
    m, _, body = ch.basic_get("cr.q")
    assert body == b"a" and not m.redelivered and m.message_count == 1
    ch.basic_reject(m.delivery_tag, requeue=True)
    m, _, body = ch.basic_get("cr.q")
    assert body == b"a" and m.redelivered
    ch.basic_nack(m.delivery_tag, requeue=False)
    m, _, body = ch.basic_get("cr.q", auto_ack=True)
    assert body == b"b"
    m, _, body = ch.basic_get("cr.q")
    assert m is None
    conn.close()
    wait_for(lambda: home_depth(n1, "cr.q") == 0, what="n1 empty")

    # A consumer's unacked deliveries go back when its channel closes.
    conn = n2.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "cr.q", b"c", PERSISTENT)
    conn.close()
    conn = n3.connect()
    ch = conn.channel()
    seen = []
    ch.basic_consume("cr.q", lambda c, m, p, b: (seen.append(b), c.stop_consuming()))
    conn.call_later(10, ch.stop_consuming)
    ch.start_consuming()
    assert seen == [b"c"]
    conn.close()  # not acked: requeued on n1
    # (n3 sends the requeue to n1 after close-ok: n2's get may come first.)
    conn = n2.connect()
    ch = conn.channel()
    deadline = time.time() + 5
    while True:
        m, _, body = ch.basic_get("cr.q", auto_ack=True)
        if m is not None or time.time() > deadline:
            break
        time.sleep(0.05)
    assert body == b"c" and m.redelivered
    conn.close()


def test_home_down_cancels_consumers_and_refuses(cluster):
    n1, n2 = cluster.node("n1"), cluster.node("n2")
    publish_confirmed(n2, "cr.q", (b"keep%d" % i for i in range(10)))
    conn, held, cancelled = hold_deliveries(n2, "cr.q", prefetch=3)
    assert pump(conn, lambda: len(held) == 3)

    n1.kill()
    pump(conn, lambda: cancelled)
    assert cancelled, "no basic.cancel after the home node died"
    conn.close()

    c2 = n2.connect()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c2.channel().queue_declare("cr.q", durable=True)
    assert e.value.reply_code == 404
    assert e.value.reply_text == ("NOT_FOUND - home node 'n1' of durable queue 'cr.q' "
                                  "in vhost '/' is down or inaccessible")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c2.channel().basic_get("cr.q")
    assert e.value.reply_code == 404 and "is down or inaccessible" in e.value.reply_text
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c2.channel().basic_consume("cr.q", lambda *a: None)
    assert e.value.reply_code == 404 and "is down or inaccessible" in e.value.reply_text
    ch = c2.channel()
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", "cr.q", b"lost", PERSISTENT)
    c2.close()

    cluster.restart(n1)
    # Once n2 sees n1 again, the 10 confirmed messages (3 of them were
    # unacked when n1 died) are consumable from n2.
    wait_for(lambda: declare_error(n2, "cr.q") is None, timeout=15,
             what="n1 reachable from n2 again")
    bodies = drain(n2, "cr.q")
    assert sorted(bodies) == sorted(b"keep%d" % i for i in range(10))


def test_origin_death_requeues_its_unacked_on_the_home(cluster):
    n1, n3 = cluster.node("n1"), cluster.node("n3")
    publish_confirmed(n1, "cr.q", (b"r%d" % i for i in range(5)))
    conn, held, _ = hold_deliveries(n3, "cr.q", prefetch=5)
    pump(conn, lambda: len(held) == 5)
    assert sorted(held) == [b"r%d" % i for i in range(5)]

    def counts():
        q = n1.api("/api/queues/%2F/cr.q")
        return q["messages_ready"], q["messages_unacknowledged"]
    wait_for(lambda: counts() == (0, 5), what="n1 to show 5 unacked")
    n3.kill()
    # n1 notices the origin is gone (link loss) and requeues what it held.
    wait_for(lambda: counts() == (5, 0), timeout=10, what="requeue on n1")
    cluster.restart(n3)
    conn = n3.connect()
    ch = conn.channel()
    got = []
    wait_for(lambda: n3.alive(), what="n3 up")
    deadline = time.time() + 10
    while len(got) < 5 and time.time() < deadline:
        m, _, body = ch.basic_get("cr.q", auto_ack=True)
        if m is None:
            time.sleep(0.1)
            continue
        assert m.redelivered
        got.append(body)
    conn.close()
    assert sorted(got) == [b"r%d" % i for i in range(5)]
