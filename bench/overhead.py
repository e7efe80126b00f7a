"""Framework overhead: the same voice loop on zero-latency fakes in Parley and in pipecat.

    python bench/overhead.py [--runs 2] [--rounds 2] [--clips 8] [--silence-ms 2000]
                             [--only parley|pipecat] [--profile] [--json FILE]

What runs. Real speech (``tests/fixtures/audio/speech``: 8 single-utterance clips of 2–7 s,
16 kHz mono PCM16), each followed by ``--silence-ms`` of silence, is cut into 20 ms frames
(640 bytes) and written once to ``var/bench/overhead/input.pcm``: one warm-up clip (not
measured), then ``--rounds`` passes over the clips. Each framework gets exactly those bytes,
paced like a microphone (frame ``i`` is pushed at ``t0 + i × 20 ms``), in one call in its own
process; the frameworks never run at the same time. ``--runs`` calls per framework alternate
which goes first (a background load that drifts weighs on both alike); their turns are
pooled and their CPU summed.

- Parley (this venv): :class:`CallSession` with the real :class:`StreamingVAD` (the vendored
  Silero ONNX model) and fake STT, LLM and TTS, driven through its public API only
  (``start``, ``push_audio``, ``aclose``), default settings but for the end of turn (below).
- pipecat (``var/bench/pipecat-venv``, created and ``pip install``-ed on the first run, then
  reused; no torch): ``bench/overhead_pipecat.py``, pipecat's standard cascade with its
  ``SileroVADAnalyzer`` and the same fakes.

The fakes take no time: the STT answers the end of speech at once with the clip's known
transcript (Parley: ``finalize()`` → ``Transcript(is_final=True, speech_final=True)``;
pipecat: ``VADUserStoppedSpeakingFrame`` → finalized ``TranscriptionFrame``); the LLM streams
the same two-sentence reply word by word; the TTS yields 24 kHz PCM at once, 480 bytes
(10 ms) per character in 20 ms chunks. The output sink is where a transport would put audio
on the network (Parley: ``AudioSink.send_audio``; pipecat: the output transport's
``write_audio_frame``).

What is measured.

- Added TTFA of a turn: STT final delivered → first agent audio frame at the sink. The
  end-of-turn silence wait (VAD ``min_silence_ms`` / pipecat ``stop_secs``) comes before
  the STT final and is not counted. p50 / p99 over all measured turns (p99 interpolated
  between the two largest values when there are fewer than 100 turns).
- CPU per frame: the framework process's CPU time (``getrusage``: user + sys, all threads:
  event loop, VAD executor, onnxruntime) from the first measured frame to the last pushed
  frame, divided by the number of frames pushed; startup (imports, model load, call start)
  is excluded and reported apart. ``event loop`` is the event-loop thread's share
  (``time.thread_time``), the rest is the VAD's threads. Real-time pacing matters here: on
  the 2-vCPU dev VM one Silero window costs ~230 µs of CPU back to back but ~600 µs after
  the 20–30 ms idle gaps of a live call (cold caches), in both frameworks alike. The load
  average before each call is printed: other processes on the machine make the figures
  less reliable.

Fairness choices (where there is a choice, pipecat gets its lowest-overhead configuration):

- Same interpreter (this venv's Python) for both venvs; same onnxruntime threading (one
  intra-op and one inter-op thread, as both frameworks set it); same Silero model family.
- Same end-of-turn rule: the turn ends after one fixed silence after the speech (Parley's
  ``endpointing_ms``, 500 ms) and the STT final is asked for at that moment, so "from the STT
  final" is "from the end of turn" on both sides. Parley: the pause (VAD ``min_silence_ms``,
  turn-taking ``pause_ms``) and ``unfinished_endpointing_ms`` are set to ``endpointing_ms``
  (:func:`parley_settings`; the "unfinished transcript" wait of up to 2 s would otherwise
  land after the final). pipecat: ``VADParams`` take Parley's values (``confidence`` =
  ``threshold`` 0.5, ``start_secs`` = ``min_speech_ms`` 0.25 s, ``stop_secs`` = 0.5 s;
  ``min_volume`` stays pipecat's 0.6), and the turn stop is
  ``SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0)``: its default 0.6 s policy
  wait after VAD stop (and the default smart-turn model) would add delay after the final;
  the fake STT declares ``ttfs_p99_latency=0`` so no STT safety wait runs either.
- Same output work: 20 ms output frames (``audio_out_10ms_chunks=2``; pipecat's default is
  40 ms) at 24 kHz (no resampling), paced by the same rule as Parley's session (at most
  ``audio_lead_ms`` = 120 ms ahead of real time); no end-of-call silence.
- pipecat extras off: RTVI (``enable_rtvi=False``), turn tracking, metrics (its default),
  idle cancellation. Logging at WARNING in both (loguru / stdlib default).
- Each clip must be one turn in both frameworks (the table reports ``splits`` otherwise);
  the trailing silence is long enough for the reply to finish before the next clip, so no
  barge-in happens.

Prints a table and ``--json FILE`` writes the figures. ``--profile`` runs the Parley side
under cProfile (its CPU figures are then inflated) and prints the top functions. Targets
(issue 8): Parley's added TTFA p99 ≤ 5 ms and CPU per frame ≤ half of pipecat's. Not a
test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import hashlib
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parley.agents.voice.llm.base import LLM  # noqa: E402
from parley.agents.voice.messages import (  # noqa: E402
    INPUT_FRAME_BYTES,
    OUTPUT_SAMPLE_RATE_HZ,
    LLMChunk,
    LLMDone,
    SessionEvent,
    STTMessage,
    TextDelta,
    ToolCallRequest,
    ToolResult,
    Transcript,
)
from parley.agents.voice.metrics import percentile  # noqa: E402
from parley.agents.voice.session import CallSession, SessionSettings  # noqa: E402
from parley.agents.voice.stt.base import STT, STTStream  # noqa: E402
from parley.agents.voice.tts.base import TTS  # noqa: E402
from parley.agents.voice.vad import StreamingVAD, VADSettings  # noqa: E402

SPEECH_DIR = ROOT / "tests" / "fixtures" / "audio" / "speech"
WORK_DIR = ROOT / "var" / "bench" / "overhead"
PIPECAT_VENV = ROOT / "var" / "bench" / "pipecat-venv"
PIPECAT_SCRIPT = Path(__file__).resolve().parent / "overhead_pipecat.py"
#: Pinned; the ``silero`` extra is empty in 1.x (onnxruntime is a base dependency) and pulls
#: no torch — checked after every install.
PIPECAT_REQUIREMENT = "pipecat-ai[silero]==1.14.0"

#: Clips that are one utterance each for Silero at Parley's default VAD settings (no inner
#: pause of 500 ms), 1.9–7.1 s, in a fixed order.
CLIPS = (
    "librispeech_quilter",
    "ms_whats_the_weather_like",
    "telephone_librivox_amiable_woman",
    "goforward_ten_meters",
    "cards_eight_of_spades",
    "telephone_librivox_dashwood",
    "ms_my_voice_is_my_passport",
    "ms_turn_on_the_lamp",
)
#: The fake LLM's reply on both sides: two sentences, no clause marks (so both frameworks'
#: sentence splitters cut it at the same place).
REPLY = "I can help you with that right away. Let me look up the details for you now."
SYSTEM_PROMPT = "You are a benchmark agent."
FRAME_MS = 20
#: 10 ms of 24 kHz PCM16 per character (as ``tests/agents/voice/fakes.py``'s FakeTTS).
TTS_BYTES_PER_CHAR = OUTPUT_SAMPLE_RATE_HZ // 100 * 2
TTS_CHUNK_BYTES = OUTPUT_SAMPLE_RATE_HZ * FRAME_MS // 1000 * 2
LEAD_SILENCE_MS = 500


# ---------------------------------------------------------------- the input


def parley_settings() -> tuple[SessionSettings, VADSettings, dict[str, Any]]:
    """Parley's settings for the call, and what was changed from the defaults.

    Defaults, except that the end of turn is one fixed silence after the speech, with the STT
    final asked for at that moment — the pipecat side's rule: when the session has
    turn-taking settings, ``pause_ms`` and ``unfinished_endpointing_ms`` are set to
    ``endpointing_ms`` (no earlier finalize, no longer wait for "unfinished" transcripts), and
    the VAD's ``min_silence_ms`` (the pause) to the same value. Fields are looked up by name
    so the harness keeps working while the session's settings evolve.
    """
    settings = SessionSettings(system_prompt=SYSTEM_PROMPT)
    vad = VADSettings()
    end_of_turn_ms = vad.min_silence_ms
    changed: dict[str, Any] = {}
    turn_taking = getattr(settings, "turn_taking", None)
    if turn_taking is not None and hasattr(turn_taking, "endpointing_ms"):
        end_of_turn_ms = turn_taking.endpointing_ms
        names = ("pause_ms", "unfinished_endpointing_ms")
        changes = {
            name: end_of_turn_ms
            for name in names
            if getattr(turn_taking, name, end_of_turn_ms) != end_of_turn_ms
        }
        if changes:
            turn_taking = dataclasses.replace(turn_taking, **changes)
            settings = dataclasses.replace(settings, turn_taking=turn_taking)
            changed.update({f"turn_taking.{name}": value for name, value in changes.items()})
    if vad.min_silence_ms != end_of_turn_ms:
        vad = dataclasses.replace(vad, min_silence_ms=end_of_turn_ms)
        changed["vad.min_silence_ms"] = end_of_turn_ms
    return settings, vad, {"end_of_turn_silence_ms": end_of_turn_ms, "changed": changed}


def build_input(
    *, names: list[str], rounds: int, silence_ms: int, work_dir: Path, warmup: bool = True
) -> dict[str, Any]:
    """Write the caller stream to ``work_dir/input.pcm`` and return the spec both sides read.

    Segments: with ``warmup``, the first clip once, not measured; then ``rounds`` passes over
    ``names``, measured. Each segment is a clip plus ``silence_ms`` of silence, padded to whole
    20 ms frames; the first also starts with ``LEAD_SILENCE_MS`` of silence. Raises
    ``ValueError`` for a clip that is not 16 kHz mono PCM16.
    """
    manifest = {
        e["file"]: e["transcript"] for e in json.loads((SPEECH_DIR / "manifest.json").read_text())
    }
    audio: dict[str, bytes] = {}
    for name in names:
        with wave.open(str(SPEECH_DIR / f"{name}.wav")) as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (16_000, 1, 2):
                raise ValueError(f"{name}.wav is not 16 kHz mono PCM16")
            audio[name] = wav.readframes(wav.getnframes())
    plan = [(names[0], 0)] if warmup else []
    plan += [(name, r) for r in range(1, rounds + 1) for name in names]
    pcm = bytearray(LEAD_SILENCE_MS * 32)
    segments = []
    for name, round_ in plan:
        chunk = audio[name] + bytes(silence_ms * 32)
        chunk += bytes(-(len(pcm) + len(chunk)) % INPUT_FRAME_BYTES)
        first_frame = 0 if not segments else len(pcm) // INPUT_FRAME_BYTES
        pcm += chunk
        segments.append(
            {
                "clip": name,
                "transcript": manifest[f"{name}.wav"],
                "measured": round_ > 0,
                "round": round_,
                "first_frame": first_frame,
                "frames": len(pcm) // INPUT_FRAME_BYTES - first_frame,
            }
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    pcm_path = work_dir / "input.pcm"
    pcm_path.write_bytes(bytes(pcm))
    settings, vad, notes = parley_settings()
    return {
        "pcm": str(pcm_path),
        "frame_bytes": INPUT_FRAME_BYTES,
        "frame_ms": FRAME_MS,
        "segments": segments,
        "measure_from_frame": next(s["first_frame"] for s in segments if s["measured"]),
        "reply": REPLY,
        "tts_sample_rate_hz": OUTPUT_SAMPLE_RATE_HZ,
        "tts_bytes_per_char": TTS_BYTES_PER_CHAR,
        "tts_chunk_bytes": TTS_CHUNK_BYTES,
        "audio_lead_ms": settings.audio_lead_ms,
        # The pipecat side's VADParams: Parley's thresholds and end-of-turn silence.
        "vad": {
            "threshold": vad.threshold,
            "min_speech_ms": vad.min_speech_ms,
            "min_silence_ms": notes["end_of_turn_silence_ms"],
        },
        "parley_changed_settings": notes["changed"],
    }


# ---------------------------------------------------------------- the Parley side


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Probe:
    """Where the driver is in the input, and each turn's STT-final → first-audio time.

    Mirrors ``Probe`` in ``bench/overhead_pipecat.py`` (which cannot import Parley).
    """

    def __init__(self, segments: list[dict[str, Any]]) -> None:
        self.segments = segments
        self.segment = 0  # index of the segment the driver is pushing
        self.final_at: float | None = None
        self.final_segment = -1
        self.ttfa_ms: list[float] = []
        self.finals_per_segment = [0] * len(segments)
        self.unanswered = 0  # finals of measured segments never followed by audio

    def final(self) -> str:
        """The STT delivers a final now: note it and return the current segment's words."""
        if self.final_at is not None and self.segments[self.final_segment]["measured"]:
            self.unanswered += 1
        self.final_at = time.perf_counter()
        self.final_segment = self.segment
        self.finals_per_segment[self.segment] += 1
        return self.segments[self.segment]["transcript"]

    def audio(self) -> None:
        """A frame of agent audio reached the sink."""
        if self.final_at is None:
            return
        if self.segments[self.final_segment]["measured"]:
            self.ttfa_ms.append((time.perf_counter() - self.final_at) * 1000)
        self.final_at = None


