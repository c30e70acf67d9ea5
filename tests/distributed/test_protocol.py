"""The worker protocol's guarantees, through its HTTP views, on PostgreSQL:
registration and tokens, idempotent claims and reports, fencing of stale
deliveries, report-and-claim, lease expiry and the three-strikes rule,
credentials only with a lease."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from catalog import services as catalog
from credentials.store import save_credential
from executions import service
from executions.engine.values import dumps, loads
from executions.models import Command, Event, Execution

pytestmark = pytest.mark.django_db

ENROLL = "test-enrollment-token"
CHAIN = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: proto_chain, path: tests/proto_chain}
workflow:
  - step: start
    tool: {kind: python, code: "result = {'n': 1}"}
    next: {arcs: [{step: second}]}
  - step: second
    tool: {kind: python, code: "result = {'n': 2}"}
"""


@pytest.fixture(autouse=True)
def _enrollment(settings):
    settings.NOETL_ENROLLMENT_TOKEN = ENROLL


def call(client: Client, method: str, path: str, body: Any = None, token: str = "",
         **extra: Any):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    kwargs: dict[str, Any] = {**headers, **extra}
    if body is not None:
        kwargs.update(data=dumps(body), content_type="application/json")
    response = getattr(client, method)(f"/api/worker/v1/{path}", **kwargs)
    return response.status_code, (loads(response.content)
                                  if response["Content-Type"] == "application/json" else
                                  response.content)


@pytest.fixture
def worker(client) -> dict[str, Any]:
    status, reply = call(client, "post", "workers", {"name": "t", "capacity": 4}, ENROLL)
    assert status == 201, reply
    return reply


@pytest.fixture
def run() -> Execution:
    version, _ = catalog.register(CHAIN)
    execution, _ = service.start_execution(version.path)
    return execution


def _claim(client, worker, **body):
    status, reply = call(client, "post", "claim", {"max": 1, **body}, worker["token"])
    assert status == 200, reply
    return reply["tasks"]


def _ok_report(task: dict[str, Any], n: int) -> dict[str, Any]:
    return {"command_id": task["command_id"], "delivery": task["delivery"], "status": "ok",
            "result": {"status": "ok", "data": {"n": n}}, "duration_ms": 1.0}


def test_registration_needs_the_enrollment_token(client):
    status, reply = call(client, "post", "workers", {"name": "x"}, "wrong")
    assert status == 401 and "enrollment token" in reply["message"]
    status, reply = call(client, "post", "claim", {"max": 1}, "not-a-worker-token")
    assert status == 401


def test_every_answer_carries_the_protocol_version(client, worker):
    status, reply = call(client, "post", "heartbeat", {"held": []}, worker["token"])
    assert status == 200 and reply["protocol"] == 1
    assert worker["lease_ttl_s"] > 0 and worker["heartbeat_s"] > 0


def test_a_repeated_claim_returns_the_first_grant(client, worker, run):
    first = _claim(client, worker, claim_id="c-1")
    again = _claim(client, worker, claim_id="c-1")
    assert [t["command_id"] for t in first] == [t["command_id"] for t in again]
    assert first[0]["step_def"]["name"] == "start"
    assert _claim(client, worker, claim_id="c-2") == []  # nothing else is queued


def test_report_and_claim_hands_over_the_next_step(client, worker, run):
    task = _claim(client, worker, claim_id="c-1")[0]
    status, reply = call(client, "post", "report",
                         {"report": _ok_report(task, 1), "claim_next": {"max": 1}},
                         worker["token"])
    assert status == 200, reply
    assert [t["step_def"]["name"] for t in reply["tasks"]] == ["second"]


def test_a_report_delivered_twice_is_folded_once(client, worker, run):
    task = _claim(client, worker, claim_id="c-1")[0]
    body = {"report": _ok_report(task, 1), "claim_next": {"max": 1}}
    first = call(client, "post", "report", body, worker["token"])
    second = call(client, "post", "report", body, worker["token"])
    assert first[0] == second[0] == 200
    # The repeat hands back the same grant instead of a second command.
    assert first[1]["tasks"] == second[1]["tasks"]
    done = Event.objects.filter(execution=run, kind="call.done", step="start").count()
    assert done == 1


def test_a_stale_delivery_is_refused_after_its_lease_expired(client, worker, run):
    task = _claim(client, worker, claim_id="c-1")[0]
    Command.objects.filter(id=task["command_id"]).update(
        lease_expires_at=timezone.now() - timezone.timedelta(seconds=1))
    assert service.duty_round() == [task["command_id"]]
    again = _claim(client, worker, claim_id="c-2")[0]
    assert again["command_id"] == task["command_id"]
    assert again["delivery"] == task["delivery"] + 1
    status, reply = call(client, "post", "report", {"report": _ok_report(task, 1)},
                         worker["token"])
    assert status == 409 and reply["error"] == "stale"
    status, _ = call(client, "post", "report", {"report": _ok_report(again, 1)},
                     worker["token"])
    assert status == 200
    kinds = list(Event.objects.filter(execution=run, step="start").values_list(
        "kind", flat=True))
    assert kinds.count("command.requeued") == 1 and kinds.count("call.done") == 1


