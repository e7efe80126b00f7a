"""The agent's ``confirm_side_effects`` on a whole call: the hospital LLM simulator cancels an
appointment (a side-effecting tool, run as a Celery task on the hospital models) only once
the caller says yes. Text-only calls in-process (parley/agents/text_call.py); the voice path
is covered with fakes in tests/agents/voice/test_tool_confirmation.py."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async

from parley.agents.models import Agent
from parley.agents.text_call import TextCall
from parley.conversations.models import CallEvent, Conversation
from parley.conversations.reports import transcript_line_validator
from parley.tools.hospital.models import Appointment
from parley.tools.hospital.seed import hospital_seed_load
from parley.tools.models import ToolCall

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

CANCEL_LINE = (
    "I am John Smith. Please cancel my appointment with Dr. Sarah Johnson on January 15, 2024 "
    "at 9:00 AM."
)
APPOINTMENT = "A3001"  # John Smith with Dr. Sarah Johnson, 2024-01-15 9:00 AM


@database_sync_to_async
def _prepare(agent: Agent, *, confirm: bool) -> None:
    hospital_seed_load()
    Agent.objects.filter(pk=agent.pk).update(confirm_side_effects=confirm)


@database_sync_to_async
def _transcript(conversation_id: object) -> list[dict]:
    path = Conversation.objects.get(pk=conversation_id).transcript_path
    return [json.loads(line) for line in open(path)]


@database_sync_to_async
def _state(conversation_id: object) -> tuple[str, list[tuple[str, str, int]], list[str]]:
    status = Appointment.objects.get(pk=APPOINTMENT).status
    calls = list(
        ToolCall.objects.filter(conversation_id=conversation_id).values_list(
            "name", "status", "turn__index"
        )
    )
    states = [
        e.data["state"]
        for e in CallEvent.objects.filter(
            conversation_id=conversation_id, type="tool.confirmation"
        ).order_by("seq")
    ]
    return status, calls, states


@pytest.mark.parametrize(
    ("answer", "status", "tool_status", "states"),
    [
        ("Yes, go ahead.", "cancelled", "ok", ["requested", "confirmed"]),
        ("No, leave it.", "scheduled", "declined", ["requested", "declined"]),
    ],
)
async def test_a_side_effecting_tool_waits_for_the_callers_yes(
    answer: str, status: str, tool_status: str, states: list[str], hospital_agent, reports_dir
) -> None:  # noqa: ANN001
    await _prepare(hospital_agent, confirm=True)
    async with TextCall(agent_slug=hospital_agent.slug) as call:
        asked = await call.say(CANCEL_LINE)
        assert asked.text.startswith("Just to confirm: cancel appointment, patient identifier")
        assert asked.text.endswith("Shall I go ahead?")
        assert not [e for e in asked.events if e["type"] == "tool.result"]
        assert (await _state(call.conversation_id))[0] == "scheduled"  # not run yet

        reply = await call.say(answer)
        results = [e for e in reply.events if e["type"] == "tool.result"]
        assert [(r["name"], r["ok"]) for r in results] == [
            ("cancel_appointment", tool_status == "ok")
        ]
        assert reply.status == "completed" and reply.text  # the LLM's reply follows
        assert "Just to confirm" not in reply.text
    appointment, calls, recorded = await _state(call.conversation_id)
    assert appointment == status
    # Once, recorded against the turn the LLM asked for it in (its events are in turn 2's).
    assert calls == [("cancel_appointment", tool_status, 1)]
    assert recorded == states
    # The JSONL transcript (written at hang-up) carries the row's status; the schema takes it.
    lines = await _transcript(call.conversation_id)
    validator = transcript_line_validator()
    for line in lines:
        validator.validate(line)
    assert [line["status"] for line in lines if line["type"] == "tool.result"] == [tool_status]
    assert [line["state"] for line in lines if line["type"] == "tool.confirmation"] == states


async def test_without_the_setting_the_tool_runs_in_the_same_turn(
    hospital_agent, reports_dir
) -> None:  # noqa: ANN001
    await _prepare(hospital_agent, confirm=False)
    async with TextCall(agent_slug=hospital_agent.slug) as call:
        reply = await call.say(CANCEL_LINE)
        assert [e["name"] for e in reply.events if e["type"] == "tool.result"] == [
            "cancel_appointment"
        ]
    appointment, calls, recorded = await _state(call.conversation_id)
    assert appointment == "cancelled"
    assert calls == [("cancel_appointment", "ok", 1)]
    assert recorded == []


async def test_the_answer_waits_parley_confirmation_timeout_s(
    hospital_agent, reports_dir, settings
) -> None:  # noqa: ANN001
    settings.PARLEY_CONFIRMATION_TIMEOUT_S = 0.2
    await _prepare(hospital_agent, confirm=True)
    async with TextCall(agent_slug=hospital_agent.slug) as call:
        await call.say(CANCEL_LINE)
        for _ in range(100):  # the time-out declines it, in the background
            _, calls, recorded = await _state(call.conversation_id)
            if recorded == ["requested", "declined"]:
                break
            await asyncio.sleep(0.05)
    appointment, calls, recorded = await _state(call.conversation_id)
    assert appointment == "scheduled"
    assert calls == [("cancel_appointment", "declined", 1)]
    assert recorded == ["requested", "declined"]
    reason = await database_sync_to_async(
        lambda: (
            CallEvent.objects.filter(
                conversation_id=call.conversation_id,
                type="tool.confirmation",
                data__state="declined",
            )
            .get()
            .data["reason"]
        )
    )()
    assert reason == "no answer within 0.2 s"
