"""The ``noetl`` command.

Embedded mode by default: data lives under ``./.noetl`` (or NOETL_HOME) in a
SQLite file, and ``noetl run`` executes the playbook in this process with
in-process workers. With ``--server URL`` (or NOETL_SERVER) the same
commands work against a control plane's REST API instead, authenticated by
``--token`` (or NOETL_TOKEN); see ``noetl_site.remote``. Exit codes: 0
completed, 1 failed or cancelled, 2 bad input (an invalid playbook, a
malformed option), 3 not found, 4 the server could not be reached or
refused the call.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from noetl_site.text import count

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_SERVER = 0, 1, 2, 3, 4


class UsageError(Exception):
    """Bad input from the user: printed without a traceback, exit code 2."""


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "noetl_site.settings")
    import django

    django.setup()
    _ensure_schema()


def _ensure_schema() -> None:
    """Migrate only when the migrations changed since the last check (fast start)."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    root = Path(__file__).resolve().parent.parent
    names = sorted(str(p.relative_to(root)) for p in root.glob("*/migrations/0*.py"))
    fingerprint = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    home = Path(settings.NOETL_HOME)
    marker = home / f".schema-{connection.vendor}"
    if connection.vendor == "sqlite":
        _private_database(home, Path(settings.DATABASES["default"]["NAME"]))
        if marker.exists() and marker.read_text() == fingerprint:
            return
    call_command("migrate", verbosity=0, interactive=False)
    if connection.vendor == "sqlite":
        marker.write_text(fingerprint)


