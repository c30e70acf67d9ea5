#!/usr/bin/env python3
"""Benchmark of the ``noetl`` CLI on the shared workloads (``../shared/bench``).

Run by hand, never by CI: ``python bench/run.py --mode both --loop10000``.
Each workload gets a fresh NOETL_HOME; it is run once to warm up (schema,
catalog, page cache), then ``--runs`` times measured. Distributed mode
starts its own stack (gunicorn, two workers and the scheduler over a fresh
PostgreSQL database and the local NATS; ``noetl_site.devstack``) unless
``--server`` names a running one, and stops it at the end. Every run is a
``noetl run FILE --json`` subprocess:

- cold: wall time of the whole process, from spawn to exit;
- warm: from the run's ``execution.started`` event to its terminal event, read
  back with ``noetl show ID --json`` (the run alone, without start-up);
- cpu: CPU seconds of the CLI and everything it reaped (the zygote and its
  python children), plus, in distributed mode, of the watched servers' process
  trees during the run: wall times on a shared 2-core machine swing with the
  others' load (``load1`` records it), CPU time much less;
- peak RSS: the largest single process in the CLI's process tree (the CLI,
  the Python zygote and its forked children), from ``wait4`` and from polling
  ``VmHWM`` in /proc; per-process peaks and the peak of the tree's summed RSS
  are printed too.

A run whose result is wrong (see ``WORKLOADS``) or whose exit code is not 0
is marked ``ok: false`` and left out of the medians. Output is JSON lines on
stdout: one per run, then one summary per workload, then one ``derived`` line
per mode (per-step overhead, per-iteration cost, loop ratios, loop1000
iterations/s); a readable table goes to stderr. Then, unless turned off, the
lines of ``bench/python_startup.py`` (a python task's own start-up cost) and
of ``bench/statements.py`` per mode (statements, events and bytes written per
event, per step and per loop iteration; SQLite for embedded, PostgreSQL for
distributed). ``--loop100000`` adds the 100 000-iteration loop (2 runs by
default). Standard library only (psycopg for the http_pg database).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NOETL_SHARED_DIR") or REPO.parent / "shared")

# A fixed key (urlsafe base64 of 32 bytes), as the conformance suite does, so
# the CLI does not warn about generating a development key.
ENCRYPTION_KEY = base64.urlsafe_b64encode(b"noetl-bench-key-0123456789abcdef").decode()
ITEM = {"name": "widget", "price": 7}
HTTP_HOST, HTTP_PORT = "127.0.0.1", 8765
PG_CREDENTIAL = "bench_pg"
TERMINAL = {"workflow.completed", "workflow.failed", "execution.cancelled"}


# -- workloads -----------------------------------------------------------------


def _dig(doc: Any, *path: str | int) -> Any:
    for key in path:
        try:
            doc = doc[key]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


Checker = Callable[[dict[str, Any]], str | None]


def _expect(label: str, path: tuple[str | int, ...], expected: Any) -> Checker:
    """A check that one value of the run document equals ``expected``."""

    def check(doc: dict[str, Any]) -> str | None:
        actual = _dig(doc, "steps", *path)
        if actual == expected and not isinstance(actual, bool):
            return None
        return f"{label} is {actual!r}, expected {expected!r}"

    return check


@dataclass(frozen=True)
class Workload:
    name: str
    file: str
    check: Checker
    payload: dict[str, Any] | None = None
    needs_services: bool = False  # the HTTP item server and the bench_pg database


def _loop(n: int) -> Workload:
    check = _expect("total.sum", ("total", "result", "sum"), n * (n - 1))
    return Workload(f"loop{n}", "loop.yaml", check, payload={"n": n})


WORKLOADS = {
    w.name: w
    for w in [
        Workload(
            "hello", "hello.yaml", _expect("s02.acc", ("s02", "result", "acc"), 3)
        ),
        Workload(
            "chain20", "chain20.yaml", _expect("s19.acc", ("s19", "result", "acc"), 190)
        ),
        _loop(100),
        _loop(1000),
        _loop(10000),
        _loop(100000),
        Workload(
            "http_pg",
            "http_pg.yaml",
            _expect("count.rows[0].n", ("count", "result", "rows", 0, "n"), 100),
            needs_services=True,
        ),
    ]
}
DEFAULT_WORKLOADS = ["hello", "chain20", "loop100", "loop1000", "http_pg"]


# -- the noetl command ---------------------------------------------------------


@dataclass
class Client:
    """How to call ``noetl``, and the flags of the chosen mode."""

    command: list[str]
    mode: str
    server: str | None = None
    token: str | None = None

    def argv(self, *args: str) -> list[str]:
        # Distributed mode: the same subcommands, sent to a running stack. The
        # flags go after the subcommand's own arguments.
        extra: list[str] = []
        if self.mode == "distributed":
            extra += ["--server", self.server or ""]
            if self.token:
                extra += ["--token", self.token]
        return [*self.command, *args, *extra]

    def environ(self, home: Path) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "NATS_URL", "NOETL_SHARED_DIR")
        }
        env["NOETL_HOME"] = str(home)
        env["NOETL_ENCRYPTION_KEY"] = ENCRYPTION_KEY
        env["DJANGO_SETTINGS_MODULE"] = "noetl_site.settings"
        return env

    def call(
        self, home: Path, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """An unmeasured helper call (show, credential add)."""
        return subprocess.run(
            self.argv(*args),
            env=self.environ(home),
            cwd=home.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _default_noetl() -> list[str]:
    beside = Path(sys.executable).parent / "noetl"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("noetl")
    if found:
        return [found]
    return [sys.executable, "-m", "noetl_site.cli"]


# -- memory of a process tree --------------------------------------------------


def _status_kb(pid: int) -> tuple[int, int] | None:
    """(VmHWM, VmRSS) in kB, or None once the process is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    hwm = rss = None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return None if hwm is None or rss is None else (hwm, rss)


