"""Small helpers shared by the feature tests."""

import time
from typing import List, Optional, Tuple

import pika
import pika.exceptions

from helpers import WAIT_TIMEOUT, wait_until

NO_ROUTE = 312


def get_one(ch, queue: str, timeout: float = WAIT_TIMEOUT, auto_ack: bool = True):
    """basic.get until a message arrives (polling); returns (method, props, body)."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if method is not None:
            return method, props, body
        if time.monotonic() >= deadline:
            raise AssertionError(f"no message arrived in {queue} within {timeout}s")
        time.sleep(0.01)


def get_all(ch, queue: str, limit: int = 100_000) -> List[Tuple]:
    """basic.get (auto-ack) until get-empty; returns [(method, props, body)]."""
    out = []
    for _ in range(limit):
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((method, props, body))
    raise AssertionError(f"{queue} did not drain")


def count(ch, queue: str) -> int:
    """Ready-message count via passive declare.

    NB: (1) a passive declare counts as *use* of the queue, so never poll an
    ``x-expires`` queue with this; (2) on RabbitMQ the queue answers this
    query with priority, so it can overtake publishes/acks still in flight
    from the same channel -- only use it after confirms, after a basic.get, or
    via :func:`wait_count`."""
    return ch.queue_declare(queue, passive=True).method.message_count


def wait_count(ch, queue: str, n: int, timeout: float = WAIT_TIMEOUT) -> None:
    wait_until(lambda: count(ch, queue) == n, timeout=timeout,
               message=f"{queue} to hold {n} messages")


def publish_confirmed(ch, exchange: str, rk: str, body: bytes,
                      props: Optional[pika.BasicProperties] = None,
                      mandatory: bool = False) -> str:
    """Publish on a confirm-mode channel; returns 'ack', 'nack' or 'returned'."""
    try:
        ch.basic_publish(exchange, rk, body, props, mandatory=mandatory)
        return "ack"
    except pika.exceptions.UnroutableError:
        return "returned"
    except pika.exceptions.NackError:
        return "nack"


def pump(conn, seconds: float) -> None:
    """Process I/O (consumer callbacks) for ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        conn.process_data_events(time_limit=min(left, 0.05))


def pump_until(conn, predicate, timeout: float = WAIT_TIMEOUT,
               message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        conn.process_data_events(time_limit=0.02)
