"""Typed caller turns on the WebSocket, and calls whose tools run in a sandbox (evaluations)."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from parley.agents.models import Agent
from parley.conversations.models import Conversation
from parley.tools.environments import (
    environment_call_token,
    environment_sandbox_create,
    environment_sandbox_drop,
)
from parley.tools.hospital.models import Appointment
from parley.tools.hospital.seed import hospital_seed_load
from parley.tools.models import ToolCall
from tests.agents.conftest import turn_ended, ws_call

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.slow]

CANCEL_LINE = (
    "I am John Smith. Please cancel my appointment with Dr. Sarah Johnson on January 15, 2024 "
    "at 9:00 AM."
)


async def test_a_typed_turn_is_answered_and_spoken(hospital_agent, reports_dir) -> None:  # noqa: ANN001
    call = await ws_call("hospital-receptionist")
    await call.communicator.send_to(
        text_data=json.dumps({"type": "text", "text": "Who is Dr. Sarah Johnson?"})
    )
    await call.wait_for(turn_ended(1))
    started = [e for e in call.of("turn.started") if e["turn"] == 1][0]
    assert started["input"] == "text"
    assert call.of("transcript.final")[-1]["text"] == "Who is Dr. Sarah Johnson?"
    assert call.of("turn.ended")[-1]["status"] == "completed"
    assert len(call.audio) > 24_000  # the answer is spoken: more than half a second of audio
    for bad in ({"type": "text"}, {"type": "text", "text": "   "}):
        await call.communicator.send_to(text_data=json.dumps(bad))
    await call.wait_for(lambda ev: sum(e["type"] == "error" for e in ev) >= 2)
    assert [e["code"] for e in call.of("error")] == ["bad_text", "bad_text"]
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))


async def test_a_sandbox_token_runs_the_calls_tools_in_the_sandbox(
    hospital_agent,  # noqa: ANN001
    reports_dir,  # noqa: ANN001
) -> None:
    @database_sync_to_async
    def prepare():  # noqa: ANN202
        hospital_seed_load()
        Agent.objects.filter(pk=hospital_agent.pk).update(published=False)
        env = environment_sandbox_create(scenario="hospital", label="test")
        return env, environment_call_token(env, agent_slug="hospital-receptionist")

    env, token = await prepare()
    try:
        # Unpublished: refused without a token, accepted with this server's token.
        refused = await ws_call("hospital-receptionist")
        assert refused.of("error")[0]["code"] == "agent_unpublished"
        call = await ws_call("hospital-receptionist", query=f"sandbox={token}")
        await call.communicator.send_to(text_data=json.dumps({"type": "text", "text": CANCEL_LINE}))
        await call.wait_for(turn_ended(1))
        await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
        await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))
        assert [(e["name"], e["ok"]) for e in call.of("tool.result")] == [
            ("cancel_appointment", True)
        ]

        @database_sync_to_async
        def check() -> None:
            from parley.tools.environments import environment_activate

            conversation = Conversation.objects.get(pk=call.of("call.ended")[0]["conversation_id"])
            assert conversation.environment_id == env.pk
            record = ToolCall.objects.get(conversation=conversation)
            assert record.environment_id == env.pk and record.status == "ok"
            assert Appointment.objects.get(pk="A3001").status != "cancelled"  # live untouched
            with environment_activate(env):
                assert Appointment.objects.get(pk="A3001").status == "cancelled"

        await check()
    finally:
        await database_sync_to_async(environment_sandbox_drop)(env)


@pytest.mark.parametrize(
    "token, reason",
    [("forged", "not valid"), ("other-agent", "another agent"), ("dropped", "no longer exists")],
)
async def test_bad_sandbox_tokens_are_refused(hospital_agent, token, reason) -> None:  # noqa: ANN001
    @database_sync_to_async
    def make() -> str:
        env = environment_sandbox_create(scenario="hospital", label="test")
        good = environment_call_token(env, agent_slug="hospital-receptionist")
        if token == "forged":
            environment_sandbox_drop(env)
            return good[:-4] + "AAAA"
        if token == "other-agent":
            environment_sandbox_drop(env)
            return environment_call_token(env, agent_slug="someone-else")
        environment_sandbox_drop(env)
        return good

    call = await ws_call("hospital-receptionist", query=f"sandbox={await make()}")
    error = call.of("error")[0]
    assert error["code"] == "bad_sandbox_token" and error["fatal"] is True
    assert reason in error["message"]
    await call.pump(timeout=2)
    assert call.closed and call.close_code == 4403
