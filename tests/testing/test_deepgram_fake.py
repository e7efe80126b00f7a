"""The fake Deepgram ``/v1/listen`` over a real socket, with a plain ``websockets`` client
(and once with the ``deepgram-sdk`` when it is installed)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from parley.testing.deepgram_fake import (
    BYTES_PER_S,
    FakeDeepgram,
    ScriptWord,
    script_from_text,
)

KEY = "dg-test-key"
AUTH = {"Authorization": f"Token {KEY}"}
LINEAR16 = "model=nova-3&encoding=linear16&sample_rate=16000"


def noise(ms: int, seed: int = 0) -> bytes:
    """``ms`` of seeded white noise as 16 kHz PCM16 (never a constant frame)."""
    rng = np.random.default_rng(seed)
    return rng.integers(-8000, 8000, size=ms * 16, dtype=np.int16).tobytes()


def silence(ms: int) -> bytes:
    return bytes(ms * 32)


async def send_audio(ws: Any, pcm: bytes, frame_ms: int = 20) -> None:
    step = frame_ms * 32
    for i in range(0, len(pcm), step):
        await ws.send(pcm[i : i + step])


async def read_until(
    ws: Any, stop: Callable[[dict[str, Any]], bool], timeout_s: float = 5.0
) -> list[dict[str, Any]]:
    """Messages up to and including the first one for which ``stop`` is true."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while not out or not stop(out[-1]):
            out.append(json.loads(await ws.recv()))
    return out


