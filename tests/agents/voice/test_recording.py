"""CallRecorder: caller left, agent right, on the session clock; barge-in cuts; files."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from parley.agents.voice.recording import CallRecorder

pytestmark = pytest.mark.asyncio

RATE = 16_000


def tone(ms: float, *, rate_hz: int, freq_hz: float = 440.0, amplitude: int = 8000) -> bytes:
    n = int(rate_hz * ms / 1000)
    t = np.arange(n) / rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype("<i2").tobytes()


def frames(pcm: bytes, *, rate_hz: int, frame_ms: int = 20) -> list[bytes]:
    size = rate_hz * frame_ms // 1000 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def read_stereo(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 2 and wav.getsampwidth() == 2
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
        return data, wav.getframerate()


def active_ms(channel: np.ndarray, *, rate_hz: int, threshold: int = 1000) -> tuple[float, float]:
    """First and last sample above ``threshold``, in ms."""
    loud = np.flatnonzero(np.abs(channel.astype(np.int32)) > threshold)
    assert loud.size, "channel is silent"
    return loud[0] * 1000 / rate_hz, loud[-1] * 1000 / rate_hz


def feed_caller(recorder: CallRecorder, pcm: bytes, *, start_ms: float) -> None:
    """Frames as they arrive: each at the end of the 20 ms it carries."""
    for i, frame in enumerate(frames(pcm, rate_hz=16_000)):
        recorder.caller(frame, at_ms=start_ms + (i + 1) * 20)


def feed_agent(recorder: CallRecorder, pcm: bytes, *, start_ms: float, rate_hz: int) -> None:
    for i, frame in enumerate(frames(pcm, rate_hz=rate_hz)):
        recorder.agent(frame, at_ms=start_ms + i * 20)


async def test_caller_left_agent_right_aligned_on_the_session_clock(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "calls" / "c.wav"
    recorder = CallRecorder(path=path, agent_rate_hz=24_000, flush_interval_ms=10)
    recorder.start()
    silence = bytes(640)
    feed_caller(recorder, silence * 25, start_ms=0)  # 0.5 s of silence
    feed_caller(recorder, tone(500, rate_hz=16_000), start_ms=500)  # caller speaks 0.5-1.0 s
    feed_caller(recorder, silence * 50, start_ms=1000)
    # The agent answers at 1.6 s for 0.4 s (24 kHz TTS audio, resampled to 16 kHz).
    feed_agent(recorder, tone(400, rate_hz=24_000, freq_hz=300), start_ms=1600, rate_hz=24_000)
    result = await recorder.aclose()

    assert result is not None and result.path == path and result.channels == 2
    data, rate = read_stereo(path)
    assert rate == RATE == result.sample_rate_hz
    assert result.duration_ms == pytest.approx(data.shape[0] * 1000 / RATE)
    assert result.size_bytes == path.stat().st_size
    caller_on, caller_off = active_ms(data[:, 0], rate_hz=RATE)
    agent_on, agent_off = active_ms(data[:, 1], rate_hz=RATE)
    assert caller_on == pytest.approx(500, abs=5) and caller_off == pytest.approx(1000, abs=5)
    assert agent_on == pytest.approx(1600, abs=10) and agent_off == pytest.approx(2000, abs=10)
    # No bleed between channels.
    assert np.abs(data[: 1500 * RATE // 1000, 1]).max() < 200
    assert np.abs(data[1600 * RATE // 1000 :, 0]).max() == 0
    # The raw per-channel files are gone; only the WAV is left.
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.wav"]


async def test_barge_in_silences_the_agent_audio_sent_ahead(tmp_path) -> None:  # noqa: ANN001
    recorder = CallRecorder(path=tmp_path / "c.wav", agent_rate_hz=16_000)
    recorder.start()
    feed_caller(recorder, bytes(640 * 100), start_ms=0)  # 2 s of caller audio (silence)
    # One second of reply queued from 0.5 s, cut by the caller at 0.8 s.
    feed_agent(recorder, tone(1000, rate_hz=16_000), start_ms=500, rate_hz=16_000)
    recorder.agent_cut(at_ms=800)
    # The next reply starts at 1.5 s and plays out.
    feed_agent(recorder, tone(200, rate_hz=16_000), start_ms=1500, rate_hz=16_000)
    result = await recorder.aclose()
    assert result is not None
    data, _ = read_stereo(result.path)
    agent = np.abs(data[:, 1].astype(np.int32))
    assert agent[int(0.55 * RATE) : int(0.78 * RATE)].max() > 5000  # heard until the cut
    assert agent[int(0.81 * RATE) : int(1.49 * RATE)].max() == 0  # dropped after it
    assert agent[int(1.52 * RATE) : int(1.68 * RATE)].max() > 5000  # the next reply


async def test_a_pause_in_caller_audio_stays_a_pause(tmp_path) -> None:  # noqa: ANN001
    recorder = CallRecorder(path=tmp_path / "c.wav", agent_rate_hz=16_000, gap_ms=250)
    recorder.start()
    feed_caller(recorder, tone(200, rate_hz=16_000), start_ms=0)
    # The microphone was paused for 1.8 s: the next audio arrives at 2.0 s.
    feed_caller(recorder, tone(200, rate_hz=16_000), start_ms=2000)
    result = await recorder.aclose()
    data, _ = read_stereo(result.path)
    caller = np.abs(data[:, 0].astype(np.int32))
    assert caller[int(0.25 * RATE) : int(1.95 * RATE)].max() == 0
    assert caller[int(2.02 * RATE) : int(2.18 * RATE)].max() > 5000
    # Jitter below the gap is not a pause: frames arriving late go back to back.
    recorder = CallRecorder(path=tmp_path / "d.wav", agent_rate_hz=16_000, gap_ms=250)
    recorder.start()
    for i, frame in enumerate(frames(tone(400, rate_hz=16_000), rate_hz=16_000)):
        recorder.caller(frame, at_ms=(i + 1) * 20 + (100 if i % 2 else 0))
    result = await recorder.aclose()
    data, _ = read_stereo(result.path)
    assert data.shape[0] == int(0.4 * RATE)
    assert (np.abs(data[int(0.01 * RATE) : int(0.39 * RATE), 0].astype(np.int32)) > 0).mean() > 0.9


async def test_nothing_recorded_writes_nothing_and_bad_frames_are_refused(tmp_path) -> None:  # noqa: ANN001
    recorder = CallRecorder(path=tmp_path / "c.wav", agent_rate_hz=24_000)
    recorder.start()
    with pytest.raises(ValueError, match="odd frame length"):
        recorder.caller(b"\x00\x01\x02", at_ms=20)
    with pytest.raises(ValueError, match="odd frame length"):
        recorder.agent(b"\x00", at_ms=20)
    assert await recorder.aclose() is None
    assert await recorder.aclose() is None  # idempotent
    assert list(tmp_path.iterdir()) == []


async def test_a_disk_that_refuses_writes_loses_the_recording_not_the_call(tmp_path) -> None:  # noqa: ANN001
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the recordings folder should be")
    recorder = CallRecorder(path=blocker / "c.wav", agent_rate_hz=16_000, flush_interval_ms=5)
    recorder.start()
    feed_caller(recorder, tone(100, rate_hz=16_000), start_ms=0)
    assert await recorder.aclose() is None  # logged, not raised
