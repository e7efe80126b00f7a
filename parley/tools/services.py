"""Tool-call records: a ToolCall row is written before a tool runs and completed after."""

from __future__ import annotations

import json
import uuid

from django.db import transaction
from django.utils import timezone

from parley.conversations.models import Turn
from parley.tools.environments import environment_activate
from parley.tools.models import Environment, ToolCall
from parley.tools.registry import ToolOutcome, tool_run


def _parsed(arguments_raw: str) -> object:
    try:
        return json.loads(arguments_raw) if arguments_raw.strip() else {}
    except ValueError:
        return None


@transaction.atomic
def tool_call_start(
    *,
    conversation_id: uuid.UUID,
    turn_index: int,
    call_id: str,
    name: str,
    arguments_raw: str,
    scenario: str = "",
    environment_id: uuid.UUID | None = None,
) -> ToolCall:
    """Record a tool call the LLM requested, before anything runs (status ``running``);
    ``environment_id``: the sandbox it runs in (``None``: live data)."""
    turn = Turn.objects.filter(conversation_id=conversation_id, index=turn_index).first()
    call, _ = ToolCall.objects.get_or_create(
        conversation_id=conversation_id,
        call_id=call_id,
        defaults={
            "turn": turn,
            "name": name,
            "arguments_raw": arguments_raw,
            "arguments": _parsed(arguments_raw),
            "scenario": scenario,
            "environment_id": environment_id,
            "started_at": timezone.now(),
        },
    )
    return call


def tool_call_record(
    *, scenario: str, name: str, arguments_raw: str, environment: Environment | None, call_id: str
) -> ToolCall:
    """Record a tool call made outside a conversation (a replay), status ``running``."""
    return ToolCall.objects.create(
        conversation=None,
        call_id=call_id,
        name=name,
        arguments_raw=arguments_raw,
        arguments=_parsed(arguments_raw),
        scenario=scenario,
        environment=environment,
        started_at=timezone.now(),
    )


def tool_call_execute(
    *, tool_call_id: int, scenario: str, allowed: list[str] | None, celery_task_id: str = ""
) -> ToolOutcome:
    """Run a recorded tool call and store its outcome (and ``celery_task_id``, the Celery task
    that ran it, if any). Idempotent: a finished call is not rerun."""
    call = ToolCall.objects.get(id=tool_call_id)
    if call.status != ToolCall.Status.RUNNING:
        return ToolOutcome(
            ok=call.status == ToolCall.Status.OK, content=call.result, error=call.error
        )
    # The call runs against the environment it was recorded for (a sandbox), else live data.
    with environment_activate(call.environment):
        outcome = tool_run(
            scenario=scenario, name=call.name, arguments=call.arguments_raw, allowed=allowed
        )
    tool_call_finish(tool_call_id=call.id, outcome=outcome, celery_task_id=celery_task_id)
    return outcome


@transaction.atomic
def tool_call_finish(
    *, tool_call_id: int, outcome: ToolOutcome, celery_task_id: str = ""
) -> ToolCall:
    call = ToolCall.objects.select_for_update().get(id=tool_call_id)
    call.celery_task_id = celery_task_id
    call.status = ToolCall.Status.OK if outcome.ok else ToolCall.Status.ERROR
    call.result = outcome.content
    call.error = outcome.error
    call.finished_at = timezone.now()
    call.duration_ms = (call.finished_at - call.started_at).total_seconds() * 1000
    call.save(
        update_fields=["status", "result", "error", "finished_at", "duration_ms", "celery_task_id"]
    )
    return call
