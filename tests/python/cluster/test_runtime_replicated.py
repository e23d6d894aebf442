"""Vhost limits, user limits and topic permissions set through the
management API of one node are on every node (and enforced there), and so
are their removals."""

import os
import time

import pika
import pika.exceptions
import pytest

from cluster_harness import wait_for, WARREN_BIN, ApiError, Cluster

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")


@pytest.mark.timeout(120)
def test_limits_and_topic_permissions_reach_every_node():
    c = Cluster(["n1", "n2", "n3"])
    try:
        c.start()
        c.wait_leader(c.node("n1"))
        n1, n2, n3 = c.nodes
        assert n1.put("/api/vhosts/rt-v", {}) == 201
        assert n1.put("/api/users/rt-user", {"password": "pw", "tags": ""}) == 201
        assert n1.put("/api/permissions/rt-v/rt-user",
                      {"configure": ".*", "write": ".*", "read": ".*"}) == 201

        # Vhost limit on n1: shown and enforced on n3.
        assert n1.put("/api/vhost-limits/rt-v/max-queues", {"value": 1}) == 204
        for n in c.nodes:
            wait_for(lambda: n.api("/api/vhost-limits/rt-v") ==
                     [{"vhost": "rt-v", "value": {"max-queues": 1}}], what=f"limit on {n.name}")
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            n3.host, n3.port, "rt-v", pika.PlainCredentials("guest", "guest")))
        ch = conn.channel()
        ch.queue_declare("rt.q1", durable=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            conn.channel().queue_declare("rt.q2", durable=True)
        assert e.value.reply_code == 406, e.value
        conn.close()
        assert n2.delete("/api/vhost-limits/rt-v/max-queues") == 204
        for n in c.nodes:
            wait_for(lambda: n.api("/api/vhost-limits/rt-v") == [], what=f"no limit on {n.name}")
        # A refused value: 400 on the node asked, set on none.
        with pytest.raises(ApiError) as e:
            n2.put("/api/vhost-limits/rt-v/max-queues", {"value": "lots"})
        assert e.value.status == 400
        with pytest.raises(ApiError) as e:
            n1.put("/api/vhost-limits/no-such-vhost/max-queues", {"value": 3})
        assert e.value.status == 404

        # User limit on n2: on every node.
        assert n2.put("/api/user-limits/rt-user/max-connections", {"value": 2}) == 204
        for n in c.nodes:
            wait_for(lambda: n.api("/api/user-limits/rt-user") ==
                     [{"user": "rt-user", "value": {"max-connections": 2}}],
                     what=f"user limit on {n.name}")
        assert n3.delete("/api/user-limits/rt-user/max-connections") == 204
        for n in c.nodes:
            wait_for(lambda: n.api("/api/user-limits/rt-user") == [],
                     what=f"no user limit on {n.name}")

        # Topic permissions on n3: on every node; the first is 201, then 204.
        tp = {"exchange": "amq.topic", "write": "^rt\\.", "read": ".*"}
        assert n3.put("/api/topic-permissions/rt-v/rt-user", tp) == 201
        assert n3.put("/api/topic-permissions/rt-v/rt-user", tp) == 204
        for n in c.nodes:
            got = wait_for(lambda: n.api("/api/topic-permissions/rt-v/rt-user"),
                           what=f"topic permission on {n.name}")
            assert [(t["exchange"], t["write"]) for t in got] == [("amq.topic", "^rt\\.")]
        # Enforced on n1: publishing to amq.topic with a key outside ^rt\. is refused.
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            n1.host, n1.port, "rt-v", pika.PlainCredentials("rt-user", "pw")))
        ch = conn.channel()
        ch.basic_publish("amq.topic", "other.key", b"x")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("rt.q1", passive=True)
        assert e.value.reply_code == 403, e.value
        conn.close()
        assert n1.delete("/api/topic-permissions/rt-v/rt-user") == 204
        for n in c.nodes:
            def gone(n=n):
                try:
                    n.api("/api/topic-permissions/rt-v/rt-user")
                    return False
                except ApiError as e:
                    return e.status == 404
            wait_for(gone, what=f"topic permission gone on {n.name}")
        with pytest.raises(ApiError) as e:
            n2.delete("/api/topic-permissions/rt-v/rt-user")
        assert e.value.status == 404
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.cleanup()
