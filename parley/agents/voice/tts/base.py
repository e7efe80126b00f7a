"""Streaming text-to-speech interface, shaped like ElevenLabs' HTTP streaming endpoint.

``synthesize(text)`` yields PCM16 mono chunks at :attr:`TTS.sample_rate_hz` (24 kHz for
every Parley engine) as soon as they are produced. Cancelling the consuming task, or closing
the async generator, stops synthesis at once (barge-in) and releases the engine's resources.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

from parley.agents.voice.messages import OUTPUT_SAMPLE_RATE_HZ


class TTSError(RuntimeError):
    """The TTS engine failed to synthesize (missing binary, vendor error, dropped stream)."""


class TTS(abc.ABC):
    """A text-to-speech provider."""

    #: Provider name recorded with each turn (``"espeak-ng"``, ``"elevenlabs"``).
    name: str = "tts"
    sample_rate_hz: int = OUTPUT_SAMPLE_RATE_HZ

    @abc.abstractmethod
    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Speak ``text``: PCM16 mono chunks at ``sample_rate_hz``, each an even byte count.

        Raises :class:`TTSError` (from the iterator) when synthesis fails.
        """

    async def warm(self) -> None:  # noqa: B027 - optional hook
        """Open connections before the first reply (called once at call start).

        Raises :class:`TTSError`; the session reports it and carries on.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections kept warm between turns."""
