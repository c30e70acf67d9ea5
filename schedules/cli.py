"""``noetl schedule add|list|pause|resume|delete|backfill``.

Both modes print the same lines from the same documents: the REST API's
schedule representation, built locally by its serializer in embedded mode
and fetched from ``/api/schedules/`` with ``--server``. A schedule is named
by its id or its name.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from noetl_site import cli
from noetl_site.text import count

ACTIONS = ["add", "list", "pause", "resume", "delete", "backfill", "serve"]


def add_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    schedule = add("schedule", help="manage schedules (cron or interval)")
    schedule.add_argument("action", choices=ACTIONS)
    schedule.add_argument("schedule", nargs="?", help="a name (add) or an id or name")
    schedule.add_argument("--path", help="add: the playbook's catalog path")
    schedule.add_argument("--version", type=int, help="add: pin a version")
    schedule.add_argument("--cron", default="", help="add: e.g. '*/15 * * * *'")
    schedule.add_argument("--every", type=int, help="add: an interval in seconds")
    schedule.add_argument("--timezone", default="UTC", help="add: IANA name")
    schedule.add_argument("--payload", help="add: JSON object (or @file)")
    schedule.add_argument("--set", action="append", metavar="KEY=VALUE")
    schedule.add_argument("--catchup", default="latest", help="none, latest or all")
    schedule.add_argument("--max-catchup", type=int, default=10)
    schedule.add_argument("--concurrency", default="allow", help="allow, skip, queue")
    schedule.add_argument("--start", help="add: first possible fire (ISO 8601)")
    schedule.add_argument("--end", help="add: last possible fire (ISO 8601)")
    schedule.add_argument("--paused", action="store_true", help="add: disabled")
    schedule.add_argument(
        "--from", dest="first", help="backfill: ISO 8601, UTC if naive"
    )
    schedule.add_argument("--to", dest="last", help="backfill: ISO 8601, UTC if naive")
    schedule.add_argument(
        "--rate", type=float, default=5.0, help="backfill: most runs a second"
    )
    schedule.add_argument(
        "--for", dest="duration", type=float, help="serve: stop after this many seconds"
    )
    schedule.set_defaults(func=embedded)


# -- shared ---------------------------------------------------------------------------


def when(text: str | None, option: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise cli.UsageError(f"{option} is not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fields_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The schedule ``add`` describes, as the REST API takes it."""
    if not args.schedule or not args.path:
        raise cli.UsageError(
            "schedule add needs NAME --path PATH and --cron or --every"
        )
    start, end = when(args.start, "--start"), when(args.end, "--end")
    return {
        "name": args.schedule,
        "path": args.path,
        "version": args.version,
        "cron": args.cron,
        "interval_s": args.every,
        "timezone": args.timezone,
        "payload": cli.payload_from_args(args),
        "enabled": not args.paused,
        "start_at": start.isoformat() if start else None,
        "end_at": end.isoformat() if end else None,
        "catchup": args.catchup,
        "max_catchup": args.max_catchup,
        "concurrency": args.concurrency,
    }


def backfill_range(args: argparse.Namespace) -> tuple[datetime, datetime]:
    first, last = when(args.first, "--from"), when(args.last, "--to")
    if first is None or last is None:
        raise cli.UsageError("schedule backfill needs ID --from TIME --to TIME")
    if args.rate <= 0:
        raise cli.UsageError("--rate must be a positive number of runs a second")
    return first, last


def refused(errors: dict[str, Any]) -> cli.UsageError:
    lines = [
        f"  {field}: {' '.join(str(p) for p in problems)}"
        if isinstance(problems, list)
        else f"  {field}: {problems}"
        for field, problems in errors.items()
    ]
    return cli.UsageError("the schedule was refused:\n" + "\n".join(lines))