class FakeSTTStream(STTStream):
    """Answers ``finalize()`` at once with the current segment's transcript."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.queue: asyncio.Queue[Transcript | None] = asyncio.Queue()

    async def push_audio(self, pcm16: bytes) -> None:
        pass  # "sent" to the engine

    async def finalize(self) -> None:
        text = self.probe.final()
        self.queue.put_nowait(Transcript(text=text, is_final=True, speech_final=True))

    async def aclose(self) -> None:
        self.queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[STTMessage]:  # type: ignore[override]
        while (item := await self.queue.get()) is not None:
            yield item


class FakeSTT(STT):
    name = "bench-stt"

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def open_stream(self) -> STTStream:
        return FakeSTTStream(self.probe)


class FakeLLM(LLM):
    """Streams the fixed reply word by word, at once."""

    name = "bench-llm"

    def __init__(self, reply: str) -> None:
        self.words = [f"{word} " for word in reply.split()]

    async def stream(self, *, messages, tools=None) -> AsyncIterator[LLMChunk]:  # type: ignore[override]
        for word in self.words:
            yield TextDelta(word)
        yield LLMDone(finish_reason="stop")


class FakeTTS(TTS):
    """``bytes_per_char`` bytes of a constant tone per character, in ``chunk_bytes`` chunks."""

    name = "bench-tts"

    def __init__(self, *, bytes_per_char: int, chunk_bytes: int) -> None:
        self.bytes_per_char = bytes_per_char
        self.chunk = (1000).to_bytes(2, "little", signed=True) * (chunk_bytes // 2)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:  # type: ignore[override]
        total = self.bytes_per_char * len(text)
        for offset in range(0, total, len(self.chunk)):
            yield self.chunk[: min(len(self.chunk), total - offset)]


class Sink:
    """EventSink and AudioSink of the call: counts what the table reports."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.errors: list[str] = []
        self.interruptions = 0

    async def emit(self, event: SessionEvent) -> None:
        if event.type == "error":
            self.errors.append(event.data.get("code", "?"))
        elif event.type == "interrupted":
            self.interruptions += 1

    async def send_audio(self, pcm16: bytes) -> None:
        self.probe.audio()


