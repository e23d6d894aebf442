"""Event exchange (``amq.rabbitmq.event``, RabbitMQ plugin
``rabbitmq_event_exchange``): broker events as messages whose routing key is
the event name and whose headers carry the event's properties."""

import re
import time

import pika
import pika.compat
import pika.exceptions
import pytest


from fhelpers import get_all
from helpers import WAIT_TIMEOUT, params, unique, username, vhost
from wiretypes import wire_types

pytestmark = pytest.mark.timeout(20)

EVENT_X = "amq.rabbitmq.event"
CONN_NAME = re.compile(r"^\S+:(\d+) -> \S+:\d+$")


@pytest.fixture(scope="module", autouse=True)
def _event_exchange_present():
    c = pika.BlockingConnection(params())
    try:
        c.channel().exchange_declare(EVENT_X, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        pytest.fail(f"{EVENT_X} missing ({e}); on RabbitMQ run "
                    "`rabbitmq-plugins enable rabbitmq_event_exchange`")
    finally:
        if c.is_open:
            c.close()


class Events:
    def __init__(self, ch, q):
        self.ch = ch
        self.q = q
        self.seen = []

    def wait(self, predicate, n=1, timeout=WAIT_TIMEOUT):
        """Events (method, props) matching predicate(routing_key, headers),
        once at least ``n`` have arrived."""
        deadline = time.monotonic() + timeout
        while True:
            self.seen.extend((m, p) for m, p, _ in get_all(self.ch, self.q))
            hits = [(m, p) for m, p in self.seen if predicate(m.routing_key, p.headers)]
            if len(hits) >= n:
                return hits
            if time.monotonic() >= deadline:
                raise AssertionError(f"only {len(hits)}/{n} matching events; seen: "
                                     f"{[(m.routing_key, p.headers) for m, p in self.seen]}")
            time.sleep(0.01)

    def about(self, key, value, n=1, timeout=WAIT_TIMEOUT):
        return self.wait(lambda rk, h: (h or {}).get(key) == value, n, timeout)


@pytest.fixture
def events(connections):
    ch = connections().channel()
    q = unique("events")     # exclusive: goes away with its connection
    ch.queue_declare(q, exclusive=True)
    for k in ("queue.*", "exchange.*", "binding.*", "consumer.*", "connection.*",
              "channel.*"):
        ch.queue_bind(q, EVENT_X, k)
    return Events(ch, q)


def _check_event_message(m, p, key):
    assert m.exchange == EVENT_X
    assert m.routing_key == key
    assert p.delivery_mode == 2
    assert isinstance(p.timestamp, int) and abs(p.timestamp - time.time()) < 60
    ts = p.headers["timestamp_in_ms"]
    assert isinstance(ts, pika.compat.long) and abs(ts / 1000 - time.time()) < 60
    assert p.headers["timestamp_in_ms"] // 1000 in (p.timestamp, p.timestamp + 1,
                                                     p.timestamp - 1)
    assert (p.content_type, p.correlation_id, p.message_id) == (None, None, None)


def test_queue_created_and_deleted(conn, ch, names, events):
    q = names.queue("ev-q")
    ch.queue_declare(q, durable=True, arguments={"x-message-ttl": 1000, "x-foo": "bar"})
    ch.queue_delete(q)
    evs = events.about("name", q, n=2)
    (cm, cp), (dm, dp) = evs
    _check_event_message(cm, cp, "queue.created")
    assert set(cp.headers) == {"arguments", "auto_delete", "durable", "exclusive", "name",
                               "owner_pid", "timestamp_in_ms", "user_who_performed_action",
                               "vhost"}
    h = cp.headers
    assert (h["name"], h["vhost"], h["durable"], h["auto_delete"], h["exclusive"]) == \
        (q, vhost(), True, False, False)
    assert h["owner_pid"] == ""
    assert h["user_who_performed_action"] == username()
    # arguments: an array of Erlang-formatted {Name,Type,Value} strings, in
    # the order given by the client
    assert h["arguments"] == ['{<<"x-message-ttl">>,signedint,1000}',
                              '{<<"x-foo">>,longstr,<<"bar">>}']
    assert wire_types(cp) == {
        "arguments": ["S", "S"], "auto_delete": "t", "durable": "t", "exclusive": "t",
        "name": "S", "owner_pid": "S", "timestamp_in_ms": "l",
        "user_who_performed_action": "S", "vhost": "S"}

    _check_event_message(dm, dp, "queue.deleted")
    assert dp.headers == {"name": q, "vhost": vhost(), "user_who_performed_action": username(),
                          "timestamp_in_ms": dp.headers["timestamp_in_ms"]}
    assert wire_types(dp) == {"name": "S", "vhost": "S", "user_who_performed_action": "S",
                              "timestamp_in_ms": "l"}


