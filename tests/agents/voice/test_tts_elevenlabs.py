"""ElevenLabsTTS (the real ``elevenlabs`` SDK) against the local fake ElevenLabs server."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from parley.agents.voice.tts.base import TTSError
from parley.agents.voice.tts.elevenlabs import ElevenLabsSettings, ElevenLabsTTS
from parley.testing.elevenlabs_fake import FakeElevenLabs, synthetic_speech_pcm16

KEY = "el-test-key-1234"
VOICE = "21m00Tcm4TlvDq8ikWAM"


def make_tts(el: FakeElevenLabs, **overrides: object) -> ElevenLabsTTS:
    options: dict[str, object] = {"api_key": KEY, "voice_id": VOICE, "url": el.url}
    options.update(overrides)
    return ElevenLabsTTS(ElevenLabsSettings(**options))  # type: ignore[arg-type]


async def collect(tts: ElevenLabsTTS, text: str) -> list[bytes]:
    return [chunk async for chunk in tts.synthesize(text)]


async def test_a_sentence_streams_as_pcm_24k_with_the_agents_model_and_voice() -> None:
    async with FakeElevenLabs(api_key=KEY, speed=0) as el:
        tts = make_tts(el, model_id="eleven_flash_v2_5", optimize_streaming_latency=2)
        try:
            chunks = await collect(tts, "Your appointment is on Monday.")
        finally:
            await tts.aclose()
    assert len(chunks) > 1, "audio should arrive as a stream of chunks"
    assert all(len(c) % 2 == 0 for c in chunks)
    assert b"".join(chunks) == synthetic_speech_pcm16("Your appointment is on Monday.", 24_000)
    request = el.requests[0]
    assert request.voice_id == VOICE
    assert request.model_id == "eleven_flash_v2_5"
    assert request.output_format == "pcm_24000"
    assert request.query["optimize_streaming_latency"] == "2"
    assert request.headers["xi-api-key"] == KEY
    assert request.completed and not request.cancelled


async def test_the_connection_is_warmed_then_reused_between_sentences() -> None:
    async with FakeElevenLabs(api_key=KEY, speed=0) as el:
        tts = make_tts(el)
        try:
            await tts.warm()
            for text in ("One moment.", "I found it.", "Anything else?"):
                assert await collect(tts, text)
        finally:
            await tts.aclose()
    assert el.model_list_hits == 1
    assert len(el.requests) == 3
    assert el.connections_opened == 1


async def test_closing_the_stream_stops_the_request_at_once() -> None:
    # 10 s of audio at real-time speed: only a cancellation ends it within the test.
    async with FakeElevenLabs(api_key=KEY, speed=1.0, chunk_ms=20) as el:
        tts = make_tts(el)
        text = "This is a long answer that the caller is about to interrupt. " * 3
        try:
            audio = tts.synthesize(text)
            first = await anext(audio)
            assert first
            await audio.aclose()  # what the session does on barge-in
            assert await el.wait_for(lambda: el.requests and el.requests[0].ended_at is not None)
        finally:
            await tts.aclose()
    request = el.requests[0]
    assert request.cancelled and not request.completed
    assert request.bytes_sent < len(synthetic_speech_pcm16(text, 24_000)) // 4


async def test_cancelling_the_consuming_task_also_stops_the_request() -> None:
    async with FakeElevenLabs(api_key=KEY, speed=1.0, chunk_ms=20) as el:
        tts = make_tts(el)
        started = asyncio.Event()

        async def speak() -> None:
            async for _ in tts.synthesize("A sentence long enough to be cut off halfway."):
                started.set()

        task = asyncio.create_task(speak())
        try:
            await asyncio.wait_for(started.wait(), 5)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert await el.wait_for(lambda: el.requests[0].ended_at is not None)
        finally:
            await tts.aclose()
    assert el.requests[0].cancelled


async def test_a_refused_key_is_a_tts_error_that_does_not_show_the_key() -> None:
    async with FakeElevenLabs(api_key="the-right-key") as el:
        tts = make_tts(el)
        try:
            with pytest.raises(TTSError, match="refused the API key") as info:
                await collect(tts, "Hello.")
            with pytest.raises(TTSError, match="HTTP 401"):
                await tts.warm()
        finally:
            await tts.aclose()
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        ("fail", "HTTP 500"),
        ("break", "failed while speaking"),
        ("voice", "HTTP 404.*voice"),
        ("model", "HTTP 400"),
    ],
)
async def test_vendor_failures_are_tts_errors(fault: str, match: str) -> None:
    async with FakeElevenLabs(api_key=KEY, speed=0, voices={VOICE}) as el:
        overrides: dict[str, object] = {}
        if fault == "fail":
            el.fail_next(status=500)
        elif fault == "break":
            el.break_after_bytes(4_800)
        elif fault == "voice":
            overrides["voice_id"] = "no-such-voice"
        else:
            overrides["model_id"] = "eleven_unknown_v9"
        tts = make_tts(el, **overrides)
        try:
            with pytest.raises(TTSError, match=match):
                await collect(tts, "Your appointment is confirmed for Monday at nine.")
            if fault in ("fail", "break"):
                # One-shot faults: the same engine works for the next sentence.
                assert await collect(tts, "Still here.")
        finally:
            await tts.aclose()


async def test_no_first_byte_within_the_timeout_is_a_tts_error() -> None:
    async with FakeElevenLabs(api_key=KEY, speed=0) as el:
        el.stall_next(3.0)
        tts = make_tts(el, timeout_s=0.3)
        try:
            with pytest.raises(TTSError, match="timed out"):
                await collect(tts, "Hello.")
        finally:
            await tts.aclose()


def test_settings_validate_and_keep_the_key_out_of_repr() -> None:
    settings = ElevenLabsSettings(api_key="secret-key-123", voice_id=VOICE)
    assert "secret-key-123" not in repr(settings)
    assert settings.output_format == "pcm_24000"
    with pytest.raises(ValueError, match="API key"):
        ElevenLabsSettings(api_key="", voice_id=VOICE)
    with pytest.raises(ValueError, match="0..4"):
        ElevenLabsSettings(api_key="k", voice_id=VOICE, optimize_streaming_latency=5)
