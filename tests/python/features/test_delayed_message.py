"""Delayed messages (``x-delayed-message`` exchange, community plugin
``rabbitmq_delayed_message_exchange``).  The plugin is not packaged for the
reference RabbitMQ, so the whole module skips when the exchange type is
unknown (RabbitMQ closes the *connection* with 503 COMMAND_INVALID
"unknown exchange type 'x-delayed-message'").

Expectations here follow the plugin's source (rabbit_exchange_type_delayed_message
/ rabbit_delayed_message_utils), not a live run:
* ``x-delay`` (ms, integer; numeric strings are converted) > 0 holds the
  message back; missing / <= 0 routes at once;
* routing then happens with the ``x-delayed-type`` exchange type;
* the delivered message carries ``x-delay`` = -delay (signed int);
* ``x-delayed-type`` is mandatory (406 PRECONDITION_FAILED).
"""

import time

import pika
import pika.exceptions
import pytest

from fhelpers import pump_until
from helpers import connect, unique

pytestmark = pytest.mark.timeout(20)

DELAYED = "x-delayed-message"


@pytest.fixture(scope="module", autouse=True)
def _delayed_supported():
    c = connect()
    x = unique("dly-probe")
    try:
        ch = c.channel()
        ch.exchange_declare(x, DELAYED, arguments={"x-delayed-type": "direct"})
        ch.exchange_delete(x)
    except pika.exceptions.ConnectionClosedByBroker as e:
        if e.reply_code == 503 and DELAYED in e.reply_text:
            pytest.skip(f"broker has no {DELAYED} exchange type: {e.reply_text}")
        raise
    finally:
        if c.is_open:
            c.close()


@pytest.fixture
def delayed(ch, names):
    x = names.exchange("dly")
    q = names.queue("dly")
    ch.exchange_declare(x, DELAYED, arguments={"x-delayed-type": "direct"})
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    return x, q


def _consume(conn, ch, q):
    got = []
    t0 = time.monotonic()
    ch.basic_consume(q, lambda c, m, p, b: got.append((b, time.monotonic() - t0, p.headers)),
                     auto_ack=True)
    return got, t0


def test_delivered_after_delay_in_delay_order(conn, ch, delayed):
    x, q = delayed
    got, t0 = _consume(conn, ch, q)
    # Delays far enough apart that a loaded machine keeps them in order and
    # "now" is clearly not held.
    for body, delay in ((b"d1200", 1200), (b"d400", 400), (b"d800", 800)):
        ch.basic_publish(x, "k", body, pika.BasicProperties(headers={"x-delay": delay}))
    ch.basic_publish(x, "k", b"now")
    pump_until(conn, lambda: len(got) == 4, message="4 deliveries")
    assert [b for b, _, _ in got] == [b"now", b"d400", b"d800", b"d1200"]
    assert got[0][1] < 0.35
    for (body, elapsed, headers), delay in zip(got[1:], (0.4, 0.8, 1.2)):
        assert elapsed >= delay - 0.01, f"{body} after {elapsed:.3f}s"
        assert headers["x-delay"] == -int(delay * 1000)


def test_zero_or_negative_delay_routes_immediately(conn, ch, delayed):
    x, q = delayed
    got, _ = _consume(conn, ch, q)
    ch.basic_publish(x, "k", b"zero", pika.BasicProperties(headers={"x-delay": 0}))
    ch.basic_publish(x, "k", b"neg", pika.BasicProperties(headers={"x-delay": -50}))
    pump_until(conn, lambda: len(got) == 2, timeout=5, message="immediate deliveries")
    assert [b for b, _, _ in got] == [b"zero", b"neg"]


def test_string_delay_is_converted(conn, ch, delayed):
    x, q = delayed
    got, _ = _consume(conn, ch, q)
    ch.basic_publish(x, "k", b"s", pika.BasicProperties(headers={"x-delay": "150"}))
    pump_until(conn, lambda: got, message="delivery")
    assert got[0][1] >= 0.14


def test_delayed_type_routing_applies(conn, ch, names, delayed):
    x, q = delayed
    other = names.queue("dly-other")
    ch.queue_declare(other)
    ch.queue_bind(other, x, "other")
    got, _ = _consume(conn, ch, q)
    ch.basic_publish(x, "other", b"o", pika.BasicProperties(headers={"x-delay": 50}))
    ch.basic_publish(x, "k", b"k", pika.BasicProperties(headers={"x-delay": 100}))
    pump_until(conn, lambda: got, message="delivery")
    assert [b for b, _, _ in got] == [b"k"]
    assert ch.queue_declare(other, passive=True).method.message_count == 1


def test_x_delayed_type_required(conn, names):
    ch = conn.channel()
    x = names.exchange("dly-notype")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, DELAYED)
    assert ei.value.reply_code == 406
