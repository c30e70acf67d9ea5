"""Hooks for the conformance suite: a skipped case is a failure, and the end of
the session lists the failing case ids."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _is_conformance(nodeid: str) -> bool:
    return "test_conformance.py::" in nodeid


def _case_id(nodeid: str) -> str:
    """``distributed-hello_world`` for ``test_case[distributed-hello_world]``."""
    name = nodeid.rsplit("::", 1)[-1]
    if "[" in name and name.endswith("]"):
        return name[name.index("[") + 1 : -1]
    return name


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item):
    report = yield
    if (
        report.skipped
        and _is_conformance(item.nodeid)
        and not hasattr(report, "wasxfail")
    ):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else ""
        report.outcome = "failed"
        report.longrepr = (
            f"conformance case {_case_id(item.nodeid)!r} was SKIPPED ({reason}); "
            "every case must run"
        )
    return report


def pytest_terminal_summary(terminalreporter):
    outcome: dict[str, str] = {}
    for key in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"):
        for report in terminalreporter.stats.get(key, []):
            nodeid = getattr(report, "nodeid", "")
            if not _is_conformance(nodeid):
                continue
            case = _case_id(nodeid)
            if key != "passed":
                outcome[case] = "failed"
            elif report.when == "call":
                outcome.setdefault(case, "passed")
    if not outcome:
        return
    failing = [case for case, result in outcome.items() if result != "passed"]
    terminalreporter.section("conformance")
    if failing:
        terminalreporter.write_line(
            f"{len(failing)} of {len(outcome)} conformance case(s) failing:", red=True
        )
        for case in failing:
            terminalreporter.write_line(f"  - {case}")
    else:
        terminalreporter.write_line(
            f"all {len(outcome)} conformance cases passed", green=True
        )
