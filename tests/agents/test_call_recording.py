"""Every voice call is recorded: a stereo WAV (caller left, agent right) on the events' clock,
its Recording row, and the retention that deletes it."""

from __future__ import annotations

import datetime as dt
import json
import wave
from pathlib import Path

import numpy as np
import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from parley.agents.voice.audio import load_wav_resampled
from parley.conversations.models import Recording
from tests.agents.conftest import turn_ended, ws_call
from tests.conftest import SPEECH

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.slow]


def loud_ms(channel: np.ndarray, *, rate_hz: int, threshold: int = 1500) -> np.ndarray:
    """Times (ms) of samples above ``threshold``."""
    return np.flatnonzero(np.abs(channel.astype(np.int32)) > threshold) * 1000 / rate_hz


async def place_call(*, greeting: bool) -> tuple[str, list[dict]]:
    pcm = load_wav_resampled(SPEECH / "ms_my_voice_is_my_passport.wav", sample_rate_hz=16_000)
    call = await ws_call("hospital-receptionist")
    if greeting:
        await call.wait_for(turn_ended(0))
    await call.send_audio(pcm, realtime=True)
    await call.send_audio(bytes(640 * 60), realtime=True)
    await call.wait_for(turn_ended(1))
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))
    return call.of("session.started")[0]["conversation_id"], call.events


async def test_a_call_is_recorded_in_stereo_on_the_events_clock(
    hospital_agent, reports_dir, recordings_dir
) -> None:  # noqa: ANN001
    hospital_agent.greeting = "Hello, this is the hospital."
    await database_sync_to_async(hospital_agent.save)()
    conversation_id, events = await place_call(greeting=True)

    recording = await database_sync_to_async(
        lambda: Recording.objects.select_related("conversation").get(
            conversation_id=conversation_id
        )
    )()
    path = Path(recording.path)
    assert path.is_file() and path.parent.parent.parent == recordings_dir
    assert path.name == f"{conversation_id}.wav"
    assert recording.channels == 2 and recording.sample_rate_hz == 16_000
    assert recording.size_bytes == path.stat().st_size
    expires = recording.expires_at - timezone.now()
    assert dt.timedelta(days=29, hours=23) < expires <= dt.timedelta(days=30)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 16_000, 2)
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert recording.duration_ms == pytest.approx(data.shape[0] / 16, abs=1)

    speaking = [e for e in events if e["type"] == "agent.speaking"]
    greeting_at, reply_at = speaking[0]["t_ms"], speaking[1]["t_ms"]
    speech_start = next(e for e in events if e["type"] == "vad.speech_start")["t_ms"]
    agent = loud_ms(data[:, 1], rate_hz=16_000)
    caller = loud_ms(data[:, 0], rate_hz=16_000)
    # The agent's channel starts where the events say the greeting started, and its reply
    # where the reply started (±60 ms: the first syllable may start softly).
    assert agent[0] == pytest.approx(greeting_at, abs=60)
    assert agent[agent > greeting_at + 100][agent[agent > greeting_at + 100] > speech_start][
        0
    ] == pytest.approx(reply_at, abs=60)
    # The caller's speech is on the left, after the greeting, before the reply, and the VAD's
    # speech start falls inside it.
    assert greeting_at < caller[0] < reply_at
    assert caller[0] - 400 < speech_start < caller[-1]
    assert caller[-1] < reply_at


async def test_no_recording_when_the_agent_keeps_none(
    hospital_agent, reports_dir, recordings_dir
) -> None:  # noqa: ANN001
    hospital_agent.recording_retention_days = 0
    await database_sync_to_async(hospital_agent.save)()
    conversation_id, _ = await place_call(greeting=False)
    assert not await database_sync_to_async(
        Recording.objects.filter(conversation_id=conversation_id).exists
    )()
    assert not recordings_dir.exists() or not any(recordings_dir.rglob("*.wav"))
