"""Quorum queue operations on a 3-node loopback cluster: member add/remove
(`warren ctl add-member`/`delete-member`, `grow`, `shrink`) shown in
`/api/queues` and `warren ctl list-queues`; the depth a node without a
member shows (asked from the group); tx.commit-ok after the group committed.

The tests run in file order against one cluster.
"""

import os
import threading
import time

import pika
import pytest

from cluster_harness import wait_for as harness_wait_for, started_cluster, WARREN_BIN, ApiError, Cluster

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")

QQ2 = {"x-queue-type": "quorum", "x-quorum-initial-group-size": 2}


@pytest.fixture(scope="module")
def cluster():
    yield from started_cluster(log_tail=3000)


def wait_for(fn, timeout=20.0, what=""):
    return harness_wait_for(fn, timeout, what)


def info(node, name):
    return node.api(f"/api/queues/%2F/{name}")


def declare(node, name, args=QQ2):
    conn = node.connect()
    conn.channel().queue_declare(name, durable=True, arguments=args)
    conn.close()


def publish(node, name, n, prefix="m"):
    conn = node.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    for i in range(n):
        ch.basic_publish("", name, f"{prefix}{i}".encode(),
                         pika.BasicProperties(delivery_mode=2))
    conn.close()


def test_add_and_delete_member(cluster):
    n1 = cluster.node("n1")
    declare(n1, "qm.a")
    q = wait_for(lambda: (lambda q: q.get("leader") and q)(info(n1, "qm.a")), what="leader")
    assert q["type"] == "quorum" and len(q["members"]) == 2, q
    outside = next(n for n in ("n1", "n2", "n3") if n not in q["members"])
    publish(cluster.node(q["members"][0]), "qm.a", 50)

    # The node without a member asks the group: the same depth and leader.
    out = cluster.node(outside)
    q_out = wait_for(lambda: (lambda q: q["messages"] == 50 and q)(info(out, "qm.a")),
                     what="depth on the non-member")
    assert q_out["leader"] in q["members"], q_out
    # declare-ok on the non-member counts them too.
    conn = out.connect()
    ok = conn.channel().queue_declare("qm.a", passive=True)
    assert ok.method.message_count == 50
    conn.close()

    n1.ctl("add-member", "qm.a", outside)
    for n in cluster.nodes:
        wait_for(lambda: (lambda q: len(q["members"]) == 3 and len(q["online"]) == 3
                          and q["leader"] and q)(info(n, "qm.a")),
                 what=f"three members on {n.name}")
    # The new member caught up from the leader: its own state machine has them.
    wait_for(lambda: info(out, "qm.a")["messages"] == 50, what="new member's depth")
    lq = {q["name"]: q for q in n1.ctl("list-queues")["queues"]}
    assert lq["qm.a"]["type"] == "quorum", lq
    assert sorted(lq["qm.a"]["members"]) == ["n1", "n2", "n3"], lq
    assert sorted(lq["qm.a"]["online"]) == ["n1", "n2", "n3"], lq
    assert lq["qm.a"]["leader"] in ("n1", "n2", "n3"), lq

    # Adding again changes nothing; removing it again goes back to two.
    n1.ctl("add-member", "qm.a", outside)
    n1.ctl("delete-member", "qm.a", outside)
    for n in cluster.nodes:
        wait_for(lambda: (lambda q: sorted(q["members"]) == sorted(
            m for m in ("n1", "n2", "n3") if m != outside) and q)(info(n, "qm.a")),
            what=f"two members on {n.name}")
    # It dropped its member: its depth comes from the group again.
    wait_for(lambda: info(out, "qm.a")["messages"] == 50, what="depth after delete")
    r = n1.ctl("delete-member", "qm.a", outside, check=False)
    assert r.returncode != 0 and "not a member" in r.stdout, r.stdout
    r = n1.ctl("add-member", "qm.nope", "n1", check=False)
    assert r.returncode != 0, r.stdout
    r = n1.ctl("add-member", "qm.a", "n9", check=False)
    assert r.returncode != 0 and "no cluster node n9" in r.stdout, r.stdout

    # Publishing goes on to the group of two.
    publish(n1, "qm.a", 5, prefix="after")
    wait_for(lambda: info(out, "qm.a")["messages"] == 55, what="depth 55")


