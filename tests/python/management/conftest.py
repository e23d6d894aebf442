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
import uuid

import pytest
import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))

MGMT_URL = os.environ.get("MGMT_URL", "").rstrip("/")


def pytest_collection_modifyitems(config, items):
    if MGMT_URL:
        return
    skip = pytest.mark.skip(reason="MGMT_URL is not set (the management API under test)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Api:
    """A requests session on the API; paths are joined to MGMT_URL."""

    def __init__(self, user="guest", password="guest"):
        self.s = requests.Session()
        self.s.auth = (user, password)

    def __getattr__(self, method):
        def call(path, **kw):
            kw.setdefault("timeout", 30)
            return self.s.request(method.upper(), MGMT_URL + path, **kw)
        return call


class Created:
    """Objects a test made through the API, deleted at teardown."""

    def __init__(self, api):
        self.api = api
        self.paths = []

    def queue(self, vhost="%2F", prefix="mq", **body):
        name = unique(prefix)
        r = self.api.put(f"/api/queues/{vhost}/{name}", json=body)
        assert r.status_code == 201, r.text
        self.paths.append(f"/api/queues/{vhost}/{name}")
        return name

    def exchange(self, vhost="%2F", prefix="mx", **body):
        name = unique(prefix)
        body.setdefault("type", "direct")
        r = self.api.put(f"/api/exchanges/{vhost}/{name}", json=body)
        assert r.status_code == 201, r.text
        self.paths.append(f"/api/exchanges/{vhost}/{name}")
        return name

    def track(self, path):
        self.paths.append(path)
        return path

    def cleanup(self):
        for p in reversed(self.paths):
            self.api.delete(p)


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


def wait_for(pred, timeout=10.0):
    """RabbitMQ's figures are refreshed every 5 s (its stats interval);
    Warren's are read live. Poll until `pred()` holds."""
    import time
    end = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() > end:
            return v
        time.sleep(0.2)
