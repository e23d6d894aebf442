"""Scenario 1: work queue with competing consumers and fair dispatch."""

import pika
import pytest

from helpers import (connect, message_count, spawn_killable_consumer,
                     wait_until)

PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


def publish_tasks(conn, queue, n):
    ch = conn.channel()
    ch.confirm_delivery()  # returns only once the broker has enqueued each one
    bodies = [f"task-{i}".encode() for i in range(n)]
    for b in bodies:
        ch.basic_publish("", queue, b, properties=PERSISTENT)
    ch.close()
    return bodies


def test_fair_dispatch_fast_consumer_does_more(conn, names, consumers):
    q = names.queue("task_queue")
    conn.channel().queue_declare(q, durable=True)
    n = 30
    bodies = publish_tasks(conn, q, n)
    assert message_count(conn, q) == n

    # The slow worker takes 1 s per task: the fast one has a few seconds to
    # connect and do the rest, even on a loaded machine.
    slow = consumers(q, prefetch=1, delay=1.0, label="slow").start_and_wait()
    fast = consumers(q, prefetch=1, label="fast").start_and_wait()
    try:
        wait_until(lambda: slow.count + fast.count >= n, message="all tasks processed")
    finally:
        slow.stop()
        fast.stop()

    processed = slow.bodies() + fast.bodies()
    assert len(processed) == n, "each task processed exactly once (no duplicates)"
    assert sorted(processed) == sorted(bodies)
    # prefetch=1 means the slow worker holds one task at a time; the fast
    # worker must have taken almost all of the rest.
    assert fast.count > 3 * slow.count, (fast.count, slow.count)
    assert 1 <= slow.count <= 4
    for d in slow.deliveries + fast.deliveries:
        assert d.properties.delivery_mode == 2
        assert d.redelivered is False
    assert message_count(conn, q) == 0


def test_round_robin_between_equal_consumers(conn, names, consumers):
    """Without a prefetch limit the broker strictly alternates consumers."""
    q = names.queue("task_queue")
    conn.channel().queue_declare(q, durable=True)
    a = consumers(q, label="a").start_and_wait()
    b = consumers(q, label="b").start_and_wait()
    try:
        n = 10
        bodies = publish_tasks(conn, q, n)
        wait_until(lambda: a.count + b.count >= n, message="all tasks delivered")
    finally:
        a.stop()
        b.stop()
    assert a.count == 5 and b.count == 5
    # Strict alternation: one consumer gets the even tasks, the other the odd.
    assert {tuple(a.bodies()), tuple(b.bodies())} == {tuple(bodies[0::2]), tuple(bodies[1::2])}


def test_prefetch_one_equal_speed_shares_work(conn, names, consumers):
    q = names.queue("task_queue")
    conn.channel().queue_declare(q, durable=True)
    n = 20
    # 50 ms of "work" per task: a consumer thread that the loaded machine
    # does not schedule for a moment does not lose its share.
    a = consumers(q, prefetch=1, delay=0.05, label="a").start_and_wait()
    b = consumers(q, prefetch=1, delay=0.05, label="b").start_and_wait()
    try:
        bodies = publish_tasks(conn, q, n)
        wait_until(lambda: a.count + b.count >= n, message="all tasks processed")
    finally:
        a.stop()
        b.stop()
    assert sorted(a.bodies() + b.bodies()) == sorted(bodies)
    assert a.count >= n // 4 and b.count >= n // 4, (a.count, b.count)


@pytest.mark.parametrize("how", ["graceful_close", "killed_process"])
def test_unacked_messages_redelivered_when_consumer_connection_closes(
        conn, names, consumers, how, request):
    q = names.queue("task_queue")
    conn.channel().queue_declare(q, durable=True)
    bodies = publish_tasks(conn, q, 3)

    if how == "graceful_close":
        victim = consumers(q, prefetch=10, ack=False, label="victim").start_and_wait()
        wait_until(lambda: victim.count == 3, message="victim holds all 3 unacked")
        assert [d.redelivered for d in victim.deliveries] == [False] * 3
    else:
        proc = spawn_killable_consumer(q, prefetch=10)
        request.addfinalizer(proc.kill)
        lines = [proc.stdout.readline().strip() for _ in range(4)]
        assert lines == ["ready"] + [f"got {b.decode()}" for b in bodies]

    # Nothing ready while the victim holds everything.
    assert message_count(conn, q) == 0
    survivor = consumers(q, prefetch=10, label="survivor").start_and_wait()
    try:
        if how == "graceful_close":
            victim.stop()
        else:
            proc.kill()
            proc.wait(5)
            proc.stdout.close()
        wait_until(lambda: survivor.count >= 3, message="redelivery to survivor")
    finally:
        survivor.stop()

    assert survivor.bodies() == bodies, "requeued in original order"
    assert all(d.redelivered for d in survivor.deliveries)
    check = connect()
    try:
        assert message_count(check, q) == 0
    finally:
        check.close()
