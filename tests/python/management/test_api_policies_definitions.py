"""Policies, definitions export/import (a real RabbitMQ 3.10.8 export), and
list parameters (paging, columns, sort, name filters)."""

import json
import os

from mgmt_helpers import unique, wait_for

DATA = os.path.join(os.path.dirname(__file__), "data")


def test_policies(api, made):
    prefix = unique("mpq")
    name = unique("mp")
    url = f"/api/policies/%2F/{name}"
    made.track(url)
    body = {"pattern": f"^{prefix}", "definition": {"max-length": 5}, "apply-to": "queues", "priority": 1}
    assert api.put(url, json=body).status_code == 201
    assert api.put(url, json=body).status_code == 204
    assert api.get(url).json() == {"vhost": "/", "name": name, "pattern": f"^{prefix}",
                                   "apply-to": "queues", "definition": {"max-length": 5}, "priority": 1}
    assert name in [p["name"] for p in api.get("/api/policies/%2F").json()]
    q = f"{prefix}-q"
    made.track(f"/api/queues/%2F/{q}")
    api.put(f"/api/queues/%2F/{q}", json={})
    assert wait_for(lambda: api.get(f"/api/queues/%2F/{q}").json().get("policy") == name)
    r = api.put(f"/api/policies/%2F/{unique('mp')}", json={"pattern": "(", "definition": {"max-length": 5}})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
    assert r.json()["reason"].startswith("Validation failed")
    r = api.put(f"/api/policies/%2F/{unique('mp')}", json={"pattern": "x", "definition": {"bogus-key": 5}})
    assert r.status_code == 400 and "not recognised policy settings" in r.json()["reason"]
    r = api.put(f"/api/policies/%2F/{unique('mp')}", json={"pattern": "x"})
    assert (r.status_code, r.json()) == (400, {"error": "bad_request", "reason": "[{key_missing,definition}]"})
    assert api.delete(url).status_code == 204
    assert api.delete(url).status_code == 404


def test_export_shape(api, made):
    q = made.queue(durable=True, arguments={"x-message-ttl": 1000})
    d = api.get("/api/definitions").json()
    for key in ("rabbit_version", "users", "vhosts", "permissions", "policies", "queues",
                "exchanges", "bindings", "parameters"):
        assert key in d, key
    mine = [x for x in d["queues"] if x["name"] == q]
    assert mine == [{"name": q, "vhost": "/", "durable": True, "auto_delete": False,
                     "arguments": {"x-message-ttl": 1000}}]
    assert all(not x["name"].startswith("amq.") and x["name"] for x in d["exchanges"])
    v = api.get("/api/definitions/%2F").json()
    assert [x for x in v["queues"] if x["name"] == q] == \
        [{"name": q, "durable": True, "auto_delete": False, "arguments": {"x-message-ttl": 1000}}]


