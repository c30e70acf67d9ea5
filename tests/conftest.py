"""Session-wide hooks. This file is loaded by the xdist controller too, so the
conformance summary at the end of a run lives here."""

from __future__ import annotations


def _is_conformance(nodeid: str) -> bool:
    return "test_conformance.py::" in nodeid


def _case_id(nodeid: str) -> str:
    """``distributed-hello_world`` for ``test_case[distributed-hello_world]``."""
    name = nodeid.rsplit("::", 1)[-1]
    if "[" in name and name.endswith("]"):
        return name[name.index("[") + 1 : -1]
    return name


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