def print_schedules(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        trigger = row["cron"] or f"every {row['interval_s']}s"
        state = "enabled" if row["enabled"] else "paused"
        print(
            f"{row['id']}\t{row['name']}\t{row['path']}\t{trigger}\t{row['timezone']}"
            f"\t{state}\tnext={row['next_run_at'] or '-'}"
            f"\tlast={row['last_fire_at'] or '-'} {row['last_status'] or ''}".rstrip()
        )


def print_backfilled(name: str, created: int, existing: int) -> None:
    print(f"backfilled {name}: {count(created, 'run')} started, "
          f"{existing} already existed")


# -- embedded ---------------------------------------------------------------------


def embedded(args: argparse.Namespace) -> int:
    from django.core.exceptions import ValidationError

    from schedules import duty
    from schedules.api.serializers import ScheduleSerializer
    from schedules.models import Schedule

    if args.action == "list":
        rows = ScheduleSerializer(Schedule.objects.order_by("name"), many=True).data
        print_schedules(list(rows))
        return cli.EXIT_OK
    if args.action == "serve":
        return serve(args.duration)
    if args.action == "add":
        schedule = Schedule(**fields_from_args(args))
        schedule.start_at = when(args.start, "--start")
        schedule.end_at = when(args.end, "--end")
        try:
            schedule.save_checked(duty.db_now())
        except ValidationError as exc:
            raise refused(exc.message_dict) from None
        print_schedules([ScheduleSerializer(schedule).data])
        return cli.EXIT_OK

    schedule = _find(args.schedule)
    if schedule is None:
        print(f"error: no schedule {args.schedule}", file=sys.stderr)
        return cli.EXIT_NOT_FOUND
    if args.action == "backfill":
        first, last = backfill_range(args)
        try:
            done = duty.backfill(schedule, first, last, rate_per_s=args.rate)
        except ValueError as exc:
            raise cli.UsageError(str(exc)) from None
        print_backfilled(schedule.name, done.created, done.existing)
        if done.created:
            # Embedded runs need a process to execute them; nothing else runs.
            print("the runs wait for `noetl schedule serve` to execute them")
        return cli.EXIT_OK
    if args.action == "delete":
        schedule.delete()
        print(f"deleted schedule {args.schedule}")
        return cli.EXIT_OK
    if args.action == "pause":
        schedule.pause()
    else:
        schedule.resume(duty.db_now())
    print_schedules([ScheduleSerializer(schedule).data])
    return cli.EXIT_OK


def serve(duration: float | None) -> int:
    """Fire schedules and run their runs in this process (embedded mode's
    ``runscheduler`` plus workers) until interrupted or ``duration`` ends."""
    import signal
    import threading

    from django.conf import settings

    from executions.embedded import EmbeddedRuntime

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runtime = EmbeddedRuntime(
        workers=settings.NOETL_WORKERS,
        task_timeout_s=settings.NOETL_TASK_TIMEOUT_S,
        fire_schedules=True,
    )
    print("serving schedules; Ctrl-C stops", flush=True)
    with runtime:
        try:
            stop.wait(duration)
        except KeyboardInterrupt:
            pass
    print("stopped")
    return cli.EXIT_OK


def _find(key: str | None) -> Any:
    from schedules.models import Schedule

    if not key:
        raise cli.UsageError("name the schedule: its id or its name")
    rows = Schedule.objects.filter(name=key)
    if key.isdigit():
        rows = Schedule.objects.filter(id=int(key)) | rows
    return rows.first()


# -- over REST ---------------------------------------------------------------------


def remote(args: argparse.Namespace, client: Any) -> int:
    """The same actions against ``--server``; ``client`` is a remote.Client."""
    from noetl_site.remote import RemoteError

    if args.action == "serve":
        raise cli.UsageError(
            "schedule serve is embedded only; a server fires schedules with "
            "manage.py runscheduler"
        )
    if args.action == "list":
        print_schedules(client.call("GET", "/api/schedules/")["results"])
        return cli.EXIT_OK
    if args.action == "add":
        try:
            row = client.call("POST", "/api/schedules/", json=fields_from_args(args))
        except RemoteError as exc:
            if exc.status == 400 and isinstance(exc.body, dict):
                raise refused(exc.body) from None
            raise
        print_schedules([row])
        return cli.EXIT_OK

    url = f"/api/schedules/{_remote_id(client, args.schedule)}/"
    if args.action == "delete":
        client.call("DELETE", url)
        print(f"deleted schedule {args.schedule}")
    elif args.action == "backfill":
        _remote_backfill(client, url, args)
    else:
        print_schedules([client.call("POST", f"{url}{args.action}/")])
    return cli.EXIT_OK


def _remote_id(client: Any, key: str | None) -> str:
    from noetl_site.remote import RemoteError

    if not key:
        raise cli.UsageError("name the schedule: its id or its name")
    rows = client.call("GET", "/api/schedules/", params={"name": key})["results"]
    if rows:
        return str(rows[0]["id"])
    if key.isdigit():
        return key
    raise RemoteError(404, f"no schedule {key}")


def _remote_backfill(client: Any, url: str, args: argparse.Namespace) -> None:
    """One bounded chunk per request, paced on this side to ``--rate``."""
    first, last = backfill_range(args)
    chunk = max(1, min(200, int(args.rate * 2)))
    created = existing = 0
    cursor: str | None = first.isoformat()
    while cursor is not None:
        started = time.monotonic()
        body = {"start": cursor, "end": last.isoformat(), "limit": chunk}
        done = client.call("POST", f"{url}backfill/", json=body)
        created, existing = created + done["created"], existing + done["existing"]
        cursor = done["next_from"]
        pause = done["created"] / args.rate - (time.monotonic() - started)
        if cursor is not None and pause > 0:
            time.sleep(pause)
    print_backfilled(args.schedule, created, existing)
