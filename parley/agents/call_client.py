"""A caller from the command line: streams WAV files over the caller WebSocket in real time.

Speaks the protocol of docs/protocol.md exactly as the browser widget does: 20 ms binary
PCM16 frames at 16 kHz, paced in real time, silence between utterances (a microphone never
stops sending), ``{"type": "hangup"}`` at the end. Imports no Django, so it also runs
against a remote Parley (``--url``).

Outputs in ``out_dir``: ``transcript.jsonl`` (every event received, in order, with the
client's receive time), ``agent.wav`` (the agent's audio, 24 kHz mono, laid on the call's
timeline with silence where the agent was quiet) and ``latency.json`` (per-turn metrics and
p50/p95/min/max per component).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

from parley.agents.voice.audio import load_wav_resampled, write_wav
from parley.agents.voice.messages import INPUT_FRAME_BYTES, INPUT_SAMPLE_RATE_HZ
from parley.agents.voice.metrics import latency_summary, latency_table

FRAME_S = 0.020
SILENCE_FRAME = bytes(INPUT_FRAME_BYTES)


class CallError(RuntimeError):
    """The call could not be placed or did not complete (refused, error event, time-out)."""


@dataclass
class CallResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    agent_audio: bytearray = field(default_factory=bytearray)
    output_sample_rate_hz: int = 24_000
    conversation_id: str | None = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    def turn_metrics(self) -> list[dict[str, Any]]:
        return [e for e in self.of_type("turn.metrics") if e.get("turn", 0) > 0]


async def call_run(
    *,
    url: str,
    audio_paths: list[Path],
    trailing_silence_ms: int = 600,
    reply_timeout_s: float = 60.0,
    realtime: bool = True,
) -> CallResult:
    """Place a call: stream each WAV (any sample rate; resampled to 16 kHz) as one utterance,
    wait for the agent's reply to each, then hang up.

    Raises :class:`CallError` when the server refuses the call, sends a fatal error, or a
    reply does not finish within ``reply_timeout_s``.
    """
    utterances = [load_wav_resampled(p, sample_rate_hz=INPUT_SAMPLE_RATE_HZ) for p in audio_paths]
    result = CallResult()
    started = time.monotonic()
    changed = asyncio.Condition()

    async with websockets.connect(url, max_size=2**22, open_timeout=30) as ws:
        placed_at = time.monotonic()
        # Wall-clock position of the agent's audio on the call timeline (for agent.wav).
        agent_clock = {"next_at": 0.0}

        async def receive() -> None:
            async for message in ws:
                now = time.monotonic()
                if isinstance(message, bytes):
                    # Lay the audio on the call timeline: a pause of the agent (more than
                    # 100 ms between the end of its audio and the next frame) becomes silence.
                    rate = result.output_sample_rate_hz
                    end = agent_clock["next_at"]
                    gap_s = (now - placed_at) - end
                    if gap_s > 0.1:
                        result.agent_audio.extend(bytes(int(gap_s * rate) * 2))
                        end += int(gap_s * rate) / rate
                    result.agent_audio.extend(message)
                    agent_clock["next_at"] = end + len(message) / 2 / rate
                    continue
                event = json.loads(message)
                event["received_ms"] = round((now - started) * 1000, 1)
                if event.get("type") in ("agent.paused", "interrupted"):
                    # Like the widget: audio queued beyond this moment is dropped (after a
                    # pause the server sends it again).
                    rate = result.output_sample_rate_hz
                    at_s = now - placed_at
                    del result.agent_audio[int(at_s * rate) * 2 :]
                    agent_clock["next_at"] = min(agent_clock["next_at"], at_s)
                if event.get("type") == "session.started":
                    result.conversation_id = event.get("conversation_id")
                    result.output_sample_rate_hz = event["output"]["sample_rate_hz"]
                async with changed:
                    result.events.append(event)
                    changed.notify_all()

        receiver = asyncio.create_task(receive(), name="call-receiver")
        clock = {"next": time.monotonic()}

        async def send_frame(frame: bytes) -> None:
            await ws.send(frame)
            if realtime:
                clock["next"] += FRAME_S
                delay = clock["next"] - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    clock["next"] = time.monotonic()

        async def wait_for(predicate, what: str) -> None:  # noqa: ANN001
            """Keep the microphone open (silence) until ``predicate(events)`` holds."""
            deadline = time.monotonic() + reply_timeout_s
            while True:
                fatal = [e for e in result.events if e.get("type") == "error" and e.get("fatal")]
                if fatal:
                    raise CallError(
                        f"server error: {fatal[0].get('code')}: {fatal[0].get('message')}"
                    )
                if predicate(result.events):
                    return
                if receiver.done():
                    raise CallError(f"connection closed while waiting for {what}")
                if time.monotonic() > deadline:
                    raise CallError(f"timed out after {reply_timeout_s:.0f} s waiting for {what}")
                await send_frame(SILENCE_FRAME)

        try:
            await wait_for(lambda ev: any(e["type"] == "session.started" for e in ev), "session")
            started_event = next(e for e in result.events if e["type"] == "session.started")
            if started_event.get("greeting"):
                await wait_for(_turn_done(0), "the greeting")
            for pcm in utterances:
                before = {e["turn"] for e in result.events if e["type"] == "vad.speech_start"}
                for i in range(0, len(pcm), INPUT_FRAME_BYTES):
                    frame = pcm[i : i + INPUT_FRAME_BYTES]
                    await send_frame(frame + bytes(INPUT_FRAME_BYTES - len(frame)))
                for _ in range(trailing_silence_ms // 20):
                    await send_frame(SILENCE_FRAME)
                await wait_for(_reply_done(before), "the agent's reply")
            await ws.send(json.dumps({"type": "hangup"}))
            await wait_for(lambda ev: any(e["type"] == "call.ended" for e in ev), "call end")
        finally:
            await ws.close()
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
    return result


def _turn_done(index: int):  # noqa: ANN202
    return lambda events: any(e["type"] == "turn.ended" and e["turn"] == index for e in events)


def _reply_done(turns_before: set[int]):  # noqa: ANN202
    """Every caller turn that started after ``turns_before`` has ended, and there is one."""

    def check(events: list[dict[str, Any]]) -> bool:
        new = {e["turn"] for e in events if e["type"] == "vad.speech_start"} - turns_before
        ended = {e["turn"] for e in events if e["type"] == "turn.ended"}
        return bool(new) and new <= ended

    return check


def call_outputs_write(result: CallResult, out_dir: Path) -> dict[str, Path]:
    """Write transcript.jsonl, agent.wav and latency.json; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "transcript": out_dir / "transcript.jsonl",
        "audio": out_dir / "agent.wav",
        "latency": out_dir / "latency.json",
    }
    paths["transcript"].write_text("".join(json.dumps(e) + "\n" for e in result.events))
    write_wav(
        paths["audio"], bytes(result.agent_audio), sample_rate_hz=result.output_sample_rate_hz
    )
    turns = result.turn_metrics()
    report = {
        "format": "parley-latency/v1",
        "conversation_id": result.conversation_id,
        "units": "ms",
        "turns": turns,
        "components": latency_summary(turns),
    }
    paths["latency"].write_text(json.dumps(report, indent=2) + "\n")
    return paths


