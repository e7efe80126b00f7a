"""Writes of the call record: conversations, turns (from the event stream) and events.

The voice loop knows nothing of the database; the consumer hands every event it sends to
:func:`call_events_record`, which appends them to the event log and keeps the ``Turn`` rows
up to date as the call happens, so a crash mid-call keeps every earlier turn.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable
from pathlib import Path
from statistics import median
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from parley.agents.models import Agent, PromptVersion
from parley.agents.voice.metrics import TURN_LATENCY_COMPONENTS
from parley.conversations.models import AccessLog, CallEvent, Conversation, Recording, Turn
from parley.tools.models import Environment

logger = logging.getLogger(__name__)


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


def conversation_refuse(
    *,
    agent: Agent,
    prompt_version: PromptVersion | None,
    providers: dict[str, str],
    client: dict[str, Any],
    reason: str,
    environment: Environment | None = None,
) -> Conversation:
    """Record a call refused at connect (a call limit): a Conversation that ended as it
    started, ``status=error``, ``end_reason`` saying why. Analysts find refused calls next
    to the calls that ran; nothing else (turns, reports) is written for it."""
    now = timezone.now()
    return Conversation.objects.create(
        agent=agent,
        prompt_version=prompt_version,
        started_at=now,
        ended_at=now,
        status=Conversation.Status.ERROR,
        end_reason=reason[:200],
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
        updates = {name: data[name] for name in TURN_LATENCY_COMPONENTS if name in data}
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
    conversation = Conversation.objects.select_for_update().get(id=conversation_id)
    conversation.status = status
    conversation.end_reason = reason[:200]
    conversation.ended_at = timezone.now()
    conversation.save(update_fields=["status", "end_reason", "ended_at"])
    # Turns still open when the call ended (a dropped connection) are closed as they stand.
    conversation.turns.filter(ended_at__isnull=True).update(ended_at=conversation.ended_at)
    conversation_summary_update(conversation=conversation)
    transaction.on_commit(lambda: conversation_reports_queue(conversation_id=conversation_id))
    return conversation


def conversation_reports_queue(*, conversation_id: uuid.UUID) -> bool:
    """Queue the ended call's report files (``conversation_reports_write``); ``False`` when the
    broker is unreachable (Redis restarting: the publish gives up after about 2.5 s).

    Never raises: a call must end, and its caller hear ``call.ended``, whatever the broker
    does. Nothing is lost with a report that was not queued: the transcript and the latency
    report are built from the database when asked for (parley/conversations/reports.py), and
    the recovery task queues the missing files again (:func:`conversations_reports_requeue`).
    """
    from parley.conversations.tasks import conversation_reports_write

    try:
        conversation_reports_write.delay(str(conversation_id))
    except Exception:
        logger.warning("could not queue the reports of %s", conversation_id, exc_info=True)
        return False
    return True


def conversations_heartbeat(*, conversation_ids: Iterable[uuid.UUID]) -> int:
    """Mark the live calls a server process serves as alive now (one ``UPDATE``); returns how
    many rows were still ``active``. Called by parley.platform.lifecycle every interval."""
    return Conversation.objects.filter(
        id__in=list(conversation_ids), status=Conversation.Status.ACTIVE
    ).update(heartbeat_at=timezone.now())


def conversations_recover(
    *, stale_after_s: float, now: dt.datetime | None = None
) -> list[uuid.UUID]:
    """End, as ``aborted``, every ``active`` call whose server stopped beating its heartbeat
    more than ``stale_after_s`` seconds ago (the process died: killed, out of memory, host
    lost). Calls that no server process serves (no heartbeat: in-process text calls) are left
    alone. Returns the ids ended.

    Each call: ``ended_at`` = its last heartbeat, ``end_reason`` says so; turns left open are
    closed with status ``error`` (what was persisted of them stays); the summary columns are
    written (:func:`conversation_summary_update`) and its reports queued, as at a normal end.
    A call locked by a concurrent writer is left for the next run.
    """
    cutoff = (now or timezone.now()) - dt.timedelta(seconds=stale_after_s)
    candidates = Conversation.objects.filter(
        status=Conversation.Status.ACTIVE, heartbeat_at__lt=cutoff
    ).values_list("id", flat=True)
    ended: list[uuid.UUID] = []
    for conversation_id in list(candidates):
        with transaction.atomic():
            conversation = (
                Conversation.objects.select_for_update(skip_locked=True)
                .filter(
                    id=conversation_id, status=Conversation.Status.ACTIVE, heartbeat_at__lt=cutoff
                )
                .first()
            )
            if conversation is None:
                continue
            assert conversation.heartbeat_at is not None
            conversation.status = Conversation.Status.ABORTED
            conversation.ended_at = conversation.heartbeat_at
            conversation.end_reason = (
                "server lost: no heartbeat since "
                f"{conversation.heartbeat_at.isoformat(timespec='seconds')}"
            )
            conversation.save(update_fields=["status", "end_reason", "ended_at"])
            conversation.turns.filter(ended_at__isnull=True).update(
                status=Turn.Status.ERROR,
                error="the server serving the call was lost",
                ended_at=conversation.ended_at,
            )
            conversation_summary_update(conversation=conversation)
            transaction.on_commit(
                lambda cid=conversation_id: conversation_reports_queue(conversation_id=cid)
            )
        ended.append(conversation_id)
    return ended


def conversations_reports_requeue(
    *, older_than_s: float = 120.0, within_s: float = 86_400.0, limit: int = 100
) -> list[uuid.UUID]:
    """Queue again the report files of calls that ended between ``within_s`` and
    ``older_than_s`` seconds ago and still have none (their queueing failed: the broker was
    down at hang-up; or the task was lost with a Redis restart). At most ``limit`` calls, the
    oldest first; returns their ids. Run by the recovery task (Celery beat)."""
    now = timezone.now()
    missing = (
        Conversation.objects.exclude(status=Conversation.Status.ACTIVE)
        .exclude(ended_at=F("started_at"))  # refused at connect: no reports (conversation_refuse)
        .filter(
            latency_report_path="",
            ended_at__lt=now - dt.timedelta(seconds=older_than_s),
            ended_at__gte=now - dt.timedelta(seconds=within_s),
        )
        .order_by("ended_at")
        .values_list("id", flat=True)[:limit]
    )
    return [cid for cid in missing if conversation_reports_queue(conversation_id=cid)]


def conversation_summary_update(*, conversation: Conversation) -> Conversation:
    """Write the summary columns of ``conversation`` from its turns and tool calls.

    ``turn_count`` counts caller turns (index ≥ 1); ``ttfa_p50_ms``/``ttfa_max_ms`` are over
    every turn with a TTFA (the greeting's is ``None``); ``transcript_text`` is the caller's and
    the agent's words turn by turn (what the agent generated, including what barge-in cut off).
    Three queries. Called by :func:`conversation_end`; safe to call again.
    """
    turns = list(
        conversation.turns.order_by("index").values_list(
            "index", "status", "user_text", "agent_text", "ttfa_ms"
        )
    )
    tools = conversation.tool_calls.aggregate(
        total=Count("id"), errors=Count("id", filter=Q(status="error"))
    )
    ttfas = [t[4] for t in turns if t[4] is not None]
    lines: list[str] = []
    for _, _, user_text, agent_text, _ in turns:
        lines.extend(text for text in (user_text, agent_text) if text)
    conversation.turn_count = sum(1 for t in turns if t[0] > 0)
    conversation.interrupted_turns = sum(1 for t in turns if t[1] == Turn.Status.INTERRUPTED)
    conversation.tool_calls_count = tools["total"]
    conversation.tool_errors = tools["errors"]
    conversation.ttfa_p50_ms = round(median(ttfas), 1) if ttfas else None
    conversation.ttfa_max_ms = round(max(ttfas), 1) if ttfas else None
    conversation.transcript_text = "\n".join(lines)
    conversation.save(update_fields=SUMMARY_FIELDS)
    return conversation


SUMMARY_FIELDS = (
    "turn_count",
    "interrupted_turns",
    "tool_calls_count",
    "tool_errors",
    "ttfa_p50_ms",
    "ttfa_max_ms",
    "transcript_text",
)


def access_record(
    *,
    user: Any,
    action: str,
    channel: str,
    conversation_id: uuid.UUID | str | None = None,
    export_id: uuid.UUID | str | None = None,
    address: str = "",
    detail: dict[str, Any] | None = None,
) -> AccessLog:
    """Write one line of the access audit log: ``user`` did ``action`` (an
    ``AccessLog.Action``) through ``channel`` (``dashboard`` or ``api``). Raises
    ``ValueError`` for an unknown action or channel, so a typo cannot skip the audit."""
    if action not in AccessLog.Action.values:
        raise ValueError(f"unknown audit action {action!r}")
    if channel not in AccessLog.Channel.values:
        raise ValueError(f"unknown audit channel {channel!r}")
    return AccessLog.objects.create(
        user=user if getattr(user, "pk", None) else None,
        username=getattr(user, "get_username", lambda: "")() or "",
        action=action,
        channel=channel,
        conversation_id=conversation_id,
        export_id=export_id,
        address=address[:64],
        detail=detail or {},
    )


@transaction.atomic
def recording_register(
    *,
    conversation_id: uuid.UUID,
    path: str,
    sample_rate_hz: int,
    channels: int,
    duration_ms: float,
    size_bytes: int,
) -> Recording:
    """Record the finished WAV of a call; it expires after the agent's
    ``recording_retention_days`` (from now)."""
    conversation = Conversation.objects.select_related("agent").get(id=conversation_id)
    days = conversation.agent.recording_retention_days
    recording, _ = Recording.objects.update_or_create(
        conversation=conversation,
        defaults={
            "path": path,
            "sample_rate_hz": sample_rate_hz,
            "channels": channels,
            "duration_ms": round(duration_ms, 1),
            "size_bytes": size_bytes,
            "expires_at": timezone.now() + dt.timedelta(days=max(days, 1)),
            "deleted_at": None,
        },
    )
    return recording


def recordings_expire(*, now: dt.datetime | None = None) -> int:
    """Delete the files of recordings past ``expires_at``; keep their rows with
    ``deleted_at``. Returns how many were deleted. A file already gone counts as deleted."""
    now = now or timezone.now()
    expired = list(
        Recording.objects.filter(expires_at__lte=now, deleted_at__isnull=True).values_list(
            "pk", "path"
        )
    )
    for _, path in expired:
        Path(path).unlink(missing_ok=True)
    return Recording.objects.filter(pk__in=[pk for pk, _ in expired]).update(deleted_at=now)
