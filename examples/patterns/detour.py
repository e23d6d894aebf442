"""Detour: orders go from the `orders` exchange straight to shipping; a switch,
flipped over the control bus, routes them through a validation step first.
The switch is just bindings: `orders` -> queue `ship`, or `orders` -> queue
`validate`, whose worker stamps each order and passes it on to `ship`."""
import pika

from common import channel, serve, take

ch = channel()
ch.confirm_delivery()
ch.exchange_declare("orders", "fanout", durable=True)
ch.exchange_declare("control", "topic", durable=True)
for q in ("ship", "validate", "control.detour"):
    ch.queue_declare(q)
    ch.queue_purge(q)
ch.queue_bind("ship", "orders")
ch.queue_unbind("validate", "orders")
ch.queue_bind("control.detour", "control", "detour.*")


def switch(sw, method, props, body):
    """The router, controlled over the control bus: detour.on / detour.off."""
    on = method.routing_key == "detour.on"
    sw.queue_bind("validate" if on else "ship", "orders")
    sw.queue_unbind("ship" if on else "validate", "orders")
    sw.basic_publish("", props.reply_to, b"ok")


def validate(v, method, props, body):
    v.basic_publish("", "ship", body, pika.BasicProperties(headers={"validated-by": "detour"}))


serve("control.detour", switch)
serve("validate", validate)
reply = ch.queue_declare("", exclusive=True).method.queue


def order(n):
    ch.basic_publish("orders", "", f"order-{n}".encode())
    (_, props, body), = take(ch, "ship", 1)
    how = "validated" if (props.headers or {}).get("validated-by") else "direct"
    print(f"  {body.decode()} shipped ({how})")
    return how


def control(cmd):
    ch.basic_publish("control", f"detour.{cmd}", b"", pika.BasicProperties(reply_to=reply))
    take(ch, reply, 1)
    print(f"control: detour {cmd}")


assert order(1) == "direct"
control("on")
assert order(2) == order(3) == "validated"
control("off")
assert order(4) == "direct"
