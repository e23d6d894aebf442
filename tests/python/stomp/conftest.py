"""STOMP scenario tests (GitHub issue 10). They run against Warren and against
RabbitMQ 3.10 with its STOMP plugin, from the same files:

    STOMP_PORT=61613 AMQP_URL=amqp://guest:guest@localhost:5672/%2F \\
        python3 -m pytest tests/python/stomp

``STOMP_HOST`` (default 127.0.0.1) and ``STOMP_PORT`` (default 61613) name the
STOMP listener; ``AMQP_URL`` the same broker's AMQP listener (pika, for
cross-protocol checks and cleanup); ``WEB_STOMP_PORT`` (default 15674) its
Web-STOMP listener (test_web_stomp.py, skipped when nothing listens there). A deliberate difference between Warren and
RabbitMQ is tested per broker (``warren`` fixture) with the reason given.
"""

import os
import socket
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from stomp_helpers import (STOMP_HOST, STOMP_PORT, VERSIONS, broker_is_warren,  # noqa: E402
                           close, connect)


def pytest_report_header(config):
    return f"STOMP={STOMP_HOST}:{STOMP_PORT}"


@pytest.fixture(scope="session", autouse=True)
def _stomp_reachable(_broker_reachable):
    try:
        socket.create_connection((STOMP_HOST, STOMP_PORT), timeout=5).close()
    except OSError as e:  # pragma: no cover - environment problem
        pytest.exit(f"cannot connect to STOMP at {STOMP_HOST}:{STOMP_PORT}: {e!r}", returncode=2)


@pytest.fixture(scope="session")
def warren():
    """True when the broker under test is Warren, False for RabbitMQ."""
    return broker_is_warren()


@pytest.fixture(params=VERSIONS)
def version(request):
    return request.param


@pytest.fixture
def stomp_clients():
    """Factory: ``stomp_clients(version, **kw)`` -> (conn, collector); every
    connection is closed at teardown."""
    made = []

    def make(version="1.2", **kw):
        pair = connect(version, **kw)
        made.append(pair[0])
        return pair

    yield make
    for c in made:
        close(c)
