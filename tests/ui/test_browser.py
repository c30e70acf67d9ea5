"""The browser UI driven through a real headless Chromium (Debian's
``chromium``, installed by scripts/install-browser) with Playwright: log in,
register a playbook in the admin, run it from the catalog and watch it
finish, read a failed run's error, cancel a long run.

The pages are served by pytest-django's live server; runs execute in this
process through the embedded runtime (its writer thread and in-process
workers) over the test database. Screenshots go to $NOETL_TEST_ARTIFACTS
(default tests/artifacts/)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect, sync_playwright

from catalog import services as catalog
from executions import control
from executions.embedded import EmbeddedRuntime
from executions.models import Execution

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(
    os.environ.get("NOETL_TEST_ARTIFACTS")
    or Path(__file__).resolve().parents[1] / "artifacts"
)
GREEN = "rgb(232, 245, 233)"  # a completed step's fill (static/ui/ui.css)

INVALID = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: hello, path: tests/browser/hello}
workload: {n: 2}
workflow:
  - step: start
    tool: 5
"""
HELLO = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: hello, path: tests/browser/hello}
workload: {n: 2}
workflow:
  - step: start
    tool: {kind: python, input: {n: '{{ n }}'}, code: "print('doubling', n); result = {'n': n * 2}"}
    next: [{step: finish}]
  - step: finish
    tool: {kind: python, code: "result = 'done'"}
"""
BROKEN = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: broken, path: tests/browser/broken}
workflow:
  - step: start
    tool: {kind: python, code: "result = 1 / 0"}
"""
SLOW = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: slow, path: tests/browser/slow}
workflow:
  - step: start
    tool: {kind: python, code: "import time; time.sleep(60); result = 1"}
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    # Playwright's sync API runs an event loop in this thread; the ORM calls
    # the tests make between browser calls are still plain sync calls.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def runtime(live_server: Any, transactional_db: None) -> Iterator[EmbeddedRuntime]:
    runtime = EmbeddedRuntime(workers=2, task_timeout_s=120, duty_interval_s=0.5)
    # A cancelled command is noticed at the next heartbeat.
    runtime.worker.heartbeat_s = 0.5
    runtime.start()
    yield runtime

    # Nothing left running into the next test: cancel what still runs and
    # let the heartbeat stop its commands before the runtime stops.
    for execution_id in Execution.objects.filter(status="running").values_list(
        "id", flat=True
    ):
        runtime.cancel(execution_id, "the test ended")
    deadline = time.monotonic() + 10
    while runtime.worker.busy() and time.monotonic() < deadline:
        time.sleep(0.1)
    runtime.stop()


@pytest.fixture
def page(
    chromium: Browser, live_server: Any, runtime: EmbeddedRuntime
) -> Iterator[Page]:
    User.objects.create_superuser("operator", "op@example.com", "pw")
    context = chromium.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page: Page, then: str) -> None:
    page.goto(then)
    # The sign-in page is the API's (settings.LOGIN_URL).
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", "pw")
    page.click("form [type=submit]")
    expect(page).to_have_url(re.compile(re.escape(then) + "$"))


def set_editor(page: Page, text: str) -> None:
    page.evaluate(
        "text => document.querySelector('.CodeMirror').CodeMirror.setValue(text)", text
    )


