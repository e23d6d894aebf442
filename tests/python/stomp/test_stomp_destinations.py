"""SEND and SUBSCRIBE on every destination type, for each STOMP version."""

import pika
import pika.exceptions
import pytest

from helpers import wait_until
from stomp_helpers import subscription_queue, unique


def subscribe_and_wait(conn, c, dest, sub_id, **headers):
    conn.subscribe(dest, sub_id, receipt=f"sub-{sub_id}", **headers)
    c.wait_receipt(f"sub-{sub_id}")


def test_queue_send_receive(stomp_clients, version, names):
    q = names.track_queue(unique("q"))
    conn, c = stomp_clients(version)
    subscribe_and_wait(conn, c, f"/queue/{q}", "s1")
    conn.send(f"/queue/{q}", "hello", receipt="r1")
    c.wait_receipt("r1")
    [m] = c.wait_messages(1)
    assert m.body == "hello"
    assert m.headers["destination"] == f"/queue/{q}"
    assert m.headers["subscription"] == "s1"
    assert m.headers["redelivered"] == "false"
    tag, session, n = m.headers["message-id"].split("@@")
    assert tag == "T_s1" and session.startswith("session-") and int(n) >= 1
    # The 1.2 ack header only appears for client acknowledgement.
    assert "ack" not in m.headers


def test_queue_is_declared_durable_and_shared(stomp_clients, version, names, ch):
    q = names.track_queue(unique("q"))
    a, ca = stomp_clients(version)
    b, cb = stomp_clients(version)
    subscribe_and_wait(a, ca, f"/queue/{q}", "a")
    subscribe_and_wait(b, cb, f"/queue/{q}", "b")
    # The queue exists for AMQP, durable: a passive declare finds it with two
    # consumers, and a non-durable redeclare is refused.
    ok = ch.queue_declare(q, passive=True)
    assert ok.method.consumer_count == 2
    for i in range(10):
        a.send(f"/queue/{q}", str(i))
    # Poll both collectors (waiting on ca's condition alone would not wake up
    # for a message that arrives at cb).
    wait_until(lambda: len(ca.messages) + len(cb.messages) == 10,
               message="10 messages over both subscribers")
    # Round-robin: both subscribers got some.
    assert ca.messages and cb.messages
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(q, durable=False)
    assert e.value.reply_code == 406


def test_subscribe_without_id_in_1_0(stomp_clients, names):
    q = names.track_queue(unique("q"))
    conn, c = stomp_clients("1.0")
    conn.subscribe(f"/queue/{q}", receipt="sub")
    c.wait_receipt("sub")
    conn.send(f"/queue/{q}", "x")
    [m] = c.wait_messages(1)
    # A subscription without id has a destination-based tag and no
    # subscription header.
    assert m.headers["message-id"].startswith(f"Q_/queue/{q}@@")
    assert "subscription" not in m.headers
    conn.unsubscribe(destination=f"/queue/{q}", receipt="unsub")
    c.wait_receipt("unsub")


def test_topic_each_subscription_gets_every_message(stomp_clients, version):
    key = unique("t").replace("-", ".")
    a, ca = stomp_clients(version)
    b, cb = stomp_clients(version)
    subscribe_and_wait(a, ca, f"/topic/{key}", "a")
    subscribe_and_wait(b, cb, f"/topic/{key}", "b")
    a.send(f"/topic/{key}", "news")
    assert ca.wait_messages(1)[0].body == "news"
    assert cb.wait_messages(1)[0].body == "news"
    assert ca.messages[0].headers["destination"] == f"/topic/{key}"


def test_topic_wildcards_and_amqp_publishers(stomp_clients, version, ch):
    base = unique("w").replace("-", "")
    conn, c = stomp_clients(version)
    subscribe_and_wait(conn, c, f"/topic/{base}.*.x", "wild")
    ch.basic_publish("amq.topic", f"{base}.a.x", b"one")
    ch.basic_publish("amq.topic", f"{base}.a.y", b"skip")
    conn.send(f"/topic/{base}.b.x", "two")
    c.wait_messages(2)
    c.no_more_messages(2)
    assert sorted(c.bodies()) == ["one", "two"]


def test_topic_subscription_queue_goes_with_the_subscriber(stomp_clients, ch, names):
    key = unique("t")
    conn, c = stomp_clients("1.2")
    subscribe_and_wait(conn, c, f"/topic/{key}", "s", **{"x-queue-name": names.track_queue(
        unique("named"))})
    qname = names.queues[-1]
    assert ch.queue_declare(qname, passive=True).method.consumer_count == 1
    conn.unsubscribe("s", receipt="u")
    c.wait_receipt("u")
    # auto-delete: gone with its only consumer.
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.connection.channel().queue_declare(qname, passive=True)
    assert e.value.reply_code == 404


