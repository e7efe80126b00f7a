"""Conversations with turns and tool calls for the API tests (factory_boy).

Summary columns are written by the real service (:func:`conversation_finish`), the way a call
that hangs up writes them, so the list filters read what production reads.
"""

from __future__ import annotations

import datetime as dt
import wave
from pathlib import Path
from typing import Any

import factory
from django.utils import timezone

from parley.agents.models import Agent
from parley.conversations.models import CallEvent, Conversation, Recording, Turn
from parley.conversations.services import conversation_summary_update
from parley.tools.models import ToolCall


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    started_at = factory.LazyFunction(timezone.now)
    ended_at = factory.LazyAttribute(lambda c: c.started_at + dt.timedelta(seconds=42))
    status = Conversation.Status.ENDED
    end_reason = "caller hung up"
    providers = factory.LazyFunction(
        lambda: {"stt": "pocketsphinx", "llm": "simulator", "tts": "espeak-ng"}
    )


class TurnFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Turn

    index = factory.Sequence(lambda n: n + 1)
    status = Turn.Status.COMPLETED
    started_at = factory.LazyAttribute(
        lambda t: t.conversation.started_at + dt.timedelta(seconds=5 * t.index)
    )
    ended_at = factory.LazyAttribute(lambda t: t.started_at + dt.timedelta(seconds=4))
    user_text = "I would like to book an appointment"
    agent_text = "Which doctor would you like to see?"
    spoken_text = factory.LazyAttribute(lambda t: t.agent_text)
    endpointing_ms = 500.0
    stt_final_ms = 120.0
    llm_ttft_ms = 150.0
    tts_ttfb_ms = 80.0
    ttfa_ms = 900.0
    llm_steps = 1
    routing = factory.LazyFunction(
        lambda: [{"server": "simulator", "reason": "least_loaded", "attempts": 1}]
    )


class ToolCallFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ToolCall

    conversation = factory.LazyAttribute(lambda tc: tc.turn.conversation)
    scenario = "hospital"
    call_id = factory.Sequence(lambda n: f"call_{n}")
    name = "get_doctor_info"
    arguments_raw = '{"doctor_identifier": "Dr. Lovelace"}'
    arguments = factory.LazyAttribute(lambda tc: {"doctor_identifier": "Dr. Lovelace"})
    status = ToolCall.Status.OK
    result = '{"name": "Dr. Ada Lovelace", "specialty": "cardiology"}'
    started_at = factory.LazyAttribute(lambda tc: tc.turn.started_at + dt.timedelta(seconds=1))
    finished_at = factory.LazyAttribute(lambda tc: tc.started_at + dt.timedelta(milliseconds=35))
    duration_ms = 35.0


def conversation_finish(
    *,
    agent: Agent,
    turns: list[dict[str, Any]] | None = None,
    tools: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> Conversation:
    """A conversation of ``agent`` with ``turns`` (kwargs of TurnFactory; default: one) and
    ``tools`` (kwargs of ToolCallFactory, with ``turn`` an index; default: none), then its
    summary columns written by :func:`conversation_summary_update`."""
    conversation = ConversationFactory(agent=agent, **fields)
    rows = {}
    for number, spec in enumerate(turns if turns is not None else [{}], start=1):
        spec = {"index": number, **spec}
        rows[spec["index"]] = TurnFactory(conversation=conversation, **spec)
    for spec in tools or []:
        spec = dict(spec)
        ToolCallFactory(turn=rows[spec.pop("turn", 1)], **spec)
    return conversation_summary_update(conversation=conversation)


def error_event(conversation: Conversation, *, turn: int, message: str) -> CallEvent:
    """An ``error`` event of ``turn``, as the voice loop logs one."""
    seq = CallEvent.objects.filter(conversation=conversation).count()
    return CallEvent.objects.create(
        conversation=conversation,
        seq=seq,
        turn_index=turn,
        type="error",
        t_ms=1000.0 * turn,
        data={"message": message},
    )


def recording_write(conversation: Conversation, folder: Path, *, frames: int = 1600) -> Recording:
    """A real stereo 16 kHz WAV of silence and its Recording row (expires in a day)."""
    path = folder / f"{conversation.pk}.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(b"\x00\x00\x00\x00" * frames)
    return Recording.objects.create(
        conversation=conversation,
        path=str(path),
        sample_rate_hz=16_000,
        channels=2,
        duration_ms=frames / 16.0,
        size_bytes=path.stat().st_size,
        expires_at=timezone.now() + dt.timedelta(days=1),
    )
