"""Competing consumers: three resize workers share one queue (prefetch 1, ack
after the work); each job is done once, by whichever worker is free."""
import collections
import threading
import time

import pika

from common import channel, serve

done = collections.defaultdict(list)
finished = threading.Semaphore(0)


def worker(name):
    def handle(ch, method, props, body):
        time.sleep(0.05)  # resizing...
        done[name].append(body.decode())
        finished.release()
    return handle


ch = channel()
ch.queue_declare("resize-jobs", durable=True)
ch.queue_purge("resize-jobs")
for name in ("worker-1", "worker-2", "worker-3"):
    serve("resize-jobs", worker(name))
for i in range(1, 10):
    ch.basic_publish("", "resize-jobs", f"img{i}".encode(),
                     properties=pika.BasicProperties(delivery_mode=2))
for _ in range(9):
    assert finished.acquire(timeout=10), "a job was not done"
for name in sorted(done):
    print(f"{name} resized {', '.join(done[name])}")
assert sorted(sum(done.values(), [])) == sorted(f"img{i}" for i in range(1, 10))
assert len(done) == 3, "every worker should have had work"
