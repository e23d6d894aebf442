"""Message TTL (queue ``x-message-ttl`` and per-message ``expiration``) and
queue TTL (``x-expires``), as RabbitMQ 3.10 does them."""

import time

import pika
import pika.exceptions
import pytest

from fhelpers import count, get_all, get_one, publish_confirmed, pump, pump_until

pytestmark = pytest.mark.timeout(20)

TTL = 0.1           # seconds; the short TTL used throughout
PAST_TTL = 0.25     # how long to wait for a TTL of 100 ms to have elapsed
# Publishes before such a wait are confirmed: the broker has enqueued the
# message (its TTL clock runs) before the wait starts, however slow the machine.


def test_queue_ttl_expired_messages_are_never_delivered(conn, ch, names):
    q = names.queue("ttl")
    ch.queue_declare(q, arguments={"x-message-ttl": 100})
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", q, b"old-%d" % i)
    time.sleep(PAST_TTL)
    # basic.get after expiry: get-empty, and the count drops to 0
    method, _, _ = ch.basic_get(q, auto_ack=True)
    assert method is None
    assert count(ch, q) == 0
    # a consumer that arrives after the expiry gets nothing old ...
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    pump(conn, 0.1)
    assert got == []
    # ... but does get a fresh message immediately (TTL only bites when it elapses)
    ch.basic_publish("", q, b"fresh")
    pump_until(conn, lambda: got, message="fresh delivery")
    assert got == [b"fresh"]


def test_queue_ttl_waiting_consumer_without_credit_gets_nothing_expired(connections, names):
    """A consumer that is already subscribed but has no prefetch room while
    the messages expire never receives them once it acks."""
    conn = connections()
    ch = conn.channel()
    q = names.queue("ttl-wait")
    ch.queue_declare(q, arguments={"x-message-ttl": 100})
    ch.basic_qos(prefetch_count=1)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append((m.delivery_tag, b)), auto_ack=False)
    pub = connections().channel()
    pub.confirm_delivery()
    pub.basic_publish("", q, b"first")
    pump_until(conn, lambda: len(got) == 1, message="first delivery")
    pub.basic_publish("", q, b"second")
    pub.basic_publish("", q, b"third")
    pump(conn, PAST_TTL)          # 'second'/'third' expire while prefetch is full
    ch.basic_ack(got[0][0])
    pump(conn, 0.15)
    assert [b for _, b in got] == [b"first"]


def test_queue_ttl_does_not_add_expiration_property(ch, names):
    q = names.queue("ttl-long")
    ch.queue_declare(q, arguments={"x-message-ttl": 60000})
    ch.basic_publish("", q, b"x")
    _, props, body = get_one(ch, q)
    assert body == b"x"
    assert props.expiration is None


def test_per_message_expiration(ch, names):
    q = names.queue("exp")
    ch.queue_declare(q)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="100"))
    ch.basic_publish("", q, b"long", pika.BasicProperties(expiration="60000"))
    time.sleep(PAST_TTL)
    got = get_all(ch, q)
    assert [b for _, _, b in got] == [b"long"]
    # the expiration property is delivered unchanged
    assert got[0][1].expiration == "60000"


def test_per_message_expiration_behind_a_longer_lived_head(ch, names):
    """An expired message that is not at the head is still never delivered."""
    q = names.queue("exp-mid")
    ch.queue_declare(q)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"long", pika.BasicProperties(expiration="60000"))
    ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="100"))
    ch.basic_publish("", q, b"none")
    time.sleep(PAST_TTL)
    assert [b for _, _, b in get_all(ch, q)] == [b"long", b"none"]


def test_lower_of_queue_and_message_ttl_wins(ch, names):
    q_short = names.queue("ttl-q-short")
    q_long = names.queue("ttl-q-long")
    ch.queue_declare(q_short, arguments={"x-message-ttl": 100})
    ch.queue_declare(q_long, arguments={"x-message-ttl": 60000})
    ch.confirm_delivery()
    ch.basic_publish("", q_short, b"msg-long", pika.BasicProperties(expiration="60000"))
    ch.basic_publish("", q_long, b"msg-short", pika.BasicProperties(expiration="100"))
    ch.basic_publish("", q_long, b"msg-none")
    time.sleep(PAST_TTL)
    assert get_all(ch, q_short) == []
    assert [b for _, _, b in get_all(ch, q_long)] == [b"msg-none"]


def test_expiration_zero_dropped_without_consumer(ch, names):
    dlx = names.exchange("exp0-dlx")
    dead = names.queue("exp0-dead")
    q = names.queue("exp0")
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dead)
    ch.queue_bind(dead, dlx)
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"zero", pika.BasicProperties(expiration="0"))
    # expired at once: dead-lettered with reason 'expired'
    _, props, body = get_one(ch, dead)
    assert body == b"zero"
    death = props.headers["x-death"][0]
    assert death["reason"] == "expired"
    assert death["original-expiration"] == "0"
    assert props.expiration is None
    assert ch.basic_get(q, auto_ack=True)[0] is None


