"""The one registry of tool kinds: what runs is what is listed."""

from __future__ import annotations

import importlib

from workers.tools import KINDS, registry, run_tool, supported_kinds
from workers.tools.base import ToolContext


def test_every_listed_kind_and_alias_runs_its_module() -> None:
    for name, spec in registry.by_kind().items():
        assert KINDS[name] == spec.module
        assert callable(importlib.import_module(spec.module).run)


def test_a_kind_outside_the_registry_fails_naming_the_kind() -> None:
    outcome = run_tool("container", {"image": "busybox"}, ToolContext())
    assert outcome["error"]["kind"] == "unsupported_tool"
    assert "tool kind 'container' is not supported" in outcome["error"]["message"]


def test_a_missing_optional_package_names_the_extra_to_install() -> None:
    spec = registry.ToolSpec(
        "x", "m", "s", {}, extra="connectors", requires=("no_such_package_for_noetl",)
    )
    assert spec.available() is False
    assert spec.describe()["available"] is False


def test_registration_accepts_exactly_the_listed_kinds_and_aliases() -> None:
    listed = {spec.kind for spec in registry.listed()}
    aliases = {alias for spec in registry.listed() for alias in spec.aliases}
    assert {"playbook", "workbook", "storage"} <= listed
    assert aliases == {"s3", "gcs", "artifact"}
    assert supported_kinds() == listed | aliases
