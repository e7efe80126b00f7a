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


def tool_call_decline(
    *,
    conversation_id: uuid.UUID,
    turn_index: int,
    call_id: str,
    name: str,
    arguments_raw: str,
    result: str,
    reason: str,
    scenario: str = "",
    environment_id: uuid.UUID | None = None,
) -> ToolCall:
    """Record a tool call the caller did not confirm (the agent's ``confirm_side_effects``):
    status ``declined``, never run; ``result`` is what the LLM read back, ``reason`` (in
    ``error``) why it was not run."""
    call = tool_call_start(
        conversation_id=conversation_id,
        turn_index=turn_index,
        call_id=call_id,
        name=name,
        arguments_raw=arguments_raw,
        scenario=scenario,
        environment_id=environment_id,
    )
    call.status = ToolCall.Status.DECLINED
    call.result = result
    call.error = reason
    call.finished_at = timezone.now()
    call.duration_ms = 0.0
    call.save(update_fields=["status", "result", "error", "finished_at", "duration_ms"])
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
    that ran it, if any), exactly once per ToolCall row.

    The idempotency key is the tool call (its row id, one per ``(conversation, call_id)``): the
    row is locked (``SELECT ... FOR UPDATE``) for the whole run, and the tool's writes and the
    row's outcome commit in one transaction. So a worker killed mid-tool leaves nothing (the
    transaction dies with its connection) and the redelivered task runs the tool again; a
    delivery of an already finished call returns the stored outcome without running the tool;
    two deliveries at once queue on the lock and the second finds the call finished.

    In a sandbox (``call.environment``) the tool's writes go to the sandbox's own connection
    and commit just before the row: sandboxes are throw-away copies for evaluations, where a
    crash between the two commits costs nothing that matters.
    """
    with transaction.atomic():
        call = ToolCall.objects.select_for_update().get(id=tool_call_id)
        if call.status != ToolCall.Status.RUNNING:
            return ToolOutcome(
                ok=call.status == ToolCall.Status.OK, content=call.result, error=call.error
            )
        # The call runs against the environment it was recorded for (a sandbox), else live data.
        with environment_activate(call.environment):
            outcome = tool_run(
                scenario=scenario, name=call.name, arguments=call.arguments_raw, allowed=allowed
            )
        _finish(call, outcome, celery_task_id=celery_task_id)
    return outcome


@transaction.atomic
def tool_call_abandon(*, tool_call_id: int, reason: str) -> ToolCall | None:
    """Fail a tool call nobody waits for any more (the voice loop's timeout), so that a late
    delivery of its task (a killed worker's task comes back after the broker's visibility
    timeout) does not run it after the LLM was told it failed.

    Returns the call marked ``error``; ``None`` when it is not ``running`` any more or a worker
    is running it right now (its row is locked: that worker's outcome stands).
    """
    call = (
        ToolCall.objects.select_for_update(skip_locked=True)
        .filter(id=tool_call_id, status=ToolCall.Status.RUNNING)
        .first()
    )
    if call is None:
        return None
    return _finish(call, ToolOutcome(ok=False, content=f"Error: {reason}", error=reason))


@transaction.atomic
def tool_call_finish(
    *, tool_call_id: int, outcome: ToolOutcome, celery_task_id: str = ""
) -> ToolCall:
    """Store ``outcome`` on the tool call (status ``ok``/``error``, result, duration)."""
    return _finish(
        ToolCall.objects.select_for_update().get(id=tool_call_id),
        outcome,
        celery_task_id=celery_task_id,
    )


def _finish(call: ToolCall, outcome: ToolOutcome, *, celery_task_id: str = "") -> ToolCall:
    """Write ``outcome`` to ``call``; the caller holds the row lock in a transaction."""
    if celery_task_id:
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
