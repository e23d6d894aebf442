"""MQTT scenario tests (GitHub issue 12). They run against Warren and against
RabbitMQ with its MQTT plugin, from the same files:

    MQTT_PORT=1883 AMQP_URL=amqp://guest:guest@localhost:5672/%2F \\
        python3 -m pytest tests/python/mqtt

``MQTT_HOST`` / ``MQTT_PORT`` name the MQTT listener, ``AMQP_URL`` the same
broker's AMQP listener (pika, for cross-protocol checks), ``STOMP_PORT`` its
STOMP listener (cross-protocol with stomp.py; skipped if nothing listens).
MQTT 5 and QoS 2 tests are skipped on RabbitMQ 3.10 (it has no MQTT 5 and
downgrades QoS 2); where Warren deliberately differs, the test says why.
"""

import os
import socket
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from mqtt_helpers import MQTT_HOST, MQTT_PORT, Client, broker_is_warren  # noqa: E402


def pytest_report_header(config):
    return f"MQTT={MQTT_HOST}:{MQTT_PORT}"


@pytest.fixture(scope="session", autouse=True)
def _mqtt_reachable(_broker_reachable):
    try:
        socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=5).close()
    except OSError as e:  # pragma: no cover - environment problem
        pytest.exit(f"cannot connect to MQTT at {MQTT_HOST}:{MQTT_PORT}: {e!r}", returncode=2)


@pytest.fixture(scope="session")
def warren():
    return broker_is_warren()


@pytest.fixture
def warren_only(warren):
    if not warren:
        pytest.skip("MQTT 5 / QoS 2 / Warren-only behaviour: RabbitMQ 3.10 has none")


@pytest.fixture
def clients():
    """Factory: ``clients(**kw)`` -> a connected :class:`Client`; all are
    disconnected at teardown."""
    made = []

    def make(**kw):
        c = Client(**kw)
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.disconnect()
        except Exception:
            pass
