"""The caller WebSocket ``/ws/agents/<slug>/call`` (protocol: docs/protocol.md).

Transport only: decode frames and control messages, hand them to the :class:`CallSession`,
encode its events and audio. Database work goes through small ``database_sync_to_async``
helpers; events are written by a background recorder so persistence never delays audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from parley.agents.providers import (
    CallConfig,
    call_config_build,
    provider_keys_check,
    providers_build,
)
from parley.agents.selectors import agent_get_for_call, prompt_active
from parley.agents.voice.messages import SessionEvent, ToolCallRequest, ToolResult
from parley.agents.voice.session import CallSession, SessionSettings
from parley.agents.voice.stt.base import STTError
from parley.conversations.models import Conversation
from parley.conversations.services import call_events_record, conversation_end, conversation_start
from parley.platform.errors import ApplicationError
from parley.tools.services import tool_call_start
from parley.tools.tasks import tool_call_run

logger = logging.getLogger(__name__)

#: WebSocket close codes (4000–4999 are the application's): see docs/protocol.md.
CLOSE_AGENT_NOT_FOUND = 4404
CLOSE_AGENT_UNAVAILABLE = 4403
CLOSE_SERVER_ERROR = 4500


@database_sync_to_async
def _call_open(
    *, slug: str, user: Any, client: dict[str, Any], overrides: dict[str, str]
) -> tuple[CallConfig, uuid.UUID, dt.datetime]:
    agent = agent_get_for_call(slug=slug, user=user)
    prompt = prompt_active(agent=agent)
    if overrides and not (
        settings.PARLEY_PROVIDER_OVERRIDES or getattr(user, "is_staff", False)
    ):
        raise ApplicationError(
            "this server does not let calls choose their providers",
            extra={"code": "overrides_not_allowed"},
        )
    config = call_config_build(
        agent=agent,
        prompt=prompt,
        stt_provider=overrides.get("stt"),
        tts_provider=overrides.get("tts"),
    )
    provider_keys_check(config)  # refuse now, with a clear message, not mid-call
    conversation = conversation_start(
        agent=agent,
        prompt_version=prompt,
        providers={
            "stt": config.stt_provider,
            "tts": config.tts_provider,
            "llm": f"{config.pool_kind}:{config.llm_model}",
        },
        client=client,
    )
    return config, conversation.id, conversation.started_at


def _provider_overrides(scope: dict[str, Any]) -> dict[str, str]:
    """``?stt=...&tts=...`` of the caller socket's URL (validated by ``call_config_build``)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {key: query[key][-1] for key in ("stt", "tts") if query.get(key)}


class EventRecorder:
    """Sends each event to the caller at once and persists it in order in the background."""

    def __init__(
        self, consumer: CallConsumer, *, conversation_id: uuid.UUID, started_at: dt.datetime
    ):
        self.consumer = consumer
        self.conversation_id = conversation_id
        self.started_at = started_at
        self._seq = 0
        self.call_ended: dict[str, Any] | None = None
        self._queue: asyncio.Queue[tuple[int, dict[str, Any]] | None] = asyncio.Queue()
        self._writer = asyncio.get_running_loop().create_task(self._write(), name="event-writer")

    async def emit(self, event: SessionEvent) -> None:
        payload = event.as_json()
        if event.type in ("session.started", "call.ended"):
            payload["conversation_id"] = str(self.conversation_id)
        if event.type == "call.ended":
            # Sent by the consumer once the whole call is persisted: a client that hangs up
            # on `call.ended` must find every turn in the database.
            self.call_ended = payload
        else:
            await self.consumer.send_json_safe(payload)
        self._seq += 1
        self._queue.put_nowait((self._seq, payload))

    async def _write(self) -> None:
        done = False
        while not done:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if batch[-1] is None:
                done = True
            items = [item for item in batch if item is not None]
            if items:
                try:
                    await database_sync_to_async(call_events_record)(
                        conversation_id=self.conversation_id,
                        started_at=self.started_at,
                        events=items,
                    )
                except Exception:  # the call goes on; the log says what was lost
                    logger.exception("could not record %d events", len(items))

    async def aclose(self) -> None:
        """Flush every queued event to the database."""
        self._queue.put_nowait(None)
        await self._writer


class CeleryToolRunner:
    """Runs tool calls as Celery tasks, recording a ToolCall row before and after."""

    def __init__(
        self,
        *,
        conversation_id: uuid.UUID,
        scenario: str,
        allowed: tuple[str, ...],
        timeout_s: float,
    ) -> None:
        self.conversation_id = conversation_id
        self.scenario = scenario
        self.allowed = list(allowed)
        self.timeout_s = timeout_s

    async def run(self, *, turn: int, call: ToolCallRequest) -> ToolResult:
        started = time.monotonic()
        record = await database_sync_to_async(tool_call_start)(
            conversation_id=self.conversation_id,
            turn_index=turn,
            call_id=call.id,
            name=call.name,
            arguments_raw=call.arguments,
            scenario=self.scenario,
        )
        try:
            # The broker publish and the wait for the result block: never on the event loop,
            # and not on the shared sync thread either (a slow tool must not stall other calls).
            outcome = await database_sync_to_async(self._execute, thread_sensitive=False)(record.id)
            result = ToolResult(ok=bool(outcome["ok"]), content=str(outcome["content"]))
        except Exception as exc:
            logger.exception("tool call %s failed to run", call.id)
            result = ToolResult(ok=False, content=f"Error: the tool could not be run ({exc})")
        return ToolResult(
            ok=result.ok, content=result.content, duration_ms=(time.monotonic() - started) * 1000
        )

    def _execute(self, tool_call_id: int) -> dict[str, Any]:
        async_result = tool_call_run.delay(tool_call_id, self.scenario, self.allowed)
        return async_result.get(timeout=self.timeout_s, disable_sync_subtasks=False)


