"""Scenario 6d: publisher confirms, mandatory returns, transactions, basic.qos."""

import pika
import pika.exceptions
import pytest

from helpers import NO_ROUTE, NOT_FOUND, drain, message_count, settle, unique, vhost, wait_until


def test_confirms_ack_routed_publish(ch, names):
    q = names.queue("confirmed")
    ch.queue_declare(q)
    ch.confirm_delivery()
    for i in range(20):
        ch.basic_publish("", q, str(i).encode())  # raises if nacked/returned
    assert ch.queue_declare(q, passive=True).method.message_count == 20


def test_mandatory_unroutable_publish_raises(ch, names):
    x = names.exchange("nowhere")
    ch.exchange_declare(x, "direct")
    ch.confirm_delivery()
    props = pika.BasicProperties(message_id="lost-1", headers={"k": "v"})
    with pytest.raises(pika.exceptions.UnroutableError) as e:
        ch.basic_publish(x, "no.such.route", b"lost", properties=props, mandatory=True)
    [returned] = e.value.messages
    assert returned.method.reply_code == NO_ROUTE
    assert returned.method.reply_text == "NO_ROUTE"
    assert returned.method.exchange == x
    assert returned.method.routing_key == "no.such.route"
    assert returned.body == b"lost"
    assert returned.properties.message_id == "lost-1"
    assert returned.properties.headers == {"k": "v"}
    # Same via the default exchange and a queue name that doesn't exist.
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("", unique("no-such-queue"), b"lost", mandatory=True)
    # Not mandatory: silently dropped, still confirmed; channel stays open.
    ch.basic_publish(x, "no.such.route", b"dropped")
    assert ch.is_open


def test_mandatory_return_without_confirms(conn, ch, names):
    returned = []
    ch.add_on_return_callback(lambda c, method, props, body: returned.append((method, body)))
    ch.basic_publish("amq.direct", unique("no-route"), b"bounce", mandatory=True)
    wait_until(lambda: returned, conn=conn, message="basic.return")
    method, body = returned[0]
    assert (method.reply_code, method.reply_text, body) == (NO_ROUTE, "NO_ROUTE", b"bounce")


def test_confirm_publish_to_missing_exchange_closes_channel(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    missing = unique("no-such-exchange")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_publish(missing, "", b"x")
    assert e.value.args == (NOT_FOUND, f"NOT_FOUND - no exchange '{missing}' in vhost '{vhost()}'")
    assert conn.is_open


def test_transaction_rollback_and_commit(conn, names):
    q = names.queue("tx")
    ch = conn.channel()
    ch.queue_declare(q)
    ch.tx_select()
    ch.basic_publish("", q, b"rolled-back")
    assert message_count(conn, q) == 0, "not visible before commit"
    ch.tx_rollback()
    assert message_count(conn, q) == 0
    ch.basic_publish("", q, b"committed-1")
    ch.basic_publish("", q, b"committed-2")
    assert message_count(conn, q) == 0
    ch.tx_commit()
    wait_until(lambda: message_count(conn, q) == 2, message="committed messages enqueued")
    assert drain(conn.channel(), q) == [b"committed-1", b"committed-2"]


def test_transactional_acks(conn, names):
    q = names.queue("tx-ack")
    setup = conn.channel()
    setup.queue_declare(q)
    setup.confirm_delivery()
    setup.basic_publish("", q, b"job")
    ch = conn.channel()
    ch.tx_select()
    method = ch.basic_get(q)[0]
    ch.basic_ack(method.delivery_tag)
    ch.tx_rollback()  # the ack is discarded; the message stays unacked...
    ch.close()  # ...so closing the channel requeues it
    method, _, body = setup.basic_get(q, auto_ack=False)
    assert (body, method.redelivered) == (b"job", True)
    ch = conn.channel()
    ch.tx_select()
    setup.basic_nack(method.delivery_tag, requeue=True)
    method = ch.basic_get(q)[0]
    ch.basic_ack(method.delivery_tag)
    ch.tx_commit()
    ch.close()
    assert message_count(conn, q) == 0


def test_tx_commit_without_select_is_an_error(conn):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.tx_commit()
    assert e.value.args[0] == 406
    assert e.value.args[1].startswith("PRECONDITION_FAILED")


def _consume_two_queues(conn, names, setup):
    ch = conn.channel()
    qs = [names.queue("qos-a"), names.queue("qos-b")]
    pub = conn.channel()
    pub.confirm_delivery()
    for q in qs:
        pub.queue_declare(q)
        for i in range(5):
            pub.basic_publish("", q, f"{q}-{i}".encode())
    setup(ch)
    got = {q: [] for q in qs}
    for q in qs:
        ch.basic_consume(q, lambda c, m, p, b, q=q: got[q].append(m.delivery_tag))
    return ch, qs, got


def _wait_counts(conn, got, total):
    wait_until(lambda: sum(map(len, got.values())) >= total, conn=conn, message=f"{total} deliveries")
    settle(conn, 0.2)  # give the broker a chance to over-deliver
    return sorted(len(v) for v in got.values())


def test_qos_per_consumer(conn, names):
    """global=False (RabbitMQ's meaning): limit applies to each new consumer."""
    ch, qs, got = _consume_two_queues(
        conn, names, lambda c: c.basic_qos(prefetch_count=2, global_qos=False))
    assert _wait_counts(conn, got, 4) == [2, 2]
    ch.basic_ack(got[qs[0]][0])
    assert _wait_counts(conn, got, 5) == [2, 3]


def test_qos_global_shared_by_channel(conn, names):
    """global=True (RabbitMQ's meaning): one limit shared by all consumers on the channel."""
    ch, qs, got = _consume_two_queues(
        conn, names, lambda c: c.basic_qos(prefetch_count=3, global_qos=True))
    counts = _wait_counts(conn, got, 3)
    assert sum(counts) == 3
    first_tag = min(t for v in got.values() for t in v)
    ch.basic_ack(first_tag)
    assert sum(_wait_counts(conn, got, 4)) == 4


def test_qos_global_and_per_consumer_combined(conn, names):
    # Order as in RabbitMQ's consumer-prefetch docs: per-consumer, then global.
    # (RabbitMQ 3.10 does NOT enforce the global limit if the two calls are
    # made in the opposite order; we deliberately don't test that quirk.)
    def setup(c):
        c.basic_qos(prefetch_count=2, global_qos=False)
        c.basic_qos(prefetch_count=3, global_qos=True)
    ch, qs, got = _consume_two_queues(conn, names, setup)
    # Each consumer <= 2, channel total <= 3.
    assert _wait_counts(conn, got, 3) == [1, 2]
    before = {q: len(v) for q, v in got.items()}
    ch.basic_ack(0, multiple=True)  # ack all 3 -> 3 more, still <= 2 per consumer
    assert sum(_wait_counts(conn, got, 6)) == 6
    assert all(len(got[q]) - before[q] <= 2 for q in qs)
