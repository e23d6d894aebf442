"""Publisher confirms, unroutable messages and churn in the management API
(`message_stats.confirm`, `return_unroutable`, `drop_unroutable` on channels,
vhosts and the overview; the overview's `churn_rates`), driven by pika.
Same file against RabbitMQ and Warren."""

import pika
import pytest

from mgmt_helpers import wait_for

CHURN = {"connection_created", "connection_closed", "channel_created", "channel_closed",
         "queue_declared", "queue_created", "queue_deleted"}


def stats(api, path):
    r = api.get(path)
    assert r.status_code == 200, r.text
    return r.json().get("message_stats") or {}


def test_overview_has_churn_rates_with_rates(api, amqp):
    before = api.get("/api/overview").json()["churn_rates"]
    assert CHURN <= set(before)
    for k in CHURN:
        assert before[k + "_details"]["rate"] >= 0
    c = amqp()
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_delete(q)
    c.close()

    def moved():
        now = api.get("/api/overview").json()["churn_rates"]
        return all(now[k] > before[k] for k in CHURN)
    assert wait_for(moved), api.get("/api/overview").json()["churn_rates"]


def test_confirms_and_returns_are_counted_per_channel_and_vhost(api, made, amqp, warren):
    q = made.queue()
    before = stats(api, "/api/vhosts/%2F")
    c = amqp()
    ch = c.channel()
    ch.confirm_delivery()
    for _ in range(4):
        ch.basic_publish("", q, b"x")
    for _ in range(2):
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish("amq.direct", "nowhere", b"x", mandatory=True)
    ch.basic_publish("amq.direct", "nowhere", b"x")
    name = None

    def channel_stats():
        nonlocal name
        for x in api.get("/api/channels").json():
            s = x.get("message_stats") or {}
            if s.get("publish") == 7 and s.get("confirm") == 7:
                name = x["name"]
                return s
    s = wait_for(channel_stats)
    assert s, api.get("/api/channels").json()
    assert s["return_unroutable"] == 2
    assert "rate" in s["confirm_details"]
    if warren:
        # RabbitMQ 3.10's management plugin shows drop_unroutable as 0 (its
        # Prometheus counter counts it); Warren counts the drop in both.
        assert s["drop_unroutable"] == 1

    def vhost_moved():
        now = stats(api, "/api/vhosts/%2F")
        return now.get("confirm", 0) - before.get("confirm", 0) >= 7 and now
    v = wait_for(vhost_moved)
    assert v and v["return_unroutable"] - before.get("return_unroutable", 0) >= 2
    o = stats(api, "/api/overview")
    assert o["confirm"] >= v["confirm"] and o["return_unroutable"] >= 2
    c.close()
