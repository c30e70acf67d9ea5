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
- The zygote keeps one child forked ahead ("the spare"). On each connection it
  passes the socket to the spare (SCM_RIGHTS), so no fork is on the critical
  path, and forks the next spare.
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
import gc
import datetime as dt
import decimal
import importlib
import io
import json
import os
import resource
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
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# What the zygote imports before forking anything. The first line is what
# user code gets injected or commonly imports; the second is what the child
# runtime itself needs (async ``main`` and tracebacks).
BASE_PRELOAD = [
    *("json", "datetime", "uuid", "decimal", "os", "math", "re", "time"),
    *("hashlib", "random", "logging"),
    *("asyncio", "inspect", "traceback", "linecache", "base64"),
]

ENV_ALLOW = frozenset({"PATH", "HOME", "LANG", "TZ", "PYTHONPATH", "TMPDIR"})
ENV_PASS_PREFIX = "NOETL_PY_ENV_"

OUTPUT_CAP = 1_000_000  # characters kept per stream and request
MAX_FRAME = 1 << 30
KILL_GRACE_S = 2.0  # SIGTERM, then SIGKILL after this (R9)
CONNECT_TIMEOUT_S = 10.0  # covers a zygote still importing its preload list
POLL_S = 0.05  # how often a waiting client checks for cancellation
SPARE_DELAY_S = 0.005  # fork the next spare just after a new session's start

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
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(4, 0, 0, 0, 0) == 0)  # 4 = PR_SET_DUMPABLE
    except (OSError, AttributeError):
        return False


# --- Client side -----------------------------------------------------------


class Zygote:
    """Owns one zygote process; hands out sessions.

    ``handler`` is "module:function", imported by the zygote; the function
    takes a request dict and returns a reply dict ``{ok, result | error}``.
    ``warmup`` is a request each spare child runs once, unseen, while idle.
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
    ) -> None:
        self.handler = handler
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
        """Stop the zygote. Children with open sessions finish on their own."""
        with self._lock:
            if self._proc is not None and self._owner == os.getpid():
                self._cleanup()
            self._proc = None

    def session(self) -> PythonSession:
        return PythonSession(self)

    def connect(self) -> tuple[socket.socket, int]:
        """Open a session: a connected socket and the child's pid."""
        self.start()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        try:
            sock.connect(os.path.join(self._dir, "session"))
            hello = recv_frame(sock, deadline, lambda: not self.running)
            return sock, int(hello["pid"])
        except (OSError, EOFError, _Timeout, _Stopped, KeyError) as exc:
            sock.close()
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
            sock = self._child()
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

    def _child(self) -> socket.socket:
        if self._sock is None:
            self._sock, self._pid = self.zygote.connect()
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
            sock.sendall(payload)
            reply = recv_frame(sock, time.monotonic() + timeout, stop)
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
    name = signal.Signals(-code).name if -code in signal.valid_signals() else -code
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
    finally:
        os._exit(0)


