"""Node replacement (nodes in network namespaces): n3 dies, ``warren ctl
forget-node n3`` on n1, a new empty n4 (seeds n1, n2) joins with ``warren ctl
join``; it receives all metadata, cluster-status shows n1, n2, n4 running,
and n4 counts as a voter (with n1 down, n2 and n4 still commit changes).
A quorum queue with a member on n3 is shrunk to n1, n2 by ``forget-node``
and regains three members with ``warren ctl grow n4 all``: n4's own member
has the messages published before n3 died, and keeps them (and takes new
ones with n2) after n1 is gone too."""

import json
import time

import pika
import pytest

from cluster_harness import ApiError, amqp_outcome, netns_unusable, started_netcluster

pytestmark = pytest.mark.skipif(netns_unusable() is not None, reason=str(netns_unusable()))


def retry(fn, timeout: float = 30.0, what: str = ""):
    """Call ``fn`` until it returns a truthy value (exceptions count as
    falsy) or ``timeout`` passes; the last value or error goes into the
    assertion message."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (AssertionError, OSError, ApiError) as e:
            last = e
        time.sleep(0.3)
    raise AssertionError(f"{what}: {last}")


@pytest.fixture
def cluster():
    with started_netcluster() as c:
        yield c


@pytest.mark.timeout(180)
def test_forget_dead_node_and_join_an_empty_one(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    out = amqp_outcome(lambda ch: (ch.exchange_declare("rp.x", "topic", durable=True),
                                   ch.queue_declare("rp.q", durable=True),
                                   ch.queue_bind("rp.q", "rp.x", "a.*")), n2)
    assert out[0] == "ok", out
    assert n1.put("/api/vhosts/rp-v", {}) == 201
    assert n1.put("/api/users/rp-user", {"password": "pw", "tags": "monitoring"}) == 201
    assert n2.put("/api/permissions/rp-v/rp-user",
                  {"configure": "^rp", "write": ".*", "read": ".*"}) == 201
    assert n2.put("/api/policies/rp-v/rp-pol", {"pattern": ".*", "definition":
                                                {"max-length": 5}, "apply-to": "queues"}) == 201
    expected = cluster.wait_converged(cluster.nodes, "rp.")
    # A quorum queue on all three, with 30 confirmed messages.
    assert amqp_outcome(lambda ch: ch.queue_declare(
        "rp.qq", durable=True, arguments={"x-queue-type": "quorum"}), n1)[0] == "ok"
    retry(lambda: len(n1.api("/api/queues/%2F/rp.qq")["online"]) == 3, what="rp.qq online")

    def publish(ch, n, tag):
        ch.confirm_delivery()
        for i in range(n):
            ch.basic_publish("", "rp.qq", f"{tag}{i}".encode(),
                             pika.BasicProperties(delivery_mode=2))
    assert amqp_outcome(lambda ch: publish(ch, 30, "before"), n2)[0] == "ok"
    retry(lambda: n1.api("/api/queues/%2F/rp.qq")["messages"] == 30, what="30 on n1")
    expected = cluster.wait_converged(cluster.nodes, "rp.")

    n3.kill()
    r = retry(lambda: n1.ctl("forget-node", "n3", check=False).returncode == 0 or None,
              what="forget-node n3")
    assert r
    # forget-node shrank n3 out of the queue's group.
    q = n1.api("/api/queues/%2F/rp.qq")
    assert sorted(q["members"]) == ["n1", "n2"], q
    n4 = cluster.add_node("n4", seeds=["n1", "n2"])
    n4.start()
    assert n4.wait_ready()
    retry(lambda: n1.ctl("join", "n4", n4.cluster_addr, check=False).returncode == 0 or None,
          what="join n4")

    # Everything declared before n4 existed reaches it.
    got = retry(lambda: n4.metadata("rp.") == expected and n4.metadata("rp."),
                what="n4 metadata")
    assert got == expected
    # (The API-made ones came after the queues: wait for them too.)
    retry(lambda: "rp-v" in [v["name"] for v in n4.api("/api/vhosts")], what="vhost on n4")
    retry(lambda: n4.api("/api/users/rp-user")["tags"] in ("monitoring", ["monitoring"]),
          what="user on n4")
    retry(lambda: n4.api("/api/permissions/rp-v/rp-user")["configure"] == "^rp",
          what="permission on n4")
    retry(lambda: n4.api("/api/policies/rp-v/rp-pol")["definition"] == {"max-length": 5},
          what="policy on n4")

    st = n1.ctl("cluster-status")
    assert sorted(n["name"] for n in st["nodes"]) == ["n1", "n2", "n4"], st
    assert all(n["running"] for n in st["nodes"]), st
    assert st["metadata_leader"] in ("n1", "n2", "n4"), st
    assert sorted(n["name"] for n in n4.api("/api/nodes")) == ["n1", "n2", "n4"]

    # The quorum queue regains its replication factor on n4.
    grown = retry(lambda: (lambda r: r.returncode == 0 and r)(
        n1.ctl("grow", "n4", "all", check=False)), what="grow n4")
    assert [x["name"] for x in json.loads(grown.stdout)["queues"]] == ["rp.qq"], grown.stdout
    q = retry(lambda: (lambda q: len(q["online"]) == 3 and q["leader"] and q)(
        n4.api("/api/queues/%2F/rp.qq")), what="rp.qq on n4")
    assert sorted(q["members"]) == ["n1", "n2", "n4"], q
    retry(lambda: n4.api("/api/queues/%2F/rp.qq")["messages"] == 30, what="30 on n4")
    lq = {x["name"]: x for x in n4.ctl("list-queues")["queues"]}
    assert sorted(lq["rp.qq"]["members"]) == ["n1", "n2", "n4"], lq

    # A change made on n4 reaches the others.
    assert amqp_outcome(lambda ch: ch.queue_declare("rp.from-n4", durable=True), n4)[0] == "ok"
    cluster.wait_converged([n1, n2, n4], "rp.")

    # n4 is a voter and n3 no longer counts: with n1 down, n2 and n4 are
    # the majority of {n1, n2, n4}.
    n1.kill()
    out = retry(lambda: amqp_outcome(lambda ch: ch.queue_declare("rp.without-n1", durable=True),
                                     n2)[0] == "ok" or None, what="declare with n1 down")
    assert out
    got = cluster.wait_converged([n2, n4], "rp.")
    assert "rp.without-n1" in got["queues"]
    # n4's member still has the messages published before n3 died; with
    # n2 it is the queue's majority: publishing goes on without n1.
    assert n4.api("/api/queues/%2F/rp.qq")["messages"] == 30
    out = retry(lambda: amqp_outcome(lambda ch: publish(ch, 5, "after"), n4)[0] == "ok" or None,
                what="publish with n1 down")
    assert out
    # (A publish retried after a lost answer may add a few more.)
    retry(lambda: n2.api("/api/queues/%2F/rp.qq")["messages"] >= 35, what="35 on n2")
