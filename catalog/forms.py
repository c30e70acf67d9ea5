"""The playbook editor of the admin: YAML in a code editor, validated by
the DSL parser with each issue shown at its line."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from catalog.dsl import Issue, PlaybookError, parse_playbook
from catalog.models import PlaybookVersion


class YamlEditor(forms.Textarea):
    """A textarea that CodeMirror (vendored, offline) turns into a YAML
    editor with line numbers; lines named in ``data-error-lines`` are
    marked. Without JavaScript it stays a plain textarea."""

    class Media:
        css = {
            "all": ["vendor/codemirror/lib/codemirror.css", "catalog/yaml_editor.css"]
        }
        js = [
            "vendor/codemirror/lib/codemirror.js",
            "vendor/codemirror/mode/yaml/yaml.js",
            "catalog/yaml_editor.js",
        ]

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(
            {"class": "noetl-yaml", "rows": 30, "cols": 100, "spellcheck": "false"}
            | (attrs or {})
        )


def issue_message(issue: Issue) -> str:
    where = issue.display_path()
    if issue.line is None:
        return f"{where}: {issue.message}"
    return f"Line {issue.line}: {where}: {issue.message}"


class PlaybookVersionForm(forms.ModelForm):
    content = forms.CharField(
        widget=YamlEditor,
        strip=False,
        help_text="Saving registers the text as a new version of its "
        "metadata.path; versions already registered never change.",
    )

    class Meta:
        model = PlaybookVersion
        fields = ["content"]

    def clean_content(self) -> str:
        text: str = self.cleaned_data["content"]
        try:
            self.parsed = parse_playbook(text)
        except PlaybookError as exc:
            lines = sorted({issue.line for issue in exc.issues if issue.line})
            widget = self.fields["content"].widget
            widget.attrs["data-error-lines"] = ",".join(str(n) for n in lines)
            raise ValidationError([issue_message(issue) for issue in exc.issues])
        return text
