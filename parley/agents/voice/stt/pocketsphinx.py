"""Offline, embedded speech-to-text on CMU PocketSphinx 5 (the platform's default STT).

PocketSphinx has no endpointing of its own here: the platform's VAD drives it (the pattern of
livekit's ``StreamAdapter``). A :class:`PocketsphinxStream` keeps a short ring buffer of
caller audio while idle; :meth:`~PocketsphinxStream.speech_started` opens an utterance seeded
with the audio from ``pre_roll_ms`` before the VAD's speech start; audio is then decoded
incrementally, partials are emitted as the hypothesis changes, and
:meth:`~PocketsphinxStream.finalize` closes the utterance and emits the final transcript.

Threading. A decoder is CPU-bound and not thread-safe, so every call on one runs in the
stream's own single-thread executor, in the order the stream issued them. The binding
(``pocketsphinx._pocketsphinx``, Cython) holds the GIL inside its C calls, so a worker thread
does not by itself keep the event loop free: this module therefore feeds the decoder in 20 ms
slices (about 2-4 ms of CPU each, at most ~17 ms on noisy audio with the default
``max_hmm_per_frame``, measured) and by default turns off the second search passes
(``fwdflat``/``bestpath``), whose single ``end_utt`` call held the GIL for up to 0.8 s on a
19 s utterance (about 40 ms per second of speech) against at most ~36 ms without them.
Decoder construction (0.2-0.4 s, ~90 MB RSS each, measured with the wheel's en-us model)
also holds the GIL, which is why decoders are pooled per process and can be built ahead with
:meth:`PocketsphinxSTT.prewarm`.
"""

from __future__ import annotations

import asyncio
import collections
import re
import threading
import time
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pocketsphinx import Decoder, get_model_path

from parley.agents.voice.messages import BYTES_PER_SAMPLE, INPUT_SAMPLE_RATE_HZ, Transcript
from parley.agents.voice.stt.base import STT, STTError, STTStream

__all__ = [
    "PocketsphinxSTT",
    "PocketsphinxSettings",
    "PocketsphinxStream",
    "clean_hypothesis",
]

#: Bytes of caller audio per ms: 16 kHz x 2 bytes / 1000.
_BYTES_PER_MS = INPUT_SAMPLE_RATE_HZ * BYTES_PER_SAMPLE // 1000
#: Audio handed to one ``process_raw`` call: 20 ms = 640 bytes, one caller frame. Keeps each
#: GIL-holding C call to a few ms so the event loop keeps running while a stream decodes.
_SLICE_BYTES = 20 * _BYTES_PER_MS


def _default_model_file(subpath: str) -> str:
    return get_model_path(subpath)


@dataclass(frozen=True, slots=True)
class PocketsphinxSettings:
    """Options of the PocketSphinx engine.

    - ``hmm_path`` / ``lm_path`` / ``dict_path``: acoustic model directory, n-gram language
      model and pronunciation dictionary; the defaults are the US English model shipped in
      the ``pocketsphinx`` wheel (``pocketsphinx/model/en-us``).
    - ``pre_roll_ms=300``: audio kept before the VAD's speech start and decoded with the
      utterance, so a word onset the VAD placed slightly late is not clipped (the OpenAI
      Realtime ``prefix_padding_ms`` default).
    - ``max_start_lag_ms=1000``: how far behind the audio already pushed the VAD's
      ``speech_start`` position may be. The VAD confirms a start only after
      ``min_speech_ms`` (250 ms by default) of speech and reports the candidate's first
      window, so the idle ring buffer holds ``pre_roll_ms + max_start_lag_ms`` of audio.
    - ``partial_interval_ms=300``: a partial transcript is considered at most once per this
      much decoded audio, and emitted only when its text changed.
    - ``second_pass=False``: enable PocketSphinx's ``fwdflat`` and ``bestpath`` passes. They
      are slightly more accurate on long utterances but run inside ``end_utt`` while holding
      the GIL (about 40 ms per second of speech, measured), which stalls the event loop and
      delays the final transcript.
    - ``max_hmm_per_frame=5000``: PocketSphinx ``-maxhmmpf`` (its default is 30000), the cap
      on active HMMs per 10 ms frame. It bounds the CPU, hence the GIL hold, of one 20 ms
      slice on noisy audio: measured over the 15 clips of ``tests/fixtures/audio/speech``,
      the worst slice fell from 64 to 17 ms and the worst ``end_utt`` from 101 to 36 ms,
      real-time factor 0.14 -> 0.09, for a corpus WER of 0.455 instead of 0.435.
    - ``max_idle_decoders=2``: idle decoders this process keeps for reuse per model (each
      holds about 90 MB).

    Raises:
        ValueError: a negative duration, a non-positive ``partial_interval_ms`` or a negative
            ``max_idle_decoders``.
    """

    hmm_path: str = field(default_factory=lambda: _default_model_file("en-us/en-us"))
    lm_path: str = field(default_factory=lambda: _default_model_file("en-us/en-us.lm.bin"))
    dict_path: str = field(default_factory=lambda: _default_model_file("en-us/cmudict-en-us.dict"))
    pre_roll_ms: int = 300
    max_start_lag_ms: int = 1000
    partial_interval_ms: int = 300
    second_pass: bool = False
    max_hmm_per_frame: int = 5000
    max_idle_decoders: int = 2

    def __post_init__(self) -> None:
        if self.pre_roll_ms < 0 or self.max_start_lag_ms < 0:
            raise ValueError("pre_roll_ms and max_start_lag_ms must be >= 0")
        if self.partial_interval_ms <= 0:
            raise ValueError(f"partial_interval_ms must be > 0, got {self.partial_interval_ms}")
        if self.max_hmm_per_frame <= 0:
            raise ValueError(f"max_hmm_per_frame must be > 0, got {self.max_hmm_per_frame}")
        if self.max_idle_decoders < 0:
            raise ValueError(f"max_idle_decoders must be >= 0, got {self.max_idle_decoders}")


