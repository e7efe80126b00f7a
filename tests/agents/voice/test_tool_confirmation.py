"""Spoken confirmation of side-effecting tool calls (``SessionSettings.confirm_tools``),
driven through the voice path with fake providers."""

from __future__ import annotations

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
