"""Takes jobs from the priority queue one at a time (prefetch-count 1,
ack:client-individual): ACK when done, NACK when a job fails, which puts it
back on the queue for another try (`redelivered:true`).

    STOMP_PORT=61613 python3 worker.py [--idle SECONDS]
"""
import argparse
import queue

import stomp

from producer import QUEUE, QUEUE_ARGS, connect


class Inbox(stomp.ConnectionListener):
    """stomp.py calls on_message on its own thread; hand frames to the main one."""

    def __init__(self):
        self.frames = queue.Queue()

    def on_message(self, frame):
        self.frames.put(frame)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--idle", type=float, default=None, help="stop after this long idle")
    args = p.parse_args()
    conn = connect()
    inbox = Inbox()
    conn.set_listener("", inbox)
    conn.subscribe(QUEUE, id="worker", ack="client-individual",
                   headers={**QUEUE_ARGS, "prefetch-count": "1"})
    while True:
        try:
            frame = inbox.frames.get(timeout=args.idle)
        except queue.Empty:
            break
        job, again = frame.body, frame.headers.get("redelivered") == "true"
        if job.startswith("flaky") and not again:
            print(f"failed {job!r} (priority {frame.headers.get('priority')}): NACK", flush=True)
            conn.nack(frame.headers["ack"])
            continue
        print(f"done   {job!r} (priority {frame.headers.get('priority')})"
              f"{' on the second try' if again else ''}", flush=True)
        conn.ack(frame.headers["ack"])
    conn.disconnect()


if __name__ == "__main__":
    main()
