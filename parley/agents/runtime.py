"""What every call needs besides its transport: opening the record, persisting events in
order, and running tools as Celery tasks.

Used by the caller WebSocket consumer and by in-process calls (evaluation runs in text mode),
so both write exactly the same record.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery.exceptions import TimeoutError as CeleryTimeoutError
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from parley.agents.limits import CALL_LIMIT_REACHED
from parley.agents.models import Agent
from parley.agents.providers import (
    CallConfig,
    Providers,
    call_config_build,
    provider_keys_check,
)
from parley.agents.selectors import agent_get_for_call, prompt_active
from parley.agents.voice.messages import SessionEvent, ToolCallRequest, ToolResult
from parley.agents.voice.recording import CallRecorder
from parley.agents.voice.session import AudioSink, CallSession, SessionSettings
from parley.conversations.models import Conversation
from parley.conversations.services import (
    call_events_record,
    conversation_end,
    conversation_refuse,
    conversation_start,
    recording_register,
)
from parley.platform.errors import ApplicationError
from parley.tools.environments import environment_from_call_token
from parley.tools.models import ToolCall
from parley.tools.services import tool_call_abandon, tool_call_decline, tool_call_start
from parley.tools.tasks import tool_call_run

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]

#: What ``delay()`` raises when Redis is unreachable: the publish gave up (kombu), the result
#: backend could not subscribe (Celery's "Retry limit exceeded" RuntimeError), or redis-py.
TASK_QUEUE_ERRORS: tuple[type[Exception], ...] = (
    KombuOperationalError,
    RuntimeError,
    redis.RedisError,
)


@dataclass(frozen=True)
class OpenedCall:
    """A call's configuration snapshot and its new Conversation row."""

    config: CallConfig
    conversation_id: uuid.UUID
    started_at: dt.datetime
    environment_id: uuid.UUID | None = None
    #: The agent's ``max_call_duration_s`` (0: no limit), enforced by the transport.
    max_call_duration_s: int = 0


def call_open(
    *,
    slug: str,
    user: Any,
    client: dict[str, Any],
    overrides: dict[str, str] | None = None,
    sandbox_token: str | None = None,
    text_only: bool = False,
    allow_unpublished: bool = False,
) -> OpenedCall:
    """Check the agent can take a call and start its Conversation (sync: touches the ORM).

    ``overrides``: ``{"stt"|"tts": provider}`` for this call (allowed when
    ``PARLEY_PROVIDER_OVERRIDES`` is on or for staff). ``sandbox_token``: a token of
    :func:`parley.tools.environments.environment_call_token`; the call's tools then run in
    that sandbox. ``allow_unpublished``: the caller's call token lets it reach an agent that is
    not published (dashboard test calls, server-placed calls). Raises ``ApplicationError``
    with ``extra["code"]`` (``agent_not_found``, ``agent_unpublished``,
    ``overrides_not_allowed``, ``bad_provider``, ``provider_not_configured``,
    ``bad_sandbox_token``, ``call_limit_reached``: the agent already has
    ``max_concurrent_calls`` calls; the refused call is recorded as an ended Conversation,
    its id in ``extra["conversation_id"]``).
    """
    overrides = overrides or {}
    # A sandbox token is minted by this server (evaluations): its calls may reach an agent
    # that is not published yet. A forged or foreign token is refused just below.
    agent = agent_get_for_call(
        slug=slug, user=user, allow_unpublished=allow_unpublished or bool(sandbox_token)
    )
    prompt = prompt_active(agent=agent)
    if overrides and not (settings.PARLEY_PROVIDER_OVERRIDES or getattr(user, "is_staff", False)):
        raise ApplicationError(
            "this server does not let calls choose their providers",
            extra={"code": "overrides_not_allowed"},
        )
    environment = None
    if sandbox_token:
        try:
            environment = environment_from_call_token(
                sandbox_token, agent_slug=agent.slug, scenario=agent.scenario.domain
            )
        except ValueError as exc:
            raise ApplicationError(str(exc), extra={"code": "bad_sandbox_token"}) from exc
    config = call_config_build(
        agent=agent,
        prompt=prompt,
        stt_provider=overrides.get("stt"),
        tts_provider=overrides.get("tts"),
    )
    provider_keys_check(config, text_only=text_only)  # refuse now, not mid-call
    providers = {
        "stt": "text" if text_only else config.stt_provider,
        "tts": "text" if text_only else config.tts_provider,
        "llm": f"{config.pool_kind}:{config.llm_model}",
    }
    start = {
        "agent": agent,
        "prompt_version": prompt,
        "providers": providers,
        "client": client,
        "environment": environment,
    }
    with transaction.atomic():
        # The agent's row lock serialises call starts of one agent: two callers racing for
        # its last free slot cannot both count it free (READ COMMITTED: the count below runs
        # after the lock is granted, so it sees the other start's committed row).
        limits = (
            Agent.objects.select_for_update()
            .only("max_concurrent_calls", "max_call_duration_s")
            .get(pk=agent.pk)
        )
        active = calls_active_count(agent=limits)
        full = limits.max_concurrent_calls > 0 and active >= limits.max_concurrent_calls
        if not full:
            conversation = conversation_start(**start)
    if full:
        reason = (
            f"{CALL_LIMIT_REACHED.code}: {active} calls active, the agent takes "
            f"{limits.max_concurrent_calls} at once"
        )
        refused = conversation_refuse(**start, reason=reason)
        raise ApplicationError(
            f"this agent is taking {limits.max_concurrent_calls} calls already: "
            "try again in a moment",
            extra={"code": CALL_LIMIT_REACHED.code, "conversation_id": str(refused.id)},
        )
    return OpenedCall(
        config=config,
        conversation_id=conversation.id,
        started_at=conversation.started_at,
        environment_id=environment.pk if environment else None,
        max_call_duration_s=limits.max_call_duration_s,
    )


