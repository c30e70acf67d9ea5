"""The playbook parser: loading, validation and normalisation (catalog.dsl)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from catalog.dsl import Issue, PlaybookError, load_yaml, parse_playbook
from tests.shared import CONFORMANCE_PLAYBOOKS

FIXTURES = CONFORMANCE_PLAYBOOKS
BROKEN = FIXTURES / "broken_playbooks/should_error_tool_is_required.yaml"

HEADER = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: demo, path: tests/demo}
"""
NOOP = "tool: {kind: noop}"


def doc(workflow: str, extra: str = "") -> str:
    """A playbook around the given `workflow:` items (written unindented)."""
    body = textwrap.indent(textwrap.dedent(workflow).strip("\n"), "  ")
    return HEADER + textwrap.dedent(extra) + "workflow:\n" + body + "\n"


def parse(workflow: str, extra: str = "") -> dict[str, Any]:
    return parse_playbook(doc(workflow, extra))


def reject(text: str) -> PlaybookError:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text)
    return caught.value


def issue_at(error: PlaybookError, path: str) -> Issue:
    found = [issue for issue in error.issues if issue.path == path]
    assert found, f"no issue at {path}; got:\n{error}"
    return found[0]


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def steps_with(key: str, values: list[str]) -> str:
    """Router steps s0, s1, ... each carrying `key: <value>`."""
    return "\n".join(
        f"- {{step: s{index}, {NOOP}, {key}: {value}}}"
        for index, value in enumerate(values)
    )


def warnings_at(playbook: dict[str, Any], path: str) -> list[str]:
    return [w["message"] for w in playbook["warnings"] if w["path"] == path]


def only_task(playbook: dict[str, Any], step: int = 0) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = playbook["steps"][step]["tasks"]
    assert len(tasks) == 1
    return tasks[0]


# --- the conformance fixtures -------------------------------------------------

FIXTURE_FILES = sorted(p for p in FIXTURES.rglob("*.yaml") if p != BROKEN)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_it_parses_every_fixture(path: Path) -> None:
    playbook = parse_playbook(path.read_text())

    assert playbook["steps"]
    assert playbook["entry_step"] == playbook["steps"][0]["name"]
    json.dumps(playbook)  # the engine stores it as JSON


def test_it_rejects_the_step_without_tool_fixture() -> None:
    text = BROKEN.read_text()
    error = reject(text)

    issue = issue_at(error, "workflow[2]")
    assert issue.line == line_of(text, "- step: end\n    desc: End")
    assert "'tool' is required" in issue.message
    assert "workflow[2] (step 'end') (line 39): 'tool' is required" in str(error)
    # The misplaced SQL is pointed out too, though it is not what rejects it.
    assert [w.path for w in error.warnings] == ["workflow[1].command"]


def test_it_normalises_the_workbook_fixture() -> None:
    text = (FIXTURES / "control_flow_workbook/control_flow_workbook.yaml").read_text()
    playbook = parse_playbook(text)

    call = only_task(playbook, 1)
    assert call["label"] == "eval_flag_task"
    assert call["config"]["task"] == "compute_flag"
    assert "name" not in call["config"]
    assert playbook["workbook"]["compute_flag"]["kind"] == "python"
    assert playbook["steps"][2]["next"]["mode"] == "inclusive"


# --- load_yaml ----------------------------------------------------------------


def test_it_maps_paths_to_lines() -> None:
    text = "a:\n  b:\n    - x\n    - {c: 1}\n'ctx.k': 2\n"
    data, lines = load_yaml(text)

    assert data == {"a": {"b": ["x", {"c": 1}]}, "ctx.k": 2}
    assert lines["a.b"] == 2
    assert lines["a.b[1].c"] == 4
    assert lines['["ctx.k"]'] == 5


def test_it_keeps_dates_as_text() -> None:
    data, _ = load_yaml("version: 2024-01-01\n")

    assert data == {"version": "2024-01-01"}


