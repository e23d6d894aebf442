"""Passwords never reach the log, at debug level, on any protocol: logins
with a wrong and with the right password (AMQP PLAIN, STOMP,
MQTT 3.1.1 and 5, Web-STOMP, Web-MQTT, the HTTP API's Basic auth, SSE), and
passwords set through the HTTP API (user creation, definitions import).
Neither the password nor the base64 of ``user:password`` (what HTTP Basic
sends) may appear.
"""

import base64

import pika
import requests

from clients import (amqp_login, http_get, mqtt_login, sse_login, stomp_login, web_mqtt_login,
                     web_stomp_login)

USER = "logcheck"
RIGHT = "Right-Pw-3e9f1c"
WRONG = "Wrong-Pw-7a2d4b"
NEW = "Created-Pw-51c0aa"
IMPORTED = "Imported-Pw-9d8e77"


def test_passwords_are_not_logged(dual):
    b = dual
    base = f"http://127.0.0.1:{b.http_port}"
    r = requests.put(f"{base}/api/users/{USER}", json={"password": RIGHT, "tags": "management"},
                     auth=("guest", "guest"), timeout=10)
    assert r.status_code in (201, 204)
    r = requests.put(f"{base}/api/permissions/%2F/{USER}",
                     json={"configure": ".*", "write": ".*", "read": ".*"},
                     auth=("guest", "guest"), timeout=10)
    assert r.status_code in (201, 204)
    h = "127.0.0.1"
    for pw in (WRONG, RIGHT):
        amqp_login(h, b.amqp_port, USER, pw)
        stomp_login(h, b.stomp_port, USER, pw)
        mqtt_login(h, b.mqtt_port, USER, pw)
        mqtt_login(h, b.mqtt_port, USER, pw, version=5)
        web_stomp_login(h, b.web_stomp_port, USER, pw)
        web_mqtt_login(h, b.web_mqtt_port, USER, pw)
        http_get(h, b.http_port, "/api/whoami", USER, pw)
        sse_login(h, b.web_stomp_port, USER, pw)
    assert amqp_login(h, b.amqp_port, USER, RIGHT) == "ok"
    assert amqp_login(h, b.amqp_port, USER, WRONG) != "ok"
    # Passwords given to the management API.
    r = requests.put(f"{base}/api/users/newbie", json={"password": NEW, "tags": ""},
                     auth=("guest", "guest"), timeout=10)
    assert r.status_code in (201, 204)
    r = requests.post(f"{base}/api/definitions", auth=("guest", "guest"), timeout=10,
                      json={"users": [{"name": "imported", "password": IMPORTED, "tags": ""}]})
    assert r.status_code in (200, 201, 204), r.text
    log = b.log()
    assert "DEBUG" in log, "the broker does not log at debug level"
    assert USER in log, "logins were not logged at all"
    for secret in (RIGHT, WRONG, NEW, IMPORTED):
        assert secret not in log, secret
        for user in (USER, "newbie", "imported"):
            token = base64.b64encode(f"{user}:{secret}".encode()).decode()
            assert token not in log
            # A base64 fragment long enough to hold the password.
            assert token[len(token) // 2:] not in log
