"""Whole calls through the caller WebSocket with the Deepgram and ElevenLabs providers.

The real SDKs talk to local fakes of each vendor's wire protocol on 127.0.0.1 (the
``DEEPGRAM_URL`` / ``ELEVENLABS_URL`` settings point at them). Silero VAD, the LLM simulator
and the consumer run for real; the caller audio is a real human recording. The fake Deepgram
transcribes from a script: the recording's transcript spread over its voiced span.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from channels.db import database_sync_to_async

from parley.agents.models import Agent
from parley.agents.voice.audio import load_wav_resampled
from parley.conversations.models import CallEvent, Conversation, Turn
from parley.testing.deepgram_fake import FakeDeepgram, script_from_text
from parley.testing.elevenlabs_fake import FakeElevenLabs, synthetic_speech_pcm16
from tests.agents.conftest import WSCall, turn_ended, ws_call
from tests.agents.voice.fakes import in_turn_order
from tests.conftest import SPEECH

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.slow]

DG_KEY = "dg-call-test-key"
EL_KEY = "el-call-test-key"
CLIP = "ms_my_voice_is_my_passport.wav"
CLIP_TEXT = "My voice is my passport. Verify me."
FRAME = 640


def caller_audio() -> tuple[bytes, float, float]:
    """0.3 s of silence, the recording, 1.2 s of silence (whole 20 ms frames); and the
    voiced span of the recording (s, in this stream), found by frame energy."""
    clip = load_wav_resampled(SPEECH / CLIP, sample_rate_hz=16_000)
    audio = bytes(9_600) + clip + bytes(38_400)
    audio += bytes(-len(audio) % FRAME)
    samples = np.frombuffer(audio, dtype="<i2").astype(np.float64)
    frames = samples[: len(samples) // 320 * 320].reshape(-1, 320)
    voiced = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > 300)
    return audio, voiced[0] * 0.02, (voiced[-1] + 1) * 0.02


@pytest.fixture
async def vendors(settings, monkeypatch):  # noqa: ANN001, ANN201
    async with (
        FakeDeepgram(api_key=DG_KEY) as dg,
        FakeElevenLabs(api_key=EL_KEY, speed=0) as el,
    ):
        settings.DEEPGRAM_URL = dg.url
        settings.ELEVENLABS_URL = el.url
        monkeypatch.setenv("DEEPGRAM_API_KEY", DG_KEY)
        monkeypatch.setenv("ELEVENLABS_API_KEY", EL_KEY)
        yield dg, el


@pytest.fixture
def cloud_agent(hospital_agent: Agent) -> Agent:
    hospital_agent.stt_provider = Agent.STTProvider.DEEPGRAM
    hospital_agent.tts_provider = Agent.TTSProvider.ELEVENLABS
    hospital_agent.stt_keyterms = "Parley"
    hospital_agent.save()
    return hospital_agent


async def speak_and_hang_up(call: WSCall, audio: bytes) -> None:
    await call.send_audio(audio, realtime=True)
    await call.wait_for(turn_ended(1))
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))
    await call.pump(timeout=0.3)


@database_sync_to_async
def stored_event_types(conversation_id: str) -> list[str]:
    return list(
        CallEvent.objects.filter(conversation_id=conversation_id)
        .order_by("seq")
        .values_list("type", flat=True)
    )


async def test_a_whole_call_on_deepgram_and_elevenlabs(cloud_agent, vendors, reports_dir) -> None:  # noqa: ANN001
    dg, el = vendors
    audio, start_s, end_s = caller_audio()
    dg.set_script(script_from_text(CLIP_TEXT, start_s, end_s))
    call = await ws_call(cloud_agent.slug)
    started = call.of("session.started")[0]
    assert started["providers"]["stt"] == "deepgram"
    assert started["providers"]["tts"] == "elevenlabs"

    await speak_and_hang_up(call, audio)

    types = [e["type"] for e in call.events if e["turn"] == 1]
    assert in_turn_order(types), types
    assert call.of("transcript.final")[0]["text"] == CLIP_TEXT
    assert call.of("transcript.partial"), "Deepgram's interim results reach the caller"

    # Deepgram's own endpointing (speech_final, 300 ms) ended the turn before the VAD's
    # pause, so no Finalize was needed.
    assert call.of("transcript.final")[0]["end_of_turn"] == "stt_speech_final"
    # Deepgram got the agent's settings, the key, key terms from the scenario, the audio,
    # and CloseStream at hang-up.
    connection = dg.connections[0]
    assert connection.headers["authorization"] == f"Token {DG_KEY}"
    assert connection.params["model"] == "nova-3"
    assert connection.params["sample_rate"] == "16000"
    assert connection.params["encoding"] == "linear16"
    assert "Parley" in connection.params["keyterm"]
    assert "Sarah Johnson" in connection.params["keyterm"]  # a doctor of the hospital seed
    assert "Finalize" not in connection.controls and connection.controls[-1] == "CloseStream"
    assert connection.audio_bytes >= len(audio)

    # ElevenLabs spoke every chunk of the reply, as PCM 24 kHz, over one warm connection.
    chunks = [e["text"] for e in call.of("agent.text")]
    assert chunks and [r.text for r in el.requests] == chunks
    assert all(
        r.output_format == "pcm_24000" and r.model_id == "eleven_turbo_v2_5" for r in el.requests
    )
    assert el.model_list_hits == 1 and el.connections_opened == 1
    expected = sum(len(synthetic_speech_pcm16(text, 24_000)) for text in chunks)
    assert expected <= len(call.audio) < expected + 960 * len(chunks)

    conversation_id = started["conversation_id"]
    stored = await stored_event_types(conversation_id)
    assert "stt.metadata" in stored  # Deepgram's summary at CloseStream is in the record

    @database_sync_to_async
    def turn_row() -> Turn:
        return Turn.objects.get(conversation_id=conversation_id, index=1)

    turn = await turn_row()
    assert turn.user_text == CLIP_TEXT
    assert turn.status == Turn.Status.COMPLETED
    assert turn.tts_ttfb_ms is not None and turn.ttfa_ms is not None


async def test_a_deepgram_drop_mid_utterance_loses_no_words(
    cloud_agent, vendors, reports_dir
) -> None:  # noqa: ANN001
    dg, _el = vendors
    audio, start_s, end_s = caller_audio()
    dg.set_script(script_from_text(CLIP_TEXT, start_s, end_s))
    dg.set_reference_audio(audio)
    dg.drop_after_audio_ms((start_s + end_s) / 2 * 1000)  # in the middle of the sentence
    call = await ws_call(cloud_agent.slug)
    await speak_and_hang_up(call, audio)

    assert call.of("transcript.final")[0]["text"] == CLIP_TEXT
    reconnected = call.of("stt.reconnected")
    assert len(reconnected) == 1 and reconnected[0]["resent_ms"] > 0
    assert [c.closed_by for c in dg.connections] == ["dropped", "server"]
    stored = await stored_event_types(call.of("session.started")[0]["conversation_id"])
    assert "stt.reconnected" in stored


async def test_barge_in_stops_the_elevenlabs_request(cloud_agent, vendors, reports_dir) -> None:  # noqa: ANN001
    dg, el = vendors
    el.speed = 1.0  # generate in real time, so the greeting's request is still streaming
    cloud_agent.greeting = (
        "Welcome to the hospital. I can book, move or cancel appointments, tell you about "
        "our doctors and departments, and check your lab results and prescriptions."
    )
    await database_sync_to_async(cloud_agent.save)()
    audio, start_s, end_s = caller_audio()
    dg.set_script(script_from_text(CLIP_TEXT, start_s, end_s))
    call = await ws_call(cloud_agent.slug)
    await call.wait_for(lambda ev: any(e["type"] == "agent.speaking" for e in ev))
    await call.send_audio(audio, realtime=True)
    await call.wait_for(lambda ev: any(e["type"] == "interrupted" for e in ev))

    assert await el.wait_for(lambda: el.requests[0].ended_at is not None)
    greeting_request = el.requests[0]
    assert greeting_request.text.startswith("Welcome to the hospital.")
    assert greeting_request.cancelled and not greeting_request.completed
    interrupted = call.of("interrupted")[0]
    assert interrupted["turn"] == 0 and interrupted["reason"] == "barge_in"
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))


async def test_an_elevenlabs_failure_falls_back_to_the_offline_voice(
    cloud_agent, vendors, reports_dir
) -> None:  # noqa: ANN001
    dg, el = vendors
    el.fail_next(status=503, count=50)
    audio, start_s, end_s = caller_audio()
    dg.set_script(script_from_text(CLIP_TEXT, start_s, end_s))
    call = await ws_call(cloud_agent.slug)
    await speak_and_hang_up(call, audio)

    fallback = call.of("tts.fallback")
    assert len(fallback) == 1
    assert fallback[0] == {**fallback[0], "provider": "espeak-ng", "failed": "elevenlabs"}
    assert any(e["code"] == "tts_error" and "HTTP 503" in e["message"] for e in call.of("error"))
    ended = call.of("turn.ended")[-1]
    assert ended["status"] == "completed" and ended["spoken_text"] == ended["agent_text"]
    samples = np.frombuffer(bytes(call.audio), dtype="<i2").astype(np.float64)
    assert len(samples) / 24_000 > 0.5
    assert 20 * np.log10(np.sqrt(np.mean(samples**2)) / 32768) > -35  # eSpeak NG, audible


@pytest.mark.parametrize(
    ("missing", "variable"),
    [("stt", "DEEPGRAM_API_KEY"), ("tts", "ELEVENLABS_API_KEY")],
)
async def test_a_missing_key_refuses_the_call_at_start(
    cloud_agent,
    vendors,
    monkeypatch,
    missing,
    variable,  # noqa: ANN001
) -> None:
    monkeypatch.delenv(variable)
    call = await ws_call(cloud_agent.slug)
    await call.pump(timeout=0.3)
    error = call.of("error")[0]
    assert error["code"] == "provider_not_configured" and error["fatal"]
    assert variable in error["message"] and cloud_agent.slug in error["message"]
    assert call.closed and call.close_code == 4403
    assert not call.of("session.started")
    assert await database_sync_to_async(Conversation.objects.count)() == 0
    dg, el = vendors
    assert dg.connections == [] and el.requests == []


async def test_providers_can_be_overridden_for_one_call(
    hospital_agent, vendors, reports_dir, settings
) -> None:  # noqa: ANN001
    call = await ws_call(hospital_agent.slug, query="stt=deepgram&tts=elevenlabs")
    assert call.of("session.started")[0]["providers"]["stt"] == "deepgram"
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))

    bad = await ws_call(hospital_agent.slug, query="stt=whisper")
    assert bad.of("error")[0]["code"] == "bad_provider"
    assert "whisper" in bad.of("error")[0]["message"]

    settings.PARLEY_PROVIDER_OVERRIDES = False
    refused = await ws_call(hospital_agent.slug, query="tts=elevenlabs")
    assert refused.of("error")[0]["code"] == "overrides_not_allowed"
    await refused.pump(timeout=0.2)
    assert refused.closed and refused.close_code == 4403


async def test_deepgram_refusing_the_key_ends_the_call_with_a_clear_error(
    cloud_agent, vendors, monkeypatch, reports_dir
) -> None:  # noqa: ANN001
    monkeypatch.setenv("DEEPGRAM_API_KEY", "a-revoked-key")
    call = await ws_call(cloud_agent.slug)
    await call.pump(timeout=0.3)
    error = call.of("error")[0]
    assert error["code"] == "stt_unavailable" and error["fatal"]
    assert "401" in error["message"] and "a-revoked-key" not in error["message"]
    assert call.closed and call.close_code == 4500

    @database_sync_to_async
    def conversation() -> Conversation:
        return Conversation.objects.get()

    assert (await conversation()).status == Conversation.Status.ERROR


@pytest.mark.parametrize("fault", ["drop_mid_stream", "stall"])  # HTTP errors: the test above
async def test_an_elevenlabs_fault_is_spoken_by_espeak_and_the_next_turn_tries_elevenlabs_again(
    cloud_agent,  # noqa: ANN001
    vendors,  # noqa: ANN001
    reports_dir,  # noqa: ANN001
    settings,  # noqa: ANN001
    fault,  # noqa: ANN001
) -> None:
    _dg, el = vendors
    settings.ELEVENLABS_FIRST_BYTE_TIMEOUT_MS = 400
    settings.ELEVENLABS_STALL_TIMEOUT_MS = 400
    if fault == "drop_mid_stream":
        el.break_after_bytes(4_800)  # 100 ms of the first sentence, then the connection dies
    else:
        el.stall_next(30.0, after_bytes=4_800)  # far beyond the 400 ms stall deadline
    call = await ws_call(cloud_agent.slug)
    for index, line in enumerate(("Who is Dr. Sarah Johnson?", "Thank you."), start=1):
        await call.communicator.send_to(text_data=json.dumps({"type": "text", "text": line}))
        await call.wait_for(turn_ended(index))
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))

    # Turn 1: the failure, then eSpeak NG speaks the reply (after what was already heard).
    fallback = call.of("tts.fallback")
    assert [(f["turn"], f["provider"], f["failed"]) for f in fallback] == [
        (1, "espeak-ng", "elevenlabs")
    ]
    errors = [e for e in call.of("error") if e["code"] == "tts_error"]
    assert len(errors) == 1 and errors[0]["turn"] == 1
    expected = {"drop_mid_stream": "failed while speaking", "stall": "audio stalled within 400"}
    assert expected[fault] in errors[0]["message"]
    ended = {e["turn"]: e for e in call.of("turn.ended")}
    assert ended[1]["status"] == "completed" and ended[1]["spoken_text"]
    assert ended[1]["spoken_text"] == ended[1]["agent_text"]
    # Turn 2 is ElevenLabs' again (the fallback lasts one reply) and all of it is spoken.
    assert ended[2]["status"] == "completed" and ended[2]["spoken_text"] == ended[2]["agent_text"]
    turn_two = [e["text"] for e in call.of("agent.text") if e["turn"] == 2]
    assert [r.text for r in el.requests if r.completed][-len(turn_two) :] == turn_two
    assert call.of("call.ended")[0]["reason"] == "caller hung up"
    samples = np.frombuffer(bytes(call.audio), dtype="<i2").astype(np.float64)
    assert len(samples) / 24_000 > 1.0
