"""The GraphQL schema root and its view at ``/graphql``.

Each app's ``graphql/schema.py`` owns its ``Query`` (and ``Mutation``)
type; this module only merges them and sets the safeguards every query
gets: the strawberry-django optimizer (no N+1 reads), a depth limit, an
alias limit and a token limit. Page sizes are bounded where each list is
resolved (``graphql_tools.page_size``). Field names stay snake_case, as in
the REST API, so the two interfaces read alike.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

import strawberry
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.templatetags.static import static
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.django.views import GraphQLView
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry_django.optimizer import DjangoOptimizerExtension

from accounts import audit, tokens
from noetl_site import access

# Today's deepest query (a page of runs, their playbooks, a field) is 4;
# the limit matters once types link back to each other.
MAX_DEPTH = 8
MAX_ALIASES = 15
MAX_TOKENS = 2000

# Apps contributing to the schema; an app that is not installed yet is skipped.
SCHEMA_MODULES = (
    "catalog.graphql.schema",
    "executions.graphql.schema",
    "credentials.graphql.schema",
    "workers.graphql.schema",
    "schedules.graphql.schema",
)


def _app_types(name: str) -> list[type]:
    """Query and Mutation of every app schema module that defines them."""
    found = []
    for module_name in SCHEMA_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only a missing app is skipped; a broken import inside one is not.
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            continue
        if hasattr(module, name):
            found.append(getattr(module, name))
    return found


def build_schema(max_depth: int = MAX_DEPTH) -> strawberry.Schema:
    query = merge_types("Query", tuple(_app_types("Query")))
    mutation = merge_types("Mutation", tuple(_app_types("Mutation")))
    return strawberry.Schema(
        query=query,
        mutation=mutation,
        config=StrawberryConfig(auto_camel_case=False),
        # Factories: each request gets fresh extension instances.
        extensions=[
            DjangoOptimizerExtension,
            # Introspection tells an outsider the whole API: DEBUG only.
            lambda: AddValidationRules(
                [] if settings.DEBUG else [NoSchemaIntrospectionCustomRule]
            ),
            lambda: QueryDepthLimiter(max_depth=max_depth),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        ],
    )


schema = build_schema()


def _refused(message: str) -> JsonResponse:
    response = JsonResponse({"errors": [{"message": message}]}, status=401)
    response["WWW-Authenticate"] = "Bearer"
    return response


@cache
def _offline_graphiql() -> str:
    """Strawberry's GraphiQL page with its CDN assets swapped for the copies
    vendored under static/vendor/graphiql (same files, so the pages'
    integrity hashes still hold)."""
    html = GraphQLView(schema=schema).graphql_ide_html
    return html.replace("https://unpkg.com/", static("vendor/graphiql/"))


class NoetlGraphQLView(GraphQLView):
    """GraphQL for a signed-in user: a browser session (with its CSRF
    token) or an API token (``Authorization: Bearer``), as for REST."""

    def dispatch(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme == "Bearer":
            row = tokens.check(token.strip())
            if row is None:
                return _refused("invalid or revoked API token")
            request.user = row.user
            audit.set_actor(audit.actor_of(row.user))
            # A token is not sent by the browser on its own: no CSRF check.
            return super().dispatch(request, *args, **kwargs)

        if not access.can_view(request.user):
            if request.method == "GET" and "text/html" in request.headers.get(
                "Accept", ""
            ):
                # A person opening GraphiQL: log in first, then come back.
                return redirect_to_login(request.get_full_path())
            return _refused("authentication required: a session or an API token")
        if not request.user.is_authenticated:
            # Anonymous, with authentication disabled: no session to protect.
            return super().dispatch(request, *args, **kwargs)
        return csrf_protect(super().dispatch)(request, *args, **kwargs)

    def render_graphql_ide(self, request: HttpRequest) -> HttpResponse:
        if not settings.DEBUG:
            return HttpResponse(
                "GraphiQL is served only when DEBUG is on; POST queries here.",
                status=404,
                content_type="text/plain",
            )
        return HttpResponse(_offline_graphiql())


# The middleware's CSRF check is skipped here and made in dispatch instead,
# where it can tell a session (checked) from a bearer token (not needed).
graphql_view = csrf_exempt(NoetlGraphQLView.as_view(schema=schema))
