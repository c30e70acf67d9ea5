"""Schedules over REST: CRUD, pause and resume, run now, backfill, fires.

Writes go through ``Schedule.save_checked`` and ``schedules.duty``; these
views only translate."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from noetl_site import access
from noetl_site.api import check
from schedules import duty
from schedules.api.serializers import (
    BackfilledSerializer,
    BackfillSerializer,
    FirePageSerializer,
    FireSerializer,
    SchedulePageSerializer,
    ScheduleSerializer,
)
from schedules.models import Schedule, owner_of

RECENT_FIRES = 20


class ScheduleViewSet(viewsets.ModelViewSet):
    serializer_class = ScheduleSerializer
    queryset = Schedule.objects.order_by("name")
    pagination_class = None

    def get_queryset(self) -> QuerySet[Schedule]:
        rows = Schedule.objects.order_by("name")
        for name in ("name", "path"):
            if self.request.query_params.get(name):
                rows = rows.filter(**{name: self.request.query_params[name]})
        return rows

    def get_object(self) -> Schedule:
        # Viewing a schedule needs view on its playbook; changing it, pausing
        # it or starting its runs needs execute (a schedule starts runs).
        schedule = super().get_object()
        user = self.request.user
        check(access.can_view(user, schedule.path), f"view {schedule.path}")
        if self.request.method not in ("GET", "HEAD", "OPTIONS"):
            check(access.can_execute(user, schedule.path), f"execute {schedule.path}")
        return schedule

    def perform_create(self, serializer: ScheduleSerializer) -> None:
        self._check_target(serializer)
        serializer.save(owner=owner_of(self.request.user))

    def perform_update(self, serializer: ScheduleSerializer) -> None:
        self._check_target(serializer)
        serializer.save(owner=owner_of(self.request.user))

    def _check_target(self, serializer: ScheduleSerializer) -> None:
        path = serializer.validated_data.get("path")
        if path:
            check(access.can_execute(self.request.user, path), f"execute {path}")

    @extend_schema(responses=SchedulePageSerializer)
    def list(self, request: Request) -> Response:
        rows = access.viewable(request.user, self.get_queryset())
        return Response({"results": self.get_serializer(rows, many=True).data})

    def _answer(self, schedule: Schedule) -> Response:
        return Response(self.get_serializer(schedule).data)

    @extend_schema(request=None, responses=ScheduleSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        schedule = self.get_object()
        schedule.pause()
        return self._answer(schedule)

    @extend_schema(
        request=None,
        responses=ScheduleSerializer,
        description="Enable again; the next fire is planned from now (fires "
        "while paused are not owed).",
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        schedule = self.get_object()
        schedule.resume(duty.db_now())
        return self._answer(schedule)

    @extend_schema(
        request=None,
        responses={201: FireSerializer},
        description="Start the playbook now, recorded as a manual fire.",
    )
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str) -> Response:
        fire = duty.run_now(self.get_object(), duty.db_now())
        return Response(FireSerializer(fire).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=BackfillSerializer,
        responses=BackfilledSerializer,
        description="Create the runs of up to `limit` fire times in [start, end], "
        "each once; call again from `next_from` until it is null.",
    )
    @action(detail=True, methods=["post"])
    def backfill(self, request: Request, pk: str) -> Response:
        body = BackfillSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            done = duty.backfill_chunk(
                self.get_object(), data["start"], data["end"], data["limit"]
            )
        except ValueError as exc:
            raise exceptions.ValidationError({"detail": str(exc)}) from None
        return Response(BackfilledSerializer(done).data)

    @extend_schema(responses=FirePageSerializer, description="The latest fires.")
    @action(detail=True, methods=["get"])
    def fires(self, request: Request, pk: str) -> Response:
        rows = self.get_object().fires.select_related("execution")[:RECENT_FIRES]
        return Response({"results": FireSerializer(rows, many=True).data})