def _parents() -> dict[int, int]:
    """pid -> ppid of every process (the kernel here has no /proc/*/children)."""
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        parents[int(name)] = int(fields[1])
    return parents


class TreeSampler(threading.Thread):
    """Polls /proc for the trees under ``roots`` ({pid: label}).

    Records each role's peak VmHWM (the kernel's own high-water mark, so a
    short spike between two polls is not missed while the process lives) and
    the peak of each tree's summed VmRSS. Roles: the root's label, then
    ``.zygote`` (the warm interpreter), ``.python`` (children forked from it
    to run user code), or ``.<comm>`` for anything else.
    """

    def __init__(self, roots: dict[int, str], interval: float) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.interval = interval
        self.peaks_kb: dict[str, int] = {}
        self.tree_kb: dict[str, int] = {}
        self._done = threading.Event()
        self._cmdlines: dict[int, bytes] = {}

    def run(self) -> None:
        while True:
            self.sample()
            if self._done.wait(self.interval):
                return

    def stop(self) -> None:
        self._done.set()
        self.join()

    def _cmdline(self, pid: int) -> bytes:
        if pid not in self._cmdlines:
            try:
                text = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                return b""
            if not text:  # not exec'd yet, or already a zombie: ask again later
                return b""
            self._cmdlines[pid] = text
        return self._cmdlines[pid]

    def _role(self, pid: int, parent_role: str, label: str) -> str:
        # Children of the zygote are forks of it: same command line, so they
        # are told apart by their parent, not by what they look like.
        if parent_role.endswith((".zygote", ".python")):
            return f"{label}.python"
        if b"zygote_main" in self._cmdline(pid):
            return f"{label}.zygote"
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            comm = "gone"
        return f"{label}.{comm}"

    def sample(self) -> None:
        parents = _parents()
        children: dict[int, list[int]] = {}
        for pid, ppid in parents.items():
            children.setdefault(ppid, []).append(pid)
        for root, label in self.roots.items():
            total = 0
            todo = [(root, label)] if root in parents else []
            while todo:
                pid, role = todo.pop()
                kids = children.get(pid, [])
                todo.extend((kid, self._role(kid, role, label)) for kid in kids)
                kb = _status_kb(pid)
                if kb is None:
                    continue
                self.peaks_kb[role] = max(self.peaks_kb.get(role, 0), kb[0])
                total += kb[1]
            self.tree_kb[label] = max(self.tree_kb.get(label, 0), total)


