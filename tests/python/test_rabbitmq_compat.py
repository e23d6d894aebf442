"""Issue 9: behaviours where Warren must match RabbitMQ 3.10 exactly.

Each test was written against RabbitMQ 3.10.8 (the reference) and runs
unchanged against Warren. Where the channel- or connection-level of an error,
its class/method ids or the exact order of frames matters, the test drives a
raw socket (``rawamqp.py``); otherwise it uses pika (or py-amqp, whose
behaviour depends on the order of frames).

* empty queue name with no queue declared on the channel (item 2);
* channel ids above channel_max and the limit on the number of channels (3);
* the default exchange cannot be declared, deleted or bound (4);
* unbinding from exchanges/queues that are gone is not an error (5);
* queue.delete-ok comes before the basic.cancel of the queue's consumers (6);
* queue.bind/unbind with queue "" and routing key "" use the last declared
  queue for both (8);
* direct reply-to pseudo-queues: not listed, not reachable by other
  connections, "declared" passively (9 and the survey in
  docs/amqp-error-survey.md);
* exact texts of errors found by that survey.
"""

import os
import shutil
import subprocess
import time
from urllib.parse import urlparse

import amqp
import pika
import pika.exceptions
import pytest

from helpers import (AMQP_URL, NOT_FOUND, ACCESS_REFUSED, WAIT_TIMEOUT, connect, drain, params,
                     unique, vhost)
from rawamqp import (CHANNEL_CLOSE, CHANNEL_CLOSE_OK, CHANNEL_OPEN, CHANNEL_OPEN_OK,
                     CONNECTION_CLOSE, CONNECTION_CLOSE_OK, QUEUE_DECLARE_OK, Close,
                     RawConnection, basic_consume, basic_get, declared_queue, exchange_bind,
                     exchange_declare, exchange_delete, exchange_unbind, method_frame,
                     queue_bind, queue_declare, queue_delete, queue_purge, queue_unbind,
                     shortstr)

pytestmark = pytest.mark.timeout(20)

ChannelClosed = pika.exceptions.ChannelClosedByBroker
ConnectionClosed = pika.exceptions.ConnectionClosedByBroker

NOT_ALLOWED = 530
NO_PREVIOUS = "NOT_FOUND - no previously declared queue"
DEFAULT_X = "ACCESS_REFUSED - operation not permitted on the default exchange"
REPLY_TO = "amq.rabbitmq.reply-to"
CANCEL_NOTIFY = {"capabilities": {"consumer_cancel_notify": True}}


def raw_channel_error(action: bytes, setup: bytes = b"", setup_replies: int = 0,
                      client_properties=None) -> Close:
    """On a fresh raw connection: open channel 1, send ``setup`` (expecting
    ``setup_replies`` ok methods) then ``action``; the broker must close
    *channel 1* (not the connection). Returns its channel.close, after checking
    that the connection still works (close-ok, then a declare on channel 2)."""
    c = RawConnection.open(client_properties=client_properties)
    try:
        c.open_channel(1)
        if setup:
            c.send(setup)
            for _ in range(setup_replies):
                f = c.next_method()
                assert f.method not in (CHANNEL_CLOSE, CONNECTION_CLOSE), Close.parse(f)
        c.send(action)
        f = c.next_method()
        if f.is_(CONNECTION_CLOSE):
            pytest.fail(f"connection closed instead of the channel: {Close.parse(f)}")
        assert f.is_(CHANNEL_CLOSE) and f.channel == 1, f"expected channel.close, got {f}"
        close = Close.parse(f)
        c.send(method_frame(1, CHANNEL_CLOSE_OK))
        c.open_channel(2)
        c.send(queue_declare(2, "", exclusive=True))
        c.expect(QUEUE_DECLARE_OK)
        return close
    finally:
        c.close()


# -- item 2: an empty queue name needs a queue declared earlier on the channel ---

EMPTY_NAME_OPS = {
    "basic.get": (basic_get(1, ""), (60, 70)),
    "basic.consume": (basic_consume(1, ""), (60, 20)),
    "queue.bind": (queue_bind(1, "", "amq.direct", "k"), (50, 20)),
    "queue.unbind": (queue_unbind(1, "", "amq.direct", "k"), (50, 50)),
    "queue.purge": (queue_purge(1, ""), (50, 30)),
    "queue.delete": (queue_delete(1, ""), (50, 40)),
}


