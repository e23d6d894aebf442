"""Management HTTP API scenario tests (GitHub issue 11), with `requests`, run
against Warren and against RabbitMQ 3.10's management plugin from the same files:

    MGMT_URL=http://127.0.0.1:15672 AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F \\
        python3 -m pytest tests/python/management

``MGMT_URL`` is the broker's management listener, ``AMQP_URL`` the same
broker's AMQP listener (pika drives real traffic whose figures the API must
show). Without ``MGMT_URL`` every test here is skipped with that reason.
Differences between the brokers are tested per broker (``warren`` fixture),
each with its reason. Everything a test creates is deleted afterwards.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))

from mgmt_helpers import MGMT_URL, Api, Created  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if MGMT_URL:
        return
    skip = pytest.mark.skip(reason="MGMT_URL is not set (the management API under test)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def api():
    return Api()


@pytest.fixture(scope="session")
def warren(api):
    """True when the broker under test is Warren, False for RabbitMQ."""
    r = api.get("/api/overview")
    assert r.status_code == 200, r.text
    return r.json()["product_name"] == "Warren"


@pytest.fixture
def made(api):
    c = Created(api)
    yield c
    c.cleanup()


@pytest.fixture
def amqp():
    from helpers import connect
    conns = []

    def open_():
        c = connect()
        conns.append(c)
        return c

    yield open_
    for c in conns:
        try:
            c.close()
        except Exception:
            pass