# ---------------------------------------------------------------- text


#: Tokens PocketSphinx emits that are not words: ``<s>``, ``</s>``, ``<sil>``, ``[NOISE]``,
#: ``[SPEECH]``, ``++GARBAGE++`` (older models' fillers).
_FILLER = re.compile(r"^(<[^>]*>|\[[^\]]*\]|\+\+.*\+\+)$")
#: Alternate-pronunciation suffix of dictionary entries: ``the(2)``.
_VARIANT = re.compile(r"\(\d+\)$")


def clean_hypothesis(words: Iterable[str]) -> str:
    """Join recognised tokens into plain text without fillers or pronunciation variants.

    ``["<s>", "<sil>", "hello(2)", "[NOISE]", "world", "</s>"]`` gives ``"hello world"``.
    Tokens may also be whole hypothesis strings (they are split on whitespace).
    """
    out: list[str] = []
    for chunk in words:
        for token in chunk.split():
            if _FILLER.match(token):
                continue
            word = _VARIANT.sub("", token)
            if word:
                out.append(word)
    return " ".join(out)


# ---------------------------------------------------------------- decoder pool


@dataclass(slots=True)
class _PooledDecoder:
    """A decoder with what is needed to hand it to a new stream in a clean state."""

    decoder: Any
    #: Cepstral mean right after construction, restored when the decoder changes hands so
    #: one caller's channel normalisation does not leak into the next call.
    initial_cmn: str
    #: Feature frames per second (``-frate``, 100 for the en-us model): 10 ms per frame.
    frame_rate: int


_DecoderKey = tuple[str, str, str, bool, int]


def _decoder_key(settings: PocketsphinxSettings) -> _DecoderKey:
    """Settings that shape a decoder: streams with equal keys can share pooled decoders."""
    return (
        settings.hmm_path,
        settings.lm_path,
        settings.dict_path,
        settings.second_pass,
        settings.max_hmm_per_frame,
    )