@pytest.mark.parametrize("op", list(EMPTY_NAME_OPS))
def test_empty_queue_name_without_declared_queue_closes_channel(op):
    action, (class_id, method_id) = EMPTY_NAME_OPS[op]
    assert raw_channel_error(action) == Close(NOT_FOUND, NO_PREVIOUS, class_id, method_id)


def test_empty_queue_name_declare_on_another_channel_does_not_count():
    """The shortcut is per channel: a queue declared on channel 2 does not
    give channel 1 a "previously declared queue"."""
    c = RawConnection.open()
    try:
        c.open_channel(1)
        c.open_channel(2)
        c.send(queue_declare(2, "", exclusive=True))
        c.expect(QUEUE_DECLARE_OK)
        c.send(basic_get(1, ""))
        f = c.next_method()
        assert f.channel == 1 and f.is_(CHANNEL_CLOSE), f
        assert Close.parse(f) == Close(NOT_FOUND, NO_PREVIOUS, 60, 70)
    finally:
        c.close()


def test_empty_queue_name_with_pika_keeps_connection(conn):
    ops = {
        "get": lambda ch: ch.basic_get(""),
        "consume": lambda ch: ch.basic_consume("", lambda *a: None),
        "bind": lambda ch: ch.queue_bind("", "amq.direct", "k"),
        "unbind": lambda ch: ch.queue_unbind("", "amq.direct", "k"),
        "purge": lambda ch: ch.queue_purge(""),
        "delete": lambda ch: ch.queue_delete(""),
    }
    for name, op in ops.items():
        ch = conn.channel()
        with pytest.raises(ChannelClosed) as e:
            op(ch)
        assert (e.value.reply_code, e.value.reply_text) == (NOT_FOUND, NO_PREVIOUS), name
    assert conn.is_open
    assert conn.channel().queue_declare("", exclusive=True).method.queue


def test_passive_declare_of_empty_name_is_not_found(conn):
    """queue.declare(passive, "") never uses the last declared queue."""
    text = f"NOT_FOUND - no queue '' in vhost '{vhost()}'"
    ch = conn.channel()
    with pytest.raises(ChannelClosed) as e:
        ch.queue_declare("", passive=True)
    assert (e.value.reply_code, e.value.reply_text) == (NOT_FOUND, text)
    ch = conn.channel()
    ch.queue_declare("", exclusive=True)
    with pytest.raises(ChannelClosed) as e:
        ch.queue_declare("", passive=True)
    assert (e.value.reply_code, e.value.reply_text) == (NOT_FOUND, text)
    assert raw_channel_error(queue_declare(1, "", passive=True)) == \
        Close(NOT_FOUND, text, 50, 10)


def test_empty_queue_name_after_declare_uses_it(conn):
    """Control: after a declare on the channel, "" means that queue."""
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"m")
    method, _props, body = ch.basic_get("", auto_ack=True)
    assert body == b"m" and method.message_count == 0
    assert ch.queue_purge("").method.message_count == 0
    assert ch.queue_delete("").method.message_count == 0
    with pytest.raises(ChannelClosed) as e:
        conn.channel().queue_declare(q, passive=True)
    assert e.value.reply_code == NOT_FOUND


# -- item 3: channel_max limits the number of open channels, not their ids -------

CHANNEL_MAX_TEXT = ("NOT_ALLOWED - number of channels opened (3) has reached the "
                    "negotiated channel_max (3)")


def test_channel_id_above_channel_max_is_accepted():
    c = RawConnection.open()
    try:
        assert c.channel_max < 65535
        for ch in (c.channel_max, c.channel_max + 1, 65535):
            c.open_channel(ch)
        c.send(queue_declare(65535, "", exclusive=True))
        f = c.expect(QUEUE_DECLARE_OK)
        assert f.channel == 65535
    finally:
        c.close()


def test_channel_65535_with_pika(conn):
    ch = conn.channel(channel_number=65535)
    assert ch.channel_number == 65535
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"hi")
    assert drain(ch, q) == [b"hi"]


def test_more_channels_than_channel_max_closes_connection():
    c = RawConnection.open(channel_max=3)
    try:
        for ch in (10, 20, 30):  # ids above channel_max are fine
            c.open_channel(ch)
        c.send(method_frame(40, CHANNEL_OPEN, shortstr("")))
        f = c.next_method()
        assert f.channel == 0 and f.is_(CONNECTION_CLOSE), f
        assert Close.parse(f) == Close(NOT_ALLOWED, CHANNEL_MAX_TEXT, 0, 0)
        c.send(method_frame(0, CONNECTION_CLOSE_OK))
    finally:
        c.close()


