"""Quorum queues (``x-queue-type: quorum``) as RabbitMQ 3.10 runs them
(issue 17): message TTL (argument, policy, per-message ``expiration``) with
dead-lettering reason ``expired``, the ``delivery-limit`` policy,
single-active-consumer, consumer priorities, the exclusive flag, and
``basic.qos`` (per consumer, fixed at consume; global refused).

A single Warren node (no ``--cluster-port``) takes ``x-queue-type: quorum``
as a classic queue: the tests marked ``real_quorum`` skip there (they need
the replicated queue's own rules); the ``real_quorum`` fixture tells by
asking for a non-durable quorum queue, which a real one refuses.
"""

import collections
import time

import pika
import pika.exceptions
import pytest

from fhelpers import count, get_all, get_one, pump, pump_until
from helpers import connect, vhost
from mgmt import Policies

pytestmark = pytest.mark.timeout(30)

QQ = {"x-queue-type": "quorum"}


@pytest.fixture(scope="module")
def real_quorum():
    conn = connect()
    try:
        conn.channel().queue_declare(f"qq-probe.{time.time_ns()}", durable=False,
                                     arguments=dict(QQ), exclusive=True)
        return False
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 406
        return True
    finally:
        if conn.is_open:
            conn.close()


@pytest.fixture
def needs_real_quorum(real_quorum):
    if not real_quorum:
        pytest.skip("this broker takes x-queue-type quorum as a classic queue")


@pytest.fixture
def policies(mgmt):
    p = Policies(mgmt)
    yield p
    p.clear_all()


def declare_qq(ch, name, **args):
    a = dict(QQ)
    a.update(args)
    return ch.queue_declare(name, durable=True, arguments=a)


def dead_letter_queue(ch, names):
    """A fanout dead-letter exchange and the classic queue bound to it."""
    dlx, dlq = names.exchange("qq-dlx"), names.queue("qq-dlq")
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    return dlx, dlq


def text(v):
    return v.decode() if isinstance(v, bytes) else v


# ---- message TTL ----

def test_message_ttl_and_expiration_dead_letter_as_expired(ch, names):
    dlx, dlq = dead_letter_queue(ch, names)
    q = names.queue("qq-ttl")
    declare_qq(ch, q, **{"x-message-ttl": 200, "x-dead-letter-exchange": dlx})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"queue-ttl")
    ch.basic_publish("", q, b"own-ttl", pika.BasicProperties(expiration="50"))
    got = [get_one(ch, dlq) for _ in range(2)]
    assert [b for _, _, b in got] == [b"queue-ttl", b"own-ttl"]
    for _, props, _ in got:
        death = props.headers["x-death"][0]
        assert text(death["reason"]) == "expired"
        assert text(death["queue"]) == q
        assert text(props.headers["x-first-death-reason"]) == "expired"
    # The message's own TTL moves to x-death's original-expiration.
    own = got[1][1]
    assert own.expiration is None
    assert text(own.headers["x-death"][0]["original-expiration"]) == "50"
    assert "original-expiration" not in got[0][1].headers["x-death"][0]
    assert count(ch, q) == 0


def test_per_message_expiration_without_queue_ttl(ch, names):
    q = names.queue("qq-exp")
    declare_qq(ch, q)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="100"))
    ch.basic_publish("", q, b"long", pika.BasicProperties(expiration="60000"))
    time.sleep(0.4)
    # The expired head is gone (dropped: no dead-letter exchange).
    _, _, body = get_one(ch, q)
    assert body == b"long"
    assert ch.basic_get(q, auto_ack=True)[0] is None


def test_expired_messages_never_reach_a_late_consumer(conn, ch, names):
    q = names.queue("qq-ttl-late")
    declare_qq(ch, q, **{"x-message-ttl": 100})
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", q, b"old-%d" % i)
    time.sleep(0.4)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    pump(conn, 0.3)
    assert got == []
    ch.basic_publish("", q, b"fresh")
    pump_until(conn, lambda: got, message="fresh delivery")
    assert got == [b"fresh"]


def test_message_ttl_policy(ch, names, policies):
    q = names.queue("qq-ttlpol")
    declare_qq(ch, q)
    policies.set((f"ttl-{q}", f"^{q}$", {"message-ttl": 100}))
    ch.confirm_delivery()
    ch.basic_publish("", q, b"x")
    time.sleep(0.4)
    assert ch.basic_get(q, auto_ack=True)[0] is None
    assert count(ch, q) == 0


