"""DeepgramSTT (the real ``deepgram-sdk``) against the local fake Deepgram live server.

The fake transcribes from a word script timed against the audio it receives, so the audio
here is synthetic: noise bursts where the script says words are, silence elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
import pytest

from parley.agents.voice.messages import STTMessage, STTNotice, Transcript
from parley.agents.voice.stt.base import STTError
from parley.agents.voice.stt.deepgram import DeepgramSettings, DeepgramStream, DeepgramSTT
from parley.testing.deepgram_fake import FakeDeepgram, script_from_text

KEY = "dg-test-key-5678"
RATE = 16_000
FRAME = 640  # 20 ms


_rng = np.random.default_rng(7)


def tone(seconds: float) -> bytes:
    """A noise burst standing in for speech: never repeats, so the fake can locate resent
    audio in the reference recording by its bytes."""
    return (_rng.normal(0, 3000, int(seconds * RATE))).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * RATE) * 2)


def settings(dg: FakeDeepgram, **overrides: object) -> DeepgramSettings:
    options: dict[str, object] = {"api_key": KEY, "url": dg.url, "reconnect_backoff_s": 0.05}
    options.update(overrides)
    return DeepgramSettings(**options)  # type: ignore[arg-type]


class Reader:
    """Collects everything the stream yields, in a task."""

    def __init__(self, stream: DeepgramStream) -> None:
        self.items: list[STTMessage] = []
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._run(stream))

    async def _run(self, stream: AsyncIterator[STTMessage]) -> None:
        try:
            async for item in stream:
                self.items.append(item)
        except STTError as exc:
            self.error = exc

    def finals(self) -> list[Transcript]:
        return [i for i in self.items if isinstance(i, Transcript) and i.is_final]

    def notices(self, kind: str) -> list[STTNotice]:
        return [i for i in self.items if isinstance(i, STTNotice) and i.kind == kind]

    def final_text(self) -> str:
        return " ".join(t.text for t in self.finals() if t.text)

    async def wait(self, predicate, timeout_s: float = 5.0) -> None:  # noqa: ANN001
        async def poll() -> None:
            while not predicate(self):
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), timeout_s)


async def send(stream: DeepgramStream, audio: bytes, *, pace_s: float = 0.001) -> None:
    for i in range(0, len(audio), FRAME):
        await stream.push_audio(audio[i : i + FRAME])
        await asyncio.sleep(pace_s)


@contextlib.asynccontextmanager
async def opened(
    dg: FakeDeepgram, **overrides: object
) -> AsyncIterator[tuple[DeepgramStream, Reader]]:
    stream = await DeepgramSTT(settings(dg, **overrides)).open_stream()
    assert isinstance(stream, DeepgramStream)
    reader = Reader(stream)
    try:
        yield stream, reader
    finally:
        await stream.aclose()
        await asyncio.wait_for(reader.task, 5)


async def test_the_connection_carries_the_agents_settings_and_the_key() -> None:
    async with FakeDeepgram(api_key=KEY) as dg:
        async with opened(
            dg,
            model="nova-3",
            language="en-GB",
            endpointing_ms=250,
            utterance_end_ms=1200,
            keyterms=("Sarah Johnson", "Metformin"),
        ):
            pass
        async with opened(dg, model="nova-2", keyterms=("Sarah Johnson",), endpointing_ms=None):
            pass
    first, second = dg.connections
    assert first.headers["authorization"] == f"Token {KEY}"
    assert {
        k: first.params[k]
        for k in (
            "model",
            "language",
            "encoding",
            "sample_rate",
            "channels",
            "interim_results",
            "endpointing",
            "utterance_end_ms",
            "vad_events",
            "smart_format",
        )
    } == {
        "model": "nova-3",
        "language": "en-GB",
        "encoding": "linear16",
        "sample_rate": "16000",
        "channels": "1",
        "interim_results": "true",
        "endpointing": "250",
        "utterance_end_ms": "1200",
        "vad_events": "true",
        "smart_format": "true",
    }
    assert first.params["keyterm"] == ["Sarah Johnson", "Metformin"]
    # Older models take keywords instead of Nova-3's keyterm.
    assert second.params["keywords"] == ["Sarah Johnson"] and "keyterm" not in second.params
    assert second.params["endpointing"] == "false"


async def test_partials_then_a_speech_final_with_call_audio_times() -> None:
    audio = silence(0.4) + tone(1.6) + silence(0.8)
    async with FakeDeepgram(api_key=KEY) as dg:
        dg.set_script(script_from_text("Hello, I need to move my appointment.", 0.45, 1.95))
        async with opened(dg) as (stream, reader):
            await send(stream, audio)
            await reader.wait(lambda r: any(t.speech_final for t in r.finals()))
    partials = [i for i in reader.items if isinstance(i, Transcript) and not i.is_final]
    assert partials and all(p.text for p in partials)
    assert partials[0].text != partials[-1].text  # they grow as the words arrive
    final = next(t for t in reader.finals() if t.speech_final)
    assert final.text == "Hello, I need to move my appointment."
    assert final.start_ms is not None and final.end_ms is not None
    assert final.start_ms < 450 and 1950 <= final.end_ms <= 2600
    assert reader.notices("speech_started")


async def test_finalize_sends_finalize_and_its_answer_is_the_speech_final() -> None:
    audio = silence(0.3) + tone(1.2)
    async with FakeDeepgram(api_key=KEY) as dg:
        dg.set_script(script_from_text("Patient ID P1001", 0.35, 1.45))
        # Deepgram's own endpointing off: only the platform's Finalize ends the utterance.
        async with opened(dg, endpointing_ms=None) as (stream, reader):
            await send(stream, audio)
            await stream.finalize()
            await reader.wait(lambda r: any(t.speech_final for t in r.finals()))
    assert dg.connections[0].controls[0] == "Finalize"
    final = next(t for t in reader.finals() if t.speech_final)
    assert final.text == "Patient ID P1001"
    answer = dg.connections[0].messages("Results")
    assert any(m.get("from_finalize") for m in answer)


async def test_keepalive_goes_out_only_while_no_audio_is_sent() -> None:
    async with FakeDeepgram(api_key=KEY) as dg:
        async with opened(dg, keepalive_interval_s=0.2) as (stream, _reader):
            await send(stream, silence(0.6), pace_s=0.02)  # audio flowing: no KeepAlive
            flowing = list(dg.connections[0].controls)
            await asyncio.sleep(0.75)  # the caller's audio stops (agent speaking, muted mic)
            paused = list(dg.connections[0].controls)
    assert "KeepAlive" not in flowing
    assert paused.count("KeepAlive") >= 2


async def test_hangup_sends_closestream_and_reports_metadata() -> None:
    async with FakeDeepgram(api_key=KEY) as dg:
        dg.set_script(script_from_text("Goodbye", 0.2, 0.6))
        async with opened(dg) as (stream, reader):
            await send(stream, silence(0.1) + tone(0.6))
    connection = dg.connections[0]
    assert connection.controls[-1] == "CloseStream"
    assert connection.closed_by == "server"  # Deepgram closes after its Metadata
    metadata = reader.notices("metadata")
    assert metadata and metadata[0].data["duration_ms"] == pytest.approx(700, abs=25)
    # The words still pending at hang-up came back as a final before the stream ended.
    assert reader.final_text() == "Goodbye"
    assert reader.error is None


async def test_a_dropped_connection_reconnects_and_resends_unacknowledged_audio() -> None:
    # Utterance A is finalized (acknowledged) before the drop; B is cut in the middle.
    audio = silence(0.3) + tone(0.9) + silence(0.7) + tone(1.3) + silence(0.8)
    words_a = script_from_text("I would like to book", 0.35, 1.15)
    words_b = script_from_text("an appointment with Doctor Smith", 1.95, 3.15)
    async with FakeDeepgram(api_key=KEY) as dg:
        dg.set_script(words_a + words_b)
        dg.set_reference_audio(audio)
        dg.drop_after_audio_ms(2500)
        async with opened(dg) as (stream, reader):
            await send(stream, audio)
            await stream.finalize()
            await reader.wait(
                lambda r: "Doctor Smith" in r.final_text() and r.notices("reconnected")
            )
    assert [c.closed_by for c in dg.connections] == ["dropped", "server"]
    # No word lost, none repeated.
    assert reader.final_text() == "I would like to book an appointment with Doctor Smith"
    notice = reader.notices("reconnected")[0].data
    assert notice["connection"] == 2
    # Only audio after A's final was resent: the second connection starts inside the pause.
    assert 1150 <= notice["from_audio_ms"] <= 1950
    second = dg.connections[1]
    assert second.offset_s == pytest.approx(notice["from_audio_ms"] / 1000, abs=0.03)
    assert second.audio_bytes == len(audio) - int(notice["from_audio_ms"] * 32)
    # Transcript times stay on the call's audio timeline across the reconnection.
    last = reader.finals()[-1]
    assert last.end_ms is not None and last.end_ms > 3000


async def test_an_error_message_is_recorded_and_the_stream_reconnects() -> None:
    audio = silence(0.3) + tone(1.0) + silence(0.6)
    async with FakeDeepgram(api_key=KEY) as dg:
        dg.set_script(script_from_text("Are you open on Sunday", 0.35, 1.25))
        dg.set_reference_audio(audio)
        dg.error_after_audio_ms(800)
        async with opened(dg) as (stream, reader):
            await send(stream, audio)
            await stream.finalize()
            await reader.wait(lambda r: "Sunday" in r.final_text())
    assert reader.notices("vendor_error")[0].data["variant"] == "INTERNAL_SERVER_ERROR"
    assert reader.notices("reconnected")
    assert reader.final_text() == "Are you open on Sunday"


async def test_giving_up_after_max_reconnects_raises_from_the_iterator() -> None:
    async with FakeDeepgram(api_key=KEY) as dg:
        async with opened(dg, max_reconnects=1) as (stream, reader):
            dg.drop_after_audio_ms(100)
            await send(stream, silence(0.2))
            await reader.wait(lambda r: r.notices("reconnected"))
            dg.drop_after_audio_ms(100)
            dg.reject_next(503)  # the drop, then the one allowed reconnection is refused
            await send(stream, silence(0.4))
            await reader.wait(lambda r: r.error is not None)
    assert "reconnecting failed" in str(reader.error)


async def test_a_refused_key_fails_at_open_with_a_clear_error() -> None:
    async with FakeDeepgram(api_key="the-right-key") as dg:
        with pytest.raises(STTError, match="refused the API key") as info:
            await DeepgramSTT(settings(dg)).open_stream()
        dg.reject_next(503)
        with pytest.raises(STTError, match="HTTP 503"):
            await DeepgramSTT(settings(dg, api_key="the-right-key")).open_stream()
    assert KEY not in str(info.value)


async def test_an_unreachable_server_fails_at_open() -> None:
    async with FakeDeepgram(api_key=KEY) as dg:
        url = dg.url
    with pytest.raises(STTError, match="cannot connect"):
        await DeepgramSTT(DeepgramSettings(api_key=KEY, url=url)).open_stream()


def test_settings_reject_impossible_values_and_hide_the_key() -> None:
    assert "secret-dg" not in repr(DeepgramSettings(api_key="secret-dg"))
    assert DeepgramSettings(api_key="k", url="https://dg.example.com").ws_url == (
        "wss://dg.example.com"
    )
    with pytest.raises(ValueError, match=">= 1000"):
        DeepgramSettings(api_key="k", utterance_end_ms=500)
    with pytest.raises(ValueError, match="API key"):
        DeepgramSettings(api_key="")
    with pytest.raises(ValueError, match="keepalive"):
        DeepgramSettings(api_key="k", keepalive_interval_s=12)
