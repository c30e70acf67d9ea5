from __future__ import annotations

from typing import Any

from rest_framework import serializers

from catalog.dsl import Issue
from catalog.models import PlaybookVersion


class PlaybookVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = PlaybookVersion
        fields = ["path", "version", "name", "digest", "created_at"]


class PlaybookDetailSerializer(PlaybookVersionSerializer):
    warnings = serializers.SerializerMethodField()

    class Meta(PlaybookVersionSerializer.Meta):
        fields = [*PlaybookVersionSerializer.Meta.fields, "warnings", "content"]

    def get_warnings(self, obj: PlaybookVersion) -> list[dict[str, Any]]:
        return list((obj.parsed or {}).get("warnings") or [])


class RegisteredSerializer(PlaybookDetailSerializer):
    """A registration's answer: the version, and whether it is new."""

    created = serializers.SerializerMethodField()

    class Meta(PlaybookDetailSerializer.Meta):
        fields = [*PlaybookVersionSerializer.Meta.fields, "warnings", "created"]

    def get_created(self, obj: PlaybookVersion) -> bool:
        return bool(self.context.get("created"))


class RegisterSerializer(serializers.Serializer):
    content = serializers.CharField(
        trim_whitespace=False, help_text="The playbook's YAML text."
    )


def issue_data(issue: Issue) -> dict[str, Any]:
    """One parser issue as JSON: where (YAML path, line) and what."""
    return {
        "path": issue.path,
        "line": issue.line,
        "message": issue.message,
        "context": issue.context,
        "text": str(issue),
    }


class PlaybookPageSerializer(serializers.Serializer):
    results = PlaybookVersionSerializer(many=True)
    next_after = serializers.CharField(
        allow_null=True, required=False, help_text="Pass as ?after= for the next page."
    )
