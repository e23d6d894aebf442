"""Topic permissions, vhost and user limits, operator policies, runtime and
global parameters: the endpoints Terraform's rabbitmq provider and scripts
use, and their enforcement on AMQP (pika) and STOMP (raw frames). Same file
against RabbitMQ 3.10 and Warren; everything is made in a scratch vhost and
user and deleted afterwards."""

import socket
import time


import pika
import pytest

from helpers import params
from mgmt_helpers import unique




@pytest.fixture
def scratch(api):
    """A vhost and a user with full permissions on it (and guest too)."""
    vhost, user = unique("rt-vh"), unique("rt-user")
    assert api.put(f"/api/vhosts/{vhost}").status_code in (201, 204)
    assert api.put(f"/api/users/{user}", json={"password": "pw", "tags": ""}).status_code in (201, 204)
    full = {"configure": ".*", "write": ".*", "read": ".*"}
    for u in (user, "guest"):
        assert api.put(f"/api/permissions/{vhost}/{u}", json=full).status_code in (201, 204)
    yield vhost, user
    api.delete(f"/api/vhosts/{vhost}")
    api.delete(f"/api/users/{user}")


def connect(vhost, user="guest", password="guest"):
    p = params()
    return pika.BlockingConnection(pika.ConnectionParameters(
        p.host, p.port, vhost, pika.PlainCredentials(user, password)))


def stomp_connect(vhost, user, password):
    """CONNECT over a raw socket; returns the first frame's command and body."""
    import os
    port = int(os.environ.get("STOMP_PORT", "61613"))
    s = socket.create_connection((params().host, port), timeout=5)
    try:
        s.sendall(f"CONNECT\naccept-version:1.2\nhost:{vhost}\nlogin:{user}\n"
                  f"passcode:{password}\n\n\x00".encode())
        data = b""
        while b"\x00" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\n\n")
        return head.split(b"\n")[0].decode(), body.split(b"\x00")[0].decode()
    finally:
        s.close()


# ---- topic permissions --------------------------------------------------

def test_topic_permissions_crud(api, scratch):
    vhost, user = scratch
    path = f"/api/topic-permissions/{vhost}/{user}"
    assert api.get(path).status_code == 404
    r = api.put(path, json={"exchange": "amq.topic", "write": "^a", "read": ".*"})
    assert r.status_code == 201, r.text
    r = api.put(path, json={"exchange": "other", "write": "x", "read": "y"})
    assert r.status_code == 204, r.text
    got = api.get(path).json()
    assert {"user": user, "vhost": vhost, "exchange": "amq.topic", "write": "^a",
            "read": ".*"} in got
    assert len(got) == 2
    assert any(t["user"] == user for t in api.get("/api/topic-permissions").json())
    assert len(api.get(f"/api/users/{user}/topic-permissions").json()) == 2
    assert len(api.get(f"/api/vhosts/{vhost}/topic-permissions").json()) == 2
    defs = api.get("/api/definitions").json()
    assert any(t["user"] == user and t["exchange"] == "amq.topic"
               for t in defs["topic_permissions"])
    assert api.delete(f"{path}/other").status_code == 204
    assert len(api.get(path).json()) == 1
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404
    assert api.delete(path).status_code == 404


@pytest.mark.parametrize("body,reason", [
    ({"write": "a", "read": ".*"}, "[{key_missing,exchange}]"),
    ({"exchange": "amq.topic", "write": ".*"}, "[{key_missing,read}]"),
])
def test_topic_permissions_missing_keys(api, scratch, body, reason):
    vhost, user = scratch
    r = api.put(f"/api/topic-permissions/{vhost}/{user}", json=body)
    assert r.status_code == 400
    assert r.json() == {"error": "bad_request", "reason": reason}


def test_topic_permissions_unknown_user_or_vhost_and_bad_regex(api, scratch):
    vhost, user = scratch
    body = {"exchange": "amq.topic", "write": "a", "read": ".*"}
    for path in (f"/api/topic-permissions/{vhost}/nobody-{user}",
                 f"/api/topic-permissions/no-{vhost}/{user}"):
        r = api.put(path, json=body)
        assert r.status_code == 400
        assert r.json() == {"error": "bad_request", "reason": "vhost_or_user_not_found"}
    r = api.put(f"/api/topic-permissions/{vhost}/{user}", json={**body, "write": "("})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"


