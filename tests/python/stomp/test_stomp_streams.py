"""STOMP SUBSCRIBE to a stream queue (/amq/queue/NAME) with x-stream-offset,
as RabbitMQ's STOMP plugin does: the header becomes the consumer argument
(first, last, next, offset=N, timestamp=S), prefetch-count and client acks
are needed, each MESSAGE carries x-stream-offset."""

import time

import pika

from helpers import connect as amqp_connect
from stomp_helpers import ack, nack, unique

STREAM = {"x-queue-type": "stream"}


def make_stream(n=5):
    q = unique("stream")
    conn = amqp_connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=True, arguments=STREAM)
    ch.confirm_delivery()
    for i in range(n):
        ch.basic_publish("", q, b"s%d" % i, pika.BasicProperties())
    conn.close()
    return q


def drop(q):
    conn = amqp_connect()
    conn.channel().queue_delete(q)
    conn.close()


def subscribe(stomp_clients, q, offset, n, ack_mode="client-individual"):
    conn, c = stomp_clients("1.2")
    headers = {"prefetch-count": "10"}
    if offset is not None:
        headers["x-stream-offset"] = offset
    conn.subscribe(f"/amq/queue/{q}", id="s1", ack=ack_mode, headers=headers)
    return conn, c


def test_offsets(stomp_clients):
    q = make_stream()
    try:
        for spec, first in [("first", 0), ("offset=3", 3), ("last", 4),
                            ("timestamp=%d" % (time.time() - 3600), 0)]:
            conn, c = subscribe(stomp_clients, q, spec, 5 - first)
            got = c.wait_messages(5 - first)
            assert [m.body for m in got] == ["s%d" % i for i in range(first, 5)], spec
            assert [int(m.headers["x-stream-offset"]) for m in got] == list(range(first, 5))
            for m in got:
                ack(conn, "1.2", m)
            conn.disconnect()
    finally:
        drop(q)


def test_next_tails(stomp_clients):
    q = make_stream()
    try:
        conn, c = subscribe(stomp_clients, q, "next", 1)
        time.sleep(0.5)
        c.no_more_messages(0)
        a = amqp_connect()
        ch = a.channel()
        ch.confirm_delivery()
        ch.basic_publish("", q, b"new")
        a.close()
        got = c.wait_messages(1)
        assert (got[0].body, got[0].headers["x-stream-offset"]) == ("new", "5")
    finally:
        drop(q)


def test_credit_comes_back_with_acks(stomp_clients):
    q = make_stream(30)
    try:
        conn, c = subscribe(stomp_clients, q, "first", 10)
        got = c.wait_messages(10)
        c.no_more_messages(10)
        for m in got:
            ack(conn, "1.2", m)
        c.wait_messages(20)
    finally:
        drop(q)


def test_nack_is_refused(stomp_clients):
    q = make_stream(1)
    try:
        conn, c = subscribe(stomp_clients, q, "first", 1)
        m = c.wait_messages(1)[0]

        nack(conn, "1.2", m)
        e = c.wait_error()
        assert e.headers["message"] == "AMQP channel died"
        assert ("basic.nack and basic.reject not supported by stream queues "
                f"queue '{q}' in vhost '/'") in e.body
        assert c.wait_disconnected()
    finally:
        drop(q)


def test_filter_headers(stomp_clients):
    """x-stream-filter (comma-separated) and x-stream-match-unfiltered on
    SUBSCRIBE, as RabbitMQ 3.13's STOMP plugin (Warren only: 3.10 has no
    stream filtering; Warren filters each message exactly)."""
    import os

    import pytest
    if os.environ.get("BROKER_KIND") != "warren":
        pytest.skip("stream filtering needs BROKER_KIND=warren")
    q = unique("stream")
    conn = amqp_connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=True, arguments=STREAM)
    ch.confirm_delivery()
    for i, v in enumerate(["apple", "pear", None, "plum", "apple"]):
        h = None if v is None else {"x-stream-filter-value": v}
        ch.basic_publish("", q, b"f%d" % i, pika.BasicProperties(headers=h))
    conn.close()
    try:
        conn, c = stomp_clients("1.2")
        conn.subscribe(f"/amq/queue/{q}", id="s1", ack="client-individual", headers={
            "prefetch-count": "10", "x-stream-offset": "first",
            "x-stream-filter": "apple,plum", "x-stream-match-unfiltered": "true"})
        got = c.wait_messages(4)
        time.sleep(0.5)
        assert [m.body for m in c.messages] == ["f0", "f2", "f3", "f4"]
        for m in got:
            ack(conn, "1.2", m)
        conn.disconnect()
    finally:
        drop(q)
