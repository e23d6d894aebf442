"""Control bus: the thumbnailer service takes commands (stop, start, stats) on
the `control` exchange, separate from its work. The operator watches the
broker's event exchange (`amq.rabbitmq.event`) to see the service's consumer go
and come back, and reads the queue's state from the management HTTP API."""
import pika
import requests

from common import HTTP_API, channel, serve, take

ch = channel()
ch.confirm_delivery()  # a publish returns once the broker has it
ch.exchange_declare("control", "topic", durable=True)
for q in ("thumbnails", "control.thumbnailer"):
    ch.queue_declare(q)
    ch.queue_purge(q)
ch.queue_bind("control.thumbnailer", "control", "thumbnailer.*")
events = ch.queue_declare("", exclusive=True).method.queue
ch.queue_bind(events, "amq.rabbitmq.event", "consumer.*")

done = []
work = {"tag": None}


def thumbnail(svc, method, props, body):
    done.append(body.decode())
    svc.basic_ack(method.delivery_tag)


def command(svc, method, props, body):
    cmd = method.routing_key.split(".")[1]
    if cmd == "stop":
        svc.basic_cancel(work.pop("tag"))
    elif cmd == "start":
        work["tag"] = svc.basic_consume("thumbnails", thumbnail)
    elif cmd == "stats":
        svc.basic_publish("", props.reply_to, f"{len(done)} thumbnails made".encode())


serve("control.thumbnailer", command)


def send(cmd, **props):
    ch.basic_publish("control", f"thumbnailer.{cmd}", b"", pika.BasicProperties(**props))
    print(f"control: {cmd}")


def event(key):
    """Wait for the event KEY about the thumbnails queue (skipping the others)."""
    for method, props, _ in ch.consume(events, auto_ack=True, inactivity_timeout=5):
        assert method, f"no {key} event"
        if props.headers.get("queue") == "thumbnails":
            print(f"  event {method.routing_key}: queue=thumbnails")
            assert method.routing_key == key
            break
    ch.cancel()


def api_queue():
    q = requests.get(f"{HTTP_API}/queues/%2F/thumbnails", auth=("guest", "guest")).json()
    print(f"  HTTP API: thumbnails has {q['consumers']} consumer(s), {q['messages_ready']} ready")
    return q


reply = ch.queue_declare("", exclusive=True).method.queue
send("start")
event("consumer.created")
send("stop")
event("consumer.deleted")
for i in range(3):
    ch.basic_publish("", "thumbnails", f"img{i}".encode())
q = api_queue()
assert (q["consumers"], q["messages_ready"]) == (0, 3)
send("start")
event("consumer.created")
while len(done) < 3:
    ch.connection.sleep(0.05)
send("stats", reply_to=reply)
(_, _, body), = take(ch, reply, 1)
print(f"  reply: {body.decode()}")
assert body == b"3 thumbnails made"
