"""The queue and exchange pages (headless Chromium, own broker), driven like
a user would, checked over AMQP (pika) and the API:

* queue page: bind it to a topic exchange with a key (the form), see the
  binding listed; publish through that exchange from the exchange's page and
  see the queue's depth grow; get a message with "Nack message requeue true"
  (stays queued, redelivered next time) and with "Automatic ack" (gone);
  unbind; purge; delete.
* the consumers table lists a pika consumer with its prefetch and links to
  its channel.
Screenshots: queue-page.png, exchange-page.png.
"""

import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from ui import accept_confirm, click, fill, flash_text, go, login, rows, screenshot, submit, wait_for


@pytest.fixture
def names(warren):
    suffix = uuid.uuid4().hex[:6]
    ex, q = f"ui-ex-{suffix}", f"ui-qp-{suffix}"
    warren.api("PUT", f"/exchanges/%2F/{ex}", json={"type": "topic", "durable": False}).raise_for_status()
    warren.api("PUT", f"/queues/%2F/{q}", json={"durable": False}).raise_for_status()
    yield ex, q
    warren.api("DELETE", f"/queues/%2F/{q}")
    warren.api("DELETE", f"/exchanges/%2F/{ex}")


def depth(browser):
    return browser.find_element(By.ID, "queue-messages").text.split(" ")[0]


def get_messages(browser, ackmode, count=1):
    form = browser.find_element(By.ID, "get-form")
    Select(form.find_element(By.NAME, "ackmode")).select_by_visible_text(ackmode)
    fill(form, count=str(count))
    browser.execute_script("document.getElementById('get-results').replaceChildren()")
    submit(form)
    return wait_for("the messages got", lambda: browser.find_element(By.ID, "get-results").text)


def test_queue_and_exchange_pages(browser, warren, names):
    ex, q = names
    base = warren.mgmt_url
    login(browser, base)
    go(browser, base, f"/queues/%2F/{q}")
    wait_for("the queue page", lambda: browser.find_element(By.ID, "queue-name").text == q)

    # Bind from the queue's page.
    bind = browser.find_element(By.ID, "bind-form")
    fill(bind, other=ex, routing_key="orders.*")
    submit(bind)
    wait_for("the binding", lambda: [ex, "orders.*"] in [r[:2] for r in rows(browser, "#queue-bindings table")])
    assert any(b["source"] == ex and b["routing_key"] == "orders.*" for b in warren.api("GET", f"/queues/%2F/{q}/bindings").json())

    # Publish twice from the exchange's page: one routed, one not.
    go(browser, base, f"/exchanges/%2F/{ex}")
    wait_for("the exchange page", lambda: browser.find_element(By.ID, "exchange-name").text == ex)
    wait_for("its binding to the queue", lambda: any(q in r[0] for r in rows(browser, "#exchange-bindings table")))
    for key, payload, routed in (("orders.eu", "first", True), ("orders.eu", "second", True), ("nowhere", "lost", False)):
        form = browser.find_element(By.ID, "publish-form")
        fill(form, routing_key=key, payload=payload)
        browser.execute_script("const f = document.getElementById('flash'); if (f) f.replaceChildren()")
        submit(form)
        wait_for("the publish notice", lambda: "published" in flash_text(browser))
        assert ("not routed" in flash_text(browser)) == (not routed)
    screenshot(browser, "exchange-page.png")

    # The queue holds the two routed messages.
    go(browser, base, f"/queues/%2F/{q}")
    wait_for("depth 2", lambda: depth(browser) == "2")
    got = get_messages(browser, "Nack message requeue true")
    assert "first" in got and f"Exchange\n{ex}" in got and "orders.eu" in got
    wait_for("still 2 after a requeueing get", lambda: depth(browser) == "2")
    got = get_messages(browser, "Nack message requeue true")
    assert "Redelivered\ntrue" in got
    got = get_messages(browser, "Automatic ack")
    assert "first" in got
    wait_for("1 left after an acking get", lambda: depth(browser) == "1")
    screenshot(browser, "queue-page.png")

    # Headers, properties and delivery mode from the publish form reach an AMQP client.
    go(browser, base, f"/exchanges/%2F/{ex}")
    form = wait_for("the publish form", lambda: browser.find_element(By.ID, "publish-form"))
    fill(form, routing_key="orders.us", payload='{"id": 7}', headers="x-origin=ui\nx-attempt=2",
         properties="content_type=application/json\ncorrelation_id=abc-1", delivery_mode="2 - Persistent")
    submit(form)
    wait_for("the publish notice", lambda: "published" in flash_text(browser))
    conn = warren.connect()
    ch = conn.channel()
    wait_for("two messages queued", lambda: ch.queue_declare(q, passive=True).method.message_count == 2)
    ch.basic_get(q, auto_ack=True)  # "second", from before
    method, props, body = ch.basic_get(q, auto_ack=True)
    conn.close()
    assert body == b'{"id": 7}' and method.routing_key == "orders.us" and method.exchange == ex
    assert props.headers == {"x-origin": "ui", "x-attempt": 2}
    assert (props.content_type, props.correlation_id, props.delivery_mode) == ("application/json", "abc-1", 2)
    go(browser, base, f"/queues/%2F/{q}")

    # A consumer shows with its prefetch and channel link.
    conn = warren.connect()
    ch = conn.channel()
    ch.basic_qos(prefetch_count=3)
    ch.basic_consume(q, lambda *a: None, consumer_tag="ui-consumer")
    conn.process_data_events(time_limit=0.3)
    try:
        row = wait_for("the consumer row", lambda: next((r for r in rows(browser, "#queue-consumers table") if r[1] == "ui-consumer"), None))
        assert row[4] == "3"
        click(browser, "#queue-consumers a")
        wait_for("its channel page", lambda: browser.find_element(By.ID, "channel-prefetch").text == "3")
    finally:
        conn.close()

    # Unbind, purge, delete.
    go(browser, base, f"/queues/%2F/{q}")
    wait_for("the binding", lambda: [ex, "orders.*"] in [r[:2] for r in rows(browser, "#queue-bindings table")])
    browser.find_element(By.CSS_SELECTOR, "#queue-bindings button.danger").click()
    wait_for("no binding from the exchange", lambda: not any(b["source"] == ex for b in warren.api("GET", f"/queues/%2F/{q}/bindings").json()))
    warren.api("POST", f"/exchanges/%2F/{ex}/publish", json={"routing_key": "orders.x", "payload": "x", "payload_encoding": "string", "properties": {}})
    warren.api("POST", "/exchanges/%2F/amq.default/publish", json={"routing_key": q, "payload": "y", "payload_encoding": "string", "properties": {}})
    wait_for("depth > 0", lambda: depth(browser) not in ("0", ""))
    browser.find_element(By.ID, "purge").click()
    accept_confirm(browser)
    wait_for("purged", lambda: warren.api("GET", f"/queues/%2F/{q}").json()["messages"] == 0)
    browser.find_element(By.ID, "delete-queue").click()
    accept_confirm(browser)
    wait_for("back at the queues list", lambda: browser.current_url.endswith("#/queues"))
    assert warren.api("GET", f"/queues/%2F/{q}").status_code == 404


