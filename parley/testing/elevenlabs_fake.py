"""A local fake of ElevenLabs' text-to-speech API for tests, served by aiohttp on 127.0.0.1.

The ``elevenlabs`` SDK talks to it with ``AsyncElevenLabs(api_key=..., base_url=el.url)``. The
audio is synthetic (:func:`synthetic_speech_pcm16`: tone bursts, not speech). Endpoints, all
needing the ``xi-api-key`` header (else 401 ``{"detail": {"status": "invalid_api_key", ...}}``):

* ``POST /v1/text-to-speech/{voice_id}/stream`` — see :meth:`FakeElevenLabs._tts_stream`.
* ``GET /v1/text-to-speech/{voice_id}/stream-input`` (WebSocket) — see
  :meth:`FakeElevenLabs._stream_input`.
* ``GET /v1/models`` — the model list (clients call it to warm a connection).

Error bodies are ``{"detail": {"status": <code>, "message": ...}}``. Requests and sockets are
recorded (:class:`TTSRequest`, :class:`StreamInputSession`); faults for the HTTP stream are
injected with ``fail_next``, ``break_after_bytes``, ``stall_next`` and ``drop_next``.

Connections behave like a vendor's front end: an idle keep-alive connection is closed after
``keepalive_timeout_s``, and the first response on a new TCP connection waits
``new_connection_ms`` more (the TCP + TLS handshake a real client pays, which a loopback
connection does not).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

__all__ = [
    "DEFAULT_CHUNK_LENGTH_SCHEDULE",
    "DEFAULT_MODEL_ID",
    "DEFAULT_OUTPUT_FORMAT",
    "MODELS",
    "MS_PER_CHAR",
    "PCM_FORMATS",
    "FakeElevenLabs",
    "StreamInputSession",
    "TTSRequest",
    "char_alignment",
    "samples_per_char",
    "synthetic_speech_pcm16",
]

#: Supported ``output_format`` values → sample rate in Hz (16-bit little-endian mono PCM).
PCM_FORMATS: dict[str, int] = {f"pcm_{rate}": rate for rate in (16000, 22050, 24000, 44100)}
#: What ElevenLabs uses when ``output_format`` is absent; the fake refuses it (422).
DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
#: Known model ids → display names, as listed by ``GET /v1/models``.
MODELS: dict[str, str] = {
    "eleven_turbo_v2_5": "Eleven Turbo v2.5",
    "eleven_flash_v2_5": "Eleven Flash v2.5",
    "eleven_multilingual_v2": "Eleven Multilingual v2",
    "eleven_turbo_v2": "Eleven Turbo v2",
    "eleven_flash_v2": "Eleven Flash v2",
    "eleven_monolingual_v1": "Eleven English v1",
}
DEFAULT_MODEL_ID = "eleven_multilingual_v2"
#: Audio length of every character of the text, whitespace included (ms).
MS_PER_CHAR = 65.0
#: ``generation_config.chunk_length_schedule`` when the client gives none (characters).
DEFAULT_CHUNK_LENGTH_SCHEDULE: tuple[int, ...] = (120, 160, 250, 290)

_AMPLITUDE = 0.3  # peak of a word's burst, as a fraction of full scale


# ---------------------------------------------------------------- synthetic audio


def samples_per_char(sample_rate_hz: int) -> int:
    """Samples of audio per text character (``MS_PER_CHAR`` at ``sample_rate_hz``)."""
    return round(sample_rate_hz * MS_PER_CHAR / 1000.0)


def synthetic_speech_pcm16(text: str, sample_rate_hz: int) -> bytes:
    """Deterministic speech-like audio for ``text``: PCM16 little-endian mono bytes.

    Every character lasts :func:`samples_per_char` samples, so the audio lasts
    ``len(text) * 65 ms``. Whitespace is silence; each word (a run of non-whitespace) is one
    burst of a gliding harmonic tone (f0 100–220 Hz, from a CRC of the word) under a smooth
    rise-and-fall envelope with a 4 Hz "syllable" ripple, peaking near 30 % of full scale.
    """
    spc = samples_per_char(sample_rate_hz)
    out = np.zeros(len(text) * spc, dtype=np.float64)
    for match in re.finditer(r"\S+", text):
        n = len(match.group()) * spc
        start = match.start() * spc
        t = np.arange(n) / sample_rate_hz
        dur = n / sample_rate_hz
        f0 = 100.0 + zlib.crc32(match.group().encode()) % 120
        # Integral of f0 * (1 + 0.15 * sin(pi * t / dur)): the pitch rises then falls.
        phase = 2 * np.pi * f0 * (t + 0.15 * dur / np.pi * (1 - np.cos(np.pi * t / dur)))
        wave = sum(np.sin(h * phase) / h for h in range(1, 5)) / (1 + 1 / 2 + 1 / 3 + 1 / 4)
        envelope = np.sqrt(np.sin(np.pi * (np.arange(n) + 0.5) / n))
        envelope *= 0.75 + 0.25 * np.cos(2 * np.pi * 4.0 * t)
        out[start : start + n] = _AMPLITUDE * wave * envelope
    return np.round(out * 32767).astype("<i2").tobytes()


def char_alignment(
    text: str, sample_rate_hz: int, start_sample: int, end_sample: int
) -> dict[str, list[Any]]:
    """Alignment of the characters of ``text`` whose audio starts in ``[start_sample, end_sample)``.

    Samples count from the start of ``synthetic_speech_pcm16(text, ...)``. Returns
    ``{"chars": [...], "charStartTimesMs": [...], "charDurationsMs": [...]}``, times in whole
    ms relative to ``start_sample``. Chunks that tile the audio give each character exactly once.
    """
    spc = samples_per_char(sample_rate_hz)
    first = -(-start_sample // spc)
    indices = range(first, max(first, min(len(text), -(-end_sample // spc))))
    ms_per_sample = 1000 / sample_rate_hz
    return {
        "chars": [text[i] for i in indices],
        "charStartTimesMs": [round((i * spc - start_sample) * ms_per_sample) for i in indices],
        "charDurationsMs": [round(spc * ms_per_sample)] * len(indices),
    }


# ---------------------------------------------------------------- records


@dataclass(slots=True, kw_only=True)
class _Record:
    voice_id: str
    query: dict[str, str]
    headers: dict[str, str]
    peer: str
    started_at: float
    model_id: str | None = None
    status: int | None = None
    voice_settings: dict[str, Any] | None = None
    first_byte_at: float | None = None
    ended_at: float | None = None
    bytes_sent: int = 0
    completed: bool = False
    cancelled: bool = False


@dataclass(slots=True, kw_only=True)
class TTSRequest(_Record):
    """One ``POST .../stream`` as the fake saw it. Times are ``time.monotonic()`` seconds.

    ``query``: query parameters; ``headers``: lower-cased names; ``peer``: client
    ``host:port``; ``status``: the HTTP status answered; ``first_byte_at``: first audio
    written. ``bytes_sent``: audio bytes written, of ``total_bytes`` for the whole text.
    ``completed``: the stream ended normally; ``cancelled``: the client went away first;
    ``aborted``: the fake cut the connection (``break_after_bytes``, or ``drop_next``: then
    ``status`` is None and nothing was answered); ``stall_s``: injected extra delay (s).
    """

    text: str | None = None
    body: Any = None
    output_format: str | None = None
    sample_rate_hz: int | None = None
    stall_s: float = 0.0
    total_bytes: int = 0
    aborted: bool = False


@dataclass(slots=True, kw_only=True)
class StreamInputSession(_Record):
    """One ``stream-input`` WebSocket; fields shared with :class:`TTSRequest` mean the same.

    ``status``: 101 once upgraded, else the HTTP error status. ``messages``: every JSON message
    received. ``generations``: the text of each generation. ``bytes_sent``: PCM bytes sent
    (decoded). ``completed``: ``isFinal`` was sent. ``error``: the ``error`` code of a policy
    close. ``close_code``: the code the fake closed with (None if the client closed first).
    """

    chunk_length_schedule: list[int] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    generations: list[str] = field(default_factory=list)
    end_of_input: bool = False
    error: str | None = None
    close_code: int | None = None


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body if body is not None else {"detail": {"status": code, "message": message}}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status)


# ---------------------------------------------------------------- the server


class FakeElevenLabs:
    """The fake on a real socket: ``async with FakeElevenLabs() as el: ... el.url ...``.

    ``ttfb_ms``: delay before the first audio byte of each generation. ``chunk_ms``: audio per
    streamed chunk (every chunk but a generation's last has ``round(rate * chunk_ms / 1000)``
    samples). ``speed``: pacing as a multiple of real time (0 or None: as fast as possible).
    ``voices``: if given, the only voice ids accepted. ``keepalive_timeout_s``: an idle
    keep-alive connection is closed after this long (aiohttp's default, 75 s).
    ``new_connection_ms``: extra delay of the first response on each new TCP connection.
    Binds ``host`` on an ephemeral port.
    """

    def __init__(
        self,
        *,
        api_key: str = "el-test-key",
        ttfb_ms: float = 0.0,
        chunk_ms: float = 40,
        speed: float | None = 8.0,
        voices: set[str] | frozenset[str] | None = None,
        keepalive_timeout_s: float = 75.0,
        new_connection_ms: float = 0.0,
        host: str = "127.0.0.1",
    ) -> None:
        if ttfb_ms < 0 or chunk_ms <= 0 or (speed is not None and speed < 0):
            raise ValueError("need ttfb_ms >= 0, chunk_ms > 0 and speed >= 0 (or None)")
        if keepalive_timeout_s <= 0 or new_connection_ms < 0:
            raise ValueError("need keepalive_timeout_s > 0 and new_connection_ms >= 0")
        self.keepalive_timeout_s = keepalive_timeout_s
        self.new_connection_ms = new_connection_ms
        self.api_key = api_key
        self.ttfb_ms = ttfb_ms
        self.chunk_ms = chunk_ms
        self.speed = speed
        self.voices = frozenset(voices) if voices is not None else None
        self.requests: list[TTSRequest] = []
        self.sessions: list[StreamInputSession] = []
        self.model_list_hits = 0
        #: ``host:port`` of every client connection that carried at least one request.
        self.peers: set[str] = set()
        self._new_peers: set[str] = set()  # connections whose first response is still due
        self._host = host
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._fail: tuple[int, Any] = (500, None)
        self._fail_count = 0
        self._break_after: int | None = None
        self._stall_s = 0.0
        self._stall_after = 0
        self._drop_count = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the SDK's ``base_url`` (it appends ``/v1/...``)."""
        if self._port is None:
            raise RuntimeError("FakeElevenLabs is not started")
        return f"http://{self._host}:{self._port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT``, the base for the ``stream-input`` WebSocket."""
        return "ws" + self.url.removeprefix("http")

    @property
    def connections_opened(self) -> int:
        """Distinct TCP connections that carried requests (keep-alive reuse counts once)."""
        return len(self.peers)

    def fail_next(self, status: int = 500, count: int = 1, body: Any = None) -> None:
        """Answer the next ``count`` authorised TTS streaming requests with ``status``.

        ``body`` (JSON) replaces the default ``{"detail": {"status": ..., "message": ...}}``.
        """
        self._fail, self._fail_count = (status, body), count

    def break_after_bytes(self, n: int) -> None:
        """One-shot: abort the TCP connection of the next audio stream after ``n`` audio bytes."""
        self._break_after = n

    def stall_next(self, seconds: float, *, after_bytes: int = 0) -> None:
        """One-shot: the next audio stream waits ``seconds`` more before its first byte, or
        with ``after_bytes`` once that many audio bytes are out (a stall mid-stream)."""
        self._stall_s, self._stall_after = seconds, after_bytes

    def drop_next(self, count: int = 1) -> None:
        """Close the connection of the next ``count`` authorised TTS streaming requests without
        answering, as a server does that closes an idle keep-alive connection just as a
        request arrives on it."""
        self._drop_count = count

    async def wait_for(self, predicate: Callable[[], bool], *, timeout_s: float = 5.0) -> bool:
        """Poll ``predicate()`` every 5 ms until true (True) or ``timeout_s`` passed (False)."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self._tts_stream)
        app.router.add_get("/v1/text-to-speech/{voice_id}/stream-input", self._stream_input)
        # handler_cancellation: a client that goes away cancels its handler at once.
        runner = web.AppRunner(
            app,
            handler_cancellation=True,
            shutdown_timeout=1.0,
            access_log=None,
            keepalive_timeout=self.keepalive_timeout_s,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, 0).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeElevenLabs:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------ helpers

    def _note_peer(self, request: web.Request) -> str:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        name = f"{peer[0]}:{peer[1]}" if peer else "?"
        if name not in self.peers:
            self._new_peers.add(name)
        self.peers.add(name)
        return name

    async def _handshake(self, peer: str) -> None:
        """The first response on a new connection pays ``new_connection_ms`` (once)."""
        if peer in self._new_peers:
            self._new_peers.discard(peer)
            if self.new_connection_ms:
                await asyncio.sleep(self.new_connection_ms / 1000.0)

    def _basics(self, request: web.Request) -> dict[str, Any]:
        """The :class:`_Record` fields every request has."""
        return {
            "voice_id": request.match_info["voice_id"],
            "query": dict(request.query),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "peer": self._note_peer(request),
            "started_at": time.monotonic(),
        }

    def _check_key(self, key: str | None) -> None:
        if key != self.api_key:
            raise _ApiError(401, "invalid_api_key", "Invalid API key")

    def _check_voice(self, voice_id: str) -> None:
        if self.voices is not None and voice_id not in self.voices:
            raise _ApiError(404, "voice_not_found", f"Voice {voice_id!r} was not found.")

    @staticmethod
    def _sample_rate(output_format: str | None) -> int:
        fmt = output_format or DEFAULT_OUTPUT_FORMAT
        if fmt not in PCM_FORMATS:
            absent = " (the default when output_format is absent)" if output_format is None else ""
            message = f"Output format {fmt!r}{absent} is not supported: the fake ElevenLabs"
            message += f" only produces raw PCM ({', '.join(PCM_FORMATS)})."
            raise _ApiError(422, "invalid_output_format", message)
        return PCM_FORMATS[fmt]

    @staticmethod
    def _model(model_id: Any) -> str:
        if model_id is None:
            return DEFAULT_MODEL_ID
        if model_id not in MODELS:
            raise _ApiError(400, "model_not_found", f"Model {model_id!r} was not found.")
        return model_id

    async def _pace(self, t0: float, sample: int, rate: int) -> None:
        """Sleep until audio up to ``sample`` is due, ``speed`` × real time after ``t0``."""
        if self.speed:
            delay = t0 + sample / rate / self.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    def _chunk_samples(self, rate: int) -> int:
        return max(1, round(rate * self.chunk_ms / 1000.0))

    # ------------------------------------------------------------ HTTP

    async def _models(self, request: web.Request) -> web.Response:
        """``GET /v1/models``: a JSON list of model objects; every hit counts."""
        peer = self._note_peer(request)
        self.model_list_hits += 1
        await self._handshake(peer)
        try:
            self._check_key(request.headers.get("xi-api-key"))
        except _ApiError as exc:
            return exc.response()
        flags = {"can_do_text_to_speech": True, "can_do_voice_conversion": False}
        english = [{"language_id": "en", "name": "English"}]
        return web.json_response(
            [
                {"model_id": model_id, "name": name, **flags, "languages": english}
                for model_id, name in MODELS.items()
            ]
        )

    async def _tts_stream(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/text-to-speech/{voice_id}/stream``: chunked ``audio/pcm``.

        Query: ``output_format`` (a :data:`PCM_FORMATS` key; absent means ``mp3_44100_128``,
        refused with 422), ``optimize_streaming_latency`` (0–4), ``enable_logging``. Body:
        ``text`` (non-empty), ``model_id`` (a :data:`MODELS` key, else 400 ``model_not_found``;
        default ``eleven_multilingual_v2``), ``voice_settings``; other fields are ignored.
        With ``voices=``, an unknown voice → 404 ``voice_not_found``; other errors are 422.
        A pending ``fail_next`` answers first (after auth). After ``ttfb_ms`` the headers and
        the first chunk go out together; chunks hold ``chunk_ms`` of audio, paced at ``speed``.
        """
        rec = TTSRequest(**self._basics(request))
        self.requests.append(rec)
        if self._drop_count > 0 and request.headers.get("xi-api-key") == self.api_key:
            self._drop_count -= 1
            rec.aborted, rec.ended_at = True, time.monotonic()
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable  # never written: the connection is gone
        await self._handshake(rec.peer)
        try:
            text, rate = await self._parse_stream_request(request, rec)
        except _ApiError as exc:
            rec.status, rec.ended_at = exc.status, time.monotonic()
            return exc.response()
        return await self._stream_audio(request, rec, text, rate)

    async def _parse_stream_request(self, request: web.Request, rec: TTSRequest) -> tuple[str, int]:
        """Validate a streaming request into ``(text, sample rate in Hz)``; fills ``rec``."""
        self._check_key(request.headers.get("xi-api-key"))
        if self._fail_count > 0:
            self._fail_count -= 1
            status, body = self._fail
            raise _ApiError(status, "injected_fault", f"Injected fault: HTTP {status}.", body)
        rec.output_format = request.query.get("output_format", DEFAULT_OUTPUT_FORMAT)
        rec.sample_rate_hz = self._sample_rate(request.query.get("output_format"))
        if request.query.get("optimize_streaming_latency", "0") not in {"0", "1", "2", "3", "4"}:
            raise _ApiError(422, "invalid_parameter", "optimize_streaming_latency must be 0-4.")
        if request.query.get("enable_logging", "true") not in {"true", "false"}:
            raise _ApiError(422, "invalid_parameter", "enable_logging must be true or false.")
        try:
            rec.body = body = await request.json()
        except ValueError:
            raise _ApiError(422, "invalid_body", "The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise _ApiError(422, "invalid_body", "The body must be a JSON object.")
        if not isinstance(body.get("text"), str) or not body["text"].strip():
            raise _ApiError(422, "invalid_text", "'text' must be a non-empty string.")
        rec.text = body["text"]
        rec.model_id = self._model(body.get("model_id"))
        rec.voice_settings = body.get("voice_settings")
        if rec.voice_settings is not None and not isinstance(rec.voice_settings, dict):
            raise _ApiError(422, "invalid_body", "'voice_settings' must be an object.")
        self._check_voice(rec.voice_id)
        return rec.text, rec.sample_rate_hz

    async def _stream_audio(
        self, request: web.Request, rec: TTSRequest, text: str, rate: int
    ) -> web.StreamResponse:
        limit, self._break_after = self._break_after, None
        rec.stall_s, self._stall_s = self._stall_s, 0.0
        stall_after, self._stall_after = self._stall_after, 0
        audio = synthetic_speech_pcm16(text, rate)
        rec.total_bytes = len(audio)
        chunk_bytes = 2 * self._chunk_samples(rate)
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "audio/pcm", "request-id": uuid.uuid4().hex}
        )
        response.enable_chunked_encoding()
        rec.status = 200
        try:
            await asyncio.sleep(self.ttfb_ms / 1000.0 + (0 if stall_after else rec.stall_s))
            await response.prepare(request)  # headers only once audio is ready
            t0 = time.monotonic()
            for offset in range(0, len(audio), chunk_bytes):
                chunk = audio[offset : offset + chunk_bytes]
                if limit is not None:
                    chunk = chunk[: max(0, limit - rec.bytes_sent)]
                if not chunk:
                    break
                await self._pace(t0, offset // 2, rate)
                if stall_after and rec.bytes_sent >= stall_after:
                    stall_after = 0
                    await asyncio.sleep(rec.stall_s)
                await response.write(chunk)
                rec.first_byte_at = rec.first_byte_at or time.monotonic()
                rec.bytes_sent += len(chunk)
            if limit is not None:  # reset the connection once the bytes have left the buffer
                for _ in range(500):
                    if not (request.transport and request.transport.get_write_buffer_size()):
                        break
                    await asyncio.sleep(0.002)
                rec.aborted = True
                if request.transport is not None:
                    request.transport.abort()
                return response
            await response.write_eof()
            rec.completed = True
        except ConnectionError:  # the client went away while we wrote
            rec.cancelled = True
        except asyncio.CancelledError:  # aiohttp cancels the handler when the client goes away
            rec.cancelled = not rec.aborted
            raise
        finally:
            rec.ended_at = time.monotonic()
        return response

    # ------------------------------------------------------------ stream-input WebSocket

    async def _stream_input(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/text-to-speech/{voice_id}/stream-input``: text in, base64 PCM out.

        Query: ``model_id``, ``output_format`` (validated like the HTTP stream, before the
        upgrade). Auth: the ``xi-api-key`` header (wrong → 401 before the upgrade) or, without
        it, ``xi_api_key`` in the first message. The first message also carries
        ``voice_settings`` and ``generation_config.chunk_length_schedule`` (ints 50–500,
        default :data:`DEFAULT_CHUNK_LENGTH_SCHEDULE`); blank text in it is not spoken. Text
        is buffered; a generation starts when the buffer reaches the schedule's current
        threshold (the schedule advances per generation, its last value repeats), on
        ``flush: true``, or at ``{"text": ""}`` (end of input). ``try_trigger_generation`` is
        ignored. Each generation waits ``ttfb_ms``, then sends ``{"audio": <base64 PCM16>,
        "isFinal": null, "normalizedAlignment": a, "alignment": a}`` per ``chunk_ms`` of audio
        (``a`` from :func:`char_alignment`). After end of input and all audio:
        ``{"isFinal": true}`` and close 1000. Bad messages get ``{"message", "error",
        "code": 1008}`` and close 1008.
        """
        session = StreamInputSession(**self._basics(request))
        self.sessions.append(session)
        await self._handshake(session.peer)
        header_key = request.headers.get("xi-api-key")
        try:
            if header_key is not None:
                self._check_key(header_key)
            rate = self._sample_rate(request.query.get("output_format"))
            session.model_id = self._model(request.query.get("model_id"))
            self._check_voice(session.voice_id)
        except _ApiError as exc:
            session.status, session.ended_at = exc.status, time.monotonic()
            return exc.response()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session.status = 101
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        worker = asyncio.create_task(self._generate(ws, session, queue, rate))
        try:
            error = await self._read_text(ws, session, queue, authed=header_key is not None)
            if error is not None:
                session.error, session.close_code = error[0], 1008
                await ws.send_json({"message": error[1], "error": error[0], "code": 1008})
                await ws.close(code=1008, message=error[1].encode()[:120])
            elif session.end_of_input:
                await worker
            else:
                session.cancelled = True  # the client left before the end of input
        except ConnectionError:
            session.cancelled = True
        except asyncio.CancelledError:
            session.cancelled = not session.completed
            raise
        finally:
            worker.cancel()
            session.ended_at = time.monotonic()
        return ws

    async def _read_text(
        self,
        ws: web.WebSocketResponse,
        session: StreamInputSession,
        queue: asyncio.Queue[str | None],
        *,
        authed: bool,
    ) -> tuple[str, str] | None:
        """Queue generations until end of input or a close; ``(code, message)`` to refuse."""
        buffer, queued = "", 0
        schedule = list(DEFAULT_CHUNK_LENGTH_SCHEDULE)
        async for msg in ws:
            try:
                data = json.loads(msg.data) if msg.type is WSMsgType.TEXT else None
            except ValueError:
                data = None
            if not isinstance(data, dict) or not isinstance(data.get("text"), str):
                return "invalid_message", "Messages must be JSON objects with a 'text' string."
            session.messages.append(data)
            text = data["text"]
            if len(session.messages) == 1:
                if not authed and data.get("xi_api_key") != self.api_key:
                    return "invalid_api_key", "Invalid API key"
                config = data.get("generation_config") or {}
                schedule = config.get("chunk_length_schedule", schedule)
                if not isinstance(schedule, list) or not schedule:
                    return "invalid_generation_config", "chunk_length_schedule must be a list."
                if not all(type(v) is int and 50 <= v <= 500 for v in schedule):
                    return "invalid_generation_config", "chunk_length_schedule: ints 50-500."
                session.chunk_length_schedule = schedule
                session.voice_settings = data.get("voice_settings")
                if not text.strip():
                    continue
            if text == "":
                if buffer:
                    queue.put_nowait(buffer)
                queue.put_nowait(None)
                session.end_of_input = True
                return None
            buffer += text
            if data.get("flush") or len(buffer) >= schedule[min(queued, len(schedule) - 1)]:
                queue.put_nowait(buffer)
                buffer, queued = "", queued + 1
        return None

    async def _generate(
        self,
        ws: web.WebSocketResponse,
        session: StreamInputSession,
        queue: asyncio.Queue[str | None],
        rate: int,
    ) -> None:
        step = self._chunk_samples(rate)
        try:
            while (text := await queue.get()) is not None:
                session.generations.append(text)
                await asyncio.sleep(self.ttfb_ms / 1000.0)
                audio = synthetic_speech_pcm16(text, rate)
                total = len(audio) // 2
                t0 = time.monotonic()
                for s0 in range(0, total, step):
                    s1 = min(total, s0 + step)
                    await self._pace(t0, s0, rate)
                    pcm = base64.b64encode(audio[2 * s0 : 2 * s1]).decode("ascii")
                    alignment = char_alignment(text, rate, s0, s1)
                    message = {"audio": pcm, "isFinal": None, "alignment": alignment}
                    await ws.send_json({**message, "normalizedAlignment": alignment})
                    session.first_byte_at = session.first_byte_at or time.monotonic()
                    session.bytes_sent += 2 * (s1 - s0)
            await ws.send_json({"isFinal": True})
            session.completed, session.close_code = True, 1000
            await ws.close(code=1000)
        except ConnectionError:
            session.cancelled = True
