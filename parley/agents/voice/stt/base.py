"""Streaming speech-to-text interface, shaped like Deepgram's live WebSocket API.

A :class:`STT` opens one :class:`STTStream` per call. The session pushes every caller frame
into the stream and reads :class:`~parley.agents.voice.messages.Transcript` messages from it:
partials (``is_final=False``), finals (``is_final=True``) and ``speech_final`` at end of
speech. ``finalize()`` is Deepgram's ``Finalize`` message: flush what has been heard as a
final transcript now, because the platform decided that the turn ended.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

from parley.agents.voice.messages import STTMessage


class STTError(RuntimeError):
    """The STT engine failed (connection lost, bad audio, engine crash)."""


class STTStream(abc.ABC):
    """One live recognition stream (one per call)."""

    @abc.abstractmethod
    async def push_audio(self, pcm16: bytes) -> None:
        """Queue caller audio: PCM16 mono 16 kHz, any whole number of samples. Never blocks."""

    async def speech_started(self, *, audio_ms: float) -> None:  # noqa: B027 - optional hook
        """The platform's VAD heard speech start at ``audio_ms``.

        Engines with their own endpointing (Deepgram) ignore it; VAD-gated engines (the
        offline one) start an utterance here, with their pre-roll.
        """

    @abc.abstractmethod
    async def finalize(self) -> None:
        """End of turn decided by the platform: emit the final transcript of what was heard.

        The final arrives through the iterator with ``is_final=True, speech_final=True``
        (with empty text if nothing was recognised).
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the stream (Deepgram ``CloseStream``); the iterator then ends."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[STTMessage]:
        """Transcripts (and :class:`~parley.agents.voice.messages.STTNotice` for the call
        record) in the order the engine produced them. Raises :class:`STTError` when the
        engine fails for good (after its own reconnection attempts)."""


class STT(abc.ABC):
    """A speech-to-text provider."""

    #: Provider name recorded with each turn (``"pocketsphinx"``, ``"deepgram"``).
    name: str = "stt"

    @abc.abstractmethod
    async def open_stream(self) -> STTStream:
        """Open a live stream. Raises :class:`STTError` if the engine cannot start."""
