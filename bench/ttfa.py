"""Time to first audio (TTFA) of real calls, with the published pipeline's latency profile.

    python bench/ttfa.py [--turns 30] [--turns-per-call 6] [--json FILE]
    python bench/ttfa.py --sweep-only FILE   # the chunker sweep on a previous run's replies

Every turn is a real call path: recorded speech (tests/fixtures/audio/callers and
tests/fixtures/audio/speech) streamed in real time by the caller client
(``parley.agents.call_client.call_run``) over the caller WebSocket of Parley served by Daphne
in a subprocess; the hospital receptionist agent on the real Deepgram SDK, the real
ElevenLabs SDK and the OpenAI-compatible LLM client. The vendors are the local fakes of
their wire protocols and the LLM is the simulator, all set to the latency profile of
"Building Enterprise Realtime Voice Agents from Scratch" (Salesforce AI Research), §4 and
Table 3:

- STT: ``speech_final`` 337 ms after the end of speech (Deepgram P50) — the fake Deepgram
  with the agent's ``endpointing=300`` plus a 37 ms result delay; the fake's script is each
  clip's transcript spread over the clip's speech as the agent's VAD hears it (so the last
  word ends at the session's end of speech), located in the call's audio by its bytes
  (``realign_after_silence_ms``). ``Finalize`` is answered after the same 37 ms.
- LLM: TTFT 296 ms, one word-sized token every 34 ms (the measured pipeline's TTFT, vLLM's
  inter-token latency): an ``llm_simulator`` process behind an OpenAI-compatible model pool.
- TTS: first byte 219 ms after each request (ElevenLabs P50), audio generated at 10x real
  time (the paper's real-time factor 0.05-0.10).

The published figure to beat is the measured streaming TTFA of 755 ms from the STT final
(LLM TTFT 296 + sentence detection 143 + TTS 316); the target is 620 ms, i.e. Parley's own
share, first chunk included, under 100 ms on top of TTFT 296 + TTS TTFB 219.

Per turn, from the turn's ``turn.metrics`` event (every key it has is reported; see
``Turn`` in parley/conversations/models.py) plus derived figures:

- ``ttfa_from_final_ms`` = ``ttfa_ms`` - ``stt_final_ms``: STT final -> first agent audio.
- ``eot_wait_ms`` = ``endpointing_ms`` - ``stt_final_ms``: how long turn-taking waited after
  the final before ending the turn; ``reply_ms`` = ``ttfa_ms`` - ``endpointing_ms``: end of
  turn -> first agent audio (the reply pipeline alone).
- ``chunk_wait_ms`` = ``first_chunk_ms`` - ``llm_ttft_ms``: how long the chunker waited for
  tokens after the first one before the first chunk went to TTS (not for a speculative turn,
  whose tokens streamed before the end of turn).
- ``platform_ms`` = ``reply_ms`` - (end of turn -> first chunk) - ``tts_ttfb_ms``: Parley's
  own glue (end of turn -> LLM request, chunk -> TTS request, first bytes -> first frame).
- ``platform_incl_chunk_ms`` = ``platform_ms`` + ``chunk_wait_ms`` (= ``reply_ms`` -
  ``llm_ttft_ms`` - ``tts_ttfb_ms``): Parley's share including the first chunk; the target
  is < 100 ms.
- ``caller_ttfa_ms``: on the caller's clock, the last 20 ms frame of the clip's speech sent ->
  the reply's first audio frame received (``ttfa_ms`` measures from the VAD's end of speech).
- ``gap_ms`` / ``gaps``: audio underruns inside the reply at the caller, from the arrival
  time of every agent audio frame: playback starts with the first frame and plays 20 ms per
  frame; a gap is time with nothing queued before the reply's last frame (>= 5 ms counted).

Turns whose reply needed a tool call (``llm_steps`` > 1) include a second LLM request and the
tool, so they are summarised apart from the pipeline figures. Clips that the agent's VAD hears
as several utterances (long pauses) measure barge-in, not TTFA, and are left out. One warm-up
call (not counted) runs first, as a serving process is warm.

The chunker sweep replays each reply's text through :class:`SentenceChunker` settings, tokens
timed as the simulator streams them (word-sized, 34 ms apart), and reports the first chunk's
wait and the underruns of a playback model (audio 65 ms per character as the fake speaks;
"sequential": each chunk's TTS request after the previous chunk's audio was sent, as the
session does now; "prefetch": each chunk's request as soon as the chunker emits it).

Database: PostgreSQL database ``parleyd`` on 127.0.0.1 (created and migrated here; another
with ``--database-url``). Files (Daphne log, call recordings and reports) go to var/bench/ttfa.
Prints progress, then tables; ``--json`` writes every turn and the summaries. Not a test:
nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

AUDIO = ROOT / "tests" / "fixtures" / "audio"
OUT_DIR = ROOT / "var" / "bench" / "ttfa"
AGENT_SLUG = "bench-ttfa"
POOL_SLUG = "bench-ttfa-simulator"
DG_KEY = "dg-bench-key"
EL_KEY = "el-bench-key"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/parleyd"

#: The published latency profile (ms): Deepgram P50 STT final, the measured pipeline's LLM
#: TTFT, vLLM's inter-token latency and ElevenLabs' P50 TTFB (ERVA paper §4, Table 3).
STT_FINAL_MS = 337.0
LLM_TTFT_MS = 296.0
LLM_ITL_MS = 34.0
TTS_TTFB_MS = 219.0
#: ElevenLabs generates 10-20x faster than real time (RTF 0.05-0.10): the slow end.
TTS_SPEED = 10.0
#: Deepgram's endpointing (the agent default): speech_final = last word + this + delay.
DEEPGRAM_ENDPOINTING_MS = 300
PUBLISHED_TTFA_FROM_FINAL_MS = 755.0  # 296 + 143 + 316, "Measured TTFA" (Table 3)
TARGET_TTFA_FROM_FINAL_MS = 620.0
#: A clip frame is speech when its RMS is within 20 dB of the clip's loudest frame.
SPEECH_REL_DB = -20.0
FRAME_BYTES = 640
FRAME_S = 0.020
#: The fake ElevenLabs speaks every character for 65 ms (elevenlabs_fake.MS_PER_CHAR).
MS_PER_CHAR = 65.0
AUDIO_LEAD_MS = 120.0  # SessionSettings.audio_lead_ms: how far the server sends ahead
GAP_MIN_MS = 5.0

#: Summary rows, in pipeline order; other metric keys a turn reports follow them.
COMPONENTS = (
    "endpointing_ms",
    "stt_final_ms",
    "eot_wait_ms",
    "speculative_lead_ms",
    "llm_ttft_ms",
    "chunk_wait_ms",
    "first_chunk_ms",
    "tts_ttfb_ms",
    "platform_ms",
    "platform_incl_chunk_ms",
    "reply_ms",
    "ttfa_from_final_ms",
    "ttfa_ms",
    "caller_ttfa_ms",
    "gap_ms",
    "gaps",
    "audio_underrun_ms",
)
PUBLISHED = {
    "stt_final_ms": STT_FINAL_MS,
    "llm_ttft_ms": LLM_TTFT_MS,
    "tts_ttfb_ms": TTS_TTFB_MS,
    "ttfa_from_final_ms": PUBLISHED_TTFA_FROM_FINAL_MS,
}


# ---------------------------------------------------------------- caller audio


@dataclass(frozen=True)
class Clip:
    """One recorded utterance: 16 kHz PCM16 padded to whole 20 ms frames, its transcript, its
    speech span by energy and its span as the agent's VAD hears it (s from the clip's start).
    """

    name: str
    path: Path
    text: str
    pcm: bytes
    speech_start_s: float
    speech_end_s: float
    vad_start_s: float = 0.0
    vad_end_s: float = 0.0


def speech_span(pcm: bytes) -> tuple[float, float]:
    """First and last 20 ms frame within ``SPEECH_REL_DB`` of the loudest one (s)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    frames = samples[: len(samples) // 320 * 320].reshape(-1, 320)
    rms = np.sqrt((frames**2).mean(axis=1))
    voiced = np.flatnonzero(rms >= max(rms.max() * 10 ** (SPEECH_REL_DB / 20), 1.0))
    return voiced[0] * FRAME_S, (voiced[-1] + 1) * FRAME_S


def clips_load() -> list[Clip]:
    """Every clip of the two fixture sets, with its punctuated transcript where there is one
    (Deepgram's ``smart_format`` punctuates)."""
    from parley.agents.voice.audio import load_wav_resampled

    clips = []
    for folder, key in (("callers", "text"), ("speech", "transcript")):
        for item in json.loads((AUDIO / folder / "manifest.json").read_text()):
            path = AUDIO / folder / item["file"]
            pcm = load_wav_resampled(path, sample_rate_hz=16_000)
            pcm += bytes(-len(pcm) % FRAME_BYTES)  # the client pads the last frame so
            start, end = speech_span(pcm)
            text = item.get(key) or item["transcript"]
            clips.append(Clip(item["file"], path, text, pcm, start, end))
    return clips


async def vad_span(clip: Clip, vad_settings: Any) -> tuple[float, float] | None:
    """Where the agent's VAD hears the clip's speech start and end (s), when it hears it as
    one utterance (with 1 s of silence each side); None when it hears several."""
    from parley.agents.voice.vad import StreamingVAD

    vad = StreamingVAD(vad_settings)
    audio = bytes(32_000) + clip.pcm + bytes(32_000)
    bounds: dict[str, list[float]] = {"speech_start": [], "speech_end": []}
    for i in range(0, len(audio), FRAME_BYTES):
        for event in await vad.push(audio[i : i + FRAME_BYTES], at=i / 32_000):
            if event.kind in bounds:
                bounds[event.kind].append(event.audio_ms / 1000 - 1.0)
    starts, ends = bounds["speech_start"], bounds["speech_end"]
    if len(starts) != 1 or len(ends) != 1:
        return None
    return max(starts[0], 0.0), min(ends[0], len(clip.pcm) / 32_000)


def call_reference(clips: list[Clip]) -> tuple[bytes, list[Any]]:
    """The fake Deepgram's reference recording for one call (the clips back to back, 0.5 s
    apart) and its word script: each transcript spread over the clip's speech as the VAD
    hears it, so that the last word ends where the session's end of speech is."""
    from parley.testing.deepgram_fake import script_from_text

    reference, script = b"", []
    for clip in clips:
        at = len(reference) / 32_000
        script += script_from_text(clip.text, at + clip.vad_start_s, at + clip.vad_end_s)
        reference += clip.pcm + bytes(16_000)
    return reference, script


# ---------------------------------------------------------------- what the caller saw


@dataclass
class CallLog:
    """Every message of one call as the caller's socket saw it, on ``time.monotonic()``.

    ``sent``: ``(t, frame)`` of every non-silent audio frame sent; ``received``: ``(t, event)``
    for JSON events, ``(t, None)`` for agent audio frames, in arrival order.
    """

    progress: Any = None
    sent: list[tuple[float, bytes]] = field(default_factory=list)
    received: list[tuple[float, dict[str, Any] | None]] = field(default_factory=list)

    def on_sent(self, message: Any) -> None:
        if isinstance(message, bytes) and any(message):
            self.sent.append((time.monotonic(), message))

    def on_received(self, message: Any) -> None:
        now = time.monotonic()
        if isinstance(message, bytes):
            self.received.append((now, None))
            return
        event = json.loads(message)
        self.received.append((now, event))
        if self.progress is not None and event.get("type") == "turn.ended":
            self.progress(self, event)


class _TimedSocket:
    """A ``websockets`` connection that reports every frame to a :class:`CallLog`."""

    def __init__(self, ws: Any, log: CallLog) -> None:
        self._ws, self._log = ws, log

    async def send(self, message: Any) -> None:
        self._log.on_sent(message)
        await self._ws.send(message)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._receive()

    async def _receive(self) -> AsyncIterator[Any]:
        async for message in self._ws:
            self._log.on_received(message)
            yield message

    async def close(self) -> None:
        await self._ws.close()


class _TimedWebsockets:
    """Stands in for the ``websockets`` module inside ``call_client`` during one call: the
    client keeps one receive time per event but none per audio frame, and underruns need
    them."""

    def __init__(self, log: CallLog) -> None:
        self._log = log

    @contextlib.asynccontextmanager
    async def connect(self, url: str, **kwargs: Any) -> AsyncIterator[_TimedSocket]:
        import websockets

        async with websockets.connect(url, **kwargs) as ws:
            yield _TimedSocket(ws, self._log)


@contextlib.contextmanager
def timed_client(log: CallLog) -> Iterator[None]:
    from parley.agents import call_client

    real = call_client.websockets
    call_client.websockets = _TimedWebsockets(log)  # type: ignore[assignment]
    try:
        yield
    finally:
        call_client.websockets = real


def playout_gaps(arrivals: list[float]) -> tuple[float, int]:
    """Underrun time (ms) and count (>= GAP_MIN_MS) of frames arriving at ``arrivals`` (s),
    played 20 ms each from the first arrival on."""
    if not arrivals:
        return 0.0, 0
    queued_until = arrivals[0]
    total, count = 0.0, 0
    for at in arrivals:
        gap_ms = (at - queued_until) * 1000
        if gap_ms >= GAP_MIN_MS:
            total += gap_ms
            count += 1
        queued_until = max(queued_until, at) + FRAME_S
    return round(total, 1), count


def turn_rows(log: CallLog, clips: list[Clip], *, call: int) -> list[dict[str, Any]]:
    """One row per caller turn: its metrics, derived figures, reply and underruns."""
    events = [(t, e) for t, e in log.received if e is not None]
    caller_turns = [e["turn"] for _, e in events if e["type"] == "vad.speech_start"]
    clip_of = dict(zip(caller_turns, clips, strict=False))
    rows = []
    for index in caller_turns:
        mine = [(t, e) for t, e in events if e.get("turn") == index]
        ended = next((e for _, e in mine if e["type"] == "turn.ended"), None)
        if ended is None:
            continue
        metrics = dict(ended.get("metrics") or {})
        for _, e in mine:
            if e["type"] == "turn.metrics":
                metrics.update({k: v for k, v in e.items() if isinstance(v, int | float)})
        for key in ("turn", "t_ms", "seq", "received_ms"):
            metrics.pop(key, None)
        clip = clip_of.get(index)
        row: dict[str, Any] = {
            "call": call,
            "turn": index,
            "clip": clip.name if clip else None,
            "status": ended.get("status"),
            "llm_steps": ended.get("llm_steps"),
            "user_text": ended.get("user_text"),
            "agent_text": ended.get("agent_text"),
            "chunks": [e["text"] for _, e in mine if e["type"] == "agent.text"],
            **metrics,
        }
        row.update(derived(metrics, llm_steps=ended.get("llm_steps")))
        speaking = next((t for t, e in mine if e["type"] == "agent.speaking"), None)
        done = next(
            (t for t, e in mine if e["type"] in ("agent.done", "interrupted", "turn.ended")), None
        )
        if speaking is not None and done is not None:
            frames = [t for t, e in log.received if e is None and speaking <= t <= done]
            row["gap_ms"], row["gaps"] = playout_gaps(frames)
            speech_end = caller_speech_end(log, mine, clip)
            if frames and speech_end is not None:
                row["caller_ttfa_ms"] = round((frames[0] - speech_end) * 1000, 1)
        rows.append(row)
    return rows


def caller_speech_end(
    log: CallLog, events: list[tuple[float, dict[str, Any]]], clip: Clip | None
) -> float | None:
    """When the frame holding the end of the clip's speech finished sending (client clock)."""
    if clip is None:
        return None
    heard = next((t for t, e in events if e["type"] == "vad.speech_end"), None)
    last = int(round(clip.speech_end_s / FRAME_S)) - 1
    frame = clip.pcm[last * FRAME_BYTES : (last + 1) * FRAME_BYTES]
    sent = [t for t, f in log.sent if f == frame and (heard is None or t <= heard)]
    return sent[-1] + FRAME_S if sent else None


def derived(m: dict[str, Any], *, llm_steps: int | None = 1) -> dict[str, float]:
    """The figures computed from a turn's metrics (module docstring). A speculative turn
    (``speculative_lead_ms``: its LLM request went out before the end of turn) has no chunk
    wait and no share including it: its tokens streamed while the caller was still heard.
    A turn with tool calls has neither either (its first chunk came from a later request)."""
    out: dict[str, float] = {}
    if llm_steps != 1:
        m = {k: v for k, v in m.items() if k not in ("first_chunk_ms", "llm_ttft_ms")}
    if "ttfa_ms" in m and "stt_final_ms" in m:
        out["ttfa_from_final_ms"] = m["ttfa_ms"] - m["stt_final_ms"]
    if "endpointing_ms" in m and "stt_final_ms" in m:
        out["eot_wait_ms"] = m["endpointing_ms"] - m["stt_final_ms"]
    if "ttfa_ms" in m and "endpointing_ms" in m:
        out["reply_ms"] = m["ttfa_ms"] - m["endpointing_ms"]
    lead = m.get("speculative_lead_ms")
    if "first_chunk_ms" in m and "llm_ttft_ms" in m and lead is None:
        out["chunk_wait_ms"] = m["first_chunk_ms"] - m["llm_ttft_ms"]
    if "reply_ms" in out and "first_chunk_ms" in m and "tts_ttfb_ms" in m:
        chunk_after_eot = max(0.0, m["first_chunk_ms"] - (lead or 0.0))
        out["platform_ms"] = out["reply_ms"] - chunk_after_eot - m["tts_ttfb_ms"]
        if "chunk_wait_ms" in out:
            out["platform_incl_chunk_ms"] = out["platform_ms"] + out["chunk_wait_ms"]
    return {k: round(v, 1) for k, v in out.items()}


# ---------------------------------------------------------------- summaries and tables


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | int]]:
    """p50 / p95 / min / max per numeric key, pipeline components first."""
    from parley.agents.voice.metrics import latency_summary

    keys = list(COMPONENTS)
    for row in rows:
        for key, value in row.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and key not in keys and key not in ("call", "turn", "llm_steps"):
                keys.append(key)
    return latency_summary(rows, keys)


