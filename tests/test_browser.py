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
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.find_elements(By.ID, "no-tenant") or editor_ready(b))


def editor_ready(browser) -> str | None:
    """"codemirror" once the page's editor has loaded, "textarea" if its files could not be."""
    forms = browser.find_elements(By.ID, "run-form")
    return forms[0].get_attribute("data-editor") if forms else None


def editor_input(browser):
    """Where keys typed into the editor go: CodeMirror's input, or the textarea without it."""
    inputs = browser.find_elements(By.CSS_SELECTOR, ".CodeMirror [contenteditable=true]")
    return inputs[0] if inputs else browser.find_element(By.ID, "code")


def type_code(browser, code: str) -> None:
    """Replace the shown file's text by typing it, as a person would."""
    editor = editor_input(browser)
    editor.click()
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(Keys.DELETE)
    editor.send_keys(code)


def set_code(browser, code: str) -> None:
    """Replace the shown file's text as a paste would: no key is interpreted (no indent is added)."""
    if browser.find_elements(By.CSS_SELECTOR, ".CodeMirror"):
        browser.execute_script("document.querySelector('.CodeMirror').CodeMirror.setValue(arguments[0])", code)
    else:
        editor = browser.find_element(By.ID, "code")
        editor.clear()
        editor.send_keys(code)


def code_value(browser) -> str:
    # The textarea: the form's source of truth, which CodeMirror keeps up to date.
    return browser.find_element(By.ID, "code").get_property("value")


def run(browser, code: str | None, language: str = "Python", stdin: str = "") -> None:
    """Submit (with code None, what the editor holds), and wait for the page of the new execution."""
    before = browser.current_url
    submit(browser, code, language, stdin)
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.current_url != before)


def submit(browser, code: str | None, language: str = "Python", stdin: str = "") -> None:
    Select(browser.find_element(By.ID, "language")).select_by_visible_text(language)
    if code is not None:
        set_code(browser, code)
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
    assert editor_ready(browser) == "codemirror"
    # Typed: after the colon the editor indents the next line, as Python needs here.
    type_code(browser, "import sys\nname = sys.stdin.readline().strip()\nfor i in range(3):\nprint(f'{i}: hello, {name}')")
    run(browser, None, stdin="alice\n")
    assert terminal_status(browser) == "completed"
    assert text(browser, "stdout") == "0: hello, alice\n1: hello, alice\n2: hello, alice\n"
    assert text(browser, "exit-code") == "0"
    assert text(browser, "duration").endswith(" s")
    execution = Execution.objects.get()
    assert execution.code.endswith("for i in range(3):\n    print(f'{i}: hello, {name}')")
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


