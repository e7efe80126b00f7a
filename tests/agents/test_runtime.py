"""EventRecorder (parley/agents/runtime.py): events go to the caller at once and to the
database in order, a burst per transaction."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest

from parley.agents import runtime
from parley.agents.runtime import EventRecorder
from parley.agents.voice.messages import SessionEvent


@pytest.fixture
def writes(monkeypatch) -> list[list[tuple[int, dict[str, Any]]]]:  # noqa: ANN001
    """Every call_events_record call's events (the database is not touched)."""
    calls: list[list[tuple[int, dict[str, Any]]]] = []

    def record(*, conversation_id: uuid.UUID, started_at: dt.datetime, events: Any) -> None:
        calls.append(list(events))

    monkeypatch.setattr(runtime, "call_events_record", record)
    return calls


def _event(kind: str, turn: int = 1) -> SessionEvent:
    return SessionEvent(type=kind, turn=turn, t_ms=0.0, data={})


def _recorder(sent: list[dict[str, Any]], **kwargs: Any) -> EventRecorder:
    async def send(payload: dict[str, Any]) -> None:
        sent.append(payload)

    return EventRecorder(
        send=send, conversation_id=uuid.uuid4(), started_at=dt.datetime.now(dt.UTC), **kwargs
    )


async def test_a_burst_of_events_is_one_write_and_the_caller_gets_each_at_once(writes) -> None:  # noqa: ANN001
    sent: list[dict[str, Any]] = []
    recorder = _recorder(sent, flush_interval_s=0.2)
    for kind in ("vad.speech_end", "transcript.final", "agent.text", "agent.speaking"):
        await recorder.emit(_event(kind))
    assert [p["type"] for p in sent] == [
        "vad.speech_end",
        "transcript.final",
        "agent.text",
        "agent.speaking",
    ]
    assert writes == []  # gathering
    await asyncio.sleep(0.4)
    assert [[seq for seq, _ in w] for w in writes] == [[1, 2, 3, 4]]
    await recorder.aclose()
    assert len(writes) == 1


async def test_turn_started_is_written_at_once(writes) -> None:  # noqa: ANN001
    """A tool call's row points at its turn's row, which turn.started creates: no waiting."""
    recorder = _recorder([], flush_interval_s=30)
    await recorder.emit(_event("agent.done", turn=1))
    await recorder.emit(_event("turn.started", turn=2))
    for _ in range(100):
        if writes:
            break
        await asyncio.sleep(0.01)
    assert [[p["type"] for _, p in w] for w in writes] == [["agent.done", "turn.started"]]
    await recorder.aclose()


async def test_aclose_writes_everything_without_waiting(writes) -> None:  # noqa: ANN001
    sent: list[dict[str, Any]] = []
    recorder = _recorder(sent, flush_interval_s=30)
    await recorder.emit(_event("session.started", turn=0))
    await recorder.emit(_event("agent.text"))
    await recorder.emit(_event("call.ended"))
    await asyncio.wait_for(recorder.aclose(), timeout=5)
    written = [p for w in writes for _, p in w]
    assert [p["type"] for p in written] == ["session.started", "agent.text", "call.ended"]
    assert [seq for w in writes for seq, _ in w] == [1, 2, 3]
    # call.ended is left for the transport to send once everything is persisted.
    assert [p["type"] for p in sent] == ["session.started", "agent.text"]
    assert recorder.call_ended is not None
    assert recorder.call_ended["conversation_id"] == str(recorder.conversation_id)
