"""Shared helpers for the Warren / RabbitMQ scenario suite.

Everything here talks to the broker named by ``AMQP_URL`` only through the
AMQP 0-9-1 protocol (no management API), so the same tests run unchanged
against RabbitMQ and Warren.
"""

import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

import pika
import pika.exceptions

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

# AMQP 0-9-1 reply codes used by the tests.
NO_ROUTE = 312
ACCESS_REFUSED = 403
NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406

# How long to wait for something that normally happens at once (a delivery, a
# queue deletion, a consumer starting).  Generous so that a slow or loaded
# machine does not fail tests; it only costs time when a test fails anyway.
WAIT_TIMEOUT = 15.0


def params() -> pika.URLParameters:
    p = pika.URLParameters(AMQP_URL)
    # Fail fast instead of hanging when the broker misbehaves.
    p.socket_timeout = 5
    p.stack_timeout = 10
    p.blocked_connection_timeout = 10
    p.connection_attempts = 1
    return p


def vhost() -> str:
    return params().virtual_host


def username() -> str:
    return params().credentials.username


def connect() -> pika.BlockingConnection:
    return pika.BlockingConnection(params())


def unique(prefix: str) -> str:
    """A name that is unique per call, recognisable as test-owned."""
    return f"{prefix}.wt-{uuid.uuid4().hex[:12]}"


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_TIMEOUT,
               interval: float = 0.01, conn: Optional[pika.BlockingConnection] = None,
               message: str = "condition") -> None:
    """Poll ``predicate`` until true or fail after ``timeout`` seconds.

    If ``conn`` is given, its I/O is pumped between polls (so consumer
    callbacks on that connection run); otherwise we just sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        if conn is not None:
            conn.process_data_events(time_limit=interval)
        else:
            time.sleep(interval)


def settle(conn: pika.BlockingConnection, seconds: float = 0.2) -> None:
    """Pump I/O for a short, bounded time.  Only used to give a broker the
    chance to (wrongly) deliver *more* messages before a negative assertion."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=max(0.0, deadline - time.monotonic()))


def queue_exists(conn: pika.BlockingConnection, name: str) -> bool:
    """Passive-declare ``name`` on a fresh channel: True if it exists (405
    means it exists but is another connection's exclusive queue), False on
    404.  Any other error is re-raised."""
    ch = conn.channel()
    try:
        ch.queue_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        if e.reply_code == NOT_FOUND:
            return False
        if e.reply_code == RESOURCE_LOCKED:
            return True
        raise
    ch.close()
    return True


def message_count(conn: pika.BlockingConnection, queue: str) -> int:
    ch = conn.channel()
    try:
        return ch.queue_declare(queue, passive=True).method.message_count
    finally:
        if ch.is_open:
            ch.close()


def drain(ch, queue: str, limit: int = 10_000) -> List[bytes]:
    """basic_get (auto-ack) until get-empty; returns the bodies in order."""
    bodies = []
    for _ in range(limit):
        method, _props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)
    raise AssertionError(f"queue {queue} did not drain within {limit} messages")


@dataclass
class Delivery:
    body: bytes
    redelivered: bool
    delivery_tag: int
    routing_key: str
    exchange: str
    consumer_tag: str
    properties: Any


class ConsumerThread(threading.Thread):
    """A consumer on its own BlockingConnection, running in its own thread.

    ``delay``: seconds to "work" on each message before recording/acking it.
    ``ack``: manual ack after work (ignored with ``auto_ack``).
    ``handler(ch, method, props, body)``: custom work, runs before the ack.
    """

    def __init__(self, queue: str, *, prefetch: Optional[int] = None,
                 auto_ack: bool = False, ack: bool = True, delay: float = 0.0,
                 handler: Optional[Callable] = None, label: str = "consumer"):
        super().__init__(name=label, daemon=True)
        self.queue = queue
        self.prefetch = prefetch
        self.auto_ack = auto_ack
        self.ack = ack
        self.delay = delay
        self.handler = handler
        self.deliveries: List[Delivery] = []
        self.ready = threading.Event()
        self.error: Optional[BaseException] = None
        self._stop_evt = threading.Event()
        self._lock = threading.Lock()

    # -- thread body -------------------------------------------------------
    def run(self):
        conn = None
        try:
            conn = connect()
            ch = conn.channel()
            if self.prefetch is not None:
                ch.basic_qos(prefetch_count=self.prefetch)
            ch.basic_consume(self.queue, self._on_message, auto_ack=self.auto_ack)
            self.ready.set()
            while not self._stop_evt.is_set():
                conn.process_data_events(time_limit=0.02)
        except BaseException as e:  # surfaced by stop()/wait_ready()
            self.error = e
        finally:
            self.ready.set()
            if conn is not None and conn.is_open:
                try:
                    conn.close()
                except Exception:
                    pass

    def _on_message(self, ch, method, props, body):
        if self.delay:
            time.sleep(self.delay)
        if self.handler is not None:
            self.handler(ch, method, props, body)
        with self._lock:
            self.deliveries.append(Delivery(body, method.redelivered, method.delivery_tag,
                                            method.routing_key, method.exchange,
                                            method.consumer_tag, props))
        if self.ack and not self.auto_ack:
            ch.basic_ack(method.delivery_tag)

    # -- control from the test thread ---------------------------------------
    def start_and_wait(self, timeout: float = WAIT_TIMEOUT) -> "ConsumerThread":
        self.start()
        if not self.ready.wait(timeout):
            raise AssertionError(f"{self.name} did not start consuming")
        if self.error:
            raise self.error
        return self

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.deliveries)

    def bodies(self) -> List[bytes]:
        with self._lock:
            return [d.body for d in self.deliveries]

    def request_stop(self) -> None:
        self._stop_evt.set()

    def stop(self, timeout: float = WAIT_TIMEOUT) -> None:
        """Stop consuming and close the connection (gracefully)."""
        self._stop_evt.set()
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"{self.name} did not stop")
        if self.error:
            raise self.error


# A consumer in a separate OS process, so it can be SIGKILLed: the broker
# then sees the TCP connection drop without any AMQP close handshake.
_KILLABLE_CONSUMER = r"""
import sys, pika
url, queue, prefetch = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
ch.basic_qos(prefetch_count=prefetch)
def cb(ch, method, props, body):
    sys.stdout.write("got %s\n" % body.decode()); sys.stdout.flush()
ch.basic_consume(queue, cb, auto_ack=False)
sys.stdout.write("ready\n"); sys.stdout.flush()
ch.start_consuming()
"""


def spawn_killable_consumer(queue: str, prefetch: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _KILLABLE_CONSUMER, AMQP_URL, queue,
                             str(prefetch)], stdout=subprocess.PIPE, text=True)