def _reset_peaks(pids: list[int]) -> None:
    """Restart the kernel's VmHWM of watched server processes (own uid only)."""
    parents = _parents()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        todo.extend(p for p, pp in parents.items() if pp == pid)
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


# -- one run -------------------------------------------------------------------


@dataclass
class Measured:
    exit_code: int
    cold_s: float
    stdout: str
    stderr: str
    peak_kb: int
    roles_kb: dict[str, int]
    tree_kb: dict[str, int]
    timed_out: bool = False
    cpu_s: float = 0.0  # the CLI's tree and the watched servers' trees
    load1: float = 0.0  # the machine's 1-minute load average at the start


def measure(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    watch: dict[int, str],
    interval: float,
) -> Measured:
    """Run ``argv`` once: wall time, CPU time, exit code, output and memory
    peaks."""
    _reset_peaks(list(watch))
    own_kb = (_status_kb(os.getpid()) or (0, 0))[0]
    load1 = os.getloadavg()[0]
    servers_cpu = _tree_cpu_s(list(watch))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=out, stderr=err, start_new_session=True
        )
        sampler = TreeSampler({proc.pid: "cli", **watch}, interval)
        sampler.start()
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        # wait4 rather than Popen.wait: the end time is exact and the rusage
        # gives the peak RSS of the CLI and every descendant it reaped.
        _, status, usage = os.wait4(proc.pid, 0)
        cold = time.perf_counter() - started
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    # CPU is what a busy machine does not inflate much: the CLI's own and
    # that of every descendant it reaped (the zygote and, through it, each
    # python child), plus what the watched servers spent meanwhile.
    cpu = usage.ru_utime + usage.ru_stime + _tree_cpu_s(list(watch)) - servers_cpu
    roles = dict(sampler.peaks_kb)
    cli_peaks = [kb for role, kb in roles.items() if role.startswith("cli")]
    # ru_maxrss (kB) covers the CLI and every descendant it reaped, even after
    # the last poll, but it also counts the copy of this process that existed
    # between fork and exec: only a figure above this process's size is real.
    if usage.ru_maxrss > own_kb:
        cli_peaks.append(usage.ru_maxrss)
    peak = max(cli_peaks, default=0)
    return Measured(
        proc.returncode,
        cold,
        stdout,
        stderr,
        peak,
        roles,
        dict(sampler.tree_kb),
        timed_out.is_set(),
        cpu,
        load1,
    )


