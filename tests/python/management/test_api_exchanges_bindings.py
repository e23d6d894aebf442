"""Exchanges (declare, delete, publish) and bindings (queue and e2e)."""

import urllib.parse

from mgmt_helpers import wait_for


def test_exchange_declare_show_delete(api, made):
    name = made.exchange(type="topic", durable=True, arguments={"alternate-exchange": "ae"})
    x = api.get(f"/api/exchanges/%2F/{name}").json()
    assert (x["name"], x["vhost"], x["type"], x["durable"], x["auto_delete"], x["internal"]) == \
        (name, "/", "topic", True, False, False)
    assert x["arguments"] == {"alternate-exchange": "ae"}
    assert api.put(f"/api/exchanges/%2F/{name}", json={"type": "topic", "durable": True,
                   "arguments": {"alternate-exchange": "ae"}}).status_code == 204
    r = api.put(f"/api/exchanges/%2F/{name}", json={"type": "fanout", "durable": True})
    assert r.status_code == 400
    assert r.json()["reason"] == (f"inequivalent arg 'type' for exchange '{name}' in vhost '/': "
                                  "received 'fanout' but current is 'topic'")
    names = [e["name"] for e in api.get("/api/exchanges/%2F").json()]
    assert "" in names and "amq.direct" in names and name in names
    assert api.delete(f"/api/exchanges/%2F/{name}").status_code == 204
    assert api.delete(f"/api/exchanges/%2F/{name}").status_code == 404


def test_exchange_errors(api, made):
    r = api.put("/api/exchanges/%2F/mx-bogus-type", json={"type": "bogus"})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": "invalid exchange type 'bogus'"})
    r = api.put("/api/exchanges/%2F/amq.mine", json={"type": "direct"})
    assert (r.status_code, r.json()) == (401, {"error": "not_authorised", "reason": "Access refused."})
    r = api.delete("/api/exchanges/%2F/amq.direct")
    assert (r.status_code, r.json()) == (401, {"error": "not_authorised", "reason": "Access refused."})
    r = api.put("/api/exchanges/no-such-vhost/x", json={"type": "direct"})
    assert (r.status_code, r.json()) == (404, {"error": "not_found", "reason": "vhost_not_found"})
    x = made.exchange()
    q = made.queue()
    assert api.post(f"/api/bindings/%2F/e/{x}/q/{q}", json={"routing_key": "k"}).status_code == 201
    r = api.delete(f"/api/exchanges/%2F/{x}?if-unused=true")
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": f"exchange '{x}' in vhost '/' in use"})


def test_publish_routes_and_pika_receives(api, made, amqp):
    x = made.exchange()
    q = made.queue()
    api.post(f"/api/bindings/%2F/e/{x}/q/{q}", json={"routing_key": "k"})
    body = {"properties": {"delivery_mode": 2, "headers": {"a": "b"}, "content_type": "text/plain"},
            "routing_key": "k", "payload": "aGVsbG8=", "payload_encoding": "base64"}
    r = api.post(f"/api/exchanges/%2F/{x}/publish", json=body)
    assert (r.status_code, r.json()) == (200, {"routed": True})
    r = api.post(f"/api/exchanges/%2F/{x}/publish", json={**body, "routing_key": "nowhere"})
    assert r.json() == {"routed": False}
    r = api.post(f"/api/exchanges/%2F/amq.default/publish",
                 json={"properties": {}, "routing_key": q, "payload": "p2", "payload_encoding": "string"})
    assert r.json() == {"routed": True}
    ch = amqp().channel()
    method, props, payload = ch.basic_get(q, auto_ack=True)
    assert payload == b"hello" and props.headers == {"a": "b"} and props.delivery_mode == 2
    assert (method.exchange, method.routing_key) == (x, "k")
    assert ch.basic_get(q, auto_ack=True)[2] == b"p2"
    r = api.post(f"/api/exchanges/%2F/{x}/publish", json={"routing_key": "k", "payload": "x",
                                                          "payload_encoding": "string"})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": "[{key_missing,properties}]"})
    r = api.post("/api/exchanges/%2F/mx-missing/publish", json={**body})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request",
                                               "reason": "404 NOT_FOUND - no exchange 'mx-missing' in vhost '/'"})


