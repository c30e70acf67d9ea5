"""A warm interpreter that forks one child per session to run user Python.

DESIGN-NOTES R10. Starting ``python`` costs tens of milliseconds before any
import, and running user code in the worker leaks globals, monkeypatches and
threads from one task to the next. So each worker keeps a *zygote*: a helper
interpreter that has already imported the usual modules and forks a child for
each *session*. One session serves one worker command: the client sends task
requests one after another and the child runs each with fresh globals, then
exits when the client hangs up. The isolation boundary is the command.

How the pieces talk:

- ``Zygote.start()`` binds two Unix sockets in a private 0700 directory and
  execs ``python -I`` with a clean environment, handing it the sockets. The
  zygote is exec'd rather than forked from the worker on purpose: a fork would
  copy the worker's memory, file descriptors and its original environment
  block, which ``/proc/self/environ`` shows even after ``os.environ`` is
  cleared. Exec'ing also makes starting it safe once the worker has threads.
- The zygote keeps a few children forked ahead ("spares"), warmed up by a
  dry-run request. A spare accepts the next connection on the session socket
  itself, so no fork is on the critical path, and tells the zygote, which
  forks a replacement a few milliseconds later.
- The child owns the connection: it sends ``{pid}``, then answers each request
  frame with a reply frame. Frames are a 4-byte big-endian length and JSON.
- The zygote reaps children and remembers their exit status, which clients
  ask for on the control socket when a child dies mid-request.

Child hygiene: an allow-listed environment, its own session (process group),
stdin from /dev/null, a private working directory (also its TMPDIR) removed
when it exits, captured stdout/stderr capped at about 1 MB each (the tail is
kept), optional rlimits. Output written straight to file descriptors 1 and 2
(by subprocesses, say) is not captured; it goes to the worker's own streams.

This is NOT a sandbox. User code runs with the worker's uid and can read
anything the worker can read on disk. Route untrusted code to a container.

Pure module: standard library only, no Django.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import dataclasses
import datetime as dt
import decimal
import functools
import gc
import importlib
import io
import json
import os
import resource
import select
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# What the zygote imports before forking anything: what user code is given or
# commonly imports, then what the child runtime itself needs. Not asyncio: it
# pulls in ssl and doubles the zygote's memory, which every fork copies the
# page tables of and every child pays page faults for; it is imported in a
# child that needs it (an ``async def main``), or preloaded on request.
BASE_PRELOAD = [
    *("json", "datetime", "uuid", "decimal", "os", "math", "re", "time"),
    *("hashlib", "random", "logging"),
    *("inspect", "traceback", "linecache", "base64", "ctypes"),
]

ENV_ALLOW = frozenset({"PATH", "HOME", "LANG", "TZ", "PYTHONPATH", "TMPDIR"})
ENV_PASS_PREFIX = "NOETL_PY_ENV_"

OUTPUT_CAP = 1_000_000  # characters kept per stream and request
MAX_FRAME = 1 << 30
KILL_GRACE_S = 2.0  # SIGTERM, then SIGKILL after this (R9)
CONNECT_TIMEOUT_S = 10.0  # covers a zygote still importing its preload list
POLL_S = 0.05  # how often a waiting client checks for cancellation
# Children kept forked ahead: two, so a chain of short steps finds one ready
# while the zygote refills (a fork and warm-up cost a few ms of CPU).
SPARES = 2
# How long after a spare is taken its replacement is forked. At once: a
# delay meant to leave the CPU to the session just started only made the
# next step wait for its child on a busy 2-core machine (measured).
SPARE_DELAY_S = 0.0
# A first request up to this size is sent before the child's hello arrives:
# it waits in the socket buffer (about 200 KB on Linux) until a spare accepts.
EARLY_REQUEST_BYTES = 64 * 1024

_HEADER = struct.Struct("!I")


class ZygoteError(Exception):
    """The zygote could not be started or reached."""


class _Timeout(Exception):
    pass


class _Stopped(Exception):
    pass


# --- Frames ----------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """``json`` default hook: turn common non-JSON values into JSON ones."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def encode_frame(obj: Any) -> bytes:
    body = json.dumps(obj, default=to_jsonable).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def send_frame(sock: socket.socket, obj: Any) -> None:
    sock.sendall(encode_frame(obj))


