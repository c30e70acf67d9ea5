"""``manage.py export_events --to clickhouse://host[:port]/database``: copy
the event log into ClickHouse, once or continuously (``--follow``), exactly
once across crashes and restarts (see ``executions.clickhouse``). With
``--query NAME`` it prints one of the ready analysis queries' results
instead."""

from __future__ import annotations

import signal
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from executions import clickhouse
from noetl_site.text import count

SLEEP_SLICE_S = 0.2


class Command(BaseCommand):
    help = "Copy new events into a ClickHouse table (created if missing, by month)."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = False

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--to",
            required=True,
            help="clickhouse://[user[:password]@]host[:port][/database]",
        )
        parser.add_argument("--table", default=clickhouse.DEFAULT_TABLE)
        parser.add_argument(
            "--follow",
            action="store_true",
            help="keep copying new events until stopped",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=2.0,
            help="seconds between passes with --follow",
        )
        parser.add_argument(
            "--batch", type=int, default=10_000, help="events per INSERT"
        )
        parser.add_argument(
            "--settle",
            type=float,
            default=60.0,
            help="seconds a missing event id is waited for",
        )
        parser.add_argument(
            "--query",
            choices=sorted(clickhouse.QUERIES),
            help="print a ready query's result instead of copying",
        )
        parser.add_argument(
            "--show-sql",
            action="store_true",
            help="with --query: print the SQL, run nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            target = clickhouse.parse_target(options["to"], options["table"])
            if options["query"] and options["show_sql"]:
                sql = clickhouse.QUERIES[options["query"]]
                self.stdout.write(sql.format(table=target.qualified).strip())
                return
            client = clickhouse.connect(target)
            if options["query"]:
                self._print_query(client, target, options["query"])
                return
            clickhouse.create_table(client, target)
        except clickhouse.ExportError as exc:
            raise CommandError(str(exc)) from None
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1")

        exporter = clickhouse.Exporter(
            client, target, batch=options["batch"], settle_s=options["settle"]
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        while True:
            copied = exporter.run_once()
            if options["verbosity"] >= 1 and (copied or not options["follow"]):
                self.stdout.write(
                    f"copied {count(copied, 'event')} to {target.qualified} "
                    f"(up to source id {exporter.last_id})"
                )
            if not options["follow"] or self.stopping:
                return
            self._pause(options["interval"])
            close_old_connections()

    def _on_signal(self, *_: Any) -> None:
        self.stopping = True

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(SLEEP_SLICE_S, max(0.0, deadline - time.monotonic())))

    def _print_query(self, client: Any, target: Any, name: str) -> None:
        rows, columns = clickhouse.run_query(client, target, name)
        self.stdout.write("\t".join(columns))
        for row in rows:
            self.stdout.write("\t".join("" if v is None else str(v) for v in row))
