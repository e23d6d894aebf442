"""The listing tables with many objects (headless Chromium, own broker):
1,100 queues in one vhost (pika), three of them holding messages. The queues
table, scoped to that vhost with the picker, pages (Next, the page picker,
rows per page), sorts (by Total both ways, by Name reversed; the header says
aria-sort) and filters (substring, regex) through the API's paging, and
says what it shows. Screenshot: queues-1100.png.
"""

import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from ui import go, login, rows, screenshot, wait_for

COUNT = 1100
DEPTHS = {"tq-0042": 9, "tq-0777": 5, "tq-1099": 3}


@pytest.fixture
def many_queues(warren):
    vhost = f"tables-{uuid.uuid4().hex[:6]}"
    warren.api("PUT", f"/vhosts/{vhost}", json={}).raise_for_status()
    warren.api("PUT", f"/permissions/{vhost}/guest", json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    conn = warren.connect(vhost=vhost)
    ch = conn.channel()
    for i in range(COUNT):
        ch.queue_declare(f"tq-{i:04d}")
    ch.confirm_delivery()
    for q, n in DEPTHS.items():
        for _ in range(n):
            ch.basic_publish("", q, b"x")
    conn.close()
    yield vhost
    warren.api("DELETE", f"/vhosts/{vhost}")


def names(browser):
    return [r[0] for r in rows(browser, "#queues")]


def info(browser):
    return browser.find_element(By.CSS_SELECTOR, "#main .pager-info").text


def sort_by(browser, label):
    wait_for(f"the {label} header", lambda: browser.find_element(
        By.CSS_SELECTOR, f'#queues th button.sort[title="Sort by {label}"]').click() or True)


def test_queues_table_pages_sorts_and_filters_1100_queues(browser, warren, many_queues):
    vhost = many_queues
    login(browser, warren.mgmt_url)
    Select(browser.find_element(By.ID, "vhost-select")).select_by_visible_text(vhost)
    go(browser, warren.mgmt_url, "/queues")
    wait_for("the first page", lambda: info(browser) == "Page 1 of 22 · 1,100 shown of 1,100")
    assert names(browser) == [f"tq-{i:04d}" for i in range(50)]

    # Paging: next, the page picker, rows per page.
    browser.find_element(By.CSS_SELECTOR, "#main .pager-next").click()
    wait_for("page 2", lambda: names(browser)[0] == "tq-0050")
    assert info(browser).startswith("Page 2 of 22")
    Select(browser.find_element(By.CSS_SELECTOR, "#main .pager-page")).select_by_visible_text("Page 22")
    wait_for("the last page", lambda: names(browser)[0] == "tq-1050")
    assert names(browser)[-1] == "tq-1099" and len(names(browser)) == 50
    assert not browser.find_element(By.CSS_SELECTOR, "#main .pager-next").is_enabled()
    Select(browser.find_element(By.CSS_SELECTOR, "#main .pager-size")).select_by_visible_text("500 per page")
    wait_for("500 rows", lambda: len(names(browser)) == 500)
    assert info(browser) == "Page 1 of 3 · 1,100 shown of 1,100"

    # Sorting by Total: ascending, then descending (the deepest queues first).
    sort_by(browser, "Total")
    wait_for("ascending by total", lambda: browser.find_element(By.CSS_SELECTOR, "#queues th[aria-sort=ascending]").text == "Total")
    sort_by(browser, "Total")
    wait_for("descending by total", lambda: names(browser)[:3] == ["tq-0042", "tq-0777", "tq-1099"])
    assert [r[7] for r in rows(browser, "#queues")[:4]] == ["9", "5", "3", "0"]
    assert browser.find_element(By.CSS_SELECTOR, "#queues th[aria-sort=descending]").text == "Total"
    screenshot(browser, "queues-1100.png")

    # Name, reversed.
    sort_by(browser, "Name")
    wait_for("by name", lambda: names(browser)[0] == "tq-0000")
    sort_by(browser, "Name")
    wait_for("by name, reversed", lambda: names(browser)[0] == "tq-1099")

    # Filtering: a substring, then a regex.
    filt = browser.find_element(By.CSS_SELECTOR, "#main input.filter")
    filt.send_keys("tq-10")
    wait_for("100 matches", lambda: info(browser) == "Page 1 of 1 · 100 shown of 1,100")
    assert names(browser)[0] == "tq-1099" and names(browser)[-1] == "tq-1000"
    filt.clear()
    browser.find_element(By.CSS_SELECTOR, "#main .toolbar input[type=checkbox]").click()
    filt.send_keys("^tq-0[0-4]42$")
    wait_for("5 regex matches", lambda: sorted(names(browser)) == ["tq-0042", "tq-0142", "tq-0242", "tq-0342", "tq-0442"])
    assert "5 shown of 1,100" in info(browser)