def recv_frame(
    sock: socket.socket,
    deadline: float | None = None,
    stop: Callable[[], bool] | None = None,
) -> Any:
    """Read one frame. EOFError if the peer hung up.

    With a deadline or a stop check, waits in short slices and raises _Timeout
    or _Stopped; without them, blocks.
    """
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, deadline, stop))
    if size > MAX_FRAME:
        raise EOFError(f"frame of {size} bytes is too large")
    return json.loads(_recv_exact(sock, size, deadline, stop))


def _recv_exact(
    sock: socket.socket,
    size: int,
    deadline: float | None,
    stop: Callable[[], bool] | None,
) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    waiting = deadline is not None or stop is not None
    sock.settimeout(POLL_S if waiting else None)
    while got < size:
        try:
            n = sock.recv_into(view[got:])
        except TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise _Timeout from None
            if stop is not None and stop():
                raise _Stopped from None
            continue
        if n == 0:
            raise EOFError("connection closed")
        got += n
    return bytes(buf)


# --- Environment -----------------------------------------------------------


def child_environment(
    environ: Mapping[str, str], extra_allow: Iterable[str] = ()
) -> dict[str, str]:
    """The environment user code sees: an allow-list, never the worker's secrets.

    ``NOETL_PY_ENV_<NAME>=v`` in the worker becomes ``<NAME>=v`` in the child,
    so operators can hand user code a variable without allow-listing it.
    """
    allow = ENV_ALLOW | set(extra_allow)
    env = {k: v for k, v in environ.items() if k in allow or k.startswith("LC_")}
    for key, value in environ.items():
        name = key.removeprefix(ENV_PASS_PREFIX)
        if key.startswith(ENV_PASS_PREFIX) and name:
            env[name] = value
    return env


def protect_process() -> bool:
    """Make this process non-dumpable (PR_SET_DUMPABLE=0), Linux only.

    A worker calls this at start-up so same-uid processes, user code included,
    cannot read its /proc/<pid>/environ or memory. It also blocks debuggers and
    core dumps, so it is the worker's choice. Returns whether it worked.
    """
    return _prctl(4, 0)  # PR_SET_DUMPABLE


def _prctl(option: int, arg: int) -> bool:
    prctl = _libc_prctl()
    return prctl is not None and prctl(option, arg, 0, 0, 0) == 0


@functools.cache
def _libc_prctl() -> Callable[..., int] | None:
    # Looked up once, in the zygote before it forks: loading libc through
    # ctypes in every child would cost each of them a few hundred
    # microseconds of page faults.
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


# --- Client side -----------------------------------------------------------