#: How much longer than its agent's ``max_call_duration_s`` an ``active`` Conversation may be
#: before it no longer counts against ``max_concurrent_calls`` (s): its server died before it
#: could mark the call ended, and a crash must not keep the agent's slots taken for ever.
STALE_CALL_GRACE_S = 60


def calls_active_count(*, agent: Agent) -> int:
    """The agent's calls now in progress (``status=active``), as ``call_open`` counts them.

    With a ``max_call_duration_s``, an active call started longer ago than that plus
    :data:`STALE_CALL_GRACE_S` is taken for a crashed server's leftover and not counted.
    """
    calls = Conversation.objects.filter(agent_id=agent.pk, status=Conversation.Status.ACTIVE)
    if agent.max_call_duration_s > 0:
        oldest = timezone.now() - dt.timedelta(
            seconds=agent.max_call_duration_s + STALE_CALL_GRACE_S
        )
        calls = calls.filter(started_at__gte=oldest)
    return calls.count()


#: How long a call's events gather before one transaction persists them (s). Written at
#: once, a turn's ~12 events took several transactions, each opening its own database
#: connection (Django's default CONN_MAX_AGE=0), on the one thread Channels runs database
#: work on, whose Python competes with the event loop for the GIL. Gathering for 1 s halves
#: them: with 25 calls (bench/concurrency.py) 59 → 27 commits/s and 19 → 8 connections/s.
EVENT_FLUSH_INTERVAL_S = 1.0


class EventRecorder:
    """Sends each event to the caller at once (``send``; ``None`` for no one) and persists it
    in order in the background, so persistence never delays audio: the events of up to
    ``flush_interval_s`` in one transaction, and everything at :meth:`aclose`.

    A ``turn.started`` is written at once (with whatever is queued before it): it creates
    the turn's row, which the turn's tool calls are recorded against
    (``parley.tools.services.tool_call_start``, on the same database thread after it).
    """

    #: Events written without waiting for ``flush_interval_s``.
    WRITE_AT_ONCE = frozenset({"turn.started"})

    def __init__(
        self,
        *,
        send: Send | None,
        conversation_id: uuid.UUID,
        started_at: dt.datetime,
        flush_interval_s: float = EVENT_FLUSH_INTERVAL_S,
    ) -> None:
        self.send = send
        self.conversation_id = conversation_id
        self.started_at = started_at
        self.flush_interval_s = flush_interval_s
        self._seq = 0
        self.call_ended: dict[str, Any] | None = None
        self._queue: asyncio.Queue[tuple[int, dict[str, Any]] | None] = asyncio.Queue()
        self._write_now = asyncio.Event()  # set by aclose() and by WRITE_AT_ONCE events
        self._writer = asyncio.get_running_loop().create_task(self._write(), name="event-writer")

    async def emit(self, event: SessionEvent) -> None:
        payload = event.as_json()
        if event.type in ("session.started", "call.ended"):
            payload["conversation_id"] = str(self.conversation_id)
        if event.type == "call.ended":
            # Sent by the transport once the whole call is persisted: a client that hangs up
            # on `call.ended` must find every turn in the database.
            self.call_ended = payload
        elif self.send is not None:
            await self.send(payload)
        self._seq += 1
        self._queue.put_nowait((self._seq, payload))
        if event.type in self.WRITE_AT_ONCE:
            self._write_now.set()

    async def _write(self) -> None:
        done = False
        while not done:
            batch = [await self._queue.get()]
            if batch[0] is not None and self.flush_interval_s > 0 and not self._write_now.is_set():
                # Let the rest of the burst arrive.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._write_now.wait(), self.flush_interval_s)
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if batch[-1] is None:
                done = True
            else:
                self._write_now.clear()
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
        self._write_now.set()
        self._queue.put_nowait(None)
        await self._writer


