"""Tests for parley.testing.speech_sim: the simulated STT and TTS of the benchmarks, alone and
chosen by PARLEY_SIMULATED_SPEECH for a real call through the caller socket."""

from __future__ import annotations

import asyncio
import json
import math

import numpy as np
import pytest

from parley.agents.voice.audio import read_wav, rms_dbfs, silence
from parley.agents.voice.messages import Transcript
from parley.testing.speech_sim import (
    DEFAULT_TRANSCRIPT,
    SimulatedSTT,
    SimulatedSTTSettings,
    SimulatedTTS,
    SimulatedTTSSettings,
)
from tests.conftest import SPEECH

# ---------------------------------------------------------------- STT


async def _collect(stream, n: int) -> list[Transcript]:  # noqa: ANN001
    out: list[Transcript] = []
    async for message in stream:
        out.append(message)
        if len(out) == n:
            break
    return out


async def test_stt_answers_each_finalize_with_the_next_scripted_final() -> None:
    stt = SimulatedSTT(SimulatedSTTSettings(transcripts=("one", "two")))
    stream = await stt.open_stream()
    await stream.push_audio(bytes(640))
    await stream.speech_started(audio_ms=0.0)
    for _ in range(3):
        await stream.finalize()
    finals = await _collect(stream, 3)
    assert [t.text for t in finals] == ["one", "two", "one"]
    assert all(t.is_final and t.speech_final for t in finals)
    assert stream.audio_bytes == 640
    await stream.aclose()
    assert [m async for m in stream] == []  # the iterator ends at close


async def test_stt_delays_the_final_and_close_cancels_a_pending_one() -> None:
    stt = SimulatedSTT(SimulatedSTTSettings(final_delay_ms=30))
    stream = await stt.open_stream()
    await stream.finalize()
    assert stream._queue.empty()  # not yet: it comes after the delay
    (final,) = await asyncio.wait_for(_collect(stream, 1), timeout=5)
    assert final.text == DEFAULT_TRANSCRIPT

    await stream.finalize()
    await stream.aclose()  # before the delay is over: no final, no leaked task
    assert [m async for m in stream] == []
    assert not stream._tasks
    await stream.finalize()  # after close: ignored


def test_stt_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        SimulatedSTTSettings(transcripts=())
    with pytest.raises(ValueError):
        SimulatedSTTSettings(final_delay_ms=-1)


# ---------------------------------------------------------------- TTS


async def test_tts_yields_a_quiet_tone_as_long_as_the_text() -> None:
    tts = SimulatedTTS(SimulatedTTSSettings(speed=0))
    text = "You said: hello there."
    chunks = [chunk async for chunk in tts.synthesize(f"  {text} ")]
    audio = b"".join(chunks)
    assert len(audio) == tts.audio_bytes(text) == round(len(text) * 65 * 24) * 2
    assert all(len(c) % 2 == 0 and 0 < len(c) <= 4800 for c in chunks)  # 100 ms chunks
    assert rms_dbfs(audio) == pytest.approx(-30, abs=0.5)
    samples = np.frombuffer(audio, dtype="<i2").astype(float)
    # A 220 Hz tone with no click where the precomputed second repeats.
    assert np.max(np.abs(np.diff(samples))) < 2 * math.pi * 220 / 24_000 * 32767 * 0.05
    assert [c async for c in tts.synthesize("   ")] == []


async def test_tts_paces_its_chunks_and_stops_when_closed() -> None:
    tts = SimulatedTTS(SimulatedTTSSettings(ttfb_ms=20, speed=50))
    loop = asyncio.get_running_loop()
    started = loop.time()
    stream = tts.synthesize("x" * 200)  # 13 s of audio: 0.26 s at 50x real time
    first = await anext(stream)
    assert loop.time() - started >= 0.019  # not before its TTFB
    assert len(first) == 4800
    await stream.aclose()  # barge-in: the generator stops at once
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


def test_tts_settings_are_checked() -> None:
    for bad in (
        {"ttfb_ms": -1},
        {"speed": -1},
        {"speed": math.inf},
        {"chunk_ms": 0},
        {"chunk_ms": 1001},
        {"level_dbfs": 3},
    ):
        with pytest.raises(ValueError):
            SimulatedTTSSettings(**bad)


# ---------------------------------------------------------------- through the platform


@pytest.mark.django_db(transaction=True)
async def test_a_call_with_simulated_speech_runs_the_real_vad(hospital_agent, settings) -> None:  # noqa: ANN001
    """With PARLEY_SIMULATED_SPEECH the call's STT and TTS are the simulators; the VAD is the
    real Silero model, so the scripted final comes when the caller's real speech ends."""
    from channels.db import database_sync_to_async

    from tests.agents.conftest import turn_ended, ws_call

    settings.PARLEY_SIMULATED_SPEECH = True
    settings.PARLEY_SIMULATED_TRANSCRIPT = "What time is it?"

    def agent_prepare() -> None:
        hospital_agent.tools.clear()  # the LLM simulator then echoes the caller
        hospital_agent.recording_retention_days = 0
        hospital_agent.save()

    await database_sync_to_async(agent_prepare)()

    call = await ws_call("hospital-receptionist")
    started = call.of("session.started")[0]
    assert started["providers"]["stt"] == "simulated-stt"
    assert started["providers"]["tts"] == "simulated-tts"
    pcm, _ = read_wav(SPEECH / "ms_turn_on_the_lamp.wav")
    await call.send_audio(silence(300, sample_rate_hz=16_000) + pcm, realtime=False)
    await call.send_audio(silence(1500, sample_rate_hz=16_000), realtime=True)
    await call.wait_for(turn_ended(1), timeout=30)
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))

    assert call.of("transcript.final")[0]["text"] == "What time is it?"
    reply = " ".join(e["text"] for e in call.of("agent.text"))
    assert "What time is it?" in reply
    assert len(call.of("vad.speech_start")) == 1
    # The tone: about 65 ms of 24 kHz audio per character of the reply.
    assert len(call.audio) >= round(len(reply) * 0.065 * 24_000) * 2 * 0.9
    assert call.of("turn.metrics")[0]["tts_ttfb_ms"] < 50
