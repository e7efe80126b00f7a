"""Template filters of the dashboard: latencies, call durations, initials, LLM failovers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import template
from django.utils import timezone

register = template.Library()

#: Shown where there is no figure (a thin space keeps it from touching the column edge).
NONE = "—"


@register.filter
def ms(value: float | None) -> str:
    """``312.4`` → ``"312 ms"``; ``None`` → ``"—"``."""
    if value is None or value == "":
        return NONE
    return f"{round(float(value)):,} ms"


@register.filter
def call_duration(conversation: Any) -> str:
    """How long a conversation lasted: ``"1 min 05 s"``, ``"42 s"``; ``"—"`` while active."""
    if conversation.ended_at is None or conversation.started_at is None:
        return NONE
    return duration(conversation.ended_at - conversation.started_at)


@register.filter
def duration(value: dt.timedelta | None) -> str:
    if value is None:
        return NONE
    seconds = max(0, round(value.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def ago(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """How long ago: ``"just now"``, ``"5 min ago"``, ``"3 h ago"``, ``"2 days ago"``, then
    the date (``"Mar 4, 2026"``)."""
    if value is None:
        return NONE
    seconds = ((now or timezone.now()) - value).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 7 * 86400:
        days = int(seconds // 86400)
        return f"{days} day{'s' if days > 1 else ''} ago"
    return f"{value:%b} {value.day}, {value.year}"


@register.filter
def initials(user: Any) -> str:
    """Up to two letters for the avatar: first and last name, else the username."""
    name = (user.get_full_name() or user.get_username() or "?").strip()
    parts = [p for p in name.replace(".", " ").replace("_", " ").split() if p]
    letters = "".join(p[0] for p in parts[:2]) if len(parts) > 1 else name[:2]
    return letters.upper()


@register.filter
def clock(value_ms: float | None) -> str:
    """An offset in ms as ``m:ss.s`` (``72500`` → ``"1:12.5"``)."""
    if value_ms is None or value_ms == "":
        return NONE
    tenths = round(float(value_ms) / 100)
    minutes, tenths = divmod(tenths, 600)
    return f"{minutes}:{tenths // 10:02d}.{tenths % 10}"


#: How an LLM server failed, in words (the ``outcome`` of an ``llm.failover`` event:
#: parley/agents/voice/llm/fleet.py).
FAILOVER_OUTCOMES = {
    "error": "failed",
    "ttft_deadline": "sent no first token in time",
    "broken_stream": "broke off mid-reply",
    "stall": "stalled mid-reply",
}


@register.filter
def failover_outcome(outcome: str | None) -> str:
    """An ``llm.failover`` event's ``outcome`` in words (``"stall"`` → ``"stalled mid-reply"``);
    an unknown one as it is."""
    if not outcome:
        return "failed"
    return FAILOVER_OUTCOMES.get(outcome, outcome.replace("_", " "))
