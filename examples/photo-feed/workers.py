"""The photo feed's workers. Start as many resizers as you like (competing
consumers on `resize`, prefetch 1, ack after the work: a job whose worker dies
goes to another one).

    python3 workers.py resize         # Pillow: a 200 px thumbnail per upload
    python3 workers.py add-to-user    # records the picture, tells the followers
"""
import json
import os
import sys
import time

from PIL import Image

from common import DATA, channel, publish

SLOW = float(os.environ.get("RESIZE_SECONDS", "0"))  # pretend resizing takes a while


def resize(ch, method, props, body):
    event = json.loads(body)
    print(f"resizing {event['id']}{' (redelivered)' if method.redelivered else ''}", flush=True)
    time.sleep(SLOW)
    thumb = DATA / "thumbs" / f"{event['id']}.jpg"
    thumb.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(DATA / "originals" / f"{event['id']}.jpg") as img:
        img.thumbnail((200, 200))
        img.convert("RGB").save(thumb, "JPEG", quality=85)
    publish(ch, "image_resized", "", {**event, "thumb": f"/thumbs/{event['id']}.jpg"})
    ch.basic_ack(method.delivery_tag)
    print(f"resized {event['id']}", flush=True)


def add_to_user(ch, method, props, body):
    event = json.loads(body)
    record = DATA / "users" / f"{event['user']}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    images = json.loads(record.read_text()) if record.exists() else []
    if all(i["id"] != event["id"] for i in images):  # a redelivered job adds nothing twice
        images.append(event)
        record.write_text(json.dumps(images))
        publish(ch, "photos", event["user"], event)  # to the followers' browsers
    ch.basic_ack(method.delivery_tag)
    print(f"added {event['id']} to {event['user']}", flush=True)


def main():
    role = sys.argv[1]
    ch = channel()
    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(role.replace("-", "_"), {"resize": resize, "add-to-user": add_to_user}[role])
    print(f"{role} worker {os.getpid()} ready", flush=True)
    ch.start_consuming()


if __name__ == "__main__":
    main()
