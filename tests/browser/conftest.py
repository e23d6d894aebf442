"""What every browser test shares: a headless Chromium (Debian's package,
driven by Debian's chromedriver through selenium) and a pika channel.

Chromium gets a fresh profile per test and the flags this machine needs:
without the background-networking ones it keeps trying to reach Google's
hosts, which a closed network refuses.
"""

import os
import tempfile

import pika
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
PAGE_LOAD_TIMEOUT = 20.0


@pytest.fixture
def browser():
    profile = tempfile.mkdtemp(prefix="warren-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1440,900",
                 "--force-device-scale-factor=1", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def channel():
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    yield ch
    conn.close()
