"""Scenario 6e: kombu (py-amqp transport, as used by Celery) against the broker."""

import kombu

from helpers import AMQP_URL


def test_kombu_simple_queue_round_trip(names):
    name = names.queue("kombu-simple")
    names.track_exchange(name)  # SimpleQueue declares a direct exchange of the same name
    with kombu.Connection(AMQP_URL, connect_timeout=5) as conn:
        q = conn.SimpleQueue(name)
        try:
            q.put({"hello": "world", "n": [1, 2, 3]}, headers={"h": "v"})
            q.put("second")
            msg = q.get(block=True, timeout=5)
            assert msg.payload == {"hello": "world", "n": [1, 2, 3]}
            assert msg.content_type == "application/json"
            assert msg.headers == {"h": "v"}
            msg.ack()
            msg = q.get(block=True, timeout=5)
            assert msg.payload == "second"
            msg.ack()
            assert q.qsize() == 0
        finally:
            q.close()


def test_kombu_producer_consumer(names):
    exchange_name = names.exchange("kombu-x")
    queue_name = names.queue("kombu-q")
    exchange = kombu.Exchange(exchange_name, type="topic", durable=False, auto_delete=False)
    queue = kombu.Queue(queue_name, exchange, routing_key="tasks.#", durable=False)
    received = []
    with kombu.Connection(AMQP_URL, connect_timeout=5) as conn:
        with conn.Producer() as producer:
            producer.publish({"task": "resize"}, exchange=exchange, routing_key="tasks.images",
                             declare=[queue], serializer="json", delivery_mode=2)
        with conn.Consumer(queue, callbacks=[lambda body, m: (received.append(body), m.ack())]):
            conn.drain_events(timeout=5)
    assert received == [{"task": "resize"}]
