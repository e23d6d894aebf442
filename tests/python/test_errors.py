"""Scenario 6b: channel-level errors, with reply codes/texts exactly as RabbitMQ sends them."""

import pika.exceptions
import pytest

from helpers import (ACCESS_REFUSED, NOT_FOUND, PRECONDITION_FAILED, RESOURCE_LOCKED,
                     unique, vhost)

ChannelClosed = pika.exceptions.ChannelClosedByBroker


def closed_with(excinfo, code, text=None, prefix=None):
    assert excinfo.value.args[0] == code
    assert excinfo.value.reply_code == code
    if text is not None:
        assert excinfo.value.args[1] == text
    if prefix is not None:
        assert excinfo.value.args[1].startswith(prefix), excinfo.value.args[1]


def test_redeclare_queue_with_different_durable(conn, names):
    q = names.queue("durable")
    conn.channel().queue_declare(q, durable=True)
    with pytest.raises(ChannelClosed) as e:
        conn.channel().queue_declare(q, durable=False)
    closed_with(e, PRECONDITION_FAILED,
                f"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost "
                f"'{vhost()}': received 'false' but current is 'true'")
    # Other inequivalent properties/arguments are refused the same way.
    with pytest.raises(ChannelClosed) as e:
        conn.channel().queue_declare(q, durable=True, auto_delete=True)
    closed_with(e, PRECONDITION_FAILED, prefix="PRECONDITION_FAILED - inequivalent arg 'auto_delete'")
    with pytest.raises(ChannelClosed) as e:
        conn.channel().queue_declare(q, durable=True, arguments={"x-message-ttl": 1000})
    closed_with(e, PRECONDITION_FAILED, prefix="PRECONDITION_FAILED - inequivalent arg 'x-message-ttl'")
    # The original queue is untouched and an identical redeclare is fine.
    assert conn.channel().queue_declare(q, durable=True).method.queue == q


def test_redeclare_exchange_with_different_type(conn, names):
    x = names.exchange("typed")
    conn.channel().exchange_declare(x, "direct")
    with pytest.raises(ChannelClosed) as e:
        conn.channel().exchange_declare(x, "fanout")
    closed_with(e, PRECONDITION_FAILED,
                f"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' in vhost "
                f"'{vhost()}': received 'fanout' but current is 'direct'")
    with pytest.raises(ChannelClosed) as e:
        conn.channel().exchange_declare(x, "direct", durable=True)
    closed_with(e, PRECONDITION_FAILED, prefix="PRECONDITION_FAILED - inequivalent arg 'durable'")


def test_reserved_amq_prefix_is_refused(conn):
    name = unique("amq.mine")
    with pytest.raises(ChannelClosed) as e:
        conn.channel().queue_declare(name)
    closed_with(e, ACCESS_REFUSED,
                f"ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'")
    with pytest.raises(ChannelClosed) as e:
        conn.channel().exchange_declare(name, "direct")
    closed_with(e, ACCESS_REFUSED,
                f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'")
    # Declaring the predefined exchanges with matching properties is allowed.
    ch = conn.channel()
    ch.exchange_declare("amq.direct", "direct", durable=True)
    ch.exchange_declare("amq.topic", passive=True)


@pytest.mark.parametrize("operation", ["consume", "passive_declare", "declare", "get",
                                        "purge", "delete", "bind"])
def test_exclusive_queue_locked_from_other_connection(conn, connections, names, operation):
    owner = connections()
    q = names.queue("exclusive")
    owner.channel().queue_declare(q, exclusive=True)
    ch = conn.channel()
    ops = {
        "consume": lambda: ch.basic_consume(q, lambda *a: None),
        "passive_declare": lambda: ch.queue_declare(q, passive=True),
        "declare": lambda: ch.queue_declare(q, exclusive=True),
        "get": lambda: ch.basic_get(q),
        "purge": lambda: ch.queue_purge(q),
        "delete": lambda: ch.queue_delete(q),
        "bind": lambda: ch.queue_bind(q, "amq.fanout"),
    }
    with pytest.raises(ChannelClosed) as e:
        ops[operation]()
    closed_with(e, RESOURCE_LOCKED,
                prefix=f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue "
                       f"'{q}' in vhost '{vhost()}'")
    # The owner still has full access.
    assert owner.channel().queue_declare(q, passive=True).method.queue == q


def test_publishing_to_another_connections_exclusive_queue_is_allowed(conn, connections, names):
    owner = connections()
    q = names.queue("exclusive")
    och = owner.channel()
    och.queue_declare(q, exclusive=True)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", q, b"hi", mandatory=True)
    assert och.basic_get(q, auto_ack=True)[2] == b"hi"


def test_redeclare_own_exclusive_queue_as_non_exclusive_is_locked(conn, names):
    q = names.queue("exclusive")
    conn.channel().queue_declare(q, exclusive=True)
    with pytest.raises(ChannelClosed) as e:
        conn.channel().queue_declare(q, exclusive=False)
    closed_with(e, RESOURCE_LOCKED, prefix="RESOURCE_LOCKED - cannot obtain exclusive access")


def test_publish_to_missing_exchange_closes_channel_not_connection(conn, names):
    missing = unique("no-such-exchange")
    ch = conn.channel()
    ch.basic_publish(missing, "rk", b"x")  # async: error arrives as Channel.Close
    with pytest.raises(ChannelClosed) as e:
        ch.queue_declare("", exclusive=True)  # next sync call surfaces it
    closed_with(e, NOT_FOUND, f"NOT_FOUND - no exchange '{missing}' in vhost '{vhost()}'")
    assert ch.is_closed
    assert conn.is_open
    # The connection is still usable: new channel, full round trip.
    ch2 = conn.channel()
    q = names.queue("after-error")
    ch2.queue_declare(q)
    ch2.confirm_delivery()
    ch2.basic_publish("", q, b"still works")
    assert ch2.basic_get(q, auto_ack=True)[2] == b"still works"


def test_missing_queue_and_exchange_errors(conn):
    missing = unique("missing")
    cases = [
        (lambda ch: ch.queue_declare(missing, passive=True),
         f"NOT_FOUND - no queue '{missing}' in vhost '{vhost()}'"),
        (lambda ch: ch.exchange_declare(missing, passive=True),
         f"NOT_FOUND - no exchange '{missing}' in vhost '{vhost()}'"),
        (lambda ch: ch.basic_get(missing),
         f"NOT_FOUND - no queue '{missing}' in vhost '{vhost()}'"),
        (lambda ch: ch.basic_consume(missing, lambda *a: None),
         f"NOT_FOUND - no queue '{missing}' in vhost '{vhost()}'"),
        (lambda ch: ch.queue_bind(missing, "amq.direct"),
         f"NOT_FOUND - no queue '{missing}' in vhost '{vhost()}'"),
        (lambda ch: ch.queue_purge(missing),
         f"NOT_FOUND - no queue '{missing}' in vhost '{vhost()}'"),
    ]
    for op, text in cases:
        with pytest.raises(ChannelClosed) as e:
            op(conn.channel())
        closed_with(e, NOT_FOUND, text)
    assert conn.is_open


def test_bind_queue_to_missing_exchange(conn, names):
    q = names.queue("orphan")
    conn.channel().queue_declare(q)
    missing = unique("missing-x")
    with pytest.raises(ChannelClosed) as e:
        conn.channel().queue_bind(q, missing)
    closed_with(e, NOT_FOUND, f"NOT_FOUND - no exchange '{missing}' in vhost '{vhost()}'")