def test_redeclare_and_passive_declare_produce_no_event(ch, names, events):
    q = names.queue("ev-redecl")
    ch.queue_declare(q)
    ch.queue_declare(q)
    ch.queue_declare(q, passive=True)
    ch.queue_delete(q)
    evs = events.about("name", q, n=2)
    time.sleep(0.1)
    evs = events.about("name", q, n=2)
    assert [m.routing_key for m, _ in evs] == ["queue.created", "queue.deleted"]


def test_exclusive_queue_deleted_with_connection(connections, names, events):
    c = connections()
    cch = c.channel()
    q = names.queue("ev-excl")
    cch.queue_declare(q, exclusive=True, auto_delete=False)
    cch.queue_bind(q, "amq.fanout")
    c.close()
    evs = events.wait(lambda rk, h: h.get("name") == q or h.get("destination_name") == q, n=4)
    assert [m.routing_key for m, _ in evs] == \
        ["queue.created", "binding.created", "binding.deleted", "queue.deleted"]
    created = evs[0][1].headers
    assert created["exclusive"] is True
    assert created["owner_pid"] != ""
    # the broker itself deletes it
    assert evs[2][1].headers["user_who_performed_action"] == "rmq-internal"
    assert evs[3][1].headers["user_who_performed_action"] == "rmq-internal"


def test_exchange_created_and_deleted(ch, names, events):
    x = names.exchange("ev-x")
    ch.exchange_declare(x, "topic", durable=False, auto_delete=False,
                        arguments={"alternate-exchange": "ae"})
    ch.exchange_delete(x)
    evs = events.wait(lambda rk, h: rk.startswith("exchange.") and h.get("name") == x, n=2)
    (cm, cp), (dm, dp) = evs
    _check_event_message(cm, cp, "exchange.created")
    assert cp.headers == {
        "name": x, "vhost": vhost(), "type": "topic", "durable": False,
        "auto_delete": False, "internal": False, "policy": "",
        "arguments": ['{<<"alternate-exchange">>,longstr,<<"ae">>}'],
        "user_who_performed_action": username(),
        "timestamp_in_ms": cp.headers["timestamp_in_ms"]}
    assert wire_types(cp) == {
        "name": "S", "vhost": "S", "type": "S", "durable": "t", "auto_delete": "t",
        "internal": "t", "policy": "S", "arguments": ["S"],
        "user_who_performed_action": "S", "timestamp_in_ms": "l"}
    _check_event_message(dm, dp, "exchange.deleted")
    assert dp.headers == {"name": x, "vhost": vhost(), "user_who_performed_action": username(),
                          "timestamp_in_ms": dp.headers["timestamp_in_ms"]}


def test_binding_created_and_deleted(ch, names, events):
    x = names.exchange("ev-bx")
    q = names.queue("ev-bq")
    ch.exchange_declare(x, "headers")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "rk", arguments={"x-match": "all", "k": "v"})
    ch.queue_unbind(q, x, "rk", arguments={"x-match": "all", "k": "v"})
    evs = events.wait(lambda rk, h: rk.startswith("binding.") and h.get("source_name") == x,
                      n=2)
    (cm, cp), (dm, dp) = evs
    expected = {
        "source_name": x, "source_kind": "exchange", "destination_name": q,
        "destination_kind": "queue", "routing_key": "rk", "vhost": vhost(),
        # binding arguments are sorted by key (queue arguments are not)
        "arguments": ['{<<"k">>,longstr,<<"v">>}', '{<<"x-match">>,longstr,<<"all">>}'],
        "user_who_performed_action": username()}
    for (m, p), key in (((cm, cp), "binding.created"), ((dm, dp), "binding.deleted")):
        _check_event_message(m, p, key)
        assert p.headers == dict(expected, timestamp_in_ms=p.headers["timestamp_in_ms"])
        assert wire_types(p) == {
            "source_name": "S", "source_kind": "S", "destination_name": "S",
            "destination_kind": "S", "routing_key": "S", "vhost": "S",
            "arguments": ["S", "S"], "user_who_performed_action": "S",
            "timestamp_in_ms": "l"}


