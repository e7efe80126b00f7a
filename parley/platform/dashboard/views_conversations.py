"""Analyst pages: the conversation list (filters, search) and one conversation's timeline,
recording and reports. Every view or download of a conversation is written to the access
audit log (``AccessLog``)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse

from parley.agents.models import Agent, Scenario
from parley.conversations.models import AccessLog, Conversation, Recording
from parley.conversations.reports import conversation_latency_report, conversation_transcript_jsonl
from parley.conversations.selectors import (
    ConversationTimeline,
    conversation_get,
    conversation_search,
    conversation_timeline,
)
from parley.conversations.services import access_record
from parley.platform.dashboard.forms import ConversationFilterForm
from parley.platform.dashboard.pages import LATENCY_LABELS, render_page
from parley.platform.dashboard.roles import role_required
from parley.platform.http import client_address, download_starts, ranged_file_response

CONVERSATIONS_PER_PAGE = 50

#: Per-turn latency bars of the timeline: (Turn field, label, what it measures); the widget's
#: playout delay and round trip are parts of "TTFA at ear", not bars of their own.
LATENCY_BARS = tuple(
    (name, *LATENCY_LABELS[name])
    for name in LATENCY_LABELS
    if name not in ("playout_delay_ms", "network_rtt_ms")
)

#: This module's pages sit under "Conversations" in the sidebar.
_page = functools.partial(render_page, section="conversations")


def _audit(request: HttpRequest, action: str, conversation: Conversation, **detail: Any) -> None:
    access_record(
        user=request.user,
        action=action,
        channel=AccessLog.Channel.DASHBOARD,
        conversation_id=conversation.pk,
        address=client_address(request),
        detail=detail,
    )


def _conversation(conversation_id: Any) -> Conversation:
    conversation = conversation_get(conversation_id=conversation_id)
    if conversation is None:
        raise Http404("no such conversation")
    return conversation


@role_required("read")
def conversation_list_view(request: HttpRequest) -> HttpResponse:
    """Conversations, newest first, narrowed by the filter form (GET parameters)."""
    agents = list(Agent.objects.order_by("name").only("slug", "name"))
    scenarios = list(Scenario.objects.order_by("name").only("slug", "name"))
    form = ConversationFilterForm(request.GET or None, agents=agents, scenarios=scenarios)
    filters = form.filters() if form.is_bound and form.is_valid() else None
    if form.is_bound and not form.is_valid():
        page = Paginator(Conversation.objects.none(), CONVERSATIONS_PER_PAGE).get_page(1)
    else:
        page = Paginator(conversation_search(filters), CONVERSATIONS_PER_PAGE).get_page(
            request.GET.get("page")
        )
    query = {k: v for k, v in request.GET.items() if k != "page" and v}
    return _page(
        request,
        "conversation_list.html",
        {
            "page": page,
            "form": form,
            "filtered": bool(filters and any(query)),
            "query": urlencode(query),
            "agents": agents,
        },
    )


@role_required("read")
def conversation_detail(request: HttpRequest, conversation_id: Any) -> HttpResponse:
    """One call: turns with texts, tool calls, routing, errors and latency bars, and the
    recording with turn markers."""
    try:
        timeline = conversation_timeline(conversation_id=conversation_id)
    except Conversation.DoesNotExist as exc:
        raise Http404("no such conversation") from exc
    _audit(request, AccessLog.Action.VIEW, timeline.conversation)
    rows = _turn_rows(timeline)
    return _page(
        request,
        "conversation_detail.html",
        {
            "timeline": timeline,
            "conversation": timeline.conversation,
            "turns": rows,
            "markers": _markers(rows, recording=timeline.recording),
            "latency_bars": LATENCY_BARS,
        },
    )


def _turn_rows(timeline: ConversationTimeline) -> list[dict[str, Any]]:
    """Per turn: the row, its offset in the call (ms, the recording's clock), the text cut
    off by barge-in, and its latency bars scaled to the call's slowest figure."""
    conversation = timeline.conversation
    scale = max(
        [getattr(turn, name) or 0.0 for turn in timeline.turns for name, _, _ in LATENCY_BARS]
        + [1.0]
    )
    rows = []
    for turn in timeline.turns:
        offset_ms = (turn.started_at - conversation.started_at).total_seconds() * 1000
        cut_off = ""
        if turn.status == "interrupted" and turn.agent_text.startswith(turn.spoken_text):
            cut_off = turn.agent_text[len(turn.spoken_text) :].strip()
        values = (
            (name, label, help_text, getattr(turn, name)) for name, label, help_text in LATENCY_BARS
        )
        bars = [
            {
                "name": name,
                "label": label,
                "help": help_text,
                "value": value,
                "percent": round(100 * value / scale, 1),
            }
            for name, label, help_text, value in values
            if value is not None
        ]
        rows.append(
            {
                "turn": turn,
                "offset_ms": max(offset_ms, 0.0),
                "cut_off": cut_off,
                "bars": bars,
                "tool_calls": [
                    {"call": call, "arguments": _pretty(call.arguments, call.arguments_raw)}
                    for call in turn.tool_calls_list  # type: ignore[attr-defined]
                ],
                "events": turn.events_list,  # type: ignore[attr-defined]
            }
        )
    return rows


def _markers(rows: list[dict[str, Any]], *, recording: Recording | None) -> list[dict[str, Any]]:
    """Turn markers on the recording (from :func:`_turn_rows`): offset (ms) and a label."""
    if recording is None or not recording.duration_ms:
        return []
    duration = recording.duration_ms
    return [
        {
            "index": row["turn"].index,
            "at_ms": round(row["offset_ms"]),
            "percent": round(100 * row["offset_ms"] / duration, 2),
            "label": "Greeting" if row["turn"].index == 0 else f"Turn {row['turn'].index}",
        }
        for row in rows
        if row["offset_ms"] <= duration
    ]


def _pretty(parsed: Any, raw: str) -> str:
    if parsed is None:
        return raw
    return json.dumps(parsed, indent=2, ensure_ascii=False)


@role_required("read")
def conversation_recording(request: HttpRequest, conversation_id: Any) -> HttpResponse:
    """The call's stereo WAV, with byte ranges (the player seeks). Audited once per playback
    (the request for the start of the file), not per range the player asks for."""
    conversation = _conversation(conversation_id)
    recording = getattr(conversation, "recording", None)
    if recording is None or not recording.available or not Path(recording.path).is_file():
        raise Http404("this call has no recording (not recorded, or deleted by retention)")
    download = request.GET.get("download") == "1"
    if download_starts(request):
        _audit(request, AccessLog.Action.RECORDING, conversation, download=download)
    return ranged_file_response(
        request,
        Path(recording.path),
        content_type="audio/wav",
        filename=f"parley-{conversation.pk}.wav" if download else None,
    )


@role_required("read")
def conversation_transcript(request: HttpRequest, conversation_id: Any) -> HttpResponse:
    """The JSONL transcript (docs/transcript-format.md): the file Celery wrote at hang-up, or
    built from the event log while the call is live or before the report task ran."""
    conversation = _conversation(conversation_id)
    _audit(request, AccessLog.Action.TRANSCRIPT, conversation)
    body = conversation_transcript_jsonl(conversation)
    response = HttpResponse(body, content_type="application/x-ndjson")
    response["Content-Disposition"] = f'attachment; filename="parley-{conversation.pk}.jsonl"'
    return response


@role_required("read")
def conversation_latency(request: HttpRequest, conversation_id: Any) -> HttpResponse:
    """The call's latency report (``parley-latency/v1``) as JSON."""
    conversation = _conversation(conversation_id)
    _audit(request, AccessLog.Action.LATENCY_REPORT, conversation)
    report = conversation.latency_report or conversation_latency_report(conversation)
    response = HttpResponse(json.dumps(report, indent=2) + "\n", content_type="application/json")
    response["Content-Disposition"] = (
        f'attachment; filename="parley-{conversation.pk}-latency.json"'
    )
    return response
