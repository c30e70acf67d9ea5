"""The whole distributed stack on one machine, for development and tests.

``python -m noetl_site.devstack`` (or ``scripts/stack``) creates a database
on the local PostgreSQL, migrates it, sets up the NATS stream, and starts
gunicorn on a free port, N ``runworker`` processes and ``runscheduler``. It
prints the environment a client needs (``NOETL_SERVER``, ``NOETL_TOKEN``) and
runs until interrupted. Tests drive the same ``DevStack`` class to kill and
restart its processes.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DevStack:
    def __init__(self, *, database: str = "noetl_dev", workers: int = 2,
                 concurrency: int = 4, pg: str = "postgres://postgres@127.0.0.1:5432",
                 nats: str = "nats://127.0.0.1:4222", port: int | None = None,
                 home: Path | None = None, fresh: bool = False,
                 env: dict[str, str] | None = None, log_dir: Path | None = None,
                 web_env: dict[str, str] | None = None) -> None:
        self.database = database
        self.n_workers = workers
        self.concurrency = concurrency
        self.pg = pg
        self.nats = nats
        self.port = port or free_port()
        self.home = home or REPO / ".noetl-stack"
        self.fresh = fresh
        self.log_dir = log_dir or self.home / "logs"
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self.enrollment = base64.urlsafe_b64encode(os.urandom(18)).decode()
        self.password = ""
        self.env = {
            k: v for k, v in os.environ.items()
            if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")
        }
        self.env.update({
            "DJANGO_SETTINGS_MODULE": "noetl_site.settings",
            "DATABASE_URL": f"{pg}/{database}",
            "NATS_URL": nats,
            # Its own stream and consumers: stacks side by side on one NATS
            # server never take each other's pointers.
            "NOETL_NATS_NAMESPACE": database.replace("_", "-")[-32:],
            "NOETL_SERVER": self.url,
            "NOETL_ENROLLMENT_TOKEN": self.enrollment,
            # A key of this stack's own, made once and kept beside its data:
            # never one written in the source, which anyone could read.
            "NOETL_ENCRYPTION_KEY": os.environ.get("NOETL_ENCRYPTION_KEY")
            or self._secret("encryption.key", 32),
            "NOETL_HOME": str(self.home),
            # Plain http on the loopback: cookies marked Secure would never
            # come back, and nobody could sign in to the UI.
            "NOETL_INSECURE_COOKIES": "true",
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "PYTHONUNBUFFERED": "1",
            # Web and scheduler processes write their metrics here and
            # /metrics adds them up (noetl_site.metrics).
            "PROMETHEUS_MULTIPROC_DIR": str(self.home / "metrics"),
        })
        self.env.update(env or {})
        self.web_env = web_env or {}
        self.web: subprocess.Popen | None = None
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._started_workers = 0
        self._logs: list[Any] = []

    # -- processes ---------------------------------------------------------------

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        self._logs.append(log)
        return subprocess.Popen(args, cwd=REPO, env={**self.env, **(env or {})}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def manage(self, *args: str, check: bool = True, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "manage.py"), *args], cwd=REPO,
                              env={**self.env, **(env or {})}, capture_output=True,
                              text=True, check=check)

    def _secret(self, name: str, size: int) -> str:
        """A random value kept in HOME/name (0600), made on first use."""
        path = self.home / name
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.urlsafe_b64encode(os.urandom(size)).decode())
        return path.read_text().strip()

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        # Samples of a previous stack's processes must not be counted again.
        metrics_dir = Path(self.env["PROMETHEUS_MULTIPROC_DIR"])
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        with psycopg.connect(f"{self.pg}/postgres", autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s",
                                  (self.database,)).fetchone()
            if exists and self.fresh:
                conn.execute(f'drop database "{self.database}" with (force)')
                exists = None
            if not exists:
                conn.execute(f'create database "{self.database}"')
        self.manage("migrate", "--noinput")
        self.manage("nats_setup")
        # The stack's one user operates it: a superuser passes every check.
        # It signs in to the UI with a password of this stack's own.
        self.password = self._secret("admin-password", 12)
        self.manage("createsuperuser", "--noinput", "--username", "admin",
                    "--email", "admin@localhost", check=False,
                    env={"DJANGO_SUPERUSER_PASSWORD": self.password})
        made = self.manage("createtoken", "admin", "--create", "--superuser",
                           "--name", "devstack", check=False)
        if made.returncode == 0 and made.stdout.strip():
            self.token = made.stdout.strip().splitlines()[-1]

    def start_web(self) -> None:
        self.web = self._spawn(
            "web", sys.executable, "-m", "gunicorn", "-c", "python:noetl_site.gunicorn_conf",
            "noetl_site.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
            "--worker-class", "gthread", "--threads", "8", "--timeout", "120",
            "--graceful-timeout", "10", "--no-control-socket", env=self.web_env)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.web is not None and self.web.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.web.returncode}); "
                                   f"see {self.log_dir / 'web.log'}")
            try:
                httpx.get(self.url + "/healthz", timeout=1.0)
                return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the web process did not answer on {self.url} in {timeout}s")

    def start_worker(self) -> subprocess.Popen:
        """Start one more worker; its registration name is ``proc.name``."""
        self._started_workers += 1
        name = f"devstack-{self._started_workers}"
        proc = self._spawn(name, sys.executable, str(REPO / "manage.py"), "runworker",
                           "--concurrency", str(self.concurrency), "--name", name)
        proc.name = name  # type: ignore[attr-defined]
        self.workers.append(proc)
        return proc

    def start_scheduler(self) -> None:
        self.scheduler = self._spawn("scheduler", sys.executable, str(REPO / "manage.py"),
                                     "runscheduler")

    def start(self) -> DevStack:
        self.prepare()
        self.start_web()
        for _ in range(self.n_workers):
            self.start_worker()
        self.start_scheduler()
        return self

    def restart_web(self) -> None:
        if self.web is not None:
            self.web.send_signal(signal.SIGTERM)
            self.web.wait(30)
        self.start_web()

    @staticmethod
    def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM,
              timeout: float = 40.0) -> None:
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop(self) -> None:
        for proc in self.workers:
            self._stop(proc)
        self._stop(self.scheduler)
        self._stop(self.web)
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self.fresh:
            self.manage("nats_setup", "--delete", check=False)

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client_env(self) -> dict[str, str]:
        """The environment for ``noetl`` commands against this stack."""
        env = {k: v for k, v in self.env.items()
               if k not in ("DATABASE_URL", "NATS_URL", "NOETL_ENROLLMENT_TOKEN")}
        env["NOETL_TOKEN"] = self.token
        return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="noetl_dev")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--fresh", action="store_true", help="drop the database first")
    args = parser.parse_args()
    stack = DevStack(database=args.database, workers=args.workers,
                     concurrency=args.concurrency, port=args.port, fresh=args.fresh)
    # SIGTERM and SIGHUP, like Ctrl-C, stop the whole stack: by default they
    # would kill only this process, and the children, in sessions of their
    # own, would be left running. (A handler, not a blocked mask: children
    # inherit a mask, and they must still die of SIGTERM.)
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, lambda *_: stop.set())
    stack.start()
    print(f"export NOETL_SERVER={stack.url}")
    print(f"export NOETL_TOKEN={stack.token}")
    print(f"# UI {stack.url}/ : sign in as admin, password {stack.password} "
          f"(kept in {stack.home / 'admin-password'})")
    print(f"# logs in {stack.log_dir}; Ctrl-C stops the stack", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