def _tree_cpu_s(roots: list[int]) -> float:
    """CPU seconds of the processes under ``roots`` (alive ones, with what
    each reaped); a difference of two readings is the trees' CPU between."""
    if not roots:
        return 0.0
    parents = _parents()
    total = 0
    todo = list(roots)
    while todo:
        pid = todo.pop()
        todo.extend(p for p, pp in parents.items() if pp == pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def warm_seconds(events: list[dict[str, Any]]) -> float | None:
    """From the first ``execution.started`` to the last terminal event."""
    starts = [e["ts"] for e in events if e.get("kind") == "execution.started"]
    ends = [e["ts"] for e in events if e.get("kind") in TERMINAL]
    if not starts or not ends:
        return None
    return (_ts(ends[-1]) - _ts(starts[0])).total_seconds()


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def _tail(text: str, chars: int = 3000) -> str:
    text = text.strip()
    return text if len(text) <= chars else "…" + text[-chars:]


def run_once(
    client: Client,
    workload: Workload,
    home: Path,
    args: argparse.Namespace,
    number: int,
) -> dict[str, Any]:
    """One measured (number >= 1) or warm-up (number 0) run, as a JSON line."""
    cmd = ["run", str(args.workloads_dir / workload.file), "--json"]
    if workload.payload is not None:
        cmd += ["--payload", json.dumps(workload.payload)]
    m = measure(
        client.argv(*cmd),
        client.environ(home),
        home.parent,
        args.timeout,
        args.watch,
        args.sample_ms / 1000,
    )
    line: dict[str, Any] = {
        "workload": workload.name,
        "mode": client.mode,
        "run": number,
        "cold_s": round(m.cold_s, 4),
        "warm_s": None,
        "cpu_s": round(m.cpu_s, 3),
        "load1": round(m.load1, 2),
        "peak_rss_mb": _mb(m.peak_kb),
        "ok": False,
        "warmup": number == 0,
        "exit_code": m.exit_code,
        "execution_id": None,
        "rss_mb": {role: _mb(kb) for role, kb in sorted(m.roles_kb.items())},
        "tree_rss_mb": {label: _mb(kb) for label, kb in sorted(m.tree_kb.items())},
    }
    errors: list[str] = []
    doc: dict[str, Any] | None = None
    if m.timed_out:
        errors.append(f"killed after {args.timeout:.0f}s")
    try:
        doc = json.loads(m.stdout)
    except json.JSONDecodeError:
        errors.append("stdout is not one JSON document")
    if isinstance(doc, dict):
        line["execution_id"] = doc.get("execution_id")
        if doc.get("status") != "completed":
            error = json.dumps(doc.get("error"))
            errors.append(f"status {doc.get('status')!r}: {error}")
        else:
            wrong = workload.check(doc)
            if wrong:
                errors.append(f"wrong result: {wrong}")
    if m.exit_code != 0:
        errors.append(f"exit code {m.exit_code}")
    if line["execution_id"]:
        line["warm_s"], problem = _warm(client, home, str(line["execution_id"]))
        if problem:
            line["show_error"] = problem
    line["ok"] = not errors
    if errors:
        line["error"] = "; ".join(errors)
        line["stderr_tail"] = _tail(m.stderr)
        if doc is None:
            line["stdout_tail"] = _tail(m.stdout)
    return line


def _warm(client: Client, home: Path, execution_id: str) -> tuple[float | None, str]:
    try:
        proc = client.call(home, "show", execution_id, "--json")
    except subprocess.TimeoutExpired:
        return None, "noetl show timed out"
    if proc.returncode != 0:
        return None, f"noetl show exit {proc.returncode}: {_tail(proc.stderr, 500)}"
    try:
        events = json.loads(proc.stdout).get("events") or []
    except (json.JSONDecodeError, AttributeError):
        return None, "noetl show did not print a JSON document"
    warm = warm_seconds(events)
    if warm is None:
        return None, "no execution.started and terminal event pair"
    return round(warm, 4), ""


# -- services for http_pg ------------------------------------------------------


class ItemHandler(BaseHTTPRequestHandler):
    body = json.dumps(ITEM).encode()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] != "/item.json":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def start_item_server() -> ThreadingHTTPServer:
    ThreadingHTTPServer.daemon_threads = True
    try:
        server = ThreadingHTTPServer((HTTP_HOST, HTTP_PORT), ItemHandler)
    except OSError as exc:
        raise SystemExit(
            f"cannot serve item.json on {HTTP_HOST}:{HTTP_PORT}: {exc.strerror}"
        ) from None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def pg_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "host": args.pg_host,
        "port": args.pg_port,
        "user": args.pg_user,
        "password": args.pg_password,
        "database": args.pg_database,
    }


