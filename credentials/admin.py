"""Credentials and keychain entries in the admin. Secrets are write-only:
no page decrypts anything to show it, lists mask the data, and the history
records only which fields changed."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from accounts import audit
from credentials import store
from credentials.forms import (
    FIELDS,
    GENERIC,
    TYPE_LABELS,
    CredentialForm,
    form_field,
)
from credentials.models import Credential, KeychainEntry
from noetl_site.admin_tools import adopt

MASK = "••••••••"


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    form = CredentialForm
    list_display = ["name", "type", "description", "data", "updated_at"]
    list_filter = ["type"]
    search_fields = ["name", "description"]

    def get_fieldsets(
        self, request: HttpRequest, obj: Credential | None = None
    ) -> list[tuple[str | None, dict[str, Any]]]:
        note = (
            "Write-only: stored values are never shown. Leave fields empty to "
            "keep them; fill one to replace just that value."
            if obj
            else "Write-only: once saved, these values are never shown again."
        )
        sets: list[tuple[str | None, dict[str, Any]]] = [
            (None, {"fields": ["name", "type", "description", "allowed"]})
        ]
        groups = [
            (kind, [form_field(kind, key) for key, _, _ in specs])
            for kind, specs in FIELDS.items()
        ]
        groups.append((GENERIC, ["json_data"]))
        for kind, fields in groups:
            # On a change, the other types' fields fold away.
            current = (
                obj is None
                or obj.type == kind
                or (kind == GENERIC and obj.type not in FIELDS)
            )
            options = {"fields": fields, "description": note}
            if not current:
                options["classes"] = ["collapse"]
            sets.append((TYPE_LABELS[kind], options))
        if obj:
            sets.append(("Stored", {"fields": ["key_id", "created_at", "updated_at"]}))
        return sets

    def get_readonly_fields(
        self, request: HttpRequest, obj: Credential | None = None
    ) -> list[str]:
        # The name is bound into the ciphertext: a credential is not renamed.
        return ["name", "key_id", "created_at", "updated_at"] if obj else []

    @admin.display(description="Data")
    def data(self, obj: Credential) -> str:
        return MASK

    def save_model(
        self, request: HttpRequest, obj: Credential, form: CredentialForm, change: bool
    ) -> None:
        data = dict(form.secret_data)
        obj.allowed_paths = form.cleaned_data["allowed"]
        audit.record("credential.written", obj.name, allowed_paths=obj.allowed_paths)
        if change and not data:
            # Only the type, description or scope changed; the ciphertext stays.
            fields = ["type", "description", "allowed_paths", "updated_at"]
            obj.save(update_fields=fields)
            return
        if change and form.merge:
            # Read to merge, never to show: filled fields replace stored ones.
            stored = store.read_credential(obj.name)
            stored.pop("type", None)
            data = {**stored, **data}
        saved = store.save_credential(
            obj.name, obj.type, data, obj.description, obj.allowed_paths
        )
        adopt(obj, saved)


@admin.register(KeychainEntry)
class KeychainEntryAdmin(admin.ModelAdmin):
    """Cached tokens: expiry visible, values never; entries come from runs
    and the API, so the admin only reads and deletes them."""

    list_display = ["name", "scope", "execution", "expires_at", "expired", "updated_at"]
    list_filter = ["scope"]
    search_fields = ["name", "execution__id"]
    list_select_related = ["execution"]
    fields = [
        "name",
        "scope",
        "execution",
        "key_id",
        "expires_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: KeychainEntry | None = None
    ) -> bool:
        return False

    @admin.display(boolean=True)
    def expired(self, obj: KeychainEntry) -> bool:
        return obj.expires_at is not None and obj.expires_at <= timezone.now()