class NoTools:
    async def run(self, *, turn: int, call: ToolCallRequest) -> ToolResult:
        return ToolResult(ok=False, content="no tools")


async def drive(
    spec: dict[str, Any],
    probe: Probe,
    push: Callable[[bytes], Awaitable[None]],
    *,
    label: str,
) -> dict[str, Any]:
    """Push the input frames on a real-time schedule; CPU and wall from the first measured
    frame to the last frame. Mirrors the driver in ``bench/overhead_pipecat.py``."""
    pcm = spec["pcm_bytes"]
    frame_bytes, frame_s = spec["frame_bytes"], spec["frame_ms"] / 1000
    segments = spec["segments"]
    segment_of_frame = [k for k, s in enumerate(segments) for _ in range(s["frames"])]
    first = spec["measure_from_frame"]
    n = len(pcm) // frame_bytes
    cpu0 = wall0 = loop0 = 0.0
    t0 = time.perf_counter()
    for i in range(n):
        if i == first:
            cpu0, wall0, loop0 = _cpu_s(), time.perf_counter(), time.thread_time()
        k = segment_of_frame[i]
        new_round = k == 0 or segments[k]["round"] != segments[k - 1]["round"]
        if segments[k]["first_frame"] == i and segments[k]["measured"] and new_round:
            print(f"{label}: round {segments[k]['round']} ...", file=sys.stderr, flush=True)
        probe.segment = k
        delay = t0 + i * frame_s - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await push(pcm[i * frame_bytes : (i + 1) * frame_bytes])
    cpu1, wall1, loop1 = _cpu_s(), time.perf_counter(), time.thread_time()
    return {
        "frames": n - first,
        "cpu_s": cpu1 - cpu0,
        "loop_cpu_s": loop1 - loop0,
        "wall_s": wall1 - wall0,
    }


