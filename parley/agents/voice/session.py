"""CallSession: one call's realtime loop, VAD → STT → LLM (+ tools) → chunker → TTS.

The session owns no transport and builds none of its providers: the Channels consumer (or a
test harness) constructs VAD, STT, LLM, TTS, the tool runner and the event/audio sinks and
injects them. It imports nothing from Django.

Turn life cycle (turn ``n`` = the caller's n-th utterance; turn 0 is the greeting)::

    vad.speech_start ─► turn.started ─► transcript.partial* ─► vad.speech_end (a pause)
      ─► (STT finalize) ─► [llm.speculation] ─► end of turn ─► transcript.final
      ─► agent.text* / tool.call / tool.result ─► agent.speaking ─► agent.done
      ─► turn.metrics ─► turn.ended

End of turn (docs/turn-taking.md, :class:`~parley.agents.voice.turns.TurnTakingSettings`):
the VAD reports a *pause* after ``pause_ms`` of silence and the STT is asked for its final
transcript; the turn ends once ``endpointing_ms`` of silence has passed (or
``unfinished_endpointing_ms`` when the transcript is clearly unfinished), or earlier on the
STT's own ``speech_final`` / ``UtteranceEnd``. Meanwhile the LLM may already be answering
the final transcript (*speculative start*); if the caller goes on talking, that request is
cancelled and nothing of it was said.

Barge-in: caller speech onset while the agent is audible *pauses* the agent at once (the
client drops its queued audio); words that are not all backchannels then cut the reply
(``interrupted``, with the text the caller actually heard kept in the LLM history), while
backchannels only, or no words at all (noise), *resume* it from where it paused — except a
clear yes or no while the agent reads a tool call back: that answers the question.

Latency (per turn, ms, all from the end of the caller's speech unless noted — see
``Turn`` in ``parley.conversations.models``): endpointing (end-of-turn decision), STT final,
LLM TTFT and first chunk (from the LLM request), TTS TTFB (from the TTS request) and TTFA.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from parley.agents.voice.chunker import SentenceChunker
from parley.agents.voice.confirm import (
    DECLINED_RESULT,
    confirmation_answer,
    confirmation_question,
)
from parley.agents.voice.llm.base import LLM, LLMError
from parley.agents.voice.messages import (
    BYTES_PER_SAMPLE,
    LLMChunk,
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
from parley.agents.voice.turns import (
    BackchannelMatcher,
    EchoGate,
    TurnTakingSettings,
    transcript_unfinished,
)
from parley.agents.voice.vad import StreamingVAD

logger = logging.getLogger(__name__)

#: Spoken when the LLM fails or the tool-step cap is hit, so the caller is never left in silence.
FALLBACK_REPLY = "Sorry, I'm having trouble with that right now. Could you say it again?"
STEP_CAP_REPLY = "Sorry, that is taking me too many steps. Could you put it another way?"
#: Spoken after the part already said when the LLM stream breaks mid-reply (never a repeat).
BROKEN_REPLY_TAIL = "Sorry, I lost my connection for a moment."
#: At hang-up, how long the STT stream's last messages may take to arrive (s).
_STT_DRAIN_S = 1.0
#: A frame that starts playing later than its schedule by more than this is an underrun (s).
_UNDERRUN_TOLERANCE_S = 0.005


class EventSink(Protocol):
    """Receives every JSON event in order (the consumer sends and persists them)."""

    async def emit(self, event: SessionEvent) -> None: ...


class AudioSink(Protocol):
    """Receives agent audio: PCM16 mono at the TTS sample rate, one frame per call."""

    async def send_audio(self, pcm16: bytes) -> None: ...


class ToolRunner(Protocol):
    """Runs one tool call and returns what the LLM reads back. Must not raise for bad calls."""

    async def run(self, *, turn: int, call: ToolCallRequest) -> ToolResult: ...

    async def decline(self, *, turn: int, call: ToolCallRequest, result: str, reason: str) -> None:
        """Record a call the caller did not confirm: never run; ``result`` is what the LLM
        reads back, ``reason`` why it was not run."""
        ...


@dataclass(frozen=True)
class SessionSettings:
    """Per-call options. Times in ms.

    ``audio_lead_ms``: how far agent audio is sent ahead of real time; the widget's jitter
    buffer holds it, and it bounds how much already-sent audio a barge-in discards.
    ``text_only``: no speech at all — the caller's turns arrive as text
    (:meth:`CallSession.push_text`), no STT stream is opened and replies are not synthesized
    (evaluation runs in text mode); every sentence counts as heard.
    ``turn_taking``: end of turn, barge-in, backchannels, echo gate and filler
    (:class:`~parley.agents.voice.turns.TurnTakingSettings`).
    ``confirm_tools``: tools that run only once the caller confirms (the agent's side-effecting
    tools when its ``confirm_side_effects`` is on): the agent reads the call back
    (:func:`~parley.agents.voice.confirm.confirmation_question`) and the caller's next turn
    answers it (a clear yes or no said over the question cuts it and is that turn); with no
    answer within ``confirm_timeout_ms`` of the end of the question the call is declined
    (the call runtime sets it from ``PARLEY_CONFIRMATION_TIMEOUT_S``).
    """

    system_prompt: str = ""
    tools: tuple[dict[str, Any], ...] = ()
    greeting: str = ""
    max_tool_steps: int = 5
    stt_final_timeout_ms: int = 3_000
    audio_lead_ms: int = 120
    frame_ms: int = 20
    text_only: bool = False
    turn_taking: TurnTakingSettings = field(default_factory=TurnTakingSettings)
    confirm_tools: frozenset[str] = frozenset()
    confirm_timeout_ms: int = 30_000


#: Longest typed caller turn accepted (characters).
MAX_TEXT_TURN_CHARS = 2_000
#: Largest playout delay or round trip a client may report (ms); beyond it the report is junk.
MAX_CLIENT_REPORT_MS = 60_000.0


@dataclass
class TurnState:
    """Mutable bookkeeping of one turn (owned by the session's tasks).

    A caller turn is *listening* while the caller speaks, *holding* between a pause and the
    end-of-turn decision, then *responding*. A turn that starts while the agent is audible
    is not *announced* (no ``turn.started``, no index) until its words show it takes the
    floor; backchannels never are.
    """

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
    ended: bool = False
    typed: bool = False  # the caller's words arrived as text, not speech
    routes: list[dict[str, Any]] = field(default_factory=list)  # fleet routing per LLM step
    usage: dict[str, int] = field(default_factory=dict)  # LLM token counts, summed over steps
    # -- end of turn (caller turns)
    announced: bool = True  # turn.started was emitted (a caller turn gets its index first)
    holding: bool = False  # the caller paused; the end of turn is not decided yet
    partial: str = ""  # the latest partial transcript (after the finals)
    finalize_sent_at: float | None = None  # a finalize() whose final has not arrived yet
    final_at: float | None = None  # when the latest final arrived
    stt_speech_final: bool = False  # the STT's own endpointing said the speech ended
    utterance_end: bool = False  # the STT heard no words for utterance_end_ms
    onset_pending: bool = False  # a speech onset during the hold, not confirmed yet
    forced_end: bool = False  # the VAD cut an over-long utterance
    end_of_turn: str = ""  # what ended the turn (silence, stt_speech_final, ...)
    history_len: int | None = None  # LLM history length before this turn's user message
    speculation: _Speculation | None = None
    eot_timer: asyncio.Task[None] | None = None
    # -- reply
    tools_ran: bool = False
    asked_confirmation: bool = False  # read a tool call back; the LLM history waits for it
    filler_said: bool = False
    pauses: int = 0  # times caller speech paused this reply
    resumed: list[str] = field(default_factory=list)  # why each pause resumed

    def text(self) -> str:
        """The caller's words so far: the finals, then the latest partial."""
        return " ".join(t for t in (*self.finals, self.partial) if t)


@dataclass
class _Confirmation:
    """Tool calls waiting for the caller's yes: ``calls[0]`` was read back to them (in turn
    ``turn_index``); the rest of its LLM step's calls follow it once it is answered."""

    turn_index: int
    calls: list[ToolCallRequest]
    question: str
    timer: asyncio.Task[None] | None = None


@dataclass
class _Speculation:
    """An LLM request started on a final transcript before the end of turn."""

    text: str
    messages: list[dict[str, Any]]
    started_at: float
    first_token_at: float | None = None
    chunks: asyncio.Queue[LLMChunk | LLMError | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


@dataclass
class _Segment:
    """One chunk of agent text and the frames sent for it, for barge-in accounting.

    ``play_times``: when each sent frame starts playing at the caller (monotonic s), in
    order; every frame holds ``frame_bytes`` bytes.
    """

    text: str
    frame_bytes: int = 0
    play_times: list[float] = field(default_factory=list)
    bytes_total: int | None = None  # known when synthesis of the chunk finished

    @property
    def bytes_sent(self) -> int:
        return len(self.play_times) * self.frame_bytes


@dataclass
class _Engine:
    """The TTS speaking the current reply (switches to the fallback when it fails)."""

    tts: TTS


@dataclass
class _Synthesis:
    """One sentence being synthesized: its segment, the reader task and its audio queue."""

    segment: _Segment
    tts: TTS | None = None
    chunks: asyncio.Queue[bytes | TTSError | None] | None = None
    reader: asyncio.Task[None] | None = None
    requested_at: float = 0.0


@dataclass(slots=True)
class _Pacer:
    """Real-time pacing state of one reply's audio (times are ``time.monotonic()``).

    While ``paused`` no frame is sent; frames already sent but not yet played when the
    pause began wait in ``replay`` and go out first on resume.
    """

    frame_bytes: int
    frame_s: float
    lead_s: float
    play_at: float = 0.0  # when the next frame starts playing at the caller
    speaking: bool = False
    paused: bool = False
    resumed: asyncio.Event = field(default_factory=asyncio.Event)
    recent: deque[tuple[float, bytes, _Segment]] = field(default_factory=deque)
    replay: deque[tuple[bytes, _Segment]] = field(default_factory=deque)
    restart: bool = False  # the next frame starts after a pause: not an underrun
    underrun_s: float = 0.0


@dataclass
class _BargeIn:
    """The agent was paused by caller speech onset; what that speech is is not known yet."""

    turn_index: int  # the reply that was paused
    paused_at: float
    onset_audio_ms: float
    paused: bool = True
    timer: asyncio.Task[None] | None = None


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
        self.turn_taking = settings.turn_taking
        self._backchannels = BackchannelMatcher(self.turn_taking.backchannels)
        #: Gates the VAD against the agent's own voice (callers without echo cancellation).
        self.echo_gate: EchoGate | None = EchoGate() if self.turn_taking.echo_gate else None
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
        self._pacer: _Pacer | None = None  # the current reply's audio pacing
        self._segments: list[_Segment] = []
        self._barge: _BargeIn | None = None
        self._ignoring_speech = False  # caller speech while barge-in is off
        self._held_for_onset = False  # an unheard answer waits for an onset to resolve
        self._closed = False
        self._emit_lock = asyncio.Lock()
        self._ttfa_ms: dict[int, float] = {}  # server TTFA per turn, for the caller's reports
        self._played: set[int] = set()  # turns whose playback start the caller reported
        self._silence_frame = b""
        #: Tool calls waiting for the caller's answer (``SessionSettings.confirm_tools``).
        self._confirmation: _Confirmation | None = None

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
        listening = self._listening
        if listening is not None and listening.announced and not listening.ended:
            await self._discard_speculation(listening)
            listening.user_text = listening.text()
            listening.status = "completed" if listening.user_text else "abandoned"
            await self._end_turn(listening)
        if self._confirmation is not None:
            await self._decline_pending(
                self._confirmation, reason="the call ended before the caller answered"
            )
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

    async def farewell(self, text: str, *, reason: str = "server_shutdown") -> None:
        """Speak ``text`` as a last agent turn (like the greeting: ``turn.started`` with role
        ``agent``, the audio, ``turn.ended``) and return once it is spoken; a reply in
        progress is cut first (``interrupted`` with ``reason``). Used when the server ends
        the call: draining (``server_shutdown``) or the call's duration limit
        (``call_duration_exceeded``). Does nothing once the call has ended."""
        if self._closed:
            return
        if self._reply_task is not None and not self._reply_task.done():
            await self._interrupt(reason=reason)
        self._turn_counter += 1
        turn = TurnState(index=self._turn_counter, started_at=time.monotonic())
        await self._emit("turn.started", turn.index, role="agent")
        self._start_reply(turn, greeting=text)
        if self._reply_task is not None:
            await asyncio.wait({self._reply_task})

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
        """Feed one caller frame (PCM16 mono 16 kHz). Raises ValueError on odd byte counts.

        With the echo gate on, a frame that only carries the agent's own voice reaches the
        VAD as silence (the STT and the recording still get the real audio).
        """
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
        vad_input = pcm16
        if self.echo_gate is not None and self.echo_gate.is_echo(pcm16, at=at):
            if len(self._silence_frame) != len(pcm16):
                self._silence_frame = bytes(len(pcm16))
            vad_input = self._silence_frame
        for event in await self.vad.push(vad_input, at=at):
            await self._on_vad(event)
        turn = self._listening
        if turn is not None and not turn.holding and (turn.stt_speech_final or turn.utterance_end):
            # The STT said the speech ended; the VAD may only now hear the silence.
            await self._end_of_turn_check(turn)

    async def push_text(self, text: str) -> int:
        """A caller turn given as text (typed, or an evaluation's line): it skips VAD and STT
        and goes straight into the agent loop, barging in on a reply in progress like speech.

        Returns the turn index. Raises ``ValueError`` for empty text, text longer than
        :data:`MAX_TEXT_TURN_CHARS`, or text PostgreSQL cannot store (NUL characters, lone
        surrogates: the turn's events would be lost), and ``RuntimeError`` once the call has
        ended.
        """
        text = " ".join(text.split())
        if not text:
            raise ValueError("a text turn needs some text")
        if len(text) > MAX_TEXT_TURN_CHARS:
            raise ValueError(f"a text turn is limited to {MAX_TEXT_TURN_CHARS} characters")
        if "\x00" in text or not _utf8_encodable(text):
            raise ValueError("a text turn must be valid Unicode without NUL characters")
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

    # ------------------------------------------------------------------ caller speech (VAD)

    async def _on_vad(self, event: VADEvent) -> None:
        if event.kind == "speech_onset":
            await self._on_onset(event)
        elif event.kind == "speech_onset_cancelled":
            await self._on_onset_cancelled()
        elif event.kind == "speech_start":
            await self._on_speech_start(event)
        else:
            await self._on_speech_end(event)

    def _agent_audible(self) -> bool:
        """The current reply has started playing and is not finished or paused."""
        pacer = self._pacer
        return (
            self._reply_task is not None
            and not self._reply_task.done()
            and pacer is not None
            and pacer.speaking
            and not pacer.paused
        )

    async def _on_onset(self, event: VADEvent) -> None:
        listening = self._listening
        if listening is not None and listening.holding:
            # Maybe the caller goes on: do not end the turn while this is undecided.
            listening.onset_pending = True
            return
        reply, pacer = self._responding, self._pacer
        if (
            reply is not None
            and pacer is not None
            and not pacer.speaking
            and self._reply_retractable(reply)
        ):
            # The answer has not started playing: hold its first frame until the onset is
            # confirmed (the turn goes on: the answer is withdrawn) or cancelled.
            pacer.paused = True
            pacer.resumed.clear()
            self._held_for_onset = True
            return
        barge = self._barge
        if (barge is None or not barge.paused) and self.turn_taking.barge_in:
            if self._agent_audible():
                await self._pause_for_caller(event)

    async def _on_onset_cancelled(self) -> None:
        if self._held_for_onset:
            self._release_held_reply()
        listening = self._listening
        if listening is not None and listening.onset_pending:
            listening.onset_pending = False
            await self._end_of_turn_check(listening)
        barge = self._barge
        if barge is not None and barge.paused and (listening is None or listening.announced):
            # A click or a cough: no speech followed the onset.
            await self._resume_agent("false_interruption")

    def _release_held_reply(self) -> None:
        self._held_for_onset = False
        pacer = self._pacer
        if pacer is not None and not pacer.speaking:
            pacer.paused = False
            pacer.resumed.set()

    async def _on_speech_start(self, event: VADEvent) -> None:
        if self._held_for_onset:
            self._release_held_reply()  # retracted below, or (typed turn) it goes on
        listening = self._listening
        assert self._stt_stream is not None
        if listening is not None:
            if listening.holding:
                await self._continue_turn(listening, event)
                return
            # Its words came first (the STT hears everything): the speech is that turn's.
            if listening.speech_start_audio_ms is None:
                listening.speech_start_audio_ms = event.audio_ms
                listening.started_at = event.at
            await self._stt_stream.speech_started(audio_ms=event.audio_ms)
            return
        reply = self._responding
        replying = self._reply_task is not None and not self._reply_task.done()
        if replying and reply is not None and self._reply_retractable(reply):
            # The end of turn came too early: nothing was said yet, so take the turn back.
            await self._retract_reply(reply)
            await self._continue_turn(reply, event)
            return
        if replying and (self._barge is not None or self._agent_audible()):
            if not self.turn_taking.barge_in:
                self._ignoring_speech = True
                return
            if self._barge is None:
                await self._pause_for_caller(event)
            # Not a turn yet: its words decide (backchannel, or taking the floor).
            self._listening = self._caller_turn(event.at, event.audio_ms)
            await self._stt_stream.speech_started(audio_ms=event.audio_ms)
            return
        if replying:
            # Speech while the reply is still being prepared (nothing audible): it cuts it.
            await self._interrupt(reason="barge_in")
        turn = self._listening = self._caller_turn(event.at, event.audio_ms)
        await self._announce(turn, audio_ms=event.audio_ms, probability=event.probability)
        await self._stt_stream.speech_started(audio_ms=event.audio_ms)

    @staticmethod
    def _caller_turn(started_at: float, speech_start_audio_ms: float | None = None) -> TurnState:
        """New caller speech: a turn without an index, not announced yet (see :meth:`_claim`)."""
        return TurnState(
            index=-1,
            started_at=started_at,
            speech_start_audio_ms=speech_start_audio_ms,
            announced=False,
        )

    def _claim(self, turn: TurnState) -> bool:
        """Give the caller turn its index (at once: announcing awaits). False if it has one."""
        if turn.index >= 0:
            return False
        self._turn_counter += 1
        turn.index = self._turn_counter
        return True

    async def _announce(
        self, turn: TurnState, *, audio_ms: float, probability: float | None = None, **extra: Any
    ) -> None:
        """Emit ``turn.started`` + ``vad.speech_start`` for a turn given its index by
        :meth:`_claim` (claimed here if it was not)."""
        self._claim(turn)
        await self._emit("turn.started", turn.index, role="caller")
        data: dict[str, Any] = {"audio_ms": round(audio_ms, 1)}
        if probability is not None:
            data["probability"] = round(probability, 3)
        await self._emit("vad.speech_start", turn.index, **data, **extra)
        turn.announced = True

    async def _continue_turn(self, turn: TurnState, event: VADEvent) -> None:
        """The caller speaks again before the end of turn: same turn, no answer yet."""
        assert self._stt_stream is not None
        self._cancel_end_of_turn_timer(turn)
        await self._discard_speculation(turn)
        turn.holding = turn.onset_pending = turn.stt_speech_final = turn.utterance_end = False
        turn.status = "listening"
        self._listening = turn
        if turn.announced:
            await self._emit(
                "vad.speech_start", turn.index, audio_ms=round(event.audio_ms, 1), resumed=True
            )
        await self._stt_stream.speech_started(audio_ms=event.audio_ms)

    async def _on_speech_end(self, event: VADEvent) -> None:
        if self._ignoring_speech:
            self._ignoring_speech = False
            return
        turn = self._listening
        if turn is None or turn.holding:  # an end without a start (VAD reset): nothing to close
            return
        self._mark_speech_end(turn, event)
        turn.forced_end = event.forced
        if turn.announced:
            await self._emit_speech_end(turn, event)
        await self._request_final(turn)
        await self._end_of_turn_check(turn)

    async def _emit_speech_end(self, turn: TurnState, event: VADEvent, **extra: Any) -> None:
        await self._emit(
            "vad.speech_end",
            turn.index,
            audio_ms=round(event.audio_ms, 1),
            speech_ms=round(turn.speech_ms or 0.0, 1),
            forced=event.forced,
            **extra,
        )

    def _mark_speech_end(self, turn: TurnState, event: VADEvent) -> None:
        # The speech ended `lag` ms of audio before the window that confirmed it arrived;
        # audio arrives in real time, so the wall time of the end is `at - lag`.
        lag_ms = max(0.0, self.vad.audio_ms - event.audio_ms)
        turn.speech_end_at = event.at - lag_ms / 1000
        if turn.speech_start_audio_ms is not None:
            turn.speech_ms = event.audio_ms - turn.speech_start_audio_ms
        turn.holding = True

    async def _request_final(self, turn: TurnState) -> None:
        """Ask the STT for the final transcript of what was said (Deepgram ``Finalize``)."""
        assert self._stt_stream is not None
        turn.finalize_sent_at = time.monotonic()
        await self._stt_stream.finalize()
        self._arm_end_of_turn_timer(turn, self.settings.stt_final_timeout_ms / 1000)

    # ------------------------------------------------------------------ caller speech (STT)

    async def _read_transcripts(self, stream: STTStream) -> None:
        try:
            async for message in stream:
                if isinstance(message, STTNotice):
                    await self._emit(f"stt.{message.kind}", self._turn_counter, **message.data)
                    if message.kind == "utterance_end":
                        await self._on_utterance_end()
                else:
                    await self._on_transcript(message)
        except STTError as exc:
            await self._emit(
                "error", self._turn_counter, code="stt_error", message=str(exc), fatal=False
            )

    async def _on_utterance_end(self) -> None:
        turn = self._listening
        if turn is not None and turn.announced:
            turn.utterance_end = True
            await self._end_of_turn_check(turn)

    async def _on_transcript(self, transcript: Transcript) -> None:
        turn = self._listening
        if turn is None:
            if self._barge is None or not transcript.text:
                return  # no caller turn (or the agent's own words through the echo)
            # Words before the VAD confirmed the speech that paused the agent.
            turn = self._listening = self._caller_turn(time.monotonic())
        if transcript.is_final:
            if transcript.text:
                turn.finals.append(transcript.text)
            turn.partial = ""
            answer = transcript.from_finalize or (
                transcript.speech_final and turn.finalize_sent_at is not None
            )
            if answer:
                turn.finalize_sent_at = None
                turn.final_at = transcript.at or time.monotonic()
            elif transcript.speech_final:
                turn.stt_speech_final = True
                turn.final_at = transcript.at or time.monotonic()
        elif transcript.text:
            turn.partial = transcript.text
            if turn.announced:
                await self._emit("transcript.partial", turn.index, text=transcript.text)
        if not turn.announced:
            await self._classify_caller_speech(turn, settled=turn.finalize_sent_at is None)
            return
        if transcript.is_final:
            await self._end_of_turn_check(turn)

    # ------------------------------------------------------------------ barge-in

    async def _pause_for_caller(self, event: VADEvent) -> None:
        """Caller speech onset while the agent is audible: stop the agent's audio now."""
        reply = self._responding
        pacer = self._pacer
        if reply is None or pacer is None:
            return
        now = time.monotonic()
        self._pause_audio(reply, pacer, now)
        # Wall time since the onset: the audio after the onset window arrived in real time.
        onset_at = event.at - max(0.0, self.vad.audio_ms - event.audio_ms) / 1000
        barge = _BargeIn(turn_index=reply.index, paused_at=now, onset_audio_ms=event.audio_ms)
        self._barge = barge
        reply.pauses += 1
        await self._emit(
            "agent.paused",
            reply.index,
            reason="caller_speech",
            onset_audio_ms=round(event.audio_ms, 1),
            stop_ms=round((now - onset_at) * 1000, 1),
        )
        barge.timer = self._spawn(self._false_interruption_timer(barge), name="barge-timer")

    def _end_barge(self) -> _BargeIn | None:
        """Forget the caller speech that paused the agent (stop its timer); return it."""
        barge, self._barge = self._barge, None
        if barge is not None and barge.timer is not None:
            if barge.timer is not asyncio.current_task():
                barge.timer.cancel()
        return barge

    async def _false_interruption_timer(self, barge: _BargeIn) -> None:
        await asyncio.sleep(self.turn_taking.false_interruption_ms / 1000)
        if self._barge is not barge or not barge.paused:
            return
        listening = self._listening
        words = listening.text() if listening is not None and not listening.announced else ""
        if not words:
            await self._resume_agent("false_interruption")
        elif self._is_backchannel(words):
            await self._resume_agent("backchannel", text=words)

    def _is_backchannel(self, text: str) -> bool:
        """``text``, said over the agent, only acknowledges it (the agent goes on). Not so
        for a clear yes or no while the agent reads a tool call back: that answers the
        question (:func:`~parley.agents.voice.confirm.confirmation_answer`), so it takes the
        floor, and its turn answers the confirmation."""
        if not self._backchannels.matches(text):
            return False
        pending, reply = self._confirmation, self._responding
        asking = pending is not None and reply is not None and reply.index == pending.turn_index
        return not (asking and confirmation_answer(text) is not None)

    async def _classify_caller_speech(self, turn: TurnState, *, settled: bool) -> None:
        """Caller speech during the agent's reply: take the floor, or let the agent go on.

        ``settled``: the speech has ended and its final transcript is in.
        """
        text = turn.text()
        if text and not self._is_backchannel(text):
            await self._barge_in(turn)
            return
        if not settled or turn.speech_end_at is None:
            return
        # The speech is over: only backchannels, or no words at all.
        self._listening = None
        reason = "backchannel" if text else "false_interruption"
        if self._barge is not None and self._barge.paused:
            await self._resume_agent(reason, text=text)
        else:
            self._end_barge()
            if text and self._responding is not None:
                await self._emit("agent.backchannel", self._responding.index, text=text)

    async def _barge_in(self, turn: TurnState) -> None:
        """The caller takes the floor: cut the reply at what was heard; the speech is a turn."""
        if not self._claim(turn):
            return  # already taking the floor (another transcript got here first)
        barge = self._end_barge()
        heard_at = barge.paused_at if barge is not None and barge.paused else None
        await self._interrupt(reason="barge_in", at=heard_at)
        self._listening = turn
        audio_ms = turn.speech_start_audio_ms
        if audio_ms is None:
            audio_ms = barge.onset_audio_ms if barge is not None else self.vad.audio_ms
        await self._announce(turn, audio_ms=audio_ms, barge_in=True)
        if turn.speech_end_at is not None and turn.finalize_sent_at is None:
            await self._end_of_turn_check(turn)  # it already ended: decide now
        # (A final still awaited: the timer armed when it was asked for decides at its time-out.)

    def _pause_audio(self, turn: TurnState, pacer: _Pacer, now: float) -> None:
        """Stop sending; frames sent but not yet played at ``now`` are kept for a resume."""
        pacer.paused = True
        pacer.resumed.clear()
        while pacer.recent and pacer.recent[-1][0] >= now:
            # Popped latest first: appendleft leaves the earliest unheard frame in front.
            _, frame, segment = pacer.recent.pop()
            segment.play_times.pop()
            turn.agent_audio_ms -= pacer.frame_s * 1000
            pacer.replay.appendleft((frame, segment))
        pacer.recent.clear()
        pacer.play_at = now
        if self.recorder is not None:
            # The caller's client drops the audio it had queued: so does the recording.
            self.recorder.agent_cut(at_ms=(now - self._t0) * 1000)
        if self.echo_gate is not None:
            self.echo_gate.forget_after(now)

    async def _resume_agent(self, reason: str, *, text: str = "") -> None:
        """Go on with the paused reply from where the caller stopped hearing it."""
        barge = self._end_barge()
        if barge is None:
            return
        pacer = self._pacer
        reply = self._responding
        if reply is None or pacer is None or reply.index != barge.turn_index:
            return
        listening = self._listening
        if listening is not None and not listening.announced:
            # That speech is not over: keep watching its words, unpaused.
            self._barge = _BargeIn(
                turn_index=barge.turn_index,
                paused_at=barge.paused_at,
                onset_audio_ms=barge.onset_audio_ms,
                paused=False,
            )
        pacer.paused = False
        pacer.restart = True
        pacer.resumed.set()
        reply.resumed.append(reason)
        data: dict[str, Any] = {
            "reason": reason,
            "paused_ms": round((time.monotonic() - barge.paused_at) * 1000, 1),
        }
        if text:
            data["text"] = text
        await self._emit("agent.resumed", reply.index, **data)

    def _reply_retractable(self, turn: TurnState) -> bool:
        """A caller turn's reply that nothing has come of yet: no audio, no tool call."""
        pacer = self._pacer
        return (
            turn.index > 0
            and not turn.typed
            and not turn.tools_ran
            and turn.history_len is not None
            and (pacer is None or not pacer.speaking)
        )

    async def _retract_reply(self, turn: TurnState) -> None:
        await self._cancel_reply_tasks()
        assert turn.history_len is not None
        del self.history[turn.history_len :]
        turn.history_len = None
        turn.agent_text = turn.spoken_text = ""
        turn.llm_steps = 0
        turn.metrics.clear()
        turn.routes.clear()
        turn.usage.clear()
        turn.end_of_turn = ""
        self._responding = None
        self._reply_task = None
        await self._emit("turn.continued", turn.index, reason="caller_resumed")

    # ------------------------------------------------------------------ end of turn

    async def _end_of_turn_check(self, turn: TurnState) -> None:
        """Decide whether the caller's turn is over; commit it, or check again later.

        Rules (times from the end of the caller's speech; see TurnTakingSettings):

        1. VAD still hearing speech: only the STT can end the turn early — ``UtteranceEnd``,
           or ``speech_final`` while the VAD hears silence — with a finished transcript.
        2. A speech onset in the pause is waited for (the caller may be going on).
        3. The final transcript asked for at the pause is waited for (up to
           ``stt_final_timeout_ms``, then an ``stt_timeout`` error and what there is).
        4. A forced end (over-long utterance) or ``UtteranceEnd`` ends the turn.
        5. Else the turn ends after ``endpointing_ms`` of silence, or
           ``unfinished_endpointing_ms`` when the transcript is clearly unfinished.
        """
        if turn is not self._listening or turn.ended or not turn.announced:
            return
        tt = self.turn_taking
        text = turn.text()
        unfinished = transcript_unfinished(text)
        now = time.monotonic()
        if not turn.holding:
            early = tt.stt_end_of_turn and bool(text) and not unfinished
            if early and (turn.utterance_end or (turn.stt_speech_final and self.vad.silence_ms)):
                end = self.vad.end_speech(at=now)
                if end is not None:
                    self._mark_speech_end(turn, end)
                    await self._emit_speech_end(turn, end, by="stt")
                reason = "utterance_end" if turn.utterance_end else "stt_speech_final"
                await self._commit_turn(turn, reason=reason)
            elif early and turn.stt_speech_final and tt.speculative_start:
                # The STT's final is in but the VAD still hears the tail of the speech: the
                # answer can start now (most often the turn ends a few windows later).
                await self._speculate(turn, text)
            return
        if turn.onset_pending:
            return
        if turn.finalize_sent_at is not None:
            waited_s = now - turn.finalize_sent_at
            timeout_s = self.settings.stt_final_timeout_ms / 1000
            if waited_s < timeout_s:
                return  # its timer fires at the time-out
            turn.finalize_sent_at = None
            await self._emit(
                "error",
                turn.index,
                code="stt_timeout",
                message=f"no final transcript within {self.settings.stt_final_timeout_ms} ms",
                fatal=False,
            )
        if turn.forced_end:
            await self._commit_turn(turn, reason="max_utterance")
            return
        if turn.utterance_end and tt.stt_end_of_turn and not unfinished:
            await self._commit_turn(turn, reason="utterance_end")
            return
        assert turn.speech_end_at is not None
        silence_s = now - turn.speech_end_at
        required_s = (tt.unfinished_endpointing_ms if unfinished else tt.endpointing_ms) / 1000
        if silence_s >= required_s:
            await self._commit_turn(turn, reason="silence")
            return
        wake_s = required_s - silence_s
        if tt.speculative_start and text:
            speculate_after_s = tt.endpointing_ms / 1000 if unfinished else 0.0
            if silence_s >= speculate_after_s:
                await self._speculate(turn, text)
            else:
                wake_s = min(wake_s, speculate_after_s - silence_s)
        self._arm_end_of_turn_timer(turn, wake_s)

    def _arm_end_of_turn_timer(self, turn: TurnState, delay_s: float) -> None:
        self._cancel_end_of_turn_timer(turn)
        turn.eot_timer = self._spawn(
            self._end_of_turn_later(turn, delay_s), name=f"end-of-turn-{turn.index}"
        )

    def _cancel_end_of_turn_timer(self, turn: TurnState) -> None:
        timer, turn.eot_timer = turn.eot_timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _end_of_turn_later(self, turn: TurnState, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if turn.eot_timer is asyncio.current_task():
            turn.eot_timer = None
        if not turn.announced:
            # Speech over the agent whose final never came: decide on what was heard.
            if turn is self._listening and turn.finalize_sent_at is not None:
                turn.finalize_sent_at = None
                await self._classify_caller_speech(turn, settled=True)
            return
        await self._end_of_turn_check(turn)

    async def _commit_turn(self, turn: TurnState, *, reason: str) -> None:
        """The caller's turn is over: announce its transcript and start the reply."""
        self._cancel_end_of_turn_timer(turn)
        self._listening = None
        turn.holding = False
        turn.end_of_turn = reason
        turn.user_text = turn.text()
        now = time.monotonic()
        turn.end_decided_at = now
        if turn.speech_end_at is not None:
            turn.metrics["endpointing_ms"] = (now - turn.speech_end_at) * 1000
            final_at = turn.final_at if turn.final_at is not None else now
            turn.metrics["stt_final_ms"] = max(0.0, final_at - turn.speech_end_at) * 1000
        spec = turn.speculation
        if spec is not None and spec.text != turn.user_text:
            await self._discard_speculation(turn)
        await self._emit(
            "transcript.final",
            turn.index,
            text=turn.user_text,
            stt_final_ms=_round(turn.metrics.get("stt_final_ms")),
            end_of_turn=reason,
            unfinished=transcript_unfinished(turn.user_text),
        )
        self._start_reply(turn)

    # ------------------------------------------------------------------ speculative start

    async def _speculate(self, turn: TurnState, text: str) -> None:
        """Start the LLM on ``text`` before the end of turn (at most one request per text)."""
        spec = turn.speculation
        if spec is not None and spec.text == text:
            return
        if self._confirmation is not None:
            return  # the text answers a confirmation: it is no LLM request of its own
        await self._discard_speculation(turn)
        messages = [*self.history, {"role": "user", "content": text}]
        spec = _Speculation(text=text, messages=messages, started_at=time.monotonic())
        turn.speculation = spec
        spec.task = self._spawn(self._prefetch(spec), name=f"speculate-{turn.index}")
        await self._emit("llm.speculation", turn.index, status="started", text=text)

    async def _prefetch(self, spec: _Speculation) -> None:
        """Read the speculative LLM stream into a queue (the first step only: tool calls are
        not run before the turn is committed)."""
        tools = list(self.settings.tools) or None
        try:
            stream = self.llm.stream(messages=spec.messages, tools=tools)
            async with contextlib.aclosing(stream):  # type: ignore[type-var]
                async for chunk in stream:
                    if spec.first_token_at is None and isinstance(chunk, TextDelta):
                        spec.first_token_at = time.monotonic()
                    spec.chunks.put_nowait(chunk)
        except LLMError as exc:
            spec.chunks.put_nowait(exc)
        finally:
            spec.chunks.put_nowait(None)

    async def _discard_speculation(self, turn: TurnState) -> None:
        spec, turn.speculation = turn.speculation, None
        if spec is None:
            return
        if spec.task is not None:
            spec.task.cancel()
        await self._emit("llm.speculation", turn.index, status="discarded", text=spec.text)

    async def _speculative_stream(self, spec: _Speculation) -> AsyncIterator[LLMChunk]:
        """The prefetched chunks, then the rest as they arrive. Raises :class:`LLMError`."""
        try:
            while (item := await spec.chunks.get()) is not None:
                if isinstance(item, LLMError):
                    raise item
                yield item
        finally:
            if spec.task is not None:
                spec.task.cancel()

    # ------------------------------------------------------------------ reply path

    def _start_reply(self, turn: TurnState, *, greeting: str | None = None) -> None:
        turn.status = "responding"
        self._responding = turn
        self._segments = []
        self._pacer = None
        self._reply_task = self._spawn(self._reply(turn, greeting), name=f"reply-{turn.index}")

    async def _reply(self, turn: TurnState, greeting: str | None) -> None:
        """Produce and speak one reply: the greeting, or the agent loop's answer (after the
        tool calls this turn answers the confirmation of, if any)."""
        pending = self._confirmation
        if greeting is None:
            if not turn.user_text:
                # Noise or a word the engine could not make out: nothing to answer.
                await self._discard_speculation(turn)
                turn.status = "completed"
                await self._finish_reply(turn)
                return
            if pending is None:
                turn.history_len = len(self.history)
                self.history.append({"role": "user", "content": turn.user_text})
            # (An answer to a confirmation is no user message: the LLM reads it in the tool
            # result, right after its tool call as the chat format requires.)

        speech_queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._speaker_task = self._spawn(
            self._speak(turn, speech_queue), name=f"speak-{turn.index}"
        )
        try:
            if greeting is not None:
                await self._queue_sentence(turn, greeting, speech_queue, time.monotonic())
            elif pending is None or not await self._answer_confirmation(
                turn, pending, speech_queue
            ):
                await self._agent_loop(turn, speech_queue)
        finally:
            speech_queue.put_nowait(None)
        await self._speaker_task
        if turn.agent_text and not turn.asked_confirmation:
            self.history.append({"role": "assistant", "content": turn.spoken_text})
        if turn.status == "responding":
            turn.status = "completed"
        await self._finish_reply(turn)

    async def _llm_step_stream(
        self, turn: TurnState, step: int, tools: list[dict[str, Any]] | None
    ) -> tuple[AsyncIterator[LLMChunk], float, _Speculation | None]:
        """The LLM stream of one step, its request time, and the speculation it came from.

        Step 1 takes over the turn's speculative request when it asked exactly this history.
        """
        spec, turn.speculation = turn.speculation, None
        if spec is not None:
            if step == 0 and spec.messages == self.history:
                turn.metrics["speculative_lead_ms"] = (time.monotonic() - spec.started_at) * 1000
                await self._emit("llm.speculation", turn.index, status="used", text=spec.text)
                return self._speculative_stream(spec), spec.started_at, spec
            if spec.task is not None:
                spec.task.cancel()
            await self._emit("llm.speculation", turn.index, status="discarded", text=spec.text)
        stream = self.llm.stream(messages=self.history, tools=tools)
        return stream, time.monotonic(), None

    async def _agent_loop(self, turn: TurnState, speech_queue: asyncio.Queue[str | None]) -> None:
        tools = list(self.settings.tools) or None
        for step in range(self.settings.max_tool_steps):
            turn.llm_steps = step + 1
            chunker = SentenceChunker()
            step_text: list[str] = []
            done: LLMDone | None = None
            try:
                stream, requested_at, spec = await self._llm_step_stream(turn, step, tools)
                # aclosing: a barge-in closes the HTTP stream now, not at garbage collection.
                async with contextlib.aclosing(stream):  # type: ignore[type-var]
                    async for chunk in stream:
                        if isinstance(chunk, TextDelta):
                            if "llm_ttft_ms" not in turn.metrics:
                                first_at = time.monotonic()
                                if spec is not None and spec.first_token_at is not None:
                                    first_at = spec.first_token_at
                                turn.metrics["llm_ttft_ms"] = (first_at - requested_at) * 1000
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
            if await self._run_tools(turn, "".join(step_text), done.tool_calls, speech_queue):
                return  # a call waits for the caller's yes: their next turn answers
        await self._emit(
            "error",
            turn.index,
            code="tool_step_cap",
            message=f"stopped after {self.settings.max_tool_steps} LLM steps with tool calls",
            fatal=False,
        )
        await self._queue_sentence(turn, STEP_CAP_REPLY, speech_queue, time.monotonic())

    async def _record_route(self, turn: TurnState, step: int, route: dict[str, Any]) -> None:
        """Store one LLM step's route on the turn; one ``llm.failover`` event per move from a
        server to the next (``outcome``: how the first one failed; ``resumed_at_chars``: text
        the second continued, 0 when it answered afresh), then the ``llm.route`` event."""
        turn.routes.append({"step": step, **route})
        attempts = route.get("attempts") or []
        for failed, taken in itertools.pairwise(attempts):
            await self._emit(
                "llm.failover",
                turn.index,
                step=step,
                from_server=failed["server"],
                to_server=taken["server"],
                outcome=failed.get("outcome"),
                resumed_at_chars=taken.get("resumed_at_chars", 0),
            )
        await self._emit("llm.route", turn.index, step=step, **route)

    async def _run_tools(
        self,
        turn: TurnState,
        text: str,
        calls: tuple[ToolCallRequest, ...],
        speech_queue: asyncio.Queue[str | None],
    ) -> bool:
        """Record the LLM's tool calls in the history and run them in order; ``True`` when
        one must first be confirmed by the caller (it and the rest then wait)."""
        turn.tools_ran = True
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
        return await self._run_tool_calls(turn, list(calls), said=bool(text), queue=speech_queue)

    async def _run_tool_calls(
        self,
        turn: TurnState,
        calls: list[ToolCallRequest],
        *,
        said: bool,
        queue: asyncio.Queue[str | None],
        record_turn: int | None = None,
    ) -> bool:
        """Run ``calls`` in order, each result into the history; stop at the first one the
        caller must confirm (read back to them now). ``True`` when stopped there.
        ``record_turn``: the turn the calls were requested in (default: ``turn``)."""
        for i, call in enumerate(calls):
            await self._emit(
                "tool.call",
                turn.index,
                id=call.id,
                name=call.name,
                arguments=_maybe_json(call.arguments),
            )
            if call.name in self.settings.confirm_tools:
                await self._ask_confirmation(turn, calls[i:], queue)
                return True
            result = await self._run_tool_with_filler(
                turn, call, said=said, queue=queue, record_turn=record_turn
            )
            self._tool_result_record(call, result)
            await self._emit_tool_result(turn.index, call, result)
        return False

    def _tool_result_record(self, call: ToolCallRequest, result: ToolResult) -> None:
        self.history.append({"role": "tool", "tool_call_id": call.id, "content": result.content})

    async def _emit_tool_result(self, turn: int, call: ToolCallRequest, result: ToolResult) -> None:
        await self._emit(
            "tool.result",
            turn,
            id=call.id,
            name=call.name,
            ok=result.ok,
            result=result.content,
            duration_ms=round(result.duration_ms, 1),
        )

    # ------------------------------------------------------------------ tool confirmation

    async def _ask_confirmation(
        self, turn: TurnState, calls: list[ToolCallRequest], queue: asyncio.Queue[str | None]
    ) -> None:
        """Read ``calls[0]`` back to the caller and keep ``calls`` until they answer (their
        next turn, :meth:`_answer_confirmation`) or ``confirm_timeout_ms`` passes."""
        call = calls[0]
        question = confirmation_question(name=call.name, arguments=call.arguments)
        pending = _Confirmation(turn_index=turn.index, calls=calls, question=question)
        self._confirmation = pending
        # The question stays out of the LLM history (the call's result must follow the call):
        # the result says what came of it.
        turn.asked_confirmation = True
        await self._emit(
            "tool.confirmation",
            turn.index,
            id=call.id,
            name=call.name,
            state="requested",
            question=question,
        )
        await self._queue_sentence(turn, question, queue, None)
        pending.timer = self._spawn(
            self._confirmation_timeout(pending, asked_by=asyncio.current_task()),
            name=f"confirm-timeout-{turn.index}",
        )

    async def _answer_confirmation(
        self, turn: TurnState, pending: _Confirmation, queue: asyncio.Queue[str | None]
    ) -> bool:
        """The caller's turn answers ``pending``: a clear yes runs its first call (then the
        rest of its step's calls), anything else declines them all. ``True`` when a further
        call was read back to the caller (this reply ends there)."""
        self._confirmation = None
        _cancel_unless_current(pending.timer)
        turn.tools_ran = True  # the answer counts: this reply is never taken back
        call, rest = pending.calls[0], pending.calls[1:]
        answer = confirmation_answer(turn.user_text)
        if not answer:
            reason = (
                f'the caller said "{turn.user_text}"'
                if answer is False
                else f'the caller answered "{turn.user_text}", not a yes'
            )
            await self._decline_pending(pending, reason=reason, event_turn=turn.index)
            return False
        await self._emit(
            "tool.confirmation",
            turn.index,
            id=call.id,
            name=call.name,
            state="confirmed",
            answer=turn.user_text,
        )
        asked_in = pending.turn_index
        result = await self._run_tool_with_filler(
            turn, call, said=False, queue=queue, record_turn=asked_in
        )
        self._tool_result_record(call, result)
        await self._emit_tool_result(turn.index, call, result)
        return await self._run_tool_calls(turn, rest, said=False, queue=queue, record_turn=asked_in)

    async def _decline_pending(
        self, pending: _Confirmation, *, reason: str, event_turn: int | None = None
    ) -> None:
        """Decline every call of ``pending`` (recorded against the turn that asked, never
        run) and give the LLM their results. The history is completed before anything
        awaits, so a caller turn starting meanwhile finds it well-formed. ``event_turn``: the
        turn whose events say so (default: the one that asked)."""
        if self._confirmation is pending:
            self._confirmation = None
        _cancel_unless_current(pending.timer)
        turn = pending.turn_index if event_turn is None else event_turn
        first = pending.calls[0]
        results = []
        for call in pending.calls:
            why = reason if call is first else f"an earlier action was not confirmed ({reason})"
            result = ToolResult(ok=False, content=DECLINED_RESULT.format(reason=why))
            self._tool_result_record(call, result)
            results.append((call, result, why))
        await self._emit(
            "tool.confirmation", turn, id=first.id, name=first.name, state="declined", reason=reason
        )
        for call, result, why in results:
            try:
                await self.tools.decline(
                    turn=pending.turn_index, call=call, result=result.content, reason=why
                )
            except Exception:  # the record is lost, not the call
                logger.exception("could not record the declined tool call %s", call.id)
            await self._emit_tool_result(turn, call, result)

    async def _confirmation_timeout(
        self, pending: _Confirmation, *, asked_by: asyncio.Task[Any] | None
    ) -> None:
        """Decline ``pending`` when ``confirm_timeout_ms`` passes without an answer, counted
        from the end of the question: once ``asked_by`` (the reply reading it back) is done,
        which is when its last frame has played (or it was cut off). Caller speech in
        progress at the time-out may be the answer: it is waited for."""
        if asked_by is not None and asked_by is not asyncio.current_task():
            await asyncio.wait({asked_by})
        timeout_s = delay_s = self.settings.confirm_timeout_ms / 1000
        while True:
            await asyncio.sleep(delay_s)
            if self._confirmation is not pending:
                return
            if self._listening is None:
                break
            delay_s = 0.5  # the caller is speaking: that may be the answer
        await self._decline_pending(pending, reason=f"no answer within {timeout_s:g} s")

    async def _run_tool_with_filler(
        self,
        turn: TurnState,
        call: ToolCallRequest,
        *,
        said: bool,
        queue: asyncio.Queue[str | None],
        record_turn: int | None = None,
    ) -> ToolResult:
        """Run one tool call; if it is still running after ``filler_after_ms``, say the
        filler line (once per turn, and not when the LLM said something before calling).
        ``record_turn``: the turn the call was requested in (default: ``turn``)."""
        tt = self.turn_taking
        index = turn.index if record_turn is None else record_turn
        run = asyncio.ensure_future(self.tools.run(turn=index, call=call))
        try:
            if tt.filler_text and not said and not turn.filler_said and not self.settings.text_only:
                finished, _ = await asyncio.wait({run}, timeout=tt.filler_after_ms / 1000)
                if not finished:
                    turn.filler_said = True
                    await self._queue_sentence(turn, tt.filler_text, queue, None, filler=True)
            return await run
        finally:
            if not run.done():
                run.cancel()  # the reply was cancelled (barge-in, hang-up)

    async def _queue_sentence(
        self,
        turn: TurnState,
        sentence: str,
        speech_queue: asyncio.Queue[str | None],
        requested_at: float | None,
        *,
        filler: bool = False,
    ) -> None:
        if requested_at is not None and "first_chunk_ms" not in turn.metrics:
            turn.metrics["first_chunk_ms"] = (time.monotonic() - requested_at) * 1000
        turn.agent_text = f"{turn.agent_text} {sentence}".strip()
        if filler:
            await self._emit("agent.text", turn.index, text=sentence, filler=True)
        else:
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
        frame_bytes = self.tts.sample_rate_hz * self.settings.frame_ms // 1000 * BYTES_PER_SAMPLE
        pacer = _Pacer(
            frame_bytes=frame_bytes,
            frame_s=self.settings.frame_ms / 1000,
            lead_s=self.settings.audio_lead_ms / 1000,
        )
        self._pacer = pacer
        engine = _Engine(self.tts)
        # Sentence k+1 is synthesized while sentence k is being sent: its TTFB is hidden
        # behind k's playback instead of becoming a gap. Two at a time at most (vendors
        # limit concurrent requests).
        jobs: asyncio.Queue[_Synthesis | None] = asyncio.Queue()
        slots = asyncio.Semaphore(2)
        feeder = self._spawn(
            self._feed_synthesis(speech_queue, jobs, slots, engine, frame_bytes),
            name=f"tts-feeder-{turn.index}",
        )
        try:
            while (job := await jobs.get()) is not None:
                self._segments.append(job.segment)
                try:
                    await self._send_synthesis(turn, job, pacer, engine)
                finally:
                    slots.release()
        finally:
            feeder.cancel()
            while not jobs.empty():
                if (left := jobs.get_nowait()) is not None and left.reader is not None:
                    left.reader.cancel()
        # Wait until the caller has heard the last frame: barge-in stays possible till then.
        while True:
            await self._send_held(turn, pacer)
            remaining = pacer.play_at - time.monotonic()
            if remaining <= 0 and not pacer.paused and not pacer.replay:
                break
            if remaining > 0:
                await asyncio.sleep(remaining)
        if pacer.underrun_s:
            turn.metrics["audio_underrun_ms"] = pacer.underrun_s * 1000
        turn.spoken_text = " ".join(s.text for s in self._segments if s.bytes_sent)
        if pacer.speaking:
            await self._emit("agent.done", turn.index, spoken_text=turn.spoken_text)

    async def _feed_synthesis(
        self,
        speech_queue: asyncio.Queue[str | None],
        jobs: asyncio.Queue[_Synthesis | None],
        slots: asyncio.Semaphore,
        engine: _Engine,
        frame_bytes: int,
    ) -> None:
        """Start synthesizing each queued sentence once a slot is free and the previous
        sentence's audio has all arrived (one request at a time: one warm connection, and
        vendors limit concurrent requests; synthesis is faster than real time, so it still
        runs well ahead of playback)."""
        previous: _Synthesis | None = None
        while (sentence := await speech_queue.get()) is not None:
            await slots.acquire()
            if previous is not None and previous.reader is not None:
                await asyncio.wait({previous.reader})
            job = _Synthesis(segment=_Segment(text=sentence, frame_bytes=frame_bytes))
            self._synthesis_start(job, engine.tts)
            jobs.put_nowait(job)
            previous = job
        jobs.put_nowait(None)

    def _synthesis_start(self, job: _Synthesis, tts: TTS) -> None:
        job.tts = tts
        job.chunks = asyncio.Queue()
        job.requested_at = time.monotonic()
        job.reader = self._spawn(self._synthesize(tts, job.segment, job.chunks), name="tts-reader")

    async def _send_synthesis(
        self, turn: TurnState, job: _Synthesis, pacer: _Pacer, engine: _Engine
    ) -> None:
        """Send one sentence's audio. When the TTS fails, the rest of the reply is spoken by
        ``fallback_tts`` (the offline engine), starting with the failed sentence if none of
        its audio went out."""
        try:
            await self._send_sentence(turn, job, pacer)
            return
        except TTSError as exc:
            turn.error = f"tts: {exc}"
            await self._emit("error", turn.index, code="tts_error", message=str(exc), fatal=False)
        fallback = self.fallback_tts
        if fallback is None or job.tts is fallback:
            return
        if engine.tts is not fallback:
            engine.tts = fallback
            await self._emit(
                "tts.fallback", turn.index, provider=fallback.name, failed=self.tts.name
            )
        if job.segment.bytes_sent:
            return  # part of it was heard: go on with the next sentence
        self._synthesis_start(job, fallback)
        try:
            await self._send_sentence(turn, job, pacer)
        except TTSError as fallback_exc:
            await self._emit(
                "error", turn.index, code="tts_error", message=str(fallback_exc), fatal=False
            )

    async def _send_sentence(self, turn: TurnState, job: _Synthesis, pacer: _Pacer) -> None:
        """Send one synthesized sentence frame by frame, paced. Raises :class:`TTSError`.

        Synthesis runs ahead of the real-time sending (a reader task drains the TTS stream as
        fast as it comes), so the sentence's length is known early — that is what tells how
        much of it a caller heard when they cut in — and a vendor stream is never throttled.
        """
        assert job.chunks is not None and job.reader is not None
        segment = job.segment
        first = True
        pending = b""
        frame_bytes = pacer.frame_bytes
        try:
            while (item := await job.chunks.get()) is not None:
                if isinstance(item, TTSError):
                    raise item
                if first:
                    first = False
                    ttfb_ms = (time.monotonic() - job.requested_at) * 1000
                    turn.metrics.setdefault("tts_ttfb_ms", ttfb_ms)
                pending += item
                while len(pending) >= frame_bytes:
                    frame, pending = pending[:frame_bytes], pending[frame_bytes:]
                    await self._send_frame(turn, segment, frame, pacer)
            if pending:  # the sentence's tail, padded to a whole frame with silence
                tail = pending + bytes(frame_bytes - len(pending))
                await self._send_frame(turn, segment, tail, pacer)
        finally:
            if not job.reader.done():
                job.reader.cancel()  # a barge-in stops the TTS request now

    async def _synthesize(
        self, tts: TTS, segment: _Segment, out: asyncio.Queue[bytes | TTSError | None]
    ) -> None:
        """Read the whole TTS stream of one sentence into ``out`` (then ``None``)."""
        produced = 0
        try:
            # aclosing: a cancel stops the TTS request now, not at garbage collection.
            audio = tts.synthesize(segment.text)
            async with contextlib.aclosing(audio):  # type: ignore[type-var]
                async for pcm in audio:
                    produced += len(pcm)
                    out.put_nowait(pcm)
            segment.bytes_total = produced
        except TTSError as exc:
            out.put_nowait(exc)
        finally:
            out.put_nowait(None)

    async def _send_held(self, turn: TurnState, pacer: _Pacer) -> None:
        """Wait out a pause, then send the frames it held back (in their order)."""
        while pacer.paused or pacer.replay:
            if pacer.paused:
                await pacer.resumed.wait()
                continue
            frame, segment = pacer.replay.popleft()
            await self._send_frame_now(turn, segment, frame, pacer)

    async def _send_frame(
        self, turn: TurnState, segment: _Segment, frame: bytes, pacer: _Pacer
    ) -> None:
        if pacer.paused or pacer.replay:
            await self._send_held(turn, pacer)
        await self._send_frame_now(turn, segment, frame, pacer)

    async def _send_frame_now(
        self, turn: TurnState, segment: _Segment, frame: bytes, pacer: _Pacer
    ) -> None:
        now = time.monotonic()
        if pacer.restart:
            pacer.restart = False
        elif pacer.speaking and now > pacer.play_at + _UNDERRUN_TOLERANCE_S:
            pacer.underrun_s += now - pacer.play_at  # the caller's buffer ran dry
        pacer.play_at = max(pacer.play_at, now)  # an underrun: playback restarts now
        if not pacer.speaking:
            pacer.speaking = True
            if turn.speech_end_at is not None:
                turn.metrics["ttfa_ms"] = (now - turn.speech_end_at) * 1000
                self._ttfa_ms[turn.index] = turn.metrics["ttfa_ms"]
            await self._emit("agent.speaking", turn.index)
        await self.audio.send_audio(frame)
        play_at = pacer.play_at
        if self.recorder is not None:
            self.recorder.agent(frame, at_ms=(play_at - self._t0) * 1000)
        if self.echo_gate is not None:
            self.echo_gate.agent_frame(frame, play_at=play_at)
        segment.play_times.append(play_at)
        recent = pacer.recent
        recent.append((play_at, frame, segment))
        while recent and recent[0][0] < now - 2 * pacer.lead_s - pacer.frame_s:
            recent.popleft()  # played long ago: a pause can no longer need it
        pacer.play_at = play_at + pacer.frame_s
        turn.agent_audio_ms += pacer.frame_s * 1000
        ahead = pacer.play_at - time.monotonic() - pacer.lead_s
        if ahead > 0:
            await asyncio.sleep(ahead)

    async def _finish_reply(self, turn: TurnState) -> None:
        self._responding = None
        if self._barge is not None and self._barge.turn_index == turn.index:
            self._end_barge()
        await self._end_turn(turn)

    # ------------------------------------------------------------------ interruption

    def _heard_text(self, now: float) -> str:
        """What the caller heard by ``now``: whole chunks played, plus the played words of the
        chunk cut off (in proportion to its audio played)."""
        heard: list[str] = []
        frame_s = self.settings.frame_ms / 1000
        for seg in self._segments:
            if not seg.play_times or seg.play_times[0] >= now:
                break
            played = bisect.bisect_left(seg.play_times, now)  # frames started before now
            whole = (
                seg.bytes_total is not None
                and played == len(seg.play_times)
                and seg.play_times[-1] + frame_s <= now
            )
            if whole:
                heard.append(seg.text)
                continue
            total = seg.bytes_total or seg.bytes_sent
            fraction = 0.0 if total == 0 else min(1.0, played * seg.frame_bytes / total)
            words = seg.text.split()
            heard_words = words[: int(len(words) * fraction)]
            if heard_words:
                heard.append(" ".join(heard_words))
            break
        return " ".join(heard)

    async def _cancel_reply_tasks(self) -> None:
        for task in (self._reply_task, self._speaker_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _interrupt(self, *, reason: str, at: float | None = None) -> None:
        """Cut the reply in progress; the caller heard it up to ``at`` (default: now)."""
        turn = self._responding
        task = self._reply_task
        if turn is None or task is None or task.done():
            return
        now = time.monotonic() if at is None else at
        spoken = (
            " ".join(s.text for s in self._segments)
            if self.settings.text_only
            else self._heard_text(now)
        )
        # The speaker runs beside the reply task (the LLM may still be streaming): stop both.
        await self._cancel_reply_tasks()
        await self._discard_speculation(turn)
        pacer = self._pacer
        if pacer is not None and pacer.underrun_s:
            turn.metrics["audio_underrun_ms"] = pacer.underrun_s * 1000
        if self.recorder is not None:
            # The caller's client drops the audio it had queued: so does the recording.
            self.recorder.agent_cut(at_ms=(now - self._t0) * 1000)
        turn.spoken_text = spoken
        turn.status = "interrupted"
        last = self.history[-1].get("role") if self.history else None
        if turn.user_text and last != "assistant" and not turn.asked_confirmation:
            # Keep only what the caller actually heard (maybe nothing) in the LLM history.
            if spoken:
                self.history.append({"role": "assistant", "content": spoken})
        await self._emit("interrupted", turn.index, spoken_text=spoken, reason=reason)
        self._responding = None
        self._reply_task = None
        self._pacer = None
        await self._end_turn(turn)

    # ------------------------------------------------------------------ events

    async def _end_turn(self, turn: TurnState) -> None:
        if turn.ended or not turn.announced:
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
            end_of_turn=turn.end_of_turn,
            pauses=turn.pauses,
            resumed=list(turn.resumed),
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


def _cancel_unless_current(task: asyncio.Task[Any] | None) -> None:
    if task is not None and task is not asyncio.current_task():
        task.cancel()


def _utf8_encodable(text: str) -> bool:
    """``False`` when ``text`` holds a lone surrogate (``"\\ud800"`` from a JSON escape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return text
