"""A real-audio harness for turn-taking tests: caller audio built from real recordings,
the real Silero VAD, the real Deepgram SDK against the local fake (which "recognises" the
words the test scripts at the positions where the recordings are), fake LLM and TTS.

Audio is pushed paced in real time (20 ms frames), so every timer of the session (end of
turn, false interruption, filler) runs as in a call.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parley.agents.voice.audio import load_wav_resampled, resample_pcm16
from parley.agents.voice.llm.base import LLM
from parley.agents.voice.messages import LLMChunk, SessionEvent, ToolResult
from parley.agents.voice.session import CallSession, SessionSettings
from parley.agents.voice.stt.deepgram import DeepgramSettings, DeepgramSTT
from parley.agents.voice.tts.base import TTS
from parley.agents.voice.turns import TurnTakingSettings
from parley.agents.voice.vad import StreamingVAD, VADSettings
from parley.testing.deepgram_fake import FakeDeepgram, ScriptWord, script_from_text
from tests.agents.voice.fakes import FakeLLM, FakeTools, FakeTTS, Recorder

AUDIO = Path(__file__).resolve().parents[2] / "fixtures" / "audio"
RATE = 16_000
FRAME_BYTES = 640  # 20 ms
FRAME_S = 0.020
DG_KEY = "dg-turn-taking-key"


def speech(name: str, start_s: float = 0.0, end_s: float | None = None) -> bytes:
    """A real recording from tests/fixtures/audio/speech, cut to ``[start_s, end_s)``."""
    pcm = load_wav_resampled(AUDIO / "speech" / f"{name}.wav", sample_rate_hz=RATE)
    end = len(pcm) if end_s is None else int(end_s * RATE) * 2
    return pcm[int(start_s * RATE) * 2 : end]


def noise(name: str, seconds: float, *, rms_dbfs: float) -> bytes:
    """``seconds`` of a background-noise recording (looped) at ``rms_dbfs``."""
    pcm = load_wav_resampled(AUDIO / "noise" / name, sample_rate_hz=RATE)
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    n = int(seconds * RATE)
    x = np.tile(x, n // len(x) + 1)[:n]
    x *= 10 ** (rms_dbfs / 20) * 32768 / max(np.sqrt(np.mean(x * x)), 1e-9)
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * RATE) * 2)


def mix(a: bytes, b: bytes) -> bytes:
    """Sample-wise sum (the longer length), clipped to PCM16."""
    x = np.frombuffer(a, dtype="<i2").astype(np.int32)
    y = np.frombuffer(b, dtype="<i2").astype(np.int32)
    out = np.zeros(max(len(x), len(y)), dtype=np.int32)
    out[: len(x)] += x
    out[: len(y)] += y
    return np.clip(out, -32768, 32767).astype("<i2").tobytes()


def gain_db(pcm: bytes, db: float) -> bytes:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) * 10 ** (db / 20)
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def speech_span_s(pcm: bytes) -> tuple[float, float]:
    """First and last 10 ms block louder than 10 % of the loudest block's RMS (seconds)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    blocks = x[: len(x) // 160 * 160].reshape(-1, 160)
    rms = np.sqrt(np.mean(blocks * blocks, axis=1))
    loud = np.flatnonzero(rms > 0.1 * rms.max())
    return loud[0] * 0.01, (loud[-1] + 1) * 0.01


