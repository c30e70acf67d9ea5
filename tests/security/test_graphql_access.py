"""Every GraphQL operation, table-driven like the REST endpoints: anonymous
callers get 401, a signed-in user without the permission gets a
PERMISSION_DENIED error (or an empty list), the right user gets data. The
table is checked against the schema, so a new operation without a row
fails ``test_every_operation_has_a_case``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from noetl_site.graphql import schema
from tests.api.conftest import playbook_yaml
from tests.security.conftest import PASSWORD, PATH, Persona, World


@dataclass
class Op:
    query: str
    # "forbidden", "empty" (the list named by `listed` comes back empty) or
    # "own" (no permission beyond signing in is needed).
    outsider: str = "forbidden"
    listed: str = ""


SCHEDULE = '{name: "sec-gql", path: "%s", interval_s: 60}' % PATH
OPS: dict[str, Op] = {
    "playbooks": Op("{ playbooks { results { path } } }", "empty", "playbooks.results"),
    "playbook": Op('{ playbook(path: "%s") { path } }' % PATH),
    "executions": Op(
        "{ executions { results { id } } }", "empty", "executions.results"
    ),
    "execution": Op('{ execution(id: "{run}") { id } }'),
    "events": Op('{ events(execution_id: "{run}") { results { seq } } }'),
    "step_results": Op('{ step_results(execution_id: "{run}") { step } }'),
    "credentials": Op("{ credentials { name allowed_paths } }"),
    "keychain_entries": Op("{ keychain_entries { name } }"),
    "workers": Op("{ workers { name } }", "own"),
    "pools": Op("{ pools { name } }", "own"),
    "schedules": Op("{ schedules { name } }", "empty", "schedules"),
    "schedule": Op('{ schedule(id: "{schedule}") { name } }'),
    "register_playbook": Op(
        "mutation ($c: String!) { register_playbook(content: $c) { created } }"
    ),
    "execute_playbook": Op('mutation { execute_playbook(path: "%s") { id } }' % PATH),
    "cancel_execution": Op('mutation { cancel_execution(id: "{run}") { cancelled } }'),
    "rerun_execution": Op('mutation { rerun_execution(id: "{run}") { id } }'),
    "create_schedule": Op("mutation { create_schedule(data: %s) { id } }" % SCHEDULE),
    "update_schedule": Op(
        'mutation { update_schedule(id: "{schedule}", data: {interval_s: 90}) { id } }'
    ),
    "delete_schedule": Op('mutation { delete_schedule(id: "{schedule}") }'),
    "pause_schedule": Op('mutation { pause_schedule(id: "{schedule}") { id } }'),
    "resume_schedule": Op('mutation { resume_schedule(id: "{schedule}") { id } }'),
    "run_schedule_now": Op('mutation { run_schedule_now(id: "{schedule}") { id } }'),
}


def test_every_operation_has_a_case() -> None:
    graphql = schema._schema
    names = set(graphql.query_type.fields) | set(graphql.mutation_type.fields)
    assert names == set(OPS), f"operations without a case: {names ^ set(OPS)}"


def _post(who: Persona, op: Op, world: World) -> Any:
    query = op.query.replace("{run}", world.run_id).replace(
        "{schedule}", str(world.schedule_id)
    )
    variables = {"c": playbook_yaml("sec/allowed/gql")}
    body = json.dumps({"query": query, "variables": variables})
    return who.client.post("/graphql", body, content_type="application/json")


def _dig(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_operation_refuses_the_anonymous_and_the_unpermitted_and_serves_the_right(
    name: str, anonymous: Persona, outsider: Persona, right: Persona, world: World
) -> None:
    op = OPS[name]
    assert _post(anonymous, op, world).status_code == 401

    other = _post(outsider, op, world)
    assert other.status_code == 200
    body = other.json()
    if op.outsider == "forbidden":
        codes = [error["extensions"]["code"] for error in body["errors"]]
        assert codes == ["PERMISSION_DENIED"], body
    else:
        assert "errors" not in body, body
        if op.outsider == "empty":
            assert _dig(body["data"], op.listed) == []

    granted = _post(right, op, world)
    data = granted.json()
    assert "errors" not in data, data
    if op.outsider == "empty":
        assert _dig(data["data"], op.listed)
    assert PASSWORD not in granted.content.decode()
