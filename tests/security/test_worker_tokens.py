"""Worker tokens: they claim, heartbeat and report, and read the credentials
of commands their worker holds, for playbooks in the credential's scope;
they reach nothing else. Every credential read is audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import AuditEntry
from catalog import services as catalog
from credentials.store import save_credential
from executions import service
from tests.distributed.test_protocol import ENROLL, call
from tests.security.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _playbook(path: str) -> str:
    return (
        "apiVersion: noetl.io/v2\nkind: Playbook\n"
        f"metadata: {{name: p, path: {path}}}\n"
        "workflow:\n  - step: start\n"
        '    tool: {kind: python, code: "result = 1"}\n'
    )


@pytest.fixture(autouse=True)
def _enrollment(settings: Any) -> None:
    settings.NOETL_ENROLLMENT_TOKEN = ENROLL


def _worker(client: Client, name: str) -> dict[str, Any]:
    status, reply = call(client, "post", "workers", {"name": name}, ENROLL)
    assert status == 201, reply
    return reply


def _held_task(client: Client, worker: dict[str, Any], path: str) -> dict[str, Any]:
    version, _ = catalog.register(_playbook(path))
    _, ids = service.start_execution(version.path)
    status, reply = call(
        client, "post", "claim", {"claim_id": path, "command_ids": ids}, worker["token"]
    )
    assert status == 200 and reply["tasks"], reply
    return reply["tasks"][0]


def _read(client: Client, worker: dict[str, Any], name: str, task: dict[str, Any]):
    query = f"command_id={task['command_id']}&delivery={task['delivery']}"
    return call(client, "get", f"credentials/{name}?{query}", token=worker["token"])


def test_a_worker_reads_a_credential_only_for_a_command_it_holds(
    client: Client,
) -> None:
    save_credential("fin_pg", "postgres", {"password": PASSWORD}, "", ["finance/*"])
    holder, other = _worker(client, "holder"), _worker(client, "other")
    task = _held_task(client, holder, "finance/daily")

    status, reply = _read(client, holder, "fin_pg", task)
    assert status == 200 and reply["fields"]["password"] == PASSWORD

    # The other worker names the same command: it holds no lease on it.
    status, reply = _read(client, other, "fin_pg", task)
    assert status == 409 and PASSWORD not in str(reply)

    reads = AuditEntry.objects.filter(action="credential.read", target="fin_pg")
    assert reads.count() == 1
    assert reads.get().actor == f"worker:{holder['worker_id']}"
    assert reads.get().detail["playbook"] == "finance/daily"


def test_a_credential_outside_its_scope_is_refused_and_the_attempt_recorded(
    client: Client,
) -> None:
    save_credential("fin_pg", "postgres", {"password": PASSWORD}, "", ["finance/*"])
    worker = _worker(client, "w")
    task = _held_task(client, worker, "marketing/export")

    status, reply = _read(client, worker, "fin_pg", task)
    assert status == 403
    assert reply["message"] == (
        "credential fin_pg is not available to playbook marketing/export"
    )
    refused = AuditEntry.objects.get(action="credential.read", allowed=False)
    assert refused.target == "fin_pg"
    assert refused.detail["playbook"] == "marketing/export"


def test_a_forged_or_user_token_reaches_no_worker_call(client: Client) -> None:
    from django.contrib.auth.models import User

    from accounts import tokens

    user_token = tokens.mint(User.objects.create_superuser("root", "", "pw"))[1]
    worker = _worker(client, "w")
    forged = worker["token"][:-4] + "AAAA"
    for token in (forged, user_token, "nwt_" + "A" * 43, ""):
        for method, path, body in (
            ("post", "claim", {"max": 1}),
            ("post", "heartbeat", {"held": []}),
            ("post", "report", {"report": {}}),
            ("get", "credentials/x?command_id=a&delivery=1", None),
            ("get", f"blobs/{'0' * 64}", None),
        ):
            status, reply = call(client, method, path, body, token)
            assert status == 401, (token, path, reply)


def test_a_worker_token_calls_no_user_endpoint(client: Client) -> None:
    worker = _worker(client, "w")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {worker['token']}"}
    for url in (
        "/api/catalog/",
        "/api/executions/",
        "/api/credentials/",
        "/api/keychain/",
        "/api/schedules/",
        "/api/auth/session/",
    ):
        assert client.get(url, **auth).status_code == 401, url
    response = client.post(
        "/graphql",
        {"query": "{ pools { name } }"},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 401


def test_enrollment_guessing_is_rate_limited(client: Client, settings: Any) -> None:
    from django.core.cache import cache

    cache.clear()
    settings.NOETL_SIGNIN_RATE = 3
    codes = [
        call(client, "post", "workers", {"name": "x"}, "guess")[0] for _ in range(5)
    ]
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429]
    # Even the right token waits until the window passes.
    assert call(client, "post", "workers", {"name": "x"}, ENROLL)[0] == 429
    cache.clear()