@dataclass
class CallerAudio:
    """The caller's microphone: pieces of audio, with the words the STT will "hear" in them."""

    pcm: bytearray = field(default_factory=bytearray)
    script: list[ScriptWord] = field(default_factory=list)
    #: (start_s, end_s) of the speech of each worded piece, in stream seconds.
    spans: list[tuple[float, float]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / RATE

    def add(self, pcm: bytes, words: str = "") -> CallerAudio:
        """Append ``pcm``; ``words`` are spread over its speech span (for the fake STT)."""
        at = self.seconds
        if words:
            start, end = speech_span_s(pcm)
            self.script += script_from_text(words, at + start, at + end)
            self.spans.append((at + start, at + end))
        self.pcm += pcm
        return self

    def pause(self, seconds: float) -> CallerAudio:
        return self.add(silence(seconds))


class ClipTTS(FakeTTS):
    """Speaks every text as a real recording (24 kHz), so echo and levels are speech-like."""

    def __init__(self, clip: bytes, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.clip = resample_pcm16(clip, from_hz=RATE, to_hz=24_000)

    async def synthesize(self, text: str):  # type: ignore[override]  # noqa: ANN201
        self.texts.append(text)
        try:
            for i in range(0, len(self.clip), 960):
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
                yield self.clip[i : i + 960]
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise


class TimedRecorder(Recorder):
    """Also keeps when each agent frame was sent (monotonic s)."""

    def __init__(self) -> None:
        super().__init__()
        self.frame_times: list[float] = []

    async def send_audio(self, pcm16: bytes) -> None:
        self.frame_times.append(time.monotonic())
        await super().send_audio(pcm16)


class SlowTools(FakeTools):
    """Each tool call takes ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    async def run(self, *, turn, call):  # type: ignore[override]  # noqa: ANN001, ANN201
        await asyncio.sleep(self.delay_s)
        return await super().run(turn=turn, call=call)


@dataclass
class Call:
    session: CallSession
    recorder: TimedRecorder
    llm: FakeLLM
    tts: TTS
    dg: FakeDeepgram
    t0: float  # the session's clock origin
    #: monotonic time at which each caller frame was pushed, by frame index.
    pushed_at: list[float] = field(default_factory=list)

    def of(self, kind: str) -> list[SessionEvent]:
        return [e for e in self.recorder.events if e.type == kind]

    def wall(self, event: SessionEvent) -> float:
        """The monotonic time of an event."""
        return self.t0 + event.t_ms / 1000

    def caller_turns(self) -> list[int]:
        return [
            e.turn
            for e in self.recorder.events
            if e.type == "turn.started" and e.data.get("role") == "caller"
        ]

    def ended(self, turn: int) -> SessionEvent:
        return next(e for e in self.of("turn.ended") if e.turn == turn)

    def audio_s_at(self, event: SessionEvent) -> float:
        """How much caller audio (s) had been pushed when ``event`` was emitted: a position on
        the audio's own clock, whatever the machine's speed (each push is processed before
        the next frame's slot)."""
        return bisect.bisect_right(self.pushed_at, self.wall(event)) * FRAME_S

    def at_stream_s(self, seconds: float) -> float:
        """The monotonic time the caller frame holding stream second ``seconds`` was pushed."""
        return self.pushed_at[min(int(seconds / FRAME_S), len(self.pushed_at) - 1)]

    async def wait_for(
        self, predicate: Callable[[Call], bool], *, timeout_s: float = 10.0, mic: bool = True
    ) -> None:
        """Keep the microphone open (silence) until ``predicate(call)`` holds."""
        deadline = time.monotonic() + timeout_s
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; events: {[e.type for e in self.recorder.events]}")
            if mic:
                await self.push(bytes(FRAME_BYTES))
            else:
                await asyncio.sleep(FRAME_S)

    async def push(self, frame: bytes) -> None:
        """Push one frame at its real-time slot."""
        due = self._next_at
        if (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        self._next_at = max(due, time.monotonic() - FRAME_S) + FRAME_S
        self.pushed_at.append(time.monotonic())
        await self.session.push_audio(frame)

    async def speak(
        self, audio: CallerAudio | bytes, *, mic: Callable[[int, bytes], bytes] | None = None
    ) -> None:
        """Push the caller audio in real time; ``mic(i, frame)`` may transform each frame."""
        pcm = bytes(audio.pcm if isinstance(audio, CallerAudio) else audio)
        pcm += bytes(-len(pcm) % FRAME_BYTES)
        for i in range(0, len(pcm), FRAME_BYTES):
            frame = pcm[i : i + FRAME_BYTES]
            if mic is not None:
                frame = mic(len(self.pushed_at), frame)
            await self.push(frame)

    _next_at: float = 0.0


async def start_call(
    dg: FakeDeepgram,
    *,
    turn_taking: TurnTakingSettings | None = None,
    responses: list[list[LLMChunk] | Exception] | None = None,
    llm: LLM | None = None,
    tts: TTS | None = None,
    tools: FakeTools | None = None,
    greeting: str = "",
    dg_endpointing_ms: int | None = 300,
    dg_utterance_end_ms: int | None = 1000,
    audio_lead_ms: int = 120,
    tools_schema: tuple[dict[str, object], ...] = (),
) -> Call:
    """Start a session on the real VAD and the real Deepgram SDK against ``dg``."""
    recorder = TimedRecorder()
    fake_llm = llm or FakeLLM(responses or [])
    stt = DeepgramSTT(
        DeepgramSettings(
            api_key=DG_KEY,
            url=dg.url,
            endpointing_ms=dg_endpointing_ms,
            utterance_end_ms=dg_utterance_end_ms,
            reconnect_backoff_s=0.05,
        )
    )
    turn_taking = turn_taking or TurnTakingSettings()
    session = CallSession(
        # As a call builds it: the VAD's speech end is the pause.
        vad=StreamingVAD(VADSettings(min_silence_ms=turn_taking.pause_ms)),
        stt=stt,
        llm=fake_llm,
        tts=tts or FakeTTS(),
        tools=tools or FakeTools(),
        events=recorder,
        audio=recorder,
        settings=SessionSettings(
            system_prompt="You are a test agent.",
            greeting=greeting,
            audio_lead_ms=audio_lead_ms,
            tools=tools_schema,  # type: ignore[arg-type]
            turn_taking=turn_taking,
        ),
    )
    await session.start()
    call = Call(session, recorder, fake_llm, session.tts, dg, t0=session._t0)  # type: ignore[arg-type]
    call._next_at = time.monotonic()
    return call


TOOL_OK = ToolResult(ok=True, content='{"ok": true}')
