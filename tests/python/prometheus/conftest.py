"""Prometheus endpoint tests (GitHub issue 11, "Prometheus"), run against Warren
and against RabbitMQ 3.10's rabbitmq_prometheus plugin from the same file:

    PROMETHEUS_URL=http://127.0.0.1:15692 AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F \\
        python3 -m pytest tests/python/prometheus

Without ``PROMETHEUS_URL`` every test here is skipped with that reason.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))

PROMETHEUS_URL = os.environ.get("PROMETHEUS_URL", "").rstrip("/")


def pytest_collection_modifyitems(config, items):
    if PROMETHEUS_URL:
        return
    skip = pytest.mark.skip(reason="PROMETHEUS_URL is not set (the metrics listener under test)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)
