"""The caller WebSocket ``/ws/agents/<slug>/call`` (protocol: docs/protocol.md).

Transport only: decode frames and control messages, hand them to the :class:`CallSession`,
encode its events and audio. Database work goes through small ``database_sync_to_async``
helpers; events are written by a background recorder so persistence never delays audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from parley.agents.call_tokens import (
    TOKEN_STORE_UNAVAILABLE,
    CallTokenError,
    call_token_verify,
)
from parley.agents.limits import (
    CALL_DURATION_EXCEEDED,
    CALL_LIMIT_REACHED,
    FRAME_RATE_EXCEEDED,
    FRAME_TOO_LARGE,
    MESSAGE_TOO_LARGE,
    Limit,
    TokenBucket,
)
from parley.agents.providers import providers_build
from parley.agents.runtime import EventRecorder, call_close, call_open, call_session_build
from parley.agents.voice.session import CallSession
from parley.agents.voice.stt.base import STTError
from parley.conversations.models import Conversation
from parley.platform import lifecycle
from parley.platform.errors import ApplicationError

logger = logging.getLogger(__name__)

#: WebSocket close codes (4000–4999 are the application's): see docs/protocol.md. The call
#: limits' codes are in parley/agents/limits.py.
CLOSE_UNAUTHORIZED = 4401
CLOSE_AGENT_NOT_FOUND = 4404
CLOSE_AGENT_UNAVAILABLE = 4403
CLOSE_SERVER_ERROR = 4500
CLOSE_SERVER_DRAINING = 4012  # after 1012 "Service Restart" (autobahn sends no 1xxx for us)
CLOSE_SERVICE_UNAVAILABLE = 4502  # Redis unreachable: the token cannot be checked; call again


class CallConsumer(AsyncWebsocketConsumer):
    """One caller connection = one Conversation = one CallSession."""

    session: CallSession | None = None
    recorder: EventRecorder | None = None
    conversation_id: uuid.UUID | None = None
    _open = False
    _ended = False
    _frame_bucket: TokenBucket | None = None  # the caller's message rate (limits.py)
    _duration_timer: asyncio.Task[None] | None = None  # ends the call at max_call_duration_s

    async def connect(self) -> None:
        await self.accept()
        self._open = True
        if lifecycle.draining():
            # SIGTERM: this process is going away; the client should call again (another one).
            await self.send_json_safe(
                {
                    "type": "error",
                    "turn": 0,
                    "t_ms": 0,
                    "code": "server_draining",
                    "message": "this server is shutting down: call again in a moment",
                    "fatal": True,
                }
            )
            await self.close(code=CLOSE_SERVER_DRAINING)
            return
        slug = self.scope["url_route"]["kwargs"]["slug"]
        client = {
            "address": (self.scope.get("client") or ["", 0])[0],
            "user_agent": _header(self.scope, b"user-agent"),
        }
        query = _query(self.scope)
        if (aec := _flag(query.get("aec"))) is not None:
            client["echo_cancellation"] = aec
        try:
            allow_unpublished = await self._authorize(slug, query)
            opened = await database_sync_to_async(call_open)(
                slug=slug,
                user=self.scope.get("user"),
                client=client,
                overrides={k: query[k] for k in ("stt", "tts") if k in query},
                sandbox_token=query.get("sandbox"),
                allow_unpublished=allow_unpublished,
            )
            config, self.conversation_id = opened.config, opened.conversation_id
            providers = await providers_build(config)
        except ApplicationError as exc:
            code = exc.extra.get("code", "call_refused")
            error = {
                "type": "error",
                "turn": 0,
                "t_ms": 0,
                "code": code,
                "message": exc.message,
                "fatal": True,
            }
            if "conversation_id" in exc.extra:  # a refused call's record
                error["conversation_id"] = exc.extra["conversation_id"]
            await self.send_json_safe(error)
            close = {
                "agent_not_found": CLOSE_AGENT_NOT_FOUND,
                "token_required": CLOSE_UNAUTHORIZED,
                "bad_call_token": CLOSE_UNAUTHORIZED,
                TOKEN_STORE_UNAVAILABLE: CLOSE_SERVICE_UNAVAILABLE,
                CALL_LIMIT_REACHED.code: CALL_LIMIT_REACHED.close_code,
            }.get(code, CLOSE_AGENT_UNAVAILABLE)
            await self.close(code=close)
            return
        self.recorder = EventRecorder(
            send=self.send_json_safe,
            conversation_id=self.conversation_id,
            started_at=opened.started_at,
        )
        self.session = call_session_build(
            opened,
            providers,
            recorder=self.recorder,
            audio=self,
            echo_cancellation=_flag(query.get("aec")),
        )
        self._frame_bucket = TokenBucket(
            rate_per_s=settings.PARLEY_MAX_FRAMES_PER_S, burst=settings.PARLEY_FRAME_BURST
        )
        if opened.max_call_duration_s > 0:
            self._duration_timer = asyncio.get_running_loop().create_task(
                self._end_at_duration_limit(opened.max_call_duration_s), name="call-duration"
            )
        await lifecycle.call_register(self)
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

    async def _authorize(self, slug: str, query: dict[str, str]) -> bool:
        """Check the connection's credential; ``True`` when it may reach an unpublished agent.

        Every call needs one: ``token`` (a call token, parley/agents/call_tokens.py) or
        ``sandbox`` (a server-minted sandbox token, checked by ``call_open``). Raises
        ``ApplicationError`` (``token_required``, ``bad_call_token``).
        """
        if "sandbox" in query:
            return True
        token = query.get("token")
        if not token:
            raise ApplicationError(
                "this call needs a call token: ask POST /api/v1/call-tokens with the agent's "
                "publishable key (docs/widget.md)",
                {"code": "token_required"},
            )
        origin = _header(self.scope, b"origin") or None
        try:
            grant = await database_sync_to_async(call_token_verify)(token, slug=slug, origin=origin)
        except CallTokenError as exc:
            raise ApplicationError(str(exc), {"code": exc.code}) from exc
        return grant.allows_unpublished

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Channels' consumer loop made lean: ``await receive()``, then :meth:`dispatch`.

        ``AsyncConsumer.__call__`` (channels.utils.await_many_dispatch) waits with
        ``asyncio.wait`` on a new task per message, next to the channel layer's receive:
        each caller frame costs a task and at least two event-loop iterations before it is
        handled, so on a busy loop a call works off its queued frames slowly. Here a frame
        Daphne has already queued is handled at once. Calls use no channel layer (they join
        no group and nothing sends to them), so none is opened.
        """
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        with contextlib.suppress(StopConsumer):
            while True:
                await self.dispatch(await receive())

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Hand caller frames straight to :meth:`receive`; everything else as Channels does.

        Channels (4.2+) awaits ``aclose_old_connections()`` before every handler: a hop to
        the shared sync thread for each caller frame, 50 per second per call (8 % of the
        server's CPU samples with 50 calls in bench/concurrency.py, measured). This consumer
        touches the ORM only through ``database_sync_to_async`` helpers, which close stale
        connections around each call themselves, so the hop buys nothing per frame.
        """
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
            return
        await super().dispatch(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session is None or self._ended:
            return
        if self._frame_bucket is not None and not self._frame_bucket.take():
            await self._end_for_limit(
                FRAME_RATE_EXCEEDED,
                f"more than {settings.PARLEY_MAX_FRAMES_PER_S:g} messages a second "
                f"(beyond a burst of {settings.PARLEY_FRAME_BURST})",
            )
            return
        if bytes_data is not None:
            await self._receive_audio(bytes_data)
            return
        # surrogatepass: a lone surrogate is bad JSON below, not a crash here.
        size = len((text_data or "").encode("utf-8", "surrogatepass"))
        if size > settings.PARLEY_MAX_CONTROL_BYTES:
            await self._end_for_limit(
                MESSAGE_TOO_LARGE,
                f"control message of {size} bytes exceeds {settings.PARLEY_MAX_CONTROL_BYTES}",
            )
            return
        try:
            message = _json_strict(text_data or "")
        except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
            await self.session.emit_error(code="bad_json", message="control messages must be JSON")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "hangup":
            await self._end(status=Conversation.Status.ENDED, reason="caller hung up")
            await self.close(code=1000)
        elif kind == "ping":
            await self.send_json_safe({"type": "pong", "id": message.get("id")})
        elif kind == "text":
            text = message.get("text")
            try:
                if not isinstance(text, str):
                    raise ValueError("a text message needs a string 'text'")
                await self.session.push_text(text)
            except ValueError as exc:
                await self.session.emit_error(code="bad_text", message=str(exc))
        elif kind == "playback.started":
            try:
                await self.session.playback_started(
                    turn=message.get("turn"),  # type: ignore[arg-type]
                    playout_delay_ms=message.get("playout_delay_ms"),  # type: ignore[arg-type]
                    rtt_ms=message.get("rtt_ms"),
                )
            except ValueError as exc:
                await self.session.emit_error(code="bad_playback", message=str(exc))
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
            await self._end_for_limit(
                FRAME_TOO_LARGE,
                f"audio frame of {len(frame)} bytes exceeds {settings.PARLEY_MAX_FRAME_BYTES}",
            )
            return
        await self.session.push_audio(frame)

    async def _end_for_limit(self, limit: Limit, message: str, *, goodbye: str = "") -> None:
        """End the call for exceeding ``limit``: the agent says ``goodbye`` first if given
        (its TTS, a last agent turn: :meth:`CallSession.farewell`), then a fatal error event
        (sent and recorded), the Conversation ended as ``error`` with ``"<code>: <message>"``
        as its end reason, and the socket closed with the limit's close code."""
        if self._ended:
            return
        if goodbye and self.session is not None:
            try:
                await self.session.farewell(goodbye, reason=limit.code)
            except Exception:  # the call ends anyway
                logger.exception("the goodbye could not be spoken")
            if self._ended:  # the caller hung up (or another limit ended it) meanwhile
                return
        if self.session is not None:
            await self.session.emit_error(code=limit.code, message=message, fatal=True)
        await self._end(status=Conversation.Status.ERROR, reason=f"{limit.code}: {message}")
        await self.close(code=limit.close_code)

    async def _end_at_duration_limit(self, limit_s: int) -> None:
        """Sleep out the agent's ``max_call_duration_s``, then end the call politely: the
        agent says PARLEY_TIME_LIMIT_GOODBYE, then ``call_duration_exceeded``."""
        await asyncio.sleep(limit_s)
        try:
            await self._end_for_limit(
                CALL_DURATION_EXCEEDED,
                f"the call reached its limit of {limit_s} s",
                goodbye=settings.PARLEY_TIME_LIMIT_GOODBYE,
            )
        except Exception:
            logger.exception("could not end call %s at its duration limit", self.conversation_id)

    async def disconnect(self, code: int) -> None:
        self._open = False
        await self._end(status=Conversation.Status.ENDED, reason=f"connection closed ({code})")

    async def server_shutdown(self) -> None:
        """The server is draining and the grace period is over: the agent says goodbye (its
        TTS; the words are PARLEY_SHUTDOWN_GOODBYE), then the call ends normally with reason
        ``server_shutdown`` and the socket closes with 1001 (going away)."""
        if self._ended:
            return
        if self.session is not None:
            try:
                await self.session.farewell(settings.PARLEY_SHUTDOWN_GOODBYE)
            except Exception:  # the call ends anyway
                logger.exception("the goodbye could not be spoken")
        await self._end(status=Conversation.Status.ENDED, reason="server_shutdown")
        await self.close(code=1001)

    async def _end(self, *, status: str, reason: str) -> None:
        if self._ended:
            return
        self._ended = True
        timer, self._duration_timer = self._duration_timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        try:
            call_ended = await call_close(
                session=self.session,
                recorder=self.recorder,
                conversation_id=self.conversation_id,
                status=status,
                reason=reason,
            )
        finally:
            await lifecycle.call_unregister(self)
        if call_ended is not None:
            await self.send_json_safe(call_ended)

    # AudioSink
    async def send_audio(self, pcm16: bytes) -> None:
        if self._open:
            await self.send(bytes_data=pcm16)

    async def send_json_safe(self, payload: dict[str, Any]) -> None:
        if self._open:
            with contextlib.suppress(Exception):  # the caller may already be gone
                await self.send(text_data=json.dumps(payload))


def _json_strict(text: str) -> Any:
    """Parse ``text`` as JSON (RFC 8259): unlike ``json.loads``, refuse ``NaN`` and
    ``Infinity``, which no JSON encoder sends and which would poison the events echoing them.
    Raises ``ValueError`` (``RecursionError`` when nested too deep)."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _header(scope: dict[str, Any], name: bytes) -> str:
    """A request header as text (at most 300 characters), control characters removed: they
    have no place in a header, and PostgreSQL refuses NUL in the call record's JSON."""
    for key, value in scope.get("headers", []):
        if key == name:
            text = value.decode("latin-1")
            return "".join(ch for ch in text if ch.isprintable())[:300]
    return ""


def _query(scope: dict[str, Any]) -> dict[str, str]:
    """The caller socket's query parameters (the last value of each)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {key: values[-1] for key, values in query.items() if values}


def _flag(value: str | None) -> bool | None:
    """A ``1``/``0`` (``true``/``false``) query value; ``None`` when absent or anything else."""
    if value is None:
        return None
    return {"1": True, "true": True, "0": False, "false": False}.get(value.strip().lower())