def test_a_rabbitmq_export_imports_and_exports_back(api, made, amqp):
    """data/rabbitmq-3.10.8-definitions.json was exported from RabbitMQ 3.10.8
    (a vhost with a DLX, topic/fanout/headers exchanges, an e2e binding, a
    policy, a user with a password hash). Import it, check the objects work,
    export it again and compare."""
    with open(os.path.join(DATA, "rabbitmq-3.10.8-definitions.json")) as f:
        defs = json.load(f)
    made.track("/api/users/export-app")
    made.track("/api/vhosts/export-src")
    assert api.get("/api/vhosts/export-src").status_code == 404
    r = api.post("/api/definitions", json=defs)
    assert r.status_code in (201, 204), r.text
    assert api.get("/api/users/export-app").json()["password_hash"] == defs["users"][0]["password_hash"]
    out = api.get("/api/definitions").json()
    for key in ("queues", "exchanges", "bindings", "policies", "permissions"):
        # RabbitMQ (and Warren) also give the importing user (guest) full
        # permissions on the vhost it creates.
        mine = [x for x in out[key] if x.get("vhost") == "export-src" and x.get("user") != "guest"]
        norm = lambda xs: sorted(json.dumps(x, sort_keys=True) for x in xs)  # noqa: E731
        assert norm(mine) == norm(defs[key]), key
    jobs = api.get("/api/queues/export-src/app.jobs").json()
    assert api.get("/api/permissions/export-src/guest").status_code == 200
    assert jobs["arguments"] == {"x-dead-letter-exchange": "app.dlx", "x-message-ttl": 60000}
    assert wait_for(lambda: api.get("/api/queues/export-src/app.jobs").json().get("policy") == "app-limits")
    r = api.post("/api/exchanges/export-src/app.events/publish",
                 json={"properties": {}, "routing_key": "jobs.1", "payload": "j", "payload_encoding": "string"})
    assert r.json() == {"routed": True}
    r = api.post("/api/exchanges/export-src/app.events/publish",
                 json={"properties": {}, "routing_key": "audit.x", "payload": "a", "payload_encoding": "string"})
    assert r.json() == {"routed": True}  # via the e2e binding to app.dlx → app.dead
    assert wait_for(lambda: api.get("/api/queues/export-src/app.dead").json().get("messages") == 1)
    # Importing the same file again changes nothing and succeeds.
    assert api.post("/api/definitions", json=defs).status_code in (201, 204)


def test_import_errors(api):
    r = api.post("/api/definitions", data=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = api.post("/api/definitions", json={"queues": [{"name": "mq-x", "vhost": "no-such-vhost",
                                                       "durable": True, "auto_delete": False,
                                                       "arguments": {}}]})
    assert r.status_code == 400


def test_list_parameters(api, made):
    prefix = unique("mlist")
    for i in range(3):
        made.track(f"/api/queues/%2F/{prefix}-{i}")
        api.put(f"/api/queues/%2F/{prefix}-{i}", json={"arguments": {"x-max-length": i + 1}})
    r = api.get(f"/api/queues?page=1&page_size=2&name={prefix}&sort=name&sort_reverse=true"
                "&columns=name,arguments.x-max-length")
    assert r.status_code == 200
    page = r.json()
    assert {k: page[k] for k in ("filtered_count", "item_count", "page", "page_count", "page_size")} == \
        {"filtered_count": 3, "item_count": 2, "page": 1, "page_count": 2, "page_size": 2}
    assert page["total_count"] >= 3
    assert page["items"] == [{"name": f"{prefix}-2", "arguments": {"x-max-length": 3}},
                             {"name": f"{prefix}-1", "arguments": {"x-max-length": 2}}]
    r = api.get(f"/api/queues?page=1&name=^{prefix}-[02]$&use_regex=true")
    assert r.json()["filtered_count"] == 2
    r = api.get(f"/api/queues?page=9&page_size=2&name={prefix}")
    assert (r.status_code, r.json()) == (400, {"error": "page_out_of_range",
                                               "reason": "Page out of range, page: 9 page size: 2, len: 3"})
    r = api.get("/api/queues?page=0")
    assert (r.status_code, r.json()) == (400, {"error": "invalid_pagination_parameters",
                                               "reason": "Invalid pagination parameters: page number 0, page size undefined"})
    r = api.get("/api/queues?page=1&page_size=1000")
    assert r.json()["error"] == "invalid_pagination_parameters"
    r = api.get("/api/queues?page=1&name=(&use_regex=true")
    assert (r.status_code, r.json()) == (400, {"error": "bad_request", "reason": "Pagination parameters are invalid"})
    # Without page=, RabbitMQ ignores name= (and so does Warren); columns= applies.
    plain = api.get(f"/api/queues/%2F?columns=name&name={prefix}").json()
    assert all(list(x) == ["name"] for x in plain)
    assert {f"{prefix}-{i}" for i in range(3)} <= {x["name"] for x in plain}
