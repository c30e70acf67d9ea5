"""GraphQL at /graphql: every query and mutation, who may call it, and a
fixed number of SQL statements per list however many rows it returns."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from graphql import GraphQLError
from rest_framework.test import APIClient

from credentials.store import save_credential, save_keychain_entry
from executions import queries
from executions.models import Execution
from noetl_site import access
from noetl_site.api import MAX_PAGE
from noetl_site.graphql import build_schema
from noetl_site.graphql_tools import page_size, require
from tests.api.conftest import playbook_yaml
from workers.models import Pool, WorkerRegistration, WorkerStatus

SECRET = "gql-S3cret-never-shown"


def gql(client: Any, query: str, **variables: Any) -> dict[str, Any]:
    response = client.post(
        "/graphql", {"query": query, "variables": variables}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def ok(client: Any, query: str, **variables: Any) -> dict[str, Any]:
    body = gql(client, query, **variables)
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.fixture
def warm(api: APIClient) -> APIClient:
    """The token client after one call, so its last-used write is behind it
    and statement counts cover only the query itself."""
    ok(api, "{ pools { name } }")
    return api


# -- who may call --------------------------------------------------------------


def test_it_refuses_an_anonymous_caller(anonymous: APIClient) -> None:
    response = anonymous.post("/graphql", {"query": "{ pools { name } }"}, "json")
    assert response.status_code == 401
    assert "authentication required" in response.json()["errors"][0]["message"]
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_person_opening_graphiql_is_sent_to_log_in(anonymous: APIClient) -> None:
    response = anonymous.get("/graphql", HTTP_ACCEPT="text/html")
    assert response.status_code == 302
    assert response["Location"].startswith("/api/auth/login/?next=/graphql")


def test_a_refused_check_is_a_graphql_error_with_a_code() -> None:
    with pytest.raises(GraphQLError) as refused:
        require(False, "view x")
    assert refused.value.extensions == {"code": "PERMISSION_DENIED"}
    assert str(refused.value) == "permission denied: view x"


def test_it_refuses_an_invalid_token(anonymous: APIClient) -> None:
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer noetl_nope_nope")
    response = anonymous.post("/graphql", {"query": "{ pools { name } }"}, "json")
    assert response.status_code == 401


def test_a_session_needs_its_csrf_token_and_a_bearer_token_does_not(
    owner: User, api: APIClient
) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    query = {"query": "{ pools { name } }"}
    refused = browser.post("/graphql", query, content_type="application/json")
    assert refused.status_code == 403

    browser.get("/admin/login/")  # its form sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    allowed = browser.post(
        "/graphql", query, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert allowed.status_code == 200 and allowed.json() == {"data": {"pools": []}}
    assert ok(api, "{ pools { name } }") == {"pools": []}


def test_an_inactive_user_is_refused_by_every_check(owner: User) -> None:
    owner.is_active = False
    assert not access.can_view(owner, "any/path")
    assert not access.can_execute(owner, "any/path")
    assert not access.can_modify(owner, "any/path")
    assert access.viewable(owner, Execution.objects.all()).count() == 0


def test_disabled_auth_opens_it_to_anonymous_callers(
    anonymous: APIClient, settings: Any
) -> None:
    settings.NOETL_AUTH_DISABLED = True
    assert ok(anonymous, "{ pools { name } }") == {"pools": []}
    # A script has no CSRF token, and needs none without a session.
    script = Client(enforce_csrf_checks=True)
    response = script.post(
        "/graphql", {"query": "{ pools { name } }"}, content_type="application/json"
    )
    assert response.status_code == 200


# -- limits --------------------------------------------------------------------


def test_it_refuses_a_query_nested_too_deep(api: APIClient) -> None:
    query = "{ executions { results { playbook { path } step_runs { step } } } }"
    assert "errors" not in gql(api, query)

    # The same schema with a lower limit, since today's types are shallow.
    shallow = build_schema(max_depth=2)
    result = shallow.execute_sync(query)
    assert result.errors is not None
    assert "exceeds maximum operation depth" in result.errors[0].message


def test_page_sizes_are_bounded() -> None:
    assert page_size(None) == 50 and page_size(0) == 1
    assert page_size(10_000) == MAX_PAGE


def test_graphiql_is_served_offline_and_only_with_debug(
    api: APIClient, settings: Any
) -> None:
    settings.DEBUG = False
    assert api.get("/graphql", HTTP_ACCEPT="text/html").status_code == 404

    settings.DEBUG = True
    page = api.get("/graphql", HTTP_ACCEPT="text/html")
    html = page.content.decode()
    assert page.status_code == 200 and "unpkg.com" not in html
    assert "/static/vendor/graphiql/graphiql@3.8.3/graphiql.min.js" in html
    asset = Client().get("/static/vendor/graphiql/graphiql@3.8.3/graphiql.min.js")
    assert asset.status_code == 200


# -- the catalog ---------------------------------------------------------------

REGISTER = """
mutation ($content: String!) {
  register_playbook(content: $content) {
    created
    version { path version name digest content warnings }
  }
}
"""


def test_it_registers_a_playbook_once_per_content(api: APIClient) -> None:
    text = playbook_yaml("tests/gql/hello")
    first = ok(api, REGISTER, content=text)["register_playbook"]
    assert first["created"] is True
    assert first["version"]["path"] == "tests/gql/hello"
    assert first["version"]["version"] == 1 and first["version"]["content"] == text

    again = ok(api, REGISTER, content=text)["register_playbook"]
    assert again["created"] is False and again["version"]["version"] == 1
    changed = ok(api, REGISTER, content=playbook_yaml("tests/gql/hello", n=2))
    assert changed["register_playbook"]["version"]["version"] == 2


INVALID = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: bad, path: tests/gql/bad}
workflow:
  - step: start
    tool: 5
"""


