"""A simulated caller's voice on the real caller WebSocket (docs/protocol.md).

The caller's lines are synthesized (eSpeak NG, a voice other than the agent's), resampled to
16 kHz PCM16 and streamed in real time as 20 ms frames, with silence in between like a live
microphone. The agent's audio of each reply is collected frame by frame and transcribed back
with the offline STT, so the simulated caller hears what a caller would hear; the agent's own
text of the reply (from its events) is kept beside it for the analyst. Imports no Django.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import websockets

from parley.agents.voice.audio import resample_pcm16
from parley.agents.voice.messages import INPUT_FRAME_BYTES, INPUT_SAMPLE_RATE_HZ
from parley.agents.voice.stt.base import STT
from parley.agents.voice.stt.pocketsphinx import PocketsphinxSTT
from parley.agents.voice.tts.base import TTS
from parley.agents.voice.tts.espeak import EspeakSettings, EspeakTTS

FRAME_S = 0.020
_SILENCE = bytes(INPUT_FRAME_BYTES)
#: The caller's voice: an eSpeak NG variant unlike the agent's default voice.
CALLER_VOICE = "en-us+f3"


class VoiceCallError(RuntimeError):
    """The call was refused, ended with a fatal error, or a reply did not come in time."""


@dataclass(frozen=True)
class VoiceReply:
    """One reply as the caller got it: ``heard`` (the agent's audio transcribed back),
    ``text`` (what the agent's events say it spoke), the caller turns it answered and the
    reply's audio length."""

    heard: str
    text: str
    turns: tuple[int, ...]
    audio_ms: float
    caller_transcripts: tuple[str, ...] = ()


@dataclass
class _Audio:
    by_turn: dict[int, bytearray] = field(default_factory=dict)
    current_turn: int | None = None


async def transcribe_pcm16(stt: STT, pcm16: bytes) -> str:
    """Transcribe a whole utterance (PCM16 mono 16 kHz) with a streaming STT. Raises
    :class:`~parley.agents.voice.stt.base.STTError` when the engine fails."""
    stream = await stt.open_stream()
    try:
        await stream.speech_started(audio_ms=0.0)
        for i in range(0, len(pcm16), INPUT_FRAME_BYTES):
            await stream.push_audio(pcm16[i : i + INPUT_FRAME_BYTES])
        await stream.finalize()
        async for message in stream:
            if getattr(message, "is_final", False) and getattr(message, "speech_final", True):
                return str(message.text)
        return ""
    finally:
        await stream.aclose()


class VoiceCall:
    """A caller on ``{base_url}/ws/agents/{slug}/call``; an async context manager.

    ``sandbox_token`` is passed as ``?sandbox=`` so the call's tools run in that sandbox.
    Raises :class:`VoiceCallError` (refused call, fatal error event, reply time-out).
    """

    def __init__(
        self,
        *,
        base_url: str,
        agent_slug: str,
        sandbox_token: str | None = None,
        reply_timeout_s: float = 90.0,
        trailing_silence_ms: int = 800,
        caller_tts: TTS | None = None,
        listener_stt: STT | None = None,
    ) -> None:
        url = f"{base_url.rstrip('/')}/ws/agents/{agent_slug}/call"
        self.url = f"{url}?sandbox={quote(sandbox_token)}" if sandbox_token else url
        self.reply_timeout_s = reply_timeout_s
        self.trailing_silence_ms = trailing_silence_ms
        self.caller_tts = caller_tts or EspeakTTS(settings=EspeakSettings(voice=CALLER_VOICE))
        self.listener_stt = listener_stt or PocketsphinxSTT()
        self.events: list[dict[str, Any]] = []
        self.conversation_id: str | None = None
        self.output_sample_rate_hz = 24_000
        self.greeting: VoiceReply | None = None
        self._audio = _Audio()
        self._ws: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self._changed = asyncio.Condition()
        self._closed = False

    # ------------------------------------------------------------ life cycle

    async def __aenter__(self) -> VoiceCall:
        try:
            self._ws = await websockets.connect(self.url, max_size=2**22, open_timeout=30)
        except (OSError, websockets.WebSocketException) as exc:
            raise VoiceCallError(f"cannot connect to {self.url.split('?')[0]}: {exc}") from exc
        self._tasks = [
            asyncio.create_task(self._receive(), name="voice-call-receive"),
            asyncio.create_task(self._microphone(), name="voice-call-microphone"),
        ]
        try:
            await self._wait(lambda: self._first("session.started") is not None, "the session")
            started = self._first("session.started") or {}
            self.conversation_id = started.get("conversation_id")
            self.output_sample_rate_hz = started.get("output", {}).get("sample_rate_hz", 24_000)
            if started.get("greeting"):
                await self._wait(lambda: self._turn_ended(0), "the greeting")
                self.greeting = await self._reply_of((0,))
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc is None and self._ws is not None:
                with contextlib.suppress(websockets.WebSocketException):
                    await self._ws.send(json.dumps({"type": "hangup"}))
                with contextlib.suppress(VoiceCallError):
                    await self._wait(lambda: self._first("call.ended") is not None, "call end")
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.caller_tts.aclose()

    # ------------------------------------------------------------ speaking

    async def say(self, text: str) -> VoiceReply:
        """Speak one line and wait for the agent's whole reply to it; returns it transcribed."""
        pcm = b"".join([chunk async for chunk in self.caller_tts.synthesize(text)])
        pcm16k = resample_pcm16(
            pcm, from_hz=self.caller_tts.sample_rate_hz, to_hz=INPUT_SAMPLE_RATE_HZ
        )
        before = self._caller_turns()
        for i in range(0, len(pcm16k), INPUT_FRAME_BYTES):
            frame = pcm16k[i : i + INPUT_FRAME_BYTES]
            self._outgoing.put_nowait(frame + bytes(INPUT_FRAME_BYTES - len(frame)))
        for _ in range(self.trailing_silence_ms // 20):
            self._outgoing.put_nowait(_SILENCE)

        def replied() -> bool:
            new = self._caller_turns() - before
            return bool(new) and all(self._turn_ended(t) for t in new) and self._outgoing.empty()

        speech_s = len(pcm16k) / 2 / INPUT_SAMPLE_RATE_HZ
        await self._wait(replied, "the agent's reply", extra_s=speech_s)
        return await self._reply_of(tuple(sorted(self._caller_turns() - before)))

    async def _reply_of(self, turns: tuple[int, ...]) -> VoiceReply:
        audio = b"".join(bytes(self._audio.by_turn.get(t, b"")) for t in turns)
        pcm16k = resample_pcm16(
            audio, from_hz=self.output_sample_rate_hz, to_hz=INPUT_SAMPLE_RATE_HZ
        )
        heard = await transcribe_pcm16(self.listener_stt, pcm16k) if pcm16k else ""
        ended = [self._turn_ended(t) for t in turns]
        return VoiceReply(
            heard=heard,
            text=" ".join(e.get("spoken_text", "") for e in ended if e).strip(),
            turns=turns,
            audio_ms=len(audio) / 2 / self.output_sample_rate_hz * 1000,
            caller_transcripts=tuple(e.get("user_text", "") for e in ended if e),
        )

    # ------------------------------------------------------------ transport

    async def _microphone(self) -> None:
        """Send one frame every 20 ms: queued speech, else silence (a live microphone)."""
        next_at = time.monotonic()
        while not self._closed:
            frame = self._outgoing.get_nowait() if not self._outgoing.empty() else _SILENCE
            try:
                await self._ws.send(frame)
            except websockets.WebSocketException:
                return
            next_at += FRAME_S
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_at = time.monotonic()

    async def _receive(self) -> None:
        try:
            async for message in self._ws:
                if isinstance(message, bytes):
                    turn = self._audio.current_turn
                    if turn is not None:
                        self._audio.by_turn.setdefault(turn, bytearray()).extend(message)
                    continue
                event = json.loads(message)
                if event.get("type") == "agent.speaking":
                    self._audio.current_turn = event.get("turn")
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        except websockets.WebSocketException:
            pass
        finally:
            async with self._changed:
                self._closed = True
                self._changed.notify_all()

    async def _wait(self, predicate: Any, what: str, *, extra_s: float = 0.0) -> None:
        timeout_s = self.reply_timeout_s + extra_s

        def ready() -> bool:
            return self._fatal() is not None or predicate() or self._closed

        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(ready), timeout_s)
        except TimeoutError as exc:
            raise VoiceCallError(f"timed out after {timeout_s:.0f} s waiting for {what}") from exc
        fatal = self._fatal()
        if fatal is not None:
            raise VoiceCallError(f"server error: {fatal.get('code')}: {fatal.get('message')}")
        if not predicate():
            raise VoiceCallError(f"the connection closed while waiting for {what}")

    def _first(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("type") == kind), None)

    def _fatal(self) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("type") == "error" and e.get("fatal")), None)

    def _turn_ended(self, turn: int) -> dict[str, Any] | None:
        return next(
            (e for e in self.events if e.get("type") == "turn.ended" and e.get("turn") == turn),
            None,
        )

    def _caller_turns(self) -> set[int]:
        return {e["turn"] for e in self.events if e.get("type") == "vad.speech_start"}
