"""Simulated speech-to-text and text-to-speech for benchmarks: no model, no vendor.

A real Daphne server uses them in place of every call's STT and TTS when the benchmark-only
setting ``PARLEY_SIMULATED_SPEECH`` is on (``parley/agents/providers.py``), so a load test
measures the platform — sockets, VAD, the session, the LLM client — and not PocketSphinx or
eSpeak NG, whose CPU cost per call would swamp it (bench/concurrency.py).

* :class:`SimulatedSTT`: ignores the audio and answers each ``finalize()`` with the next of
  its scripted transcripts as a final, end-of-speech result, after ``final_delay_ms``.
* :class:`SimulatedTTS`: a quiet tone of ``ms_per_char`` per character of text (PCM16 mono
  24 kHz), its first chunk after ``ttfb_ms``, then produced ``speed`` times faster than
  real time, like a streaming vendor.

Both are cheap: the STT does nothing per frame and the TTS slices one precomputed second of
tone, so their own CPU cost stays out of the measurement.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from parley.agents.voice.messages import (
    BYTES_PER_SAMPLE,
    OUTPUT_SAMPLE_RATE_HZ,
    STTMessage,
    Transcript,
)
from parley.agents.voice.stt.base import STT, STTStream
from parley.agents.voice.tts.base import TTS

__all__ = [
    "DEFAULT_TRANSCRIPT",
    "SimulatedSTT",
    "SimulatedSTTSettings",
    "SimulatedSTTStream",
    "SimulatedTTS",
    "SimulatedTTSSettings",
]

#: What the simulated caller "says" when nothing else is scripted.
DEFAULT_TRANSCRIPT = "I would like to move my appointment to next Tuesday morning."
#: Speaking rate of the simulated voice: the ElevenLabs fake's (parley/testing), ~15 chars/s.
DEFAULT_MS_PER_CHAR = 65.0


@dataclass(frozen=True, slots=True)
class SimulatedSTTSettings:
    """Options of :class:`SimulatedSTT`.

    - ``transcripts``: the finals, in turn order (the n-th ``finalize()`` of a stream gets
      ``transcripts[n % len]``).
    - ``final_delay_ms``: time from ``finalize()`` to the final (0: at once).

    Raises:
        ValueError: no transcripts, or a negative delay.
    """

    transcripts: tuple[str, ...] = (DEFAULT_TRANSCRIPT,)
    final_delay_ms: float = 0.0

    def __post_init__(self) -> None:
        if not self.transcripts:
            raise ValueError("transcripts must not be empty")
        if not (self.final_delay_ms >= 0 and math.isfinite(self.final_delay_ms)):
            raise ValueError(f"final_delay_ms must be >= 0, got {self.final_delay_ms}")


class SimulatedSTTStream(STTStream):
    """One call's stream: counts the audio it is given, answers ``finalize()`` on schedule."""

    def __init__(self, settings: SimulatedSTTSettings) -> None:
        self.settings = settings
        self.audio_bytes = 0
        self.finals = 0
        self._queue: asyncio.Queue[STTMessage | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def push_audio(self, pcm16: bytes) -> None:
        self.audio_bytes += len(pcm16)

    async def finalize(self) -> None:
        if self._closed:
            return
        transcripts = self.settings.transcripts
        text = transcripts[self.finals % len(transcripts)]
        self.finals += 1
        final = Transcript(text=text, is_final=True, speech_final=True, confidence=1.0)
        if self.settings.final_delay_ms <= 0:
            self._queue.put_nowait(final)
            return
        task = asyncio.get_running_loop().create_task(self._deliver_later(final))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_later(self, final: Transcript) -> None:
        await asyncio.sleep(self.settings.final_delay_ms / 1000)
        self._queue.put_nowait(final)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[STTMessage]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[STTMessage]:
        while (message := await self._queue.get()) is not None:
            yield message


class SimulatedSTT(STT):
    """Scripted finals instead of recognition (see the module docstring)."""

    name = "simulated-stt"

    def __init__(self, settings: SimulatedSTTSettings | None = None) -> None:
        self.settings = settings or SimulatedSTTSettings()

    async def open_stream(self) -> SimulatedSTTStream:
        return SimulatedSTTStream(self.settings)


@dataclass(frozen=True, slots=True)
class SimulatedTTSSettings:
    """Options of :class:`SimulatedTTS`.

    - ``ttfb_ms``: time from ``synthesize()`` to its first chunk.
    - ``speed``: how many times faster than real time the rest is produced (0: as fast as it
      is consumed). Streaming vendors run several times faster than real time.
    - ``chunk_ms``: audio per yielded chunk (ElevenLabs' HTTP stream sends chunks of about
      this size at 24 kHz).
    - ``ms_per_char``: audio per character of text (65 ms: ~15 characters/s, a calm voice).
    - ``level_dbfs``: RMS level of the tone (quiet: it is a placeholder, not a voice).

    Raises:
        ValueError: a negative time or speed, a chunk outside 1..1000 ms, a level above
            0 dBFS.
    """

    ttfb_ms: float = 0.0
    speed: float = 20.0
    chunk_ms: int = 100
    ms_per_char: float = DEFAULT_MS_PER_CHAR
    level_dbfs: float = -30.0

    def __post_init__(self) -> None:
        for name in ("ttfb_ms", "speed", "ms_per_char"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if not 1 <= self.chunk_ms <= 1000:
            raise ValueError(f"chunk_ms must be in 1..1000, got {self.chunk_ms}")
        if not self.level_dbfs <= 0:
            raise ValueError(f"level_dbfs must be <= 0, got {self.level_dbfs}")


@functools.cache
def _tone_second(level_dbfs: float) -> bytes:
    """One second of a 220 Hz sine at ``level_dbfs`` RMS, PCM16 at 24 kHz (a whole number
    of periods, so consecutive seconds join without a click)."""
    t = np.arange(OUTPUT_SAMPLE_RATE_HZ) / OUTPUT_SAMPLE_RATE_HZ
    amplitude = math.sqrt(2) * 10 ** (level_dbfs / 20) * 32767
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


class SimulatedTTS(TTS):
    """A tone as long as the text would take to say (see the module docstring)."""

    name = "simulated-tts"
    sample_rate_hz = OUTPUT_SAMPLE_RATE_HZ

    def __init__(self, settings: SimulatedTTSSettings | None = None) -> None:
        self.settings = settings or SimulatedTTSSettings()

    def audio_bytes(self, text: str) -> int:
        """Bytes of PCM16 :meth:`synthesize` yields for ``text`` (whitespace-trimmed)."""
        samples = round(len(text.strip()) * self.settings.ms_per_char * self.sample_rate_hz / 1000)
        return samples * BYTES_PER_SAMPLE

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """PCM16 mono 24 kHz chunks of ``chunk_ms`` (the last one shorter); nothing for
        empty text."""
        s = self.settings
        remaining = self.audio_bytes(text)
        if remaining == 0:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + s.ttfb_ms / 1000
        tone = _tone_second(s.level_dbfs)
        chunk_bytes = self.sample_rate_hz * s.chunk_ms // 1000 * BYTES_PER_SAMPLE
        position = 0
        while remaining > 0:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            size = min(chunk_bytes, remaining)
            start = position % len(tone)
            end = start + size
            chunk = tone[start:end] if end <= len(tone) else tone[start:] + tone[: end - len(tone)]
            position += size
            remaining -= size
            if s.speed > 0:
                due += size / BYTES_PER_SAMPLE / self.sample_rate_hz / s.speed
            yield chunk
