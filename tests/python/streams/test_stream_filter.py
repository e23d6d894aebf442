"""Server-side stream filtering (RabbitMQ 3.13's `x-stream-filter-value`,
`x-stream-filter`, `x-stream-match-unfiltered`, `x-stream-filter-size-bytes`).

Warren only (``BROKER_KIND=warren``): RabbitMQ 3.10 has no stream filtering.
RabbitMQ's filtering is per chunk (a Bloom filter) and clients must filter
again; Warren filters each message exactly, so these tests assert exactly
the wanted messages arrive."""

import os
import time

import pika
import pytest

from helpers import connect
from streamlib import STREAM, consume, declare

pytestmark = pytest.mark.skipif(
    os.environ.get("BROKER_KIND") != "warren",
    reason="stream filtering is Warren's (RabbitMQ 3.13+); set BROKER_KIND=warren",
)

FILTER = "x-stream-filter-value"


def publish_tagged(q, tagged):
    """Publish (value, body) pairs with confirms; value None: untagged."""
    conn = connect()
    ch = conn.channel()
    ch.confirm_delivery()
    for value, body in tagged:
        headers = None if value is None else {FILTER: value}
        ch.basic_publish("", q, body, pika.BasicProperties(headers=headers))
    conn.close()


def consume_filtered(q, offset="first", count=1_000_000, quiet=1.5, **args):
    """Bodies a new consumer with arguments `args` gets."""
    conn = connect()
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=50)
        got = []

        def on_msg(c, m, p, body):
            got.append((p.headers["x-stream-offset"], (p.headers or {}).get(FILTER), body))
            c.basic_ack(m.delivery_tag)

        ch.basic_consume(q, on_msg, arguments={"x-stream-offset": offset, **args})
        end = time.time() + 20
        last, changed = 0, time.time()
        while len(got) < count and time.time() < end:
            conn.process_data_events(0.05)
            if len(got) != last:
                last, changed = len(got), time.time()
            elif time.time() - changed > quiet:
                break
        return got
    finally:
        try:
            conn.close()
        except pika.exceptions.AMQPError:
            pass


REGIONS = ["amer", "emea", None, "apac"]


@pytest.fixture
def tagged_stream(names):
    q = names.queue("stream")
    conn = connect()
    declare(conn.channel(), q)
    conn.close()
    publish_tagged(q, [(REGIONS[i % 4], b"m%d" % i) for i in range(40)])
    return q


def expected(values, unfiltered=False):
    return [(i, REGIONS[i % 4], b"m%d" % i) for i in range(40)
            if REGIONS[i % 4] in values or (unfiltered and REGIONS[i % 4] is None)]


def test_one_value(tagged_stream):
    got = consume_filtered(tagged_stream, **{"x-stream-filter": "emea"}, count=10)
    assert got == expected(["emea"])


def test_several_values(tagged_stream):
    got = consume_filtered(tagged_stream, **{"x-stream-filter": ["emea", "apac"]}, count=20)
    assert got == expected(["emea", "apac"])


def test_match_unfiltered(tagged_stream):
    got = consume_filtered(tagged_stream, count=20, **{
        "x-stream-filter": "amer", "x-stream-match-unfiltered": True})
    assert got == expected(["amer"], unfiltered=True)


def test_no_filter_gets_everything(tagged_stream):
    assert len(consume(tagged_stream, "first", count=40)) == 40


def test_unknown_value_gets_nothing_then_tails(tagged_stream):
    conn = connect()
    ch = conn.channel()
    ch.basic_qos(prefetch_count=10)
    got = []
    ch.basic_consume(
        tagged_stream,
        lambda c, m, p, body: (got.append(body), c.basic_ack(m.delivery_tag)),
        arguments={"x-stream-offset": "first", "x-stream-filter": "latam"})
    conn.process_data_events(1.0)
    assert got == []
    # New messages: only the wanted one arrives, while the consumer tails.
    publish_tagged(tagged_stream, [("amer", b"n0"), ("latam", b"n1"), (None, b"n2")])
    end = time.time() + 10
    while not got and time.time() < end:
        conn.process_data_events(0.1)
    conn.process_data_events(0.5)
    assert got == [b"n1"]
    conn.close()


def test_filter_skips_blocks_of_other_values(names):
    """A filtering consumer finds the few wanted messages after megabytes of
    others (several index blocks, which it skips without reading them)."""
    q = names.queue("stream")
    conn = connect()
    declare(conn.channel(), q)
    conn.close()
    body = b"x" * 4000
    rows = [("amer", body)] * 1500 + [("emea", b"wanted-1")] + [("amer", body)] * 1500 \
        + [("emea", b"wanted-2")]
    publish_tagged(q, rows)
    got = consume_filtered(q, **{"x-stream-filter": "emea"}, count=2)
    assert [(o, b) for o, _, b in got] == [(1500, b"wanted-1"), (3001, b"wanted-2")]
    # Each message is still there for everyone else.
    assert len(consume_filtered(q, **{"x-stream-filter": "amer"}, count=3000, quiet=3)) == 3000


def test_filter_size_argument(names):
    q = names.queue("stream")
    conn = connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=True, arguments={**STREAM, "x-stream-filter-size-bytes": 32})
    ch.queue_delete(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(q, durable=True,
                         arguments={**STREAM, "x-stream-filter-size-bytes": 300})
    assert e.value.reply_code == 406
    assert "x-stream-filter-size-bytes" in e.value.reply_text
    conn.close()
