"""Helpers shared by the management API tests (see conftest.py)."""

import os
import uuid

import requests

MGMT_URL = os.environ.get("MGMT_URL", "").rstrip("/")


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
            try:
                return self.s.request(method.upper(), MGMT_URL + path, **kw)
            except requests.ConnectionError:
                # RabbitMQ's listener closes idle keep-alive connections; a
                # request racing that close is sent again on a new one.
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
