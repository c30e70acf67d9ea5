"""The ``python`` tool kind (DSL section 5.1): user code in a forked child.

The worker side (``run``) turns the rendered task config into a request and
sends it over the command's ``PythonSession`` (``workers.zygote``); the child
side (``execute``) runs inside the forked child, builds fresh globals for each
request and returns the result. Both halves live here so the tool's contract
reads in one place.

The worker starts the zygote early with ``start_zygote()`` and, at the end of
each command, calls ``close_resources(ctx)`` (or closes every object in
``ctx.resources``). User code is not sandboxed; see ``workers.zygote``.

Pure module: no Django.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import datetime
import importlib
import inspect
import json
import linecache
import os
import threading
import traceback
import uuid
from collections.abc import Iterable
from types import CodeType
from typing import Any

from workers.tools.base import (
    DEFAULT_TIMEOUT_S,
    CredentialError,
    Stopwatch,
    ToolContext,
    error,
    ok,
)
from workers.zygote import PythonSession, Zygote

SESSION_KEY = "python_session"
HANDLER = f"{__name__}:execute"
# Each spare child runs this once while idle, to be warm for the real request.
WARMUP = {"code": "result = {'ok': [1, 2.5, None]}", "filename": "<noetl warmup>"}
MESSAGE_CAP = 4_000
TRACEBACK_CAP = 16_000
LOCALS_KEYS_CAP = 50

# Session failures the child could not report itself, as envelope error kinds.
# "died" stays an exception (user code usually caused it); "unavailable" is
# the worker's own problem, so another attempt may well succeed.
_FAILURE_KINDS = {"died": "exception", "unavailable": "internal"}


class ConfigError(Exception):
    pass


# --- Worker side -----------------------------------------------------------


def run(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    watch = Stopwatch()
    try:
        request = build_request(config, ctx)
    except ConfigError as exc:
        return watch.stamp(error("config", str(exc)))
    except CredentialError as exc:
        return watch.stamp(error("credential", str(exc)))

    timeout = ctx.timeout if ctx.timeout and ctx.timeout > 0 else DEFAULT_TIMEOUT_S
    reply = session_for(ctx).run(request, timeout, ctx.cancelled)
    _log_output(reply, ctx)
    return watch.stamp(envelope(reply))


def build_request(config: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    context = config.get("context")
    inputs = _inputs(config)
    if config.get("auth"):
        inputs["auth"] = _auth(config["auth"], ctx)
    return {
        "code": load_code(config),
        "inputs": inputs,
        "libs": _libs(config.get("libs")),
        "context": context if isinstance(context, dict) else {},
        "filename": _filename(ctx),
    }


def _filename(ctx: ToolContext) -> str:
    # Names the code in tracebacks and marks where user frames start.
    label = ".".join(part for part in (ctx.step, ctx.task) if part) or "task"
    return f"<noetl {label}>"


def load_code(config: dict[str, Any]) -> str:
    """The code to run: ``script`` first, then ``code_b64``, then ``code``."""
    code = _script_code(config.get("script"))
    if code is None and config.get("code_b64"):
        try:
            # YAML block scalars wrap long base64 text over several lines.
            text = "".join(str(config["code_b64"]).split())
            code = base64.b64decode(text, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"code_b64 is not valid base64 UTF-8: {exc}") from None
    if code is None:
        code = config.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ConfigError(
            "python task has no code: set code, code_b64 or script.source"
        )
    return code


def _script_code(script: Any) -> str | None:
    if not isinstance(script, dict):
        return None
    source = script.get("source")
    if not isinstance(source, dict):
        return script.get("code")
    kind = source.get("type", "inline")
    if kind == "inline":
        return source.get("code")
    if kind == "file":
        path = source.get("path") or script.get("uri")
        if not path:
            raise ConfigError("script.source.path is required for a file source")
        try:
            with open(str(path), encoding="utf-8") as fh:
                return fh.read()
        except OSError as exc:
            raise ConfigError(f"cannot read script file {path!r}: {exc}") from None
    raise ConfigError(
        f"script source type {kind!r} is not supported here (use inline or file)"
    )


def _inputs(config: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in ("args", "input"):  # legacy args first: input wins
        value = config.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"python task {key} must be a mapping")
        merged.update(value)
    return merged


def _auth(auth: Any, ctx: ToolContext) -> dict[str, Any]:
    """The ``auth`` global: one credential's fields (``auth: name``) or, for
    a map of aliases to names, each alias's fields."""
    if isinstance(auth, str):
        return ctx.credential(auth)
    if isinstance(auth, dict) and all(isinstance(v, str) for v in auth.values()):
        return {alias: ctx.credential(name) for alias, name in auth.items()}
    raise ConfigError("python auth must be a credential name or a map of names")