def test_it_refuses_an_invalid_playbook_with_each_issue_and_line(
    api: APIClient,
) -> None:
    body = gql(api, REGISTER, content=INVALID)
    error = body["errors"][0]
    assert error["message"] == "the playbook is not valid"
    issue = error["extensions"]["issues"][0]
    assert issue["line"] == 6 and "must be a mapping" in issue["message"]
    assert error["extensions"]["code"] == "INVALID_PLAYBOOK"


PLAYBOOKS = """
query ($after: String! = "", $limit: Int) {
  playbooks(path_prefix: "tests/gql/", after: $after, limit: $limit) {
    results { path latest { version } versions { version created_at } }
    next_after
  }
}
"""


def test_it_lists_playbooks_with_versions_in_two_statements(
    warm: APIClient, register: Callable[..., Any], django_assert_num_queries: Any
) -> None:
    for path in ("tests/gql/a", "tests/gql/b", "tests/gql/c"):
        register(path)
    register("tests/gql/b", n=2)

    # The token, the caller's path grants, the latest versions, then every
    # version of the page.
    with django_assert_num_queries(4):
        data = ok(warm, PLAYBOOKS)["playbooks"]
    assert [row["path"] for row in data["results"]] == [
        "tests/gql/a",
        "tests/gql/b",
        "tests/gql/c",
    ]
    b = data["results"][1]
    assert b["latest"]["version"] == 2
    assert [v["version"] for v in b["versions"]] == [2, 1]
    assert data["next_after"] is None

    first = ok(warm, PLAYBOOKS, limit=2)["playbooks"]
    assert first["next_after"] == "tests/gql/b"
    rest = ok(warm, PLAYBOOKS, after=first["next_after"])["playbooks"]
    assert [row["path"] for row in rest["results"]] == ["tests/gql/c"]


def test_it_reads_one_version_of_a_playbook(
    api: APIClient, register: Callable[..., Any]
) -> None:
    register("tests/gql/one")
    register("tests/gql/one", n=3)
    query = 'query ($v: Int) { playbook(path: "tests/gql/one", version: $v) '
    query += "{ version content } }"
    assert ok(api, query)["playbook"]["version"] == 2
    assert "n: 1" in ok(api, query, v=1)["playbook"]["content"]
    missing = '{ playbook(path: "tests/none") { version } }'
    assert ok(api, missing) == {"playbook": None}


# -- runs ----------------------------------------------------------------------

EXECUTIONS = """
query ($status: ExecutionStatus, $path: String! = "", $since: DateTime,
       $cursor: ID, $limit: Int) {
  executions(status: $status, path: $path, since: $since, cursor: $cursor,
             limit: $limit) {
    results {
      id path version status parent created_at ended_at duration_ms
      playbook { path version }
      step_runs { step status runs }
    }
    next_cursor
  }
}
"""


