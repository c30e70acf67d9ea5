"""The catalog over REST: register playbooks, list them, read versions."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, parsers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import services as catalog
from catalog.api.serializers import (
    PlaybookDetailSerializer,
    PlaybookPageSerializer,
    PlaybookVersionSerializer,
    RegisteredSerializer,
    RegisterSerializer,
    issue_data,
)
from catalog.models import PlaybookVersion
from noetl_site import access
from noetl_site.api import (
    TextParser,
    XYamlParser,
    YamlParser,
    check,
    int_param,
    page_limit,
)


class CatalogView(APIView):
    parser_classes = [parsers.JSONParser, YamlParser, XYamlParser, TextParser]

    @extend_schema(
        parameters=[
            OpenApiParameter("path_prefix", str, description="only paths starting so"),
            OpenApiParameter(
                "after", str, description="the last path of the previous page"
            ),
            OpenApiParameter("limit", int),
        ],
        responses=PlaybookPageSerializer,
        operation_id="catalog_list",
        description="The newest version of each playbook, in path order.",
    )
    def get(self, request: Request) -> Response:
        limit = page_limit(request)
        rows = catalog.latest_versions(
            request.query_params.get("path_prefix", ""),
            request.query_params.get("after", ""),
            limit,
            narrow=lambda rows: access.viewable(request.user, rows),
        )
        data: dict[str, Any] = {
            "results": PlaybookVersionSerializer(rows, many=True).data
        }
        data["next_after"] = rows[-1].path if len(rows) == limit else None
        return Response(data)

    @extend_schema(
        request={
            "application/json": RegisterSerializer,
            "application/yaml": OpenApiTypes.STR,
            "text/plain": OpenApiTypes.STR,
        },
        responses={
            201: RegisteredSerializer,
            200: RegisteredSerializer,
            400: OpenApiTypes.OBJECT,
        },
        description="Validate and store a playbook. Identical content returns the "
        "existing version (200); an invalid playbook is refused (400) "
        "with every issue and its YAML path and line.",
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.data, str):
            text = request.data
        else:
            body = RegisterSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            text = body.validated_data["content"]

        try:
            # Checked before anything is stored: registering runs no code yet,
            # but a registered playbook's Python runs on the workers later.
            path = catalog.path_of(text)
            check(access.can_modify(request.user, path), f"modify {path}")
            version, created = catalog.register(text)
        except catalog.PlaybookError as exc:
            return Response(
                {
                    "detail": "the playbook is not valid",
                    "issues": [issue_data(issue) for issue in exc.issues],
                    "warnings": [issue_data(issue) for issue in exc.warnings],
                },
                status=status.HTTP_400_BAD_REQUEST,
            )

        data = RegisteredSerializer(version, context={"created": created}).data
        return Response(
            data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


def _version(request: Request, path: str) -> PlaybookVersion:
    check(access.can_view(request.user, path), f"view {path}")
    number = int_param(request, "version")
    try:
        return catalog.resolve(path, number)
    except catalog.PlaybookNotFound as exc:
        raise exceptions.NotFound(str(exc)) from None


class PlaybookView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("version", int, description="default: the latest")
        ],
        responses=PlaybookDetailSerializer,
    )
    def get(self, request: Request, path: str) -> Response:
        return Response(PlaybookDetailSerializer(_version(request, path)).data)


class VersionsView(APIView):
    @extend_schema(
        responses=PlaybookPageSerializer,
        operation_id="catalog_versions_list",
        description="Every version of a path, newest first.",
    )
    def get(self, request: Request, path: str) -> Response:
        user = request.user
        if access.can_view(user, path):
            rows = catalog.versions_of(path)
            if rows:
                data = PlaybookVersionSerializer(rows, many=True).data
                return Response({"results": data})

        # A playbook whose own path ends in "/versions" is read here too.
        own = f"{path}/versions"
        if access.can_view(user, own):
            try:
                version = catalog.resolve(own, int_param(request, "version"))
            except catalog.PlaybookNotFound:
                pass
            else:
                return Response(PlaybookDetailSerializer(version).data)
        check(access.can_view(user, path), f"view {path}")
        raise exceptions.NotFound(f"no playbook registered at path {path!r}")
