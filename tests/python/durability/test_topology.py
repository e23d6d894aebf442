"""Which definitions and messages survive a restart: durable exchanges,
queues and bindings do; transient and exclusive ones don't; only persistent
messages in durable queues come back.  Checked for SIGKILL and for graceful
SIGTERM / SIGINT shutdowns."""

import signal

import pika
import pika.exceptions
import pytest

from warren_harness import (PERSISTENT, TRANSIENT, drain, exchange_exists,
                            passive_queue)

X_DURABLE = "topo.x.durable"        # topic, durable
X_TRANSIENT = "topo.x.transient"    # topic, not durable
Q_DURABLE = "topo.q.durable"        # bound to X_DURABLE with "orders.#"
Q_TRANSIENT = "topo.q.transient"    # not durable, bound to X_DURABLE too
Q_EXCLUSIVE = "topo.q.exclusive"    # durable *and* exclusive: still goes
Q_AUTODEL = "topo.q.autodelete"     # durable, auto-delete, never consumed
Q_VIA_TRANSIENT_X = "topo.q.via-transient-x"  # durable queue bound to X_TRANSIENT


def _setup(conn):
    ch = conn.channel()
    ch.exchange_declare(X_DURABLE, "topic", durable=True)
    ch.exchange_declare(X_TRANSIENT, "topic", durable=False)
    ch.queue_declare(Q_DURABLE, durable=True)
    ch.queue_declare(Q_TRANSIENT, durable=False)
    ch.queue_declare(Q_EXCLUSIVE, durable=True, exclusive=True)
    ch.queue_declare(Q_AUTODEL, durable=True, auto_delete=True)
    ch.queue_declare(Q_VIA_TRANSIENT_X, durable=True)
    ch.queue_bind(Q_DURABLE, X_DURABLE, "orders.#")
    ch.queue_bind(Q_TRANSIENT, X_DURABLE, "orders.#")
    ch.queue_bind(Q_EXCLUSIVE, X_DURABLE, "orders.#")
    ch.queue_bind(Q_VIA_TRANSIENT_X, X_TRANSIENT, "#")

    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish(X_DURABLE, "orders.new", f"persistent-{i}".encode(), PERSISTENT)
        ch.basic_publish(X_DURABLE, "orders.new", f"transient-{i}".encode(), TRANSIENT)
    # Default delivery mode (no delivery_mode property) is transient.
    ch.basic_publish(X_DURABLE, "orders.new", b"no-delivery-mode", pika.BasicProperties())
    ch.basic_publish("", Q_AUTODEL, b"autodel-persistent", PERSISTENT)
    ch.basic_publish("", Q_AUTODEL, b"autodel-transient", TRANSIENT)
    ch.basic_publish(X_TRANSIENT, "a", b"via-transient-x", PERSISTENT)
    return ch


RESTARTS = {
    "sigkill": None,
    "sigterm": signal.SIGTERM,
    "sigint": signal.SIGINT,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", list(RESTARTS))
def test_definitions_and_messages_after_restart(broker, how):
    """Declare durable/transient/exclusive/auto-delete entities and publish
    persistent and transient messages; restart (SIGKILL, or graceful SIGTERM /
    SIGINT with connections still open).  Then: the durable exchange and queues
    exist (passive declare ok) and the durable binding still routes; the
    transient exchange, transient queue and exclusive queue are gone (404);
    queues hold only their persistent messages, in order; the durable
    auto-delete queue kept its auto-delete property.  A graceful stop must exit
    with status 0 within 15 s."""
    owner = broker.connect()     # owns the exclusive queue; stays open
    _setup(owner)
    other = broker.connect()
    assert passive_queue(other, Q_EXCLUSIVE) == -1, "exclusive queue should be locked (405)"
    assert passive_queue(other, Q_DURABLE) == 7
    other.close()

    sig = RESTARTS[how]
    rc = None
    if sig is None:
        broker.kill()
    else:
        rc = broker.stop(sig)
    broker.start()

    conn = broker.connect()
    assert exchange_exists(conn, X_DURABLE), "durable exchange lost"
    assert not exchange_exists(conn, X_TRANSIENT), "transient exchange survived"
    assert passive_queue(conn, Q_TRANSIENT) is None, "transient queue survived"
    assert passive_queue(conn, Q_EXCLUSIVE) is None, "exclusive queue survived"
    assert passive_queue(conn, Q_AUTODEL) is not None, "durable auto-delete queue lost"
    assert passive_queue(conn, Q_VIA_TRANSIENT_X) is not None, "durable queue lost"
    assert passive_queue(conn, Q_DURABLE) is not None, "durable queue lost"

    got = drain(conn, Q_DURABLE)
    assert [g.body for g in got] == [b"persistent-0", b"persistent-1", b"persistent-2"]
    assert all(g.properties.delivery_mode == 2 for g in got)
    # basic_get, not a consumer: cancelling a consumer would delete this queue.
    ch = conn.channel()
    method, _props, body = ch.basic_get(Q_AUTODEL, auto_ack=True)
    assert body == b"autodel-persistent"
    method, _props, body = ch.basic_get(Q_AUTODEL, auto_ack=True)
    assert method is None, f"transient message survived in {Q_AUTODEL}: {body!r}"
    assert [g.body for g in drain(conn, Q_VIA_TRANSIENT_X)] == [b"via-transient-x"]

    # The durable binding still routes, and only what it matches.
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish(X_DURABLE, "orders.after.restart", b"routed", PERSISTENT, mandatory=True)
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(X_DURABLE, "invoices.new", b"unroutable", PERSISTENT, mandatory=True)
    assert [g.body for g in drain(conn, Q_DURABLE)] == [b"routed"]

    # Still auto-delete: goes away when its first consumer cancels.
    ch = conn.channel()
    tag = ch.basic_consume(Q_AUTODEL, lambda *a: None)
    ch.basic_cancel(tag)
    assert passive_queue(conn, Q_AUTODEL) is None, "auto-delete lost after restart"

    # The names of the vanished entities are free to be redeclared.
    ch = conn.channel()
    ch.queue_declare(Q_EXCLUSIVE, durable=True, exclusive=True)
    ch.exchange_declare(X_TRANSIENT, "fanout", durable=False)
    conn.close()

    if sig is not None:
        assert rc == 0, f"graceful stop with {signal.Signals(sig).name}: exit status {rc} (None = hung)"
