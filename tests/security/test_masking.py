"""Secret hygiene end to end: a playbook prints, returns (small and large),
sends over HTTP to a stub that echoes it, and raises a credential's
password. Afterwards no table of the database, no blob, no log line and no
API answer holds the raw value."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.test import APIClient

from catalog import services as catalog
from credentials.store import save_credential
from executions.embedded import EmbeddedRuntime
from executions.models import Blob
from tests.grants import grant
from tests.security.conftest import PASSWORD

TOKEN = "tok-9c1e-secret-bearer-value"
PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: leak, path: sec/allowed/leak}
workload: {stub: "STUB"}
workflow:
  - step: start
    tool:
      kind: python
      auth: sec_pg
      input: {stub: "{{ stub }}"}
      code: |
        import json, urllib.request
        pw = auth["password"]
        print("the password is", pw)
        body = json.dumps({"pw": pw}).encode()
        req = urllib.request.Request(stub, data=body, method="POST")
        echoed = json.loads(urllib.request.urlopen(req).read())
        result = {"small": pw, "echoed": echoed, "big": "x" * 40000 + pw}
    next: {arcs: [{step: send}]}
  - step: send
    tool: {kind: http, method: POST, url: "{{ stub }}", auth: sec_api, payload: {a: 1}}
    next: {arcs: [{step: boom}]}
  - step: boom
    tool:
      kind: python
      auth: sec_pg
      code: |
        raise RuntimeError("cannot connect to db with password " + auth["password"])
"""


class _Echo(BaseHTTPRequestHandler):
    """Answers every POST with its headers and body, as a careless API would."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        reply = json.dumps(
            {"headers": dict(self.headers), "body": body.decode()}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/echo"
    server.shutdown()


@pytest.fixture
def process_log() -> Iterator[io.StringIO]:
    """What the web and worker processes write to their log (the handler
    configured in settings.LOGGING, with its masking filter)."""
    handler = next(h for h in logging.getLogger("noetl").handlers)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    logger = logging.getLogger("noetl")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.setLevel(level)
    handler.setStream(previous)


def _every_table_as_text() -> dict[str, str]:
    found = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT t::text FROM "{table}" t')
            found[table] = "\n".join(row[0] for row in cursor.fetchall())
    return found


@pytest.mark.django_db(transaction=True)
def test_a_password_never_leaves_the_store_however_the_playbook_tries(
    stub: str, process_log: io.StringIO
) -> None:
    save_credential(
        "sec_pg", "postgres", {"user": "svc", "password": PASSWORD}, "", ["sec/*"]
    )
    save_credential("sec_api", "bearer", {"token": TOKEN}, "", ["sec/*"])
    catalog.register(PLAYBOOK.replace("STUB", stub))

    with EmbeddedRuntime(workers=1) as runtime:
        run_id = runtime.start_run("sec/allowed/leak")
        assert runtime.wait(run_id, timeout=60) == "failed"
    # A line the process logs about a secret it has handed out is masked too.
    logging.getLogger("noetl.tests").warning("leaked: %s / %s", PASSWORD, TOKEN)

    user = User.objects.create_user("reader")
    grant(user, "sec/*", execute=False, modify=False)
    api = APIClient()
    api.force_login(user)
    answers = [
        api.get(f"/api/executions/{run_id}/", {"detail": "full"}),
        api.get(f"/api/executions/{run_id}/events/", {"limit": 500}),
        api.post(
            "/graphql",
            {
                "query": f'{{ step_results(execution_id: "{run_id}") '
                "{ step status result error } }"
            },
            format="json",
        ),
    ]
    assert all(answer.status_code == 200 for answer in answers)
    detail = answers[0].json()

    # The run did what it was asked: the values are there, masked.
    text = json.dumps(detail)
    assert "***" in text and "cannot connect to db with password ***" in text
    for secret in (PASSWORD, TOKEN):
        hexed = secret.encode().hex()
        for table, rows in _every_table_as_text().items():
            assert secret not in rows and hexed not in rows, table
        for blob in Blob.objects.all():
            assert secret.encode() not in bytes(blob.data), blob.sha256
        for answer in answers:
            assert secret not in answer.content.decode()
        assert secret not in process_log.getvalue()
    assert "leaked: *** / ***" in process_log.getvalue()
    assert Blob.objects.exists(), "the large result went to a blob"
