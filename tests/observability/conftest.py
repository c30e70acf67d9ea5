"""Real runs for the observability tests: an embedded runtime (in-process
workers, one writer thread) over the test PostgreSQL database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from catalog import services as catalog
from executions.embedded import EmbeddedRuntime

Run = Callable[..., str]


@pytest.fixture
def runtime(transactional_db: None) -> Iterator[EmbeddedRuntime]:
    with EmbeddedRuntime(workers=2, duty_interval_s=0.5) as runtime:
        yield runtime


@pytest.fixture
def run(runtime: EmbeddedRuntime) -> Run:
    """Register a playbook's YAML, run it to its end; the run's id."""

    def run(text: str, payload: dict[str, Any] | None = None) -> str:
        version, _ = catalog.register(text)
        execution_id = runtime.start_run(version.path, payload=payload)
        status = runtime.wait(execution_id, timeout=60)
        assert status != "running", f"run {execution_id} did not end in 60 s"
        return execution_id

    return run