def run_id(page: Page) -> str:
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def test_an_operator_registers_a_playbook_runs_it_and_watches_it_finish(
    page: Page,
) -> None:
    log_in(page, "/runs/")

    # The admin refuses the invalid playbook, naming the line, then takes the fix.
    page.goto("/admin/catalog/playbookversion/add/")
    set_editor(page, INVALID)
    page.click("input[name=_save]")
    expect(page.locator(".errorlist")).to_contain_text("Line 7: workflow[0]")
    expect(page.locator(".noetl-error-line")).to_have_count(1)
    shot(page, "01-admin-invalid-playbook")
    set_editor(page, HELLO)
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")

    # The catalog shows it with a run form prefilled from the workload.
    page.goto("/catalog/")
    page.click("text=tests/browser/hello")
    payload = page.locator("textarea[name=payload]")
    expect(payload).to_have_value('{\n  "n": 2\n}')
    expect(page.locator(".yaml .CodeMirror")).to_contain_text("doubling")
    shot(page, "02-catalog-playbook")
    payload.fill('{"n": 21}')
    page.click("#start-run")

    # The run page follows the run to its end: every step turns green.
    expect(page.locator("#run-status")).to_have_text("completed")
    nodes = page.locator("#graph a.node")
    expect(nodes).to_have_count(2)
    for index in range(2):
        expect(nodes.nth(index)).to_have_class("node status-completed")
        fill = (
            nodes.nth(index)
            .locator("rect")
            .evaluate("rect => getComputedStyle(rect).fill")
        )
        assert fill == GREEN
    expect(page.locator("#run-result")).to_contain_text('"done"')
    expect(page.locator("#timeline .bar.status-completed")).to_have_count(2)
    expect(page.locator("#events")).to_contain_text("workflow.completed")

    # A step's result and its captured output open beside the graph.
    page.click("#graph a.node[data-step=start]")
    expect(page.locator("#step-panel")).to_contain_text('"n": 42')
    expect(page.locator("#step-panel .log")).to_contain_text("doubling 21")
    shot(page, "03-run-completed")
    execution = Execution.objects.get(id=run_id(page))
    assert execution.status == "completed"

    page.goto("/runs/")
    expect(page.locator(f"tr[data-run='{execution.id}'] .status")).to_have_text(
        "completed"
    )
    shot(page, "04-runs-list")


def test_a_failed_run_shows_its_error(page: Page, runtime: EmbeddedRuntime) -> None:
    catalog.register(BROKEN)
    failed_id = runtime.start_run("tests/browser/broken")
    assert runtime.wait(failed_id, timeout=60) == "failed"
    log_in(page, "/")

    expect(page.locator("table.failures")).to_contain_text("tests/browser/broken")
    shot(page, "05-dashboard")
    page.click(f"a[href='/runs/{failed_id}/']")
    expect(page.locator("#run-status")).to_have_text("failed")
    expect(page.locator("#run-error")).to_contain_text("ZeroDivisionError")
    expect(page.locator("#graph a.node[data-step=start]")).to_have_class(
        "node status-failed"
    )
    shot(page, "06-run-failed")


def test_a_long_run_is_cancelled_from_its_page(
    page: Page, runtime: EmbeddedRuntime
) -> None:
    catalog.register(SLOW)
    log_in(page, "/catalog/")
    page.goto("/catalog/playbook/tests/browser/slow")
    page.click("#start-run")

    # The step is seen running (the page polls), then the run is cancelled.
    expect(page.locator("#graph a.node[data-step=start]")).to_have_class(
        "node status-running"
    )
    expect(page.locator("#run-status")).to_have_text("running")
    shot(page, "07-run-running")
    page.click("#cancel")
    expect(page.locator(".messages")).to_contain_text("Cancelled.")
    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page.locator("#run-error")).to_contain_text("cancelled by operator")
    expect(page.locator("#cancel")).to_have_count(0)
    expect(page.locator("#graph a.node[data-step=start]")).to_have_class(
        "node status-cancelled"
    )
    shot(page, "08-run-cancelled")
    assert Execution.objects.get(id=run_id(page)).status == "cancelled"


def test_the_runs_list_follows_runs_without_a_reload(
    page: Page, runtime: EmbeddedRuntime
) -> None:
    catalog.register(SLOW)
    catalog.register(BROKEN)
    slow_id = runtime.start_run("tests/browser/slow")
    log_in(page, "/runs/")
    row = page.locator(f"tr[data-run='{slow_id}'] .status")
    expect(row).to_have_text("running")

    # A run ending elsewhere changes its row; a new run is announced.
    control.cancel_tree(slow_id, user=None, reason="stopped by a test")
    expect(row).to_have_text("cancelled")
    runtime.start_run("tests/browser/broken")
    expect(page.locator("#newer")).to_be_visible()
    shot(page, "09-runs-list-live")
    page.click("#newer a")
    expect(page.locator("tbody tr")).to_have_count(2)
