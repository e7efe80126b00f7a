"""The server process's life cycle: its live calls, their heartbeat, and draining.

A server process (``manage.py serve``, docs/operations.md) keeps every live call here:

* **Heartbeat.** While calls are live, one task writes ``Conversation.heartbeat_at`` for all of
  them every :setting:`PARLEY_HEARTBEAT_INTERVAL_S` (one ``UPDATE`` per process, whatever the
  number of calls). When the process dies, the heartbeats stop, and the recovery task
  (``parley.conversations.tasks.conversations_recover_run``, Celery beat) ends its calls as
  ``aborted``. The task is started by the first call and cancelled with the last.
* **Draining.** On SIGTERM the process stops taking calls (:func:`draining`; the WebSocket
  refuses with ``server_draining`` and ``/readyz`` answers 503), gives the live calls
  ``grace_s`` to finish, then ends each remaining one politely (:meth:`LiveCall.server_shutdown`).

Everything here runs on the server's event loop, except :func:`draining`, which any thread reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Protocol

from channels.db import database_sync_to_async
from django.conf import settings

logger = logging.getLogger(__name__)


class LiveCall(Protocol):
    """What the process needs of a live call (the caller WebSocket's consumer)."""

    conversation_id: uuid.UUID | None

    async def server_shutdown(self) -> None:
        """Say goodbye and end the call (reason ``server_shutdown``)."""


_calls: set[LiveCall] = set()
_heartbeat: asyncio.Task[None] | None = None
_draining = False
_no_calls: asyncio.Event | None = None  # set when the last call ends during a drain


def draining() -> bool:
    """Whether the process is draining (no new calls; ``/readyz`` is 503)."""
    return _draining


def drain_begin() -> None:
    """Refuse new calls from now on (also used by tests)."""
    global _draining
    _draining = True


def drain_reset() -> None:
    """Take calls again (tests only: a real process exits after draining)."""
    global _draining
    _draining = False


def live_calls() -> list[LiveCall]:
    return list(_calls)


async def call_register(call: LiveCall) -> None:
    """Count ``call`` as live, beat its heartbeat now and every interval until it ends."""
    global _heartbeat
    _calls.add(call)
    if call.conversation_id is not None:
        await _beat([call.conversation_id])
    if _heartbeat is None or _heartbeat.done():
        _heartbeat = asyncio.get_running_loop().create_task(_heartbeat_loop(), name="heartbeat")


async def call_unregister(call: LiveCall) -> None:
    """The call has ended; the last one stops the heartbeat task."""
    global _heartbeat
    _calls.discard(call)
    if not _calls and _no_calls is not None:
        _no_calls.set()
    if not _calls and _heartbeat is not None:
        task, _heartbeat = _heartbeat, None
        task.cancel()
        if task.get_loop() is asyncio.get_running_loop():
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _heartbeat_loop() -> None:
    interval_s = settings.PARLEY_HEARTBEAT_INTERVAL_S
    while True:
        await asyncio.sleep(interval_s)
        ids = [c.conversation_id for c in list(_calls) if c.conversation_id is not None]
        if ids:
            await _beat(ids)


async def _beat(ids: list[uuid.UUID]) -> None:
    from parley.conversations.services import conversations_heartbeat

    try:
        await database_sync_to_async(conversations_heartbeat)(conversation_ids=ids)
    except Exception:  # a database hiccup must not end the calls; the next beat retries
        logger.exception("could not write the heartbeat of %d calls", len(ids))


async def drain(*, grace_s: float, goodbye_timeout_s: float = 10.0) -> int:
    """Stop taking calls, wait up to ``grace_s`` seconds for the live calls to end, then end
    the rest politely (each at most ``goodbye_timeout_s``). Returns how many were ended."""
    global _no_calls
    drain_begin()
    logger.warning("draining: %d live calls, grace %.0f s", len(_calls), grace_s)
    _no_calls = asyncio.Event()
    if not _calls:
        _no_calls.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_no_calls.wait(), grace_s)
    remaining = list(_calls)
    if remaining:
        logger.warning("draining: ending %d calls after the grace period", len(remaining))
        results = await asyncio.gather(
            *(asyncio.wait_for(c.server_shutdown(), goodbye_timeout_s) for c in remaining),
            return_exceptions=True,
        )
        for call, result in zip(remaining, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("call %s did not end cleanly: %r", call.conversation_id, result)
    return len(remaining)