def test_it_lists_runs_in_a_fixed_number_of_statements(
    warm: APIClient, start: Callable[..., Any], django_assert_num_queries: Any
) -> None:
    ids = [start("tests/gql/run")["id"] for _ in range(4)]

    # The token, the caller's path grants, the runs with their playbooks,
    # their step runs, the cursor.
    with django_assert_num_queries(5):
        page = ok(warm, EXECUTIONS, limit=3)["executions"]
    assert [row["id"] for row in page["results"]] == ids[::-1][:3]
    assert page["next_cursor"] == ids[1]
    run = page["results"][0]
    assert run["playbook"] == {"path": "tests/gql/run", "version": 1}
    assert run["step_runs"][0]["step"] == "start" and run["status"] == "running"

    rest = ok(warm, EXECUTIONS, cursor=page["next_cursor"])["executions"]
    assert [row["id"] for row in rest["results"]] == [ids[0]]
    assert rest["next_cursor"] is None


def test_it_filters_runs_by_status_path_and_time(
    api: APIClient, start: Callable[..., Any]
) -> None:
    a = start("tests/gql/a")["id"]
    b = start("tests/gql/b")["id"]
    Execution.objects.filter(id=a).update(
        status="completed", created_at=timezone.now() - timedelta(days=2)
    )

    def ids(**filters: Any) -> list[str]:
        page = ok(api, EXECUTIONS, **filters)["executions"]
        return [row["id"] for row in page["results"]]

    assert ids(status="COMPLETED") == [a]
    assert ids(status="RUNNING") == [b]
    assert ids(path="tests/gql/b") == [b]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(since=since) == [b]


def test_it_reads_a_run_its_events_by_seq_and_its_step_results(
    api: APIClient, start: Callable[..., Any]
) -> None:
    run_id = start("tests/gql/detail", {"n": 7})["id"]
    run = ok(
        api, "query ($id: ID!) { execution(id: $id) { id status path } }", id=run_id
    )["execution"]
    assert run == {"id": run_id, "status": "running", "path": "tests/gql/detail"}
    assert ok(api, '{ execution(id: "nope") { id } }') == {"execution": None}

    events = """
    query ($id: ID!, $after: Int! = 0, $limit: Int) {
      events(execution_id: $id, after_seq: $after, limit: $limit) {
        status results { seq kind step payload } next_after_seq
      }
    }"""
    first = ok(api, events, id=run_id, limit=1)["events"]
    assert first["status"] == "running" and first["next_after_seq"] == 1
    assert first["results"][0]["kind"] == "execution.started"
    rest = ok(api, events, id=run_id, after=1)["events"]
    seqs = [event["seq"] for event in rest["results"]]
    assert seqs and seqs == sorted(seqs) and seqs[0] == 2
    missing = gql(api, events, id="nope")
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    steps = ok(
        api,
        "query ($id: ID!) { step_results(execution_id: $id) "
        "{ step status runs iterations result } }",
        id=run_id,
    )["step_results"]
    assert steps[0]["step"] == "start" and steps[0]["result"] is None


def test_step_results_carry_each_steps_result_from_the_run_state(
    api: APIClient, start: Callable[..., Any]
) -> None:
    run_id = start("tests/gql/result")["id"]
    execution = Execution.objects.get(id=run_id)
    execution.state = {**execution.state, "vars": {"start": {"n": 4}}}
    execution.save(update_fields=["state"])
    execution.step_runs.filter(step="start").update(status="completed", runs=1)

    steps = ok(
        api,
        "query ($id: ID!) { step_results(execution_id: $id) "
        "{ step status runs result } }",
        id=run_id,
    )["step_results"]
    assert steps == [
        {"step": "start", "status": "completed", "runs": 1, "result": {"n": 4}}
    ]


EXECUTE = """
mutation ($path: String!, $version: Int, $payload: JSON, $key: String! = "") {
  execute_playbook(path: $path, version: $version, payload: $payload,
                   idempotency_key: $key) {
    id status version playbook { path }
  }
}
"""


def test_it_starts_cancels_and_reruns_a_run(
    api: APIClient, register: Callable[..., Any]
) -> None:
    register("tests/gql/go")
    run = ok(api, EXECUTE, path="tests/gql/go", version=1, payload={"n": 5})[
        "execute_playbook"
    ]
    assert run["status"] == "running" and run["playbook"] == {"path": "tests/gql/go"}
    assert Execution.objects.get(id=run["id"]).commands.count() == 1

    cancel = """
    mutation ($id: ID!) {
      cancel_execution(id: $id, reason: "enough") {
        cancelled execution { id status }
      }
    }"""
    cancelled = ok(api, cancel, id=run["id"])["cancel_execution"]
    assert cancelled["cancelled"] == [run["id"]]
    assert cancelled["execution"]["status"] == "cancelled"
    again = gql(api, cancel, id=run["id"])
    assert again["errors"][0]["extensions"]["code"] == "CONFLICT"

    rerun = "mutation ($id: ID!) { rerun_execution(id: $id) { id status version } }"
    second = ok(api, rerun, id=run["id"])["rerun_execution"]
    assert second["id"] != run["id"] and second["status"] == "running"
    assert queries.original_input(Execution.objects.get(id=second["id"])) == {"n": 5}


