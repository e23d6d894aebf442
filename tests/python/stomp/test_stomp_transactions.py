"""BEGIN / COMMIT / ABORT: held-back SENDs and ACKs."""

from stomp_helpers import ack, close, connect, unique


def test_commit_publishes_in_order(version, names):
    q = names.track_queue(unique("tx"))
    conn, c = connect(version)
    try:
        conn.subscribe(f"/queue/{q}", "s", receipt="s")
        c.wait_receipt("s")
        conn.begin("t1")
        conn.send(f"/queue/{q}", "a", transaction="t1")
        conn.send(f"/queue/{q}", "b", transaction="t1")
        c.no_more_messages(0)
        conn.commit("t1")
        c.wait_messages(2)
        assert c.bodies() == ["a", "b"]
    finally:
        close(conn)


def test_abort_discards_sends(version, names, ch):
    q = names.track_queue(unique("ab"))
    conn, c = connect(version)
    try:
        conn.send(f"/queue/{q}", "kept", receipt="k")
        c.wait_receipt("k")
        conn.begin("t2")
        conn.send(f"/queue/{q}", "dropped", transaction="t2", receipt="never")
        conn.abort("t2")
        conn.send_frame("BEGIN", {"transaction": "t3", "receipt": "sync"})
        c.wait_receipt("sync")
        # An aborted SEND's receipt never comes.
        assert not any(r.headers["receipt-id"] == "never" for r in c.receipts)
    finally:
        close(conn)
    assert ch.queue_declare(q, passive=True).method.message_count == 1


def test_abort_discards_acks(version, names, ch):
    q = names.track_queue(unique("aa"))
    conn, c = connect(version)
    try:
        conn.send(f"/queue/{q}", "m", receipt="m")
        c.wait_receipt("m")
        conn.subscribe(f"/queue/{q}", "s", ack="client-individual")
        [m] = c.wait_messages(1)
        conn.begin("t")
        ack(conn, version, m, transaction="t")
        conn.abort("t", receipt="aborted") if version != "1.0" else conn.abort("t")
        conn.send_frame("BEGIN", {"transaction": "sync", "receipt": "sync"})
        c.wait_receipt("sync")
    finally:
        close(conn)
    # The ACK never took effect: the message went back to the queue.
    assert ch.queue_declare(q, passive=True).method.message_count == 1


def test_committed_ack(version, names, ch):
    q = names.track_queue(unique("ca"))
    conn, c = connect(version)
    try:
        conn.send(f"/queue/{q}", "m", receipt="m")
        c.wait_receipt("m")
        conn.subscribe(f"/queue/{q}", "s", ack="client-individual")
        [m] = c.wait_messages(1)
        conn.begin("t")
        ack(conn, version, m, transaction="t")
        conn.send_frame("COMMIT", {"transaction": "t", "receipt": "c"})
        c.wait_receipt("c")
    finally:
        close(conn)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_transaction_errors(names):
    # The SEND's queue is declared even though its transaction is unknown.
    q = names.track_queue(unique("whatever"))
    conn, c = connect("1.2")
    try:
        conn.send_frame("COMMIT", {"transaction": "nope"})
        conn.send_frame("BEGIN", {})
        conn.send(f"/queue/{q}", "x", transaction="nope")
        assert c.wait_for(lambda: len(c.errors) == 3)
        assert [(e.headers["message"], e.body) for e in c.errors] == [
            ("Bad transaction", 'Invalid transaction identifier: "nope"\n'),
            ("Missing transaction", '"BEGIN" must include a \'transaction\' header\n'),
            ("Bad transaction", 'Invalid transaction identifier: "nope"\n'),
        ]
        assert conn.is_connected()
    finally:
        close(conn)
