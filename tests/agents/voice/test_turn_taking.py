"""Turn-taking with real audio through the session: end of turn (VAD silence, the STT's
speech_final and UtteranceEnd, unfinished sentences), speculative start, barge-in, backchannels,
false interruptions, the echo gate and the tool-call filler.

Caller audio is real speech and real background noise (tests/fixtures/audio); the VAD is the
real Silero model; the STT is the real Deepgram SDK against the local fake, which reports the
words each test scripts over the speech it plays (see ``turn_audio``). Everything runs in
real time.
"""

from __future__ import annotations

import pytest

from parley.agents.voice.messages import LLMDone, TextDelta, ToolCallRequest
from parley.agents.voice.turns import TurnTakingSettings
from parley.testing.deepgram_fake import FakeDeepgram
from tests.agents.voice.fakes import FakeLLM, FakeTTS, text_response
from tests.agents.voice.turn_audio import (
    DG_KEY,
    FRAME_BYTES,
    RATE,
    CallerAudio,
    ClipTTS,
    SlowTools,
    gain_db,
    mix,
    noise,
    speech,
    speech_span_s,
    start_call,
)

pytestmark = pytest.mark.asyncio

REPLY = (
    "Thank you for calling the clinic. I can help you book, move or cancel an appointment, "
    "and I can also answer questions about our opening hours."
)
NOISES = [
    "atmospheric.wav",
    "bus.wav",
    "buzz.wav",
    "drain.wav",
    "factory.wav",
    "traffic.wav",
    "tram.wav",
]


@pytest.fixture
async def dg():
    async with FakeDeepgram(api_key=DG_KEY) as fake:
        yield fake


def caller_text(call) -> list[str]:  # noqa: ANN001
    return [e.data["text"] for e in call.of("transcript.final")]


# ---------------------------------------------------------------- end of turn


def _my_voice_is_pause() -> CallerAudio:
    """ "My voice is" ... 1.2 s ... "my passport, verify me." (one recording, cut after "is")."""
    return (
        CallerAudio()
        .pause(0.5)
        .add(speech("ms_my_voice_is_my_passport", 0.0, 1.61), "My voice is")
        .pause(1.2)
        .add(speech("ms_my_voice_is_my_passport", 1.61), "my passport, verify me.")
    )


async def test_a_pause_inside_a_sentence_does_not_end_the_turn(dg) -> None:  # noqa: ANN001
    audio = _my_voice_is_pause()
    dg.set_script(audio.script)
    call = await start_call(dg, responses=[text_response("Go on."), text_response("Verified.")])
    await call.speak(audio)
    await call.wait_for(lambda c: c.of("agent.done"))
    await call.session.aclose()

    # One turn with the whole sentence, though the STT finalized "My voice is" at the pause.
    assert call.caller_turns() == [1]
    assert caller_text(call) == ["My voice is my passport, verify me."]
    assert call.of("transcript.final")[0].data["unfinished"] is False
    # The LLM was started speculatively on the unfinished text after the end-of-turn silence
    # and discarded when the caller went on; nothing of its answer was said or shown.
    speculations = [(e.data["status"], e.data["text"]) for e in call.of("llm.speculation")]
    assert ("discarded", "My voice is") in speculations
    asked = [r[-1]["content"] for r in call.llm.requests]
    assert asked == ["My voice is", "My voice is my passport, verify me."]
    assert call.tts.texts == ["Verified."]  # type: ignore[attr-defined]
    assert [e.data["text"] for e in call.of("agent.text")] == ["Verified."]


async def test_without_the_unfinished_rule_the_same_pause_ends_the_turn(dg) -> None:  # noqa: ANN001
    audio = _my_voice_is_pause()
    dg.set_script(audio.script)
    settings = TurnTakingSettings(unfinished_endpointing_ms=500)
    call = await start_call(
        dg, turn_taking=settings, responses=[text_response("Go on."), text_response("Done.")]
    )
    await call.speak(audio)
    await call.wait_for(lambda c: len(c.of("turn.ended")) >= 2)
    await call.session.aclose()
    assert caller_text(call)[0] == "My voice is"
    assert call.caller_turns() == [1, 2]


