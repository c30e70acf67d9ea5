from __future__ import annotations

from typing import Any

from rest_framework import serializers

from executions.models import Event, Execution, Status, TransientVariable


class StartSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="The playbook's catalog path.")
    version = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="Default: the latest version.",
    )
    payload = serializers.DictField(
        required=False, default=dict, help_text="Merged over the playbook's workload."
    )


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ExecutionSerializer(serializers.ModelSerializer):
    """A run in a list: no results, no steps."""

    trigger = serializers.SerializerMethodField(
        help_text="What started the run: kind (api, cli, schedule, parent, ...) "
        "and, for a schedule, schedule_id and fire_time."
    )

    class Meta:
        model = Execution
        fields = [
            "id",
            "path",
            "version",
            "status",
            "parent",
            "created_at",
            "ended_at",
            "trigger",
        ]

    def get_trigger(self, execution: Execution) -> dict[str, Any]:
        from executions.queries import trigger_summary

        return trigger_summary(getattr(execution, "started_trigger", None))


class StepSerializer(serializers.Serializer):
    status = serializers.CharField()
    runs = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    iterations = serializers.IntegerField()
    failed_iterations = serializers.IntegerField()
    error = serializers.JSONField(allow_null=True)
    result = serializers.JSONField(required=False, help_text="Only with ?detail=full.")


class ExecutionDetailSerializer(serializers.Serializer):
    """Documents the shape ``executions.queries.run_detail`` builds."""

    id = serializers.CharField()
    path = serializers.CharField()
    version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Status.choices)
    # DRF's metaclass moves declared fields off the class, so this field does
    # not shadow Field.parent at run time; only the stubs see a clash.
    parent = serializers.CharField(allow_null=True)  # type: ignore[assignment]
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.FloatField(allow_null=True)
    trigger = serializers.JSONField()
    result = serializers.JSONField(allow_null=True)
    error = serializers.JSONField(allow_null=True)
    steps = serializers.DictField(child=StepSerializer())


class CancelledSerializer(serializers.Serializer):
    cancelled = serializers.ListField(
        child=serializers.CharField(),
        help_text="The run, then its descendants cancelled.",
    )
    execution = ExecutionDetailSerializer()


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = [
            "seq",
            "ts",
            "kind",
            "step",
            "command_id",
            "status",
            "delivery",
            "worker_id",
            "duration_ms",
            "payload",
            "error",
            "started_at",
            "ended_at",
            "pool",
            "attempt",
            "tool",
            "input_bytes",
            "result_bytes",
        ]


class LogEntrySerializer(serializers.Serializer):
    seq = serializers.IntegerField(help_text="the event that carries this output")
    step = serializers.CharField()
    command_id = serializers.CharField()
    kind = serializers.CharField()
    ts = serializers.DateTimeField()
    worker_id = serializers.CharField()
    lines = serializers.ListField(child=serializers.CharField(allow_blank=True))
    size = serializers.IntegerField(help_text="bytes of output kept (the tail)")


class LogPageSerializer(serializers.Serializer):
    results = LogEntrySerializer(many=True)
    next_after_seq = serializers.IntegerField(allow_null=True)


class EventPageSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=Status.choices,
        help_text="The run's status, read before the events: when it is terminal "
        "and the page is not full, the page ends the log.",
    )
    results = EventSerializer(many=True)
    next_after_seq = serializers.IntegerField(allow_null=True)


class VariableSerializer(serializers.ModelSerializer):
    class Meta:
        model = TransientVariable
        fields = ["name", "value", "created_at", "updated_at"]


class VariableWriteSerializer(serializers.Serializer):
    value = serializers.JSONField(allow_null=True)


class ExecutionPageSerializer(serializers.Serializer):
    results = ExecutionSerializer(many=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as ?cursor= for the next page."
    )


class VariablePageSerializer(serializers.Serializer):
    results = VariableSerializer(many=True)
