"""The production server process (``manage.py serve``): readiness, SIGTERM drain, SIGKILL and
the recovery task (docs/operations.md). Each test runs a real server subprocess on a free
port against the test database and talks to it over HTTP and the caller WebSocket."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import websockets
from django.utils import timezone

from parley.agents.call_tokens import call_token_issue
from parley.agents.models import Agent
from parley.agents.services import agent_create, model_pool_simulator_ensure, scenario_install
from parley.conversations.models import CallEvent, Conversation, Turn
from parley.conversations.services import conversations_recover
from parley.testing.simulators import free_port
from tests.platform.process_support import http_status, parley_server, stop

pytestmark = pytest.mark.redis


def _agent(slug: str) -> Agent:
    return agent_create(
        slug=slug,
        name=slug,
        scenario=scenario_install(slug="hospital"),
        model_pool=model_pool_simulator_ensure(),
        prompt="You are a hospital receptionist.",
        greeting="Hello, Saint Mary's hospital.",
    )


class Caller:
    """One caller on the WebSocket, speaking in text turns; collects every event."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.audio_bytes = 0
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, port: int, agent: Agent) -> Caller:
        token = await asyncio.to_thread(call_token_issue, agent=agent)
        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}/ws/agents/{agent.slug}/call?token={token}", open_timeout=20
        )
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.audio_bytes += len(message)
                else:
                    self.events.append(json.loads(message))
                self._changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()
            self._changed.set()

    def of(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["type"] == kind and all(e.get(k) == v for k, v in fields.items())
        ]

    async def wait(self, kind: str, timeout_s: float = 30, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while not (found := self.of(kind, **fields)):
            if self.closed.is_set() or time.monotonic() > deadline:
                raise AssertionError(f"no {kind} {fields}; got {self.events[-8:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
            except TimeoutError:
                pass
        return found[0]

    async def say(self, text: str) -> int:
        """Send a text turn; return its index once the agent's reply has ended."""
        before = {e["turn"] for e in self.of("turn.started")}
        await self.ws.send(json.dumps({"type": "text", "text": text}))
        deadline = time.monotonic() + 30
        while not (new := {e["turn"] for e in self.of("turn.started")} - before):
            assert time.monotonic() < deadline, self.events[-5:]
            await asyncio.sleep(0.02)
        turn = min(new)
        await self.wait("turn.ended", turn=turn)
        return turn

    async def aclose(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)


def test_serve_without_a_database_is_alive_but_not_ready_and_exits_0_on_sigterm(
    tmp_path: Path,
) -> None:
    port, log = free_port(), tmp_path / "server.log"
    closed = f"postgres://postgres@127.0.0.1:{free_port()}/parley"  # nothing listens there
    server = parley_server(port=port, log=log, DATABASE_URL=closed)
    try:
        assert http_status(f"http://127.0.0.1:{port}/healthz") == 200
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert answer.value.code == 503
        checks = json.loads(answer.value.read())["checks"]
        assert (
            checks["database"]["ok"] is False and "OperationalError" in checks["database"]["error"]
        )
        assert checks["draining"]["ok"] is True
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
    finally:
        stop(server)


@pytest.mark.django_db(transaction=True)
def test_sigterm_drains_the_live_call_then_ends_it_politely_and_exits_0(tmp_path: Path) -> None:
    agent = _agent("drain-agent")
    port, log = free_port(), tmp_path / "server.log"
    server = parley_server(port=port, log=log, PARLEY_DRAIN_GRACE_S="12")
    try:
        outcome = asyncio.run(_drain_scenario(server, port, agent))
        assert server.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        stop(server)
    caller, refused, refused_code, ready_while_draining = outcome
    # New calls were refused while draining, and the server said it was not ready.
    assert refused["code"] == "server_draining" and refused["fatal"] is True
    assert refused_code == 4012
    assert ready_while_draining == 503
    # The reply in progress at SIGTERM was finished and heard, then the agent said goodbye.
    assert caller.of("turn.ended", turn=1)[0]["status"] == "completed"
    goodbye = caller.of("turn.started", turn=2)[0]
    assert goodbye["role"] == "agent"
    assert caller.events.index(goodbye) > caller.events.index(caller.of("turn.ended", turn=1)[0])
    assert "have to end our call" in caller.of("turn.ended", turn=2)[0]["agent_text"]
    assert caller.of("turn.ended", turn=2)[0]["agent_audio_ms"] > 1000  # spoken, not only sent
    ended = caller.of("call.ended")[0]
    assert ended["reason"] == "server_shutdown"
    assert caller.events[-1]["type"] == "call.ended"
    conversation = Conversation.objects.get(id=ended["conversation_id"])
    assert conversation.status == Conversation.Status.ENDED
    assert conversation.end_reason == "server_shutdown"
    turns = list(conversation.turns.order_by("index").values_list("index", "status", "agent_text"))
    assert [t[:2] for t in turns] == [(0, "completed"), (1, "completed"), (2, "completed")]
    assert "Goodbye" in turns[2][2]
    # The refused connection left no conversation behind.
    assert Conversation.objects.filter(agent=agent).count() == 1


async def _drain_scenario(
    server: subprocess.Popen[bytes], port: int, agent: Agent
) -> tuple[Caller, dict[str, Any], int | None, int | None]:
    caller = await Caller.connect(port, agent)
    await caller.wait("turn.ended", turn=0)  # the greeting
    # The reply to this turn (about 10 s of speech) is under way when SIGTERM arrives.
    await caller.ws.send(json.dumps({"type": "text", "text": "Where do I park my car?"}))
    await caller.wait("agent.speaking", turn=1)
    server.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    late = await Caller.connect(port, agent)
    refused = await late.wait("error", code="server_draining")
    await late.closed.wait()
    ready = await asyncio.to_thread(http_status, f"http://127.0.0.1:{port}/readyz")
    await caller.wait("turn.ended", turn=1)
    await caller.wait("call.ended", timeout_s=30)
    await asyncio.wait_for(caller.closed.wait(), 10)
    await caller.aclose()
    return caller, refused, late.ws.close_code, ready


@pytest.mark.django_db(transaction=True)
def test_a_killed_server_keeps_every_completed_turn_and_recovery_aborts_its_calls(
    tmp_path: Path,
) -> None:
    agent = _agent("killed-agent")
    port, log = free_port(), tmp_path / "server.log"
    server = parley_server(port=port, log=log, PARLEY_HEARTBEAT_INTERVAL_S="0.5")
    try:
        callers = asyncio.run(_calls_then_kill(server, port, agent, count=2))
    finally:
        stop(server)
    ids = [c.of("session.started")[0]["conversation_id"] for c in callers]
    # Nobody ended these calls: they are still "active", with the last heartbeat of the server.
    conversations = Conversation.objects.filter(id__in=ids)
    assert {c.status for c in conversations} == {Conversation.Status.ACTIVE}
    assert all(c.heartbeat_at is not None for c in conversations)
    for caller in callers:
        conversation_id = caller.of("session.started")[0]["conversation_id"]
        for ended in caller.of("turn.ended"):
            turn = Turn.objects.get(conversation_id=conversation_id, index=ended["turn"])
            assert turn.status == "completed" and turn.agent_text == ended["agent_text"]
            assert turn.ended_at is not None
            if ended["turn"] > 0:
                metrics = caller.of("turn.metrics", turn=ended["turn"])[0]
                assert turn.user_text == ended["user_text"]
                assert turn.llm_ttft_ms == metrics["llm_ttft_ms"] is not None
                assert turn.tts_ttfb_ms == metrics["tts_ttfb_ms"] is not None
        seqs = list(
            CallEvent.objects.filter(conversation_id=conversation_id).values_list("seq", flat=True)
        )
        assert seqs == list(range(1, len(seqs) + 1))
    # A call that no server process serves (no heartbeat) is not the recovery task's business.
    in_process = Conversation.objects.create(agent=agent, started_at=timezone.now())
    later = timezone.now() + dt.timedelta(seconds=10)
    recovered = conversations_recover(stale_after_s=1.5, now=later)
    assert sorted(map(str, recovered)) == sorted(ids)
    for conversation in Conversation.objects.filter(id__in=ids):
        assert conversation.status == Conversation.Status.ABORTED
        assert conversation.get_status_display() == "Ended abnormally (server lost)"
        assert conversation.end_reason.startswith("server lost: no heartbeat since")
        assert conversation.ended_at == conversation.heartbeat_at
        assert conversation.turn_count == 2 and "park" in conversation.transcript_text
        # The turn under way when the server died is closed as an error, as it stood.
        cut = conversation.turns.get(index=2)
        assert (
            cut.status == Turn.Status.ERROR and cut.error == "the server serving the call was lost"
        )
        assert cut.ended_at == conversation.ended_at
        assert not conversation.turns.filter(ended_at__isnull=True).exists()
    # The agent's live calls (what a per-agent cap counts) are freed.
    assert list(Conversation.objects.filter(agent=agent, status="active")) == [in_process]
    assert conversations_recover(stale_after_s=1.5, now=later) == []


async def _calls_then_kill(
    server: subprocess.Popen[bytes], port: int, agent: Agent, *, count: int
) -> list[Caller]:
    callers = [await Caller.connect(port, agent) for _ in range(count)]
    await asyncio.gather(*(c.wait("turn.ended", turn=0) for c in callers))
    await asyncio.gather(
        *(c.say(f"Where do I park my car, caller {i}?") for i, c in enumerate(callers))
    )
    # Turn 2 starts (a caller turn announced, not answered) when the server dies.
    for caller in callers:
        await caller.ws.send(json.dumps({"type": "text", "text": "And the visiting hours?"}))
    await asyncio.gather(*(c.wait("turn.started", turn=2) for c in callers))
    # What the server sent has reached the database once the event writer's flush ran (1 s).
    await asyncio.sleep(1.5)
    server.send_signal(signal.SIGKILL)
    await asyncio.to_thread(server.wait, 10)
    for caller in callers:
        await asyncio.wait_for(caller.closed.wait(), 10)
        await caller.aclose()
    return callers
