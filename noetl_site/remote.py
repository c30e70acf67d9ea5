"""``noetl --server URL ...``: the CLI's commands over the REST API.

Each command prints what its embedded twin in ``noetl_site.cli`` prints,
from the same builders (``run_document``, ``print_show``, ``print_runs``,
``Progress``); only where the data comes from differs. ``run`` follows the
run by polling its events page from the last seq seen, so progress shows
live and the loop ends on the terminal status, never on a quiet spell.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from noetl_site import cli

POLL_S = 0.3
EVENTS_PAGE = 500


class RemoteError(Exception):
    """The server answered with an error, or could not be reached."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class Client:
    """The few REST calls the CLI makes."""

    def __init__(self, server: str, token: str = "", timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=server.rstrip("/"), headers=headers, timeout=timeout
        )

    def call(self, method: str, url: str, **options: Any) -> Any:
        try:
            response = self.http.request(method, url, **options)
        except httpx.HTTPError as exc:
            raise RemoteError(0, f"cannot reach {self.http.base_url}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else None
            message = detail or f"{response.status_code} {response.reason_phrase}"
            raise RemoteError(response.status_code, str(message), body)
        return body

    def register(self, text: str) -> dict[str, Any]:
        return self.call(
            "POST",
            "/api/catalog/",
            content=text.encode(),
            headers={"Content-Type": "application/yaml"},
        )

    def start(
        self, path: str, version: int | None, payload: dict[str, Any]
    ) -> dict[str, Any]:
        # One key for this start: when the connection fails mid-request the
        # retry returns the run the first attempt may already have started.
        key = str(uuid.uuid4())
        body = {"path": path, "version": version, "payload": payload}
        try:
            return self.call(
                "POST", "/api/executions/", json=body, headers={"Idempotency-Key": key}
            )
        except RemoteError as exc:
            if exc.status != 0:
                raise
        return self.call(
            "POST", "/api/executions/", json=body, headers={"Idempotency-Key": key}
        )

    def execution(self, execution_id: str) -> dict[str, Any]:
        return self.call(
            "GET", f"/api/executions/{execution_id}/", params={"detail": "full"}
        )

    def events(
        self, execution_id: str, after_seq: int = 0, limit: int = EVENTS_PAGE
    ) -> dict[str, Any]:
        return self.call(
            "GET",
            f"/api/executions/{execution_id}/events/",
            params={"after_seq": after_seq, "limit": limit},
        )

    def runs(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self.call("GET", "/api/executions/", params=params)["results"]

    def save_credential(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create the credential, or replace its data when it exists."""
        try:
            return self.call("PUT", f"/api/credentials/{name}/", json=body)
        except RemoteError as exc:
            if exc.status != 404:
                raise
        return self.call("POST", "/api/credentials/", json={"name": name, **body})

    def catalog(self, prefix: str) -> list[dict[str, Any]]:
        """The newest version of each playbook under ``prefix``, every page."""
        rows: list[dict[str, Any]] = []
        after: str | None = ""
        while after is not None:
            page = self.call("GET", "/api/catalog/",
                             params={"path_prefix": prefix, "after": after})
            rows += page["results"]
            after = page["next_after"]
        return rows

    def credentials(self) -> list[dict[str, Any]]:
        body = self.call("GET", "/api/credentials/")
        return body["results"] if isinstance(body, dict) else body

    def cancel(self, execution_id: str, reason: str) -> dict[str, Any]:
        return self.call(
            "POST", f"/api/executions/{execution_id}/cancel/", json={"reason": reason}
        )


# -- commands -------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, client: Client) -> int:
    payload = cli.payload_from_args(args)
    path, version = args.target, None
    candidate = Path(args.target)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        registered = _register(client, candidate)
        path, version = registered["path"], registered["version"]
    progress = None if args.json else cli.Progress()
    interrupted = threading.Event()
    with cli.ctrl_c_interrupts(interrupted.set):
        try:
            execution_id = client.start(path, version, payload)["id"]
        except RemoteError as exc:
            if exc.status == 404:
                print(f"error: {exc}", file=sys.stderr)
                return cli.EXIT_NOT_FOUND
            raise
        follower = Follower(client, execution_id, progress)
        status = follower.follow(timeout=args.timeout, interrupted=interrupted)
        if status == "running" and interrupted.is_set():
            _cancel_quietly(client, execution_id, "interrupted from the keyboard")
            status = follower.follow(timeout=10)
        if status == "running":
            _cancel_quietly(client, execution_id, f"timed out after {args.timeout}s")
            status = follower.follow(timeout=10)

    doc = cli.run_document(client.execution(execution_id))
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        cli.print_outcome(doc)
    return cli.EXIT_OK if doc["status"] == "completed" else cli.EXIT_FAILED


def _cancel_quietly(client: Client, execution_id: str, reason: str) -> None:
    try:
        client.cancel(execution_id, reason)
    except RemoteError as exc:
        if exc.status != 409:  # 409: it ended meanwhile
            raise


class Follower:
    """Reads a run's events in seq order until its status is terminal."""

    def __init__(
        self, client: Client, execution_id: str, progress: cli.Progress | None
    ) -> None:
        self.client = client
        self.execution_id = execution_id
        self.progress = progress
        self.after_seq = 0
        if progress is not None:
            progress.roots.add(execution_id)

    def follow(self, timeout: float | None = None,
               interrupted: threading.Event | None = None) -> str:
        """The run's final status, or "running" if ``timeout`` or
        ``interrupted`` came first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interrupted = interrupted or threading.Event()
        while True:
            page = self.client.events(self.execution_id, self.after_seq)
            events = page["results"]
            if events:
                self.after_seq = page["next_after_seq"]
                if self.progress is not None:
                    self.progress(self.execution_id, events)
            # The status was read before the events: terminal plus a short
            # page means the whole log has been seen.
            full_page = len(events) >= EVENTS_PAGE
            if page["status"] != "running" and not full_page:
                return page["status"]
            if interrupted.is_set() or (
                    deadline is not None and time.monotonic() >= deadline):
                return "running"
            if not full_page:
                interrupted.wait(POLL_S)


def _register(client: Client, path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise cli.UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return client.register(text)
    except RemoteError as exc:
        if exc.status == 400 and isinstance(exc.body, dict) and "issues" in exc.body:
            issues = "\n".join(issue["text"] for issue in exc.body["issues"])
            raise cli.UsageError(f"{path} is not a valid playbook:\n{issues}") from None
        raise


def cmd_register(args: argparse.Namespace, client: Client) -> int:
    for name in args.files:
        version = _register(client, Path(name))
        print(f"registered {version['path']} v{version['version']} ({name})")
    return cli.EXIT_OK


def cmd_runs(args: argparse.Namespace, client: Client) -> int:
    rows = client.runs(args.status, args.limit)
    cli.print_runs(
        ({**row, "created_at": datetime.fromisoformat(row["created_at"])}
         for row in rows),
        as_json=args.json,
    )
    return cli.EXIT_OK


def cmd_catalog(args: argparse.Namespace, client: Client) -> int:
    rows = client.catalog(args.prefix or "")
    cli.print_catalog(
        {**row, "created_at": datetime.fromisoformat(row["created_at"])} for row in rows
    )
    return cli.EXIT_OK


def cmd_show(args: argparse.Namespace, client: Client) -> int:
    doc = cli.run_document(client.execution(args.execution_id))
    events, after_seq = [], 0
    while True:
        page = client.events(args.execution_id, after_seq)
        events += [
            cli.shown_event(
                e["seq"], datetime.fromisoformat(e["ts"]).isoformat(), e["kind"],
                e["step"], e["status"], e["error"], e.get("payload"),
            )
            for e in page["results"]
        ]
        if len(page["results"]) < EVENTS_PAGE:
            break
        after_seq = page["next_after_seq"]
    cli.print_show(doc, events, as_json=args.json)
    return cli.EXIT_OK


def cmd_cancel(args: argparse.Namespace, client: Client) -> int:
    try:
        answer = client.cancel(
            args.execution_id, args.reason or "cancelled from the CLI"
        )
    except RemoteError as exc:
        if exc.status == 409:
            print(f"error: {exc}", file=sys.stderr)
            return cli.EXIT_FAILED
        raise
    cli.print_cancelled(answer["cancelled"])
    return cli.EXIT_OK


def cmd_credential(args: argparse.Namespace, client: Client) -> int:
    if args.action == "list":
        cli.print_credentials(
            {**row, "updated_at": datetime.fromisoformat(row["updated_at"])}
            for row in client.credentials()
        )
        return cli.EXIT_OK
    data = cli.credential_from_args(args)
    body = {"type": args.type, "data": data, "description": args.description or ""}
    if args.allow:
        body["allowed_paths"] = args.allow
    client.save_credential(args.name, body)
    print(f"saved credential {args.name} ({args.type})")
    return cli.EXIT_OK


def cmd_schedule(args: argparse.Namespace, client: Client) -> int:
    from schedules import cli as schedule_cli

    return schedule_cli.remote(args, client)


def cmd_search(args: argparse.Namespace, client: Client) -> int:
    from search import cli as search_cli

    return search_cli.remote(args, client)


COMMANDS = {
    "run": cmd_run,
    "register": cmd_register,
    "catalog": cmd_catalog,
    "runs": cmd_runs,
    "show": cmd_show,
    "cancel": cmd_cancel,
    "credential": cmd_credential,
    "schedule": cmd_schedule,
    "search": cmd_search,
}


def main(args: argparse.Namespace) -> int:
    command = COMMANDS.get(args.command)
    if command is None:
        raise cli.UsageError(
            f"'{args.command}' works on the local database only; "
            "run it without --server (or use the REST API)"
        )
    client = Client(args.server, args.token)
    try:
        return command(args, client)
    except RemoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.status == 404:
            return cli.EXIT_NOT_FOUND
        if exc.status == 400:
            return cli.EXIT_USAGE
        return cli.EXIT_SERVER
    finally:
        client.http.close()
