"""Wire tap: inspect a point-to-point channel without touching it. The
firehose (tracing, switched on through the HTTP API) copies every publish and
every delivery of the vhost to `amq.rabbitmq.trace`; a tap queue bound there
sees the `payments` traffic while the payments consumer gets it as before."""
import requests

from common import HTTP_API, channel, take

AUTH = ("guest", "guest")
requests.put(f"{HTTP_API}/vhosts/%2F", json={"tracing": True}, auth=AUTH).raise_for_status()
try:
    ch = channel()
    tap = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(tap, "amq.rabbitmq.trace", "#")
    ch.queue_declare("payments")
    ch.queue_purge("payments")
    for amount in (10, 25):
        ch.basic_publish("", "payments", f"pay {amount} EUR".encode())
    got = [body.decode() for _, _, body in take(ch, "payments", 2)]
    print(f"payments consumer got: {got}")
    for method, props, body in take(ch, tap, 4):
        h = props.headers
        print(f"  tap {method.routing_key:18} exchange={h['exchange_name']!r} "
              f"keys={h['routing_keys']} body={body.decode()!r}")
finally:
    requests.put(f"{HTTP_API}/vhosts/%2F", json={"tracing": False}, auth=AUTH)
