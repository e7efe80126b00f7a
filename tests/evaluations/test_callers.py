"""Simulated callers: the scripted one's rules, and the LLM one over the OpenAI wire."""

from __future__ import annotations

import httpx

from parley.agents.simulator_runtime import simulator_base_url
from parley.evaluations.callers import LLMCaller, ScriptedCaller, first_person

INSTRUCTIONS = (
    "Your name is Dr. Sarah Johnson. You need to schedule an appointment for patient Emily "
    "Davis for January 25, 2024 at 10:00 AM with yourself in Cardiology. Confirm the "
    "appointment details."
)


def test_instructions_become_what_a_caller_says() -> None:
    assert first_person(INSTRUCTIONS) == [
        "My name is Dr. Sarah Johnson.",
        "I need to schedule an appointment for patient Emily Davis for January 25, 2024 at "
        "10:00 AM with myself in Cardiology.",
        "Please confirm the appointment details.",
    ]
    hr = (
        "You are an IT administrator. Your name is {'first_name': 'Emma', 'last_name': "
        "'Brown'}. You don't know your org id. Do not provide the order ID until prompted."
    )
    assert first_person(hr) == [
        "I am an IT administrator.",
        "My name is Emma Brown.",
        "I don't know my org id.",
    ]


async def test_scripted_caller_follows_the_conversation_then_hangs_up() -> None:
    caller = ScriptedCaller(instructions=INSTRUCTIONS)
    opening = await caller.next_line("Hello, how can I help?")
    assert opening is not None and opening.startswith("My name is Dr. Sarah Johnson.")
    assert "Emily Davis" in opening
    assert await caller.next_line("Shall I book it for you?") == "Yes, please go ahead."
    details = await caller.next_line("Which patient is it for?")
    assert details is not None and "Emily Davis" in details and "Please" not in details
    goodbye = await caller.next_line("Done. Is there anything else I can help you with?")
    assert goodbye == "No, that's all. Thank you, goodbye."
    assert await caller.next_line("Thank you for calling. Goodbye.") is None
    assert caller.tokens == 0 and caller.name == "scripted"


async def test_scripted_caller_stops_repeating_itself_and_has_a_turn_cap() -> None:
    caller = ScriptedCaller(instructions=INSTRUCTIONS, max_turns=4)
    await caller.next_line("")
    lines = [await caller.next_line("Sorry, what was the name?") for _ in range(4)]
    # Details twice, then it gives up politely; then the cap ends the call.
    assert lines[0] == lines[1] and "Emily Davis" in lines[0]
    assert lines[2] == "No, that's all. Thank you, goodbye."
    assert lines[3] is None


async def test_llm_caller_speaks_over_the_openai_api_and_ends_on_its_mark() -> None:
    base = simulator_base_url(ttft_ms=5, itl_ms=1)
    script = {
        "turns": [
            [{"text": "Hi, I'd like to cancel my appointment with Dr. Sarah Johnson."}],
            [{"text": "Yes please. Thanks, goodbye. [END]"}],
        ]
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base.removesuffix('/v1')}/simulator/scripts/caller-test", json=script
        )
        assert response.status_code in (200, 201), response.text
    caller = LLMCaller(
        instructions="You are John Smith. Cancel your appointment with Dr. Sarah Johnson.",
        base_url=base,
        model="simulator-script/caller-test",
    )
    try:
        first = await caller.next_line("")
        second = await caller.next_line("I found it. Shall I cancel it?")
        third = await caller.next_line("It is cancelled. Goodbye.")
    finally:
        await caller.aclose()
    assert first == "Hi, I'd like to cancel my appointment with Dr. Sarah Johnson."
    assert second == "Yes please. Thanks, goodbye."  # the end mark is not spoken
    assert third is None
    assert caller.tokens > 0
    assert caller.name == "llm:simulator-script/caller-test"