class _DecoderPool:
    """Process-wide idle decoders, keyed by model and search configuration. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[_DecoderKey, list[_PooledDecoder]] = collections.defaultdict(list)

    def take(self, key: _DecoderKey) -> _PooledDecoder | None:
        with self._lock:
            idle = self._idle[key]
            return idle.pop() if idle else None

    def give(self, key: _DecoderKey, pooled: _PooledDecoder, *, max_idle: int) -> bool:
        """Keep ``pooled`` for reuse unless ``max_idle`` are already idle; True if kept."""
        with self._lock:
            idle = self._idle[key]
            if len(idle) >= max_idle:
                return False
            idle.append(pooled)
            return True

    def idle_count(self, key: _DecoderKey) -> int:
        with self._lock:
            return len(self._idle[key])


_POOL = _DecoderPool()


def _build_decoder(settings: PocketsphinxSettings) -> _PooledDecoder:
    """Construct a decoder (blocking, 0.2-0.4 s, holds the GIL). Raises STTError."""
    try:
        decoder = Decoder(
            hmm=settings.hmm_path,
            lm=settings.lm_path,
            dict=settings.dict_path,
            samprate=INPUT_SAMPLE_RATE_HZ,
            fwdflat=settings.second_pass,
            bestpath=settings.second_pass,
            maxhmmpf=settings.max_hmm_per_frame,
            loglevel="FATAL",
        )
        return _PooledDecoder(
            decoder=decoder,
            initial_cmn=decoder.get_cmn(),
            frame_rate=int(decoder.config["frate"]),
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise STTError(
            f"pocketsphinx: cannot load the model (hmm={settings.hmm_path!r}, "
            f"lm={settings.lm_path!r}, dict={settings.dict_path!r}): {exc}"
        ) from exc


# ---------------------------------------------------------------- engine


class PocketsphinxSTT(STT):
    """Offline STT: one :class:`PocketsphinxStream` per call, decoders pooled per process."""

    name = "pocketsphinx"

    def __init__(self, *, settings: PocketsphinxSettings | None = None) -> None:
        self.settings = settings or PocketsphinxSettings()
        self._key = _decoder_key(self.settings)

    @property
    def idle_decoders(self) -> int:
        """Decoders for this engine's settings now idle in the process-wide pool."""
        return _POOL.idle_count(self._key)

    async def prewarm(self, *, count: int = 1) -> None:
        """Build decoders until ``count`` are idle in the pool (capped at max_idle_decoders).

        Call it at worker start-up: construction takes 0.2-0.4 s and holds the GIL, which
        would otherwise stall every live call in the process when a new call opens.

        Raises:
            STTError: the model cannot be loaded.
        """
        target = min(count, self.settings.max_idle_decoders)
        while _POOL.idle_count(self._key) < target:
            pooled = await asyncio.to_thread(_build_decoder, self.settings)
            if not _POOL.give(self._key, pooled, max_idle=self.settings.max_idle_decoders):
                break

    async def open_stream(self) -> PocketsphinxStream:
        """Open a stream on an idle pooled decoder, building one off the loop if none is idle.

        Raises:
            STTError: the model cannot be loaded.
        """
        pooled = _POOL.take(self._key)
        if pooled is None:
            pooled = await asyncio.to_thread(_build_decoder, self.settings)
        return PocketsphinxStream(settings=self.settings, pooled=pooled)


# ---------------------------------------------------------------- stream


@dataclass(slots=True)
class _Start:
    """Open an utterance whose first sample is at ``origin_ms``, seeded with ``preroll``."""

    origin_ms: float
    preroll: bytes


@dataclass(slots=True)
class _Audio:
    """Utterance audio to decode (consecutive pushes are merged, up to one partial interval)."""

    pcm: bytearray


@dataclass(slots=True)
class _Finish:
    """Close the utterance (or, with ``decode=False``, emit an empty final) at ``end_ms``."""

    end_ms: float
    decode: bool


_Command = _Start | _Audio | _Finish


class _EndOfStream:
    """Sentinel ending the transcript iterator."""


_END = _EndOfStream()