def test_exchange_with_routing_key(stomp_clients, version, ch, names):
    x = names.track_exchange(unique("x"))
    ch.exchange_declare(x, "direct")
    conn, c = stomp_clients(version)
    subscribe_and_wait(conn, c, f"/exchange/{x}/k1", "s")
    conn.send(f"/exchange/{x}/k1", "yes")
    conn.send(f"/exchange/{x}/k2", "no")
    ch.basic_publish(x, "k1", b"amqp")
    c.wait_messages(2)
    c.no_more_messages(2)
    assert sorted(c.bodies()) == ["amqp", "yes"]
    assert {m.headers["destination"] for m in c.messages} == {f"/exchange/{x}/k1"}


def test_exchange_without_key_fanout(stomp_clients, ch, names):
    x = names.track_exchange(unique("fx"))
    ch.exchange_declare(x, "fanout")
    conn, c = stomp_clients("1.2")
    subscribe_and_wait(conn, c, f"/exchange/{x}", "s")
    ch.basic_publish(x, "", b"all")
    [m] = c.wait_messages(1)
    assert m.body == "all"
    assert m.headers["destination"] == f"/exchange/{x}"


def test_amq_queue_uses_an_existing_queue(stomp_clients, version, ch, names):
    q = names.track_queue(unique("amq"))
    ch.queue_declare(q, durable=False, arguments={"x-max-length": 100})
    conn, c = stomp_clients(version)
    # Never declared by STOMP: the queue keeps its own properties.
    subscribe_and_wait(conn, c, f"/amq/queue/{q}", "s")
    conn.send(f"/amq/queue/{q}", "via amq")
    assert c.wait_messages(1)[0].body == "via amq"
    assert c.messages[0].headers["destination"] == f"/queue/{q}"


def test_reply_queue_destination(stomp_clients, ch, names):
    q = names.track_queue(unique("rq"))
    ch.queue_declare(q)
    conn, c = stomp_clients("1.2")
    subscribe_and_wait(conn, c, f"/reply-queue/{q}", "s")
    conn.send(f"/reply-queue/{q}", "r")
    assert c.wait_messages(1)[0].body == "r"


def test_escaped_slash_in_names(stomp_clients, ch, names):
    q = names.track_queue(unique("a") + "/b")
    conn, c = stomp_clients("1.2")
    dest = "/queue/" + q.replace("/", "%2F")
    subscribe_and_wait(conn, c, dest, "s")
    conn.send(dest, "slash")
    [m] = c.wait_messages(1)
    assert m.headers["destination"] == dest
    assert ch.queue_declare(q, passive=True).method.consumer_count == 1


def test_durable_topic_subscription_keeps_messages_while_away(version, names, ch):
    from stomp_helpers import close, connect
    key = unique("d").replace("-", ".")
    sub_id = unique("id")
    durable = {"durable": "true", "auto-delete": "false"}
    conn, c = connect(version)
    subscribe_and_wait(conn, c, f"/topic/{key}", sub_id, **durable)
    qname = names.track_queue(subscription_queue(key, sub_id))
    # The queue has RabbitMQ's name and is durable.
    assert ch.queue_declare(qname, passive=True).method.consumer_count == 1
    close(conn)
    # Away: messages accumulate in the subscription's queue.
    pub, cp = connect(version)
    for i in range(3):
        pub.send(f"/topic/{key}", f"m{i}", receipt=f"p{i}")
    cp.wait_receipt("p2")
    assert ch.queue_declare(qname, passive=True).method.message_count == 3
    close(pub)
    # Back with the same id: the messages are there.
    conn, c = connect(version)
    subscribe_and_wait(conn, c, f"/topic/{key}", sub_id, **durable)
    c.wait_messages(3)
    assert c.bodies() == ["m0", "m1", "m2"]
    # Unsubscribing with the durable header ends the subscription.
    conn.unsubscribe(id=sub_id, receipt="end", **durable)
    c.wait_receipt("end")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.connection.channel().queue_declare(qname, passive=True)
    assert e.value.reply_code == 404
    close(conn)


def test_x_queue_name_and_arguments(stomp_clients, ch, names):
    qname = names.track_queue(unique("named"))
    key = unique("k")
    conn, c = stomp_clients("1.2")
    subscribe_and_wait(conn, c, f"/topic/{key}", "s", **{
        "x-queue-name": qname, "x-max-length": "2", "durable": "true",
        "auto-delete": "false"})
    # The queue's x-max-length came from the SUBSCRIBE: redeclaring without it
    # is refused as inequivalent.
    ch.queue_declare(qname, durable=True, arguments={"x-max-length": 2})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(qname, durable=True)
    assert e.value.reply_code == 406
    conn.send(f"/topic/{key}", "ok")
    assert c.wait_messages(1)[0].body == "ok"
