"""What a stream refuses, with RabbitMQ 3.10's codes and texts."""

import pika
import pika.exceptions
import pytest

from helpers import connect
from streamlib import STREAM, declare, make_stream


def closed_by(f):
    conn = connect()
    ch = conn.channel()
    try:
        f(conn, ch)
    except (pika.exceptions.ChannelClosedByBroker,
            pika.exceptions.ConnectionClosedByBroker) as e:
        return e.reply_code, e.reply_text
    finally:
        if conn.is_open:
            conn.close()
    pytest.fail("not refused")


@pytest.mark.parametrize("props,what", [
    (dict(durable=False), "non-durable"),
    (dict(durable=True, exclusive=True), "exclusive-owner"),
    (dict(durable=True, auto_delete=True), "auto-delete"),
])
def test_declare_properties_refused(names, props, what):
    q = names.queue("stream")
    code, text = closed_by(lambda c, ch: ch.queue_declare(q, arguments=STREAM, **props))
    assert code == 406
    assert text == f"PRECONDITION_FAILED - invalid property '{what}' for queue '{q}' in vhost '/'"


@pytest.mark.parametrize("arg,value", [
    ("x-message-ttl", 1000), ("x-max-length", 10), ("x-dead-letter-exchange", "x"),
    ("x-max-priority", 5), ("x-expires", 5000), ("x-overflow", "reject-publish"),
    ("x-single-active-consumer", True),
])
def test_classic_arguments_refused(names, arg, value):
    q = names.queue("stream")
    code, text = closed_by(lambda c, ch: declare(ch, q, **{arg: value}))
    assert code == 406
    assert text == (f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '/' "
                    "of queue type rabbit_stream_queue")


def test_bad_retention_arguments(names):
    q = names.queue("stream")
    assert closed_by(lambda c, ch: declare(ch, q, **{"x-max-age": "10x"})) == (
        406, f"PRECONDITION_FAILED - invalid arg 'x-max-age' for queue '{q}' in vhost '/': invalid_max_age")
    assert closed_by(lambda c, ch: declare(ch, q, **{"x-stream-max-segment-size-bytes": 4_000_000_000})) == (
        406, "PRECONDITION_FAILED - Exceeded max value for x-stream-max-segment-size-bytes")


def test_redeclare_must_match(names):
    q = names.queue("stream")
    conn = connect()
    declare(conn.channel(), q, **{"x-max-age": "1h"})
    conn.close()
    code, text = closed_by(lambda c, ch: ch.queue_declare(q, durable=True))
    assert code == 406 and "inequivalent arg" in text
    code, text = closed_by(lambda c, ch: ch.queue_declare(
        q, durable=True, arguments={"x-queue-type": "classic", "x-max-age": "1h"}))
    assert (code, text) == (406, f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' "
                                 "in vhost '/': received 'classic' but current is 'stream'")


@pytest.fixture
def stream(names):
    return make_stream(names, [b"a", b"b"])


def test_get_refused(stream):
    assert closed_by(lambda c, ch: ch.basic_get(stream)) == (
        540, f"NOT_IMPLEMENTED - basic.get not supported by stream queues queue '{stream}' in vhost '/'")


def test_purge_refused(stream):
    assert closed_by(lambda c, ch: ch.queue_purge(stream)) == (
        540, f"NOT_IMPLEMENTED - queue.purge not supported by stream queues queue '{stream}' in vhost '/'")


def test_consume_needs_prefetch(stream):
    def go(c, ch):
        ch.basic_consume(stream, lambda *a: None)
        c.process_data_events(1)
    assert closed_by(go) == (
        406, f"PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '{stream}' in vhost '/''")


def test_consume_needs_manual_acks(stream):
    def go(c, ch):
        ch.basic_qos(prefetch_count=10)
        ch.basic_consume(stream, lambda *a: None, auto_ack=True)
        c.process_data_events(1)
    assert closed_by(go) == (
        540, "NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues "
             f"queue '{stream}' in vhost '/'")


@pytest.mark.parametrize("requeue", [True, False])
def test_nack_and_reject_refused(stream, requeue):
    def go(c, ch):
        ch.basic_qos(prefetch_count=10)
        ch.basic_consume(stream, lambda chan, m, p, b: chan.basic_nack(m.delivery_tag, requeue=requeue),
                         arguments={"x-stream-offset": "first"})
        for _ in range(30):
            c.process_data_events(0.1)
    assert closed_by(go) == (
        540, "NOT_IMPLEMENTED - basic.nack and basic.reject not supported by stream queues "
             f"queue '{stream}' in vhost '/'")


def test_bad_offset_spec_is_an_internal_error(stream):
    def go(c, ch):
        ch.basic_qos(prefetch_count=10)
        ch.basic_consume(stream, lambda *a: None, arguments={"x-stream-offset": "foo"})
        c.process_data_events(1)
    code, _ = closed_by(go)
    assert code == 541


@pytest.mark.parametrize("prefetch", [0, 10])
def test_consumer_priority_refused(stream, prefetch):
    """x-priority on a stream consumer: 406, checked before the prefetch."""
    def go(c, ch):
        if prefetch:
            ch.basic_qos(prefetch_count=prefetch)
        ch.basic_consume(stream, lambda *a: None, arguments={"x-priority": 0})
    assert closed_by(go) == (
        406, f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{stream}' in vhost '/' "
             "of queue type rabbit_stream_queue")
