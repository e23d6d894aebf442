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

from cluster_harness import started_cluster, WARREN_BIN, Cluster, free_port

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")

QQ = {"x-queue-type": "quorum"}


@pytest.fixture(scope="module")
def cluster():
    yield from started_cluster(log_tail=2000)


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


# ---- consuming (plan step 3) ----

def wait_leader_of(node, name, timeout=20, not_=None):
    q = queue_info(node, name, timeout=timeout,
                   want=lambda q: q.get("leader") not in (None, not_)
                   and len(q.get("online", [])) >= 2)
    return q["leader"]


class Taker:
    """A manual-ack (or no-ack) consumer whose deliveries pile up in a list."""

    def __init__(self, node, queue, prefetch=0, auto_ack=False):
        self.conn = node.connect()
        self.ch = self.conn.channel()
        if prefetch:
            self.ch.basic_qos(prefetch_count=prefetch)
        self.got = []  # (delivery_tag, body, redelivered)
        self.tag = self.ch.basic_consume(queue, self._on, auto_ack=auto_ack)

    def _on(self, ch, method, props, body):
        self.got.append((method.delivery_tag, body, method.redelivered))

    def wait(self, n, timeout=20):
        deadline = time.time() + timeout
        while len(self.got) < n and time.time() < deadline:
            self.conn.process_data_events(time_limit=0.1)
        return self.got

    def settle_quietly(self, seconds=0.5):
        self.conn.process_data_events(time_limit=seconds)

    def close(self):
        try:
            if self.conn.is_open:
                self.conn.close()
        except Exception:
            pass


def publish_bodies(node, queue, bodies):
    conn = node.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    for b in bodies:
        ch.basic_publish("", queue, b, pika.BasicProperties(delivery_mode=2))
    conn.close()


def declare_qq(node, name):
    conn = node.connect()
    conn.channel().queue_declare(name, durable=True, arguments=QQ)
    conn.close()
    return wait_leader_of(node, name)


def test_consume_on_a_non_leader_node(cluster):
    n1 = cluster.node("n1")
    leader = declare_qq(n1, "qq.c")
    other = next(n for n in cluster.nodes if n.name != leader)
    bodies = [b"m%d" % i for i in range(50)]
    publish_bodies(cluster.node(leader), "qq.c", bodies)
    t = Taker(other, "qq.c", prefetch=10)
    assert len(t.wait(10)) == 10
    t.settle_quietly(0.3)
    assert len(t.got) == 10    # prefetch holds
    # declare-ok and the API count the unacked/ready on every member.
    q = queue_info(other, "qq.c", want=lambda q: q["messages_unacknowledged"] == 10)
    assert q["consumers"] == 1 and q["messages_ready"] == 40, q
    acked = 0
    deadline = time.time() + 30
    while acked < 50 and time.time() < deadline:
        t.conn.process_data_events(time_limit=0.1)
        while acked < len(t.got):
            t.ch.basic_ack(t.got[acked][0])
            acked += 1
    got = t.got
    assert [b for _, b, _ in got] == bodies
    assert not any(r for _, _, r in got)
    t.settle_quietly()
    for n in cluster.nodes:
        queue_info(n, "qq.c", want=lambda q: q["messages"] == 0)
    t.close()


def test_ack_reject_requeue_and_redelivered(cluster):
    n2 = cluster.node("n2")
    publish_bodies(n2, "qq.c", [b"a", b"b", b"c"])
    t = Taker(n2, "qq.c", prefetch=10)
    got = t.wait(3)
    assert [(b, r) for _, b, r in got] == [(b"a", False), (b"b", False), (b"c", False)]
    t.ch.basic_nack(got[0][0], requeue=True)      # back, redelivered
    t.ch.basic_reject(got[1][0], requeue=False)   # gone (no DLX)
    t.ch.basic_ack(got[2][0])
    got = t.wait(4)
    assert got[3][1:] == (b"a", True)
    t.ch.basic_ack(got[3][0])
    t.ch.basic_cancel(t.tag)
    t.settle_quietly()
    queue_info(n2, "qq.c", want=lambda q: q["messages"] == 0 and q["consumers"] == 0)
    t.close()


