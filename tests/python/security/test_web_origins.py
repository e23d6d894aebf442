"""The web listeners' Origin check (``[listeners] web_allowed_origins``):
with a list, Web-STOMP, SSE and Web-MQTT refuse requests from other pages
with 403 before any upgrade or login, and let through the listed origins and
requests without ``Origin`` (not a page's script); without it, every origin
is accepted, as RabbitMQ 3.10's Web-STOMP and Web-MQTT do (checked on this
machine: a WebSocket with ``Origin: http://evil.example`` is upgraded)."""

import os
import sys

import pytest
import requests
import websocket

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "durability"))

from warren_harness import Broker, new_broker_root  # noqa: E402

ALLOWED = "https://app.example"
EVIL = "http://evil.example"


@pytest.fixture
def make_broker():
    made = []

    def make(origins=None, http=False):
        config = None
        if origins is not None:
            listed = ", ".join(f'"{o}"' for o in origins)
            config = f"[listeners]\nweb_allowed_origins = [{listed}]\n"
        b = Broker(new_broker_root("warren-origins-"), config=config, web=True, web_mqtt=True,
                   http=http)
        made.append(b)
        return b.start()

    yield make
    for b in made:
        b.cleanup()


def ws_status(port, subprotocol, origin):
    """The HTTP status of a WebSocket handshake (101 when upgraded)."""
    kw = {"origin": origin} if origin else {"suppress_origin": True}
    try:
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=5,
                                         subprotocols=[subprotocol], **kw)
    except websocket.WebSocketBadStatusException as e:
        return e.status_code
    ws.close()
    return 101


def sse_status(port, origin):
    headers = {"Origin": origin} if origin else {}
    r = requests.get(f"http://127.0.0.1:{port}/sse?destination=/topic/t", headers=headers,
                     auth=("guest", "guest"), stream=True, timeout=5)
    r.close()
    return r.status_code


def test_only_listed_origins_reach_the_web_listeners(make_broker):
    b = make_broker([ALLOWED + "/", "http://localhost:8080"])
    for port, proto in ((b.web_port, "v12.stomp"), (b.web_mqtt_port, "mqtt")):
        assert ws_status(port, proto, EVIL) == 403, proto
        assert ws_status(port, proto, "null") == 403, proto
        assert ws_status(port, proto, ALLOWED) == 101, proto
        assert ws_status(port, proto, "HTTP://LOCALHOST:8080") == 101, proto
        assert ws_status(port, proto, None) == 101, proto
    assert sse_status(b.web_port, EVIL) == 403
    assert sse_status(b.web_port, ALLOWED) == 200
    assert sse_status(b.web_port, None) == 200
    assert "web listeners accept these origins only" in b.log_text()


def test_every_origin_by_default_as_rabbitmq(make_broker):
    b = make_broker()
    assert ws_status(b.web_port, "v12.stomp", EVIL) == 101
    assert ws_status(b.web_mqtt_port, "mqtt", EVIL) == 101
    assert sse_status(b.web_port, EVIL) == 200
    # A "*" in the list means the same.
    b2 = make_broker(["*"])
    assert ws_status(b2.web_port, "v12.stomp", EVIL) == 101


def api_put_vhost(port, name, origin):
    headers = {"content-type": "application/json"}
    if origin:
        headers["Origin"] = origin
    return requests.put(f"http://127.0.0.1:{port}/api/vhosts/{name}", auth=("guest", "guest"),
                        headers=headers, data="{}", timeout=10)


def test_management_api_lets_listed_origins_change_state(make_broker):
    """The same list applies to the HTTP API's cross-origin state-changing
    calls: a listed page may make them, any other page gets 403 (CSRF
    protection, test_http_headers_csrf.py), and programs without Origin are
    unaffected."""
    b = make_broker([ALLOWED], http=True)
    same = f"http://127.0.0.1:{b.http_port}"
    assert api_put_vhost(b.http_port, "from-app", ALLOWED).status_code in (201, 204)
    r = api_put_vhost(b.http_port, "from-evil", EVIL)
    assert r.status_code == 403, r.text
    assert "not an allowed origin" in r.json()["reason"]
    assert api_put_vhost(b.http_port, "from-null", "null").status_code == 403
    assert api_put_vhost(b.http_port, "from-self", same).status_code in (201, 204)
    assert api_put_vhost(b.http_port, "from-curl", None).status_code in (201, 204)
    r = requests.delete(f"http://127.0.0.1:{b.http_port}/api/vhosts/from-app",
                        auth=("guest", "guest"), headers={"Origin": EVIL}, timeout=10)
    assert r.status_code == 403
    names = {v["name"] for v in requests.get(f"http://127.0.0.1:{b.http_port}/api/vhosts",
                                             auth=("guest", "guest"), timeout=10).json()}
    assert {"from-app", "from-self", "from-curl"} <= names
    assert not names & {"from-evil", "from-null"}


def test_management_api_default_any_lets_no_other_origin_in(make_broker):
    """Without a list ("any origin", the web listeners' default) the API still
    refuses every cross-origin state-changing call."""
    b = make_broker(None, http=True)
    assert api_put_vhost(b.http_port, "x", ALLOWED).status_code == 403
    assert api_put_vhost(b.http_port, "y", None).status_code in (201, 204)
