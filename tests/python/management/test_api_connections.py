"""Connections, channels, consumers and message_stats (management API phase 2),
from real AMQP (pika) and STOMP (stomp.py) traffic.

RabbitMQ refreshes its figures every 5 s (collect_statistics_interval), so
figures are polled for up to STATS_WAIT seconds; Warren reads them live (its
rates are sampled every 5 s too). Differences are marked per broker
(``warren`` fixture) with their reason.
"""

import os
from urllib.parse import quote

import pika
import pytest

from helpers import params
from mgmt_helpers import Api, unique, wait_for

STATS_WAIT = 12.0
STOMP_HOST = os.environ.get("STOMP_HOST", "127.0.0.1")
STOMP_PORT = int(os.environ.get("STOMP_PORT", "61613"))


def q(name):
    return quote(name, safe="")


def named_connection(conn_name, user=None, password=None):
    p = params()
    p.client_properties = {"connection_name": conn_name}
    if user:
        p.credentials = pika.PlainCredentials(user, password)
    return pika.BlockingConnection(p)


def find_conn(api, conn_name):
    """The API's record of the pika connection called `conn_name`."""
    r = api.get("/api/connections")
    assert r.status_code == 200, r.text
    for c in r.json():
        if (c.get("client_properties") or {}).get("connection_name") == conn_name:
            return c
    return None


@pytest.fixture
def conn_name():
    return unique("mconn")


@pytest.fixture
def pika_conn(conn_name):
    c = named_connection(conn_name)
    yield c
    if c.is_open:
        try:
            c.close()
        except Exception:
            pass


def test_amqp_connection_is_listed_with_rabbitmqs_fields(api, pika_conn, conn_name):
    c = wait_for(lambda: (lambda x: x if x and "recv_oct" in x else None)(find_conn(api, conn_name)),
                 STATS_WAIT)
    assert c, f"connection {conn_name} not listed with its counters"
    assert c["protocol"] == "AMQP 0-9-1"
    assert c["user"] == "guest" and c["vhost"] == params().virtual_host
    assert c["type"] == "network" and c["state"] == "running"
    assert c["auth_mechanism"] == "PLAIN" and c["ssl"] is False
    assert c["client_properties"]["product"] == "Pika Python Client Library"
    assert c["user_provided_name"] == conn_name
    assert c["name"] == f"{c['peer_host']}:{c['peer_port']} -> {c['host']}:{c['port']}"
    assert c["frame_max"] > 0 and c["channel_max"] > 0 and isinstance(c["timeout"], int)
    assert isinstance(c["connected_at"], int) and c["connected_at"] > 1_600_000_000_000
    for k in ("recv_oct", "send_oct", "recv_cnt", "send_cnt"):
        assert isinstance(c[k], int) and c[k] > 0, k
    for k in ("recv_oct_details", "send_oct_details"):
        assert isinstance(c[k]["rate"], (int, float)), k
    one = api.get(f"/api/connections/{q(c['name'])}")
    assert one.status_code == 200 and one.json()["name"] == c["name"]
    assert api.get("/api/connections/" + q("nope -> nowhere")).status_code == 404
    in_vhost = api.get(f"/api/vhosts/{q(c['vhost'])}/connections").json()
    assert c["name"] in [x["name"] for x in in_vhost]
    # Paging and columns, as every listing.
    paged = api.get("/api/connections?page=1&page_size=500&columns=name,protocol").json()
    assert paged["total_count"] >= 1
    assert all(set(x) <= {"name", "protocol"} for x in paged["items"])


def test_stomp_connection_is_listed_with_its_protocol(api):
    import stomp
    before = {c["name"] for c in api.get("/api/connections").json()}
    s = stomp.Connection([(STOMP_HOST, STOMP_PORT)])
    s.connect("guest", "guest", wait=True)
    try:
        def new_stomp():
            for c in api.get("/api/connections").json():
                if c["name"] not in before and c.get("port") == STOMP_PORT:
                    return c
            return None
        c = wait_for(new_stomp, STATS_WAIT)
        assert c, "STOMP connection not listed"
        assert c["protocol"].startswith("STOMP 1."), c["protocol"]
        assert c["user"] == "guest" and c["type"] == "direct"
        assert c["client_properties"] == {"product": "STOMP client"}
        # RabbitMQ shows a STOMP connection as one channel, numbered 1.
        chans = wait_for(lambda: api.get(f"/api/connections/{q(c['name'])}/channels").json(), STATS_WAIT)
        assert [ch["number"] for ch in chans] == [1]
    finally:
        s.disconnect()