class CallConsumer(AsyncWebsocketConsumer):
    """One caller connection = one Conversation = one CallSession."""

    session: CallSession | None = None
    recorder: EventRecorder | None = None
    conversation_id: uuid.UUID | None = None
    _open = False
    _ended = False

    async def connect(self) -> None:
        await self.accept()
        self._open = True
        slug = self.scope["url_route"]["kwargs"]["slug"]
        client = {
            "address": (self.scope.get("client") or ["", 0])[0],
            "user_agent": _header(self.scope, b"user-agent"),
        }
        try:
            config, self.conversation_id, started_at = await _call_open(
                slug=slug,
                user=self.scope.get("user"),
                client=client,
                overrides=_provider_overrides(self.scope),
            )
            providers = await providers_build(config)
        except ApplicationError as exc:
            code = exc.extra.get("code", "call_refused")
            await self.send_json_safe(
                {
                    "type": "error",
                    "turn": 0,
                    "t_ms": 0,
                    "code": code,
                    "message": exc.message,
                    "fatal": True,
                }
            )
            close = CLOSE_AGENT_NOT_FOUND if code == "agent_not_found" else CLOSE_AGENT_UNAVAILABLE
            await self.close(code=close)
            return
        self.recorder = EventRecorder(
            self, conversation_id=self.conversation_id, started_at=started_at
        )
        self.session = CallSession(
            vad=providers.vad,
            stt=providers.stt,
            llm=providers.llm,
            tts=providers.tts,
            fallback_tts=providers.fallback_tts,
            tools=CeleryToolRunner(
                conversation_id=self.conversation_id,
                scenario=config.scenario,
                allowed=config.tool_names,
                timeout_s=settings.PARLEY_TOOL_TIMEOUT_S,
            ),
            events=self.recorder,
            audio=self,
            settings=SessionSettings(
                system_prompt=config.system_prompt,
                tools=config.tools,
                greeting=config.greeting,
                max_tool_steps=config.max_tool_steps,
                stt_final_timeout_ms=settings.PARLEY_STT_FINAL_TIMEOUT_MS,
                audio_lead_ms=settings.PARLEY_AUDIO_LEAD_MS,
            ),
        )
        try:
            await self.session.start()
        except STTError as exc:
            # The speech-to-text vendor refused or is unreachable: say so, then hang up.
            await self.send_json_safe(
                {
                    "type": "error",
                    "turn": 0,
                    "t_ms": 0,
                    "code": "stt_unavailable",
                    "message": str(exc),
                    "fatal": True,
                }
            )
            await self._end(status=Conversation.Status.ERROR, reason=f"start failed: {exc}")
            await self.close(code=CLOSE_SERVER_ERROR)
        except Exception as exc:
            logger.exception("call could not start")
            await self._end(status=Conversation.Status.ERROR, reason=f"start failed: {exc}")
            await self.close(code=CLOSE_SERVER_ERROR)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session is None or self._ended:
            return
        if bytes_data is not None:
            await self._receive_audio(bytes_data)
            return
        try:
            message = json.loads(text_data or "")
        except ValueError:
            await self.session.emit_error(code="bad_json", message="control messages must be JSON")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "hangup":
            await self._end(status=Conversation.Status.ENDED, reason="caller hung up")
            await self.close(code=1000)
        elif kind == "ping":
            await self.send_json_safe({"type": "pong", "id": message.get("id")})
        else:
            await self.session.emit_error(
                code="unknown_message", message=f"unknown control message type {kind!r}"
            )

    async def _receive_audio(self, frame: bytes) -> None:
        assert self.session is not None
        if not frame or len(frame) % 2:
            await self.session.emit_error(
                code="bad_frame",
                message=f"audio frames must be PCM16 (an even number of bytes), got {len(frame)}",
            )
            return
        if len(frame) > settings.PARLEY_MAX_FRAME_BYTES:
            await self.session.emit_error(
                code="frame_too_large",
                message=(
                    f"audio frame of {len(frame)} bytes exceeds {settings.PARLEY_MAX_FRAME_BYTES}"
                ),
            )
            return
        await self.session.push_audio(frame)

    async def disconnect(self, code: int) -> None:
        self._open = False
        await self._end(status=Conversation.Status.ENDED, reason=f"connection closed ({code})")

    async def _end(self, *, status: str, reason: str) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            if self.session is not None:
                await self.session.aclose(reason=reason)
        finally:
            if self.recorder is not None:
                await self.recorder.aclose()
            if self.conversation_id is not None:
                await database_sync_to_async(conversation_end)(
                    conversation_id=self.conversation_id, status=status, reason=reason
                )
            if self.recorder is not None and self.recorder.call_ended is not None:
                await self.send_json_safe(self.recorder.call_ended)

    # AudioSink
    async def send_audio(self, pcm16: bytes) -> None:
        if self._open:
            await self.send(bytes_data=pcm16)

    async def send_json_safe(self, payload: dict[str, Any]) -> None:
        if self._open:
            with contextlib.suppress(Exception):  # the caller may already be gone
                await self.send(text_data=json.dumps(payload))


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")[:300]
    return ""
