"""The management web UI in a real browser (headless Chromium).

Warren serves its UI at `/` on the management listener (embedded in the
binary). The test logs in, watches a queue declared over AMQP (pika) appear
with its depth, publishes from the UI and gets the message over AMQP, then
runs the seed scenario (a fanout exchange `new_image` → queues `resize`,
`notify`, `log`, one consumer each, a publisher sending a few messages a
second) and checks the live topology view's SVG: the exchange, the three
queues, the consumer nodes and the edges between them. Screenshots
(`overview.png`, `queues.png`, `queue.png`, `topology.png`) go to
$BROWSER_ARTIFACTS (default: a temporary directory).

Environment: MGMT_URL (or HTTP_PORT) and AMQP_URL.
"""

import os
import threading
import time
import uuid

import pika
from selenium.webdriver.common.by import By

import ui
from ui import screenshot, wait_for

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
MGMT_URL = os.environ.get("MGMT_URL") or f"http://127.0.0.1:{os.environ.get('HTTP_PORT', '15672')}"


def login(driver, user="guest", password="guest", expect_shell=True):
    ui.login(driver, MGMT_URL, user, password, expect_shell)


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def test_wrong_password_shows_the_login_form_again(browser):
    login(browser, "guest", "not-the-password", expect_shell=False)
    time.sleep(0.5)
    assert browser.find_element(By.ID, "login").is_displayed()
    wait_for("the error", lambda: "Login failed" in browser.find_element(By.ID, "login-error").text)


def test_queue_depth_and_publish_from_the_ui(browser, channel):
    queue = f"ui-q-{uuid.uuid4().hex[:8]}"
    channel.queue_declare(queue, auto_delete=False)
    try:
        for i in range(3):
            channel.basic_publish("", queue, f"m{i}".encode())
        login(browser)
        # The overview shows totals and listeners.
        wait_for("the overview totals", lambda: browser.find_element(By.ID, "total-queues").text.strip() != "")
        wait_for("the listeners", lambda: "amqp" in browser.find_element(By.TAG_NAME, "main").text)
        time.sleep(2.5)  # two polls: the charts have a line
        screenshot(browser, "overview.png")

        # The queues table lists it with its depth (filtered by name).
        browser.get(MGMT_URL + "/#/queues")
        filt = wait_for("the filter box", lambda: browser.find_element(By.CSS_SELECTOR, "#main input.filter"))
        filt.send_keys(queue)
        row = f'#queues tr[data-name="{queue}"]'
        wait_for("the queue's row with 3 messages", lambda: browser.find_element(By.CSS_SELECTOR, f"{row} td.messages").text == "3")
        assert browser.find_element(By.CSS_SELECTOR, f"{row} td.ready").text == "3"
        screenshot(browser, "queues.png")

        # Its page: depth, then publish a message from the UI.
        ui.click_link(browser, queue)
        wait_for("the queue page", lambda: browser.find_element(By.ID, "queue-name").text == queue)
        wait_for("its depth", lambda: browser.find_element(By.ID, "queue-messages").text.startswith("3 "))
        channel.queue_purge(queue)
        wait_for("the purge to show", lambda: browser.find_element(By.ID, "queue-messages").text.startswith("0 "))
        payload = f"from the browser {uuid.uuid4().hex[:6]} ✓"
        browser.find_element(By.ID, "publish-payload").send_keys(payload)
        browser.find_element(By.CSS_SELECTOR, "#publish-form button[type=submit]").click()
        wait_for("the publish notice", lambda: "published" in browser.find_element(By.ID, "flash").text)
        wait_for("depth 1 on the page", lambda: browser.find_element(By.ID, "queue-messages").text.startswith("1 "))
        screenshot(browser, "queue.png")
        method, props, body = channel.basic_get(queue, auto_ack=True)
        assert method is not None, "the message published from the UI did not reach the queue"
        assert body.decode() == payload
        assert props.delivery_mode == 1
    finally:
        channel.queue_delete(queue)


class Consumer(threading.Thread):
    """One pika consumer on its own connection (pika is not thread-safe)."""

    def __init__(self, queue):
        super().__init__(daemon=True)
        self.queue, self.got, self.stop = queue, 0, threading.Event()
        self.ready = threading.Event()

    def run(self):
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=10)

        def on_message(c, method, _props, _body):
            self.got += 1
            c.basic_ack(method.delivery_tag)

        ch.basic_consume(self.queue, on_message, consumer_tag=f"{self.queue}-worker")
        self.ready.set()
        while not self.stop.is_set():
            conn.process_data_events(time_limit=0.2)
        conn.close()


class Publisher(threading.Thread):
    def __init__(self, exchange, per_second=5):
        super().__init__(daemon=True)
        self.exchange, self.per_second, self.sent, self.stop = exchange, per_second, 0, threading.Event()

    def run(self):
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        ch = conn.channel()
        while not self.stop.is_set():
            ch.basic_publish(self.exchange, "image.uploaded", b'{"image": "cat.jpg"}')
            self.sent += 1
            conn.process_data_events(time_limit=1.0 / self.per_second)
        conn.close()


