"""guest may only log in from the local host, on every protocol and address
family (RabbitMQ's ``loopback_users``): IPv4 (127.0.0.1), IPv6 (::1) and
IPv4-mapped IPv6 (a dual-stack listener sees 127.0.0.1 as ::ffff:127.0.0.1,
which is loopback too; ::ffff:<remote> is not).

"Remote" here is a non-loopback address of this machine: a client that
connects to it has it as its source address, so the broker sees a peer that
is not loopback, exactly as for another host. Another user, with a password,
logs in from the same address on the same protocols, so a refusal of guest
is the loopback rule and not the network.

What a refused client observes is RabbitMQ 3.10's (checked against it):
AMQP 403 ACCESS_REFUSED with the generic "Login was refused ..." text (the
reason is only logged: a remote client does not learn that guest's password
was right), STOMP and Web-STOMP an ERROR "Bad CONNECT" / "non-loopback
access denied", MQTT and Web-MQTT CONNACK 5 "not authorized" (MQTT 5: 0x87),
the HTTP API 401 not_authorised "User can only log in via localhost"; SSE
(Warren only) 401.
"""

import pytest
import requests

from clients import (amqp_login, http_get, mqtt_login, sse_login, stomp_login,
                     web_mqtt_login, web_stomp_login)
from conftest import local_addresses

V4, V6 = local_addresses()
OTHER = ("remote", "remote-pw-1")


def add_user(b, user, password, tags="management"):
    base = f"http://127.0.0.1:{b.http_port}"
    auth = ("guest", "guest")
    r = requests.put(f"{base}/api/users/{user}", json={"password": password, "tags": tags},
                     auth=auth, timeout=10)
    assert r.status_code in (201, 204), r.text
    r = requests.put(f"{base}/api/permissions/%2F/{user}",
                     json={"configure": ".*", "write": ".*", "read": ".*"}, auth=auth, timeout=10)
    assert r.status_code in (201, 204), r.text


@pytest.fixture(scope="module")
def brokers(v4, dual):
    for b in (v4, dual):
        add_user(b, *OTHER)
    return {"v4": v4, "dual": dual}


# (case, broker, client address or None when the machine has none, guest allowed)
CASES = [
    ("ipv4-loopback", "v4", "127.0.0.1", True),
    ("ipv4-remote", "v4", V4[0] if V4 else None, False),
    ("ipv6-loopback", "dual", "::1", True),
    ("ipv6-remote", "dual", V6[0] if V6 else None, False),
    ("mapped-loopback", "dual", "127.0.0.1", True),
    ("mapped-remote", "dual", V4[0] if V4 else None, False),
]


def outcomes(b, host, user, password):
    """What each protocol's client observes logging in as user."""
    return {
        "amqp": amqp_login(host, b.amqp_port, user, password),
        "stomp": stomp_login(host, b.stomp_port, user, password)[0:3:2],
        "mqtt": mqtt_login(host, b.mqtt_port, user, password),
        "mqtt5": mqtt_login(host, b.mqtt_port, user, password, version=5),
        "web-stomp": web_stomp_login(host, b.web_stomp_port, user, password)[0:3:2],
        "web-mqtt": web_mqtt_login(host, b.web_mqtt_port, user, password),
        "http": (lambda r: (r.status_code, r.json()))(
            http_get(host, b.http_port, "/api/whoami", user, password)),
        "sse": sse_login(host, b.web_stomp_port, user, password),
    }


ALLOWED = {
    "amqp": "ok",
    "stomp": ("CONNECTED", ""),
    "mqtt": 0,
    "mqtt5": 0,
    "web-stomp": ("CONNECTED", ""),
    "web-mqtt": 0,
    "sse": 200,
}


@pytest.mark.parametrize("case,which,host,allowed", CASES, ids=[c[0] for c in CASES])
def test_guest_is_loopback_only(brokers, case, which, host, allowed):
    if host is None:
        pytest.skip("this machine has no non-loopback address of that family")
    b = brokers[which]
    got = outcomes(b, host, "guest", "guest")
    if allowed:
        for proto, want in ALLOWED.items():
            assert got[proto] == want, (proto, got[proto])
        assert got["http"][0] == 200 and got["http"][1]["name"] == "guest"
        return
    amqp = got["amqp"]
    assert amqp[0] == "auth" and "403" in amqp[1] and "ACCESS_REFUSED" in amqp[1], amqp
    assert "Login was refused using authentication mechanism PLAIN" in amqp[1], amqp
    assert got["stomp"] == ("ERROR", "non-loopback access denied")
    assert got["web-stomp"] == ("ERROR", "non-loopback access denied")
    assert got["mqtt"] == 5
    assert got["mqtt5"] == 0x87
    assert got["web-mqtt"] == 5
    assert got["http"] == (401, {"error": "not_authorised",
                                 "reason": "User can only log in via localhost"})
    assert got["sse"] == 401
    # Another user logs in from the same address on every protocol.
    other = outcomes(b, host, *OTHER)
    for proto, want in ALLOWED.items():
        assert other[proto] == want, (proto, other[proto])
    assert other["http"][0] == 200
    # The reason is in the log, the password is not.
    log = b.log()
    assert "can only connect via localhost" in log
