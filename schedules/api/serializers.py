from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as ModelValidationError
from rest_framework import serializers

from schedules.duty import db_now
from schedules.models import Schedule, ScheduleFire

READ_ONLY = [
    "id",
    "owner",
    "next_run_at",
    "last_fire_at",
    "last_status",
    "last_error",
    "missed_fires",
    "created_at",
    "updated_at",
]


class ScheduleSerializer(serializers.ModelSerializer):
    """A schedule; writes are checked by ``Schedule.clean`` (the same rules
    as the admin, GraphQL and the CLI) and plan the next fire from now."""

    next_fires = serializers.SerializerMethodField(
        help_text="The next 5 fire times, from now."
    )

    class Meta:
        model = Schedule
        fields = [
            "id",
            "name",
            "path",
            "version",
            "cron",
            "interval_s",
            "timezone",
            "payload",
            "enabled",
            "start_at",
            "end_at",
            "catchup",
            "max_catchup",
            "concurrency",
            "next_run_at",
            "last_fire_at",
            "last_status",
            "last_error",
            "missed_fires",
            "next_fires",
            "owner",
            "created_at",
            "updated_at",
        ]
        read_only_fields = READ_ONLY
        # The model's clean() gives the clearer message for these.
        extra_kwargs = {"interval_s": {"min_value": None}, "name": {"validators": []}}

    def get_next_fires(self, schedule: Schedule) -> list[str]:
        now = self.context.get("now") or db_now()
        return [fire.isoformat() for fire in schedule.preview(now)]

    def create(self, validated_data: dict[str, Any]) -> Schedule:
        return self._save(Schedule(), validated_data)

    def update(self, instance: Schedule, validated_data: dict[str, Any]) -> Schedule:
        return self._save(instance, validated_data)

    def _save(self, schedule: Schedule, data: dict[str, Any]) -> Schedule:
        for name, value in data.items():
            setattr(schedule, name, value)
        try:
            schedule.save_checked(db_now())
        except ModelValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        return schedule


class FireSerializer(serializers.ModelSerializer):
    execution_status = serializers.CharField(
        source="execution.status", default=None, read_only=True
    )

    class Meta:
        model = ScheduleFire
        fields = [
            "fire_time",
            "kind",
            "status",
            "execution",
            "execution_status",
            "reason",
            "created_at",
        ]


class BackfillSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="The first fire time to create.")
    end = serializers.DateTimeField(help_text="The last fire time to create.")
    limit = serializers.IntegerField(
        required=False, default=20, min_value=1, max_value=200
    )


class BackfilledSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    existing = serializers.IntegerField(help_text="Fire times that already had a run.")
    next_from = serializers.DateTimeField(
        allow_null=True, help_text="Call again from here; null when the range is done."
    )


class FirePageSerializer(serializers.Serializer):
    results = FireSerializer(many=True)


class SchedulePageSerializer(serializers.Serializer):
    results = ScheduleSerializer(many=True)
