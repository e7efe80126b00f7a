"""An LLM server that dies or stalls mid-reply, inside a real call: the caller hears one
coherent answer continued by another server, or one apology when none is left.

Two LLM simulator processes serve a pool whose model is a simulator script (the same
deterministic reply on both); the fault is switched on server ``vllm-1``, the one the
router picks first. A WebSocket call through the consumer (typed caller input, the reply
spoken by eSpeak NG) and text calls (:class:`TextCall`: the same session and agent loop
without audio, so no real-time playback to wait for).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from channels.db import database_sync_to_async

from parley.agents.models import Agent
from parley.agents.text_call import TextCall
from parley.agents.voice.session import BROKEN_REPLY_TAIL
from parley.conversations.models import Turn
from parley.platform.fleet.models import LLMServer, ModelPool
from parley.platform.fleet.router import COOLDOWN, HEALTHY
from parley.platform.fleet.services import pool_router
from parley.testing.simulators import SimulatorProcess, fleet_start
from tests.agents.conftest import WSCall, turn_ended, ws_call

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REPLY = "Doctor Johnson works in cardiology. She sees patients on Mondays. Shall I book?"
SCRIPT = {"turns": [[{"text": REPLY}], [{"text": "Goodbye."}]]}
HEALTHY_FAULTS = {
    "error_rate": 0.0,
    "stall_rate": 0.0,
    "stall_ms": 0.0,
    "stall_after_tokens": None,
    "disconnect_after_tokens": None,
}


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, SimulatorProcess]]:
    processes = fleet_start({"vllm-1": [], "vllm-2": []}, ttft_ms=20, itl_ms=10)
    for process in processes.values():
        url = f"{process.root_url}/simulator/scripts/midstream"
        httpx.post(url, json=SCRIPT, timeout=5).raise_for_status()
    yield processes
    for process in processes.values():
        process.stop()


@pytest.fixture
def agent(sims, settings, hospital_agent) -> Agent:  # noqa: ANN001
    settings.FLEET_REFRESH_S = 0.0
    for process in sims.values():
        process.faults(**HEALTHY_FAULTS)
    pool = ModelPool.objects.create(
        slug="midstream",
        name="midstream",
        kind=ModelPool.Kind.OPENAI_COMPATIBLE,
        model="simulator-script/midstream",
        ttft_deadline_ms=1000,
        stall_timeout_ms=300,
    )
    for name, process in sims.items():
        LLMServer.objects.create(pool=pool, name=name, base_url=process.base_url)
    hospital_agent.model_pool = pool
    hospital_agent.save()
    return hospital_agent


async def say_and_hang_up(agent: Agent) -> WSCall:
    call = await ws_call(agent.slug)
    await call.communicator.send_to(
        text_data=json.dumps({"type": "text", "text": "Who is Dr. Sarah Johnson?"})
    )
    await call.wait_for(turn_ended(1))
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))
    return call


@database_sync_to_async
def stored_turn(conversation_id: str) -> Turn:
    return Turn.objects.get(conversation_id=conversation_id, index=1)


@database_sync_to_async
def server_health(pool_slug: str) -> dict[str, str]:
    pool = ModelPool.objects.get(slug=pool_slug)
    router = pool_router(pool.pk)
    return {s.name: s.health for s in router.servers}


async def test_a_server_dying_mid_reply_is_continued_and_the_caller_hears_one_answer(
    agent,  # noqa: ANN001
    sims,  # noqa: ANN001
    reports_dir,  # noqa: ANN001
) -> None:
    sims["vllm-1"].faults(disconnect_after_tokens=4)  # "Doctor Johnson works in", then gone
    call = await say_and_hang_up(agent)

    ended = call.of("turn.ended")[-1]
    assert ended["status"] == "completed"
    # One answer: the script's reply word for word, as sent to the TTS and as spoken.
    assert " ".join(e["text"] for e in call.of("agent.text")) == REPLY
    assert ended["agent_text"] == ended["spoken_text"] == REPLY
    assert len(call.audio) > 24_000 * 2  # over a second of eSpeak NG audio reached the caller

    failover = call.of("llm.failover")
    assert len(failover) == 1
    assert failover[0] == {
        **failover[0],
        "from_server": "vllm-1",
        "to_server": "vllm-2",
        "outcome": "broken_stream",
        "resumed_at_chars": len("Doctor Johnson works in"),
    }
    turn = await stored_turn(call.of("session.started")[0]["conversation_id"])
    attempts = turn.routing[0]["attempts"]
    assert [(a["server"], a["outcome"]) for a in attempts] == [
        ("vllm-1", "broken_stream"),
        ("vllm-2", "ok"),
    ]
    assert turn.routing[0]["server"] == "vllm-2" and turn.routing[0]["midstream_failovers"] == 1
    assert turn.agent_text == REPLY
    assert await server_health("midstream") == {"vllm-1": COOLDOWN, "vllm-2": HEALTHY}


async def test_a_server_stalling_mid_reply_loses_the_rest_of_it(
    agent,  # noqa: ANN001
    sims,  # noqa: ANN001
    reports_dir,  # noqa: ANN001
) -> None:
    sims["vllm-1"].faults(stall_rate=1.0, stall_ms=10_000, stall_after_tokens=6)
    async with TextCall(agent_slug=agent.slug) as call:
        reply = await call.say("Who is Dr. Johnson?")
        # The next turn stays on vllm-2 (vllm-1 is cooling down) and works.
        second = await call.say("Thank you, bye.")
    assert (reply.status, reply.text) == ("completed", REPLY)
    failover = [e for e in reply.events if e["type"] == "llm.failover"]
    assert [(f["from_server"], f["outcome"], f["resumed_at_chars"]) for f in failover] == [
        ("vllm-1", "stall", len("Doctor Johnson works in cardiology. She"))
    ]
    assert (second.status, second.text) == ("completed", "Goodbye.")
    assert await server_health("midstream") == {"vllm-1": COOLDOWN, "vllm-2": HEALTHY}


async def test_with_no_server_left_the_caller_hears_the_start_and_one_apology(
    agent,  # noqa: ANN001
    sims,  # noqa: ANN001
    reports_dir,  # noqa: ANN001
) -> None:
    for process in sims.values():
        process.faults(disconnect_after_tokens=4)
    async with TextCall(agent_slug=agent.slug) as call:
        reply = await call.say("Who is Dr. Johnson?")
    assert reply.status == "error"
    # vllm-1's four words, then vllm-2 continued with four more before it broke too; what
    # was said stays, its sentence is closed, and the apology comes once.
    said = "Doctor Johnson works in cardiology. She sees patients…"
    assert reply.text == f"{said} {BROKEN_REPLY_TAIL}"
    assert [e["code"] for e in reply.events if e["type"] == "error"] == ["llm_error"]
    failover = [e for e in reply.events if e["type"] == "llm.failover"]
    assert [(f["from_server"], f["to_server"]) for f in failover] == [("vllm-1", "vllm-2")]