def test_it_reports_yaml_syntax_errors_with_their_line() -> None:
    error = reject(HEADER + "workflow:\n  - step: a\n    tool: {kind: noop\n")

    assert len(error.issues) == 1
    assert error.issues[0].line is not None and error.issues[0].line >= 5
    assert "invalid YAML" in str(error)


def test_it_rejects_a_document_that_is_not_a_mapping() -> None:
    assert "must be a YAML mapping" in str(reject("- a\n- b\n"))
    assert "must be a YAML mapping" in str(reject(""))


def test_it_rejects_several_documents() -> None:
    assert "invalid YAML" in str(reject("a: 1\n---\nb: 2\n"))


# --- the root document --------------------------------------------------------


def test_it_normalises_the_root() -> None:
    text = """\
apiVersion: noetl.io/v10
kind: Playbook
metadata: {name: demo, version: 1.0, tags: etl, description: Demo}
workload: {n: 1}
keychain: [{name: api, kind: static, map: {a: 1}}]
executor: {spec: {entry_step: b, final_step: a, no_next_is_error: true}}
workflow:
  - {step: a, tool: {kind: noop}}
  - {step: b, tool: {kind: noop}}
"""
    playbook = parse_playbook(text)

    assert playbook["api_version"] == "noetl.io/v10"
    assert playbook["path"] == "demo"  # no metadata.path: the name is the path
    assert playbook["version"] == "1.0"
    assert playbook["description"] == "Demo"
    assert playbook["metadata"]["tags"] == ["etl"]
    assert playbook["workload"] == {"n": 1}
    assert playbook["keychain"][0]["name"] == "api"
    assert playbook["entry_step"] == "b"
    assert playbook["final_step"] == "a"
    assert playbook["no_next_is_error"] is True
    assert playbook["workbook"] == {}


def test_it_collects_every_root_problem() -> None:
    text = """\
apiVersion: noetl.io/v3
kind: Workflow
metadata: {path: x}
vars: {a: 1}
executor: {spec: {entry_step: nowhere, no_next_is_error: "yes"}}
workflow:
  - {step: a, tool: {kind: noop}}
"""
    error = reject(text)

    assert {issue.path for issue in error.issues} == {
        "apiVersion",
        "kind",
        "metadata.name",
        "vars",
        "executor.spec.entry_step",
        "executor.spec.no_next_is_error",
    }
    assert issue_at(error, "vars").line == 4
    assert issue_at(error, "metadata.name").line == 3  # the nearest written line


def test_it_rejects_an_empty_workflow() -> None:
    error = reject(HEADER + "workflow: []\n")

    assert "non-empty list" in issue_at(error, "workflow").message


def test_it_warns_about_unknown_root_keys() -> None:
    playbook = parse(f"- {{step: a, {NOOP}}}", extra="tracing: {on: true}\n")

    assert warnings_at(playbook, "tracing") == ["unknown root key 'tracing' is ignored"]


# --- steps --------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "when",
        "case",
        "type",
        "args",
        "set_ctx",
        "set_iter",
        "result",
        "outcome",
        "vars",
        "save",
        "sink",
    ],
)
def test_it_rejects_legacy_step_keys(key: str) -> None:
    text = doc(f"- step: a\n  {NOOP}\n  {key}: x\n")
    error = reject(text)

    issue = issue_at(error, f"workflow[0].{key}")
    assert issue.line == line_of(text, f"{key}: x")
    assert f"a step cannot have '{key}'" in issue.message
    assert f"workflow[0] (step 'a').{key} (line {issue.line})" in str(error)


def test_it_rejects_next_mode_in_step_spec() -> None:
    error = reject(doc(f"- step: a\n  {NOOP}\n  spec: {{next_mode: exclusive}}\n"))

    assert "next_mode" in issue_at(error, "workflow[0].spec.next_mode").message


def test_it_rejects_duplicate_step_names() -> None:
    error = reject(doc(f"- {{step: a, {NOOP}}}\n- {{step: a, {NOOP}}}\n"))

    issue = issue_at(error, "workflow[1].step")
    assert "already used by workflow[0]" in issue.message


