"""Tool-call records: a ToolCall row is written before a tool runs and completed after."""

from __future__ import annotations

import json
import uuid

from django.db import transaction
from django.utils import timezone

from parley.conversations.models import Turn
from parley.tools.models import ToolCall
from parley.tools.registry import ToolOutcome, tool_run


@transaction.atomic
def tool_call_start(
    *, conversation_id: uuid.UUID, turn_index: int, call_id: str, name: str, arguments_raw: str
) -> ToolCall:
    """Record a tool call the LLM requested, before anything runs (status ``running``)."""
    try:
        parsed = json.loads(arguments_raw) if arguments_raw.strip() else {}
    except ValueError:
        parsed = None
    turn = Turn.objects.filter(conversation_id=conversation_id, index=turn_index).first()
    call, _ = ToolCall.objects.get_or_create(
        conversation_id=conversation_id,
        call_id=call_id,
        defaults={
            "turn": turn,
            "name": name,
            "arguments_raw": arguments_raw,
            "arguments": parsed,
            "started_at": timezone.now(),
        },
    )
    return call


def tool_call_execute(
    *, tool_call_id: int, scenario: str, allowed: list[str] | None
) -> ToolOutcome:
    """Run a recorded tool call and store its outcome. Idempotent: a finished call is not rerun."""
    call = ToolCall.objects.get(id=tool_call_id)
    if call.status != ToolCall.Status.RUNNING:
        return ToolOutcome(
            ok=call.status == ToolCall.Status.OK, content=call.result, error=call.error
        )
    outcome = tool_run(
        scenario=scenario, name=call.name, arguments=call.arguments_raw, allowed=allowed
    )
    tool_call_finish(tool_call_id=call.id, outcome=outcome)
    return outcome


@transaction.atomic
def tool_call_finish(*, tool_call_id: int, outcome: ToolOutcome) -> ToolCall:
    call = ToolCall.objects.select_for_update().get(id=tool_call_id)
    call.status = ToolCall.Status.OK if outcome.ok else ToolCall.Status.ERROR
    call.result = outcome.content
    call.error = outcome.error
    call.finished_at = timezone.now()
    call.duration_ms = (call.finished_at - call.started_at).total_seconds() * 1000
    call.save(update_fields=["status", "result", "error", "finished_at", "duration_ms"])
    return call