def test_bindings_create_list_delete(api, made, amqp):
    x = made.exchange(type="headers")
    q = made.queue()
    r = api.post(f"/api/bindings/%2F/e/{x}/q/{q}", json={"routing_key": "a b~c/d"})
    assert r.status_code == 201
    # Location: the destination and the properties key, URL-encoded once more.
    assert r.headers["location"] == f"{q}/a%2Bb%257Ec%252Fd"
    r = api.post(f"/api/bindings/%2F/e/{x}/q/{q}", json={"routing_key": "", "arguments": {"x-match": "any", "k": 1}})
    assert r.status_code == 201
    rows = api.get(f"/api/bindings/%2F/e/{x}/q/{q}").json()
    assert {b["routing_key"] for b in rows} == {"a b~c/d", ""}
    plain = next(b for b in rows if b["routing_key"] == "a b~c/d")
    assert plain == {"source": x, "vhost": "/", "destination": q, "destination_type": "queue",
                     "routing_key": "a b~c/d", "arguments": {}, "properties_key": "a+b%7Ec%2Fd"}
    with_args = next(b for b in rows if b["routing_key"] == "")
    assert with_args["properties_key"].startswith("~")
    qb = api.get(f"/api/queues/%2F/{q}/bindings").json()
    assert qb[0] == {"source": "", "vhost": "/", "destination": q, "destination_type": "queue",
                     "routing_key": q, "arguments": {}, "properties_key": q}
    assert len(qb) == 3
    assert len(api.get(f"/api/exchanges/%2F/{x}/bindings/source").json()) == 2
    key = urllib.parse.quote(with_args["properties_key"], safe="")
    assert api.get(f"/api/bindings/%2F/e/{x}/q/{q}/{key}").json()["arguments"] == {"x-match": "any", "k": 1}
    assert api.delete(f"/api/bindings/%2F/e/{x}/q/{q}/{key}").status_code == 204
    assert api.delete(f"/api/bindings/%2F/e/{x}/q/{q}/{key}").status_code == 404
    assert len(api.get(f"/api/bindings/%2F/e/{x}/q/{q}").json()) == 1
    assert any(b["destination"] == q for b in api.get("/api/bindings/%2F").json())
    r = api.post(f"/api/bindings/%2F/e/{x}/q/mq-missing", json={"routing_key": "k"})
    assert (r.status_code, r.json()) == (404, {"error": "not_found",
                                               "reason": "no queue 'mq-missing' in vhost '/'"})


def test_exchange_to_exchange_bindings(api, made, amqp):
    src = made.exchange(type="topic")
    dst = made.exchange(type="fanout")
    q = made.queue()
    api.post(f"/api/bindings/%2F/e/{dst}/q/{q}", json={})
    r = api.post(f"/api/bindings/%2F/e/{src}/e/{dst}", json={"routing_key": "a.*"})
    assert (r.status_code, r.headers["location"]) == (201, f"{dst}/a.%252A")
    assert [b["source"] for b in api.get(f"/api/exchanges/%2F/{dst}/bindings/destination").json()] == [src]
    api.post(f"/api/exchanges/%2F/{src}/publish",
             json={"properties": {}, "routing_key": "a.b", "payload": "e2e", "payload_encoding": "string"})
    ch = amqp().channel()
    assert wait_for(lambda: ch.basic_get(q, auto_ack=True)[2] == b"e2e")
    assert api.delete(f"/api/bindings/%2F/e/{src}/e/{dst}/a.%252A").status_code == 204
    assert api.get(f"/api/bindings/%2F/e/{src}/e/{dst}").json() == []