def _libs(libs: Any) -> dict[str, Any]:
    if not libs:
        return {}
    if not isinstance(libs, dict):
        raise ConfigError("python task libs must map aliases to modules")
    for alias, spec in libs.items():
        plain = isinstance(spec, str)
        pair = isinstance(spec, dict) and {"from", "import"} <= spec.keys()
        if not (plain or pair):
            raise ConfigError(
                f"libs.{alias} must be a module name or {{from: module, import: name}}"
            )
    return libs


def envelope(reply: dict[str, Any]) -> dict[str, Any]:
    # A result dict with status "error"/"failed" is not judged here: the
    # pipeline runner applies that rule to every tool alike (DSL 5.0).
    if reply.get("ok"):
        return ok(reply.get("result"))
    err = reply.get("error") or {}
    kind = err.get("kind", "exception")
    envelope_kind = _FAILURE_KINDS.get(kind, kind)
    extra: dict[str, Any] = {}
    if "exception" in err or kind == "died":
        extra["py"] = {
            "exception": err.get("exception", "ProcessDied"),
            "traceback": err.get("traceback", ""),
        }
    message = str(err.get("message") or "python task failed")
    return error(envelope_kind, message, retryable=kind == "unavailable", **extra)


def _log_output(reply: dict[str, Any], ctx: ToolContext) -> None:
    # Output goes to the command log, not into the envelope: events stay small.
    for stream in ("stdout", "stderr"):
        text = reply.get(stream)
        if text:
            lines = text.rstrip("\n").split("\n")
            ctx.log("\n".join(f"[{stream}] {line}" for line in lines))


# --- Sessions and the default zygote ---------------------------------------

_zygote: Zygote | None = None
_zygote_lock = threading.Lock()


def start_zygote(preload: Iterable[str] = (), **options: Any) -> Zygote:
    """Create and start the default zygote; call early in the worker.

    ``options`` are ``Zygote``'s (``rlimits``, ``env_allow``, ...). A later
    call returns the existing zygote unchanged.
    """
    global _zygote
    with _zygote_lock:
        if _zygote is None:
            _zygote = Zygote(HANDLER, preload=preload, warmup=WARMUP, **options)
        zygote = _zygote
    zygote.start()
    return zygote


def session_for(ctx: ToolContext) -> PythonSession:
    session = ctx.resources.get(SESSION_KEY)
    if not isinstance(session, PythonSession) or session.closed:
        session = start_zygote().session()
        ctx.resources[SESSION_KEY] = session
    return session


def close_resources(ctx: ToolContext) -> None:
    session = ctx.resources.pop(SESSION_KEY, None)
    if session is not None:
        session.close()


def interrupt(ctx: ToolContext) -> None:
    """Kill the task in flight (from another thread); see DESIGN-NOTES R9."""
    session = ctx.resources.get(SESSION_KEY)
    if isinstance(session, PythonSession):
        session.interrupt()


# --- Child side: runs in the forked child ----------------------------------

_compiled: dict[tuple[str, str], CodeType] = {}


def execute(request: dict[str, Any]) -> dict[str, Any]:
    """Run one request with fresh globals; the zygote child calls this."""
    filename = request.get("filename") or "<noetl>"
    try:
        code = _compile(request["code"], filename)
        inputs = request.get("inputs") or {}
        context = request.get("context") or {}
        scope = _globals(inputs, request.get("libs") or {}, context)
        return {"ok": True, "result": _run_code(code, scope, inputs, context)}
    except BaseException as exc:  # user code may raise anything, SystemExit too
        return {"ok": False, "error": _describe_exception(exc, filename)}