def table(stats: dict[str, dict[str, float | int]], *, reference: bool = True) -> str:
    head = f"{'':<24}{'n':>4}{'p50':>9}{'p95':>9}{'min':>9}{'max':>9}"
    lines = [head + (f"{'published':>11}" if reference else "")]
    for name, s in stats.items():
        if not s.get("n"):
            continue
        line = f"{name:<24}{s['n']:>4}" + "".join(
            f"{s[k]:>9.1f}" for k in ("p50", "p95", "min", "max")
        )
        if reference and name in PUBLISHED:
            line += f"{PUBLISHED[name]:>11.0f}"
        lines.append(line)
    return "\n".join(lines)


# ---------------------------------------------------------------- the chunker sweep


def chunk_schedule(text: str, settings: Any, *, itl_ms: float) -> list[tuple[float, str]]:
    """``(ms after the first token, chunk)`` for ``text`` streamed as the simulator does:
    word-sized tokens (each with its leading whitespace), one every ``itl_ms``."""
    from parley.agents.voice.chunker import SentenceChunker

    chunker = SentenceChunker(settings)
    out: list[tuple[float, str]] = []
    tokens = re.findall(r"\s*\S+|\s+", text)
    for i, token in enumerate(tokens):
        out += [(i * itl_ms, chunk) for chunk in chunker.push(token)]
    out += [((len(tokens) - 1) * itl_ms, chunk) for chunk in chunker.flush()]
    return out


