"""What every browser test shares: a headless Chromium (Debian's package,
driven by Debian's chromedriver through selenium), a pika channel, and
brokers of the tests' own.

Chromium gets a fresh profile per test and the flags this machine needs:
without the background-networking ones it keeps trying to reach Google's
hosts, which a closed network refuses. Its console is recorded; a test that
leaves a JavaScript error (SEVERE, not a failed request) in it fails at
teardown. Downloads go to `browser.download_dir`.

`warren` is a broker started for the session by the management UI tests
(the harness of tests/python/durability: AMQP on a port the kernel picks,
HTTP and STOMP on picked ports, the rest off); `fresh_warren()` starts
another one, empty, for a test (definitions import).
"""

import os
import shutil
import sys
import tempfile
import time

import pika
import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
os.environ.setdefault("WARREN_BIN", os.path.join(REPO, "target", "debug", "warren"))
sys.path.insert(0, os.path.join(REPO, "tests", "python", "durability"))
from warren_harness import Broker, new_broker_root  # noqa: E402

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
PAGE_LOAD_TIMEOUT = 20.0


@pytest.fixture
def browser():
    profile = tempfile.mkdtemp(prefix="warren-chromium-")
    downloads = tempfile.mkdtemp(prefix="warren-downloads-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1440,900",
                 "--force-device-scale-factor=1", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option("prefs", {
        "download.default_directory": downloads,
        "download.prompt_for_download": False,
    })
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    driver.download_dir = downloads
    try:
        yield driver
        errors = javascript_errors(driver)
        assert not errors, f"JavaScript errors in the browser console: {errors}"
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(downloads, ignore_errors=True)


def javascript_errors(driver):
    """SEVERE console entries other than failed requests (a 401 on a wrong
    password or a 404 for a closed connection is the API answering)."""
    return [e for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and e.get("source") != "network"]


@pytest.fixture
def channel():
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    yield ch
    conn.close()


class Warren:
    """A started broker: its AMQP URL, management URL and admin requests."""

    def __init__(self, broker):
        self.broker = broker
        self.amqp_url = f"amqp://guest:guest@127.0.0.1:{broker.port}/%2F"
        self.mgmt_url = f"http://127.0.0.1:{broker.http_port}"
        self.stomp_port = broker.stomp_port

    def api(self, method, path, user=("guest", "guest"), **kw):
        return requests.request(method, self.mgmt_url + "/api" + path, auth=user, timeout=10, **kw)

    def connect(self, user="guest", password="guest", vhost="/", **props):
        params = pika.ConnectionParameters(
            host="127.0.0.1", port=self.broker.port, virtual_host=vhost,
            credentials=pika.PlainCredentials(user, password), client_properties=props or None)
        return pika.BlockingConnection(params)


def start_warren(stomp=False):
    broker = Broker(new_broker_root("warren-ui-"), label="warren-ui", stomp=stomp, http=True)
    broker.start()
    w = Warren(broker)
    deadline = time.monotonic() + 30
    while True:
        try:
            if w.api("GET", "/overview").status_code == 200:
                return w
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            broker.cleanup()
            raise AssertionError("the management listener did not answer")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def warren():
    w = start_warren(stomp=True)
    yield w
    w.broker.cleanup()


@pytest.fixture
def fresh_warren():
    started = []

    def make():
        started.append(start_warren())
        return started[-1]

    yield make
    for w in started:
        w.broker.cleanup()