def _compile(source: str, filename: str) -> CodeType:
    # Loops send the same code many times: compile it once per child.
    # Tracebacks read source lines from linecache; mtime None keeps the entry.
    lines = source.splitlines(True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    key = (filename, source)
    code = _compiled.get(key)
    if code is None:
        try:
            code = compile(source, filename, "exec", dont_inherit=True)
        except SyntaxError as exc:
            # Compiler-stage errors (a module-level return) carry no text.
            if exc.text is None and exc.lineno and exc.lineno <= len(lines):
                exc.text = lines[exc.lineno - 1]
            raise
        if len(_compiled) >= 64:
            _compiled.clear()
        _compiled[key] = code
    return code


def _globals(
    inputs: dict[str, Any], libs: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    """DSL 10.4: auto-injected, then input_data, then libs, then inputs."""
    # "__noetl_task__" rather than "__main__": a script's own
    # `if __name__ == "__main__": main()` must not run main a second time.
    scope: dict[str, Any] = {
        "__name__": "__noetl_task__",
        "__builtins__": builtins,
        "json": json,
        "os": os,
        "datetime": datetime,
        "uuid": uuid,
        "context": context,
    }
    if "data" in context:
        scope["data"] = context["data"]
    if "input_data" not in inputs:
        scope["input_data"] = dict(inputs)
    for alias, spec in libs.items():
        scope[alias] = _import(spec)
    scope.update(inputs)
    return scope


def _import(spec: Any) -> Any:
    if isinstance(spec, str):
        return importlib.import_module(spec)
    return getattr(importlib.import_module(spec["from"]), spec["import"])


def _run_code(
    code: CodeType,
    scope: dict[str, Any],
    inputs: dict[str, Any],
    context: dict[str, Any],
) -> Any:
    before = set(scope)
    try:
        exec(code, scope)
    except SystemExit as exc:
        if exc.code not in (None, 0):  # sys.exit(0) just ends the script
            raise
    main = scope.get("main")
    if callable(main):
        return _call_main(main, inputs, context)
    if "result" in scope:
        return scope["result"]
    names = sorted(k for k in scope if k not in before and not k.startswith("__"))
    return {
        "status": "success",
        "message": "code ran without setting result",
        "locals_keys": names[:LOCALS_KEYS_CAP],
    }


def _call_main(main: Any, inputs: dict[str, Any], context: dict[str, Any]) -> Any:
    """Mode B: fill main's parameters from the inputs by name."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    params = inspect.signature(main).parameters.values()
    takes_rest = False
    for param in params:
        if param.kind is param.VAR_KEYWORD:
            takes_rest = True
        elif param.kind is param.VAR_POSITIONAL:
            continue
        elif param.name in inputs:
            _bind(param, inputs[param.name], args, kwargs)
        elif param.name == "context":
            _bind(param, context, args, kwargs)
        elif param.default is param.empty:
            _bind(param, None, args, kwargs)
        elif param.kind is param.POSITIONAL_ONLY:
            args.append(param.default)  # keeps later positional ones in place
    if takes_rest:
        named = {p.name for p in params}
        kwargs.update({k: v for k, v in inputs.items() if k not in named})
    result = main(*args, **kwargs)
    if not inspect.iscoroutine(result):
        return result
    import asyncio  # not preloaded (see workers.zygote.BASE_PRELOAD)

    return asyncio.run(result)


def _bind(
    param: inspect.Parameter, value: Any, args: list[Any], kwargs: dict[str, Any]
) -> None:
    if param.kind is param.POSITIONAL_ONLY:
        args.append(value)
    else:
        kwargs[param.name] = value


def _describe_exception(exc: BaseException, filename: str) -> dict[str, Any]:
    name = type(exc).__name__
    if isinstance(exc, SyntaxError):
        message = f"{name}: {exc.msg} (line {exc.lineno})"
    else:
        message = f"{name}: {exc}" if str(exc) else name
    return {
        "exception": name,
        "message": _head(message, MESSAGE_CAP),
        "traceback": _user_traceback(exc, filename)[-TRACEBACK_CAP:],
    }


def _user_traceback(exc: BaseException, filename: str) -> str:
    """The traceback from the first frame of user code on; ours is noise."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _head(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[:cap] + " [...]"
