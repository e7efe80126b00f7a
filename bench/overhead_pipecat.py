"""The pipecat side of ``bench/overhead.py``: one call through pipecat with zero-latency fakes.

    <pipecat venv>/bin/python bench/overhead_pipecat.py --spec SPEC.json --out RESULT.json

Run by ``bench/overhead.py`` in its own virtual environment (``var/bench/pipecat-venv``); it
imports only pipecat, numpy and the standard library, never Parley. ``SPEC.json`` (written by
``bench/overhead.py``) names the caller audio (raw PCM16 mono 16 kHz, cut into 20 ms frames),
the segments (clip, transcript, first frame) and the fake providers' reply; the Parley side
reads the same file, so both frameworks get the same bytes at the same pace.

The pipeline is pipecat's standard cascade::

    input transport → STT → user aggregator (Silero VAD, turn strategies) → LLM → TTS
      → output transport → assistant aggregator

- Input transport: a ``BaseInputTransport`` fed by a microphone-like driver, one 640-byte
  frame every 20 ms on an absolute schedule (``push_audio_frame``, as pipecat's network
  transports do on receipt).
- STT: answers pipecat's end of speech (``VADUserStoppedSpeakingFrame``) at once with the
  segment's transcript as a finalized ``TranscriptionFrame``; ``ttfs_p99_latency=0``.
- LLM: streams the spec's reply word by word (``LLMTextFrame``) the moment the context
  arrives.
- TTS: 24 kHz PCM, ``tts_bytes_per_char`` per character, in ``tts_chunk_bytes`` chunks,
  yielded at once.
- Output transport: a ``BaseOutputTransport`` whose ``write_audio_frame`` is the sink: it
  notes the first audio of a turn and paces like a network transport (the same rule as
  Parley's session: at most ``audio_lead_ms`` ahead of real time).

Added TTFA of a turn = first ``write_audio_frame`` after the STT final − the moment the STT
pushed the final. CPU = ``getrusage(RUSAGE_SELF)`` (user + sys, all threads) from the first
measured frame to the last frame. Writes ``RESULT.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import resource
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    OutputAudioRawFrame,
    StartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.services.settings import LLMSettings, ServiceSettings, STTSettings, TTSSettings
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.utils.time import time_now_iso8601
from pipecat.workers.runner import WorkerRunner

SYSTEM_PROMPT = "You are a benchmark agent."


def _unsupported(cls: type[ServiceSettings], **given: Any) -> Any:
    """Store-mode settings with every field the fake does not use set to None."""
    return cls(**{f.name: None for f in fields(cls) if f.name != "extra"} | given)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Probe:
    """Where the driver is in the input, and the turns' STT-final → first-audio times."""

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


class BenchInputTransport(BaseInputTransport):
    """Receives caller audio from the driver (a network transport's receive loop)."""

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)


class BenchOutputTransport(BaseOutputTransport):
    """The audio sink: marks the first agent audio of a turn and paces like a network
    transport (frames go out at most ``lead_s`` ahead of real time)."""

    def __init__(self, params: TransportParams, *, probe: Probe, lead_s: float) -> None:
        super().__init__(params)
        self._probe = probe
        self._lead_s = lead_s
        self._play_at = 0.0

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        self._probe.audio()
        now = time.monotonic()
        self._play_at = max(self._play_at, now) + len(frame.audio) / (2 * frame.sample_rate)
        ahead = self._play_at - time.monotonic() - self._lead_s
        if ahead > 0:
            await asyncio.sleep(ahead)
        return True


class BenchTransport(BaseTransport):
    def __init__(self, params: TransportParams, *, probe: Probe, lead_s: float) -> None:
        super().__init__()
        self._input = BenchInputTransport(params)
        self._output = BenchOutputTransport(params, probe=probe, lead_s=lead_s)

    def input(self) -> BenchInputTransport:
        return self._input

    def output(self) -> BenchOutputTransport:
        return self._output


class FakeSTT(STTService):
    """A streaming STT that answers the end of speech at once with the known transcript."""

    def __init__(self, *, probe: Probe) -> None:
        super().__init__(ttfs_p99_latency=0.0, settings=_unsupported(STTSettings))
        self._probe = probe

    async def run_stt(self, audio: bytes):  # type: ignore[override]
        yield None  # audio "sent" to the engine; results arrive on their own

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            text = self._probe.final()
            await self.push_frame(
                TranscriptionFrame(text, "caller", time_now_iso8601(), finalized=True)
            )


class FakeLLM(LLMService):
    """Streams the fixed reply, word by word, as soon as a context arrives."""

    def __init__(self, *, words: list[str]) -> None:
        settings = _unsupported(
            LLMSettings, filter_incomplete_user_turns=False, use_provider_thinking_default=False
        )
        super().__init__(settings=settings)
        self._words = words

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self.push_frame(LLMFullResponseStartFrame())
            await self.start_processing_metrics()
            await self.start_ttfb_metrics()
            await self.stop_ttfb_metrics()  # the first token is there at once
            for word in self._words:
                await self._push_llm_text(word)
            await self.stop_processing_metrics()
            await self.push_frame(LLMFullResponseEndFrame())
        else:
            await self.push_frame(frame, direction)


