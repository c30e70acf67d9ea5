"""The operators' admin: playbooks as YAML with errors at their lines,
immutable versions, runs, write-only credentials, runtimes, executions."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib.admin.models import LogEntry
from django.test import Client
from django.utils import timezone

from catalog.models import PlaybookVersion
from catalog.services import register
from credentials.models import Credential
from credentials.store import read_credential, save_keychain_entry
from executions import control
from executions.models import Execution
from tests.api.conftest import playbook_yaml
from workers.models import WorkerRegistration, WorkerStatus

ADD = "/admin/catalog/playbookversion/add/"
INVALID = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: bad, path: tests/admin/bad}
workflow:
  - step: start
    tool: 5
"""
SECRET = "adm1n-Sup3r-secret"


def _change(model: str, pk: object) -> str:
    return f"/admin/{model}/{pk}/change/"


# -- playbooks -----------------------------------------------------------------


def test_the_editor_is_codemirror_from_vendored_files(browser: Client) -> None:
    page = browser.get(ADD).content.decode()
    assert "/static/vendor/codemirror/lib/codemirror.js" in page
    assert "/static/vendor/codemirror/mode/yaml/yaml.js" in page
    assert 'class="noetl-yaml"' in page
    assert browser.get("/static/vendor/codemirror/lib/codemirror.js").status_code == 200


def test_an_invalid_playbook_shows_each_error_at_its_line(browser: Client) -> None:
    response = browser.post(ADD, {"content": INVALID})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Line 6: workflow[0]" in page and "must be a mapping" in page
    # The editor marks the same line.
    assert 'data-error-lines="6"' in page
    assert not PlaybookVersion.objects.exists()

    fixed = browser.post(ADD, {"content": playbook_yaml("tests/admin/bad")})
    assert fixed.status_code == 302
    version = PlaybookVersion.objects.get()
    assert (version.path, version.version) == ("tests/admin/bad", 1)


def test_editing_a_version_saves_a_new_one_and_keeps_the_old(
    browser: Client,
) -> None:
    first, _ = register(playbook_yaml("tests/admin/edit"))
    page = browser.get(_change("catalog/playbookversion", first.id))
    assert "tests/admin/edit" in page.content.decode()

    edited = playbook_yaml("tests/admin/edit", n=9)
    response = browser.post(
        _change("catalog/playbookversion", first.id),
        {"content": edited, "_continue": "1"},
    )
    assert response.status_code == 302
    second = PlaybookVersion.objects.get(path="tests/admin/edit", version=2)
    assert second.content == edited
    assert response["Location"].endswith(_change("catalog/playbookversion", second.id))
    first.refresh_from_db()
    assert first.content == playbook_yaml("tests/admin/edit")

    # The same text again is no new version.
    again = browser.post(
        _change("catalog/playbookversion", second.id), {"content": edited}, follow=True
    )
    assert "already tests/admin/edit v2" in again.content.decode()
    assert PlaybookVersion.objects.filter(path="tests/admin/edit").count() == 2


def test_an_invalid_edit_is_refused_at_its_line(browser: Client) -> None:
    first, _ = register(playbook_yaml("tests/admin/bad"))
    response = browser.post(
        _change("catalog/playbookversion", first.id), {"content": INVALID}
    )
    assert response.status_code == 200 and "Line 6" in response.content.decode()
    assert PlaybookVersion.objects.count() == 1


def test_the_run_action_starts_an_execution(browser: Client) -> None:
    version, _ = register(playbook_yaml("tests/admin/run"))
    response = browser.post(
        "/admin/catalog/playbookversion/",
        {"action": "run", "_selected_action": [version.id]},
        follow=True,
    )
    execution = Execution.objects.get()
    assert (execution.path, execution.version) == ("tests/admin/run", 1)
    assert execution.status == "running" and execution.commands.count() == 1
    assert execution.id in response.content.decode()
    started = execution.events.get(kind="execution.started").payload
    assert started["trigger"]["kind"] == "admin"
    assert started["trigger"]["user"] == "operator"


# -- credentials ---------------------------------------------------------------

CRED_ADD = "/admin/credentials/credential/add/"


