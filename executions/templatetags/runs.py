"""Template filters of the runs pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def duration(ms: float | None) -> str:
    """Milliseconds as a person reads them: 57 ms, 1.8 s, 3 min 4 s, 2 h 5 min
    (static/ui/live.js writes the same)."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
