"""/metrics after a known sequence of runs: values and labels."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.observability.conftest import Run

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def playbook(path: str, code: str) -> str:
    return f"""
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: {path.rsplit("/", 1)[-1]}, path: {path}}}
workflow:
  - step: start
    tool: {{kind: python, code: "result = 1"}}
    next:
      arcs:
        - step: second
  - step: second
    tool: {{kind: python, code: "{code}"}}
"""


SCRAPER = "test-scraper-token"


@pytest.fixture(autouse=True)
def _scraper_token(settings) -> None:
    settings.NOETL_METRICS_TOKEN = SCRAPER


def scrape(client: Client) -> Samples:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {SCRAPER}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_runs_steps_and_commands_by_their_labels(
    run: Run, client: Client
) -> None:
    good = f"tests/metrics/good_{uuid.uuid4().hex[:6]}"
    bad = f"tests/metrics/bad_{uuid.uuid4().hex[:6]}"
    before = scrape(client)

    run(playbook(good, "result = 2"))
    run(playbook(good, "result = 2"))
    run(playbook(bad, "raise ValueError('no')"))
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "noetl_executions_started_total", playbook=good) == 2
    assert value(after, "noetl_executions_started_total", playbook=bad) == 1
    finished = "noetl_executions_finished_total"
    assert value(after, finished, playbook=good, status="completed") == 2
    assert value(after, finished, playbook=good, status="failed") == 0
    assert value(after, finished, playbook=bad, status="failed") == 1
    # Three runs of two steps, the last one failing.
    steps = "noetl_step_duration_seconds_count"
    assert delta(steps, tool="python", status="ok") == 5
    assert delta(steps, tool="python", status="error") == 1
    tasks = "noetl_task_duration_seconds_count"
    assert delta(tasks, tool="python", status="ok") == 5
    assert delta(tasks, tool="python", status="error") == 1
    assert delta("noetl_commands_issued_total", pool="default") == 6
    assert delta("noetl_commands_claimed_total", pool="default") == 6
    # Nothing is left queued or in flight once the runs ended.
    assert value(after, "noetl_commands_in_flight", pool="default") == 0


def test_metrics_time_http_requests_by_route_and_status(
    client: Client, db: None
) -> None:
    before = scrape(client)
    client.get("/healthz")
    client.get("/healthz")
    client.get("/api/executions/none/")
    after = scrape(client)

    requests = "noetl_http_requests_total"
    health = {"method": "GET", "route": "/healthz", "status": "200"}
    assert value(after, requests, **health) - value(before, requests, **health) == 2
    detail = {
        "method": "GET",
        "route": "/api/executions/<str:execution_id>/",
        "status": "401",
    }
    assert value(after, requests, **detail) - value(before, requests, **detail) == 1
    timed = value(
        after,
        "noetl_http_request_duration_seconds_count",
        method="GET",
        route="/healthz",
    )
    assert timed >= 2


def test_metrics_need_the_token_or_a_superuser(client: Client, settings, db) -> None:
    settings.NOETL_METRICS_TOKEN = "s3cret-metrics"

    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 401
    allowed = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics")
    assert allowed.status_code == 200
    client.force_login(User.objects.create_user("plain", password="pw"))
    assert client.get("/metrics").status_code == 401
    client.force_login(User.objects.create_superuser("root", password="pw"))
    assert client.get("/metrics").status_code == 200


def test_heartbeat_ages_leave_out_workers_gone_or_long_silent(client: Client, db) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from workers.models import WorkerRegistration, WorkerStatus

    now = timezone.now()
    for id, silent_s, status in (("w-up", 3, WorkerStatus.ACTIVE),
                                 ("w-killed", 3600, WorkerStatus.ACTIVE),
                                 ("w-left", 3, WorkerStatus.GONE)):
        WorkerRegistration.objects.create(
            id=id, name=id, pool="default", token_hash=id, status=status,
            last_seen_at=now - timedelta(seconds=silent_s))
    ages = {dict(labels)["worker"]: age for (name, labels), age in scrape(client).items()
            if name == "noetl_worker_heartbeat_age_seconds"}
    assert set(ages) == {"w-up"} and 3 <= ages["w-up"] < 60
