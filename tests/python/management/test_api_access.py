"""Users, vhosts, permissions, and what each management tag may do."""

import pika
import pytest

from mgmt_helpers import Api, unique
from helpers import AMQP_URL


@pytest.fixture
def user(api, made):
    """Create a user with tags (and optionally full permissions on /)."""
    def make(tags, perms_on=None, password="pw1"):
        name = unique("mu")
        made.track(f"/api/users/{name}")
        assert api.put(f"/api/users/{name}", json={"password": password, "tags": tags}).status_code == 201
        if perms_on:
            assert api.put(f"/api/permissions/{perms_on}/{name}",
                           json={"configure": ".*", "write": ".*", "read": ".*"}).status_code == 201
        return name, Api(name, password)
    return make


def test_users_crud(api, made):
    name = unique("mu")
    made.track(f"/api/users/{name}")
    r = api.put(f"/api/users/{name}", json={"password": "p1"})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request", "reason": "tags_not_present"})
    assert api.put(f"/api/users/{name}", json={"password": "p1", "tags": "monitoring,management"}).status_code == 201
    u = api.get(f"/api/users/{name}").json()
    assert u["tags"] == ["monitoring", "management"]
    assert u["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert u["limits"] == {}
    assert api.put(f"/api/users/{name}", json={"password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                                               "tags": ""}).status_code == 204
    assert api.get(f"/api/users/{name}").json()["password_hash"] == "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
    assert name in [u["name"] for u in api.get("/api/users/without-permissions").json()]
    assert name in [u["name"] for u in api.get("/api/users").json()]
    assert api.delete(f"/api/users/{name}").status_code == 204
    assert api.delete(f"/api/users/{name}").status_code == 404


def test_user_logs_in_over_amqp_with_the_api_given_password(api, user):
    name, _ = user("", perms_on="%2F", password="s3cret")
    params = pika.URLParameters(AMQP_URL)
    params.credentials = pika.PlainCredentials(name, "s3cret")
    pika.BlockingConnection(params).close()


def test_vhosts_and_permissions(api, made, user):
    vh = unique("mvh")
    made.track(f"/api/vhosts/{vh}")
    assert api.put(f"/api/vhosts/{vh}").status_code == 201
    assert api.put(f"/api/vhosts/{vh}").status_code == 204
    v = api.get(f"/api/vhosts/{vh}").json()
    assert v["name"] == vh and v.get("messages", 0) == 0 and v["tracing"] is False
    name, _ = user("management")
    url = f"/api/permissions/{vh}/{name}"
    r = api.put(url, json={"configure": "(", "write": ".*", "read": ".*"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
    r = api.put(url, json={"configure": ".*", "write": ".*"})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request", "reason": "[{key_missing,read}]"})
    r = api.put(f"/api/permissions/{vh}/mu-nobody", json={"configure": ".*", "write": ".*", "read": ".*"})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request", "reason": "vhost_or_user_not_found"})
    assert api.put(url, json={"configure": "^a", "write": ".*", "read": ".*"}).status_code == 201
    assert api.put(url, json={"configure": "^b", "write": ".*", "read": ".*"}).status_code == 204
    assert api.get(url).json() == {"user": name, "vhost": vh, "configure": "^b", "write": ".*", "read": ".*"}
    assert [p["user"] for p in api.get(f"/api/vhosts/{vh}/permissions").json()] == ["guest", name] or \
        [p["user"] for p in api.get(f"/api/vhosts/{vh}/permissions").json()] == [name]
    assert any(p["vhost"] == vh for p in api.get(f"/api/users/{name}/permissions").json())
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404
    assert api.delete(f"/api/vhosts/{vh}").status_code == 204
    assert api.delete(f"/api/vhosts/{vh}").status_code == 404


def test_vhost_put_switches_tracing(api, made):
    """RabbitMQ's way to trace_on/trace_off over HTTP (what `warren ctl
    trace-on --http-url` uses): PUT the vhost with {"tracing": bool}; a PUT
    without it leaves tracing as it is."""
    vh = unique("mvh")
    made.track(f"/api/vhosts/{vh}")
    assert api.put(f"/api/vhosts/{vh}").status_code == 201
    assert api.put(f"/api/vhosts/{vh}", json={"tracing": True}).status_code == 204
    assert api.get(f"/api/vhosts/{vh}").json()["tracing"] is True
    assert api.put(f"/api/vhosts/{vh}", json={}).status_code == 204
    assert api.get(f"/api/vhosts/{vh}").json()["tracing"] is True
    assert api.put(f"/api/vhosts/{vh}", json={"tracing": False}).status_code == 204
    assert api.get(f"/api/vhosts/{vh}").json()["tracing"] is False
    assert api.delete(f"/api/vhosts/{vh}").status_code == 204


def test_tags_limit_what_users_see_and_do(api, made, user):
    _, plain = user("")
    r = plain.get("/api/overview")
    assert (r.status_code, r.json()) == (401, {"error": "not_authorised", "reason": "Not management user"})
    _, mon = user("monitoring")
    assert mon.get("/api/nodes").status_code == 200
    r = mon.get("/api/users")
    assert (r.status_code, r.json()) == (401, {"error": "not_authorised", "reason": "Not administrator user"})
    assert "/" in [v["name"] for v in mon.get("/api/vhosts").json()]
    # A management user without permissions sees no vhost and may not declare.
    _, mgmt = user("management")
    assert mgmt.get("/api/vhosts").json() == []
    assert mgmt.get("/api/queues").json() == []
    r = mgmt.get("/api/nodes")
    assert (r.status_code, r.json()) == (401, {"error": "not_authorised", "reason": "Not monitor user"})
    r = mgmt.put("/api/queues/%2F/mq-denied", json={})
    assert (r.status_code, r.json()) == (401, {"error": "not_authorised",
                                               "reason": "User not authorised to access virtual host"})
    r = mgmt.get("/api/definitions")
    assert r.status_code == 401
    # With permissions on / it sees / and its queues, and may declare what its
    # configure regex allows.
    name, mgmt2 = user("management")
    api.put(f"/api/permissions/%2F/{name}", json={"configure": "^mq-ok", "write": ".*", "read": ".*"})
    assert [v["name"] for v in mgmt2.get("/api/vhosts").json()] == ["/"]
    made.track("/api/queues/%2F/mq-ok-1")
    assert mgmt2.put("/api/queues/%2F/mq-ok-1", json={}).status_code == 201
    r = mgmt2.put("/api/queues/%2F/mq-not-ok", json={})
    assert (r.status_code, r.json()) == (401, {"error": "not_authorised", "reason": "Access refused."})
    r = mgmt2.put("/api/policies/%2F/mp-x", json={"pattern": "x", "definition": {"max-length": 1}})
    assert r.status_code == 401


def test_guest_is_loopback_only(api, warren):
    import socket
    import urllib.parse
    from mgmt_helpers import MGMT_URL
    host = urllib.parse.urlparse(MGMT_URL)
    if host.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("MGMT_URL is not a loopback address")
    ip = socket.gethostbyname(socket.gethostname())
    if ip.startswith("127."):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect(("192.0.2.1", 9))
            ip = s.getsockname()[0]
        finally:
            s.close()
    if ip.startswith("127."):
        pytest.skip("this machine has no non-loopback address to test from")
    import requests
    url = f"http://{ip}:{host.port}/api/whoami"
    try:
        r = requests.get(url, auth=("guest", "guest"), timeout=5)
    except requests.ConnectionError:
        pytest.skip(f"the listener is bound to loopback only (not reachable at {ip})")
    assert (r.status_code, r.json()) == (401, {"error": "not_authorised",
                                               "reason": "User can only log in via localhost"})
