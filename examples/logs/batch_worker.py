"""A batch worker: takes video jobs from `video-desc-queue` one at a time
(prefetch 1, ack after the work) and writes video-ID.xml into OUT_DIR.
Start as many as you like; they share the queue.

    python3 batch_worker.py OUT_DIR [--idle SECONDS]
"""
import argparse
import json
import os
import pathlib
import time
from xml.sax.saxutils import escape

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out_dir", type=pathlib.Path)
    p.add_argument("--idle", type=float, default=None, help="stop after this long idle")
    args = p.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    ch.exchange_declare("video-desc-ex", "direct", durable=True)
    ch.queue_declare("video-desc-queue", durable=True)
    ch.queue_bind("video-desc-queue", "video-desc-ex")
    ch.basic_qos(prefetch_count=1)
    me = f"worker-{os.getpid()}"
    for method, _props, body in ch.consume("video-desc-queue", inactivity_timeout=args.idle):
        if method is None:
            break
        video = json.loads(body)
        time.sleep(0.02)  # the "heavy" part
        xml = (f'<video id="{video["id"]}" seconds="{video["seconds"]}" by="{me}">'
               f"<title>{escape(video['title'])}</title></video>\n")
        (args.out_dir / f"video-{video['id']}.xml").write_text(xml)
        ch.basic_ack(method.delivery_tag)
        print(f"{me}: video {video['id']}", flush=True)
    conn.close()


if __name__ == "__main__":
    main()
