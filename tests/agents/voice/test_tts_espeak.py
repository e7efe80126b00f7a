"""Tests for parley.agents.voice.tts.espeak: the offline espeak-ng TTS.

Runs the real ``espeak-ng`` binary (skipped where it is not installed, except the tests of the
missing-binary error). Streaming and cancellation are checked by ordering, not timing: the
espeak-ng child process is looked up in ``/proc`` (children of this test process) while the
first chunk is in hand and again after the generator is closed or its consumer cancelled.
A long text cannot finish while its audio is not consumed, because espeak-ng blocks on the
full stdout pipe (64 KiB) once the reader's buffer (128 KiB) is full, and the test text
produces megabytes.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import subprocess
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.agents.voice.audio import read_wav, rms_dbfs, write_wav
from parley.agents.voice.messages import OUTPUT_SAMPLE_RATE_HZ
from parley.agents.voice.tts.base import TTSError
from parley.agents.voice.tts.espeak import EspeakSettings, EspeakTTS

ESPEAK = shutil.which("espeak-ng")
needs_espeak = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")
needs_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find child processes"
)

SENTENCE = "Hello, thank you for calling. How can I help you today?"
#: About ten minutes of speech: far more than the pipe and reader buffers can hold.
LONG_TEXT = " ".join(
    f"Paragraph {i}. The quick brown fox jumps over the lazy dog, and the appointment "
    "for next Tuesday at half past three has been confirmed by the front desk."
    for i in range(60)
)
CHUNK_BYTES = OUTPUT_SAMPLE_RATE_HZ * 20 // 1000 * 2  # 20 ms at 24 kHz = 960 bytes


def espeak_children() -> list[tuple[int, str]]:
    """(pid, state) of this process's children named espeak-ng (state ``Z`` = zombie)."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == me and name == "espeak-ng":
            found.append((int(entry), state))
    return found


def process_exists(pid: int) -> bool:
    """True while ``pid`` exists, zombie or not (a zombie is a child not yet reaped)."""
    return Path("/proc", str(pid)).exists()


