"""The caller widget on a customer's page (another origin), in Debian's Chromium.

The fake microphone plays real human speech; the call goes through the real server (VAD,
PocketSphinx, the LLM simulator, eSpeak NG) and the agent's audio through the playback
AudioWorklet. What is asserted is what a caller would notice: captions, audio played,
playback stopping on barge-in, and the latency record the server keeps.
"""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import microphone_wav

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def stats(page) -> dict:  # noqa: ANN001
    return page.evaluate("() => document.querySelector('parley-widget').parley.stats")


def wait_until(page, predicate, *, timeout_s: float, what: str) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while True:
        current = stats(page)
        if predicate(current):
            return current
        if time.monotonic() > deadline:
            state = page.evaluate("() => document.querySelector('parley-widget').parley.state")
            raise AssertionError(f"timed out waiting for {what}; state {state}, stats {current}")
        page.wait_for_timeout(100)


def open_call(chromium, host_site, mic):  # noqa: ANN001, ANN201
    browser = chromium(mic)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(host_site)
    launcher = page.get_by_role("button", name="Call reception: open the voice call panel")
    launcher.click()
    page.get_by_role("button", name="Start call").click()
    return page, errors


def test_a_caller_on_another_site_talks_to_the_agent(
    chromium, host_site, parley_server, tmp_path
) -> None:  # noqa: ANN001
    mic = microphone_wav(tmp_path / "mic.wav", [("ms_my_voice_is_my_passport.wav", 8.0)])
    page, errors = open_call(chromium, host_site, mic)
    widget = page.locator("parley-widget")

    page.get_by_role("status").filter(has_text="Listening").wait_for(timeout=30_000)
    assert page.evaluate("() => document.querySelector('parley-widget').parley.microphoneLive")
    # Turn 1 is the caller's first utterance (turn 0 would be a greeting).
    caller_line = widget.locator('.line.caller[data-turn="1"]:not(.partial)')
    caller_line.first.wait_for(timeout=30_000)
    agent_line = widget.locator('.line.agent[data-turn="1"]')
    agent_line.first.wait_for(timeout=30_000)
    # Agent audio actually played: samples through the playback worklet (24 kHz).
    played = wait_until(
        page,
        lambda s: s["playedSamples"] >= 24_000 and any(p["turn"] == 1 for p in s["playbackStarts"]),
        timeout_s=30,
        what="the reply to turn 1 playing",
    )
    assert played["sampleRateHz"] in (44_100, 48_000, 16_000, 24_000, 96_000)
    assert played["sentFrames"] > 50  # 20 ms microphone frames reached the server
    start = next(p for p in played["playbackStarts"] if p["turn"] == 1)
    assert start["playout_delay_ms"] >= 0
    caller_text = caller_line.first.inner_text()
    agent_text = agent_line.first.inner_text()
    assert caller_text.strip() and agent_text.strip()

    # The caller hangs up: the widget says so and releases the microphone.
    page.get_by_role("button", name="Hang up").click()
    page.wait_for_timeout(500)
    widget_state = page.evaluate(
        "() => [document.querySelector('parley-widget').dataset.state,"
        " document.querySelector('parley-widget').shadowRoot.querySelector('.status').textContent]"
    )
    assert widget_state == ["ended", "Call ended"], (widget_state, errors)
    assert (
        page.evaluate("() => document.querySelector('parley-widget').parley.microphoneLive")
        is False
    )
    assert not errors, errors

    # The server's record: the call, the caller's words, TTFA at the server and at the ear.
    conversation_id = played["conversationIds"][0].replace("-", "")
    deadline = time.monotonic() + 15
    while True:
        rows = parley_server.query(
            "select user_text, ttfa_ms, ear_ttfa_ms, playout_delay_ms, network_rtt_ms "
            'from conversations_turn where conversation_id = ? and "index" = 1',
            conversation_id,
        )
        if rows and rows[0][2] is not None:
            break
        assert time.monotonic() < deadline, f"no ear TTFA recorded: {rows}\n{parley_server.log()}"
        time.sleep(0.3)
    user_text, ttfa_ms, ear_ttfa_ms, playout_ms, rtt_ms = rows[0]
    assert user_text.strip() == caller_text.strip()
    assert ear_ttfa_ms == pytest.approx(ttfa_ms + playout_ms + (rtt_ms or 0), abs=0.5)
    assert ear_ttfa_ms > ttfa_ms > 0
    status = parley_server.query(
        "select status from conversations_conversation where replace(id, '-', '') = ?",
        conversation_id,
    )
    assert status == [("ended",)]


def test_barge_in_stops_playback(chromium, host_site, parley_server, tmp_path) -> None:  # noqa: ANN001
    # The caller asks something, then talks over the agent's answer.
    mic = microphone_wav(
        tmp_path / "mic.wav",
        [("ms_my_voice_is_my_passport.wav", 2.6), ("ms_whats_the_weather_like.wav", 8.0)],
    )
    page, errors = open_call(chromium, host_site, mic)
    flushed = wait_until(
        page,
        lambda s: s["flushes"] and "dropped" in s["flushes"][0],
        timeout_s=45,
        what="an interruption",
    )
    flush = flushed["flushes"][0]
    assert flush["turn"] == 1
    # The worklet stopped at its next render quantum: nothing more of that reply is played.
    page.wait_for_timeout(400)
    after = stats(page)
    assert after["playedSamples"] - flush["played"] <= 128, (flush, after)
    assert after["queuedSamples"] == 0
    agent_line = page.locator("parley-widget .line.agent.cut")
    agent_line.first.wait_for(timeout=5_000)
    page.get_by_role("button", name="Hang up").click()
    assert not errors, errors
    deadline = time.monotonic() + 15
    conversation_id = flushed["conversationIds"][0].replace("-", "")
    while True:
        rows = parley_server.query(
            'select status from conversations_turn where conversation_id = ? and "index" = 1',
            conversation_id,
        )
        if rows == [("interrupted",)]:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.3)


def test_a_dropped_connection_reconnects_with_a_new_token(
    chromium, host_site, network, tmp_path
) -> None:  # noqa: ANN001
    mic = microphone_wav(tmp_path / "mic.wav", [("ms_turn_on_the_lamp.wav", 20.0)])
    page, errors = open_call(chromium, host_site.replace("index.html", "proxied.html"), mic)
    wait_until(page, lambda s: len(s["conversationIds"]) == 1, timeout_s=30, what="a call")
    page.evaluate(
        """() => { window.__parleyStates = [];
             document.addEventListener('parley:state',
               e => window.__parleyStates.push(e.detail.state)); }"""
    )
    assert network.cut() > 0  # the network drops
    # Backoff, a new token (tokens are single-use), a new call; the microphone is kept.
    second = wait_until(
        page, lambda s: len(s["conversationIds"]) == 2, timeout_s=40, what="a reconnect"
    )
    page.get_by_role("status").filter(has_text="Listening").wait_for(timeout=10_000)
    states = page.evaluate("() => window.__parleyStates")
    assert states[0] == "reconnecting" and states[-1] == "listening", states
    assert page.evaluate("() => document.querySelector('parley-widget').parley.microphoneLive")
    assert second["conversationIds"][0] != second["conversationIds"][1]
    page.get_by_role("button", name="Hang up").click()
    assert not errors, errors
