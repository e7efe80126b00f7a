"""ElevenLabsTTS (the real ``elevenlabs`` SDK) against the local fake ElevenLabs server."""

from __future__ import annotations

import asyncio
import contextlib
import time

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


async def speak_turn(tts: ElevenLabsTTS, *sentences: str) -> float:
    """Speak a reply sentence by sentence, as the session does; the first sentence's TTFB (ms)."""
    ttfb_ms = 0.0
    for n, sentence in enumerate(sentences):
        started = time.monotonic()
        audio = tts.synthesize(sentence)
        try:
            assert await anext(audio)
            if n == 0:
                ttfb_ms = (time.monotonic() - started) * 1000
            async for _ in audio:
                pass
        finally:
            await audio.aclose()
    return ttfb_ms


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


# ---------------------------------------------------------------- kept warm between turns


@pytest.mark.slow
async def test_pauses_longer_than_the_default_keepalive_keep_one_connection() -> None:
    # httpx drops idle pooled connections after 5 s by default; a caller pauses longer.
    # A new connection costs 150 ms here (a TLS handshake to the vendor), so a reconnect
    # would show in the TTFB of the next turn.
    async with FakeElevenLabs(api_key=KEY, speed=0, ttfb_ms=30, new_connection_ms=150) as el:
        tts = make_tts(el)
        try:
            await tts.warm()
            ttfbs = []
            for turn in range(3):
                if turn:
                    await asyncio.sleep(5.3)
                ttfbs.append(await speak_turn(tts, "Let me check.", "You are booked for Monday."))
        finally:
            await tts.aclose()
    assert el.connections_opened == 1
    assert len(el.requests) == 6 and all(r.completed for r in el.requests)
    assert max(ttfbs[1:]) <= ttfbs[0] + 25, ttfbs


@pytest.mark.parametrize("keep_warm", [True, False])
async def test_keep_warm_requests_outlast_the_vendors_idle_timeout(keep_warm: bool) -> None:
    # The vendor (or a proxy) closes connections idle for 0.5 s; the caller pauses 1.2 s.
    async with FakeElevenLabs(
        api_key=KEY, speed=0, ttfb_ms=30, keepalive_timeout_s=0.5, new_connection_ms=150
    ) as el:
        tts = make_tts(el, keepalive_interval_s=0.2 if keep_warm else None)
        try:
            await tts.warm()
            ttfbs = []
            for turn in range(3):
                if turn:
                    await asyncio.sleep(1.2)
                ttfbs.append(await speak_turn(tts, "One moment.", "Your results are in."))
        finally:
            await tts.aclose()
    if keep_warm:
        assert el.connections_opened == 1
        assert tts.keepalive_requests >= 8 and tts.keepalive_failures == 0
        assert el.model_list_hits == 1 + tts.keepalive_requests
        assert max(ttfbs[1:]) <= ttfbs[0] + 25, ttfbs
    else:
        # Without them every turn after a pause reconnects and pays the handshake.
        assert el.connections_opened == 3 and tts.keepalive_requests == 0
        assert min(ttfbs[1:]) >= 30 + 150, ttfbs


async def test_a_synthesis_during_a_keep_warm_request_reuses_its_connection() -> None:
    # The first connection dies idle; the keep-warm request opens the next one (slowly):
    # the sentence due meanwhile waits for it instead of opening a third, cold one.
    async with FakeElevenLabs(
        api_key=KEY, speed=0, keepalive_timeout_s=0.1, new_connection_ms=400
    ) as el:
        tts = make_tts(el, keepalive_interval_s=0.3)
        try:
            await tts.warm()
            assert await el.wait_for(lambda: el.model_list_hits == 2, timeout_s=3.0)
            assert await collect(tts, "Here it is.")
        finally:
            await tts.aclose()
    assert el.connections_opened == 2
    assert len(el.requests) == 1 and el.requests[0].completed


async def test_closing_stops_the_keep_warm_requests() -> None:
    async with FakeElevenLabs(api_key=KEY, speed=0) as el:
        tts = make_tts(el, keepalive_interval_s=0.05)
        await tts.warm()
        assert await el.wait_for(lambda: el.model_list_hits >= 3)
        await tts.aclose()
        hits = el.model_list_hits
        await asyncio.sleep(0.2)
        assert el.model_list_hits == hits
    running = [t for t in asyncio.all_tasks() if t.get_name().startswith("elevenlabs-keep-warm")]
    assert running == []
    await tts.aclose()  # idempotent


async def test_no_keep_warm_task_without_a_request() -> None:
    async with FakeElevenLabs(api_key=KEY, speed=0) as el:
        tts = make_tts(el, keepalive_interval_s=0.05)
        await asyncio.sleep(0.2)
        await tts.aclose()
    assert el.model_list_hits == 0 and tts.keepalive_requests == 0


async def test_a_dead_kept_connection_is_retried_once_on_a_new_one() -> None:
    async with FakeElevenLabs(api_key=KEY, speed=0) as el:
        tts = make_tts(el)
        try:
            await tts.warm()
            el.drop_next()  # closed as the request arrived, as an idle connection can be
            chunks = await collect(tts, "Still here.")
            assert b"".join(chunks) == synthetic_speech_pcm16("Still here.", 24_000)
            el.drop_next(count=2)
            with pytest.raises(TTSError, match="failed while speaking"):
                await collect(tts, "Gone twice.")
        finally:
            await tts.aclose()
    assert [r.aborted for r in el.requests] == [True, False, True, True]
    assert el.requests[1].completed


def test_settings_validate_and_keep_the_key_out_of_repr() -> None:
    settings = ElevenLabsSettings(api_key="secret-key-123", voice_id=VOICE)
    assert "secret-key-123" not in repr(settings)
    assert settings.output_format == "pcm_24000"
    with pytest.raises(ValueError, match="API key"):
        ElevenLabsSettings(api_key="", voice_id=VOICE)
    with pytest.raises(ValueError, match="0..4"):
        ElevenLabsSettings(api_key="k", voice_id=VOICE, optimize_streaming_latency=5)
    assert settings.keepalive_interval_s == 15.0 and settings.keepalive_expiry_s == 300.0
    with pytest.raises(ValueError, match="must exceed"):
        ElevenLabsSettings(api_key="k", voice_id=VOICE, keepalive_expiry_s=10.0)
    with pytest.raises(ValueError, match="> 0"):
        ElevenLabsSettings(api_key="k", voice_id=VOICE, keepalive_interval_s=0)
    assert ElevenLabsSettings(api_key="k", voice_id=VOICE, keepalive_interval_s=None)
