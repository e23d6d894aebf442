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

from cluster_harness import (WARREN_BIN, Cluster, Node, declare_error, free_port,
                             hold_deliveries, pump, wait_for)

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")

PERSISTENT = pika.BasicProperties(delivery_mode=2)
HOME_DOWN = "NOT_FOUND - home node 'n4' of durable queue 'jn.q' in vhost '/' is down or inaccessible"


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
        wait_for(lambda: declare_error(n2, "jn.q") is None, what="jn.q on n2")

        conn, held, cancelled = hold_deliveries(n2, "jn.q", prefetch=3)
        assert pump(conn, lambda: len(held) == 3)

        n4.kill()
        pump(conn, lambda: cancelled)
        assert cancelled, "no basic.cancel on n2 after the joined home node died"
        conn.close()
        assert declare_error(n2, "jn.q") == (404, HOME_DOWN)
        # n1 learns it from its own failure detector (it pings n4 as well;
        # n2 knew first from its link to n4).
        wait_for(lambda: declare_error(n1, "jn.q") == (404, HOME_DOWN), timeout=15,
                 what="n1 to find n4 down")

        # n2 restarted while n4 is down: it still knows n4 by name and finds
        # it down.
        c.restart(n2)
        c.wait_leader(n2)
        wait_for(lambda: declare_error(n2, "jn.q") == (404, HOME_DOWN), what="404 on restarted n2")

        # n4 back: its confirmed messages are reachable from n2 again.
        c.restart(n4)
        wait_for(lambda: declare_error(n2, "jn.q") is None, what="n4 reachable again")
        wait_for(lambda: n2.api("/api/queues/%2F/jn.q")["messages"] == 10 or
                 n4.api("/api/queues/%2F/jn.q")["messages"] == 10, what="10 messages on n4")
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.cleanup()
