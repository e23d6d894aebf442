"""Scenario 5: per-user feed - one fanout exchange feeding 1000 short-lived queues.

The queues are spread over a few connections (declared in parallel threads)
so the test stays fast: RabbitMQ needs a few ms to create each queue.
"""

import threading

import pika
import pika.exceptions
import pytest

from helpers import NO_ROUTE, connect, queue_exists, unique, wait_until

# 1000 queues, each declared, bound and consumed: a few thousand round trips,
# which a loaded machine can stretch to many seconds.  The limits below only
# catch a hang.
pytestmark = pytest.mark.timeout(120)

N_QUEUES = 1000
N_OWNERS = 4
PER_OWNER = N_QUEUES // N_OWNERS


def wait_all_gone(conn, queues, message):
    remaining = list(queues)

    def check():
        remaining[:] = [q for q in remaining if queue_exists(conn, q)]
        return not remaining
    wait_until(check, message=message)


def exchange_has_no_bindings(conn, exchange):
    """A mandatory publish comes back NO_ROUTE iff no queue is bound any more."""
    ch = conn.channel()
    ch.confirm_delivery()
    try:
        ch.basic_publish(exchange, "", b"probe", mandatory=True)
    except pika.exceptions.UnroutableError as e:
        assert e.messages[0].method.reply_code == NO_ROUTE
        return True
    finally:
        ch.close()
    return False


class FeedOwner(threading.Thread):
    """One user's connection owning PER_OWNER queues bound to the feed."""

    def __init__(self, exchange, mode, declared: threading.Barrier, prefix):
        super().__init__(daemon=True)
        self.exchange, self.mode, self.declared, self.prefix = exchange, mode, declared, prefix
        self.queues, self.received, self.error = [], {}, None
        self.cancelled = []

    def run(self):
        conn = None
        try:
            conn = connect()
            ch = conn.channel()
            tags = {}
            for i in range(PER_OWNER):
                if self.mode == "auto_delete":
                    q = ch.queue_declare(f"{self.prefix}.{i}", auto_delete=True).method.queue
                else:  # server-named exclusive queue
                    q = ch.queue_declare("", exclusive=True).method.queue
                    assert q.startswith("amq.gen-")
                ch.queue_bind(q, self.exchange)
                self.queues.append(q)
                if self.mode == "auto_delete":
                    tags[ch.basic_consume(q, self._on_message, auto_ack=True)] = q
            self.declared.wait()  # main thread publishes now
            self.declared.wait()  # ... and has been confirmed

            if self.mode == "auto_delete":
                wait_until(lambda: sum(map(len, self.received.values())) >= PER_OWNER,
                           conn=conn, message="feed deliveries")
                assert {tags[t] for t in self.received} == set(self.queues)
                # Cancelling the only consumer deletes an auto-delete queue.
                for tag in list(tags)[: PER_OWNER // 2]:
                    ch.basic_cancel(tag)
                    self.cancelled.append(tags[tag])
                wait_all_gone(conn, self.cancelled, "cancelled auto-delete queues deleted")
                for q in self.queues[PER_OWNER // 2:][:5]:
                    assert queue_exists(conn, q), "still-consumed queue must survive"
            else:
                for q in self.queues:
                    method, _props, body = ch.basic_get(q, auto_ack=True)
                    assert method is not None, f"{q} got nothing"
                    assert method.message_count == 0, "exactly one copy"
                    self.received[q] = [(method.routing_key, body)]
        except BaseException as e:
            self.error = e
            self.declared.abort()
        finally:
            if conn is not None and conn.is_open:
                conn.close()

    def _on_message(self, _ch, method, _props, body):
        self.received.setdefault(method.consumer_tag, []).append((method.routing_key, body))


@pytest.mark.parametrize("mode", ["auto_delete", "exclusive"])
def test_feed_fanout_to_1000_queues(conn, names, mode):
    exchange = names.exchange("user-feed")
    conn.channel().exchange_declare(exchange, "fanout")
    prefix = unique("feed")
    barrier = threading.Barrier(N_OWNERS + 1, timeout=60)
    owners = [FeedOwner(exchange, mode, barrier, f"{prefix}.{k}") for k in range(N_OWNERS)]
    for o in owners:
        if mode == "auto_delete":  # named queues: clean up even if the test fails
            names.queues.extend(f"{o.prefix}.{i}" for i in range(PER_OWNER))
        o.start()
    try:
        barrier.wait()
        pub = conn.channel()
        pub.confirm_delivery()
        pub.basic_publish(exchange, "user.42", b"new post", mandatory=True)
        barrier.wait()
    except threading.BrokenBarrierError:
        pass  # an owner failed; its own error is reported below
    except BaseException:
        barrier.abort()
        raise
    finally:
        for o in owners:
            o.join(60)
    errors = [repr(o.error) for o in owners if o.error is not None]
    assert not errors, errors
    for o in owners:
        assert len(o.received) == PER_OWNER
        assert all(v == [("user.42", b"new post")] for v in o.received.values())

    all_queues = [q for o in owners for q in o.queues]
    assert len(set(all_queues)) == N_QUEUES
    # Owners' connections are closed: every queue is gone, and so are its
    # bindings, so the exchange routes nowhere.
    wait_until(lambda: exchange_has_no_bindings(conn, exchange), message="feed bindings removed")
    wait_all_gone(conn, all_queues[::20], "feed queues deleted")
