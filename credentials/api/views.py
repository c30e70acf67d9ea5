"""Credentials and keychain entries over REST (secrets write-only)."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import permissions, viewsets
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts import audit
from credentials.api.serializers import CredentialSerializer, KeychainEntrySerializer
from credentials.models import Credential, KeychainEntry
from noetl_site import access
from noetl_site.api import IsAuthenticatedUnlessDisabled


class SecretsPermission(permissions.BasePermission):
    """Reading metadata needs view_credential; writing needs change_credential
    (Django model permissions, granted to groups in the admin)."""

    message = "permission denied: credentials and the keychain"

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return access.can_view_secrets_metadata(request.user)
        return access.can_manage_secrets(request.user)


ALLOWED = [IsAuthenticatedUnlessDisabled, SecretsPermission]


class CredentialViewSet(viewsets.ModelViewSet):
    serializer_class = CredentialSerializer
    queryset = Credential.objects.order_by("name")
    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    permission_classes = ALLOWED

    def perform_destroy(self, instance: Credential) -> None:
        audit.record("credential.deleted", instance.name)
        instance.delete()

    def perform_create(self, serializer: CredentialSerializer) -> None:
        self._written(serializer.save())

    def perform_update(self, serializer: CredentialSerializer) -> None:
        self._written(serializer.save())

    def _written(self, credential: Credential) -> None:
        # The scope decides which playbooks get the secret: a permission change.
        audit.record(
            "credential.written",
            credential.name,
            allowed_paths=credential.allowed_paths,
        )


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("scope", str, enum=["global", "execution"]),
            OpenApiParameter("execution", str, description="entries of one execution"),
        ]
    )
)
class KeychainViewSet(viewsets.ModelViewSet):
    serializer_class = KeychainEntrySerializer
    permission_classes = ALLOWED

    def get_queryset(self) -> QuerySet[KeychainEntry]:
        rows = KeychainEntry.objects.order_by("name", "id")
        scope = self.request.query_params.get("scope")
        if scope:
            rows = rows.filter(scope=scope)
        execution = self.request.query_params.get("execution")
        if execution:
            rows = rows.filter(execution_id=execution)
        return rows
