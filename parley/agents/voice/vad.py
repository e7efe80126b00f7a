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
import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from parley.agents.voice.audio import pcm16_to_float32
from parley.agents.voice.messages import INPUT_SAMPLE_RATE_HZ, VADEvent

__all__ = [
    "DEFAULT_MODEL_PATH",
    "SAMPLE_RATE_HZ",
    "WINDOW_MS",
    "WINDOW_SAMPLES",
    "SileroVAD",
    "SpeechProbabilityModel",
    "StreamingVAD",
    "VADSettings",
]

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
    """

    def __init__(self, *, model_path: str | os.PathLike[str] | None = None) -> None:
        """Load (or reuse) the session for ``model_path`` (default: the vendored model).

        Raises:
            onnxruntime.capi.onnxruntime_pybind11_state.NoSuchFile: no file at the path
                (other onnxruntime exceptions for a file that is not a valid model).
        """
        self._session = _session(Path(model_path) if model_path else DEFAULT_MODEL_PATH)
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._input = np.zeros((1, CONTEXT_SAMPLES + WINDOW_SAMPLES), dtype=np.float32)

    def reset(self) -> None:
        """Zero the recurrent state and the context: start a new, unrelated stream."""
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._input[:] = 0.0

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

        Raises:
            ValueError: odd byte count (nothing is consumed).
        """
        _check_even(pcm16)
        async with self._push_lock:
            if len(self._pending) + len(pcm16) < _WINDOW_BYTES:
                # No window completes: only buffering, cheaper than a thread hop.
                return self.process(pcm16, at=at)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                _vad_executor(), functools.partial(self.process, pcm16, at=at)
            )

    def process(self, pcm16: bytes, *, at: float) -> list[VADEvent]:
        """Synchronous :meth:`push`: runs inference on the calling thread (tests, benchmarks).

        Raises:
            ValueError: odd byte count (nothing is consumed).
        """
        _check_even(pcm16)
        with self._lock:
            self._pending += pcm16
            self._samples_in += len(pcm16) // 2
            n_windows = len(self._pending) // _WINDOW_BYTES
            if n_windows == 0:
                return []
            ready = bytes(self._pending[: n_windows * _WINDOW_BYTES])
            del self._pending[: n_windows * _WINDOW_BYTES]
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
