"""Conformance suite: every case of the shared corpus, run through the real CLI.

The cases live in ``shared/conformance/expectations.yaml`` (format in the README
next to it) and are read as they are. ``shared/`` sits next to the repository;
set NOETL_SHARED_DIR to point elsewhere. Each case runs twice, as
``python -m noetl_site.cli`` subprocesses in a fresh NOETL_HOME:

- embedded: the CLI alone, SQLite and in-process workers;
- distributed: the same commands with ``NOETL_SERVER`` set, against one stack
  per test session (gunicorn, two ``runworker`` processes and the scheduler
  over a fresh database on the local PostgreSQL and the local NATS).

Cases that touch PostgreSQL use a scratch database (``noetl_conformance`` by
default) on the local server (127.0.0.1:5432, user postgres).

A case is never skipped: a missing service or an unknown ``needs`` value is a
failure.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.shared import REPO, SHARED

CONFORMANCE = SHARED / "conformance"
PLAYBOOKS = CONFORMANCE / "playbooks"
EXPECTATIONS = CONFORMANCE / "expectations.yaml"

# A fixed test key: urlsafe base64 of 32 bytes.
ENCRYPTION_KEY = base64.urlsafe_b64encode(b"noetl-conformance-test-key-32byt").decode()
RUN_TIMEOUT_S = float(os.environ.get("NOETL_CONFORMANCE_TIMEOUT", "120"))
# The engine is asked to cancel a little earlier, so a hang still leaves a run
# document with the step states to diagnose.
ENGINE_TIMEOUT_S = max(RUN_TIMEOUT_S - 20, RUN_TIMEOUT_S / 2)

PG = {
    "host": os.environ.get("NOETL_TEST_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("NOETL_TEST_PG_PORT", "5432")),
    "user": os.environ.get("NOETL_TEST_PG_USER", "postgres"),
    "password": os.environ.get("NOETL_TEST_PG_PASSWORD", ""),
    "database": os.environ.get("NOETL_CONFORMANCE_DB", "noetl_conformance"),
}
PAGINATED_API_URL = "http://127.0.0.1:5555"

KNOWN_NEEDS = {"postgres", "duckdb", "http_stub", "paginated_server"}
CASE_KEYS = {
    "id",
    "playbook",
    "register_also",
    "setup_cases",
    "setup_sql",
    "payload",
    "credentials",
    "needs",
    "stub",
    "tables",
    "expect",
    "notes",
}
EXPECT_KEYS = {
    "status",
    "steps_ran",
    "steps_not_run",
    "step_run_count",
    "results",
    "db",
}
STATUSES = {"completed", "failed", "rejected"}
# In a rejection message: a YAML path such as ``workflow[2]`` or ``workload.x``.
YAML_PATH = re.compile(
    r"\b(workflow|workbook)\[\d+\]"
    r"|\b(workflow|workbook|workload|metadata|apiVersion|keychain)\b(?=[\s.:\[])"
)


def _load_cases() -> list[dict[str, Any]]:
    if not EXPECTATIONS.is_file():
        raise RuntimeError(
            f"conformance expectations not found at {EXPECTATIONS} "
            "(set NOETL_SHARED_DIR to the folder holding conformance/)"
        )
    cases = yaml.safe_load(EXPECTATIONS.read_text())
    if not isinstance(cases, list) or not cases:
        raise RuntimeError(f"{EXPECTATIONS} must be a non-empty YAML list of cases")
    seen: set[str] = set()
    for index, case in enumerate(cases):
        if not isinstance(case, dict) or not case.get("id"):
            raise RuntimeError(f"{EXPECTATIONS}: entry {index} has no id")
        if case["id"] in seen:
            raise RuntimeError(f"{EXPECTATIONS}: duplicate case id {case['id']!r}")
        seen.add(case["id"])
    return cases


CASES = _load_cases()
BY_ID = {case["id"]: case for case in CASES}


# -- comparing values ---------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def same(expected: Any, actual: Any) -> bool:
    """Plain equality, numbers compared numerically (1 == 1.0, Decimal too)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return (
            isinstance(expected, bool)
            and isinstance(actual, bool)
            and (expected == actual)
        )
    if _is_number(expected) and _is_number(actual):
        if isinstance(expected, int) and isinstance(actual, int):
            return expected == actual
        if Decimal(str(expected)) == Decimal(str(actual)):
            return True
        a, b = float(expected), float(actual)
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            same(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            same(a, b) for a, b in zip(expected, actual, strict=True)
        )
    if _is_number(expected) or _is_number(actual):
        return False
    return type(expected) is type(actual) and expected == actual