def test_grow_and_shrink(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    names = [f"qm.g{i}" for i in range(4)]
    for name in names:
        declare(n2, name)
    declare(n2, "qm.g.classic", args={})
    for name in names:
        wait_for(lambda: info(n1, name).get("leader"), what=f"{name} leader")
    publish(n2, "qm.g0", 20)

    before = {name: info(n1, name)["members"] for name in names}
    # grow NODE PATTERN: only the matching queues that lack it.
    out = n1.ctl("grow", "n3", "^qm\\.g[01]$")
    assert all(q["result"] == "ok" for q in out["queues"]), out
    assert sorted(q["name"] for q in out["queues"]) == sorted(
        n for n in names[:2] if "n3" not in before[n]), (out, before)
    for name in names[:2]:
        wait_for(lambda: "n3" in info(n1, name)["members"], what=f"n3 in {name}")
    # grow NODE all: every quorum queue lacking it.
    out = n1.ctl("grow", "n3", "all")
    assert all(q["result"] == "ok" for q in out["queues"]), out
    for name in names:
        want = 2 if "n3" in before[name] else 3
        q = wait_for(lambda: (lambda q: len(q["members"]) == want and len(q["online"]) == want
                              and "n3" in q["members"] and q)(info(n3, name)),
                     what=f"{name} grown")
    assert info(n3, "qm.g0")["messages"] == 20
    assert info(n1, "qm.g.classic")["type"] == "classic"

    # shrink n3: out of every quorum queue (qm.a too, if it is a member).
    out = n2.ctl("shrink", "n3")
    assert all(q["result"] == "ok" for q in out["queues"]), out
    for name in names + ["qm.a"]:
        wait_for(lambda: "n3" not in info(n1, name)["members"], what=f"n3 out of {name}")
    assert wait_for(lambda: info(n3, "qm.g0")["messages"] == 20, what="depth on n3")
    # A removed member's leader moved away; publishing still works.
    publish(n3, "qm.g0", 3)
    wait_for(lambda: info(n1, "qm.g0")["messages"] == 23, what="23 after shrink")


def test_tx_commit_waits_for_the_group(cluster):
    n1 = cluster.node("n1")
    declare(n1, "qm.tx")
    q = wait_for(lambda: (lambda q: q.get("leader") and q)(info(n1, "qm.tx")), what="leader")
    a, b = (cluster.node(m) for m in q["members"])
    conn = a.connect()
    ch = conn.channel()
    ch.tx_select()
    for i in range(10):
        ch.basic_publish("", "qm.tx", f"t{i}".encode(), pika.BasicProperties(delivery_mode=2))
    ch.tx_commit()
    # commit-ok came after the commit: the group has all ten.
    assert info(a, "qm.tx")["messages"] == 10

    # Without a majority, commit-ok waits.
    b.kill()
    for i in range(3):
        ch.basic_publish("", "qm.tx", b"late", pika.BasicProperties(delivery_mode=2))
    done = threading.Event()

    def commit():
        ch.tx_commit()
        done.set()
    t = threading.Thread(target=commit, daemon=True)
    t.start()
    time.sleep(3)
    assert not done.is_set(), "tx.commit-ok before the group committed"
    # A node that is down is not made a member (asked through the live
    # member: b may be n1).
    wait_for(lambda: (lambda r: r.returncode != 0 and "not running" in r.stdout)(
        a.ctl("add-member", "qm.tx", b.name, check=False)), what="add-member of a dead node")
    b.start()
    assert b.wait_ready()
    t.join(40)
    assert done.is_set(), "no tx.commit-ok after the majority came back"
    assert info(a, "qm.tx")["messages"] == 13
    conn.close()


def rss_kib(node):
    with open(f"/proc/{node.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_publisher_without_confirms_is_paused_without_a_majority(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    declare(n1, "qm.flood", args={"x-queue-type": "quorum"})
    wait_for(lambda: len(info(n1, "qm.flood")["online"]) == 3, what="three online")
    n2.kill()
    n3.kill()
    before = rss_kib(n1)
    body = b"x" * 65536
    sent = [0]
    stop = time.time() + 8

    def flood():
        conn = n1.connect()
        ch = conn.channel()
        try:
            while time.time() < stop:
                ch.basic_publish("", "qm.flood", body)
                sent[0] += len(body)
        except Exception:  # noqa: BLE001 - the node restarting
            pass
        finally:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
    t = threading.Thread(target=flood, daemon=True)
    t.start()
    peak = before
    while time.time() < stop:
        peak = max(peak, rss_kib(n1))
        time.sleep(0.2)
    growth_mib = (peak - before) / 1024
    print(f"flood without a majority: {sent[0] / 2**20:.1f} MiB written by the client, "
          f"RSS {before / 1024:.1f} -> {peak / 1024:.1f} MiB")
    # The enqueuer holds at most 8 MiB; the rest waits in socket buffers.
    assert growth_mib < 48, growth_mib
    assert sent[0] < 64 * 2**20, sent[0]
    for n in (n2, n3):
        n.start()
        assert n.wait_ready()
    t.join(30)
    wait_for(lambda: len(info(n1, "qm.flood")["online"]) == 3, timeout=30, what="back")
