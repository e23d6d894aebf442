"""A minority partition (nodes in their own network namespaces): the cut-off
node refuses metadata changes with a clear error within a bounded time (AMQP
541 and its text; HTTP 503 JSON), the majority keeps accepting them, and once
healed the isolated node has everything declared meanwhile.

The metadata leader is the one cut off, the harder case: it must notice it
lost the majority instead of appending what it cannot commit.
"""

import time

import pytest

from cluster_harness import ApiError, amqp_outcome, netns_unusable, started_netcluster

pytestmark = pytest.mark.skipif(netns_unusable() is not None, reason=str(netns_unusable()))

# Refusal bound: PROPOSE_TIMEOUT (4 s) plus scheduling slack on a loaded
# 2-core CI machine.
REFUSE_WITHIN = 8.0


def stable_leader(cluster, timeout: float = 20.0) -> str:
    """The metadata leader once every node names the same one."""
    deadline = time.time() + timeout
    while True:
        seen = set()
        for n in cluster.nodes:
            try:
                seen.add(n.api("/api/cluster-status", timeout=5).get("metadata_leader"))
            except (OSError, ApiError):
                seen.add(None)
        if len(seen) == 1 and None not in seen:
            return seen.pop()
        assert time.time() < deadline, f"no agreed leader: {seen}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster():
    with started_netcluster() as c:
        yield c


@pytest.mark.timeout(180)
def test_isolated_leader_refuses_majority_accepts_and_it_converges(cluster):
    n1 = cluster.node("n1")
    setup = amqp_outcome(lambda ch: (ch.exchange_declare("mp.x", "topic", durable=True),
                                     ch.queue_declare("mp.q", durable=True),
                                     ch.queue_bind("mp.q", "mp.x", "a.#")), n1)
    assert setup[0] == "ok", setup
    cluster.wait_converged(cluster.nodes, "mp.")
    leader = cluster.node(stable_leader(cluster))
    majority = [n for n in cluster.nodes if n is not leader]
    cluster.partition(leader)

    # The isolated node: AMQP refusal, a connection error naming the cause.
    t0 = time.time()
    kind, code, text = amqp_outcome(lambda ch: ch.queue_declare("mp.minority-q", durable=True),
                                    leader)
    took = time.time() - t0
    assert (kind, code) == ("refused", 541), (kind, code, text)
    assert "metadata change refused" in text and "majority" in text, text
    assert took < REFUSE_WITHIN, f"AMQP refusal took {took:.1f} s"
    # HTTP: 503 with RabbitMQ-style JSON.
    t0 = time.time()
    with pytest.raises(ApiError) as e:
        leader.put("/api/exchanges/%2F/mp.minority-x", {"type": "fanout", "durable": True})
    took = time.time() - t0
    assert e.value.status == 503, e.value
    assert e.value.body["error"] == "service_unavailable", e.value.body
    assert "majority" in e.value.body["reason"], e.value.body
    assert took < REFUSE_WITHIN, f"HTTP refusal took {took:.1f} s"
    # Reads still work there: passive declare of what exists.
    conn = leader.connect()
    assert conn.channel().queue_declare("mp.q", passive=True).method.queue == "mp.q"
    conn.close()

    # The majority elects a leader and keeps accepting changes (the first may
    # wait for that election).
    a, b = majority
    t0 = time.time()
    deadline = t0 + 20
    while True:
        out = amqp_outcome(lambda ch: ch.queue_declare("mp.majority-q", durable=True), a)
        if out[0] == "ok" or time.time() > deadline:
            break
        time.sleep(0.2)
    assert out[0] == "ok", out
    print(f"majority accepted a declare {time.time() - t0:.1f} s after the partition")
    out = amqp_outcome(lambda ch: (ch.exchange_declare("mp.majority-x", "direct", durable=True),
                                   ch.queue_bind("mp.majority-q", "mp.majority-x", "k"),
                                   ch.queue_bind("mp.q", "mp.x", "b.*")), b)
    assert out[0] == "ok", out
    assert b.put("/api/vhosts/mp-v", {}) == 201
    assert a.put("/api/users/mp-user", {"password": "pw", "tags": ""}) == 201
    assert b.put("/api/policies/%2F/mp-pol", {"pattern": "^mp\\.", "definition":
                                                {"max-length": 10}, "apply-to": "queues"}) == 201
    expected = cluster.wait_converged(majority, "mp.")
    assert "mp.majority-q" in expected["queues"] and "mp.minority-q" not in expected["queues"]

    # The isolated node still refuses and has seen none of it.
    assert amqp_outcome(lambda ch: ch.queue_delete("mp.q"), leader)[1] == 541
    assert "mp.majority-q" not in leader.metadata("mp.")["queues"]

    cluster.heal()
    t0 = time.time()
    got = cluster.wait_converged(cluster.nodes, "mp.", timeout=40)
    print(f"isolated node converged {time.time() - t0:.1f} s after the heal")
    assert got == expected, (got, expected)
    assert "mp.minority-x" not in got["exchanges"]
    assert ["mp.q", "mp.x", "b.*"] in got["bindings"]
    assert "mp-v" in [v["name"] for v in leader.api("/api/vhosts")]
    assert leader.api("/api/users/mp-user")["name"] == "mp-user"
    assert leader.api("/api/policies/%2F/mp-pol")["definition"] == {"max-length": 10}
    # And it takes changes again.
    deadline = time.time() + 15
    while True:
        out = amqp_outcome(lambda ch: ch.queue_declare("mp.after-heal", durable=True), leader)
        if out[0] == "ok" or time.time() > deadline:
            break
        time.sleep(0.3)
    assert out[0] == "ok", out
    cluster.wait_converged(cluster.nodes, "mp.")
    st = leader.ctl("cluster-status")
    assert all(n["running"] for n in st["nodes"]), st


@pytest.mark.timeout(120)
def test_partitioned_follower_refuses_quickly(cluster):
    leader = stable_leader(cluster)
    follower = next(n for n in cluster.nodes if n.name != leader)
    cluster.partition(follower)
    try:
        t0 = time.time()
        kind, code, text = amqp_outcome(
            lambda ch: ch.exchange_declare("mp.follower-x", "fanout", durable=True), follower)
        took = time.time() - t0
        assert (kind, code) == ("refused", 541), (kind, code, text)
        assert took < REFUSE_WITHIN, f"refusal took {took:.1f} s"
        with pytest.raises(ApiError) as e:
            follower.delete("/api/queues/%2F/mp.q")
        assert e.value.status == 503, e.value
        # The majority deletes; the follower still has it until healed.
        other = next(n for n in cluster.nodes if n is not follower)
        deadline = time.time() + 20
        while True:
            out = amqp_outcome(lambda ch: ch.queue_delete("mp.majority-q"), other)
            if out[0] == "ok" or time.time() > deadline:
                break
            time.sleep(0.3)
        assert out[0] == "ok", (out, other.name, follower.name, leader)
    finally:
        cluster.heal()
    got = cluster.wait_converged(cluster.nodes, "mp.", timeout=40)
    assert "mp.majority-q" not in got["queues"] and "mp.follower-x" not in got["exchanges"]
    assert "mp.q" in got["queues"]
