"""MQTT scenario tests (GitHub issue 12). They run against Warren and against
RabbitMQ with its MQTT plugin, from the same files (and ``MQTT_BROKER=mosquitto``
runs the MQTT 5 / QoS 2 ones against a private mosquitto, the reference for
what RabbitMQ 3.10 lacks):

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

from mqtt_helpers import MQTT_BROKER, MQTT_HOST, MQTT_PORT, Client, broker_is_warren  # noqa: E402


def pytest_report_header(config):
    return f"MQTT={MQTT_HOST}:{MQTT_PORT}"


if MQTT_BROKER:
    @pytest.fixture(scope="session")
    def _broker_reachable():
        """No AMQP side to check (MQTT_BROKER names a plain MQTT broker)."""


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
    """MQTT 5 and QoS 2: what RabbitMQ 3.10 lacks (a reference MQTT 5 broker
    named by MQTT_BROKER, e.g. mosquitto, runs these too)."""
    if not warren and not MQTT_BROKER:
        pytest.skip("MQTT 5 / QoS 2 / Warren-only behaviour: RabbitMQ 3.10 has none")


@pytest.fixture
def needs_amqp():
    if MQTT_BROKER:
        pytest.skip(f"{MQTT_BROKER} has no AMQP side")


@pytest.fixture
def warren_settings(warren):
    """Behaviour that depends on Warren's (and RabbitMQ's) settings, such as
    the server's limits, not on the MQTT specification."""
    if MQTT_BROKER:
        pytest.skip(f"depends on the broker's settings, not checked on {MQTT_BROKER}")


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
