"""Redis restarts while calls are in progress (docs/operations.md#redis-restarts).

A private ``redis-server`` (no persistence: what it held is gone after the restart, queued
tasks included, the realistic case) serves as Celery broker and result backend, cache and
channel layer of a ``manage.py serve`` process (production settings: tools run on the worker)
and of a Celery worker whose tools sleep 2 s inside their transaction (the test-only hook of
parley/testing/faults.py). Two callers speak recorded speech through the offline engines; the
LLM simulator (its own process) scripts a side-effecting tool call, ``schedule_appointment``,
on each call's first turn.

Restart 1: while call A's tool runs on the worker. Restart 2: Redis goes down as call B
finishes speaking, so B's tool call is sent while it is down, and call A hangs up during the
outage (its reports cannot be queued). Then a new call (token from the API, a tool call).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import websockets
from django.conf import settings

from parley.agents.call_tokens import call_token_issue
from parley.agents.models import Agent
from parley.agents.services import agent_create, scenario_install
from parley.agents.voice.audio import load_wav_resampled
from parley.agents.voice.messages import INPUT_FRAME_BYTES, INPUT_SAMPLE_RATE_HZ
from parley.conversations.models import CallEvent, Conversation, Turn
from parley.platform.fleet.models import ModelPool
from parley.testing.simulators import SimulatorProcess, free_port
from parley.tools.hospital.models import Appointment
from parley.tools.models import ToolCall
from tests.conftest import SPEECH
from tests.platform.process_support import (
    ROOT,
    celery_worker,
    http_status,
    redis_server,
    spawn,
    stop,
    wait_for,
)
from tests.platform.process_support import (
    test_database_url as database_url,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

UTTERANCE = SPEECH / "ms_turn_on_the_lamp.wav"
ORIGIN = "http://clinic.example"
FRAME_S = 0.020
SILENCE = bytes(INPUT_FRAME_BYTES)
#: The appointment each call books (its own time, so each call's effect is countable).
TIMES = {"a": "9:00 AM", "b": "10:00 AM", "c": "11:00 AM"}


def _booking(time_of_day: str) -> dict[str, str]:
    return {
        "patient_identifier": "Emily Davis",
        "doctor_identifier": "Dr. Sarah Johnson",
        "appointment_time": time_of_day,
        "appointment_date": "2024-02-12",
        "department": "Cardiology",
    }


def _appointments(time_of_day: str) -> int:
    return Appointment.objects.filter(
        patient__name="Emily Davis", appointment_date="2024-02-12", appointment_time=time_of_day
    ).count()


class Caller:
    """A caller on the WebSocket: a microphone that always sends 20 ms frames in real time
    (silence unless an utterance is queued), and every event received."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._frames: list[bytes] = []
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read())
        self._mic = loop.create_task(self._microphone())

    @classmethod
    async def connect(cls, url: str, **headers: str) -> Caller:
        ws = await websockets.connect(url, open_timeout=20, additional_headers=headers or None)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    event = json.loads(message)
                    event["at"] = time.monotonic()
                    self.events.append(event)
        except websockets.ConnectionClosed:
            pass

    async def _microphone(self) -> None:
        next_at = time.monotonic()
        try:
            while True:
                await self.ws.send(self._frames.pop(0) if self._frames else SILENCE)
                next_at += FRAME_S
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        except websockets.ConnectionClosed:
            pass

    def say(self, pcm: bytes) -> None:
        frames = [pcm[i : i + INPUT_FRAME_BYTES] for i in range(0, len(pcm), INPUT_FRAME_BYTES)]
        self._frames.extend(f + bytes(INPUT_FRAME_BYTES - len(f)) for f in frames)

    @property
    def speaking(self) -> bool:
        return bool(self._frames)

    def of(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["type"] == kind and all(e.get(k) == v for k, v in fields.items())
        ]

    @property
    def conversation_id(self) -> str:
        return str(self.of("session.started")[0]["conversation_id"])

    async def wait(self, kind: str, *, timeout_s: float = 30, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while not (found := self.of(kind, **fields)):
            if self._reader.done() or time.monotonic() > deadline:
                raise AssertionError(f"no {kind} {fields}; last events {self.events[-8:]}")
            await asyncio.sleep(0.02)
        return found[0]

    async def turn(self, pcm: bytes, *, index: int) -> dict[str, Any]:
        """Say ``pcm`` (caller turn ``index``) and return its ``turn.ended`` once answered."""
        self.say(pcm)
        return await self.wait("turn.ended", turn=index)

    async def hang_up(self) -> dict[str, Any]:
        self._mic.cancel()
        await asyncio.gather(self._mic, return_exceptions=True)
        await self.ws.send(json.dumps({"type": "hangup"}))
        ended = await self.wait("call.ended", timeout_s=20)
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)
        return ended