@pytest.mark.parametrize("reason", [None, "stopped by the test suite"])
def test_delete_closes_the_connection_with_320(api, pika_conn, conn_name, reason):
    c = wait_for(lambda: find_conn(api, conn_name), STATS_WAIT)
    assert c
    headers = {"X-Reason": reason} if reason else {}
    r = api.delete(f"/api/connections/{q(c['name'])}", headers=headers)
    assert r.status_code == 204, r.text
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        for _ in range(100):
            pika_conn.process_data_events(time_limit=0.1)
    assert e.value.reply_code == 320
    assert e.value.reply_text == f"CONNECTION_FORCED - {reason or 'Closed via management plugin'}"
    assert wait_for(lambda: find_conn(api, conn_name) is None, STATS_WAIT)
    assert api.delete(f"/api/connections/{q(c['name'])}").status_code == 404


def test_channels_show_prefetch_unacked_and_consumers(api, made, pika_conn, conn_name):
    queue = made.queue()
    ch = pika_conn.channel()
    for i in range(5):
        ch.basic_publish("", queue, f"m{i}".encode())
    ch.basic_qos(prefetch_count=3)
    ch.basic_consume(queue, lambda *a: None)
    confirm_ch = pika_conn.channel()
    confirm_ch.confirm_delivery()
    pika_conn.process_data_events(time_limit=0.5)
    c = wait_for(lambda: find_conn(api, conn_name), STATS_WAIT)
    assert c

    def channel(n):
        chans = api.get(f"/api/connections/{q(c['name'])}/channels").json()
        return next((x for x in chans if x["number"] == n), None)

    def ready():
        x = channel(ch.channel_number)
        return x if x and x["messages_unacknowledged"] == 3 and x["consumer_count"] == 1 else None
    x = wait_for(ready, STATS_WAIT)
    assert x, channel(ch.channel_number)
    assert x["prefetch_count"] == 3 and x["global_prefetch_count"] == 0
    assert x["name"] == f"{c['name']} ({ch.channel_number})"
    assert x["connection_details"] == {"name": c["name"], "peer_host": c["peer_host"],
                                       "peer_port": c["peer_port"]}
    assert x["confirm"] is False and x["transactional"] is False
    assert x["user"] == "guest" and x["vhost"] == c["vhost"]
    assert wait_for(lambda: (channel(ch.channel_number).get("message_stats") or {}).get("publish") == 5,
                    STATS_WAIT), channel(ch.channel_number)
    ms = channel(ch.channel_number)["message_stats"]
    assert ms["deliver"] == 3 and ms["deliver_get"] == 3 and "rate" in ms["publish_details"]
    assert wait_for(lambda: (channel(confirm_ch.channel_number) or {}).get("confirm") is True, STATS_WAIT)
    one = api.get("/api/channels/" + q(x["name"]))
    assert one.status_code == 200 and one.json()["number"] == ch.channel_number
    assert x["name"] in [y["name"] for y in api.get("/api/channels").json()]
    assert x["name"] in [y["name"] for y in api.get(f"/api/vhosts/{q(c['vhost'])}/channels").json()]
    assert api.get("/api/channels/" + q(c["name"] + " (999)")).status_code == 404


