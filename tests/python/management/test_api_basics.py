"""Overview, whoami, nodes, authentication, errors, health checks, aliveness."""

import urllib.parse

import requests

from mgmt_helpers import MGMT_URL, Api
from helpers import AMQP_URL


def test_overview_has_rabbitmqs_fields(api):
    o = api.get("/api/overview").json()
    for key in ("management_version", "rabbitmq_version", "product_name", "node",
                "cluster_name", "exchange_types", "listeners", "object_totals",
                "queue_totals"):
        assert key in o, key
    assert {"messages", "messages_ready", "messages_unacknowledged"} <= set(o["queue_totals"])
    assert {"queues", "exchanges", "consumers"} <= set(o["object_totals"])
    assert "amqp" in {l["protocol"] for l in o["listeners"]}
    assert {"direct", "fanout", "topic", "headers"} <= {t["name"] for t in o["exchange_types"]}


def test_whoami(api):
    assert api.get("/api/whoami").json() == {"name": "guest", "tags": ["administrator"]}


def test_nodes_list_and_show(api, warren):
    nodes = api.get("/api/nodes").json()
    # One entry per cluster node: one on a single node; on a cluster node
    # (tests/python/cluster/run_suites_on_cluster.sh) every member, as RabbitMQ.
    assert nodes and all(n["running"] is True for n in nodes)
    name = api.get("/api/overview").json()["node"]
    assert name in [n["name"] for n in nodes]
    one = api.get(f"/api/nodes/{urllib.parse.quote(name, safe='')}").json()
    assert one["name"] == name
    # RabbitMQ 3.10 fails with a 500 (its handler crashes); Warren: 404.
    assert api.get("/api/nodes/nobody@nowhere").status_code == (404 if warren else 500)


def test_no_credentials_is_a_bare_401_with_a_challenge():
    r = requests.get(MGMT_URL + "/api/overview", timeout=10)
    assert r.status_code == 401
    assert r.content == b""
    assert r.headers["www-authenticate"].startswith("Basic")


def test_wrong_password_is_login_failed():
    r = Api("guest", "wrong").get("/api/overview")
    assert r.status_code == 401
    assert r.json() == {"error": "not_authorized", "reason": "Login failed"}


def test_unknown_objects_are_404_object_not_found(api):
    for path in ("/api/queues/%2F/no-such-queue-xyz", "/api/exchanges/%2F/no-such-x",
                 "/api/vhosts/no-such-vhost", "/api/users/no-such-user",
                 "/api/queues/no-such-vhost", "/api/policies/%2F/no-such-policy"):
        r = api.get(path)
        assert r.status_code == 404, path
        assert r.json() == {"error": "Object Not Found", "reason": "Not Found"}, path


def test_bad_json_is_400_not_json(api):
    r = api.put("/api/queues/%2F/mq-bad-json", data=b"{bad",
                headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {"error": "bad_request", "reason": "not_json"}
    assert api.get("/api/queues/%2F/mq-bad-json").status_code == 404


def test_health_checks(api):
    assert api.get("/api/health/checks/alarms").json() == {"status": "ok"}
    assert api.get("/api/health/checks/local-alarms").json() == {"status": "ok"}
    assert api.get("/api/health/checks/virtual-hosts").json() == {"status": "ok"}
    port = urllib.parse.urlparse(AMQP_URL).port or 5672
    r = api.get(f"/api/health/checks/port-listener/{port}")
    assert (r.status_code, r.json()) == (200, {"status": "ok", "port": port})
    r = api.get("/api/health/checks/port-listener/1")
    assert r.status_code == 503
    assert r.json()["status"] == "failed" and r.json()["missing"] == 1
    r = api.get("/api/health/checks/port-listener/abc")
    assert (r.status_code, r.json()) == (400, {"error": "bad_request", "reason": "Invalid port"})


def test_aliveness_test(api):
    r = api.get("/api/aliveness-test/%2F")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    api.delete("/api/queues/%2F/aliveness-test")
    assert api.get("/api/aliveness-test/no-such-vhost").status_code == 404
