"""Spoken confirmation of side-effecting tool calls (``SessionSettings.confirm_tools``),
driven through the voice path with fake providers."""

from __future__ import annotations

import asyncio
import json

import pytest

from parley.agents.voice.confirm import confirmation_answer, confirmation_question
from parley.agents.voice.messages import LLMDone, ToolCallRequest, ToolResult
from parley.agents.voice.session import SessionSettings
from tests.agents.voice.fakes import FakeTools, in_turn_order, run_session, text_response

CANCEL = ToolCallRequest(
    id="call_c",
    name="cancel_appointment",
    arguments=json.dumps(
        {
            "patient_identifier": "John Smith",
            "appointment_date": "2024-01-15",
            "appointment_time": "9:00 AM",
        }
    ),
)
QUESTION = (
    "Just to confirm: cancel appointment, patient identifier John Smith, appointment date "
    "2024-01-15, appointment time 9:00 AM. Shall I go ahead?"
)


def confirming(**extra: object) -> SessionSettings:
    return SessionSettings(
        system_prompt="You are a test agent.",
        audio_lead_ms=0,
        confirm_tools=frozenset({"cancel_appointment"}),
        **extra,  # type: ignore[arg-type]
    )


def test_the_question_reads_the_call_back_and_answers_are_classified() -> None:
    assert confirmation_question(name=CANCEL.name, arguments=CANCEL.arguments) == QUESTION
    assert confirmation_question(name="reset_all", arguments="not json") == (
        "Just to confirm: reset all. Shall I go ahead?"
    )
    long = confirmation_question(name="note", arguments=json.dumps({"text": "word, " * 200}))
    assert len(long) < 480 and long.endswith("and more. Shall I go ahead?")
    for yes in ("Yes.", "yeah go ahead", "Sure, please do", "that's right", "OK", "yes cancel it"):
        assert confirmation_answer(yes) is True, yes
    for no in ("No.", "no thanks", "don't", "yes, no wait", "yes but not on Monday", "nope"):
        assert confirmation_answer(no) is False, no
    for unclear in ("", "what time is it", "hmm"):
        assert confirmation_answer(unclear) is None, unclear


def _cancel_then(reply: str) -> list:
    return [[LLMDone(tool_calls=(CANCEL,), finish_reason="tool_calls")], text_response(reply)]


