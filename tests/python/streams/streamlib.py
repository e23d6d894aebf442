"""Helpers for the stream queue scenarios: declare, publish with confirms,
consume from an `x-stream-offset` (against RabbitMQ and Warren alike)."""

import time
from typing import List, Optional, Tuple

import pika
import pika.exceptions

from helpers import WAIT_TIMEOUT, connect

STREAM = {"x-queue-type": "stream"}


def declare(ch, name: str, **args) -> None:
    ch.queue_declare(name, durable=True, arguments={**STREAM, **args})


def publish(ch, queue: str, bodies, headers=None) -> None:
    """Publish with confirms (`ch` in confirm mode) to the default exchange."""
    for b in bodies:
        ch.basic_publish("", queue, b, pika.BasicProperties(headers=headers))


def make_stream(names, bodies, **args) -> str:
    """A new stream (tracked for cleanup) holding `bodies`, published one by
    one with confirms (so each is its own chunk)."""
    q = names.queue("stream")
    conn = connect()
    ch = conn.channel()
    declare(ch, q, **args)
    ch.confirm_delivery()
    publish(ch, q, bodies)
    conn.close()
    return q


def consume(queue: str, offset=None, count: int = 1_000_000, prefetch: int = 100,
            quiet: float = 3.0, timeout: float = WAIT_TIMEOUT,
            ack: bool = True) -> List[Tuple[int, bytes]]:
    """(x-stream-offset, body) of what a new consumer gets, until `count`
    arrived or nothing came for `quiet` seconds."""
    conn = connect()
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=prefetch)
        got: List[Tuple[int, bytes]] = []

        def on_msg(c, m, p, body):
            got.append((p.headers["x-stream-offset"], body))
            if ack:
                c.basic_ack(m.delivery_tag)

        args = {} if offset is None else {"x-stream-offset": offset}
        ch.basic_consume(queue, on_msg, arguments=args)
        end = time.time() + timeout
        last_len, last_change = 0, time.time()
        while len(got) < count and time.time() < end:
            conn.process_data_events(0.05)
            if len(got) != last_len:
                last_len, last_change = len(got), time.time()
            elif time.time() - last_change > quiet:
                break
        return got
    finally:
        # pika rejects messages still buffered when it closes, which a stream
        # answers by closing the connection (540), RabbitMQ and Warren alike.
        try:
            conn.close()
        except pika.exceptions.AMQPError:
            pass


def offsets(got) -> List[int]:
    return [o for o, _ in got]


def first_offset(queue: str) -> Optional[int]:
    got = consume(queue, "first", count=1, prefetch=1)
    return got[0][0] if got else None
