"""Problems found in a playbook, each tied to a YAML path and line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The segment after which a context note such as "(step 'fetch')" is shown.
_OWNER_SEGMENT = re.compile(r"^(?:workflow|workbook)\[\d+\]")


@dataclass(frozen=True)
class Issue:
    """One problem: where it is (YAML path and 1-based line) and what it is."""

    path: str
    line: int | None
    message: str
    # Names the step or workbook task the path runs through, e.g. "step 'fetch'".
    # Only for display: two issues at the same place are the same issue.
    context: str | None = field(default=None, compare=False)

    def display_path(self) -> str:
        path = self.path or "<document>"
        if not self.context:
            return path
        note = f" ({self.context})"
        owner = _OWNER_SEGMENT.match(path)
        if owner is None:
            return path + note
        return path[: owner.end()] + note + path[owner.end() :]

    def __str__(self) -> str:
        where = self.display_path()
        if self.line is not None:
            where += f" (line {self.line})"
        return f"{where}: {self.message}"

    def as_warning(self) -> dict[str, object]:
        """The JSON form kept in the normalised playbook's `warnings` list."""
        message = f"{self.context}: {self.message}" if self.context else self.message
        return {"path": self.path, "line": self.line, "message": message}


class PlaybookError(Exception):
    """The playbook was rejected; `issues` lists every problem found.

    `warnings` holds what was noticed besides (often the cause of an error,
    e.g. a tool parameter written at step level), and is not part of str(e).
    """

    def __init__(
        self, issues: list[Issue], warnings: list[Issue] | None = None
    ) -> None:
        self.issues = list(issues)
        self.warnings = list(warnings or [])
        super().__init__("\n".join(str(issue) for issue in self.issues))
