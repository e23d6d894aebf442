"""The photo feed's topology, shared by the web app and the workers.

upload --new_image (fanout)--> queue resize --(resizer)--> image_resized (fanout)
  --> queue add_to_user --(recorder)--> photos (topic, key = uploader)
  --> each follower's browser (Web-STOMP subscription /exchange/photos/<user>)
"""
import json
import os
import pathlib

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
DATA = pathlib.Path(os.environ.get("DATA_DIR", "data"))


def channel():
    ch = pika.BlockingConnection(pika.URLParameters(AMQP_URL)).channel()
    ch.exchange_declare("new_image", "fanout", durable=True)
    ch.exchange_declare("image_resized", "fanout", durable=True)
    ch.exchange_declare("photos", "topic", durable=True)
    ch.queue_declare("resize", durable=True)
    ch.queue_bind("resize", "new_image")
    ch.queue_declare("add_to_user", durable=True)
    ch.queue_bind("add_to_user", "image_resized")
    return ch


def publish(ch, exchange, key, event):
    ch.basic_publish(exchange, key, json.dumps(event).encode(), pika.BasicProperties(
        content_type="application/json", delivery_mode=2))