def test_closing_a_channel_frees_a_slot():
    c = RawConnection.open(channel_max=3)
    try:
        for ch in (1, 2, 3):
            c.open_channel(ch)
        c.send(method_frame(2, CHANNEL_CLOSE, b"\x00\xc8" + shortstr("bye") + b"\x00" * 4))
        f = c.expect(CHANNEL_CLOSE_OK)
        assert f.channel == 2
        c.open_channel(4)
        c.send(method_frame(5, CHANNEL_OPEN, shortstr("")))
        f = c.next_method()
        assert f.is_(CONNECTION_CLOSE), f
        assert Close.parse(f) == Close(NOT_ALLOWED, CHANNEL_MAX_TEXT, 0, 0)
    finally:
        c.close()


def test_more_channels_than_channel_max_with_pika():
    p = params()
    p.channel_max = 3
    conn = pika.BlockingConnection(p)
    try:
        for _ in range(3):
            conn.channel()
        with pytest.raises(ConnectionClosed) as e:
            conn.channel(channel_number=4)
        assert (e.value.reply_code, e.value.reply_text) == (NOT_ALLOWED, CHANNEL_MAX_TEXT)
    finally:
        if conn.is_open:
            conn.close()


# -- item 4: the default exchange cannot be declared, deleted or bound ------------

def _default_exchange_cases():
    q = unique("dx")
    setup = queue_declare(1, q, exclusive=True)
    return {
        "exchange.declare passive": (exchange_declare(1, "", passive=True), b"", (40, 10)),
        "exchange.declare": (exchange_declare(1, "", "direct"), b"", (40, 10)),
        "exchange.declare fanout": (exchange_declare(1, "", "fanout"), b"", (40, 10)),
        "exchange.delete": (exchange_delete(1, ""), b"", (40, 20)),
        "exchange.bind destination": (exchange_bind(1, "", "amq.direct", "k"), b"", (40, 30)),
        "exchange.bind source": (exchange_bind(1, "amq.direct", "", "k"), b"", (40, 30)),
        "exchange.unbind destination": (exchange_unbind(1, "", "amq.direct", "k"), b"",
                                        (40, 40)),
        "exchange.unbind source": (exchange_unbind(1, "amq.direct", "", "k"), b"", (40, 40)),
        "queue.bind": (queue_bind(1, q, "", q), setup, (50, 20)),
        "queue.unbind": (queue_unbind(1, q, "", q), setup, (50, 50)),
        "queue.bind missing queue": (queue_bind(1, unique("missing"), "", "k"), b"", (50, 20)),
    }


DEFAULT_EXCHANGE_CASES = _default_exchange_cases()


@pytest.mark.parametrize("case", list(DEFAULT_EXCHANGE_CASES))
def test_default_exchange_operations_are_refused(case):
    action, setup, (class_id, method_id) = DEFAULT_EXCHANGE_CASES[case]
    close = raw_channel_error(action, setup, setup_replies=1 if setup else 0)
    assert close == Close(ACCESS_REFUSED, DEFAULT_X, class_id, method_id)


def test_passive_declare_of_default_exchange_with_pika(conn):
    ch = conn.channel()
    with pytest.raises(ChannelClosed) as e:
        ch.exchange_declare("", passive=True)
    assert (e.value.reply_code, e.value.reply_text) == (ACCESS_REFUSED, DEFAULT_X)
    assert conn.is_open
    # Publishing through the default exchange is of course fine.
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x")
    assert drain(ch, q) == [b"x"]


# -- item 5: unbinding what no longer exists is not an error ----------------------

def test_exchange_unbind_when_destination_or_source_is_gone(ch, names):
    src, dst = names.exchange("ub-src"), names.exchange("ub-dst")
    for x in (src, dst):
        ch.exchange_declare(x, "direct")
    ch.exchange_bind(dst, src, "k")
    ch.exchange_delete(dst)
    ch.exchange_unbind(dst, src, "k")  # destination gone
    ch.exchange_declare(dst, "direct")
    ch.exchange_bind(dst, src, "k")
    ch.exchange_delete(src)
    ch.exchange_unbind(dst, src, "k")  # source gone
    ch.exchange_unbind(unique("nope"), unique("nope"), "k")  # both missing
    ch.exchange_unbind(dst, "amq.direct", "never-bound")  # binding missing
    assert ch.is_open


