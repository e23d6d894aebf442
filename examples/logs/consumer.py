"""A log listener in Python: a named queue bound to `logs` with a pattern.

    python3 consumer.py server1-logs 'server1.#'

Prints `KEY: TEXT` per line. Stops after --idle seconds without a message
(default: never).
"""
import argparse
import os

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("queue")
    p.add_argument("patterns", nargs="+")
    p.add_argument("--idle", type=float, default=None)
    args = p.parse_args()
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    ch.exchange_declare("logs", "topic", durable=True)
    ch.queue_declare(args.queue, durable=True)
    for pattern in args.patterns:
        ch.queue_bind(args.queue, "logs", pattern)
    print(f"listening on {args.queue} ({' '.join(args.patterns)})", flush=True)
    for method, _props, body in ch.consume(args.queue, inactivity_timeout=args.idle):
        if method is None:  # idle for --idle seconds
            break
        print(f"{method.routing_key}: {body.decode()}", flush=True)
        ch.basic_ack(method.delivery_tag)
    conn.close()


if __name__ == "__main__":
    main()