def test_basic_get_and_purge(cluster):
    n3 = cluster.node("n3")
    publish_bodies(n3, "qq.c", [b"g%d" % i for i in range(6)])
    queue_info(n3, "qq.c", want=lambda q: q["messages"] == 6)
    conn = n3.connect()
    ch = conn.channel()
    m, _, body = ch.basic_get("qq.c", auto_ack=True)
    assert (body, m.message_count, m.redelivered) == (b"g0", 5, False)
    m, _, body = ch.basic_get("qq.c", auto_ack=False)
    assert (body, m.message_count) == (b"g1", 4)
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, _, body = ch.basic_get("qq.c", auto_ack=False)
    assert (body, m.redelivered) == (b"g1", True)
    ch.basic_ack(m.delivery_tag)
    m, _, body = ch.basic_get("qq.c", auto_ack=False)   # held unacked
    assert body == b"g2"
    assert ch.queue_purge("qq.c").method.message_count == 3
    assert ch.basic_get("qq.c", auto_ack=True) == (None, None, None)
    conn.close()    # the unacked get goes back
    for n in cluster.nodes:
        queue_info(n, "qq.c", want=lambda q: q["messages"] == 1)
    conn = n3.connect()
    m, _, body = conn.channel().basic_get("qq.c", auto_ack=True)
    assert (body, m.redelivered) == (b"g2", True)
    conn.close()


def test_close_returns_unacked_to_other_consumers(cluster):
    n1, n2 = cluster.node("n1"), cluster.node("n2")
    publish_bodies(n1, "qq.c", [b"r%d" % i for i in range(5)])
    a = Taker(n1, "qq.c", prefetch=5)
    assert len(a.wait(5)) == 5
    b = Taker(n2, "qq.c", prefetch=5)
    b.settle_quietly()
    assert b.got == []
    a.close()
    got = b.wait(5)
    assert sorted(x for _, x, _ in got) == [b"r%d" % i for i in range(5)]
    assert all(r for _, _, r in got)
    for tag, _, _ in got:
        b.ch.basic_ack(tag)
    b.settle_quietly()
    queue_info(n2, "qq.c", want=lambda q: q["messages"] == 0)
    b.close()


def test_consumer_options_as_rabbitmq(cluster):
    """x-priority and the exclusive flag are taken (RabbitMQ 3.10 does not
    enforce exclusive on quorum queues); a global prefetch is refused with
    540 NOT_IMPLEMENTED, a connection error in AMQP 0-9-1."""
    conn = cluster.node("n1").connect()
    ch = conn.channel()
    ch.basic_consume("qq.c", lambda *a: None, arguments={"x-priority": 5})
    ch.basic_consume("qq.c", lambda *a: None, exclusive=True)
    ch.basic_consume("qq.c", lambda *a: None)
    conn.close()
    conn = cluster.node("n1").connect()
    ch = conn.channel()
    ch.basic_qos(prefetch_count=5, global_qos=True)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.basic_consume("qq.c", lambda *a: None)
        conn.process_data_events(time_limit=1)
    assert e.value.reply_code == 540
    assert e.value.reply_text == (
        "NOT_IMPLEMENTED - queue 'qq.c' in vhost '/' does not support global qos")
    if conn.is_open:
        conn.close()


# ---- poison messages and dead-lettering (plan step 6) ----

def text(v):
    return v.decode() if isinstance(v, bytes) else v


def dead_letter_setup(node, name, **args):
    """A quorum queue `name` dead-lettering to fanout `qq.dlx` -> classic
    `qq.dlq`; returns a non-leader node of `name` (consumers there make the
    leader route the dead letters on another node)."""
    conn = node.connect()
    ch = conn.channel()
    ch.exchange_declare("qq.dlx", "fanout", durable=True)
    ch.queue_declare("qq.dlq", durable=True)
    ch.queue_bind("qq.dlq", "qq.dlx")
    a = dict(QQ)
    a.update(args)
    ch.queue_declare(name, durable=True, arguments=a)
    conn.close()
    return wait_leader_of(node, name)


def get_one(node, queue, timeout=15):
    conn = node.connect()
    ch = conn.channel()
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method:
                return props, body
            time.sleep(0.1)
        raise AssertionError(f"nothing in {queue}")
    finally:
        conn.close()


def test_delivery_limit_and_dead_letter_args_accepted(cluster):
    n1 = cluster.node("n1")
    assert refusal(n1, "qq.dla", durable=True, arguments={
        "x-delivery-limit": 3, "x-dead-letter-exchange": "qq.dlx",
        "x-dead-letter-routing-key": "k"}) is None
    # RabbitMQ 3.10 takes any x-delivery-limit: a negative one acts as 0,
    # a non-integer is ignored (checked against the RabbitMQ on this machine).
    assert refusal(n1, "qq.dln", durable=True, arguments={"x-delivery-limit": -1}) is None
    assert refusal(n1, "qq.dls", durable=True, arguments={"x-delivery-limit": "x"}) is None


