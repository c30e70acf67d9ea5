"""What the search index holds, and keeping it up to date.

Three kinds of documents: a playbook (its newest version: name,
description, what its steps do), each of its steps, and each failed run
(which playbook, which step, the error). Indexing never runs inside the
transactions that register a playbook or fail a run, nor in web processes
(embedding costs CPU and memory): it catches up from the database
afterwards, as a ``runscheduler`` duty within a round of a registration or a
failure when the index is a shared Qdrant server, and before every search,
so a search always sees everything committed before it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max, Q, QuerySet

from search.index import Document, Embedder, Index, SearchUnavailable, installed
from search.models import IndexMark

log = logging.getLogger("noetl.search.service")

# Rows commit out of time order; catch-up looks back this far behind its mark.
LOOK_BACK = timedelta(minutes=5)
PAGE = 200
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

_lock = threading.Lock()
_index: Index | None = None
_embedder = Embedder()


def enabled() -> bool:
    return settings.NOETL_SEARCH != "off" and installed()


def index() -> Index:
    """The process's index, opened on first use."""
    global _index
    if not enabled():
        raise SearchUnavailable(
            "search is off (NOETL_SEARCH=off)"
            if installed()
            else "search needs the optional extra: pip install 'noetl-django[search]'"
        )
    with _lock:
        if _index is None:
            _index = _open()
        return _index


def _open() -> Index:
    path = settings.NOETL_QDRANT_PATH
    try:
        return Index(url=settings.NOETL_QDRANT_URL, path=path, embedder=_embedder)
    except RuntimeError as exc:
        # The embedded store is locked by the process that opened it first.
        raise SearchUnavailable(
            f"the embedded Qdrant store at {path} is open in another process; "
            f"with several processes, run a Qdrant server and set NOETL_QDRANT_URL "
            f"({exc})"
        ) from None


def reset() -> None:
    """Close the open index (a process that is done with it, or tests that
    point NOETL_QDRANT_PATH elsewhere)."""
    global _index
    with _lock:
        if _index is not None:
            _index.close()
        _index = None


# -- searching ------------------------------------------------------------------


def search(query: str, *, kind: str = "", limit: int = 10) -> list[dict[str, Any]]:
    """The documents nearest in meaning to ``query``, best first."""
    catch_up()
    return index().search(query, kind=kind, limit=limit)


# -- catching up ----------------------------------------------------------------


def catch_up() -> int:
    """Index what was committed since the last catch-up; how many documents."""
    target = index()
    with _lock:
        return _catch_up_playbooks(target) + _catch_up_runs(target)


def _catch_up_playbooks(target: Index) -> int:
    from catalog.models import PlaybookVersion

    done = 0
    for page in _pages("playbook", PlaybookVersion.objects.all(), "created_at"):
        newest = dict(
            PlaybookVersion.objects.filter(path__in={v.path for v in page})
            .values("path")
            .annotate(top=Max("version"))
            .values_list("path", "top")
        )
        for version in page:
            if version.version == newest[version.path]:
                done += _index_playbook(target, version.parsed, version.version)
    return done


def _index_playbook(target: Index, parsed: dict[str, Any], version: int) -> int:
    documents = playbook_documents(parsed, version)
    missing = target.missing(documents)
    if missing:
        # A new version may have dropped steps: their documents go too.
        target.delete_where(kind="step", path=parsed["path"])
        target.upsert(documents)
    return len(missing)


def _catch_up_runs(target: Index) -> int:
    from executions.models import Execution, Status

    done = 0
    failed = Execution.objects.filter(status=Status.FAILED, ended_at__isnull=False)
    for page in _pages("run", failed, "ended_at"):
        steps = _failed_steps([run.id for run in page])
        documents = [run_document(run, _failing_step(run, steps.get(run.id, {})))
                     for run in page]
        missing = target.missing(documents)
        target.upsert(missing)
        done += len(missing)
    return done


