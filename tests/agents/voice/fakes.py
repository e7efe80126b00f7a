"""Fake providers and a harness for driving a CallSession without engines or a socket.

Caller audio in these tests is a simple code: a frame whose first sample is non-zero is
"speech", an all-zero frame is silence. ``FakeVAD`` turns that into speech boundaries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from parley.agents.voice.llm.base import LLM, LLMError
from parley.agents.voice.messages import (
    LLMChunk,
    LLMDone,
    SessionEvent,
    STTMessage,
    TextDelta,
    ToolCallRequest,
    ToolResult,
    Transcript,
    VADEvent,
)
from parley.agents.voice.session import CallSession, SessionSettings
from parley.agents.voice.stt.base import STT, STTStream
from parley.agents.voice.tts.base import TTS, TTSError
from parley.agents.voice.turns import TurnTakingSettings

#: The events of one answered caller turn, in the order they must come (others may interleave).
TURN_EVENT_ORDER = (
    "turn.started",
    "vad.speech_start",
    "vad.speech_end",
    "transcript.final",
    "agent.text",
    "agent.speaking",
    "agent.done",
    "turn.metrics",
    "turn.ended",
)


def in_turn_order(types: list[str]) -> bool:
    """True when the first occurrence of each TURN_EVENT_ORDER type comes in that order."""
    positions = [types.index(kind) for kind in TURN_EVENT_ORDER]
    return positions == sorted(positions)


#: End of turn as soon as the final transcript is in (no silence to wait for, no speculation).
IMMEDIATE_TURNS = TurnTakingSettings(
    endpointing_ms=0, unfinished_endpointing_ms=0, pause_ms=0, speculative_start=False
)

SPEECH_FRAME = struct.pack("<h", 1000) * 320  # 20 ms at 16 kHz
SILENCE_FRAME = bytes(640)


class FakeVAD:
    """Speech after ``start_frames`` speech frames, end after ``end_frames`` silent frames."""

    def __init__(self, *, start_frames: int = 3, end_frames: int = 5) -> None:
        self.start_frames, self.end_frames = start_frames, end_frames
        self.audio_ms = 0.0
        self.speaking = False
        self._run = 0
        self._last_speech_end_ms = 0.0

    async def push(self, pcm16: bytes, *, at: float) -> list[VADEvent]:
        is_speech = pcm16[:2] != b"\x00\x00"
        self.audio_ms += len(pcm16) / 32
        if is_speech != self.speaking:
            self._run += 1
        else:
            self._run = 0
        if is_speech:
            self._last_speech_end_ms = self.audio_ms
        if not self.speaking and is_speech and self._run >= self.start_frames:
            self.speaking, self._run = True, 0
            return [VADEvent("speech_start", self.audio_ms - 20 * self.start_frames, at)]
        if self.speaking and not is_speech and self._run >= self.end_frames:
            self.speaking, self._run = False, 0
            return [VADEvent("speech_end", self._last_speech_end_ms, at)]
        return []

    @property
    def silence_ms(self) -> float:
        """Trailing silence of the utterance in progress (0 when not speaking)."""
        return self.audio_ms - self._last_speech_end_ms if self.speaking else 0.0

    def end_speech(self, *, at: float) -> VADEvent | None:
        if not self.speaking:
            return None
        self.speaking, self._run = False, 0
        return VADEvent("speech_end", self._last_speech_end_ms, at)


class FakeSTTStream(STTStream):
    """Answers each ``finalize()`` with the next text. A text may be a list of messages
    (``Transcript``/``STTNotice``, or a float: a pause in seconds) to stream instead.
    Each speech start gets the partial ``speech_partial`` (none when empty)."""

    def __init__(
        self, texts: list[str | list[STTMessage | float]], *, speech_partial: str = "..."
    ) -> None:
        self.texts = texts
        self.speech_partial = speech_partial
        self.queue: asyncio.Queue[STTMessage | float | None] = asyncio.Queue()
        self.frames = 0
        self.closed = False

    async def push_audio(self, pcm16: bytes) -> None:
        self.frames += 1

    async def speech_started(self, *, audio_ms: float) -> None:
        if self.speech_partial:
            self.queue.put_nowait(Transcript(text=self.speech_partial, is_final=False))

    async def finalize(self) -> None:
        text = self.texts.pop(0) if self.texts else ""
        if isinstance(text, list):
            for message in text:
                self.queue.put_nowait(message)
            return
        self.queue.put_nowait(Transcript(text=text, is_final=True, speech_final=True))

    async def aclose(self) -> None:
        self.closed = True
        self.queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[STTMessage]:  # type: ignore[override]
        while (item := await self.queue.get()) is not None:
            if isinstance(item, float):
                await asyncio.sleep(item)
            else:
                yield item


class FakeSTT(STT):
    name = "fake-stt"

    def __init__(
        self, texts: list[str | list[STTMessage | float]], *, speech_partial: str = "..."
    ) -> None:
        self.stream = FakeSTTStream(texts, speech_partial=speech_partial)

    async def open_stream(self) -> STTStream:
        return self.stream


class FakeLLM(LLM):
    """Replays scripted responses; each response is a list of chunks."""

    name = "fake-llm"

    def __init__(self, responses: list[list[LLMChunk] | Exception], *, token_delay_s: float = 0.0):
        self.responses = list(responses)
        self.requests: list[list[dict[str, Any]]] = []
        self.token_delay_s = token_delay_s
        self.cancelled = 0

    async def stream(self, *, messages, tools=None) -> AsyncIterator[LLMChunk]:  # type: ignore[override]
        self.requests.append([dict(m) for m in messages])
        response = self.responses.pop(0) if self.responses else [TextDelta("Okay."), LLMDone()]
        if isinstance(response, Exception):
            raise response
        try:
            for chunk in response:
                if self.token_delay_s:
                    await asyncio.sleep(self.token_delay_s)
                if isinstance(chunk, Exception):  # a stream that breaks part-way
                    raise chunk
                yield chunk
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def text_response(text: str) -> list[LLMChunk]:
    return [TextDelta(word + " ") for word in text.split()] + [LLMDone(finish_reason="stop")]


class FakeTTS(TTS):
    """10 ms of a constant tone per character, in 20 ms chunks, 24 kHz."""

    name = "fake-tts"

    def __init__(
        self,
        *,
        chunk_delay_s: float = 0.0,
        fail_on: str | None = None,
        warm_error: Exception | None = None,
        name: str = "fake-tts",
    ) -> None:
        self.texts: list[str] = []
        self.chunk_delay_s = chunk_delay_s
        self.fail_on = fail_on
        self.cancelled = 0
        self.warm_error = warm_error
        self.warmed = 0
        self.name = name

    async def warm(self) -> None:
        self.warmed += 1
        if self.warm_error is not None:
            raise self.warm_error

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:  # type: ignore[override]
        self.texts.append(text)
        if self.fail_on and self.fail_on in text:
            raise TTSError("synthetic failure")
        samples = 240 * len(text)
        chunk = struct.pack("<h", 2000) * 480
        try:
            for _ in range(0, samples, 480):
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
                yield chunk
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise


@dataclass
class Recorder:
    events: list[SessionEvent] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)

    async def emit(self, event: SessionEvent) -> None:
        self.events.append(event)

    async def send_audio(self, pcm16: bytes) -> None:
        self.audio.extend(pcm16)

    def types(self, turn: int | None = None) -> list[str]:
        return [e.type for e in self.events if turn is None or e.turn == turn]

    def first(self, kind: str) -> SessionEvent:
        return next(e for e in self.events if e.type == kind)


class FakeTools:
    def __init__(self, results: dict[str, ToolResult] | None = None) -> None:
        self.results = results or {}
        self.calls: list[ToolCallRequest] = []
        self.declined: list[tuple[int, ToolCallRequest, str]] = []

    async def run(self, *, turn: int, call: ToolCallRequest) -> ToolResult:
        self.calls.append(call)
        return self.results.get(call.name, ToolResult(ok=True, content='{"ok": true}'))

    async def decline(self, *, turn: int, call: ToolCallRequest, result: str, reason: str) -> None:
        self.declined.append((turn, call, reason))


@dataclass
class Harness:
    session: CallSession
    recorder: Recorder
    stt: FakeSTT
    llm: FakeLLM
    tts: FakeTTS
    tools: FakeTools

    async def say(self, *, speech_frames: int = 10, silence_frames: int = 8) -> None:
        for _ in range(speech_frames):
            await self.session.push_audio(SPEECH_FRAME)
        for _ in range(silence_frames):
            await self.session.push_audio(SILENCE_FRAME)

    async def wait_for(
        self, kind: str, *, turn: int | None = None, timeout: float = 5.0
    ) -> SessionEvent:
        async def poll() -> SessionEvent:
            while True:
                for e in self.recorder.events:
                    if e.type == kind and (turn is None or e.turn == turn):
                        return e
                await asyncio.sleep(0.005)

        return await asyncio.wait_for(poll(), timeout)


async def run_session(
    *,
    transcripts: list[str | list[STTMessage | float]],
    responses: list[list[LLMChunk] | Exception],
    settings: SessionSettings | None = None,
    tts: FakeTTS | None = None,
    fallback_tts: FakeTTS | None = None,
    tools: FakeTools | None = None,
    llm_token_delay_s: float = 0.0,
    turn_taking: TurnTakingSettings | None = None,
    stt_speech_partial: str = "...",
) -> Harness:
    """Build and start a session on fakes (``audio_lead_ms=0`` keeps pacing exact).

    ``turn_taking`` defaults to :data:`IMMEDIATE_TURNS`: the fake VAD's speech end is the
    end of turn once the final transcript is in (fake audio is pushed faster than real time).
    ``stt_speech_partial``: the partial each speech start gets (``""``: none, so speech over
    the agent is judged by its final words alone: a backchannel, or a barge-in).
    """
    recorder = Recorder()
    stt = FakeSTT(list(transcripts), speech_partial=stt_speech_partial)
    llm = FakeLLM(responses, token_delay_s=llm_token_delay_s)
    tts = tts or FakeTTS()
    tools = tools or FakeTools()
    settings = settings or SessionSettings(system_prompt="You are a test agent.", audio_lead_ms=0)
    settings = dataclasses.replace(settings, turn_taking=turn_taking or IMMEDIATE_TURNS)
    session = CallSession(
        vad=FakeVAD(),  # type: ignore[arg-type]
        stt=stt,
        llm=llm,
        tts=tts,
        tools=tools,
        events=recorder,
        audio=recorder,
        settings=settings,
        fallback_tts=fallback_tts,
    )
    await session.start()
    return Harness(session, recorder, stt, llm, tts, tools)


__all__ = ["LLMError", "Harness", "run_session", "text_response"]
