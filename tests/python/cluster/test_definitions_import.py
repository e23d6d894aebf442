"""Definitions imported on one node of a cluster (``POST /api/definitions``,
``POST /api/definitions/VHOST``) are on every node: users (a clear-text
password hashed once, so every node accepts it), vhosts, permissions,
policies, exchanges, queues (homed on the importing node) and bindings. An
invalid import answers 400 and replicates nothing of the invalid object."""

import os
import time

import pika
import pytest

from cluster_harness import wait_for, WARREN_BIN, ApiError, Cluster

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")

DEFS = {
    "rabbit_version": "3.10.8",
    "users": [{"name": "di-user", "password": "di-pw", "tags": ["management"]}],
    "vhosts": [{"name": "di-v"}],
    "permissions": [{"user": "di-user", "vhost": "di-v", "configure": ".*",
                     "write": ".*", "read": ".*"}],
    "policies": [{"vhost": "di-v", "name": "di-pol", "pattern": "^di", "apply-to": "queues",
                  "definition": {"max-length": 7}, "priority": 2}],
    "exchanges": [{"name": "di.x", "vhost": "di-v", "type": "topic", "durable": True,
                   "auto_delete": False, "internal": False, "arguments": {}}],
    "queues": [{"name": "di.q", "vhost": "di-v", "durable": True, "auto_delete": False,
                "arguments": {"x-message-ttl": 60000}}],
    "bindings": [{"source": "di.x", "vhost": "di-v", "destination": "di.q",
                  "destination_type": "queue", "routing_key": "a.#", "arguments": {}}],
}


@pytest.mark.timeout(120)
def test_imported_definitions_reach_every_node():
    c = Cluster(["n1", "n2", "n3"])
    try:
        c.start()
        c.wait_leader(c.node("n1"))
        n1, n2, n3 = c.nodes
        status, _ = n1._request("POST", "/api/definitions", DEFS)
        assert status in (200, 201, 204), status
        for n in (n2, n3):
            wait_for(lambda: n.api("/api/queues/di-v/di.q")["arguments"] ==
                     {"x-message-ttl": 60000}, what=f"di.q on {n.name}")
            assert n.api("/api/exchanges/di-v/di.x")["type"] == "topic"
            bs = [b for b in n.api("/api/bindings/di-v") if b["source"] == "di.x"]
            assert [(b["destination"], b["routing_key"]) for b in bs] == [("di.q", "a.#")]
            assert n.api("/api/permissions/di-v/di-user")["configure"] == ".*"
            assert n.api("/api/policies/di-v/di-pol")["definition"] == {"max-length": 7}
        # The same hash everywhere: the imported user logs in on every node.
        hashes = set()
        for n in c.nodes:
            users = n.api("/api/definitions")["users"]
            hashes.add(next(u["password_hash"] for u in users if u["name"] == "di-user"))
            conn = pika.BlockingConnection(pika.ConnectionParameters(
                n.host, n.port, "di-v", pika.PlainCredentials("di-user", "di-pw")))
            conn.close()
        assert len(hashes) == 1, hashes
        # The queue lives on n1: a message published through n3 is counted there.
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            n3.host, n3.port, "di-v", pika.PlainCredentials("di-user", "di-pw")))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("di.x", "a.b", b"hello", pika.BasicProperties(delivery_mode=2))
        conn.close()
        assert n1.api("/api/queues/di-v/di.q")["messages"] == 1

        # Per-vhost import on n2 lands on n1 and n3 too.
        status, _ = n2._request("POST", "/api/definitions/di-v", {
            "queues": [{"name": "di.q2", "durable": True, "auto_delete": False, "arguments": {}}],
            "bindings": [{"source": "di.x", "destination": "di.q2",
                          "destination_type": "queue", "routing_key": "b.#", "arguments": {}}]})
        assert status in (200, 201, 204), status
        for n in (n1, n3):
            wait_for(lambda: any(b["destination"] == "di.q2"
                                 for b in n.api("/api/bindings/di-v")), what=f"di.q2 on {n.name}")

        # An invalid object: 400, and it is on no node.
        with pytest.raises(ApiError) as e:
            n3._request("POST", "/api/definitions", {
                "exchanges": [{"name": "di.bad", "vhost": "di-v", "type": "nonsense"}]})
        assert e.value.status == 400
        for n in c.nodes:
            with pytest.raises(ApiError) as e:
                n.api("/api/exchanges/di-v/di.bad")
            assert e.value.status == 404
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.cleanup()
