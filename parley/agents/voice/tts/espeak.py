"""Offline, embedded text-to-speech with the ``espeak-ng`` command-line synthesizer.

Each :meth:`EspeakTTS.synthesize` call runs ``espeak-ng --stdout --stdin`` as a subprocess,
writes the text to its stdin (so text beginning with ``-`` is spoken, never parsed as an
option, and does not show in the process list), parses the WAV stream it writes to stdout as
the bytes arrive (espeak-ng writes a RIFF header with placeholder sizes, ``0x7ffff000``,
because it does not know the length in advance), resamples the audio from the header's rate
(22050 Hz for espeak-ng 1.51) to 24 kHz with a streaming soxr resampler, and yields PCM16
chunks of ``chunk_ms`` as soon as they exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from parley.agents.voice.audio import StreamResampler
from parley.agents.voice.messages import BYTES_PER_SAMPLE, OUTPUT_SAMPLE_RATE_HZ
from parley.agents.voice.tts.base import TTS, TTSError

__all__ = ["EspeakSettings", "EspeakTTS"]

#: Bytes asked of espeak-ng's stdout per read: 8 KiB is ~190 ms of 22050 Hz PCM16, and a
#: read returns whatever is already there, so it does not delay the first chunk.
_READ_BYTES = 8192
#: WAVE format tag of integer PCM (Microsoft RIFF spec, mmreg.h).
_WAVE_FORMAT_PCM = 1
_INSTALL_HINT = "install it with `apt-get install espeak-ng` or set EspeakSettings.binary"


def _which_espeak() -> str | None:
    return shutil.which("espeak-ng")


@dataclass(frozen=True, slots=True)
class EspeakSettings:
    """Options of the espeak-ng synthesizer.

    - ``voice="en-us"``: an espeak-ng voice name (``espeak-ng --voices`` lists them).
    - ``rate_wpm=175``: speaking rate in words per minute (espeak-ng's default, ``-s``);
      espeak-ng accepts 80 to 450.
    - ``pitch=50``: pitch adjustment 0-99 (espeak-ng's default, ``-p``).
    - ``chunk_ms=20``: duration of each yielded chunk (the last one may be shorter);
      20 ms at 24 kHz is 480 samples = 960 bytes.
    - ``binary``: path of the executable; defaults to ``espeak-ng`` found on ``PATH``
      (``None`` when it is not installed: synthesis then raises :class:`TTSError`).

    Raises:
        ValueError: an empty voice, or a rate, pitch or chunk duration out of range.
    """

    voice: str = "en-us"
    rate_wpm: int = 175
    pitch: int = 50
    chunk_ms: int = 20
    binary: str | None = field(default_factory=_which_espeak)

    def __post_init__(self) -> None:
        if not self.voice or self.voice.startswith("-"):
            raise ValueError(f"invalid espeak-ng voice {self.voice!r}")
        if not 80 <= self.rate_wpm <= 450:
            raise ValueError(f"rate_wpm must be within 80-450, got {self.rate_wpm}")
        if not 0 <= self.pitch <= 99:
            raise ValueError(f"pitch must be within 0-99, got {self.pitch}")
        if self.chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be > 0, got {self.chunk_ms}")


class _WavStreamParser:
    """Incremental reader of a mono PCM16 WAV byte stream with unknown sizes.

    :meth:`feed` takes bytes as they come and returns the PCM16 found so far (always an even
    number of bytes). The ``data`` chunk's declared size is ignored: everything after its
    header is audio until the stream ends. ``sample_rate_hz`` is known once the ``fmt ``
    chunk has been read.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._riff_checked = False
        self._in_data = False
        self.sample_rate_hz: int | None = None

    @property
    def header_done(self) -> bool:
        return self._in_data

    def feed(self, data: bytes) -> bytes:
        """Consume ``data``; return the whole PCM16 samples now available.

        Raises:
            TTSError: not a RIFF/WAVE stream, or not mono 16-bit integer PCM.
        """
        self._buffer += data
        if not self._in_data:
            self._parse_header()
            if not self._in_data:
                return b""
        usable = len(self._buffer) - len(self._buffer) % BYTES_PER_SAMPLE
        pcm = bytes(self._buffer[:usable])
        del self._buffer[:usable]
        return pcm

    def _parse_header(self) -> None:
        buf = self._buffer
        if not self._riff_checked:
            if len(buf) < 12:
                return
            if buf[:4] != b"RIFF" or buf[8:12] != b"WAVE":
                raise TTSError(f"espeak-ng wrote no WAV header (got {bytes(buf[:12])!r})")
            del buf[:12]
            self._riff_checked = True
        while len(buf) >= 8:
            chunk_id = bytes(buf[:4])
            (size,) = struct.unpack_from("<I", buf, 4)
            if chunk_id == b"data":
                if self.sample_rate_hz is None:
                    raise TTSError("espeak-ng WAV stream has no 'fmt ' chunk before 'data'")
                del buf[:8]
                self._in_data = True
                return
            padded = size + (size & 1)  # RIFF chunks are word aligned
            if len(buf) < 8 + padded:
                return
            if chunk_id == b"fmt ":
                self._read_fmt(bytes(buf[8 : 8 + size]))
            del buf[: 8 + padded]

    def _read_fmt(self, fmt: bytes) -> None:
        if len(fmt) < 16:
            raise TTSError("espeak-ng WAV stream has a short 'fmt ' chunk")
        tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", fmt)
        if tag != _WAVE_FORMAT_PCM or channels != 1 or bits != 16 or rate <= 0:
            raise TTSError(
                f"espeak-ng wrote unsupported audio (format {tag}, {channels} channels, "
                f"{bits} bits, {rate} Hz); expected mono 16-bit PCM"
            )
        self.sample_rate_hz = rate


class EspeakTTS(TTS):
    """espeak-ng as a streaming :class:`~parley.agents.voice.tts.base.TTS` (24 kHz PCM16).

    Every call to :meth:`synthesize` owns one subprocess; calls are independent and may run
    concurrently.
    """

    name = "espeak-ng"
    sample_rate_hz = OUTPUT_SAMPLE_RATE_HZ

    def __init__(self, *, settings: EspeakSettings | None = None) -> None:
        self.settings = settings or EspeakSettings()
        self._chunk_bytes = self.sample_rate_hz * self.settings.chunk_ms // 1000 * BYTES_PER_SAMPLE

    def _command(self) -> list[str]:
        s = self.settings
        if not s.binary:
            raise TTSError(f"espeak-ng is not installed (not found on PATH): {_INSTALL_HINT}")
        return [
            s.binary,
            "--stdout",
            "--stdin",
            "-b", "1",  # input is UTF-8
            "-v", s.voice,
            "-s", str(s.rate_wpm),
            "-p", str(s.pitch),
        ]  # fmt: skip

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Speak ``text``: PCM16 mono 24 kHz chunks of ``chunk_ms`` (the last may be shorter).

        Empty or whitespace-only text yields nothing and starts no process. Cancelling the
        consumer or closing the generator kills espeak-ng at once and reaps it.

        Raises:
            TTSError: espeak-ng is missing or cannot be started, exits with a non-zero
                status (the message carries its stderr), or writes something other than a
                mono 16-bit PCM WAV stream.
        """
        if not text.strip():
            return
        command = self._command()
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise TTSError(f"cannot run espeak-ng ({command[0]}): {exc}; {_INSTALL_HINT}") from exc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        feeder = asyncio.create_task(_feed_stdin(proc.stdin, text.encode("utf-8")))
        stderr_reader = asyncio.create_task(proc.stderr.read())
        finished = False
        try:
            parser = _WavStreamParser()
            resampler: StreamResampler | None = None
            pending = bytearray()
            chunk = self._chunk_bytes
            while data := await proc.stdout.read(_READ_BYTES):
                pcm = parser.feed(data)
                if not pcm:
                    continue
                if resampler is None:
                    assert parser.sample_rate_hz is not None
                    resampler = StreamResampler(parser.sample_rate_hz, self.sample_rate_hz)
                pending += resampler.process(pcm)
                while len(pending) >= chunk:
                    yield bytes(pending[:chunk])
                    del pending[:chunk]

            returncode = await proc.wait()
            stderr = (await stderr_reader).decode("utf-8", errors="replace").strip()
            await feeder
            if returncode != 0:
                raise TTSError(f"espeak-ng exited with status {returncode}: {stderr or '-'}")
            if not parser.header_done:
                raise TTSError(f"espeak-ng produced no audio: {stderr or 'empty output'}")
            finished = True
            if resampler is not None:
                pending += resampler.flush()
            for start in range(0, len(pending), chunk):
                yield bytes(pending[start : start + chunk])
        finally:
            if not finished:
                await _kill(proc, feeder, stderr_reader)


async def _feed_stdin(stdin: asyncio.StreamWriter, data: bytes) -> None:
    """Write the text and close stdin; espeak-ng exiting early (a broken pipe) is not an error.

    The exit status reports that failure instead.
    """
    try:
        stdin.write(data)
        await stdin.drain()
        stdin.close()
        await stdin.wait_closed()
    except (BrokenPipeError, ConnectionResetError):
        pass


async def _kill(
    proc: asyncio.subprocess.Process,
    feeder: asyncio.Task[None],
    stderr_reader: asyncio.Task[bytes],
) -> None:
    """Kill espeak-ng, reap it and close its pipes (barge-in, errors, closed generator)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    feeder.cancel()
    stderr_reader.cancel()
    await asyncio.gather(feeder, stderr_reader, return_exceptions=True)
    if proc.stdin is not None:
        proc.stdin.close()
    # Reading both pipes to EOF (bounded by the pipe buffers: the process is dead) lets the
    # subprocess transport close itself instead of leaking until garbage collection.
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.read()
    await proc.wait()