def playback(
    schedule: list[tuple[float, str]], *, prefetch: bool, ttfb_ms: float = TTS_TTFB_MS
) -> tuple[float, int]:
    """Underrun ms and count between the chunks of one reply (first audio at 0 excluded).

    ``prefetch``: each chunk's TTS request goes out when the chunker emits it; else when the
    previous chunk's audio has been sent (``AUDIO_LEAD_MS`` before it ends playing).
    """
    gap_total, gaps = 0.0, 0
    end = None
    for emitted, chunk in schedule:
        requested = emitted if prefetch or end is None else max(emitted, end - AUDIO_LEAD_MS)
        ready = requested + ttfb_ms
        if end is not None and ready - end >= GAP_MIN_MS:
            gap_total += ready - end
            gaps += 1
        start = ready if end is None else max(end, ready)
        end = start + len(chunk) * MS_PER_CHAR
    return gap_total, gaps


#: Replies in the shape of a real model's on the hospital line, written for the sweep (not
#: simulator output): openers ("Sure,", "Yes,", "Of course!") before sentences of 5-17 words.
TYPICAL_REPLIES = (
    "Sure, I can help with that. What's the name on the appointment?",
    "Yes, your appointment with Dr. Smith is confirmed for Monday, March fourth, at nine in the "
    "morning.",
    "Okay. I've moved your follow-up visit to Tuesday at two thirty in the afternoon. Is there "
    "anything else?",
    "Of course! Let me look that up for you.",
    "I'm sorry, I couldn't find a patient with that name. Could you spell your last name for me?",
    "Your prescription for lisinopril, ten milligrams, has been sent to the pharmacy on Main "
    "Street.",
    "Great, you're all set. You'll get a text message reminder the day before.",
    "The radiology department opens at eight on Saturdays and closes at noon.",
    "No problem. I've cancelled the appointment on January fifteenth.",
    "Hi Sarah, thanks for calling back. I have your lab results here, and everything looks normal.",
    "Let me check that for you.",
    "Dr. Patel has two openings next week: Tuesday at ten, and Thursday at three.",
)