async def test_a_long_pause_after_a_comma_in_a_real_sentence(dg) -> None:  # noqa: ANN001
    # JFK: "And so, my fellow Americans," then 1.1 s of silence (the recording's own), "ask not".
    clip = speech("jfk_ask_not", 0.0, 4.4)
    audio = CallerAudio().pause(0.3)
    audio.add(clip[: int(2.14 * RATE) * 2], "And so, my fellow Americans,")
    audio.add(clip[int(2.14 * RATE) * 2 :], "ask not.")
    dg.set_script(audio.script)
    call = await start_call(dg, responses=[text_response("Yes?")])
    await call.speak(audio)
    await call.wait_for(lambda c: c.of("agent.done"))
    await call.session.aclose()
    assert caller_text(call) == ["And so, my fellow Americans, ask not."]


async def test_speculative_start_has_the_answer_on_its_way_at_the_end_of_turn(dg) -> None:  # noqa: ANN001
    audio = (
        CallerAudio()
        .pause(0.4)
        .add(speech("ms_whats_the_weather_like"), "What's the weather like?")
    )
    dg.set_script(audio.script)
    # Deepgram's endpointing off: the VAD pause (300 ms) asks for the final; the turn ends
    # after 800 ms of silence.
    settings = TurnTakingSettings(endpointing_ms=800)
    call = await start_call(
        dg, turn_taking=settings, dg_endpointing_ms=None, responses=[text_response("Sunny.")]
    )
    await call.speak(audio)
    await call.wait_for(lambda c: c.of("agent.done"))
    await call.session.aclose()

    types = [e.type for e in call.recorder.events]
    assert types.index("llm.speculation") < types.index("transcript.final")
    assert [e.data["status"] for e in call.of("llm.speculation")] == ["started", "used"]
    assert len(call.llm.requests) == 1
    metrics = call.of("turn.metrics")[-1].data
    assert call.of("transcript.final")[0].data["end_of_turn"] == "silence"
    # The request went out at the pause, ~500 ms before the end of turn.
    assert metrics["speculative_lead_ms"] > 300
    assert metrics["endpointing_ms"] >= 800


async def test_without_speculation_the_request_waits_for_the_end_of_turn(dg) -> None:  # noqa: ANN001
    audio = (
        CallerAudio()
        .pause(0.4)
        .add(speech("ms_whats_the_weather_like"), "What's the weather like?")
    )
    dg.set_script(audio.script)
    settings = TurnTakingSettings(endpointing_ms=800, speculative_start=False)
    call = await start_call(
        dg, turn_taking=settings, dg_endpointing_ms=None, responses=[text_response("Sunny.")]
    )
    await call.speak(audio)
    await call.wait_for(lambda c: c.of("agent.done"))
    await call.session.aclose()
    assert not call.of("llm.speculation")
    assert "speculative_lead_ms" not in call.of("turn.metrics")[-1].data


async def test_deepgram_speech_final_ends_a_finished_turn_before_the_vad(dg) -> None:  # noqa: ANN001
    audio = CallerAudio().pause(0.4).add(speech("ms_turn_on_the_lamp"), "Turn on the lamp.")
    dg.set_script(audio.script)
    settings = TurnTakingSettings(endpointing_ms=800, pause_ms=600)
    call = await start_call(
        dg, turn_taking=settings, dg_endpointing_ms=200, responses=[text_response("Done.")]
    )
    await call.speak(audio)
    await call.wait_for(lambda c: c.of("agent.done"))
    await call.session.aclose()
    final = call.of("transcript.final")[0].data
    assert final["end_of_turn"] == "stt_speech_final"
    assert [e.data.get("by") for e in call.of("vad.speech_end")] == ["stt"]
    # Well before the VAD's own 600 ms pause.
    assert call.of("turn.metrics")[-1].data["endpointing_ms"] < 600


