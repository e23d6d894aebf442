"""The metadata group's Raft log lives on the node's shared WAL
(``DATA/cluster/raft-wal``, group 0). Older versions kept it in its own file
(``DATA/cluster/meta-raft.log``); a node started on such a data dir copies
that log into the WAL before its Raft starts and renames the file to
``meta-raft.log.migrated``. Nothing is lost: queues, exchanges, bindings,
vhosts, users, permissions and policies are on every node after the restart,
the cluster elects a leader and takes new changes.

The old format comes from ``WARREN_CLUSTER_LEGACY_META_LOG=1`` (this binary,
writing the former file as older versions did: always run), or from an older
binary in ``WARREN_OLD_BIN`` (e.g. main's build; skipped without it)."""

import os
import time

import pika
import pytest

import cluster_harness
from cluster_harness import WARREN_BIN, Cluster, amqp_outcome

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")

OLD_BIN = os.environ.get("WARREN_OLD_BIN")


def write_metadata(c: Cluster) -> None:
    n1, n2 = c.node("n1"), c.node("n2")
    out = amqp_outcome(lambda ch: (ch.exchange_declare("mw.x", "topic", durable=True),
                                   ch.queue_declare("mw.q", durable=True),
                                   ch.queue_bind("mw.q", "mw.x", "a.*"),
                                   ch.confirm_delivery(),
                                   ch.basic_publish("mw.x", "a.b", b"kept",
                                                    pika.BasicProperties(delivery_mode=2))), n2)
    assert out[0] == "ok", out
    assert n1.put("/api/vhosts/mw-v", {}) == 201
    assert n1.put("/api/users/mw-user", {"password": "pw", "tags": "monitoring"}) == 201
    assert n2.put("/api/permissions/mw-v/mw-user",
                  {"configure": "^mw", "write": ".*", "read": ".*"}) == 201
    assert n2.put("/api/policies/mw-v/mw-pol", {"pattern": ".*", "definition":
                                                {"max-length": 5}, "apply-to": "queues"}) == 201


def check_metadata(c: Cluster, expected) -> None:
    assert c.wait_converged(c.nodes, "mw.") == expected
    for n in c.nodes:
        assert n.api("/api/users/mw-user")["tags"] in ("monitoring", ["monitoring"])
        perms = n.api("/api/permissions/mw-v/mw-user")
        assert perms["configure"] == "^mw", (n.name, perms)
        assert n.api("/api/policies/mw-v/mw-pol")["definition"] == {"max-length": 5}
    # The message published before the restart is still in the home's queue.
    assert c.node("n2").api("/api/queues/%2F/mw.q")["messages"] == 1


def migrate(c: Cluster) -> None:
    """Every node of ``c`` (old format) killed, then started by this binary
    in the default (WAL) mode: checks the migration happened."""
    write_metadata(c)
    expected = c.wait_converged(c.nodes, "mw.")
    assert expected["queues"] == ["mw.q"] and expected["bindings"], expected
    for n in c.nodes:
        n.kill()
        old = os.path.join(n.dir, "data", "cluster", "meta-raft.log")
        assert os.path.exists(old), f"{n.name}: no {old}"
    c.env = {}
    for n in c.nodes:
        n.start()
    for n in c.nodes:
        assert n.wait_ready(), n.log()[-3000:]
    c.wait_leader(c.node("n1"))
    for n in c.nodes:
        d = os.path.join(n.dir, "data", "cluster")
        assert not os.path.exists(os.path.join(d, "meta-raft.log")), n.name
        assert os.path.exists(os.path.join(d, "meta-raft.log.migrated")), n.name
        assert "metadata log moved from" in n.log(), n.name
    check_metadata(c, expected)
    # The cluster takes changes and survives another restart (now from the WAL).
    out = amqp_outcome(lambda ch: ch.queue_declare("mw.after", durable=True), c.node("n3"))
    assert out[0] == "ok", out
    for n in c.nodes:
        n.kill()
    for n in c.nodes:
        n.start()
    for n in c.nodes:
        assert n.wait_ready(), n.log()[-3000:]
    c.wait_leader(c.node("n1"))
    expected["queues"] = ["mw.after", "mw.q"]
    check_metadata(c, expected)
    for n in c.nodes:
        assert "metadata log moved from" not in n.log(), n.name


@pytest.mark.timeout(240)
def test_a_legacy_metadata_log_moves_onto_the_wal():
    c = Cluster(["n1", "n2", "n3"])
    c.env = {"WARREN_CLUSTER_LEGACY_META_LOG": "1"}
    try:
        c.start()
        c.wait_leader(c.node("n1"))
        migrate(c)
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.cleanup()


@pytest.mark.skipif(not OLD_BIN, reason="WARREN_OLD_BIN (an older warren binary) not set")
@pytest.mark.timeout(240)
def test_a_data_dir_of_an_old_binary_is_migrated(monkeypatch):
    c = Cluster(["n1", "n2", "n3"])
    try:
        monkeypatch.setattr(cluster_harness, "WARREN_BIN", OLD_BIN)
        c.start()
        c.wait_leader(c.node("n1"))
        write_metadata(c)
        expected = c.wait_converged(c.nodes, "mw.")
        for n in c.nodes:
            n.kill()
            assert os.path.exists(os.path.join(n.dir, "data", "cluster", "meta-raft.log"))
        monkeypatch.undo()
        assert cluster_harness.WARREN_BIN == WARREN_BIN
        for n in c.nodes:
            n.start()
        for n in c.nodes:
            assert n.wait_ready(), n.log()[-3000:]
        c.wait_leader(c.node("n1"))
        for n in c.nodes:
            assert "metadata log moved from" in n.log(), n.name
        check_metadata(c, expected)
        out = amqp_outcome(lambda ch: ch.queue_declare("mw.after", durable=True), c.node("n3"))
        assert out[0] == "ok", out
        deadline = time.time() + 10
        while c.wait_converged(c.nodes, "mw.")["queues"] != ["mw.after", "mw.q"]:
            assert time.time() < deadline
            time.sleep(0.2)
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.cleanup()
