"""Call recording: caller and agent audio into one stereo PCM16 WAV, aligned in time.

The left channel is what the caller sent, the right channel what the agent said, both placed
on the session's clock (ms since the session began, the ``t_ms`` of every event), so a
``turn.started`` or ``agent.speaking`` event at ``t_ms`` is heard at that second of the file.

- Caller frames are placed back to back as they arrive (the caller's audio is a continuous
  stream; arrival jitter is not silence). When a frame arrives more than ``gap_ms`` later than
  the stream so far accounts for (the microphone was paused, the network stalled), the gap is
  kept as silence so the two channels stay aligned.
- Agent frames are placed where the session's pacer starts playing them (``play_at``). On
  barge-in the caller's client drops the audio it had queued; :meth:`CallRecorder.agent_cut`
  removes it from the recording too, so the right channel is what the caller heard (to the
  server's knowledge: the network and the client's jitter buffer add a few tens of ms).

Audio is held in memory for at most ``flush_interval_ms`` and written by a background task
in a worker thread (the event loop never touches the disk): one raw file per channel, written
at sample offsets (holes read as silence), interleaved into the WAV at :meth:`aclose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parley.agents.voice.audio import StreamResampler

logger = logging.getLogger(__name__)

BYTES_PER_SAMPLE = 2
#: Rate of recordings (Hz): the caller's input rate, enough for speech review.
RECORDING_RATE_HZ = 16_000
#: Samples interleaved per step when the WAV is assembled (10 s at 16 kHz).
_ASSEMBLE_SAMPLES = 160_000


@dataclass(frozen=True)
class RecordingResult:
    """A finished recording: ``path`` (WAV, stereo PCM16), its rate, length and file size."""

    path: Path
    sample_rate_hz: int
    channels: int
    duration_ms: float
    size_bytes: int


@dataclass
class _Channel:
    """Write position and resampler of one channel (positions in samples at the file rate)."""

    name: str
    path: Path
    resampler: StreamResampler
    cursor: int = 0  # where the next contiguous audio goes
    running: bool = False  # a run of contiguous audio is open in the resampler
    end: int = 0  # one past the last sample written (or zeroed)
    writes: list[tuple[int, bytes]] = field(default_factory=list)


class CallRecorder:
    """Record one call to ``path`` (a ``.wav``; parent folders are created).

    ``caller_rate_hz`` / ``agent_rate_hz``: sample rates of the PCM16 mono frames given to
    :meth:`caller` / :meth:`agent` (the caller socket's 16 kHz, the TTS rate). Both are
    resampled to ``sample_rate_hz``. Call :meth:`caller`, :meth:`agent`, :meth:`agent_cut`
    from the event loop (they only queue), then ``await aclose()`` once.
    """

    def __init__(
        self,
        *,
        path: Path,
        agent_rate_hz: int,
        caller_rate_hz: int = 16_000,
        sample_rate_hz: int = RECORDING_RATE_HZ,
        flush_interval_ms: float = 1_000.0,
        gap_ms: float = 250.0,
    ) -> None:
        self.path = Path(path)
        self.sample_rate_hz = sample_rate_hz
        self.gap_samples = int(gap_ms * sample_rate_hz / 1000)
        self.flush_interval_s = flush_interval_ms / 1000
        self._caller = _Channel(
            "caller",
            self.path.with_name(self.path.name + ".caller.raw"),
            StreamResampler(caller_rate_hz, sample_rate_hz),
        )
        self._agent = _Channel(
            "agent",
            self.path.with_name(self.path.name + ".agent.raw"),
            StreamResampler(agent_rate_hz, sample_rate_hz),
        )
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._failed: BaseException | None = None

    # ------------------------------------------------------------------ input (event loop)

    def caller(self, pcm16: bytes, *, at_ms: float) -> None:
        """A caller frame that arrived at ``at_ms`` (session clock). Raises ``ValueError`` on
        an odd byte count."""
        self._check(pcm16)
        ch = self._caller
        n_in = len(pcm16) // BYTES_PER_SAMPLE
        start = int((at_ms / 1000) * self.sample_rate_hz) - n_in * self.sample_rate_hz // (
            ch.resampler.from_hz
        )
        if start - ch.cursor > self.gap_samples:
            self._run_end(ch)
            ch.cursor = start
        self._append(ch, pcm16)

    def agent(self, pcm16: bytes, *, at_ms: float) -> None:
        """An agent frame that starts playing at ``at_ms`` (session clock). Raises
        ``ValueError`` on an odd byte count."""
        self._check(pcm16)
        ch = self._agent
        start = int((at_ms / 1000) * self.sample_rate_hz)
        # Within one reply frames follow each other exactly; a jump is a new run (a pause
        # between sentences that underran, or the next reply).
        if abs(start - ch.cursor) > self.sample_rate_hz // 50 or not ch.running:
            self._run_end(ch)
            ch.cursor = max(start, 0)
        self._append(ch, pcm16)

    def agent_cut(self, *, at_ms: float) -> None:
        """Barge-in at ``at_ms``: agent audio placed after it was never heard; silence it."""
        ch = self._agent
        self._run_end(ch, keep_tail=False)
        cut = max(int((at_ms / 1000) * self.sample_rate_hz), 0)
        if cut < ch.end:
            ch.writes.append((cut, bytes((ch.end - cut) * BYTES_PER_SAMPLE)))
        ch.cursor = min(ch.cursor, cut)

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start the background writer (call from the event loop)."""
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._write_loop(), name="call-recorder"
            )

    async def aclose(self) -> RecordingResult | None:
        """Write what is queued, assemble the WAV (in a thread) and delete the raw files.

        Returns ``None`` when nothing was recorded or the disk refused a write (logged).
        Idempotent: later calls return ``None``.
        """
        if self._closed:
            return None
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._run_end(self._caller)
        self._run_end(self._agent)
        return await asyncio.to_thread(self._finish)

    def _finish(self) -> RecordingResult | None:
        """Flush, assemble and clean up, in one worker thread (see :meth:`aclose`)."""
        try:
            self._flush()
            if self._failed is not None:
                raise self._failed
            return self._assemble()
        except OSError:
            logger.exception("could not write the recording %s", self.path)
            return None
        finally:
            self._remove_raw()

    async def _write_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await asyncio.to_thread(self._flush)
            except OSError as exc:  # a full disk must not end the call: stop recording
                logger.exception("recording %s stopped", self.path)
                self._failed = exc
                return

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _check(pcm16: bytes) -> None:
        if len(pcm16) % BYTES_PER_SAMPLE:
            raise ValueError(f"odd frame length {len(pcm16)} bytes: PCM16 needs whole samples")

    def _append(self, ch: _Channel, pcm16: bytes) -> None:
        if self._closed or self._failed is not None:
            return
        ch.running = True
        out = ch.resampler.process(pcm16)
        if out:
            ch.writes.append((ch.cursor, out))
            ch.cursor += len(out) // BYTES_PER_SAMPLE
            ch.end = max(ch.end, ch.cursor)

    def _run_end(self, ch: _Channel, *, keep_tail: bool = True) -> None:
        """Close the current run: drain the resampler's delay (or drop it on a cut)."""
        if not ch.running:
            return
        ch.running = False
        tail = ch.resampler.flush()
        if tail and keep_tail:
            ch.writes.append((ch.cursor, tail))
            ch.cursor += len(tail) // BYTES_PER_SAMPLE
            ch.end = max(ch.end, ch.cursor)

    def _flush(self) -> None:
        """Write the queued audio of both channels at their offsets (worker thread)."""
        for ch in (self._caller, self._agent):
            writes, ch.writes = ch.writes, []
            if not writes:
                continue
            ch.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(ch.path, os.O_RDWR | os.O_CREAT, 0o640)
            try:
                for offset, data in writes:
                    os.pwrite(fd, data, offset * BYTES_PER_SAMPLE)
            finally:
                os.close(fd)

    def _assemble(self) -> RecordingResult | None:
        sizes = [ch.path.stat().st_size if ch.path.exists() else 0 for ch in self.channels]
        frames = max(sizes) // BYTES_PER_SAMPLE
        if frames == 0:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        handles = [open(ch.path, "rb") if ch.path.exists() else None for ch in self.channels]  # noqa: SIM115
        try:
            with wave.open(str(tmp), "wb") as wav:
                wav.setnchannels(2)
                wav.setsampwidth(BYTES_PER_SAMPLE)
                wav.setframerate(self.sample_rate_hz)
                done = 0
                while done < frames:
                    n = min(_ASSEMBLE_SAMPLES, frames - done)
                    stereo = np.zeros((n, 2), dtype="<i2")
                    for column, handle in enumerate(handles):
                        if handle is None:
                            continue
                        chunk = np.frombuffer(handle.read(n * BYTES_PER_SAMPLE), dtype="<i2")
                        stereo[: chunk.size, column] = chunk
                    wav.writeframes(stereo.tobytes())
                    done += n
            os.replace(tmp, self.path)
        finally:
            for handle in handles:
                if handle is not None:
                    handle.close()
            tmp.unlink(missing_ok=True)
        return RecordingResult(
            path=self.path,
            sample_rate_hz=self.sample_rate_hz,
            channels=2,
            duration_ms=frames * 1000 / self.sample_rate_hz,
            size_bytes=self.path.stat().st_size,
        )

    @property
    def channels(self) -> tuple[_Channel, _Channel]:
        """(caller = left, agent = right)."""
        return (self._caller, self._agent)

    def _remove_raw(self) -> None:
        for ch in self.channels:
            try:
                ch.path.unlink(missing_ok=True)
            except OSError:
                logger.warning("could not remove %s", ch.path)
