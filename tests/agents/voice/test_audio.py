"""Tests for parley.agents.voice.audio: WAV parsing quirks, resampling, levels and framing.

The noise recordings in tests/fixtures/audio/noise/ carry the header quirks (a JUNK chunk
before ``fmt ``, 18-byte ``fmt `` chunks, trailing LIST/id3 chunks, stereo, 44.1/48 kHz);
their expected formats come from that folder's README table. Where ``sox`` is installed,
decoding and resampling are also checked against it.
"""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from parley.agents.voice.audio import (
    AudioFormatError,
    StreamResampler,
    duration_ms,
    load_wav_resampled,
    mix_pcm16,
    pcm16_to_float32,
    read_wav,
    resample_pcm16,
    rms_dbfs,
    silence,
    split_frames,
    write_wav,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "audio"
NOISE = FIXTURES / "noise"
SPEECH = FIXTURES / "speech"

#: From noise/README.md: file -> (sample rate Hz, channels, frames).
NOISE_FORMATS = {
    "atmospheric.wav": (44100, 2, 409676),
    "bus.wav": (44100, 1, 352469),
    "buzz.wav": (44100, 2, 352410),
    "drain.wav": (44100, 2, 409992),
    "factory.wav": (48000, 2, 446008),
    "traffic.wav": (44100, 2, 352793),
    "tram.wav": (48000, 1, 384000),
}

needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.int64)


def _sox_mono_pcm16(path: Path, *, rate_hz: int | None = None) -> bytes:
    """Decode ``path`` with sox to mono PCM16 LE (no dither), optionally resampled (-v)."""
    args = ["sox", "-D", str(path), "-t", "raw", "-e", "signed", "-b", "16", "-L", "-c", "1"]
    args.append("-")
    if rate_hz is not None:
        args += ["rate", "-v", str(rate_hz)]
    return subprocess.run(args, capture_output=True, check=True).stdout


def _wav_bytes(
    *,
    fmt_tag: int,
    channels: int,
    rate: int,
    bits: int,
    data: bytes,
    fmt_extra: bytes = b"",
    before: bytes = b"",
    after: bytes = b"",
    data_size: int | None = None,
) -> bytes:
    """Build a RIFF/WAVE file by hand so that each header quirk can be produced on purpose."""
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block_align, block_align, bits)
    fmt += fmt_extra
    body = b"WAVE" + before + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    size = len(data) if data_size is None else data_size
    body += b"data" + struct.pack("<I", size) + data + (b"\0" if len(data) % 2 else b"") + after
    return b"RIFF" + struct.pack("<I", len(body)) + body


# ---------------------------------------------------------------- read_wav on the fixtures


@pytest.mark.parametrize("name", sorted(NOISE_FORMATS))
def test_read_wav_noise_fixture_formats(name: str) -> None:
    rate, _channels, frames = NOISE_FORMATS[name]
    pcm, got_rate = read_wav(NOISE / name)
    assert got_rate == rate
    # Mono PCM16 of every frame: trailing LIST/id3 chunks and JUNK are not audio.
    assert len(pcm) == 2 * frames


@needs_sox
@pytest.mark.parametrize("name", sorted(NOISE_FORMATS))
def test_read_wav_matches_sox_downmix(name: str) -> None:
    pcm, _ = read_wav(NOISE / name)
    reference = _sox_mono_pcm16(NOISE / name)
    assert len(pcm) == len(reference)
    # Averaging the channels: sox and we may round a half-LSB differently.
    assert np.abs(_samples(pcm) - _samples(reference)).max() <= 1


@pytest.mark.parametrize(("name", "readme_rms_dbfs"), [("bus.wav", -15.9), ("tram.wav", -15.0)])
def test_rms_of_mono_noise_matches_readme(name: str, readme_rms_dbfs: float) -> None:
    # The README measures RMS over all channels, so only mono files compare directly.
    pcm, _ = read_wav(NOISE / name)
    assert rms_dbfs(pcm) == pytest.approx(readme_rms_dbfs, abs=0.05)


