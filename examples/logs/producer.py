"""Web servers' log lines onto the `logs` topic exchange (seed 002).

Routing key: SERVER.MODULE.ACTION.LEVEL, e.g. server1.user.profile.info.
Consumers pick what they want with binding patterns (`server1.#`, `#.error`).

    python3 producer.py                # 18 lines: 2 servers x 3 actions x 3 levels
    python3 producer.py server2.cart.checkout.error "payment refused"
"""
import itertools
import os
import sys

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")


def main():
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    ch.exchange_declare("logs", "topic", durable=True)
    if len(sys.argv) == 3:
        lines = [(sys.argv[1], sys.argv[2])]
    else:
        servers = ["server1", "server2"]
        actions = ["user.profile", "user.login", "cart.checkout"]
        levels = ["info", "warning", "error"]
        lines = [(f"{s}.{a}.{lv}", f"{lv} from {a.replace('.', '/')} on {s}")
                 for s, a, lv in itertools.product(servers, actions, levels)]
    for key, text in lines:
        ch.basic_publish("logs", key, text.encode(),
                         pika.BasicProperties(content_type="text/plain"))
        print(f"sent {key}: {text}")
    conn.close()


if __name__ == "__main__":
    main()