def _agent(key: str, llm: SimulatorProcess) -> Agent:
    """An agent whose LLM (script ``redis-<key>``) books an appointment on the caller's first
    turn, then says one sentence per turn."""
    script = f"redis-{key}-{uuid.uuid4().hex[:6]}"
    turns = [
        [
            {"tool_calls": [{"name": "schedule_appointment", "arguments": _booking(TIMES[key])}]},
            {"text": "It is booked."},
        ],
        [{"text": "Anything else?"}],
    ]
    response = httpx.post(f"{llm.root_url}/simulator/scripts/{script}", json={"turns": turns})
    assert response.status_code in (200, 201), response.text
    pool = ModelPool.objects.create(
        slug=script,
        name=script,
        kind=ModelPool.Kind.OPENAI_COMPATIBLE,
        model=f"simulator-script/{script}",
        base_url=llm.base_url,
    )
    agent = agent_create(
        slug=f"redis-{key}",
        name=f"Redis {key}",
        scenario=scenario_install(slug="hospital"),
        model_pool=pool,
        prompt="You are a hospital receptionist.",
    )
    Agent.objects.filter(pk=agent.pk).update(allowed_origins=ORIGIN)
    agent.refresh_from_db()
    return agent


class RedisServer:
    """The private ``redis-server``: killed (SIGKILL) and started again on the same port."""

    def __init__(self, folder: Path) -> None:
        self.port, self.folder = free_port(), folder
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.outages: list[tuple[float, float]] = []  # (down at, up at), monotonic s

    def start(self) -> None:
        self.process = redis_server(port=self.port, folder=self.folder)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        wait_for(lambda: _pings(client), timeout_s=10, what="redis-server")
        if self.outages and self.outages[-1][1] == 0:
            self.outages[-1] = (self.outages[-1][0], time.monotonic())

    def kill(self) -> None:
        stop(self.process)  # every key, queued task and stored result is gone
        self.outages.append((time.monotonic(), 0))


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.mark.django_db(transaction=True)
def test_calls_survive_redis_restarts_and_nothing_is_half_written(tmp_path: Path) -> None:
    store = RedisServer(tmp_path)
    store.start()
    web_port, mark = free_port(), tmp_path / "tool-running"
    log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    worker = server = None
    llm = SimulatorProcess("redis-llm", ttft_ms=20, itl_ms=2)
    try:
        # The worker runs the test settings: its tools sleep 2 s once they have written.
        worker = celery_worker(
            log=worker_log,
            name="redis-restart",
            REDIS_URL=store.url,
            PARLEY_TEST_TOOL_DELAY_S="2",
            PARLEY_TEST_TOOL_MARK=str(mark),
        )
        # Production settings: the Redis cache and Celery broker, tools run on the worker.
        server = spawn(
            [sys.executable, "manage.py", "serve", "--port", str(web_port)],
            log=log,
            env=_server_env(store.url, tmp_path),
        )
        llm.spawn()
        llm.wait_ready()
        agents = {key: _agent(key, llm) for key in TIMES}
        wait_for(
            lambda: (
                server.poll() is not None or http_status(f"http://127.0.0.1:{web_port}/healthz")
            ),
            timeout_s=40,
            what="the server",
            log=log,
        )
        assert server.poll() is None, log.read_text()[-3000:]
        wait_for(
            lambda: " ready." in worker_log.read_text(errors="replace"),
            timeout_s=40,
            what="the worker",
            log=worker_log,
        )
        callers = asyncio.run(_scenario(web_port, agents, store, mark))
        assert server.poll() is None and worker.poll() is None
    finally:
        llm.stop()
        stop(server)
        stop(worker)
        stop(store.process)
    server_log = log.read_text(errors="replace")
    _assert_nothing_half_written(callers, server_log)


