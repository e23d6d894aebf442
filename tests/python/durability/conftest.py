"""Fixtures for the durability suite (GitHub issue 4).

These tests start their own Warren processes (``WARREN_BIN``, default
``/work/main/target/debug/warren``) on free ports with temporary data dirs, so
they do not use ``AMQP_URL`` and need no running broker.
"""

import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from warren_harness import REPO_ROOT, WARREN_BIN, Broker, new_broker_root  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _broker_reachable():
    """Overrides the parent suite's check that ``AMQP_URL`` is reachable:
    this suite runs its own brokers."""
    yield


@pytest.fixture(scope="session")
def warren_bin():
    if not os.path.exists(WARREN_BIN):
        if "WARREN_BIN" in os.environ or shutil.which("cargo") is None:
            pytest.skip(f"warren binary not found at {WARREN_BIN}")
        r = subprocess.run(["cargo", "build", "--bin", "warren"], cwd=REPO_ROOT,
                           capture_output=True, text=True)
        if r.returncode != 0 or not os.path.exists(WARREN_BIN):
            pytest.fail(f"cargo build --bin warren failed:\n{r.stderr[-4000:]}")
    return WARREN_BIN


@pytest.fixture
def broker_factory(warren_bin):
    """``broker_factory(config=None)`` -> a not-yet-started :class:`Broker` with
    its own temp dir.  Every broker is SIGKILLed and its dir removed at teardown
    (set ``WARREN_KEEP_DATA=1`` to keep the dirs); logs are printed, so they
    show up in the report of a failed test."""
    made = []

    def make(config=None, label="warren", stomp=False, mqtt=False, web_mqtt=False, http=False):
        b = Broker(new_broker_root(), config=config, label=label, stomp=stomp, mqtt=mqtt,
                   web_mqtt=web_mqtt, http=http)
        made.append(b)
        return b

    yield make
    for b in made:
        b.cleanup()


@pytest.fixture
def broker(broker_factory):
    """A started broker with default configuration."""
    return broker_factory().start()