def test_it_requires_a_step_name() -> None:
    error = reject(doc(f"- {{{NOOP}}}\n"))

    assert "'step'" in issue_at(error, "workflow[0].step").message


def test_it_normalises_a_plain_step() -> None:
    text = doc(
        """
        - step: a
          desc: First
          input: {x: 1}
          set: {ctx.y: "{{ a.z }}"}
          spec: {timeout: 5m}
          tool: {kind: python, code: "result = {}"}
        """
    )
    step = parse_playbook(text)["steps"][0]

    assert step["name"] == "a"
    assert step["desc"] == "First"
    assert step["line"] == line_of(text, "- step: a")
    assert step["single"] is True
    assert step["input"] == {"x": 1}
    assert step["set"] == {"ctx.y": "{{ a.z }}"}
    assert step["timeout"] == 300.0
    assert step["loop"] is None
    assert step["admit"] is None
    assert step["next"] == {"mode": "exclusive", "on_no_match": "complete", "arcs": []}


def test_it_warns_about_unknown_step_keys() -> None:
    playbook = parse(f"- step: a\n  {NOOP}\n  command: SELECT 1\n")

    (message,) = warnings_at(playbook, "workflow[0].command")
    assert "unknown step key 'command'" in message
    assert message.startswith("step 'a': ")


# --- tool shapes --------------------------------------------------------------


def test_it_labels_a_single_tool_after_the_step_or_its_name() -> None:
    playbook = parse(
        """
        - {step: a, tool: {kind: noop}}
        - {step: b, tool: {kind: noop, name: ping}}
        """
    )

    assert only_task(playbook, 0)["label"] == "a_task"
    assert only_task(playbook, 1)["label"] == "ping"
    assert playbook["steps"][1]["single"] is True


def test_it_labels_pipeline_tasks() -> None:
    playbook = parse(
        """
        - step: a
          tool:
            - {name: fetch, kind: http, url: "http://x"}
            - {kind: python, code: "result = 1"}
            - store: {kind: postgres, command: "SELECT 1"}
        """
    )
    tasks = playbook["steps"][0]["tasks"]

    assert [t["label"] for t in tasks] == ["fetch", "task_1", "store"]
    assert tasks[2]["config"] == {"command": "SELECT 1"}
    assert playbook["steps"][0]["single"] is False


def test_it_rejects_bad_tool_shapes() -> None:
    text = doc(
        """
        - {step: a, tool: []}
        - {step: b, tool: [{name: x, url: y}]}
        - {step: c, tool: [{kind: noop, name: x}, {kind: noop, name: x}]}
        - {step: d, tool: http}
        - {step: e, tool: {fetch: {kind: http}}}
        - {step: f, tool: [{fetch: {kind: http, name: other}}]}
        """
    )
    error = reject(text)

    assert "empty" in issue_at(error, "workflow[0].tool").message
    assert "needs 'kind'" in issue_at(error, "workflow[1].tool[0]").message
    assert "used twice" in issue_at(error, "workflow[2].tool[1]").message
    assert "mapping or a list" in issue_at(error, "workflow[3].tool").message
    assert "list item" in issue_at(error, "workflow[4].tool").message
    assert "contradicts" in issue_at(error, "workflow[5].tool[0].fetch.name").message


def test_it_flattens_spec_into_the_config() -> None:
    task = only_task(
        parse(
            """
            - step: a
              tool:
                kind: python
                name: calc
                code: "result = 2"
                retries_note: kept
                set: {ctx.v: "{{ output }}"}
                spec:
                  code: "result = 1"
                  input: {n: 1}
                  policy: {rules: []}
                  result: {store: true}
                  mode: fast
                  retry: {max_attempts: 2}
                  timeout: 10
            """
        )
    )

    assert task["config"] == {
        "code": "result = 2",  # the top-level key wins
        "input": {"n": 1},
        "retries_note": "kept",
    }
    assert task["set"] == {"ctx.v": "{{ output }}"}
    assert task["timeout"] == 10.0


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("30", 30.0), ("'30s'", 30.0), ("'5m'", 300.0), ("'1h'", 3600.0), ("0.5", 0.5)],
)
def test_it_reads_task_timeouts(written: str, seconds: float) -> None:
    task = only_task(parse(f"- {{step: a, tool: {{kind: noop, timeout: {written}}}}}"))

    assert task["timeout"] == seconds
    assert "timeout" not in task["config"]


