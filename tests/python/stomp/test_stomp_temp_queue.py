"""reply-to: /temp-queue/NAME — private reply queues for request/response."""

import threading

import pika

from helpers import AMQP_URL
from stomp_helpers import close, connect, unique


def test_stomp_request_stomp_reply(version, names):
    q = names.track_queue(unique("svc"))
    server, cs = connect(version)
    client, cc = connect(version)
    try:
        server.subscribe(f"/queue/{q}", "svc", receipt="s")
        cs.wait_receipt("s")
        client.send(f"/queue/{q}", "ping", headers={"reply-to": "/temp-queue/replies"})
        [req] = cs.wait_messages(1)
        reply_to = req.headers["reply-to"]
        assert reply_to.startswith("/reply-queue/amq.gen-")
        server.send(reply_to, "pong")
        [resp] = cc.wait_messages(1)
        assert resp.body == "pong"
        # Delivered through the implicit subscription to the temp queue.
        assert resp.headers["subscription"] == "/temp-queue/replies"
        # The same temp queue is reused by later requests.
        client.send(f"/queue/{q}", "ping2", headers={"reply-to": "/temp-queue/replies"})
        req2 = cs.wait_messages(2)[1]
        assert req2.headers["reply-to"] == reply_to
    finally:
        close(server)
        close(client)


def test_amqp_server_answers_a_stomp_request(names):
    q = names.track_queue(unique("amqp-svc"))
    amqp = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = amqp.channel()
    ch.queue_declare(q, durable=True)
    client, cc = connect("1.2")
    try:
        client.send(f"/queue/{q}", "question", headers={"reply-to": "/temp-queue/t1",
                                                          "correlation-id": "42"})
        method, props, body = None, None, None
        for method, props, body in ch.consume(q, auto_ack=True, inactivity_timeout=5):
            break
        assert body == b"question"
        # AMQP sees a plain queue name it can publish to on the default exchange.
        assert props.reply_to.startswith("amq.gen-")
        ch.basic_publish("", props.reply_to, b"answer",
                         pika.BasicProperties(correlation_id=props.correlation_id))
        [resp] = cc.wait_messages(1)
        assert resp.body == "answer"
        assert resp.headers["correlation-id"] == "42"
    finally:
        ch.cancel()
        amqp.close()
        close(client)


def test_temp_queue_goes_with_its_connection(names, ch):
    q = names.track_queue(unique("tq"))
    ch.queue_declare(q, durable=True)
    client, _ = connect("1.2")
    client.send(f"/queue/{q}", "x", headers={"reply-to": "/temp-queue/a"}, receipt="r")
    _.wait_receipt("r")
    _, props, _b = ch.basic_get(q, auto_ack=True)
    reply_queue = props.reply_to
    close(client)
    done = threading.Event()

    def gone():
        c = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            for _ in range(50):
                chan = c.channel()
                try:
                    chan.queue_declare(reply_queue, passive=True)
                except pika.exceptions.ChannelClosedByBroker as e:
                    if e.reply_code == 404:
                        done.set()
                        return
                import time
                time.sleep(0.1)
        finally:
            c.close()
    gone()
    assert done.is_set(), "the temp queue outlived its connection"
