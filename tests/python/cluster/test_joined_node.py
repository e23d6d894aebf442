"""A node added with ``warren ctl join`` is a full member for classic queues:
every node learns its name and pings it (the failure detector follows the
metadata membership, not the seed list a node started with). A classic queue
homed on the joined node n4: once n4 is killed -9, a consumer on n2 gets
basic.cancel and declares on n2 get RabbitMQ's 404 "home node ... is down",
as for a seed node; after a restart of n2 (n4 still down) too."""

import os
import time

import pika
import pika.exceptions
import pytest

from cluster_harness import WARREN_BIN, Cluster, Node, free_port

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")

PERSISTENT = pika.BasicProperties(delivery_mode=2)
HOME_DOWN = "NOT_FOUND - home node 'n4' of durable queue 'jn.q' in vhost '/' is down or inaccessible"


def wait_for(pred, timeout=15.0, what="condition"):
    deadline = time.time() + timeout
    while True:
        try:
            if pred():
                return
        except (pika.exceptions.AMQPError, OSError):
            pass
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def declare_error(node):
    conn = node.connect()
    try:
        conn.channel().queue_declare("jn.q", durable=True)
        return None
    except pika.exceptions.ChannelClosedByBroker as e:
        return e.reply_code, e.reply_text
    finally:
        if conn.is_open:
            conn.close()


@pytest.mark.timeout(180)
def test_classic_queue_on_a_joined_node_goes_down_with_it():
    c = Cluster(["n1", "n2", "n3"])
    try:
        c.start()
        c.wait_leader(c.node("n1"))
        n1, n2 = c.node("n1"), c.node("n2")
        n4 = Node(c, "n4")
        n4.seeds = list(c.nodes)
        c.nodes.append(n4)
        n4.cluster_port, n4.http_port = free_port(), free_port()
        n4.start()
        assert n4.wait_ready()
        # Joined through n3 (a follower or the leader: either way n1 and n2
        # never heard the name n4 from their command line or the join).
        c.node("n3").ctl("join", "n4", n4.cluster_addr)
        wait_for(lambda: n4.api("/api/cluster-status")["metadata_leader"], what="n4 in the cluster")

        conn = n4.connect()
        ch = conn.channel()
        ch.queue_declare("jn.q", durable=True)
        ch.confirm_delivery()
        for i in range(10):
            ch.basic_publish("", "jn.q", b"m%d" % i, PERSISTENT)
        conn.close()
        wait_for(lambda: declare_error(n2) is None, what="jn.q on n2")

        conn = n2.connect()
        ch = conn.channel()
        ch.basic_qos(prefetch_count=3)
        held, cancelled = [], []
        ch.add_on_cancel_callback(lambda frame: cancelled.append(frame))
        ch.basic_consume("jn.q", lambda c_, m, p, b: held.append(b))
        deadline = time.time() + 10
        while len(held) < 3 and time.time() < deadline:
            conn.process_data_events(time_limit=0.1)
        assert len(held) == 3

        n4.kill()
        deadline = time.time() + 10
        while not cancelled and time.time() < deadline:
            conn.process_data_events(time_limit=0.1)
        assert cancelled, "no basic.cancel on n2 after the joined home node died"
        conn.close()
        assert declare_error(n2) == (404, HOME_DOWN)
        assert declare_error(n1) == (404, HOME_DOWN)

        # n2 restarted while n4 is down: it still knows n4 by name and finds
        # it down.
        c.restart(n2)
        c.wait_leader(n2)
        wait_for(lambda: declare_error(n2) == (404, HOME_DOWN), what="404 on restarted n2")

        # n4 back: its confirmed messages are reachable from n2 again.
        c.restart(n4)
        wait_for(lambda: declare_error(n2) is None, what="n4 reachable again")
        wait_for(lambda: n2.api("/api/queues/%2F/jn.q")["messages"] == 10 or
                 n4.api("/api/queues/%2F/jn.q")["messages"] == 10, what="10 messages on n4")
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.cleanup()
