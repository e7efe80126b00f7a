"""CallSession driven with fake providers: event order, tools, barge-in, errors, clean-up."""

from __future__ import annotations

import asyncio
import json

import pytest

from parley.agents.voice.llm.base import LLMError
from parley.agents.voice.messages import (
    LLMDone,
    STTNotice,
    TextDelta,
    ToolCallRequest,
    ToolResult,
    Transcript,
)
from parley.agents.voice.metrics import LATENCY_COMPONENTS
from parley.agents.voice.session import (
    BROKEN_REPLY_TAIL,
    FALLBACK_REPLY,
    STEP_CAP_REPLY,
    SessionSettings,
)
from tests.agents.voice.fakes import FakeTools, FakeTTS, in_turn_order, run_session, text_response

pytestmark = pytest.mark.asyncio


async def test_one_turn_events_in_order_audio_and_history() -> None:
    h = await run_session(
        transcripts=["when is my appointment"],
        responses=[text_response("Your appointment is on Monday. See you then.")],
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()

    turn1 = h.recorder.types(1)
    assert in_turn_order(turn1), turn1
    assert turn1.count("agent.text") == 2
    assert h.recorder.types()[0] == "session.started"
    assert h.recorder.types()[-1] == "call.ended"
    assert h.recorder.first("transcript.final").data["text"] == "when is my appointment"
    assert [e.data["text"] for e in h.recorder.events if e.type == "agent.text"] == [
        "Your appointment is on Monday.",
        "See you then.",
    ]
    # Audio: 10 ms per character of spoken text, whole 20 ms frames at 24 kHz.
    assert len(h.recorder.audio) >= 480 * 2 * 10
    assert len(h.recorder.audio) % 960 == 0
    metrics = h.recorder.first("turn.metrics").data
    assert set(LATENCY_COMPONENTS) <= set(metrics)
    assert metrics["ttfa_ms"] >= metrics["stt_final_ms"] >= 0
    assert h.session.history[-2:] == [
        {"role": "user", "content": "when is my appointment"},
        {"role": "assistant", "content": "Your appointment is on Monday. See you then."},
    ]
    ended = h.recorder.first("turn.ended").data
    assert ended["status"] == "completed"
    assert ended["spoken_text"] == "Your appointment is on Monday. See you then."


async def test_tool_calls_feed_results_back_to_the_llm() -> None:
    tools = FakeTools(
        {"get_doctor_info": ToolResult(ok=True, content='{"name": "Dr. Sarah Johnson"}')}
    )
    call = ToolCallRequest(
        id="call_1", name="get_doctor_info", arguments='{"doctor_identifier": "D1002"}'
    )
    h = await run_session(
        transcripts=["who is doctor johnson"],
        responses=[
            [LLMDone(tool_calls=(call,), finish_reason="tool_calls")],
            text_response("Dr. Sarah Johnson is a cardiologist."),
        ],
        tools=tools,
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    types = h.recorder.types(1)
    assert types.index("tool.call") < types.index("tool.result") < types.index("agent.text")
    assert h.recorder.first("tool.call").data["arguments"] == {"doctor_identifier": "D1002"}
    assert h.recorder.first("tool.result").data["ok"] is True
    assert tools.calls == [call]
    second_request = h.llm.requests[1]
    assert second_request[-2]["tool_calls"][0]["id"] == "call_1"
    assert second_request[-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"name": "Dr. Sarah Johnson"}',
    }
    assert h.recorder.first("turn.ended").data["llm_steps"] == 2


async def test_tool_step_cap_stops_the_loop_and_apologises() -> None:
    call = ToolCallRequest(id="c", name="get_patient_info", arguments="{}")
    loop_forever = [
        [LLMDone(tool_calls=(ToolCallRequest(id=f"c{i}", name=call.name, arguments="{}"),))]
        for i in range(5)
    ]
    h = await run_session(
        transcripts=["hello"],
        responses=loop_forever,  # type: ignore[arg-type]
        settings=SessionSettings(max_tool_steps=3, audio_lead_ms=0),
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    assert len(h.tools.calls) == 3
    errors = [e.data["code"] for e in h.recorder.events if e.type == "error"]
    assert errors == ["tool_step_cap"]
    assert h.tts.texts == [STEP_CAP_REPLY]


async def test_barge_in_cancels_reply_and_keeps_only_what_was_heard() -> None:
    long_reply = "This is the first sentence of a long answer. " + " ".join(
        f"Then sentence number {i} goes on and on." for i in range(20)
    )
    h = await run_session(
        transcripts=["tell me everything", "stop"],
        responses=[text_response(long_reply), text_response("Sure, stopping.")],
    )
    await h.say()
    await h.wait_for("agent.speaking", turn=1)
    await asyncio.sleep(0.3)  # the caller hears part of the first sentence, then talks
    await h.say(speech_frames=5, silence_frames=0)
    interrupted = await h.wait_for("interrupted", turn=1)
    await h.say(speech_frames=0, silence_frames=8)
    await h.wait_for("turn.ended", turn=2)
    await h.session.aclose()

    heard = interrupted.data["spoken_text"]
    assert heard and long_reply.startswith(heard.rstrip("."))
    assert len(heard) < len(long_reply) / 2
    # Synthesis stopped: the sentences after the one cut off were never asked for.
    assert len(h.tts.texts) < 5
    history = h.session.history
    user_turns = [m for m in history if m["role"] == "user"]
    assert [m["content"] for m in user_turns] == ["tell me everything", "stop"]
    assistant = [m["content"] for m in history if m["role"] == "assistant"]
    assert assistant[0] == heard  # only what was actually spoken
    ended1 = next(e for e in h.recorder.events if e.type == "turn.ended" and e.turn == 1)
    assert ended1.data["status"] == "interrupted"
    # The interruption is announced before the new turn's events.
    types = [(e.type, e.turn) for e in h.recorder.events]
    assert types.index(("interrupted", 1)) < types.index(("vad.speech_start", 2))


async def test_barge_in_during_llm_stream_cancels_the_llm() -> None:
    slow = text_response("word " * 200)
    h = await run_session(
        transcripts=["first", "second"],
        responses=[slow, text_response("Second answer.")],
        llm_token_delay_s=0.02,
    )
    await h.say()
    await h.wait_for("agent.speaking", turn=1)  # audible: speech now is a barge-in
    await h.say(speech_frames=5, silence_frames=8)
    await h.wait_for("turn.ended", turn=2)
    await h.session.aclose()
    assert h.llm.cancelled == 1
    assert h.recorder.first("interrupted").turn == 1


async def test_llm_failure_speaks_a_fallback_and_the_call_goes_on() -> None:
    h = await run_session(
        transcripts=["hello", "hello again"],
        responses=[LLMError("connection refused"), text_response("Hello there.")],
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.say()
    await h.wait_for("turn.ended", turn=2)
    await h.session.aclose()
    error = h.recorder.first("error")
    assert error.data["code"] == "llm_error" and error.turn == 1
    assert h.tts.texts[0] == FALLBACK_REPLY
    assert h.recorder.first("turn.ended").data["status"] == "error"
    assert h.tts.texts[-1] == "Hello there."


async def test_tts_failure_is_reported_and_later_sentences_still_play() -> None:
    h = await run_session(
        transcripts=["hi"],
        responses=[text_response("This one breaks the engine. This one is fine.")],
        tts=FakeTTS(fail_on="breaks"),
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    assert h.recorder.first("error").data["code"] == "tts_error"
    assert h.recorder.first("turn.ended").data["spoken_text"] == "This one is fine."


async def test_greeting_is_turn_zero() -> None:
    h = await run_session(
        transcripts=[],
        responses=[],
        settings=SessionSettings(greeting="Hello, how can I help?", audio_lead_ms=0),
    )
    await h.wait_for("turn.ended", turn=0)
    await h.session.aclose()
    assert h.recorder.types(0)[:4] == [
        "session.started",
        "turn.started",
        "agent.text",
        "agent.speaking",
    ]
    assert h.session.history[-1] == {"role": "assistant", "content": "Hello, how can I help?"}
    assert h.llm.requests == []


async def test_empty_transcript_gets_no_reply() -> None:
    h = await run_session(transcripts=[""], responses=[text_response("Should not be said.")])
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    assert h.llm.requests == []
    assert h.recorder.audio == bytearray()


async def test_odd_frame_raises_value_error() -> None:
    h = await run_session(transcripts=[], responses=[])
    with pytest.raises(ValueError, match="odd frame length"):
        await h.session.push_audio(b"\x00" * 641)
    await h.session.aclose()


async def test_hangup_mid_reply_cancels_every_task() -> None:
    h = await run_session(
        transcripts=["talk"],
        responses=[text_response("word " * 300)],
        tts=FakeTTS(chunk_delay_s=0.01),
    )
    await h.say()
    await h.wait_for("agent.speaking", turn=1)
    before = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    await h.session.aclose(reason="hangup")
    await asyncio.sleep(0)
    assert not h.session._tasks
    leftover = [
        t for t in before if not t.done() and t.get_name().startswith(("reply-", "speak-", "stt-"))
    ]
    assert leftover == []
    assert h.stt.stream.closed
    assert h.recorder.types()[-1] == "call.ended"
    assert json.dumps(h.recorder.events[-1].as_json())


async def test_a_tts_failure_moves_the_rest_of_the_reply_to_the_fallback_engine() -> None:
    primary = FakeTTS(fail_on="Second", name="cloud-tts")
    fallback = FakeTTS(name="offline-tts")
    h = await run_session(
        transcripts=["hi"],
        responses=[text_response("First sentence here. Second one fails. Third comes after.")],
        tts=primary,
        fallback_tts=fallback,
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    assert primary.texts == ["First sentence here.", "Second one fails."]
    # The failed sentence had no audio yet: the fallback says it, then the rest of the reply.
    assert fallback.texts == ["Second one fails.", "Third comes after."]
    types = h.recorder.types(1)
    assert types.index("error") < types.index("tts.fallback")
    assert h.recorder.first("tts.fallback").data == {
        "provider": "offline-tts",
        "failed": "cloud-tts",
    }
    ended = h.recorder.first("turn.ended").data
    assert ended["spoken_text"] == "First sentence here. Second one fails. Third comes after."
    # 10 ms per character at 24 kHz for every sentence, padded to whole 20 ms frames.
    chars = sum(len(t) for t in ["First sentence here.", "Second one fails.", "Third comes after."])
    assert len(h.recorder.audio) >= chars * 240 * 2


async def test_the_next_reply_tries_the_primary_tts_again() -> None:
    primary = FakeTTS(fail_on="broken")
    fallback = FakeTTS()
    h = await run_session(
        transcripts=["one", "two"],
        responses=[text_response("This is broken."), text_response("This works.")],
        tts=primary,
        fallback_tts=fallback,
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.say()
    await h.wait_for("turn.ended", turn=2)
    await h.session.aclose()
    assert primary.texts == ["This is broken.", "This works."]
    assert fallback.texts == ["This is broken."]


async def test_tts_warm_up_runs_at_start_and_its_failure_is_not_fatal() -> None:
    from parley.agents.voice.tts.base import TTSError

    tts = FakeTTS(warm_error=TTSError("vendor unreachable"))
    h = await run_session(transcripts=["hi"], responses=[text_response("Hello.")], tts=tts)
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    assert tts.warmed == 1
    warm = h.recorder.first("error").data
    assert warm["code"] == "tts_warm_failed" and not warm["fatal"]
    assert h.recorder.first("turn.ended").data["spoken_text"] == "Hello."


async def test_stt_notices_become_call_events() -> None:
    notice = STTNotice("reconnected", {"connection": 2, "resent_ms": 840.0})
    h = await run_session(
        transcripts=[[notice, Transcript(text="hello", is_final=True, speech_final=True)]],
        responses=[text_response("Hi.")],
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    event = h.recorder.first("stt.reconnected")
    assert event.data == {"connection": 2, "resent_ms": 840.0}
    assert h.recorder.first("transcript.final").data["text"] == "hello"


async def test_only_the_speech_final_ends_the_wait_for_the_transcript() -> None:
    # Deepgram may send an ordinary final for the first words before the final that answers
    # Finalize: the turn must wait for the latter and keep both.
    h = await run_session(
        transcripts=[
            [
                Transcript(text="my order number is", is_final=True),
                0.2,
                Transcript(text="one zero four two", is_final=True, speech_final=True),
            ]
        ],
        responses=[text_response("Thanks.")],
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    final = h.recorder.first("transcript.final").data["text"]
    assert final == "my order number is one zero four two"


async def test_a_text_turn_goes_straight_into_the_agent_loop_and_is_spoken() -> None:
    h = await run_session(
        transcripts=[], responses=[text_response("Your appointment is on Monday.")]
    )
    index = await h.session.push_text("  when is   my appointment ")
    assert index == 1
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    assert h.recorder.first("turn.started").data == {"role": "caller", "input": "text"}
    assert h.recorder.first("transcript.final").data["text"] == "when is my appointment"
    assert "vad.speech_start" not in h.recorder.types(1)
    assert h.llm.requests[0][-1] == {"role": "user", "content": "when is my appointment"}
    assert h.tts.texts == ["Your appointment is on Monday."]  # a voice call still speaks it
    assert len(h.recorder.audio) > 0
    assert h.recorder.first("turn.ended").data["status"] == "completed"


async def test_text_only_session_opens_no_stt_and_synthesizes_nothing() -> None:
    usage = {"prompt_tokens": 120, "completion_tokens": 9}
    h = await run_session(
        transcripts=[],
        responses=[
            [
                LLMDone(
                    tool_calls=(ToolCallRequest(id="c1", name="lookup", arguments="{}"),),
                    usage=usage,
                )
            ],
            [*text_response("Found it. Anything else?")[:-1], LLMDone(usage=usage)],
        ],
        settings=SessionSettings(text_only=True, audio_lead_ms=0),
    )
    assert h.recorder.first("session.started").data["text_only"] is True
    await h.session.push_text("find it")
    await h.wait_for("turn.ended", turn=1)
    with pytest.raises(ValueError, match="text-only"):
        await h.session.push_audio(bytes(640))
    await h.session.aclose()
    assert h.stt.stream.texts == [] and not h.stt.stream.closed  # never opened
    assert h.tts.texts == [] and h.tts.warmed == 0
    assert h.recorder.audio == bytearray()
    ended = h.recorder.first("turn.ended").data
    assert ended["spoken_text"] == "Found it. Anything else?"
    assert ended["usage"] == {"prompt_tokens": 240, "completion_tokens": 18}
    assert h.recorder.first("agent.done").data["spoken_text"] == "Found it. Anything else?"


async def test_a_text_turn_barges_in_on_the_reply_in_progress() -> None:
    h = await run_session(
        transcripts=[],
        responses=[
            text_response("One. Two. Three. Four. Five. Six. Seven."),
            text_response("Sure."),
        ],
        llm_token_delay_s=0.05,
    )
    await h.session.push_text("count for me")
    await h.wait_for("agent.text", turn=1)
    await h.session.push_text("stop")
    await h.wait_for("turn.ended", turn=2)
    await h.session.aclose()
    assert h.recorder.first("interrupted").turn == 1
    assert h.recorder.first("turn.ended").data["status"] == "interrupted"


@pytest.mark.parametrize("text", ["", "   ", "x" * 2_001, "nul \x00", "lone \ud800"])
async def test_bad_text_turns_raise_value_error(text: str) -> None:
    h = await run_session(transcripts=[], responses=[])
    with pytest.raises(ValueError):
        await h.session.push_text(text)
    await h.session.aclose()
    assert "turn.started" not in h.recorder.types()


async def test_a_stream_that_breaks_mid_reply_ends_its_sentence_and_is_not_repeated() -> None:
    route = {
        "server": None,
        "reason": "affinity",
        "failovers": 0,
        "attempts": [
            {"server": "vllm-1", "reason": "affinity", "outcome": "broken_stream", "ms": 80.0}
        ],
    }
    broken = [
        TextDelta("Your appointment is on Monday. "),
        TextDelta("Dr. Smith will "),
        LLMError("the stream from vllm-1 broke after its first token", route=route),
    ]
    h = await run_session(transcripts=["when is my appointment"], responses=[broken])
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    assert h.tts.texts == ["Your appointment is on Monday.", "Dr. Smith will…", BROKEN_REPLY_TAIL]
    assert FALLBACK_REPLY not in h.tts.texts and len(h.llm.requests) == 1  # no second answer
    assert h.recorder.first("llm.route").data["attempts"][0]["outcome"] == "broken_stream"
    ended = h.recorder.first("turn.ended").data
    assert ended["status"] == "error" and ended["routing"][0]["step"] == 1


async def test_the_fleets_route_of_each_llm_step_is_an_event_and_on_the_turn() -> None:
    route = {"server": "vllm-2", "reason": "failover", "failovers": 1, "attempts": []}
    h = await run_session(
        transcripts=["hi"],
        responses=[[TextDelta("Hello there. "), LLMDone(finish_reason="stop", route=route)]],
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    types = h.recorder.types(1)
    assert types.index("llm.route") < types.index("turn.ended")
    assert h.recorder.first("llm.route").data == {"step": 1, **route}
    assert h.recorder.first("turn.ended").data["routing"] == [{"step": 1, **route}]


async def test_playback_report_gives_ttfa_at_the_callers_ear() -> None:
    h = await run_session(
        transcripts=["when is my appointment"],
        responses=[text_response("Your appointment is on Monday. See you then.")],
        llm_token_delay_s=0.01,
    )
    await h.say()
    await h.wait_for("agent.speaking", turn=1)
    ear = await h.session.playback_started(turn=1, playout_delay_ms=85.0, rtt_ms=40.0)
    await h.wait_for("turn.ended", turn=1)
    with pytest.raises(ValueError, match="already reported"):
        await h.session.playback_started(turn=1, playout_delay_ms=85.0, rtt_ms=40.0)
    for bad in (
        {"turn": 7, "playout_delay_ms": 10.0},
        {"turn": "1", "playout_delay_ms": 10.0},
        {"turn": 0, "playout_delay_ms": -1.0},
        {"turn": 0, "playout_delay_ms": 10.0, "rtt_ms": "fast"},
        {"turn": 0, "playout_delay_ms": 1e9},
    ):
        with pytest.raises(ValueError):
            await h.session.playback_started(**bad)  # type: ignore[arg-type]
    await h.session.aclose()

    metrics = h.recorder.first("turn.metrics").data
    assert ear == pytest.approx(metrics["ttfa_ms"] + 125.0, abs=0.2)
    assert metrics["ear_ttfa_ms"] == pytest.approx(ear, abs=0.1)
    assert metrics["playout_delay_ms"] == 85.0 and metrics["network_rtt_ms"] == 40.0
    report = h.recorder.first("playback.started")
    assert report.turn == 1
    assert report.data == {"playout_delay_ms": 85.0, "rtt_ms": 40.0, "ear_ttfa_ms": round(ear, 1)}
    types = h.recorder.types(1)
    assert (
        types.index("agent.speaking") < types.index("playback.started") < types.index("turn.ended")
    )


class SlowStartTTS(FakeTTS):
    """200 ms before the first audio of each sentence (a cloud TTFB), then instant."""

    async def synthesize(self, text: str):  # type: ignore[override]  # noqa: ANN201
        await asyncio.sleep(0.2)
        async for chunk in super().synthesize(text):
            yield chunk


async def test_the_next_sentence_is_synthesized_during_the_current_one_so_no_gap() -> None:
    # Each sentence's TTS takes 200 ms to start, more than the 120 ms of audio sent ahead:
    # synthesized only after the previous one was sent, every boundary would be a gap.
    reply = "The first sentence is here. The second sentence follows. And a third one ends it."
    h = await run_session(
        transcripts=["tell me"],
        responses=[text_response(reply)],
        tts=SlowStartTTS(),
        settings=SessionSettings(system_prompt="test", audio_lead_ms=120),
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    assert h.tts.texts == [
        "The first sentence is here.",
        "The second sentence follows.",
        "And a third one ends it.",
    ]
    metrics = h.recorder.first("turn.metrics").data
    assert "audio_underrun_ms" not in metrics, metrics
    assert h.recorder.first("turn.ended").data["spoken_text"] == reply


async def test_a_farewell_cuts_the_reply_in_progress_and_is_spoken_as_a_last_turn() -> None:
    long_reply = " ".join(f"Sentence number {i} goes on and on." for i in range(20))
    h = await run_session(transcripts=["tell me everything"], responses=[text_response(long_reply)])
    await h.say()
    await h.wait_for("agent.speaking", turn=1)
    await h.session.farewell("Time is up. Goodbye.", reason="call_duration_exceeded")
    # farewell returns once the goodbye has been spoken.
    types = [(e.type, e.turn) for e in h.recorder.events]
    assert ("turn.ended", 2) in types and ("agent.done", 2) in types
    await h.session.aclose()
    interrupted = h.recorder.first("interrupted")
    assert (interrupted.turn, interrupted.data["reason"]) == (1, "call_duration_exceeded")
    assert types.index(("interrupted", 1)) < types.index(("turn.started", 2))
    assert next(e for e in h.recorder.events if e.type == "turn.started" and e.turn == 2).data == {
        "role": "agent"
    }
    assert h.tts.texts[-1] == "Time is up. Goodbye."
    ended = next(e for e in h.recorder.events if e.type == "turn.ended" and e.turn == 2)
    assert ended.data["status"] == "completed"
    assert ended.data["spoken_text"] == "Time is up. Goodbye."
