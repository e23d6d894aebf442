"""Small helpers the management UI tests share: waiting for what the user
sees, logging in, answering confirm() dialogs, filling forms, screenshots
($BROWSER_ARTIFACTS, default a temporary directory)."""

import os
import tempfile
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

TIMEOUT = 20.0
ARTIFACTS = os.environ.get("BROWSER_ARTIFACTS") or tempfile.mkdtemp(prefix="warren-browser-")


def wait_for(what, predicate, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
        except Exception as e:  # the page may be re-rendering
            value, last = None, e
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))
        time.sleep(0.1)


def screenshot(driver, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    driver.save_screenshot(os.path.join(ARTIFACTS, name))


def login(driver, base, user="guest", password="guest", expect_shell=True):
    driver.get(base + "/")
    wait_for("the login form", lambda: driver.find_element(By.ID, "login-username").is_displayed())
    driver.find_element(By.ID, "login-username").send_keys(user)
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    if expect_shell:
        wait_for("the app shell", lambda: driver.find_element(By.ID, "shell").is_displayed())
        wait_for("the signed-in user", lambda: driver.find_element(By.ID, "whoami").text == user)


def go(driver, base, hash_path):
    """Open a page of the app (already logged in: the session survives)."""
    driver.get(f"{base}/#{hash_path}")


def main_text(driver):
    return driver.find_element(By.ID, "main").text


def flash_text(driver):
    els = driver.find_elements(By.ID, "flash")
    return els[0].text if els else ""


def accept_confirm(driver):
    WebDriverWait(driver, TIMEOUT).until(expected_conditions.alert_is_present())
    driver.switch_to.alert.accept()


def fill(form, **values):
    """Set a form's fields by name: text inputs/textareas typed, selects chosen."""
    for name, value in values.items():
        el = form.find_element(By.NAME, name)
        if el.tag_name == "select":
            Select(el).select_by_visible_text(value)
        else:
            el.clear()
            el.send_keys(value)


def submit(form):
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def rows(driver, table_css):
    """The text of each cell of each body row of a table, read in one script
    (tables re-render while polled: element handles would go stale)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]"
        ".map((tr) => [...tr.querySelectorAll(':scope > td')].map((td) => td.innerText.trim()));", table_css)


def click(driver, css):
    """Click an element of a polled, re-rendered part of a page: found and
    clicked in one script (a WebDriver click scrolls first, and a re-render
    in between leaves it holding a replaced element)."""
    wait_for(f"a click on {css}", lambda: driver.execute_script(
        "const el = document.querySelector(arguments[0]); if (el) el.click(); return !!el;", css))


def click_link(driver, text):
    """Follow the link with exactly this text (in a polled table: see click)."""
    wait_for(f"a click on the link {text!r}", lambda: driver.execute_script(
        "const a = [...document.querySelectorAll('#main a')].find((x) => x.textContent === arguments[0]);"
        " if (a) a.click(); return !!a;", text))
