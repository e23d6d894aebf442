"""Request/reply: the client names a return address (`reply_to`) and a
correlation id; the server answers there through the default exchange. First
with a private reply queue, then with direct reply-to (`amq.rabbitmq.reply-to`,
no queue at all)."""
import uuid

import pika

from common import channel, serve


def resize(ch, method, props, body):
    w, h = map(int, body.split(b"x"))
    reply = f"{w // 2}x{h // 2}".encode()
    ch.basic_publish("", props.reply_to, reply,
                     pika.BasicProperties(correlation_id=props.correlation_id))


ch = channel()
ch.queue_declare("rpc.resize")
serve("rpc.resize", resize)


replies = {}  # correlation id -> reply


def on_reply(ch, method, props, reply):
    replies[props.correlation_id] = reply.decode()


def call(reply_to, body):
    """Ask and wait for the reply with our correlation id (others are skipped)."""
    corr = uuid.uuid4().hex
    ch.basic_publish("", "rpc.resize", body,
                     pika.BasicProperties(reply_to=reply_to, correlation_id=corr))
    for _ in range(50):
        ch.connection.process_data_events(time_limit=0.1)
        if corr in replies:
            return replies.pop(corr)
    raise SystemExit("no reply")


reply_queue = ch.queue_declare("", exclusive=True).method.queue
ch.basic_consume(reply_queue, on_reply, auto_ack=True)
for size in (b"640x480", b"1920x1080"):
    print(f"reply queue {reply_queue[:12]}...: resize {size.decode()} -> {call(reply_queue, size)}")
# Direct reply-to: consume the pseudo-queue (before publishing), no queue declared.
ch.basic_consume("amq.rabbitmq.reply-to", on_reply, auto_ack=True)
print(f"direct reply-to: resize 800x600 -> {call('amq.rabbitmq.reply-to', b'800x600')}")
assert call("amq.rabbitmq.reply-to", b"100x50") == "50x25"