def test_queue_unbind_when_queue_exchange_or_binding_is_gone(ch, names):
    x = names.exchange("ub-x")
    q = names.queue("ub-q")
    ch.exchange_declare(x, "direct")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    ch.exchange_delete(x)
    ch.queue_unbind(q, x, "k")  # exchange gone
    ch.exchange_declare(x, "direct")
    ch.queue_bind(q, x, "k")
    ch.queue_delete(q)
    ch.queue_unbind(q, x, "k")  # queue gone
    ch.queue_declare(q)
    ch.queue_unbind(q, x, "never-bound")  # binding missing
    ch.queue_unbind(unique("nope"), unique("nope"), "k")  # both missing
    assert ch.is_open


def test_bind_to_missing_exchange_or_queue_is_still_not_found(ch, names):
    """Control: binding (unlike unbinding) needs both ends."""
    q = names.queue("b-q")
    ch.queue_declare(q)
    missing = unique("nope")
    with pytest.raises(ChannelClosed) as e:
        ch.queue_bind(q, missing, "k")
    assert (e.value.reply_code, e.value.reply_text) == \
        (NOT_FOUND, f"NOT_FOUND - no exchange '{missing}' in vhost '{vhost()}'")


# -- item 6: queue.delete-ok before basic.cancel ----------------------------------

@pytest.mark.parametrize("kind", ["plain", "exclusive", "auto_delete"])
def test_delete_queue_with_consumer_on_same_channel_frame_order(kind):
    c = RawConnection.open(client_properties=CANCEL_NOTIFY)
    q = unique("del-order")
    try:
        c.open_channel(1)
        c.send(queue_declare(1, q, exclusive=kind == "exclusive",
                             auto_delete=kind == "auto_delete"))
        c.expect(QUEUE_DECLARE_OK)
        c.send(basic_consume(1, q, "ctag-del"))
        c.expect((60, 21))
        c.send(queue_delete(1, q))
        first, second = c.next_method(), c.next_method()
        assert (first.channel, first.method) == (1, (50, 41)), \
            f"expected queue.delete-ok first, got {first.method}"
        assert (second.channel, second.method) == (1, (60, 30)), \
            f"expected basic.cancel second, got {second.method}"
        assert second.args[1:1 + second.args[0]] == b"ctag-del"
    finally:
        c.close()


def _py_amqp_connection():
    u = urlparse(AMQP_URL)
    path = u.path[1:] if len(u.path) > 1 else "/"
    from urllib.parse import unquote
    c = amqp.Connection(host=f"{u.hostname or '127.0.0.1'}:{u.port or 5672}",
                        userid=unquote(u.username or "guest"),
                        password=unquote(u.password or "guest"),
                        virtual_host=unquote(path), connect_timeout=5)
    c.connect()
    return c


@pytest.mark.parametrize("exclusive", [False, True])
def test_delete_queue_with_consumer_py_amqp(names, exclusive):
    """py-amqp raises ConsumerCancelled from queue_delete itself if the cancel
    arrives before delete-ok; with RabbitMQ's order it returns normally and
    the cancel surfaces on the next drain_events."""
    c = _py_amqp_connection()
    try:
        ch = c.channel()
        q = names.queue("pyamqp-del")
        ch.queue_declare(q, exclusive=exclusive, auto_delete=False)
        ch.basic_publish(amqp.Message(b"x"), routing_key=q)
        tag = ch.basic_consume(q, callback=lambda m: None)
        assert ch.queue_delete(q) >= 0
        with pytest.raises(amqp.exceptions.ConsumerCancelled):
            c.drain_events(timeout=WAIT_TIMEOUT)
        assert ch.is_open
        assert tag
    finally:
        c.close()


def test_delete_queue_with_consumer_pika(conn, names):
    ch = conn.channel()
    events = []
    ch.add_on_cancel_callback(lambda frame: events.append(("cancel", frame.method.consumer_tag)))
    q = names.queue("pika-del")
    ch.queue_declare(q)
    tag = ch.basic_consume(q, lambda *a: None)
    events.append(("delete-ok", ch.queue_delete(q).method.message_count))
    deadline = time.monotonic() + WAIT_TIMEOUT
    while len(events) < 2 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert events == [("delete-ok", 0), ("cancel", tag)]
    assert ch.is_open


