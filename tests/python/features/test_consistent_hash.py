"""Consistent-hash exchange (``x-consistent-hash``, RabbitMQ plugin
``rabbitmq_consistent_hash_exchange``): the binding key is a weight; each
message goes to exactly one bound queue, chosen by hashing the routing key
(or a header / property when configured)."""

import collections

import pika
import pika.exceptions
import pytest

from fhelpers import count, get_all, publish_confirmed, wait_count
from helpers import connect, unique

# 3000 publishes and as many basic.gets: a few seconds, more on a loaded machine.
pytestmark = pytest.mark.timeout(60)

CH_TYPE = "x-consistent-hash"


@pytest.fixture(scope="module", autouse=True)
def _plugin_present():
    c = connect()
    x = unique("ch-probe")
    try:
        c.channel().exchange_declare(x, CH_TYPE)
        c.channel().exchange_delete(x)
    except pika.exceptions.ConnectionClosedByBroker as e:
        pytest.fail(f"{CH_TYPE} unavailable ({e}); on RabbitMQ run "
                    "`rabbitmq-plugins enable rabbitmq_consistent_hash_exchange`")
    finally:
        if c.is_open:
            c.close()


def _bodies_by_queue(ch, queues):
    return {q: [b.decode() for _, _, b in get_all(ch, q)] for q in queues}


def test_spread_by_weight_and_each_message_once(ch, names):
    x = names.exchange("ch-w")
    q1 = names.queue("ch-w1")
    q2 = names.queue("ch-w2")
    ch.exchange_declare(x, CH_TYPE)
    for q, weight in ((q1, "1"), (q2, "2")):
        ch.queue_declare(q)
        ch.queue_bind(q, x, weight)
    n = 3000
    for i in range(n):
        ch.basic_publish(x, f"key-{i}", f"key-{i}".encode())
    by_q = _bodies_by_queue(ch, [q1, q2])
    assert len(by_q[q1]) + len(by_q[q2]) == n
    assert not set(by_q[q1]) & set(by_q[q2])
    share2 = len(by_q[q2]) / n
    assert 0.56 <= share2 <= 0.77, f"weight-2 queue got {share2:.3f}, expected ~0.667"


def test_same_routing_key_same_queue(ch, names):
    x = names.exchange("ch-same")
    qs = [names.queue(f"ch-same{i}") for i in range(3)]
    ch.exchange_declare(x, CH_TYPE)
    for q in qs:
        ch.queue_declare(q)
        ch.queue_bind(q, x, "1")
    keys = [f"order-{i}" for i in range(60)]
    for _ in range(5):
        for k in keys:
            ch.basic_publish(x, k, k.encode())
    by_q = _bodies_by_queue(ch, qs)
    home = {}
    for q, bodies in by_q.items():
        for k in bodies:
            assert home.setdefault(k, q) == q, f"{k} went to two queues"
    assert len(home) == len(keys)
    assert all(len(b) % 5 == 0 for b in by_q.values())
    # with 60 keys every queue gets some
    assert all(by_q[q] for q in qs)
    # and it stays stable over a second round
    for k in keys:
        ch.basic_publish(x, k, k.encode())
    again = _bodies_by_queue(ch, qs)
    assert all(home[k] == q for q, bodies in again.items() for k in bodies)


def test_hash_header(ch, names):
    x = names.exchange("ch-hdr")
    qs = [names.queue(f"ch-hdr{i}") for i in range(3)]
    ch.exchange_declare(x, CH_TYPE, arguments={"hash-header": "tenant"})
    for q in qs:
        ch.queue_declare(q)
        ch.queue_bind(q, x, "1")
    tenants = [f"t{i}" for i in range(30)]
    for i in range(90):
        t = tenants[i % 30]
        ch.basic_publish(x, f"rk-{i}", t.encode(), pika.BasicProperties(headers={"tenant": t}))
    by_q = _bodies_by_queue(ch, qs)
    home = {}
    for q, bodies in by_q.items():
        for t in bodies:
            assert home.setdefault(t, q) == q
    assert sum(len(b) for b in by_q.values()) == 90


def test_hash_property_message_id(ch, names):
    x = names.exchange("ch-prop")
    qs = [names.queue(f"ch-prop{i}") for i in range(3)]
    ch.exchange_declare(x, CH_TYPE, arguments={"hash-property": "message_id"})
    for q in qs:
        ch.queue_declare(q)
        ch.queue_bind(q, x, "1")
    for i in range(60):
        mid = f"m{i % 20}"
        ch.basic_publish(x, f"rk-{i}", mid.encode(), pika.BasicProperties(message_id=mid))
    by_q = _bodies_by_queue(ch, qs)
    counts = collections.Counter()
    for q, bodies in by_q.items():
        for m in bodies:
            counts[(m, q)] += 1
    assert all(c == 3 for c in counts.values())      # each id: all 3 copies together
    assert len(counts) == 20


def test_header_and_property_are_mutually_exclusive(conn, names):
    ch = conn.channel()
    x = names.exchange("ch-both")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, CH_TYPE, arguments={"hash-header": "a",
                                                   "hash-property": "message_id"})
    assert (ei.value.reply_code, ei.value.reply_text) == \
        (406, "PRECONDITION_FAILED - hash-header and hash-property are mutually exclusive")


@pytest.mark.parametrize("key,text", [
    ("abc", 'The binding key must be an integer: <<"abc">>'),
    ("", "The binding key must be an integer: <<>>"),
    ("0", "The binding key must be greater than 0"),
    ("-1", "The binding key must be greater than 0"),
])
def test_binding_key_must_be_positive_integer(conn, names, key, text):
    ch = conn.channel()
    x = names.exchange("ch-bad")
    q = names.queue("ch-bad")
    ch.exchange_declare(x, CH_TYPE)
    ch.queue_declare(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, x, key)
    assert (ei.value.reply_code, ei.value.reply_text) == (406, "PRECONDITION_FAILED - " + text)


def test_no_bindings_unroutable_and_unbind_moves_keys(conn, ch, names):
    x = names.exchange("ch-unbind")
    q1 = names.queue("ch-u1")
    q2 = names.queue("ch-u2")
    ch.exchange_declare(x, CH_TYPE)
    pch = conn.channel()
    pch.confirm_delivery()
    assert publish_confirmed(pch, x, "k", b"m", mandatory=True) == "returned"
    for q in (q1, q2):
        ch.queue_declare(q)
        ch.queue_bind(q, x, "1")
    ch.queue_unbind(q1, x, "1")
    for i in range(50):
        ch.basic_publish(x, f"k{i}", b"m")
    wait_count(ch, q2, 50)     # (a passive declare may overtake publishes)
    assert count(ch, q1) == 0
