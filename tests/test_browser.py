"""The browser page in a real browser: headless Chromium (Debian's) through Selenium, against a live
server, a real worker process and real sandbox containers.

SCREENSHOT=docs/screenshot.png saves the page with a finished result there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from django.core.management import call_command

from executions.models import Execution
from tests.conftest import PASSWORD, ROOT, start_web_server, start_workers, stop_web_server, stop_workers

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Generous: the sandbox runs at most 5 s, but the machine is shared.
WAIT_SECONDS = 90

@pytest.fixture(scope="module")
def driver():
    # A missing browser is a failure, not a skip: CI must never pass without running these.
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("needs Debian's chromium and chromium-driver: run the tests with `make test`")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1150"):
        options.add_argument(argument)
    # An alert must stay open for the test to see it, not be dismissed by the driver.
    options.unhandled_prompt_behavior = "ignore"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield browser
    browser.quit()


@pytest.fixture
def browser(driver, live_server):
    driver.delete_all_cookies()
    driver.get_log("browser")
    driver.base_url = live_server.url
    return driver


def sign_in(browser, username: str) -> None:
    browser.get(browser.base_url + "/")
    assert browser.current_url.startswith(browser.base_url + "/login/")
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.find_elements(By.ID, "run") or b.find_elements(By.ID, "no-tenant"))


def run(browser, code: str, language: str = "Python", stdin: str = "") -> None:
    """Submit, and wait for the page of the new execution."""
    before = browser.current_url
    submit(browser, code, language, stdin)
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.current_url != before)


def submit(browser, code: str, language: str = "Python", stdin: str = "") -> None:
    Select(browser.find_element(By.ID, "language")).select_by_visible_text(language)
    editor = browser.find_element(By.ID, "code")
    editor.clear()
    editor.send_keys(code)
    # The page keeps the stdin of the execution it shows: replace it.
    details = browser.find_element(By.CSS_SELECTOR, "details")
    if stdin and details.get_attribute("open") is None:
        details.find_element(By.TAG_NAME, "summary").click()
    if details.get_attribute("open") is not None:
        browser.find_element(By.ID, "stdin").clear()
        browser.find_element(By.ID, "stdin").send_keys(stdin)
    browser.find_element(By.ID, "run").click()


def terminal_status(browser) -> str:
    terminal = {str(status) for status in Execution.TERMINAL_STATUSES}

    def done(b):
        try:
            status = b.find_element(By.ID, "status").get_attribute("data-status")
        except (NoSuchElementException, StaleElementReferenceException):
            return None
        return status if status in terminal else None

    return WebDriverWait(browser, WAIT_SECONDS).until(done)


def text(browser, element_id: str) -> str:
    # textContent, not .text: the latter is what is rendered, with whitespace folded.
    return browser.find_element(By.ID, element_id).get_attribute("textContent")


def severe_console_messages(browser) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_a_member_runs_a_script_and_sees_its_output(browser, alice_member, worker_process):
    sign_in(browser, "alice")
    # The tab is typed: the editor turns it into an indent, which Python needs here.
    run(browser, "import sys\nname = sys.stdin.readline().strip()\nfor i in range(3):\n\tprint(f'{i}: hello, {name}')\n", stdin="alice\n")
    assert terminal_status(browser) == "completed"
    assert text(browser, "stdout") == "0: hello, alice\n1: hello, alice\n2: hello, alice\n"
    assert text(browser, "exit-code") == "0"
    assert text(browser, "duration").endswith(" s")
    execution = Execution.objects.get()
    assert execution.code.endswith("for i in range(3):\n    print(f'{i}: hello, {name}')\n")
    assert browser.current_url == f"{browser.base_url}/executions/{execution.id}"
    # The history links to it.
    link = browser.find_element(By.CSS_SELECTOR, "#history tr.current a")
    assert link.get_attribute("href") == f"{browser.base_url}/executions/{execution.id}"
    assert severe_console_messages(browser) == []
    if os.environ.get("SCREENSHOT"):
        save_screenshot(browser)


def save_screenshot(browser) -> None:
    """For the README: a second, Bash run with stderr and a non-zero exit, over the first in the history."""
    run(browser, 'echo "files in /code:"\nls /code\necho "no network here" >&2\nexit 3\n', language="Bash")
    terminal_status(browser)
    path = Path(os.environ["SCREENSHOT"])
    path = path if path.is_absolute() else ROOT / path
    path.parent.mkdir(parents=True, exist_ok=True)
    # The whole page, history included, in one picture.
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1100, height + 150)
    browser.find_element(By.TAG_NAME, "body").screenshot(str(path))


def test_the_result_follows_the_execution_without_a_reload(browser, alice_member):
    sign_in(browser, "alice")
    run(browser, "print('done')")
    # No worker yet, so the execution is surely still queued when its page first shows it.
    assert browser.find_element(By.ID, "status").get_attribute("data-status") == "queued"
    browser.execute_script("window.sameDocument = true")
    workers = start_workers(1)
    try:
        assert terminal_status(browser) == "completed"
    finally:
        stop_workers(workers)
    assert text(browser, "stdout") == "done\n"
    assert browser.execute_script("return window.sameDocument") is True
    # The history row of this execution follows too.
    assert browser.find_element(By.CSS_SELECTOR, "#history tr.current .status").get_attribute("data-status") == "completed"


def test_program_output_is_shown_as_text_never_run(browser, alice_member, worker_process):
    sign_in(browser, "alice")
    payload = '<script>alert(1)</script><img src=x onerror="document.title=\'pwned\'">'
    run(browser, f"import sys\nprint({payload!r})\nprint({payload!r}, file=sys.stderr)\n")
    assert terminal_status(browser) == "completed"
    assert text(browser, "stdout") == payload + "\n"
    assert text(browser, "stderr") == payload + "\n"
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
    assert browser.find_elements(By.CSS_SELECTOR, "#result script, #result img") == []
    assert browser.title != "pwned"
    # After a reload the same result comes from the server's rendering of the page: still text.
    browser.refresh()
    assert terminal_status(browser) == "completed"
    assert text(browser, "stdout") == payload + "\n"
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
    assert browser.find_elements(By.CSS_SELECTOR, "#result script, #result img, #history img") == []
    assert severe_console_messages(browser) == []


def test_a_failing_script_and_a_bad_submission(browser, alice_member, worker_process):
    sign_in(browser, "alice")
    run(browser, "echo oops >&2; exit 4", language="Bash")
    assert terminal_status(browser) == "failed"
    assert text(browser, "stderr") == "oops\n"
    assert text(browser, "exit-code") == "4"
    # The API's own validation message, shown on the page; nothing is created.
    submit(browser, "   ")
    error = WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.find_element(By.ID, "form-error").text)
    assert "must not be empty" in error
    assert Execution.objects.count() == 1


def test_tab_indents_and_shift_tab_dedents_the_selected_lines(browser, alice_member):
    sign_in(browser, "alice")
    editor = browser.find_element(By.ID, "code")
    editor.clear()
    editor.send_keys("a\nb")
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(Keys.TAB)
    assert editor.get_property("value") == "    a\n    b"
    editor.send_keys(Keys.SHIFT, Keys.TAB)
    assert editor.get_property("value") == "a\nb"
    # Escape, then Tab, leaves the editor instead.
    editor.send_keys(Keys.ESCAPE, Keys.TAB)
    assert browser.switch_to.active_element != editor
    assert editor.get_property("value") == "a\nb"


def test_a_user_without_a_membership_gets_the_message(browser, outsider):
    sign_in(browser, "carol")
    message = browser.find_element(By.ID, "no-tenant").text
    assert "Your account belongs to no tenant" in message
    assert browser.find_elements(By.ID, "run") == []


@pytest.fixture
def streaming_browser(driver, transactional_db):
    """The browser against the project's own web server, which streams events: the page follows
    the execution's event stream there (Django's live server cannot stream, so the page polls it)."""
    call_command("collectstatic", "--noinput", verbosity=0)
    process, port = start_web_server(WEB_WORKERS="1", WEB_THREADS="2")
    driver.delete_all_cookies()
    driver.get_log("browser")
    driver.base_url = f"http://127.0.0.1:{port}"
    yield driver
    stop_web_server(process)


def test_output_shows_as_the_program_writes_it(streaming_browser, alice_member, worker_process):
    browser = streaming_browser
    # Signed in as the test client is: the server's password hasher is not the tests' fast one.
    browser.get(browser.base_url + "/login/")
    browser.add_cookie({"name": "sessionid", "value": alice_member.client.cookies["sessionid"].value})
    browser.get(browser.base_url + "/")
    run(browser, "import time\nfor i in range(8):\n\tprint(f'line {i}')\n\ttime.sleep(0.5)\n")
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: "line 1\n" in text(b, "stdout"))
    # Shown while the program still runs, not with the result.
    assert browser.find_element(By.ID, "status").get_attribute("data-status") == "running"
    assert "line 7" not in text(browser, "stdout")
    assert terminal_status(browser) == "completed"
    assert text(browser, "stdout") == "".join(f"line {i}\n" for i in range(8))
    assert severe_console_messages(browser) == []
