"""Fixtures for the hostile-client suite (GitHub issue 14): slowloris
connections, connection churn, authentication floods, resource alarms under
floods and disk faults.

Like tests/python/durability, every test starts its own Warren process (the
harness there, ``WARREN_BIN``) on free loopback ports with a temporary data
dir, usually with short limits (a 2 s handshake timeout, a low memory
watermark) set in its config file, so no running broker is needed.
"""

import os
import resource
import sys

import pytest

HERE = os.path.dirname(__file__)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "durability"))

from warren_harness import Broker, new_broker_root  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _broker_reachable():
    """Overrides the parent suite's check that ``AMQP_URL`` is reachable."""
    yield


@pytest.fixture(scope="session", autouse=True)
def _many_descriptors():
    """Thousands of client sockets need more than the usual 1024 fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield


@pytest.fixture
def broker_factory():
    """``broker_factory(config=None, **listeners)`` -> a not-yet-started broker;
    killed and its directory removed at teardown."""
    made = []

    def make(config=None, **kw):
        b = Broker(new_broker_root("warren-hostile-"), config=config, **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.cleanup()
