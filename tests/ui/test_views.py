"""The browser UI's pages without a browser: who may open them, what they
show, the actions on a run, live polls with ETags, and a fixed number of
SQL statements per list however many rows it shows."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from catalog import services as catalog
from executions import control, queries, views
from executions.models import Execution, StepRun
from tests.api.conftest import playbook_yaml
from tests.grants import grant
from tests.ui.conftest import TWO_STEPS, work
from workers.models import WorkerRegistration

Start = Callable[..., Execution]


def html(response: Any) -> str:
    assert response.status_code == 200, response.content[:2000]
    return response.content.decode()


# -- who may open what ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/runs/",
        "/runs/live/",
        "/runs/x/",
        "/runs/x/live/",
        "/runs/x/events/",
        "/runs/x/steps/start/",
        "/runs/x/rerun/",
        "/catalog/",
        "/catalog/playbook/a/b",
        "/catalog/diff/a/b",
        "/workers/",
        "/schedules/",
    ],
)
def test_an_anonymous_visitor_is_sent_to_log_in(db: None, url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{settings.LOGIN_URL}?next={url}")


def test_an_anonymous_post_starts_and_cancels_nothing(start: Start) -> None:
    run = start()
    assert Client().post(f"/runs/{run.id}/cancel/").status_code == 302
    assert Client().post(f"/catalog/run/{run.path}").status_code == 302
    run.refresh_from_db()
    assert run.status == "running" and Execution.objects.count() == 1


def test_signing_in_leads_back_to_the_page_asked_for(member: User) -> None:
    client = Client()
    response = client.post(
        settings.LOGIN_URL, {"username": "member", "password": "pw", "next": "/runs/"}
    )
    assert response.status_code == 302 and response["Location"] == "/runs/"
    assert html(client.get("/runs/")).count('class="whoami"') == 1
    client.post("/api/auth/logout/")  # the form every page has
    assert client.get("/runs/").status_code == 302


def test_with_auth_disabled_pages_open_to_anyone(settings: Any, start: Start) -> None:
    settings.NOETL_AUTH_DISABLED = True
    run = start()
    assert run.id in html(Client().get("/runs/"))


def test_path_rules_hide_runs_and_playbooks(browser: Client, start: Start) -> None:
    # The member's group is granted tests/* only.
    catalog.register(playbook_yaml("secret/hidden"))
    hidden = start("secret/hidden")
    shown = start()

    listed = html(browser.get("/runs/"))
    assert shown.id in listed and hidden.id not in listed
    assert 'data-status="running">1<' in html(browser.get("/"))
    assert "secret/hidden" not in html(browser.get("/catalog/"))
    assert browser.get(f"/runs/{hidden.id}/").status_code == 403
    assert browser.get(f"/runs/{hidden.id}/live/").status_code == 403
    assert browser.get("/catalog/playbook/secret/hidden").status_code == 403
    live = browser.get(f"/runs/live/?ids={hidden.id},{shown.id}").json()
    assert list(live["runs"]) == [shown.id]


def test_a_user_who_may_not_execute_sees_no_actions_and_is_refused(
    browser: Client, start: Start, member: User
) -> None:
    run = start()
    grant(member, "tests/*", execute=False, modify=False)

    page = html(browser.get(f"/runs/{run.id}/"))
    assert 'id="cancel"' not in page and 'id="rerun"' not in page
    assert "Start run" not in html(browser.get(f"/catalog/playbook/{run.path}"))
    assert browser.post(f"/runs/{run.id}/cancel/").status_code == 403
    assert browser.post(f"/runs/{run.id}/rerun/").status_code == 403
    assert (
        browser.post(f"/catalog/run/{run.path}", {"payload": "{}"}).status_code == 403
    )
    run.refresh_from_db()
    assert run.status == "running" and Execution.objects.count() == 1


# -- the runs list -------------------------------------------------------------


def test_the_runs_list_shows_status_playbook_duration_and_trigger(
    browser: Client, start: Start, two_steps: str
) -> None:
    done = start(two_steps, kind="schedule", schedule="nightly")
    work(done)
    running = start()

    page = html(browser.get("/runs/"))
    assert page.index(running.id) < page.index(done.id)  # newest first
    assert f'data-run="{done.id}" data-status="completed"' in page
    assert "tests/ui/two@1" in page and "tests/ui/hello@1" in page
    assert "schedule · nightly" in page
    assert re.search(r'class="duration">\d+(\.\d)? m?s</td>', page)


def test_the_runs_list_filters_by_status_playbook_and_time(
    browser: Client, start: Start, two_steps: str
) -> None:
    done = start(two_steps)
    work(done)
    running = start()
    old = start()
    Execution.objects.filter(id=old.id).update(
        created_at=timezone.now() - timedelta(days=3)
    )

    by_status = html(browser.get("/runs/?status=completed"))
    assert done.id in by_status and running.id not in by_status
    by_path = html(browser.get("/runs/?path=tests/ui/hello"))
    assert running.id in by_path and old.id in by_path and done.id not in by_path
    recent = html(browser.get("/runs/?since=24h"))
    assert running.id in recent and old.id not in recent
    bad = html(browser.get("/runs/?since=yesterday"))
    assert "is not a date and time" in bad and old.id in bad


def test_the_runs_list_pages_by_keyset(
    browser: Client, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "RUNS_PAGE", 2)
    runs = [start() for _ in range(5)]

    first = html(browser.get("/runs/?status=running"))
    assert runs[4].id in first and runs[3].id in first and runs[2].id not in first
    assert f"status=running&before={runs[3].id}" in first
    second = html(browser.get(f"/runs/?status=running&before={runs[3].id}"))
    assert runs[2].id in second and runs[1].id in second
    last = html(browser.get(f"/runs/?before={runs[1].id}"))
    assert runs[0].id in last and 'rel="next"' not in last


def test_the_runs_list_costs_the_same_statements_for_few_or_many_runs(
    browser: Client, start: Start, django_assert_num_queries: Any
) -> None:
    start()
    browser.get("/runs/")  # the session's first read is behind us
    # The session, the user, the user's path grants, then one statement for
    # the page of runs.
    with django_assert_num_queries(4):
        html(browser.get("/runs/"))
    for _ in range(6):
        start()
    with django_assert_num_queries(4):
        html(browser.get("/runs/"))


def test_the_live_list_reports_changes_and_answers_304_when_nothing_changed(
    browser: Client, start: Start, two_steps: str
) -> None:
    run = start(two_steps)
    url = f"/runs/live/?ids={run.id}&newest={run.id}"
    first = browser.get(url)
    assert first.json() == {
        "runs": {
            run.id: {"status": "running", "duration_ms": pytest.approx(0, abs=1e6)}
        },
        "newer": False,
    }
    work(run)
    changed = browser.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.json()["runs"][run.id]["status"] == "completed"
    same = browser.get(url, HTTP_IF_NONE_MATCH=changed["ETag"])
    assert same.status_code == 304 and same.content == b""

    start()
    assert browser.get(url).json()["newer"] is True


# -- one run ---------------------------------------------------------------------


def test_the_run_page_draws_the_graph_from_step_run(
    browser: Client, start: Start, two_steps: str
) -> None:
    run = start(two_steps)
    page = html(browser.get(f"/runs/{run.id}/"))
    assert 'class="node status-running" data-step="start"' in page
    assert 'class="node status-pending" data-step="finish"' in page
    assert 'id="cancel"' in page

    # The graph reads the projection: a row changed by hand shows as such.
    StepRun.objects.filter(execution=run, step="finish").update(status="skipped")
    page = html(browser.get(f"/runs/{run.id}/"))
    assert 'class="node status-skipped" data-step="finish"' in page


def test_a_finished_run_shows_result_timeline_events_and_step_output(
    browser: Client, start: Start, two_steps: str
) -> None:
    run = start(two_steps, kind="api")
    work(run, log="hello")
    page = html(browser.get(f"/runs/{run.id}/"))

    assert 'id="run-status" class="status status-completed"' in page
    assert 'class="node status-completed" data-step="start"' in page
    assert 'class="node status-completed" data-step="finish"' in page
    assert "&quot;step&quot;: &quot;finish&quot;" in page  # the result
    assert page.count('class="bar status-completed"') == 2
    assert "workflow.completed" in page and 'id="cancel"' not in page

    step = html(browser.get(f"/runs/{run.id}/steps/start/?partial=1"))
    assert step.startswith('<section class="step" data-step="start">')
    assert "&quot;step&quot;: &quot;start&quot;" in step
    assert "hello from start" in step
    assert browser.get(f"/runs/{run.id}/steps/nope/").status_code == 404


def test_a_large_result_is_shown_cut(
    browser: Client, start: Start, two_steps: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = start(two_steps)
    work(run)
    monkeypatch.setattr(views, "SHOWN", 10)
    page = html(browser.get(f"/runs/{run.id}/"))
    assert "{\n  &quot;step&quot;\n… (" in page and "more characters)" in page


def test_a_failed_run_shows_its_error_and_the_failed_step(
    browser: Client, start: Start, two_steps: str
) -> None:
    run = start(two_steps)
    work(run, fail="start")
    assert run.status == "failed"

    page = html(browser.get(f"/runs/{run.id}/"))
    assert "start broke: ZeroDivisionError" in page
    assert 'class="node status-failed" data-step="start"' in page
    panel = html(browser.get(f"/runs/{run.id}/steps/start/"))
    assert "python: start broke: ZeroDivisionError" in panel
    assert run.id in html(browser.get("/"))  # among the recent failures


def test_a_loop_shows_its_chunks_of_iterations_on_the_timeline(
    browser: Client, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog.register(
        "apiVersion: noetl.io/v2\nkind: Playbook\n"
        "metadata: {name: loop, path: tests/ui/loop}\n"
        "workflow:\n"
        "  - step: start\n"
        "    loop: {in: '{{ [1, 2, 3, 4, 5] }}', iterator: x, mode: sequential,"
        " chunk: 2}\n"
        "    tool: {kind: python, code: 'result = 1'}\n"
    )
    run = start("tests/ui/loop")
    for _ in range(3):
        tasks = control.service.claim("w", pool="default", limit=1)
        for task in tasks:
            iterations = [
                {"index": it["index"], "status": "ok", "result": 1, "ms": 2.0}
                for it in task["iterations"]
            ]
            control.service.report(
                {
                    "command_id": task["command_id"],
                    "delivery": task["delivery"],
                    "iterations": iterations,
                },
                "w",
            )
    run.refresh_from_db()
    assert run.status == "completed"

    page = html(browser.get(f"/runs/{run.id}/"))
    chunks = [
        (int(a), int(b)) for a, b in re.findall(r'title="iterations (\d+)–(\d+):', page)
    ]
    covered = [i for first, last in chunks for i in range(first, last + 1)]
    assert len(chunks) > 1 and sorted(covered) == [0, 1, 2, 3, 4]
    assert "↻ start" in page  # a loop step is marked in the graph
    assert f"{len(chunks)} chunks" in page

    # A long loop draws its first chunks only, and says so.
    monkeypatch.setattr(queries, "TIMELINE_CHUNKS", 2)
    capped = html(browser.get(f"/runs/{run.id}/"))
    assert "the first 2 chunks" in capped


def test_the_event_list_pages_by_seq(
    browser: Client, start: Start, two_steps: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "EVENTS_PAGE", 2)
    run = start(two_steps)
    work(run)

    first = html(browser.get(f"/runs/{run.id}/"))
    assert 'data-seq="2"' in first and 'data-seq="3"' not in first
    assert f"/runs/{run.id}/events/?after_seq=2" in first
    second = html(browser.get(f"/runs/{run.id}/events/?after_seq=2"))
    assert 'data-seq="3"' in second and 'data-seq="4"' in second
    assert 'data-seq="2"' not in second


def test_the_run_poll_costs_one_read_when_nothing_happened(
    browser: Client, start: Start, two_steps: str, django_assert_num_queries: Any
) -> None:
    run = start(two_steps)
    url = f"/runs/{run.id}/live/?after_seq=1"
    first = browser.get(url)
    body = first.json()
    assert body["status"] == "running" and body["steps"]["start"] == "running"
    assert [e["kind"] for e in body["events"]] == ["command.issued"]

    # The session, the user, the user's grants, the run's head: then 304.
    with django_assert_num_queries(4):
        same = browser.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert same.status_code == 304

    work(run)
    ended = browser.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).json()
    assert ended["status"] == "completed" and ended["steps"]["finish"] == "completed"
    assert ended["events"][-1]["kind"] == "workflow.completed"


def test_the_run_page_costs_the_same_statements_for_few_or_many_events(
    browser: Client, start: Start, two_steps: str, django_assert_num_queries: Any
) -> None:
    short = start(two_steps)
    work(short, log="x")
    browser.get(f"/runs/{short.id}/")
    # The session, the user, the run, its start, its steps, its loop chunks,
    # whether it has sub-runs and one page of events (the playbook's graph
    # is cached).
    with django_assert_num_queries(9) as short_page:
        html(browser.get(f"/runs/{short.id}/"))
    catalog.register(TWO_STEPS.replace("tests/ui/two", "tests/ui/three"))
    longer = start("tests/ui/three")
    for _ in range(30):
        control.set_variable(longer.id, "v", 1, user=None)
    with django_assert_num_queries(len(short_page.captured_queries)):
        html(browser.get(f"/runs/{longer.id}/"))


def test_a_run_links_to_the_sub_playbook_runs_it_started(
    browser: Client, start: Start, two_steps: str
) -> None:
    parent = start()
    child, _ = control.service.start_execution(two_steps, parent=parent)
    other = start(two_steps)

    page = html(browser.get(f"/runs/{parent.id}/"))
    assert f"/runs/?parent={parent.id}" in page
    assert "/runs/?parent=" not in html(browser.get(f"/runs/{other.id}/"))
    listed = html(browser.get(f"/runs/?parent={parent.id}"))
    assert child.id in listed and other.id not in listed and parent.id in listed
    assert f'data-run="{parent.id}"' not in listed
    assert f"/runs/{parent.id}/" in html(browser.get(f"/runs/{child.id}/"))


# -- actions ---------------------------------------------------------------------


def test_cancelling_a_run_from_its_page(browser: Client, start: Start) -> None:
    run = start()
    response = browser.post(f"/runs/{run.id}/cancel/", follow=True)
    page = html(response)
    assert "Cancelled." in page and 'class="status status-cancelled"' in page
    assert 'class="node status-cancelled" data-step="start"' in page

    again = html(browser.post(f"/runs/{run.id}/cancel/", follow=True))
    assert f"execution {run.id} is already cancelled" in again


def test_a_cancel_must_be_posted(browser: Client, start: Start) -> None:
    run = start()
    assert browser.get(f"/runs/{run.id}/cancel/").status_code == 405


def test_rerunning_starts_the_same_version_with_the_same_input(
    browser: Client, start: Start
) -> None:
    run = start(payload={"n": 7})
    response = browser.post(f"/runs/{run.id}/rerun/")
    again = Execution.objects.exclude(id=run.id).get()
    assert response["Location"] == f"/runs/{again.id}/"
    assert again.version == run.version
    assert control.queries.original_input(again) == {"n": 7}
    page = html(browser.get(response["Location"]))
    assert "rerun by member of" in page and run.id in page


def test_rerunning_with_an_edited_payload(browser: Client, start: Start) -> None:
    run = start(payload={"n": 7})
    form = html(browser.get(f"/runs/{run.id}/rerun/"))
    assert "&quot;n&quot;: 7" in form

    bad = browser.post(f"/runs/{run.id}/rerun/", {"payload": '{"n": '})
    assert bad.status_code == 400
    assert "The payload is not valid JSON" in bad.content.decode()
    listed = browser.post(f"/runs/{run.id}/rerun/", {"payload": "[1]"})
    assert "must be a JSON object" in listed.content.decode()
    assert Execution.objects.count() == 1

    browser.post(f"/runs/{run.id}/rerun/", {"payload": '{"n": 9}'})
    again = Execution.objects.exclude(id=run.id).get()
    assert control.queries.original_input(again) == {"n": 9}


# -- the catalog -----------------------------------------------------------------


def test_the_catalog_lists_playbooks_and_shows_versions_and_yaml(
    browser: Client, two_steps: str
) -> None:
    catalog.register(TWO_STEPS.replace("n: 2", "n: 3"))
    listed = html(browser.get("/catalog/"))
    assert "tests/ui/two" in listed and "v2" in listed
    assert "tests/ui" in html(browser.get("/catalog/?path_prefix=tests/"))
    assert "tests/ui/two" not in html(browser.get("/catalog/?path_prefix=other/"))

    page = html(browser.get(f"/catalog/playbook/{two_steps}"))
    assert (
        '<a href="?version=2">v2</a> (shown)' in page
        and "workload: {n: 3, label: plain}" in page
    )
    assert "vendor/codemirror/mode/yaml/yaml.js" in page
    older = html(browser.get(f"/catalog/playbook/{two_steps}?version=1"))
    assert (
        '<a href="?version=1">v1</a> (shown)' in older
        and "workload: {n: 2, label: plain}" in older
    )
    assert browser.get("/catalog/playbook/tests/no/such").status_code == 404


def test_the_diff_shows_lines_removed_and_added(
    browser: Client, two_steps: str
) -> None:
    catalog.register(TWO_STEPS.replace("n: 2", "n: 3"))
    page = html(browser.get(f"/catalog/diff/{two_steps}"))
    assert '<span class="removed">-workload: {n: 2, label: plain}</span>' in page
    assert '<span class="added">+workload: {n: 3, label: plain}</span>' in page
    same = html(browser.get(f"/catalog/diff/{two_steps}?a=2&b=2"))
    assert "the same text" in same


def test_the_run_form_is_prefilled_from_the_workload_and_starts_a_run(
    browser: Client, two_steps: str
) -> None:
    page = html(browser.get(f"/catalog/playbook/{two_steps}"))
    assert "&quot;n&quot;: 2,\n  &quot;label&quot;: &quot;plain&quot;" in page

    response = browser.post(
        f"/catalog/run/{two_steps}",
        {"version": "1", "payload": '{"n": 5, "label": "plain"}'},
    )
    run = Execution.objects.get()
    assert response["Location"] == f"/runs/{run.id}/"
    # Only what differs from the workload is the run's input.
    assert control.queries.original_input(run) == {"n": 5}

    bad = browser.post(f"/catalog/run/{two_steps}", {"payload": "{nope"})
    assert bad.status_code == 400 and "not valid JSON" in bad.content.decode()
    assert Execution.objects.count() == 1


def test_the_catalog_costs_the_same_statements_for_few_or_many_playbooks(
    browser: Client, django_assert_num_queries: Any
) -> None:
    catalog.register(playbook_yaml("tests/ui/a"))
    browser.get("/catalog/")
    # The session, the user, the user's grants, the page of playbooks.
    with django_assert_num_queries(4):
        html(browser.get("/catalog/"))
    for name in "bcdef":
        catalog.register(playbook_yaml(f"tests/ui/{name}"))
    with django_assert_num_queries(4):
        html(browser.get("/catalog/"))


# -- workers and the dashboard -----------------------------------------------------


def test_workers_show_live_stale_or_gone(browser: Client) -> None:
    now = timezone.now()
    for id, name, silent_s in (("w-live", "alpha", 0), ("w-stale", "beta", 120),
                               ("w-killed", "gamma", 3600)):
        WorkerRegistration.objects.create(
            id=id, name=name, pool=f"pool-{name}", token_hash=id,
            last_seen_at=now - timedelta(seconds=silent_s))
    page = html(browser.get("/workers/"))
    assert "alpha" in page and "beta" in page and "gamma" in page
    assert page.count(">live</span>") == 1 and page.count(">stale</span>") == 1
    # A worker killed an hour ago is gone, not stale forever.
    assert page.count(">gone</span>") == 1
    # Pools are those of the workers present, registered pool rows or not.
    assert "<code>pool-alpha</code>, <code>pool-beta</code>." in page
    dashboard = html(browser.get("/"))
    assert "<strong>1</strong> live" in dashboard
    assert '<strong class="error">1</strong> stale' in dashboard


def test_the_dashboard_counts_runs_by_status(
    browser: Client, start: Start, two_steps: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        start()
    done = start(two_steps)
    work(done)
    page = html(browser.get("/"))
    assert 'data-status="running">3<' in page
    assert 'data-status="completed">1<' in page

    # Counts stop at the cap rather than counting a long history.
    monkeypatch.setattr(views, "COUNT_CAP", 2)
    assert 'data-status="running">2+<' in html(browser.get("/"))
