"""ElevenLabs streaming TTS over HTTP through the official ``elevenlabs`` SDK.

Each chunk of a reply (a sentence from the chunker) is one
``AsyncElevenLabs.text_to_speech.stream`` request: ``POST /v1/text-to-speech/{voice}/stream``
with the agent's model and voice, ``output_format=pcm_24000`` (PCM16 mono at the platform's
24 kHz output rate: no decoding, no resampling) and the latency optimisation level. The SDK
client and its ``httpx.AsyncClient`` live as long as the call, so the TCP + TLS connection is
reused between chunks and turns; :meth:`ElevenLabsTTS.warm` opens it before the first reply
(``GET /v1/models``) so the first sentence does not pay the handshake.

Kept warm between turns: a caller may think for a minute before the next reply is due, and an
idle connection dies on either side — httpx drops pooled connections after 5 s idle by
default, and the vendor's front end or a NAT / egress proxy on the way closes idle TCP
connections after its own timeout (ElevenLabs documents none for its HTTP API; common proxy
defaults are 60-350 s). So the pool keeps idle connections for ``keepalive_expiry_s``, and
while nothing is being synthesized a cheap ``GET /v1/models`` goes out every
``keepalive_interval_s`` of idleness (:meth:`ElevenLabsTTS._keep_warm`), one background task
per call, cancelled by :meth:`ElevenLabsTTS.aclose`. A synthesis that starts while such a
request is in flight waits for it (at most ``timeout_s``) and reuses its connection instead of
opening a cold one. If a kept connection turns out to be dead anyway (the server closed it as
the request went out: ``RemoteProtocolError`` / ``ReadError`` / ``WriteError`` before any
audio), the request is retried once on a fresh connection.

Closing the async generator (barge-in) leaves the SDK's ``async with`` around the response,
which closes the HTTP response and its connection at once: ElevenLabs stops generating.
Every failure (refused key, unknown voice or model, HTTP error, connection lost mid-stream,
no first audio byte within ``first_byte_timeout_ms``, a gap between chunks over
``stall_timeout_ms``) raises :class:`TTSError`; the session then speaks the
rest of the reply with the offline fallback engine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from parley.agents.voice.messages import OUTPUT_SAMPLE_RATE_HZ
from parley.agents.voice.tts.base import TTS, TTSError

logger = logging.getLogger(__name__)

__all__ = ["ELEVENLABS_URL", "ElevenLabsSettings", "ElevenLabsTTS"]

#: ElevenLabs' own API base URL (the SDK appends ``/v1/...``).
ELEVENLABS_URL = "https://api.elevenlabs.io"
#: Transport errors that mean the kept-alive connection was dead when a request went out on it.
_STALE_CONNECTION_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


@dataclass(frozen=True, slots=True, kw_only=True)
class ElevenLabsSettings:
    """Per-agent ElevenLabs options.

    ``voice_id``: an ElevenLabs voice id. ``model_id``: ``eleven_turbo_v2_5`` (default: the
    low-latency model) or ``eleven_flash_v2_5``, ``eleven_multilingual_v2``...
    ``optimize_streaming_latency``: ElevenLabs' 0–4 latency level (0 = best quality, 4 = max
    latency optimisations incl. no text normaliser). ``timeout_s``: connect and per-read
    timeout. ``url``: API base, ``https://api.elevenlabs.io`` or a proxy / local fake.
    ``first_byte_timeout_ms=2000``: the sentence fails when its first audio byte takes longer
    (ElevenLabs' turbo and flash models answer in a few hundred ms; the caller hears silence
    meanwhile); ``stall_timeout_ms=2000``: the same for a gap between two audio chunks. The
    session then speaks the reply with the offline engine.

    Keeping the connection warm between turns (module docstring):
    ``keepalive_interval_s=15``: while idle, one ``GET /v1/models`` per this many seconds
    without a request, well under the idle timeouts of common proxies and NAT gateways
    (60 s and more); ``None`` sends none. ``keepalive_expiry_s=300``: how long the client's
    pool keeps an idle connection (httpx's default is 5 s, shorter than a caller's pause);
    must exceed the interval.

    Raises ``ValueError`` for a missing key or voice, a latency level outside 0..4, or
    keep-alive times that are not positive or an expiry not above the interval.
    """

    api_key: str = field(repr=False)
    voice_id: str
    url: str = ELEVENLABS_URL
    model_id: str = "eleven_turbo_v2_5"
    optimize_streaming_latency: int | None = 3
    stability: float | None = None
    similarity_boost: float | None = None
    timeout_s: float = 10.0
    first_byte_timeout_ms: float = 2000.0
    stall_timeout_ms: float = 2000.0
    keepalive_interval_s: float | None = 15.0
    keepalive_expiry_s: float = 300.0

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("ElevenLabs needs an API key")
        if not self.voice_id:
            raise ValueError("voice_id is required")
        level = self.optimize_streaming_latency
        if level is not None and not 0 <= level <= 4:
            raise ValueError("optimize_streaming_latency must be 0..4")
        interval = self.keepalive_interval_s
        if self.keepalive_expiry_s <= 0 or (interval is not None and interval <= 0):
            raise ValueError("keepalive_interval_s and keepalive_expiry_s must be > 0")
        if interval is not None and self.keepalive_expiry_s <= interval:
            raise ValueError("keepalive_expiry_s must exceed keepalive_interval_s")
        if self.first_byte_timeout_ms <= 0 or self.stall_timeout_ms <= 0:
            raise ValueError("first_byte_timeout_ms and stall_timeout_ms must be > 0")

    @property
    def output_format(self) -> str:
        return f"pcm_{OUTPUT_SAMPLE_RATE_HZ}"


class ElevenLabsTTS(TTS):
    """:class:`TTS` over ElevenLabs HTTP streaming (module docstring). One per call.

    ``keepalive_requests``: keep-warm requests sent so far (``keepalive_failures`` of them
    failed; a failed one only means the next request connects anew).
    """

    name = "elevenlabs"
    sample_rate_hz = OUTPUT_SAMPLE_RATE_HZ

    def __init__(self, settings: ElevenLabsSettings) -> None:
        from elevenlabs.client import AsyncElevenLabs

        self.settings = settings
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_s),
            limits=httpx.Limits(
                max_keepalive_connections=2, keepalive_expiry=settings.keepalive_expiry_s
            ),
        )
        self._client = AsyncElevenLabs(
            api_key=settings.api_key,
            base_url=settings.url.rstrip("/"),
            timeout=settings.timeout_s,
            httpx_client=self._http,
        )
        self._last_used = time.monotonic()  # when a request last ended (monotonic s)
        self._busy = 0  # synthesis requests in flight
        self._keeper: asyncio.Task[None] | None = None  # the keep-warm loop
        self._ping: asyncio.Task[None] | None = None  # its request in flight
        self._closed = False
        self.keepalive_requests = 0
        self.keepalive_failures = 0

    async def warm(self) -> None:
        """Open the HTTP connection now (``GET /v1/models``) and start keeping it warm.
        Raises :class:`TTSError`."""
        self._keep_warm()
        try:
            await self._client.models.list()
        except Exception as exc:
            raise TTSError(self._message(exc, "warming the connection")) from exc
        finally:
            self._last_used = time.monotonic()

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:  # type: ignore[override]
        """PCM16 mono 24 kHz chunks of ``text`` (even byte counts). Raises :class:`TTSError`."""
        settings = self.settings
        kwargs: dict[str, Any] = {
            "text": text,
            "model_id": settings.model_id,
            "output_format": settings.output_format,
        }
        if settings.optimize_streaming_latency is not None:
            kwargs["optimize_streaming_latency"] = settings.optimize_streaming_latency
        if settings.stability is not None or settings.similarity_boost is not None:
            from elevenlabs import VoiceSettings

            kwargs["voice_settings"] = VoiceSettings(
                stability=settings.stability, similarity_boost=settings.similarity_boost
            )
        self._keep_warm()
        ping = self._ping
        if ping is not None and not ping.done():
            # Its connection is the warm one: wait rather than open a cold second one.
            await asyncio.wait({ping}, timeout=settings.timeout_s)
        self._busy += 1
        try:
            for attempt in (1, 2):
                sent_audio = False
                carry = b""
                try:
                    stream = self._client.text_to_speech.stream(settings.voice_id, **kwargs)
                    try:
                        while True:
                            # The caller is waiting: no first byte within first_byte_timeout_ms
                            # or a stall of stall_timeout_ms between chunks fails this sentence
                            # (the session goes on with the offline voice).
                            limit_ms = (
                                settings.stall_timeout_ms
                                if sent_audio or carry
                                else settings.first_byte_timeout_ms
                            )
                            try:
                                async with asyncio.timeout(limit_ms / 1000):
                                    chunk = await anext(stream)
                            except StopAsyncIteration:
                                break
                            except TimeoutError:
                                what = "audio stalled" if sent_audio else "no first audio byte"
                                raise TTSError(
                                    f"ElevenLabs at {settings.url}: {what} within "
                                    f"{limit_ms:g} ms while speaking {len(text)} characters"
                                ) from None
                            data = carry + chunk
                            cut = len(data) - len(data) % 2
                            carry = data[cut:]
                            if cut:
                                sent_audio = True
                                yield data[:cut]
                    finally:
                        await stream.aclose()
                    return
                except _STALE_CONNECTION_ERRORS as exc:
                    if sent_audio or attempt == 2:
                        raise TTSError(
                            self._message(exc, f"speaking {len(text)} characters")
                        ) from exc
                    logger.info("ElevenLabs connection was dead (%s): retrying on a new one", exc)
                except Exception as exc:
                    raise TTSError(self._message(exc, f"speaking {len(text)} characters")) from exc
        finally:
            self._busy -= 1
            self._last_used = time.monotonic()

    async def aclose(self) -> None:
        """Stop keeping the connection warm and close it. Idempotent."""
        self._closed = True
        tasks = [t for t in (self._keeper, self._ping) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._keeper = self._ping = None
        await self._http.aclose()

    # ------------------------------------------------------------------ keeping warm

    def _keep_warm(self) -> None:
        """Start the keep-warm loop once per call (from a coroutine: a loop is running)."""
        if self._keeper is None and not self._closed and self.settings.keepalive_interval_s:
            self._keeper = asyncio.get_running_loop().create_task(
                self._keep_warm_loop(self.settings.keepalive_interval_s),
                name="elevenlabs-keep-warm",
            )

    async def _keep_warm_loop(self, interval_s: float) -> None:
        """Whenever no request has run for ``interval_s``, send a keep-warm request."""
        while True:
            due = self._last_used + interval_s
            now = time.monotonic()
            if self._busy or now < due:
                await asyncio.sleep(interval_s if self._busy else due - now)
                continue
            self._ping = asyncio.get_running_loop().create_task(
                self._keep_warm_request(), name="elevenlabs-keep-warm-request"
            )
            try:
                await self._ping
            finally:
                self._ping = None

    async def _keep_warm_request(self) -> None:
        """``GET /v1/models`` on the pooled connection (the body is read, not parsed). Never
        raises: a failure is logged and the next request connects anew."""
        self.keepalive_requests += 1
        url = f"{self.settings.url.rstrip('/')}/v1/models"
        try:
            response = await self._http.get(url, headers={"xi-api-key": self.settings.api_key})
            if response.status_code >= 400:
                self.keepalive_failures += 1
                logger.info("ElevenLabs keep-warm request answered HTTP %s", response.status_code)
        except httpx.HTTPError as exc:
            self.keepalive_failures += 1
            logger.info("ElevenLabs keep-warm request failed: %s: %s", type(exc).__name__, exc)
        finally:
            self._last_used = time.monotonic()

    def _message(self, exc: Exception, doing: str) -> str:
        from elevenlabs.core.api_error import ApiError

        where = f"ElevenLabs at {self.settings.url}"
        if isinstance(exc, ApiError):
            detail = _detail(exc.body)
            if exc.status_code == 401:
                return f"{where} refused the API key (HTTP 401): {detail}"
            return f"{where} answered HTTP {exc.status_code} while {doing}: {detail}"
        if isinstance(exc, httpx.TimeoutException):
            return f"{where} timed out while {doing} (no data for {self.settings.timeout_s:g} s)"
        if isinstance(exc, httpx.HTTPError):
            return f"{where} failed while {doing}: {type(exc).__name__}: {exc}"
        return f"{where} failed while {doing}: {type(exc).__name__}: {exc}"


def _detail(body: Any) -> str:
    """The human part of an ElevenLabs error body (``{"detail": {"message": ...}}``)."""
    if isinstance(body, dict):
        detail = body.get("detail", body)
        if isinstance(detail, dict):
            return str(detail.get("message") or detail.get("status") or detail)
        return str(detail)
    return str(body)
