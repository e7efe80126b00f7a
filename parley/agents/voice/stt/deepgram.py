"""Deepgram live streaming STT (``/v1/listen`` WebSocket) through the official ``deepgram-sdk``.

One :class:`DeepgramStream` per call holds one live connection opened with
``AsyncDeepgramClient.listen.v1.connect`` (model, language, ``encoding=linear16``,
``sample_rate=16000``, interim results, endpointing, ``utterance_end_ms``, VAD events, smart
format and key terms — see :class:`DeepgramSettings`).

Messages handled: ``Results`` become :class:`Transcript` (``speech_final`` is Deepgram's
``speech_final`` *or* ``from_finalize``, i.e. the answer to the platform's ``Finalize``);
``SpeechStarted``, ``UtteranceEnd``, ``Metadata`` and ``Error`` become :class:`STTNotice` for
the call record. Control messages: ``Finalize`` when the platform decides the turn ended
(:meth:`DeepgramStream.finalize`), ``KeepAlive`` whenever no audio was sent for
``keepalive_interval_s`` (the caller's client stopped sending audio, e.g. a half-duplex phone
leg muted while the agent speaks; Deepgram closes a connection after 10 s without data), and
``CloseStream`` at hang-up.

No words are lost when the connection drops. Deepgram does not acknowledge audio, but every
final result says which span of audio it covers (``start`` + ``duration``, seconds from the
start of the connection's audio), so the stream keeps all audio after the end of the last
final. When the connection breaks (anything but the close that follows ``CloseStream``) it
reconnects — up to ``max_reconnects`` consecutive attempts with ``reconnect_backoff_s``
doubling — resends that audio first, repeats a ``Finalize`` that was not answered, and
reports an ``STTNotice("reconnected")``. Timestamps of the new connection restart at zero; the
stream adds the offset, so ``Transcript.start_ms``/``end_ms`` are positions in the call's
caller audio throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from parley.agents.voice.messages import (
    BYTES_PER_SAMPLE,
    INPUT_SAMPLE_RATE_HZ,
    STTMessage,
    STTNotice,
    Transcript,
)
from parley.agents.voice.stt.base import STT, STTError, STTStream

logger = logging.getLogger(__name__)

__all__ = ["DEEPGRAM_URL", "DeepgramSTT", "DeepgramSettings", "DeepgramStream"]

#: Deepgram's own WebSocket base URL (the SDK appends ``/v1/listen``).
DEEPGRAM_URL = "wss://api.deepgram.com"

#: Deepgram documents ``keyterm`` for Nova-3 only; older models take ``keywords``.
_KEYTERM_MODEL_PREFIX = "nova-3"
#: Deepgram rejects ``utterance_end_ms`` below 1000 ms (its word-gap detector granularity).
_MIN_UTTERANCE_END_MS = 1000
_CLOSE_WAIT_S = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DeepgramSettings:
    """Per-agent Deepgram options and the client's resilience knobs.

    ``url``: WebSocket base (``wss://api.deepgram.com`` or a proxy / local fake, ``ws://``
    allowed; ``http(s)://`` is turned into ``ws(s)://``). ``endpointing_ms``: Deepgram's own
    silence endpointing (``None`` sends ``endpointing=false``). ``utterance_end_ms``: word-gap
    ``UtteranceEnd`` events (``None`` disables; >= 1000 and needs interim results).
    ``keyterms``: names and product terms to boost (``keyterm`` for Nova-3, ``keywords`` for
    older models). Raises ``ValueError`` for impossible combinations.
    """

    api_key: str = field(repr=False)
    url: str = DEEPGRAM_URL
    model: str = "nova-3"
    language: str = "en-US"
    endpointing_ms: int | None = 300
    utterance_end_ms: int | None = 1000
    interim_results: bool = True
    vad_events: bool = True
    smart_format: bool = True
    keyterms: tuple[str, ...] = ()
    keepalive_interval_s: float = 4.0
    max_reconnects: int = 3
    reconnect_backoff_s: float = 0.2
    connect_timeout_s: float = 5.0
    max_buffer_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("Deepgram needs an API key")
        if not self.model:
            raise ValueError("model is required")
        if self.endpointing_ms is not None and self.endpointing_ms < 0:
            raise ValueError("endpointing_ms must be >= 0 (or None to disable)")
        if self.utterance_end_ms is not None:
            if self.utterance_end_ms < _MIN_UTTERANCE_END_MS:
                raise ValueError(f"utterance_end_ms must be >= {_MIN_UTTERANCE_END_MS}")
            if not self.interim_results:
                raise ValueError("utterance_end_ms needs interim_results")
        if self.keepalive_interval_s <= 0 or self.keepalive_interval_s >= 10:
            raise ValueError("keepalive_interval_s must be in (0, 10): Deepgram times out at 10 s")
        if self.max_reconnects < 0:
            raise ValueError("max_reconnects must be >= 0")

    @property
    def ws_url(self) -> str:
        parsed = urllib.parse.urlparse(self.url.rstrip("/"))
        scheme = {"http": "ws", "https": "wss"}.get(parsed.scheme, parsed.scheme)
        return parsed._replace(scheme=scheme).geturl()

    def query(self) -> dict[str, Any]:
        """The ``listen.v1.connect`` keyword arguments (query parameters)."""
        params: dict[str, Any] = {
            "model": self.model,
            "language": self.language,
            "encoding": "linear16",
            "sample_rate": INPUT_SAMPLE_RATE_HZ,
            "channels": 1,
            "interim_results": self.interim_results,
            "endpointing": self.endpointing_ms if self.endpointing_ms is not None else False,
            "vad_events": self.vad_events,
            "smart_format": self.smart_format,
        }
        if self.utterance_end_ms is not None:
            params["utterance_end_ms"] = self.utterance_end_ms
        terms = [t.strip() for t in self.keyterms if t.strip()]
        if terms:
            key = "keyterm" if self.model.startswith(_KEYTERM_MODEL_PREFIX) else "keywords"
            params[key] = terms
        # The SDK's query encoder writes booleans as true/false; ints as digits.
        return params


class DeepgramSTT(STT):
    """:class:`STT` provider for Deepgram live streaming. One client per stream."""

    name = "deepgram"

    def __init__(self, settings: DeepgramSettings) -> None:
        self.settings = settings

    async def open_stream(self) -> STTStream:
        """Connect. Raises :class:`STTError` when Deepgram refuses (bad key, bad params) or
        cannot be reached within ``connect_timeout_s``."""
        stream = DeepgramStream(self.settings)
        await stream.start()
        return stream


@dataclass(slots=True)
class _Connection:
    socket: Any
    exit_stack: contextlib.AsyncExitStack
    offset_samples: int  # call-audio position of this connection's first sample
    number: int
    sent_samples: int = 0  # call-audio position up to which audio went out on it
    closing: bool = False  # CloseStream sent: the next close is the normal end
    finalize_sent_at: int | None = None  # the Finalize position already sent on it


class DeepgramStream(STTStream):
    """One live Deepgram connection per call, reconnected transparently (module docstring)."""

    def __init__(self, settings: DeepgramSettings) -> None:
        from deepgram import AsyncDeepgramClient
        from deepgram.environment import DeepgramClientEnvironment

        self.settings = settings
        ws_url = settings.ws_url
        http_url = ws_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
        self._client = AsyncDeepgramClient(
            api_key=settings.api_key,
            environment=DeepgramClientEnvironment(
                base=http_url, production=ws_url, agent=ws_url, agent_rest=http_url
            ),
        )
        self._out: asyncio.Queue[STTMessage | STTError | None] = asyncio.Queue()
        self._chunks: deque[tuple[int, bytes]] = deque()  # (call sample position, pcm16)
        self._pushed_samples = 0
        self._acked_samples = 0  # audio covered by final results: never resent
        self._finalize_at: int | None = None  # sample position of an unanswered Finalize
        self._wake = asyncio.Event()
        self._conn: _Connection | None = None
        self._connections = 0
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._last_send = time.monotonic()
        #: Connections opened (1 + reconnections), for tests and the call record.
        self.reconnects = 0

    # ------------------------------------------------------------------ STTStream API

    async def start(self) -> None:
        self._conn = await self._connect(offset_samples=0)
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name="deepgram-supervisor"
        )

    async def push_audio(self, pcm16: bytes) -> None:
        if len(pcm16) % BYTES_PER_SAMPLE:
            raise ValueError(f"odd PCM16 length {len(pcm16)}")
        if not pcm16 or self._closing:
            return
        self._chunks.append((self._pushed_samples, pcm16))
        self._pushed_samples += len(pcm16) // BYTES_PER_SAMPLE
        self._trim(self._pushed_samples - int(self.settings.max_buffer_s * INPUT_SAMPLE_RATE_HZ))
        self._wake.set()

    async def finalize(self) -> None:
        if self._closing:
            return
        self._finalize_at = self._pushed_samples
        self._wake.set()

    async def aclose(self) -> None:
        """Send the remaining audio and ``CloseStream``, wait briefly for the final results
        and ``Metadata``, then close. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        supervisor = self._supervisor
        if supervisor is not None and not supervisor.done():
            try:
                await asyncio.wait_for(asyncio.shield(supervisor), _CLOSE_WAIT_S)
            except (TimeoutError, asyncio.CancelledError):
                supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await supervisor
        if self._conn is not None:
            await self._close_connection(self._conn)
        self._out.put_nowait(None)

    async def __aiter__(self) -> Any:  # AsyncIterator[STTMessage]
        while True:
            item = await self._out.get()
            if item is None:
                return
            if isinstance(item, STTError):
                raise item
            yield item

    # ------------------------------------------------------------------ connection

    async def _connect(self, *, offset_samples: int) -> _Connection:
        from deepgram.core.api_error import ApiError

        stack = contextlib.AsyncExitStack()
        try:
            socket = await asyncio.wait_for(
                stack.enter_async_context(self._client.listen.v1.connect(**self.settings.query())),
                self.settings.connect_timeout_s,
            )
        except ApiError as exc:
            await stack.aclose()
            raise STTError(_api_error_message(exc)) from exc
        except TimeoutError as exc:
            await stack.aclose()
            raise STTError(
                f"Deepgram at {self.settings.ws_url} did not answer within "
                f"{self.settings.connect_timeout_s:g} s"
            ) from exc
        except OSError as exc:
            await stack.aclose()
            raise STTError(f"cannot connect to Deepgram at {self.settings.ws_url}: {exc}") from exc
        self._connections += 1
        return _Connection(
            socket=socket,
            exit_stack=stack,
            offset_samples=offset_samples,
            number=self._connections,
            sent_samples=offset_samples,
        )

    async def _close_connection(self, conn: _Connection) -> None:
        with contextlib.suppress(Exception):
            await conn.exit_stack.aclose()

    async def _supervise(self) -> None:
        """Run reader and sender on the current connection; reconnect when it breaks."""
        failures = 0
        while True:
            conn = self._conn
            assert conn is not None
            reason = await self._run_connection(conn)
            await self._close_connection(conn)
            if conn.closing or self._closing:
                return  # the normal end, or a hang-up while the connection was broken
            resend_from = self._acked_samples
            while not self._closing:
                failures += 1
                if failures > self.settings.max_reconnects:
                    self._out.put_nowait(
                        STTError(f"Deepgram connection lost ({reason}); reconnecting failed")
                    )
                    return
                await asyncio.sleep(self.settings.reconnect_backoff_s * 2 ** (failures - 1))
                try:
                    self._conn = await self._connect(offset_samples=resend_from)
                    break
                except STTError as exc:
                    reason = str(exc)
                    logger.warning("Deepgram reconnect %d failed: %s", failures, exc)
            if self._closing:
                return
            failures = 0
            self.reconnects += 1
            resent_ms = (self._pushed_samples - resend_from) * 1000 / INPUT_SAMPLE_RATE_HZ
            self._out.put_nowait(
                STTNotice(
                    "reconnected",
                    {
                        "connection": self._conn.number,
                        "reason": reason,
                        "resent_ms": round(resent_ms, 1),
                        "from_audio_ms": round(resend_from * 1000 / INPUT_SAMPLE_RATE_HZ, 1),
                    },
                )
            )

    async def _run_connection(self, conn: _Connection) -> str:
        reader = asyncio.get_running_loop().create_task(self._read(conn), name="deepgram-read")
        sender = asyncio.get_running_loop().create_task(self._send(conn), name="deepgram-send")
        try:
            done, _ = await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done and sender.exception() is None and not reader.done():
                # CloseStream went out: let the reader drain the last results and Metadata.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait({reader}, timeout=_CLOSE_WAIT_S)
        finally:
            for task in (reader, sender):
                task.cancel()
            results = await asyncio.gather(reader, sender, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
                return (
                    f"{type(result).__name__}: {result}" if str(result) else type(result).__name__
                )
        return "closed"

    async def _send(self, conn: _Connection) -> None:
        """Send audio beyond ``conn.sent_samples``, controls in order, KeepAlive when idle.

        Returns after ``CloseStream``; raises when the socket breaks.
        """
        interval_s = self.settings.keepalive_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval_s)
            self._wake.clear()
            for start, pcm in list(self._chunks):
                end = start + len(pcm) // BYTES_PER_SAMPLE
                if end <= conn.sent_samples:
                    continue
                if self._finalize_at is not None and start >= self._finalize_at:
                    await self._send_finalize(conn)
                skip = max(0, conn.sent_samples - start) * BYTES_PER_SAMPLE
                await conn.socket.send_media(pcm[skip:])
                conn.sent_samples = end
                self._last_send = time.monotonic()
            if self._finalize_at is not None and self._finalize_at <= conn.sent_samples:
                await self._send_finalize(conn)
            if self._closing:
                conn.closing = True
                await conn.socket.send_close_stream()
                return
            if time.monotonic() - self._last_send >= interval_s:
                await conn.socket.send_keep_alive()
                self._last_send = time.monotonic()

    async def _send_finalize(self, conn: _Connection) -> None:
        if conn.finalize_sent_at == self._finalize_at:
            return
        await conn.socket.send_finalize()
        conn.finalize_sent_at = self._finalize_at

    async def _read(self, conn: _Connection) -> None:
        from deepgram.listen.v1.types import (
            ListenV1Error,
            ListenV1Metadata,
            ListenV1Results,
            ListenV1SpeechStarted,
            ListenV1UtteranceEnd,
        )

        offset_ms = conn.offset_samples * 1000 / INPUT_SAMPLE_RATE_HZ
        async for message in conn.socket:
            if isinstance(message, ListenV1Results):
                self._on_results(conn, message)
            elif isinstance(message, ListenV1SpeechStarted):
                self._notice("speech_started", audio_ms=offset_ms + message.timestamp * 1000)
            elif isinstance(message, ListenV1UtteranceEnd):
                self._notice("utterance_end", audio_ms=offset_ms + message.last_word_end * 1000)
            elif isinstance(message, ListenV1Metadata):
                self._notice(
                    "metadata",
                    request_id=message.request_id,
                    duration_ms=round(message.duration * 1000, 1),
                    connection=conn.number,
                )
            elif isinstance(message, ListenV1Error):
                self._notice(
                    "vendor_error",
                    variant=message.variant,
                    description=message.description,
                    code=message.code,
                )

    def _on_results(self, conn: _Connection, message: Any) -> None:
        alternatives = message.channel.alternatives
        best = alternatives[0] if alternatives else None
        text = (best.transcript if best else "").strip()
        offset_s = conn.offset_samples / INPUT_SAMPLE_RATE_HZ
        start_s = offset_s + message.start
        end_s = start_s + message.duration
        from_finalize = bool(message.from_finalize)
        speech_final = bool(message.speech_final) or from_finalize
        if message.is_final:
            self._acked_samples = max(self._acked_samples, round(end_s * INPUT_SAMPLE_RATE_HZ))
            self._trim(self._acked_samples)
            if from_finalize:
                self._finalize_at = None
        if not text and not speech_final:
            return  # silence finals only move the acknowledgement; empty partials say nothing
        self._out.put_nowait(
            Transcript(
                text=text,
                is_final=bool(message.is_final),
                speech_final=speech_final and bool(message.is_final),
                from_finalize=from_finalize and bool(message.is_final),
                confidence=best.confidence if best else None,
                start_ms=round(start_s * 1000, 1),
                end_ms=round(end_s * 1000, 1),
                at=time.monotonic(),
            )
        )

    def _notice(self, kind: str, **data: Any) -> None:
        if "audio_ms" in data:
            data["audio_ms"] = round(data["audio_ms"], 1)
        self._out.put_nowait(STTNotice(kind, data))

    def _trim(self, before_samples: int) -> None:
        """Forget buffered audio that ends before ``before_samples`` (never resent)."""
        while self._chunks:
            start, pcm = self._chunks[0]
            if start + len(pcm) // BYTES_PER_SAMPLE > before_samples:
                return
            self._chunks.popleft()


def _api_error_message(exc: Any) -> str:
    status = getattr(exc, "status_code", None)
    if status == 401:
        return "Deepgram refused the API key (HTTP 401): check the key's environment variable"
    return f"Deepgram refused the connection (HTTP {status}): {getattr(exc, 'body', '')}"
