"""The caller socket's limits (parley/agents/limits.py): each one ends the call with a fatal
error event, its close code and the reason in the Conversation's record.

Calls run through the real consumer (WebsocketCommunicator) on the embedded engines; the
concurrent-call cap's race runs two ``call_open`` on two threads against real PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from parley.agents import runtime
from parley.agents.limits import TokenBucket
from parley.agents.models import Agent
from parley.agents.runtime import call_open, calls_active_count
from parley.conversations.models import CallEvent, Conversation
from parley.platform.errors import ApplicationError
from tests.agents.conftest import WSCall, ws_call

SLUG = "hospital-receptionist"


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate_per_s=50, burst=3, now=0.0)
    assert [bucket.take(now=0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(now=0.01) is False  # half a token came back
    assert bucket.take(now=0.02) is True  # one whole token: 1/50 s after the burst
    assert [bucket.take(now=10.0) for _ in range(4)] == [True, True, True, False]  # capped
    with pytest.raises(ValueError):
        TokenBucket(rate_per_s=0, burst=1)


async def _ended_by(call: WSCall, code: str) -> dict[str, Any]:
    """Wait for the fatal error ``code`` and the close; return the error event."""
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev), timeout=30)
    for _ in range(100):
        if call.closed:
            break
        await call.pump(timeout=0.05)
    errors = [e for e in call.of("error") if e["code"] == code]
    assert len(errors) == 1, call.of("error")
    assert errors[0]["fatal"] is True
    return errors[0]


@database_sync_to_async
def _record(conversation_id: str) -> tuple[Conversation, list[CallEvent]]:
    conversation = Conversation.objects.get(id=conversation_id)
    return conversation, list(conversation.events.filter(type="error").order_by("seq"))


async def _assert_recorded(call: WSCall, code: str, close_code: int) -> Conversation:
    assert call.close_code == close_code
    conversation_id = call.of("session.started")[0]["conversation_id"]
    conversation, errors = await _record(conversation_id)
    assert conversation.status == Conversation.Status.ERROR
    assert conversation.end_reason.startswith(f"{code}: ")
    assert conversation.ended_at is not None
    assert [(e.data["code"], e.data["fatal"]) for e in errors] == [(code, True)]
    return conversation


@pytest.mark.parametrize(
    ("send", "code", "close_code"),
    [
        ({"bytes_data": bytes(64_000)}, "frame_too_large", 4413),
        (
            {"text_data": json.dumps({"type": "text", "text": "x" * 20_000})},
            "message_too_large",
            4413,
        ),
    ],
)
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_oversized_message_ends_the_call(
    send: dict[str, Any], code: str, close_code: int, hospital_agent, reports_dir
) -> None:  # noqa: ANN001
    call = await ws_call(SLUG)
    await call.send_audio(bytes(640 * 5))  # normal frames are fine
    await call.communicator.send_to(**send)
    error = await _ended_by(call, code)
    assert "exceeds" in error["message"]
    await _assert_recorded(call, code, close_code)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_frames_beyond_the_rate_and_burst_end_the_call(
    hospital_agent, reports_dir, settings
) -> None:  # noqa: ANN001
    settings.PARLEY_MAX_FRAMES_PER_S = 50.0
    settings.PARLEY_FRAME_BURST = 40
    call = await ws_call(SLUG)
    comm = call.communicator
    for _ in range(20):  # half the burst at once: accepted
        await comm.send_to(bytes_data=bytes(640))
    await call.pump(timeout=0.3)
    assert not call.of("error") and not call.closed
    for _ in range(60):  # far more than what is left plus what came back meanwhile
        await comm.send_to(bytes_data=bytes(640))
    error = await _ended_by(call, "frame_rate_exceeded")
    assert "50 messages a second" in error["message"]
    await _assert_recorded(call, "frame_rate_exceeded", 4429)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_call_is_ended_at_the_agents_duration_limit(
    hospital_agent, reports_dir, settings
) -> None:  # noqa: ANN001
    await database_sync_to_async(Agent.objects.filter(pk=hospital_agent.pk).update)(
        max_call_duration_s=1
    )
    call = await ws_call(SLUG)
    error = await _ended_by(call, "call_duration_exceeded")
    assert "1 s" in error["message"]
    conversation = await _assert_recorded(call, "call_duration_exceeded", 4408)
    assert (conversation.ended_at - conversation.started_at).total_seconds() >= 1
    # The agent said goodbye first, as a last agent turn spoken by its TTS (the agent has no
    # greeting: it is turn 1), then the error event, then call.ended.
    events = call.events
    goodbye_turn = 1
    started = next(e for e in events if e["type"] == "turn.started" and e["turn"] == goodbye_turn)
    assert started["role"] == "agent"
    said = next(e for e in events if e["type"] == "agent.text" and e["turn"] == goodbye_turn)
    assert said["text"] == settings.PARLEY_TIME_LIMIT_GOODBYE
    done = next(e for e in events if e["type"] == "turn.ended" and e["turn"] == goodbye_turn)
    assert done["status"] == "completed" and done["agent_audio_ms"] > 500
    at = {id(e): i for i, e in enumerate(events)}
    assert at[id(started)] < at[id(said)] < at[id(done)] < at[id(error)]
    assert at[id(error)] < at[id(call.of("call.ended")[0])]
    # The goodbye's audio arrived between its turn's start and the error event.
    goodbye_bytes = call.audio_before[at[id(error)]] - call.audio_before[at[id(started)]]
    assert goodbye_bytes >= done["agent_audio_ms"] / 1000 * 24_000 * 2 * 0.9


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_call_over_the_agents_cap_is_refused_and_recorded(
    hospital_agent, reports_dir
) -> None:  # noqa: ANN001
    await database_sync_to_async(Agent.objects.filter(pk=hospital_agent.pk).update)(
        max_concurrent_calls=1
    )
    first = await ws_call(SLUG)
    assert first.of("session.started")

    second = await ws_call(SLUG)
    error = second.of("error")[0]
    assert (error["code"], error["fatal"]) == ("call_limit_reached", True)
    assert not second.of("session.started")
    await second.pump(timeout=2)
    assert second.closed and second.close_code == 4503

    @database_sync_to_async
    def refused() -> Conversation:
        return Conversation.objects.get(id=error["conversation_id"])

    record = await refused()
    assert record.status == Conversation.Status.ERROR and record.ended_at is not None
    assert record.end_reason.startswith("call_limit_reached: 1 calls active")

    # The first call's slot frees at its hang-up: the next call gets through.
    await first.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await first.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))
    third = await ws_call(SLUG)
    assert third.of("session.started") and not third.of("error")
    await third.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await third.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))


@pytest.mark.django_db(transaction=True)
def test_two_calls_racing_for_the_last_slot_one_wins(hospital_agent, monkeypatch) -> None:  # noqa: ANN001
    """Both starts reach the count at once; the slow insert after it would let both through
    without the agent row's lock."""
    Agent.objects.filter(pk=hospital_agent.pk).update(max_concurrent_calls=1)
    real_start = runtime.conversation_start

    def slow_start(**kwargs: Any) -> Conversation:
        time.sleep(0.3)  # the window between count and insert, widened
        return real_start(**kwargs)

    monkeypatch.setattr(runtime, "conversation_start", slow_start)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def place() -> None:
        try:
            barrier.wait()
            call_open(slug=SLUG, user=None, client={"address": "race"}, allow_unpublished=True)
            outcomes.append("opened")
        except ApplicationError as exc:
            outcomes.append(exc.extra["code"])
        finally:
            connection.close()

    threads = [threading.Thread(target=place) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["call_limit_reached", "opened"]
    agent = Agent.objects.get(pk=hospital_agent.pk)
    assert calls_active_count(agent=agent) == 1
    statuses = sorted(Conversation.objects.values_list("status", flat=True))
    assert statuses == [Conversation.Status.ACTIVE, Conversation.Status.ERROR]


@pytest.mark.django_db
def test_stale_active_calls_do_not_hold_slots(hospital_agent) -> None:  # noqa: ANN001
    """An ``active`` row older than the longest call (+ grace) is a crashed server's."""
    from datetime import timedelta

    from django.utils import timezone

    Agent.objects.filter(pk=hospital_agent.pk).update(max_concurrent_calls=1)
    call_open(slug=SLUG, user=None, client={}, allow_unpublished=True)
    Conversation.objects.update(started_at=timezone.now() - timedelta(hours=1))
    agent = Agent.objects.get(pk=hospital_agent.pk)
    assert calls_active_count(agent=agent) == 0
    call_open(slug=SLUG, user=None, client={}, allow_unpublished=True)  # not refused
    agent.max_call_duration_s = 0  # no duration limit: every active row counts
    assert calls_active_count(agent=agent) == 2
