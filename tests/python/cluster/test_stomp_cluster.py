"""STOMP on a cluster node: the shared queues a SEND or SUBSCRIBE declares
go through the metadata Raft group, so every node has them. A STOMP client
on n1 makes `/queue/q` (a classic queue whose home is n1); AMQP clients on
n2 find it and consume from it. A node that cannot reach a majority refuses
the declare with an ERROR frame.

The tests run in file order against one cluster.
"""

import os
import threading
import time

import pika
import pytest

from cluster_harness import started_cluster, wait_for, free_port, WARREN_BIN

stomp = pytest.importorskip("stomp")

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")


@pytest.fixture(scope="module")
def cluster():
    yield from started_cluster(log_tail=3000)


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.receipts, self.errors = [], []
        self.event = threading.Event()

    def on_receipt(self, frame):
        self.receipts.append(frame.headers.get("receipt-id"))
        self.event.set()

    def on_error(self, frame):
        self.errors.append(frame)
        self.event.set()


def stomp_on(cluster, name):
    """A STOMP connection to node `name`, whose STOMP listener is switched on."""
    n = cluster.node(name)
    if not n.stomp_port:
        n.stomp_port = free_port()
        cluster.restart(n)
    cluster.wait_leader(n)
    conn = stomp.Connection([("127.0.0.1", n.stomp_port)], heartbeats=(0, 0))
    listener = Listener()
    conn.set_listener("", listener)
    conn.connect("guest", "guest", wait=True)
    return conn, listener


def queue_names(node):
    return {q["name"] for q in node.api("/api/queues")}


def test_stomp_queue_is_visible_and_consumable_on_every_node(cluster):
    conn, l = stomp_on(cluster, "n1")
    conn.send("/queue/q", b"hello", headers={"persistent": "true", "receipt": "r1"})
    assert l.event.wait(20), "no RECEIPT"
    assert l.receipts == ["r1"] and not l.errors
    conn.disconnect()
    for name in ("n2", "n3"):
        wait_for(lambda: "q" in queue_names(cluster.node(name)), timeout=10,
                 what=f"queue q on {name}")
    c = cluster.node("n2").connect()
    ch = c.channel()
    ch.queue_declare("q", passive=True)
    method, _, body = wait_for(lambda: (lambda r: r if r[0] else None)(ch.basic_get("q", auto_ack=True)),
                               timeout=10, what="basic.get from n2")
    assert body == b"hello"
    c.close()


def test_durable_topic_subscription_queue_and_binding_are_replicated(cluster):
    conn, l = stomp_on(cluster, "n1")
    conn.subscribe("/topic/news", id="d1", ack="auto",
                   headers={"durable": "true", "auto-delete": "false", "receipt": "s1"})
    assert l.event.wait(20) and l.receipts == ["s1"], l.errors
    conn.disconnect()
    n3 = cluster.node("n3")
    qname = wait_for(lambda: [n for n in queue_names(n3) if n.startswith("stomp-subscription-")],
                     timeout=10, what="subscription queue on n3")[0]
    binds = wait_for(lambda: [b for b in n3.api("/api/bindings/%2F")
                              if b["destination"] == qname and b["source"] == "amq.topic"],
                     timeout=10, what="binding on n3")
    assert binds[0]["routing_key"] == "news"
    # A durable UNSUBSCRIBE ends the subscription: its queue goes everywhere.
    conn, l = stomp_on(cluster, "n1")
    conn.subscribe("/topic/news", id="d1", ack="auto",
                   headers={"durable": "true", "auto-delete": "false", "receipt": "s2"})
    assert l.event.wait(20) and l.receipts == ["s2"], l.errors
    l.event.clear()
    conn.unsubscribe("d1", headers={"durable": "true", "receipt": "u1"})
    assert l.event.wait(20) and l.receipts == ["s2", "u1"] and not l.errors, l.errors
    conn.disconnect()
    wait_for(lambda: qname not in queue_names(n3), timeout=10, what="queue gone on n3")


def test_minority_refuses_with_an_error_frame(cluster):
    conn, l = stomp_on(cluster, "n1")
    cluster.node("n2").kill()
    cluster.node("n3").kill()
    l.event.clear()
    conn.send("/queue/minority", b"x", headers={"receipt": "r2"})
    assert l.event.wait(60), "neither RECEIPT nor ERROR"
    assert l.errors and not l.receipts, l.receipts
    assert "minority" not in queue_names(cluster.node("n1"))