# -- item 8: queue "" and routing key "" mean the last declared queue -------------

def test_bind_with_empty_queue_and_key_uses_last_queue_name(ch, names):
    x = names.exchange("shortcut")
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind("", x, "")
    ch.confirm_delivery()
    ch.basic_publish(x, q, b"by-name")
    ch.basic_publish(x, "", b"by-empty-key")
    assert drain(ch, q) == [b"by-name"]
    ch.queue_unbind("", x, "")
    ch.basic_publish(x, q, b"after-unbind")
    assert drain(ch, q) == []


def test_bind_shortcut_only_when_both_are_empty(ch, names):
    x = names.exchange("shortcut")
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind("", x, "k1")  # queue "" -> last queue, key kept
    ch.queue_bind(q, x, "")  # named queue: key "" is a real "" key
    ch.confirm_delivery()
    ch.basic_publish(x, "k1", b"k1")
    ch.basic_publish(x, "", b"empty")
    ch.basic_publish(x, q, b"by-name")
    assert drain(ch, q) == [b"k1", b"empty"]


# -- item 9 and survey: direct reply-to pseudo-queues -----------------------------

def _broker_product(conn) -> str:
    p = conn._impl.server_properties.get("product", "")
    return p.decode() if isinstance(p, bytes) else str(p)


