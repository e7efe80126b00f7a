"""The turn-taking text heuristics and the echo gate, on their own."""

from __future__ import annotations

import struct

import pytest

from parley.agents.voice.turns import (
    DEFAULT_BACKCHANNELS,
    BackchannelMatcher,
    EchoGate,
    TurnTakingSettings,
    level_dbfs,
    transcript_unfinished,
)


@pytest.mark.parametrize(
    "text",
    [
        "my order number is",
        "My order number is...",
        "my date of birth is",
        "I'd like to change the address to",
        "I received the wrong size and",
        "I need to cancel my",
        "the appointment with the",
        "And so, my fellow Americans,",
        "I want to um",
        "It's for my daughter, she's",
        "Can I move it from",
        "The reason is that I —",
        "because",
    ],
)
def test_unfinished_sentences(text: str) -> None:
    assert transcript_unfinished(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Where is my order number 1 0 4 2?",
        "What's the weather like?",
        "Who is it for?",
        "yes I do",
        "thank you",
        "I think so",
        "had he married a more amiable woman he might have been more respectable than he was",
        "yes it is",
        "that's what it is",
        "I got locked out",
        "can you turn it on",
        "I want this",
        "my order number is 1042",
        "Please remove Michael Chen from payroll, effective March first.",
        "okay",
    ],
)
def test_finished_sentences(text: str) -> None:
    assert not transcript_unfinished(text)


@pytest.mark.parametrize(
    "text",
    [
        "okay",
        "Okay.",
        "Mm-hmm.",
        "mm hmm",
        "uh-huh",
        "Yeah, yeah.",
        "all right",
        "Got it.",
        "okay thanks",
    ],
)
def test_backchannels(text: str) -> None:
    assert BackchannelMatcher(DEFAULT_BACKCHANNELS).matches(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "...",
        "okay but wait",
        "no",
        "stop",
        "yes please cancel it",
        "hold on",
        "okay okay okay okay okay",
    ],
)
def test_not_backchannels(text: str) -> None:
    assert not BackchannelMatcher(DEFAULT_BACKCHANNELS).matches(text)


def test_custom_and_empty_backchannel_lists() -> None:
    assert BackchannelMatcher(["sounds good"]).matches("Sounds good!")
    assert not BackchannelMatcher(["sounds good"]).matches("okay")
    assert not BackchannelMatcher([]).matches("okay")


def _tone(amplitude: int, samples: int = 320) -> bytes:
    return struct.pack("<h", amplitude) * samples


def test_levels() -> None:
    assert level_dbfs(bytes(640)) == -120.0
    assert level_dbfs(_tone(32767)) == pytest.approx(0.0, abs=0.01)
    assert level_dbfs(_tone(3277)) == pytest.approx(-20.0, abs=0.05)


def test_echo_gate_closes_on_echo_and_opens_for_double_talk() -> None:
    gate = EchoGate()  # 6 dB of echo loss assumed, 600 ms window
    gate.agent_frame(_tone(8000, 480), play_at=10.0)  # -12.3 dBFS
    echo, caller = _tone(2000), _tone(8000)  # -24.3 dBFS (12 dB quieter), and as loud
    assert gate.is_echo(echo, at=10.2)
    assert not gate.is_echo(caller, at=10.2)
    # No agent audio within the window: nothing is echo.
    assert not gate.is_echo(echo, at=10.7)
    assert not gate.is_echo(echo, at=9.9)
    # Audio the caller never heard (dropped at a pause) is forgotten.
    gate.forget_after(9.95)
    assert not gate.is_echo(echo, at=10.2)
    assert gate.gated_frames == 1


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="pause_ms"):
        TurnTakingSettings(endpointing_ms=200, pause_ms=300)
    with pytest.raises(ValueError, match="unfinished_endpointing_ms"):
        TurnTakingSettings(unfinished_endpointing_ms=100)
    with pytest.raises(ValueError, match="false_interruption_ms"):
        TurnTakingSettings(false_interruption_ms=-1)