def test_a_command_lost_three_times_fails_the_run_clearly(client, worker, run):
    for n in range(3):
        task = _claim(client, worker, claim_id=f"c-{n}")[0]
        Command.objects.filter(id=task["command_id"]).update(
            lease_expires_at=timezone.now() - timezone.timedelta(seconds=1))
        service.duty_round()
    error = Event.objects.get(execution=run, step="start", kind="call.error").error
    assert error["kind"] == "worker_lost" and "lost 3 times" in error["message"]
    # Arcs without `when` fire on failure too (DSL section 10.3); the run
    # still ends failed.
    task = _claim(client, worker, claim_id="c-last")[0]
    assert task["step_def"]["name"] == "second"
    call(client, "post", "report", {"report": _ok_report(task, 2)}, worker["token"])
    run.refresh_from_db()
    assert run.status == "failed"


def test_heartbeat_renews_leases_and_reports_lost_ones(client, worker, run):
    task = _claim(client, worker, claim_id="c-1")[0]
    before = Command.objects.get(id=task["command_id"]).lease_expires_at
    held = [{"command_id": task["command_id"], "delivery": task["delivery"]},
            {"command_id": "no-such-command", "delivery": 1}]
    status, reply = call(client, "post", "heartbeat", {"held": held}, worker["token"])
    assert status == 200
    assert reply["lost"] == ["no-such-command"] and reply["cancel"] == []
    assert Command.objects.get(id=task["command_id"]).lease_expires_at >= before


def test_cancel_reaches_the_worker_through_its_heartbeat(client, worker, run):
    task = _claim(client, worker, claim_id="c-1")[0]
    service.cancel(run.id, "stop it")
    held = [{"command_id": task["command_id"], "delivery": task["delivery"]}]
    _, reply = call(client, "post", "heartbeat", {"held": held}, worker["token"])
    assert reply["cancel"] == [task["command_id"]]
    status, reply = call(client, "post", "report", {"report": _ok_report(task, 1)},
                         worker["token"])
    assert status == 410 and reply["error"] == "gone"


def test_release_hands_a_command_back(client, worker, run):
    task = _claim(client, worker, claim_id="c-1")[0]
    status, _ = call(client, "post", "release",
                     {"command_id": task["command_id"], "delivery": task["delivery"]},
                     worker["token"])
    assert status == 200
    again = _claim(client, worker, claim_id="c-2")[0]
    assert (again["command_id"], again["delivery"]) == (task["command_id"], 2)


def test_claims_stay_in_the_worker_pool(client, run):
    _, other = call(client, "post", "workers", {"name": "o", "pool": "gpu"}, ENROLL)
    assert _claim(client, other) == []
    command = Command.objects.get(execution=run)
    assert _claim(client, other, command_ids=[command.id]) == []


def test_credentials_need_a_held_lease(client, worker, run):
    save_credential("proto_pg", "postgres", {"host": "h", "password": "pw-123456"})
    status, reply = call(client, "get", "credentials/proto_pg?command_id=x&delivery=1",
                         token=worker["token"])
    assert status == 409
    task = _claim(client, worker, claim_id="c-1")[0]
    query = f"command_id={task['command_id']}&delivery={task['delivery']}"
    status, reply = call(client, "get", f"credentials/proto_pg?{query}",
                         token=worker["token"])
    assert status == 200 and reply["fields"]["password"] == "pw-123456"
    status, reply = call(client, "get", f"credentials/missing?{query}",
                         token=worker["token"])
    assert status == 404 and "missing" in reply["message"]


def test_blobs_are_content_addressed(client, worker):
    data = b"x" * 1000
    sha = hashlib.sha256(data).hexdigest()
    status, _ = call(client, "put", f"blobs/{'0' * 64}", token=worker["token"],
                     data=data, content_type="application/octet-stream")
    assert status == 400
    status, _ = call(client, "put", f"blobs/{sha}", token=worker["token"], data=data,
                     content_type="application/octet-stream")
    assert status == 201
    status, body = call(client, "get", f"blobs/{sha}", token=worker["token"])
    assert status == 200 and body == data


def test_a_blob_above_the_form_size_limit_is_accepted_and_one_above_the_cap_refused(
    client, worker, settings
):
    data = b"y" * (3 * 1024 * 1024)  # above Django's 2.5 MB DATA_UPLOAD_MAX_MEMORY_SIZE
    sha = hashlib.sha256(data).hexdigest()
    status, _ = call(client, "put", f"blobs/{sha}", token=worker["token"], data=data,
                     content_type="application/octet-stream")
    assert status == 201
    status, body = call(client, "get", f"blobs/{sha}", token=worker["token"])
    assert status == 200 and body == data

    settings.NOETL_BLOB_MAX_BYTES = 1024
    status, reply = call(client, "put", f"blobs/{sha}", token=worker["token"], data=data,
                         content_type="application/octet-stream")
    assert status == 413 and "NOETL_BLOB_MAX_BYTES" in reply["message"]


def test_a_deregistered_worker_token_stops_working(client, worker):
    status, _ = call(client, "delete", f"workers/{worker['worker_id']}",
                     token=worker["token"])
    assert status == 200
    status, _ = call(client, "post", "heartbeat", {"held": []}, worker["token"])
    assert status == 401


def test_a_report_the_engine_cannot_fold_fails_the_run_instead_of_wedging_it(
        client, worker, run, monkeypatch):
    from executions.engine.decide import Engine

    def broken(self, report):
        raise RuntimeError("a defect in the engine")

    task = _claim(client, worker, claim_id="c-1")[0]
    monkeypatch.setattr(Engine, "on_report", broken)
    status, reply = call(client, "post", "report", {"report": _ok_report(task, 1)},
                         worker["token"])
    assert status == 200, reply

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error["kind"] == "internal"
    assert "RuntimeError: a defect in the engine" in run.error["message"]
    assert not Command.objects.filter(execution=run, state__in=["queued", "running"])
    assert Event.objects.filter(execution=run, kind="workflow.failed").count() == 1
