"""Firehose tracer: with tracing on for the vhost, every publish and delivery
is copied to ``amq.rabbitmq.trace`` as ``publish.<exchange>`` /
``deliver.<queue>``.  Tracing is toggled out of band (see mgmt.py)."""

import re

import pika
import pytest

from fhelpers import get_all, get_one, pump, pump_until
from helpers import WAIT_TIMEOUT, unique, username, vhost
from wiretypes import wire_types

pytestmark = pytest.mark.timeout(30)

TRACE_X = "amq.rabbitmq.trace"
PUBLISH_KEYS = {"channel", "connection", "exchange_name", "node", "properties",
                "routed_queues", "routing_keys", "user", "vhost"}
DELIVER_KEYS = {"channel", "connection", "exchange_name", "node", "properties",
                "redelivered", "routing_keys", "user", "vhost"}
CONN_NAME = re.compile(r"^\S+:\d+ -> \S+:\d+$")


class Tracing:
    def __init__(self, mgmt):
        self.mgmt = mgmt
        self.state = None

    def ensure(self, on: bool):
        if self.state is not on:
            (self.mgmt.trace_on if on else self.mgmt.trace_off)()
            self.state = on


@pytest.fixture(scope="module")
def tracing(mgmt):
    t = Tracing(mgmt)
    yield t
    if t.state is not False:
        t.mgmt.trace_off()


@pytest.fixture
def trace_queue(ch):
    q = unique("trace")      # exclusive: goes away with its connection
    ch.queue_declare(q, exclusive=True)
    ch.queue_bind(q, TRACE_X, "publish.#")
    ch.queue_bind(q, TRACE_X, "deliver.#")
    return q


def _traces_for(ch, trace_q, marker, n, timeout=WAIT_TIMEOUT):
    """Wait for ``n`` trace messages whose body is ``marker`` (other brokers
    users may be active); returns them in arrival order."""
    found = []

    def poll():
        for m, p, b in get_all(ch, trace_q):
            if b == marker:
                found.append((m, p, b))
        return len(found) >= n

    pump_until(ch.connection, poll, timeout=timeout, message=f"{n} traces")
    return found


def _check_common(p, *, exchange, routing_keys, channel_number):
    h = p.headers
    assert h["exchange_name"] == exchange
    assert h["routing_keys"] == routing_keys
    assert h["user"] == username()
    assert h["vhost"] == vhost()
    assert h["channel"] == channel_number
    assert CONN_NAME.match(h["connection"]), h["connection"]
    assert isinstance(h["node"], str) and h["node"]
    # the trace message itself carries nothing but headers
    assert (p.content_type, p.delivery_mode, p.priority, p.expiration, p.timestamp) == \
        (None, None, None, None, None)