def _postgres(**fields: str) -> dict[str, str]:
    return {
        "name": "pg_admin",
        "type": "postgres",
        "description": "warehouse",
        "postgres_host": "db.internal",
        "postgres_port": "5433",
        "postgres_user": "etl",
        "postgres_password": SECRET,
        "postgres_database": "dw",
        **fields,
    }


def test_credential_secrets_are_write_only_everywhere(browser: Client) -> None:
    created = browser.post(CRED_ADD, _postgres())
    assert created.status_code == 302, created.content.decode()
    credential = Credential.objects.get(name="pg_admin")
    assert read_credential("pg_admin") == {
        "host": "db.internal",
        "port": 5433,
        "user": "etl",
        "password": SECRET,
        "database": "dw",
        "type": "postgres",
    }

    # Rotate the password alone: the other values are kept.
    rotated = browser.post(
        _change("credentials/credential", credential.id),
        {
            "type": "postgres",
            "description": "warehouse",
            "postgres_password": SECRET + "2",
        },
    )
    assert rotated.status_code == 302
    assert read_credential("pg_admin")["password"] == SECRET + "2"
    assert read_credential("pg_admin")["host"] == "db.internal"

    pages = [
        f"/admin/credentials/credential/{credential.id}/change/",
        "/admin/credentials/credential/",
        f"/admin/credentials/credential/{credential.id}/history/",
    ]
    text = "".join(browser.get(url).content.decode() for url in pages)
    assert "pg_admin" in text and "••••••••" in text
    assert SECRET not in text and "db.internal" not in text
    history = " ".join(str(e.get_change_message()) for e in LogEntry.objects.all())
    assert "Password" in history and SECRET not in history


def test_a_refused_credential_form_does_not_echo_the_secret(browser: Client) -> None:
    response = browser.post(CRED_ADD, _postgres(postgres_host=""))
    page = response.content.decode()
    assert response.status_code == 200 and "required for this type" in page
    assert SECRET not in page
    assert not Credential.objects.exists()


def test_each_common_type_has_its_own_fields(browser: Client) -> None:
    bearer = {"name": "api", "type": "bearer", "bearer_token": SECRET}
    basic = {
        "name": "site",
        "type": "basic",
        "basic_username": "me",
        "basic_password": f" {SECRET} ",
    }
    generic = {
        "name": "misc",
        "type": "json",
        "json_data": json.dumps({"api_key": SECRET}),
    }
    for form in (bearer, basic, generic):
        response = browser.post(CRED_ADD, {"description": "", **form})
        assert response.status_code == 302, response.content.decode()
    assert read_credential("api")["token"] == SECRET
    assert read_credential("site") == {
        "username": "me",
        "password": f" {SECRET} ",  # spaces kept: they may be part of it
        "type": "basic",
    }
    assert read_credential("misc")["api_key"] == SECRET

    broken = browser.post(
        CRED_ADD,
        {"name": "x", "type": "json", "json_data": json.dumps({"k": SECRET})[:-1]},
    )
    page = broken.content.decode()
    assert "not valid JSON" in page and SECRET not in page


def test_keychain_entries_show_expiry_and_never_a_value(browser: Client) -> None:
    save_keychain_entry(
        "oauth_token",
        {"access_token": SECRET},
        expires_at=timezone.now() - timedelta(minutes=5),
    )
    page = browser.get("/admin/credentials/keychainentry/").content.decode()
    assert "oauth_token" in page and "icon-yes" in page  # expired
    assert SECRET not in page


# -- runtimes and runs -----------------------------------------------------------


def test_the_worker_list_shows_live_stale_and_gone_workers(browser: Client) -> None:
    now = timezone.now()
    for name, seen, status in [
        ("w-live", now - timedelta(seconds=2), WorkerStatus.ACTIVE),
        ("w-stale", now - timedelta(minutes=3), WorkerStatus.ACTIVE),
        ("w-killed", now - timedelta(hours=3), WorkerStatus.ACTIVE),
        ("w-gone", now - timedelta(seconds=2), WorkerStatus.GONE),
    ]:
        WorkerRegistration.objects.create(
            id=name,
            name=name,
            pool="default",
            token_hash=f"h-{name}",
            last_seen_at=seen,
            status=status,
        )
    page = browser.get("/admin/workers/workerregistration/").content.decode()
    rows = {name: _row(page, name) for name in ("w-live", "w-stale", "w-killed", "w-gone")}
    assert ">live<" in rows["w-live"] and "2 s" in rows["w-live"]
    assert ">stale<" in rows["w-stale"] and "3 min" in rows["w-stale"]
    assert ">gone<" in rows["w-killed"] and "3 h" in rows["w-killed"]
    assert ">gone<" in rows["w-gone"]


