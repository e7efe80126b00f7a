"""A hospital reference task driven through the whole voice loop.

The LLM simulator plays the task's reference actions as real tool calls (script mode) while
a real recording comes in over the WebSocket; the tools run as Celery tasks over the hospital
models, and the database must end exactly as ``expected.json`` says.
"""

from __future__ import annotations

import json

import httpx
import pytest
from channels.db import database_sync_to_async

from parley.agents.models import Agent
from parley.agents.simulator_runtime import simulator_base_url
from parley.agents.voice.audio import load_wav_resampled
from parley.tools.hospital.seed import hospital_state_digest
from parley.tools.models import ToolCall
from parley.tools.replay import scenario_tasks_path
from tests.agents.conftest import script_pool, turn_ended, ws_call
from tests.conftest import FIXTURES, SPEECH

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.slow]

TASKS = {t["id"]: t for t in json.loads(scenario_tasks_path("hospital").read_text())}
EXPECTED = {
    t["id"]: t
    for t in json.loads((FIXTURES / "scenarios/hospital/expected.json").read_text())["tasks"]
}


@pytest.mark.parametrize("task_id", ["entry_4", "entry_2"])
async def test_hospital_task_through_the_voice_loop(task_id, hospital_agent, reports_dir) -> None:  # noqa: ANN001
    task, expected = TASKS[task_id], EXPECTED[task_id]
    assert any(expected["state_changed_by_call"]), "pick a task that writes"
    key = f"task-{task_id}"

    @database_sync_to_async
    def use_script_pool() -> None:
        Agent.objects.filter(pk=hospital_agent.pk).update(model_pool=script_pool(key=key))

    await use_script_pool()
    base = simulator_base_url(ttft_ms=20, itl_ms=2)
    steps = [{"tool_calls": [a]} for a in task["actions"]] + [{"text": "All done. Anything else?"}]
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base.removesuffix('/v1')}/simulator/scripts/{key}", json={"turns": [steps]}
        )
        assert response.status_code in (200, 201), response.text

    call = await ws_call("hospital-receptionist")
    pcm = load_wav_resampled(SPEECH / "ms_whats_the_weather_like.wav", sample_rate_hz=16_000)
    await call.send_audio(pcm)
    await call.send_audio(bytes(640 * 50))
    await call.wait_for(turn_ended(1))
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))

    calls = call.of("tool.call")
    results = call.of("tool.result")
    assert [c["name"] for c in calls] == [a["name"] for a in task["actions"]]
    assert [c["arguments"] for c in calls] == [a["arguments"] for a in task["actions"]]
    assert [r["ok"] for r in results] == expected["ok"]
    for got, want in zip(results, expected["results"], strict=True):
        assert json.loads(got["result"]) == json.loads(want)
    assert "All done." in " ".join(e["text"] for e in call.of("agent.text"))

    @database_sync_to_async
    def state():
        rows = list(ToolCall.objects.order_by("started_at").values("name", "status", "turn__index"))
        return hospital_state_digest(), rows

    digest, rows = await state()
    assert digest == expected["final_digest"]
    assert [r["name"] for r in rows] == [a["name"] for a in task["actions"]]
    assert all(r["status"] == "ok" and r["turn__index"] == 1 for r in rows)


async def test_bad_tool_arguments_become_an_error_result_not_a_crash(
    hospital_agent, reports_dir
) -> None:  # noqa: ANN001
    key = "bad-args"

    @database_sync_to_async
    def use_script_pool() -> None:
        Agent.objects.filter(pk=hospital_agent.pk).update(model_pool=script_pool(key=key))

    await use_script_pool()
    base = simulator_base_url(ttft_ms=20, itl_ms=2)
    turn = [
        {"tool_calls": [{"name": "get_patient_info", "raw_arguments": '{"patient_identifier": '}]},
        {"tool_calls": [{"name": "get_patient_info", "arguments": {"patient_identifier": 42}}]},
        {"tool_calls": [{"name": "drop_tables", "arguments": {}}]},
        {"text": "Sorry, I could not find that."},
    ]
    async with httpx.AsyncClient() as client:
        await client.post(
            f"{base.removesuffix('/v1')}/simulator/scripts/{key}", json={"turns": [turn]}
        )
    call = await ws_call("hospital-receptionist")
    pcm = load_wav_resampled(SPEECH / "ms_whats_the_weather_like.wav", sample_rate_hz=16_000)
    await call.send_audio(pcm + bytes(640 * 50))
    await call.wait_for(turn_ended(1))
    results = call.of("tool.result")
    assert [r["ok"] for r in results] == [False, False, False]
    assert "not valid JSON" in results[0]["result"]
    assert "invalid arguments for get_patient_info" in results[1]["result"]
    assert "not available to this agent" in results[2]["result"]
    assert call.of("turn.ended")[0]["status"] == "completed"

    @database_sync_to_async
    def statuses():
        return list(ToolCall.objects.order_by("started_at").values_list("status", flat=True))

    assert await statuses() == ["error", "error", "error"]
