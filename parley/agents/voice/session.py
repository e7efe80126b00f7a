"""CallSession: one call's realtime loop, VAD → STT → LLM (+ tools) → chunker → TTS.

The session owns no transport and builds none of its providers: the Channels consumer (or a
test harness) constructs VAD, STT, LLM, TTS, the tool runner and the event/audio sinks and
injects them. It imports nothing from Django.

Turn life cycle (turn ``n`` = the caller's n-th utterance; turn 0 is the greeting)::

    vad.speech_start ─► turn.started ─► transcript.partial* ─► vad.speech_end
      ─► (STT finalize) transcript.final ─► agent.text* / tool.call / tool.result
      ─► agent.speaking ─► agent.done ─► turn.metrics ─► turn.ended

Barge-in: a ``vad.speech_start`` while a reply is being generated or spoken cancels the
reply task (LLM stream, TTS and audio pacing stop at once), emits ``interrupted`` with the
text the caller actually heard, and keeps only that text in the LLM history.

Latency (per turn, ms, all from the end of the caller's speech unless noted — see
``Turn`` in ``parley.conversations.models``): endpointing, STT final, LLM TTFT and first
chunk (from the LLM request), TTS TTFB (from the TTS request) and TTFA.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from parley.agents.voice.chunker import SentenceChunker
from parley.agents.voice.llm.base import LLM, LLMError
from parley.agents.voice.messages import (
    BYTES_PER_SAMPLE,
    LLMDone,
    SessionEvent,
    STTNotice,
    TextDelta,
    ToolCallRequest,
    ToolResult,
    Transcript,
    VADEvent,
)
from parley.agents.voice.recording import CallRecorder
from parley.agents.voice.stt.base import STT, STTError, STTStream
from parley.agents.voice.tts.base import TTS, TTSError
from parley.agents.voice.vad import StreamingVAD

logger = logging.getLogger(__name__)

#: Spoken when the LLM fails or the tool-step cap is hit, so the caller is never left in silence.
FALLBACK_REPLY = "Sorry, I'm having trouble with that right now. Could you say it again?"
STEP_CAP_REPLY = "Sorry, that is taking me too many steps. Could you put it another way?"
#: Spoken after the part already said when the LLM stream breaks mid-reply (never a repeat).
BROKEN_REPLY_TAIL = "Sorry, I lost my connection for a moment."
#: At hang-up, how long the STT stream's last messages may take to arrive (s).
_STT_DRAIN_S = 1.0


class EventSink(Protocol):
    """Receives every JSON event in order (the consumer sends and persists them)."""

    async def emit(self, event: SessionEvent) -> None: ...


class AudioSink(Protocol):
    """Receives agent audio: PCM16 mono at the TTS sample rate, one frame per call."""

    async def send_audio(self, pcm16: bytes) -> None: ...


class ToolRunner(Protocol):
    """Runs one tool call and returns what the LLM reads back. Must not raise for bad calls."""

    async def run(self, *, turn: int, call: ToolCallRequest) -> ToolResult: ...


@dataclass(frozen=True)
class SessionSettings:
    """Per-call options. Times in ms.

    ``audio_lead_ms``: how far agent audio is sent ahead of real time; the widget's jitter
    buffer holds it, and it bounds how much already-sent audio a barge-in discards.
    ``text_only``: no speech at all — the caller's turns arrive as text
    (:meth:`CallSession.push_text`), no STT stream is opened and replies are not synthesized
    (evaluation runs in text mode); every sentence counts as heard.
    """

    system_prompt: str = ""
    tools: tuple[dict[str, Any], ...] = ()
    greeting: str = ""
    max_tool_steps: int = 5
    stt_final_timeout_ms: int = 3_000
    audio_lead_ms: int = 120
    frame_ms: int = 20
    text_only: bool = False


#: Longest typed caller turn accepted (characters).
MAX_TEXT_TURN_CHARS = 2_000
#: Largest playout delay or round trip a client may report (ms); beyond it the report is junk.
MAX_CLIENT_REPORT_MS = 60_000.0


@dataclass
class TurnState:
    """Mutable bookkeeping of one turn (owned by the session's tasks)."""

    index: int
    started_at: float
    speech_start_audio_ms: float | None = None
    speech_end_at: float | None = None
    speech_ms: float | None = None
    end_decided_at: float | None = None
    user_text: str = ""
    agent_text: str = ""
    spoken_text: str = ""
    status: str = "listening"
    error: str = ""
    llm_steps: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    agent_audio_ms: float = 0.0
    finals: list[str] = field(default_factory=list)
    final_event: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False
    typed: bool = False  # the caller's words arrived as text, not speech
    routes: list[dict[str, Any]] = field(default_factory=list)  # fleet routing per LLM step
    usage: dict[str, int] = field(default_factory=dict)  # LLM token counts, summed over steps


@dataclass
class _Segment:
    """One chunk of agent text and the audio sent for it, for barge-in accounting."""

    text: str
    bytes_sent: int = 0
    bytes_total: int | None = None  # known when synthesis of the chunk finished
    first_play_at: float | None = None
    last_play_end: float | None = None


@dataclass(slots=True)
class _Pacer:
    """Real-time pacing state of one reply's audio (times are ``time.monotonic()``)."""

    frame_bytes: int
    frame_s: float
    lead_s: float
    play_at: float = 0.0  # when the next frame starts playing at the caller
    speaking: bool = False


class CallSession:
    """The realtime loop of one call. Create, ``await start()``, feed ``push_audio``, ``aclose``.

    All tasks it creates are kept in ``self._tasks`` and cancelled by :meth:`aclose`.
    Methods are called from one event loop; ``push_audio`` must be awaited in frame order.
    """

    def __init__(
        self,
        *,
        vad: StreamingVAD,
        stt: STT,
        llm: LLM,
        tts: TTS,
        tools: ToolRunner,
        events: EventSink,
        audio: AudioSink,
        settings: SessionSettings,
        history: list[dict[str, Any]] | None = None,
        fallback_tts: TTS | None = None,
        recorder: CallRecorder | None = None,
    ) -> None:
        if fallback_tts is not None and fallback_tts.sample_rate_hz != tts.sample_rate_hz:
            raise ValueError("the fallback TTS must produce the same sample rate as the TTS")
        self.vad = vad
        self.stt = stt
        self.llm = llm
        self.tts = tts
        self.fallback_tts = fallback_tts
        self.tools = tools
        self.events = events
        self.audio = audio
        self.settings = settings
        # Records caller and agent audio on this session's clock; started and closed by
        # whoever built it (the call runtime), fed here.
        self.recorder = recorder
        self.history: list[dict[str, Any]] = list(history or [])
        if settings.system_prompt and not self.history:
            self.history.append({"role": "system", "content": settings.system_prompt})
        self._t0 = time.monotonic()
        self._stt_stream: STTStream | None = None
        self._stt_reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._turn_counter = 0
        self._listening: TurnState | None = None  # turn whose caller speech is in progress
        self._responding: TurnState | None = None  # turn whose reply is being produced
        self._reply_task: asyncio.Task[None] | None = None
        self._speaker_task: asyncio.Task[None] | None = None  # speaks the current reply
        self._segments: list[_Segment] = []
        self._closed = False
        self._emit_lock = asyncio.Lock()
        self._ttfa_ms: dict[int, float] = {}  # server TTFA per turn, for the caller's reports
        self._played: set[int] = set()  # turns whose playback start the caller reported

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Open the STT stream (and warm the TTS connection meanwhile), announce the session
        and speak the greeting (turn 0). Raises :class:`STTError` when the STT cannot start.
        In ``text_only`` mode neither the STT nor the TTS is touched."""
        warm_error: BaseException | None = None
        if not self.settings.text_only:
            warm = asyncio.get_running_loop().create_task(self.tts.warm(), name="tts-warm")
            try:
                self._stt_stream = await self.stt.open_stream()
            except BaseException:
                # The call cannot start: release what the warm-up (and the LLM client) opened.
                await asyncio.gather(warm, return_exceptions=True)
                self._closed = True
                await self._close_providers()
                raise
            (warm_error,) = await asyncio.gather(warm, return_exceptions=True)
            self._stt_reader = self._spawn(
                self._read_transcripts(self._stt_stream), name="stt-reader"
            )
        await self._emit(
            "session.started",
            0,
            input={"encoding": "pcm_s16le", "sample_rate_hz": 16_000, "channels": 1},
            output={
                "encoding": "pcm_s16le",
                "sample_rate_hz": self.tts.sample_rate_hz,
                "channels": 1,
            },
            providers={"stt": self.stt.name, "llm": self.llm.name, "tts": self.tts.name},
            greeting=bool(self.settings.greeting),
            text_only=self.settings.text_only,
        )
        if isinstance(warm_error, Exception):
            # Not fatal: each reply retries the connection and falls back to the offline engine.
            await self._emit(
                "error", 0, code="tts_warm_failed", message=str(warm_error), fatal=False
            )
        if self.settings.greeting:
            turn = TurnState(index=0, started_at=time.monotonic())
            await self._emit("turn.started", 0, role="agent")
            self._start_reply(turn, greeting=self.settings.greeting)

    async def aclose(self, *, reason: str = "hangup") -> None:
        """End the call: cancel every task, close providers, emit ``call.ended``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._reply_task is not None and not self._reply_task.done():
            await self._interrupt(reason="hangup")
        if self._listening is not None and not self._listening.ended:
            self._listening.status = "completed" if self._listening.user_text else "abandoned"
            await self._end_turn(self._listening)
        if self._stt_stream is not None:
            # CloseStream first, and let the reader record what the engine says last (its
            # final results and, for Deepgram, the Metadata summary) before it is cancelled.
            try:
                await self._stt_stream.aclose()
            except Exception:
                logger.exception("error while closing the STT stream")
            if self._stt_reader is not None:
                await asyncio.wait({self._stt_reader}, timeout=_STT_DRAIN_S)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._close_providers()
        await self._emit("call.ended", self._turn_counter, reason=reason)

    async def _close_providers(self) -> None:
        closers = [self.llm.aclose, self.tts.aclose]
        if self.fallback_tts is not None:
            closers.append(self.fallback_tts.aclose)
        for closer in closers:
            try:
                await closer()
            except Exception:  # closing must never mask the hang-up
                logger.exception("error while closing a provider")

    def _spawn(self, coro: Any, *, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("session task %s failed", task.get_name(), exc_info=task.exception())

    # ------------------------------------------------------------------ input path

    async def push_audio(self, pcm16: bytes) -> None:
        """Feed one caller frame (PCM16 mono 16 kHz). Raises ValueError on odd byte counts."""
        if self._closed:
            return
        if len(pcm16) % BYTES_PER_SAMPLE:
            raise ValueError(f"odd frame length {len(pcm16)} bytes: PCM16 needs whole samples")
        if self.settings.text_only:
            raise ValueError("this call is text-only: send caller turns as text")
        at = time.monotonic()
        assert self._stt_stream is not None, "start() first"
        if self.recorder is not None:
            self.recorder.caller(pcm16, at_ms=(at - self._t0) * 1000)
        await self._stt_stream.push_audio(pcm16)
        for event in await self.vad.push(pcm16, at=at):
            await self._on_vad(event)

    async def push_text(self, text: str) -> int:
        """A caller turn given as text (typed, or an evaluation's line): it skips VAD and STT
        and goes straight into the agent loop, barging in on a reply in progress like speech.

        Returns the turn index. Raises ``ValueError`` for empty text or text longer than
        :data:`MAX_TEXT_TURN_CHARS`, and ``RuntimeError`` once the call has ended.
        """
        text = " ".join(text.split())
        if not text:
            raise ValueError("a text turn needs some text")
        if len(text) > MAX_TEXT_TURN_CHARS:
            raise ValueError(f"a text turn is limited to {MAX_TEXT_TURN_CHARS} characters")
        if self._closed:
            raise RuntimeError("the call has ended")
        if self._reply_task is not None and not self._reply_task.done():
            await self._interrupt(reason="barge_in")
        self._turn_counter += 1
        turn = TurnState(
            index=self._turn_counter, started_at=time.monotonic(), user_text=text, typed=True
        )
        await self._emit("turn.started", turn.index, role="caller", input="text")
        await self._emit("transcript.final", turn.index, text=text, input="text")
        self._start_reply(turn)
        return turn.index

    async def playback_started(
        self, *, turn: int, playout_delay_ms: float, rtt_ms: float | None = None
    ) -> float | None:
        """The caller's client reports that turn ``turn``'s reply started playing.

        ``playout_delay_ms``: on the client's clock, first audio frame of the reply received →
        its first sample played (jitter buffer + output latency). ``rtt_ms``: the client's
        latest WebSocket round trip (ping → pong). TTFA at the caller's ear is then the server's
        TTFA + the round trip (the end of the caller's speech travelling up, the first agent
        frame travelling down) + the playout delay. It joins the turn's metrics when the turn
        is still going, and a ``playback.started`` event records it either way.

        Returns ``ear_ttfa_ms`` (``None`` when the turn has no server TTFA, as the greeting).
        Raises ``ValueError`` for an unknown turn, a turn reported twice, or values that are
        not numbers within 0..MAX_CLIENT_REPORT_MS.
        """
        known = isinstance(turn, int) and not isinstance(turn, bool)
        if not known or not 0 <= turn <= self._turn_counter:
            raise ValueError(f"playback.started names no turn of this call: {turn!r}")
        if turn in self._played:
            raise ValueError(f"playback of turn {turn} was already reported")
        values = {"playout_delay_ms": playout_delay_ms, "rtt_ms": rtt_ms}
        for name, value in values.items():
            if value is None and name == "rtt_ms":
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= MAX_CLIENT_REPORT_MS
            ):
                raise ValueError(f"{name} must be a number of ms in 0..{MAX_CLIENT_REPORT_MS:.0f}")
        self._played.add(turn)
        ttfa = self._ttfa_ms.get(turn)
        ear = None if ttfa is None else ttfa + (rtt_ms or 0.0) + playout_delay_ms
        current = self._responding
        if current is not None and current.index == turn and not current.ended:
            current.metrics["playout_delay_ms"] = float(playout_delay_ms)
            if rtt_ms is not None:
                current.metrics["network_rtt_ms"] = float(rtt_ms)
            if ear is not None:
                current.metrics["ear_ttfa_ms"] = ear
        await self._emit(
            "playback.started",
            turn,
            playout_delay_ms=round(float(playout_delay_ms), 1),
            rtt_ms=_round(rtt_ms),
            ear_ttfa_ms=_round(ear),
        )
        return ear

    async def _on_vad(self, event: VADEvent) -> None:
        if event.kind == "speech_start":
            if self._reply_task is not None and not self._reply_task.done():
                await self._interrupt(reason="barge_in")
            self._turn_counter += 1
            turn = TurnState(
                index=self._turn_counter,
                started_at=event.at,
                speech_start_audio_ms=event.audio_ms,
            )
            self._listening = turn
            await self._emit("turn.started", turn.index, role="caller")
            await self._emit(
                "vad.speech_start",
                turn.index,
                audio_ms=round(event.audio_ms, 1),
                probability=round(event.probability, 3),
            )
            assert self._stt_stream is not None
            await self._stt_stream.speech_started(audio_ms=event.audio_ms)
            return

        listening = self._listening
        if listening is None:  # an end without a start (VAD reset): nothing to close
            return
        turn = listening
        # The speech ended `lag` ms of audio before the window that confirmed it arrived;
        # audio arrives in real time, so the wall time of the end is `at - lag`.
        lag_ms = max(0.0, self.vad.audio_ms - event.audio_ms)
        turn.speech_end_at = event.at - lag_ms / 1000
        turn.end_decided_at = time.monotonic()
        if turn.speech_start_audio_ms is not None:
            turn.speech_ms = event.audio_ms - turn.speech_start_audio_ms
        turn.metrics["endpointing_ms"] = (turn.end_decided_at - turn.speech_end_at) * 1000
        await self._emit(
            "vad.speech_end",
            turn.index,
            audio_ms=round(event.audio_ms, 1),
            speech_ms=round(turn.speech_ms or 0.0, 1),
            forced=event.forced,
        )
        self._listening = None
        assert self._stt_stream is not None
        await self._stt_stream.finalize()
        self._start_reply(turn)

    async def _read_transcripts(self, stream: STTStream) -> None:
        try:
            async for message in stream:
                if isinstance(message, STTNotice):
                    await self._emit(f"stt.{message.kind}", self._turn_counter, **message.data)
                else:
                    await self._on_transcript(message)
        except STTError as exc:
            await self._emit(
                "error", self._turn_counter, code="stt_error", message=str(exc), fatal=False
            )

    async def _on_transcript(self, transcript: Transcript) -> None:
        # A final completes the turn waiting for it (its end of speech has passed). A final that
        # arrives while a turn is still listening (the engine's own endpointing, or the words of
        # a turn the caller talked over) is kept and merged into that turn's text.
        responding = self._responding
        waiting = responding if responding is not None and responding.status == "stt" else None
        turn = waiting or self._listening
        if turn is None:
            return
        if not transcript.is_final:
            if transcript.text:
                await self._emit("transcript.partial", turn.index, text=transcript.text)
            return
        if transcript.text:
            turn.finals.append(transcript.text)
        if turn is waiting and transcript.speech_final:
            # Only the end-of-speech final (the answer to ``finalize()``) completes the turn;
            # earlier finals of a long utterance may still be on their way.
            turn.final_event.set()

    # ------------------------------------------------------------------ reply path

    def _start_reply(self, turn: TurnState, *, greeting: str | None = None) -> None:
        turn.status = "stt" if greeting is None and not turn.typed else "responding"
        self._responding = turn
        self._segments = []
        self._reply_task = self._spawn(self._reply(turn, greeting), name=f"reply-{turn.index}")

    async def _reply(self, turn: TurnState, greeting: str | None) -> None:
        """Produce and speak one reply: the greeting, or the agent loop's answer."""
        if greeting is None:
            if not turn.typed:
                await self._await_final(turn)
            turn.status = "responding"
            if not turn.user_text:
                # Noise or a word the engine could not make out: nothing to answer.
                turn.status = "completed"
                await self._finish_reply(turn)
                return
            self.history.append({"role": "user", "content": turn.user_text})

        speech_queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._speaker_task = self._spawn(
            self._speak(turn, speech_queue), name=f"speak-{turn.index}"
        )
        try:
            if greeting is None:
                await self._agent_loop(turn, speech_queue)
            else:
                await self._queue_sentence(turn, greeting, speech_queue, time.monotonic())
        finally:
            speech_queue.put_nowait(None)
        await self._speaker_task
        if turn.agent_text:
            self.history.append({"role": "assistant", "content": turn.spoken_text})
        if turn.status == "responding":
            turn.status = "completed"
        await self._finish_reply(turn)

    async def _await_final(self, turn: TurnState) -> None:
        timeout_s = self.settings.stt_final_timeout_ms / 1000
        try:
            await asyncio.wait_for(turn.final_event.wait(), timeout=timeout_s)
        except TimeoutError:
            await self._emit(
                "error",
                turn.index,
                code="stt_timeout",
                message=f"no final transcript within {self.settings.stt_final_timeout_ms} ms",
                fatal=False,
            )
        turn.user_text = " ".join(t.strip() for t in turn.finals if t.strip())
        now = time.monotonic()
        if turn.speech_end_at is not None:
            turn.metrics["stt_final_ms"] = (now - turn.speech_end_at) * 1000
        await self._emit(
            "transcript.final",
            turn.index,
            text=turn.user_text,
            stt_final_ms=_round(turn.metrics.get("stt_final_ms")),
        )

    async def _agent_loop(self, turn: TurnState, speech_queue: asyncio.Queue[str | None]) -> None:
        tools = list(self.settings.tools) or None
        for step in range(self.settings.max_tool_steps):
            turn.llm_steps = step + 1
            chunker = SentenceChunker()
            step_text: list[str] = []
            done: LLMDone | None = None
            requested_at = time.monotonic()
            try:
                # aclosing: a barge-in closes the HTTP stream now, not at garbage collection.
                stream = self.llm.stream(messages=self.history, tools=tools)
                async with contextlib.aclosing(stream):  # type: ignore[type-var]
                    async for chunk in stream:
                        if isinstance(chunk, TextDelta):
                            if "llm_ttft_ms" not in turn.metrics:
                                turn.metrics["llm_ttft_ms"] = (
                                    time.monotonic() - requested_at
                                ) * 1000
                            step_text.append(chunk.text)
                            for sentence in chunker.push(chunk.text):
                                await self._queue_sentence(
                                    turn, sentence, speech_queue, requested_at
                                )
                        else:
                            done = chunk
                            for name, count in (chunk.usage or {}).items():
                                turn.usage[name] = turn.usage.get(name, 0) + count
            except LLMError as exc:
                turn.status = "error"
                turn.error = f"llm: {exc}"
                if exc.route:
                    await self._record_route(turn, step + 1, exc.route)
                await self._emit(
                    "error", turn.index, code="llm_error", message=str(exc), fatal=False
                )
                partial = chunker.flush()
                if not turn.agent_text and not partial:
                    await self._queue_sentence(turn, FALLBACK_REPLY, speech_queue, requested_at)
                    return
                # Part of this reply exists (maybe heard): close its last sentence and say
                # why it stops; never start the answer again (the caller would hear it twice).
                for sentence in partial:
                    ended = sentence if sentence[-1:] in ".!?…" else f"{sentence}…"
                    await self._queue_sentence(turn, ended, speech_queue, requested_at)
                await self._queue_sentence(turn, BROKEN_REPLY_TAIL, speech_queue, requested_at)
                return
            if done is not None and done.route:
                await self._record_route(turn, step + 1, done.route)
            for sentence in chunker.flush():
                await self._queue_sentence(turn, sentence, speech_queue, requested_at)
            if done is None or not done.tool_calls:
                return
            if "llm_ttft_ms" not in turn.metrics:
                # A tool-call-only response: its first token is the first tool-call delta.
                turn.metrics["llm_ttft_ms"] = (time.monotonic() - requested_at) * 1000
            await self._run_tools(turn, "".join(step_text), done.tool_calls)
        await self._emit(
            "error",
            turn.index,
            code="tool_step_cap",
            message=f"stopped after {self.settings.max_tool_steps} LLM steps with tool calls",
            fatal=False,
        )
        await self._queue_sentence(turn, STEP_CAP_REPLY, speech_queue, time.monotonic())

    async def _record_route(self, turn: TurnState, step: int, route: dict[str, Any]) -> None:
        turn.routes.append({"step": step, **route})
        await self._emit("llm.route", turn.index, step=step, **route)

    async def _run_tools(
        self, turn: TurnState, text: str, calls: tuple[ToolCallRequest, ...]
    ) -> None:
        self.history.append(
            {
                "role": "assistant",
                "content": text or None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in calls
                ],
            }
        )
        for call in calls:
            await self._emit(
                "tool.call",
                turn.index,
                id=call.id,
                name=call.name,
                arguments=_maybe_json(call.arguments),
            )
            result = await self.tools.run(turn=turn.index, call=call)
            await self._emit(
                "tool.result",
                turn.index,
                id=call.id,
                name=call.name,
                ok=result.ok,
                result=result.content,
                duration_ms=round(result.duration_ms, 1),
            )
            self.history.append(
                {"role": "tool", "tool_call_id": call.id, "content": result.content}
            )

    async def _queue_sentence(
        self,
        turn: TurnState,
        sentence: str,
        speech_queue: asyncio.Queue[str | None],
        requested_at: float,
    ) -> None:
        if "first_chunk_ms" not in turn.metrics:
            turn.metrics["first_chunk_ms"] = (time.monotonic() - requested_at) * 1000
        turn.agent_text = f"{turn.agent_text} {sentence}".strip()
        await self._emit("agent.text", turn.index, text=sentence)
        speech_queue.put_nowait(sentence)

    async def _speak(self, turn: TurnState, speech_queue: asyncio.Queue[str | None]) -> None:
        """Synthesize queued sentences in order and send their audio paced in real time.

        When the TTS fails, the rest of this reply is spoken by ``fallback_tts`` (the offline
        engine), starting with the failed sentence if none of its audio went out.
        """
        if self.settings.text_only:
            while (sentence := await speech_queue.get()) is not None:
                self._segments.append(_Segment(text=sentence))
            turn.spoken_text = " ".join(s.text for s in self._segments)
            if self._segments:
                await self._emit("agent.done", turn.index, spoken_text=turn.spoken_text)
            return
        tts = self.tts
        pacer = _Pacer(
            frame_bytes=tts.sample_rate_hz * self.settings.frame_ms // 1000 * BYTES_PER_SAMPLE,
            frame_s=self.settings.frame_ms / 1000,
            lead_s=self.settings.audio_lead_ms / 1000,
        )
        while (sentence := await speech_queue.get()) is not None:
            segment = _Segment(text=sentence)
            self._segments.append(segment)
            try:
                await self._speak_sentence(turn, tts, segment, pacer)
            except TTSError as exc:
                turn.error = f"tts: {exc}"
                await self._emit(
                    "error", turn.index, code="tts_error", message=str(exc), fatal=False
                )
                fallback = self.fallback_tts
                if fallback is None or tts is fallback:
                    continue
                tts = fallback
                await self._emit(
                    "tts.fallback", turn.index, provider=fallback.name, failed=self.tts.name
                )
                if segment.bytes_sent:
                    continue  # part of it was heard: go on with the next sentence
                try:
                    await self._speak_sentence(turn, tts, segment, pacer)
                except TTSError as fallback_exc:
                    await self._emit(
                        "error",
                        turn.index,
                        code="tts_error",
                        message=str(fallback_exc),
                        fatal=False,
                    )
        # Wait until the caller has heard the last frame: barge-in stays possible till then.
        remaining = pacer.play_at - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)
        turn.spoken_text = " ".join(s.text for s in self._segments if s.bytes_sent)
        if pacer.speaking:
            await self._emit("agent.done", turn.index, spoken_text=turn.spoken_text)

    async def _speak_sentence(
        self, turn: TurnState, tts: TTS, segment: _Segment, pacer: _Pacer
    ) -> None:
        """Synthesize one sentence and send it frame by frame. Raises :class:`TTSError`."""
        requested_at = time.monotonic()
        first = True
        produced = 0
        pending = b""
        frame_bytes = pacer.frame_bytes
        # aclosing: a barge-in stops the TTS request now, not at garbage collection.
        audio = tts.synthesize(segment.text)
        async with contextlib.aclosing(audio):  # type: ignore[type-var]
            async for pcm in audio:
                if first:
                    first = False
                    turn.metrics.setdefault("tts_ttfb_ms", (time.monotonic() - requested_at) * 1000)
                produced += len(pcm)
                pending += pcm
                while len(pending) >= frame_bytes:
                    frame, pending = pending[:frame_bytes], pending[frame_bytes:]
                    await self._send_frame(turn, segment, frame, pacer)
        if pending:  # the sentence's tail, padded to a whole frame with silence
            tail = pending + bytes(frame_bytes - len(pending))
            await self._send_frame(turn, segment, tail, pacer)
        segment.bytes_total = produced

    async def _send_frame(
        self, turn: TurnState, segment: _Segment, frame: bytes, pacer: _Pacer
    ) -> None:
        now = time.monotonic()
        pacer.play_at = max(pacer.play_at, now)  # an underrun: playback restarts now
        if not pacer.speaking:
            pacer.speaking = True
            if turn.speech_end_at is not None:
                turn.metrics["ttfa_ms"] = (now - turn.speech_end_at) * 1000
                self._ttfa_ms[turn.index] = turn.metrics["ttfa_ms"]
            await self._emit("agent.speaking", turn.index)
        await self.audio.send_audio(frame)
        if self.recorder is not None:
            self.recorder.agent(frame, at_ms=(pacer.play_at - self._t0) * 1000)
        if segment.first_play_at is None:
            segment.first_play_at = pacer.play_at
        segment.bytes_sent += len(frame)
        pacer.play_at += pacer.frame_s
        segment.last_play_end = pacer.play_at
        turn.agent_audio_ms += pacer.frame_s * 1000
        ahead = pacer.play_at - time.monotonic() - pacer.lead_s
        if ahead > 0:
            await asyncio.sleep(ahead)

    async def _finish_reply(self, turn: TurnState) -> None:
        self._responding = None
        await self._end_turn(turn)

    # ------------------------------------------------------------------ barge-in

    def _heard_text(self, now: float) -> str:
        """What the caller heard by ``now``: whole chunks played, plus the played words of the
        chunk cut off (in proportion to its audio played)."""
        heard: list[str] = []
        for seg in self._segments:
            if seg.first_play_at is None or seg.first_play_at >= now:
                break
            if (
                seg.bytes_total is not None
                and seg.last_play_end is not None
                and seg.last_play_end <= now
            ):
                heard.append(seg.text)
                continue
            total = seg.bytes_total or seg.bytes_sent
            played_s = now - seg.first_play_at
            sent_s = (seg.last_play_end or now) - seg.first_play_at
            fraction = (
                0.0
                if total == 0 or sent_s <= 0
                else min(1.0, played_s / sent_s) * (seg.bytes_sent / total)
            )
            words = seg.text.split()
            heard_words = words[: int(len(words) * fraction)]
            if heard_words:
                heard.append(" ".join(heard_words))
            break
        return " ".join(heard)

    async def _interrupt(self, *, reason: str) -> None:
        turn = self._responding
        task = self._reply_task
        if turn is None or task is None or task.done():
            return
        now = time.monotonic()
        spoken = (
            " ".join(s.text for s in self._segments)
            if self.settings.text_only
            else self._heard_text(now)
        )
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # The speaker runs beside the reply task (the LLM may still be streaming): stop it too.
        speaker = self._speaker_task
        if speaker is not None and not speaker.done():
            speaker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await speaker
        if self.recorder is not None:
            # The caller's client drops the audio it had queued: so does the recording.
            self.recorder.agent_cut(at_ms=(now - self._t0) * 1000)
        turn.spoken_text = spoken
        turn.status = "interrupted"
        if turn.user_text and self.history and self.history[-1].get("role") != "assistant":
            # Keep only what the caller actually heard (maybe nothing) in the LLM history.
            if spoken:
                self.history.append({"role": "assistant", "content": spoken})
        await self._emit("interrupted", turn.index, spoken_text=spoken, reason=reason)
        self._responding = None
        self._reply_task = None
        await self._end_turn(turn)

    # ------------------------------------------------------------------ events

    async def _end_turn(self, turn: TurnState) -> None:
        if turn.ended:
            return
        turn.ended = True
        metrics = {k: round(v, 1) for k, v in turn.metrics.items()}
        if metrics:
            await self._emit("turn.metrics", turn.index, **metrics)
        await self._emit(
            "turn.ended",
            turn.index,
            status=turn.status,
            user_text=turn.user_text,
            agent_text=turn.agent_text,
            spoken_text=turn.spoken_text,
            user_speech_ms=_round(turn.speech_ms),
            agent_audio_ms=round(turn.agent_audio_ms, 1),
            llm_steps=turn.llm_steps,
            error=turn.error,
            metrics=metrics,
            usage=dict(turn.usage),
            routing=list(turn.routes),
        )

    async def _emit(self, type_: str, turn: int, **data: Any) -> None:
        event = SessionEvent(
            type=type_, turn=turn, t_ms=(time.monotonic() - self._t0) * 1000, data=data
        )
        async with self._emit_lock:  # keep the event order identical for caller and record
            await self.events.emit(event)

    async def emit_error(self, *, code: str, message: str, fatal: bool = False) -> None:
        """Report a transport-level problem (bad frame, unknown message) as an error event."""
        await self._emit("error", self._turn_counter, code=code, message=message, fatal=fatal)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return text
