"""A real human recording through the caller WebSocket on the embedded engines.

Silero VAD, PocketSphinx, the LLM simulator over HTTP and eSpeak NG all run for real; the
consumer is driven by Channels' WebsocketCommunicator.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from channels.db import database_sync_to_async

from parley.agents.voice.audio import load_wav_resampled
from parley.agents.voice.metrics import LATENCY_COMPONENTS
from parley.conversations.models import CallEvent, Conversation, Turn
from tests.agents.conftest import turn_ended, ws_call
from tests.agents.voice.fakes import in_turn_order
from tests.conftest import SPEECH

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.slow]


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    d = np.zeros((len(ref) + 1, len(hyp) + 1), dtype=int)
    d[:, 0] = range(len(ref) + 1)
    d[0, :] = range(len(hyp) + 1)
    for i in range(1, len(ref) + 1):
        for j in range(1, len(hyp) + 1):
            d[i, j] = min(
                d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1])
            )
    return d[-1, -1] / max(1, len(ref))


async def test_real_recording_gets_a_spoken_answer(
    hospital_agent, reports_dir, speech_manifest
) -> None:  # noqa: ANN001
    clip = "ms_my_voice_is_my_passport.wav"
    pcm = load_wav_resampled(SPEECH / clip, sample_rate_hz=16_000)
    call = await ws_call("hospital-receptionist")
    started = call.of("session.started")[0]
    assert started["output"]["sample_rate_hz"] == 24_000
    assert started["providers"] == {
        "stt": "pocketsphinx",
        "llm": "openai_compat",
        "tts": "espeak-ng",
    }

    await call.send_audio(pcm, realtime=True)
    await call.send_audio(bytes(640 * 60), realtime=True)  # 1.2 s of trailing silence
    await call.wait_for(turn_ended(1))
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))
    await call.pump(timeout=0.5)

    final = call.of("transcript.final")[0]
    reference = speech_manifest[clip]["transcript"]
    assert wer(reference, final["text"]) <= 0.25, final["text"]

    types = [e["type"] for e in call.events if e["turn"] == 1]
    assert in_turn_order(types), types
    assert call.events[0]["type"] == "session.started"
    assert call.events[-1]["type"] == "call.ended"

    reply = " ".join(e["text"] for e in call.of("agent.text"))
    assert reply
    # The agent's audio: 24 kHz PCM16, several hundred ms at least, clearly not silence.
    samples = np.frombuffer(bytes(call.audio), dtype="<i2").astype(np.float64)
    assert len(samples) / 24_000 > 0.5
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(samples**2)) / 32768)
    assert rms_dbfs > -35

    metrics = call.of("turn.metrics")[0]
    for key in LATENCY_COMPONENTS:
        assert metrics[key] >= 0, key

    conversation_id = started["conversation_id"]

    @database_sync_to_async
    def record():
        conversation = Conversation.objects.get(id=conversation_id)
        turn = Turn.objects.get(conversation=conversation, index=1)
        return (
            conversation,
            turn,
            list(CallEvent.objects.filter(conversation=conversation).order_by("seq")),
        )

    conversation, turn, events = await record()
    assert conversation.status == Conversation.Status.ENDED
    assert turn.user_text == final["text"]
    assert turn.spoken_text == call.of("turn.ended")[0]["spoken_text"]
    assert turn.ttfa_ms == pytest.approx(metrics["ttfa_ms"])
    assert turn.status == Turn.Status.COMPLETED
    assert [e.type for e in events] == [e["type"] for e in call.events if e["type"] != "pong"]

    # Celery wrote the JSONL transcript and the latency report when the call ended.
    assert conversation.transcript_path and conversation.latency_report_path
    lines = [json.loads(line) for line in open(conversation.transcript_path)]
    assert lines[0]["type"] == "call.meta" and lines[0]["conversation_id"] == conversation_id
    assert [line["seq"] for line in lines[1:]] == list(range(1, len(lines)))
    assert any(line["type"] == "transcript.final" and line["turn"] == 1 for line in lines)
    report = json.load(open(conversation.latency_report_path))
    assert report["components"]["ttfa_ms"]["n"] == 1
    assert report["components"]["ttfa_ms"]["p50"] == pytest.approx(metrics["ttfa_ms"], abs=0.2)
    assert str(reports_dir) in conversation.transcript_path


async def test_malformed_frames_and_messages_get_errors_not_a_dropped_call(
    hospital_agent, reports_dir
) -> None:  # noqa: ANN001
    call = await ws_call("hospital-receptionist")
    comm = call.communicator
    await comm.send_to(bytes_data=b"\x01\x02\x03")  # odd length
    await comm.send_to(text_data="{not json")
    await comm.send_to(text_data=json.dumps({"type": "dance"}))
    await comm.send_to(text_data=json.dumps({"type": "ping", "id": 7}))
    await call.wait_for(lambda ev: any(e["type"] == "pong" for e in ev))
    codes = [e["code"] for e in call.of("error")]
    assert codes == ["bad_frame", "bad_json", "unknown_message"]
    assert all(e["fatal"] is False for e in call.of("error"))
    assert call.of("pong")[0]["id"] == 7
    # Still alive (a frame too large would end it: tests/agents/test_call_limits.py): normal
    # audio is accepted and the call ends cleanly.
    await call.send_audio(bytes(640 * 10))
    await comm.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))
    await comm.disconnect()


async def test_a_user_agent_with_control_characters_is_stored_without_them(
    hospital_agent, reports_dir
) -> None:  # noqa: ANN001
    """PostgreSQL refuses NUL in the Conversation's client JSON: it must not refuse the call."""
    call = await ws_call("hospital-receptionist", headers=[(b"user-agent", b"Bot\x00/1.0\x07")])
    assert call.of("session.started"), call.events
    await call.communicator.send_to(text_data=json.dumps({"type": "hangup"}))
    await call.wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev))
    await call.communicator.disconnect()
    conversation = await database_sync_to_async(Conversation.objects.get)()
    assert conversation.client["user_agent"] == "Bot/1.0"


async def test_unknown_agent_is_refused_with_a_clear_error(db) -> None:  # noqa: ANN001
    call = await ws_call("no-such-agent")
    error = call.of("error")[0]
    assert error["code"] == "agent_not_found" and error["fatal"] is True
    await call.pump(timeout=2)
    assert call.closed and call.close_code == 4404