def test_it_prefers_timeout_over_timeout_seconds_and_spec() -> None:
    playbook = parse(
        """
        - {step: a, tool: {kind: python, timeout_seconds: 7, spec: {timeout: 9}}}
        - {step: b, tool: {kind: python, timeout: 5, timeout_seconds: 7}}
        """
    )

    assert only_task(playbook, 0)["timeout"] == 7.0
    assert only_task(playbook, 1)["timeout"] == 5.0


def test_it_keeps_an_http_timeout_map_in_the_config() -> None:
    task = only_task(
        parse("- {step: a, tool: {kind: http, timeout: {connect: 2, read: 10}}}")
    )

    assert task["timeout"] is None
    assert task["config"]["timeout"] == {"connect": 2, "read": 10}


def test_it_rejects_bad_timeouts() -> None:
    error = reject(
        doc(
            """
            - {step: a, tool: {kind: noop, timeout: soon}}
            - {step: b, tool: {kind: noop, timeout: "{{ t }}"}}
            - {step: c, tool: {kind: noop, timeout: 0}}
            - {step: d, tool: {kind: python, timeout: {read: 1}}}
            - {step: e, tool: {kind: noop}, spec: {timeout: -1}}
            """
        )
    )

    assert "not a duration" in issue_at(error, "workflow[0].tool.timeout").message
    assert "template" in issue_at(error, "workflow[1].tool.timeout").message
    assert "greater than 0" in issue_at(error, "workflow[2].tool.timeout").message
    assert "not a duration" in issue_at(error, "workflow[3].tool.timeout").message
    assert "not a duration" in issue_at(error, "workflow[4].spec.timeout").message


# --- policy rules -------------------------------------------------------------


def rules_of(rules_yaml: str) -> list[dict[str, Any]]:
    text = doc(
        f"""
        - step: a
          tool:
            - name: fetch
              kind: http
              spec:
                policy:
                  rules:
{textwrap.indent(textwrap.dedent(rules_yaml).strip(), " " * 18)}
        """
    )
    return list(only_task(parse_playbook(text))["rules"])


def test_it_normalises_every_rule_shape() -> None:
    rules = rules_of(
        """
        - when: "{{ output.status == 'error' }}"
          then: {do: retry, attempts: 4, backoff: exponential, delay: 0.5}
        - when: "{{ output.data.more }}"
          do: jump
          to: fetch
          set_iter: {page: 2}
        - then: {do: break}
        - else: {do: continue, set: {ctx.a: 1}, set_ctx: {b: 2}}
        - else: {then: {do: fail}}
        - else:
          then: {do: continue}
        """
    )

    assert rules[0] == {
        "when": "{{ output.status == 'error' }}",
        "do": "retry",
        "attempts": 4,
        "backoff": "exponential",
        "delay": 0.5,
        "to": None,
        "set": {},
    }
    assert rules[1]["do"] == "jump"
    assert rules[1]["to"] == "fetch"
    assert rules[1]["set"] == {"iter.page": 2}
    assert rules[2]["when"] is None and rules[2]["do"] == "break"
    assert rules[3]["when"] is None
    assert rules[3]["set"] == {"ctx.a": 1, "ctx.b": 2}
    assert [r["do"] for r in rules[4:]] == ["fail", "continue"]
    assert (rules[2]["attempts"], rules[2]["backoff"], rules[2]["delay"]) == (
        3,
        "none",
        1.0,
    )


def test_it_accepts_previous_as_a_jump_target() -> None:
    rules = rules_of("- {when: '{{ x }}', then: {do: jump, to: '@previous'}}")

    assert rules[0]["to"] == "@previous"


