"""STOMP SEND receipts mean "stored" (GitHub issue 10): a persistent SEND to a
durable queue is answered with its RECEIPT only once the message is fsynced,
the same guarantee as an AMQP publisher confirm. So every message whose
receipt arrived survives kill -9."""

import threading

import stomp

from warren_harness import drain

N = 500


class Receipts(stomp.ConnectionListener):
    def __init__(self):
        self.ids = set()
        self.errors = []
        self.cond = threading.Condition()

    def on_receipt(self, frame):
        with self.cond:
            self.ids.add(frame.headers["receipt-id"])
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame)
            self.cond.notify_all()


def stomp_connect(broker):
    conn = stomp.Connection12([("127.0.0.1", broker.stomp_port)], vhost="/",
                              auto_content_length=True, reconnect_attempts_max=1)
    listener = Receipts()
    conn.set_listener("receipts", listener)
    conn.connect("guest", "guest", wait=True)
    return conn, listener


def test_persistent_sends_with_receipts_survive_kill_9(broker_factory):
    broker = broker_factory(stomp=True).start()
    conn, r = stomp_connect(broker)
    for i in range(N):
        conn.send("/queue/stomp-durable", f"m{i:04d}", persistent="true", receipt=f"r{i}")
    with r.cond:
        assert r.cond.wait_for(lambda: len(r.ids) == N or r.errors, 60), len(r.ids)
    assert not r.errors, [(e.headers, e.body) for e in r.errors]
    # Receipts in, then the power goes.
    broker.kill()
    broker.start()
    got = drain(broker.connect(), "stomp-durable", expected=N)
    assert [g.body.decode() for g in got] == [f"m{i:04d}" for i in range(N)]
    assert all(g.redelivered for g in got)
    assert all(g.properties.delivery_mode == 2 for g in got)


def test_transient_sends_do_not_survive(broker_factory):
    broker = broker_factory(stomp=True).start()
    conn, r = stomp_connect(broker)
    conn.send("/queue/stomp-transient", "gone", receipt="r")
    conn.send("/queue/stomp-transient", "kept", persistent="true", receipt="p")
    with r.cond:
        assert r.cond.wait_for(lambda: {"r", "p"} <= r.ids, 10)
    broker.kill()
    broker.start()
    got = drain(broker.connect(), "stomp-transient", expected=1)
    assert [g.body for g in got] == [b"kept"]
