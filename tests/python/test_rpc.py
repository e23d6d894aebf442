"""Scenario 4: request/reply (RPC) with exclusive server-named reply queues."""

import threading
import uuid

import pika
import pika.exceptions

from helpers import NOT_FOUND, connect, vhost, wait_until


def rpc_server(consumers, rpc_queue, label, delay=0.0):
    def handle(ch, method, props, body):
        n = int(body)
        ch.basic_publish("", props.reply_to, str(n * n).encode(),
                         properties=pika.BasicProperties(correlation_id=props.correlation_id))
    return consumers(rpc_queue, prefetch=1, delay=delay, handler=handle, label=label)


class RpcClient:
    def __init__(self):
        self.conn = connect()
        self.ch = self.conn.channel()
        ok = self.ch.queue_declare("", exclusive=True)
        self.reply_queue = ok.method.queue
        self.replies = {}
        self.ch.basic_consume(self.reply_queue, self._on_reply, auto_ack=True)

    def _on_reply(self, ch, method, props, body):
        assert props.correlation_id not in self.replies, "duplicate reply"
        self.replies[props.correlation_id] = body

    def call_many(self, rpc_queue, numbers):
        pending = {}
        for n in numbers:
            corr = str(uuid.uuid4())
            pending[corr] = n
            self.ch.basic_publish("", rpc_queue, str(n).encode(), properties=pika.BasicProperties(
                reply_to=self.reply_queue, correlation_id=corr))
        wait_until(lambda: len(self.replies) >= len(pending), conn=self.conn,
                   message="all RPC replies")
        return pending


def test_rpc_concurrent_clients_get_matched_replies(conn, names, consumers):
    rpc_queue = names.queue("rpc_queue")
    conn.channel().queue_declare(rpc_queue)
    # Two competing servers, one slower, so replies arrive out of order.
    servers = [rpc_server(consumers, rpc_queue, "srv-fast").start_and_wait(),
               rpc_server(consumers, rpc_queue, "srv-slow", delay=0.01).start_and_wait()]
    results, errors = {}, []

    def client_thread(idx):
        client = None
        try:
            client = RpcClient()
            assert client.reply_queue.startswith("amq.gen-")
            pending = client.call_many(rpc_queue, range(idx * 100, idx * 100 + 10))
            results[idx] = (client.reply_queue, pending, dict(client.replies))
        except BaseException as e:
            errors.append(e)
        finally:
            if client is not None and client.conn.is_open:
                client.conn.close()

    threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
    finally:
        for s in servers:
            s.stop()
    assert not errors, errors
    assert len(results) == 3
    reply_queues = {r[0] for r in results.values()}
    assert len(reply_queues) == 3, "server-named queues are unique"
    for reply_queue, pending, replies in results.values():
        assert set(replies) == set(pending)
        for corr, n in pending.items():
            assert replies[corr] == str(n * n).encode()
    assert sum(s.count for s in servers) == 30

    # Exclusive reply queues vanish with their owning connection.
    for reply_queue in reply_queues:
        assert_queue_gone(conn, reply_queue)


def assert_queue_gone(conn, name):
    def gone():
        ch = conn.channel()
        try:
            ch.queue_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.args[0] == NOT_FOUND
            assert e.args[1] == f"NOT_FOUND - no queue '{name}' in vhost '{vhost()}'"
            return True
        ch.close()
        return False
    wait_until(gone, message=f"queue {name} deleted")


def test_server_named_reply_queue_properties(conn, connections):
    client = connections()
    ch = client.channel()
    ok = ch.queue_declare("", exclusive=True)
    name = ok.method.queue
    assert name.startswith("amq.gen-")
    assert ok.method.message_count == 0 and ok.method.consumer_count == 0
    # The owner can passive-declare it.
    assert ch.queue_declare(name, passive=True).method.queue == name
    # Two server-named declares give two different queues.
    assert ch.queue_declare("", exclusive=True).method.queue != name
    client.close()
    assert_queue_gone(conn, name)


def test_exclusive_reply_queue_survives_channel_close(conn, connections):
    """Exclusive queues belong to the *connection*: closing only the declaring
    channel keeps them alive."""
    client = connections()
    ch = client.channel()
    name = ch.queue_declare("", exclusive=True).method.queue
    ch.close()
    assert client.channel().queue_declare(name, passive=True).method.queue == name
    client.close()
    assert_queue_gone(conn, name)


def test_auto_delete_reply_queue_deleted_when_consumer_cancels(conn, connections):
    client = connections()
    ch = client.channel()
    name = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
    tag = ch.basic_consume(name, lambda *a: None, auto_ack=True)
    ch.basic_cancel(tag)
    assert_queue_gone(conn, name)
