"""Every REST endpoint, table-driven: anonymous callers get 401, a signed-in
user without the permission gets 403 (or an empty list), the right user
succeeds. The table is checked against the URLconf, so an endpoint added
without a row here fails ``test_every_endpoint_has_a_case``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from tests.api.conftest import playbook_yaml
from tests.security.conftest import PASSWORD, PATH, Persona, World

# Routes outside this table, and why.
EXEMPT = {
    "healthz": "open to anyone by design (DESIGN.md section 7)",
    "readyz": "open to anyone by design",
    "api/auth/login/": "the sign-in form itself",
    "api/auth/login/<str:backend>/": "starts OAuth sign-in (test_oauth.py)",
    "api/auth/complete/<str:backend>/": "ends OAuth sign-in (test_oauth.py)",
    "graphql": "every operation: tests/security/test_graphql_access.py",
}
WORKER_ROUTES = "api/worker/v1/"  # worker tokens: tests/security/test_worker_tokens.py
ADMIN = "admin/"  # staff sessions: tests/security/test_admin_access.py


@dataclass
class Case:
    method: str
    url: str
    body: Any = None
    ok: tuple[int, ...] = (200,)
    # What a signed-in user without the permission gets: "forbidden" (403),
    # "empty" (a 200 list with no rows), "own" (their own data: allowed).
    outsider: str = "forbidden"
    content_type: str = "json"
    extra: dict[str, str] = field(default_factory=dict)
    # A page of the browser UI: anonymous visitors are sent to sign in, and
    # a refusal is an HTML 403.
    page: bool = False
    # What shows a listed row on a page (an "empty" page must not show it).
    marker: str = PATH


def _page(method: str, url: str, body: Any = None, ok: tuple[int, ...] = (200,),
          outsider: str = "forbidden", marker: str = PATH) -> Case:
    return Case(method, url, body, ok, outsider, content_type="form", page=True,
                marker=marker)


def _yaml(path: str) -> str:
    return playbook_yaml(path)


CASES: dict[str, list[Case]] = {
    "api/catalog/": [
        Case("get", "/api/catalog/", outsider="empty"),
        Case(
            "post",
            "/api/catalog/",
            _yaml("sec/allowed/new"),
            (201,),
            content_type="yaml",
        ),
    ],
    "api/catalog/<path:path>/versions/": [
        Case("get", f"/api/catalog/{PATH}/versions/")
    ],
    "api/catalog/<path:path>/": [Case("get", f"/api/catalog/{PATH}/")],
    "api/executions/": [
        Case("get", "/api/executions/", outsider="empty"),
        Case("post", "/api/executions/", {"path": PATH}, (201,)),
    ],
    "api/executions/<str:execution_id>/": [Case("get", "/api/executions/{run}/")],
    "api/executions/<str:execution_id>/events/": [
        Case("get", "/api/executions/{run}/events/")
    ],
    "api/executions/<str:execution_id>/cancel/": [
        Case("post", "/api/executions/{run}/cancel/", {"reason": "test"})
    ],
    "api/executions/<str:execution_id>/rerun/": [
        Case("post", "/api/executions/{run}/rerun/", None, (201,))
    ],
    "api/executions/<str:execution_id>/variables/": [
        Case("get", "/api/executions/{run}/variables/")
    ],
    "api/executions/<str:execution_id>/variables/<str:name>/": [
        Case("get", "/api/executions/{run}/variables/flag/"),
        Case("put", "/api/executions/{run}/variables/flag/", {"value": 2}),
    ],
    "api/schedules/^$": [
        Case("get", "/api/schedules/", outsider="empty"),
        Case(
            "post",
            "/api/schedules/",
            {"name": "sec-new", "path": PATH, "interval_s": 60},
            (201,),
        ),
    ],
    "api/schedules/^(?P<pk>[^/.]+)/$": [
        Case("get", "/api/schedules/{schedule}/"),
        Case("patch", "/api/schedules/{schedule}/", {"interval_s": 120}),
        Case("delete", "/api/schedules/{schedule}/", None, (204,)),
    ],
    "api/schedules/^(?P<pk>[^/.]+)/backfill/$": [
        Case(
            "post",
            "/api/schedules/{schedule}/backfill/",
            {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T02:00:00Z"},
        )
    ],
    "api/schedules/^(?P<pk>[^/.]+)/fires/$": [
        Case("get", "/api/schedules/{schedule}/fires/")
    ],
    "api/schedules/^(?P<pk>[^/.]+)/pause/$": [
        Case("post", "/api/schedules/{schedule}/pause/")
    ],
    "api/schedules/^(?P<pk>[^/.]+)/resume/$": [
        Case("post", "/api/schedules/{schedule}/resume/")
    ],
    "api/schedules/^(?P<pk>[^/.]+)/run/$": [
        Case("post", "/api/schedules/{schedule}/run/", None, (201,))
    ],
    "api/^credentials/$": [
        Case("get", "/api/credentials/"),
        Case(
            "post",
            "/api/credentials/",
            {"name": "sec_new", "type": "generic", "data": {"token": "abcdef"}},
            (201,),
        ),
    ],
    "api/^credentials/(?P<name>[^/]+)/$": [
        Case("get", "/api/credentials/sec_pg/"),
        Case("patch", "/api/credentials/sec_pg/", {"description": "changed"}),
        Case(
            "put",
            "/api/credentials/sec_pg/",
            {"type": "postgres", "data": {"password": "n3w-pa55"}},
        ),
        Case("delete", "/api/credentials/sec_pg/", None, (204,)),
    ],
    "api/^keychain/$": [
        Case("get", "/api/keychain/"),
        Case("post", "/api/keychain/", {"name": "sec_new", "value": {"t": 1}}, (201,)),
    ],
    "api/^keychain/(?P<pk>[^/.]+)/$": [
        Case("get", "/api/keychain/{keychain}/"),
        Case("patch", "/api/keychain/{keychain}/", {"value": {"t": 2}}),
        Case("delete", "/api/keychain/{keychain}/", None, (204,)),
    ],
    # Reading the API's own description needs only a sign-in.
    "api/schema/": [Case("get", "/api/schema/", outsider="own")],
    "api/docs/": [Case("get", "/api/docs/", outsider="own")],
    # A person's own session and tokens: every signed-in user has them.
    "api/auth/logout/": [Case("post", "/api/auth/logout/", outsider="own")],
    "api/auth/session/": [Case("get", "/api/auth/session/", outsider="own")],
    "api/auth/tokens/": [
        Case("get", "/api/auth/tokens/", outsider="own"),
        Case("post", "/api/auth/tokens/", {"name": "new"}, (201,), outsider="own"),
    ],
    # Another user's token is not found among the outsider's own.
    "api/auth/tokens/<str:prefix>/": [
        Case("delete", "/api/auth/tokens/{token}/", None, (204,), outsider="missing")
    ],
    # The pages of the browser UI.
    "schedules/": [_page("get", "/schedules/", outsider="empty")],
    # The dashboard counts the runs a user may see.
    "": [_page("get", "/", outsider="empty", marker='data-status="running">1<')],
    "runs/": [_page("get", "/runs/", outsider="empty")],
    "runs/live/": [_page("get", "/runs/live/?ids={run}", outsider="empty")],
    "runs/<str:execution_id>/": [_page("get", "/runs/{run}/")],
    "runs/<str:execution_id>/live/": [_page("get", "/runs/{run}/live/")],
    "runs/<str:execution_id>/events/": [_page("get", "/runs/{run}/events/")],
    "runs/<str:execution_id>/steps/<path:step>/": [
        _page("get", "/runs/{run}/steps/start/")
    ],
    "runs/<str:execution_id>/cancel/": [
        _page("post", "/runs/{run}/cancel/", {}, (302,))
    ],
    "runs/<str:execution_id>/rerun/": [_page("post", "/runs/{run}/rerun/", {}, (302,))],
    "catalog/": [_page("get", "/catalog/", outsider="empty")],
    "catalog/playbook/<path:path>": [_page("get", f"/catalog/playbook/{PATH}")],
    "catalog/diff/<path:path>": [_page("get", f"/catalog/diff/{PATH}?a=1&b=1")],
    "catalog/run/<path:path>": [
        _page("post", f"/catalog/run/{PATH}", {"payload": "{}"}, (302,))
    ],
    # Every signed-in user may see the workers (they name no playbook).
    "workers/": [_page("get", "/workers/", outsider="own")],
    "api/executions/<str:execution_id>/logs/": [
        Case("get", "/api/executions/{run}/logs/")
    ],
    # Results the caller may not view are dropped (the index holds every
    # playbook, so the outsider's answer must not name this one).
    "api/search/": [Case("get", "/api/search/?q=hello", outsider="hidden")],
    # Prometheus: the metrics token or a superuser; a plain user is refused.
    "metrics": [Case("get", "/metrics", outsider="unauthorized")],
}


def _routes(patterns: list[Any], prefix: str = "") -> list[str]:
    found = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found += _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            found.append(route)
    return found


def test_every_endpoint_has_a_case() -> None:
    routes = {
        route
        for route in _routes(get_resolver().url_patterns)
        if not route.startswith((WORKER_ROUTES, ADMIN))
    }
    missing = routes - set(CASES) - set(EXEMPT)
    assert not missing, f"endpoints without a security case: {sorted(missing)}"
    stale = set(CASES) - routes
    assert not stale, f"cases for routes that no longer exist: {sorted(stale)}"


def _call(who: Persona, case: Case, world: World) -> Any:
    url = case.url.format(
        run=world.run_id,
        schedule=world.schedule_id,
        keychain=world.keychain_id,
        token=world.token_prefix,
    )
    method = getattr(who.client, case.method)
    if case.content_type == "yaml":
        return method(url, case.body, content_type="application/yaml")
    if case.content_type == "form":
        return method(url, case.body)
    return method(url, case.body, format="json")


def _listed_rows(response: Any, case: Case) -> list[Any]:
    if response["Content-Type"].startswith("text/html"):
        return [case.marker] if case.marker in response.content.decode() else []
    body = response.json()
    if "results" in body:
        return body["results"]
    return list(body["runs"])  # the runs list's live poll: runs by id


ALL = [
    pytest.param(route, index, id=f"{case.method} {route}")
    for route, cases in CASES.items()
    for index, case in enumerate(cases)
]


@pytest.mark.parametrize(("route", "index"), ALL)
def test_each_endpoint_refuses_the_anonymous_and_the_unpermitted_and_serves_the_right(
    route: str,
    index: int,
    anonymous: Persona,
    outsider: Persona,
    right: Persona,
    superuser: Persona,
    world: World,
) -> None:
    case = CASES[route][index]

    refused = _call(anonymous, case, world)
    if case.page:
        assert refused.status_code == 302 and "/api/auth/login/" in refused["Location"]
    else:
        assert refused.status_code == 401, refused.content

    other = _call(outsider, case, world)
    if case.outsider == "forbidden":
        assert other.status_code == 403, other.content
        if not case.page:
            assert "permission denied" in other.json()["detail"]
    elif case.outsider == "empty":
        assert other.status_code == 200, other.content
        assert _listed_rows(other, case) == []
    elif case.outsider == "missing":
        assert other.status_code == 404, other.content
    elif case.outsider == "hidden":
        assert other.status_code == 200, other.content
        assert PATH not in other.content.decode()
    elif case.outsider == "unauthorized":
        assert other.status_code == 401, other.content
    else:
        assert other.status_code in case.ok, other.content

    granted = _call(superuser if case.outsider == "unauthorized" else right, case, world)
    assert granted.status_code in case.ok, granted.content
    if case.outsider == "hidden":
        assert PATH in granted.content.decode()
    if case.outsider == "empty":
        assert _listed_rows(granted, case), "the right user sees the rows"
    assert PASSWORD not in granted.content.decode()
