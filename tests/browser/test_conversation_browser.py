"""An analyst opens a call placed through the widget and plays its recording — in Debian's
Chromium against the served Parley."""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import microphone_wav
from tests.browser.test_widget import open_call, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Decode the recording in the page (Web Audio) and measure each channel's peak.
CHANNEL_PEAKS_JS = """async (src) => {
  const bytes = await (await fetch(src)).arrayBuffer();
  const audio = await new OfflineAudioContext(2, 16000, 16000).decodeAudioData(bytes);
  const peak = (c) => audio.getChannelData(c).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  return {channels: audio.numberOfChannels, seconds: audio.duration, caller: peak(0),
          agent: peak(1)};
}"""


def test_an_analyst_plays_the_recording_of_a_widget_call(
    chromium, host_site, parley_server, tmp_path
) -> None:  # noqa: ANN001
    # An earlier call: a caller on the customer's site talks to the agent, then hangs up.
    mic = microphone_wav(tmp_path / "mic.wav", [("ms_my_voice_is_my_passport.wav", 8.0)])
    page, errors = open_call(chromium, host_site, mic)
    played = wait_until(
        page,
        lambda s: s["playedSamples"] >= 24_000 and any(p["turn"] == 1 for p in s["playbackStarts"]),
        timeout_s=60,
        what="the reply to turn 1 playing",
    )
    page.get_by_role("button", name="Hang up").click()
    conversation_id = played["conversationIds"][0]
    hex_id = conversation_id.replace("-", "")
    deadline = time.monotonic() + 20
    while not parley_server.query(
        "select duration_ms from conversations_recording where conversation_id = ?", hex_id
    ):
        assert time.monotonic() < deadline, f"no recording row\n{parley_server.log()}"
        time.sleep(0.3)
    ((duration_ms,),) = parley_server.query(
        "select duration_ms from conversations_recording where conversation_id = ?", hex_id
    )
    assert not errors, errors

    # The analyst finds it in the list and opens it.
    analyst = chromium().new_context().new_page()
    analyst_errors: list[str] = []
    analyst.on("pageerror", lambda exc: analyst_errors.append(str(exc)))
    analyst.goto(f"{parley_server.url}/dashboard/conversations/")
    analyst.get_by_label("Username").fill("analyst")
    analyst.get_by_label("Password").fill("parley-demo")
    analyst.get_by_role("button", name="Log in").click()
    analyst.get_by_role("heading", name="Conversations").wait_for()
    analyst.locator(f'a[href="/dashboard/conversations/{conversation_id}/"]').first.click()
    analyst.get_by_role("heading", name="Call with Hospital receptionist").wait_for()
    # The caller's words as recognised (the offline STT's exact words vary with the browser's
    # audio processing), shown on turn 1.
    ((user_text,),) = parley_server.query(
        'select user_text from conversations_turn where conversation_id = ? and "index" = 1',
        hex_id,
    )
    caller = analyst.locator("#turn-1 .bubble-caller")
    caller.wait_for()
    assert (user_text or "(no words recognised)") in caller.inner_text()

    audio = analyst.locator("audio[data-recording]")
    analyst.wait_for_function(
        "() => document.querySelector('audio[data-recording]').readyState >= 1", timeout=15_000
    )
    assert audio.evaluate("a => a.duration") == pytest.approx(duration_ms / 1000, abs=0.05)

    # Play from turn 1's marker: the player seeks there and plays.
    marker = analyst.get_by_role("button", name="Play Turn 1", exact=False)
    seek_ms = float(marker.get_attribute("data-seek-ms"))
    assert 0 < seek_ms < duration_ms
    marker.click()
    analyst.wait_for_function(
        "(t) => { const a = document.querySelector('audio[data-recording]');"
        " return !a.paused && a.currentTime > t + 0.5; }",
        arg=seek_ms / 1000,
        timeout=15_000,
    )
    assert audio.evaluate("a => a.error") is None
    analyst.locator("#turn-1.is-playing").wait_for(timeout=5_000)

    # What was played holds both sides of the call: the caller on the left, the agent right.
    peaks = analyst.evaluate(CHANNEL_PEAKS_JS, audio.get_attribute("src"))
    assert peaks["channels"] == 2
    assert peaks["seconds"] == pytest.approx(duration_ms / 1000, abs=0.05)
    assert peaks["caller"] > 0.05 and peaks["agent"] > 0.05, peaks
    assert not analyst_errors, analyst_errors

    # Viewing and playing were audited.
    actions = {
        row[0]
        for row in parley_server.query(
            "select action from conversations_accesslog where conversation_id = ? "
            "and username = 'analyst'",
            hex_id,
        )
    }
    assert {"view", "recording"} <= actions