def test_execute_answers_not_found_and_repeats_an_idempotent_start(
    api: APIClient, register: Callable[..., Any]
) -> None:
    missing = gql(api, EXECUTE, path="tests/none")
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    register("tests/gql/idem")
    first = ok(api, EXECUTE, path="tests/gql/idem", key="k1")["execute_playbook"]
    again = ok(api, EXECUTE, path="tests/gql/idem", key="k1")["execute_playbook"]
    assert first["id"] == again["id"]
    assert Execution.objects.count() == 1

    not_object = gql(api, EXECUTE, path="tests/gql/idem", payload=[1])
    assert "payload must be a JSON object" in not_object["errors"][0]["message"]


# -- runtimes and credentials ----------------------------------------------------


def _worker(name: str, seen_ago_s: float | None, **fields: Any) -> None:
    seen = (
        None if seen_ago_s is None else timezone.now() - timedelta(seconds=seen_ago_s)
    )
    WorkerRegistration.objects.create(
        id=f"w-{name}",
        name=name,
        pool="default",
        token_hash=f"hash-{name}",
        last_seen_at=seen,
        **fields,
    )


def test_it_lists_workers_with_heartbeat_age_and_liveness(
    warm: APIClient, django_assert_num_queries: Any
) -> None:
    Pool.objects.create(name="default")
    _worker("fresh", 1)
    _worker("silent", 120)
    _worker("killed", 3600)
    _worker("left", 5, status=WorkerStatus.GONE)

    query = "{ workers { name liveness heartbeat_age_s } pools { name } }"
    with django_assert_num_queries(3):
        data = ok(warm, query)
    found = {row["name"]: row for row in data["workers"]}
    assert found["fresh"]["liveness"] == "live"
    assert found["silent"]["liveness"] == "stale"
    assert found["killed"]["liveness"] == "gone"
    assert found["left"]["liveness"] == "gone"
    assert 0 < found["fresh"]["heartbeat_age_s"] < 60
    assert data["pools"] == [{"name": "default"}]

    gone = ok(warm, "{ workers(status: GONE) { name } }")["workers"]
    assert gone == [{"name": "left"}]


def test_it_lists_credential_metadata_and_never_data(
    warm: APIClient, start: Callable[..., Any], django_assert_num_queries: Any
) -> None:
    save_credential("pg_a", "postgres", {"host": "db", "password": SECRET})
    save_credential("api_b", "bearer", {"token": SECRET})
    save_keychain_entry(
        "oauth",
        {"access_token": SECRET},
        expires_at=timezone.now() - timedelta(minutes=1),
    )

    query = """{
      credentials { name type description created_at updated_at }
      keychain_entries { name scope execution expires_at expired }
    }"""
    # The token, the caller's user and group permissions, the two lists.
    with django_assert_num_queries(5):
        response = warm.post("/graphql", {"query": query}, format="json")
    assert SECRET not in response.content.decode()
    data = response.json()["data"]
    assert [row["name"] for row in data["credentials"]] == ["api_b", "pg_a"]
    assert data["keychain_entries"][0]["expired"] is True
    bearer = ok(warm, '{ credentials(type: "bearer") { name } }')
    assert bearer == {"credentials": [{"name": "api_b"}]}

    # No field reads a secret back, so selecting one is a validation error.
    body = gql(warm, "{ credentials { data_encrypted } }")
    assert "Cannot query field 'data_encrypted'" in body["errors"][0]["message"]


def test_it_pages_events_in_a_fixed_number_of_statements(
    warm: APIClient, start: Callable[..., Any], django_assert_num_queries: Any
) -> None:
    run_id = start("tests/gql/count")["id"]
    query = """query ($id: ID!) {
      events(execution_id: $id) { status results { seq kind } next_after_seq }
    }"""
    # The token, the run's status, the caller's path grants, one page of events.
    with django_assert_num_queries(4):
        page = ok(warm, query, id=run_id)["events"]
    assert len(page["results"]) >= 2