async def parley_call(spec: dict[str, Any], *, profile: cProfile.Profile | None) -> dict[str, Any]:
    """One call through :class:`CallSession` on the spec's input; the side's result dict."""
    wall_start = time.perf_counter()
    probe = Probe(spec["segments"])
    sink = Sink(probe)
    settings, vad_settings, _ = parley_settings()
    session = CallSession(
        vad=StreamingVAD(vad_settings),
        stt=FakeSTT(probe),
        llm=FakeLLM(spec["reply"]),
        tts=FakeTTS(bytes_per_char=spec["tts_bytes_per_char"], chunk_bytes=spec["tts_chunk_bytes"]),
        tools=NoTools(),
        events=sink,
        audio=sink,
        settings=settings,
    )
    await session.start()
    # Since the process started: imports, model load, session start.
    setup = {"setup_cpu_s": _cpu_s(), "setup_wall_s": time.perf_counter() - wall_start}
    if profile is not None:
        profile.enable()
    try:
        figures = await drive(spec, probe, session.push_audio, label="parley")
    finally:
        if profile is not None:
            profile.disable()
    await session.aclose()
    return {
        "framework": "parley",
        "python": sys.version.split()[0],
        "ttfa_ms": probe.ttfa_ms,
        "finals_per_segment": probe.finals_per_segment,
        "unanswered": probe.unanswered,
        "errors": sink.errors,
        "interruptions": sink.interruptions,
        **setup,
        **figures,
    }