# ---- delivery-limit policy ----

def test_delivery_limit_policy_dead_letters(conn, ch, names, policies, needs_real_quorum):
    dlx, dlq = dead_letter_queue(ch, names)
    q = names.queue("qq-dlpol")
    declare_qq(ch, q, **{"x-dead-letter-exchange": dlx})
    policies.set((f"dl-{q}", f"^{q}$", {"delivery-limit": 1}))
    # The group takes the policy a moment after it is set (its leader
    # proposes it); the tests give it time before the first return.
    time.sleep(1.5)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"poison")
    ch.basic_qos(prefetch_count=1)
    seen = []

    def on_message(c, m, p, b):
        seen.append(m.redelivered)
        c.basic_nack(m.delivery_tag, requeue=True)

    ch.basic_consume(q, on_message)
    # Returned once (1 <= limit): redelivered; returned again: dead.
    pump_until(conn, lambda: len(seen) == 2, message="two deliveries")
    pump(conn, 0.5)
    _, props, body = get_one(ch, dlq)
    assert body == b"poison"
    assert text(props.headers["x-death"][0]["reason"]) == "delivery_limit"
    assert seen == [False, True]


@pytest.mark.parametrize("limit,dies", [(-1, True), (0, True), ("x", False)])
def test_delivery_limit_argument_values(ch, names, needs_real_quorum, limit, dies):
    """RabbitMQ 3.10 takes any x-delivery-limit: a negative one acts as 0
    (the first return dead-letters), a non-integer is ignored."""
    dlx, dlq = dead_letter_queue(ch, names)
    q = names.queue("qq-dlarg")
    declare_qq(ch, q, **{"x-delivery-limit": limit, "x-dead-letter-exchange": dlx})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"m")
    method, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_nack(method.delivery_tag, requeue=True)
    if dies:
        _, props, _ = get_one(ch, dlq)
        assert text(props.headers["x-death"][0]["reason"]) == "delivery_limit"
        assert ch.basic_get(q, auto_ack=True)[0] is None
    else:
        method, _, _ = get_one(ch, q)
        assert method.redelivered


# ---- single active consumer ----

def test_single_active_consumer_takes_over_on_cancel_and_close(connections, names):
    c1, c2, c3 = connections(), connections(), connections()
    ch1, ch2, ch3 = c1.channel(), c2.channel(), c3.channel()
    q = names.queue("qq-sac")
    declare_qq(ch1, q, **{"x-single-active-consumer": True})
    got = []
    ch1.basic_consume(q, lambda c, m, p, b: got.append(("a", b)), auto_ack=True,
                      consumer_tag="a")
    ch2.basic_consume(q, lambda c, m, p, b: got.append(("b", b)), auto_ack=True)
    ch3.basic_consume(q, lambda c, m, p, b: got.append(("c", b)), auto_ack=True)
    pub = connections().channel()
    pub.confirm_delivery()
    for i in range(4):
        pub.basic_publish("", q, b"%d" % i)

    def pump_all(pred):
        deadline = time.monotonic() + 15
        while not pred():
            assert time.monotonic() < deadline, got
            for c in (c1, c2, c3):
                if c.is_open:
                    c.process_data_events(time_limit=0.02)

    pump_all(lambda: len(got) == 4)
    assert got == [("a", b"%d" % i) for i in range(4)]
    # The active consumer cancels: the next one (in consume order) takes over.
    ch1.basic_cancel("a")
    pub.basic_publish("", q, b"after-cancel")
    pump_all(lambda: len(got) == 5)
    assert got[4] == ("b", b"after-cancel")
    # Its connection closes: the next again.
    c2.close()
    pub.basic_publish("", q, b"after-close")
    pump_all(lambda: len(got) == 6)
    assert got[5] == ("c", b"after-close")


def test_single_active_consumer_argument_type_is_checked(ch, names):
    q = names.queue("qq-sacbad")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        declare_qq(ch, q, **{"x-single-active-consumer": "yes"})
    assert e.value.reply_code == 406
    assert e.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue '{q}' "
        f"in vhost '{vhost()}': {{unacceptable_type,longstr}}")