def test_it_names_the_step_and_path_of_a_bad_action() -> None:
    text = doc(
        """
        - step: a
          tool: {kind: noop}
        - step: fetch
          tool:
            - {name: one, kind: noop}
            - name: two
              kind: http
              spec:
                policy:
                  rules:
                    - when: "{{ true }}"
                      then: {do: redo}
        """
    )
    error = reject(text)

    expected = (
        "workflow[1] (step 'fetch').tool[1].spec.policy.rules[0].then.do "
        f"(line {line_of(text, 'do: redo')}): "
        "'redo' must be one of continue, retry, jump, break, fail"
    )
    assert str(error) == expected


def test_it_rejects_bad_rules() -> None:
    text = doc(
        """
        - step: a
          tool:
            - name: fetch
              kind: http
              spec:
                policy:
                  rules:
                    - {expr: "{{ x }}", then: {do: continue}}
                    - {when: "{{ x }}", then: {do: jump}}
                    - {when: "{{ x }}", then: {do: jump, to: nowhere}}
                    - {when: "{{ x }}", then: {do: retry, attempts: many}}
                    - {when: "{{ x }}", then: {do: retry, backoff: cubic}}
                    - {when: "{{ x }}", else: {do: fail}}
                    - {when: "{{ x }}"}
                    - {when: "{{ x }}", then: {attempts: 2}}
                    - {when: 3, then: {do: fail}}
        """
    )
    error = reject(text)
    rules = "workflow[0].tool[0].spec.policy.rules"

    assert "'expr'" in issue_at(error, f"{rules}[0].expr").message
    assert "needs 'to'" in issue_at(error, f"{rules}[1].then").message
    assert "not a task label" in issue_at(error, f"{rules}[2].then.to").message
    assert "integer" in issue_at(error, f"{rules}[3].then.attempts").message
    assert "'cubic'" in issue_at(error, f"{rules}[4].then.backoff").message
    assert "not both" in issue_at(error, f"{rules}[5]").message
    assert "needs an action" in issue_at(error, f"{rules}[6]").message
    assert "'do' is required" in issue_at(error, f"{rules}[7].then.do").message
    assert "boolean" in issue_at(error, f"{rules}[8].when").message


def test_it_warns_about_a_jump_out_of_the_pipeline() -> None:
    playbook = parse(
        """
        - step: a
          tool: [{name: first, kind: noop}]
        - step: b
          tool:
            - name: second
              kind: noop
              spec: {policy: {rules: [{else: {do: jump, to: first}}]}}
        """
    )

    path = "workflow[1].tool[0].spec.policy.rules[0].else.to"
    assert "will fail at run time" in warnings_at(playbook, path)[0]


def test_it_warns_about_a_condition_without_template() -> None:
    rules = "- {when: \"output.status == 'error'\", then: {do: fail}}"
    text = doc(
        f"""
        - step: a
          tool:
            kind: noop
            spec: {{policy: {{rules: [{rules[2:]}]}}}}
        """
    )
    playbook = parse_playbook(text)

    path = "workflow[0].tool.spec.policy.rules[0].when"
    assert "always true" in warnings_at(playbook, path)[0]


def test_it_maps_legacy_retry_to_a_rule() -> None:
    playbook = parse(
        """
        - step: a
          tool:
            - name: plain
              kind: playbook
              retry: {max_attempts: 5, backoff: exponential, initial_delay: 2}
            - name: with_policy
              kind: http
              retry: 2
              spec: {policy: {rules: [{else: {do: continue}}]}}
            - name: multiplier
              kind: http
              retry: {backoff: 2.0}
        """
    )
    plain, with_policy, multiplier = playbook["steps"][0]["tasks"]

    assert plain["rules"] == [
        {
            "when": "{{ output.status == 'error' }}",
            "do": "retry",
            "attempts": 5,
            "backoff": "exponential",
            "delay": 2.0,
            "to": None,
            "set": {},
        }
    ]
    assert plain["has_policy"] is True
    assert "retry" not in plain["config"]
    assert [r["do"] for r in with_policy["rules"]] == ["retry", "continue"]
    assert with_policy["rules"][0]["attempts"] == 2
    assert multiplier["rules"][0]["backoff"] == "none"
    assert multiplier["rules"][0]["attempts"] == 3