def _private_database(home: Path, database: Path) -> None:
    """Make NOETL_HOME (0700) and the SQLite file (0600) before SQLite does:
    they hold encrypted secrets and run data, and SQLite would make the file
    world-readable. Its WAL and shared-memory files copy the file's mode."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if str(database) == ":memory:" or str(database).startswith("file:"):
        return
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        if path.exists() and path.stat().st_mode & 0o077:
            path.chmod(0o600)


# -- helpers --------------------------------------------------------------------


def payload_from_args(args: argparse.Namespace) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if getattr(args, "payload", None):
        text = args.payload
        if text.startswith("@"):
            text = Path(text[1:]).read_text()
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--payload is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise UsageError("--payload must be a JSON object")
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {item!r}")
        try:
            payload[key] = json.loads(value)
        except json.JSONDecodeError:
            payload[key] = value
    return payload


# Playbook texts _validate_files_first parsed, and what they parsed to, so
# registering the same text does not parse it a second time.
_validated: dict[str, dict[str, Any]] = {}


def _register_file(path: Path) -> Any:
    from catalog import services as catalog

    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        version, _ = catalog.register(text, parsed=_validated.pop(text, None))
    except catalog.PlaybookError as exc:
        raise UsageError(f"{path} is not a valid playbook:\n{exc}") from None
    return version


def _resolve_target(target: str) -> tuple[str, Any]:
    """A file is registered first; anything else is a catalog path."""
    candidate = Path(target)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if not candidate.exists():
            raise UsageError(f"no such file: {target}")
        version = _register_file(candidate)
        return version.path, version.version
    return target, None


def run_document(detail: dict[str, Any]) -> dict[str, Any]:
    """The ``run --json`` / ``show --json`` document, from a run's full detail
    (``executions.queries.run_detail(..., full=True)``, which the server's
    ``GET /api/executions/{id}/?detail=full`` also answers)."""
    steps = {}
    for name, step in detail["steps"].items():
        entry: dict[str, Any] = {"status": step["status"], "runs": step["runs"],
                                 "result": step.get("result")}
        if step.get("error"):
            entry["error"] = step["error"]
        steps[name] = entry
    return {
        "execution_id": detail["id"],
        "path": detail["path"],
        "version": detail["version"],
        "status": detail["status"],
        "result": detail["result"],
        "error": detail["error"],
        "steps": steps,
    }


def summary(execution_id: str) -> dict[str, Any]:
    """The ``run --json`` document of a run in the local database."""
    from executions import queries
    from executions.models import Execution

    execution = Execution.objects.get(id=execution_id)
    return run_document(queries.run_detail(execution, full=True))


class Progress:
    """Prints each step and loop iteration as it starts and ends.

    Times come from the events' own ``ts`` when they carry one (events read
    back from a server, which arrive in batches); otherwise from the clock
    as each event is announced (embedded mode)."""

    def __init__(self, out: Any = sys.stderr) -> None:
        self.out = out
        self.started: dict[str, float] = {}
        self.t0: float | None = None
        self.now = 0.0
        self.roots: set[str] = set()

    def __call__(self, execution_id: str, events: list[dict[str, Any]]) -> None:
        for ev in events:
            self.now = self._time(ev)
            if self.t0 is None:
                self.t0 = self.now
            line = self.describe(ev)
            if line:
                stamp = f"{self.now - self.t0:7.3f}s"
                child = "" if not self.roots or execution_id in self.roots else "  (child) "
                print(f"{stamp} {child}{line}", file=self.out, flush=True)

    @staticmethod
    def _time(ev: dict[str, Any]) -> float:
        if ev.get("ts"):
            from datetime import datetime

            return datetime.fromisoformat(ev["ts"]).timestamp()
        return time.monotonic()

    def _elapsed(self, key: str) -> str:
        started = self.started.pop(key, None)
        return "" if started is None else f" ({(self.now - started) * 1000:.1f} ms)"

    def describe(self, ev: dict[str, Any]) -> str | None:
        kind, step, payload = ev["kind"], ev.get("step"), ev["payload"]
        now = self.now
        if kind == "execution.started":
            pb = payload["playbook"]
            return f"run started: {pb['path']} v{pb['version']}"
        if kind == "command.issued":
            self.started[ev["command_id"]] = now
            if payload.get("reason") == "route":
                self.started[f"step:{step}"] = now
                return f"▶ {step}"
            if payload.get("reason") == "loop":
                a, b = payload["iter"]
                label = f"[{a}]" if b - a == 1 else f"[{a}..{b - 1}]"
                return f"  ▶ {step}{label}"
            return None
        if kind == "loop.started":
            self.started[f"step:{step}"] = now
            return (f"▶ {step}: loop over {count(payload['total'], 'item')} "
                    f"({payload['mode']}, up to {payload['max_in_flight']} at once)")
        if kind == "loop.chunk.done":
            a, b = payload["from"], payload["to"]
            counts = payload["counts"]
            label = f"[{a}]" if b - a == 1 else f"[{a}..{b - 1}]"
            mark = "✗" if counts.get("failed") else "✓"
            return (f"  {mark} {step}{label}: {counts['success']} ok, {counts['failed']} "
                    f"failed{self._elapsed(ev['command_id'])}")
        if kind == "call.done":
            self.started.pop(ev.get("command_id") or "", None)
            return f"✓ {step}{self._elapsed(f'step:{step}')}"
        if kind == "call.error":
            self.started.pop(ev.get("command_id") or "", None)
            message = (ev.get("error") or {}).get("message", "failed")
            handled = " (handled)" if payload.get("handled") else ""
            return f"✗ {step}{self._elapsed(f'step:{step}')}: {message}{handled}"
        if kind == "loop.done":
            stats = payload["stats"]
            mark = "✗" if stats["failed"] else "✓"
            total = count(stats["total"], "iteration")
            return (f"{mark} {step}: {stats['success']}/{total} ok"
                    f"{self._elapsed(f'step:{step}')}")
        if kind == "command.waiting":
            return f"  … {step} waits for sub-playbook {payload['child'].get('path')}"
        if kind == "step.skipped":
            return f"- {step} skipped: {payload.get('reason')}"
        if kind == "warning":
            where = f"{step}: " if step else ""
            return f"! {where}{payload.get('message')}"
        if kind in ("workflow.completed", "workflow.failed", "execution.cancelled"):
            return f"run {payload.get('status')}"
        return None


# -- commands -------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from django.conf import settings

    from executions.embedded import EmbeddedRuntime

    payload = payload_from_args(args)
    path, version = _resolve_target(args.target)
    progress = None if args.json else Progress()
    runtime = EmbeddedRuntime(workers=args.workers or settings.NOETL_WORKERS,
                              task_timeout_s=settings.NOETL_TASK_TIMEOUT_S)
    if progress is not None:
        runtime.listeners.append(progress)
    with runtime, ctrl_c_interrupts(runtime.interrupt):
        try:
            execution_id = runtime.start_run(path, version, payload)
        except Exception as exc:
            from catalog.services import PlaybookNotFound

            if isinstance(exc, PlaybookNotFound):
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_NOT_FOUND
            raise
        if progress is not None:
            progress.roots.add(execution_id)
        status = runtime.wait(execution_id, timeout=args.timeout, interruptible=True)
        if status == "running" and runtime.interrupted.is_set():
            runtime.cancel(execution_id, "interrupted from the keyboard")
            status = runtime.wait(execution_id, timeout=10)
        if status == "running":
            runtime.cancel(execution_id, f"timed out after {args.timeout}s")
            status = runtime.wait(execution_id, timeout=10)
        doc = runtime.write(summary, execution_id)
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print_outcome(doc)
    return EXIT_OK if doc["status"] == "completed" else EXIT_FAILED


@contextlib.contextmanager
def ctrl_c_interrupts(on_interrupt: Callable[[], None]) -> Iterator[None]:
    """The first Ctrl-C calls ``on_interrupt`` (the caller then cancels the
    run cleanly); a second one quits at once.

    A KeyboardInterrupt raised into the middle of a write to the store or a
    request to the server would lose its answer (the new run's id, say), so
    the first Ctrl-C only asks the caller to stop waiting.
    """
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # e.g. started with &
    if ignored or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\ninterrupted: cancelling the run (Ctrl-C again to quit at once)",
              file=sys.stderr)
        on_interrupt()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def print_outcome(doc: dict[str, Any]) -> None:
    print(f"execution {doc['execution_id']}: {doc['status']}")
    if doc.get("error"):
        error = doc["error"]
        where = f" in step {error['step']!r}" if error.get("step") else ""
        print(f"error{where}: {error.get('message', error)}")
    print("result: " + json.dumps(doc["result"], indent=2, default=str))


def cmd_register(args: argparse.Namespace) -> int:
    for name in args.files:
        version = _register_file(Path(name))
        print(f"registered {version.path} v{version.version} ({name})")
    return EXIT_OK


def cmd_catalog(args: argparse.Namespace) -> int:
    from catalog.models import PlaybookVersion

    rows = PlaybookVersion.objects.order_by("path", "-version")
    if args.prefix:
        rows = rows.filter(path__startswith=args.prefix)
    print_catalog(rows.values("path", "version", "name", "created_at"))
    return EXIT_OK


def print_catalog(rows: Any) -> None:
    for row in rows:
        print(f"{row['path']}\tv{row['version']}\t{row['name']}\t"
              f"{row['created_at']:%Y-%m-%d %H:%M}")


def cmd_runs(args: argparse.Namespace) -> int:
    from executions.models import Execution
    from executions.queries import trigger_summary, with_trigger

    rows = with_trigger(Execution.objects.order_by("-created_at", "-id"))
    if args.status:
        rows = rows.filter(status=args.status)
    print_runs(
        ({**row, "trigger": trigger_summary(row.pop("started_trigger"))}
         for row in rows.values(*ROW_FIELDS, "started_trigger")[: args.limit]),
        as_json=args.json,
    )
    return EXIT_OK


ROW_FIELDS = ("id", "status", "path", "version", "created_at")


def print_runs(rows: Any, *, as_json: bool = False) -> None:
    if as_json:
        listed = [{field: row.get(field) for field in (*ROW_FIELDS, "trigger")}
                  for row in rows]
        print(json.dumps(listed, indent=2, default=_iso))
        return
    for row in rows:
        print(f"{row['id']}\t{row['status']}\t{row['path']} v{row['version']}\t"
              f"{row['created_at']:%Y-%m-%d %H:%M:%S}\t{trigger_label(row.get('trigger'))}")


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def trigger_label(trigger: dict[str, Any] | None) -> str:
    """``schedule nightly@2026-01-01T02:00:00+00:00``, or the kind alone."""
    trigger = trigger or {}
    if trigger.get("kind") == "schedule":
        return f"schedule {trigger.get('schedule')}@{trigger.get('fire_time')}"
    return trigger.get("kind") or ""


def cmd_show(args: argparse.Namespace) -> int:
    from executions.models import Execution

    if not Execution.objects.filter(id=args.execution_id).exists():
        print(f"error: no execution {args.execution_id}", file=sys.stderr)
        return EXIT_NOT_FOUND
    doc = summary(args.execution_id)
    execution = Execution.objects.get(id=args.execution_id)
    events = [
        shown_event(e.seq, e.ts.isoformat(), e.kind, e.step, e.status, e.error, e.payload)
        for e in execution.events.order_by("seq")
    ]
    print_show(doc, events, as_json=args.json)
    return EXIT_OK


def shown_event(seq: int, ts: str, kind: str, step: str, status: str,
                error: dict[str, Any] | None, payload: Any) -> dict[str, Any]:
    """One event as ``noetl show`` prints it; a warning keeps its text."""
    shown = {"seq": seq, "ts": ts, "kind": kind, "step": step, "status": status,
             "error": error}
    if kind == "warning" and isinstance(payload, dict):
        shown["message"] = payload.get("message")
    return shown


def print_show(doc: dict[str, Any], events: list[dict[str, Any]], *,
               as_json: bool) -> None:
    if as_json:
        print(json.dumps({**doc, "events": events}, indent=2, default=str))
        return
    print(f"execution {doc['execution_id']}  {doc['path']} v{doc['version']}  "
          f"{doc['status']}")
    for step, entry in doc["steps"].items():
        print(f"  {step:30} {entry['status']:10} runs={entry['runs']}")
    print("events:")
    for e in events:
        note = e["error"].get("message") if e["error"] else e.get("message")
        print(f"  #{e['seq']:<4} {_event_time(e['ts'])}  {e['kind']:20} {e['step']}"
              + (f"  {note}" if note else ""))
    if doc.get("error"):
        print(f"error: {doc['error'].get('message', doc['error'])}")


def _event_time(ts: str | None) -> str:
    """An event's ISO time as ``2026-01-02 03:04:05.678`` (UTC, as stored)."""
    if not ts:
        return " " * 23
    from datetime import datetime

    return datetime.fromisoformat(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def cmd_cancel(args: argparse.Namespace) -> int:
    from executions import control
    from executions.models import Execution

    if not Execution.objects.filter(id=args.execution_id).exists():
        print(f"error: no execution {args.execution_id}", file=sys.stderr)
        return EXIT_NOT_FOUND
    try:
        cancelled = control.cancel_tree(args.execution_id, user=None,
                                        reason=args.reason or "cancelled from the CLI")
    except control.Conflict as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print_cancelled(cancelled)
    return EXIT_OK


def print_cancelled(ids: list[str]) -> None:
    root, *children = ids
    print(f"cancelled {root}")
    for child in children:
        print(f"cancelled {child} (sub-playbook run)")


def credential_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The secret fields of ``credential add``, from ``--data JSON_OR_@FILE``."""
    if not args.name or not args.type or not args.data:
        raise UsageError("credential add needs NAME --type TYPE --data JSON_OR_@FILE")
    text = args.data
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {text[1:]}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--data is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise UsageError("--data must be a non-empty JSON object")
    return data


def print_credentials(rows: Any) -> None:
    """One line per credential: name, type, last change, description."""
    for row in rows:
        print(f"{row['name']}\t{row['type']}\t{row['updated_at']:%Y-%m-%d %H:%M}\t"
              f"{row['description']}")


def cmd_credential(args: argparse.Namespace) -> int:
    from credentials.models import Credential
    from credentials.store import save_credential

    if args.action == "list":
        print_credentials(Credential.objects.order_by("name").values(
            "name", "type", "updated_at", "description"))
        return EXIT_OK
    data = credential_from_args(args)
    try:
        save_credential(args.name, args.type, data, args.description or "",
                        args.allow)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"saved credential {args.name} ({args.type})")
    return EXIT_OK


def cmd_tools(args: argparse.Namespace) -> int:
    """The tool kinds, their parameters and credential types (no database)."""
    from workers.tools import registry

    kinds = registry.by_kind(registry.listed())
    if args.kind and args.kind not in kinds:
        known = ", ".join(sorted(kinds))
        raise UsageError(f"no tool kind {args.kind!r}; known: {known}")
    specs = [kinds[args.kind]] if args.kind else list(registry.listed())
    if args.json:
        print(json.dumps([spec.describe() for spec in specs], indent=2))
        return EXIT_OK
    if not args.kind:
        for spec in specs:
            missing = "" if spec.available() else f"  [needs .[{spec.extra}]]"
            print(f"{spec.kind:<11} {spec.summary}{missing}")
            for alias in spec.aliases:
                print(f"{alias:<11} alias of {spec.kind}")
        print("\n`noetl tools KIND` shows a kind's parameters and credential types.")
        return EXIT_OK
    print_tool(specs[0].describe())
    return EXIT_OK


def print_tool(spec: dict[str, Any]) -> None:
    print(f"{spec['kind']}: {spec['summary']}")
    if spec["aliases"]:
        print(f"also: {', '.join(spec['aliases'])}")
    print("parameters:")
    for name, text in spec["parameters"].items():
        print(f"  {name:<14} {text}")
    types = ", ".join(spec["credential_types"]) or "none"
    print(f"credential types: {types}")
    if spec["notes"]:
        print(f"notes: {spec['notes']}")
    if not spec["available"]:
        print(f"not installed: pip install 'noetl-django[{spec['extra']}]'")


def _server_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--server", metavar="URL", default=default,
                        help="use this control plane's REST API ($NOETL_SERVER)")
    parser.add_argument("--token", default=default,
                        help="API token for --server (default $NOETL_TOKEN)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="noetl", description="Run NoETL playbooks.")
    _server_options(top, None)
    # The same options after the subcommand (`noetl run x.yaml --server URL`);
    # SUPPRESS keeps an absent one from hiding the value given before it.
    common = argparse.ArgumentParser(add_help=False)
    _server_options(common, argparse.SUPPRESS)
    sub = top.add_subparsers(dest="command", required=True)
    add = functools.partial(sub.add_parser, parents=[common])

    run = add("run", help="run a playbook file or catalog path")
    run.add_argument("target", help="a playbook YAML file, or a registered catalog path")
    run.add_argument("--payload", help="JSON object (or @file) merged over the workload")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="set one workload key (value parsed as JSON when it can be)")
    run.add_argument("--json", action="store_true", help="print one JSON document")
    run.add_argument("--workers", type=int, help="worker threads (default 4)")
    run.add_argument("--timeout", type=float, help="cancel the run after this many seconds")
    run.set_defaults(func=cmd_run)

    register = add("register", help="validate and store playbooks")
    register.add_argument("files", nargs="+")
    register.set_defaults(func=cmd_register)

    catalog = add("catalog", help="list registered playbooks")
    catalog.add_argument("action", choices=["list"])
    catalog.add_argument("--prefix", help="only paths starting with this")
    catalog.set_defaults(func=cmd_catalog)

    runs = add("runs", help="recent executions")
    runs.add_argument("--status", choices=["running", "completed", "failed", "cancelled"])
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true", help="print a JSON list")
    runs.set_defaults(func=cmd_runs)

    show = add("show", help="one execution: status, steps, events")
    show.add_argument("execution_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)

    cancel = add("cancel", help="cancel a running execution and its sub-playbook runs")
    cancel.add_argument("execution_id")
    cancel.add_argument("--reason", help="recorded with the cancellation")
    cancel.set_defaults(func=cmd_cancel)

    credential = add("credential", help="manage credentials")
    credential.add_argument("action", choices=["add", "list"])
    credential.add_argument("name", nargs="?")
    credential.add_argument("--type", help="e.g. postgres, http, bearer")
    credential.add_argument("--data", help="JSON object, or @file")
    credential.add_argument("--description")
    credential.add_argument(
        "--allow", action="append", metavar="PATTERN",
        help="a catalog path pattern of the playbooks that may use it, e.g. "
             "'finance/*' (repeat for more; default for a new credential: '*')")
    credential.set_defaults(func=cmd_credential)

    tools = add("tools", help="tool kinds, their parameters and credential types")
    tools.add_argument("kind", nargs="?", help="show one kind in full")
    tools.add_argument("--json", action="store_true")
    tools.set_defaults(func=cmd_tools)

    from schedules import cli as schedule_cli
    from search import cli as search_cli

    schedule_cli.add_parser(add)
    search_cli.add_parser(add)
    return top


def _validate_files_first(args: argparse.Namespace) -> None:
    """Refuse an invalid playbook before anything (even the database) is written."""
    from catalog.dsl import PlaybookError, parse_playbook
    from workers.tools import supported_kinds

    names = list(getattr(args, "files", None) or [])
    target = getattr(args, "target", None)
    if target and (Path(target).suffix in (".yaml", ".yml") or Path(target).is_file()):
        names.append(target)
    for name in names:
        path = Path(name)
        try:
            text = path.read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {name}: {exc.strerror}") from None
        try:
            parsed = parse_playbook(text, known_kinds=supported_kinds())
        except PlaybookError as exc:
            raise UsageError(f"{name} is not a valid playbook:\n{exc}") from None
        _validated[text] = parsed
        for warning in parsed["warnings"]:
            line = f" (line {warning['line']})" if warning["line"] else ""
            print(f"warning: {name}: {warning['path']}{line}: {warning['message']}",
                  file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.server = args.server or os.environ.get("NOETL_SERVER", "")
    args.token = args.token or os.environ.get("NOETL_TOKEN", "")
    try:
        _validate_files_first(args)
        if args.command == "tools":  # local knowledge: no server, no database
            return args.func(args)
        if args.server:
            from noetl_site import remote

            return remote.main(args)
        if args.command == "run":
            # The python zygote boots (a fresh interpreter importing its
            # preload list) while Django sets up here, instead of after it,
            # when the run's first python step would wait for it. It is
            # exec'd, not forked, so starting it this early changes nothing
            # it inherits; the embedded runtime finds it running.
            from workers.tools.python import start_zygote

            start_zygote()
        setup_django()
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def entry() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``noetl runs | head``): stop quietly, and
        # keep the interpreter from complaining while it flushes at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy, so `python -m` shares
    # one set of classes with the modules that import noetl_site.cli.
    from noetl_site.cli import entry as imported_entry

    imported_entry()