@pytest.fixture
def without_editor_files(browser):
    """The browser refuses the editor's static files, as if they had never been installed."""
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/static/editor/*"]})
    yield browser
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})


@pytest.fixture(params=["codemirror", "textarea"])
def editor_kind(request, browser) -> str:
    if request.param == "textarea":
        request.getfixturevalue("without_editor_files")
    return request.param


def test_tab_indents_and_shift_tab_dedents_the_selected_lines(browser, alice_member, editor_kind):
    sign_in(browser, "alice")
    assert editor_ready(browser) == editor_kind
    editor = editor_input(browser)
    type_code(browser, "a\nb")
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(Keys.TAB)
    assert code_value(browser) == "    a\n    b"
    editor.send_keys(Keys.SHIFT, Keys.TAB)
    assert code_value(browser) == "a\nb"
    # With nothing selected, Tab inserts an indent at the cursor.
    editor.send_keys(Keys.END, Keys.TAB, "c")
    assert code_value(browser) == "a\nb    c"
    # Escape, then Tab, leaves the editor instead.
    editor.send_keys(Keys.ESCAPE, Keys.TAB)
    assert browser.switch_to.active_element != editor
    assert code_value(browser) == "a\nb    c"


def test_ctrl_enter_in_the_editor_runs_the_program(browser, alice_member, worker_process, editor_kind):
    sign_in(browser, "alice")
    assert editor_ready(browser) == editor_kind
    before = browser.current_url
    type_code(browser, "print('from the keyboard')")
    editor_input(browser).send_keys(Keys.CONTROL, Keys.ENTER)
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.current_url != before)
    assert terminal_status(browser) == "completed"
    assert text(browser, "stdout") == "from the keyboard\n"
    assert Execution.objects.get().code == "print('from the keyboard')"


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


def editor_mode(browser) -> tuple[str, str]:
    """The mode CodeMirror was given (the catalog's MIME type) and the one it runs (once loaded)."""
    return tuple(browser.execute_script(
        "const cm = document.querySelector('.CodeMirror').CodeMirror; return [cm.getOption('mode'), cm.getMode().name]"
    ))


def file_tabs(browser) -> list[str]:
    return [tab.text for tab in browser.find_elements(By.CSS_SELECTOR, "#file-tabs .file-tab")]


def choose_language(browser, label: str) -> None:
    Select(browser.find_element(By.ID, "language")).select_by_visible_text(label)


def test_the_editor_mode_follows_the_language(browser, alice_member):
    sign_in(browser, "alice")
    assert editor_ready(browser) == "codemirror"
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: editor_mode(b) == ("text/x-python", "python"))
    assert file_tabs(browser) == ["main.py"]
    # An empty file takes the new language's entry file's name along with its mode.
    for label, mode, name in (("C++ (GCC)", ("text/x-c++src", "clike"), "main.cpp"), ("Java (OpenJDK)", ("text/x-java", "clike"), "Main.java"),
                              ("PHP", ("application/x-httpd-php", "php"), "main.php"), ("Python", ("text/x-python", "python"), "main.py")):
        choose_language(browser, label)
        WebDriverWait(browser, WAIT_SECONDS).until(lambda b: editor_mode(b) == mode)
        assert file_tabs(browser) == [name]
    # The mode is the language's own: Python's keywords are highlighted as keywords.
    set_code(browser, "def f():\n    return 1\n")
    token = "document.querySelector('.CodeMirror').CodeMirror.getTokenTypeAt({line: 0, ch: 1})"
    assert browser.execute_script(f"return {token}") == "keyword"
    # Once the file holds a program, switching the language leaves its name alone.
    choose_language(browser, "Bash")
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: editor_mode(b) == ("text/x-sh", "shell"))
    assert file_tabs(browser) == ["main.py"]
    assert severe_console_messages(browser) == []


def add_file(browser, name: str, content: str) -> None:
    browser.find_element(By.ID, "add-file").click()
    name_input = browser.find_element(By.ID, "file-name")
    name_input.send_keys(Keys.CONTROL, "a")
    name_input.send_keys(name)
    set_code(browser, content)


def set_args(browser, args: str) -> None:
    details = browser.find_element(By.ID, "args-editor")
    if details.get_attribute("open") is None:
        details.find_element(By.TAG_NAME, "summary").click()
    field = browser.find_element(By.ID, "args")
    field.clear()
    field.send_keys(args)


MAIN = "import sys\nimport helper\nprint(helper.greet(sys.argv[1:]))\nprint(sys.argv[1:])\n"
HELPER = "def greet(args):\n    return 'hello ' + ' and '.join(args)\n"


def run_two_files(browser) -> None:
    set_code(browser, MAIN)
    add_file(browser, "helper.py", HELPER)
    assert file_tabs(browser) == ["main.py", "helper.py"]
    # One argument per line, each as it is: no shell splits "a b" or expands "$HOME".
    set_args(browser, "a b\n$HOME\n")
    run(browser, None)
    assert terminal_status(browser) == "completed"
    assert text(browser, "stdout") == "hello a b and $HOME\n['a b', '$HOME']\n"


def test_a_two_file_program_with_arguments_runs_and_comes_back_to_run_again(browser, alice_member, worker_process):
    sign_in(browser, "alice")
    run_two_files(browser)
    execution = Execution.objects.get()
    assert (execution.code, execution.args) == (MAIN, ["a b", "$HOME"])
    assert execution.files == [{"name": "helper.py", "content": HELPER, "encoding": "utf-8"}]
    # The execution's page holds its program again: both files, and the arguments.
    assert editor_ready(browser) == "codemirror"
    assert file_tabs(browser) == ["main.py", "helper.py"]
    assert browser.find_element(By.ID, "args").get_property("value") == "a b\n$HOME"
    browser.find_elements(By.CSS_SELECTOR, "#file-tabs .file-tab")[1].click()
    assert code_value(browser) == HELPER
    assert browser.find_element(By.ID, "file-name").get_property("value") == "helper.py"
    run(browser, None)
    assert terminal_status(browser) == "completed"
    assert text(browser, "stdout") == "hello a b and $HOME\n['a b', '$HOME']\n"
    again = Execution.objects.exclude(id=execution.id).get()
    assert (again.code, again.files, again.args) == (execution.code, execution.files, execution.args)
    # A file removed is not sent: the program then fails to import it.
    browser.find_elements(By.CSS_SELECTOR, "#file-tabs .file-tab")[1].click()
    browser.find_element(By.ID, "remove-file").click()
    assert file_tabs(browser) == ["main.py"]
    run(browser, None)
    assert terminal_status(browser) == "failed"
    assert "ModuleNotFoundError: No module named 'helper'" in text(browser, "stderr")
    assert severe_console_messages(browser) == []


def test_a_bad_file_name_gets_the_servers_answer_and_creates_nothing(browser, alice_member, worker_process):
    sign_in(browser, "alice")
    set_code(browser, "import evil\n")
    add_file(browser, "../evil.py", "print('out of /code')\n")
    # The page says so at once, by the server's rules...
    message = "files: '../evil.py' is not a safe relative file name"
    assert message in browser.find_element(By.ID, "file-error").text
    # ...and the server, which decides, refuses it with the same words.
    browser.find_element(By.ID, "run").click()
    error = WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.find_element(By.ID, "form-error").text)
    assert error.startswith(message), error
    assert Execution.objects.count() == 0
    # A name given twice too.
    browser.find_element(By.ID, "file-name").send_keys(Keys.CONTROL, "a")
    browser.find_element(By.ID, "file-name").send_keys("main.py")
    assert "files: 'main.py' is named twice" in browser.find_element(By.ID, "file-error").text


def test_without_the_editor_files_the_textarea_runs_a_two_file_program(browser, alice_member, worker_process, without_editor_files):
    sign_in(browser, "alice")
    assert editor_ready(browser) == "textarea"
    assert browser.find_elements(By.CSS_SELECTOR, ".CodeMirror") == []
    assert browser.find_element(By.ID, "code").is_displayed()
    run_two_files(browser)
    assert editor_ready(browser) == "textarea"
    assert file_tabs(browser) == ["main.py", "helper.py"]


def test_the_arguments_reach_each_test_of_a_judged_program(browser, alice_member, worker_process):
    sign_in(browser, "alice")
    set_code(browser, "import sys\nprint(input() + sys.argv[1])\n")
    set_args(browser, "!")
    browser.find_element(By.CSS_SELECTOR, "#tests-editor summary").click()
    browser.find_element(By.ID, "add-test").click()
    browser.find_element(By.CSS_SELECTOR, ".test-case .test-stdin").send_keys("hi")
    browser.find_element(By.CSS_SELECTOR, ".test-case .test-expected").send_keys("hi!")
    run(browser, None)
    assert terminal_status(browser) == "completed"
    assert browser.find_element(By.ID, "verdict").get_attribute("data-status") == "accepted"
    execution = Execution.objects.get()
    assert execution.args == ["!"] and execution.tests[0]["args"] == ["!"]


def test_a_test_has_arguments_of_its_own_and_the_float_tolerances_and_the_stop_reach_the_judge(
    browser, alice_member, worker_process
):
    sign_in(browser, "alice")
    set_code(browser, "import sys\nprint(float(input()) * float(sys.argv[1]))\n")
    set_args(browser, "2")
    browser.find_element(By.CSS_SELECTOR, "#tests-editor summary").click()
    Select(browser.find_element(By.ID, "comparison")).select_by_visible_text("float")
    assert browser.find_element(By.ID, "abs-tolerance").is_displayed()
    browser.find_element(By.ID, "abs-tolerance").send_keys("0.5")
    browser.find_element(By.ID, "stop-on-first-failure").click()
    for stdin, expected, args in (("1", "2.4", ""), ("1", "3", "3"), ("1", "9", "")):
        browser.find_element(By.ID, "add-test").click()
        case = browser.find_elements(By.CSS_SELECTOR, ".test-case")[-1]
        case.find_element(By.CLASS_NAME, "test-stdin").send_keys(stdin)
        case.find_element(By.CLASS_NAME, "test-expected").send_keys(expected)
        case.find_element(By.CLASS_NAME, "test-args").send_keys(args)
    run(browser, None)
    assert terminal_status(browser) == "completed"
    execution = Execution.objects.get()
    assert [test["args"] for test in execution.tests] == [["2"], ["3"], ["2"]]
    assert (execution.comparison, execution.abs_tolerance, execution.stop_on_first_failure) == ("float", 0.5, True)
    # 2.0 is within 0.5 of 2.4 and 3.0 is 3: accepted; 2.0 is not 9: the last fails.
    verdicts = [row.get_attribute("data-verdict") for row in browser.find_elements(By.CSS_SELECTOR, "#test-results tbody tr")]
    assert verdicts == ["accepted", "accepted", "wrong_answer"]
    # The execution's page brings its tests back into the editor, with their own arguments.
    assert browser.find_element(By.ID, "abs-tolerance").get_attribute("value") == "0.5"
    assert browser.find_element(By.ID, "stop-on-first-failure").is_selected()
    assert [field.get_attribute("value") for field in browser.find_elements(By.CLASS_NAME, "test-args")] == ["2", "3", "2"]
