"""Smart proxy: clients send requests to `proxy`; the proxy remembers each
request's return address, sends it on to the service with its own address as
`reply_to`, and routes the reply back to the original client, timing each call."""
import time

import pika

from common import channel, serve, take

pending = {}  # correlation id -> (client's reply_to, start time)


def service(svc, method, props, body):
    svc.basic_publish("", props.reply_to, body.upper(),
                      pika.BasicProperties(correlation_id=props.correlation_id))


def proxy_request(px, method, props, body):
    pending[props.correlation_id] = (props.reply_to, time.monotonic())
    px.basic_publish("", "service", body, pika.BasicProperties(
        reply_to="proxy.replies", correlation_id=props.correlation_id))


def proxy_reply(px, method, props, body):
    reply_to, start = pending.pop(props.correlation_id)
    print(f"  proxy: {props.correlation_id} answered in {(time.monotonic() - start) * 1000:.1f} ms")
    px.basic_publish("", reply_to, body, pika.BasicProperties(correlation_id=props.correlation_id))


ch = channel()
for q in ("service", "proxy", "proxy.replies"):
    ch.queue_declare(q)
serve("service", service)
serve("proxy", proxy_request)
serve("proxy.replies", proxy_reply)

mine = ch.queue_declare("", exclusive=True).method.queue
for i, text in enumerate(["hello", "smart", "proxy"]):
    ch.basic_publish("", "proxy", text.encode(),
                     pika.BasicProperties(reply_to=mine, correlation_id=f"req-{i}"))
for method, props, body in take(ch, mine, 3):
    print(f"client got {props.correlation_id}: {body.decode()}")
