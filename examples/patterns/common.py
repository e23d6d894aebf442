"""What every pattern script shares: a connection per role, roles in threads."""
import os
import threading

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
HTTP_API = f"http://127.0.0.1:{os.environ.get('HTTP_PORT', '15672')}/api"


def channel():
    """A new connection with one channel: one per thread (pika is not thread-safe)."""
    return pika.BlockingConnection(pika.URLParameters(AMQP_URL)).channel()


def serve(queue, handler, prefetch=1):
    """Consume QUEUE in a background thread: handler(ch, method, props, body), then ack."""
    ready = threading.Event()

    def run():
        ch = channel()
        ch.basic_qos(prefetch_count=prefetch)

        def on_message(ch, method, props, body):
            handler(ch, method, props, body)
            ch.basic_ack(method.delivery_tag)
        ch.basic_consume(queue, on_message)
        ready.set()
        ch.start_consuming()
    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)


def take(ch, queue, count, timeout=5):
    """The next COUNT messages of QUEUE as (method, props, body), acked."""
    got = []
    for method, props, body in ch.consume(queue, inactivity_timeout=timeout):
        if method is None:
            raise SystemExit(f"timed out: {len(got)} of {count} messages from {queue}")
        ch.basic_ack(method.delivery_tag)
        got.append((method, props, body))
        if len(got) == count:
            break
    ch.cancel()
    return got
