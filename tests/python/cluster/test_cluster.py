"""A 3-node cluster on loopback: metadata declared on one node is on every
node; the metadata group survives its leader's kill -9; a lone node refuses
metadata changes quickly with a clear error; restarted nodes catch up.

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


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(["n1", "n2", "n3"]).start()
    try:
        c.wait_leader(c.node("n1"))
        yield c
    finally:
        for n in c.nodes:
            if n.alive() is False and n.proc is not None:
                print(f"--- {n.name} log\n{n.log()[-3000:]}")
        c.cleanup()


def passive_ok(node, queue=None, exchange=None) -> bool:
    conn = node.connect()
    try:
        ch = conn.channel()
        if queue:
            ch.queue_declare(queue, passive=True)
        if exchange:
            ch.exchange_declare(exchange, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    finally:
        if conn.is_open:
            conn.close()


def test_status_lists_every_node(cluster):
    st = cluster.node("n2").ctl("cluster-status")
    assert sorted(n["name"] for n in st["nodes"]) == ["n1", "n2", "n3"]
    assert all(n["running"] and n["type"] == "disc" for n in st["nodes"]), st
    assert st["metadata_leader"] in ("n1", "n2", "n3")
    nodes = cluster.node("n3").api("/api/nodes")
    assert sorted(n["name"] for n in nodes) == ["n1", "n2", "n3"]
    assert all(n["running"] for n in nodes)


def test_declares_reach_every_node(cluster):
    conn = cluster.node("n1").connect()
    ch = conn.channel()
    ch.exchange_declare("cl.x", "direct", durable=True)
    ch.queue_declare("cl.q", durable=True)
    ch.queue_bind("cl.q", "cl.x", "k")
    conn.close()
    # Committed on a majority and applied on the declaring node before
    # declare-ok; the third node applies it within a heartbeat or so.
    deadline = time.time() + 5
    for name in ("n2", "n3"):
        node = cluster.node(name)
        # The binding is its own entry, applied after the queue's.
        while not (passive_ok(node, queue="cl.q", exchange="cl.x")
                   and node.api("/api/bindings/%2F/e/cl.x/q/cl.q")):
            assert time.time() < deadline, f"cl.q / cl.x / their binding not on {name}"
            time.sleep(0.1)
        # The replicated binding routes there too.
        conn = node.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("cl.x", "k", b"via " + name.encode(), mandatory=True)
        conn.close()
    # Deleting is replicated as well.
    conn = cluster.node("n3").connect()
    conn.channel().exchange_declare("cl.gone", "fanout", durable=True)
    conn.channel().exchange_delete("cl.gone")
    conn.close()
    assert not passive_ok(cluster.node("n1"), exchange="cl.gone")


def test_management_api_changes_are_replicated(cluster):
    n2, n3 = cluster.node("n2"), cluster.node("n3")
    assert n2.put("/api/vhosts/cl-v", {}) == 201
    # n2 answered once a majority had it and n2 applied it; n3 applies it a
    # heartbeat later at most.
    deadline = time.time() + 5
    while "cl-v" not in [v["name"] for v in n3.api("/api/vhosts")]:
        assert time.time() < deadline, "vhost cl-v not on n3"
        time.sleep(0.05)
    assert n3.put("/api/queues/cl-v/cl.api-q", {"durable": True}) == 201
    assert n3.put("/api/exchanges/cl-v/cl.api-x", {"type": "topic", "durable": True}) == 201
    deadline = time.time() + 5
    while True:
        try:
            q = cluster.node("n1").api("/api/queues/cl-v/cl.api-q")
            x = cluster.node("n1").api("/api/exchanges/cl-v/cl.api-x")
            break
        except OSError:
            assert time.time() < deadline, "API-made queue/exchange not on n1"
            time.sleep(0.1)
    assert q["durable"] and x["type"] == "topic"


def test_users_permissions_policies_are_replicated(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    assert n1.put("/api/users/cl-user", {"password": "s3cret", "tags": ""}) == 201
    deadline = time.time() + 5
    while True:
        try:
            n2.api("/api/users/cl-user")
            break
        except OSError:
            assert time.time() < deadline, "cl-user not on n2"
            time.sleep(0.05)
    assert n2.put("/api/permissions/%2F/cl-user",
                  {"configure": ".*", "write": ".*", "read": ".*"}) == 201
    assert n2.put("/api/policies/%2F/cl-ttl",
                  {"pattern": "^cl\\.ttl", "definition": {"message-ttl": 1000},
                   "apply-to": "queues"}) == 201
    deadline = time.time() + 5
    while True:
        try:
            n3.api("/api/permissions/%2F/cl-user")
            pol = n3.api("/api/policies/%2F/cl-ttl")
            break
        except OSError:
            assert time.time() < deadline, "permission/policy not on n3"
            time.sleep(0.05)
    assert pol["definition"] == {"message-ttl": 1000}
    # The same password hash everywhere: the user logs in on n3.
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", n3.port, credentials=pika.PlainCredentials("cl-user", "s3cret")))
    conn.close()


def test_restart_keeps_messages_of_a_redeclared_queue(cluster):
    # The metadata log holds "declare, delete, declare": a restart must not
    # replay it over the restored queue (that would delete its messages).
    n2 = cluster.node("n2")
    conn = n2.connect()
    ch = conn.channel()
    ch.queue_declare("cl.again", durable=True)
    ch.queue_delete("cl.again")
    ch.queue_declare("cl.again", durable=True)
    ch.confirm_delivery()
    ch.basic_publish("", "cl.again", b"kept", pika.BasicProperties(delivery_mode=2))
    conn.close()
    cluster.restart(n2)
    deadline = time.time() + 10
    while True:
        conn = n2.connect()
        try:
            n = conn.channel().queue_declare("cl.again", passive=True).method.message_count
        finally:
            conn.close()
        if n == 1 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert n == 1


def test_leader_kill_elects_a_new_one(cluster):
    leader = cluster.wait_leader(cluster.node("n1"))
    cluster.node(leader).kill()
    survivors = [n for n in cluster.nodes if n.name != leader]
    t0 = time.time()
    new = cluster.wait_leader(survivors[0], not_=leader, timeout=15)
    elapsed = time.time() - t0
    assert new != leader
    print(f"metadata leader {leader} killed; {new} elected after {elapsed:.1f} s")
    conn = survivors[1].connect()
    conn.channel().queue_declare("cl.after-failover", durable=True)
    conn.close()
    assert passive_ok(survivors[0], queue="cl.after-failover")


def test_lone_node_refuses_metadata_changes(cluster):
    alive = [n for n in cluster.nodes if n.alive()]
    assert len(alive) == 2
    alive[0].kill()
    lone = alive[1]
    conn = lone.connect()
    t0 = time.time()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        conn.channel().queue_declare("cl.minority", durable=True)
    took = time.time() - t0
    assert e.value.reply_code == 541
    assert "majority" in e.value.reply_text
    assert took < 8, f"refusal took {took:.1f} s"
    # Reading what exists still works on the minority...
    assert passive_ok(lone, exchange="cl.x")
    # ...but a classic queue lives on its home node (n1 declared cl.q): with
    # n1 down it answers RabbitMQ's 404 "home node ... is down".
    assert passive_ok(lone, queue="cl.q") == (lone.name == "n1")


def test_restarted_nodes_converge(cluster):
    for n in cluster.nodes:
        if not n.alive():
            cluster.restart(n)
    cluster.wait_leader(cluster.node("n1"))
    deadline = time.time() + 10
    for n in cluster.nodes:
        # Everyone has what the majority committed while they were down.
        while not passive_ok(n, queue="cl.after-failover"):
            assert time.time() < deadline, f"{n.name} did not catch up"
            time.sleep(0.2)
    conn = cluster.node("n2").connect()
    conn.channel().queue_declare("cl.healed", durable=True)
    conn.close()
    for n in cluster.nodes:
        deadline = time.time() + 5
        while not passive_ok(n, queue="cl.healed"):
            assert time.time() < deadline, f"cl.healed not on {n.name}"
            time.sleep(0.1)
    st = cluster.node("n3").ctl("cluster-status")
    assert all(n["running"] for n in st["nodes"]), st


def test_forget_a_dead_node_and_join_a_new_one(cluster):
    from cluster_harness import Node, free_port
    n3 = cluster.node("n3")
    n3.kill()
    # (n3 may have been the leader: wait for the next one.)
    cluster.wait_leader(cluster.node("n1"), not_="n3")
    cluster.node("n1").ctl("forget-node", "n3")
    st = cluster.node("n2").ctl("cluster-status")
    assert sorted(n["name"] for n in st["nodes"]) == ["n1", "n2"], st
    # A new, empty node takes its place.
    n4 = Node(cluster, "n4")
    cluster.nodes.append(n4)
    n4.cluster_port, n4.http_port = free_port(), free_port()
    n4.start()
    assert n4.wait_ready()
    cluster.node("n2").ctl("join", "n4", f"127.0.0.1:{n4.cluster_port}")
    deadline = time.time() + 10
    while not passive_ok(n4, queue="cl.q", exchange="cl.x"):
        assert time.time() < deadline, "n4 did not receive the metadata"
        time.sleep(0.2)
    st = n4.ctl("cluster-status")
    assert sorted(n["name"] for n in st["nodes"]) == ["n1", "n2", "n4"], st
    assert all(n["running"] for n in st["nodes"]), st
