"""Acknowledgement modes, NACK, prefetch-count, redelivery after a disconnect."""

from stomp_helpers import ack, close, connect, nack, unique


def fill(conn, c, q, n):
    for i in range(n):
        conn.send(f"/queue/{q}", str(i), receipt=f"f{i}")
    c.wait_receipt(f"f{n - 1}")


def test_client_individual_acks_one(version, names, ch):
    q = names.track_queue(unique("ci"))
    conn, c = connect(version)
    try:
        fill(conn, c, q, 3)
        conn.subscribe(f"/queue/{q}", "s", ack="client-individual")
        ms = c.wait_messages(3)
        if version == "1.2":
            assert ms[0].headers["ack"] == ms[0].headers["message-id"]
        ack(conn, version, ms[1], receipt="a")
        c.wait_receipt("a")
    finally:
        close(conn)
    # Only the acked one is gone; the two others come back.
    assert ch.queue_declare(q, passive=True).method.message_count == 2


def test_client_ack_is_cumulative(version, names, ch):
    q = names.track_queue(unique("cl"))
    conn, c = connect(version)
    try:
        fill(conn, c, q, 4)
        conn.subscribe(f"/queue/{q}", "s", ack="client")
        ms = c.wait_messages(4)
        ack(conn, version, ms[2], receipt="a")
        c.wait_receipt("a")
    finally:
        close(conn)
    # Acking the third acked the first three.
    assert ch.queue_declare(q, passive=True).method.message_count == 1


def test_unacked_messages_are_redelivered_after_disconnect(version, names):
    q = names.track_queue(unique("rd"))
    conn, c = connect(version)
    fill(conn, c, q, 2)
    conn.subscribe(f"/queue/{q}", "s", ack="client-individual")
    ms = c.wait_messages(2)
    assert all(m.headers["redelivered"] == "false" for m in ms)
    close(conn)
    conn, c = connect(version)
    try:
        conn.subscribe(f"/queue/{q}", "s", ack="auto")
        ms = c.wait_messages(2)
        assert [m.body for m in ms] == ["0", "1"]
        assert all(m.headers["redelivered"] == "true" for m in ms)
    finally:
        close(conn)


def test_auto_ack_messages_are_gone(names, ch):
    q = names.track_queue(unique("auto"))
    conn, c = connect("1.2")
    try:
        fill(conn, c, q, 2)
        conn.subscribe(f"/queue/{q}", "s")
        c.wait_messages(2)
    finally:
        close(conn)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_nack_requeues_by_default(version, names):
    q = names.track_queue(unique("nk"))
    conn, c = connect(version)
    try:
        fill(conn, c, q, 1)
        conn.subscribe(f"/queue/{q}", "s", ack="client-individual")
        [m] = c.wait_messages(1)
        nack(conn, version, m)
        m2 = c.wait_messages(2)[1]
        assert m2.body == "0"
        assert m2.headers["redelivered"] == "true"
        ack(conn, version, m2, receipt="done")
        c.wait_receipt("done")
    finally:
        close(conn)


def test_nack_without_requeue_drops(version, names, ch):
    q = names.track_queue(unique("nd"))
    conn, c = connect(version)
    try:
        fill(conn, c, q, 1)
        conn.subscribe(f"/queue/{q}", "s", ack="client-individual")
        [m] = c.wait_messages(1)
        nack(conn, version, m, requeue="false", receipt="n")
        c.wait_receipt("n")
        c.no_more_messages(1)
    finally:
        close(conn)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_prefetch_count_limits_unacked(version, names):
    q = names.track_queue(unique("pf"))
    conn, c = connect(version)
    try:
        fill(conn, c, q, 5)
        conn.subscribe(f"/queue/{q}", "s", ack="client-individual",
                       headers={"prefetch-count": "2"})
        c.wait_messages(2)
        c.no_more_messages(2)
        ack(conn, version, c.messages[0])
        c.wait_messages(3)
        c.no_more_messages(3)
    finally:
        close(conn)


def test_unknown_delivery_tag_closes_the_connection(names):
    q = names.track_queue(unique("ut"))
    conn, c = connect("1.2")
    try:
        conn.subscribe(f"/queue/{q}", "s", ack="client", receipt="s")
        c.wait_receipt("s")
        session = c.connected[0].headers["session"]
        conn.send_frame("ACK", {"id": f"T_s@@{session}@@99"})
        e = c.wait_error()
        # A broker error, as RabbitMQ's internal AMQP channel reports it.
        assert e.headers["message"] == "precondition_failed"
        assert e.body == "PRECONDITION_FAILED - unknown delivery tag 99"
        assert c.wait_disconnected()
    finally:
        close(conn)


def test_ack_errors_keep_the_connection(version):
    conn, c = connect(version)
    try:
        key = "id" if version == "1.2" else "message-id"
        conn.send_frame("ACK", {})
        conn.send_frame("ACK", {key: "garbage"})
        conn.send_frame("ACK", {key: "T_nosub@@s@@1"})
        assert c.wait_for(lambda: len(c.errors) == 3)
        assert [e.headers["message"] for e in c.errors] == [
            "Missing header", "Invalid header", "Subscription not found"]
        assert c.errors[0].body == f'"ACK" must include the "{key}" header\n'
        assert c.errors[1].body == f'"ACK" must include a valid "{key}" header\n'
        assert c.errors[2].body == 'Message with id "T_nosub@@s@@1" has no subscription'
        conn.send_frame("BEGIN", {"transaction": "t", "receipt": "still-here"})
        c.wait_receipt("still-here")
    finally:
        close(conn)
