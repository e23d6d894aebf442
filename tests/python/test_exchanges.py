"""Scenario 6c: exchange-to-exchange bindings, headers and direct exchanges."""

import pika
import pytest

from helpers import drain


def declare_queue(ch, names, label, exchange, routing_key="", arguments=None):
    q = names.queue(label)
    ch.queue_declare(q)
    ch.queue_bind(q, exchange, routing_key=routing_key, arguments=arguments)
    return q


def test_exchange_to_exchange_binding(ch, names):
    src = names.exchange("e2e-src")
    dst = names.exchange("e2e-dst")
    ch.exchange_declare(src, "direct")
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(destination=dst, source=src, routing_key="images")
    via_dst = declare_queue(ch, names, "via-dst", dst)
    direct = declare_queue(ch, names, "direct", src, routing_key="images")

    ch.confirm_delivery()
    ch.basic_publish(src, "images", b"1")
    ch.basic_publish(src, "videos", b"2")  # no binding matches
    ch.basic_publish(dst, "anything", b"3")  # straight into the fanout
    assert drain(ch, via_dst) == [b"1", b"3"]
    assert drain(ch, direct) == [b"1"]

    # A message reaching a queue by two paths is delivered once.
    ch.queue_bind(via_dst, src, routing_key="images")
    ch.basic_publish(src, "images", b"4")
    assert drain(ch, via_dst) == [b"4"]

    ch.queue_unbind(via_dst, src, routing_key="images")
    ch.exchange_unbind(destination=dst, source=src, routing_key="images")
    ch.basic_publish(src, "images", b"5")
    assert drain(ch, via_dst) == []
    assert drain(ch, direct) == [b"4", b"5"]


def test_exchange_to_exchange_chain_and_cycle(ch, names):
    a, b, c = (names.exchange(n) for n in ("e2e-a", "e2e-b", "e2e-c"))
    for x in (a, b, c):
        ch.exchange_declare(x, "topic")
    ch.exchange_bind(destination=b, source=a, routing_key="#")
    ch.exchange_bind(destination=c, source=b, routing_key="log.*")
    ch.exchange_bind(destination=a, source=c, routing_key="#")  # cycle back to a
    q = declare_queue(ch, names, "chain", c, routing_key="#")
    ch.confirm_delivery()
    ch.basic_publish(a, "log.info", b"through")
    ch.basic_publish(a, "metrics.cpu", b"filtered")
    # Cycles are tolerated; each queue still gets one copy.
    assert drain(ch, q) == [b"through"]


def test_deleting_source_exchange_removes_e2e_binding(ch, names):
    src = names.exchange("e2e-src")
    dst = names.exchange("e2e-dst")
    ch.exchange_declare(src, "fanout")
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(destination=dst, source=src)
    q = declare_queue(ch, names, "q", dst)
    ch.exchange_delete(src)
    ch.exchange_declare(src, "fanout")
    ch.confirm_delivery()
    ch.basic_publish(src, "", b"x")
    assert drain(ch, q) == []


HEADER_BINDINGS = {
    "all": {"x-match": "all", "format": "pdf", "type": "report"},
    "any": {"x-match": "any", "format": "pdf", "type": "log"},
    "default-is-all": {"format": "zip", "type": "report"},
    "typed": {"x-match": "all", "count": 5},
    "empty-all": {"x-match": "all"},
}

HEADER_MESSAGES = [
    ("both", {"format": "pdf", "type": "report"}),
    ("pdf-log", {"format": "pdf", "type": "log"}),
    ("log-only", {"type": "log"}),
    ("zip-report-extra", {"format": "zip", "type": "report", "extra": 1}),
    ("zip-only", {"format": "zip"}),
    ("count-5", {"count": 5}),
    ("count-str", {"count": "5"}),
    ("no-headers", None),
]

HEADER_EXPECTED = {
    "all": ["both"],
    "any": ["both", "pdf-log", "log-only"],
    "default-is-all": ["zip-report-extra"],
    "typed": ["count-5"],
    "empty-all": [m for m, _ in HEADER_MESSAGES],  # no conditions: matches everything
}


def test_headers_exchange_x_match_all_any(ch, names):
    x = names.exchange("headers")
    ch.exchange_declare(x, "headers")
    queues = {label: declare_queue(ch, names, label, x, routing_key="ignored", arguments=args)
              for label, args in HEADER_BINDINGS.items()}
    ch.confirm_delivery()
    for body, headers in HEADER_MESSAGES:
        ch.basic_publish(x, "rk", body.encode(), pika.BasicProperties(headers=headers))
    got = {label: [b.decode() for b in drain(ch, q)] for label, q in queues.items()}
    assert got == HEADER_EXPECTED


@pytest.mark.parametrize("xtype", ["direct", "fanout", "topic", "headers"])
def test_predefined_exchanges_exist(ch, xtype):
    ch.exchange_declare(f"amq.{xtype}", passive=True)
    if xtype == "headers":
        ch.exchange_declare("amq.match", passive=True)


def test_default_exchange_routes_by_queue_name(ch, names):
    q = names.queue("default")
    ch.queue_declare(q)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"direct to queue")
    assert drain(ch, q) == [b"direct to queue"]


def test_direct_exchange_multiple_bindings(ch, names):
    x = names.exchange("direct_logs")
    ch.exchange_declare(x, "direct")
    q1 = declare_queue(ch, names, "errors", x, routing_key="error")
    q2 = declare_queue(ch, names, "all", x, routing_key="info")
    ch.queue_bind(q2, x, routing_key="error")
    ch.confirm_delivery()
    for sev in ["info", "error", "warning"]:
        ch.basic_publish(x, sev, sev.encode())
    assert drain(ch, q1) == [b"error"]
    assert drain(ch, q2) == [b"info", b"error"]
