#!/usr/bin/env python3
"""A python task's own start-up cost on the worker's critical path.

Each task goes through the real tool entry point (``workers.tools.python.run``)
with its own command resources, so it gets its own child forked from the warm
zygote, as a worker command does (DESIGN-NOTES R10), and the child is closed
after it. Three figures per task:

- ``startup_ms``: from the tool call to the first line of user code running
  (the code reads ``time.perf_counter()``, the system-wide monotonic clock on
  Linux, so the two processes' readings compare);
- ``task_ms``: the whole tool call of a task that does nothing;
- ``child_cpu_ms``: CPU the zygote and its children spent per task (fork,
  warm-up, the task, exit), read from /proc; this is off the critical path
  while a spare is ready, but it bounds how many tasks a second a worker's
  zygote can supply.

Two regimes: ``ready`` leaves ``--gap-ms`` between tasks, as steps separated
by the control plane's own work do, so a spare child is forked and waiting
(the case the 1 ms target is about); ``back_to_back`` starts each task as soon
as the last ended, which shows the sustained supply of children.

    python bench/python_startup.py [--runs 200] [--gap-ms 20]

Prints one JSON line. Run by hand (bench/run.py runs it too), never by CI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CODE = "import time\nresult = time.perf_counter()"


def _tree_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` and of its reaped children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _one_task(python: Any) -> tuple[float, float]:
    """(seconds to the first line of user code, seconds of the whole call)."""
    from workers.tools.base import ToolContext

    ctx = ToolContext(step="bench", task="startup", timeout=10)
    started = time.perf_counter()
    outcome = python.run({"code": CODE}, ctx)
    ended = time.perf_counter()
    python.close_resources(ctx)
    if outcome.get("status") != "ok":
        raise SystemExit(f"python task failed: {outcome.get('error')}")
    return outcome["data"] - started, ended - started


def _regime(python: Any, zygote_pid: int, runs: int, gap_s: float) -> dict[str, Any]:
    startup, task = [], []
    cpu_before = _tree_cpu_s(zygote_pid)
    clock_before = time.perf_counter()
    for _ in range(runs):
        if gap_s:
            time.sleep(gap_s)
        first_line, whole = _one_task(python)
        startup.append(first_line)
        task.append(whole)
    elapsed = time.perf_counter() - clock_before
    cpu = _tree_cpu_s(zygote_pid) - cpu_before
    return {
        "runs": runs,
        "startup_ms": _stats(startup),
        "task_ms": _stats(task),
        "child_cpu_ms": round(cpu / runs * 1000, 2),
        **({} if gap_s else {"tasks_per_s": round(runs / elapsed)}),
    }


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered) * 1000, 3),
        "p90": round(ordered[int(len(ordered) * 0.9)] * 1000, 3),
        "min": round(ordered[0] * 1000, 3),
    }


def measure(runs: int, gap_s: float) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from workers.tools import python

    zygote = python.start_zygote()
    try:
        assert zygote.pid is not None
        _one_task(python)  # the zygote has finished importing
        time.sleep(0.5)  # and its spares are forked and warm
        ready = _regime(python, zygote.pid, runs, gap_s)
        back_to_back = _regime(python, zygote.pid, max(10, runs // 2), 0.0)
    finally:
        zygote.stop()
    return {
        "python_startup": True,
        "gap_ms": gap_s * 1000,
        "ready": ready,
        "back_to_back": back_to_back,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    result = measure(args.runs, args.gap_ms / 1000)
    print(json.dumps(result), flush=True)
    ready = result["ready"]
    print(
        f"python task start-up (spare ready): median {ready['startup_ms']['median']} ms,"
        f" p90 {ready['startup_ms']['p90']} ms; whole no-op task "
        f"{ready['task_ms']['median']} ms; back to back "
        f"{result['back_to_back']['tasks_per_s']} tasks/s, "
        f"{result['back_to_back']['child_cpu_ms']} ms CPU per child",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