def test_message_ttl_argument_is_checked(ch, names):
    q = names.queue("qq-ttlbad")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        declare_qq(ch, q, **{"x-message-ttl": -1})
    assert e.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue '{q}' "
        f"in vhost '{vhost()}': {{value_negative,-1}}")


# ---- consumer priorities, exclusive flag ----

def test_consumer_priorities(conn, ch, names):
    q = names.queue("qq-prio")
    declare_qq(ch, q)
    ch.basic_qos(prefetch_count=2)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append("low"), arguments={"x-priority": 1})
    ch.basic_consume(q, lambda c, m, p, b: got.append("high"),
                     arguments={"x-priority": 10})
    pub = connect().channel()
    pub.confirm_delivery()
    for _ in range(6):
        pub.basic_publish("", q, b"m")
    pump_until(conn, lambda: len(got) == 4, message="4 deliveries")
    pump(conn, 0.3)
    # The high-priority consumer fills its prefetch first, the low one gets
    # what it cannot take; two wait.
    assert collections.Counter(got) == {"high": 2, "low": 2}
    assert got[:2] == ["high", "high"]
    pub.connection.close()


def test_exclusive_flag_is_not_enforced(connections, names, needs_real_quorum):
    """RabbitMQ 3.10's quorum queues take basic.consume's exclusive flag
    and let other consumers attach anyway (a classic queue refuses them)."""
    ch1, ch2 = connections().channel(), connections().channel()
    q = names.queue("qq-excl")
    declare_qq(ch1, q)
    ch1.basic_consume(q, lambda *a: None, exclusive=True)
    ch2.basic_consume(q, lambda *a: None)
    ch2.basic_consume(q, lambda *a: None, exclusive=True)
    assert count(ch2, q) == 0


# ---- basic.qos ----

def test_global_qos_is_refused(conn, ch, names):
    q = names.queue("qq-gqos")
    declare_qq(ch, q)
    ch.basic_qos(prefetch_count=5, global_qos=True)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.basic_consume(q, lambda *a: None)
        conn.process_data_events(time_limit=1)
    assert e.value.reply_code == 540
    assert e.value.reply_text == (
        f"NOT_IMPLEMENTED - queue '{q}' in vhost '{vhost()}' does not support global qos")


def test_qos_applies_to_consumers_made_after_it(conn, ch, names, real_quorum):
    q = names.queue("qq-qos")
    declare_qq(ch, q)
    got = []
    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(q, lambda c, m, p, b: got.append("first"))
    ch.basic_qos(prefetch_count=3)
    pub = connect().channel()
    pub.confirm_delivery()
    for i in range(10):
        pub.basic_publish("", q, b"%d" % i)
    pump_until(conn, lambda: len(got) >= 1, message="first delivery")
    pump(conn, 0.3)
    first = len(got)
    ch.basic_consume(q, lambda c, m, p, b: got.append("second"))
    pump_until(conn, lambda: got.count("second") == 3, message="3 for the second")
    pump(conn, 0.3)
    assert got.count("second") == 3
    if real_quorum:
        # A quorum queue consumer keeps the prefetch it consumed with.
        assert first == 1 and got.count("first") == 1
    pub.connection.close()


# ---- what RabbitMQ refuses on a quorum queue ----

@pytest.mark.parametrize("kw,arg,why", [
    ({"durable": False}, None, "invalid property 'non-durable'"),
    ({"durable": True, "exclusive": True}, None, "invalid property 'exclusive-owner'"),
    ({"durable": True, "auto_delete": True}, None, "invalid property 'auto-delete'"),
    ({"durable": True}, {"x-max-priority": 5}, "invalid arg 'x-max-priority'"),
])
def test_refusals(connections, names, needs_real_quorum, kw, arg, why):
    ch = connections().channel()
    q = names.queue("qq-bad")
    a = dict(QQ)
    a.update(arg or {})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(q, arguments=a, **kw)
    assert e.value.reply_code == 406
    tail = " of queue type rabbit_quorum_queue" if arg else ""
    assert e.value.reply_text == (
        f"PRECONDITION_FAILED - {why} for queue '{q}' in vhost '{vhost()}'{tail}")


def test_get_all_helper_drains(ch, names):
    # get_all on a quorum queue: messages come back in publish order.
    q = names.queue("qq-order")
    declare_qq(ch, q)
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", q, b"%d" % i)
    assert [b for _, _, b in get_all(ch, q)] == [b"%d" % i for i in range(5)]
