"""Writes of the call record: conversations, turns (from the event stream) and events.

The voice loop knows nothing of the database; the consumer hands every event it sends to
:func:`call_events_record`, which appends them to the event log and keeps the ``Turn`` rows
up to date as the call happens, so a crash mid-call keeps every earlier turn.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from parley.agents.models import Agent, PromptVersion
from parley.agents.voice.metrics import CLIENT_LATENCY_COMPONENTS, LATENCY_COMPONENTS
from parley.conversations.models import CallEvent, Conversation, Turn
from parley.tools.models import Environment


@transaction.atomic
def conversation_start(
    *,
    agent: Agent,
    prompt_version: PromptVersion | None,
    providers: dict[str, str],
    client: dict[str, Any],
    environment: Environment | None = None,
) -> Conversation:
    """``environment``: the sandbox the call's tools run in (``None``: live data)."""
    return Conversation.objects.create(
        agent=agent,
        prompt_version=prompt_version,
        started_at=timezone.now(),
        providers=providers,
        client=client,
        environment=environment,
    )


@transaction.atomic
def call_events_record(
    *,
    conversation_id: uuid.UUID,
    started_at: dt.datetime,
    events: Iterable[tuple[int, dict[str, Any]]],
) -> None:
    """Append ``(seq, event_json)`` pairs to the log and apply them to the turn rows.

    ``event_json`` is the event exactly as sent to the caller (``type``, ``turn``, ``t_ms``
    and its fields). Idempotent per ``seq``.
    """
    rows = []
    for seq, event in events:
        data = {k: v for k, v in event.items() if k not in ("type", "turn", "t_ms")}
        rows.append(
            CallEvent(
                conversation_id=conversation_id,
                seq=seq,
                turn_index=event["turn"],
                type=event["type"],
                t_ms=event["t_ms"],
                data=data,
            )
        )
        _turn_apply(conversation_id, started_at, event, data)
    CallEvent.objects.bulk_create(rows, ignore_conflicts=True)


def _turn_apply(
    conversation_id: uuid.UUID, started_at: dt.datetime, event: dict[str, Any], data: dict[str, Any]
) -> None:
    kind = event["type"]
    at = started_at + dt.timedelta(milliseconds=event["t_ms"])
    if kind == "turn.started":
        Turn.objects.get_or_create(
            conversation_id=conversation_id,
            index=event["turn"],
            defaults={"started_at": at, "status": Turn.Status.LISTENING},
        )
        return
    updates: dict[str, Any] = {}
    if kind == "transcript.final":
        updates = {"user_text": data.get("text", ""), "status": Turn.Status.RESPONDING}
    elif kind == "turn.metrics":
        names = (*LATENCY_COMPONENTS, *CLIENT_LATENCY_COMPONENTS)
        updates = {name: data[name] for name in names if name in data}
    elif kind == "playback.started":  # the widget's report; may come after turn.ended
        updates = {
            "ear_ttfa_ms": data.get("ear_ttfa_ms"),
            "playout_delay_ms": data.get("playout_delay_ms"),
            "network_rtt_ms": data.get("rtt_ms"),
        }
    elif kind == "turn.ended":
        status = data.get("status", "completed")
        updates = {
            "status": status if status in Turn.Status.values else Turn.Status.COMPLETED,
            "user_text": data.get("user_text", ""),
            "agent_text": data.get("agent_text", ""),
            "spoken_text": data.get("spoken_text", ""),
            "user_speech_ms": data.get("user_speech_ms"),
            "agent_audio_ms": data.get("agent_audio_ms"),
            "llm_steps": data.get("llm_steps", 0),
            "routing": data.get("routing") or [],
            "error": data.get("error", ""),
            "ended_at": at,
        }
    if updates:
        Turn.objects.filter(conversation_id=conversation_id, index=event["turn"]).update(**updates)


@transaction.atomic
def conversation_end(*, conversation_id: uuid.UUID, status: str, reason: str) -> Conversation:
    """Mark the call ended and queue its reports once the transaction commits."""
    from parley.conversations.tasks import conversation_reports_write

    conversation = Conversation.objects.select_for_update().get(id=conversation_id)
    conversation.status = status
    conversation.end_reason = reason[:200]
    conversation.ended_at = timezone.now()
    conversation.save(update_fields=["status", "end_reason", "ended_at"])
    # Turns still open when the call ended (a dropped connection) are closed as they stand.
    conversation.turns.filter(ended_at__isnull=True).update(ended_at=conversation.ended_at)
    transaction.on_commit(lambda: conversation_reports_write.delay(str(conversation_id)))
    return conversation