def test_rejected_message_is_dead_lettered(cluster):
    n1 = cluster.node("n1")
    leader = dead_letter_setup(n1, "qq.rej", **{"x-dead-letter-exchange": "qq.dlx"})
    other = next(n for n in cluster.nodes if n.name != leader)
    publish_bodies(other, "qq.rej", [b"r1"])
    t = Taker(other, "qq.rej", prefetch=10)
    got = t.wait(1)
    t.ch.basic_reject(got[0][0], requeue=False)
    t.settle_quietly()
    props, body = get_one(n1, "qq.dlq")
    assert body == b"r1"
    death = props.headers["x-death"][0]
    assert text(death["reason"]) == "rejected", props.headers
    assert text(death["queue"]) == "qq.rej" and death["count"] == 1, props.headers
    assert text(props.headers["x-first-death-reason"]) == "rejected"
    t.close()
    queue_info(other, "qq.rej", want=lambda q: q["messages"] == 0)


def test_dead_letter_exchange_by_policy(cluster):
    n3 = cluster.node("n3")
    assert n3.put("/api/policies/%2F/qq-dlx", {
        "pattern": "^qq\\.pol$", "apply-to": "queues",
        "definition": {"dead-letter-exchange": "qq.dlx"}}) in (201, 204)
    leader = dead_letter_setup(n3, "qq.pol")
    other = next(n for n in cluster.nodes if n.name != leader)
    # Every node (the leader too) has the policy applied before the reject.
    for n in cluster.nodes:
        queue_info(n, "qq.pol", want=lambda q: q.get("policy") == "qq-dlx")
    publish_bodies(other, "qq.pol", [b"pol"])
    t = Taker(other, "qq.pol", prefetch=1)
    got = t.wait(1)
    t.ch.basic_reject(got[0][0], requeue=False)
    t.settle_quietly()
    props, body = get_one(n3, "qq.dlq")
    assert body == b"pol"
    assert text(props.headers["x-death"][0]["queue"]) == "qq.pol"
    t.close()
    assert n3.delete("/api/policies/%2F/qq-dlx") in (200, 204)


def test_delivery_limit_dead_letters_a_poison_message(cluster):
    n2 = cluster.node("n2")
    leader = dead_letter_setup(n2, "qq.poison", **{
        "x-dead-letter-exchange": "qq.dlx", "x-delivery-limit": 2})
    other = next(n for n in cluster.nodes if n.name != leader)
    publish_bodies(other, "qq.poison", [b"p1"])
    counts = []

    class Counting(Taker):
        def _on(self, ch, method, props, body):
            counts.append((props.headers or {}).get("x-delivery-count"))
            super()._on(ch, method, props, body)

    t = Counting(other, "qq.poison", prefetch=1)
    # Returned 3 times: over a limit of 2 (RabbitMQ 3.10 counts returns).
    for i in range(3):
        got = t.wait(i + 1)
        assert len(got) == i + 1 and got[i][1] == b"p1", got
        assert got[i][2] == (i > 0)
        t.ch.basic_nack(got[i][0], requeue=True)
    # 3.10 marks each redelivery with the returns so far.
    assert counts == [None, 1, 2], counts
    props, body = get_one(n2, "qq.dlq")
    assert body == b"p1"
    assert text(props.headers["x-death"][0]["reason"]) == "delivery_limit", props.headers
    t.settle_quietly(1)
    assert len(t.got) == 3
    t.close()
    queue_info(other, "qq.poison", want=lambda q: q["messages"] == 0)


def test_delivery_limit_without_dead_letter_exchange_drops(cluster):
    n3 = cluster.node("n3")
    declare = n3.connect()
    declare.channel().queue_declare("qq.drop", durable=True, arguments={
        **QQ, "x-delivery-limit": 0})
    declare.close()
    wait_leader_of(n3, "qq.drop")
    publish_bodies(n3, "qq.drop", [b"x"])
    t = Taker(n3, "qq.drop", prefetch=1)
    got = t.wait(1)
    t.ch.basic_nack(got[0][0], requeue=True)
    t.settle_quietly(1)
    assert len(t.got) == 1
    t.close()
    queue_info(n3, "qq.drop", want=lambda q: q["messages"] == 0)


