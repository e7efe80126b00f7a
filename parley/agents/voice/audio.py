"""PCM16 helpers: WAV reading and writing, resampling, levels, framing and mixing.

Audio here is PCM16 — signed 16-bit little-endian samples, mono — passed around as ``bytes``
(2 bytes per sample), as everywhere in the voice loop (:mod:`parley.agents.voice.messages`).
Every function that takes PCM raises :class:`ValueError` when given an odd number of bytes,
because such a buffer cannot hold whole samples.

Resampling uses libsoxr (``soxr``) at its ``"HQ"`` quality (the library's default "high
quality" recipe: 20-bit precision, linear phase) with int16 in and out, so libsoxr applies
its ±1 LSB dither: digital silence comes out as a faint ±1 LSB hiss, and the same input
resampled twice on one stream can differ in the last bit.
"""

from __future__ import annotations

import math
import os
import struct
import wave
from pathlib import Path

import numpy as np
import soxr

__all__ = [
    "AudioFormatError",
    "StreamResampler",
    "duration_ms",
    "load_wav_resampled",
    "mix_pcm16",
    "pcm16_to_float32",
    "read_wav",
    "resample_pcm16",
    "rms_dbfs",
    "silence",
    "split_frames",
    "write_wav",
]

#: libsoxr quality recipe used for every resampling here ("HQ" = high quality, 20-bit).
RESAMPLE_QUALITY = "HQ"

_PCM16 = np.dtype("<i2")
#: WAVE format tags (Microsoft RIFF spec / mmreg.h): PCM, IEEE float, A-law, mu-law, extensible.
_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {
    0x0002: "MS ADPCM",
    0x0003: "IEEE float",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0055: "MPEG layer 3",
}
#: The SubFormat GUID of WAVE_FORMAT_EXTENSIBLE starts with the plain format tag (2 bytes LE)
#: followed by this fixed suffix (KSDATAFORMAT_SUBTYPE_* in ksmedia.h).
_GUID_SUFFIX = bytes.fromhex("000000001000800000aa00389b71")


class AudioFormatError(ValueError):
    """The file is not a WAV this module can decode (not RIFF/WAVE, float, compressed...)."""


# ---------------------------------------------------------------- WAV files


