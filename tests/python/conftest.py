import os
import sys

import pika
import pika.exceptions
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import AMQP_URL, ConsumerThread, connect, unique  # noqa: E402


def pytest_report_header(config):
    return f"AMQP_URL={AMQP_URL}"


@pytest.fixture(scope="session", autouse=True)
def _broker_reachable():
    try:
        c = connect()
    except Exception as e:  # pragma: no cover - environment problem
        pytest.exit(f"cannot connect to broker at {AMQP_URL}: {e!r}", returncode=2)
    c.close()


class Names:
    """Hands out unique queue/exchange names and deletes them afterwards."""

    def __init__(self):
        self.queues = []
        self.exchanges = []

    def queue(self, prefix: str = "q") -> str:
        name = unique(prefix)
        self.queues.append(name)
        return name

    def exchange(self, prefix: str = "x") -> str:
        name = unique(prefix)
        self.exchanges.append(name)
        return name

    def track_queue(self, name: str) -> str:
        self.queues.append(name)
        return name

    def track_exchange(self, name: str) -> str:
        self.exchanges.append(name)
        return name

    def cleanup(self):
        if not (self.queues or self.exchanges):
            return
        conn = connect()
        try:
            ch = conn.channel()
            for kind, names in (("queue", self.queues), ("exchange", self.exchanges)):
                for name in names:
                    if not ch.is_open:
                        ch = conn.channel()
                    try:
                        if kind == "queue":
                            ch.queue_delete(name)
                        else:
                            ch.exchange_delete(name)
                    except pika.exceptions.ChannelClosedByBroker:
                        # e.g. an exclusive queue still owned by a leaked
                        # connection; nothing more we can do.
                        pass
        finally:
            conn.close()


@pytest.fixture
def names():
    n = Names()
    yield n
    n.cleanup()


@pytest.fixture
def connections():
    """Factory: ``connections()`` opens a BlockingConnection closed at teardown."""
    opened = []

    def make():
        c = connect()
        opened.append(c)
        return c

    yield make
    for c in opened:
        if c.is_open:
            try:
                c.close()
            except Exception:
                pass


@pytest.fixture
def conn(connections):
    return connections()


@pytest.fixture
def ch(conn):
    return conn.channel()


@pytest.fixture
def consumers():
    """Factory for ``ConsumerThread``s that are always stopped at teardown."""
    made = []

    def make(*args, **kwargs):
        t = ConsumerThread(*args, **kwargs)
        made.append(t)
        return t

    yield make
    for t in made:
        t.request_stop()
    for t in made:
        if t.is_alive():
            t.join(5)
