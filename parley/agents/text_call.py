"""A text-only call placed in-process: the caller's lines go straight into the agent loop.

The same :class:`~parley.agents.voice.session.CallSession`, tool runner (Celery tasks,
``ToolCall`` rows) and event recorder (``Turn`` and ``CallEvent`` rows, the JSONL transcript
and latency report at hang-up) as a WebSocket call, with VAD, STT and TTS left out
(``SessionSettings.text_only``). Evaluation runs in text mode use it.

Usage::

    async with TextCall(agent_slug="hospital-receptionist") as call:
        greeting = call.greeting          # "" when the agent has none
        reply = await call.say("I need to cancel my appointment")
        reply.text, reply.turn, reply.events
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async

from parley.agents.providers import providers_build
from parley.agents.runtime import EventRecorder, call_close, call_open, call_session_build
from parley.agents.voice.session import CallSession
from parley.conversations.models import Conversation


class TextCallError(RuntimeError):
    """The call could not start, or a reply did not finish in time."""


@dataclass(frozen=True)
class AgentReply:
    """The agent's answer to one caller line: what it said (``text``) and the turn's events."""

    turn: int
    text: str
    status: str
    events: list[dict[str, Any]] = field(default_factory=list)


class TextCall:
    """One in-process text call; an async context manager (hangs up on exit).

    ``sandbox_token`` (:func:`parley.tools.environments.environment_call_token`) runs the
    call's tools in that sandbox. Raises ``ApplicationError`` on entry when the agent cannot
    take the call (same codes as the WebSocket), :class:`TextCallError` when a reply takes
    longer than ``reply_timeout_s``.
    """

    def __init__(
        self,
        *,
        agent_slug: str,
        sandbox_token: str | None = None,
        user: Any = None,
        client: dict[str, Any] | None = None,
        reply_timeout_s: float = 120.0,
    ) -> None:
        self.agent_slug = agent_slug
        self.sandbox_token = sandbox_token
        self.user = user
        self.client = client or {"address": "in-process", "user_agent": "parley text call"}
        self.reply_timeout_s = reply_timeout_s
        self.conversation_id: uuid.UUID | None = None
        self.events: list[dict[str, Any]] = []
        self.greeting = ""
        self._session: CallSession | None = None
        self._recorder: EventRecorder | None = None
        self._changed = asyncio.Condition()
        self._ended = False

    async def __aenter__(self) -> TextCall:
        opened = await database_sync_to_async(call_open)(
            slug=self.agent_slug,
            user=self.user,
            client=self.client,
            sandbox_token=self.sandbox_token,
            text_only=True,
        )
        self.conversation_id = opened.conversation_id
        config = opened.config
        try:
            providers = await providers_build(config, text_only=True)
            self._recorder = EventRecorder(
                send=self._receive,
                conversation_id=opened.conversation_id,
                started_at=opened.started_at,
            )
            self._session = call_session_build(
                opened, providers, recorder=self._recorder, audio=self, text_only=True
            )
            await self._session.start()
            if config.greeting:
                self.greeting = (await self._turn_done(0)).text
        except BaseException as exc:
            await self._end(status=Conversation.Status.ERROR, reason=f"start failed: {exc}")
            raise
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            await self._end(status=Conversation.Status.ENDED, reason="caller hung up")
        else:
            await self._end(status=Conversation.Status.ERROR, reason=f"caller failed: {exc}")

    async def say(self, text: str) -> AgentReply:
        """Send one caller line and wait for the agent's whole reply (tools included).

        Raises ``ValueError`` for empty or overlong text, :class:`TextCallError` on time-out.
        """
        if self._session is None or self._ended:
            raise TextCallError("the call is not open")
        turn = await self._session.push_text(text)
        return await self._turn_done(turn)

    async def _turn_done(self, turn: int) -> AgentReply:
        def ended() -> dict[str, Any] | None:
            return next(
                (e for e in self.events if e["type"] == "turn.ended" and e["turn"] == turn), None
            )

        try:
            async with self._changed:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: ended() is not None), self.reply_timeout_s
                )
        except TimeoutError as exc:
            raise TextCallError(
                f"turn {turn} did not end within {self.reply_timeout_s:.0f} s"
            ) from exc
        event = ended()
        assert event is not None
        return AgentReply(
            turn=turn,
            text=event.get("spoken_text", ""),
            status=event.get("status", ""),
            events=[e for e in self.events if e["turn"] == turn],
        )

    async def _receive(self, event: dict[str, Any]) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def send_audio(self, pcm16: bytes) -> None:  # AudioSink: a text call has no audio
        return None

    async def _end(self, *, status: str, reason: str) -> None:
        if self._ended:
            return
        self._ended = True
        await call_close(
            session=self._session,
            recorder=self._recorder,
            conversation_id=self.conversation_id,
            status=status,
            reason=reason,
        )
