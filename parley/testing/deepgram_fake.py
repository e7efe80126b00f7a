"""A local fake of Deepgram's live speech-to-text WebSocket (``GET /v1/listen``) for tests.

Served by aiohttp on 127.0.0.1. The ``deepgram-sdk`` reaches it through
``DeepgramClientEnvironment(base=dg.http_url, production=dg.url, agent=dg.url,
agent_rest=dg.http_url)``. Nothing is recognised: the fake plays a *script* of timed words
(:class:`ScriptWord`, :func:`script_from_text`) against the audio it receives.

Handshake: ``Authorization: Token <key>`` or ``Bearer <key>`` (else 401, ``err_code:
"INVALID_AUTH"``); ``model`` required, ``encoding`` only ``linear16`` with
``sample_rate=16000``, ``channels`` 1 (else 400, ``err_code: "Bad Request"``). Binary frames:
16 kHz PCM16 LE mono. Text frames: ``KeepAlive``, ``Finalize``, ``CloseStream`` (anything else
gets an ``Error`` with ``variant: "SchemaError"``; the connection stays open).

Results depend on audio bytes, never on wall time (rules in :class:`_Transcriber`): audio
time is ``t = bytes / 32000`` s and every reported time is in seconds from the start of the
connection's audio. An idle connection (no audio, ``KeepAlive`` or ``Finalize`` for
``idle_timeout_s`` of wall time, default 10 s like Deepgram) is closed 1011, reason
``NET-0001``. With a reference recording (:meth:`FakeDeepgram.set_reference_audio`) each
connection locates its audio in it, so a client that reconnects mid-recording gets only the
later words, timed from its own start; with ``realign_after_silence_ms`` it locates it again
after every long silence, so one connection can carry a caller's several utterances, each cut
from the recording, with pauses of any length between them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

logger = logging.getLogger(__name__)

__all__ = ["BYTES_PER_S", "FakeConnection", "FakeDeepgram", "ScriptWord", "script_from_text"]

#: Bytes per second of the only audio the fake takes: 16 kHz mono PCM16.
BYTES_PER_S = 32_000
_FRAME = 640  # bytes in 20 ms: the alignment frame and the evaluation tick
_EPS = 1e-9
_MULTI_PARAMS = frozenset({"keyterm", "keywords", "redact", "replace", "search", "tag", "extra"})
_CONTROLS = ("KeepAlive", "Finalize", "CloseStream")
_SCHEMA_ERROR = "Expected a JSON object with type KeepAlive, Finalize or CloseStream."
Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ScriptWord:
    """A scripted word in reference-recording seconds; ``punctuated`` defaults to ``word``."""

    word: str
    start_s: float
    end_s: float
    punctuated: str | None = None


def script_from_text(text: str, start_s: float, end_s: float) -> list[ScriptWord]:
    """Spread the words of ``text`` evenly, back to back, over ``[start_s, end_s]`` seconds.

    ``punctuated`` keeps each token as written; ``word`` is it lower-cased without punctuation
    (inner apostrophes kept). Tokens without letters or digits are dropped. Times are rounded to
    microseconds. Raises ValueError when ``end_s <= start_s``.
    """
    if end_s <= start_s:
        raise ValueError("end_s must be after start_s")
    tokens = [(tok, re.sub(r"[^\w']", "", tok.lower()).strip("'")) for tok in text.split()]
    tokens = [(tok, bare) for tok, bare in tokens if bare]
    step = (end_s - start_s) / max(len(tokens), 1)
    return [
        ScriptWord(bare, round(start_s + i * step, 6), round(start_s + (i + 1) * step, 6), tok)
        for i, (tok, bare) in enumerate(tokens)
    ]


@dataclass(slots=True, eq=False)
class FakeConnection:
    """What the fake saw and did on one accepted ``/v1/listen`` WebSocket.

    ``params``: the query, one string per name except the repeatable ``keyterm``, ``keywords``,
    ``redact``, ``replace``, ``search``, ``tag`` and ``extra`` (always lists). ``headers``: the
    handshake headers, names lower-cased. ``audio_bytes``: PCM bytes received. ``controls``:
    types of valid control messages in arrival order. ``sent``: messages written to the client,
    in order. ``closed_by``: ``None`` while open, then ``"client"`` (its close frame or a lost
    connection), ``"server"`` (after ``CloseStream``, an error fault, idle timeout or shutdown)
    or ``"dropped"`` (drop fault). ``close_code``: the code of whoever closed (1006 without a
    close frame). ``offset_s``: where the connection's audio starts in the reference recording
    (0.0 without one; ``None`` until located).
    """

    request_id: str
    params: dict[str, Any]
    headers: dict[str, str]
    audio_bytes: int = 0
    controls: list[str] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    closed_by: str | None = None
    close_code: int | None = None
    offset_s: float | None = None

    def messages(self, type_: str) -> list[Message]:
        """The sent messages of one ``type`` ("Results", "Metadata", ...), in order."""
        return [m for m in self.sent if m.get("type") == type_]


class _BadQuery(Exception):
    """A handshake Deepgram would refuse with 400."""


def _flag(params: dict[str, Any], name: str) -> bool:
    if (value := str(params.get(name, "false")).lower()) not in ("true", "false"):
        raise _BadQuery(f"'{name}' must be true or false.")
    return value == "true"


def _seconds(params: dict[str, Any], name: str, default_ms: str) -> float | None:
    """A millisecond query value in seconds (``true``: 10 ms); ``false``/``none`` → None."""
    if (value := str(params.get(name, default_ms)).lower()) in ("none", "false"):
        return None
    try:
        ms = 10.0 if value == "true" else float(value)
    except ValueError:
        ms = math.nan
    if not 0 <= ms < math.inf:
        raise _BadQuery(f"'{name}' must be a number of milliseconds >= 0, or false.")
    return ms / 1000


@dataclass(frozen=True, slots=True)
class _Options:
    model: str
    interim_results: bool
    punctuate: bool
    vad_events: bool
    endpointing_s: float | None
    utterance_end_s: float | None
    interim_every_s: float
    silence_final_every_s: float

    @classmethod
    def parse(cls, params: dict[str, Any], interim_ms: float, silence_ms: float) -> _Options:
        """Validate the query. Raises :class:`_BadQuery`."""
        if not params.get("model"):
            raise _BadQuery("The 'model' query parameter is required.")
        if (encoding := params.get("encoding")) not in (None, "linear16"):
            raise _BadQuery(f"Unsupported encoding {encoding!r}: the fake only takes linear16.")
        if encoding and params.get("sample_rate") != "16000":
            raise _BadQuery("encoding=linear16 needs sample_rate=16000, the only rate supported.")
        if params.get("channels", "1") != "1":
            raise _BadQuery("Only channels=1 is supported.")
        return cls(
            model=params["model"],
            interim_results=_flag(params, "interim_results"),
            punctuate=_flag(params, "punctuate") or _flag(params, "smart_format"),
            vad_events=_flag(params, "vad_events"),
            endpointing_s=_seconds(params, "endpointing", "10"),
            utterance_end_s=_seconds(params, "utterance_end_ms", "none"),
            interim_every_s=interim_ms / 1000,
            silence_final_every_s=silence_ms / 1000,
        )


def _r(seconds: float) -> float:
    return round(seconds, 6)


def _constant(frame: bytes) -> bool:
    """Whether every sample of a PCM16 frame is the same (digital silence)."""
    return frame == frame[:2] * (len(frame) // 2)


class _Transcriber:
    """Turns one connection's audio, as it arrives, into Deepgram messages. No I/O, no clocks.

    Rules run at every 20 ms of audio; a word is *heard* once ``end_s <= t``:

    * interim ``Results`` (``interim_results=true``) every ``interim_every_ms`` of audio while
      heard words are unfinalized, with those words, spanning from the last final to ``t``.
    * final with ``speech_final: true``: the heard unfinalized words once ``endpointing`` ms
      (default 10; ``false`` disables) of audio passed after the last one with no word starting.
    * empty final (``speech_final: false``) after ``silence_final_every_ms`` of audio since the
      last final when no unfinalized word has started.
    * ``SpeechStarted`` (``vad_events=true``) when audio reaches the first word of an utterance,
      which ends with a final leaving no word in progress, or with ``UtteranceEnd``.
    * ``UtteranceEnd`` (``utterance_end_ms`` set) once that much audio passed after the last
      heard word with no new word started; once per utterance.
    * ``Finalize`` → final with ``from_finalize: true`` and every unfinalized word with
      ``start_s < t``. ``CloseStream`` → a final (pending heard words, or the unfinalized span
      if any), then ``Metadata``.

    Alignment: the first 20 ms frame (at a multiple of 640 bytes) whose samples are not all
    equal is looked up in the reference at an even byte offset; ``offset_s = (reference
    position - frame position) / 32000``. Words with ``start_s >= offset_s - 0.01`` are
    reported, shifted by ``-offset_s``. Until then nothing is evaluated; then the rules catch up.

    Re-alignment (``realign_s``, needs a reference): once ``realign_s`` of constant frames
    follow the last word and every started word is final, the words not yet started are
    forgotten; the next non-constant frame is looked up again (first after the previous match,
    else anywhere) and the script words from that reference position on are placed at the new
    offset. One connection can so play several utterances of one reference recording with
    any amount of silence between them, as a caller's turns are.
    """

    def __init__(
        self,
        opts: _Options,
        script: Sequence[ScriptWord],
        reference: bytes | None,
        rid: str,
        realign_s: float | None = None,
    ) -> None:
        self._opts, self._reference = opts, reference
        self._realign_s = realign_s if reference is not None else None
        self._quiet_s = 0.0  # constant audio since the last non-constant frame (s)
        self._ref_cursor = 0  # reference byte position after the last match
        self._script = sorted(script, key=lambda w: w.start_s)
        self._bytes = self._done = 0  # received; evaluated up to
        self._frame, self._frame_at = bytearray(), 0  # partial alignment frame, its position
        self._warned = False
        self._sha = hashlib.sha256()
        self._words: list[ScriptWord] = []
        self.offset_s: float | None = None
        self._started = self._heard = self._finalized = 0  # word counts (prefixes of _words)
        self._final_end = self._interim_t = 0.0
        self._in_utterance = False
        self._ue_last_end: float | None = None
        self._rid, self._model_uuid = rid, str(uuid.uuid5(uuid.NAMESPACE_URL, opts.model))
        self._model_info = {"name": f"general-{opts.model}", "version": "2025-01-01.0"}
        self._model_info["arch"] = opts.model
        self._meta = {"request_id": rid, "model_info": self._model_info}
        self._meta["model_uuid"] = self._model_uuid
        self._created = datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
        if reference is None:
            self._place(0.0)

    @property
    def t_s(self) -> float:
        return self._bytes / BYTES_PER_S

    def feed(self, chunk: bytes) -> list[Message]:
        """Take an audio chunk; return the messages it triggers."""
        self._bytes += len(chunk)
        self._sha.update(chunk)
        out: list[Message] = []
        if self.offset_s is None or self._realign_s is not None:
            self._frame += chunk
            while len(self._frame) >= _FRAME:
                frame = bytes(self._frame[:_FRAME])
                del self._frame[:_FRAME]
                at, self._frame_at = self._frame_at, self._frame_at + _FRAME
                if self.offset_s is None:
                    self._locate(frame, at)
                else:
                    self._realign(frame, at)
                self._evaluate(at + _FRAME, out)
            if self._realign_s is None and self.offset_s is not None:
                self._frame.clear()  # located: frames are no longer looked at
        self._evaluate(self._bytes, out)
        return out

    def _evaluate(self, upto: int, out: list[Message]) -> None:
        """Run the rules at every 20 ms of audio up to byte ``upto`` (once located)."""
        while self.offset_s is not None and self._done < upto:
            self._done = min(upto, (self._done // _FRAME + 1) * _FRAME)
            self._step(self._done / BYTES_PER_S, out)

    def finalize(self) -> list[Message]:
        """``Finalize``: one ``from_finalize`` final with every unfinalized started word."""
        t, upto = self.t_s, self._finalized
        while upto < len(self._words) and self._words[upto].start_s < t - _EPS:
            upto += 1
        return [self._final(t, upto, speech_final=False, from_finalize=True)]

    def close_stream(self) -> list[Message]:
        """``CloseStream``: a final for what is pending (if anything), then ``Metadata``."""
        t, out = self.t_s, []
        pending = self._finalized < self._heard
        if pending or t > self._final_end + _EPS:
            out.append(self._final(t, max(self._heard, self._finalized), speech_final=pending))
        metadata = {"type": "Metadata", "transaction_key": "deprecated", "request_id": self._rid}
        metadata |= {"sha256": self._sha.hexdigest(), "created": self._created}
        metadata |= {"duration": _r(t), "channels": 1, "models": [self._model_uuid]}
        metadata["model_info"] = {self._model_uuid: dict(self._model_info)}
        return [*out, metadata]

    def _locate(self, frame: bytes, at: int) -> None:
        """First alignment: place the script from the first locatable frame at byte ``at``."""
        if _constant(frame):
            return  # silence: cannot be located
        pos = self._find(frame)
        if pos is not None:
            self._place((pos - at) / BYTES_PER_S)
        elif not self._warned:
            self._warned = True
            logger.warning("audio frame at byte %d is not in the reference audio", at)

    def _realign(self, frame: bytes, at: int) -> None:
        """Re-alignment after ``realign_s`` of silence (class docstring)."""
        assert self._realign_s is not None
        settled = self._finalized >= self._started  # every started word is final
        if _constant(frame):
            self._quiet_s += _FRAME / BYTES_PER_S
            if self._quiet_s + _EPS >= self._realign_s and settled:
                del self._words[self._started :]  # placed again where the audio resumes
            return
        quiet, self._quiet_s = self._quiet_s, 0.0
        if quiet + _EPS < self._realign_s or not settled:
            return
        pos = self._find(frame)
        if pos is None:
            logger.warning("audio frame at byte %d is not in the reference audio", at)
            return
        offset_s = (pos - at) / BYTES_PER_S
        self.offset_s = _r(offset_s)
        from_s = pos / BYTES_PER_S - 0.01
        self._words += [
            ScriptWord(w.word, _r(w.start_s - offset_s), _r(w.end_s - offset_s), w.punctuated)
            for w in self._script
            if w.start_s >= from_s
        ]

    def _find(self, frame: bytes) -> int | None:
        """Even byte position of ``frame`` in the reference: the first after the previous
        match, else the first anywhere; None if it is not there."""
        assert self._reference is not None
        for start in (self._ref_cursor, 0):
            pos = self._reference.find(frame, start)
            while pos >= 0 and pos % 2:
                pos = self._reference.find(frame, pos + 1)
            if pos >= 0:
                self._ref_cursor = pos + len(frame)
                return pos
        return None

    def _place(self, offset_s: float) -> None:
        self.offset_s = _r(offset_s)
        self._words = [
            ScriptWord(w.word, _r(w.start_s - offset_s), _r(w.end_s - offset_s), w.punctuated)
            for w in self._script
            if w.start_s >= offset_s - 0.01
        ]

    def _step(self, t: float, out: list[Message]) -> None:
        words, opts = self._words, self._opts
        while self._started < len(words) and words[self._started].start_s <= t + _EPS:
            if not self._in_utterance:
                self._in_utterance = True
                if opts.vad_events:
                    start = words[self._started].start_s
                    out.append({"type": "SpeechStarted", "channel": [0], "timestamp": start})
            self._started += 1
        while self._heard < len(words) and words[self._heard].end_s <= t + _EPS:
            self._ue_last_end = words[self._heard].end_s
            self._heard += 1
        next_start = words[self._heard].start_s if self._heard < len(words) else math.inf
        pending_heard = self._finalized < self._heard
        if pending_heard and opts.endpointing_s is not None:
            silence_end = words[self._heard - 1].end_s + opts.endpointing_s
            if t + _EPS >= silence_end and next_start + _EPS >= silence_end:
                out.append(self._final(t, self._heard, speech_final=True))
        silent = self._finalized >= self._started  # no unfinalized word has started
        if silent and t - self._final_end + _EPS >= opts.silence_final_every_s:
            out.append(self._final(t, self._finalized, speech_final=False))
        interim_due = t - self._interim_t + _EPS >= opts.interim_every_s
        if opts.interim_results and self._finalized < self._heard and interim_due:
            self._interim_t = t
            heard = words[self._finalized : self._heard]
            out.append(self._results(t, heard, is_final=False, speech_final=False))
        if opts.utterance_end_s is not None and self._ue_last_end is not None:
            limit = self._ue_last_end + opts.utterance_end_s
            if t + _EPS >= limit and next_start + _EPS >= limit:
                last_end, self._ue_last_end = self._ue_last_end, None
                out.append({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": last_end})
                self._in_utterance = False

    def _final(
        self, t: float, upto: int, *, speech_final: bool, from_finalize: bool = False
    ) -> Message:
        words = self._words[self._finalized : upto]
        msg = self._results(t, words, is_final=True, speech_final=speech_final)
        msg["from_finalize"] = from_finalize
        self._finalized = max(self._finalized, upto)
        self._final_end = self._interim_t = t
        if self._finalized >= self._started:
            self._in_utterance = False
        return msg

    def _results(
        self, t: float, words: Sequence[ScriptWord], *, is_final: bool, speech_final: bool
    ) -> Message:
        """A ``Results`` message spanning from the last final to ``t``."""
        punctuate = self._opts.punctuate
        items = [{"word": w.word, "start": w.start_s, "end": w.end_s} for w in words]
        for item, w in zip(items, words, strict=True):
            item["confidence"] = 0.99
            if punctuate:
                item["punctuated_word"] = w.punctuated or w.word
        text = " ".join((w.punctuated or w.word) if punctuate else w.word for w in words)
        alternative = {"transcript": text, "confidence": 0.98 if words else 0.0, "words": items}
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": _r(t - self._final_end),
            "start": _r(self._final_end),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": False,
            "channel": {"alternatives": [alternative]},
            "metadata": dict(self._meta),
        }


@dataclass(frozen=True, slots=True)
class _Fault:
    after_bytes: int
    error: Message | None = None  # None: drop the connection


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


@dataclass(eq=False)
class _Session:
    """One accepted WebSocket: a receive loop plus one sender task that keeps message order."""

    fake: FakeDeepgram
    conn: FakeConnection
    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None
    tx: _Transcriber
    queue: asyncio.Queue[tuple[float, Message | _Close]] = field(default_factory=asyncio.Queue)
    ending: bool = False  # a close is queued: further input is ignored

    async def run(self) -> None:
        sender = asyncio.get_running_loop().create_task(self._send_loop())
        how = "client"
        try:
            how = await self._receive_loop()
        finally:
            if how != "server":  # else the sender is closing the socket: let it finish
                sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _receive_loop(self) -> str:
        """Read until closed; return who closed: "client", "server" or "dropped"."""
        idle_s = self.fake.idle_timeout_s
        deadline = time.monotonic() + idle_s
        while True:
            timeout = None if self.ending else max(deadline - time.monotonic(), 0.001)
            try:
                msg = await self.ws.receive(timeout=timeout)
            except TimeoutError:
                self.end(1011, "NET-0001")
                continue
            if msg.type is WSMsgType.BINARY:
                if not self.ending:
                    deadline = time.monotonic() + idle_s
                    if self._on_audio(msg.data):
                        return "dropped"
            elif msg.type is WSMsgType.TEXT:
                if not self.ending and self._on_text(msg.data):
                    deadline = time.monotonic() + idle_s
            elif msg.type is WSMsgType.CLOSING:
                return "server"  # our close() is under way in the sender
            else:  # CLOSE, CLOSED, ERROR
                if self.conn.closed_by is None:
                    self.conn.closed_by = "client"
                    self.conn.close_code = msg.data if msg.type is WSMsgType.CLOSE else 1006
                return "client"

    def _on_audio(self, data: bytes) -> bool:
        """Count, check faults, transcribe. Returns True if the connection was dropped."""
        self.conn.audio_bytes += len(data)
        fault = self.fake._claim_fault(self.conn.audio_bytes)
        if fault is None:
            self._emit(self.tx.feed(data))
            self.conn.offset_s = self.tx.offset_s
        elif fault.error is not None:
            self._emit([fault.error])
            self.end(1011, str(fault.error["code"]))
        else:
            self.conn.closed_by, self.conn.close_code = "dropped", 1006
            if self.transport is not None:
                self.transport.abort()
            return True
        return False

    def _on_text(self, text: str) -> bool:
        """Handle a control message. Returns True if it was a valid one."""
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        if kind not in _CONTROLS:
            error = {"type": "Error", "variant": "SchemaError", "description": _SCHEMA_ERROR}
            self._emit([{**error, "message": text}])
            return False
        self.conn.controls.append(kind)
        if kind == "Finalize":
            self._emit(self.tx.finalize())
        elif kind == "CloseStream":
            self._emit(self.tx.close_stream())
            self.end(1000, "")
        return True

    def _emit(self, items: Iterable[Message | _Close]) -> None:
        due = time.monotonic() + self.fake.result_delay_ms / 1000
        for item in items:
            self.queue.put_nowait((due, item))

    def end(self, code: int, reason: str) -> None:
        if not self.ending:
            self.ending = True
            self._emit([_Close(code, reason)])

    async def _send_loop(self) -> None:
        while True:
            due, item = await self.queue.get()
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            if isinstance(item, _Close):
                if self.conn.closed_by is None:
                    self.conn.closed_by, self.conn.close_code = "server", item.code
                await self.ws.close(code=item.code, message=item.reason.encode())
                return
            try:
                await self.ws.send_str(json.dumps(item))
            except (ConnectionError, RuntimeError):
                return
            self.conn.sent.append(item)


class FakeDeepgram:
    """The fake on a real socket: ``async with FakeDeepgram(api_key="dg-test-key") as dg``.

    Binds ``host`` on an ephemeral port. ``url``: ``ws://127.0.0.1:PORT`` (the SDK appends
    ``/v1/listen``); ``http_url``: ``http://...``.
    ``connections``: every accepted WebSocket (:class:`FakeConnection`); ``rejections``: every
    refused handshake as ``(status, err_code)``. The script and reference audio are the only
    state shared between connections (a connection takes both when it opens).
    ``result_delay_ms`` delays every server message, order kept, to mimic Deepgram's latency
    (a ``speech_final`` arrives ``endpointing`` ms of audio after the last word's end plus
    ``result_delay_ms`` of wall time; a ``Finalize`` answer ``result_delay_ms`` after it);
    ``idle_timeout_s`` is wall time; ``interim_every_ms``/``silence_final_every_ms`` audio time.
    ``realign_after_silence_ms``: with reference audio, a connection locates its audio in the
    reference again after this much digital silence (see :class:`_Transcriber`), so one
    connection can carry several utterances of the reference separated by any silence.
    Raises ValueError on negative or zero timings.
    """

    def __init__(
        self,
        api_key: str = "dg-test-key",
        *,
        script: Iterable[ScriptWord] = (),
        reference_audio: bytes | None = None,
        result_delay_ms: float = 0.0,
        idle_timeout_s: float = 10.0,
        interim_every_ms: float = 200.0,
        silence_final_every_ms: float = 1000.0,
        realign_after_silence_ms: float | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        if (
            result_delay_ms < 0
            or min(idle_timeout_s, interim_every_ms, silence_final_every_ms) <= 0
            or (realign_after_silence_ms is not None and realign_after_silence_ms <= 0)
        ):
            raise ValueError("result_delay_ms must be >= 0 and the other timings > 0")
        self.api_key = api_key
        self.result_delay_ms = result_delay_ms
        self.realign_after_silence_ms = realign_after_silence_ms
        self.idle_timeout_s = idle_timeout_s
        self.interim_every_ms = interim_every_ms
        self.silence_final_every_ms = silence_final_every_ms
        self.connections: list[FakeConnection] = []
        self.rejections: list[tuple[int, str]] = []
        self._script, self._reference = list(script), reference_audio
        self._faults: dict[str, _Fault] = {}
        self._reject_status: int | None = None
        self._sessions: set[_Session] = set()
        self._host = host
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeDeepgram is not started")
        return f"ws://{self._host}:{self.port}"

    @property
    def http_url(self) -> str:
        return "http" + self.url[2:]

    def set_script(self, words: Iterable[ScriptWord]) -> None:
        """Words (reference-recording times) for connections opened from now on."""
        self._script = list(words)

    def set_reference_audio(self, pcm16: bytes | None) -> None:
        """16 kHz PCM16 recording that later connections are aligned to; ``None``: no alignment."""
        self._reference = pcm16

    def drop_after_audio_ms(self, ms: float) -> None:
        """Abort the TCP connection (no close frame) of the next connection to have received
        ``ms`` of audio. One-shot; replaces a pending drop."""
        self._faults["drop"] = _Fault(math.ceil(ms * BYTES_PER_S / 1000))

    def error_after_audio_ms(
        self,
        ms: float,
        variant: str = "INTERNAL_SERVER_ERROR",
        description: str = "Injected fault: the fake Deepgram failed while processing audio.",
        code: str = "NET-0000",
    ) -> None:
        """Send ``{"type": "Error", variant, description, code}`` then close 1011 (reason
        ``code``) on the next connection to have received ``ms`` of audio. One-shot."""
        error = {"type": "Error", "variant": variant, "description": description, "code": code}
        self._faults["error"] = _Fault(math.ceil(ms * BYTES_PER_S / 1000), error)

    def reject_next(self, status: int = 503) -> None:
        """Refuse the next handshake with HTTP ``status``. One-shot."""
        self._reject_status = status

    def _claim_fault(self, audio_bytes: int) -> _Fault | None:
        for kind, fault in list(self._faults.items()):
            if audio_bytes >= fault.after_bytes:
                return self._faults.pop(kind)
        return None

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
        """Poll ``predicate()`` every 10 ms until true (True) or ``timeout_s`` (False)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate():
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def _refuse(self, status: int, code: str, message: str, rid: str) -> web.Response:
        self.rejections.append((status, code))
        body = {"err_code": code, "err_msg": message, "request_id": rid}
        return web.json_response(body, status=status, headers={"dg-request-id": rid})

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        rid = str(uuid.uuid4())
        if self._reject_status is not None:
            status, self._reject_status = self._reject_status, None
            return self._refuse(status, "REJECTED", "Refused by FakeDeepgram.reject_next().", rid)
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("token", "bearer") or key.strip() != self.api_key:
            return self._refuse(401, "INVALID_AUTH", "Invalid credentials.", rid)
        ws = web.WebSocketResponse(timeout=5.0)  # prepare() refuses a non-WebSocket GET
        params: dict[str, Any] = {}
        for name in dict.fromkeys(request.query.keys()):
            values = request.query.getall(name)
            params[name] = list(values) if name in _MULTI_PARAMS else values[-1]
        try:
            opts = _Options.parse(params, self.interim_every_ms, self.silence_final_every_ms)
        except _BadQuery as exc:
            return self._refuse(400, "Bad Request", str(exc), rid)
        ws.headers["dg-request-id"] = rid
        await ws.prepare(request)
        headers = {name.lower(): value for name, value in request.headers.items()}
        realign = self.realign_after_silence_ms
        transcriber = _Transcriber(
            opts, self._script, self._reference, rid, None if realign is None else realign / 1000
        )
        conn = FakeConnection(rid, params, headers, offset_s=transcriber.offset_s)
        self.connections.append(conn)
        session = _Session(self, conn, ws, request.transport, transcriber)
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
        return ws

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/listen", self._listen)
        runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        await web.TCPSite(runner, self._host, 0).start()
        self._runner, self.port = runner, int(runner.addresses[0][1])
        logger.info("fake Deepgram listening on %s", self.url)

    async def close(self) -> None:
        """Close open connections (1001, after queued messages), then stop the server."""
        if self._runner is None:
            return
        for session in list(self._sessions):
            session.end(1001, "fake Deepgram shutting down")  # after queued messages
        await self.wait_for(lambda: not self._sessions, timeout_s=2.0)
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> FakeDeepgram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