def test_consumers_are_listed(api, made, pika_conn, conn_name):
    queue = made.queue()
    ch = pika_conn.channel()
    ch.basic_qos(prefetch_count=4)
    tag = ch.basic_consume(queue, lambda *a: None, consumer_tag=unique("ctag"))
    c = wait_for(lambda: find_conn(api, conn_name), STATS_WAIT)

    def mine():
        return next((x for x in api.get(f"/api/consumers/{q(c['vhost'])}").json()
                     if x["consumer_tag"] == tag), None)
    x = wait_for(mine, STATS_WAIT)
    assert x, "consumer not listed"
    assert x["queue"] == {"name": queue, "vhost": c["vhost"]}
    assert x["ack_required"] is True and x["exclusive"] is False
    assert x["prefetch_count"] == 4 and x["arguments"] == {}
    assert x["active"] is True and x["activity_status"] == "up"
    d = x["channel_details"]
    assert d["connection_name"] == c["name"] and d["number"] == ch.channel_number
    assert d["name"] == f"{c['name']} ({ch.channel_number})" and d["user"] == "guest"
    assert d["peer_host"] == c["peer_host"] and d["peer_port"] == c["peer_port"]
    assert tag in [y["consumer_tag"] for y in api.get("/api/consumers").json()]
    shown = api.get(f"/api/queues/{q(c['vhost'])}/{queue}").json()
    assert tag in [y["consumer_tag"] for y in shown.get("consumer_details", [])]


def test_queue_and_exchange_message_stats(api, made, amqp, warren):
    queue = made.queue()
    exchange = made.exchange(type="fanout")
    assert api.post(f"/api/bindings/%2F/e/{exchange}/q/{queue}", json={}).status_code == 201
    # No activity: no message_stats, as RabbitMQ.
    assert "message_stats" not in api.get(f"/api/queues/%2F/{queue}").json()
    assert "message_stats" not in api.get(f"/api/exchanges/%2F/{exchange}").json()
    ch = amqp().channel()
    for i in range(4):
        ch.basic_publish(exchange, "", b"hello")
    assert wait_for(lambda: api.get(f"/api/queues/%2F/{queue}").json().get("message_bytes_ready") == 20,
                    STATS_WAIT), api.get(f"/api/queues/%2F/{queue}").json()
    shown = api.get(f"/api/queues/%2F/{queue}").json()
    assert shown["message_bytes"] == 20 and shown["message_bytes_unacknowledged"] == 0
    assert isinstance(shown["memory"], int) and shown["memory"] > 0
    ch.basic_get(queue, auto_ack=True)                 # get_no_ack
    m, _, _ = ch.basic_get(queue, auto_ack=False)      # get, then ack
    ch.basic_ack(m.delivery_tag)
    m, _, _ = ch.basic_get(queue, auto_ack=False)      # get, then requeue
    ch.basic_nack(m.delivery_tag, requeue=True)
    got = []
    tag = ch.basic_consume(queue, lambda c, d, p, b: (got.append(d), c.basic_ack(d.delivery_tag)))
    ch.connection.process_data_events(time_limit=1.0)
    ch.basic_cancel(tag)
    ch.basic_get(queue, auto_ack=True)                 # get_empty (nothing left)
    # redelivered + the one never got
    assert len(got) == 2
    want = {"publish": 4, "get_no_ack": 1, "get": 2, "deliver": 2, "ack": 3,
            "deliver_get": 5, "redeliver": 1}
    # Difference: Warren counts a basic.get on an empty queue in the queue's
    # get_empty; RabbitMQ 3.10 leaves the queue's get_empty at 0 (it counts
    # it on the channel only).
    want["get_empty"] = 1 if warren else 0

    def stats():
        ms = api.get(f"/api/queues/%2F/{queue}").json().get("message_stats", {})
        return {k: ms.get(k) for k in want}
    assert wait_for(lambda: stats() == want, STATS_WAIT), sorted(stats().items())
    ms = api.get(f"/api/queues/%2F/{queue}").json()["message_stats"]
    for k in list(want) + ["deliver_no_ack"]:
        assert isinstance(ms[f"{k}_details"]["rate"], (int, float)), k

    def ex():
        return api.get(f"/api/exchanges/%2F/{exchange}").json().get("message_stats", {})
    assert wait_for(lambda: (ex().get("publish_in"), ex().get("publish_out")) == (4, 4), STATS_WAIT), ex()
    assert "rate" in ex()["publish_in_details"]
    vs = api.get("/api/vhosts/%2F").json()
    assert vs["message_stats"]["publish"] >= 4 and "rate" in vs["message_stats"]["publish_details"]
    assert vs["recv_oct"] > 0 and "rate" in vs["send_oct_details"]