def _row(page: str, name: str) -> str:
    """The list row whose name column is ``name``."""
    return next(row for row in page.split("<tr") if f">{name}</a>" in row)


def test_an_execution_is_read_only_with_a_page_of_its_events(
    browser: Client,
) -> None:
    register(playbook_yaml("tests/admin/events"))
    execution, _ = control.start("tests/admin/events", None, {}, user=None)
    url = _change("executions/execution", execution.id)

    page = browser.get(url).content.decode()
    assert "execution.started" in page and "command.issued" in page
    assert "Next page" not in page
    assert browser.post(url, {}).status_code == 403

    later = browser.get(url + "?events_after=1").content.decode()
    assert "execution.started" not in later and "command.issued" in later

    listing = browser.get("/admin/executions/execution/?status=running")
    assert execution.id in listing.content.decode()


def test_a_yaml_syntax_error_is_shown_at_its_line(browser: Client) -> None:
    broken = INVALID.replace("    tool: 5\n", "    tool: {kind: python\n")
    page = browser.post(ADD, {"content": broken}).content.decode()
    assert "Line 7: &lt;document&gt;: invalid YAML" in page
    assert 'data-error-lines="7"' in page


def test_an_idle_workers_polling_keeps_it_live(browser: Client, settings: Any) -> None:
    settings.NOETL_ENROLLMENT_TOKEN = "enroll-admin-test"
    registered = Client().post(
        "/api/worker/v1/workers",
        {"pool": "default", "name": "idle"},
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer enroll-admin-test",
    )
    assert registered.status_code == 201
    body = registered.json()
    worker = WorkerRegistration.objects.get(id=body["worker_id"])
    two_minutes_ago = timezone.now() - timedelta(minutes=2)
    WorkerRegistration.objects.filter(id=worker.id).update(last_seen_at=two_minutes_ago)
    worker.refresh_from_db()
    assert worker.liveness() == "stale"
    # Silent past NOETL_WORKER_GONE_AFTER_S (killed, say): gone, yet its
    # token still works if it calls back.
    an_hour_ago = timezone.now() - timedelta(hours=1)
    WorkerRegistration.objects.filter(id=worker.id).update(last_seen_at=an_hour_ago)
    worker.refresh_from_db()
    assert worker.liveness() == "gone"
    assert not WorkerRegistration.objects.present().filter(id=worker.id).exists()

    # An idle worker sends no heartbeats, only claim-next polls.
    polled = Client().post(
        "/api/worker/v1/claim",
        {"max": 1},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {body['token']}",
    )
    assert polled.status_code == 200
    worker.refresh_from_db()
    assert worker.liveness() == "live"


def test_a_credentials_scope_is_set_in_the_admin_and_audited(browser: Client) -> None:
    from accounts.models import AuditEntry

    created = browser.post(CRED_ADD, _postgres(allowed="finance/*\n  reports/eu/*  \n"))
    assert created.status_code == 302, created.content.decode()
    credential = Credential.objects.get(name="pg_admin")
    assert credential.allowed_paths == ["finance/*", "reports/eu/*"]
    page = browser.get(_change("credentials/credential", credential.id)).content
    assert b"finance/*\nreports/eu/*" in page

    # An edit that leaves the list empty keeps it.
    browser.post(
        _change("credentials/credential", credential.id),
        {"type": "postgres", "description": "", "allowed": ""},
    )
    credential.refresh_from_db()
    assert credential.allowed_paths == ["finance/*", "reports/eu/*"]
    written = AuditEntry.objects.filter(action="credential.written", target="pg_admin")
    assert written.first().detail == {"allowed_paths": ["finance/*", "reports/eu/*"]}
    assert written.first().actor == "user:operator"