def test_topic_permissions_are_enforced_on_publish_and_bind(api, scratch):
    vhost, user = scratch
    r = api.put(f"/api/topic-permissions/{vhost}/{user}",
                json={"exchange": "amq.topic", "write": "^{username}\\.", "read": "^public\\."})
    assert r.status_code == 201, r.text
    c = connect(vhost, user, "pw")
    try:
        ch = c.channel()
        ch.basic_publish("amq.topic", f"{user}.news", b"ok")  # allowed
        ch.basic_publish("amq.direct", "anything", b"ok")  # not a topic exchange
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "amq.topic", "public.#")  # allowed
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_bind(q, "amq.topic", "secret.#")
        assert e.value.reply_code == 403
        assert e.value.reply_text == (
            f"ACCESS_REFUSED - access to topic 'secret.#' in exchange 'amq.topic' in "
            f"vhost '{vhost}' refused for user '{user}'")
        ch = c.channel()
        ch.basic_publish("amq.topic", "eve.news", b"no")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("", exclusive=True)  # the refusal arrives first
        assert e.value.reply_code == 403
        assert "access to topic 'eve.news' in exchange 'amq.topic'" in e.value.reply_text
    finally:
        c.close()


def stomp_session(vhost, user, password, frame):
    """CONNECT, send `frame`, read until the broker closes or goes quiet;
    returns [(command, headers text, body)] after CONNECTED."""
    import os
    port = int(os.environ.get("STOMP_PORT", "61613"))
    s = socket.create_connection((params().host, port), timeout=3)
    data = b""
    try:
        s.sendall(f"CONNECT\naccept-version:1.2\nhost:{vhost}\nlogin:{user}\n"
                  f"passcode:{password}\n\n\x00".encode() + frame.encode())
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    finally:
        s.close()
    frames = []
    for f in data.split(b"\x00"):
        f = f.lstrip(b"\r\n")
        if f:
            head, _, body = f.partition(b"\n\n")
            lines = head.decode().split("\n")
            frames.append((lines[0], "\n".join(lines[1:]), body.decode()))
    return frames[1:]


def test_topic_permissions_are_enforced_over_stomp_and_http(api, scratch):
    vhost, user = scratch
    assert api.put(f"/api/permissions/{vhost}/{user}",
                   json={"configure": ".*", "write": ".*", "read": ".*"}).status_code == 204
    assert api.put(f"/api/users/{user}", json={"password": "pw", "tags": "management"}
                   ).status_code == 204
    r = api.put(f"/api/topic-permissions/{vhost}/{user}",
                json={"exchange": "amq.topic", "write": "^{username}\\.", "read": "^public\\."})
    assert r.status_code == 201, r.text
    ok = stomp_session(vhost, user, "pw",
                       f"SEND\ndestination:/topic/{user}.news\nreceipt:r1\n\nok\x00")
    assert [f[0] for f in ok] == ["RECEIPT"], ok
    refused = stomp_session(vhost, user, "pw",
                            "SEND\ndestination:/topic/eve.news\nreceipt:r1\n\nno\x00")
    assert refused[0][0] == "ERROR" and "message:access_refused" in refused[0][1], refused
    assert refused[0][2] == (f"ACCESS_REFUSED - access to topic 'eve.news' in exchange "
                             f"'amq.topic' in vhost '{vhost}' refused for user '{user}'")
    sub = stomp_session(vhost, user, "pw", "SUBSCRIBE\ndestination:/topic/secret.x\nid:1\n\n\x00")
    # The first frame is the refusal (no consumer was started, so no
    # "Server cancelled subscription" first). RabbitMQ's body has no
    # "ACCESS_REFUSED - " prefix on this path; Warren's has.
    assert sub[0][0] == "ERROR" and "message:access_refused" in sub[0][1], sub
    assert sub[0][2].endswith(f"access to topic 'secret.x' in exchange 'amq.topic' in "
                              f"vhost '{vhost}' refused for user '{user}'")
    from mgmt_helpers import Api
    as_user = Api(user, "pw")
    body = {"routing_key": "eve.x", "payload": "x", "payload_encoding": "string",
            "properties": {}}
    r = as_user.post(f"/api/exchanges/{vhost}/amq.topic/publish", json=body)
    assert r.status_code == 400
    assert r.json()["reason"] == (f"403 ACCESS_REFUSED - access to topic 'eve.x' in exchange "
                                  f"'amq.topic' in vhost '{vhost}' refused for user '{user}'")
    r = as_user.post(f"/api/exchanges/{vhost}/amq.topic/publish",
                     json={**body, "routing_key": f"{user}.x"})
    assert r.status_code == 200 and r.json() == {"routed": False}
    assert api.put(f"/api/queues/{vhost}/tq", json={}).status_code == 201
    r = as_user.post(f"/api/bindings/{vhost}/e/amq.topic/q/tq", json={"routing_key": "secret.#"})
    assert r.status_code == 401
    assert r.json() == {"error": "not_authorised", "reason": "Access refused."}