def _failed_steps(ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each run's failed steps and their errors, in the order they ended."""
    from executions.models import StepRun

    rows = StepRun.objects.filter(execution_id__in=ids, status="failed").order_by(
        "ended_at"
    )
    failed: dict[str, dict[str, Any]] = {}
    for row in rows:
        failed.setdefault(row.execution_id, {})[row.step] = row.error
    return failed


def _failing_step(run: Any, failed: dict[str, Any]) -> tuple[str, Any] | None:
    """The step that failed the run: the one its error names. Steps that
    failed later (a parallel branch still running) or whose error a route
    handled did not decide the outcome; without a named step, the first
    failed one did."""
    error = run.error if isinstance(run.error, dict) else {}
    step = error.get("step")
    if step:
        return step, failed.get(step)
    return next(iter(failed.items()), None)


def _pages(kind: str, rows: QuerySet, field: str) -> Iterator[list[Any]]:
    """Rows from a little before the kind's mark, in (time, id) pages; the
    mark moves on after each page is indexed."""
    mark = IndexMark.objects.filter(kind=kind).first()
    since = (mark.indexed_until - LOOK_BACK) if mark else EPOCH
    ordered = rows.filter(**{f"{field}__gte": since}).order_by(field, "pk")
    last: Any = None
    while True:
        page_rows = ordered
        if last is not None:
            at = getattr(last, field)
            page_rows = ordered.filter(
                Q(**{f"{field}__gt": at}) | Q(**{field: at, "pk__gt": last.pk})
            )
        page = list(page_rows[:PAGE])
        if not page:
            return
        yield page
        last = page[-1]
        IndexMark.objects.update_or_create(
            kind=kind, defaults={"indexed_until": getattr(last, field)}
        )


# -- documents ------------------------------------------------------------------


def playbook_documents(parsed: dict[str, Any], version: int) -> list[Document]:
    path = parsed["path"]
    name = parsed.get("name") or path
    description = (parsed.get("description") or "").strip()
    steps = parsed.get("steps") or []
    step_lines = [f"{s['name']}: {s['desc']}" for s in steps if s.get("desc")]
    tools = sorted({t["kind"] for s in steps for t in s.get("tasks") or []})
    text = ". ".join(
        part
        for part in (
            name.replace("_", " "),
            description,
            "Steps: " + "; ".join(step_lines) if step_lines else "",
            "Tools: " + ", ".join(tools) if tools else "",
        )
        if part
    )
    fields = {
        "path": path,
        "version": version,
        "name": name,
        "description": description,
    }
    documents = [Document(f"playbook:{path}", "playbook", text, fields)]
    for step in steps:
        kinds = ", ".join(sorted({t["kind"] for t in step.get("tasks") or []}))
        step_text = (
            f"{step.get('desc') or step['name'].replace('_', ' ')} "
            f"({kinds}), in playbook {name.replace('_', ' ')}"
        )
        documents.append(
            Document(
                f"step:{path}:{step['name']}",
                "step",
                step_text,
                {**fields, "step": step["name"], "tool": kinds},
            )
        )
    return documents


def run_document(run: Any, failed_step: tuple[str, Any] | None) -> Document:
    error = run.error if isinstance(run.error, dict) else {}
    step, step_error = failed_step or (error.get("step") or "", None)
    if isinstance(step_error, dict):
        error = {**step_error, **{k: v for k, v in error.items() if v}}
    message = str(error.get("message") or "failed")
    kind = str(error.get("kind") or "error")
    text = (
        f"run of {run.path} failed at step {step}: {message} ({kind} error)"
        if step
        else f"run of {run.path} failed: {message} ({kind} error)"
    )
    return Document(
        f"run:{run.id}",
        "run",
        text,
        {
            "execution_id": run.id,
            "path": run.path,
            "version": run.version,
            "step": step,
            "error_kind": kind,
            "message": message[:500],
            "ended_at": run.ended_at.isoformat() if run.ended_at else None,
        },
    )


def indexer_enabled() -> bool:
    """Whether ``runscheduler`` indexes as a duty: by default when the index
    is a Qdrant server that every process can share."""
    return enabled() and settings.NOETL_SEARCH_INDEXER