SWEEP = (
    ("sentence ends only", {"first_chunk_min_chars": 250}),
    ("clause >= 30 chars", {"first_chunk_min_chars": 30}),
    ("clause >= 20 chars (before)", {"first_chunk_min_chars": 20}),
    ("clause >= 12 chars", {"first_chunk_min_chars": 12}),
    ("clause >= 8 chars", {"first_chunk_min_chars": 8}),
    ("clause >= 4 chars", {"first_chunk_min_chars": 4}),
    ("clause >= 1 char", {"first_chunk_min_chars": 1}),
    ("clause >= 4, else 5 words", {"first_chunk_min_chars": 4, "first_chunk_max_words": 5}),
    ("clause >= 4, else 4 words", {"first_chunk_min_chars": 4, "first_chunk_max_words": 4}),
    ("clause >= 4, else 3 words", {"first_chunk_min_chars": 4, "first_chunk_max_words": 3}),
    ("clause >= 4, else 2 words", {"first_chunk_min_chars": 4, "first_chunk_max_words": 2}),
)


def chunker_sweep(replies: list[str], *, itl_ms: float = LLM_ITL_MS) -> list[dict[str, Any]]:
    """For each setting of ``SWEEP`` (plus the current defaults): the first chunk's wait
    after the first token (p50/p95/max), the estimated TTFA from the STT final, and the
    replies with an underrun under sequential and prefetching synthesis."""
    from parley.agents.voice.chunker import ChunkerSettings
    from parley.agents.voice.metrics import percentile

    results = []
    for label, options in (("current defaults", {}), *SWEEP):
        try:
            settings = ChunkerSettings(**options)
        except (TypeError, ValueError) as exc:
            results.append({"setting": label, "error": str(exc)})
            continue
        waits, seq, pre, first_chars = [], [0, 0.0], [0, 0.0], []
        for text in replies:
            schedule = chunk_schedule(text, settings, itl_ms=itl_ms)
            if not schedule:
                continue
            waits.append(schedule[0][0])
            first_chars.append(len(schedule[0][1]))
            for acc, prefetch in ((seq, False), (pre, True)):
                total, count = playback(schedule, prefetch=prefetch)
                acc[0] += count > 0
                acc[1] += total
        n = len(waits)
        results.append(
            {
                "setting": label,
                "options": options,
                "replies": n,
                "wait_p50_ms": round(percentile(waits, 50), 1),
                "wait_p95_ms": round(percentile(waits, 95), 1),
                "wait_max_ms": round(max(waits), 1),
                "first_chunk_chars_p50": round(percentile(first_chars, 50), 1),
                "ttfa_from_final_p50_ms": round(
                    LLM_TTFT_MS + percentile(waits, 50) + TTS_TTFB_MS, 1
                ),
                "replies_with_gap_sequential": seq[0],
                "gap_ms_per_reply_sequential": round(seq[1] / n, 1),
                "replies_with_gap_prefetch": pre[0],
                "gap_ms_per_reply_prefetch": round(pre[1] / n, 1),
            }
        )
    return results


