"""Scenario 3: topic-routed logs."""

import pytest

from helpers import drain

# binding key(s) per queue
BINDINGS = {
    "server1.#": ["server1.#"],
    "#.info": ["#.info"],
    "#.error": ["#.error"],
    "*.info": ["*.info"],
    "server1.*": ["server1.*"],
    "*.*.*": ["*.*.*"],
    "server1.#.info": ["server1.#.info"],
    "#": ["#"],
    "exact": ["server2.db.error"],
    # A message matching several bindings of one queue arrives only once.
    "multi": ["server1.#", "#.info", "server1.user.profile.info"],
}

ROUTING_KEYS = [
    "server1.user.profile.info",
    "server2.db.error",
    "server1",
    "server1.info",
    "info",
    "a.b.c",
    "",
]

EXPECTED = {
    "server1.#": ["server1.user.profile.info", "server1", "server1.info"],
    "#.info": ["server1.user.profile.info", "server1.info", "info"],
    "#.error": ["server2.db.error"],
    "*.info": ["server1.info"],
    "server1.*": ["server1.info"],
    "*.*.*": ["server2.db.error", "a.b.c"],
    "server1.#.info": ["server1.user.profile.info", "server1.info"],
    "#": ROUTING_KEYS,
    "exact": ["server2.db.error"],
    "multi": ["server1.user.profile.info", "server1", "server1.info", "info"],
}


def test_topic_routing_table(ch, names):
    exchange = names.exchange("topic_logs")
    ch.exchange_declare(exchange, "topic")
    queues = {}
    for label, keys in BINDINGS.items():
        q = names.queue("logs")
        ch.queue_declare(q)
        for key in keys:
            ch.queue_bind(q, exchange, routing_key=key)
        queues[label] = q

    ch.confirm_delivery()
    for rk in ROUTING_KEYS:
        ch.basic_publish(exchange, rk, rk.encode())

    got = {label: [b.decode() for b in drain(ch, q)] for label, q in queues.items()}
    assert got == EXPECTED


@pytest.mark.parametrize("binding,key,matches", [
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.c", False),
    ("a.*.c", "a.b.b.c", False),
    ("a.#.c", "a.c", True),
    ("a.#.c", "a.b.b.c", True),
    ("#.#", "a", True),
    ("#.b.#", "b", True),
    ("#.b.#", "a.b.c", True),
    ("*", "a", True),
    ("*", "a.b", False),
    ("*", "", False),  # RabbitMQ: "" has zero words...
    ("#", "", True),
    ("*.*", "", False),
    ("*", ".", False),  # ...but "." is two empty words
    ("*.*", ".", True),
    ("a.*", "a.", True),  # trailing empty word
    ("A.b", "a.b", False),  # case sensitive
])
def test_topic_star_vs_hash(ch, names, binding, key, matches):
    exchange = names.exchange("topic_logs")
    ch.exchange_declare(exchange, "topic")
    q = names.queue("logs")
    ch.queue_declare(q)
    ch.queue_bind(q, exchange, routing_key=binding)
    ch.confirm_delivery()
    ch.basic_publish(exchange, key, b"m")
    assert drain(ch, q) == ([b"m"] if matches else [])


def test_unbind_stops_delivery(ch, names):
    exchange = names.exchange("topic_logs")
    ch.exchange_declare(exchange, "topic")
    q = names.queue("logs")
    ch.queue_declare(q)
    ch.queue_bind(q, exchange, routing_key="#.error")
    ch.confirm_delivery()
    ch.basic_publish(exchange, "x.error", b"1")
    ch.queue_unbind(q, exchange, routing_key="#.error")
    ch.basic_publish(exchange, "x.error", b"2")
    assert drain(ch, q) == [b"1"]
