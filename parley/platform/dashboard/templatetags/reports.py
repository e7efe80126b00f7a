"""Template filters of the Reports and Exports pages: rates as percentages, file sizes."""

from __future__ import annotations

from django import template

register = template.Library()

NONE = "—"


@register.filter
def percent(rate: float | None) -> str:
    """``0.1234`` → ``"12.3 %"``; ``None`` (nothing to divide by) → ``"—"``."""
    if rate is None or rate == "":
        return NONE
    return f"{float(rate) * 100:.1f} %"


@register.filter
def filesize(size: int | None) -> str:
    """Bytes as ``"512 B"``, ``"12.3 KB"``, ``"4.1 MB"``, ``"1.2 GB"`` (powers of 1000)."""
    if size is None or size == "":
        return NONE
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
