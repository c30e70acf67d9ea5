"""Playbooks in the admin: write or edit YAML, save it as a new version
(registered versions are immutable), and start runs of a version."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from catalog import services as catalog
from catalog.forms import PlaybookVersionForm
from catalog.models import PlaybookVersion
from executions import control
from noetl_site import access
from noetl_site.admin_tools import PathScoped, adopt


@admin.register(PlaybookVersion)
class PlaybookVersionAdmin(PathScoped, admin.ModelAdmin):
    form = PlaybookVersionForm
    list_display = ["path", "version", "name", "created_at"]
    list_display_links = ["path", "version"]
    search_fields = ["path", "name"]
    readonly_fields = ["path", "version", "name", "digest", "created_at"]
    ordering = ["path", "-version"]
    actions = ["run"]

    def get_fields(
        self, request: HttpRequest, obj: PlaybookVersion | None = None
    ) -> list[str]:
        if obj is None:
            return ["content"]
        return [*self.readonly_fields, "content"]

    def save_model(
        self,
        request: HttpRequest,
        obj: PlaybookVersion,
        form: PlaybookVersionForm,
        change: bool,
    ) -> None:
        path = form.parsed["path"]
        if not access.can_modify(request.user, path):
            raise PermissionDenied(f"you may not modify {path}")

        # Never obj.save(): an edit registers the text as a version of its
        # own, and the form's object becomes that version.
        version, created = catalog.register(form.cleaned_data["content"])
        adopt(obj, version)
        if created and change:
            self.message_user(
                request, f"Saved as a new version: {version}.", messages.SUCCESS
            )
        elif not created:
            self.message_user(
                request,
                f"The content is unchanged: it is already {version}.",
                messages.INFO,
            )

    def response_change(
        self, request: HttpRequest, obj: PlaybookVersion
    ) -> HttpResponse:
        response = super().response_change(request, obj)
        if "_continue" in request.POST:
            # "Save and continue" goes on with the version just saved, which
            # is usually not the one whose page was posted.
            url = reverse("admin:catalog_playbookversion_change", args=[obj.pk])
            return HttpResponseRedirect(url)
        return response

    @admin.action(description="Run the selected versions (default workload)")
    def run(self, request: HttpRequest, queryset: QuerySet[PlaybookVersion]) -> None:
        for version in queryset.order_by("path", "version"):
            if not access.can_execute(request.user, version.path):
                self.message_user(
                    request, f"You may not run {version.path}.", messages.ERROR
                )
                continue
            execution, _ = control.start(
                version.path,
                version.version,
                {},
                user=request.user,
                trigger={"kind": "admin"},
            )
            url = reverse("admin:executions_execution_change", args=[execution.id])
            self.message_user(
                request,
                format_html(
                    'Started {} as <a href="{}">{}</a>.', version, url, execution.id
                ),
                messages.SUCCESS,
            )