async def read_all(ws: Any, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """Every message until the server closes the connection."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        try:
            while True:
                out.append(json.loads(await ws.recv()))
        except ConnectionClosed:
            return out


def connect(dg: FakeDeepgram, query: str = LINEAR16, headers: dict[str, str] | None = None):
    return websockets.connect(
        f"{dg.url}/v1/listen?{query}", additional_headers=AUTH if headers is None else headers
    )


def finals(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "Results" and m["is_final"]]


def transcript(message: dict[str, Any]) -> str:
    return message["channel"]["alternatives"][0]["transcript"]


def words(message: dict[str, Any]) -> list[tuple[str, float, float]]:
    return [
        (w["word"], w["start"], w["end"]) for w in message["channel"]["alternatives"][0]["words"]
    ]


def test_script_from_text_spreads_words_evenly() -> None:
    script = script_from_text("Hello, there world.", 1.0, 1.6)
    assert script == [
        ScriptWord("hello", 1.0, 1.2, "Hello,"),
        ScriptWord("there", 1.2, 1.4, "there"),
        ScriptWord("world", 1.4, 1.6, "world."),
    ]
    assert [w.word for w in script_from_text("Don't — stop!", 0, 1)] == ["don't", "stop"]
    with pytest.raises(ValueError):
        script_from_text("x", 1.0, 1.0)


@pytest.mark.parametrize("headers", [{"Authorization": "Token wrong"}, {}, {"Authorization": KEY}])
async def test_bad_key_is_refused_with_401(headers: dict[str, str]) -> None:
    async with FakeDeepgram(api_key=KEY) as dg:
        with pytest.raises(InvalidStatus) as info:
            async with connect(dg, headers=headers):
                pass
        response = info.value.response
        assert response.status_code == 401
        body = json.loads(response.body)
        assert body["err_code"] == "INVALID_AUTH"
        assert body["err_msg"] == "Invalid credentials."
        assert body["request_id"]
        assert dg.connections == []
        assert dg.rejections == [(401, "INVALID_AUTH")]


@pytest.mark.parametrize(
    "query",
    [
        "encoding=linear16&sample_rate=16000",  # no model
        "model=nova-3&encoding=mulaw&sample_rate=8000",
        "model=nova-3&encoding=linear16",  # no sample_rate
        "model=nova-3&encoding=linear16&sample_rate=8000",
        "model=nova-3&channels=2",
        "model=nova-3&endpointing=soon",
    ],
)
async def test_bad_query_is_refused_with_400(query: str) -> None:
    async with FakeDeepgram() as dg:
        with pytest.raises(InvalidStatus) as info:
            async with connect(dg, query):
                pass
        assert info.value.response.status_code == 400
        assert json.loads(info.value.response.body)["err_code"] == "Bad Request"
        assert dg.connections == []


async def test_params_and_headers_are_recorded_bearer_accepted() -> None:
    query = f"{LINEAR16}&keyterm=Parley&keyterm=Acme%20Corp&keywords=foo:2&interim_results=true"
    async with FakeDeepgram() as dg, connect(dg, query, {"Authorization": f"Bearer {KEY}"}):
        assert await dg.wait_for(lambda: len(dg.connections) == 1)
        conn = dg.connections[0]
        assert conn.params == {
            "model": "nova-3",
            "encoding": "linear16",
            "sample_rate": "16000",
            "keyterm": ["Parley", "Acme Corp"],
            "keywords": ["foo:2"],
            "interim_results": "true",
        }
        assert conn.headers["authorization"] == f"Bearer {KEY}"
        assert conn.closed_by is None
        assert conn.offset_s == 0.0


async def test_interims_then_final_after_endpointing_silence() -> None:
    script = script_from_text("Hello there, world.", 0.5, 1.1)
    async with FakeDeepgram(script=script) as dg:
        query = f"{LINEAR16}&interim_results=true&endpointing=300&smart_format=true"
        async with connect(dg, query) as ws:
            await send_audio(ws, noise(2000))
            messages = await read_until(ws, lambda m: m.get("is_final") is True)
        interims = messages[:-1]
        final = messages[-1]
        assert interims, "no interim results before the final"
        assert all(m["type"] == "Results" and not m["is_final"] for m in interims)
        assert transcript(interims[0]) == "Hello"  # first interim at t=0.8 s: one word heard
        assert [transcript(m) for m in interims][-1] == "Hello there, world."
        assert final["speech_final"] is True and final["from_finalize"] is False
        assert transcript(final) == "Hello there, world."
        # endpointing: last word ends at 1.1 s, 300 ms of silence → final at t = 1.4 s
        assert (final["start"], final["duration"]) == (0.0, 1.4)
        assert words(final) == [("hello", 0.5, 0.7), ("there", 0.7, 0.9), ("world", 0.9, 1.1)]
        assert final["channel"]["alternatives"][0]["words"][1]["punctuated_word"] == "there,"
        assert final["metadata"]["request_id"] == dg.connections[0].request_id
        assert final["metadata"]["model_info"]["arch"] == "nova-3"


async def test_without_punctuation_transcript_is_lower_case_words() -> None:
    async with FakeDeepgram(script=script_from_text("Hello World!", 0.2, 0.6)) as dg:
        async with connect(dg) as ws:
            await send_audio(ws, noise(700))
            final = (await read_until(ws, lambda m: m.get("is_final") is True))[-1]
        assert transcript(final) == "hello world"
        assert "punctuated_word" not in final["channel"]["alternatives"][0]["words"][0]
        assert dg.connections[0].messages("Results") == [final]


@pytest.mark.parametrize("endpointing", ["10", "false"])
async def test_speech_started_and_utterance_end_once_per_utterance(endpointing: str) -> None:
    script = script_from_text("one two", 0.3, 0.7) + script_from_text("three", 2.5, 2.8)
    query = (
        f"{LINEAR16}&interim_results=true&vad_events=true&utterance_end_ms=1000"
        f"&endpointing={endpointing}"
    )
    async with FakeDeepgram(script=script) as dg:
        async with connect(dg, query) as ws:
            await send_audio(ws, noise(4500))
            await ws.send(json.dumps({"type": "CloseStream"}))
            messages = await read_all(ws)
    events = [
        (i, m["type"], m.get("timestamp", m.get("last_word_end")))
        for i, m in enumerate(messages)
        if m["type"] in ("SpeechStarted", "UtteranceEnd")
    ]
    # Without endpointing, UtteranceEnd alone separates the utterances.
    assert [e[1:] for e in events] == [
        ("SpeechStarted", 0.3),
        ("UtteranceEnd", 0.7),
        ("SpeechStarted", 2.5),
        ("UtteranceEnd", 2.8),
    ]
    speech_finals = [
        (i, transcript(m))
        for i, m in enumerate(messages)
        if m["type"] == "Results" and m["speech_final"]
    ]
    if endpointing == "false":  # only CloseStream finalizes the words
        assert speech_finals == [(len(messages) - 2, "one two three")]
        return
    assert [text for _, text in speech_finals] == ["one two", "three"]
    (first, _), (second, _) = speech_finals
    assert events[0][0] < first < events[1][0] < events[2][0] < second < events[3][0]


async def test_a_word_in_progress_holds_back_the_silence_final() -> None:
    async with FakeDeepgram(script=[ScriptWord("long", 0.5, 1.5)]) as dg, connect(dg) as ws:
        await send_audio(ws, silence(2600))
        messages = await read_until(ws, lambda m: m["start"] > 1.5)
    spans = [(m["start"], m["duration"], transcript(m)) for m in messages]
    assert spans == [(0.0, 1.52, "long"), (1.52, 1.0, "")]


async def test_finalize_gives_a_from_finalize_final() -> None:
    async with FakeDeepgram(script=[ScriptWord("hello", 0.2, 0.6)]) as dg:
        async with connect(dg, f"{LINEAR16}&endpointing=false") as ws:
            await send_audio(ws, noise(500))  # the word started but is not over yet
            await ws.send(json.dumps({"type": "Finalize"}))
            first = (await read_until(ws, lambda m: m.get("from_finalize") is True))[-1]
            await send_audio(ws, noise(100))
            await ws.send(json.dumps({"type": "Finalize"}))
            second = (await read_until(ws, lambda m: m.get("from_finalize") is True))[-1]
        assert first["is_final"] is True and first["speech_final"] is False
        assert words(first) == [("hello", 0.2, 0.6)]
        assert (first["start"], first["duration"]) == (0.0, 0.5)
        assert transcript(second) == ""  # "hello" is not finalized twice
        assert (second["start"], second["duration"]) == (0.5, 0.1)
        assert dg.connections[0].controls == ["Finalize", "Finalize"]


async def test_silence_is_finalized_every_second_of_audio() -> None:
    async with FakeDeepgram() as dg, connect(dg) as ws:
        await send_audio(ws, silence(3500))
        await ws.send(json.dumps({"type": "CloseStream"}))
        messages = await read_all(ws)
    spans = [
        (m["start"], m["duration"], m["speech_final"], transcript(m)) for m in finals(messages)
    ]
    assert spans == [
        (0.0, 1.0, False, ""),
        (1.0, 1.0, False, ""),
        (2.0, 1.0, False, ""),
        (3.0, 0.5, False, ""),  # CloseStream finalizes the rest
    ]


async def test_close_stream_sends_final_then_metadata_then_closes_1000() -> None:
    audio = noise(600)
    async with FakeDeepgram(script=[ScriptWord("hi", 0.2, 0.4)]) as dg:
        async with connect(dg, f"{LINEAR16}&endpointing=false") as ws:
            await send_audio(ws, audio)
            await ws.send(json.dumps({"type": "CloseStream"}))
            messages = await read_all(ws)
            assert ws.close_code == 1000
        assert [m["type"] for m in messages] == ["Results", "Metadata"]
        assert transcript(messages[0]) == "hi" and messages[0]["is_final"]
        metadata = messages[1]
        assert metadata["duration"] == 0.6
        assert metadata["sha256"] == hashlib.sha256(audio).hexdigest()
        assert metadata["transaction_key"] == "deprecated"
        assert metadata["channels"] == 1
        assert metadata["model_info"][metadata["models"][0]]["name"] == "general-nova-3"
        conn = dg.connections[0]
        assert (conn.closed_by, conn.close_code, conn.audio_bytes) == ("server", 1000, len(audio))
        assert conn.controls == ["CloseStream"]
        assert conn.sent == messages


async def test_keepalive_recorded_and_bad_control_gets_schema_error() -> None:
    async with FakeDeepgram() as dg, connect(dg) as ws:
        await ws.send(json.dumps({"type": "KeepAlive"}))
        await ws.send("not json")
        error = (await read_until(ws, lambda m: True))[0]
        assert error["type"] == "Error" and error["variant"] == "SchemaError"
        assert error["message"] == "not json"
        await send_audio(ws, silence(1000))  # the connection still works
        final = (await read_until(ws, lambda m: m["type"] == "Results"))[-1]
        assert final["is_final"] and final["duration"] == 1.0
        assert dg.connections[0].controls == ["KeepAlive"]


async def test_idle_connection_is_closed_with_net_0001_keepalive_prevents_it() -> None:
    async with FakeDeepgram(idle_timeout_s=0.5) as dg, connect(dg) as ws:
        for _ in range(8):  # 0.8 s kept alive
            await ws.send(json.dumps({"type": "KeepAlive"}))
            await asyncio.sleep(0.1)
        assert dg.connections[0].closed_by is None
        with pytest.raises(ConnectionClosedError):
            async with asyncio.timeout(2.0):
                await ws.recv()
        assert (ws.close_code, ws.close_reason) == (1011, "NET-0001")
        assert dg.connections[0].closed_by == "server"


async def test_drop_fault_aborts_without_close_frame_once() -> None:
    async with FakeDeepgram() as dg:
        dg.drop_after_audio_ms(500)
        async with connect(dg) as ws:
            with pytest.raises(ConnectionClosedError):
                await send_audio(ws, silence(3000))
                async with asyncio.timeout(2.0):
                    await ws.recv()
            assert ws.close_code == 1006  # abnormal: no close frame
        conn = dg.connections[0]
        assert conn.closed_by == "dropped"
        assert 500 * 32 <= conn.audio_bytes < 3000 * 32
        async with connect(dg) as ws:  # one-shot: the next connection is fine
            await send_audio(ws, silence(3000))
            await ws.send(json.dumps({"type": "CloseStream"}))
            assert (await read_all(ws))[-1]["type"] == "Metadata"


async def test_error_fault_sends_error_then_closes_1011_once() -> None:
    async with FakeDeepgram() as dg:
        dg.error_after_audio_ms(300, variant="INTERNAL_SERVER_ERROR", description="boom")
        async with connect(dg) as ws:
            await send_audio(ws, silence(1000))
            messages = await read_all(ws)
            assert ws.close_code == 1011
        assert messages == [
            {
                "type": "Error",
                "variant": "INTERNAL_SERVER_ERROR",
                "description": "boom",
                "code": "NET-0000",
            }
        ]
        assert dg.connections[0].closed_by == "server"
        async with connect(dg) as ws:
            await send_audio(ws, silence(1000))
            assert (await read_until(ws, lambda m: True))[0]["type"] == "Results"


async def test_reject_next_refuses_one_handshake() -> None:
    async with FakeDeepgram() as dg:
        dg.reject_next(503)
        with pytest.raises(InvalidStatus) as info:
            async with connect(dg):
                pass
        assert info.value.response.status_code == 503
        async with connect(dg):
            assert await dg.wait_for(lambda: len(dg.connections) == 1)
        assert dg.rejections == [(503, "REJECTED")]


async def test_closing_the_fake_closes_open_connections_with_1001() -> None:
    async with FakeDeepgram() as dg:
        ws = await connect(dg)
        assert await dg.wait_for(lambda: len(dg.connections) == 1)
        await dg.close()
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(2.0):
                await ws.recv()
        assert ws.close_code == 1001
        assert dg.connections[0].closed_by == "server"


async def test_reference_alignment_for_a_connection_starting_mid_recording() -> None:
    reference = silence(500) + noise(3500, seed=7)  # silent frames cannot be located
    script = script_from_text("Alpha beta.", 0.5, 1.0) + script_from_text("Gamma delta.", 2.5, 3.0)
    query = f"{LINEAR16}&punctuate=true"
    async with FakeDeepgram(script=script, reference_audio=reference) as dg:
        async with connect(dg, query) as ws:
            await send_audio(ws, reference[: 2 * BYTES_PER_S])
            first = (await read_until(ws, lambda m: bool(m.get("speech_final"))))[-1]
        # A "reconnect": 300 ms of silence, then the recording from 2.0 s on.
        async with connect(dg, query) as ws:
            await send_audio(ws, silence(300) + reference[2 * BYTES_PER_S :])
            await ws.send(json.dumps({"type": "CloseStream"}))
            second = [m for m in finals(await read_all(ws)) if transcript(m)]
    assert transcript(first) == "Alpha beta."
    assert dg.connections[0].offset_s == 0.0
    assert dg.connections[1].offset_s == pytest.approx(1.7)
    assert [transcript(m) for m in second] == ["Gamma delta."]
    # 2.5 s in the recording is 0.5 s after the resume point, plus 0.3 s of leading silence
    assert words(second[0]) == [("gamma", 0.8, 1.05), ("delta", 1.05, 1.3)]


async def test_unlocatable_audio_holds_results_back() -> None:
    reference = noise(1000, seed=1)
    async with FakeDeepgram(script=[ScriptWord("x", 0.1, 0.2)], reference_audio=reference) as dg:
        async with connect(dg) as ws:
            await send_audio(ws, noise(1500, seed=2))  # not from the reference
            await ws.send(json.dumps({"type": "CloseStream"}))
            messages = await read_all(ws)
        assert [transcript(m) for m in finals(messages)] == [""]
        assert dg.connections[0].offset_s is None


async def test_result_delay_keeps_order() -> None:
    async with FakeDeepgram(result_delay_ms=300) as dg, connect(dg) as ws:
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        await send_audio(ws, silence(2000))
        first = await read_until(ws, lambda m: True)
        assert loop.time() - sent_at >= 0.3
        second = await read_until(ws, lambda m: True)
        assert (first[0]["start"], second[0]["start"]) == (0.0, 1.0)


async def test_deepgram_sdk_talks_to_the_fake() -> None:
    pytest.importorskip("deepgram")
    from deepgram import AsyncDeepgramClient
    from deepgram.core.api_error import ApiError
    from deepgram.environment import DeepgramClientEnvironment

    script = script_from_text("Parley works.", 0.4, 0.8)
    audio = noise(1000)
    async with FakeDeepgram(api_key=KEY, script=script) as dg:
        environment = DeepgramClientEnvironment(
            base=dg.http_url, production=dg.url, agent=dg.url, agent_rest=dg.http_url
        )
        with pytest.raises(ApiError) as info:
            bad = AsyncDeepgramClient(api_key="wrong", environment=environment)
            async with bad.listen.v1.connect(model="nova-3"):
                pass
        assert info.value.status_code == 401
        client = AsyncDeepgramClient(api_key=KEY, environment=environment)
        async with client.listen.v1.connect(
            model="nova-3",
            encoding="linear16",
            sample_rate=16000,
            interim_results=True,
            smart_format=True,
            keyterm=["Parley", "Deepgram"],
        ) as socket:
            for i in range(0, len(audio), 640):
                await socket.send_media(audio[i : i + 640])
            await socket.send_keep_alive()
            await socket.send_finalize()
            await socket.send_close_stream()
            received = []
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(5.0):
                    while True:
                        received.append(await socket.recv())
        results = [m for m in received if getattr(m, "type", "") == "Results" and m.is_final]
        assert [(r.channel.alternatives[0].transcript, r.speech_final) for r in results] == [
            ("Parley works.", True),
            ("", False),  # the Finalize at 1.0 s
        ]
        assert results[1].from_finalize is True
        assert received[-1].type == "Metadata" and received[-1].duration == 1.0
        conn = dg.connections[0]
        assert conn.params["keyterm"] == ["Parley", "Deepgram"]
        assert conn.params["interim_results"] == "true"
        assert conn.headers["authorization"] == f"Token {KEY}"
        assert conn.controls == ["KeepAlive", "Finalize", "CloseStream"]
        assert conn.closed_by == "server" and conn.close_code == 1000


async def test_realignment_after_silence_places_each_utterance_where_it_is_played() -> None:
    # Two utterances of one recording, played with pauses unlike the recording's.
    one, two = noise(1000, seed=3), noise(1000, seed=4)
    reference = one + silence(500) + two
    script = script_from_text("Alpha beta.", 0.2, 0.8) + script_from_text("Gamma delta.", 1.7, 2.3)
    query = f"{LINEAR16}&punctuate=true&endpointing=300"
    async with FakeDeepgram(
        script=script, reference_audio=reference, realign_after_silence_ms=400
    ) as dg:
        async with connect(dg, query) as ws:
            await send_audio(ws, silence(200) + one + silence(3000) + two + silence(1000))
            await ws.send(json.dumps({"type": "CloseStream"}))
            spoken = [m for m in finals(await read_all(ws)) if transcript(m)]
    assert [transcript(m) for m in spoken] == ["Alpha beta.", "Gamma delta."]
    assert all(m["speech_final"] for m in spoken)
    # "gamma" starts 0.2 s into the second utterance, which is played from 4.2 s on.
    assert words(spoken[0])[0] == ("alpha", 0.4, 0.7)
    assert words(spoken[1]) == [("gamma", 4.4, 4.7), ("delta", 4.7, 5.0)]
    assert dg.connections[0].offset_s == pytest.approx(1.5 - 4.2)


async def test_without_realignment_a_longer_pause_misplaces_the_second_utterance() -> None:
    one, two = noise(1000, seed=3), noise(1000, seed=4)
    reference = one + silence(500) + two
    script = script_from_text("Alpha beta.", 0.2, 0.8) + script_from_text("Gamma delta.", 1.7, 2.3)
    async with FakeDeepgram(script=script, reference_audio=reference) as dg:
        async with connect(dg, f"{LINEAR16}&punctuate=true") as ws:
            await send_audio(ws, one + silence(3000) + two)
            await ws.send(json.dumps({"type": "CloseStream"}))
            spoken = [m for m in finals(await read_all(ws)) if transcript(m)]
    # The second utterance's words are "heard" in the pause, where the recording has them.
    assert words(spoken[-1])[0] == ("gamma", 1.7, 2.0)