def test_it_has_no_policy_without_rules() -> None:
    task = only_task(parse(f"- {{step: a, {NOOP}}}"))

    assert task["rules"] == []
    assert task["has_policy"] is False


# --- loops --------------------------------------------------------------------


def test_it_normalises_a_loop() -> None:
    playbook = parse(
        """
        - step: a
          tool: {kind: noop}
          loop:
            in: "{{ cities }}"
            iterator: city
            spec: {mode: parallel, max_in_flight: "4", chunk: 10}
        - step: b
          tool: {kind: noop}
          loop: {in: [1, 2], iterator: n, spec: {max_in_flight: "{{ width }}"}}
        """
    )

    assert playbook["steps"][0]["loop"] == {
        "in": "{{ cities }}",
        "iterator": "city",
        "mode": "parallel",
        "max_in_flight": 4,
        "chunk": 10,
    }
    assert playbook["steps"][1]["loop"]["in"] == [1, 2]
    assert playbook["steps"][1]["loop"]["mode"] == "sequential"
    assert playbook["steps"][1]["loop"]["max_in_flight"] == "{{ width }}"


def test_it_rejects_bad_loops() -> None:
    loops = [
        "{iterator: x}",
        "{in: [1]}",
        "{cursor: {kind: postgres}, iterator: x}",
        "{in: [1], iterator: x, spec: {mode: cursor}}",
        "{in: [1], iterator: x, spec: {mode: fast}}",
        "{in: [1], iterator: x, spec: {max_in_flight: 0}}",
        "{in: [1], iterator: x, spec: {chunk: big}}",
    ]
    error = reject(doc(steps_with("loop", loops)))

    assert "'in'" in issue_at(error, "workflow[0].loop").message
    assert "'iterator'" in issue_at(error, "workflow[1].loop.iterator").message
    assert "not supported" in issue_at(error, "workflow[2].loop.cursor").message
    assert "not supported" in issue_at(error, "workflow[3].loop.spec.mode").message
    assert "'fast'" in issue_at(error, "workflow[4].loop.spec.mode").message
    path = "workflow[5].loop.spec.max_in_flight"
    assert ">= 1" in issue_at(error, path).message
    assert ">= 1" in issue_at(error, "workflow[6].loop.spec.chunk").message


# --- next ---------------------------------------------------------------------


def test_it_normalises_arcs() -> None:
    playbook = parse(
        """
        - step: a
          tool: {kind: noop}
          next:
            spec: {mode: inclusive, on_no_match: quiet}
            arcs:
              - {step: b, when: "{{ ok }}", set: {ctx.x: 1}, args: {page: 2}}
              - {step: c, cond: "{{ not ok }}"}
        - {step: b, tool: {kind: noop}, next: [{step: c}, d]}
        - {step: c, tool: {kind: noop}, next: d}
        - {step: d, tool: {kind: noop}}
        """
    )
    a, b, c, _ = playbook["steps"]

    assert a["next"] == {
        "mode": "inclusive",
        "on_no_match": "quiet",
        "arcs": [
            {"step": "b", "when": "{{ ok }}", "set": {"ctx.x": 1}, "args": {"page": 2}},
            {"step": "c", "when": "{{ not ok }}", "set": {}, "args": {}},
        ],
    }
    assert [arc["step"] for arc in b["next"]["arcs"]] == ["c", "d"]
    assert c["next"]["arcs"] == [{"step": "d", "when": None, "set": {}, "args": {}}]


