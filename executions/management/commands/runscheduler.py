"""``manage.py runscheduler``: the time-driven duties of distributed mode.

Each round applies inbox rows (a child run ended, a parent was cancelled),
requeues commands whose lease expired, and republishes the pointers of
commands left unclaimed for ``NOETL_REPAIR_AFTER_S``. Every duty takes its
rows with row locks and SKIP LOCKED and rechecks them under the execution
lock, so several copies can run at once without a leader (DESIGN-NOTES R13).
"""

from __future__ import annotations

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from executions import service

log = logging.getLogger("noetl.executions.scheduler")


class Command(BaseCommand):
    help = "Run the time-driven duties: lease expiry and requeue, inbox, pointer repair."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=settings.NOETL_DUTY_INTERVAL_S)
        parser.add_argument("--repair-after", type=float,
                            default=settings.NOETL_REPAIR_AFTER_S)
        parser.add_argument("--once", action="store_true", help="run one round and exit")

    def handle(self, *args, **options):
        from workers import dispatch

        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"scheduler: duties every {options['interval']}s, republishing "
                          f"after {options['repair_after']}s")
        self.stdout.flush()
        while True:
            try:
                close_old_connections()
                republish = service.duty_round(options["repair_after"])
                if republish:
                    log.info("republishing %d pointer(s)", len(republish))
                    dispatch.publish(republish)
            except Exception:
                log.exception("duty round failed; retrying next round")
            if options["once"] or stop.wait(options["interval"]):
                break