async def test_utterance_end_ends_the_turn_while_a_background_talker_goes_on(dg) -> None:  # noqa: ANN001
    talker = gain_db(speech("librispeech_quilter"), -14)  # a TV: speech, never transcribed
    caller = speech("ms_whats_the_weather_like")
    audio = CallerAudio().pause(0.3)
    at = len(audio.pcm)
    audio.add(caller, "What's the weather like?")
    audio.pcm[at:] = mix(bytes(audio.pcm[at:]), talker[: len(audio.pcm) - at])
    audio.add(talker[len(caller) :] + bytes(RATE))
    dg.set_script(audio.script)
    settings = TurnTakingSettings()
    call = await start_call(
        dg, turn_taking=settings, dg_endpointing_ms=None, responses=[text_response("Sunny.")]
    )
    await call.speak(audio)
    await call.wait_for(lambda c: c.of("agent.done"))
    await call.session.aclose()
    final = call.of("transcript.final")[0]
    assert final.data["end_of_turn"] == "utterance_end"
    # ... while the VAD still heard the talker: the turn ended before the recording did.
    assert call.wall(final) < call.at_stream_s(audio.seconds - 1.5)


@pytest.mark.parametrize("noise_file", ["bus.wav", "factory.wav", "traffic.wav"])
async def test_speech_in_noise_ends_its_turn_once(dg, noise_file: str) -> None:  # noqa: ANN001
    caller = speech("ms_whats_the_weather_like")
    audio = CallerAudio().add(bytes(RATE // 2 * 2))
    audio.add(caller, "What's the weather like?").pause(2.0)
    # 10 dB below the speech, all the way through.
    speech_rms = 20 * __import__("math").log10(
        max(1.0, float(__import__("numpy").frombuffer(caller, dtype="<i2").std())) / 32768
    )
    background = noise(noise_file, audio.seconds, rms_dbfs=speech_rms - 10)
    audio.pcm[:] = mix(bytes(audio.pcm), background)
    dg.set_script(audio.script)
    call = await start_call(dg, dg_endpointing_ms=None, responses=[text_response("Sunny.")])
    await call.speak(audio)
    await call.wait_for(lambda c: c.of("agent.done"))
    await call.session.aclose()
    assert call.caller_turns() == [1]
    assert caller_text(call) == ["What's the weather like?"]
    assert call.of("transcript.final")[0].data["end_of_turn"] == "silence"


# ---------------------------------------------------------------- barge-in


LEAD_IN_S = 0.8  # the caller speaks this far into the agent's greeting


async def _over_the_greeting(dg, clip: bytes, words: str = "", **kwargs):  # noqa: ANN001, ANN003, ANN202
    """A call whose greeting (a long reply) is playing when the caller says ``clip``
    (``words``, for the STT) ``LEAD_IN_S`` into it. Returns the call and the clip's start
    (stream seconds)."""
    audio = CallerAudio().pause(LEAD_IN_S)
    start_s = audio.seconds
    audio.add(clip, words)
    dg.set_script(audio.script)
    call = await start_call(dg, greeting=REPLY, **kwargs)
    await call.speak(audio)
    return call, start_s


async def test_barge_in_stops_the_agent_within_100_ms_and_takes_the_turn(dg) -> None:  # noqa: ANN001
    clip = speech("ms_whats_the_weather_like")
    onset_s, _ = speech_span_s(clip)
    call, start_s = await _over_the_greeting(
        dg, clip, "What's the weather like?", responses=[text_response("Sunny.")]
    )
    await call.wait_for(lambda c: any(e.turn == 1 for e in c.of("agent.done")))
    await call.session.aclose()

    # Stopped within 100 ms of caller audio after the speech began (measured on the audio's
    # clock: frames pushed by the time the pause was decided; bench/ttfa.py reports wall time).
    paused = call.of("agent.paused")[0]
    assert call.audio_s_at(paused) - (start_s + onset_s) <= 0.100
    interrupted = call.of("interrupted")[0]
    assert interrupted.turn == 0 and interrupted.data["reason"] == "barge_in"
    # No greeting audio after the pause: the next frame sent is the answer's.
    first_answer = call.wall(next(e for e in call.of("agent.speaking") if e.turn == 1))
    assert all(
        t >= first_answer - 0.001 for t in call.recorder.frame_times if t > call.wall(paused)
    )
    heard = interrupted.data["spoken_text"]
    assert heard and REPLY.startswith(heard)
    # The caller's speech is turn 1, answered.
    assert call.caller_turns() == [1]
    assert caller_text(call) == ["What's the weather like?"]
    assert call.session.history[-2:] == [
        {"role": "user", "content": "What's the weather like?"},
        {"role": "assistant", "content": "Sunny."},
    ]


@pytest.mark.parametrize("word", ["okay", "mm-hmm", "yeah"])
async def test_backchannels_do_not_interrupt(dg, word: str) -> None:  # noqa: ANN001
    clip = speech("audiomnist_nine_arabic_accent")  # a single short real word
    call, _ = await _over_the_greeting(dg, clip, word)
    await call.wait_for(lambda c: c.of("agent.done"), timeout_s=20)
    await call.session.aclose()

    assert call.of("agent.paused") and not call.of("interrupted")
    resumed = call.of("agent.resumed")
    assert [e.data["reason"] for e in resumed] == ["backchannel"]
    assert resumed[0].data["text"] == word
    assert call.caller_turns() == []  # not a turn
    greeting = call.ended(0).data
    assert greeting["status"] == "completed" and greeting["spoken_text"] == REPLY
    assert greeting["resumed"] == ["backchannel"]
    # Every frame of the greeting was played once: what the pause dropped was sent again.
    tts_frames = -(-len(REPLY) * 240 // 480)  # FakeTTS: 10 ms per character, whole frames
    assert greeting["agent_audio_ms"] == pytest.approx(tts_frames * 20, abs=20)


async def test_a_word_that_is_not_a_backchannel_interrupts(dg) -> None:  # noqa: ANN001
    clip = speech("audiomnist_nine_arabic_accent")
    call, _ = await _over_the_greeting(dg, clip, "Stop.", responses=[text_response("Sure.")])
    await call.wait_for(lambda c: any(e.turn == 1 for e in c.of("turn.ended")), timeout_s=20)
    await call.session.aclose()
    assert call.of("interrupted")[0].turn == 0
    assert caller_text(call) == ["Stop."]


async def test_a_sound_without_words_is_a_false_interruption_and_the_agent_resumes(dg) -> None:  # noqa: ANN001
    # A real vocal sound the STT makes no words of (a cough, a hum): nothing is scripted.
    clip = speech("audiomnist_six_german_female")
    call, _ = await _over_the_greeting(dg, gain_db(clip, 30))
    await call.wait_for(lambda c: c.of("agent.done"), timeout_s=20)
    await call.session.aclose()
    assert call.of("agent.paused")
    assert [e.data["reason"] for e in call.of("agent.resumed")] == ["false_interruption"]
    assert not call.of("interrupted") and call.caller_turns() == []
    assert call.ended(0).data["spoken_text"] == REPLY


async def test_a_click_too_short_for_speech_resumes_at_once(dg) -> None:  # noqa: ANN001
    click = speech("ms_whats_the_weather_like")
    onset, _ = speech_span_s(click)
    burst = click[int(onset * RATE) * 2 : int((onset + 0.12) * RATE) * 2]  # 120 ms of a word
    call, _ = await _over_the_greeting(dg, burst)
    await call.wait_for(lambda c: c.of("agent.done"), timeout_s=20)
    await call.session.aclose()
    paused, resumed = call.of("agent.paused"), call.of("agent.resumed")
    assert len(paused) == 1 and [e.data["reason"] for e in resumed] == ["false_interruption"]
    # Resumed on the VAD's cancelled onset, before the false-interruption window (800 ms).
    assert resumed[0].data["paused_ms"] < 800
    assert call.ended(0).data["spoken_text"] == REPLY


@pytest.mark.parametrize("noise_file", NOISES)
async def test_background_noise_does_not_stop_the_agent(dg, noise_file: str) -> None:  # noqa: ANN001
    call, _ = await _over_the_greeting(dg, noise(noise_file, 2.0, rms_dbfs=-25))
    await call.wait_for(lambda c: c.of("agent.done"), timeout_s=20)
    await call.session.aclose()
    assert not call.of("agent.paused")
    assert call.ended(0).data["spoken_text"] == REPLY


# ---------------------------------------------------------------- echo gate


def _echo_mic(
    call, *, delay_s: float = 0.15, loss_db: float = 12.0, caller: bytes = b"", caller_at: int = 0
):  # noqa: ANN001, ANN202
    """A microphone next to the loudspeaker: the agent's audio comes back ``delay_s`` after
    it was sent, ``loss_db`` quieter; plus the caller's own ``caller`` speech from frame
    ``caller_at`` (of this mic) on."""
    import numpy as np

    from parley.agents.voice.audio import resample_pcm16

    played: list[tuple[float, bytes]] = []
    state = {"seen": 0, "i": 0}
    gain = 10 ** (-loss_db / 20)

    def mic(index: int, frame: bytes) -> bytes:
        import time

        new = call.recorder.audio[state["seen"] :]
        times = call.recorder.frame_times[len(played) :]
        for j, t in enumerate(times):
            chunk = bytes(new[j * 960 : (j + 1) * 960])
            played.append((t, resample_pcm16(chunk, from_hz=24_000, to_hz=16_000)))
        state["seen"] = len(call.recorder.audio)
        now = time.monotonic()
        echo = np.zeros(320)
        # The frame the loudspeaker plays now: the one sent delay_s ago (frames play back to
        # back once the lead is buffered).
        due = [pcm for t, pcm in played if now - delay_s - 0.02 < t <= now - delay_s]
        if due:
            echo = np.frombuffer(due[-1], dtype="<i2").astype(np.float64) * gain
        out = echo
        k = state["i"] - caller_at
        if caller and 0 <= k * 640 < len(caller):
            piece = np.frombuffer(caller[k * 640 : (k + 1) * 640], dtype="<i2").astype(np.float64)
            out = out[: len(piece)] + piece
        state["i"] += 1
        return np.clip(out, -32768, 32767).astype("<i2").tobytes()

    return mic


@pytest.mark.parametrize("gate", [False, True])
async def test_the_echo_gate_keeps_the_agents_own_voice_from_pausing_it(dg, gate: bool) -> None:  # noqa: ANN001
    tts = ClipTTS(speech("librispeech_quilter"))
    settings = TurnTakingSettings(echo_gate=gate)
    call = await start_call(dg, greeting="Hello there.", tts=tts, turn_taking=settings)
    await call.speak(bytes(FRAME_BYTES * 150), mic=_echo_mic(call))  # 3 s of echo only
    await call.session.aclose()
    if gate:
        assert not call.of("agent.paused")
        assert call.session.echo_gate is not None and call.session.echo_gate.gated_frames > 50
    else:
        assert call.of("agent.paused"), "without the gate the agent's own voice pauses it"


async def test_the_echo_gate_lets_the_caller_barge_in_over_the_echo(dg) -> None:  # noqa: ANN001
    tts = ClipTTS(speech("librispeech_quilter"))
    clip = speech("ms_whats_the_weather_like")
    onset_s, _ = speech_span_s(clip)
    lead_frames = 75  # 1.5 s of echo alone first
    start_s = lead_frames * 0.02
    audio = CallerAudio().pause(start_s).add(clip, "What's the weather like?")
    dg.set_script(audio.script)
    settings = TurnTakingSettings(echo_gate=True)
    call = await start_call(
        dg,
        greeting="Hello there.",
        tts=tts,
        turn_taking=settings,
        responses=[text_response("Sunny.")],
    )
    mic = _echo_mic(call, caller=clip, caller_at=lead_frames)
    await call.speak(bytes(FRAME_BYTES * (lead_frames + len(clip) // FRAME_BYTES + 25)), mic=mic)
    await call.wait_for(lambda c: any(e.turn == 1 for e in c.of("turn.ended")), timeout_s=20)
    await call.session.aclose()
    paused = call.of("agent.paused")[0]
    assert call.audio_s_at(paused) - (start_s + onset_s) <= 0.100
    assert call.of("interrupted")[0].turn == 0
    assert caller_text(call) == ["What's the weather like?"]


# ---------------------------------------------------------------- filler


LOOKUP = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
}


def _tool_then_answer(preamble: str = "") -> list[list]:
    first = [TextDelta(preamble)] if preamble else []
    return [
        [*first, LLMDone(tool_calls=(ToolCallRequest("c1", "lookup", "{}"),))],
        text_response("Your appointment is on Tuesday."),
    ]


@pytest.mark.parametrize(
    ("delay_s", "preamble", "filler"),
    [(1.5, "", True), (0.1, "", False), (1.5, "Let me check.", False)],
    ids=["slow-tool", "fast-tool", "llm-said-something"],
)
async def test_a_slow_tool_call_gets_one_filler_line_and_no_overlap(
    dg,
    delay_s: float,
    preamble: str,
    filler: bool,  # noqa: ANN001
) -> None:
    audio = CallerAudio().pause(0.3).add(speech("ms_turn_on_the_lamp"), "When is my appointment?")
    dg.set_script(audio.script)
    settings = TurnTakingSettings(filler_after_ms=500)
    call = await start_call(
        dg,
        turn_taking=settings,
        responses=_tool_then_answer(preamble),
        tools=SlowTools(delay_s),
        tools_schema=(LOOKUP,),
    )
    await call.speak(audio)
    await call.wait_for(lambda c: c.of("agent.done"), timeout_s=20)
    await call.session.aclose()
    texts = [(e.data["text"], e.data.get("filler", False)) for e in call.of("agent.text")]
    fillers = [t for t, is_filler in texts if is_filler]
    assert fillers == (["One moment while I check that."] if filler else [])
    if filler:
        # Said while the tool ran, before the answer; the answer's audio follows it.
        types = [e.type for e in call.recorder.events]
        assert types.index("agent.speaking") < types.index("tool.result")
        segments = call.session._segments
        assert [s.text for s in segments][:1] == ["One moment while I check that."]
        assert segments[0].play_times[-1] + 0.02 <= segments[1].play_times[0] + 1e-6
    assert texts[-1][0] == "Your appointment is on Tuesday."


async def test_a_retracted_reply_when_the_caller_goes_on_after_the_end_of_turn(dg) -> None:  # noqa: ANN001
    # The turn ends (finished-sounding) at a 0.9 s pause; the caller goes on before any
    # audio of the answer (slow TTS): the answer is withdrawn and the turn continues.
    audio = (
        CallerAudio()
        .pause(0.3)
        .add(speech("ms_turn_on_the_lamp"), "Turn on the lamp.")
        .pause(0.9)
        .add(speech("ms_whats_the_weather_like"), "What's the weather like?")
    )
    dg.set_script(audio.script)
    tts = FakeTTS(chunk_delay_s=0.0)
    # The first answer's only chunk is known at the end of its stream, 2 s after the request.
    first = [TextDelta("Done."), LLMDone(finish_reason="stop")]
    slow_llm = FakeLLM([first, text_response("Done and sunny.")], token_delay_s=1.0)
    call = await start_call(dg, llm=slow_llm, tts=tts, dg_endpointing_ms=None)
    await call.speak(audio)
    await call.wait_for(lambda c: c.of("agent.done"), timeout_s=20)
    await call.session.aclose()
    assert call.of("turn.continued") and call.caller_turns() == [1]
    finals = caller_text(call)
    assert finals[0] == "Turn on the lamp."
    assert finals[-1] == "Turn on the lamp. What's the weather like?"
    assert tts.texts == ["Done and sunny."]
    assert call.session.history[1:] == [
        {"role": "user", "content": "Turn on the lamp. What's the weather like?"},
        {"role": "assistant", "content": "Done and sunny."},
    ]
