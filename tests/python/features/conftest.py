"""Fixtures for the queue/routing feature suite (GitHub issue 5).

Everything runs over AMQP against ``AMQP_URL`` (the parent ``conftest.py``
provides ``names``, ``conn``, ``ch``, ``connections``, ``consumers``), except
firehose tracing and policies, which go through the :mod:`mgmt` adapter
(``BROKER_KIND`` = ``rabbitmq`` | ``warren``).
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import wiretypes  # noqa: E402
from helpers import vhost  # noqa: E402
from mgmt import BROKER_KIND, Mgmt, make_mgmt  # noqa: E402


def pytest_report_header(config):
    return f"BROKER_KIND={BROKER_KIND}"


@pytest.fixture(scope="session", autouse=True)
def _wire_types():
    """Record header wire types on every received message (see wiretypes.py)."""
    wiretypes.install()
    yield
    wiretypes.uninstall()


@pytest.fixture(scope="session")
def mgmt() -> Mgmt:
    return make_mgmt(vhost())
