"""Reads of the call record for analysts: the filtered, searchable conversation list and one
conversation's timeline. Shared by the dashboard and the API so both filter the same way.

Full-text search uses PostgreSQL's ``to_tsvector('english', transcript_text)`` (a GIN index,
migration 0005) with ``websearch_to_tsquery`` syntax (words, "quoted phrases", -not, or); on
SQLite (the embedded default) it falls back to a case-insensitive substring match.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import Prefetch, QuerySet

from parley.conversations.models import CallEvent, Conversation, Recording, Turn
from parley.tools.models import ToolCall

#: Outcomes an analyst filters on (``ConversationFilters.outcome``).
OUTCOMES = {
    "ended": "Ended normally",
    "error": "Ended with an error",
    "aborted": "Ended abnormally (server lost)",
    "interrupted": "Caller interrupted the agent",
    "active": "In progress",
}

#: The configuration of the transcript search index; the query must use the same one.
SEARCH_CONFIG = "english"


@dataclass(frozen=True)
class ConversationFilters:
    """What the conversation list is narrowed to; every field optional.

    ``since``/``until``: ``started_at`` in [since, until). ``outcome``: a key of
    :data:`OUTCOMES`. ``tool_errors``: only calls with at least one failed tool call.
    ``ttfa_above_ms``: only calls whose slowest turn TTFA exceeded it. ``q``: full-text search
    over what the caller and the agent said.
    """

    agent: str | None = None  # slug
    scenario: str | None = None  # slug
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    outcome: str | None = None
    tool_errors: bool = False
    ttfa_above_ms: float | None = None
    q: str = ""

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; one of {', '.join(OUTCOMES)}")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("the start of the date range must come before its end")
        if self.ttfa_above_ms is not None and self.ttfa_above_ms < 0:
            raise ValueError("the TTFA threshold must be a positive number of ms")


def conversation_search(filters: ConversationFilters | None = None) -> QuerySet[Conversation]:
    """Conversations matching ``filters``, newest first, with their agent and scenario.

    One query per page (plus the count of a paginator): the filters read the summary columns
    written at hang-up, never the turns. Raises nothing; bad filter values are refused by
    :class:`ConversationFilters`.
    """
    f = filters or ConversationFilters()
    qs = Conversation.objects.select_related("agent__scenario").defer(
        "transcript_text", "latency_report", "providers", "client"
    )
    if f.agent:
        qs = qs.filter(agent__slug=f.agent)
    if f.scenario:
        qs = qs.filter(agent__scenario__slug=f.scenario)
    if f.since:
        qs = qs.filter(started_at__gte=f.since)
    if f.until:
        qs = qs.filter(started_at__lt=f.until)
    if f.outcome == "interrupted":
        qs = qs.filter(interrupted_turns__gt=0)
    elif f.outcome:
        qs = qs.filter(status=f.outcome)
    if f.tool_errors:
        qs = qs.filter(tool_errors__gt=0)
    if f.ttfa_above_ms is not None:
        qs = qs.filter(ttfa_max_ms__gt=f.ttfa_above_ms)
    if f.q.strip():
        qs = _search(qs, f.q.strip())
    return qs.order_by("-started_at")


def _search(qs: QuerySet[Conversation], text: str) -> QuerySet[Conversation]:
    if connection.vendor == "postgresql":
        # Must match the index expression of migration 0005 exactly to use it.
        return qs.annotate(search=SearchVector("transcript_text", config=SEARCH_CONFIG)).filter(
            search=SearchQuery(text, config=SEARCH_CONFIG, search_type="websearch")
        )
    return qs.filter(transcript_text__icontains=text)


def conversation_get(*, conversation_id: Any) -> Conversation | None:
    """One conversation with its agent, scenario and prompt version, or ``None``."""
    return (
        Conversation.objects.select_related("agent__scenario", "prompt_version")
        .filter(id=conversation_id)
        .first()
    )


@dataclass(frozen=True)
class ConversationTimeline:
    """One conversation as the detail page and the API show it.

    ``turns``: its turns in order, each with ``tool_calls_list`` (its ToolCall rows, in order)
    and ``events_list`` (its events of :data:`TIMELINE_EVENT_TYPES`); ``recording``: the
    Recording row or ``None``.
    """

    conversation: Conversation
    turns: list[Turn]
    recording: Recording | None

    errors: list[CallEvent]  # every error event of the call, turn or not, in order


#: Events of a turn the timeline shows besides its text (errors, fallbacks, notices, an LLM
#: request moved to another server: ``llm.failover``, docs/fleet.md).
TIMELINE_EVENT_TYPES = ("error", "tts.fallback", "stt.notice", "interrupted", "llm.failover")


def conversation_timeline(*, conversation_id: Any) -> ConversationTimeline:
    """Load a conversation, its turns with their tool calls and notable events: 4 queries.

    Raises ``Conversation.DoesNotExist``.
    """
    conversation = Conversation.objects.select_related(
        "agent__scenario", "prompt_version", "environment"
    ).get(id=conversation_id)
    turns = list(
        conversation.turns.order_by("index").prefetch_related(
            Prefetch(
                "tool_calls",
                queryset=ToolCall.objects.order_by("started_at", "id"),
                to_attr="tool_calls_list",
            )
        )
    )
    events = list(conversation.events.filter(type__in=TIMELINE_EVENT_TYPES).order_by("seq"))
    by_turn: dict[int, list[CallEvent]] = {}
    for event in events:
        by_turn.setdefault(event.turn_index, []).append(event)
    for turn in turns:
        turn.events_list = by_turn.get(turn.index, [])  # type: ignore[attr-defined]
    recording = Recording.objects.filter(conversation=conversation).first()
    return ConversationTimeline(
        conversation=conversation,
        turns=turns,
        recording=recording,
        errors=[e for e in events if e.type == "error"],
    )
