"""A tailable topic over STOMP (seed 004's capped collection read with a
tailable cursor, done by the broker): a stream queue keeps every event in an
append-only log; each reader picks where to start with `x-stream-offset`
(`first`, `last`, `next`, or an offset) and then tails it, woken by new events
with no polling. Reading removes nothing, so any number of readers can follow.

    STOMP_PORT=61613 python3 tail.py publish "event 1" "event 2"
    STOMP_PORT=61613 python3 tail.py follow --offset first --count 2
"""
import argparse
import queue

import stomp

from producer import connect

STREAM = "/queue/events"
# Declares the queue as a stream (a stream is always durable).
STREAM_ARGS = {"x-queue-type": "stream", "durable": "true", "auto-delete": "false"}


class Inbox(stomp.ConnectionListener):
    def __init__(self):
        self.frames = queue.Queue()

    def on_message(self, frame):
        self.frames.put(frame)


def publish(events):
    conn = connect()
    for body in events:
        conn.send(STREAM, body, headers=STREAM_ARGS, receipt=body)
    conn.disconnect()


def follow(offset, count, ready):
    conn = connect()
    inbox = Inbox()
    conn.set_listener("", inbox)
    # A stream consumer needs manual acks and a prefetch: acks only give credit.
    conn.subscribe(STREAM, id="tail", ack="client",
                   headers={**STREAM_ARGS, "prefetch-count": "10", "x-stream-offset": offset},
                   receipt="subscribed")
    if ready:
        print("following", flush=True)
    for _ in range(count):
        frame = inbox.frames.get(timeout=30)
        print(f"offset {frame.headers['x-stream-offset']}: {frame.body}", flush=True)
        conn.ack(frame.headers["ack"])
    conn.disconnect()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    pub = sub.add_parser("publish")
    pub.add_argument("events", nargs="+")
    fol = sub.add_parser("follow")
    fol.add_argument("--offset", default="next", help="first, last, next or a number")
    fol.add_argument("--count", type=int, default=1, help="stop after this many events")
    fol.add_argument("--ready", action="store_true", help="say when subscribed")
    args = p.parse_args()
    if args.cmd == "publish":
        publish(args.events)
    else:
        follow(args.offset, args.count, args.ready)


if __name__ == "__main__":
    main()