def test_exchange_to_exchange_binding_kind(ch, names, events):
    src = names.exchange("ev-e2e-src")
    dst = names.exchange("ev-e2e-dst")
    ch.exchange_declare(src, "fanout")
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(dst, src)
    (_, p), = events.wait(lambda rk, h: rk == "binding.created" and h.get("source_name") == src)
    assert (p.headers["destination_kind"], p.headers["destination_name"],
            p.headers["routing_key"], p.headers["arguments"]) == ("exchange", dst, "", [])


def test_consumer_created_and_deleted(conn, ch, names, events):
    q = names.queue("ev-cq")
    ch.queue_declare(q)
    cch = conn.channel()
    cch.basic_qos(prefetch_count=7)
    tag = cch.basic_consume(q, lambda *a: None, auto_ack=False,
                            arguments={"x-priority": 3}, consumer_tag="ev-ctag-1")
    cch.basic_cancel(tag)
    evs = events.wait(lambda rk, h: rk.startswith("consumer.") and h.get("queue") == q, n=2)
    (cm, cp), (dm, dp) = evs
    _check_event_message(cm, cp, "consumer.created")
    h = cp.headers
    assert set(h) == {"ack_required", "arguments", "channel", "consumer_tag", "exclusive",
                      "prefetch_count", "queue", "timestamp_in_ms",
                      "user_who_performed_action", "vhost"}
    assert (h["consumer_tag"], h["queue"], h["vhost"], h["ack_required"], h["exclusive"],
            h["prefetch_count"], h["arguments"], h["user_who_performed_action"]) == \
        ("ev-ctag-1", q, vhost(), True, False, 7, ['{<<"x-priority">>,signedint,3}'],
         username())
    assert isinstance(h["channel"], str) and h["channel"]
    assert wire_types(cp) == {
        "ack_required": "t", "arguments": ["S"], "channel": "S", "consumer_tag": "S",
        "exclusive": "t", "prefetch_count": "l", "queue": "S", "timestamp_in_ms": "l",
        "user_who_performed_action": "S", "vhost": "S"}
    _check_event_message(dm, dp, "consumer.deleted")
    assert dp.headers == {"channel": h["channel"], "consumer_tag": "ev-ctag-1", "queue": q,
                          "vhost": vhost(), "user_who_performed_action": username(),
                          "timestamp_in_ms": dp.headers["timestamp_in_ms"]}