def test_read_wav_speech_fixture_is_16k_mono() -> None:
    pcm, rate = read_wav(SPEECH / "jfk_ask_not.wav")
    assert rate == 16_000
    assert duration_ms(pcm, sample_rate_hz=rate) == 11_000


# ---------------------------------------------------------------- read_wav on built files


def test_read_wav_downmixes_stereo_by_averaging(tmp_path: Path) -> None:
    frames = np.array([[1000, 3000], [-32768, -32768], [32767, -32767], [1, 2]], dtype="<i2")
    path = tmp_path / "stereo.wav"
    path.write_bytes(_wav_bytes(fmt_tag=1, channels=2, rate=8000, bits=16, data=frames.tobytes()))
    pcm, rate = read_wav(path)
    assert rate == 8000
    assert _samples(pcm).tolist() == [2000, -32768, 0, 2]  # 1.5 rounds half to even


def test_read_wav_skips_odd_sized_chunks_and_their_pad_byte(tmp_path: Path) -> None:
    data = np.arange(-5, 5, dtype="<i2").tobytes()
    junk = b"JUNK" + struct.pack("<I", 3) + b"abc" + b"\0"  # odd size: one pad byte follows
    path = tmp_path / "junk.wav"
    path.write_bytes(_wav_bytes(fmt_tag=1, channels=1, rate=16000, bits=16, data=data, before=junk))
    assert read_wav(path) == (data, 16000)


def test_read_wav_accepts_extensible_pcm(tmp_path: Path) -> None:
    data = np.array([0, 100, -100, 32767], dtype="<i2").tobytes()
    # cbSize=22, valid bits, channel mask, then KSDATAFORMAT_SUBTYPE_PCM.
    guid = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
    extra = struct.pack("<HHI", 22, 16, 4) + guid
    path = tmp_path / "ext.wav"
    path.write_bytes(
        _wav_bytes(fmt_tag=0xFFFE, channels=1, rate=22050, bits=16, data=data, fmt_extra=extra)
    )
    assert read_wav(path) == (data, 22050)


def test_read_wav_converts_8_bit_and_24_bit(tmp_path: Path) -> None:
    path8 = tmp_path / "u8.wav"
    path8.write_bytes(
        _wav_bytes(fmt_tag=1, channels=1, rate=8000, bits=8, data=bytes([0, 128, 255]))
    )
    pcm, _ = read_wav(path8)
    assert _samples(pcm).tolist() == [-32768, 0, 32512]

    values = [-8388608, -256, 0, 256, 8388607]
    raw = b"".join(struct.pack("<i", v)[:3] for v in values)
    path24 = tmp_path / "s24.wav"
    path24.write_bytes(_wav_bytes(fmt_tag=1, channels=1, rate=48000, bits=24, data=raw))
    pcm, _ = read_wav(path24)
    assert _samples(pcm).tolist() == [-32768, -1, 0, 1, 32767]


def test_read_wav_clamps_a_data_size_past_the_end_of_file(tmp_path: Path) -> None:
    data = np.arange(7, dtype="<i2").tobytes()
    path = tmp_path / "streamed.wav"
    path.write_bytes(
        _wav_bytes(fmt_tag=1, channels=1, rate=16000, bits=16, data=data, data_size=0xFFFFFFFF)
    )
    assert read_wav(path) == (data, 16000)


def test_read_wav_rejects_float(tmp_path: Path) -> None:
    data = np.array([0.0, 0.5, -0.5], dtype="<f4").tobytes()
    path = tmp_path / "float.wav"
    path.write_bytes(_wav_bytes(fmt_tag=3, channels=1, rate=16000, bits=32, data=data))
    with pytest.raises(AudioFormatError, match="IEEE float"):
        read_wav(path)


