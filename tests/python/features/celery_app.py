"""A small Celery app for test_celery.py (run by a worker subprocess and used
as the client in the test process).

Configured from the environment so every test run is isolated:
``AMQP_URL`` (broker), ``WT_CELERY_QUEUE`` (queue / exchange / routing key
name, unique per run), ``WT_CELERY_BROKER_HEARTBEAT`` (set for the worker
only: AMQP heartbeats of 1 s make the worker's event loop wake up every
0.5 s; without them kombu's hub can sit in a 10 s poll before it notices the
next delivery or a shutdown signal -- a client-side latency, not a broker
issue).  Results travel over the ``rpc://`` backend (AMQP
replies), so no other service is needed.
"""

import os
import time

from celery import Celery

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
QUEUE = os.environ.get("WT_CELERY_QUEUE", "wt-celery")

app = Celery("wt_celery", broker=AMQP_URL, backend="rpc://")
app.conf.update(
    task_acks_late=True,
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    control_exchange=f"{QUEUE}.ctl",
    event_exchange=f"{QUEUE}.ev",
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=3,
    result_expires=None,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)
if os.environ.get("WT_CELERY_BROKER_HEARTBEAT"):
    app.conf.broker_heartbeat = float(os.environ["WT_CELERY_BROKER_HEARTBEAT"])


@app.task
def add(x, y):
    return x + y


@app.task
def stamp(tag):
    """Returns when it actually ran (for countdown / eta checks)."""
    return {"tag": tag, "ran_at": time.time()}


@app.task(bind=True, max_retries=5)
def flaky(self, tag):
    """Fails (retries with a 0.2 s countdown) twice, then succeeds."""
    if self.request.retries < 2:
        raise self.retry(countdown=0.2)
    return {"tag": tag, "retries": self.request.retries, "ran_at": time.time()}
