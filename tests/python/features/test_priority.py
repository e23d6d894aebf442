"""Priority queues (``x-max-priority``), consumer priorities (``x-priority``)
and single active consumer (``x-single-active-consumer``)."""

import pika
import pika.exceptions
import pytest

from fhelpers import count, get_all, get_one, pump, pump_until

pytestmark = pytest.mark.timeout(20)


def test_priority_order_fifo_within_priority_and_cap(ch, names):
    q = names.queue("prio")
    ch.queue_declare(q, arguments={"x-max-priority": 10})
    msgs = [(None, "n1"), (3, "p3a"), (7, "p7"), (10, "p10"), (0, "p0"), (3, "p3b"),
            (12, "p12"), (None, "n2"), (255, "p255"), (1, "p1")]
    for prio, body in msgs:
        ch.basic_publish("", q, body.encode(), pika.BasicProperties(priority=prio))
    got = get_all(ch, q)
    # above max is treated as max (FIFO with the max ones); no priority == 0
    assert [b.decode() for _, _, b in got] == \
        ["p10", "p12", "p255", "p7", "p3a", "p3b", "p1", "n1", "p0", "n2"]
    # the priority property itself is delivered unchanged
    assert [p.priority for _, p, _ in got] == [10, 12, 255, 7, 3, 3, 1, None, 0, None]


def test_priority_consumer_attached_later(conn, ch, names):
    q = names.queue("prio-c")
    ch.queue_declare(q, arguments={"x-max-priority": 5})
    for prio in (1, 5, 3, 5, 1):
        ch.basic_publish("", q, b"%d" % prio, pika.BasicProperties(priority=prio))
    cch = conn.channel()
    cch.basic_qos(prefetch_count=1)
    got = []

    def on_msg(c, m, p, b):
        got.append(b)
        c.basic_ack(m.delivery_tag)

    cch.basic_consume(q, on_msg)
    pump_until(conn, lambda: len(got) == 5, message="5 deliveries")
    assert got == [b"5", b"5", b"3", b"1", b"1"]


def test_priority_requeue_goes_back_in_priority_order(ch, names):
    q = names.queue("prio-rq")
    ch.queue_declare(q, arguments={"x-max-priority": 5})
    for prio, body in ((1, b"a"), (2, b"b"), (1, b"c")):
        ch.basic_publish("", q, body, pika.BasicProperties(priority=prio))
    tags = [get_one(ch, q, auto_ack=False)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[-1], multiple=True, requeue=True)
    got = get_all(ch, q)
    assert [b for _, _, b in got] == [b"b", b"a", b"c"]
    assert all(m.redelivered for m, _, _ in got)


def test_non_priority_queue_ignores_priority(ch, names):
    q = names.queue("noprio")
    ch.queue_declare(q)
    for prio, body in ((1, b"a"), (9, b"b"), (5, b"c")):
        ch.basic_publish("", q, body, pika.BasicProperties(priority=prio))
    assert [b for _, _, b in get_all(ch, q)] == [b"a", b"b", b"c"]


@pytest.mark.parametrize("value,detail", [
    (256, "{{max_value_exceeded,256}}"),
    (-1, "{{value_negative,-1}}"),
    ("5", "\"expected integer, got longstr\""),
])
def test_invalid_max_priority(conn, names, value, detail):
    ch = conn.channel()
    q = names.queue("prio-arg")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, arguments={"x-max-priority": value})
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/': "
        + detail.format())


def test_max_priority_zero_and_255_are_valid(ch, names):
    ch.queue_declare(names.queue("prio0"), arguments={"x-max-priority": 0})
    ch.queue_declare(names.queue("prio255"), arguments={"x-max-priority": 255})


def test_consumer_priority(connections, names):
    conn = connections()
    setup = conn.channel()
    q = names.queue("cprio")
    setup.queue_declare(q)
    hi, lo = conn.channel(), conn.channel()
    hi.basic_qos(prefetch_count=2)
    lo.basic_qos(prefetch_count=100)
    got_hi, got_lo = [], []
    # the low-priority consumer subscribes first: order must not matter
    lo.basic_consume(q, lambda c, m, p, b: got_lo.append((m.delivery_tag, b)))
    hi.basic_consume(q, lambda c, m, p, b: got_hi.append((m.delivery_tag, b)),
                     arguments={"x-priority": 10})
    pub = connections().channel()
    for i in range(6):
        pub.basic_publish("", q, b"%d" % i)
    pump_until(conn, lambda: len(got_hi) + len(got_lo) == 6, message="6 deliveries")
    # the high-priority consumer takes what its prefetch allows, in order
    assert [b for _, b in got_hi] == [b"0", b"1"]
    assert [b for _, b in got_lo] == [b"2", b"3", b"4", b"5"]
    # once it has room again it gets the new messages
    hi.basic_ack(got_hi[-1][0], multiple=True)
    # A round trip on the same channel: the ack has been processed before the
    # new messages are published (else they could go to lo, which has room).
    hi.queue_declare(q, passive=True)
    for i in range(6, 8):
        pub.basic_publish("", q, b"%d" % i)
    pump_until(conn, lambda: len(got_hi) == 4, message="hi gets new messages")
    assert [b for _, b in got_hi[2:]] == [b"6", b"7"]
    assert len(got_lo) == 4


