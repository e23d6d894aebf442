"""Connection and channel pages (headless Chromium, the session's own broker).

A pika connection named by its client properties, with a channel at
prefetch 7 holding 5 unacknowledged deliveries: the connections table
links to its page, which shows the client properties, the peer address
(pika's own socket), the protocol and byte counts, and lists the channel;
the channel's page shows prefetch 7 and 5 unacked and the consumer. Closing
the connection from the page (with a reason) closes pika's connection with
320 CONNECTION_FORCED and that reason. A STOMP connection (stomp.py) shows
in the same table with its protocol. Screenshots: connection.png, channel.png.
"""

import uuid

import pika
import pika.exceptions
import pytest
from selenium.webdriver.common.by import By

from ui import accept_confirm, click, click_link, go, login, main_text, rows, screenshot, wait_for


@pytest.fixture
def consumer(warren):
    """A pika connection with one channel: prefetch 7, 5 unacked messages."""
    name = f"ui-conn-{uuid.uuid4().hex[:6]}"
    conn = warren.connect(connection_name=name)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=7)
    queue = ch.queue_declare("", exclusive=True).method.queue
    for i in range(5):
        ch.basic_publish("", queue, f"m{i}".encode())
    got = []
    ch.basic_consume(queue, lambda c, m, p, b: got.append(m.delivery_tag), consumer_tag=f"{name}-tag")
    while len(got) < 5:
        conn.process_data_events(time_limit=0.2)
    yield name, conn, queue
    if conn.is_open:
        conn.close()


def connection_named(warren, name):
    return wait_for(f"connection {name} in the API", lambda: next(
        (c for c in warren.api("GET", "/connections").json()
         if c.get("client_properties", {}).get("connection_name") == name), None))


def test_connection_page_shows_the_client_and_closes_it(browser, warren, consumer):
    name, conn, queue = consumer
    listed = connection_named(warren, name)
    local_port = conn._impl._transport._sock.getsockname()[1]
    login(browser, warren.mgmt_url)
    go(browser, warren.mgmt_url, "/connections")
    filt = wait_for("the filter box", lambda: browser.find_element(By.CSS_SELECTOR, "#main input.filter"))
    filt.send_keys(f":{local_port} ")
    wait_for("the connection's link", lambda: browser.find_element(By.LINK_TEXT, listed["name"]))
    assert any("Pika Python Client Library" in " ".join(r) for r in rows(browser, "#connections"))
    click_link(browser, listed["name"])

    wait_for("the connection page", lambda: browser.find_element(By.ID, "connection-name").text == listed["name"])
    props = wait_for("the client properties", lambda: browser.find_element(By.ID, "client-properties"))
    wait_for("connection_name", lambda: props.find_element(By.CSS_SELECTOR, 'tr[data-key="connection_name"] td').text == name)
    assert props.find_element(By.CSS_SELECTOR, 'tr[data-key="product"] td').text == "Pika Python Client Library"
    caps = props.find_element(By.CSS_SELECTOR, 'tr[data-key="capabilities"] td')
    assert "publisher_confirms" in caps.text and "true" in caps.text
    assert browser.find_element(By.ID, "connection-peer").text == f"127.0.0.1:{local_port}"
    assert browser.find_element(By.ID, "connection-protocol").text == "AMQP 0-9-1"
    assert "guest" in browser.find_element(By.ID, "connection-details").text
    wait_for("bytes received", lambda: browser.find_element(By.ID, "connection-recv").text[0].isdigit())
    channels = wait_for("its channel", lambda: rows(browser, "#connection-channels table"))
    assert len(channels) == 1
    assert channels[0][0] == f"{listed['name']} (1)"
    assert channels[0][3] == "7" and channels[0][4] == "5", channels
    screenshot(browser, "connection.png")

    # The channel's page, from the connection's channel list.
    click_link(browser, f"{listed['name']} (1)")
    wait_for("the channel page", lambda: browser.find_element(By.ID, "channel-name").text == f"{listed['name']} (1)")
    wait_for("prefetch 7", lambda: browser.find_element(By.ID, "channel-prefetch").text == "7")
    assert browser.find_element(By.ID, "channel-unacked").text == "5"
    consumers = wait_for("its consumer", lambda: rows(browser, "#channel-consumers table"))
    assert consumers[0][0] == f"{name}-tag" and consumers[0][1] == queue
    screenshot(browser, "channel.png")

    # Back to the connection and close it with a reason.
    click(browser, "#channel-connection")
    wait_for("the connection page again", lambda: browser.find_element(By.ID, "connection-name").text == listed["name"])
    reason = browser.find_element(By.ID, "close-reason")
    reason.clear()
    reason.send_keys("closed from the browser test")
    browser.find_element(By.ID, "close-connection").click()
    accept_confirm(browser)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        for _ in range(100):
            conn.process_data_events(time_limit=0.1)
    assert closed.value.reply_code == 320
    assert "closed from the browser test" in closed.value.reply_text
    wait_for("the page to say it is closed", lambda: browser.find_element(By.ID, "connection-gone").is_displayed())
    assert not any(c["name"] == listed["name"] for c in warren.api("GET", "/connections").json())


def test_channels_table_links_to_the_channel(browser, warren, consumer):
    name, conn, _queue = consumer
    listed = connection_named(warren, name)
    login(browser, warren.mgmt_url)
    go(browser, warren.mgmt_url, "/channels")
    channel = f"{listed['name']} (1)"
    wait_for("the channel's row", lambda: browser.find_element(By.LINK_TEXT, channel))
    row = next(r for r in rows(browser, "#channels") if r[0] == channel)
    assert row[4] == "7" and row[6] == "5", row  # prefetch, unacked
    click_link(browser, channel)
    wait_for("prefetch 7", lambda: browser.find_element(By.ID, "channel-prefetch").text == "7")
    assert "Messages unacknowledged\n5" in main_text(browser)


def test_stomp_connection_is_listed_with_its_protocol(browser, warren):
    import stomp

    client = stomp.Connection12([("127.0.0.1", warren.stomp_port)], vhost="/")
    client.connect("guest", "guest", wait=True)
    try:
        login(browser, warren.mgmt_url)
        go(browser, warren.mgmt_url, "/connections")
        wait_for("a STOMP connection", lambda: any(r[3].startswith("STOMP") for r in rows(browser, "#connections")))
        stomp_row = next(r for r in rows(browser, "#connections") if r[3].startswith("STOMP"))
        click_link(browser, stomp_row[0])
        wait_for("its page", lambda: browser.find_element(By.ID, "connection-protocol").text.startswith("STOMP"))
    finally:
        client.disconnect()
