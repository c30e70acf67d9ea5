"""Runs one claimed command on a worker: a step's pipeline, once or per item.

The control plane hands the worker a task (the step's normalised definition,
a snapshot of the variables its templates read, the loop items of this
chunk, and a continuation state when the command resumes a suspended one).
This module renders each task's config, calls the tool, applies the task
policy (DSL section 4) and builds the report the engine folds. It is pure:
no Django, no database; tools are reached through ``workers.tools``.

A pipeline suspends instead of blocking when it meets a ``kind: playbook``
task or a retry delay longer than the in-worker cap: the report then carries
the pipeline's position, and the engine issues a continuation later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from executions import templating
from executions.engine.scope import Scope, base_names, split_set_key
from executions.engine.values import Values
from executions.measures import size_of
from noetl_site.text import count
from workers import tools
from workers.keychain import Keychain, KeychainError
from workers.tools.base import DEFAULT_TIMEOUT_S, ToolContext

MAX_JUMPS = 10_000
MAX_SLEEP_IN_WORKER_S = 5.0
LOG_TAIL_CHARS = 64 * 1024
TEXT_FIELDS = frozenset(
    {"code", "command", "commands", "query", "queries", "sql", "cmd"}
)
PREVIOUS = frozenset({"previous", "prev", "_previous", "@previous"})


class Suspend(Exception):
    """The pipeline must wait (a child run, a long backoff) without a slot."""

    def __init__(
        self,
        resume: dict[str, Any],
        child: dict | None = None,
        delay_s: float | None = None,
    ) -> None:
        super().__init__("suspend")
        self.resume = resume
        self.child = child
        self.delay_s = delay_s


@dataclass
class PipelineResult:
    status: str  # ok | break | error
    result: Any = None
    error: dict[str, Any] | None = None
    ctx_patch: dict[str, Any] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Pipeline:
    """The position of one pipeline run, enough to resume it elsewhere."""

    pc: int = 0
    results: dict[str, Any] = field(default_factory=dict)
    prev: Any = None
    attempts: dict[str, int] = field(default_factory=dict)
    iter_vars: dict[str, Any] = field(default_factory=dict)
    ctx_patch: dict[str, Any] = field(default_factory=dict)
    jumps: int = 0
    outcome: dict[str, Any] | None = None  # a resumed task's outcome
    started: float = field(default_factory=time.monotonic)

    def snapshot(self) -> dict[str, Any]:
        return {
            "pc": self.pc,
            "results": self.results,
            "prev": self.prev,
            "attempts": self.attempts,
            "iter_vars": self.iter_vars,
            "ctx_patch": self.ctx_patch,
            "jumps": self.jumps,
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> Pipeline:
        pipeline = cls(
            **{
                k: data[k]
                for k in (
                    "pc",
                    "results",
                    "prev",
                    "attempts",
                    "iter_vars",
                    "ctx_patch",
                    "jumps",
                )
            }
        )
        pipeline.outcome = data.get("outcome")
        return pipeline


class CommandRunner:
    def __init__(
        self,
        task: dict[str, Any],
        values: Values,
        *,
        credential: Callable[[str], dict[str, Any]],
        new_id: Callable[[], str],
        cancelled: threading.Event | None = None,
        default_timeout: float = DEFAULT_TIMEOUT_S,
        secret: Callable[[str], None] | None = None,
    ) -> None:
        self.task = task
        self.step = task["step_def"]
        self.values = values
        self.credential = credential
        self.secret = secret or (lambda value: None)
        self.new_id = new_id
        self.cancelled = cancelled or threading.Event()
        self.default_timeout = default_timeout
        self.variables = dict(task.get("scope") or {})
        self.resources: dict[str, Any] = {}
        self.log_lines: list[str] = []
        self.log_size = 0
        # The highest retry attempt of any task this command ran.
        self.max_attempt = 1
        self.base = base_names(
            task["execution_id"], task.get("catalog_id", ""), task.get("env") or {}
        )
        # What the keychain resolves is handed to ``secret`` at once, so it is
        # masked out of everything the command reports or stores.
        self.keychain = (
            Keychain(task["keychain"], credential, self._render_entry, self.secret)
            if task.get("keychain")
            else None
        )

    # -- the command ------------------------------------------------------

    def run(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "command_id": self.task["command_id"],
            "delivery": self.task.get("delivery", 1),
        }
        started, clock = time.time(), time.perf_counter()
        try:
            if self.task.get("iterations") is not None:
                self._run_chunk(report)
            else:
                self._run_once(report)
        finally:
            tools.close_resources(self.resources)
        if self.log_lines:
            report["log"] = "".join(self.log_lines)[-LOG_TAIL_CHARS:]
        report["measures"] = self._measures(report, started, clock)
        return report

    def _measures(
        self, report: dict[str, Any], started: float, clock: float
    ) -> dict[str, Any]:
        """What analysis needs about this command (see executions.measures)."""
        ms = (time.perf_counter() - clock) * 1000
        sent = {
            key: self.task.get(key) for key in ("scope", "args", "iterations")
        }
        if "iterations" in report:
            results = [it.get("result") for it in report["iterations"]]
        else:
            results = report.get("result")
        return {
            "started": started,
            "ended": started + ms / 1000,
            "ms": round(ms, 3),
            "attempt": self.max_attempt,
            "input_bytes": size_of(sent),
            "result_bytes": size_of(results),
        }

    def _run_once(self, report: dict[str, Any]) -> None:
        resume = self.task.get("resume")
        pipeline = Pipeline.restore(resume["pipeline"]) if resume else Pipeline()
        if resume and "outcome" in resume:
            pipeline.outcome = resume["outcome"]
        try:
            outcome = self._run_pipeline(pipeline, None)
        except Suspend as stop:
            report["suspend"] = self._suspension(stop, None)
            return
        report.update(
            status=outcome.status, ctx_patch=outcome.ctx_patch, tasks=outcome.tasks
        )
        if outcome.status == "error":
            report["error"] = outcome.error
            report["result"] = None
        else:
            report["result"] = self.values.externalize(outcome.result)

    def _run_chunk(self, report: dict[str, Any]) -> None:
        resume = self.task.get("resume")
        iterations = self.task["iterations"]
        done: list[dict[str, Any]] = list((resume or {}).get("done") or [])
        patch: dict[str, Any] = dict((resume or {}).get("ctx_patch") or {})
        self.variables.update(patch)
        finished = {it["index"] for it in done}
        for item in iterations:
            if item["index"] in finished:
                continue
            pipeline = Pipeline()
            if resume and resume.get("index") == item["index"]:
                pipeline = Pipeline.restore(resume["pipeline"])
                pipeline.outcome = resume.get("outcome")
            started = time.perf_counter()
            try:
                outcome = self._run_pipeline(pipeline, item)
            except Suspend as stop:
                stop.resume.update(done=done, ctx_patch=patch)
                report["suspend"] = self._suspension(stop, item)
                return
            entry: dict[str, Any] = {
                "index": item["index"],
                "status": outcome.status,
                "ms": round((time.perf_counter() - started) * 1000, 3),
            }
            if outcome.status == "error":
                entry["error"] = outcome.error
            else:
                entry["result"] = self.values.externalize(outcome.result)
            done.append(entry)
            # Later iterations of this command see this one's ctx writes.
            self.variables.update(outcome.ctx_patch)
            patch.update(outcome.ctx_patch)
        report["iterations"] = done
        report["ctx_patch"] = patch

    def _suspension(self, stop: Suspend, item: dict | None) -> dict[str, Any]:
        resume = dict(stop.resume)
        if item is not None:
            resume["index"] = item["index"]
            resume["iterations"] = self.task["iterations"]
        suspend: dict[str, Any] = {"resume": resume}
        if stop.child is not None:
            suspend["child"] = stop.child
        if stop.delay_s is not None:
            suspend["delay_s"] = stop.delay_s
        return suspend

    # -- one pipeline run -------------------------------------------------

    def _run_pipeline(self, p: Pipeline, item: dict | None) -> PipelineResult:
        tasks = self.step["tasks"]
        labels = [t["label"] for t in tasks]
        deadline = None
        if self.step.get("timeout"):
            deadline = p.started + float(self.step["timeout"])
        summaries: list[dict[str, Any]] = []
        status = "ok"
        last: dict[str, Any] | None = None
        while p.pc < len(tasks):
            task = tasks[p.pc]
            label = task["label"]
            t0, started = time.perf_counter(), time.time()
            if p.outcome is not None:
                outcome, p.outcome = p.outcome, None
            else:
                outcome = self._run_task(task, p, item, deadline)
            p.attempts[label] = p.attempts.get(label, 0) + 1
            self.max_attempt = max(self.max_attempt, p.attempts[label])
            outcome = _status_check(outcome, label)
            last = outcome
            summaries.append(
                {
                    "label": label,
                    "status": outcome["status"],
                    "attempt": p.attempts[label],
                    "kind": task["kind"],
                    "t0": round(started, 3),
                    "ms": round((time.perf_counter() - t0) * 1000, 3),
                }
            )
            data = outcome.get("data")
            if outcome["status"] == "ok":
                p.results[label] = data
                self._apply_set(task["set"], p, item, {"output": data})
            action, rule = self._decide(task, outcome, p, item)
            if rule is not None and rule.get("set"):
                self._apply_set(
                    rule["set"], p, item, {"output": templating.wrap_output(outcome)}
                )
            if action == "continue":
                if outcome["status"] == "ok":
                    p.prev = data
                p.pc += 1
            elif action == "retry":
                if p.attempts[label] >= int(rule.get("attempts", 3)):
                    return self._failed(
                        outcome,
                        label,
                        p,
                        summaries,
                        f"gave up after {count(p.attempts[label], 'attempt')}",
                    )
                self._backoff(rule, p, item)
            elif action == "jump":
                p.jumps += 1
                target = rule.get("to")
                if p.jumps > MAX_JUMPS:
                    return self._failed(
                        outcome, label, p, summaries, f"more than {MAX_JUMPS} jumps"
                    )
                if target in PREVIOUS:
                    p.pc = max(0, p.pc - 1)
                elif target in labels:
                    p.pc = labels.index(target)
                else:
                    return self._failed(
                        outcome,
                        label,
                        p,
                        summaries,
                        f"jump target {target!r} is not a task of "
                        f"step {self.step['name']!r}",
                    )
            elif action == "break":
                status = "break"
                break
            else:
                return self._failed(outcome, label, p, summaries, None)
        return PipelineResult(
            status, self._step_result(p, last, status), None, p.ctx_patch, summaries
        )

    def _failed(
        self, outcome: dict, label: str, p: Pipeline, summaries: list, note: str | None
    ) -> PipelineResult:
        error = dict(
            outcome.get("error")
            or {
                "kind": "policy",
                "retryable": False,
                "message": "the task policy failed it",
            }
        )
        error.setdefault("message", "task failed")
        if note:
            error["message"] = f"{error['message']} ({note})"
        error["task"] = label
        for extra in ("http", "pg", "py"):
            if extra in outcome:
                error[extra] = outcome[extra]
        return PipelineResult("error", None, error, p.ctx_patch, summaries)

    def _step_result(self, p: Pipeline, last: dict | None, status: str) -> Any:
        data = (last or {}).get("data")
        if self.step.get("single"):
            return data
        result = dict(data) if isinstance(data, dict) else {}
        result.update(status=status, results=p.results)
        if p.ctx_patch:
            result["ctx"] = p.ctx_patch
        return result

    # -- rendering --------------------------------------------------------

    def _context(
        self,
        templates: list[Any],
        p: Pipeline,
        item: dict | None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        variables = self.variables
        if p.ctx_patch:
            variables = {**variables, **p.ctx_patch}
        scope = Scope(
            variables,
            self.values.resolve,
            step_names=self.task.get("step_names") or (),
            base=self.base,
        )
        names: dict[str, Any] = {
            "args": self.task.get("args") or {},
            "results": p.results,
            "_prev": p.prev,
        }
        for label, value in p.results.items():
            names[label] = templating.wrap_result(value)
        iter_scope = dict(p.iter_vars)
        loop = self.step.get("loop")
        if item is not None and loop:
            iterator = loop["iterator"]
            index = item["index"]
            iter_scope.update(
                {
                    iterator: item["item"],
                    "_index": index,
                    "index": index,
                    "_first": item.get("first", index == 0),
                    "_last": item.get("last", False),
                }
            )
            names[iterator] = item["item"]
            names["loop_index"] = index
            names["loop"] = {
                "index": index,
                "first": iter_scope["_first"],
                "length": item.get("total"),
                "done": False,
            }
        names["iter"] = iter_scope
        if self.keychain is not None:
            names["keychain"] = self.keychain
        if extra:
            names.update(extra)
        return scope.context(templates, names)

    def _render_entry(self, value: Any) -> Any:
        """Render a keychain entry's field (it may read the workload or
        another entry)."""
        context = self._context([value], Pipeline(), None)
        return templating.plain(templating.render_value(value, context))

    def _render_config(
        self, task: dict, p: Pipeline, item: dict | None, merged_input: dict[str, Any]
    ) -> dict[str, Any]:
        config = dict(task["config"])
        config.pop("input", None)
        config.pop("args", None)
        templates: list[Any] = [config, merged_input]
        context = self._context(
            templates,
            p,
            item,
            {"_task": task["label"], "_attempt": p.attempts.get(task["label"], 0) + 1},
        )
        rendered: dict[str, Any] = {}
        for key, value in config.items():
            if key in TEXT_FIELDS:
                rendered[key] = _render_text(value, context)
            elif key == "script" and isinstance(value, dict):
                rendered[key] = _render_script(value, context)
            else:
                rendered[key] = templating.plain(
                    templating.render_value(value, context)
                )
        rendered["input"] = {
            k: templating.plain(templating.render_value(v, context))
            for k, v in merged_input.items()
        }
        if task["kind"] == "python" and "context" in str(config.get("code", "")) + str(
            config.get("script", "")
        ):
            whole = self._context(["{{ ctx }}"], p, item)
            rendered["context"] = templating.plain(
                {
                    k: v
                    for k, v in whole.items()
                    if k not in ("ctx", "workload", "keychain")
                }
            )
        return rendered

    def _apply_set(
        self,
        mapping: dict[str, Any],
        p: Pipeline,
        item: dict | None,
        extra: dict[str, Any],
    ) -> None:
        if not mapping:
            return
        context = self._context([mapping], p, item, extra)
        for key, value in mapping.items():
            scope, name = split_set_key(key)
            try:
                rendered = templating.plain(templating.render_value(value, context))
            except templating.TemplateError as exc:
                self._log(f"[{self.step['name']}] set {key}: {exc}\n")
                continue
            if scope == "iter":
                p.iter_vars[name] = rendered
            else:
                p.ctx_patch[name] = rendered

    # -- running one task -------------------------------------------------

    def _run_task(
        self, task: dict, p: Pipeline, item: dict | None, deadline: float | None
    ) -> dict[str, Any]:
        if self.cancelled.is_set():
            return _error("cancelled", "the run was cancelled")
        kind = task["kind"]
        merged_input = dict(self.step.get("input") or {})
        effective = task
        if kind == "workbook":
            name = task["config"].get("task") or task["config"].get("name")
            effective = (self.task.get("workbook") or {}).get(name)
            if effective is None:
                return _error(
                    "config",
                    f"workbook task {name!r} is not defined in "
                    "this playbook's workbook",
                )
            kind = effective["kind"]
            merged_input = {
                **_inputs(effective["config"]),
                **_inputs(task["config"]),
                **merged_input,
            }
        else:
            merged_input = {**_inputs(task["config"]), **merged_input}
        try:
            config = self._render_config(effective, p, item, merged_input)
        except (templating.TemplateError, KeychainError) as exc:
            unresolved = KeychainError in (type(exc), type(exc.__cause__))
            return _error(
                "credential" if unresolved else "template",
                f"task {task['label']!r}: {exc}",
            )
        if kind == "playbook":
            raise Suspend({"pipeline": p.snapshot()}, child=self._child_spec(config))
        timeout = float(
            effective.get("timeout") or task.get("timeout") or self.default_timeout
        )
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
            if timeout <= 0:
                return _error(
                    "timeout",
                    f"step {self.step['name']!r} exceeded its "
                    f"timeout of {self.step['timeout']}s",
                )
        ctx = ToolContext(
            execution_id=self.task["execution_id"],
            step=self.step["name"],
            task=task["label"],
            effect_key=self._effect_key(task, item),
            timeout=timeout,
            credential=self.credential,
            secret=self.secret,
            log=self._log,
            cancelled=self.cancelled,
            resources=self.resources,
        )
        return tools.run_tool(kind, config, ctx)

    def _child_spec(self, config: dict[str, Any]) -> dict[str, Any]:
        payload = dict(config.get("payload") or {})
        payload.update(config.get("input") or {})
        return {
            "execution_id": self.new_id(),
            "path": config.get("path") or config.get("playbook"),
            "version": config.get("version"),
            "payload": payload,
            "return_step": config.get("return_step"),
            "timeout": config.get("timeout"),
        }

    def _effect_key(self, task: dict, item: dict | None) -> str:
        index = item["index"] if item is not None else 0
        command = self.task["command_id"].split("/")
        epoch = command[2] if len(command) > 2 else "1"
        return (
            f"{self.task['execution_id']}/{self.step['name']}/{epoch}/"
            f"{index}/{task['label']}"
        )

    # -- policy -----------------------------------------------------------

    def _decide(
        self, task: dict, outcome: dict, p: Pipeline, item: dict | None
    ) -> tuple[str, dict | None]:
        rules = task["rules"]
        if not rules:
            return ("continue" if outcome["status"] == "ok" else "fail"), None
        wrapped = templating.wrap_output(outcome)
        context = self._context(
            [r.get("when") for r in rules] + [r.get("set") for r in rules],
            p,
            item,
            {
                "output": wrapped,
                "outcome": wrapped,
                "error": outcome.get("error"),
                "_attempt": p.attempts.get(task["label"], 1),
            },
        )
        for rule in rules:
            when = rule.get("when")
            if when is None or when is True:
                return rule["do"], rule
            matched, problem = templating.render_condition(when, context)
            if problem:
                self._log(f"[{self.step['name']}] policy rule: {problem}\n")
            if matched:
                return rule["do"], rule
        return ("continue" if outcome["status"] == "ok" else "fail"), None

    def _backoff(self, rule: dict, p: Pipeline, item: dict | None) -> None:
        n = p.attempts[self.step["tasks"][p.pc]["label"]]
        delay = float(rule.get("delay", 1.0))
        backoff = rule.get("backoff", "none")
        if backoff == "linear":
            delay *= n
        elif backoff == "exponential":
            delay *= 2 ** (n - 1)
        single = (
            self.task.get("iterations") is None or len(self.task["iterations"]) == 1
        )
        if delay > MAX_SLEEP_IN_WORKER_S and single:
            raise Suspend({"pipeline": p.snapshot()}, delay_s=delay)
        self.cancelled.wait(delay)

    def _log(self, text: str) -> None:
        if self.log_size < 4 * LOG_TAIL_CHARS:
            self.log_lines.append(text if text.endswith("\n") else text + "\n")
            self.log_size += len(text)


def _inputs(config: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in ("args", "input"):
        value = config.get(key)
        if isinstance(value, dict):
            merged.update(value)
    return merged


def _render_text(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return templating.render_text(value, context)
    if isinstance(value, list):
        return [_render_text(v, context) for v in value]
    return templating.plain(templating.render_value(value, context))


def _render_script(script: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    rendered = {
        k: templating.plain(templating.render_value(v, context))
        for k, v in script.items()
        if k not in ("source", "code")
    }
    if "code" in script:
        rendered["code"] = _render_text(script["code"], context)
    source = script.get("source")
    if isinstance(source, dict):
        rendered["source"] = {
            k: _render_text(v, context)
            if k == "code"
            else templating.plain(templating.render_value(v, context))
            for k, v in source.items()
        }
    return rendered


def _status_check(outcome: dict[str, Any], label: str) -> dict[str, Any]:
    """A result whose top-level status is error/failed fails the task (DSL 5.0)."""
    data = outcome.get("data")
    if outcome["status"] == "ok" and isinstance(data, dict):
        status = data.get("status")
        if isinstance(status, str) and status.lower() in ("error", "failed"):
            message = data.get("message") or data.get("error") or ""
            return {
                **outcome,
                "status": "error",
                "error": {
                    "kind": "task_status",
                    "retryable": False,
                    "message": f"task {label!r} returned status {status!r}"
                    + (f": {message}" if message else ""),
                },
            }
    return outcome


def _error(kind: str, message: str) -> dict[str, Any]:
    return {
        "status": "error",
        "error": {"kind": kind, "message": message, "retryable": False},
    }