class CeleryToolRunner:
    """Runs tool calls as Celery tasks, recording a ToolCall row before and after; against
    the call's sandbox when it has one (``environment_id``), else live data."""

    def __init__(
        self,
        *,
        conversation_id: uuid.UUID,
        scenario: str,
        allowed: tuple[str, ...],
        timeout_s: float,
        environment_id: uuid.UUID | None = None,
    ) -> None:
        self.conversation_id = conversation_id
        self.scenario = scenario
        self.allowed = list(allowed)
        self.timeout_s = timeout_s
        self.environment_id = environment_id

    async def run(self, *, turn: int, call: ToolCallRequest) -> ToolResult:
        started = time.monotonic()
        record = await database_sync_to_async(tool_call_start)(
            conversation_id=self.conversation_id,
            turn_index=turn,
            call_id=call.id,
            name=call.name,
            arguments_raw=call.arguments,
            scenario=self.scenario,
            environment_id=self.environment_id,
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

    async def decline(self, *, turn: int, call: ToolCallRequest, result: str, reason: str) -> None:
        """Record a call the caller did not confirm (``ToolCall`` status ``declined``)."""
        await database_sync_to_async(tool_call_decline)(
            conversation_id=self.conversation_id,
            turn_index=turn,
            call_id=call.id,
            name=call.name,
            arguments_raw=call.arguments,
            result=result,
            reason=reason,
            scenario=self.scenario,
            environment_id=self.environment_id,
        )

    def _execute(self, tool_call_id: int) -> dict[str, Any]:
        """Queue the tool's task and wait for its ``{"ok", "content"}``, at most ``timeout_s``.

        Never leaves the ToolCall ``running`` behind when it gives up: with the broker down
        (Redis restarting: the publish retries about 2.5 s, settings/celery.py) the call is
        failed at once; with the result lost (the result backend went away while we waited)
        the ToolCall row, where the worker commits the outcome with the tool's writes, says
        what happened."""
        deadline = time.monotonic() + self.timeout_s
        try:
            async_result = tool_call_run.delay(tool_call_id, self.scenario, self.allowed)
        except Exception as exc:
            logger.warning("tool call %s could not be queued: %r", tool_call_id, exc)
            unavailable = isinstance(exc, TASK_QUEUE_ERRORS)
            reason = "(the task queue is unavailable)" if unavailable else f"({exc})"
            return self._give_up(tool_call_id, f"the tool could not be run {reason}".strip())
        try:
            return async_result.get(timeout=self.timeout_s, disable_sync_subtasks=False)
        except CeleryTimeoutError:
            pass
        except Exception as exc:
            logger.warning("the result of tool call %s was lost: %r", tool_call_id, exc)
            while time.monotonic() < deadline:
                stored = self._stored_outcome(tool_call_id)
                if stored is not None:
                    return stored
                time.sleep(0.2)
        return self._give_up(tool_call_id, f"the tool did not answer within {self.timeout_s:g} s")

    def _give_up(self, tool_call_id: int, reason: str) -> dict[str, Any]:
        """Fail the tool call nobody will wait for any more, unless a worker is running it
        right now, so a late delivery (a lost worker's task) cannot act after the LLM was
        told; a call that has finished meanwhile returns its stored outcome."""
        if tool_call_abandon(tool_call_id=tool_call_id, reason=reason) is None:
            stored = self._stored_outcome(tool_call_id)
            if stored is not None:
                return stored
            reason += " (it may still complete)"
        return {"ok": False, "content": f"Error: {reason}"}

    @staticmethod
    def _stored_outcome(tool_call_id: int) -> dict[str, Any] | None:
        """The finished call's ``{"ok", "content"}`` from its row; ``None`` while running."""
        row = ToolCall.objects.filter(id=tool_call_id).values_list("status", "result").first()
        if row is None or row[0] == ToolCall.Status.RUNNING:
            return None
        return {"ok": row[0] == ToolCall.Status.OK, "content": row[1]}


def call_session_build(
    opened: OpenedCall,
    providers: Providers,
    *,
    recorder: EventRecorder,
    audio: AudioSink,
    text_only: bool = False,
    echo_cancellation: bool | None = None,
) -> CallSession:
    """The call's :class:`CallSession`: its providers, the Celery tool runner (in the call's
    sandbox, if any), the recorder as event sink and the call's settings.

    ``echo_cancellation``: what the caller's client reported about its microphone (``None``:
    nothing); with the agent's echo gate on ``auto``, ``False`` turns the gate on."""
    config = opened.config
    echo_gate = config.echo_gate_mode == "on" or (
        config.echo_gate_mode == "auto" and echo_cancellation is False
    )
    audio_recorder = None
    if config.recording_retention_days > 0 and not text_only:
        audio_recorder = CallRecorder(
            path=recording_path(
                agent_slug=config.agent_slug,
                started_at=opened.started_at,
                conversation_id=opened.conversation_id,
            ),
            agent_rate_hz=providers.tts.sample_rate_hz,
        )
        audio_recorder.start()
    return CallSession(
        recorder=audio_recorder,
        vad=providers.vad,
        stt=providers.stt,
        llm=providers.llm,
        tts=providers.tts,
        fallback_tts=None if text_only else providers.fallback_tts,
        tools=CeleryToolRunner(
            conversation_id=opened.conversation_id,
            scenario=config.scenario,
            allowed=config.tool_names,
            timeout_s=settings.PARLEY_TOOL_TIMEOUT_S,
            environment_id=opened.environment_id,
        ),
        events=recorder,
        audio=audio,
        settings=SessionSettings(
            system_prompt=config.system_prompt,
            tools=config.tools,
            greeting=config.greeting,
            max_tool_steps=config.max_tool_steps,
            stt_final_timeout_ms=settings.PARLEY_STT_FINAL_TIMEOUT_MS,
            audio_lead_ms=settings.PARLEY_AUDIO_LEAD_MS,
            text_only=text_only,
            turn_taking=dataclasses.replace(config.turn_taking, echo_gate=echo_gate),
            confirm_tools=frozenset(config.confirm_tools),
            confirm_timeout_ms=round(settings.PARLEY_CONFIRMATION_TIMEOUT_S * 1000),
        ),
    )


def recording_path(*, agent_slug: str, started_at: dt.datetime, conversation_id: uuid.UUID) -> Path:
    """``PARLEY_RECORDINGS_DIR/<agent>/<YYYY-MM-DD>/<conversation>.wav`` (UTC day)."""
    day = started_at.astimezone(dt.UTC).strftime("%Y-%m-%d")
    return Path(settings.PARLEY_RECORDINGS_DIR) / agent_slug / day / f"{conversation_id}.wav"


async def _recording_finish(recorder: CallRecorder, conversation_id: uuid.UUID) -> None:
    """Assemble the call's WAV and record its row; a failure loses the recording, not the call."""
    try:
        result = await recorder.aclose()
        if result is not None:
            await database_sync_to_async(recording_register)(
                conversation_id=conversation_id,
                path=str(result.path),
                sample_rate_hz=result.sample_rate_hz,
                channels=result.channels,
                duration_ms=result.duration_ms,
                size_bytes=result.size_bytes,
            )
    except Exception:
        logger.exception("could not keep the recording of %s", conversation_id)


async def call_close(
    *,
    session: CallSession | None,
    recorder: EventRecorder | None,
    conversation_id: uuid.UUID | None,
    status: str,
    reason: str,
) -> dict[str, Any] | None:
    """End a call whatever state it reached: close the session (its tasks and providers),
    flush every event to the database, mark the Conversation ended. Returns the
    ``call.ended`` event for the transport to send last (``None`` if the call never started)."""
    try:
        if session is not None:
            await session.aclose(reason=reason)
    finally:
        if session is not None and session.recorder is not None and conversation_id is not None:
            await _recording_finish(session.recorder, conversation_id)
        if recorder is not None:
            await recorder.aclose()
        if conversation_id is not None:
            await database_sync_to_async(conversation_end)(
                conversation_id=conversation_id, status=status, reason=reason
            )
    return recorder.call_ended if recorder is not None else None
