"""Small immutable messages exchanged by the stages of the voice loop.

Audio everywhere is PCM16: signed 16-bit little-endian, mono. Caller audio is 16 kHz,
agent audio 24 kHz. Times are ``time.monotonic()`` seconds unless a name ends in ``_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: Caller audio sample rate (Hz): the WebSocket protocol and every STT engine use it.
INPUT_SAMPLE_RATE_HZ = 16_000
#: Agent audio sample rate (Hz) sent to the caller (ElevenLabs ``pcm_24000`` matches it).
OUTPUT_SAMPLE_RATE_HZ = 24_000
#: One caller frame: 20 ms at 16 kHz PCM16 = 320 samples = 640 bytes.
INPUT_FRAME_BYTES = 640
BYTES_PER_SAMPLE = 2


# ---------------------------------------------------------------- VAD


@dataclass(frozen=True, slots=True)
class VADEvent:
    """A speech boundary found by the VAD state machine.

    ``kind``:

    - ``"speech_onset"``: the first window at or above the threshold after silence — maybe
      speech, not confirmed yet (one 32 ms window after the sound began). Barge-in pauses the
      agent on it, because waiting for confirmation would take ``min_speech_ms``.
    - ``"speech_onset_cancelled"``: that candidate died out before ``min_speech_ms`` of
      speech (a click, a cough, noise): no ``speech_start`` follows for it.
    - ``"speech_start"``: speech confirmed (``audio_ms`` is where the candidate began).
    - ``"speech_end"``: ``min_silence_ms`` of silence after speech (``audio_ms`` is the end
      of the last speech window).

    ``audio_ms`` is the position in the caller's audio stream (ms since the first sample);
    ``at`` is the monotonic time at which the window that decided it arrived. ``forced`` is
    true when a speech end was forced by the maximum utterance length.
    """

    kind: Literal["speech_onset", "speech_onset_cancelled", "speech_start", "speech_end"]
    audio_ms: float
    at: float
    probability: float = 0.0
    forced: bool = False


# ---------------------------------------------------------------- STT


@dataclass(frozen=True, slots=True)
class Transcript:
    """A transcript from a streaming STT engine (Deepgram's ``Results`` shape).

    ``is_final``: this text for the audio span will not change. ``speech_final``: the engine
    believes the speaker finished the utterance (end of speech). Partials have both false.
    ``from_finalize``: this final answers the platform's ``finalize()`` (Deepgram's
    ``from_finalize``; always true for the offline engine's finals). ``start_ms``/``end_ms``
    are positions in the caller's audio stream when known.
    """

    text: str
    is_final: bool
    speech_final: bool = False
    from_finalize: bool = False
    confidence: float | None = None
    start_ms: float | None = None
    end_ms: float | None = None
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class STTNotice:
    """Something the STT engine reports besides words, for the call record.

    The session emits it as a ``stt.<kind>`` event with ``data`` as its fields. Kinds used by
    the Deepgram engine: ``metadata`` (request id, model, audio duration), ``speech_started``
    and ``utterance_end`` (Deepgram's own VAD and word-gap events, ``audio_ms``),
    ``reconnected`` (a dropped connection was reopened and unacknowledged audio resent) and
    ``vendor_error`` (an ``Error`` message from the vendor).
    """

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


STTMessage = Transcript | STTNotice


# ---------------------------------------------------------------- LLM


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """One complete tool call requested by the LLM (deltas already accumulated).

    ``arguments`` is the raw JSON text the model produced; it may be malformed, and the
    tool runner must turn that into an error result rather than crash.
    """

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of assistant text as streamed by the LLM."""

    text: str


@dataclass(frozen=True, slots=True)
class LLMDone:
    """End of one LLM response: the tool calls it asked for (maybe none) and its stop reason."""

    tool_calls: tuple[ToolCallRequest, ...] = ()
    finish_reason: str | None = None
    model: str | None = None
    #: Token counts when the server sent a usage chunk (``prompt_tokens``, ``completion_tokens``).
    usage: dict[str, int] | None = None
    #: How a fleet routed the request: ``{"server", "reason", "attempts": [...]}``.
    route: dict[str, Any] | None = None


LLMChunk = TextDelta | LLMDone


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one tool call, as fed back to the LLM.

    ``content`` is the text the LLM sees (the tool's return string, or an error message).
    ``ok`` is false when the tool raised, rejected its arguments or returned an error.
    """

    ok: bool
    content: str
    duration_ms: float = 0.0


# ---------------------------------------------------------------- events to the caller


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A JSON event for the caller and the call record.

    ``type`` is one of the names in docs/protocol.md (``vad.speech_start``,
    ``transcript.partial``, ``agent.text``, ``tool.call``, ...). ``turn`` is the turn index
    (0 = greeting, then 1, 2, ... per caller utterance). ``t_ms`` is ms since session start.
    """

    type: str
    turn: int
    t_ms: float
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "turn": self.turn, "t_ms": round(self.t_ms, 1), **self.data}