class FakeTTS(TTSService):
    """``bytes_per_char`` bytes of a constant tone per character, in ``chunk_bytes`` chunks."""

    def __init__(self, *, bytes_per_char: int, chunk_bytes: int) -> None:
        super().__init__(
            push_start_frame=True, push_stop_frames=True, settings=_unsupported(TTSSettings)
        )
        self._bytes_per_char = bytes_per_char
        self._chunk = (1000).to_bytes(2, "little", signed=True) * (chunk_bytes // 2)

    async def run_tts(self, text: str, context_id: str):  # type: ignore[override]
        total = self._bytes_per_char * len(text)
        for offset in range(0, total, len(self._chunk)):
            size = min(len(self._chunk), total - offset)
            yield TTSAudioRawFrame(self._chunk[:size], self.sample_rate, 1, context_id=context_id)


class _Started(FrameProcessor):
    """Sets ``event`` when the StartFrame has passed through the whole pipeline."""

    def __init__(self, event: asyncio.Event) -> None:
        super().__init__()
        self._event = event

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self._event.set()
        await self.push_frame(frame, direction)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    wall_start = time.perf_counter()
    pcm = spec["pcm_bytes"]
    frame_bytes, frame_s = spec["frame_bytes"], spec["frame_ms"] / 1000
    probe = Probe(spec["segments"])
    vad = spec["vad"]

    params = TransportParams(
        audio_in_enabled=True,
        audio_in_sample_rate=16_000,
        audio_out_enabled=True,
        audio_out_sample_rate=spec["tts_sample_rate_hz"],
        # 20 ms output frames, as Parley sends (pipecat's default is 40 ms).
        audio_out_10ms_chunks=spec["frame_ms"] // 10,
        audio_out_end_silence_secs=0,
    )
    transport = BenchTransport(params, probe=probe, lead_s=spec["audio_lead_ms"] / 1000)
    context = LLMContext(messages=[{"role": "system", "content": SYSTEM_PROMPT}])
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            vad_analyzer=SileroVADAnalyzer(
                params=VADParams(
                    confidence=vad["threshold"],
                    start_secs=vad["min_speech_ms"] / 1000,
                    stop_secs=vad["min_silence_ms"] / 1000,
                )
            ),
            # End of turn = VAD stop (stop_secs of silence) + a finalized transcript; no
            # extra policy wait after it (pipecat's default is 0.6 s).
            user_turn_strategies=UserTurnStrategies(
                stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.0)]
            ),
        ),
    )
    started = asyncio.Event()
    pipeline = Pipeline(
        [
            transport.input(),
            FakeSTT(probe=probe),
            user_aggregator,
            FakeLLM(words=[f"{word} " for word in spec["reply"].split()]),
            FakeTTS(bytes_per_char=spec["tts_bytes_per_char"], chunk_bytes=spec["tts_chunk_bytes"]),
            transport.output(),
            assistant_aggregator,
            _Started(started),
        ]
    )
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=16_000),
        enable_rtvi=False,
        enable_turn_tracking=False,
        cancel_on_idle_timeout=False,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    figures: dict[str, Any] = {}

    async def drive() -> None:
        await asyncio.wait_for(started.wait(), timeout=60)
        # Since the process started: imports, model load, pipeline start.
        figures.update(setup_cpu_s=_cpu_s(), setup_wall_s=time.perf_counter() - wall_start)
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
                print(f"pipecat: round {segments[k]['round']} ...", file=sys.stderr, flush=True)
            probe.segment = k
            delay = t0 + i * frame_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await transport.input().push_audio_frame(
                InputAudioRawFrame(pcm[i * frame_bytes : (i + 1) * frame_bytes], 16_000, 1)
            )
        cpu1, wall1, loop1 = _cpu_s(), time.perf_counter(), time.thread_time()
        figures.update(
            frames=n - first,
            cpu_s=cpu1 - cpu0,
            loop_cpu_s=loop1 - loop0,
            wall_s=wall1 - wall0,
        )
        await worker.cancel()

    await asyncio.gather(runner.run(), drive())
    return {
        "framework": "pipecat",
        "version": importlib.metadata.version("pipecat-ai"),
        "settings": {
            "VADParams": user_aggregator._params.vad_analyzer.params.model_dump(),
            "user_turn_stop": "SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.0)",
            "ttfs_p99_latency": 0.0,
            "audio_out_10ms_chunks": params.audio_out_10ms_chunks,
            "enable_rtvi": False,
            "enable_turn_tracking": False,
            "enable_metrics": False,
        },
        "python": sys.version.split()[0],
        "ttfa_ms": probe.ttfa_ms,
        "finals_per_segment": probe.finals_per_segment,
        "unanswered": probe.unanswered,
        "errors": [],
        "interruptions": None,
        **figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    # Warnings and errors only, as the Parley side (stdlib logging's default level).
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    spec = json.loads(args.spec.read_text())
    spec["pcm_bytes"] = Path(spec["pcm"]).read_bytes()
    result = asyncio.run(run(spec))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