def sweep_table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'first chunk rule':<34}{'wait p50':>9}{'p95':>7}{'max':>7}{'chars':>7}"
        f"{'TTFA*':>7}{'gaps seq':>10}{'ms/reply':>9}{'gaps pre':>10}{'ms/reply':>9}"
    ]
    for r in results:
        if "error" in r:
            lines.append(f"{r['setting']:<34}  ({r['error']})")
            continue
        lines.append(
            f"{r['setting']:<34}{r['wait_p50_ms']:>9.0f}{r['wait_p95_ms']:>7.0f}"
            f"{r['wait_max_ms']:>7.0f}{r['first_chunk_chars_p50']:>7.0f}"
            f"{r['ttfa_from_final_p50_ms']:>7.0f}"
            f"{r['replies_with_gap_sequential']:>7}/{r['replies']:<2}"
            f"{r['gap_ms_per_reply_sequential']:>9.0f}"
            f"{r['replies_with_gap_prefetch']:>7}/{r['replies']:<2}"
            f"{r['gap_ms_per_reply_prefetch']:>9.0f}"
        )
    lines.append(
        f"(wait: first token -> first chunk, ms; TTFA* = {LLM_TTFT_MS:.0f} + wait p50 + "
        f"{TTS_TTFB_MS:.0f}, without Parley's glue; gaps: replies with an underrun of >= "
        f"{GAP_MIN_MS:.0f} ms / replies, and underrun ms per reply)"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------- the platform under test


def database_prepare(url: str) -> None:
    """Create the PostgreSQL database of ``url`` if it is missing (SQLite: its folder)."""
    parsed = urlparse(url)
    if parsed.scheme.startswith("sqlite"):
        Path(parsed.path).parent.mkdir(parents=True, exist_ok=True)
        return
    import psycopg

    name = parsed.path.lstrip("/")
    admin = parsed._replace(scheme="postgresql", path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        conn.execute(f'CREATE DATABASE "{name}"')


def bench_agent_ensure(*, llm_base_url: str, vad_silence_ms: int | None) -> Any:
    """The hospital receptionist (the demo's prompt and tools) on Deepgram + ElevenLabs and a
    model pool pointing at the simulator process. Returns the agent's VAD settings."""
    from parley.agents.management.commands.demo_setup import PROMPT
    from parley.agents.models import Agent
    from parley.agents.services import agent_create, scenario_install
    from parley.agents.voice.vad import VADSettings
    from parley.testing.simulators import simulator_pool_ensure

    scenario = scenario_install(slug="hospital")
    pool = simulator_pool_ensure(
        slug=POOL_SLUG, name="TTFA benchmark: LLM simulator process", base_url=llm_base_url
    )
    agent = Agent.objects.filter(slug=AGENT_SLUG).first()
    if agent is None:
        agent = agent_create(
            slug=AGENT_SLUG,
            name="TTFA benchmark (hospital receptionist)",
            scenario=scenario,
            model_pool=pool,
            prompt=PROMPT,
        )
    agent.model_pool = pool
    agent.stt_provider = Agent.STTProvider.DEEPGRAM
    agent.tts_provider = Agent.TTSProvider.ELEVENLABS
    agent.deepgram_endpointing_ms = DEEPGRAM_ENDPOINTING_MS
    agent.greeting = ""
    if vad_silence_ms is not None:
        agent.endpointing_ms = vad_silence_ms
    agent.save()
    return VADSettings(
        threshold=agent.vad_threshold,
        min_speech_ms=agent.min_speech_ms,
        min_silence_ms=agent.endpointing_ms,
        pre_roll_ms=agent.pre_roll_ms,
        max_utterance_ms=agent.max_utterance_ms,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def daphne_start(
    env: dict[str, str], log_path: Path
) -> tuple[asyncio.subprocess.Process, int]:
    """Parley served by Daphne in a subprocess; returns it and its port once it listens."""
    port = free_port()
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "parley.platform.asgi:application",
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"Daphne exited; see {log_path}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return process, port
    await daphne_stop(process)
    raise RuntimeError(f"Daphne did not listen within 60 s; see {log_path}")


async def daphne_stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


def progress_line(log: CallLog, event: dict[str, Any], state: dict[str, int]) -> None:
    """Print one line per finished caller turn (first chunk of the reply, key figures)."""
    if event.get("turn", 0) == 0:
        return
    state["done"] += 1
    m = dict(event.get("metrics") or {})
    d = derived(m, llm_steps=event.get("llm_steps"))
    words = (event.get("agent_text") or "")[:48]

    def ms(key: str, src: dict[str, Any]) -> str:
        return f"{src[key]:6.0f}" if key in src else "     -"

    tag = "" if state.get("counted", 1) else " (warm-up)"
    print(
        f"  turn {state['done']:>3}/{state['total']}{tag}: ttfa {ms('ttfa_ms', m)}  "
        f"from final {ms('ttfa_from_final_ms', d)}  ttft {ms('llm_ttft_ms', m)}  "
        f"chunk wait {ms('chunk_wait_ms', d)}  tts {ms('tts_ttfb_ms', m)}  "
        f"steps {event.get('llm_steps')}  {event.get('status')}  {words!r}",
        flush=True,
    )


async def bench_run(args: argparse.Namespace) -> dict[str, Any]:
    from asgiref.sync import sync_to_async

    from parley.agents.call_client import CallError, call_run
    from parley.agents.call_tokens import call_token_issue
    from parley.agents.models import Agent
    from parley.testing.deepgram_fake import FakeDeepgram
    from parley.testing.elevenlabs_fake import FakeElevenLabs
    from parley.testing.simulators import SimulatorProcess

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    print(f"LLM simulator: TTFT {LLM_TTFT_MS:.0f} ms, ITL {LLM_ITL_MS:.0f} ms", flush=True)
    simulator = await asyncio.to_thread(
        SimulatorProcess("ttfa", ttft_ms=LLM_TTFT_MS, itl_ms=LLM_ITL_MS).start
    )
    daphne: asyncio.subprocess.Process | None = None
    try:
        vad_settings = await sync_to_async(bench_agent_ensure)(
            llm_base_url=simulator.base_url, vad_silence_ms=args.vad_silence_ms
        )
        clips, skipped = [], []
        for clip in clips_load():
            span = await vad_span(clip, vad_settings)
            if span is None:
                skipped.append(clip)
            else:
                clips.append(dataclasses.replace(clip, vad_start_s=span[0], vad_end_s=span[1]))
        print(
            f"{len(clips)} single-utterance clips; left out (the VAD hears several "
            f"utterances): {', '.join(c.name for c in skipped) or 'none'}",
            flush=True,
        )
        random.Random(8).shuffle(clips)
        order = [clips[i % len(clips)] for i in range(args.turns)]
        calls = [
            order[i : i + args.turns_per_call] for i in range(0, len(order), args.turns_per_call)
        ]
        if args.warmup:
            calls.insert(0, [clips[-1]])
        async with (
            FakeDeepgram(
                api_key=DG_KEY,
                result_delay_ms=STT_FINAL_MS - DEEPGRAM_ENDPOINTING_MS,
                realign_after_silence_ms=500,
            ) as dg,
            FakeElevenLabs(api_key=EL_KEY, ttfb_ms=TTS_TTFB_MS, speed=TTS_SPEED) as el,
        ):
            env = {
                **os.environ,
                "DEEPGRAM_URL": dg.url,
                "ELEVENLABS_URL": el.url,
                "DEEPGRAM_API_KEY": DG_KEY,
                "ELEVENLABS_API_KEY": EL_KEY,
                "PARLEY_REPORTS_DIR": str(OUT_DIR / "reports"),
                "PARLEY_RECORDINGS_DIR": str(OUT_DIR / "recordings"),
                "PARLEY_LOG_LEVEL": "WARNING",
            }
            daphne, port = await daphne_start(env, OUT_DIR / "daphne.log")
            print(f"Parley on Daphne at 127.0.0.1:{port} (pid {daphne.pid})", flush=True)
            rows: list[dict[str, Any]] = []
            failures: list[str] = []
            state = {"done": 0, "total": len(order) + (1 if args.warmup else 0)}
            for number, call_clips in enumerate(calls):
                counted = not (args.warmup and number == 0)
                state["counted"] = int(counted)
                reference, script = call_reference(call_clips)
                dg.set_reference_audio(reference)
                dg.set_script(script)
                token = await sync_to_async(call_token_issue)(
                    agent=Agent(slug=AGENT_SLUG), purpose="server"
                )
                url = f"ws://127.0.0.1:{port}/ws/agents/{AGENT_SLUG}/call?" + urlencode(
                    {"token": token}
                )
                log = CallLog(progress=lambda lg, ev: progress_line(lg, ev, state))
                try:
                    with timed_client(log):
                        await call_run(
                            url=url,
                            audio_paths=[c.path for c in call_clips],
                            trailing_silence_ms=args.trailing_silence_ms,
                            reply_timeout_s=30,
                        )
                except CallError as exc:
                    # Keep the turns that finished; the rest of this call is lost.
                    failures.append(f"call {number}: {exc}")
                    recent = [e["type"] for _, e in log.received if e is not None][-8:]
                    print(f"  call {number} failed: {exc}; last events: {recent}", flush=True)
                if counted:
                    rows += turn_rows(log, call_clips, call=number)
            tts_connections = el.connections_opened
            tts_calls = len(calls)
    finally:
        if daphne is not None:
            await daphne_stop(daphne)
        simulator.stop()
    return {
        "rows": rows,
        "tts_connections": tts_connections,
        "calls": tts_calls,
        "skipped_clips": [c.name for c in skipped],
        "failed_calls": failures,
    }


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Summaries: single-step pipeline turns, tool turns, all turns; and the chunker sweep."""
    with_ttfa = [r for r in rows if r.get("ttfa_ms") is not None]
    pipeline = [r for r in with_ttfa if r.get("llm_steps") == 1]
    tools = [r for r in with_ttfa if (r.get("llm_steps") or 0) > 1]
    replies = [r["agent_text"] for r in rows if r.get("agent_text")]
    return {
        "pipeline": summary(pipeline),
        "tool_turns": summary(tools),
        "all_turns": summary(with_ttfa),
        "statuses": {
            s: sum(r.get("status") == s for r in rows) for s in {r.get("status") for r in rows}
        },
        "sweep": chunker_sweep(replies),
        "sweep_typical": chunker_sweep(list(TYPICAL_REPLIES)),
    }


def print_report(result: dict[str, Any], summaries: dict[str, Any]) -> None:
    pipeline = summaries["pipeline"]
    n_tools = summaries["tool_turns"].get("ttfa_ms", {}).get("n", 0)
    print()
    print(
        f"TTFA, turns answered in one LLM step ({pipeline.get('ttfa_ms', {}).get('n', 0)} "
        f"turns; ms; 'published': ERVA Table 3):"
    )
    print(table(pipeline))
    if n_tools:
        print()
        print(f"Turns with a tool call ({n_tools}; their TTFA includes a 2nd LLM request):")
        keys = ("stt_final_ms", "llm_ttft_ms", "tts_ttfb_ms", "ttfa_from_final_ms", "ttfa_ms")
        print(table({k: v for k, v in summaries["tool_turns"].items() if k in keys}))
    got = pipeline.get("ttfa_from_final_ms", {})

    def share(key: str) -> str:
        row = pipeline.get(key, {})
        return f"{row['p50']:.0f} (n={row['n']})" if row.get("n") else "-"

    if got.get("n"):
        verdict = "met" if got["p50"] <= TARGET_TTFA_FROM_FINAL_MS else "MISSED"
        print()
        print(
            f"p50 TTFA from the STT final: {got['p50']:.0f} ms (published "
            f"{PUBLISHED_TTFA_FROM_FINAL_MS:.0f}, target <= {TARGET_TTFA_FROM_FINAL_MS:.0f}: "
            f"{verdict}); Parley's share incl. the first chunk p50 "
            f"{share('platform_incl_chunk_ms')} ms (turns without speculative start), "
            f"glue only p50 {share('platform_ms')} ms"
        )
    if "tts_connections" in result:
        print(
            f"statuses: {summaries['statuses']}; ElevenLabs TCP connections: "
            f"{result['tts_connections']} for {result['calls']} calls; failed calls: "
            f"{len(result['failed_calls'])}"
        )
    print()
    replies = summaries["sweep"][0].get("replies", 0)
    print(f"Chunker sweep over this run's {replies} replies (tokens {LLM_ITL_MS:.0f} ms apart):")
    print(sweep_table(summaries["sweep"]))
    print()
    print(
        f"The same over {len(TYPICAL_REPLIES)} typical replies of a real model (TYPICAL_REPLIES):"
    )
    print(sweep_table(summaries["sweep_typical"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30, help="caller turns measured")
    parser.add_argument("--turns-per-call", type=int, default=6)
    parser.add_argument("--trailing-silence-ms", type=int, default=600)
    parser.add_argument(
        "--vad-silence-ms", type=int, default=None, help="the agent's endpointing silence"
    )
    parser.add_argument("--no-warmup", dest="warmup", action="store_false")
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--json", type=Path, help="write every turn and the summaries here")
    parser.add_argument("--sweep-only", type=Path, help="re-run the chunker sweep on a --json file")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = args.database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "parley.platform.settings.local"
    os.environ["DJANGO_DEBUG"] = "false"
    if args.sweep_only:
        import django

        django.setup()
        saved = json.loads(args.sweep_only.read_text())
        sweep = chunker_sweep([r["agent_text"] for r in saved["turns"] if r.get("agent_text")])
        print(sweep_table(sweep))
        print()
        print(sweep_table(chunker_sweep(list(TYPICAL_REPLIES))))
        return

    database_prepare(args.database_url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    result = asyncio.run(bench_run(args))
    summaries = report(result["rows"])
    print_report(result, summaries)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "format": "parley-bench-ttfa/v1",
                    "profile": {
                        "stt_final_ms": STT_FINAL_MS,
                        "llm_ttft_ms": LLM_TTFT_MS,
                        "llm_itl_ms": LLM_ITL_MS,
                        "tts_ttfb_ms": TTS_TTFB_MS,
                        "tts_speed": TTS_SPEED,
                    },
                    "target_ttfa_from_final_ms": TARGET_TTFA_FROM_FINAL_MS,
                    "database": urlparse(args.database_url)._replace(netloc="").geturl(),
                    "tts_connections": result["tts_connections"],
                    "calls": result["calls"],
                    "skipped_clips": result["skipped_clips"],
                    "failed_calls": result["failed_calls"],
                    "turns": result["rows"],
                    **summaries,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