def test_it_drops_arcs_to_missing_steps_with_a_warning() -> None:
    text = doc("- {step: a, tool: {kind: noop}, next: {arcs: [{step: gone}]}}")
    playbook = parse_playbook(text)

    assert playbook["steps"][0]["next"]["arcs"] == []
    (warning,) = playbook["warnings"]
    assert warning["path"] == "workflow[0].next.arcs[0].step"
    assert warning["line"] == line_of(text, "- {step: a")
    assert "'gone' does not exist" in warning["message"]


def test_it_rejects_bad_next_blocks() -> None:
    routers = [
        "{spec: {mode: all}, arcs: [{step: s1}]}",
        "{step: s0}",
        '{arcs: [{when: "{{ x }}"}]}',
        '{arcs: [{step: s0, when: "{{ x }}", cond: "{{ y }}"}]}',
        "3",
        "{spec: {on_no_match: fail}}",
    ]
    error = reject(doc(steps_with("next", routers)))

    assert "'all'" in issue_at(error, "workflow[0].next.spec.mode").message
    assert "single arc" in issue_at(error, "workflow[1].next").message
    assert "needs 'step'" in issue_at(error, "workflow[2].next.arcs[0]").message
    assert "'cond'" in issue_at(error, "workflow[3].next.arcs[0].cond").message
    assert "'arcs'" in issue_at(error, "workflow[4].next").message
    assert "'fail'" in issue_at(error, "workflow[5].next.spec.on_no_match").message


# --- admission ----------------------------------------------------------------


def test_it_normalises_admission_rules() -> None:
    playbook = parse(
        """
        - step: a
          tool: {kind: noop}
          spec:
            policy:
              admit:
                rules:
                  - {when: "{{ enabled }}", then: {allow: true}}
                  - {when: "{{ maybe }}", allow: true}
                  - else: {then: {allow: false}}
        """
    )

    assert playbook["steps"][0]["admit"] == [
        {"when": "{{ enabled }}", "allow": True},
        {"when": "{{ maybe }}", "allow": True},
        {"when": None, "allow": False},
    ]


def test_it_rejects_bad_admission_and_step_policy_rules() -> None:
    error = reject(
        doc(
            """
            - step: a
              tool: {kind: noop}
              spec: {policy: {admit: {rules: [{when: "{{ x }}", then: {}}]}}}
            - step: b
              tool: {kind: noop}
              spec: {policy: {rules: [{else: {do: continue}}]}}
            """
        )
    )

    path = "workflow[0].spec.policy.admit.rules[0].then.allow"
    assert "'allow' is required" in issue_at(error, path).message
    assert (
        "belong to a task" in issue_at(error, "workflow[1].spec.policy.rules").message
    )


# --- workbook -----------------------------------------------------------------


WORKBOOK = """\
workbook:
  - name: flag
    desc: Computes a flag
    tool: {kind: python, code: "result = {}", timeout: 3s}
"""


def test_it_resolves_workbook_calls() -> None:
    playbook = parse(
        """
        - {step: a, tool: {kind: workbook, name: flag, input: {t: 1}}}
        - {step: b, tool: {kind: workbook, task: flag, name: call}}
        - step: c
          tool: [{name: call, kind: workbook, task: flag}]
        """,
        extra=WORKBOOK,
    )

    assert playbook["workbook"]["flag"]["label"] == "flag"
    assert playbook["workbook"]["flag"]["timeout"] == 3.0
    first, second, third = (only_task(playbook, i) for i in range(3))
    assert (first["label"], first["config"]) == (
        "a_task",
        {"input": {"t": 1}, "task": "flag"},
    )
    assert (second["label"], second["config"]) == ("call", {"task": "flag"})
    assert (third["label"], third["config"]) == ("call", {"task": "flag"})
    assert playbook["warnings"] == []


def test_it_warns_about_missing_workbook_tasks() -> None:
    playbook = parse("- {step: a, tool: {kind: workbook, name: nope}}")

    assert "no task 'nope'" in warnings_at(playbook, "workflow[0].tool.name")[0]