async def _scenario(
    port: int, agents: dict[str, Agent], store: RedisServer, mark: Path
) -> dict[str, Caller]:
    pcm = load_wav_resampled(UTTERANCE, sample_rate_hz=INPUT_SAMPLE_RATE_HZ)

    def ws_url(key: str, token: str) -> str:
        return f"ws://127.0.0.1:{port}/ws/agents/{agents[key].slug}/call?token={token}"

    tokens = {
        k: await asyncio.to_thread(
            call_token_issue, agent=agents[k[0] if k != "late" else "c"], purpose="server"
        )
        for k in ("a", "b", "late")
    }
    a = await Caller.connect(ws_url("a", tokens["a"]))
    b = await Caller.connect(ws_url("b", tokens["b"]))
    await asyncio.gather(a.wait("session.started"), b.wait("session.started"))

    # Restart 1: while A's tool runs on the worker (written, not committed).
    a.say(pcm)
    await _until(mark.exists, timeout_s=30, what="A's tool to run")
    store.kill()
    await asyncio.sleep(1.5)
    await asyncio.to_thread(store.start)
    await a.wait("turn.ended", turn=1)
    await a.turn(pcm, index=2)  # the call goes on

    # Restart 2: Redis goes down as B starts speaking, so B's tool call is sent while it is
    # down; A hangs up during the outage.
    b.say(pcm)
    await b.wait("vad.speech_start", turn=1)
    store.kill()
    a_ended = asyncio.ensure_future(a.hang_up())
    # Meanwhile no new call can be placed: a clear refusal, not a server error.
    refusals = await _refusals_while_down(port, agents["c"], ws_url("c", tokens["late"]))
    await b.wait("tool.call", turn=1, timeout_s=15)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(store.start)
    await a_ended
    await b.wait("turn.ended", turn=1)
    # Redis is back: B goes on, and a new call gets a token from the API and books.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        grant = await http.post(
            "/api/v1/call-tokens",
            json={"agent": agents["c"].slug, "key": agents["c"].publishable_key},
            headers={"Origin": ORIGIN},
        )
    assert grant.status_code == 200, grant.text
    c = await Caller.connect(
        f"{grant.json()['ws_url']}?token={grant.json()['token']}", Origin=ORIGIN
    )
    await c.wait("session.started")
    await asyncio.gather(b.turn(pcm, index=2), c.turn(pcm, index=1))
    await asyncio.gather(b.hang_up(), c.hang_up())
    assert refusals["api"] == (503, "service_unavailable"), refusals
    assert refusals["ws"] == ("service_unavailable", True, 4502), refusals
    return {"a": a, "b": b, "c": c}


async def _refusals_while_down(port: int, agent: Agent, url: str) -> dict[str, tuple]:
    """Ask the API for a call token and connect with a token, while Redis is down."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        grant = await http.post(
            "/api/v1/call-tokens",
            json={"agent": agent.slug, "key": agent.publishable_key},
            headers={"Origin": ORIGIN},
        )
    async with websockets.connect(url, open_timeout=10) as ws:
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    return {
        "api": (grant.status_code, grant.json().get("error")),
        "ws": (event.get("code"), event.get("fatal"), closed.value.rcvd.code),
    }


async def _until(check: Any, *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _assert_nothing_half_written(callers: dict[str, Caller], server_log: str) -> None:
    for key, caller in callers.items():
        # Every call ended cleanly: call.ended last, and the record says how it ended.
        assert caller.events[-1]["type"] == "call.ended", (key, caller.events[-5:], server_log)
        assert not [e for e in caller.of("error") if e.get("fatal")], (key, caller.events)
        conversation = Conversation.objects.get(id=caller.conversation_id)
        assert conversation.status == Conversation.Status.ENDED, (key, conversation.end_reason)
        assert conversation.ended_at is not None
        # Every caller turn was answered; no turn is left open.
        turns = list(conversation.turns.order_by("index"))
        assert [t.index for t in turns] == ([1] if key == "c" else [1, 2]), key
        for turn in turns:
            assert turn.status == Turn.Status.COMPLETED, (key, turn.index, turn.error)
            assert turn.ended_at is not None and turn.agent_text, (key, turn.index)
        seqs = list(
            CallEvent.objects.filter(conversation=conversation).values_list("seq", flat=True)
        )
        assert seqs == list(range(1, len(seqs) + 1)), key
        # The tool call: done exactly once with its effect, or failed with a reason and no
        # effect; never left running.
        (call,) = ToolCall.objects.filter(conversation=conversation)
        booked = _appointments(TIMES[key])
        result = caller.of("tool.result")[0]
        if call.status == ToolCall.Status.OK:
            assert booked == 1, key
            assert result["ok"] is True and "scheduled" in call.result, (key, result)
        else:
            assert call.status == ToolCall.Status.ERROR, (key, call.status)
            assert call.error and call.finished_at is not None, key
            assert booked == 0, (key, call.error)
            assert result["ok"] is False, (key, result)
    # A's tool was running when Redis went away: its result still reached the call.
    assert ToolCall.objects.get(conversation_id=callers["a"].conversation_id).status == "ok"
    # C was placed after the restarts: everything works again.
    assert ToolCall.objects.get(conversation_id=callers["c"].conversation_id).status == "ok"


def _server_env(url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "parley.platform.settings.production",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # the test signs the call tokens
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": database_url(),
        "REDIS_URL": url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "PARLEY_VAR_DIR": str(tmp_path / "var"),
        "PARLEY_LOG_LEVEL": "WARNING",
    }