def _show(value: Any, limit: int = 300) -> str:
    text = f"{value!r} ({type(value).__name__})"
    return text if len(text) <= limit else text[:limit] + "..."


_MISSING = object()


def lookup(steps: dict[str, Any], path: str) -> tuple[Any, str]:
    """The value at a dotted results path, or (_MISSING, why)."""
    step, *rest = path.split(".")
    entry = steps.get(step)
    if entry is None:
        return _MISSING, f"step {step!r} has no entry in the run (it never ran)"
    current = entry.get("result")
    walked = step
    for segment in rest:
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit():
            if int(segment) >= len(current):
                return _MISSING, (
                    f"{walked} is a list of {len(current)} item(s); no index {segment}"
                )
            current = current[int(segment)]
        elif isinstance(current, dict):
            keys = ", ".join(sorted(map(str, current))) or "none"
            return _MISSING, f"{walked} has no key {segment!r} (keys: {keys})"
        else:
            return _MISSING, (
                f"{walked} is {_show(current, 120)}, cannot take {segment!r}"
            )
        walked += "." + segment
    return current, ""


# -- running the CLI ------------------------------------------------------------------


@dataclass
class Env:
    home: Path
    hits: list[str] = field(default_factory=list)
    # NOETL_SERVER and NOETL_TOKEN of the stack, in distributed mode.
    server: dict[str, str] = field(default_factory=dict)

    def environ(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in ("DATABASE_URL", "NATS_URL", "NOETL_SHARED_DIR", "NOETL_SERVER")
        }
        env.update(self.server)
        env["NOETL_HOME"] = str(self.home)
        env["NOETL_ENCRYPTION_KEY"] = ENCRYPTION_KEY
        env["DJANGO_SETTINGS_MODULE"] = "noetl_site.settings"
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + path if path else "")
        return env

    def cli(self, *args: str, what: str = "") -> subprocess.CompletedProcess[str]:
        """Run ``noetl ARGS``; a run past RUN_TIMEOUT_S is killed (with the
        processes it started) and fails the case."""
        command = [sys.executable, "-m", "noetl_site.cli", *args]
        with subprocess.Popen(
            command,
            cwd=self.home.parent,
            env=self.environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as proc:
            try:
                stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                stdout, stderr = proc.communicate()
                hung = True
            else:
                hung = False
        if hung:
            pytest.fail(
                f"{what or 'noetl ' + args[0]} HUNG: no exit after "
                f"{RUN_TIMEOUT_S:.0f}s (killed)\ncommand: {' '.join(command)}\n"
                f"stderr (tail):\n{_tail(stderr)}\nstdout (tail):\n{_tail(stdout)}\n"
                f"NOETL_HOME={self.home}",
                pytrace=False,
            )
        return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def _tail(text: str | bytes | None, lines: int = 40) -> str:
    if text is None:
        return "(none)"
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    parts = text.rstrip().splitlines()
    if not parts:
        return "(empty)"
    cut = parts[-lines:]
    prefix = [f"... ({len(parts) - lines} more lines)"] if len(parts) > lines else []
    return "\n".join("    " + line for line in prefix + cut)


def _json_doc(stdout: str) -> dict[str, Any] | None:
    """The JSON document printed last (tool output may precede it)."""
    try:
        doc = json.loads(stdout)
        return doc if isinstance(doc, dict) else None
    except json.JSONDecodeError:
        pass
    starts = [m.start() + 1 for m in re.finditer(r"\n\{", stdout)]
    for start in reversed(starts):
        try:
            doc = json.loads(stdout[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            return doc
    return None


# -- PostgreSQL -----------------------------------------------------------------------


def _pg_connect(database: str):
    import psycopg

    return psycopg.connect(
        host=PG["host"],
        port=PG["port"],
        user=PG["user"],
        password=PG["password"] or None,
        dbname=database,
        autocommit=True,
        connect_timeout=5,
    )


@pytest.fixture(scope="session")
def scratch_db() -> str:
    """The scratch database, created once per session if missing."""
    import psycopg
    from psycopg import sql

    name = PG["database"]
    try:
        with _pg_connect("postgres") as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not found:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                    )
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required but not reachable at {PG['host']}:{PG['port']} "
            f"as {PG['user']}: {exc}",
            pytrace=False,
        )
    return name


def _drop_tables(tables: list[str]) -> None:
    from psycopg import sql

    with _pg_connect(PG["database"]) as conn:
        for table in tables:
            parts = [sql.Identifier(p) for p in str(table).split(".")]
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
                    sql.SQL(".").join(parts)
                )
            )