def test_publish_and_deliver_traces(conn, ch, names, tracing, trace_queue):
    tracing.ensure(True)
    x = names.exchange("fh-x")
    q = names.queue("fh-q")
    ch.exchange_declare(x, "fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    pch = conn.channel()
    body = b"fh-all-props"
    props = pika.BasicProperties(
        content_type="text/plain", content_encoding="gzip", headers={"h": 1, "s": "v"},
        delivery_mode=2, priority=3, correlation_id="cid", reply_to="rt",
        expiration="60000", message_id="mid", timestamp=123, type="t",
        user_id=username(), app_id="app")
    pch.basic_publish(x, "rk1", body, props)
    # basic.get (then reject-requeue) and a consumer delivery: 2 deliver traces
    method, _, _ = get_one(pch, q, auto_ack=False)
    pch.basic_reject(method.delivery_tag, requeue=True)
    got = []
    pch.basic_consume(q, lambda c, m, p_, b: got.append(b), auto_ack=True)
    pump_until(conn, lambda: got, message="consumer delivery")

    traces = _traces_for(ch, trace_queue, body, 3)
    (pm, pp, _), (d1m, d1p, _), (d2m, d2p, _) = traces

    assert (pm.exchange, pm.routing_key) == (TRACE_X, f"publish.{x}")
    assert set(pp.headers) == PUBLISH_KEYS
    _check_common(pp, exchange=x, routing_keys=["rk1"], channel_number=pch.channel_number)
    assert pp.headers["routed_queues"] == [q]
    expected_props = {
        "content_type": "text/plain", "content_encoding": "gzip",
        "headers": {"h": 1, "s": "v"}, "delivery_mode": 2, "priority": 3,
        "correlation_id": "cid", "reply_to": "rt", "expiration": "60000",
        "message_id": "mid", "timestamp": 123, "type": "t", "user_id": username(),
        "app_id": "app"}
    assert pp.headers["properties"] == expected_props

    for m, p, redelivered in ((d1m, d1p, 0), (d2m, d2p, 1)):
        assert (m.exchange, m.routing_key) == (TRACE_X, f"deliver.{q}")
        assert set(p.headers) == DELIVER_KEYS
        _check_common(p, exchange=x, routing_keys=["rk1"], channel_number=pch.channel_number)
        assert p.headers["redelivered"] == redelivered
        assert p.headers["properties"] == expected_props

    # wire types
    prop_types = {k: "S" for k in expected_props}
    prop_types.update({"headers": {"h": "I", "s": "S"}, "delivery_mode": "I",
                       "priority": "I", "timestamp": "I"})
    common = {"channel": "I", "connection": "S", "exchange_name": "S", "node": "S",
              "properties": prop_types, "routing_keys": ["S"], "user": "S", "vhost": "S"}
    assert wire_types(pp) == dict(common, routed_queues=["S"])
    assert wire_types(d1p) == dict(common, redelivered="I")


def test_default_exchange_and_cc(conn, ch, names, tracing, trace_queue):
    tracing.ensure(True)
    q = names.queue("fh-dq")
    cc = names.queue("fh-cc")
    ch.queue_declare(q)
    ch.queue_declare(cc)
    pch = conn.channel()
    body = b"fh-default-cc"
    pch.basic_publish("", q, body, pika.BasicProperties(headers={"CC": [cc]}))
    traces = _traces_for(ch, trace_queue, body, 1)
    m, p, _ = traces[0]
    assert m.routing_key == "publish."          # empty exchange name
    assert p.headers["exchange_name"] == ""
    assert p.headers["routing_keys"] == [q, cc]
    assert sorted(p.headers["routed_queues"]) == sorted([q, cc])
    assert p.headers["properties"] == {"headers": {"CC": [cc]}}


def test_unroutable_publish_is_traced(conn, ch, names, tracing, trace_queue):
    tracing.ensure(True)
    x = names.exchange("fh-empty")
    ch.exchange_declare(x, "direct")
    pch = conn.channel()
    body = b"fh-unroutable"
    pch.basic_publish(x, "nowhere", body)
    m, p, _ = _traces_for(ch, trace_queue, body, 1)[0]
    assert m.routing_key == f"publish.{x}"
    assert p.headers["routed_queues"] == []
    assert p.headers["properties"] == {}
    assert wire_types(p)["routed_queues"] == []


def test_default_exchange_routed_queues_lists_name_even_if_missing(conn, ch, tracing,
                                                                  trace_queue):
    """RabbitMQ 3.10 quirk: for the default exchange routed_queues holds the
    routing key even when no such queue exists."""
    tracing.ensure(True)
    pch = conn.channel()
    body = b"fh-missing-q"
    missing = "fh-no-such-queue.wt-none"
    pch.basic_publish("", missing, body)
    _, p, _ = _traces_for(ch, trace_queue, body, 1)[0]
    assert p.headers["routed_queues"] == [missing]


def test_trace_messages_are_not_traced_themselves(conn, ch, names, tracing):
    """Consuming from a queue bound to amq.rabbitmq.trace does not produce
    deliver.* traces (no feedback loop); the bound queue gets 1 publish + 1
    deliver trace for one message, nothing more."""
    tracing.ensure(True)
    tq = unique("fh-self")
    ch.queue_declare(tq, exclusive=True)
    ch.queue_bind(tq, TRACE_X, "#")
    q = names.queue("fh-self-q")
    ch.queue_declare(q)
    body = b"fh-self-body"
    ch.basic_publish("", q, body)
    get_one(ch, q)
    seen = []
    ch.basic_consume(tq, lambda c, m, p, b: seen.append((m.routing_key, b)), auto_ack=True)
    pump_until(conn, lambda: len([s for s in seen if s[1] == body]) >= 2, message="2 traces")
    pump(conn, 0.2)
    mine = [rk for rk, b in seen if b == body]
    assert mine == ["publish.", f"deliver.{q}"]
    assert not any(rk == f"deliver.{tq}" for rk, _ in seen)


def test_tracing_off_produces_nothing(conn, ch, names, tracing, trace_queue):
    tracing.ensure(True)
    q = names.queue("fh-off")
    ch.queue_declare(q)
    ch.basic_publish("", q, b"fh-on")
    _traces_for(ch, trace_queue, b"fh-on", 1)
    tracing.ensure(False)
    ch.basic_publish("", q, b"fh-off")
    get_one(ch, q)
    get_one(ch, q)
    pump(conn, 0.2)
    bodies = [b for _, _, b in get_all(ch, trace_queue)]
    assert b"fh-off" not in bodies