class PocketsphinxStream(STTStream):
    """One VAD-gated recognition stream on one pooled decoder (see the module docstring).

    Obtained from :meth:`PocketsphinxSTT.open_stream`. All public methods must be called
    from the event loop that opened the stream; none of them waits for decoding.

    States: *idle* (audio only fills the ring buffer) and *in utterance* (audio is queued for
    the worker thread). Transcripts: partials ``Transcript(is_final=False)`` with
    ``start_ms`` at the utterance origin and ``end_ms`` at the audio decoded so far; finals
    ``Transcript(is_final=True, speech_final=True)`` whose ``start_ms``/``end_ms`` span the
    recognised words (or the decoded audio when no word was recognised). Positions are ms
    of caller audio since the first sample pushed into this stream.
    """

    def __init__(self, *, settings: PocketsphinxSettings, pooled: _PooledDecoder) -> None:
        self._settings = settings
        self._pooled: _PooledDecoder | None = pooled
        self._key = _decoder_key(settings)
        self._ring_limit = (settings.pre_roll_ms + settings.max_start_lag_ms) * _BYTES_PER_MS
        self._merge_limit = max(settings.partial_interval_ms * _BYTES_PER_MS, _SLICE_BYTES)
        self._partial_bytes = settings.partial_interval_ms * _BYTES_PER_MS

        # Event-loop side.
        self._ring = bytearray()
        self._pushed_bytes = 0
        self._in_utterance = False
        self._closed = False
        self._error: STTError | None = None
        self._commands: collections.deque[_Command] = collections.deque()
        self._wakeup = asyncio.Event()
        self._out: asyncio.Queue[Transcript | STTError | _EndOfStream] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pocketsphinx")
        self._fresh = True

        # Worker-thread side (touched only by jobs running in self._executor).
        self._w_in_utt = False
        self._w_origin_ms = 0.0
        self._w_decoded_bytes = 0
        self._w_since_partial = 0
        self._w_last_partial = ""

        self._task = asyncio.get_running_loop().create_task(self._run(), name="pocketsphinx-stream")

    # ------------------------------------------------------------ public API

    async def push_audio(self, pcm16: bytes) -> None:
        """Add caller audio (PCM16 mono 16 kHz, any whole number of samples). Never blocks.

        Ignored after :meth:`aclose`.

        Raises:
            ValueError: odd byte count.
            STTError: the engine failed earlier on this stream.
        """
        if len(pcm16) % BYTES_PER_SAMPLE:
            raise ValueError(f"odd audio length {len(pcm16)} bytes: PCM16 needs whole samples")
        if self._error is not None:
            raise self._error
        if self._closed or not pcm16:
            return
        self._pushed_bytes += len(pcm16)
        if not self._in_utterance:
            self._ring += pcm16
            excess = len(self._ring) - self._ring_limit
            if excess > 0:
                del self._ring[:excess]
            return
        last = self._commands[-1] if self._commands else None
        if isinstance(last, _Audio) and len(last.pcm) < self._merge_limit:
            last.pcm += pcm16
        else:
            self._enqueue(_Audio(bytearray(pcm16)))

    async def speech_started(self, *, audio_ms: float) -> None:
        """Open an utterance seeded with the audio from ``audio_ms - pre_roll_ms`` on.

        The seed is clipped to what the ring buffer still holds (``pre_roll_ms +
        max_start_lag_ms``) and to the audio pushed so far. Ignored while an utterance is
        already open and after :meth:`aclose`.
        """
        if self._closed or self._error is not None or self._in_utterance:
            return
        ring_start_ms = (self._pushed_bytes - len(self._ring)) / _BYTES_PER_MS
        want_ms = audio_ms - self._settings.pre_roll_ms
        skip = int(max(0.0, want_ms - ring_start_ms) * _BYTES_PER_MS)
        skip = min(skip - skip % BYTES_PER_SAMPLE, len(self._ring))
        preroll = bytes(self._ring[skip:])
        origin_ms = ring_start_ms + skip / _BYTES_PER_MS
        self._ring.clear()
        self._in_utterance = True
        self._enqueue(_Start(origin_ms=origin_ms, preroll=preroll))

    async def finalize(self) -> None:
        """End the utterance; its final transcript follows through the iterator.

        Without an open utterance an empty final is emitted (nothing is decoded). Returns at
        once: the final arrives after the audio already queued has been decoded. Ignored
        after :meth:`aclose`.
        """
        if self._closed or self._error is not None:
            return
        end_ms = self._pushed_bytes / _BYTES_PER_MS
        self._enqueue(_Finish(end_ms=end_ms, decode=self._in_utterance))
        self._in_utterance = False

    async def aclose(self) -> None:
        """Stop now: drop undecoded audio and any open utterance, end the iterator.

        Transcripts already emitted stay readable before the end. Waits for the decoder's
        current 20 ms slice (a few ms of CPU), then returns the decoder to the process pool,
        unless it failed. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        self._commands.clear()
        self._task.cancel()
        await asyncio.wait([self._task])
        # Runs after any job still in the worker thread, so the decoder is idle when reset.
        cleanup = self._executor.submit(self._w_release)
        self._executor.shutdown(wait=False)
        try:
            await asyncio.wrap_future(cleanup)
        finally:
            self._out.put_nowait(_END)

    def __aiter__(self) -> AsyncIterator[Transcript]:
        """Transcripts in order; ends after :meth:`aclose`, raises STTError on engine failure."""
        return self._iterate()

    # ------------------------------------------------------------ event-loop internals

    async def _iterate(self) -> AsyncIterator[Transcript]:
        while True:
            item = await self._out.get()
            if isinstance(item, _EndOfStream):
                self._out.put_nowait(item)  # later iterations end too
                return
            if isinstance(item, STTError):
                raise item
            yield item

    def _enqueue(self, command: _Command) -> None:
        self._commands.append(command)
        self._wakeup.set()

    async def _run(self) -> None:
        """Hand queued commands to the worker thread one by one and publish the results."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not self._commands:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                command = self._commands.popleft()
                result = await loop.run_in_executor(self._executor, self._w_handle, command)
                if result is not None:
                    self._out.put_nowait(result)
        except STTError as exc:
            self._fail(exc)
        except Exception as exc:  # RuntimeError from pocketsphinx's C calls, or a bug here
            self._fail(STTError(f"pocketsphinx failed: {exc}"))

    def _fail(self, error: STTError) -> None:
        self._error = error
        self._commands.clear()
        self._out.put_nowait(error)
        self._out.put_nowait(_END)

    # ------------------------------------------------------------ worker-thread jobs

    def _w_handle(self, command: _Command) -> Transcript | None:
        """Run one command on the decoder (worker thread only)."""
        pooled = self._pooled
        if pooled is None:
            raise STTError("pocketsphinx stream has no decoder")
        decoder = pooled.decoder
        if self._fresh:
            decoder.set_cmn(pooled.initial_cmn)
            self._fresh = False
        if isinstance(command, _Start):
            decoder.start_utt()
            self._w_in_utt = True
            self._w_origin_ms = command.origin_ms
            self._w_decoded_bytes = 0
            self._w_since_partial = 0
            self._w_last_partial = ""
            return self._w_decode(decoder, command.preroll)
        if isinstance(command, _Audio):
            return self._w_decode(decoder, command.pcm)
        return self._w_finish(pooled, command)

    def _w_decode(self, decoder: Any, pcm: bytes | bytearray) -> Transcript | None:
        view = memoryview(pcm)
        for offset in range(0, len(view), _SLICE_BYTES):
            if self._closed:  # aclose() is waiting for this job: the rest is dropped anyway
                return None
            decoder.process_raw(view[offset : offset + _SLICE_BYTES], False, False)
        self._w_decoded_bytes += len(view)
        self._w_since_partial += len(view)
        if self._w_since_partial < self._partial_bytes:
            return None
        self._w_since_partial = 0
        hyp = decoder.hyp()
        text = clean_hypothesis([hyp.hypstr]) if hyp is not None else ""
        if not text or text == self._w_last_partial:
            return None
        self._w_last_partial = text
        return Transcript(
            text=text,
            is_final=False,
            start_ms=self._w_origin_ms,
            end_ms=self._w_origin_ms + self._w_decoded_bytes / _BYTES_PER_MS,
            at=time.monotonic(),
        )

    def _w_finish(self, pooled: _PooledDecoder, command: _Finish) -> Transcript:
        if not (command.decode and self._w_in_utt):
            return Transcript(
                text="",
                is_final=True,
                speech_final=True,
                from_finalize=True,
                start_ms=command.end_ms,
                end_ms=command.end_ms,
                at=time.monotonic(),
            )
        decoder = pooled.decoder
        decoder.end_utt()
        self._w_in_utt = False
        hyp = decoder.hyp()
        text = clean_hypothesis([hyp.hypstr]) if hyp is not None else ""
        start_ms = self._w_origin_ms
        end_ms = self._w_origin_ms + self._w_decoded_bytes / _BYTES_PER_MS
        frame_ms = 1000.0 / pooled.frame_rate
        words = [seg for seg in decoder.seg() if clean_hypothesis([seg.word])]
        if text and words:
            start_ms = self._w_origin_ms + words[0].start_frame * frame_ms
            # end_frame is inclusive.
            end_ms = self._w_origin_ms + (words[-1].end_frame + 1) * frame_ms
        return Transcript(
            text=text,
            is_final=True,
            speech_final=True,
            from_finalize=True,
            start_ms=start_ms,
            end_ms=end_ms,
            at=time.monotonic(),
        )

    def _w_release(self) -> None:
        """Leave the decoder idle and give it back to the pool (worker thread, last job)."""
        pooled, self._pooled = self._pooled, None
        if pooled is None or self._error is not None:
            return
        try:
            if self._w_in_utt:
                pooled.decoder.end_utt()
                self._w_in_utt = False
        except RuntimeError:
            return  # a decoder that cannot end its utterance is not reused
        _POOL.give(self._key, pooled, max_idle=self._settings.max_idle_decoders)
