"""Direct reply-to (``amq.rabbitmq.reply-to``)."""

import pika
import pika.exceptions
import pytest

from mgmt import BROKER_KIND

from fhelpers import NO_ROUTE, get_one, pump, pump_until

pytestmark = pytest.mark.timeout(20)

RT = "amq.rabbitmq.reply-to"


class Client:
    """A requester: consumes from amq.rabbitmq.reply-to (no-ack) on its own
    channel and records replies."""

    def __init__(self, conn):
        self.conn = conn
        self.ch = conn.channel()
        self.replies = []
        self.tag = self.ch.basic_consume(
            RT, lambda c, m, p, b: self.replies.append((m, p, b)), auto_ack=True)

    def request(self, server_queue, body=b"req", **props):
        self.ch.basic_publish("", server_queue, body,
                              pika.BasicProperties(reply_to=RT, **props))


@pytest.fixture
def server_queue(ch, names):
    q = names.queue("drt-srv")
    ch.queue_declare(q)
    return q


def _reply_to_seen_by_server(ch, q):
    _, props, body = get_one(ch, q)
    return props


def test_round_trip(connections, server_queue):
    cconn = connections()
    client = Client(cconn)
    client.request(server_queue, correlation_id="c-1")
    sch = connections().channel()
    props = _reply_to_seen_by_server(sch, server_queue)
    reply_to = props.reply_to
    assert reply_to.startswith(RT + ".") and len(reply_to) > len(RT) + 1
    assert props.correlation_id == "c-1"
    sch.basic_publish("", reply_to, b"resp",
                      pika.BasicProperties(correlation_id="c-1", headers={"x": 1}))
    pump_until(cconn, lambda: client.replies, message="reply")
    method, p, body = client.replies[0]
    assert body == b"resp"
    assert method.exchange == ""
    assert method.routing_key == reply_to
    assert method.consumer_tag == client.tag
    assert method.redelivered is False
    assert (p.correlation_id, p.headers) == ("c-1", {"x": 1})


def test_several_replies_in_order_and_name_is_stable_per_channel(connections, server_queue):
    cconn = connections()
    client = Client(cconn)
    sch = connections().channel()
    client.request(server_queue, b"1")
    client.request(server_queue, b"2")
    rt1 = _reply_to_seen_by_server(sch, server_queue).reply_to
    rt2 = _reply_to_seen_by_server(sch, server_queue).reply_to
    assert rt1 == rt2
    for i in range(5):
        sch.basic_publish("", rt1, b"%d" % i)
    pump_until(cconn, lambda: len(client.replies) == 5, message="5 replies")
    assert [b for _, _, b in client.replies] == [b"0", b"1", b"2", b"3", b"4"]


@pytest.mark.xfail(BROKER_KIND == "warren", strict=True,
                   reason='RabbitMQ 3.10 quirk not reproduced: Warren gives each reply its own delivery tag')
def test_reply_delivery_tags_do_not_advance_channel_counter(connections, server_queue):
    """RabbitMQ 3.10 quirk: replies are sent with the channel's *next*
    delivery tag without consuming it (they are never acked), so every reply
    carries the same tag and the channel's own deliveries continue from it."""
    cconn = connections()
    client = Client(cconn)
    client.request(server_queue)
    sch = connections().channel()
    rt = _reply_to_seen_by_server(sch, server_queue).reply_to
    own = []
    q2 = client.ch.queue_declare("", exclusive=True).method.queue
    method, _, _ = (client.ch.basic_publish("", q2, b"g"), get_one(client.ch, q2))[1]
    assert method.delivery_tag == 1
    client.ch.basic_consume(q2, lambda c, m, p, b: own.append(m.delivery_tag), auto_ack=True)
    for i in range(3):
        sch.basic_publish("", rt, b"%d" % i)
    pump_until(cconn, lambda: len(client.replies) == 3, message="3 replies")
    for i in range(3):
        sch.basic_publish("", q2, b"%d" % i)
    pump_until(cconn, lambda: len(own) == 3, message="3 deliveries")
    assert [m.delivery_tag for m, _, _ in client.replies] == [2, 2, 2]
    assert own == [2, 3, 4]


def test_different_channels_get_different_names(connections, server_queue):
    conn = connections()
    a, b = Client(conn), Client(conn)
    sch = connections().channel()
    a.request(server_queue, correlation_id="a")
    b.request(server_queue, correlation_id="b")
    # two channels: the requests may arrive in either order
    seen = [_reply_to_seen_by_server(sch, server_queue) for _ in range(2)]
    by_client = {p.correlation_id: p.reply_to for p in seen}
    rta, rtb = by_client["a"], by_client["b"]
    assert rta != rtb
    sch.basic_publish("", rtb, b"for-b")
    sch.basic_publish("", rta, b"for-a")
    pump_until(conn, lambda: a.replies and b.replies, message="both replies")
    assert [x[2] for x in a.replies] == [b"for-a"]
    assert [x[2] for x in b.replies] == [b"for-b"]


def test_reply_to_with_other_suffix_is_not_rewritten(connections, server_queue):
    client = Client(connections())
    client.ch.basic_publish("", server_queue, b"r",
                            pika.BasicProperties(reply_to=RT + ".custom"))
    sch = connections().channel()
    assert _reply_to_seen_by_server(sch, server_queue).reply_to == RT + ".custom"


