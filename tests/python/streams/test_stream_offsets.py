"""x-stream-offset specs, the offset header, tailing, independent consumers
and credit: the same scenarios against RabbitMQ (3.10) and Warren."""

import datetime
import threading
import time

import pytest

from helpers import connect
from streamlib import consume, declare, make_stream, offsets, publish


@pytest.fixture
def stream10(names):
    """A stream with 10 messages m0..m9 (offsets 0..9), published one by one
    with confirms (so each is its own chunk)."""
    return make_stream(names, [b"m%d" % i for i in range(10)])


def test_first_delivers_everything_with_offset_header(stream10):
    got = consume(stream10, "first", count=10)
    assert got == [(i, b"m%d" % i) for i in range(10)]


def test_default_and_next_deliver_only_new(stream10):
    assert consume(stream10, None, quiet=0.5) == []
    assert consume(stream10, "next", quiet=0.5) == []


def test_last_starts_at_last_chunk(stream10):
    # Each message was confirmed before the next: the last chunk is m9.
    assert consume(stream10, "last", count=10, quiet=0.5) == [(9, b"m9")]


@pytest.mark.parametrize("spec,first", [(5, 5), (0, 0), (9, 9), (-1, 0)])
def test_absolute_offset(stream10, spec, first):
    got = consume(stream10, spec, count=10 - first)
    assert offsets(got) == list(range(first, 10))


def test_offset_past_the_end_waits_for_new(stream10):
    assert consume(stream10, 100, quiet=0.5) == []


def test_timestamp_and_interval(stream10):
    hour_ago = datetime.datetime.now() - datetime.timedelta(hours=1)
    assert offsets(consume(stream10, hour_ago, count=10)) == list(range(10))
    future = datetime.datetime.now() + datetime.timedelta(hours=1)
    assert consume(stream10, future, quiet=0.5) == []
    for interval in ("1h", "30m", "1D", "1Y"):
        assert offsets(consume(stream10, interval, count=10)) == list(range(10))


def test_timestamp_between_publishes(names):
    q = names.queue("stream")
    conn = connect()
    ch = conn.channel()
    declare(ch, q)
    ch.confirm_delivery()
    publish(ch, q, [b"old%d" % i for i in range(3)])
    time.sleep(2.2)
    mark = datetime.datetime.now() - datetime.timedelta(seconds=1)
    publish(ch, q, [b"new%d" % i for i in range(3)])
    conn.close()
    got = consume(q, mark, count=3)
    assert [b for _, b in got] == [b"new0", b"new1", b"new2"]
    assert offsets(got) == [3, 4, 5]


def test_tailing_consumer_gets_new_messages(names):
    q = names.queue("stream")
    conn = connect()
    ch = conn.channel()
    declare(ch, q)
    ch.confirm_delivery()
    publish(ch, q, [b"before"])
    results = {}

    def run():
        results["got"] = consume(q, "next", count=5, quiet=5)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(1.0)  # the consumer is attached and waiting
    publish(ch, q, [b"t%d" % i for i in range(5)])
    t.join(30)
    conn.close()
    assert results["got"] == [(1 + i, b"t%d" % i) for i in range(5)]


def test_independent_consumers_each_get_everything(stream10):
    a = consume(stream10, "first", count=10)
    b = consume(stream10, "first", count=10)
    assert a == b == [(i, b"m%d" % i) for i in range(10)]
    # Consuming removed nothing.
    assert offsets(consume(stream10, 3, count=7)) == list(range(3, 10))


def test_acks_only_give_credit(stream10):
    conn = connect()
    ch = conn.channel()
    ch.basic_qos(prefetch_count=3)
    got = []
    ch.basic_consume(stream10, lambda c, m, p, b: got.append(m.delivery_tag),
                     arguments={"x-stream-offset": "first"})
    deadline = time.time() + 2
    while time.time() < deadline:
        conn.process_data_events(0.1)
    assert got == [1, 2, 3]
    ch.basic_ack(3, multiple=True)
    deadline = time.time() + 5
    while len(got) < 6 and time.time() < deadline:
        conn.process_data_events(0.1)
    assert got == [1, 2, 3, 4, 5, 6]
    conn.close()


def test_declare_ok_counts(stream10):
    conn = connect()
    ok = conn.channel().queue_declare(stream10, passive=True)
    conn.close()
    # RabbitMQ reports 0 ready messages for a stream.
    assert ok.method.message_count == 0
