"""Runs over REST: start, list, read, follow events, cancel, re-run, and set
transient variables. The work is in ``executions.control`` (writes) and
``executions.queries`` (reads)."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.services import PlaybookNotFound
from executions import control, queries
from executions.api.serializers import (
    CancelledSerializer,
    CancelSerializer,
    EventPageSerializer,
    EventSerializer,
    ExecutionDetailSerializer,
    ExecutionPageSerializer,
    ExecutionSerializer,
    LogEntrySerializer,
    LogPageSerializer,
    StartSerializer,
    VariablePageSerializer,
    VariableSerializer,
    VariableWriteSerializer,
)
from executions.models import Execution, Status, TransientVariable
from noetl_site import access
from noetl_site.api import check, int_param, page_limit

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="Repeat a start safely: the same key from the same user returns "
    "the run the first request started (200).",
)


def _execution(request: Request, execution_id: str, action: str) -> Execution:
    """The run, once the caller may ``action`` (view or execute) its playbook."""
    execution = Execution.objects.filter(id=execution_id).first()
    if execution is None:
        raise exceptions.NotFound(f"no execution {execution_id}")
    what = "view" if action == "view" else "run"
    check(
        access.allows(request.user, action, execution.path),
        f"{what} runs of {execution.path}",
    )
    return execution


def _started(execution: Execution, created: bool) -> Response:
    response = Response(
        queries.run_detail(execution),
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )
    if not created:
        response["Idempotent-Replayed"] = "true"
    return response


class ExecutionsView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=[s.value for s in Status]),
            OpenApiParameter("path", str, description="runs of this playbook path"),
            OpenApiParameter(
                "since",
                OpenApiTypes.DATETIME,
                description="runs started at or after this time",
            ),
            OpenApiParameter("parent", str, description="sub-playbook runs of a run"),
            OpenApiParameter(
                "cursor", str, description="next_cursor of the previous page"
            ),
            OpenApiParameter("limit", int),
        ],
        responses=ExecutionPageSerializer,
        operation_id="executions_list",
        description="Newest first, keyset-paged: pass next_cursor back as cursor.",
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        since = None
        if params.get("since"):
            since = parse_datetime(params["since"])
            if since is None:
                raise exceptions.ValidationError(
                    {"since": "must be an ISO 8601 datetime"}
                )
        if params.get("status") and params["status"] not in Status.values:
            raise exceptions.ValidationError(
                {"status": f"one of {', '.join(Status.values)}"}
            )

        limit = page_limit(request)
        rows = queries.runs_page(
            status=params.get("status", ""),
            path=params.get("path", ""),
            since=since,
            parent=params.get("parent", ""),
            before=params.get("cursor", ""),
            limit=limit,
            narrow=lambda rows: access.viewable(request.user, rows),
        )
        return Response(
            {
                "results": ExecutionSerializer(rows, many=True).data,
                "next_cursor": rows[-1].id if len(rows) == limit else None,
            }
        )

    @extend_schema(
        request=StartSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: ExecutionDetailSerializer, 200: ExecutionDetailSerializer},
        description="Start a run. Answers at once with its id; workers do the rest.",
    )
    def post(self, request: Request) -> Response:
        body = StartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        check(access.can_execute(request.user, data["path"]), f"execute {data['path']}")
        try:
            execution, created = control.start(
                data["path"],
                data.get("version"),
                data["payload"],
                user=request.user,
                idempotency_key=request.headers.get("Idempotency-Key", ""),
            )
        except PlaybookNotFound as exc:
            raise exceptions.NotFound(str(exc)) from None
        except control.Conflict as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return _started(execution, created)


class ExecutionView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "detail",
                str,
                enum=["full"],
                description="full: add each step's result and resolve large values",
            )
        ],
        responses=ExecutionDetailSerializer,
    )
    def get(self, request: Request, execution_id: str) -> Response:
        execution = _execution(request, execution_id, "view")
        full = request.query_params.get("detail") == "full"
        return Response(queries.run_detail(execution, full=full))


class EventsView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("after_seq", int, description="default 0"),
            OpenApiParameter("limit", int, description="default 200"),
        ],
        responses=EventPageSerializer,
        description="The run's events in seq order, from after_seq.",
    )
    def get(self, request: Request, execution_id: str) -> Response:
        # The status is read first: a terminal status means the terminal
        # event is already committed, so it is in this page or an earlier one.
        found = (
            Execution.objects.filter(id=execution_id)
            .values_list("status", "path")
            .first()
        )
        if found is None:
            raise exceptions.NotFound(f"no execution {execution_id}")
        run_status, path = found
        check(access.can_view(request.user, path), f"view runs of {path}")
        limit = page_limit(request, default=200)
        rows = queries.events_page(
            execution_id, int_param(request, "after_seq") or 0, limit
        )
        return Response(
            {
                "status": run_status,
                "results": EventSerializer(rows, many=True).data,
                "next_after_seq": rows[-1].seq if rows else None,
            }
        )


class LogsView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("step", str, description="only this step's commands"),
            OpenApiParameter("after_seq", int, description="default 0"),
            OpenApiParameter("limit", int, description="default 50"),
        ],
        responses=LogPageSerializer,
        description="The output the run's commands captured (python stdout and "
        "stderr, SQL notices), one entry per command that logged, in seq order.",
    )
    def get(self, request: Request, execution_id: str) -> Response:
        _execution(request, execution_id, "view")
        limit = page_limit(request, default=50)
        entries = queries.run_logs(
            execution_id,
            step=request.query_params.get("step", ""),
            after_seq=int_param(request, "after_seq") or 0,
            limit=limit,
        )
        return Response(
            {
                "results": LogEntrySerializer(entries, many=True).data,
                "next_after_seq": entries[-1]["seq"] if len(entries) == limit else None,
            }
        )


class CancelView(APIView):
    @extend_schema(
        request=CancelSerializer,
        responses={200: CancelledSerializer, 409: OpenApiTypes.OBJECT},
        description="Cancel a running run and its running sub-playbook runs.",
    )
    def post(self, request: Request, execution_id: str) -> Response:
        _execution(request, execution_id, "execute")
        body = CancelSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        try:
            cancelled = control.cancel_tree(
                execution_id, user=request.user, reason=body.validated_data["reason"]
            )
        except control.Conflict as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        execution = Execution.objects.get(id=execution_id)
        return Response(
            {"cancelled": cancelled, "execution": queries.run_detail(execution)}
        )


class RerunView(APIView):
    @extend_schema(
        request=None,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: ExecutionDetailSerializer},
        description="Start the same playbook version with the same input.",
    )
    def post(self, request: Request, execution_id: str) -> Response:
        original = _execution(request, execution_id, "execute")
        try:
            execution, created = control.rerun(
                original,
                user=request.user,
                idempotency_key=request.headers.get("Idempotency-Key", ""),
            )
        except PlaybookNotFound as exc:
            raise exceptions.NotFound(str(exc)) from None
        except control.Conflict as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return _started(execution, created)


class VariablesView(APIView):
    @extend_schema(
        responses=VariablePageSerializer, operation_id="executions_variables_list"
    )
    def get(self, request: Request, execution_id: str) -> Response:
        execution = _execution(request, execution_id, "view")
        rows = execution.variables.order_by("name")
        return Response({"results": VariableSerializer(rows, many=True).data})


class VariableView(APIView):
    @extend_schema(responses=VariableSerializer)
    def get(self, request: Request, execution_id: str, name: str) -> Response:
        _execution(request, execution_id, "view")
        row = get_object_or_404(TransientVariable, execution_id=execution_id, name=name)
        return Response(VariableSerializer(row).data)

    @extend_schema(
        request=VariableWriteSerializer,
        responses={200: VariableSerializer, 409: OpenApiTypes.OBJECT},
        description="Set the variable; recorded as a variable.set event.",
    )
    def put(self, request: Request, execution_id: str, name: str) -> Response:
        _execution(request, execution_id, "execute")
        body = VariableWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        value: Any = body.validated_data["value"]
        try:
            row = control.set_variable(execution_id, name, value, user=request.user)
        except control.Conflict as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(VariableSerializer(row).data)