def test_connection_and_channel_events(events):
    p = params()
    marker = f"ev-conn-{time.monotonic_ns()}"
    p.client_properties = {"connection_name": marker}
    c = pika.BlockingConnection(p)
    c.channel()
    c.close()
    (ccm, ccp), = events.wait(lambda rk, h: rk == "connection.created"
                              and h.get("user_provided_name") == marker)
    _check_event_message(ccm, ccp, "connection.created")
    h = ccp.headers
    assert set(h) == {
        "auth_mechanism", "channel_max", "client_properties", "connected_at", "frame_max",
        "host", "name", "node", "peer_cert_issuer", "peer_cert_subject",
        "peer_cert_validity", "peer_host", "peer_port", "pid", "port", "protocol", "ssl",
        "ssl_cipher", "ssl_hash", "ssl_key_exchange", "ssl_protocol", "timeout",
        "timestamp_in_ms", "type", "user", "user_provided_name",
        "user_who_performed_action", "vhost"}
    m = CONN_NAME.match(h["name"])
    assert m, h["name"]
    assert h["peer_port"] == int(m.group(1))
    assert (h["auth_mechanism"], h["protocol"], h["ssl"], h["type"], h["user"], h["vhost"],
            h["user_who_performed_action"]) == \
        ("PLAIN", "{0,9,1}", False, "network", username(), vhost(), username())
    assert (h["ssl_cipher"], h["ssl_hash"], h["ssl_key_exchange"], h["ssl_protocol"],
            h["peer_cert_issuer"], h["peer_cert_subject"], h["peer_cert_validity"]) == \
        ("", "", "", "", "", "", "")
    assert h["port"] == p.port
    assert h["channel_max"] > 0 and h["frame_max"] > 0
    assert isinstance(h["timeout"], pika.compat.long)
    assert f'{{<<"connection_name">>,longstr,<<"{marker}">>}}' in h["client_properties"]
    assert wire_types(ccp) == {
        "auth_mechanism": "S", "channel_max": "l",
        "client_properties": ["S"] * len(h["client_properties"]), "connected_at": "l",
        "frame_max": "l", "host": "S", "name": "S", "node": "S", "peer_cert_issuer": "S",
        "peer_cert_subject": "S", "peer_cert_validity": "S", "peer_host": "S",
        "peer_port": "l", "pid": "S", "port": "l", "protocol": "S", "ssl": "t",
        "ssl_cipher": "S", "ssl_hash": "S", "ssl_key_exchange": "S", "ssl_protocol": "S",
        "timeout": "l", "timestamp_in_ms": "l", "type": "S", "user": "S",
        "user_provided_name": "S", "user_who_performed_action": "S", "vhost": "S"}
    conn_pid = h["pid"]

    (chm, chp), = events.wait(lambda rk, hh: rk == "channel.created"
                              and hh.get("connection") == conn_pid)
    _check_event_message(chm, chp, "channel.created")
    ch_h = chp.headers
    assert set(ch_h) == {"connection", "name", "number", "pid", "timestamp_in_ms", "user",
                         "user_who_performed_action", "vhost"}
    assert (ch_h["name"], ch_h["number"], ch_h["user"], ch_h["vhost"]) == \
        (f"{h['name']} (1)", 1, username(), vhost())
    assert wire_types(chp) == {"connection": "S", "name": "S", "number": "l", "pid": "S",
                               "timestamp_in_ms": "l", "user": "S",
                               "user_who_performed_action": "S", "vhost": "S"}

    (_, clp), = events.wait(lambda rk, hh: rk == "channel.closed"
                            and hh.get("pid") == ch_h["pid"])
    assert set(clp.headers) == {"pid", "timestamp_in_ms", "user_who_performed_action"}
    assert clp.headers["user_who_performed_action"] == username()

    (_, cxp), = events.wait(lambda rk, hh: rk == "connection.closed"
                            and hh.get("pid") == conn_pid)
    assert set(cxp.headers) == {"client_properties", "name", "node", "pid",
                                "timestamp_in_ms", "user_provided_name"}
    assert (cxp.headers["name"], cxp.headers["node"], cxp.headers["user_provided_name"]) == \
        (h["name"], h["node"], marker)
    # ordering: created < channel.created < channel.closed < connection.closed
    order = [m.routing_key for m, p_ in events.seen
             if p_.headers.get("pid") in (conn_pid, ch_h["pid"])
             or p_.headers.get("connection") == conn_pid]
    assert order == ["connection.created", "channel.created", "channel.closed",
                     "connection.closed"]


def test_no_events_without_binding(ch, names):
    """The event exchange is a topic exchange: only bound keys arrive."""
    q = unique("ev-only-queue")
    ch.queue_declare(q, exclusive=True)
    ch.queue_bind(q, EVENT_X, "exchange.created")
    x = names.exchange("ev-only-x")
    qq = names.queue("ev-only-other")
    ch.queue_declare(qq)
    ch.exchange_declare(x, "direct")
    deadline = time.monotonic() + 5
    got = []
    while time.monotonic() < deadline:
        got.extend(get_all(ch, q))
        if any(p.headers.get("name") == x for _, p, _ in got):
            break
        time.sleep(0.01)
    assert {m.routing_key for m, _, _ in got} == {"exchange.created"}
    ok = ch.exchange_declare(EVENT_X, passive=True)
    assert ok is not None