def test_overview_totals(api, made, pika_conn, conn_name):
    queue = made.queue()
    ch = pika_conn.channel()
    ch.basic_publish("", queue, b"x")
    ch.basic_consume(queue, lambda *a: None)
    pika_conn.process_data_events(time_limit=0.3)

    def overview():
        return api.get("/api/overview").json()

    def ok():
        o = overview()["object_totals"]
        return all(o.get(k, 0) >= 1 for k in ("connections", "channels", "queues", "consumers", "exchanges"))
    assert wait_for(ok, STATS_WAIT), overview()["object_totals"]
    o = overview()
    for k in ("messages", "messages_ready", "messages_unacknowledged"):
        assert isinstance(o["queue_totals"][k], int)
        assert isinstance(o["queue_totals"][f"{k}_details"]["rate"], (int, float))
    assert wait_for(lambda: overview()["message_stats"].get("publish", 0) >= 1, STATS_WAIT)
    assert "rate" in overview()["message_stats"]["publish_details"]


def test_management_users_see_only_their_own_connections(api, made, pika_conn, conn_name):
    users = {}
    for tags in ("management", "monitoring"):
        name = unique("mu")
        made.track(f"/api/users/{name}")
        assert api.put(f"/api/users/{name}", json={"password": "pw1", "tags": tags}).status_code == 201
        assert api.put(f"/api/permissions/%2F/{name}",
                       json={"configure": ".*", "write": ".*", "read": ".*"}).status_code == 201
        users[tags] = (name, Api(name, "pw1"))
    mgmt_name, mgmt = users["management"]
    own_name = unique("mconn-own")
    own = named_connection(own_name, mgmt_name, "pw1")
    try:
        own.channel()
        guest_conn = wait_for(lambda: find_conn(api, conn_name), STATS_WAIT)
        mine = wait_for(lambda: find_conn(mgmt, own_name), STATS_WAIT)
        assert mine and mine["user"] == mgmt_name
        listed = mgmt.get("/api/connections").json()
        assert {c["user"] for c in listed} == {mgmt_name}
        assert {c["user"] for c in mgmt.get("/api/channels").json()} <= {mgmt_name}
        r = mgmt.get(f"/api/connections/{q(guest_conn['name'])}")
        assert r.status_code == 401 and r.json()["error"] == "not_authorised"
        assert mgmt.delete(f"/api/connections/{q(guest_conn['name'])}").status_code == 401
        # monitoring sees everyone's, may not close others' (administrator only).
        _, mon = users["monitoring"]
        names = {c["name"] for c in mon.get("/api/connections").json()}
        assert guest_conn["name"] in names and mine["name"] in names
        assert mon.get(f"/api/connections/{q(guest_conn['name'])}").status_code == 200
        assert mon.delete(f"/api/connections/{q(guest_conn['name'])}").status_code == 401
    finally:
        if own.is_open:
            own.close()


def test_queue_depth_rates(api, made, amqp):
    """`messages_details.rate` (and `_ready`, `_unacknowledged`): how fast the
    depth changed over the last statistics interval (5 s on both brokers).
    The queue keeps growing while the test polls, so whichever samples the
    broker takes see it rise."""
    import time
    queue = made.queue()
    ch = amqp().channel()

    def details():
        q = api.get(f"/api/queues/%2F/{queue}").json()
        return [q.get(k, {}).get("rate") for k in
                ("messages_details", "messages_ready_details", "messages_unacknowledged_details")]
    deadline = time.time() + 20
    rates = details()
    while not (rates[0] or 0) > 0 and time.time() < deadline:
        for _ in range(10):
            ch.basic_publish("", queue, b"x")
        time.sleep(0.5)
        rates = details()
    assert rates[0] > 0 and rates[1] > 0 and rates[2] == 0, rates
