"""Publish/subscribe: the upload handler publishes one `new_image` event to a
fanout exchange; the resizer, the friends notifier and the points manager each
get a copy in their own queue. Adding a fourth needs no change to the publisher."""
import json

from common import channel, take

ch = channel()
ch.exchange_declare("new_image", "fanout", durable=True)
subscribers = ("resize", "notify-friends", "add-points")
for q in subscribers:
    ch.queue_declare(q, durable=True)
    ch.queue_purge(q)
    ch.queue_bind(q, "new_image")

for image in ("cat.jpg", "beach.png"):
    event = {"user": "alice", "image": image}
    ch.basic_publish("new_image", "", json.dumps(event).encode())
    print(f"published new_image {event}")

for q in subscribers:
    images = [json.loads(body)["image"] for _, _, body in take(ch, q, 2)]
    print(f"{q:>14} got {', '.join(images)}")
    assert images == ["cat.jpg", "beach.png"]
