"""Celery end to end over the broker: a worker subprocess (solo pool,
``task_acks_late``) runs plain, retrying, countdown and eta tasks; results
come back over the ``rpc://`` backend."""

import datetime
import importlib
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest

from helpers import AMQP_URL, connect

# Generous: on a loaded machine the worker process alone can take 20 s to
# import Celery and get ready (the module's first test pays for that).
pytestmark = pytest.mark.timeout(120)

HERE = os.path.dirname(os.path.abspath(__file__))
QUEUE = f"wt-celery.{uuid.uuid4().hex[:12]}"
RESULT_TIMEOUT = 20


@pytest.fixture(scope="module")
def celery_app():
    os.environ["WT_CELERY_QUEUE"] = QUEUE
    os.environ.setdefault("AMQP_URL", AMQP_URL)
    sys.modules.pop("celery_app", None)
    mod = importlib.import_module("celery_app")
    yield mod
    mod.app.close()


@pytest.fixture(scope="module")
def worker(celery_app):
    env = dict(os.environ, WT_CELERY_QUEUE=QUEUE, AMQP_URL=AMQP_URL,
               WT_CELERY_BROKER_HEARTBEAT="1",
               PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo",
         "-c", "1", "-Q", QUEUE, "-n", f"{QUEUE}@%h", "--without-heartbeat",
         "--without-gossip", "--without-mingle", "-l", "info"],
        cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = []
    ready = threading.Event()

    def reader():
        for line in proc.stdout:
            log.append(line)
            if " ready." in line:
                ready.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        if not ready.wait(90):
            pytest.fail("celery worker did not become ready:\n" + "".join(log[-50:]))
        yield log
    finally:
        proc.terminate()            # warm shutdown
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        t.join(5)
        _cleanup()


def _cleanup():
    conn = connect()
    try:
        for kind, name in (("queue", QUEUE), ("exchange", QUEUE),
                           ("exchange", f"{QUEUE}.ctl"), ("exchange", f"{QUEUE}.ev")):
            ch = conn.channel()
            try:
                if kind == "queue":
                    ch.queue_delete(name)
                else:
                    ch.exchange_delete(name)
            except Exception:
                pass
    finally:
        conn.close()


def _get(result, log):
    try:
        return result.get(timeout=RESULT_TIMEOUT)
    except Exception:
        print("".join(log[-80:]))
        raise


def test_plain_task(celery_app, worker):
    r = celery_app.add.delay(2, 3)
    assert _get(r, worker) == 5
    assert r.successful()


def test_many_plain_tasks(celery_app, worker):
    results = [celery_app.add.delay(i, i) for i in range(20)]
    assert [_get(r, worker) for r in results] == [2 * i for i in range(20)]


def test_task_retries_twice_then_succeeds(celery_app, worker):
    t0 = time.time()
    r = celery_app.flaky.delay("f1")
    out = _get(r, worker)
    assert out["tag"] == "f1" and out["retries"] == 2
    assert out["ran_at"] - t0 >= 0.35          # two 0.2 s countdowns
    assert r.state == "SUCCESS"


def test_countdown_and_eta(celery_app, worker):
    # 3 s, so that the plain task's round trip (worker process, result back
    # over AMQP) has ample time to finish first even on a loaded machine.
    delay = 3
    t0 = time.time()
    rc = celery_app.stamp.apply_async(("countdown",), countdown=delay)
    re = celery_app.stamp.apply_async(
        ("eta",), eta=datetime.datetime.now(datetime.timezone.utc)
        + datetime.timedelta(seconds=delay))
    ra = celery_app.add.delay(1, 1)            # not blocked behind the delayed ones
    assert _get(ra, worker) == 2
    assert time.time() - t0 < delay - 0.5
    oc = _get(rc, worker)
    oe = _get(re, worker)
    assert oc["tag"] == "countdown" and oc["ran_at"] - t0 >= delay - 0.05
    assert oe["tag"] == "eta" and oe["ran_at"] - t0 >= delay - 0.05
