"""A node that was down while the others made more changes than the log
keeps (``WARREN_CLUSTER_SNAPSHOT_LOGS=20``: a snapshot every 20 entries, 20
kept) catches up from the leader's snapshot, and that snapshot also removes
what was deleted while it was down: queues, exchanges, bindings, a vhost, a
user, a permission, a policy, an operator policy, a global parameter, and a
queue deleted and declared again with other arguments."""

import time

import pytest

from cluster_harness import ApiError, amqp_outcome, netns_unusable, started_netcluster

pytestmark = pytest.mark.skipif(netns_unusable() is not None, reason=str(netns_unusable()))


@pytest.fixture
def cluster():
    with started_netcluster(env={"WARREN_CLUSTER_SNAPSHOT_LOGS": "20"}) as c:
        yield c


def names(node, path):
    return sorted(x["name"] for x in node.api(path))


@pytest.mark.timeout(120)
def test_lagging_node_catches_up_from_a_snapshot_deletes_included(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    out = amqp_outcome(lambda ch: (
        ch.exchange_declare("sn.x", "direct", durable=True),
        ch.exchange_declare("sn.x-gone", "direct", durable=True),
        ch.queue_declare("sn.keep", durable=True),
        ch.queue_declare("sn.gone", durable=True),
        ch.queue_declare("sn.redeclared", durable=True),
        ch.queue_bind("sn.keep", "sn.x", "k1"),
        ch.queue_bind("sn.keep", "sn.x", "k2")), n1)
    assert out[0] == "ok", out
    assert n1.put("/api/vhosts/sn-v", {}) == 201
    assert n1.put("/api/users/sn-user", {"password": "pw", "tags": ""}) == 201
    assert n1.put("/api/permissions/%2F/sn-user",
                  {"configure": ".*", "write": ".*", "read": ".*"}) == 201
    assert n1.put("/api/policies/%2F/sn-pol", {"pattern": "^sn\\.", "definition":
                                                {"max-length": 9}, "apply-to": "queues"}) == 201
    assert n1.put("/api/operator-policies/%2F/sn-op", {"pattern": "^sn\\.", "definition":
                                                       {"max-length": 99}}) == 201
    assert n1.put("/api/global-parameters/sn-gp", {"value": 1}) == 201
    cluster.wait_converged(cluster.nodes, "sn.")
    deadline = time.time() + 10
    while ("sn-user" not in names(n3, "/api/users")
           or "sn-gp" not in names(n3, "/api/global-parameters")):
        assert time.time() < deadline
        time.sleep(0.1)

    n3.kill()
    out = amqp_outcome(lambda ch: (
        ch.queue_delete("sn.gone"),
        ch.exchange_delete("sn.x-gone"),
        ch.queue_unbind("sn.keep", "sn.x", "k2"),
        ch.queue_delete("sn.redeclared"),
        ch.queue_declare("sn.redeclared", durable=True, arguments={"x-max-length": 3}),
        ch.queue_declare("sn.new", durable=True)), n2)
    assert out[0] == "ok", out
    assert n2.delete("/api/vhosts/sn-v") == 204
    assert n2.delete("/api/permissions/%2F/sn-user") == 204
    assert n2.delete("/api/users/sn-user") == 204
    assert n2.delete("/api/policies/%2F/sn-pol") == 204
    assert n2.delete("/api/operator-policies/%2F/sn-op") == 204
    assert n2.delete("/api/global-parameters/sn-gp") == 204
    assert n2.put("/api/global-parameters/sn-gp2", {"value": 2}) == 201

    def pad(ch):
        # Enough entries that the log n3 needs is purged (2 x 20 + slack).
        for _ in range(40):
            ch.queue_declare("sn.pad", durable=True)
            ch.queue_delete("sn.pad")
    assert amqp_outcome(pad, n1)[0] == "ok"
    expected = cluster.wait_converged([n1, n2], "sn.")

    n3.start()
    assert n3.wait_ready()
    got = cluster.wait_converged(cluster.nodes, "sn.", timeout=30)
    assert got == expected
    assert "sn.gone" not in got["queues"] and "sn.x-gone" not in got["exchanges"]
    assert ["sn.keep", "sn.x", "k2"] not in got["bindings"]
    q = n3.api("/api/queues/%2F/sn.redeclared")
    assert q["arguments"] == {"x-max-length": 3}, q
    assert "sn-v" not in names(n3, "/api/vhosts")
    assert "sn-user" not in names(n3, "/api/users")
    assert not [p for p in n3.api("/api/policies") if p["name"] == "sn-pol"]
    with pytest.raises(ApiError):
        n3.api("/api/permissions/%2F/sn-user")
    assert n3.api("/api/operator-policies/%2F") == []
    assert "sn-gp" not in names(n3, "/api/global-parameters")
    deadline = time.time() + 10
    while "sn-gp2" not in names(n3, "/api/global-parameters"):
        assert time.time() < deadline, "sn-gp2 not on n3"
        time.sleep(0.1)