# ---- vhost and user limits ----------------------------------------------

def test_vhost_limits_crud_and_validation(api, scratch):
    vhost, _ = scratch
    assert api.get(f"/api/vhost-limits/{vhost}").json() == []
    for name, value in (("max-connections", 5), ("max-queues", 100)):
        r = api.put(f"/api/vhost-limits/{vhost}/{name}", json={"value": value})
        assert r.status_code == 204, r.text
    assert api.get(f"/api/vhost-limits/{vhost}").json() == [
        {"vhost": vhost, "value": {"max-connections": 5, "max-queues": 100}}]
    assert {"vhost": vhost, "value": {"max-connections": 5, "max-queues": 100}} in \
        api.get("/api/vhost-limits").json()
    r = api.put(f"/api/vhost-limits/{vhost}/max-foo", json={"value": 5})
    assert r.status_code == 400
    assert "Unrecognised terms [{<<\"max-foo\">>,5}] in limits" in r.json()["reason"]
    r = api.put(f"/api/vhost-limits/{vhost}/max-queues", json={"value": "x"})
    assert r.status_code == 400
    assert "max-queues should be a number" in r.json()["reason"]
    r = api.put(f"/api/vhost-limits/{vhost}/max-queues", json={})
    assert r.json() == {"error": "bad_request", "reason": "[{key_missing,value}]"}
    r = api.put(f"/api/vhost-limits/no-{vhost}/max-queues", json={"value": 1})
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "reason": "vhost_not_found"}
    assert api.get(f"/api/vhost-limits/no-{vhost}").status_code == 404
    params_ = api.get("/api/parameters/vhost-limits").json()
    assert any(p["vhost"] == vhost and p["name"] == "limits" for p in params_)
    for name in ("max-connections", "max-queues", "max-queues"):
        assert api.delete(f"/api/vhost-limits/{vhost}/{name}").status_code == 204
    assert api.get(f"/api/vhost-limits/{vhost}").json() == []


def test_vhost_limits_are_enforced(api, scratch):
    vhost, _ = scratch
    api.put(f"/api/vhost-limits/{vhost}/max-connections", json={"value": 1})
    c1 = connect(vhost)
    try:
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
            connect(vhost)
        assert (f"access to vhost '{vhost}' refused for user 'guest': connection limit (1) "
                "is reached") in str(e.value)
        assert stomp_connect(vhost, "guest", "guest") == (
            "ERROR", f"Virtual host '{vhost}' access denied")
    finally:
        c1.close()
    api.delete(f"/api/vhost-limits/{vhost}/max-connections")
    api.put(f"/api/vhost-limits/{vhost}/max-queues", json={"value": 1})
    c = connect(vhost)
    try:
        ch = c.channel()
        ch.queue_declare("lq1")
        ch.queue_declare("lq1")  # redeclaring is no new queue
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("lq2")
        assert e.value.reply_code == 406
        assert e.value.reply_text == (f"PRECONDITION_FAILED - cannot declare queue 'lq2': "
                                      f"queue limit in vhost '{vhost}' (1) is reached")
        r = api.put(f"/api/queues/{vhost}/lq3", json={})
        assert r.status_code == 400
        assert r.json()["reason"] == (f"cannot declare queue 'lq3': queue limit in vhost "
                                      f"'{vhost}' (1) is reached")
    finally:
        c.close()