def test_ttl_zero_never_left_for_a_get(ch, names):
    """A TTL-0 message no consumer took on arrival is gone at once: a
    basic.get right after the publish (same millisecond or not) finds
    nothing."""
    q = names.queue("ttl0-get")
    ch.queue_declare(q, arguments={"x-message-ttl": 0})
    got = 0
    for i in range(50):
        ch.basic_publish("", q, b"%d" % i)
        if ch.basic_get(q, auto_ack=True)[0] is not None:
            got += 1
    assert got == 0


def test_expiration_zero_delivered_to_ready_consumer(conn, ch, names):
    q = names.queue("exp0-c")
    ch.queue_declare(q)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append((b, p.expiration)), auto_ack=True)
    ch.basic_publish("", q, b"zero", pika.BasicProperties(expiration="0"))
    pump_until(conn, lambda: got, message="delivery of expiration=0 message")
    assert got == [(b"zero", "0")]


def test_queue_ttl_zero_delivers_only_to_consumers_with_room(connections, names):
    conn = connections()
    ch = conn.channel()
    q = names.queue("ttl0")
    ch.queue_declare(q, arguments={"x-message-ttl": 0})
    ch.basic_qos(prefetch_count=1)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append((m.delivery_tag, b)), auto_ack=False)
    pub = connections().channel()
    pub.confirm_delivery()              # "b" is enqueued before the ack below
    pub.basic_publish("", q, b"a")
    pump_until(conn, lambda: len(got) == 1, message="first delivery")
    pub.basic_publish("", q, b"b")      # no room: expires immediately
    pump(conn, 0.1)
    ch.basic_ack(got[0][0])
    pump(conn, 0.15)
    assert [b for _, b in got] == [b"a"]
    assert count(ch, q) == 0


@pytest.mark.parametrize("expiration,detail", [
    ("abc", "no_integer"),
    ("", "no_integer"),
    (" 100", "no_integer"),
    ("-1", "{value_negative,-1}"),
    ("1.5", '{leftover_string,".5"}'),
])
def test_invalid_expiration_closes_channel(conn, names, expiration, detail):
    ch = conn.channel()
    q = names.queue("exp-bad")
    ch.queue_declare(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_publish("", q, b"x", pika.BasicProperties(expiration=expiration))
        ch.queue_declare(q, passive=True)   # sync point: the close arrives first
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == \
        f"PRECONDITION_FAILED - invalid expiration '{expiration}': {detail}"
    ch2 = conn.channel()
    assert count(ch2, q) == 0     # and the message was not enqueued


@pytest.mark.parametrize("args,detail", [
    ({"x-message-ttl": -1}, "'x-message-ttl' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
    ({"x-message-ttl": "100"},
     "'x-message-ttl' for queue '{q}' in vhost '/': \"expected integer, got longstr\""),
    ({"x-expires": 0}, "'x-expires' for queue '{q}' in vhost '/': {{value_zero,0}}"),
    ({"x-expires": -5}, "'x-expires' for queue '{q}' in vhost '/': {{value_negative,-5}}"),
])
def test_invalid_ttl_arguments(conn, names, args, detail):
    ch = conn.channel()
    q = names.queue("ttl-arg")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, arguments=args)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - invalid arg " + detail.format(q=q)


def test_zero_message_ttl_and_tiny_expires_are_valid(ch, names):
    ch.queue_declare(names.queue("ttl-ok"), arguments={"x-message-ttl": 0})
    ch.queue_declare(names.queue("exp-ok"), arguments={"x-expires": 60000})


def _wait_gone(ch, q, timeout=10.0):
    """Poll by publishing with mandatory on a confirm channel: publishing does
    NOT count as use of the queue (a passive declare or basic.get would reset
    the x-expires timer).  Returns seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if publish_confirmed(ch, "", q, b"probe", mandatory=True) == "returned":
            return time.monotonic() - t0
        time.sleep(0.01)
    raise AssertionError(f"queue {q} was not deleted within {timeout}s")


def test_x_expires_deletes_unused_queue(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    q = names.queue("expires")
    t0 = time.monotonic()
    ch.queue_declare(q, arguments={"x-expires": 200})
    assert publish_confirmed(ch, "", q, b"m", mandatory=True) == "ack"
    _wait_gone(ch, q)
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.18, f"queue expired too early ({elapsed:.3f}s)"
    probe = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        probe.queue_declare(q, passive=True)
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == f"NOT_FOUND - no queue '{q}' in vhost '/'"


def test_x_expires_held_off_by_consumer_and_by_redeclare(connections, names):
    # x-expires of 1 s, uses every 0.3 s: a loaded machine has 0.7 s of slack.
    conn = connections()
    ch = conn.channel()
    q = names.queue("expires-used")
    ch.queue_declare(q, arguments={"x-expires": 1000})
    # a consumer keeps the queue alive
    tag = ch.basic_consume(q, lambda *a: None, auto_ack=True)
    pump(conn, 1.5)
    ch.queue_declare(q, passive=True)        # still there (and: re-declare = use)
    ch.basic_cancel(tag)
    # repeated passive declares keep resetting the timer
    for _ in range(4):
        time.sleep(0.3)
        ch.queue_declare(q, passive=True)
    # left alone it goes away ~1 s after the last use
    pch = connections().channel()
    pch.confirm_delivery()
    waited = _wait_gone(pch, q)
    assert waited >= 0.1
