"""Puts jobs on a priority work queue over STOMP (seed 004's "PollQueue", with
the broker doing the sorting): single jobs with a `priority` header, one batch
in a transaction that is committed (all jobs appear at once) and one that is
aborted (none appear).

    STOMP_PORT=61613 python3 producer.py
"""
import os

import stomp

QUEUE = "/queue/jobs"
# Declares the queue as a priority queue (same headers as the worker's SUBSCRIBE).
QUEUE_ARGS = {"x-max-priority": "10", "persistent": "true"}


def connect():
    conn = stomp.Connection12([("127.0.0.1", int(os.environ.get("STOMP_PORT", "61613")))],
                              vhost="/")
    conn.connect("guest", "guest", wait=True)
    return conn


def main():
    conn = connect()
    for body, priority in [("resize video", 1), ("send email", 5), ("flaky job", 7),
                           ("charge card", 9)]:
        conn.send(QUEUE, body, headers={**QUEUE_ARGS, "priority": str(priority)})
        print(f"sent {body!r} (priority {priority})")

    tx = conn.begin()
    for i in (1, 2, 3):
        conn.send(QUEUE, f"batch A {i}", headers={**QUEUE_ARGS, "priority": "3"}, transaction=tx)
    conn.commit(tx)
    print("sent batch A (priority 3) in a transaction: COMMIT")

    tx = conn.begin()
    for i in (1, 2):
        conn.send(QUEUE, f"batch B {i}", headers={**QUEUE_ARGS, "priority": "8"}, transaction=tx)
    conn.abort(tx)
    print("sent batch B (priority 8) in a transaction: ABORT")
    conn.disconnect(receipt="bye")  # waits for the broker's RECEIPT: all frames handled


if __name__ == "__main__":
    main()
