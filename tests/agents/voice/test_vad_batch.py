"""Tests for the batched Silero VAD: parley.agents.voice.vad.VADBatcher and its use by
StreamingVAD.push.

Real speech from tests/fixtures/audio/speech, several streams interleaved; the reference is
the unbatched path (SileroVAD.probability window by window, StreamingVAD.process). No timing
assertions.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parley.agents.voice.audio import pcm16_to_float32, read_wav, silence, split_frames
from parley.agents.voice.messages import INPUT_FRAME_BYTES, VADEvent
from parley.agents.voice.vad import (
    WINDOW_SAMPLES,
    SileroVAD,
    StreamingVAD,
    VADBatcher,
    vad_batcher,
)

SPEECH = Path(__file__).resolve().parents[2] / "fixtures" / "audio" / "speech"
RATE = 16_000
CLIPS = (
    "ms_turn_on_the_lamp",
    "one_two_three",
    "goforward_ten_meters",
    "ms_whats_the_weather_like",
    "cards_eight_of_spades",
)
#: Batched and unbatched inference sum in another order: equal to within float rounding.
TOLERANCE = 1e-4


@functools.cache
def _pcm(name: str) -> bytes:
    pcm, rate = read_wav(SPEECH / f"{name}.wav")
    assert rate == RATE
    return pcm


def _windows(name: str) -> np.ndarray:
    """The clip's whole 512-sample windows as PCM16, shape (n, 512)."""
    samples = np.frombuffer(_pcm(name), dtype="<i2")
    n = len(samples) // WINDOW_SAMPLES
    return samples[: n * WINDOW_SAMPLES].reshape(n, WINDOW_SAMPLES)


def _unbatched(windows: np.ndarray) -> list[float]:
    model = SileroVAD(batched=False)
    return [model.probability(pcm16_to_float32(w.tobytes())) for w in windows]


def _event_keys(events: list[VADEvent]) -> list[tuple[Any, ...]]:
    return [(e.kind, e.audio_ms, e.forced, round(e.probability, 4)) for e in events]


def _session(model: SileroVAD) -> Any:
    return model._session


class RecordingSession:
    """Wraps the real InferenceSession and records the batch size of every run."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> Any:
        with self.lock:
            self.sizes.append(feed["input"].shape[0])
        return self.session.run(names, feed)


@pytest.fixture
def batcher():  # noqa: ANN201
    """A batcher of its own with a tick long enough to gather every stream's window."""
    recording = RecordingSession(_session(SileroVAD()))
    b = VADBatcher(recording, tick_ms=5, max_batch=64)  # type: ignore[arg-type]
    b.recording = recording  # type: ignore[attr-defined]
    yield b
    b.close()


# ---------------------------------------------------------------- equality and order


async def test_interleaved_streams_match_unbatched_inference(batcher: VADBatcher) -> None:
    """Five streams of real speech, each submitting its windows one at a time, all at once:
    every probability equals the unbatched one, and windows really were batched."""
    streams = {name: _windows(name) for name in CLIPS}
    expected = {name: _unbatched(w) for name, w in streams.items()}

    async def run(name: str) -> list[float]:
        model = SileroVAD()
        got: list[float] = []
        for window in streams[name]:
            got += await batcher.submit(model, window[None, :], then=list)
        return got

    results = await asyncio.gather(*(run(name) for name in CLIPS))
    for name, got in zip(CLIPS, results, strict=True):
        assert len(got) == len(expected[name])
        assert np.max(np.abs(np.array(got) - np.array(expected[name]))) < TOLERANCE, name
        assert max(got) > 0.9 and min(got) < 0.1  # real speech and real silence
    sizes = batcher.recording.sizes  # type: ignore[attr-defined]
    assert max(sizes) > 1, "nothing was batched"
    assert batcher.windows == sum(len(w) for w in streams.values())


async def test_float_and_pcm16_windows_give_the_same_probabilities(batcher: VADBatcher) -> None:
    pcm16 = _windows("one_two_three")[:40]
    as_float = np.stack([pcm16_to_float32(w.tobytes()) for w in pcm16])
    got_int = await batcher.submit(SileroVAD(), pcm16, then=list)
    got_float = await batcher.submit(SileroVAD(), as_float, then=list)
    assert got_int == got_float