def test_consume_with_acks_refused(conn):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_consume(RT, lambda *a: None, auto_ack=False)
    assert (ei.value.reply_code, ei.value.reply_text) == \
        (406, "PRECONDITION_FAILED - reply consumer cannot acknowledge")


def test_second_reply_consumer_on_channel_refused(conn):
    ch = conn.channel()
    ch.basic_consume(RT, lambda *a: None, auto_ack=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_consume(RT, lambda *a: None, auto_ack=True)
    assert (ei.value.reply_code, ei.value.reply_text) == \
        (406, "PRECONDITION_FAILED - reply consumer already set")


def test_publish_with_reply_to_without_consumer_refused(conn, server_queue):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_publish("", server_queue, b"r", pika.BasicProperties(reply_to=RT))
        ch.queue_declare(server_queue, passive=True)       # sync point
    assert (ei.value.reply_code, ei.value.reply_text) == \
        (406, "PRECONDITION_FAILED - fast reply consumer does not exist")
    ch2 = conn.channel()
    assert ch2.queue_declare(server_queue, passive=True).method.message_count == 0


def test_reply_consumer_may_be_exclusive(conn):
    ch = conn.channel()
    ch.basic_consume(RT, lambda *a: None, auto_ack=True, exclusive=True)


def test_stale_or_unknown_reply_to_silently_dropped(connections, server_queue):
    cconn = connections()
    client = Client(cconn)
    client.request(server_queue)
    sch = connections().channel()
    sch.confirm_delivery()
    rt = _reply_to_seen_by_server(sch, server_queue).reply_to
    # channel of the requester goes away: its name becomes stale
    client.ch.close()
    for name in (rt, rt[:-6] + "AAAAA=", RT + ".nonsense"):
        sch.basic_publish("", name, b"late")      # acked, no error
    assert sch.is_open
    # with mandatory they come back as basic.return 312 NO_ROUTE
    for name in (rt, RT + ".nonsense"):
        with pytest.raises(pika.exceptions.UnroutableError):
            sch.basic_publish("", name, b"late", mandatory=True)
    assert sch.is_open


def test_reply_after_cancel_is_dropped(connections, server_queue):
    cconn = connections()
    client = Client(cconn)
    client.request(server_queue)
    sconn = connections()
    sch = sconn.channel()
    rt = _reply_to_seen_by_server(sch, server_queue).reply_to
    client.ch.basic_cancel(client.tag)
    sch.basic_publish("", rt, b"late")
    pump(cconn, 0.15)
    assert client.replies == []


@pytest.mark.xfail(BROKER_KIND == "warren", strict=True,
                   reason='RabbitMQ 3.10 quirk not reproduced: Warren delivers a mandatory reply without also returning it')
def test_mandatory_reply_is_delivered_and_also_returned(connections, server_queue):
    """RabbitMQ 3.10 quirk: a mandatory publish to a live direct reply-to name
    is delivered to the requester AND returned to the replier (312 NO_ROUTE),
    because no queue is involved."""
    cconn = connections()
    client = Client(cconn)
    client.request(server_queue)
    sconn = connections()
    sch = sconn.channel()
    rt = _reply_to_seen_by_server(sch, server_queue).reply_to
    returned = []
    sch.add_on_return_callback(lambda c, m, p, b: returned.append((m, b)))
    sch.basic_publish("", rt, b"resp", mandatory=True)
    # 5 s: RabbitMQ returns at once, and this wait is what fails (xfail) on
    # Warren, so it should not cost the default generous wait.
    pump_until(sconn, lambda: returned, timeout=5, message="basic.return")
    pump_until(cconn, lambda: client.replies, message="reply")
    m, body = returned[0]
    assert (m.reply_code, m.reply_text, m.exchange, m.routing_key, body) == \
        (NO_ROUTE, "NO_ROUTE", "", rt, b"resp")
    assert client.replies[0][2] == b"resp"


def test_passive_declare_of_reply_names(connections, server_queue):
    client = Client(connections())
    client.request(server_queue)
    other = connections().channel()
    rt = _reply_to_seen_by_server(other, server_queue).reply_to
    ok = other.queue_declare(RT, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (RT, 0, 1)
    ok = other.queue_declare(rt, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (rt, 0, 1)
    for bad in (rt[:-6] + "AAAAA=", RT + ".nonsense"):
        ch = connections().channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch.queue_declare(bad, passive=True)
        assert (ei.value.reply_code, ei.value.reply_text) == \
            (404, f"NOT_FOUND - no queue '{bad}' in vhost '/'")


def test_rpc_against_consumer_server(connections, names):
    """A full RPC loop with a consuming server, 20 calls."""
    q = names.queue("drt-rpc")
    sconn = connections()
    sch = sconn.channel()
    sch.queue_declare(q)

    def serve(c, m, p, b):
        c.basic_publish("", p.reply_to, b.upper(),
                        pika.BasicProperties(correlation_id=p.correlation_id))
        c.basic_ack(m.delivery_tag)

    sch.basic_consume(q, serve)
    cconn = connections()
    client = Client(cconn)
    for i in range(20):
        client.request(q, b"call-%d" % i, correlation_id=str(i))

    def done():
        sconn.process_data_events(time_limit=0)
        return len(client.replies) == 20

    pump_until(cconn, done, message="20 replies")
    assert [(p.correlation_id, b) for _, p, b in client.replies] == \
        [(str(i), b"CALL-%d" % i) for i in range(20)]
