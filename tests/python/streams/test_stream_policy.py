"""Stream retention from a policy (max-length-bytes and
stream-max-segment-size-bytes), and the management API's view of a stream
(type "stream"). Needs the management API: skipped unless ``MGMT_URL`` is set."""

import os
import urllib.parse

import pytest
import requests

from helpers import connect, wait_until
from streamlib import declare, first_offset, publish

MGMT_URL = os.environ.get("MGMT_URL")
if not MGMT_URL:
    pytest.skip("MGMT_URL is not set", allow_module_level=True)
AUTH = ("guest", "guest")


def test_policy_retention_and_queue_type(names):
    if requests.get(f"{MGMT_URL}/api/overview", auth=AUTH).status_code != 200:
        pytest.skip("the management API is failing (/api/overview is not 200)")
    q = names.queue("stream-policy")
    policy = q.replace(".", "-")
    url = f"{MGMT_URL}/api/policies/%2F/{policy}"
    r = requests.put(url, auth=AUTH, json={
        "pattern": "^" + q.replace(".", "\\.") + "$", "apply-to": "queues",
        "definition": {"max-length-bytes": 3000, "stream-max-segment-size-bytes": 1000}})
    assert r.status_code in (201, 204), r.text
    try:
        conn = connect()
        ch = conn.channel()
        declare(ch, q)
        ch.confirm_delivery()
        publish(ch, q, [b"%04d" % i + b"x" * 96 for i in range(200)])
        conn.close()
        wait_until(lambda: (first_offset(q) or 0) > 0, interval=0.3, message="policy retention")
        info = requests.get(f"{MGMT_URL}/api/queues/%2F/{urllib.parse.quote(q, safe='')}", auth=AUTH)
        assert info.status_code == 200
        assert info.json()["type"] == "stream"
    finally:
        requests.delete(url, auth=AUTH)