class _ZygoteServer:
    def __init__(self, config: dict[str, Any]) -> None:
        session_fd, control_fd, death_fd = config["fds"]
        self.session = socket.socket(fileno=session_fd)
        self.control = socket.socket(fileno=control_fd)
        self.death_fd = death_fd
        self.dir: str = config["dir"]
        self.rlimits: dict[str, int] = config["rlimits"]
        self.handler = _preload(config["preload"], config["handler"])
        self.statuses: OrderedDict[int, int] = OrderedDict()
        self.warmup: dict[str, Any] | None = config["warmup"]
        self.spare: tuple[int, socket.socket] | None = None
        self.spare_due = 0.0
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()

    def serve(self) -> None:
        # SIGCHLD wakes the loop through a pipe, so children are reaped at
        # once without polling.
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.session, selectors.EVENT_READ, self.on_session)
        self.selector.register(self.control, selectors.EVENT_READ, self.on_control)
        self.selector.register(self.death_fd, selectors.EVENT_READ, self.on_death)
        self.selector.register(self.wake_r, selectors.EVENT_READ, self.on_wake)
        while True:
            for key, _ in self.selector.select(self.idle_timeout()):
                key.data()
            if self.spare is None and time.monotonic() >= self.spare_due:
                self.spare = self.fork_spare()

    def idle_timeout(self) -> float | None:
        # A fork takes a millisecond or two of CPU; done while the session just
        # handed off is starting, it would slow that session on a small box.
        if self.spare is not None:
            return None
        return max(0.0, self.spare_due - time.monotonic())

    def on_death(self) -> None:
        # The worker closed its end of the pipe, or died: nothing more to serve.
        os._exit(0)

    def on_wake(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass
        self.reap()

    def on_session(self) -> None:
        try:
            conn, _ = self.session.accept()
        except OSError:
            return
        with conn:
            for _attempt in range(2):
                if self.hand_off(conn):
                    break
        self.spare_due = time.monotonic() + SPARE_DELAY_S

    def hand_off(self, conn: socket.socket) -> bool:
        spare, self.spare = self.spare or self.fork_spare(), None
        _pid, channel = spare
        with channel:
            try:
                socket.send_fds(channel, [b"s"], [conn.fileno()])
            except OSError:
                return False  # that spare died; the caller forks another
        return True

    def on_control(self) -> None:
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
            if self.spare is not None and self.spare[0] == pid:
                # A spare should not die unused: back off, don't fork in a loop.
                self.spare[1].close()
                self.spare = None
                self.spare_due = time.monotonic() + 1.0

    def fork_spare(self) -> tuple[int, socket.socket]:
        channel, child_end = socket.socketpair()
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                channel.close()
                self.become_child()
                _await_session(child_end, self.handler, self.warmup)
                code = 0
            finally:
                os._exit(code)  # never unwind into the zygote's loop
        child_end.close()
        return pid, channel

    def become_child(self) -> None:
        """Drop the zygote's duties and set up a clean child."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        for sock in (self.session, self.control):
            sock.close()
        for fd in (self.death_fd, self.wake_r, self.wake_w):
            os.close(fd)
        if self.spare is not None:
            self.spare[1].close()
        os.setsid()
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
    channel: socket.socket,
    handler: Callable[..., Any],
    warmup: dict[str, Any] | None,
) -> None:
    """The spare's life: warm up, wait for a connection, serve it, exit."""
    out, err = _Tail(OUTPUT_CAP), _Tail(OUTPUT_CAP)
    sys.stdout, sys.stderr = out, err
    if warmup is not None:
        # A dry run while idle: the copy-on-write page faults of the first
        # request (refcounts touch shared pages) happen here, not on its clock.
        encode_frame(_checked(_call(handler, warmup)))
        out.take(), err.take()
    _, fds, _, _ = socket.recv_fds(channel, 1, 1)
    channel.close()
    if not fds:
        return  # the zygote went away before handing us anything
    with socket.socket(fileno=fds[0]) as conn:
        conn.settimeout(None)
        _serve_session(conn, handler, out, err)


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
        send_frame(conn, _checked(reply))


def _call(handler: Callable[..., Any], request: Any) -> dict[str, Any]:
    try:
        reply = handler(request)
    except BaseException as exc:  # the handler should not raise; stay alive
        return failure("exception", f"{type(exc).__name__}: {exc}")
    return reply if isinstance(reply, dict) else failure("exception", "bad reply")


def _checked(reply: dict[str, Any]) -> dict[str, Any]:
    """The reply itself, or an error reply if its result cannot be JSON."""
    try:
        json.dumps(reply, default=to_jsonable)
    except (TypeError, ValueError) as exc:
        message = f"TypeError: the task result is not JSON-serialisable: {exc}"
        error = {"exception": "TypeError", "message": message, "traceback": ""}
        return {"ok": False, "error": error, "stdout": "", "stderr": ""}
    return reply


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