async def test_one_stream_keeps_its_order_across_many_pending_requests(
    batcher: VADBatcher,
) -> None:
    """Requests of one stream queued back to back (several windows each) are analysed and
    called back in submission order, each window after the one before it."""
    windows = _windows("ms_whats_the_weather_like")
    expected = _unbatched(windows)
    model = SileroVAD()
    other = SileroVAD()  # a second stream, so the batches mix streams
    order: list[int] = []
    chunks = [windows[i : i + 3] for i in range(0, len(windows), 3)]

    def then(i: int, probabilities: list[float]) -> list[float]:
        order.append(i)
        return probabilities

    futures = [
        batcher.submit(model, chunk, then=functools.partial(then, i))
        for i, chunk in enumerate(chunks)
    ]
    noise = batcher.submit(other, _windows("one_two_three"), then=list)
    results = await asyncio.gather(*futures)
    await noise
    assert order == list(range(len(chunks)))
    got = [p for chunk in results for p in chunk]
    assert np.max(np.abs(np.array(got) - np.array(expected))) < TOLERANCE


async def test_streaming_vads_pushed_concurrently_match_process() -> None:
    """StreamingVAD.push (through the process's batcher) gives exactly the events of the
    unbatched StreamingVAD.process for several calls pushing 20 ms frames at once."""
    pcms = {name: _pcm(name) + silence(1200, sample_rate_hz=RATE) for name in CLIPS}
    expected = {
        name: _event_keys(StreamingVAD().process(pcm, at=0.0)) for name, pcm in pcms.items()
    }
    vads = {name: StreamingVAD() for name in CLIPS}
    streamed: dict[str, list[VADEvent]] = {name: [] for name in CLIPS}

    async def call(name: str) -> None:
        for frame in split_frames(pcms[name], frame_bytes=INPUT_FRAME_BYTES):
            streamed[name] += await vads[name].push(frame, at=0.0)

    before = vad_batcher().windows
    await asyncio.gather(*(call(name) for name in CLIPS))
    for name in CLIPS:
        assert expected[name], f"{name}: no speech found"
        assert _event_keys(streamed[name]) == expected[name], name
        assert vads[name].audio_ms == len(pcms[name]) / 32
    assert vad_batcher().windows - before == sum(len(p) // 1024 for p in pcms.values())


async def test_max_batch_bounds_every_inference() -> None:
    recording = RecordingSession(_session(SileroVAD()))
    small = VADBatcher(recording, tick_ms=5, max_batch=3)  # type: ignore[arg-type]
    try:
        models = [SileroVAD() for _ in range(7)]
        windows = _windows("one_two_three")[:5]
        results = await asyncio.gather(*(small.submit(m, windows, then=list) for m in models))
        assert all(r == results[0] for r in results)  # same audio, same probabilities
        assert max(recording.sizes) == 3
        assert sum(recording.sizes) == 7 * 5
    finally:
        small.close()


# ---------------------------------------------------------------- cancellation, reset, errors


async def test_a_cancelled_request_still_advances_its_stream(batcher: VADBatcher) -> None:
    """The caller hung up mid-analysis: its future is cancelled, but the windows were taken
    from the stream, so they still advance the model state and ``then`` still runs."""
    windows = _windows("ms_turn_on_the_lamp")
    expected = _unbatched(windows)
    model = SileroVAD()
    seen: list[list[float]] = []

    def then(probabilities: list[float]) -> list[float]:
        seen.append(probabilities)
        return probabilities

    cancelled = batcher.submit(model, windows[:10], then=then)
    cancelled.cancel()
    rest = await batcher.submit(model, windows[10:], then=then)
    assert cancelled.cancelled()
    assert len(seen) == 2 and seen[1] == rest
    got = seen[0] + rest
    assert np.max(np.abs(np.array(got) - np.array(expected))) < TOLERANCE


async def test_a_cancelled_push_keeps_the_state_machine_in_step() -> None:
    pcm = _pcm("one_two_three") + silence(1200, sample_rate_hz=RATE)
    frames = split_frames(pcm, frame_bytes=INPUT_FRAME_BYTES)
    expected = StreamingVAD().process(pcm, at=0.0)
    vad = StreamingVAD()
    events: list[VADEvent] = []
    cancelled_at = 20  # frame 20 completes a window (its push awaits the batcher)
    for i, frame in enumerate(frames):
        if i == cancelled_at:
            task = asyncio.ensure_future(vad.push(frame, at=0.0))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            continue
        events += await vad.push(frame, at=0.0)
    # The speech boundaries come well after frame 20: nothing was lost, positions agree.
    assert _event_keys(events) == _event_keys(expected)
    assert vad.audio_ms == len(pcm) / 32


async def test_windows_queued_at_a_reset_start_the_new_stream(batcher: VADBatcher) -> None:
    windows = _windows("ms_turn_on_the_lamp")
    model = SileroVAD()
    await batcher.submit(model, windows[:20], then=list)
    pending = batcher.submit(model, windows[20:22], then=list)
    model.reset()  # before the worker's tick: the windows are analysed from the zero state
    assert await pending == pytest.approx(_unbatched(windows[20:22]), abs=TOLERANCE)


async def test_a_reset_during_inference_is_not_overwritten() -> None:
    """reset() while the batch runs: the batch's new state belongs to the old stream and is
    not written back."""
    model = SileroVAD()

    class ResettingSession:
        def __init__(self) -> None:
            self.session = _session(model)

        def run(self, names: list[str], feed: dict[str, np.ndarray]) -> Any:
            model.reset()
            return self.session.run(names, feed)

    b = VADBatcher(ResettingSession(), tick_ms=0)  # type: ignore[arg-type]
    try:
        await b.submit(model, _windows("ms_turn_on_the_lamp")[10:14], then=list)
        assert not model._state.any()
        assert not model._input.any()
    finally:
        b.close()


async def test_errors_reach_the_caller_and_the_worker_survives() -> None:
    class Failing:
        def __init__(self) -> None:
            self.fail = True
            self.session = _session(SileroVAD())

        def run(self, names: list[str], feed: dict[str, np.ndarray]) -> Any:
            if self.fail:
                raise RuntimeError("inference failed")
            return self.session.run(names, feed)

    session = Failing()
    b = VADBatcher(session, tick_ms=0)  # type: ignore[arg-type]
    try:
        windows = _windows("one_two_three")[:3]
        with pytest.raises(RuntimeError, match="inference failed"):
            await b.submit(SileroVAD(), windows, then=list)

        def broken(probabilities: list[float]) -> None:
            raise ValueError("then failed")

        session.fail = False
        with pytest.raises(ValueError, match="then failed"):
            await b.submit(SileroVAD(), windows, then=broken)
        assert await b.submit(SileroVAD(), windows, then=list) == pytest.approx(
            _unbatched(windows), abs=TOLERANCE
        )
    finally:
        b.close()


def test_a_closed_event_loop_does_not_stop_the_batcher() -> None:
    """A call's loop closed while its window waited (tests make a loop per test; a server
    restarting its loop): the result is dropped and the batcher serves the next loop."""
    b = VADBatcher(_session(SileroVAD()), tick_ms=100)
    try:
        windows = _windows("one_two_three")[:2]
        calls: list[list[float]] = []

        async def submit() -> asyncio.Future[Any]:
            return b.submit(SileroVAD(), windows, then=calls.append)

        old = asyncio.new_event_loop()
        old.run_until_complete(submit())
        old.close()  # before the 100 ms tick runs the batch

        async def again() -> list[float]:
            return await b.submit(SileroVAD(), windows, then=list)

        assert asyncio.run(again()) == pytest.approx(_unbatched(windows), abs=TOLERANCE)
        assert calls == []  # the closed loop's callback never ran
    finally:
        b.close()


async def test_close_finishes_queued_work_then_refuses_more() -> None:
    b = VADBatcher(_session(SileroVAD()), tick_ms=50)
    windows = _windows("one_two_three")[:4]
    pending = b.submit(SileroVAD(), windows, then=list)
    await asyncio.to_thread(b.close)
    assert b.closed
    assert await pending == pytest.approx(_unbatched(windows), abs=TOLERANCE)
    with pytest.raises(RuntimeError, match="closed"):
        b.submit(SileroVAD(), windows, then=list)


# ---------------------------------------------------------------- validation


async def test_submit_rejects_bad_windows(batcher: VADBatcher) -> None:
    model = SileroVAD()
    for bad in (
        np.zeros((0, WINDOW_SAMPLES), np.float32),
        np.zeros(WINDOW_SAMPLES, np.float32),
        np.zeros((2, WINDOW_SAMPLES - 1), np.float32),
        np.zeros((1, WINDOW_SAMPLES), np.float64),
        np.zeros((1, WINDOW_SAMPLES), np.int32),
    ):
        with pytest.raises(ValueError):
            batcher.submit(model, bad, then=list)


def test_settings_are_checked() -> None:
    session = _session(SileroVAD())
    with pytest.raises(ValueError):
        VADBatcher(session, tick_ms=-1)
    with pytest.raises(ValueError):
        VADBatcher(session, max_batch=0)


def test_unbatched_models_keep_the_thread_pool_path() -> None:
    """A model without a batched path (the tests' scripted fakes, SileroVAD(batched=False))
    is run by StreamingVAD.push on the executor, as before."""
    assert StreamingVAD(model=SileroVAD(batched=False))._batched is None
    assert StreamingVAD()._batched is not None
