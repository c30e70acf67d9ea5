"""Credentials and keychain entries: metadata readable, secrets write-only.

No serializer here has a field that reads a secret back: ``data`` and
``value`` are declared write-only and the encrypted columns are not fields.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from credentials import store
from credentials.models import Credential, KeychainEntry, KeychainScope
from executions.models import Execution


class CredentialSerializer(serializers.ModelSerializer):
    # A declared field, moved off the class by DRF's metaclass: it does not
    # shadow Serializer.data at run time; only the stubs see a clash.
    data = serializers.JSONField(  # type: ignore[assignment]
        write_only=True,
        help_text="The secret fields (a JSON object). Write-only: never returned.",
    )

    allowed_paths = serializers.ListField(
        child=serializers.CharField(max_length=500),
        required=False,
        help_text="Catalog path patterns of the playbooks that may use it "
        "(default ['*']: every playbook).",
    )

    class Meta:
        model = Credential
        fields = [
            "name",
            "type",
            "description",
            "allowed_paths",
            "data",
            "created_at",
            "updated_at",
        ]

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        if self.instance is not None:
            # The name is bound into the ciphertext: a credential is not renamed.
            fields["name"].read_only = True
            fields["data"].required = False
        return fields

    def validate_data(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not value:
            raise serializers.ValidationError("must be a non-empty JSON object")
        return value

    def validate_allowed_paths(self, value: Any) -> list[str]:
        try:
            return store.check_patterns(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def create(self, validated: dict[str, Any]) -> Credential:
        return store.save_credential(
            validated["name"],
            validated["type"],
            validated["data"],
            validated.get("description", ""),
            validated.get("allowed_paths"),
        )

    def update(self, instance: Credential, validated: dict[str, Any]) -> Credential:
        type_ = validated.get("type", instance.type)
        description = validated.get("description", instance.description)
        scope = validated.get("allowed_paths")
        if "data" in validated:
            return store.save_credential(
                instance.name, type_, validated["data"], description, scope
            )
        instance.type, instance.description = type_, description
        if scope is not None:
            instance.allowed_paths = scope
        instance.save(
            update_fields=["type", "description", "allowed_paths", "updated_at"]
        )
        return instance


class KeychainEntrySerializer(serializers.ModelSerializer):
    value = serializers.JSONField(
        write_only=True, help_text="The secret value. Write-only: never returned."
    )
    execution = serializers.PrimaryKeyRelatedField(
        queryset=Execution.objects.all(), required=False, allow_null=True
    )
    expired = serializers.SerializerMethodField()

    class Meta:
        model = KeychainEntry
        fields = [
            "id",
            "name",
            "scope",
            "execution",
            "value",
            "expires_at",
            "expired",
            "created_at",
            "updated_at",
        ]
        # Writing an existing (scope, execution, name) replaces that entry's
        # value, so the unique constraints need no validator here.
        validators: list[Any] = []

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        if self.instance is not None:
            # Name and scope are bound into the ciphertext: value and expiry change.
            for name in ("name", "scope", "execution"):
                fields[name].read_only = True
            fields["value"].required = False
        return fields

    def get_expired(self, obj: KeychainEntry) -> bool:
        from django.utils import timezone

        return obj.expires_at is not None and obj.expires_at <= timezone.now()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None:
            return attrs
        scope = attrs.get("scope", KeychainScope.GLOBAL)
        execution = attrs.get("execution")
        if scope == KeychainScope.EXECUTION and execution is None:
            raise serializers.ValidationError(
                {"execution": "an execution-scoped entry needs an execution"}
            )
        if scope == KeychainScope.GLOBAL and execution is not None:
            raise serializers.ValidationError(
                {"execution": "a global entry has no execution"}
            )
        return attrs

    def create(self, validated: dict[str, Any]) -> KeychainEntry:
        execution = validated.get("execution")
        return store.save_keychain_entry(
            validated["name"],
            validated["value"],
            scope=validated.get("scope", "global"),
            execution_id=execution.id if execution else None,
            expires_at=validated.get("expires_at"),
        )

    def update(
        self, instance: KeychainEntry, validated: dict[str, Any]
    ) -> KeychainEntry:
        expires_at = validated.get("expires_at", instance.expires_at)
        if "value" in validated:
            return store.save_keychain_entry(
                instance.name,
                validated["value"],
                scope=instance.scope,
                execution_id=instance.execution_id,
                expires_at=expires_at,
            )
        instance.expires_at = expires_at
        instance.save(update_fields=["expires_at", "updated_at"])
        return instance