def call_summary_text(result: CallResult) -> str:
    """A human-readable transcript and latency breakdown of a finished call."""
    lines = [f"conversation {result.conversation_id}", ""]
    for event in result.events:
        kind = event.get("type")
        if kind == "transcript.final":
            lines.append(
                f"  caller [{event['turn']}]: {event.get('text') or '(nothing recognised)'}"
            )
        elif kind == "tool.call":
            lines.append(
                f"  tool   [{event['turn']}]: {event['name']}({json.dumps(event.get('arguments'))})"
            )
        elif kind == "tool.result":
            status = "ok" if event.get("ok") else "error"
            lines.append(f"         -> {status}: {str(event.get('result'))[:120]}")
        elif kind == "turn.ended" and event.get("spoken_text"):
            lines.append(f"  agent  [{event['turn']}]: {event['spoken_text']}")
        elif kind == "interrupted":
            lines.append(f"  (agent interrupted in turn {event['turn']})")
        elif kind == "error":
            lines.append(f"  error: {event.get('code')}: {event.get('message')}")
    seconds = len(result.agent_audio) / 2 / result.output_sample_rate_hz
    lines += ["", f"agent audio: {seconds:.2f} s at {result.output_sample_rate_hz} Hz", ""]
    lines.append("latency (ms; TTFA = end of caller speech -> first agent audio frame):")
    lines.append(latency_table(latency_summary(result.turn_metrics())))
    return "\n".join(lines)