def test_user_limits_crud_and_enforcement(api, scratch):
    vhost, user = scratch
    assert api.put(f"/api/user-limits/{user}/max-connections", json={"value": 1}).status_code == 204
    assert api.put(f"/api/user-limits/{user}/max-channels", json={"value": 1}).status_code == 204
    assert api.get(f"/api/user-limits/{user}").json() == [
        {"user": user, "value": {"max-channels": 1, "max-connections": 1}}]
    assert api.get(f"/api/users/{user}").json()["limits"] == {
        "max-channels": 1, "max-connections": 1}
    r = api.put(f"/api/user-limits/{user}/max-foo", json={"value": 1})
    assert r.status_code == 400 and "in user-limits" in r.json()["reason"]
    r = api.put(f"/api/user-limits/nobody-{user}/max-channels", json={"value": 1})
    assert r.status_code == 400
    assert r.json()["reason"] == ["no_such_user", f"nobody-{user}"] or \
        r.json()["reason"] == f'["no_such_user","nobody-{user}"]'
    assert api.get(f"/api/user-limits/nobody-{user}").status_code == 404
    c1 = connect(vhost, user, "pw")
    try:
        c1.channel()
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            c1.channel()
        assert e.value.reply_code == 530
        assert e.value.reply_text == (
            f"NOT_ALLOWED - number of channels opened for user '{user}' has reached the "
            "maximum allowed user limit of (1)")
    finally:
        if c1.is_open:
            c1.close()
    c1 = connect(vhost, user, "pw")
    try:
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
            connect(vhost, user, "pw")
        assert (f"connection refused for user '{user}': user connection limit (1) is reached"
                in str(e.value))
    finally:
        c1.close()
    for name in ("max-connections", "max-channels"):
        assert api.delete(f"/api/user-limits/{user}/{name}").status_code == 204
    assert api.get(f"/api/user-limits/{user}").json() == []


# ---- operator policies, parameters, global parameters --------------------

def test_operator_policies(api, scratch):
    vhost, _ = scratch
    path = f"/api/operator-policies/{vhost}/op1"
    body = {"pattern": "^op", "definition": {"max-length": 5, "expires": 600000},
            "apply-to": "queues", "priority": 3}
    assert api.put(path, json=body).status_code == 201
    assert api.put(path, json=body).status_code == 204
    got = api.get(path).json()
    assert got == {"vhost": vhost, "name": "op1", "pattern": "^op", "apply-to": "queues",
                   "definition": {"max-length": 5, "expires": 600000}, "priority": 3}
    assert got in api.get(f"/api/operator-policies/{vhost}").json()
    r = api.put(path, json={**body, "definition": {"dead-letter-exchange": "x"}})
    assert r.status_code == 400
    assert "are not recognised policy settings" in r.json()["reason"]
    # The cap applies: a queue asking for more keeps only 5.
    c = connect(vhost)
    try:
        ch = c.channel()
        ch.queue_declare("op-q", arguments={"x-max-length": 100})
        for i in range(8):
            ch.basic_publish("", "op-q", b"m")
        deadline = time.time() + 10
        while time.time() < deadline:
            n = api.get(f"/api/queues/{vhost}/op-q").json().get("messages")
            if n == 5:
                break
            time.sleep(0.5)
        assert n == 5
    finally:
        c.close()
    assert any(p["component"] == "operator_policy" and p["name"] == "op1"
               for p in api.get(f"/api/parameters/operator_policy/{vhost}").json())
    assert api.delete(path).status_code == 204
    assert api.delete(path).status_code == 404
    assert api.get(path).status_code == 404