def _run_sql(statements: list[str], case_id: str) -> None:
    import psycopg

    with _pg_connect(PG["database"]) as conn:
        for statement in statements:
            try:
                conn.execute(statement)
            except psycopg.Error as exc:
                pytest.fail(
                    f"[{case_id}] setup_sql failed: {statement!r}: {exc}",
                    pytrace=False,
                )


def _query_scalar(statement: str) -> tuple[Any, str]:
    import psycopg

    try:
        with _pg_connect(PG["database"]) as conn:
            cursor = conn.execute(statement)
            if cursor.description is None:
                return _MISSING, "the statement returned no rows"
            if len(cursor.description) != 1:
                return _MISSING, f"{len(cursor.description)} columns, expected 1"
            rows = cursor.fetchall()
    except psycopg.Error as exc:
        return _MISSING, f"query error: {str(exc).strip()}"
    if len(rows) != 1:
        return _MISSING, f"{len(rows)} rows, expected 1"
    return rows[0][0], ""


# -- HTTP stub ------------------------------------------------------------------------


@contextlib.contextmanager
def http_stub(routes: list[dict[str, Any]], hits: list[str]) -> Iterator[str]:
    """Serve the case's routes on 127.0.0.1 and a free port; yield the base URL."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for route in routes or []:
        method = str(route.get("method") or "GET").upper()
        table[(method, str(route["path"]))] = route

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            method = "GET" if self.command == "HEAD" else self.command
            route = table.get((method, path))
            if route is None:
                body = json.dumps({"error": f"no stub route {self.command} {path}"})
                status, headers = 404, {"Content-Type": "application/json"}
            else:
                body = json.dumps(route.get("response")) if "response" in route else ""
                status = int(route.get("status", 200))
                headers = {"Content-Type": "application/json"}
                headers.update(
                    {str(k): str(v) for k, v in (route.get("headers") or {}).items()}
                )
            hits.append(f"{self.command} {self.path} -> {status}")
            data = body.encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

        def log_message(self, fmt: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _substitute(value: Any, placeholders: dict[str, str], case_id: str) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, placeholders, case_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, placeholders, case_id) for v in value]
    if isinstance(value, str):
        for name, url in placeholders.items():
            value = value.replace("${" + name + "}", url)
        leftover = re.search(r"\$\{(STUB_URL|PAGINATED_API_URL)\}", value)
        if leftover:
            pytest.fail(
                f"[{case_id}] payload uses ${{{leftover.group(1)}}} but the case does "
                "not declare the service that provides it in `needs`",
                pytrace=False,
            )
    return value


# -- one case -------------------------------------------------------------------------


def _check_case_shape(case: dict[str, Any]) -> None:
    cid = case["id"]
    problems = []
    unknown = set(case) - CASE_KEYS
    if unknown:
        problems.append(f"unknown case keys {sorted(unknown)}")
    expect = case.get("expect")
    if not isinstance(expect, dict):
        problems.append("no `expect` mapping")
    else:
        unknown = set(expect) - EXPECT_KEYS
        if unknown:
            problems.append(f"unknown expect keys {sorted(unknown)}")
        if expect.get("status") not in STATUSES:
            problems.append(f"expect.status {expect.get('status')!r} not in {STATUSES}")
    needs = case.get("needs") or []
    unknown = set(needs) - KNOWN_NEEDS
    if unknown:
        problems.append(
            f"unknown `needs` value(s) {sorted(unknown)} (known: {sorted(KNOWN_NEEDS)})"
        )
    if not (PLAYBOOKS / case.get("playbook", "")).is_file():
        problems.append(
            f"playbook {case.get('playbook')!r} not found under {PLAYBOOKS}"
        )
    for other in case.get("setup_cases") or []:
        if other not in BY_ID:
            problems.append(f"setup case {other!r} does not exist")
    if problems:
        pytest.fail(
            f"[{cid}] the harness cannot run this case: " + "; ".join(problems),
            pytrace=False,
        )


def _uses_postgres(case: dict[str, Any]) -> bool:
    expect = case.get("expect") or {}
    return bool(
        "postgres" in (case.get("needs") or [])
        or case.get("credentials")
        or case.get("tables")
        or case.get("setup_sql")
        or expect.get("db")
    )


def _diagnosis(env: Env, doc: dict[str, Any] | None, proc, case) -> str:
    lines = []
    if doc:
        lines.append(
            f"execution {doc.get('execution_id')} status={doc.get('status')!r}"
        )
        if doc.get("error"):
            lines.append(f"run error: {json.dumps(doc['error'], default=str)[:1500]}")
        lines.append("steps:")
        for name, entry in (doc.get("steps") or {}).items():
            error = entry.get("error")
            text = f"  {name:28} {entry.get('status', '?'):10} runs={entry.get('runs')}"
            if error:
                text += f"  error: {json.dumps(error, default=str)[:600]}"
            lines.append(text)
        events = _events(env, doc.get("execution_id"))
        if events:
            lines.append(f"events ({len(events)}):")
            shown = events if len(events) <= 80 else [*events[:20], None, *events[-59:]]
            for event in shown:
                if event is None:
                    lines.append(f"  ... ({len(events) - 79} events omitted)")
                    continue
                err = event.get("error") or {}
                message = f"  {err.get('message', err)}"[:400] if err else ""
                lines.append(
                    f"  #{event.get('seq'):<4} {event.get('kind'):22} "
                    f"{event.get('step') or ''}{message}"
                )
    if env.hits:
        lines.append("http stub requests: " + "; ".join(env.hits[-20:]))
    if proc is not None:
        lines.append(
            f"exit code {proc.returncode}; stderr (tail):\n{_tail(proc.stderr)}"
        )
    lines.append(f"NOETL_HOME={env.home}")
    if case.get("notes"):
        lines.append("case notes: " + " ".join(str(case["notes"]).split()))
    return "\n".join(lines)


def _events(env: Env, execution_id: str | None) -> list[dict[str, Any]]:
    if not execution_id:
        return []
    proc = env.cli("show", execution_id, "--json", what="noetl show")
    doc = _json_doc(proc.stdout) if proc.returncode == 0 else None
    return (doc or {}).get("events") or []


def run_case(
    case: dict[str, Any], env: Env, request, chain: tuple[str, ...] = ()
) -> None:
    cid = case["id"]
    if cid in chain:
        pytest.fail(f"setup_cases cycle: {' -> '.join((*chain, cid))}", pytrace=False)
    _check_case_shape(case)
    needs = set(case.get("needs") or [])
    expect = case["expect"]

    if "paginated_server" in needs:
        pytest.fail(
            f"[{cid}] needs paginated_server (the NoETL paginated test server on "
            f"{PAGINATED_API_URL}), which this harness does not provide",
            pytrace=False,
        )
    if "duckdb" in needs and importlib.util.find_spec("duckdb") is None:
        pytest.fail(
            f"[{cid}] needs duckdb, not installed in {sys.executable}", pytrace=False
        )
    if _uses_postgres(case):
        request.getfixturevalue("scratch_db")

    for name in case.get("register_also") or []:
        proc = env.cli("register", str(PLAYBOOKS / name), what="noetl register")
        if proc.returncode != 0:
            pytest.fail(
                f"[{cid}] register_also {name} failed (exit {proc.returncode}):\n"
                f"{_tail(proc.stderr)}",
                pytrace=False,
            )
    for name in case.get("credentials") or []:
        data = {
            key: PG[key] for key in ("host", "port", "user", "password", "database")
        }
        proc = env.cli(
            "credential",
            "add",
            name,
            "--type",
            "postgres",
            "--data",
            json.dumps(data),
            what="noetl credential add",
        )
        if proc.returncode != 0:
            pytest.fail(
                f"[{cid}] credential add {name} failed (exit {proc.returncode}):\n"
                f"{_tail(proc.stderr)}",
                pytrace=False,
            )
    if case.get("tables"):
        _drop_tables(case["tables"])
    for other in case.get("setup_cases") or []:
        failure = None
        try:
            run_case(BY_ID[other], env, request, (*chain, cid))
        except pytest.fail.Exception as exc:
            failure = str(exc)
        if failure is not None:
            pytest.fail(
                f"[{cid}] setup case {other!r} did not pass:\n{failure}", pytrace=False
            )
    if case.get("setup_sql"):
        _run_sql(case["setup_sql"], cid)

    with contextlib.ExitStack() as stack:
        placeholders = {}
        if "http_stub" in needs:
            placeholders["STUB_URL"] = stack.enter_context(
                http_stub(case.get("stub") or [], env.hits)
            )
        payload = _substitute(case.get("payload") or {}, placeholders, cid)
        args = [
            "run",
            str(PLAYBOOKS / case["playbook"]),
            "--json",
            "--timeout",
            str(ENGINE_TIMEOUT_S),
        ]
        if payload:
            args += ["--payload", json.dumps(payload)]
        proc = env.cli(*args, what=f"[{cid}] noetl run")

    if expect["status"] == "rejected":
        _check_rejected(case, proc, env)
        return
    doc = _json_doc(proc.stdout)
    if doc is None:
        rejected = " - the playbook was REJECTED" if proc.returncode == 2 else ""
        pytest.fail(
            f"[{cid}] noetl run printed no JSON document (exit {proc.returncode}"
            f"{rejected}); expected status {expect['status']!r}\nstdout (tail):\n"
            f"{_tail(proc.stdout)}\nstderr (tail):\n{_tail(proc.stderr)}",
            pytrace=False,
        )
    problems = _compare(case, doc, proc)
    if problems:
        pytest.fail(
            f"[{cid}] {len(problems)} mismatch(es):\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\n"
            + _diagnosis(env, doc, proc, case),
            pytrace=False,
        )


def _check_rejected(case: dict[str, Any], proc, env: Env) -> None:
    cid = case["id"]
    problems = []
    if proc.returncode != 2:
        problems.append(
            f"status: expected rejected (exit 2), got exit {proc.returncode}"
        )
    stderr = proc.stderr.replace(str(PLAYBOOKS / case["playbook"]), "<playbook>")
    if not YAML_PATH.search(stderr):
        problems.append(
            "the rejection message does not name a YAML path (such as workflow[2])"
        )
    if problems:
        doc = _json_doc(proc.stdout)
        pytest.fail(
            f"[{cid}] {len(problems)} mismatch(es):\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\n"
            + _diagnosis(env, doc, proc, case),
            pytrace=False,
        )


def _compare(case: dict[str, Any], doc: dict[str, Any], proc) -> list[str]:
    expect = case["expect"]
    steps = doc.get("steps") or {}
    problems = []
    status = doc.get("status")
    if status != expect["status"]:
        problems.append(f"status: expected {expect['status']!r}, got {status!r}")
    wanted_rc = 0 if status == "completed" else 1
    if proc.returncode != wanted_rc:
        problems.append(
            f"exit code: {proc.returncode} for status {status!r} (expected {wanted_rc})"
        )

    def runs(step: str) -> int:
        return int((steps.get(step) or {}).get("runs") or 0)

    for step in expect.get("steps_ran") or []:
        if runs(step) < 1:
            state = (steps.get(step) or {}).get("status", "absent")
            problems.append(f"steps_ran {step}: expected >= 1 run, got 0 ({state})")
    for step in expect.get("steps_not_run") or []:
        if runs(step) != 0:
            problems.append(
                f"steps_not_run {step}: expected 0 runs, got {runs(step)} "
                f"({steps[step].get('status')})"
            )
    for step, count in (expect.get("step_run_count") or {}).items():
        if runs(step) != count:
            problems.append(
                f"step_run_count {step}: expected {count}, got {runs(step)}"
            )
    for path, wanted in (expect.get("results") or {}).items():
        actual, why = lookup(steps, str(path))
        if actual is _MISSING:
            problems.append(f"results {path}: expected {_show(wanted)}, missing: {why}")
        elif not same(wanted, actual):
            problems.append(
                f"results {path}: expected {_show(wanted)}, got {_show(actual)}"
            )
    for check in expect.get("db") or []:
        actual, why = _query_scalar(check["sql"])
        wanted = check["equals"]
        if actual is _MISSING:
            problems.append(f"db {check['sql']!r}: expected {_show(wanted)}, {why}")
        elif not same(wanted, actual):
            problems.append(
                f"db {check['sql']!r}: expected {_show(wanted)}, got {_show(actual)}"
            )
    return problems


# -- the tests ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A distributed stack for the whole session; yields the client settings."""
    import psycopg

    from noetl_site.devstack import DevStack

    pg = f"postgres://{PG['user']}@{PG['host']}:{PG['port']}"
    devstack = DevStack(
        database=f"noetl_conformance_stack_{uuid.uuid4().hex[:8]}",
        pg=pg,
        home=tmp_path_factory.mktemp("stack"),
        fresh=True,
        workers=2,
        concurrency=4,
        env={"NOETL_ENCRYPTION_KEY": ENCRYPTION_KEY},
    )
    try:
        devstack.start()
        yield {"NOETL_SERVER": devstack.url, "NOETL_TOKEN": devstack.token}
    finally:
        devstack.stop()
        with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{devstack.database}" WITH (FORCE)')


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
@pytest.mark.parametrize("mode", ["embedded", "distributed"])
def test_case(case: dict[str, Any], mode: str, tmp_path: Path, request) -> None:
    env = Env(home=tmp_path / "noetl_home")
    env.home.mkdir()
    if mode == "distributed":
        env.server = request.getfixturevalue("stack")
    run_case(case, env, request)
