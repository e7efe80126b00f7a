"""Voice activity detection: Silero VAD on onnxruntime and a streaming speech-boundary machine.

:class:`SileroVAD` runs the vendored Silero VAD model (``vad_models/silero_vad.onnx``, from
the silero-vad 6.2.3 wheel, MIT) on one 512-sample window of 16 kHz audio at a time and
returns a speech probability. :class:`StreamingVAD` buffers caller PCM16 into those windows
and turns the probabilities into ``speech_start`` / ``speech_end`` events
(:class:`~parley.agents.voice.messages.VADEvent`) with hysteresis, a minimum speech length,
an endpointing silence and a maximum utterance length. No torch, no silero-vad package.

Positions are in ms of caller audio since the first sample pushed; the analysis grid is
32 ms (512 samples), so every event position is a multiple of 32 ms.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import onnxruntime as ort

from parley.agents.voice.audio import pcm16_to_float32
from parley.agents.voice.messages import INPUT_SAMPLE_RATE_HZ, VADEvent

__all__ = [
    "DEFAULT_MODEL_PATH",
    "SAMPLE_RATE_HZ",
    "WINDOW_MS",
    "WINDOW_SAMPLES",
    "BatchedSpeechProbabilityModel",
    "SileroVAD",
    "SpeechProbabilityModel",
    "StreamingVAD",
    "VADBatcher",
    "VADSettings",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: The vendored Silero VAD model (see ``vad_models/README.md``).
DEFAULT_MODEL_PATH = Path(__file__).parent / "vad_models" / "silero_vad.onnx"
#: Silero VAD at 16 kHz takes windows of exactly 512 new samples (32 ms) ...
SAMPLE_RATE_HZ = INPUT_SAMPLE_RATE_HZ
WINDOW_SAMPLES = 512
#: ... preceded by the last 64 samples of the previous window (snakers4/silero-vad
#: ``utils_vad.OnnxWrapper``: ``context_size = 64`` at 16 kHz, 32 at 8 kHz).
CONTEXT_SAMPLES = 64
WINDOW_MS = WINDOW_SAMPLES * 1000 / SAMPLE_RATE_HZ
_WINDOW_BYTES = WINDOW_SAMPLES * 2
_STATE_SHAPE = (2, 1, 128)
_SR_INPUT = np.array(SAMPLE_RATE_HZ, dtype=np.int64)
_PCM16_DTYPE = np.dtype("<i2")
_PCM16_SCALE = 1 / 32768  # PCM16 to float in [-1, 1), as audio.pcm16_to_float32


# ---------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class VADSettings:
    """Thresholds and durations of the speech-boundary state machine.

    Defaults and where they come from:

    - ``threshold=0.5``: Silero's default speech threshold (``get_speech_timestamps``); also
      the OpenAI Realtime ``server_vad`` default.
    - ``neg_threshold=None`` means ``max(threshold - 0.15, 0.01)``, exactly as Silero's
      ``get_speech_timestamps`` derives its exit threshold. Once speaking, a window counts
      as speech while its probability is at least this.
    - ``min_speech_ms=250``: Silero's ``min_speech_duration_ms`` default; here it is the
      speech (windows at or above ``threshold``) that must accumulate before a turn starts.
    - ``min_silence_ms=500``: OpenAI Realtime ``server_vad`` ``silence_duration_ms`` default:
      the endpointing silence (windows below ``neg_threshold``) that ends a turn.
    - ``pre_roll_ms=300``: OpenAI Realtime ``server_vad`` ``prefix_padding_ms`` default: how
      much audio before ``speech_start.audio_ms`` the STT stage should include. It travels
      with the VAD settings; :class:`StreamingVAD` itself does not use it.
    - ``max_utterance_ms=30_000``: 30 s, the longest input Whisper-style batch STT takes in
      one piece; longer speech gets a forced ``speech_end``.

    Raises:
        ValueError: a threshold outside (0, 1), ``neg_threshold`` above ``threshold`` or
            negative, a negative duration, or ``max_utterance_ms <= min_speech_ms``.
    """

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_ms: float = 250
    min_silence_ms: float = 500
    pre_roll_ms: float = 300
    max_utterance_ms: float = 30_000

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.neg_threshold is not None and not 0.0 <= self.neg_threshold <= self.threshold:
            raise ValueError(
                f"neg_threshold must be in [0, threshold={self.threshold}], "
                f"got {self.neg_threshold}"
            )
        for name in ("min_speech_ms", "min_silence_ms", "pre_roll_ms"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if not self.max_utterance_ms > self.min_speech_ms:
            raise ValueError(
                f"max_utterance_ms ({self.max_utterance_ms}) must exceed "
                f"min_speech_ms ({self.min_speech_ms})"
            )

    @property
    def exit_threshold(self) -> float:
        """The effective ``neg_threshold`` (Silero's ``max(threshold - 0.15, 0.01)`` if None)."""
        if self.neg_threshold is not None:
            return self.neg_threshold
        return max(self.threshold - 0.15, 0.01)


# ---------------------------------------------------------------- model


class SpeechProbabilityModel(Protocol):
    """What :class:`StreamingVAD` needs from a model (tests inject scripted fakes)."""

    def probability(self, window: np.ndarray) -> float: ...

    def reset(self) -> None: ...


class BatchedSpeechProbabilityModel(SpeechProbabilityModel, Protocol):
    """A model that analyses a stream's windows off the event loop, batched with other
    streams' windows (:class:`SileroVAD` through the process's :class:`VADBatcher`).

    :meth:`StreamingVAD.push` uses :meth:`submit` when the model has ``batched = True``;
    :meth:`StreamingVAD.process` still calls ``probability`` window by window.
    """

    batched: bool

    def submit(
        self, windows: np.ndarray, *, then: Callable[[list[float]], T]
    ) -> asyncio.Future[T]: ...


_sessions: dict[str, ort.InferenceSession] = {}
_sessions_lock = threading.Lock()


def _session(path: Path) -> ort.InferenceSession:
    """Load the ONNX model once per process and path; ``InferenceSession.run`` is thread-safe."""
    key = os.fspath(path.resolve())
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            options = ort.SessionOptions()
            # One window is ~70 µs of work: extra threads only add wake-up latency, and
            # concurrent calls are spread over the executor's threads instead.
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(
                key, sess_options=options, providers=["CPUExecutionProvider"]
            )
            _sessions[key] = session
        return session


class SileroVAD:
    """Silero VAD v5/v6 on onnxruntime for one audio stream at 16 kHz.

    The ONNX graph takes ``input`` float32 ``[1, 64 + 512]`` (the last 64 samples of the
    previous window, then 512 new samples), ``state`` float32 ``[2, 1, 128]`` and ``sr``
    int64 ``16000``; it returns ``output`` ``[1, 1]`` (speech probability) and ``stateN``.
    This wrapper carries the recurrent state and the 64-sample context from window to
    window, so windows must be consecutive audio of one stream. The InferenceSession is
    shared by every instance in the process; the state is per instance.

    Not thread-safe per instance (the state changes on every call); :class:`StreamingVAD`
    serialises its calls.

    Two ways in, on the same state: :meth:`probability` runs one window on the calling
    thread; :meth:`submit` (``batched=True``, the default) queues consecutive windows on the
    process's :class:`VADBatcher`, which runs them in one inference with the windows of every
    other stream waiting at that moment. Do not mix the two while a submission is pending.
    """

    def __init__(
        self, *, model_path: str | os.PathLike[str] | None = None, batched: bool = True
    ) -> None:
        """Load (or reuse) the session for ``model_path`` (default: the vendored model).

        ``batched``: :meth:`StreamingVAD.push` sends this stream's windows to the process's
        :class:`VADBatcher` (else to a thread pool, one inference per window).

        Raises:
            onnxruntime.capi.onnxruntime_pybind11_state.NoSuchFile: no file at the path
                (other onnxruntime exceptions for a file that is not a valid model).
        """
        self._session = _session(Path(model_path) if model_path else DEFAULT_MODEL_PATH)
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._input = np.zeros((1, CONTEXT_SAMPLES + WINDOW_SAMPLES), dtype=np.float32)
        self.batched = batched
        # Bumped by reset(): a batch computed from the state before the reset must not
        # write its state back after it.
        self._generation = 0

    def reset(self) -> None:
        """Zero the recurrent state and the context: start a new, unrelated stream.

        Windows still queued on the batcher are analysed from the zero state (as the new
        stream's first); a batch running at that moment does not write its state back.
        """
        self._generation += 1
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._input[:] = 0.0

    def submit(self, windows: np.ndarray, *, then: Callable[[list[float]], T]) -> asyncio.Future[T]:
        """Queue consecutive windows ``[n, 512]`` of this stream (float32 in [-1, 1], or
        PCM16 as int16) on the process's :class:`VADBatcher`; see :meth:`VADBatcher.submit`.
        Call from a running event loop.

        Raises:
            ValueError: ``windows`` is not float32 or int16 of shape ``(n, 512)``, ``n >= 1``.
            RuntimeError: the batcher was closed.
        """
        return _vad_batcher(self._session).submit(self, windows, then=then)

    def probability(self, window: np.ndarray) -> float:
        """Speech probability in [0, 1] of the next 512 float samples (16 kHz, in [-1, 1]).

        Raises:
            ValueError: ``window`` is not a 1-D floating-point array of exactly 512 samples.
        """
        if window.ndim != 1 or window.shape[0] != WINDOW_SAMPLES:
            raise ValueError(
                f"window must have shape ({WINDOW_SAMPLES},), got {tuple(window.shape)}"
            )
        if not np.issubdtype(window.dtype, np.floating):
            raise ValueError(f"window must be float samples in [-1, 1], got {window.dtype}")
        x = self._input
        # The context is the tail of the previous window, which is still at the end of x.
        x[0, :CONTEXT_SAMPLES] = x[0, -CONTEXT_SAMPLES:]
        x[0, CONTEXT_SAMPLES:] = window
        output, state = self._session.run(
            ["output", "stateN"], {"input": x, "state": self._state, "sr": _SR_INPUT}
        )
        self._state = state
        return float(output[0, 0])


# ---------------------------------------------------------------- streaming


# Off-loop cost, measured on a 2-vCPU AMD EPYC dev box (Python 3.11, onnxruntime 1.31, one
# intra-op thread; medians of repeated runs over the 19 s enrollment clip in 20 ms pushes):
# inference is ~69 µs per 512-sample window; process() inline is ~49 µs per 20 ms push;
# the thread hop costs ~38 µs with run_in_executor on this executor vs ~40 µs with
# asyncio.to_thread (which also copies the contextvars) — within run-to-run noise of each
# other, ~120 µs per push either way when every push hops. So cost does not decide; a
# dedicated executor is used because it keeps VAD latency independent of whatever else is
# queued on the loop's default executor. push() skips the hop when no window can complete
# (3 of every 8 20-ms pushes), which brings the mean to ~90 µs per push.
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _vad_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            # Inference is single-threaded per call and releases the GIL, so a few workers
            # let concurrent calls run in parallel without oversubscribing the CPUs.
            _executor = ThreadPoolExecutor(
                max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="parley-vad"
            )
        return _executor


# ---------------------------------------------------------------- batched inference

# Why batch, and the tick. Measured on the 2-vCPU Intel Xeon (Sapphire Rapids) bench box
# (Python 3.11, onnxruntime 1.31, one intra-op thread; the box was shared with other work,
# so figures moved by up to ~1.5x between runs — ranges are over repeated runs):
#
# - One inference of B windows costs ~115-200 µs/window at B=1, ~60-110 at B=4, ~50-70 at
#   B=16 and ~45-75 from B=64 to B=200: batching halves the model's CPU per window. Two
#   intra-op threads were slower at every B (100-250 µs/window: the threads contend with
#   the event loop for the two cores).
# - N streams on one event loop pushing real speech in 20 ms frames, paced in real time
#   (10 phases; CPU in % of one core for the whole process, loop and streams included —
#   the same loop with no VAD costs ~20 % at N=200; push = time a 20 ms push waits):
#
#     N    path                                          CPU %     push p50 / p99  mean B
#     50   thread pool (one hop + one inference/window)  86        1-2 / 8-13 ms   -
#     50   batched, tick 0 (whatever queued meanwhile)   36-41     ~1 / 2-13       ~5
#     50   batched, tick 2 ms                            32-37     2-3 / 5-19      ~9
#     50   batched, tick 4 ms                            28-33     ~3 / ~7         ~14
#     200  thread pool                                   132-138   55 / 96: behind -
#     200  batched, tick 0                               85        4-5 / 23-32     29-38
#     200  batched, tick 2 ms                            81-82     5-8 / 19-37     43-60
#     200  batched, tick 4 ms                            70-83     5-13 / 15-38    52-76
#     200  batched, tick 8 ms                            74-75     11-17 / 22-64   82-102
#
#   A 4 ms tick keeps the CPU lowest at scale for a few ms per window that do not reach the
#   caller: the session dates the end of speech from when its audio arrived, not from when
#   the VAD answered. max_batch (128) is rarely reached: 200 calls make ~6,250 windows/s.
# - Converting PCM16 to float per batch on the worker, instead of per push on the loop, and
#   running the state machine in the loop's callback rather than on the worker, keep the
#   worker's own Python (which shares the GIL with the loop) to assembling the batch.
DEFAULT_TICK_MS = 4.0
DEFAULT_MAX_BATCH = 128


@dataclass(slots=True, eq=False)
class _BatchRequest:
    """Consecutive windows of one stream waiting for the batcher, and what to do with them."""

    model: SileroVAD
    windows: np.ndarray  # [n, 512] float32 in [-1, 1], or PCM16 (int16, scaled in the batch)
    scale: float  # what the windows are multiplied by: 1.0, or 1/32768 for PCM16
    then: Callable[[list[float]], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    submitted: float  # time.monotonic()
    probabilities: list[float] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return len(self.probabilities) == len(self.windows)


class VADBatcher:
    """Silero VAD for every stream of the process: one inference over many streams' windows.

    Streams :meth:`submit` consecutive 512-sample windows of their own audio. A worker thread
    wakes on the first waiting window, lets more arrive for ``tick_ms`` (or until
    ``max_batch`` requests wait), then takes the oldest waiting window of each stream —
    at most one per stream, since a stream's next window needs the recurrent state its
    previous one produces — stacks them into ``input [B, 576]`` (each stream's 64-sample
    context, then its window) and ``state [2, B, 128]``, runs the InferenceSession once and
    gives every stream its probability, new state and context. Windows left over (a request
    of several windows) go into the next inference without waiting for a tick.

    When a request's last window is analysed, its ``then`` callback runs on the loop that
    submitted it, with the probabilities in window order (:class:`StreamingVAD` advances its
    state machine there), and its result resolves the request's future: one
    ``call_soon_threadsafe`` per loop per inference, however many streams it served. The
    worker thread itself runs little Python (it shares the GIL with the loop): assembling
    the batch, the inference (which releases the GIL) and handing the results back.

    Per stream, requests are analysed and their ``then`` run in submission order. A future
    that was cancelled (its caller hung up) does not cancel the analysis: the windows were
    taken from the stream's buffer, so they still advance its model state and ``then`` still
    runs; only the result is dropped. Once the submitting loop has closed, nothing of the
    request runs any more. Probabilities equal those of :meth:`SileroVAD.probability`
    window by window (measured: identical on 60 interleaved streams of the speech fixtures,
    10,348 windows in batches of 17.5 on average, onnxruntime 1.31 on CPU).
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        tick_ms: float = DEFAULT_TICK_MS,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        """Start the worker thread (a daemon) for ``session``.

        Raises:
            ValueError: ``tick_ms < 0`` or ``max_batch < 1``.
        """
        if not (tick_ms >= 0 and math.isfinite(tick_ms)):
            raise ValueError(f"tick_ms must be a finite number >= 0, got {tick_ms}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.tick_s = tick_ms / 1000
        self.max_batch = max_batch
        self._session = session
        self._cond = threading.Condition()
        self._queue: collections.deque[_BatchRequest] = collections.deque()
        self._idle = False
        self._closed = False
        #: Inferences run and windows analysed so far (for benchmarks).
        self.inferences = 0
        self.windows = 0
        self._thread = threading.Thread(target=self._run, name="parley-vad-batch", daemon=True)
        self._thread.start()

    def submit(
        self, model: SileroVAD, windows: np.ndarray, *, then: Callable[[list[float]], T]
    ) -> asyncio.Future[T]:
        """Queue ``windows`` (``[n, 512]``, consecutive audio of ``model``'s stream: float32
        in [-1, 1], or little-endian int16 PCM, divided by 32768 in the batch) and return a
        future for ``then(probabilities)``, which runs on this loop. Never blocks: call it
        from the running event loop. Exceptions raised by the inference or by ``then`` are
        set on the future.

        Raises:
            ValueError: ``windows`` is neither float32 nor int16, or not of shape
                ``(n, 512)`` with ``n >= 1``.
            RuntimeError: the batcher is closed, or no event loop is running.
        """
        if windows.ndim != 2 or windows.shape[0] < 1 or windows.shape[1] != WINDOW_SAMPLES:
            raise ValueError(
                f"windows must have shape (n >= 1, {WINDOW_SAMPLES}), got {windows.shape}"
            )
        if windows.dtype == np.float32:
            scale = 1.0
        elif windows.dtype == _PCM16_DTYPE:
            scale = _PCM16_SCALE
        else:
            raise ValueError(f"windows must be float32 or little-endian int16, got {windows.dtype}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        request = _BatchRequest(model, windows, scale, then, future, loop, time.monotonic())
        with self._cond:
            if self._closed:
                raise RuntimeError("the VAD batcher is closed")
            self._queue.append(request)
            # Wake the worker only when it sleeps for lack of work, or to cut a tick short:
            # a notify per window would cost a futex wake-up each.
            if self._idle or len(self._queue) == self.max_batch:
                self._cond.notify()
        return future

    def close(self, *, timeout_s: float = 5.0) -> None:
        """Analyse what is queued, then stop the worker; later :meth:`submit` calls raise."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=timeout_s)

    @property
    def closed(self) -> bool:
        return self._closed

    # -------------------------------------------------------------- worker thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    if self._closed:
                        return
                    self._idle = True
                    self._cond.wait()
                self._idle = False
                if self.tick_s > 0:
                    deadline = self._queue[0].submitted + self.tick_s
                    while len(self._queue) < self.max_batch and not self._closed:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._cond.wait(remaining)
                batch = self._batch_take_locked()
            try:
                self._infer(batch)
            except BaseException:  # never let the worker die: every later call would hang
                logger.exception("VAD batch of %d windows failed", len(batch))

    def _batch_take_locked(self) -> list[_BatchRequest]:
        """The oldest waiting request of each stream (at most ``max_batch``), oldest first."""
        batch: list[_BatchRequest] = []
        streams: set[int] = set()
        for request in self._queue:
            if id(request.model) not in streams:
                streams.add(id(request.model))
                batch.append(request)
                if len(batch) == self.max_batch:
                    break
        return batch

    def _infer(self, batch: list[_BatchRequest]) -> None:
        n = len(batch)
        x = np.empty((n, CONTEXT_SAMPLES + WINDOW_SAMPLES), dtype=np.float32)
        state = np.empty((2, n, _STATE_SHAPE[2]), dtype=np.float32)
        scales = np.empty((n, 1), dtype=np.float32)
        generations = []
        for i, request in enumerate(batch):
            model = request.model
            # The context is the tail of the stream's previous window (see SileroVAD).
            x[i, :CONTEXT_SAMPLES] = model._input[0, -CONTEXT_SAMPLES:]
            x[i, CONTEXT_SAMPLES:] = request.windows[len(request.probabilities)]
            scales[i] = request.scale
            state[:, i, :] = model._state[:, 0, :]
            generations.append(model._generation)
        # PCM16 to float as pcm16_to_float32 does (x / 32768), for the whole batch at once.
        x[:, CONTEXT_SAMPLES:] *= scales
        done: list[tuple[_BatchRequest, BaseException | None]] = []
        try:
            output, state_n = self._session.run(
                ["output", "stateN"], {"input": x, "state": state, "sr": _SR_INPUT}
            )
        except Exception as exc:
            done = [(request, exc) for request in batch]
        else:
            self.inferences += 1
            self.windows += n
            probabilities = output[:, 0].tolist()
            for i, request in enumerate(batch):
                model = request.model
                if model._generation == generations[i]:  # else reset() meanwhile: keep zeros
                    model._input[0] = x[i]
                    model._state = state_n[:, i : i + 1, :].copy()
                request.probabilities.append(probabilities[i])
                if request.finished:
                    done.append((request, None))
        if not done:
            return
        finished = {id(request) for request, _ in done}
        with self._cond:
            self._queue = collections.deque(r for r in self._queue if id(r) not in finished)
        deliveries: dict[asyncio.AbstractEventLoop, list[tuple[_BatchRequest, Any]]] = {}
        for request, error in done:
            deliveries.setdefault(request.loop, []).append((request, error))
        for loop, items in deliveries.items():
            try:
                loop.call_soon_threadsafe(_requests_finish, items)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                pass


def _requests_finish(items: list[tuple[_BatchRequest, BaseException | None]]) -> None:
    """Runs on the submitting loop, in batch order: each request's ``then`` (even when its
    future was cancelled), then its future's result or error."""
    for request, error in items:
        result = None
        if error is None:
            try:
                result = request.then(request.probabilities)
            except Exception as exc:
                error = exc
        future = request.future
        if future.done():  # cancelled: the caller stopped waiting
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


_batchers: dict[int, VADBatcher] = {}
_batchers_lock = threading.Lock()


def _vad_batcher(session: ort.InferenceSession) -> VADBatcher:
    with _batchers_lock:
        batcher = _batchers.get(id(session))
        if batcher is None or batcher.closed:
            batcher = _batchers[id(session)] = VADBatcher(session)
        return batcher


def vad_batcher(*, model_path: str | os.PathLike[str] | None = None) -> VADBatcher:
    """The process's batcher for ``model_path`` (default: the vendored model), started on
    first use; its ``inferences`` and ``windows`` counters show how well it batches."""
    return _vad_batcher(_session(Path(model_path) if model_path else DEFAULT_MODEL_PATH))


class StreamingVAD:
    """Speech boundaries in one caller's 16 kHz PCM16 stream.

    Audio of any even length is buffered into 512-sample windows (32 ms). Per window:

    - Not speaking: the first window with probability ``>= threshold`` opens a candidate at
      its start and emits ``speech_onset``. Windows ``>= threshold`` add 32 ms to the
      candidate's speech; windows between the two thresholds keep it alive;
      ``min_silence_ms`` of windows below ``neg_threshold`` drop it with
      ``speech_onset_cancelled``. Once the candidate holds ``min_speech_ms`` of speech a
      ``speech_start`` is emitted whose ``audio_ms`` is the candidate's start, not the
      confirmation point (which is at least ``min_speech_ms`` later).
    - Speaking: windows ``>= neg_threshold`` are speech. After ``min_silence_ms`` of windows
      below it a ``speech_end`` is emitted with ``audio_ms`` at the end of the last speech
      window. When the utterance reaches ``max_utterance_ms`` (measured from its start to
      the end of the current window) a ``speech_end`` with ``forced=True`` is emitted at the
      end of the last speech window; if the caller goes on talking, a new ``speech_start``
      follows after another ``min_speech_ms``.

    Each event's ``at`` is the ``at`` given with the push that completed the deciding
    window, and its ``probability`` is that window's. A trailing partial window is kept
    for the next push.
    """

    def __init__(
        self,
        settings: VADSettings | None = None,
        *,
        model: SpeechProbabilityModel | None = None,
    ) -> None:
        """``model`` defaults to a new :class:`SileroVAD` (sharing the process's session)."""
        self.settings = settings if settings is not None else VADSettings()
        self._model: SpeechProbabilityModel = model if model is not None else SileroVAD()
        # push() sends windows to the model's batcher when it has one (SileroVAD does).
        self._batched: BatchedSpeechProbabilityModel | None = (
            self._model if getattr(self._model, "batched", False) else None  # type: ignore[assignment]
        )
        self._exit_threshold = self.settings.exit_threshold
        # Guards everything below: process() runs on executor threads.
        self._lock = threading.Lock()
        # Keeps concurrent push() calls in FIFO order (executor threads could reorder them).
        self._push_lock = asyncio.Lock()
        self._reset_locked()

    def _reset_locked(self) -> None:
        self._pending = bytearray()
        self._samples_in = 0
        self._windows_done = 0
        self._speaking = False
        self._last_probability = 0.0
        self._candidate_start_ms: float | None = None
        self._candidate_speech_ms = 0.0
        self._silence_ms = 0.0
        self._utterance_start_ms = 0.0
        self._last_speech_end_ms = 0.0

    def reset(self) -> None:
        """Forget everything (model state included) and start a new stream at 0 ms."""
        with self._lock:
            self._model.reset()
            self._reset_locked()

    @property
    def speaking(self) -> bool:
        """True between a ``speech_start`` and the following ``speech_end``."""
        return self._speaking

    @property
    def last_probability(self) -> float:
        """Speech probability of the most recent analysed window (0.0 before any)."""
        return self._last_probability

    @property
    def audio_ms(self) -> float:
        """Total audio pushed so far in ms, including a partial window not yet analysed."""
        return self._samples_in * 1000 / SAMPLE_RATE_HZ

    async def push(self, pcm16: bytes, *, at: float) -> list[VADEvent]:
        """Feed caller audio; run inference off the event loop and return the new events.

        ``pcm16`` is 16 kHz mono PCM16 of any even length (0 included); ``at`` is the
        ``time.monotonic()`` when it arrived. Concurrent calls are processed in call order.
        If the awaiting task is cancelled while a window is being analysed, the audio is
        still consumed but that push's events are lost.

        With a batched model (:class:`SileroVAD`, the default) the completed windows go to
        the process's :class:`VADBatcher` and the state machine advances on its thread;
        otherwise :meth:`process` runs on a small thread pool.

        Raises:
            ValueError: odd byte count (nothing is consumed).
        """
        _check_even(pcm16)
        async with self._push_lock:
            if len(self._pending) + len(pcm16) < _WINDOW_BYTES:
                # No window completes: only buffering, cheaper than a thread hop.
                return self.process(pcm16, at=at)
            if self._batched is not None:
                with self._lock:
                    ready = self._windows_take_locked(pcm16)
                # Raw PCM16: the batcher converts the whole batch to float in one operation.
                return await self._batched.submit(
                    np.frombuffer(ready, dtype=_PCM16_DTYPE).reshape(-1, WINDOW_SAMPLES),
                    then=functools.partial(self._windows_analysed, at=at),
                )
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                _vad_executor(), functools.partial(self.process, pcm16, at=at)
            )

    def _windows_take_locked(self, pcm16: bytes) -> bytes:
        """Buffer ``pcm16`` and take the completed windows out (PCM16, a whole number of
        windows, maybe none); called with ``_lock`` held."""
        self._pending += pcm16
        self._samples_in += len(pcm16) // 2
        n_windows = len(self._pending) // _WINDOW_BYTES
        ready = bytes(self._pending[: n_windows * _WINDOW_BYTES])
        del self._pending[: n_windows * _WINDOW_BYTES]
        return ready

    def _windows_analysed(self, probabilities: list[float], *, at: float) -> list[VADEvent]:
        """Advance the state machine by the probabilities of consecutive windows, in order.

        Runs on the event loop (called back by the :class:`VADBatcher`).
        """
        with self._lock:
            events: list[VADEvent] = []
            for probability in probabilities:
                events.extend(self._step(probability, at=at))
            return events

    def process(self, pcm16: bytes, *, at: float) -> list[VADEvent]:
        """Synchronous :meth:`push`: runs inference on the calling thread (tests, benchmarks).

        Raises:
            ValueError: odd byte count (nothing is consumed).
        """
        _check_even(pcm16)
        with self._lock:
            ready = self._windows_take_locked(pcm16)
            n_windows = len(ready) // _WINDOW_BYTES
            if n_windows == 0:
                return []
            samples = pcm16_to_float32(ready)
            events: list[VADEvent] = []
            for i in range(n_windows):
                window = samples[i * WINDOW_SAMPLES : (i + 1) * WINDOW_SAMPLES]
                probability = self._model.probability(window)
                events.extend(self._step(probability, at=at))
            return events

    # -------------------------------------------------------------- internals

    def _step(self, probability: float, *, at: float) -> tuple[VADEvent, ...]:
        """Advance the state machine by one window; called with ``_lock`` held."""
        s = self.settings
        start_ms = self._windows_done * WINDOW_MS
        self._windows_done += 1
        end_ms = self._windows_done * WINDOW_MS
        self._last_probability = probability

        if not self._speaking:
            if probability >= s.threshold:
                onset: tuple[VADEvent, ...] = ()
                if self._candidate_start_ms is None:
                    self._candidate_start_ms = start_ms
                    self._candidate_speech_ms = 0.0
                    onset = (VADEvent("speech_onset", start_ms, at, probability),)
                self._candidate_speech_ms += WINDOW_MS
                self._silence_ms = 0.0
                if self._candidate_speech_ms >= s.min_speech_ms:
                    self._speaking = True
                    self._utterance_start_ms = self._candidate_start_ms
                    self._last_speech_end_ms = end_ms
                    self._candidate_start_ms = None
                    start = VADEvent(
                        "speech_start",
                        audio_ms=self._utterance_start_ms,
                        at=at,
                        probability=probability,
                    )
                    return (*onset, start)
                return onset
            if self._candidate_start_ms is not None:
                if probability < self._exit_threshold:
                    self._silence_ms += WINDOW_MS
                    if self._silence_ms >= s.min_silence_ms:
                        dropped = self._candidate_start_ms
                        self._candidate_start_ms = None
                        self._silence_ms = 0.0
                        return (VADEvent("speech_onset_cancelled", dropped, at, probability),)
                else:
                    self._silence_ms = 0.0
            return ()

        if probability >= self._exit_threshold:
            self._silence_ms = 0.0
            self._last_speech_end_ms = end_ms
        else:
            self._silence_ms += WINDOW_MS
            if self._silence_ms >= s.min_silence_ms:
                return (self._end(probability, at=at, forced=False),)
        if end_ms - self._utterance_start_ms >= s.max_utterance_ms:
            return (self._end(probability, at=at, forced=True),)
        return ()

    def end_speech(self, *, at: float) -> VADEvent | None:
        """End the current utterance now (the platform decided the turn is over, e.g. on the
        STT's ``speech_final``), so that the caller's next words make a new ``speech_start``.

        Returns the ``speech_end`` event (``audio_ms`` at the end of the last speech window),
        or ``None`` when not speaking.
        """
        with self._lock:
            if not self._speaking:
                return None
            return self._end(self._last_probability, at=at, forced=False)

    @property
    def silence_ms(self) -> float:
        """Trailing silence analysed so far in the current utterance (0 when not speaking)."""
        return self._silence_ms if self._speaking else 0.0

    def _end(self, probability: float, *, at: float, forced: bool) -> VADEvent:
        self._speaking = False
        self._silence_ms = 0.0
        self._candidate_start_ms = None
        return VADEvent(
            "speech_end",
            audio_ms=self._last_speech_end_ms,
            at=at,
            probability=probability,
            forced=forced,
        )


def _check_even(pcm16: bytes) -> None:
    if len(pcm16) % 2:
        raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm16)}")