@pytest.mark.asyncio
async def test_a_yes_runs_the_tool_once_and_the_llm_goes_on() -> None:
    tools = FakeTools(
        {"cancel_appointment": ToolResult(ok=True, content='{"status": "cancelled"}')}
    )
    h = await run_session(
        transcripts=["cancel my appointment", "yes please"],
        responses=_cancel_then("It is cancelled."),
        settings=confirming(),
        tools=tools,
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    assert tools.calls == []  # asked, not run
    turn1 = h.recorder.types(1)
    assert in_turn_order(turn1), turn1
    assert "tool.result" not in turn1
    assert turn1.index("tool.call") < turn1.index("tool.confirmation") < turn1.index("agent.text")
    asked = h.recorder.first("tool.confirmation").data
    assert asked == {
        "id": "call_c",
        "name": CANCEL.name,
        "state": "requested",
        "question": QUESTION,
    }
    assert h.recorder.first("turn.ended").data["spoken_text"] == QUESTION

    await h.say()
    await h.wait_for("turn.ended", turn=2)
    await h.session.aclose()
    assert tools.calls == [CANCEL] and tools.declined == []
    turn2 = [e for e in h.recorder.events if e.turn == 2]
    kinds = [e.type for e in turn2]
    assert kinds.index("tool.confirmation") < kinds.index("tool.result") < kinds.index("agent.text")
    confirmed = next(e for e in turn2 if e.type == "tool.confirmation").data
    assert (confirmed["state"], confirmed["answer"]) == ("confirmed", "yes please")
    assert next(e for e in turn2 if e.type == "agent.text").data["text"] == "It is cancelled."
    # The LLM's next step reads the result right after its call: the "yes" is no user turn.
    request = h.llm.requests[1]
    assert [m["role"] for m in request[-3:]] == ["user", "assistant", "tool"]
    assert request[-3]["content"] == "cancel my appointment"
    assert request[-1]["content"] == '{"status": "cancelled"}'
    assert len(h.llm.requests) == 2


@pytest.mark.asyncio
async def test_a_no_declines_the_call_and_the_llm_reads_why() -> None:
    tools = FakeTools()
    h = await run_session(
        transcripts=["cancel my appointment", "no thanks"],
        responses=_cancel_then("I left it as it is."),
        settings=confirming(),
        tools=tools,
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.say()
    await h.wait_for("turn.ended", turn=2)
    await h.session.aclose()
    assert tools.calls == []
    assert [(turn, call.id) for turn, call, _ in tools.declined] == [(1, "call_c")]
    assert "no thanks" in tools.declined[0][2]
    declined = [e for e in h.recorder.events if e.type == "tool.confirmation"][-1]
    assert (declined.turn, declined.data["state"]) == (2, "declined")
    result = h.recorder.first("tool.result").data
    assert result["ok"] is False and result["result"].startswith("Not done")
    assert h.llm.requests[1][-1]["role"] == "tool"
    assert "no thanks" in h.llm.requests[1][-1]["content"]
    texts = [e.data["text"] for e in h.recorder.events if e.type == "agent.text" and e.turn == 2]
    assert texts == ["I left it as it is."]


@pytest.mark.asyncio
async def test_no_answer_in_time_declines_and_the_next_turn_is_an_ordinary_one() -> None:
    tools = FakeTools()
    h = await run_session(
        transcripts=["cancel my appointment", "what time is it"],
        responses=_cancel_then("Never mind then.") + [text_response("It is noon.")],
        settings=confirming(confirm_timeout_ms=100),
        tools=tools,
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    declined = await h.wait_for("tool.result", turn=1)
    assert declined.data["ok"] is False
    assert "no answer within 0.1 s" in tools.declined[0][2]
    await h.say()
    await h.wait_for("turn.ended", turn=2)
    await h.session.aclose()
    assert tools.calls == []
    # An ordinary turn: the caller's words are a user message after the declined result.
    request = h.llm.requests[1]
    assert [m["role"] for m in request[-3:]] == ["assistant", "tool", "user"]
    assert request[-1]["content"] == "what time is it"


@pytest.mark.asyncio
async def test_a_hang_up_while_asked_records_the_call_declined() -> None:
    tools = FakeTools()
    h = await run_session(
        transcripts=["cancel my appointment"],
        responses=_cancel_then("unused"),
        settings=confirming(),
        tools=tools,
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    assert tools.calls == []
    assert tools.declined[0][2] == "the call ended before the caller answered"
    assert h.recorder.types()[-1] == "call.ended"


@pytest.mark.asyncio
async def test_without_the_setting_the_tool_runs_at_once() -> None:
    tools = FakeTools()
    h = await run_session(
        transcripts=["cancel my appointment"],
        responses=_cancel_then("It is cancelled."),
        tools=tools,
    )
    await h.say()
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    assert tools.calls == [CANCEL]
    assert "tool.confirmation" not in h.recorder.types()


# ---------------------------------------------------------------- answers over the question
# No partial at speech start: speech over the agent is judged by its final words alone
# (a backchannel resumes the agent, anything else takes the floor).


async def _over_the_question(h, *, settle_s: float = 0.2) -> None:  # noqa: ANN001
    """The caller asks for the cancellation, then talks while the question is playing."""
    await h.say()
    await h.wait_for("agent.speaking", turn=1)  # the question is audible
    await asyncio.sleep(settle_s)
    await h.say(speech_frames=5, silence_frames=8)


@pytest.mark.asyncio
async def test_a_yes_over_the_question_is_the_answer() -> None:
    tools = FakeTools(
        {"cancel_appointment": ToolResult(ok=True, content='{"status": "cancelled"}')}
    )
    h = await run_session(
        transcripts=["cancel my appointment", "yes"],
        responses=_cancel_then("It is cancelled."),
        settings=confirming(),
        tools=tools,
        stt_speech_partial="",
    )
    await _over_the_question(h)
    await h.wait_for("turn.ended", turn=2)
    await h.session.aclose()

    # The question stopped where the caller said yes: no resume, no question played out.
    assert "agent.resumed" not in h.recorder.types()
    interrupted = h.recorder.first("interrupted")
    assert (interrupted.turn, interrupted.data["reason"]) == (1, "barge_in")
    asked = next(e for e in h.recorder.events if e.type == "turn.ended" and e.turn == 1).data
    assert asked["status"] == "interrupted" and asked["spoken_text"] != QUESTION
    assert QUESTION.startswith(asked["spoken_text"].rstrip("."))
    # The yes answered it: the tool ran once and the LLM went on from its result.
    assert tools.calls == [CANCEL] and tools.declined == []
    turn2 = [e for e in h.recorder.events if e.turn == 2]
    kinds = [e.type for e in turn2]
    assert kinds.index("tool.confirmation") < kinds.index("tool.result") < kinds.index("agent.text")
    confirmed = next(e for e in turn2 if e.type == "tool.confirmation").data
    assert (confirmed["state"], confirmed["answer"]) == ("confirmed", "yes")
    assert h.tts.texts[-1] == "It is cancelled."
    # Neither the cut question nor the "yes" is in the LLM history: call, result, reply.
    request = h.llm.requests[1]
    assert [m["role"] for m in request[-3:]] == ["user", "assistant", "tool"]
    assert request[-1]["content"] == '{"status": "cancelled"}'
    assert h.session.history[-1] == {"role": "assistant", "content": "It is cancelled."}


@pytest.mark.asyncio
async def test_a_no_over_the_question_declines_at_once() -> None:
    tools = FakeTools()
    h = await run_session(
        transcripts=["cancel my appointment", "no"],
        responses=_cancel_then("I left it as it is."),
        settings=confirming(),
        tools=tools,
        stt_speech_partial="",
    )
    await _over_the_question(h)
    await h.wait_for("turn.ended", turn=2)
    await h.session.aclose()

    assert h.recorder.first("interrupted").turn == 1
    assert "agent.resumed" not in h.recorder.types()
    assert tools.calls == []
    assert [(turn, call.id) for turn, call, _ in tools.declined] == [(1, "call_c")]
    assert '"no"' in tools.declined[0][2]
    declined = [e for e in h.recorder.events if e.type == "tool.confirmation"][-1]
    assert (declined.turn, declined.data["state"]) == (2, "declined")
    assert h.llm.requests[1][-1]["role"] == "tool"
    assert h.tts.texts[-1] == "I left it as it is."


@pytest.mark.asyncio
async def test_a_yes_over_an_ordinary_reply_is_still_a_backchannel() -> None:
    reply = " ".join(f"Sentence number {i} goes on." for i in range(4))
    h = await run_session(
        transcripts=["tell me everything", "yes"],
        responses=[text_response(reply)],
        settings=confirming(),
        stt_speech_partial="",
    )
    await h.say()
    await h.wait_for("agent.speaking", turn=1)
    await asyncio.sleep(0.2)
    await h.say(speech_frames=5, silence_frames=8)
    await h.wait_for("turn.ended", turn=1)
    await h.session.aclose()
    resumed = h.recorder.first("agent.resumed").data
    assert (resumed["reason"], resumed["text"]) == ("backchannel", "yes")
    assert "interrupted" not in h.recorder.types()
    ended = h.recorder.first("turn.ended")
    assert (ended.turn, ended.data["status"], ended.data["spoken_text"]) == (
        1,
        "completed",
        reply,
    )
    assert not [e for e in h.recorder.events if e.turn == 2]  # not a turn


@pytest.mark.asyncio
async def test_mm_hmm_over_the_question_resumes_it_and_the_time_out_counts_from_its_end() -> None:
    # "mm-hmm" over the question is neither a yes nor a no: the question goes on. The time-out
    # (shorter than the question) counts from its end: the call is declined only after it.
    tools = FakeTools()
    h = await run_session(
        transcripts=["cancel my appointment", "mm-hmm"],
        responses=_cancel_then("unused"),
        settings=confirming(confirm_timeout_ms=300),
        tools=tools,
        stt_speech_partial="",
    )
    await _over_the_question(h)
    await h.wait_for("turn.ended", turn=1)
    declined = await h.wait_for("tool.result", turn=1)
    await h.session.aclose()

    resumed = h.recorder.first("agent.resumed").data
    assert (resumed["reason"], resumed["text"]) == ("backchannel", "mm-hmm")
    asked = h.recorder.first("turn.ended").data
    assert (asked["status"], asked["spoken_text"]) == ("completed", QUESTION)
    assert declined.data["ok"] is False and "no answer within 0.3 s" in tools.declined[0][2]
    types = [(e.type, e.turn) for e in h.recorder.events]
    assert types.index(("agent.done", 1)) < types.index(("tool.result", 1))
    assert tools.calls == []
