"""The credential form of the admin: one set of fields per common type,
every secret write-only.

Nothing here ever puts stored data back into a form: the fields start empty
on every page. On a change, empty fields keep what is stored, and filled
ones replace just those values, so a password can be rotated alone.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from credentials.models import Credential

# type -> its data keys: (key, required on a new credential, secret)
FIELDS: dict[str, list[tuple[str, bool, bool]]] = {
    "postgres": [
        ("host", True, False),
        ("port", False, False),
        ("user", True, False),
        ("password", True, True),
        ("database", True, False),
    ],
    "bearer": [("token", True, True)],
    "basic": [("username", True, False), ("password", True, True)],
}
GENERIC = "json"
TYPE_LABELS = {
    "postgres": "PostgreSQL",
    "bearer": "HTTP bearer token",
    "basic": "HTTP basic auth",
    GENERIC: "Generic JSON",
}


def form_field(kind: str, key: str) -> str:
    return f"{kind}_{key}"


def _secret_input() -> forms.PasswordInput:
    # render_value=False: a submitted secret is not echoed back even when the
    # form is shown again with errors.
    return forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"})


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never shows a value, not even one just submitted."""

    def format_value(self, value: Any) -> None:
        return None


def _plain(label: str) -> forms.CharField:
    return forms.CharField(required=False, label=label)


def _secret(label: str) -> forms.CharField:
    # strip=False: spaces at either end may be part of a password.
    return forms.CharField(
        required=False, label=label, strip=False, widget=_secret_input()
    )


class CredentialForm(forms.ModelForm):
    """Fields are named ``<type>_<key>``; only the chosen type's are read."""

    type = forms.ChoiceField(choices=list(TYPE_LABELS.items()))
    postgres_host = _plain("Host")
    postgres_port = _plain("Port")
    postgres_user = _plain("User")
    postgres_password = _secret("Password")
    postgres_database = _plain("Database")
    bearer_token = _secret("Token")
    basic_username = _plain("Username")
    basic_password = _secret("Password")
    json_data = forms.CharField(
        required=False,
        label="Data (JSON object)",
        widget=WriteOnlyTextarea(attrs={"rows": 6, "autocomplete": "off"}),
    )
    allowed = forms.CharField(
        required=False,
        label="Playbooks allowed to use it",
        initial="*",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Catalog path patterns, one per line: finance/* is every "
        "playbook under finance/, * every playbook. Empty keeps the stored "
        "list (* for a new credential).",
    )

    class Meta:
        model = Credential
        fields = ["name", "type", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A type set through the API that this form has no fields for is
        # edited as generic JSON.
        if self.instance.pk:
            self.fields["allowed"].initial = "\n".join(self.instance.allowed_paths)
        current = self.instance.type if self.instance.pk else ""
        if current and current not in TYPE_LABELS:
            choices = [*TYPE_LABELS.items(), (current, f"{current} (JSON)")]
            self.fields["type"].choices = choices  # type: ignore[attr-defined]

    @property
    def stored(self) -> bool:
        return self.instance.pk is not None

    def clean_allowed(self) -> list[str]:
        lines = str(self.cleaned_data.get("allowed") or "").splitlines()
        patterns = [line.strip() for line in lines if line.strip()]
        if patterns:
            return patterns
        return list(self.instance.allowed_paths) if self.stored else ["*"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = cleaned.get("type") or ""
        data = self._json_data() if kind not in FIELDS else self._typed(kind)

        # A new credential, or one changing type, needs its whole data; an
        # edit of the same type may leave everything empty to keep it.
        replacing = not self.stored or kind != self.instance.type
        if replacing:
            self._require(kind, data)
        self.secret_data = data
        self.merge = not replacing and kind in FIELDS
        return cleaned

    def _typed(self, kind: str) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, _, _ in FIELDS[kind]:
            value = self.cleaned_data.get(form_field(kind, key)) or ""
            if value:
                data[key] = value
        if "port" in data:
            if not data["port"].isdigit():
                self.add_error(form_field(kind, "port"), "must be a number")
            else:
                data["port"] = int(data["port"])
        return data

    def _json_data(self) -> dict[str, Any]:
        raw = (self.cleaned_data.get("json_data") or "").strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            # The message names the position only, never the text.
            self.add_error("json_data", f"not valid JSON (line {exc.lineno})")
            return {}
        if not isinstance(value, dict) or not value:
            self.add_error("json_data", "must be a non-empty JSON object")
            return {}
        return value

    def _require(self, kind: str, data: dict[str, Any]) -> None:
        if kind not in FIELDS:
            if not data and "json_data" not in self.errors:
                self.add_error("json_data", "a new credential needs its data")
            return
        for key, required, _ in FIELDS[kind]:
            if required and key not in data:
                self.add_error(form_field(kind, key), "required for this type")
