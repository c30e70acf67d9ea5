"""``GET /api/search/?q=...``: playbooks, steps and failed runs by meaning."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from noetl_site import access
from noetl_site.api import page_limit
from search import service
from search.index import KINDS, SearchUnavailable


class Unavailable(exceptions.APIException):
    status_code = 503
    default_code = "search_unavailable"


class SearchView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True, description="what to look for"),
            OpenApiParameter("kind", str, enum=list(KINDS)),
            OpenApiParameter("limit", int, description="default 10"),
        ],
        responses=inline_serializer(
            "SearchResults",
            {
                "results": serializers.ListField(child=serializers.DictField()),
            },
        ),
        description="Playbooks, steps and failed runs nearest in meaning to q, "
        "best first; each result has kind, score and what identifies it (path, "
        "step, execution_id). 503 when the search extra is not installed.",
    )
    def get(self, request: Request) -> Response:
        query = request.query_params.get("q", "").strip()
        if not query:
            raise exceptions.ValidationError({"q": "say what to search for"})
        kind = request.query_params.get("kind", "")
        if kind and kind not in KINDS:
            raise exceptions.ValidationError({"kind": f"one of {', '.join(KINDS)}"})
        limit = page_limit(request, default=10)
        try:
            # Ask for more, since what the caller may not view is dropped.
            found = service.search(query, kind=kind, limit=limit * 4)
        except SearchUnavailable as exc:
            raise Unavailable(str(exc)) from None
        visible = [
            r for r in found
            if r.get("path") and access.can_view(request.user, r["path"])
        ]
        return Response({"results": visible[:limit]})
