"""``manage.py runscheduler``: the time-driven duties of distributed mode.

Each round fires due schedules and starts queued fires whose previous run
ended, applies inbox rows (a child run ended, a parent was cancelled),
requeues commands whose lease expired, republishes the pointers of
commands left unclaimed for ``NOETL_REPAIR_AFTER_S`` and, with a shared
search index, embeds new playbooks and failed runs. Every duty takes its
rows with row locks and SKIP LOCKED and rechecks them under the lock, so
several copies can run at once without a leader (DESIGN-NOTES R13).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection

from executions import service
from schedules import duty
from search import service as search

log = logging.getLogger("noetl.executions.scheduler")
lifecycle = logging.getLogger("noetl.lifecycle")
# Sleep in slices this short so SIGTERM is honoured promptly.
SLEEP_SLICE_S = 0.2


class Command(BaseCommand):
    help = (
        "Run the time-driven duties: schedule fires, lease expiry and requeue, "
        "inbox, pointer repair."
    )

    # Tests replace these: the clock every due time is compared with, and sleep.
    clock: Callable[[], datetime] = staticmethod(duty.db_now)
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = False
        self.repair_after_s: float | None = None

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--interval", type=float, default=settings.NOETL_DUTY_INTERVAL_S
        )
        parser.add_argument(
            "--repair-after", type=float, default=settings.NOETL_REPAIR_AFTER_S
        )
        parser.add_argument(
            "--once", action="store_true", help="run one round and exit"
        )

    def handle(self, *args: Any, **options: Any) -> str:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.on_signal)
        self.repair_after_s = options["repair_after"]
        lifecycle.info("scheduler: duties every %ss, republishing after %ss",
                 options["interval"], options["repair_after"])

        while not self.stopping:
            self.round()
            if options["once"]:
                break
            self.pause(options["interval"])
        lifecycle.info("scheduler: stopped")
        return ""

    def on_signal(self, *_: Any) -> None:
        self.stopping = True

    def pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            self.sleep(min(SLEEP_SLICE_S, max(0.0, deadline - time.monotonic())))

    def round(self) -> None:
        """Drain each duty until it reports no more work. A failing duty is
        logged and retried next round; it never stops the others."""
        if not connection.in_atomic_block:
            close_old_connections()
        steps = [self.fire_schedules, self.start_queued_fires, self.run_duties]
        if search.indexer_enabled():
            steps.append(self.index_search)
        for step in steps:
            try:
                while step() and not self.stopping:
                    pass
            except Exception:
                log.exception("%s failed; retrying next round", step.__name__)

    # -- steps: each returns True when it found work and should run again -------

    def fire_schedules(self) -> bool:
        handled = duty.fire_due(self.clock())
        service.settle()
        if handled:
            log.info("fired %d schedule(s)", handled)
        return handled >= 50

    def start_queued_fires(self) -> bool:
        started = duty.start_queued()
        service.settle()
        return started > 0

    def index_search(self) -> bool:
        """Embed playbooks registered and runs failed since the last round."""
        added = search.catch_up()
        if added:
            log.info("indexed %d search documents", added)
        return False

    def run_duties(self) -> bool:
        from workers import dispatch

        republish = service.duty_round(self.repair_after_s)
        if republish:
            log.info("republishing %d pointer(s)", len(republish))
            dispatch.publish(republish)
        return False
