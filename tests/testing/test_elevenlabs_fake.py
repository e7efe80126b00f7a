"""The fake ElevenLabs TTS server, over real sockets: raw HTTP, the stream-input WebSocket and
the official ``elevenlabs`` SDK (skipped when the SDK is not installed)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import aiohttp
import httpx
import numpy as np
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from parley.testing.elevenlabs_fake import (
    MODELS,
    PCM_FORMATS,
    FakeElevenLabs,
    char_alignment,
    samples_per_char,
    synthetic_speech_pcm16,
)

KEY = "el-test-key"
AUTH = {"xi-api-key": KEY}
PCM24 = {"output_format": "pcm_24000"}
STREAM = "/v1/text-to-speech/voice-1/stream"
TEXT = "Hello there, this is a test."


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def rms(pcm: bytes) -> float:
    return float(np.sqrt(np.mean(samples(pcm) ** 2))) if pcm else 0.0


@pytest.fixture
async def el():
    async with FakeElevenLabs(api_key=KEY, speed=0) as fake:
        yield fake


@pytest.fixture
async def http(el: FakeElevenLabs):
    async with httpx.AsyncClient(base_url=el.url, headers=AUTH, timeout=10.0) as client:
        yield client


async def read_stream(
    client: httpx.AsyncClient, text: str = TEXT, **params: Any
) -> tuple[httpx.Response, bytes]:
    async with client.stream(
        "POST", STREAM, params={**PCM24, **params}, json={"text": text}
    ) as response:
        return response, await response.aread()


# ---------------------------------------------------------------- synthetic audio


def test_synthetic_speech_is_deterministic_non_silent_and_65ms_per_char() -> None:
    audio = synthetic_speech_pcm16("Hello there", 24000)
    assert audio == synthetic_speech_pcm16("Hello there", 24000)
    assert samples_per_char(24000) == 1560
    assert len(audio) == 11 * 1560 * 2
    hello, gap, there = audio[: 5 * 3120], audio[5 * 3120 : 6 * 3120], audio[6 * 3120 :]
    assert rms(hello) > 1500 and rms(there) > 1500  # clearly audible words...
    assert rms(gap) == 0.0  # ...separated by silence
    assert np.abs(samples(audio)).max() < 0.35 * 32768  # no clipping
    assert hello != there  # each word has its own pitch
    for name, rate in PCM_FORMATS.items():
        pcm = synthetic_speech_pcm16(TEXT, rate)
        assert len(pcm) / 2 / rate == pytest.approx(len(TEXT) * 0.065, rel=0.01), name
    assert len(synthetic_speech_pcm16(TEXT * 2, 16000)) == 2 * len(
        synthetic_speech_pcm16(TEXT, 16000)
    )


def test_char_alignment_of_tiling_chunks_covers_every_char_once() -> None:
    total = len(TEXT) * samples_per_char(24000)
    chunks = [char_alignment(TEXT, 24000, s, min(total, s + 960)) for s in range(0, total, 960)]
    assert "".join(c for a in chunks for c in a["chars"]) == TEXT
    for start, alignment in zip(range(0, total, 960), chunks, strict=True):
        assert all(0 <= t < 40 for t in alignment["charStartTimesMs"])
        assert alignment["charDurationsMs"] == [65] * len(alignment["chars"])
        assert len(alignment["charStartTimesMs"]) == len(alignment["chars"])
        if alignment["chars"]:  # the first char whose audio starts at or after the chunk's
            first = -(-start // samples_per_char(24000))
            assert alignment["chars"][0] == TEXT[first]


# ---------------------------------------------------------------- HTTP errors


async def test_missing_or_wrong_api_key_is_401(el: FakeElevenLabs) -> None:
    async with httpx.AsyncClient(base_url=el.url) as client:
        for headers in ({}, {"xi-api-key": "wrong"}):
            response = await client.post(STREAM, params=PCM24, json={"text": TEXT}, headers=headers)
            assert response.status_code == 401
            assert response.json() == {
                "detail": {"status": "invalid_api_key", "message": "Invalid API key"}
            }
    assert [r.status for r in el.requests] == [401, 401]
    assert all(r.bytes_sent == 0 and not r.completed for r in el.requests)


async def test_default_mp3_output_format_is_422(http: httpx.AsyncClient) -> None:
    response = await http.post(STREAM, json={"text": TEXT})  # no output_format: mp3_44100_128
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["status"] == "invalid_output_format"
    assert "mp3_44100_128" in detail["message"] and "PCM" in detail["message"]
    response = await http.post(STREAM, params={"output_format": "ulaw_8000"}, json={"text": "x"})
    assert response.status_code == 422


async def test_unknown_model_is_400_model_not_found(http: httpx.AsyncClient) -> None:
    body = {"text": TEXT, "model_id": "eleven_v9_imaginary"}
    response = await http.post(STREAM, params=PCM24, json=body)
    assert response.status_code == 400
    assert response.json()["detail"]["status"] == "model_not_found"


@pytest.mark.parametrize(
    ("params", "content"),
    [
        ({}, json.dumps({"text": ""})),
        ({}, json.dumps({"text": "   "})),
        ({}, json.dumps({"model_id": "eleven_turbo_v2_5"})),
        ({}, "{not json"),
        ({"optimize_streaming_latency": "7"}, json.dumps({"text": TEXT})),
        ({"optimize_streaming_latency": "fast"}, json.dumps({"text": TEXT})),
        ({}, json.dumps({"text": TEXT, "voice_settings": "calm"})),
    ],
)
async def test_invalid_requests_are_422(
    http: httpx.AsyncClient, params: dict[str, str], content: str
) -> None:
    headers = {"content-type": "application/json"}
    response = await http.post(STREAM, params={**PCM24, **params}, content=content, headers=headers)
    assert response.status_code == 422, response.text
    assert "message" in response.json()["detail"]


async def test_unknown_voice_is_404_when_voices_are_listed() -> None:
    async with (
        FakeElevenLabs(voices={"rachel"}, speed=0) as el,
        httpx.AsyncClient(base_url=el.url, headers=AUTH) as client,
    ):
        url = "/v1/text-to-speech/{}/stream"
        response = await client.post(url.format("nobody"), params=PCM24, json={"text": TEXT})
        assert response.status_code == 404
        assert response.json()["detail"]["status"] == "voice_not_found"
        response = await client.post(url.format("rachel"), params=PCM24, json={"text": TEXT})
        assert response.status_code == 200


# ---------------------------------------------------------------- audio streaming


async def test_stream_sends_the_synthetic_audio_chunked(
    el: FakeElevenLabs, http: httpx.AsyncClient
) -> None:
    settings = {"stability": 0.5, "similarity_boost": 0.75}
    body = {"text": TEXT, "model_id": "eleven_flash_v2_5", "voice_settings": settings}
    params = {**PCM24, "optimize_streaming_latency": "3", "enable_logging": "false"}
    async with http.stream("POST", STREAM, params=params, json=body) as response:
        audio = await response.aread()
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/pcm"
    assert response.headers["transfer-encoding"] == "chunked"
    assert audio == synthetic_speech_pcm16(TEXT, 24000)
    assert rms(audio) > 1000
    (rec,) = el.requests
    assert (rec.voice_id, rec.model_id, rec.text, rec.status) == (
        "voice-1",
        "eleven_flash_v2_5",
        TEXT,
        200,
    )
    assert rec.query == params and rec.voice_settings == settings
    assert rec.headers["xi-api-key"] == KEY
    assert rec.completed and not rec.cancelled and not rec.aborted
    assert rec.bytes_sent == rec.total_bytes == len(audio)
    assert rec.started_at <= rec.first_byte_at <= rec.ended_at  # type: ignore[operator]


async def test_default_model_and_other_rates(el: FakeElevenLabs, http: httpx.AsyncClient) -> None:
    _, audio = await read_stream(http, output_format="pcm_16000")
    assert audio == synthetic_speech_pcm16(TEXT, 16000)
    _, audio = await read_stream(http, output_format="pcm_44100")
    assert audio == synthetic_speech_pcm16(TEXT, 44100)
    assert [r.model_id for r in el.requests] == ["eleven_multilingual_v2"] * 2


async def test_http_chunks_are_even_and_hold_chunk_ms_of_audio() -> None:
    async with (
        FakeElevenLabs(chunk_ms=25, speed=0) as el,
        aiohttp.ClientSession(headers=AUTH) as session,
        session.post(
            el.url + STREAM, params={"output_format": "pcm_22050"}, json={"text": TEXT}
        ) as response,
    ):
        assert response.status == 200
        chunks, current = [], b""
        async for data, end_of_http_chunk in response.content.iter_chunks():
            current += data
            if end_of_http_chunk:
                chunks.append(current)
                current = b""
    per_chunk = 2 * round(22050 * 0.025)
    assert b"".join(chunks) == synthetic_speech_pcm16(TEXT, 22050)
    assert len(chunks) > 10
    assert all(len(c) == per_chunk for c in chunks[:-1])
    assert all(len(c) % 2 == 0 and 0 < len(c) <= per_chunk for c in chunks)


async def test_ttfb_is_respected() -> None:
    async with (
        FakeElevenLabs(ttfb_ms=250, speed=0) as el,
        httpx.AsyncClient(base_url=el.url, headers=AUTH) as client,
    ):
        start, first = time.monotonic(), 0.0
        async with client.stream("POST", STREAM, params=PCM24, json={"text": TEXT}) as response:
            async for _ in response.aiter_bytes():
                first = first or time.monotonic() - start
    assert first >= 0.25 * 0.9
    (rec,) = el.requests
    assert rec.first_byte_at is not None and rec.first_byte_at - rec.started_at >= 0.25 * 0.9


async def test_stream_is_paced_at_speed_times_real_time() -> None:
    async with (
        FakeElevenLabs(speed=4.0) as el,
        httpx.AsyncClient(base_url=el.url, headers=AUTH) as client,
    ):
        start = time.monotonic()
        _, audio = await read_stream(client)
        elapsed = time.monotonic() - start
    duration_s = len(audio) / 2 / 24000  # 1.82 s of audio
    last_chunk_s = 0.04
    assert elapsed >= (duration_s - last_chunk_s) / 4.0 * 0.9
    (rec,) = el.requests
    assert rec.ended_at is not None and rec.first_byte_at is not None
    assert rec.ended_at - rec.first_byte_at >= (duration_s - last_chunk_s) / 4.0 * 0.9


# ---------------------------------------------------------------- faults


async def test_fail_next_answers_errors_then_recovers(
    el: FakeElevenLabs, http: httpx.AsyncClient
) -> None:
    el.fail_next(503, count=2)
    for _ in range(2):
        response, body = await read_stream(http)
        assert response.status_code == 503
        assert json.loads(body)["detail"]["status"] == "injected_fault"
    response, audio = await read_stream(http)
    assert response.status_code == 200 and audio == synthetic_speech_pcm16(TEXT, 24000)

    el.fail_next(429, body={"detail": {"status": "quota_exceeded", "message": "no credits"}})
    bad_key = await http.post(
        STREAM, params=PCM24, json={"text": TEXT}, headers={"xi-api-key": "x"}
    )
    assert bad_key.status_code == 401  # authentication comes first and keeps the fault armed
    response, body = await read_stream(http)
    assert response.status_code == 429
    assert json.loads(body) == {"detail": {"status": "quota_exceeded", "message": "no credits"}}
    assert [r.status for r in el.requests] == [503, 503, 200, 401, 429]
    assert (await read_stream(http))[0].status_code == 200


async def test_break_after_bytes_resets_the_connection_once(
    el: FakeElevenLabs, http: httpx.AsyncClient
) -> None:
    el.break_after_bytes(5000)
    received = b""
    with pytest.raises(httpx.TransportError):
        async with http.stream("POST", STREAM, params=PCM24, json={"text": TEXT}) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_bytes():
                received += chunk
    expected = synthetic_speech_pcm16(TEXT, 24000)
    assert len(received) <= 5000 and received == expected[: len(received)]
    rec = el.requests[0]
    assert rec.aborted and rec.bytes_sent == 5000 < rec.total_bytes
    assert not rec.completed and not rec.cancelled
    response, audio = await read_stream(http)  # one-shot: the next stream is whole
    assert response.status_code == 200 and audio == expected
    assert not el.requests[1].aborted


async def test_stall_next_delays_the_first_byte_once(
    el: FakeElevenLabs, http: httpx.AsyncClient
) -> None:
    el.stall_next(0.3)
    start, first = time.monotonic(), 0.0
    async with http.stream("POST", STREAM, params=PCM24, json={"text": TEXT}) as response:
        async for _ in response.aiter_bytes():
            first = first or time.monotonic() - start
    assert first >= 0.3 * 0.9
    response, audio = await read_stream(http)
    assert audio == synthetic_speech_pcm16(TEXT, 24000)
    assert [r.stall_s for r in el.requests] == [0.3, 0.0]
    stalled = el.requests[0]
    assert stalled.first_byte_at is not None and stalled.first_byte_at - stalled.started_at >= 0.27


# ---------------------------------------------------------------- cancellation and connections


async def test_client_closing_mid_stream_is_recorded_as_cancelled() -> None:
    text = "This sentence is long enough to take about four seconds to speak aloud."
    async with (
        FakeElevenLabs(speed=1.0) as el,
        httpx.AsyncClient(base_url=el.url, headers=AUTH, timeout=10.0) as client,
    ):
        async with client.stream("POST", STREAM, params=PCM24, json={"text": text}) as response:
            got = 0
            async for chunk in response.aiter_bytes():
                got += len(chunk)
                if got >= 4 * 1920:
                    break
        # Leaving the block closes the half-read response, and with it the connection.
        rec = el.requests[0]
        assert await el.wait_for(lambda: rec.ended_at is not None, timeout_s=2.0)
    assert rec.cancelled and not rec.completed
    assert 0 < rec.bytes_sent < rec.total_bytes


async def test_client_leaving_before_the_first_byte_is_cancelled() -> None:
    async with (
        FakeElevenLabs(ttfb_ms=3000) as el,
        httpx.AsyncClient(base_url=el.url, headers=AUTH, timeout=0.2) as client,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await read_stream(client)
        rec = el.requests[0]
        assert await el.wait_for(lambda: rec.ended_at is not None, timeout_s=2.0)
    assert rec.cancelled and rec.bytes_sent == 0 and rec.first_byte_at is None


async def test_sequential_requests_reuse_one_connection(
    el: FakeElevenLabs, http: httpx.AsyncClient
) -> None:
    assert (await http.get("/v1/models")).status_code == 200  # warm the connection
    for _ in range(2):
        response, _ = await read_stream(http)
        assert response.status_code == 200
    assert el.connections_opened == 1
    assert el.requests[0].peer == el.requests[1].peer
    async with httpx.AsyncClient(base_url=el.url, headers=AUTH) as other:
        await read_stream(other)
    assert el.connections_opened == 2


async def test_models_list(el: FakeElevenLabs, http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/models")
    assert response.status_code == 200
    models = {m["model_id"]: m for m in response.json()}
    assert set(models) == set(MODELS)
    turbo = models["eleven_turbo_v2_5"]
    assert turbo["name"] == "Eleven Turbo v2.5" and turbo["can_do_text_to_speech"] is True
    assert (await http.get("/v1/models", headers={"xi-api-key": "nope"})).status_code == 401
    assert el.model_list_hits == 2


# ---------------------------------------------------------------- the official SDK


@pytest.fixture
def sdk() -> Any:
    return pytest.importorskip("elevenlabs")


async def test_sdk_streams_pcm_over_one_connection(sdk: Any, el: FakeElevenLabs) -> None:
    async with httpx.AsyncClient(timeout=10.0) as transport:
        client = sdk.AsyncElevenLabs(api_key=KEY, base_url=el.url, httpx_client=transport)
        models = await client.models.list()
        assert "eleven_turbo_v2_5" in {m.model_id for m in models}
        for _ in range(2):
            chunks = [
                chunk
                async for chunk in client.text_to_speech.stream(
                    "voice-1",
                    text=TEXT,
                    model_id="eleven_turbo_v2_5",
                    output_format="pcm_24000",
                    optimize_streaming_latency=3,
                    voice_settings=sdk.VoiceSettings(stability=0.4, similarity_boost=0.8),
                )
            ]
            assert b"".join(chunks) == synthetic_speech_pcm16(TEXT, 24000)
    rec = el.requests[-1]
    assert rec.query == {"optimize_streaming_latency": "3", "output_format": "pcm_24000"}
    assert rec.model_id == "eleven_turbo_v2_5" and rec.text == TEXT and rec.completed
    assert rec.voice_settings is not None and rec.voice_settings["stability"] == 0.4
    assert rec.headers["xi-api-key"] == KEY
    assert rec.headers["user-agent"].startswith("elevenlabs/")
    assert el.connections_opened == 1


async def test_sdk_sees_api_errors(sdk: Any, el: FakeElevenLabs) -> None:
    from elevenlabs.core.api_error import ApiError

    async def stream(client: Any, **kwargs: Any) -> bytes:
        return b"".join([c async for c in client.text_to_speech.stream("voice-1", **kwargs)])

    async with httpx.AsyncClient(timeout=10.0) as transport:
        wrong = sdk.AsyncElevenLabs(api_key="wrong", base_url=el.url, httpx_client=transport)
        with pytest.raises(ApiError) as caught:
            await stream(wrong, text=TEXT, output_format="pcm_24000")
        assert caught.value.status_code == 401
        client = sdk.AsyncElevenLabs(api_key=KEY, base_url=el.url, httpx_client=transport)
        with pytest.raises(ApiError) as caught:
            await stream(client, text=TEXT)  # the SDK's default output format is mp3
        assert caught.value.status_code == 422
        el.fail_next(500)
        with pytest.raises(ApiError) as caught:
            await stream(client, text=TEXT, output_format="pcm_24000")
        assert caught.value.status_code == 500
    assert [r.status for r in el.requests] == [401, 422, 500]  # streams are not retried


# ---------------------------------------------------------------- stream-input WebSocket


def ws_url(el: FakeElevenLabs, **query: str) -> str:
    query = {"model_id": "eleven_turbo_v2_5", "output_format": "pcm_24000", **query}
    return f"{el.ws_url}/v1/text-to-speech/voice-1/stream-input?" + "&".join(
        f"{k}={v}" for k, v in query.items()
    )


def init_message(schedule: list[int], **extra: Any) -> str:
    config = {"chunk_length_schedule": schedule}
    settings = {"stability": 0.5, "similarity_boost": 0.8}
    return json.dumps(
        {"text": " ", "voice_settings": settings, "generation_config": config, **extra}
    )


async def receive_until(ws: Any, done: Any, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """Receive JSON messages until ``done(messages)`` is true."""
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while not done(messages):
            messages.append(json.loads(await ws.recv()))
    return messages


def spoken(messages: list[dict[str, Any]]) -> str:
    return "".join(c for m in messages if m.get("audio") for c in m["alignment"]["chars"])


def audio_of(messages: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(m["audio"]) for m in messages if m.get("audio"))


async def test_stream_input_buffers_until_flush_then_ends_with_is_final(
    el: FakeElevenLabs,
) -> None:
    async with websockets.connect(ws_url(el), additional_headers=AUTH) as ws:
        await ws.send(init_message([120, 160, 250, 290]))
        await ws.send(json.dumps({"text": "Hello there. ", "try_trigger_generation": False}))
        with pytest.raises(TimeoutError):  # 13 characters are below the 120 threshold
            async with asyncio.timeout(0.3):
                await ws.recv()
        await ws.send(json.dumps({"text": "How are you? ", "flush": True}))
        first = "Hello there. How are you? "
        size = len(synthetic_speech_pcm16(first, 24000))
        messages = await receive_until(ws, lambda ms: len(audio_of(ms)) == size)
        await ws.send(json.dumps({"text": "Fine. "}))
        await ws.send(json.dumps({"text": ""}))
        rest = await receive_until(ws, lambda ms: ms and ms[-1].get("isFinal") is True)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1000
    assert audio_of(messages) == synthetic_speech_pcm16(first, 24000)
    assert audio_of(rest) == synthetic_speech_pcm16("Fine. ", 24000)
    assert spoken(messages + rest) == first + "Fine. "
    for message in messages + rest[:-1]:
        assert message["isFinal"] is None
        assert message["normalizedAlignment"] == message["alignment"]
        assert len(base64.b64decode(message["audio"])) <= 1920
    assert rest[-1] == {"isFinal": True}
    (session,) = el.sessions
    assert session.generations == [first, "Fine. "]
    assert session.model_id == "eleven_turbo_v2_5" and session.status == 101
    assert session.voice_settings == {"stability": 0.5, "similarity_boost": 0.8}
    assert len(session.messages) == 5 and session.messages[-1] == {"text": ""}
    assert session.completed and session.close_code == 1000 and not session.cancelled
    assert session.bytes_sent == len(audio_of(messages + rest))


async def test_stream_input_follows_the_chunk_length_schedule(el: FakeElevenLabs) -> None:
    pieces = [f"Piece number {i:02d} ok. " for i in range(14)]  # 20 characters each
    async with websockets.connect(ws_url(el, output_format="pcm_16000")) as ws:
        await ws.send(init_message([50, 100], xi_api_key=KEY))  # key in the first message
        for piece in pieces:
            await ws.send(json.dumps({"text": piece}))
        await ws.send(json.dumps({"text": ""}))
        messages = await receive_until(ws, lambda ms: ms and ms[-1].get("isFinal") is True)
    # 60 chars reach 50; then 100 (the last value repeats); the rest goes at end of input.
    expected = ["".join(pieces[0:3]), "".join(pieces[3:8]), "".join(pieces[8:13]), pieces[13]]
    assert el.sessions[0].generations == expected
    assert el.sessions[0].chunk_length_schedule == [50, 100]
    assert spoken(messages) == "".join(pieces)
    assert audio_of(messages) == b"".join(synthetic_speech_pcm16(g, 16000) for g in expected)


async def test_stream_input_auth_and_validation(el: FakeElevenLabs) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with websockets.connect(ws_url(el), additional_headers={"xi-api-key": "bad"}):
            pass
    assert caught.value.response.status_code == 401
    for query, status in (({"output_format": "mp3_44100_128"}, 422), ({"model_id": "x"}, 400)):
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(ws_url(el, **query), additional_headers=AUTH):
                pass
        assert caught.value.response.status_code == status
    async with websockets.connect(ws_url(el)) as ws:  # no header and no key in the message
        await ws.send(init_message([120]))
        error = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1008
    assert error == {"message": "Invalid API key", "error": "invalid_api_key", "code": 1008}
    assert [s.status for s in el.sessions] == [401, 422, 400, 101]
    assert el.sessions[-1].error == "invalid_api_key" and not el.sessions[-1].generations


async def test_stream_input_client_leaving_is_recorded_as_cancelled() -> None:
    async with FakeElevenLabs(speed=1.0) as el:
        async with websockets.connect(ws_url(el), additional_headers=AUTH) as ws:
            await ws.send(init_message([120]))
            await ws.send(json.dumps({"text": TEXT * 2, "flush": True}))
            await receive_until(ws, lambda ms: len(ms) >= 2)
        session = el.sessions[0]
        assert await el.wait_for(lambda: session.ended_at is not None, timeout_s=2.0)
    assert session.cancelled and not session.completed and not session.end_of_input
    assert 0 < session.bytes_sent < len(synthetic_speech_pcm16(TEXT * 2, 24000))