def create_database(pg: dict[str, Any]) -> None:
    import psycopg  # in the project's venv
    from psycopg import sql

    with psycopg.connect(
        host=pg["host"],
        port=pg["port"],
        user=pg["user"],
        password=pg["password"] or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (pg["database"],)
        ).fetchone()
        if not found:
            name = sql.Identifier(pg["database"])
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def add_credential(client: Client, home: Path, pg: dict[str, Any]) -> None:
    proc = client.call(
        home, "credential", "add", PG_CREDENTIAL, "--type", "postgres",
        "--data", json.dumps(pg),
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(
            f"noetl credential add {PG_CREDENTIAL} failed (exit {proc.returncode}):\n"
            f"{_tail(proc.stderr)}"
        )


# -- summaries -----------------------------------------------------------------


def _median(values: list[Any]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


def summarize(name: str, mode: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    good = [x for x in lines if x["ok"]]
    roles = sorted({r for x in good for r in x["rss_mb"]})
    return {
        "summary": True,
        "workload": name,
        "mode": mode,
        "runs": len(lines),
        "valid": len(good),
        "cold_s": _median([x["cold_s"] for x in good]),
        "warm_s": _median([x["warm_s"] for x in good]),
        "cpu_s": _median([x["cpu_s"] for x in good]),
        "load1": _median([x["load1"] for x in lines]),
        "peak_rss_mb": _median([x["peak_rss_mb"] for x in good]),
        "peak_rss_mb_max": max((x["peak_rss_mb"] for x in good), default=None),
        "rss_mb": {r: _median([x["rss_mb"].get(r) for x in good]) for r in roles},
        "tree_rss_mb": {
            label: _median([x["tree_rss_mb"].get(label) for x in good])
            for label in sorted({k for x in good for k in x["tree_rss_mb"]})
        },
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def _per(a: float | None, b: float | None, count: int) -> float | None:
    return None if a is None or b is None else _ms((b - a) / count)


def derive(mode: str, summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def med(name: str, kind: str) -> float | None:
        return summaries.get(name, {}).get(kind)

    out: dict[str, Any] = {"derived": True, "mode": mode}
    # CPU per step and per iteration: the whole tree's, so fork costs count.
    out["per_step_cpu_ms"] = _per(med("hello", "cpu_s"), med("chain20", "cpu_s"), 17)
    out["per_iteration_cpu_ms"] = _per(
        med("loop100", "cpu_s"), med("loop1000", "cpu_s"), 900
    )
    for kind in ("cold", "warm"):
        key = f"{kind}_s"
        out[f"per_step_overhead_ms_{kind}"] = _per(
            med("hello", key), med("chain20", key), 17
        )
        out[f"per_iteration_ms_{kind}"] = _per(
            med("loop100", key), med("loop1000", key), 900
        )
        out[f"per_iteration_ms_{kind}_1000_10000"] = _per(
            med("loop1000", key), med("loop10000", key), 9000
        )
        out[f"per_iteration_at_n_ms_{kind}"] = {
            str(n): _ms(med(f"loop{n}", key) / n)
            for n in LOOP_SIZES
            if med(f"loop{n}", key) is not None
        }
        # Flatness: each loop size against the one ten times smaller (the
        # target is at most 12x for loop10000 against loop1000).
        for small, big in itertools.pairwise(LOOP_SIZES):
            a, b = med(f"loop{small}", key), med(f"loop{big}", key)
            if a and b:
                out[f"ratio_loop{big}_loop{small}_{kind}"] = round(b / a, 2)
        loop1000 = med("loop1000", key)
        if loop1000:
            out[f"iterations_per_s_loop1000_{kind}"] = round(1000 / loop1000)
    return out


LOOP_SIZES = (100, 1000, 10000, 100000)


def print_table(summaries: dict[str, dict[str, Any]], derived: dict[str, Any]) -> None:
    rows = [("workload", "valid", "cold s", "warm s", "cpu s", "load", "peak RSS MB",
             "tree RSS MB")]  # fmt: skip
    for name, s in summaries.items():
        tree = s["tree_rss_mb"].get("cli")
        rows.append((
            name, f"{s['valid']}/{s['runs']}", _fmt(s["cold_s"]), _fmt(s["warm_s"]),
            _fmt(s["cpu_s"]), _fmt(s["load1"]), _fmt(s["peak_rss_mb"]), _fmt(tree),
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)), file=sys.stderr)
    for name, s in summaries.items():
        print(f"peak RSS MB by process, {name}: {s['rss_mb']}", file=sys.stderr)
    for key, value in derived.items():
        if key not in ("derived", "mode"):
            print(f"{key}: {value}", file=sys.stderr)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


# -- main ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--mode", choices=["embedded", "distributed", "both"], default="embedded"
    )
    p.add_argument("--server", help="a running server (default: start a stack)")
    p.add_argument("--token", help="API token (distributed mode)")
    p.add_argument("--runs", type=int, default=5, help="measured runs (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up runs (default 1)")
    p.add_argument("--loop10000", action="store_true", help="also run loop10000")
    p.add_argument("--loop10000-runs", type=int, help="measured runs of loop10000")
    p.add_argument("--loop100000", action="store_true", help="also run loop100000")
    p.add_argument("--loop100000-runs", type=int, default=2,
                   help="measured runs of loop100000 (default 2)")
    p.add_argument("--no-python", action="store_true",
                   help="skip the python task start-up measurement")
    p.add_argument("--python-runs", type=int, default=200,
                   help="python tasks timed for the start-up figure (default 200)")
    p.add_argument("--no-statements", action="store_true",
                   help="skip bench/statements.py (database work per event)")
    p.add_argument(
        "--only", help=f"comma-separated subset of {', '.join(WORKLOADS)}"
    )
    p.add_argument("--workloads-dir", type=Path, default=SHARED / "bench")
    p.add_argument("--noetl", help="the noetl command (default: the one beside python)")
    p.add_argument("--timeout", type=float, default=1800, help="kill a run after (s)")
    p.add_argument("--sample-ms", type=float, default=50, help="/proc poll interval")
    p.add_argument(
        "--watch",
        action="append",
        default=[],
        metavar="[LABEL=]PID",
        help="also record the peak RSS of this process tree (server, workers)",
    )
    p.add_argument("--keep-homes", action="store_true", help="keep the NOETL_HOMEs")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres")
    p.add_argument("--pg-password", default="")
    p.add_argument("--pg-database", default="noetl_bench")
    args = p.parse_args(argv)
    watch: dict[int, str] = {}
    for item in args.watch:
        label, _, pid = item.rpartition("=")
        if not pid.isdigit():
            p.error(f"--watch expects [LABEL=]PID, got {item!r}")
        watch[int(pid)] = label or f"pid{pid}"
    args.watch = watch
    return args


def selected(args: argparse.Namespace) -> list[Workload]:
    names = args.only.split(",") if args.only else list(DEFAULT_WORKLOADS)
    for big in ("loop10000", "loop100000"):
        if getattr(args, big) and big not in names:
            at = names.index("http_pg") if "http_pg" in names else len(names)
            names.insert(at, big)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workloads: {', '.join(unknown)}")
    return [WORKLOADS[n] for n in names]


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


@contextlib.contextmanager
def stack_for(args: argparse.Namespace) -> Iterator[tuple[str, str, dict[int, str]]]:
    """(server URL, token, processes to watch) of the distributed system."""
    if args.server:
        yield args.server, args.token or "", {}
        return
    sys.path.insert(0, str(REPO))
    from noetl_site.devstack import DevStack

    home = Path(tempfile.mkdtemp(prefix="noetl-bench-stack-"))
    stack = DevStack(database="noetl_bench_stack", workers=2, concurrency=4,
                     home=home, fresh=True, env={"NOETL_ENCRYPTION_KEY": ENCRYPTION_KEY})
    try:
        stack.start()
        watch = {stack.web.pid: "web"} if stack.web else {}
        watch.update({p.pid: f"worker{i + 1}" for i, p in enumerate(stack.workers)})
        if stack.scheduler:
            watch[stack.scheduler.pid] = "scheduler"
        print(f"distributed: stack on {stack.url} (logs {stack.log_dir})",
              file=sys.stderr)
        yield stack.url, stack.token, watch
    finally:
        stack.stop()
        if not args.keep_homes:
            shutil.rmtree(home, ignore_errors=True)


def run_mode(mode: str, args: argparse.Namespace, workloads: list[Workload],
             pg: dict[str, Any]) -> bool:
    """Every workload in one mode; True when every run was valid."""
    command = args.noetl.split() if args.noetl else _default_noetl()
    with contextlib.ExitStack() as scope:
        client = Client(command, mode)
        watch = dict(args.watch)
        if mode == "distributed":
            client.server, client.token, stack_watch = scope.enter_context(
                stack_for(args))
            watch.update(stack_watch)
        summaries = {}
        for workload in workloads:
            runs = args.runs
            if workload.name == "loop10000" and args.loop10000_runs:
                runs = args.loop10000_runs
            if workload.name == "loop100000":
                runs = args.loop100000_runs
            summaries[workload.name] = bench(client, workload, runs, pg,
                                             argparse.Namespace(**{**vars(args),
                                                                   "watch": watch}))
    for summary in summaries.values():
        emit(summary)
    derived = derive(mode, summaries)
    emit(derived)
    print(f"== {mode}", file=sys.stderr)
    print_table(summaries, derived)
    return all(s["valid"] == s["runs"] for s in summaries.values())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = selected(args)
    item_server = None
    pg = pg_settings(args)
    if any(w.needs_services for w in workloads):
        item_server = start_item_server()
        create_database(pg)
    modes = ["embedded", "distributed"] if args.mode == "both" else [args.mode]
    try:
        ok = [run_mode(mode, args, workloads, pg) for mode in modes]
    finally:
        if item_server is not None:
            item_server.shutdown()
    if not args.no_python:
        ok.append(side_script(["python_startup.py", "--runs", str(args.python_runs)]))
    if not args.no_statements:
        for mode in modes:
            extra = [] if mode == "embedded" else ["--database-url", _pg_url(pg)]
            ok.append(side_script(["statements.py", *extra]))
    return 0 if all(ok) else 1


def side_script(argv: list[str]) -> bool:
    """Run another bench script; its JSON lines join ours, its table goes to
    stderr."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / argv[0]), *argv[1:]],
        cwd=REPO, stdout=subprocess.PIPE, text=True, check=False,
        env={**os.environ, "NOETL_SHARED_DIR": str(SHARED)},
    )
    for line in proc.stdout.splitlines():
        print(line, flush=True)
    if proc.returncode != 0:
        print(f"bench/{argv[0]} failed (exit {proc.returncode})", file=sys.stderr)
    return proc.returncode == 0


def _pg_url(pg: dict[str, Any]) -> str:
    """A scratch database beside the http_pg one, recreated by statements.py."""
    auth = pg["user"] + (f":{pg['password']}" if pg["password"] else "")
    return f"postgres://{auth}@{pg['host']}:{pg['port']}/{pg['database']}_sql"


def bench(
    client: Client,
    workload: Workload,
    runs: int,
    pg: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Warm-up and measured runs of one workload in a fresh NOETL_HOME."""
    scratch = Path(tempfile.mkdtemp(prefix=f"noetl-bench-{workload.name}-"))
    home = scratch / "home"
    home.mkdir()
    measured: list[dict[str, Any]] = []
    try:
        if workload.needs_services:
            add_credential(client, home, pg)
        for index in range(args.warmup + runs):
            warmup = index < args.warmup
            number = 0 if warmup else index - args.warmup + 1
            line = run_once(client, workload, home, args, number)
            if not warmup:
                measured.append(line)
            emit(line)
    finally:
        if args.keep_homes:
            print(f"{workload.name}: NOETL_HOME kept at {home}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return summarize(workload.name, client.mode, measured)


if __name__ == "__main__":
    sys.exit(main())