def test_consumer_priority_negative_below_default(connections, names):
    conn = connections()
    setup = conn.channel()
    q = names.queue("cprio-neg")
    setup.queue_declare(q)
    neg, dflt = conn.channel(), conn.channel()
    got_neg, got_dflt = [], []
    neg.basic_consume(q, lambda c, m, p, b: got_neg.append(b), auto_ack=True,
                      arguments={"x-priority": -5})
    dflt.basic_consume(q, lambda c, m, p, b: got_dflt.append(b), auto_ack=True)
    for i in range(4):
        setup.basic_publish("", q, b"%d" % i)
    pump_until(conn, lambda: len(got_dflt) == 4, message="default consumer gets all")
    assert got_neg == []


def test_consumer_priority_must_be_integer(conn, names):
    ch = conn.channel()
    q = names.queue("cprio-arg")
    ch.queue_declare(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_consume(q, lambda *a: None, arguments={"x-priority": "a"})
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{q}' in vhost '/': "
        "\"expected integer, got longstr\"")


def test_single_active_consumer_failover_on_cancel(connections, names):
    conn = connections()
    setup = conn.channel()
    q = names.queue("sac")
    setup.queue_declare(q, arguments={"x-single-active-consumer": True})
    a, b = conn.channel(), conn.channel()
    got_a, got_b = [], []
    tag_a = a.basic_consume(q, lambda c, m, p, body: got_a.append(body), auto_ack=True)
    b.basic_consume(q, lambda c, m, p, body: got_b.append(body), auto_ack=True)
    # both are registered consumers
    assert setup.queue_declare(q, passive=True).method.consumer_count == 2
    for i in range(4):
        setup.basic_publish("", q, b"%d" % i)
    pump_until(conn, lambda: len(got_a) == 4, message="active consumer gets all")
    pump(conn, 0.05)
    assert got_b == []
    a.basic_cancel(tag_a)
    for i in range(4, 6):
        setup.basic_publish("", q, b"%d" % i)
    pump_until(conn, lambda: len(got_b) == 2, message="fail-over to b")
    assert got_b == [b"4", b"5"]
    assert got_a == [b"0", b"1", b"2", b"3"]


def test_single_active_consumer_failover_on_connection_close(connections, names):
    setup_conn = connections()
    setup = setup_conn.channel()
    q = names.queue("sac-close")
    setup.queue_declare(q, arguments={"x-single-active-consumer": True})
    ca, cb = connections(), connections()
    a, b = ca.channel(), cb.channel()
    got_a, got_b = [], []
    a.basic_consume(q, lambda c, m, p, body: got_a.append(body), auto_ack=False)
    pump(ca, 0.02)
    b.basic_consume(q, lambda c, m, p, body: got_b.append((body, m.redelivered)),
                    auto_ack=False)
    for i in range(3):
        setup.basic_publish("", q, b"%d" % i)
    pump_until(ca, lambda: len(got_a) == 3, message="a gets all")
    pump(cb, 0.05)
    assert got_b == []
    ca.close()           # a's unacked messages are requeued and go to b, in order
    pump_until(cb, lambda: len(got_b) == 3, message="fail-over to b")
    assert got_b == [(b"0", True), (b"1", True), (b"2", True)]
    setup.basic_publish("", q, b"3")
    pump_until(cb, lambda: len(got_b) == 4, message="b active")
    assert got_b[-1] == (b"3", False)


def test_single_active_consumer_exclusive_consume_refused(conn, names):
    ch = conn.channel()
    q = names.queue("sac-excl")
    ch.queue_declare(q, arguments={"x-single-active-consumer": True})
    ch.basic_consume(q, lambda *a: None)
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.basic_consume(q, lambda *a: None, exclusive=True)
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"


def test_single_active_consumer_must_be_bool(conn, names):
    ch = conn.channel()
    q = names.queue("sac-arg")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, arguments={"x-single-active-consumer": 1})
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue '{q}' "
        "in vhost '/': {unacceptable_type,signedint}")


def test_single_active_consumer_basic_get_still_works(ch, names):
    q = names.queue("sac-get")
    ch.queue_declare(q, arguments={"x-single-active-consumer": True})
    ch.basic_publish("", q, b"m")
    assert get_one(ch, q)[2] == b"m"
    assert count(ch, q) == 0