def test_topology_of_the_upload_fanout(browser, channel):
    exchange, queues = "new_image", ["resize", "notify", "log"]
    # Start clean: a left-over (durable) declaration would make ours inequivalent.
    channel.exchange_delete(exchange)
    for q in queues:
        channel.queue_delete(q)
    channel.exchange_declare(exchange, "fanout")
    for q in queues:
        channel.queue_declare(q)
        channel.queue_purge(q)
        channel.queue_bind(q, exchange)
    consumers = [Consumer(q) for q in queues]
    publisher = Publisher(exchange)
    try:
        for c in consumers:
            c.start()
            assert c.ready.wait(10)
        publisher.start()
        login(browser)
        browser.get(MGMT_URL + "/#/topology/%2F")
        svg = "svg#topology"
        wait_for("the exchange node", lambda: browser.find_elements(By.CSS_SELECTOR, f'{svg} g.node.exchange[data-name="{exchange}"]'))
        for q in queues:
            wait_for(f"queue node {q}", lambda q=q: browser.find_elements(By.CSS_SELECTOR, f'{svg} g.node.queue[data-name="{q}"]'))
        wait_for("3 consumer nodes", lambda: len(browser.find_elements(By.CSS_SELECTOR, f"{svg} g.node.consumer")) >= 3)
        # Edges: exchange -> each queue, each queue -> a consumer.
        for q in queues:
            assert browser.find_elements(By.CSS_SELECTOR, f'{svg} path.edge.binding[data-from="exchange:{exchange}"][data-to="queue:{q}"]'), q
            assert browser.find_elements(By.CSS_SELECTOR, f'{svg} path.edge.deliver[data-from="queue:{q}"]'), q
        # Live: it keeps refreshing while messages flow and consumers keep up.
        first = browser.find_element(By.ID, "topology-status").text
        wait_for("a refresh", lambda: browser.find_element(By.ID, "topology-status").text != first)
        wait_for("messages to flow", lambda: all(c.got >= 3 for c in consumers))
        time.sleep(2.5)  # a few refreshes with rates
        screenshot(browser, "topology.png")
        # Click-through: the queue node opens the queue's page.
        wait_for("a click on the resize node", lambda: browser.find_element(
            By.CSS_SELECTOR, f'{svg} g.node.queue[data-name="resize"] rect.box').click() or True)
        wait_for("the resize queue page", lambda: browser.find_element(By.ID, "queue-name").text == "resize")
        # A consumer node opens its channel's page (prefetch 10, as the consumer set).
        browser.back()
        hrefs = wait_for("consumer nodes with links", lambda: [g.get_attribute("data-href") for g in
                         browser.find_elements(By.CSS_SELECTOR, f"{svg} g.node.consumer[data-href]")])
        assert all(h.startswith("#/channels/") for h in hrefs), hrefs
        wait_for("a click on a consumer node", lambda: browser.find_element(
            By.CSS_SELECTOR, f"{svg} g.node.consumer[data-href] rect.box").click() or True)
        wait_for("the consumer's channel page", lambda: browser.find_element(By.ID, "channel-prefetch").text == "10")
    finally:
        publisher.stop.set()
        for c in consumers:
            c.stop.set()
        publisher.join(5)
        for c in consumers:
            c.join(5)
        for q in queues:
            channel.queue_delete(q)
        channel.exchange_delete(exchange)


def test_ui_files_and_the_topology_snapshot_endpoint(channel):
    """The listener serves the embedded UI outside /api and the Warren-only
    topology snapshot under it (no browser needed)."""
    import requests

    index = requests.get(MGMT_URL + "/", timeout=10)
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert requests.get(MGMT_URL + "/js/app.js", timeout=10).headers["content-type"].startswith("text/javascript")
    missing = requests.get(MGMT_URL + "/api/no-such-thing", auth=("guest", "guest"), timeout=10)
    assert missing.status_code == 404 and missing.json()["error"] == "Object Not Found"
    # A scripted 401 has no WWW-Authenticate (no browser dialog); a plain one has.
    bad = requests.get(MGMT_URL + "/api/whoami", auth=("guest", "nope"), timeout=10,
                       headers={"X-Requested-With": "XMLHttpRequest"})
    assert bad.status_code == 401 and "WWW-Authenticate" not in bad.headers
    assert "WWW-Authenticate" in requests.get(MGMT_URL + "/api/whoami", auth=("guest", "nope"), timeout=10).headers

    ex, q = f"topo-x-{uuid.uuid4().hex[:6]}", f"topo-q-{uuid.uuid4().hex[:6]}"
    channel.exchange_declare(ex, "topic", auto_delete=True)
    channel.queue_declare(q, exclusive=True)
    channel.queue_bind(q, ex, "a.*.c")
    channel.basic_publish(ex, "a.b.c", b"x")
    def snapshot():
        return requests.get(f"{MGMT_URL}/api/warren/topology/%2F", auth=("guest", "guest"),
                            timeout=10).json()

    # The publish is asynchronous: wait until the queue holds it.
    wait_for("the published message in the snapshot",
             lambda: any(x["name"] == q and x["messages"] == 1 for x in snapshot()["queues"]))
    snap = snapshot()
    assert set(snap) >= {"vhost", "exchanges", "queues", "bindings", "consumers"}
    assert {"source": ex, "destination": q, "destination_type": "queue", "routing_key": "a.*.c"} in snap["bindings"]
    queue = next(x for x in snap["queues"] if x["name"] == q)
    assert queue["messages"] == 1 and "arguments" not in queue
    assert any(x["name"] == ex and x["type"] == "topic" for x in snap["exchanges"])
    assert requests.get(f"{MGMT_URL}/api/warren/topology/no-such-vhost", auth=("guest", "guest"), timeout=10).status_code == 404