def _git_version() -> str:
    """The commit, plus (when the voice package has uncommitted changes) a digest of its
    sources, so two runs on different working trees do not look alike."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = "unknown"
    if head.endswith("-dirty"):
        digest = hashlib.sha256()
        for path in sorted((ROOT / "parley" / "agents" / "voice").rglob("*.py")):
            digest.update(path.read_bytes())
        head = f"{head[: -len('-dirty')]}+{digest.hexdigest()[:6]}"
    return head


def parley_side(spec_path: Path, out_path: Path, *, profile: bool) -> None:
    """``--side parley``: run the call and write the result (and the profile) as JSON."""
    spec = json.loads(spec_path.read_text())
    spec["pcm_bytes"] = Path(spec["pcm"]).read_bytes()
    # CPU time of the event-loop thread, not wall time (which the idle epoll wait would fill).
    profiler = cProfile.Profile(time.thread_time) if profile else None
    result = asyncio.run(parley_call(spec, profile=profiler))
    result["version"] = _git_version()
    if profiler is not None:
        profiler.dump_stats(str(out_path.with_suffix(".prof")))
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text).sort_stats("tottime")
        stats.print_stats(25)
        result["profile"] = text.getvalue()
    out_path.write_text(json.dumps(result))


# ---------------------------------------------------------------- the pipecat venv


def pipecat_python() -> Path:
    """The pipecat venv's interpreter, creating the venv and installing pipecat if needed.

    Reused when its marker file names :data:`PIPECAT_REQUIREMENT`. Raises ``SystemExit``
    with pip's last output lines when the install fails, or when torch got installed.
    """
    python = PIPECAT_VENV / "bin" / "python"
    marker = PIPECAT_VENV / ".parley-bench-requirement"
    if python.exists() and marker.exists() and marker.read_text().strip() == PIPECAT_REQUIREMENT:
        return python
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        print(f"creating {PIPECAT_VENV.relative_to(ROOT)} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PIPECAT_VENV)], check=True)
    print(f"pip install {PIPECAT_REQUIREMENT} (first run only) ...", file=sys.stderr, flush=True)
    log_path = WORK_DIR / "pip-install.log"
    command = [str(python), "-m", "pip", "install", "--progress-bar", "off", PIPECAT_REQUIREMENT]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if line.startswith(("Collecting", "Installing", "Successfully")):
                print(f"  {line.rstrip()[:100]}", file=sys.stderr, flush=True)
        returncode = process.wait()
    if returncode:
        tail = log_path.read_text().splitlines()[-15:]
        raise SystemExit(
            f"pip install {PIPECAT_REQUIREMENT} failed (exit {returncode}); full log in "
            f"{log_path}:\n" + "\n".join(tail)
        )
    has_torch = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util, sys; sys.exit(bool(importlib.util.find_spec('torch')))",
        ],
        check=False,
    )
    if has_torch.returncode:
        raise SystemExit(f"torch was installed into {PIPECAT_VENV}: remove the venv and the extra")
    marker.write_text(PIPECAT_REQUIREMENT + "\n")
    return python


# ---------------------------------------------------------------- orchestration


def run_side(
    framework: str, spec_path: Path, *, run: int = 1, profile: bool = False
) -> dict[str, Any]:
    """Run one framework's side in its own process and return its result dict.

    Raises ``SystemExit`` when the side fails.
    """
    out_path = WORK_DIR / f"{framework}-{run}.json"
    out_path.unlink(missing_ok=True)
    if framework == "parley":
        command = [sys.executable, __file__, "--side", "parley", "--spec", str(spec_path)]
        command += ["--out", str(out_path)] + (["--profile"] if profile else [])
    else:
        command = [str(pipecat_python()), str(PIPECAT_SCRIPT), "--spec", str(spec_path)]
        command += ["--out", str(out_path)]
    load_before = os.getloadavg()[0]
    print(
        f"{framework}: run {run}, one call (load average {load_before:.2f}) ...",
        file=sys.stderr,
        flush=True,
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if subprocess.run(command, env=env, check=False).returncode or not out_path.exists():
        raise SystemExit(f"the {framework} side failed (see its output above)")
    # Other processes on the machine take CPU from the call (and wake-ups get slower).
    return {**json.loads(out_path.read_text()), "load_before": load_before}


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One framework's runs as one: turns pooled, CPU and frames summed."""
    merged = dict(results[0])
    for key in ("ttfa_ms", "errors"):
        merged[key] = [v for r in results for v in r[key]]
    for key in ("unanswered", "frames", "cpu_s", "loop_cpu_s", "wall_s"):
        merged[key] = sum(r[key] for r in results)
    merged["finals_per_segment"] = [
        sum(f) for f in zip(*(r["finals_per_segment"] for r in results), strict=True)
    ]
    merged["runs"] = len(results)
    merged["cpu_us_per_frame_by_run"] = [round(r["cpu_s"] / r["frames"] * 1e6, 1) for r in results]
    merged["load_before"] = max(r["load_before"] for r in results)
    merged["setup_cpu_s"] = max(r["setup_cpu_s"] for r in results)
    return merged


