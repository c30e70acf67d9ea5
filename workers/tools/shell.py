"""The ``shell`` tool (DSL section 5.8; DESIGN-NOTES R9).

Runs commands one after the other with ``/bin/sh -c`` (or the ``shell``
given), each in its own process group so a timeout or a cancel kills the
command and everything it started. The first command that exits non-zero
ends the task with ``error.kind: exit`` unless ``check`` is false.

The working directory is confined under NOETL_HOME: a playbook cannot point
it elsewhere, by an absolute path, ``..`` or a symlink. The environment is a
small clean one (PATH, LANG, HOME = the working directory) plus ``env`` and
the fields of the credential ``auth`` names, so the worker's own settings
(database URL, encryption key) never reach a command. Output is captured,
kept to its last ``MAX_OUTPUT`` bytes, and masked: credential values and
``env`` values under secret-looking names show as ``***``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from workers.tools.base import (
    ConfigError,
    CredentialError,
    Stopwatch,
    ToolContext,
    Watchdog,
    credential_fields,
    error,
    noetl_home,
    ok,
    parse_seconds,
    truthy,
)
from workers.masking import mask_text, secret_strings

MAX_OUTPUT = 1_000_000
KILL_GRACE_S = 2.0
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ")


def run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    watch = Stopwatch()
    return watch.stamp(_run(config, ctx))


def _run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    try:
        commands = commands_from_config(config)
        cwd = working_dir(config.get("cwd") or config.get("working_dir"))
        env, secrets = _environment(config, ctx, cwd)
        timeout = parse_seconds(config.get("timeout"), ctx.timeout)
    except CredentialError as exc:
        return error("credential", str(exc))
    except (ConfigError, ValueError) as exc:
        return error("config", str(exc))
    for value in secrets:
        ctx.secret(value)
    shell = str(config.get("shell") or "/bin/sh")
    check = truthy(config.get("check", True))
    deadline = time.monotonic() + timeout if timeout and timeout > 0 else None
    results: list[dict[str, Any]] = []
    for index, command in enumerate(commands, start=1):
        if ctx.cancelled.is_set():
            return error("cancelled", f"command {index}: cancelled")
        left = None if deadline is None else deadline - time.monotonic()
        result, stopped = _run_one(command, shell, cwd, env, ctx, left)
        result = _masked(result, secrets)
        results.append(result)
        ctx.log(f"$ {result['command']} -> exit {result['exit_code']}")
        if stopped:
            return _stopped(stopped, index, timeout, results)
        if check and result["exit_code"] != 0:
            return _failed(index, result, results)
    return ok(_summary(results, cwd))


# --- The config. -----------------------------------------------------------------


def commands_from_config(config: dict[str, Any]) -> list[str]:
    """``cmds`` | ``commands`` | ``command`` | ``cmd`` | ``script``: text or a
    list of texts; each item is one command line (a multi-line text is one
    script, run as a whole)."""
    for key in ("cmds", "commands", "command", "cmd", "script"):
        raw = config.get(key)
        if raw in (None, "", []):
            continue
        items = raw if isinstance(raw, list) else [raw]
        if not all(isinstance(item, str | int | float) for item in items):
            raise ConfigError(f"{key} must be a command line or a list of them")
        commands = [str(item) for item in items if str(item).strip()]
        if commands:
            return commands
    raise ConfigError("no command given: set cmds (a list) or command")


def working_dir(given: Any) -> Path:
    """``given`` resolved under NOETL_HOME (default: NOETL_HOME/work),
    created when missing. Refuses anything that resolves outside it."""
    home = noetl_home()
    target = (home / str(given)) if given not in (None, "") else home / "work"
    resolved = target.resolve()
    if not resolved.is_relative_to(home):
        raise ConfigError(
            f"working directory {str(given)!r} is outside NOETL_HOME ({home}); "
            "give a path relative to it"
        )
    resolved.mkdir(parents=True, exist_ok=True)
    if not resolved.is_dir():
        raise ConfigError(f"working directory {str(given)!r} is not a directory")
    return resolved


def _environment(
    config: dict[str, Any], ctx: ToolContext, cwd: Path
) -> tuple[dict[str, str], set[str]]:
    """The commands' environment and the values to mask in their output."""
    env = {k: os.environ[k] for k in _PASSED_THROUGH if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = str(cwd)
    env["NOETL_EXECUTION_ID"] = ctx.execution_id
    env["NOETL_EFFECT_KEY"] = ctx.effect_key
    fields = credential_fields(config, ctx)
    fields.pop("type", None)
    secrets = {str(v) for v in fields.values() if isinstance(v, str) and len(v) >= 4}
    for name, value in fields.items():
        env[_env_name(str(name).upper())] = _env_value(value)
    given = config.get("env") or {}
    if not isinstance(given, dict):
        raise ConfigError("env must be a map of names to values")
    for name, value in given.items():
        env[_env_name(str(name))] = _env_value(value)
    secrets |= secret_strings({k.lower(): v for k, v in given.items()})
    return env, secrets


def _env_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise ConfigError(f"{name!r} is not a valid environment variable name")
    return name


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


# --- Running. ----------------------------------------------------------------------


def _run_one(
    command: str,
    shell: str,
    cwd: Path,
    env: dict[str, str],
    ctx: ToolContext,
    seconds: float | None,
) -> tuple[dict[str, Any], str | None]:
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(
            [shell, "-c", command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, killed as one
        )
    except OSError as exc:
        result = _result(command, 127, b"", f"cannot start {shell}: {exc}".encode())
        return result, None
    if seconds is not None and seconds <= 0:
        _kill_group(proc)
        proc.communicate()
        return _result(command, -9, b"", b""), "timeout"
    with Watchdog(ctx, seconds, lambda: _kill_group(proc)) as dog:
        stdout, stderr = proc.communicate()
    result = _result(command, proc.returncode, stdout, stderr)
    result["duration_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
    return result, dog.fired


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the whole group, SIGKILL if it is still there after a grace."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _result(command: str, code: int, stdout: bytes, stderr: bytes) -> dict[str, Any]:
    return {
        "command": command,
        "exit_code": code,
        "stdout": _text(stdout),
        "stderr": _text(stderr),
    }


def _text(raw: bytes) -> str:
    """Decoded output, keeping the tail when it is too long (errors are last)."""
    if len(raw) > MAX_OUTPUT:
        raw = raw[-MAX_OUTPUT:]
    return raw.decode("utf-8", errors="replace")


def _masked(result: dict[str, Any], secrets: set[str]) -> dict[str, Any]:
    for key in ("command", "stdout", "stderr"):
        result[key] = mask_text(result[key], secrets)
    return result


# --- The outcome. ------------------------------------------------------------------


def _summary(results: list[dict[str, Any]], cwd: Path) -> dict[str, Any]:
    last = results[-1]
    return {
        "status": "success",
        "exit_code": last["exit_code"],
        "stdout": last["stdout"],
        "stderr": last["stderr"],
        "cwd": str(cwd),
        "commands": results,
    }


def _failed(
    index: int, result: dict[str, Any], results: list[dict[str, Any]]
) -> dict[str, Any]:
    code = result["exit_code"]
    tail = (result["stderr"].strip() or result["stdout"].strip())[-500:]
    message = f"command {index} exited with status {code}"
    if tail:
        message += f": {tail}"
    return error("exit", message, code=code, data={"commands": results})


def _stopped(
    reason: str, index: int, timeout: float | None, results: list[dict[str, Any]]
) -> dict[str, Any]:
    if reason == "cancelled":
        return error("cancelled", f"command {index}: cancelled")
    message = f"command {index}: timed out after {timeout:g}s (process group killed)"
    return error("timeout", message, data={"commands": results})