@pytest.fixture(autouse=True)
def _collect_earlier_garbage() -> None:
    """Finalize what earlier tests left for the garbage collector (and what it warns about),
    so that :func:`assert_no_unclosed_transports` judges only this test's transports."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def assert_no_unclosed_transports() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    unclosed = [str(w.message) for w in caught if "unclosed" in str(w.message)]
    assert unclosed == []


async def synthesize_all(tts: EspeakTTS, text: str) -> list[bytes]:
    return [chunk async for chunk in tts.synthesize(text)]


# ---------------------------------------------------------------- audio


@needs_espeak
async def test_sentence_gives_plausible_speech() -> None:
    tts = EspeakTTS()
    chunks = await synthesize_all(tts, SENTENCE)

    pcm = b"".join(chunks)
    assert tts.sample_rate_hz == OUTPUT_SAMPLE_RATE_HZ
    assert len(pcm) % 2 == 0
    assert all(len(c) == CHUNK_BYTES for c in chunks[:-1])
    assert 0 < len(chunks[-1]) <= CHUNK_BYTES and len(chunks[-1]) % 2 == 0
    duration_s = len(pcm) / 2 / OUTPUT_SAMPLE_RATE_HZ
    assert 1.0 <= duration_s <= 6.0
    assert rms_dbfs(pcm) > -40


@needs_espeak
async def test_chunk_size_follows_settings() -> None:
    chunks = await synthesize_all(EspeakTTS(settings=EspeakSettings(chunk_ms=40)), "Thank you.")
    assert len(chunks) > 2
    assert all(len(c) == 2 * CHUNK_BYTES for c in chunks[:-1])


@needs_espeak
async def test_written_wav_is_24khz_mono_16bit(tmp_path: Path) -> None:
    pcm = b"".join(await synthesize_all(EspeakTTS(), SENTENCE))
    path = tmp_path / "espeak.wav"
    write_wav(path, pcm, sample_rate_hz=OUTPUT_SAMPLE_RATE_HZ)

    assert read_wav(path) == (pcm, OUTPUT_SAMPLE_RATE_HZ)
    sox = shutil.which("sox")
    if sox is None:
        pytest.skip("sox is not installed")

    def info(flag: str) -> str:
        return subprocess.run(
            [sox, "--i", flag, str(path)], check=True, capture_output=True, text=True
        ).stdout.strip()

    assert info("-r") == "24000"
    assert info("-c") == "1"
    assert info("-b") == "16"
    assert info("-e") == "Signed Integer PCM"


@needs_espeak
@pytest.mark.parametrize("text", ["--help", "-v xx -w /tmp/out.wav minus five", "- dash"])
async def test_text_starting_with_a_dash_is_spoken(text: str) -> None:
    pcm = b"".join(await synthesize_all(EspeakTTS(), text))
    assert len(pcm) / 2 / OUTPUT_SAMPLE_RATE_HZ > 0.3
    assert rms_dbfs(pcm) > -40


@needs_espeak
@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
async def test_empty_text_yields_nothing(text: str) -> None:
    assert await synthesize_all(EspeakTTS(), text) == []


async def test_empty_text_starts_no_process() -> None:
    tts = EspeakTTS(settings=EspeakSettings(binary="/nonexistent/espeak-ng"))
    assert await synthesize_all(tts, " ") == []


# ---------------------------------------------------------------- streaming and cancellation


@needs_espeak
@needs_proc
async def test_first_chunk_arrives_while_espeak_is_still_producing() -> None:
    tts = EspeakTTS()
    stream = tts.synthesize(LONG_TEXT)
    first = await anext(stream)
    await asyncio.sleep(0.2)  # let espeak-ng fill every buffer: it still cannot finish

    children = espeak_children()
    assert len(first) == CHUNK_BYTES
    assert len(children) == 1 and children[0][1] != "Z", children

    rest = [chunk async for chunk in stream]
    total_s = (len(first) + sum(map(len, rest))) / 2 / OUTPUT_SAMPLE_RATE_HZ
    assert total_s > 60
    assert espeak_children() == []  # exited and reaped
    assert_no_unclosed_transports()


@needs_espeak
@needs_proc
async def test_closing_the_generator_kills_espeak() -> None:
    stream = EspeakTTS().synthesize(LONG_TEXT)
    await anext(stream)
    (pid, state) = espeak_children()[0]
    assert state != "Z"

    await stream.aclose()

    assert espeak_children() == []
    assert not process_exists(pid)
    assert_no_unclosed_transports()


@needs_espeak
@needs_proc
async def test_cancelling_the_consumer_kills_espeak() -> None:
    tts = EspeakTTS()
    got_audio = asyncio.Event()

    async def consume() -> None:
        async for _chunk in tts.synthesize(LONG_TEXT):
            got_audio.set()
            await asyncio.sleep(0.02)  # paced like real-time playback

    task = asyncio.create_task(consume())
    await got_audio.wait()
    assert len(espeak_children()) == 1

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The async generator is finalised (aclose) by the loop right after the consumer unwinds.
    for _ in range(10):
        if not espeak_children():
            break
        await asyncio.sleep(0.01)
    assert espeak_children() == []
    assert_no_unclosed_transports()


@needs_espeak
@needs_proc
async def test_cancelling_while_waiting_for_audio_kills_espeak() -> None:
    """Cancel arrives while the generator itself awaits espeak-ng's stdout.

    The consumer awaits nothing but the generator, so the generator's stdout read is the
    only place the task can be suspended, and the cancellation is raised there.
    """
    stream = EspeakTTS().synthesize(LONG_TEXT)
    await anext(stream)
    pending = asyncio.ensure_future(_drain(stream))
    await asyncio.sleep(0.05)
    assert not pending.done()
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert espeak_children() == []
    assert_no_unclosed_transports()


async def _drain(stream: AsyncIterator[bytes]) -> None:
    async for _chunk in stream:
        pass


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("binary", [None, "/nonexistent/bin/espeak-ng"])
async def test_missing_binary_raises_tts_error_naming_the_fix(binary: str | None) -> None:
    tts = EspeakTTS(settings=EspeakSettings(binary=binary))
    with pytest.raises(TTSError, match="espeak-ng") as info:
        await synthesize_all(tts, SENTENCE)
    assert "apt-get install espeak-ng" in str(info.value)


@needs_espeak
@needs_proc
async def test_non_zero_exit_raises_tts_error_with_stderr() -> None:
    tts = EspeakTTS(settings=EspeakSettings(voice="xx-no-such-voice"))
    with pytest.raises(TTSError, match="status 1") as info:
        await synthesize_all(tts, SENTENCE)
    assert "voice does not exist" in str(info.value)
    assert espeak_children() == []


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError):
        EspeakSettings(pitch=100)
    with pytest.raises(ValueError):
        EspeakSettings(rate_wpm=10)
    with pytest.raises(ValueError):
        EspeakSettings(chunk_ms=0)
    with pytest.raises(ValueError):
        EspeakSettings(voice="")