class Zygote:
    """Owns one zygote process; hands out sessions.

    ``handler`` is "module:function", imported by the zygote; the function
    takes a request dict and returns a reply dict ``{ok, result | error}``.
    ``warmup`` is a request each spare child runs once, unseen, while idle;
    ``spares`` is how many children are kept forked ahead.
    ``rlimits`` maps resource names to soft=hard limits applied to children,
    e.g. ``{"AS": 2 << 30}`` for RLIMIT_AS.
    """

    def __init__(
        self,
        handler: str,
        *,
        preload: Iterable[str] = (),
        python: str | None = None,
        sys_path: Iterable[str] | None = None,
        env_allow: Iterable[str] = (),
        rlimits: Mapping[str, int] | None = None,
        warmup: Mapping[str, Any] | None = None,
        spares: int = SPARES,
    ) -> None:
        self.handler = handler
        self.spares = max(1, spares)
        self.warmup = dict(warmup) if warmup is not None else None
        self.preload = [*BASE_PRELOAD, *preload]
        self.python = python or sys.executable
        # Absolute, because "" means the worker's cwd, not the zygote's.
        paths = sys.path if sys_path is None else sys_path
        self.sys_path = [os.path.abspath(p) for p in paths]
        self.env_allow = tuple(env_allow)
        self.rlimits = dict(rlimits or {})
        for name in self.rlimits:
            if not hasattr(resource, f"RLIMIT_{name}"):
                raise ValueError(f"unknown rlimit {name!r}")
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._death_w: int | None = None
        self._dir = ""
        self._owner = 0
        self._atexit = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        proc = self._proc
        return proc is not None and self._owner == os.getpid() and proc.poll() is None

    def start(self) -> None:
        """Start the zygote if it is not running. Cheap when it is.

        Returns before the zygote has finished importing: the sockets are bound
        here, so early connections wait in the backlog instead of failing.
        """
        with self._lock:
            if self.running:
                return
            if self._proc is not None and self._owner == os.getpid():
                self._cleanup()
            self._spawn()

    def stop(self) -> None:
        """Stop the zygote and its children, those serving sessions included."""
        with self._lock:
            if self._proc is not None and self._owner == os.getpid():
                self._cleanup()
            self._proc = None

    def session(self) -> PythonSession:
        return PythonSession(self)

    def connect(self, wait_hello: bool = True) -> tuple[socket.socket, int | None]:
        """Open a session: a connected socket and the child's pid.

        With ``wait_hello=False`` the pid is None: the connection waits in the
        backlog for the next spare, the caller may send its first request at
        once and then read the child's hello with ``hello()``. That saves a
        round trip (two wake-ups) on the critical path of every python task.
        """
        self.start()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(os.path.join(self._dir, "session"))
            return sock, self.hello(sock) if wait_hello else None
        except OSError as exc:
            sock.close()
            raise ZygoteError(self._failure_text(exc)) from None
        except ZygoteError:
            sock.close()
            raise

    def hello(self, sock: socket.socket) -> int:
        """The pid of the child serving ``sock``, from the first frame it sends."""
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        try:
            return int(recv_frame(sock, deadline, lambda: not self.running)["pid"])
        except (OSError, EOFError, _Timeout, _Stopped, KeyError, TypeError) as exc:
            raise ZygoteError(self._failure_text(exc)) from None

    def exit_status(self, pid: int, wait: float = 1.0) -> int | None:
        """A dead child's return code (negative: killed by that signal).

        None if the zygote does not know it within ``wait`` seconds.
        """
        deadline = time.monotonic() + wait
        while self.running:
            code = self._ask_status(pid, deadline)
            if code is not None or time.monotonic() >= deadline:
                return code
            time.sleep(0.01)  # the child's EOF can beat its exit status
        return None

    def _ask_status(self, pid: int, deadline: float) -> int | None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(os.path.join(self._dir, "control"))
                send_frame(sock, {"pid": pid})
                code = recv_frame(sock, max(deadline, time.monotonic() + 0.1))
        except (OSError, EOFError, _Timeout, ValueError):
            return None
        return code.get("returncode") if isinstance(code, dict) else None

    def _spawn(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="noetl-zygote-")  # mode 0700
        session = _listen(os.path.join(self._dir, "session"))
        control = _listen(os.path.join(self._dir, "control"))
        death_r, self._death_w = os.pipe()
        fds = [session.fileno(), control.fileno(), death_r]
        config = {
            "handler": self.handler,
            "preload": self.preload,
            "sys_path": self.sys_path,
            "rlimits": self.rlimits,
            "warmup": self.warmup,
            "spares": self.spares,
            "dir": self._dir,
            "fds": fds,
        }
        boot = (
            "import json, sys; config = json.loads(sys.argv[1]); "
            "sys.path[:] = config['sys_path']; "
            f"from {__name__} import zygote_main; zygote_main(config)"
        )
        try:
            self._proc = subprocess.Popen(
                [self.python, "-I", "-c", boot, json.dumps(config)],
                env=child_environment(os.environ, self.env_allow),
                stdin=subprocess.DEVNULL,
                pass_fds=fds,
                start_new_session=True,  # a terminal's Ctrl-C is the worker's
                cwd=self._dir,
            )
        finally:
            # The zygote holds its own copies; once it exits the sockets go.
            session.close()
            control.close()
            os.close(death_r)
        self._owner = os.getpid()
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True

    def _cleanup(self) -> None:
        proc = self._proc
        if self._death_w is not None:
            os.close(self._death_w)  # the zygote exits when this closes
            self._death_w = None
        if proc is not None:
            try:
                proc.wait(KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _failure_text(self, exc: BaseException) -> str:
        proc = self._proc
        code = proc.poll() if proc is not None else None
        if code is not None:
            return f"python zygote is not running (exit status {code})"
        if isinstance(exc, _Timeout):
            return "python zygote did not answer in time"
        return f"cannot reach the python zygote: {exc!r}"


def _listen(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(64)
    return sock


class PythonSession:
    """One worker command's connection to one forked child.

    Used by one thread at a time. ``interrupt()`` may be called from another
    thread. The child is forked lazily on the first request and again after a
    timeout, a cancellation or a crash.
    """

    def __init__(self, zygote: Zygote) -> None:
        self.zygote = zygote
        self.closed = False
        self._sock: socket.socket | None = None
        self._pid: int | None = None
        self._interrupted = False

    @property
    def pid(self) -> int | None:
        return self._pid

    def run(
        self,
        request: Mapping[str, Any],
        timeout: float,
        cancelled: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Send a request and wait for its reply; never raises, never hangs.

        Failures the child could not report itself come back as
        ``{ok: False, error: {kind, message}}`` with kind ``timeout``,
        ``cancelled``, ``died`` or ``unavailable``.
        """
        self._interrupted = False

        def stop() -> bool:
            return self._interrupted or bool(cancelled and cancelled.is_set())

        if stop():
            return failure("cancelled", "python task was cancelled")
        try:
            payload = encode_frame(request)
        except (TypeError, ValueError) as exc:
            return failure("exception", f"task request is not JSON: {exc}")
        try:
            sock = self._child(early=len(payload) <= EARLY_REQUEST_BYTES)
        except ZygoteError as exc:
            return failure("unavailable", str(exc))
        return self._exchange(sock, payload, timeout, stop)

    def interrupt(self) -> None:
        """Cancel the request in flight; its ``run`` kills the child."""
        self._interrupted = True

    def close(self) -> None:
        """End the session: the child sees EOF and exits."""
        self.closed = True
        self._drop()

    def __enter__(self) -> PythonSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _child(self, early: bool) -> socket.socket:
        if self._sock is None:
            self._sock, self._pid = self.zygote.connect(wait_hello=not early)
        return self._sock

    def _exchange(
        self,
        sock: socket.socket,
        payload: bytes,
        timeout: float,
        stop: Callable[[], bool],
    ) -> dict[str, Any]:
        try:
            sock.settimeout(None)
            # A small first request fits the socket buffer, so it is sent
            # before the child has even accepted; then its hello is read.
            sock.sendall(payload)
            if self._pid is None:
                self._pid = self.zygote.hello(sock)
            reply = recv_frame(sock, time.monotonic() + timeout, stop)
        except ZygoteError as exc:
            self._drop()
            return failure("unavailable", str(exc))
        except _Timeout:
            self._kill()
            return failure(
                "timeout", f"python task exceeded its timeout of {timeout:g}s"
            )
        except _Stopped:
            self._kill()
            return failure("cancelled", "python task was cancelled")
        except (EOFError, OSError, ValueError):
            return self._died()
        return reply if isinstance(reply, dict) else self._died()

    def _died(self) -> dict[str, Any]:
        pid = self._pid
        self._drop()
        code = self.zygote.exit_status(pid) if pid else None
        return failure(
            "died",
            f"the python process died while running the task: {_describe(code)}",
            returncode=code,
        )

    def _kill(self) -> None:
        """SIGTERM the child's process group, SIGKILL it if it lingers (R9)."""
        sock, pid = self._sock, self._pid
        if sock is not None and pid is not None:
            _signal_group(pid, signal.SIGTERM)
            if not _wait_eof(sock, KILL_GRACE_S):
                _signal_group(pid, signal.SIGKILL)
                _wait_eof(sock, KILL_GRACE_S)
        self._drop()

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._pid = None


def failure(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": kind, "message": message, **extra}}


def _describe(code: int | None) -> str:
    if code is None:
        return "its exit status is unknown"
    if code >= 0:
        return f"it exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:  # a real-time signal has no name
        name = str(-code)
    hint = " (out of memory?)" if code == -signal.SIGKILL else ""
    return f"it was killed by signal {name}{hint}"


def _signal_group(pid: int, sig: int) -> None:
    # The child called setsid(), so its pid is also its process group: this
    # reaches any subprocess the user code started, too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _wait_eof(sock: socket.socket, seconds: float) -> bool:
    """Drain the socket until the peer closes it; False if it did not in time."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False


# --- The zygote process ----------------------------------------------------


def zygote_main(config: dict[str, Any]) -> None:
    """Entry point of the zygote process (see ``Zygote._spawn``)."""
    try:
        _ZygoteServer(config).serve()
    except BaseException:  # say why on the worker's stderr, then go
        traceback.print_exc()
    finally:
        os._exit(1)  # serve() only returns by exiting; this is a failure


class _ZygoteServer:
    def __init__(self, config: dict[str, Any]) -> None:
        session_fd, control_fd, death_fd = config["fds"]
        self.session = socket.socket(fileno=session_fd)
        self.control = socket.socket(fileno=control_fd)
        self.death_fd = death_fd
        self.dir: str = config["dir"]
        self.rlimits: dict[str, int] = config["rlimits"]
        self.warmup: dict[str, Any] | None = config["warmup"]
        self.handler = _preload(config["preload"], config["handler"])
        _libc_prctl()  # loaded once here, inherited by every child
        self.statuses: OrderedDict[int, int] = OrderedDict()
        # Our ends of the spares' channels, by file descriptor.
        self.spares: dict[int, socket.socket] = {}
        self.pool: int = config["spares"]
        self.spare_due = 0.0
        self.watching = False  # whether the session socket is in the selector
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        self.pid = os.getpid()

    def serve(self) -> None:
        # SIGCHLD wakes the loop through a pipe, so children are reaped at
        # once without polling.
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.control, selectors.EVENT_READ, self.on_control)
        self.selector.register(self.death_fd, selectors.EVENT_READ, self.on_death)
        self.selector.register(self.wake_r, selectors.EVENT_READ, self.on_wake)
        self.watch_session(True)
        while True:
            for key, _ in self.selector.select(self.idle_timeout()):
                key.data(key.fileobj)
            if len(self.spares) < self.pool and time.monotonic() >= self.spare_due:
                self.fork_spare()

    def idle_timeout(self) -> float | None:
        # Until the next spare is due (see SPARE_DELAY_S), or forever when
        # the pool is full.
        if len(self.spares) >= self.pool:
            return None
        return max(0.0, self.spare_due - time.monotonic())

    def watch_session(self, on: bool) -> None:
        # Watched only while there is no spare to accept: a waiting client
        # then means a spare is needed now.
        if on and not self.watching:
            self.selector.register(self.session, selectors.EVENT_READ, self.on_waiting)
        elif not on and self.watching:
            self.selector.unregister(self.session)
        self.watching = on

    def on_waiting(self, _: Any) -> None:
        self.spare_due = 0.0

    def on_spare(self, channel: socket.socket) -> None:
        """A spare took a connection (a byte) or died unused (EOF)."""
        try:
            taken = channel.recv(1)
        except OSError:
            taken = b""
        self.selector.unregister(channel)
        del self.spares[channel.fileno()]
        channel.close()
        # A spare should not die unused: back off rather than fork in a loop.
        self.spare_due = time.monotonic() + (SPARE_DELAY_S if taken else 1.0)
        self.watch_session(not self.spares)

    def on_death(self, _: Any) -> None:
        # The worker closed its end of the pipe, or died: nothing more to serve.
        os._exit(0)

    def on_wake(self, _: Any) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_r, 512):
                pass
        self.reap()

    def on_control(self, _: Any) -> None:
        try:
            conn, _ = self.control.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(1.0)  # a stuck client must not stall the zygote
            try:
                pid = int(recv_frame(conn)["pid"])
                self.reap()
                send_frame(conn, {"pid": pid, "returncode": self.statuses.get(pid)})
            except (OSError, EOFError, ValueError, KeyError, TypeError):
                pass

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.statuses[pid] = os.waitstatus_to_exitcode(status)
            while len(self.statuses) > 1024:
                self.statuses.popitem(last=False)
            shutil.rmtree(os.path.join(self.dir, f"w{pid}"), ignore_errors=True)

    def fork_spare(self) -> None:
        channel, child_end = socket.socketpair()
        # Frozen objects are skipped by the collector, so children do not
        # dirty (and copy) the pages of everything the zygote imported.
        gc.freeze()
        if os.fork() == 0:
            code = 1
            try:
                channel.close()
                self.become_child()
                _await_session(self.session, child_end, self.handler, self.warmup)
                code = 0
            finally:
                os._exit(code)  # never unwind into the zygote's loop
        child_end.close()
        self.spares[channel.fileno()] = channel
        self.selector.register(channel, selectors.EVENT_READ, self.on_spare)
        self.watch_session(False)

    def become_child(self) -> None:
        """Drop the zygote's duties and set up a clean child."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        self.control.close()
        for other in self.spares.values():
            other.close()
        for fd in (self.death_fd, self.wake_r, self.wake_w):
            os.close(fd)
        os.setsid()
        # If the zygote goes (the worker stopped or died), so do its children,
        # even one stuck in a loop whose client will never read the reply.
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != self.pid:
            os._exit(0)  # it went before the line above took effect
        workdir = os.path.join(self.dir, f"w{os.getpid()}")
        os.mkdir(workdir, 0o700)
        os.chdir(workdir)
        os.environ["TMPDIR"] = tempfile.tempdir = workdir
        for name, limit in self.rlimits.items():
            resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (limit, limit))


def _preload(modules: list[str], handler: str) -> Callable[[dict[str, Any]], Any]:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a bad preload entry costs speed, not service
            print(f"noetl zygote: cannot preload {name}: {exc!r}", file=sys.stderr)
    module, _, func = handler.partition(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


# --- The session child -----------------------------------------------------


def _await_session(
    listener: socket.socket,
    channel: socket.socket,
    handler: Callable[..., Any],
    warmup: dict[str, Any] | None,
) -> None:
    """The spare's life: warm up, accept one connection, serve it, exit."""
    out, err = _Tail(OUTPUT_CAP), _Tail(OUTPUT_CAP)
    sys.stdout, sys.stderr = out, err
    listener.setblocking(False)
    if warmup is not None and not _ready([listener], 0):
        # A dry run while idle: the copy-on-write page faults of a first
        # request (refcounts touch shared pages) happen here, off its clock.
        _encode_reply(_call(handler, warmup))
        out.take(), err.take()
    conn = _accept(listener, channel)
    if conn is None:
        return
    with contextlib.suppress(OSError):
        channel.send(b"t")  # the zygote forks a replacement
    channel.close()
    with conn:
        conn.setblocking(True)
        _serve_session(conn, handler, out, err)


def _accept(listener: socket.socket, channel: socket.socket) -> socket.socket | None:
    """The next connection, or None once the zygote is gone (channel EOF).

    Accepting here rather than in the zygote saves a process hop per session.
    """
    while True:
        ready = _ready([listener, channel], None)
        if channel.fileno() in ready:
            return None  # the zygote never writes to us: this is EOF
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            continue  # that client gave up before we got to it
        listener.close()
        return conn


def _ready(socks: list[socket.socket], timeout: float | None) -> set[int]:
    # poll, not select: inherited descriptor numbers may exceed FD_SETSIZE.
    poller = select.poll()
    for sock in socks:
        poller.register(sock, select.POLLIN)
    millis = None if timeout is None else int(timeout * 1000)
    return {fd for fd, _ in poller.poll(millis)}


def _serve_session(
    conn: socket.socket, handler: Callable[..., Any], out: _Tail, err: _Tail
) -> None:
    send_frame(conn, {"pid": os.getpid()})
    while True:
        try:
            request = recv_frame(conn)
        except (EOFError, OSError):
            return
        reply = _call(handler, request)
        reply["stdout"], reply["stderr"] = out.take(), err.take()
        conn.sendall(_encode_reply(reply))


def _call(handler: Callable[..., Any], request: Any) -> dict[str, Any]:
    try:
        reply = handler(request)
    except BaseException as exc:  # the handler should not raise; stay alive
        return failure("exception", f"{type(exc).__name__}: {exc}")
    return reply if isinstance(reply, dict) else failure("exception", "bad reply")


def _encode_reply(reply: dict[str, Any]) -> bytes:
    """The reply as a frame, or an error frame if its result cannot be JSON."""
    try:
        return encode_frame(reply)
    except (TypeError, ValueError) as exc:  # a cycle, a key that is a tuple...
        message = f"TypeError: the task result is not JSON-serialisable: {exc}"
        error = {"exception": "TypeError", "message": message, "traceback": ""}
        output = {k: reply.get(k, "") for k in ("stdout", "stderr")}
        return encode_frame({"ok": False, "error": error, **output})


class _Tail(io.TextIOBase):
    """A text stream that keeps only the last ``cap`` characters written."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.parts.append(text)
        self.size += len(text)
        if self.size > 2 * self.cap:
            self._trim()
        return len(text)

    def take(self) -> str:
        """Everything kept since the last call, noting what was dropped."""
        self._trim()
        text, dropped = "".join(self.parts), self.dropped
        self.parts, self.size, self.dropped = [], 0, 0
        return f"[... {dropped} characters dropped]\n{text}" if dropped else text

    def _trim(self) -> None:
        text = "".join(self.parts)
        if len(text) > self.cap:
            self.dropped += len(text) - self.cap
            text = text[-self.cap :]
        self.parts, self.size = [text], len(text)