def test_add_queue_and_exchange_from_the_forms(browser, warren):
    suffix = uuid.uuid4().hex[:6]
    q, ex = f"ui-form-q-{suffix}", f"ui-form-x-{suffix}"
    base = warren.mgmt_url
    try:
        login(browser, base)
        go(browser, base, "/queues")
        form = wait_for("the add-queue form", lambda: browser.find_element(By.ID, "add-queue"))
        fill(form, vhost="/", name=q, durable="Transient", arguments="x-max-length=10\nx-message-ttl=60000")
        submit(form)
        wait_for("the declared notice", lambda: f"Queue {q} declared" in flash_text(browser))
        got = warren.api("GET", f"/queues/%2F/{q}").json()
        assert got["durable"] is False and got["arguments"] == {"x-max-length": 10, "x-message-ttl": 60000}
        browser.find_element(By.CSS_SELECTOR, "#main input.filter").send_keys(q)
        wait_for("its row with argument tags", lambda: next((r for r in rows(browser, "#queues") if r[0] == q), [None] * 4)[3].split() == ["Lim", "TTL"])

        go(browser, base, "/exchanges")
        form = wait_for("the add-exchange form", lambda: browser.find_element(By.ID, "add-exchange"))
        fill(form, vhost="/", name=ex, type="fanout", arguments="alternate-exchange=amq.fanout")
        submit(form)
        wait_for("the declared notice", lambda: f"Exchange {ex} declared" in flash_text(browser))
        got = warren.api("GET", f"/exchanges/%2F/{ex}").json()
        assert got["type"] == "fanout" and got["durable"] is True and got["arguments"] == {"alternate-exchange": "amq.fanout"}
    finally:
        warren.api("DELETE", f"/queues/%2F/{q}")
        warren.api("DELETE", f"/exchanges/%2F/{ex}")