def test_read_wav_rejects_compressed(tmp_path: Path) -> None:
    path = tmp_path / "mulaw.wav"
    path.write_bytes(_wav_bytes(fmt_tag=7, channels=1, rate=8000, bits=8, data=b"\xff" * 8))
    with pytest.raises(AudioFormatError, match="mu-law"):
        read_wav(path)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"RIFX\0\0\0\0WAVE",
        b"OggS" + bytes(40),
        b"RIFF\x04\0\0\0WAVE",  # no chunks at all
        b"RIFF\x0c\0\0\0WAVEdata\0\0\0\0",  # data but no fmt
    ],
)
def test_read_wav_rejects_non_wav(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(blob)
    with pytest.raises(AudioFormatError):
        read_wav(path)


def test_audio_format_error_is_a_value_error() -> None:
    assert issubclass(AudioFormatError, ValueError)


# ---------------------------------------------------------------- write_wav


def test_write_read_round_trip(tmp_path: Path) -> None:
    pcm = np.array([0, 1, -1, 32767, -32768, 1234], dtype="<i2").tobytes()
    path = tmp_path / "out.wav"
    write_wav(path, pcm, sample_rate_hz=24_000)
    assert path.stat().st_size == 44 + len(pcm)
    assert read_wav(path) == (pcm, 24_000)


def test_write_wav_rejects_odd_bytes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_wav(tmp_path / "x.wav", b"\0\0\0", sample_rate_hz=16_000)


# ---------------------------------------------------------------- resampling


@pytest.mark.parametrize(
    ("original", "converted"),
    [
        ("audiomnist_6_56_49_48k.wav", "audiomnist_six_german_female.wav"),
        ("audiomnist_9_42_10_48k.wav", "audiomnist_nine_arabic_accent.wav"),
    ],
)
def test_resampling_48k_originals_keeps_duration(original: str, converted: str) -> None:
    src, rate = read_wav(SPEECH / "originals" / original)
    assert rate == 48_000
    out = load_wav_resampled(SPEECH / "originals" / original, sample_rate_hz=16_000)
    assert abs(duration_ms(out, sample_rate_hz=16_000) - duration_ms(src, sample_rate_hz=rate)) < 1
    # The committed 16 kHz clip was made from the same original with `sox rate -v`.
    reference, _ = read_wav(SPEECH / converted)
    a, b = _samples(out), _samples(reference)
    assert len(a) == len(b)
    assert np.abs(a - b).max() <= 4


@needs_sox
def test_resample_matches_sox_on_44k1_noise() -> None:
    pcm, rate = read_wav(NOISE / "bus.wav")
    ours = _samples(resample_pcm16(pcm, from_hz=rate, to_hz=16_000))
    theirs = _samples(_sox_mono_pcm16(NOISE / "bus.wav", rate_hz=16_000))
    assert abs(len(ours) - len(theirs)) <= 1
    n = min(len(ours), len(theirs))
    assert np.corrcoef(ours[:n], theirs[:n])[0, 1] > 0.999


def test_resample_equal_rates_is_identity() -> None:
    pcm = np.arange(100, dtype="<i2").tobytes()
    assert resample_pcm16(pcm, from_hz=16_000, to_hz=16_000) == pcm
    assert resample_pcm16(b"", from_hz=16_000, to_hz=24_000) == b""


def test_resample_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        resample_pcm16(b"\0", from_hz=16_000, to_hz=24_000)
    with pytest.raises(ValueError):
        resample_pcm16(b"\0\0", from_hz=0, to_hz=24_000)


@pytest.mark.parametrize(("from_hz", "to_hz"), [(44_100, 16_000), (16_000, 24_000)])
def test_stream_resampler_matches_one_shot(from_hz: int, to_hz: int) -> None:
    pcm = resample_pcm16(read_wav(NOISE / "bus.wav")[0], from_hz=44_100, to_hz=from_hz)
    frame = 2 * from_hz // 50  # 20 ms
    stream = StreamResampler(from_hz, to_hz)
    chunks = [stream.process(f) for f in split_frames(pcm, frame_bytes=frame)]
    tail = stream.flush()
    streamed = _samples(b"".join(chunks) + tail)
    one_shot = _samples(resample_pcm16(pcm, from_hz=from_hz, to_hz=to_hz))
    assert abs(len(streamed) - len(one_shot)) <= 2
    n = min(len(streamed), len(one_shot))
    assert np.corrcoef(streamed[:n], one_shot[:n])[0, 1] > 0.9999
    assert len(tail) > 0  # the filter delay comes out at flush


def test_stream_resampler_can_restart_after_flush() -> None:
    pcm = silence(100, sample_rate_hz=16_000)
    stream = StreamResampler(16_000, 24_000)
    first = _samples(stream.process(pcm) + stream.flush())
    second = _samples(stream.process(pcm) + stream.flush())
    assert len(first) == len(second) == 2400
    # Nothing of the first stream leaks into the second; only libsoxr's ±1 LSB dither.
    assert np.abs(second).max() <= 1


def test_stream_resampler_passthrough_and_errors() -> None:
    stream = StreamResampler(16_000, 16_000)
    assert stream.process(b"\1\2\3\4") == b"\1\2\3\4"
    assert stream.flush() == b""
    with pytest.raises(ValueError):
        StreamResampler(16_000, 24_000).process(b"\0")
    with pytest.raises(ValueError):
        StreamResampler(0, 16_000)


# ---------------------------------------------------------------- levels and shapes


def test_pcm16_to_float32_scale() -> None:
    out = pcm16_to_float32(np.array([-32768, 0, 16384, 32767], dtype="<i2").tobytes())
    assert out.dtype == np.float32
    assert out.tolist() == [-1.0, 0.0, 0.5, 32767 / 32768]
    with pytest.raises(ValueError):
        pcm16_to_float32(b"\0")


def test_rms_dbfs_reference_levels() -> None:
    assert rms_dbfs(b"") == -math.inf
    assert rms_dbfs(silence(100, sample_rate_hz=16_000)) == -math.inf
    square = np.tile(np.array([32767, -32767], dtype="<i2"), 800).tobytes()
    assert rms_dbfs(square) == pytest.approx(0.0, abs=0.01)
    t = np.arange(16_000) / 16_000
    sine = np.rint(32767 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()
    assert rms_dbfs(sine) == pytest.approx(-3.01, abs=0.01)


def test_duration_and_silence() -> None:
    assert silence(20, sample_rate_hz=16_000) == bytes(640)
    assert silence(0, sample_rate_hz=16_000) == b""
    assert duration_ms(bytes(640), sample_rate_hz=16_000) == 20.0
    assert duration_ms(bytes(960), sample_rate_hz=24_000) == 20.0
    with pytest.raises(ValueError):
        silence(-1, sample_rate_hz=16_000)
    with pytest.raises(ValueError):
        duration_ms(b"\0", sample_rate_hz=16_000)


def test_split_frames_keeps_or_pads_the_last_frame() -> None:
    pcm = bytes(range(10))
    assert split_frames(pcm, frame_bytes=4) == [bytes(range(4)), bytes(range(4, 8)), b"\x08\x09"]
    padded = split_frames(pcm, frame_bytes=4, pad=True)
    assert padded[-1] == b"\x08\x09\0\0"
    assert all(len(f) == 4 for f in padded)
    assert split_frames(b"", frame_bytes=640) == []
    for bad in (0, 3, -2):
        with pytest.raises(ValueError):
            split_frames(pcm, frame_bytes=bad)


def test_mix_loops_truncates_applies_gain_and_clips() -> None:
    a = np.array([0, 0, 0, 0, 0, 30000, -30000], dtype="<i2").tobytes()
    b = np.array([100, 200, 300], dtype="<i2").tobytes()
    mixed = _samples(mix_pcm16(a, b)).tolist()
    assert mixed[:5] == [100, 200, 300, 100, 200]  # b looped from its start
    assert len(mixed) == 7  # as long as a
    loud = np.array([10000], dtype="<i2").tobytes()
    assert _samples(mix_pcm16(a, loud, gain_b_db=6.0206))[5:].tolist() == [32767, -10000]
    assert _samples(mix_pcm16(a[:2], b, gain_b_db=-20.0)).tolist() == [10]
    assert mix_pcm16(b"", b) == b""
    with pytest.raises(ValueError):
        mix_pcm16(a, b"")