def test_leader_kill_with_unacked_messages(cluster):
    """kill -9 of the leader while a consumer on another node holds unacked
    messages: every confirmed message is consumed at least once, the first
    deliveries in publish order, redelivered ones flagged; the consumer
    keeps consuming under the new leader."""
    n1 = cluster.node("n1")
    leader = declare_qq(n1, "qq.k")
    other = next(n for n in cluster.nodes if n.name != leader)
    bodies = [b"k%03d" % i for i in range(100)]
    publish_bodies(other, "qq.k", bodies)
    t = Taker(other, "qq.k", prefetch=20)
    got = t.wait(20)
    for tag, _, _ in got[:10]:
        t.ch.basic_ack(tag)
    t.settle_quietly(0.3)
    cluster.node(leader).kill()
    acked = set(b for _, b, _ in got[:10])
    deadline = time.time() + 60
    i = 10
    while len(acked) < 100 and time.time() < deadline:
        t.conn.process_data_events(time_limit=0.2)
        while i < len(t.got):
            tag, b, _ = t.got[i]
            t.ch.basic_ack(tag)
            acked.add(b)
            i += 1
    assert len(acked) == 100, f"consumed {len(acked)} of 100"
    first = []
    for _, b, _ in t.got:
        if b not in first:
            first.append(b)
    assert first == bodies
    for _, b, r in t.got[20:]:
        if b in [x for _, x, _ in t.got[:20]]:
            assert r, b
    t.close()
    cluster.restart(cluster.node(leader))
    queue_info(cluster.node(leader), "qq.k", timeout=30,
               want=lambda q: q["messages"] == 0 and len(q.get("online", [])) == 3)


def test_consumer_node_killed_messages_go_to_another_consumer(cluster):
    n1 = cluster.node("n1")
    leader = declare_qq(n1, "qq.n")
    victim = next(n for n in cluster.nodes if n.name != leader)
    keeper = next(n for n in cluster.nodes if n.name not in (leader, victim.name))
    bodies = [b"n%d" % i for i in range(20)]
    a = Taker(victim, "qq.n", prefetch=20)
    a.settle_quietly(0.5)
    publish_bodies(cluster.node(leader), "qq.n", bodies)
    assert len(a.wait(20)) == 20
    b = Taker(keeper, "qq.n", prefetch=50)
    victim.kill()
    got = b.wait(20, timeout=40)
    assert sorted(x for _, x, _ in got) == sorted(bodies)
    assert all(r for _, _, r in got)
    for tag, _, _ in got:
        b.ch.basic_ack(tag)
    b.settle_quietly()
    b.close()
    a.close()
    cluster.restart(victim)
    queue_info(victim, "qq.n", timeout=30,
               want=lambda q: q["messages"] == 0 and len(q.get("online", [])) == 3)


def test_stomp_consumes_from_a_quorum_queue(cluster):
    """STOMP's /amq/queue/Q subscribes to an existing queue, a quorum queue too
    (as RabbitMQ allows); acks are client-individual."""
    stomp = pytest.importorskip("stomp")
    n2 = cluster.node("n2")
    n2.stomp_port = free_port()
    cluster.restart(n2)
    n1 = cluster.node("n1")
    declare_qq(n1, "qq.s")
    bodies = [f"s{i}" for i in range(5)]
    publish_bodies(n1, "qq.s", [b.encode() for b in bodies])
    got = []

    class L(stomp.ConnectionListener):
        def on_message(self, frame):
            got.append(frame)

    conn = stomp.Connection([("127.0.0.1", n2.stomp_port)], heartbeats=(0, 0))
    conn.set_listener("", L())
    conn.connect("guest", "guest", wait=True)
    conn.subscribe("/amq/queue/qq.s", id="1", ack="client-individual",
                   headers={"prefetch-count": "10"})
    deadline = time.time() + 20
    while len(got) < 5 and time.time() < deadline:
        time.sleep(0.05)
    assert [f.body for f in got] == bodies
    for f in got:
        conn.ack(f.headers["ack"] if "ack" in f.headers else f.headers["message-id"], "1")
    deadline = time.time() + 10
    while time.time() < deadline:
        if queue_info(n2, "qq.s")["messages"] == 0:
            break
        time.sleep(0.1)
    assert queue_info(n2, "qq.s")["messages"] == 0
    conn.disconnect()