def _list_queue_names(conn):
    product = _broker_product(conn)
    if product == "Warren":
        here = os.path.dirname(os.path.abspath(__file__))
        warren = os.environ.get("WARREN_BIN",
                                os.path.join(here, "..", "..", "target", "debug", "warren"))
        if not os.path.exists(warren):
            pytest.skip(f"warren binary not found at {warren}")
        r = subprocess.run([warren, "ctl", "--amqp-url", AMQP_URL, "list-queues",
                            "--vhost", vhost()], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        import json
        return [q["name"] for q in json.loads(r.stdout)["queues"]]
    host = urlparse(AMQP_URL).hostname
    if shutil.which("rabbitmqctl") is None or host not in ("127.0.0.1", "localhost"):
        pytest.skip("needs warren ctl or a local rabbitmqctl")
    r = subprocess.run(["rabbitmqctl", "list_queues", "-q", "-p", vhost(), "name"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [line.strip() for line in r.stdout.splitlines()[1:] if line.strip()]


class ReplyClient:
    """A requester consuming from amq.rabbitmq.reply-to; ``reply_to`` is the
    name the broker gave its replies (read back from a request)."""

    def __init__(self, conn, names):
        self.conn = conn
        self.ch = conn.channel()
        self.replies = []
        self.ch.basic_consume(REPLY_TO, lambda c, m, p, b: self.replies.append(b),
                              auto_ack=True)
        server_q = names.queue("rt-server")
        self.ch.queue_declare(server_q)
        self.ch.basic_publish("", server_q, b"req", pika.BasicProperties(reply_to=REPLY_TO))
        deadline = time.monotonic() + WAIT_TIMEOUT
        while True:
            _m, props, _b = self.ch.basic_get(server_q, auto_ack=True)
            if props is not None:
                self.reply_to = props.reply_to
                break
            assert time.monotonic() < deadline, "request never arrived"
            time.sleep(0.01)
        assert self.reply_to.startswith(REPLY_TO + ".")

    def wait_reply(self, timeout=WAIT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not self.replies and time.monotonic() < deadline:
            self.conn.process_data_events(time_limit=0.05)
        return self.replies


def test_list_queues_does_not_show_reply_to_queues(connections, names):
    client = ReplyClient(connections(), names)
    listed = _list_queue_names(client.conn)
    assert [n for n in listed if n.startswith(REPLY_TO)] == []


def test_declare_of_reply_to_is_passive(conn):
    """Any queue.declare of amq.rabbitmq.reply-to (passive or not) answers
    declare-ok with 0 messages and 1 consumer (rabbit_channel: "all declares
    to these are effectively passive")."""
    for passive in (False, True):
        ok = conn.channel().queue_declare(REPLY_TO, passive=passive).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (REPLY_TO, 0, 1)


def test_reply_to_name_declared_from_another_connection(connections, names):
    client = ReplyClient(connections(), names)
    other = connections()
    for passive in (False, True):
        ok = other.channel().queue_declare(client.reply_to, passive=passive).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (client.reply_to, 0, 1)
    bogus = client.reply_to[:-4] + ("AAAA" if not client.reply_to.endswith("AAAA") else "BBBB")
    with pytest.raises(ChannelClosed) as e:
        other.channel().queue_declare(bogus)
    assert (e.value.reply_code, e.value.reply_text) == \
        (NOT_FOUND, f"NOT_FOUND - no queue '{bogus}' in vhost '{vhost()}'")


@pytest.mark.parametrize("op", ["get", "consume", "bind", "purge"])
def test_reply_to_queue_is_not_a_queue_for_other_connections(connections, names, op):
    """Nobody else can read, bind, purge or consume a requester's replies: for
    them the reply-to name is no queue at all."""
    client = ReplyClient(connections(), names)
    ch = connections().channel()
    ops = {
        "get": lambda: ch.basic_get(client.reply_to),
        "consume": lambda: ch.basic_consume(client.reply_to, lambda *a: None),
        "bind": lambda: ch.queue_bind(client.reply_to, "amq.direct", "k"),
        "purge": lambda: ch.queue_purge(client.reply_to),
    }
    with pytest.raises(ChannelClosed) as e:
        ops[op]()
    assert (e.value.reply_code, e.value.reply_text) == \
        (NOT_FOUND, f"NOT_FOUND - no queue '{client.reply_to}' in vhost '{vhost()}'")


def test_reply_to_queue_survives_delete_from_another_connection(connections, names):
    client = ReplyClient(connections(), names)
    other = connections().channel()
    other.queue_delete(client.reply_to)  # delete-ok, as for any missing queue
    other.basic_publish("", client.reply_to, b"reply")
    assert client.wait_reply() == [b"reply"]


# -- survey: exact texts ----------------------------------------------------------

def test_delete_of_system_exchange_text(conn):
    with pytest.raises(ChannelClosed) as e:
        conn.channel().exchange_delete("amq.direct")
    assert (e.value.reply_code, e.value.reply_text) == (
        ACCESS_REFUSED,
        f"ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '{vhost()}' "
        f"not allowed")
    assert conn.is_open


# -- survey: redeclare equivalence ------------------------------------------------

def _inequivalent(kind, name, arg, received, current):
    return (f"PRECONDITION_FAILED - inequivalent arg '{arg}' for {kind} '{name}' in vhost "
            f"'{vhost()}': received {received} but current is {current}")


def test_queue_redeclare_ignores_arguments_rabbitmq_does_not_know(conn, names):
    """Only the queue type's own x- arguments must be equivalent; others (and
    an explicit x-queue-type=classic) do not matter on a redeclare."""
    q = names.queue("args")
    conn.channel().queue_declare(q, arguments={"x-foo": "bar", "x-message-ttl": 1000})
    conn.channel().queue_declare(q, arguments={"x-foo": "baz", "x-message-ttl": 1000})
    conn.channel().queue_declare(q, arguments={"x-message-ttl": 1000, "x-other": 1})
    conn.channel().queue_declare(q, arguments={"x-message-ttl": 1000,
                                               "x-queue-type": "classic"})
    q2 = names.queue("args")
    conn.channel().queue_declare(q2, arguments={"x-queue-type": "classic"})
    conn.channel().queue_declare(q2)


def test_queue_redeclare_inequivalent_argument_texts(conn, names):
    q = names.queue("args")
    conn.channel().queue_declare(q, arguments={"x-message-ttl": 1000,
                                               "x-dead-letter-exchange": "dlx"})
    cases = [
        ({"x-message-ttl": 2000, "x-dead-letter-exchange": "dlx"},
         ("x-message-ttl", "'2000'", "'1000'")),
        ({"x-dead-letter-exchange": "dlx"},
         ("x-message-ttl", "none", "the value '1000' of type 'signedint'")),
        ({"x-message-ttl": 1000, "x-dead-letter-exchange": "dlx2"},
         ("x-dead-letter-exchange", "'dlx2'", "'dlx'")),
        ({"x-message-ttl": 1000, "x-dead-letter-exchange": "dlx", "x-max-length": 5},
         ("x-max-length", "the value '5' of type 'signedint'", "none")),
    ]
    for args, (arg, received, current) in cases:
        with pytest.raises(ChannelClosed) as e:
            conn.channel().queue_declare(q, arguments=args)
        assert (e.value.reply_code, e.value.reply_text) == \
            (406, _inequivalent("queue", q, arg, received, current))


def test_redeclare_non_exclusive_queue_as_exclusive_is_locked(conn, names):
    q = names.queue("not-exclusive")
    conn.channel().queue_declare(q)
    with pytest.raises(ChannelClosed) as e:
        conn.channel().queue_declare(q, exclusive=True)
    assert (e.value.reply_code, e.value.reply_text) == (
        405,
        f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost "
        f"'{vhost()}'. It could be originally declared on another connection or the "
        f"exclusive property value does not match that of the original declaration.")


def test_exchange_redeclare_compares_only_alternate_exchange(conn, names):
    x = names.exchange("args")
    conn.channel().exchange_declare(x, "direct", arguments={"x-foo": "bar"})
    conn.channel().exchange_declare(x, "direct", arguments={"x-foo": "baz", "x-n": 1})
    conn.channel().exchange_declare(x, "direct")
    with pytest.raises(ChannelClosed) as e:
        conn.channel().exchange_declare(x, "direct", arguments={"alternate-exchange": "ae1"})
    assert (e.value.reply_code, e.value.reply_text) == (406, _inequivalent(
        "exchange", x, "alternate-exchange", "the value 'ae1' of type 'longstr'", "none"))

    y = names.exchange("args")
    conn.channel().exchange_declare(y, "direct", arguments={"alternate-exchange": "ae1"})
    conn.channel().exchange_declare(y, "direct", arguments={"alternate-exchange": "ae1",
                                                            "x-n": 1})
    with pytest.raises(ChannelClosed) as e:
        conn.channel().exchange_declare(y, "direct", arguments={"alternate-exchange": "ae2"})
    assert (e.value.reply_code, e.value.reply_text) == \
        (406, _inequivalent("exchange", y, "alternate-exchange", "'ae2'", "'ae1'"))
    with pytest.raises(ChannelClosed) as e:
        conn.channel().exchange_declare(y, "direct")
    assert (e.value.reply_code, e.value.reply_text) == (406, _inequivalent(
        "exchange", y, "alternate-exchange", "none", "the value 'ae1' of type 'longstr'"))


# -- survey: basic.ack(multiple) needs the tag itself to be outstanding ------------

@pytest.mark.parametrize("case", ["beyond", "already-acked"])
def test_ack_multiple_with_unknown_tag_closes_channel(conn, case):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(3)]
    assert tags == [1, 2, 3]
    if case == "beyond":
        bad, ready = 100, 3
    else:
        ch.basic_ack(2)
        bad, ready = 2, 2
    with pytest.raises(ChannelClosed) as e:
        ch.basic_ack(bad, multiple=True)
        ch.queue_declare(q, passive=True)  # surfaces the asynchronous close
    assert (e.value.reply_code, e.value.reply_text) == \
        (406, f"PRECONDITION_FAILED - unknown delivery tag {bad}")
    # Nothing was acked by the bad ack: the unacked messages are back.
    deadline = time.monotonic() + WAIT_TIMEOUT
    while True:
        n = conn.channel().queue_declare(q, passive=True).method.message_count
        if n == ready or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert n == ready


def test_reply_consumer_can_be_started_again_after_cancel(conn, names):
    """Cancelling the amq.rabbitmq.reply-to consumer lets the channel start a
    new one (RabbitMQ forgets the channel's reply consumer on cancel); replies
    then reach the new consumer."""
    ch = conn.channel()
    tag = ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    ch.basic_cancel(tag)
    replies = []
    ch.basic_consume(REPLY_TO, lambda c, m, p, b: replies.append(b), auto_ack=True)
    server_q = names.queue("rt-again")
    ch.queue_declare(server_q)
    ch.basic_publish("", server_q, b"req", pika.BasicProperties(reply_to=REPLY_TO))
    deadline = time.monotonic() + WAIT_TIMEOUT
    while True:
        _m, props, _b = ch.basic_get(server_q, auto_ack=True)
        if props is not None:
            break
        assert time.monotonic() < deadline, "request never arrived"
        time.sleep(0.01)
    ch.basic_publish("", props.reply_to, b"answer")
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not replies and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert replies == [b"answer"]
