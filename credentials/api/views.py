"""Credentials and keychain entries over REST (secrets write-only)."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets

from credentials.api.serializers import CredentialSerializer, KeychainEntrySerializer
from credentials.models import Credential, KeychainEntry


class CredentialViewSet(viewsets.ModelViewSet):
    serializer_class = CredentialSerializer
    queryset = Credential.objects.order_by("name")
    lookup_field = "name"
    lookup_value_regex = "[^/]+"


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

    def get_queryset(self) -> QuerySet[KeychainEntry]:
        rows = KeychainEntry.objects.order_by("name", "id")
        scope = self.request.query_params.get("scope")
        if scope:
            rows = rows.filter(scope=scope)
        execution = self.request.query_params.get("execution")
        if execution:
            rows = rows.filter(execution_id=execution)
        return rows
