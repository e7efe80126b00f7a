"""Turn-taking: when the caller's turn ends, what interrupts the agent, and the echo gate.

Pure logic, no I/O, no clocks of its own: :class:`~parley.agents.voice.session.CallSession`
feeds it. Three pieces:

- :class:`TurnTakingSettings`: the per-agent knobs, with their defaults and sources.
- Text heuristics on transcripts: :func:`transcript_unfinished` (the caller paused inside a
  sentence: wait longer before answering) and :class:`BackchannelMatcher` ("okay",
  "mm-hmm": the caller is listening, not taking the turn).
- :class:`EchoGate`: keeps the agent's own voice, played by the caller's loudspeaker and
  picked up by a microphone without echo cancellation, from looking like caller speech.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_BACKCHANNELS",
    "DEFAULT_FILLER_TEXT",
    "BackchannelMatcher",
    "EchoGate",
    "TurnTakingSettings",
    "level_dbfs",
    "normalize_words",
    "transcript_unfinished",
]

#: Short acknowledgements that do not take the turn from a speaking agent (compared after
#: :func:`normalize_words`, so "Mm-hmm." matches "mm hmm").
DEFAULT_BACKCHANNELS: tuple[str, ...] = (
    "okay", "ok", "mm-hmm", "mhm", "mm", "hmm", "uh-huh", "uh huh", "yeah", "yep", "yes",
    "right", "sure", "alright", "all right", "got it", "i see", "cool", "great", "good",
    "thanks", "thank you", "oh", "ah", "wow",
)  # fmt: skip
DEFAULT_FILLER_TEXT = "One moment while I check that."


@dataclass(frozen=True, slots=True)
class TurnTakingSettings:
    """Per-agent turn-taking settings (times in ms).

    End of turn:

    - ``endpointing_ms=500``: silence after speech that ends a turn whose transcript looks
      finished (the OpenAI Realtime ``server_vad`` ``silence_duration_ms`` default).
    - ``unfinished_endpointing_ms=2000``: the silence needed instead when the transcript is
      clearly unfinished (:func:`transcript_unfinished`: "my order number is ..."). 2 s lets a
      caller look a number up; LiveKit Agents waits up to 6 s (``max_endpointing_delay``)
      when its turn model says "not done".
    - ``pause_ms=300``: silence after which the STT is asked for the final transcript of
      what was said (``Finalize``) — before the end of turn, so the transcript, and with
      ``speculative_start`` the LLM's answer, are already on their way when the turn ends.
      Deepgram's own endpointing default is 10 ms; 300 ms keeps syllable gaps out.
    - ``stt_end_of_turn=True``: the STT's own end-of-speech signals end the turn early when
      the transcript looks finished: Deepgram ``speech_final`` (its endpointing) while the
      VAD hears silence, and ``UtteranceEnd`` (no words for ``utterance_end_ms``) even when
      the VAD still hears sound (background noise).
    - ``speculative_start=True``: start the LLM request on the stable final transcript,
      before the end of turn; it is cancelled, with nothing said, if the caller goes on.

    Interruptions:

    - ``barge_in=True``: caller speech interrupts the agent. The agent pauses at the VAD's
      speech onset (one 32 ms window), then: words that are not all backchannels cut the
      reply (barge-in); backchannels only, or no words, resume it where it paused.
    - ``backchannels``: the acknowledgement words and phrases (:data:`DEFAULT_BACKCHANNELS`).
    - ``false_interruption_ms=800``: how long a pause waits for words before the agent
      resumes (noise, a cough: a *false interruption*); counted from the onset. LiveKit
      Agents' ``false_interruption_timeout`` is 2 s; 800 ms covers the VAD's confirmation
      (250 ms) plus an STT partial (300 ms of audio for the offline engine) with margin.
    - ``echo_gate=False``: gate the VAD against the agent's own voice (see
      :class:`EchoGate`); the call turns it on when the caller's client reports no echo
      cancellation.

    Tools:

    - ``filler_after_ms=1000``: a tool call still running after this long makes the agent
      say ``filler_text`` once per turn (none if the LLM already said something in that
      step). ``filler_text=""`` turns the filler off.

    Raises:
        ValueError: a negative time, ``pause_ms`` above ``endpointing_ms``, or
            ``unfinished_endpointing_ms`` below ``endpointing_ms``.
    """

    endpointing_ms: int = 500
    unfinished_endpointing_ms: int = 2000
    pause_ms: int = 300
    stt_end_of_turn: bool = True
    speculative_start: bool = True
    barge_in: bool = True
    backchannels: tuple[str, ...] = DEFAULT_BACKCHANNELS
    false_interruption_ms: int = 800
    echo_gate: bool = False
    filler_after_ms: int = 1000
    filler_text: str = DEFAULT_FILLER_TEXT

    def __post_init__(self) -> None:
        for name in (
            "endpointing_ms",
            "unfinished_endpointing_ms",
            "pause_ms",
            "false_interruption_ms",
            "filler_after_ms",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.pause_ms > self.endpointing_ms:
            raise ValueError(
                f"pause_ms ({self.pause_ms}) must not exceed endpointing_ms ({self.endpointing_ms})"
            )
        if self.unfinished_endpointing_ms < self.endpointing_ms:
            raise ValueError(
                f"unfinished_endpointing_ms ({self.unfinished_endpointing_ms}) must be at least "
                f"endpointing_ms ({self.endpointing_ms})"
            )


# ---------------------------------------------------------------- transcripts

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

#: Words after which an English sentence (practically) cannot end: conjunctions,
#: prepositions that are not also verb particles ("log in", "turn it on" end sentences),
#: articles and possessives that never stand alone, subject contractions, hesitations.
#: Left out on purpose because complete answers end with them: auxiliaries ("yes I do",
#: "I will"), object pronouns ("thank you"), demonstratives ("I want this"), "so" ("I think
#: so"), "that", "before"/"after", "while".
_CONTINUATION_WORDS = frozenset(
    """
    and or but nor because although though unless until whereas if whether than
    of to for with from into onto at by between without within against toward towards via
    per as during
    a an the my your our their its every
    i i'm we're you're he's she's they're it's that's there's
    um uh er erm uhm hm
    """.split()
)
#: The copula ends a sentence after a pronoun or wh-word ("than he was", "yes it is", "that's
#: what it is") but not after a noun ("my order number is ...", "the address is ...").
_COPULAS = frozenset({"is", "are", "was", "were"})
_COPULA_SUBJECTS = frozenset(
    "i you he she it we they this that these those there here what who where which one".split()
)
_TRAILING_MARKS = (",", ";", ":", "-", "–", "—", "...", "…")


def normalize_words(text: str) -> list[str]:
    """Lower-case words of ``text`` with punctuation removed; hyphens split words
    ("Mm-hmm." → ``["mm", "hmm"]``), inner apostrophes stay ("I'm" → ``["i'm"]``)."""
    return _WORD.findall(text.lower().replace("’", "'").replace("-", " "))


def transcript_unfinished(text: str) -> bool:
    """True when ``text`` clearly stops mid-sentence, so the caller is likely to go on.

    The cheap heuristic of issue 8: the transcript ends with a continuation mark
    (``,`` ``;`` ``:`` a dash or an ellipsis, as a punctuating STT writes a pause inside a
    sentence) or with a word after which an English sentence cannot end (a conjunction, a
    preposition, an article or possessive, "is"/"was" after a noun, "um"). A question or
    exclamation mark means finished (questions strand prepositions: "Who is it for?"); a
    full stop proves nothing (punctuating STTs end every final with one). Empty text is not
    unfinished.
    """
    stripped = text.rstrip()
    if not stripped or stripped.endswith(("?", "!")):
        return False
    if stripped.endswith(_TRAILING_MARKS):
        return True
    words = normalize_words(stripped)
    if not words:
        return False
    last = words[-1]
    if last in _COPULAS:
        return len(words) == 1 or words[-2] not in _COPULA_SUBJECTS
    return last in _CONTINUATION_WORDS


class BackchannelMatcher:
    """Tells whether a transcript is only acknowledgements ("okay", "mm-hmm, yeah").

    Phrases are compared as :func:`normalize_words` sequences; the transcript must be made
    entirely of them (repeats allowed), with at most ``max_words`` words in all.
    """

    def __init__(self, phrases: tuple[str, ...] | list[str], *, max_words: int = 4) -> None:
        self._phrases = sorted(
            {tuple(words) for p in phrases if (words := normalize_words(p))},
            key=len,
            reverse=True,
        )
        self.max_words = max_words

    def matches(self, text: str) -> bool:
        """True for a non-empty transcript made only of backchannel phrases."""
        words = normalize_words(text)
        if not words or len(words) > self.max_words or not self._phrases:
            return False
        return self._cover(words, 0)

    def _cover(self, words: list[str], at: int) -> bool:
        if at == len(words):
            return True
        for phrase in self._phrases:
            end = at + len(phrase)
            if tuple(words[at:end]) == phrase and self._cover(words, end):
                return True
        return False


# ---------------------------------------------------------------- echo gate

#: Level of digital silence (dBFS) used for an all-zero frame.
SILENCE_DBFS = -120.0


def level_dbfs(pcm16: bytes) -> float:
    """RMS level of PCM16 audio in dBFS (full-scale sine = -3 dBFS); -120 for silence."""
    if len(pcm16) < 2:
        return SILENCE_DBFS
    samples = np.frombuffer(pcm16, dtype="<i2", count=len(pcm16) // 2).astype(np.float32)
    rms = float(np.sqrt(np.mean(samples * samples))) / 32768.0
    return SILENCE_DBFS if rms <= 1e-6 else max(SILENCE_DBFS, 20.0 * math.log10(rms))


class EchoGate:
    """A level-based double-talk detector (the Geigel detector on frame levels).

    The agent's frames are registered with the time they play at the caller
    (:meth:`agent_frame`). A caller frame arriving at ``at`` may carry the echo of agent
    audio played within ``window_ms`` before it (network round trip, playout buffer and the
    room). The frame is *echo* — the gate closes — when its level is below the loudest of
    those agent frames minus ``erl_db`` plus ``margin_db``; otherwise it is the caller
    talking (over the echo, or alone).

    - ``erl_db=6``: the echo return loss assumed (loudspeaker to microphone, dB): Geigel's
      classic detector declares double talk when the near end exceeds half the far-end peak,
      i.e. assumes at least 6 dB of loss (D. L. Duttweiler, "A twelve-channel digital echo
      canceler", IEEE Trans. Commun., 1978).
    - ``margin_db=0``: extra headroom above the assumed echo level.
    - ``window_ms=600``: how far back the echo's source may lie (round trip + playout +
      room), on the server's clock.
    - ``floor_dbfs=-55``: agent audio quieter than this makes no echo worth gating.

    The gate decides per caller frame; it holds no audio, only levels (one float per agent
    frame in the window).
    """

    def __init__(
        self,
        *,
        erl_db: float = 6.0,
        margin_db: float = 0.0,
        window_ms: float = 600.0,
        floor_dbfs: float = -55.0,
    ) -> None:
        self.erl_db = erl_db
        self.margin_db = margin_db
        self.window_s = window_ms / 1000
        self.floor_dbfs = floor_dbfs
        self._times: deque[float] = deque()
        self._levels: deque[float] = deque()
        self.gated_frames = 0

    def agent_frame(self, pcm16: bytes, *, play_at: float) -> None:
        """Register an agent frame (any sample rate) playing at ``play_at`` (monotonic s)."""
        if self._times and play_at < self._times[-1]:
            self.forget_after(play_at)  # a pause re-sends audio: its old schedule is void
        self._times.append(play_at)
        self._levels.append(level_dbfs(pcm16))

    def forget_after(self, t: float) -> None:
        """Drop agent frames scheduled at or after ``t`` (audio the caller never heard)."""
        while self._times and self._times[-1] >= t:
            self._times.pop()
            self._levels.pop()

    def reference_dbfs(self, at: float) -> float:
        """Loudest agent frame played within the window before ``at`` (-120 if none)."""
        horizon = at - self.window_s
        while self._times and self._times[0] < horizon - 1.0:
            self._times.popleft()
            self._levels.popleft()
        lo = bisect.bisect_left(self._times, horizon)
        hi = bisect.bisect_right(self._times, at)
        if lo >= hi:
            return SILENCE_DBFS
        return max(self._levels[i] for i in range(lo, hi))

    def is_echo(self, pcm16: bytes, *, at: float) -> bool:
        """True when the caller frame arriving at ``at`` is explained by the agent's echo."""
        reference = self.reference_dbfs(at)
        if reference < self.floor_dbfs:
            return False
        echo = level_dbfs(pcm16) < reference - self.erl_db + self.margin_db
        if echo:
            self.gated_frames += 1
        return echo
