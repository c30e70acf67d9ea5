"""Hooks for the conformance suite: a skipped case is a failure. The list of
failing case ids at the end of the session is printed by tests/conftest.py,
which the xdist controller loads (it never collects this directory)."""

from __future__ import annotations

import pytest

from tests.conftest import _case_id, _is_conformance


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