def test_it_rejects_bad_workbook_entries() -> None:
    error = reject(
        doc(
            """
            - step: a
              tool: [{name: call, kind: workbook}]
            """,
            extra=WORKBOOK
            + "  - name: flag\n    tool: {kind: noop}\n"
            + "  - name: listed\n    tool: [{kind: noop}]\n",
        )
    )

    assert "needs 'task'" in issue_at(error, "workflow[0].tool[0].task").message
    assert "defined twice" in issue_at(error, "workbook[1].name").message
    assert "mapping with 'kind'" in issue_at(error, "workbook[2].tool").message


# --- issues -------------------------------------------------------------------


def test_issue_equality_ignores_the_display_context() -> None:
    issue = Issue("workflow[1].tool", 7, "bad", "step 'x'")

    assert issue == Issue("workflow[1].tool", 7, "bad")
    assert str(issue) == "workflow[1] (step 'x').tool (line 7): bad"
    assert str(Issue("", None, "empty")) == "<document>: empty"


def test_it_warns_about_a_tool_kind_it_does_not_know_when_told_the_known_ones():
    text = HEADER + "workflow:\n  - step: a\n    tool: {kind: teleport}\n"
    assert parse_playbook(text)["warnings"] == []
    warnings = parse_playbook(text, known_kinds=frozenset({"noop"}))["warnings"]
    assert [w["path"] for w in warnings] == ["workflow[0].tool.kind"]
    assert "tool kind 'teleport' is not supported" in warnings[0]["message"]


def test_it_names_the_line_where_an_unclosed_mapping_starts() -> None:
    text = HEADER + "workflow:\n  - step: a\n    tool: {kind: noop\n  - step: b\n"
    error = reject(text)

    assert error.issues[0].line == 7
    assert "flow mapping started on line 6" in str(error)


# --- syntax of templates and inline python -------------------------------------


def test_it_warns_about_template_syntax_naming_the_step_and_the_line() -> None:
    text = HEADER + (
        "workflow:\n"                                   # line 4
        "  - step: fetch\n"
        "    tool:\n"
        "      kind: postgres\n"
        "      command: |\n"                            # line 8
        "        select 1;\n"
        "        select {% if true %} 2;\n"             # line 10
        "    next:\n"
        "      arcs:\n"
        "        - step: done\n"
        "          when: \"{{ output.status == 'ok' }\"\n"  # line 14
        "  - step: done\n"
        "    tool: {kind: noop}\n"
    )

    warnings = parse_playbook(text)["warnings"]

    assert [(w["path"], w["line"]) for w in warnings] == [
        ("workflow[0].tool.command", 10),
        ("workflow[0].next.arcs[0].when", 14),
    ]
    assert all(w["message"].startswith("step 'fetch': template syntax error: ")
               for w in warnings)
    assert "'endif'" in warnings[0]["message"]


def test_it_warns_about_python_syntax_in_inline_code() -> None:
    text = HEADER + (
        "workflow:\n"
        "  - step: convert\n"
        "    tool:\n"
        "      - name: calc\n"
        "        kind: python\n"
        "        input: {n: 1}\n"
        "        code: |\n"                             # line 10
        "          x = {{ workload.n }}\n"
        "          if x = 1:\n"                         # line 12
        "              result = x\n"
    )

    [warning] = parse_playbook(text)["warnings"]

    assert warning["path"] == "workflow[0].tool[0].code" and warning["line"] == 12
    assert warning["message"].startswith("step 'convert': python syntax error: ")


def test_valid_templates_and_templated_python_raise_no_warning() -> None:
    text = HEADER + (
        "workload: {n: 2, greeting: \"{{ 'hi' | upper }}\"}\n"
        "workflow:\n"
        "  - step: a\n"
        "    tool:\n"
        "      kind: python\n"
        "      code: \"result = {'n': {{ workload.n }}, 'm': {'k': 1}}\"\n"
        "  - step: b\n"
        "    tool:\n"
        "      kind: python\n"
        "      code: |\n"
        "        {% if workload.n > 1 %}\n"
        "        result = 1\n"
        "        {% endif %}\n"
    )

    assert parse_playbook(text)["warnings"] == []