def read_wav(path: str | os.PathLike[str]) -> tuple[bytes, int]:
    """Read a PCM WAV file and return ``(mono PCM16 bytes, sample rate in Hz)``.

    Walks the RIFF chunk list, so it accepts chunks before ``fmt `` (``JUNK``, ``bext``), an
    18-byte or 40-byte (``WAVE_FORMAT_EXTENSIBLE``) ``fmt `` chunk and trailing chunks after
    ``data`` (``LIST``, ``id3 ``). Integer PCM of 8 (unsigned), 16, 24 or 32 bits is converted
    to 16 bits (wider samples keep their top 16 bits); several channels are downmixed to one
    by averaging. A ``data`` chunk whose declared size runs past the end of the file (as left
    by streaming writers) is read up to the end of the file, whole frames only.

    Raises:
        AudioFormatError: not RIFF/WAVE, no ``fmt `` or ``data`` chunk, or a sample format
            other than integer PCM (IEEE float, A-law, mu-law, ADPCM, MP3, ...).
        OSError: the file cannot be read.
    """
    blob = Path(path).read_bytes()
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise AudioFormatError(f"{path}: not a RIFF/WAVE file")

    fmt: bytes | None = None
    data: bytes | None = None
    pos = 12
    while pos + 8 <= len(blob):
        chunk_id = blob[pos : pos + 4]
        (size,) = struct.unpack_from("<I", blob, pos + 4)
        body = blob[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            fmt = body
        elif chunk_id == b"data" and data is None:
            data = body
        # RIFF chunks are word aligned: an odd-sized chunk is followed by one pad byte.
        pos += 8 + size + (size & 1)

    if fmt is None or len(fmt) < 16:
        raise AudioFormatError(f"{path}: missing or short 'fmt ' chunk")
    if data is None:
        raise AudioFormatError(f"{path}: missing 'data' chunk")

    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        if len(fmt) < 40 or fmt[26:40] != _GUID_SUFFIX:
            raise AudioFormatError(f"{path}: unknown WAVE_FORMAT_EXTENSIBLE sub-format")
        (tag,) = struct.unpack_from("<H", fmt, 24)
    if tag != _WAVE_FORMAT_PCM:
        name = _FORMAT_NAMES.get(tag, f"format tag 0x{tag:04x}")
        raise AudioFormatError(f"{path}: {name} WAV is not supported (integer PCM only)")
    if bits not in (8, 16, 24, 32):
        raise AudioFormatError(f"{path}: {bits}-bit PCM is not supported")
    if channels < 1 or rate < 1:
        raise AudioFormatError(f"{path}: invalid header ({channels} channels, {rate} Hz)")
    sample_bytes = bits // 8
    if block_align != channels * sample_bytes:
        raise AudioFormatError(f"{path}: block align {block_align} does not match the format")

    usable = len(data) - len(data) % block_align
    samples = _decode_pcm(data[:usable], sample_bytes=sample_bytes)
    frames = samples.reshape(-1, channels)
    if channels == 1:
        mono = frames[:, 0]
    else:
        mono = np.rint(frames.mean(axis=1)).astype(np.int16)
    return mono.astype(_PCM16, copy=False).tobytes(), rate


def _decode_pcm(raw: bytes, *, sample_bytes: int) -> np.ndarray:
    """Decode interleaved integer PCM of 1-4 bytes per sample to int16 (shape ``(n,)``)."""
    if sample_bytes == 1:
        # 8-bit WAV is unsigned with 128 as zero.
        return ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if sample_bytes == 2:
        return np.frombuffer(raw, dtype=_PCM16).astype(np.int16)
    if sample_bytes == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        # The top two bytes of a little-endian 24-bit sample are its 16 most significant bits.
        return (b[:, 1].astype(np.uint16) | (b[:, 2].astype(np.uint16) << 8)).view(np.int16)
    return (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)


def write_wav(path: str | os.PathLike[str], pcm: bytes, *, sample_rate_hz: int) -> None:
    """Write mono PCM16 ``pcm`` to ``path`` as a canonical 44-byte-header WAV file.

    Raises:
        ValueError: odd byte count or a non-positive sample rate.
        OSError: the file cannot be written.
    """
    _check_pcm(pcm)
    _check_rate(sample_rate_hz)
    with wave.open(os.fspath(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate_hz)
        out.writeframes(pcm)


def load_wav_resampled(path: str | os.PathLike[str], *, sample_rate_hz: int) -> bytes:
    """Read a WAV (see :func:`read_wav`) and return it as mono PCM16 at ``sample_rate_hz``.

    Raises:
        AudioFormatError: the file cannot be decoded.
        ValueError: non-positive ``sample_rate_hz``.
    """
    pcm, rate = read_wav(path)
    return resample_pcm16(pcm, from_hz=rate, to_hz=sample_rate_hz)


# ---------------------------------------------------------------- resampling


def resample_pcm16(pcm: bytes, *, from_hz: int, to_hz: int) -> bytes:
    """Resample a whole mono PCM16 buffer from ``from_hz`` to ``to_hz`` (one shot, soxr HQ).

    The output has ``round(n * to_hz / from_hz)`` samples for ``n`` input samples, so the
    duration is kept to within half an output sample. Equal rates return ``pcm`` unchanged.

    Raises:
        ValueError: odd byte count or a non-positive rate.
    """
    samples = _as_int16(pcm)
    _check_rate(from_hz)
    _check_rate(to_hz)
    if from_hz == to_hz or samples.size == 0:
        return bytes(pcm)
    out = soxr.resample(samples, from_hz, to_hz, quality=RESAMPLE_QUALITY)
    return out.astype(_PCM16, copy=False).tobytes()


class StreamResampler:
    """Chunked mono PCM16 resampler around :class:`soxr.ResampleStream` (dtype int16, HQ).

    Feed chunks of any even byte length to :meth:`process`; call :meth:`flush` at the end of
    the stream to drain the filter's delay (a few ms of audio). The concatenated output then
    matches :func:`resample_pcm16` of the concatenated input to within a sample or two in
    length. After :meth:`flush` the resampler is cleared and can start a new stream. With
    equal rates it is a passthrough that copies nothing through soxr.

    Not thread-safe: one instance per audio stream.
    """

    def __init__(self, from_hz: int, to_hz: int) -> None:
        """Raises ValueError on a non-positive rate."""
        _check_rate(from_hz)
        _check_rate(to_hz)
        self.from_hz = from_hz
        self.to_hz = to_hz
        self._stream: soxr.ResampleStream | None = None
        if from_hz != to_hz:
            self._stream = soxr.ResampleStream(
                from_hz, to_hz, 1, dtype="int16", quality=RESAMPLE_QUALITY
            )

    def process(self, pcm: bytes) -> bytes:
        """Resample one chunk; may return fewer (or zero) bytes while the filter fills.

        Raises:
            ValueError: odd byte count.
        """
        samples = _as_int16(pcm)
        if self._stream is None:
            return bytes(pcm)
        if samples.size == 0:
            return b""
        return self._stream.resample_chunk(samples).astype(_PCM16, copy=False).tobytes()

    def flush(self) -> bytes:
        """Return the audio still held in the filter and reset for a new stream."""
        if self._stream is None:
            return b""
        tail = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        self._stream.clear()
        return tail.astype(_PCM16, copy=False).tobytes()


# ---------------------------------------------------------------- levels and shapes


def pcm16_to_float32(pcm: bytes) -> np.ndarray:
    """Convert PCM16 to float32 samples in [-1.0, 1.0) (divided by 32768), shape ``(n,)``.

    Raises:
        ValueError: odd byte count.
    """
    return _as_int16(pcm).astype(np.float32) / np.float32(32768.0)


def rms_dbfs(pcm: bytes) -> float:
    """RMS level in dBFS, where a full-scale square wave is 0 dBFS (a full-scale sine ≈ -3.0).

    Digital silence and empty input return ``-inf``.

    Raises:
        ValueError: odd byte count.
    """
    samples = _as_int16(pcm)
    if samples.size == 0:
        return -math.inf
    mean_square = float(np.mean(np.square(samples, dtype=np.float64)))
    if mean_square == 0.0:
        return -math.inf
    return 10.0 * math.log10(mean_square / 32768.0**2)


def duration_ms(pcm: bytes, *, sample_rate_hz: int) -> float:
    """Duration of mono PCM16 ``pcm`` in ms at ``sample_rate_hz``.

    Raises:
        ValueError: odd byte count or a non-positive rate.
    """
    _check_pcm(pcm)
    _check_rate(sample_rate_hz)
    return len(pcm) / 2 * 1000.0 / sample_rate_hz


def split_frames(pcm: bytes, *, frame_bytes: int, pad: bool = False) -> list[bytes]:
    """Split ``pcm`` into consecutive frames of ``frame_bytes`` bytes.

    The last partial frame is KEPT as is (shorter) by default, so joining the frames gives
    back ``pcm`` exactly; with ``pad=True`` it is zero padded (digital silence) to a full
    frame instead. Empty input gives an empty list.

    Raises:
        ValueError: odd byte count, or ``frame_bytes`` not a positive even number.
    """
    _check_pcm(pcm)
    if frame_bytes <= 0 or frame_bytes % 2:
        raise ValueError(f"frame_bytes must be a positive even number, got {frame_bytes}")
    frames = [pcm[i : i + frame_bytes] for i in range(0, len(pcm), frame_bytes)]
    if pad and frames and len(frames[-1]) < frame_bytes:
        frames[-1] = frames[-1] + bytes(frame_bytes - len(frames[-1]))
    return frames


def silence(ms: float, *, sample_rate_hz: int) -> bytes:
    """Digital silence of ``ms`` milliseconds: ``round(ms * rate / 1000)`` zero samples.

    Raises:
        ValueError: negative ``ms`` or a non-positive rate.
    """
    if ms < 0:
        raise ValueError(f"ms must be >= 0, got {ms}")
    _check_rate(sample_rate_hz)
    return bytes(2 * round(ms * sample_rate_hz / 1000))


def mix_pcm16(a: bytes, b: bytes, *, gain_b_db: float = 0.0) -> bytes:
    """Overlay ``b`` (scaled by ``gain_b_db`` dB) on ``a``; the result is as long as ``a``.

    ``b`` is looped from its start when shorter than ``a`` and truncated when longer, the
    way Benchforce overlays background noise on each client utterance. The sum is clipped to
    the int16 range.

    Raises:
        ValueError: odd byte count, or ``b`` empty while ``a`` is not.
    """
    x = _as_int16(a)
    y = _as_int16(b)
    if x.size == 0:
        return b""
    if y.size == 0:
        raise ValueError("cannot mix: b is empty")
    repeats = -(-x.size // y.size)
    noise = np.tile(y, repeats)[: x.size].astype(np.float64) * 10.0 ** (gain_b_db / 20.0)
    mixed = np.clip(np.rint(x + noise), -32768, 32767).astype(_PCM16)
    return mixed.tobytes()


# ---------------------------------------------------------------- checks


def _check_pcm(pcm: bytes) -> None:
    if len(pcm) % 2:
        raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")


def _check_rate(rate_hz: int) -> None:
    if rate_hz <= 0:
        raise ValueError(f"sample rate must be positive, got {rate_hz} Hz")


def _as_int16(pcm: bytes) -> np.ndarray:
    """View PCM16 bytes as a native int16 array, shape ``(n,)`` (read-only, no copy)."""
    _check_pcm(pcm)
    return np.frombuffer(pcm, dtype=_PCM16).astype(np.int16, copy=False)