def summarize(result: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Table figures of one side (its runs merged): turns, added TTFA p50/p99 (ms), CPU per
    frame (µs)."""
    ttfa = result["ttfa_ms"]
    measured = [k for k, s in enumerate(spec["segments"]) if s["measured"]]
    finals = result["finals_per_segment"]
    runs = result.get("runs", 1)
    return {
        "framework": result["framework"],
        "version": result["version"],
        "turns": len(ttfa),
        "segments": len(measured) * runs,
        "splits": sum(1 for k in measured if finals[k] != runs),
        "unanswered": result["unanswered"],
        "ttfa_p50_ms": round(percentile(ttfa, 50), 2) if ttfa else None,
        "ttfa_p99_ms": round(percentile(ttfa, 99), 2) if ttfa else None,
        "ttfa_max_ms": round(max(ttfa), 2) if ttfa else None,
        "cpu_us_per_frame": round(result["cpu_s"] / result["frames"] * 1e6, 1),
        "cpu_us_per_frame_by_run": result.get("cpu_us_per_frame_by_run", []),
        "loop_cpu_us_per_frame": round(result["loop_cpu_s"] / result["frames"] * 1e6, 1),
        "frames": result["frames"],
        "cpu_s": round(result["cpu_s"], 3),
        "wall_s": round(result["wall_s"], 1),
        "setup_cpu_s": round(result["setup_cpu_s"], 2),
        "load_before": round(result.get("load_before", 0.0), 2),
        "ttfa_ms": [round(v, 3) for v in ttfa],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    pipecat = next((r for r in rows if r["framework"] == "pipecat"), None)
    header = (
        f"{'framework':<24} | {'turns':>5} | {'added TTFA p50 ms':>17} | {'p99 ms':>7} | "
        f"{'CPU µs/frame':>12} | {'ratio to pipecat':>16}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = row["cpu_us_per_frame"] / pipecat["cpu_us_per_frame"] if pipecat else None
        row["cpu_ratio_to_pipecat"] = None if ratio is None else round(ratio, 3)
        print(
            f"{row['framework'] + ' ' + row['version']:<24} | {row['turns']:>5} | "
            f"{_fmt(row['ttfa_p50_ms']):>17} | {_fmt(row['ttfa_p99_ms']):>7} | "
            f"{row['cpu_us_per_frame']:>12.1f} | {_fmt(ratio, '.2f'):>16}"
        )
    print()
    for row in rows:
        print(
            f"{row['framework']}: {row['frames']} frames in {row['wall_s']} s (load average "
            f"{row['load_before']} before), CPU {row['cpu_s']} s "
            f"(by run {row['cpu_us_per_frame_by_run']} µs/frame; event loop "
            f"{row['loop_cpu_us_per_frame']} µs/frame), startup CPU "
            f"{row['setup_cpu_s']} s, TTFA max {_fmt(row['ttfa_max_ms'])} ms, "
            f"{row['segments']} clips played, {row['splits']} split, "
            f"{row['unanswered']} unanswered"
        )


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 8's targets for Parley: added TTFA p99 ≤ 5 ms, CPU/frame ≤ 0.5 × pipecat's."""
    by = {r["framework"]: r for r in rows}
    parley, pipecat = by.get("parley"), by.get("pipecat")
    result: dict[str, Any] = {}
    if parley and parley["ttfa_p99_ms"] is not None:
        result["ttfa_p99_le_5ms"] = parley["ttfa_p99_ms"] <= 5.0
    if parley and pipecat:
        result["cpu_le_half_of_pipecat"] = parley["cpu_ratio_to_pipecat"] <= 0.5
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes over the clips per call")
    parser.add_argument(
        "--runs", type=int, default=2, help="calls per framework, alternating which goes first"
    )
    parser.add_argument(
        "--clips", type=int, default=len(CLIPS), choices=range(1, len(CLIPS) + 1),
        metavar=f"1..{len(CLIPS)}", help="how many of the clips to use",
    )  # fmt: skip
    parser.add_argument("--silence-ms", type=int, default=2000, help="silence after each clip")
    parser.add_argument("--only", choices=("parley", "pipecat"), help="run one side only")
    parser.add_argument("--profile", action="store_true", help="cProfile the Parley side")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--side", choices=("parley",), help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        parley_side(args.spec, args.out, profile=args.profile)
        return
    if args.rounds < 1 or args.runs < 1 or args.silence_ms < 1000:
        parser.error("--rounds and --runs must be at least 1, --silence-ms at least 1000")

    spec = build_input(
        names=list(CLIPS[: args.clips]),
        rounds=args.rounds,
        silence_ms=args.silence_ms,
        work_dir=WORK_DIR,
    )
    spec_path = WORK_DIR / "input.json"
    spec_path.write_text(json.dumps(spec))
    frames = sum(s["frames"] for s in spec["segments"])
    print(
        f"input: {args.rounds} rounds x {args.clips} clips + 1 warm-up, {frames} frames "
        f"({frames * FRAME_MS / 1000:.0f} s of audio per call; {args.runs} calls per framework)",
        file=sys.stderr,
    )
    frameworks = [args.only] if args.only else ["parley", "pipecat"]
    if "pipecat" in frameworks:
        pipecat_python()  # install before any timing starts
    results: dict[str, list[dict[str, Any]]] = {f: [] for f in frameworks}
    for run in range(1, args.runs + 1):
        # Alternate the order, so a load that drifts over time weighs on both alike.
        for framework in frameworks if run % 2 else frameworks[::-1]:
            result = run_side(framework, spec_path, run=run, profile=args.profile)
            results[framework].append(result)
    rows = [summarize(merge(results[f]), spec) for f in frameworks]
    print()
    print(
        f"framework overhead: zero-latency fakes, real Silero VAD, {args.runs} calls x "
        f"{args.rounds} rounds x {args.clips} clips, {FRAME_MS} ms frames paced in real time"
    )
    print_table(rows)
    print(f"Parley settings changed from the defaults: {spec['parley_changed_settings']}")
    if results.get("pipecat"):
        print(f"pipecat settings: {results['pipecat'][0]['settings']}")
    if max(r["load_before"] for r in rows) > 1.0:
        print(
            "note: other processes were using the CPU (load average above 1): the figures "
            "are less reliable; run on a quiet machine"
        )
    goals = targets(rows)
    for name, ok in goals.items():
        print(f"target {name}: {'met' if ok else 'MISSED'}")
    profile = next((r["profile"] for r in results.get("parley", []) if r.get("profile")), None)
    if profile:
        print("\nParley side, cProfile of the event-loop thread (top 25 by own time):")
        print(profile)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "targets": goals,
                    "config": {
                        "clips": list(CLIPS[: args.clips]),
                        "rounds": args.rounds,
                        "runs": args.runs,
                        "silence_ms": args.silence_ms,
                        "reply": REPLY,
                        "pipecat_requirement": PIPECAT_REQUIREMENT,
                        **{k: spec[k] for k in ("vad", "audio_lead_ms", "tts_bytes_per_char")},
                        "parley_changed_settings": spec["parley_changed_settings"],
                        "pipecat_settings": results["pipecat"][0]["settings"]
                        if results.get("pipecat")
                        else None,
                        "profiled": args.profile,
                    },
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
