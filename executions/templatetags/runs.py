"""Template filters of the runs pages."""

from __future__ import annotations

from django import template
from django.utils.html import format_html_join

from executions.layout import Bar

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


@register.filter
def chunk_bars(lane: list[Bar]) -> str:
    """One timeline lane's chunks of iterations as bars. Written here rather
    than in a template loop: a long loop draws hundreds of them."""
    return format_html_join(
        "",
        '<span class="bar status-{}" style="left: {}%; width: {}%" title="{}: {}">'
        "</span>",
        (
            (bar.status, bar.left, bar.width, bar.label, duration(bar.duration_ms))
            for bar in lane
        ),
    )