def test_parameters_of_unknown_components_are_refused_as_rabbitmq(api, scratch):
    vhost, _ = scratch
    r = api.put(f"/api/parameters/federation-upstream/{vhost}/up1",
                json={"value": {"uri": "amqp://x"}})
    assert r.status_code == 400
    assert r.json() == {"error": "bad_request",
                        "reason": "Validation failed\n\ncomponent federation-upstream not found\n"}
    assert api.get(f"/api/parameters/foo/{vhost}/x").status_code == 404
    assert api.get("/api/parameters/foo").json() == []
    r = api.put(f"/api/parameters/policy/{vhost}/p", json={"value": {}})
    assert r.json() == {"error": "bad_request",
                        "reason": "policies may not be set using this method"}
    # vhost-limits through the parameters API.
    path = f"/api/parameters/vhost-limits/{vhost}/limits"
    assert api.put(path, json={"value": {"max-queues": 10}}).status_code in (201, 204)
    assert api.get(path).json() == {"value": {"max-queues": 10}, "vhost": vhost,
                                    "component": "vhost-limits", "name": "limits"}
    assert api.get(f"/api/vhost-limits/{vhost}").json() == [
        {"vhost": vhost, "value": {"max-queues": 10}}]
    assert api.delete(path).status_code == 204


def test_global_parameters(api):
    name = unique("gp")
    assert api.put(f"/api/global-parameters/{name}", json={"value": {"a": 1}}).status_code == 201
    assert api.put(f"/api/global-parameters/{name}", json={"value": {"a": 2}}).status_code == 204
    assert api.get(f"/api/global-parameters/{name}").json() == {"name": name, "value": {"a": 2}}
    listed = api.get("/api/global-parameters").json()
    assert {"name": name, "value": {"a": 2}} in listed
    assert any(g["name"] == "internal_cluster_id" for g in listed)
    defs = api.get("/api/definitions").json()
    assert {"name": name, "value": {"a": 2}} in defs["global_parameters"]
    r = api.put(f"/api/global-parameters/{name}", json={"valu": 1})
    assert r.json() == {"error": "bad_request", "reason": "[{key_missing,value}]"}
    assert api.delete(f"/api/global-parameters/{name}").status_code == 204
    assert api.delete(f"/api/global-parameters/{name}").status_code == 404
    assert api.get(f"/api/global-parameters/{name}").status_code == 404


def test_definitions_round_trip_limits_and_topic_permissions(api, scratch):
    vhost, user = scratch
    api.put(f"/api/vhost-limits/{vhost}/max-queues", json={"value": 42})
    api.put(f"/api/user-limits/{user}/max-channels", json={"value": 7})
    api.put(f"/api/topic-permissions/{vhost}/{user}",
            json={"exchange": "amq.topic", "write": "w", "read": "r"})
    defs = api.get("/api/definitions").json()
    api.delete(f"/api/vhost-limits/{vhost}/max-queues")
    api.delete(f"/api/user-limits/{user}/max-channels")
    api.delete(f"/api/topic-permissions/{vhost}/{user}")
    mine = {
        "users": [u for u in defs["users"] if u["name"] == user],
        "vhosts": [v for v in defs["vhosts"] if v["name"] == vhost],
        "permissions": [p for p in defs["permissions"] if p["vhost"] == vhost],
        "topic_permissions": [t for t in defs["topic_permissions"] if t["vhost"] == vhost],
        "parameters": [p for p in defs["parameters"] if p["vhost"] == vhost],
    }
    assert mine["parameters"] == [{"value": {"max-queues": 42}, "vhost": vhost,
                                   "component": "vhost-limits", "name": "limits"}]
    assert mine["users"][0]["limits"] == {"max-channels": 7}
    r = api.post("/api/definitions", json=mine)
    assert r.status_code in (200, 201, 204), r.text
    assert api.get(f"/api/vhost-limits/{vhost}").json() == [
        {"vhost": vhost, "value": {"max-queues": 42}}]
    assert api.get(f"/api/user-limits/{user}").json() == [
        {"user": user, "value": {"max-channels": 7}}]
    assert len(api.get(f"/api/topic-permissions/{vhost}/{user}").json()) == 1


def test_a_rabbitmq_export_with_cleared_limits_imports(api, scratch):
    """RabbitMQ exports `"value": []` for a vhost whose limits were cleared."""
    vhost, _ = scratch
    defs = {"parameters": [{"value": [], "vhost": vhost, "component": "vhost-limits",
                            "name": "limits"}]}
    r = api.post("/api/definitions", json=defs)
    assert r.status_code in (200, 201, 204), r.text
    assert api.get(f"/api/vhost-limits/{vhost}").json() in ([], [{"vhost": vhost, "value": []}])
