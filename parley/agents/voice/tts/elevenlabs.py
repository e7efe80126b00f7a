"""ElevenLabs streaming TTS over HTTP through the official ``elevenlabs`` SDK.

Each chunk of a reply (a sentence from the chunker) is one
``AsyncElevenLabs.text_to_speech.stream`` request: ``POST /v1/text-to-speech/{voice}/stream``
with the agent's model and voice, ``output_format=pcm_24000`` (PCM16 mono at the platform's
24 kHz output rate: no decoding, no resampling) and the latency optimisation level. The SDK
client and its ``httpx.AsyncClient`` live as long as the call, so the TCP + TLS connection is
reused between chunks and turns; :meth:`ElevenLabsTTS.warm` opens it before the first reply
(``GET /v1/models``) so the first sentence does not pay the handshake.

Closing the async generator (barge-in) leaves the SDK's ``async with`` around the response,
which closes the HTTP response and its connection at once: ElevenLabs stops generating.
Every failure (refused key, unknown voice or model, HTTP error, connection lost mid-stream,
no first byte within ``timeout_s``) raises :class:`TTSError`; the session then speaks the
rest of the reply with the offline fallback engine.
"""

from __future__ import annotations

import logging
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


@dataclass(frozen=True, slots=True, kw_only=True)
class ElevenLabsSettings:
    """Per-agent ElevenLabs options.

    ``voice_id``: an ElevenLabs voice id. ``model_id``: ``eleven_turbo_v2_5`` (default: the
    low-latency model) or ``eleven_flash_v2_5``, ``eleven_multilingual_v2``...
    ``optimize_streaming_latency``: ElevenLabs' 0–4 latency level (0 = best quality, 4 = max
    latency optimisations incl. no text normaliser). ``timeout_s``: connect and per-read
    timeout. ``url``: API base, ``https://api.elevenlabs.io`` or a proxy / local fake.
    """

    api_key: str = field(repr=False)
    voice_id: str
    url: str = ELEVENLABS_URL
    model_id: str = "eleven_turbo_v2_5"
    optimize_streaming_latency: int | None = 3
    stability: float | None = None
    similarity_boost: float | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("ElevenLabs needs an API key")
        if not self.voice_id:
            raise ValueError("voice_id is required")
        level = self.optimize_streaming_latency
        if level is not None and not 0 <= level <= 4:
            raise ValueError("optimize_streaming_latency must be 0..4")

    @property
    def output_format(self) -> str:
        return f"pcm_{OUTPUT_SAMPLE_RATE_HZ}"


class ElevenLabsTTS(TTS):
    """:class:`TTS` over ElevenLabs HTTP streaming (module docstring). One per call."""

    name = "elevenlabs"
    sample_rate_hz = OUTPUT_SAMPLE_RATE_HZ

    def __init__(self, settings: ElevenLabsSettings) -> None:
        from elevenlabs.client import AsyncElevenLabs

        self.settings = settings
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_s),
            limits=httpx.Limits(max_keepalive_connections=2, keepalive_expiry=60.0),
        )
        self._client = AsyncElevenLabs(
            api_key=settings.api_key,
            base_url=settings.url.rstrip("/"),
            timeout=settings.timeout_s,
            httpx_client=self._http,
        )

    async def warm(self) -> None:
        """Open the HTTP connection now (``GET /v1/models``). Raises :class:`TTSError`."""
        try:
            await self._client.models.list()
        except Exception as exc:
            raise TTSError(self._message(exc, "warming the connection")) from exc

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
        carry = b""
        try:
            stream = self._client.text_to_speech.stream(settings.voice_id, **kwargs)
            try:
                async for chunk in stream:
                    data = carry + chunk
                    cut = len(data) - len(data) % 2
                    carry = data[cut:]
                    if cut:
                        yield data[:cut]
            finally:
                await stream.aclose()
        except Exception as exc:
            raise TTSError(self._message(exc, f"speaking {len(text)} characters")) from exc

    async def aclose(self) -> None:
        """Close the kept-warm HTTP connection."""
        await self._http.aclose()

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
