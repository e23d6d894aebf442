"""Alternate exchanges (``alternate-exchange`` exchange argument)."""

import pika
import pytest

from fhelpers import NO_ROUTE, count, get_all, get_one, pump_until

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def ae_setup(ch, names):
    """main (direct, AE=ae) bound to 'routed' with key 'known'; ae (fanout)
    bound to 'unrouted'."""
    main = names.exchange("ae-main")
    ae = names.exchange("ae-alt")
    routed = names.queue("ae-routed")
    unrouted = names.queue("ae-unrouted")
    ch.exchange_declare(ae, "fanout")
    ch.exchange_declare(main, "direct", arguments={"alternate-exchange": ae})
    ch.queue_declare(routed)
    ch.queue_declare(unrouted)
    ch.queue_bind(routed, main, "known")
    ch.queue_bind(unrouted, ae)
    return main, ae, routed, unrouted


def test_unroutable_goes_to_alternate_exchange(ch, ae_setup):
    main, ae, routed, unrouted = ae_setup
    ch.basic_publish(main, "known", b"r", pika.BasicProperties(headers={"h": 1}))
    ch.basic_publish(main, "unknown.key", b"u", pika.BasicProperties(headers={"h": 2}))
    method, props, body = get_one(ch, unrouted)
    assert body == b"u"
    # delivered with the original exchange and routing key, headers untouched
    assert method.exchange == main
    assert method.routing_key == "unknown.key"
    assert props.headers == {"h": 2}
    assert [b for _, _, b in get_all(ch, routed)] == [b"r"]
    assert count(ch, unrouted) == 0


def test_mandatory_routed_via_ae_is_not_returned(conn, ae_setup):
    main, ae, routed, unrouted = ae_setup
    ch = conn.channel()
    ch.confirm_delivery()
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.basic_publish(main, "unknown", b"u", mandatory=True)   # no UnroutableError
    get_one(ch, unrouted)
    assert returned == []


def test_mandatory_unroutable_in_ae_too_is_returned_by_original_exchange(conn, ch, names):
    main = names.exchange("ae-main2")
    ae = names.exchange("ae-empty")
    ch.exchange_declare(ae, "direct")          # nothing bound
    ch.exchange_declare(main, "direct", arguments={"alternate-exchange": ae})
    pch = conn.channel()
    returned = []
    pch.add_on_return_callback(lambda c, m, p, b: returned.append((m, b)))
    pch.basic_publish(main, "k", b"x", mandatory=True)
    pump_until(conn, lambda: returned, message="basic.return")
    m, body = returned[0]
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key, body) == \
        (NO_ROUTE, "NO_ROUTE", main, "k", b"x")


def test_missing_alternate_exchange(conn, ch, names):
    main = names.exchange("ae-missing")
    ch.exchange_declare(main, "fanout",
                        arguments={"alternate-exchange": "no-such-ae.wt-none"})
    pch = conn.channel()
    pch.confirm_delivery()
    pch.basic_publish(main, "k", b"x")          # dropped silently, acked
    returned = []
    pch.add_on_return_callback(lambda c, m, p, b: returned.append(m))
    with pytest.raises(pika.exceptions.UnroutableError):
        pch.basic_publish(main, "k", b"y", mandatory=True)
    assert pch.is_open


def test_alternate_exchange_chain(ch, names):
    x1 = names.exchange("ae-c1")
    x2 = names.exchange("ae-c2")
    x3 = names.exchange("ae-c3")
    q = names.queue("ae-chain")
    ch.exchange_declare(x3, "fanout")
    ch.exchange_declare(x2, "direct", arguments={"alternate-exchange": x3})
    ch.exchange_declare(x1, "topic", arguments={"alternate-exchange": x2})
    ch.queue_declare(q)
    ch.queue_bind(q, x3)
    ch.basic_publish(x1, "a.b", b"m")
    method, _, body = get_one(ch, q)
    assert (method.exchange, method.routing_key, body) == (x1, "a.b", b"m")


def test_alternate_exchange_cycle_terminates(conn, ch, names):
    x1 = names.exchange("ae-loop1")
    x2 = names.exchange("ae-loop2")
    ch.exchange_declare(x1, "direct", arguments={"alternate-exchange": x2})
    ch.exchange_declare(x2, "direct", arguments={"alternate-exchange": x1})
    pch = conn.channel()
    pch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        pch.basic_publish(x1, "k", b"m", mandatory=True)
    q = names.queue("ae-loop-q")
    ch.queue_declare(q)
    ch.queue_bind(q, x2, "k")
    pch.basic_publish(x1, "k", b"m2", mandatory=True)
    assert get_one(ch, q)[2] == b"m2"


def test_alternate_exchange_not_used_when_routed(ch, ae_setup):
    main, ae, routed, unrouted = ae_setup
    for _ in range(3):
        ch.basic_publish(main, "known", b"r")
    assert len(get_all(ch, routed)) == 3
    assert count(ch, unrouted) == 0


def test_ae_topic_routing_key_preserved_unroutable_in_ae_dropped(ch, names):
    """The AE routes with the original routing key; if it cannot route either, the message is dropped."""
    main = names.exchange("ae-topic")
    ae = names.exchange("ae-topic-alt")
    q = names.queue("ae-topic-q")
    ch.exchange_declare(ae, "topic")
    ch.exchange_declare(main, "topic", arguments={"alternate-exchange": ae})
    ch.queue_declare(q)
    ch.queue_bind(q, ae, "orders.#")
    ch.basic_publish(main, "orders.eu.new", b"o")
    ch.basic_publish(main, "other", b"x")          # unroutable in AE as well: dropped
    assert [(m.routing_key, b) for m, _, b in get_all(ch, q)] == [("orders.eu.new", b"o")]
