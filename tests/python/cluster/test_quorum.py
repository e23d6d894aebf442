"""Quorum queues on a 3-node cluster: declared on one node, a Raft group on
all three; publisher confirms come after the group committed; the confirmed
messages survive kill -9 of the group's leader.

The tests run in file order against one cluster (each builds on the last).
"""

import os
import time

import pika
import pika.exceptions
import pytest

from cluster_harness import WARREN_BIN, Cluster

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")

QQ = {"x-queue-type": "quorum"}


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(["n1", "n2", "n3"]).start()
    try:
        c.wait_leader(c.node("n1"))
        yield c
    finally:
        for n in c.nodes:
            if n.proc is not None:
                print(f"--- {n.name} log\n{n.log()[-2000:]}")
        c.cleanup()


def queue_info(node, name, timeout=10.0, want=lambda q: True):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = node.api(f"/api/queues/%2F/{name}")
            if want(last):
                return last
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{name} on {node.name}: {last}")


def refusal(node, name, **kw):
    conn = node.connect()
    try:
        args = dict(QQ)
        args.update(kw.pop("arguments", {}))
        conn.channel().queue_declare(name, arguments=args, **kw)
        return None
    except pika.exceptions.ChannelClosedByBroker as e:
        return e.reply_code, e.reply_text
    finally:
        if conn.is_open:
            conn.close()


def test_refusals_as_rabbitmq(cluster):
    n1 = cluster.node("n1")
    assert refusal(n1, "qq.nd", durable=False) == (
        406, "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'qq.nd' in vhost '/'")
    assert refusal(n1, "qq.ex", durable=True, exclusive=True) == (
        406, "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue 'qq.ex' in vhost '/'")
    assert refusal(n1, "qq.ad", durable=True, auto_delete=True) == (
        406, "PRECONDITION_FAILED - invalid property 'auto-delete' for queue 'qq.ad' in vhost '/'")
    assert refusal(n1, "qq.p", durable=True, arguments={"x-max-priority": 5}) == (
        406, "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'qq.p' in vhost '/' "
             "of queue type rabbit_quorum_queue")


def test_declare_makes_a_group_on_every_node(cluster):
    conn = cluster.node("n1").connect()
    conn.channel().queue_declare("qq.a", durable=True, arguments=QQ)
    conn.close()
    for name in ("n1", "n2", "n3"):
        q = queue_info(cluster.node(name), "qq.a",
                       want=lambda q: q.get("leader") and len(q.get("online", [])) == 3)
        assert q["type"] == "quorum", q
        assert sorted(q["members"]) == ["n1", "n2", "n3"], q
        assert q["leader"] in ("n1", "n2", "n3"), q


def publish_confirmed(node, queue, n, size=1024):
    conn = node.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    body = b"x" * size
    for i in range(n):
        ch.basic_publish("", queue, body,
                         pika.BasicProperties(delivery_mode=2, message_id=str(i)))
    conn.close()


def test_confirmed_publishes_survive_leader_kill(cluster):
    n2 = cluster.node("n2")
    publish_confirmed(n2, "qq.a", 200)
    q = queue_info(n2, "qq.a", want=lambda q: q["messages"] == 200)
    leader = q["leader"]
    cluster.node(leader).kill()
    survivors = [n for n in cluster.nodes if n.name != leader]
    for n in survivors:
        q = queue_info(n, "qq.a", timeout=20,
                       want=lambda q: q.get("leader") not in (None, leader))
        assert q["messages"] == 200, q
    # The group takes publishes again under its new leader.
    publish_confirmed(survivors[0], "qq.a", 10)
    for n in survivors:
        queue_info(n, "qq.a", want=lambda q: q["messages"] == 210)
    # The killed node comes back and catches up from the log.
    cluster.restart(cluster.node(leader))
    queue_info(cluster.node(leader), "qq.a", timeout=20,
               want=lambda q: q["messages"] == 210 and len(q.get("online", [])) == 3)


def test_delete_removes_the_group(cluster):
    conn = cluster.node("n3").connect()
    conn.channel().queue_delete("qq.a")
    conn.close()
    deadline = time.time() + 10
    for n in cluster.nodes:
        while True:
            try:
                n.api("/api/queues/%2F/qq.a")
            except OSError:
                break
            assert time.time() < deadline, f"qq.a still on {n.name}"
            time.sleep(0.1)


def test_groups_form_with_a_member_down(cluster):
    """A member that is down at declare time (perhaps the one that would
    initialize the group) does not keep the group from forming; it joins
    once it is back."""
    n3 = cluster.node("n3")
    n3.kill()
    n1 = cluster.node("n1")
    names = [f"qq.down{i}" for i in range(3)]
    conn = n1.connect()
    for name in names:
        conn.channel().queue_declare(name, durable=True, arguments=QQ)
    conn.close()
    for name in names:
        q = queue_info(n1, name, timeout=20, want=lambda q: q.get("leader"))
        assert sorted(q["members"]) == ["n1", "n2", "n3"], q
        publish_confirmed(n1, name, 5)
        queue_info(n1, name, want=lambda q: q["messages"] == 5)
    cluster.restart(n3)
    for name in names:
        queue_info(n3, name, timeout=20, want=lambda q: q["messages"] == 5)
