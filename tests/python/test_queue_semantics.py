"""Scenario 6a: queue-level behaviour a switching user relies on."""

import pika.exceptions
import pytest

from helpers import PRECONDITION_FAILED, drain, settle, vhost, wait_until


def fill(ch, q, n, prefix="m"):
    """Publish n messages with confirms (so they are enqueued on return)."""
    ch.confirm_delivery()
    bodies = [f"{prefix}{i}".encode() for i in range(n)]
    for b in bodies:
        ch.basic_publish("", q, b)
    return bodies


@pytest.fixture
def queue(ch, names):
    q = names.queue("semantics")
    ch.queue_declare(q)
    return q


def test_basic_get_and_get_empty(ch, queue):
    assert ch.basic_get(queue) == (None, None, None)  # Basic.GetEmpty
    fill(ch, queue, 3)
    method, props, body = ch.basic_get(queue, auto_ack=False)
    assert body == b"m0"
    assert method.message_count == 2, "remaining ready messages"
    assert method.delivery_tag == 1
    assert method.redelivered is False
    assert method.exchange == "" and method.routing_key == queue
    method2, _, body2 = ch.basic_get(queue, auto_ack=True)
    assert (body2, method2.message_count, method2.delivery_tag) == (b"m1", 1, 2)
    ch.basic_ack(method.delivery_tag)
    assert drain(ch, queue) == [b"m2"]
    assert ch.basic_get(queue) == (None, None, None)


def test_passive_declare_reports_message_and_consumer_count(conn, ch, queue):
    fill(ch, queue, 3)
    ok = ch.queue_declare(queue, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (queue, 3, 0)

    other = conn.channel()
    other.basic_qos(prefetch_count=1)
    other.basic_consume(queue, lambda *a: None)  # holds one unacked message
    wait_until(lambda: ch.queue_declare(queue, passive=True).method.message_count == 2,
               conn=conn, message="one message delivered to the consumer")
    ok = ch.queue_declare(queue, passive=True).method
    # message_count counts only *ready* messages, not unacknowledged ones.
    assert (ok.message_count, ok.consumer_count) == (2, 1)
    # A non-passive redeclare with identical arguments also reports counts.
    ok = ch.queue_declare(queue).method
    assert (ok.message_count, ok.consumer_count) == (2, 1)


def test_nack_requeue_redelivers_in_original_order(ch, queue):
    fill(ch, queue, 5)
    tags = [ch.basic_get(queue)[0].delivery_tag for _ in range(3)]  # m0 m1 m2 unacked
    assert tags == [1, 2, 3]
    ch.basic_nack(delivery_tag=2, multiple=True, requeue=True)  # m0, m1 back
    got = [ch.basic_get(queue) for _ in range(4)]
    assert [(g[2], g[0].redelivered) for g in got] == [
        (b"m0", True), (b"m1", True), (b"m3", False), (b"m4", False)]
    # Delivery tags keep increasing on the channel; they are never reused.
    assert [g[0].delivery_tag for g in got] == [4, 5, 6, 7]
    ch.basic_nack(delivery_tag=3, requeue=True)  # m2 alone
    method, _, body = ch.basic_get(queue)
    assert (body, method.redelivered, method.message_count) == (b"m2", True, 0)
    ch.basic_nack(delivery_tag=0, multiple=True, requeue=False)  # everything: drop
    assert ch.basic_get(queue) == (None, None, None)


def test_reject_without_requeue_drops(ch, queue):
    fill(ch, queue, 2)
    method, _, body = ch.basic_get(queue)
    ch.basic_reject(method.delivery_tag, requeue=False)
    method, _, body = ch.basic_get(queue)
    assert body == b"m1" and method.message_count == 0
    ch.basic_reject(method.delivery_tag, requeue=True)
    method, _, body = ch.basic_get(queue, auto_ack=True)
    assert (body, method.redelivered) == (b"m1", True)
    assert ch.basic_get(queue) == (None, None, None)


def test_nack_requeue_to_consumer_sets_redelivered(conn, ch, queue):
    fill(ch, queue, 1)
    seen = []

    def on_message(c, method, props, body):
        seen.append((body, method.redelivered))
        if not method.redelivered:
            c.basic_nack(method.delivery_tag, requeue=True)
        else:
            c.basic_ack(method.delivery_tag)

    ch.basic_consume(queue, on_message)
    wait_until(lambda: len(seen) >= 2, conn=conn, message="redelivery")
    assert seen == [(b"m0", False), (b"m0", True)]


def test_purge_returns_count_and_keeps_unacked(ch, queue):
    fill(ch, queue, 5)
    held = ch.basic_get(queue)[0]  # one unacked
    assert ch.queue_purge(queue).method.message_count == 4
    assert ch.queue_declare(queue, passive=True).method.message_count == 0
    ch.basic_nack(held.delivery_tag, requeue=True)  # unacked survives purge
    assert drain(ch, queue) == [b"m0"]
    assert ch.queue_purge(queue).method.message_count == 0


def test_delete_if_unused_and_if_empty(conn, queue):
    ch = conn.channel()
    consumer_ch = conn.channel()
    tag = consumer_ch.basic_consume(queue, lambda *a: None)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_delete(queue, if_unused=True)
    assert e.value.args == (PRECONDITION_FAILED,
                            f"PRECONDITION_FAILED - queue '{queue}' in vhost '{vhost()}' in use")
    consumer_ch.basic_cancel(tag)

    ch = conn.channel()
    fill(ch, queue, 2)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_delete(queue, if_empty=True)
    assert e.value.args == (PRECONDITION_FAILED,
                            f"PRECONDITION_FAILED - queue '{queue}' in vhost '{vhost()}' not empty")

    ch = conn.channel()
    ok = ch.queue_delete(queue, if_unused=True).method  # no consumers now
    assert ok.message_count == 2
    # Deleting a queue that does not exist is not an error in RabbitMQ.
    assert ch.queue_delete(queue).method.message_count == 0


def test_consumer_sees_messages_in_fifo_order(conn, ch, queue):
    bodies = fill(ch, queue, 50)
    seen = []
    ch.basic_consume(queue, lambda c, m, p, b: seen.append(b), auto_ack=True)
    wait_until(lambda: len(seen) >= 50, conn=conn, message="all messages consumed")
    settle(conn, 0.05)
    assert seen == bodies
