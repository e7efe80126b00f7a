"""Horizontal scale: two Daphne processes and a Celery worker on one PostgreSQL and one Redis.

What a deployment with several web replicas behind the proxy relies on (docs/deployment.md):
each Daphne process serves calls independently, every row lands in the one database, tool
calls run on a separate Celery worker through the Redis broker, and the state that must hold
across processes lives in Redis — here a call token, single-use, spent on server A and then
refused by server B.

Real processes with the production settings (``parley.platform.settings.production``: no
eager Celery, the Redis cache and channel layer), real recorded speech through the offline
engines (Silero VAD, PocketSphinx, eSpeak NG), and the LLM simulator in its own process
playing a script that calls ``update_emergency_contact``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from django.conf import settings

from parley.agents.call_client import call_run
from parley.agents.call_tokens import call_token_issue
from parley.agents.models import Agent
from parley.agents.services import agent_create, scenario_install
from parley.conversations.models import Conversation, Turn
from parley.platform.fleet.models import ModelPool
from parley.testing.simulators import SimulatorProcess, free_port
from parley.tools.hospital.models import Patient
from parley.tools.models import ToolCall
from tests.conftest import SPEECH

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT_KEY = "scale-out"
UTTERANCE = SPEECH / "ms_whats_the_weather_like.wav"
CONTACT = {"patient_identifier": "P2001", "contact_name": "Ann Smith", "contact_phone": "555-0000"}


def _database_url() -> str:
    db = settings.DATABASES["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql", "this test needs PostgreSQL"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Processes:
    """Child processes of the test, stopped (and their output shown on failure) at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        self.children[name] = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def log(self, name: str, *, tail: int | None = 3000) -> str:
        text = (self.log_dir / f"{name}.log").read_text(errors="replace")
        return text if tail is None else text[-tail:]

    def alive(self, name: str) -> None:
        if self.children[name].poll() is not None:
            pytest.fail(f"{name} exited ({self.children[name].returncode}):\n{self.log(name)}")

    def stop(self) -> None:
        for process in self.children.values():
            if process.poll() is None:
                process.terminate()
        for process in self.children.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    children = Processes(tmp_path)
    try:
        yield children
    finally:
        children.stop()


def _wait_serving(processes: Processes, name: str, port: int, *, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        processes.alive(name)
        try:
            httpx.get(f"http://127.0.0.1:{port}/admin/login/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    pytest.fail(f"{name} did not serve within {timeout_s:.0f} s:\n{processes.log(name)}")


def test_two_daphne_processes_and_a_worker_share_postgresql_and_redis(
    processes: Processes, tmp_path: Path
) -> None:
    redis_url = os.environ.get("REDIS_URL", "")
    assert redis_url, "REDIS_URL must point at the test Redis server (make test sets it)"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "parley.platform.settings.production",
        # Tokens are signed by this test process and verified by the servers.
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        # This run's own cache keys (spent call tokens) in the shared Redis.
        "PARLEY_CACHE_PREFIX": f"scale-{uuid.uuid4().hex[:8]}",
        "PARLEY_VAR_DIR": str(tmp_path / "var"),
        "PARLEY_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    ports = {"web-a": free_port(), "web-b": free_port()}
    # Start everything first (each process takes seconds to import), then set up the data.
    processes.start(
        "worker",
        [sys.executable, "-m", "celery", "-A", "parley.platform", "worker", "--pool", "solo"]
        + ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
        env,
    )
    for name, port in ports.items():
        processes.start(
            name,
            # The production entry point: Daphne with the SIGTERM drain (docs/operations.md).
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env,
        )
    llm = SimulatorProcess("scale-llm", ttft_ms=20, itl_ms=2)
    llm.spawn()
    try:
        pool = ModelPool.objects.create(
            slug="scale-script",
            name="LLM simulator process, scripted",
            kind=ModelPool.Kind.OPENAI_COMPATIBLE,
            model=f"simulator-script/{SCRIPT_KEY}",
            base_url=llm.base_url,
        )
        agent = agent_create(
            slug="scale-out",
            name="Scale-out",
            scenario=scenario_install(slug="hospital"),
            model_pool=pool,
            prompt="You are a hospital receptionist.",
        )
        Agent.objects.filter(pk=agent.pk).update(greeting="")
        tokens = {name: call_token_issue(agent=agent, purpose="server") for name in ports}
        urls = {
            name: f"ws://127.0.0.1:{port}/ws/agents/{agent.slug}/call?token={tokens[name]}"
            for name, port in ports.items()
        }
        llm.wait_ready()
        steps = [{"tool_calls": [{"name": "update_emergency_contact", "arguments": CONTACT}]}]
        steps.append({"text": "Done, the emergency contact is updated."})
        response = httpx.post(
            f"{llm.root_url}/simulator/scripts/{SCRIPT_KEY}", json={"turns": [steps]}, timeout=5
        )
        assert response.status_code in (200, 201), response.text
        for name, port in ports.items():
            _wait_serving(processes, name, port)

        async def both_calls_then_token_reuse() -> tuple[list, dict]:
            results = await asyncio.gather(
                *(
                    call_run(url=url, audio_paths=[UTTERANCE], reply_timeout_s=30)
                    for url in urls.values()
                )
            )
            # The token web-a accepted, presented to web-b: spent in Redis, so refused.
            reused = (
                f"ws://127.0.0.1:{ports['web-b']}/ws/agents/{agent.slug}/call"
                f"?token={tokens['web-a']}"
            )
            async with websockets.connect(reused, open_timeout=10) as ws:
                refusal = json.loads(await asyncio.wait_for(ws.recv(), 10))
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
            return results, {"event": refusal, "close_code": closed.value.rcvd.code}

        results, reuse = asyncio.run(both_calls_then_token_reuse())
        for name in (*ports, "worker"):
            processes.alive(name)
    finally:
        llm.stop()

    # Both calls completed, each on its own server, into the one database.
    by_server = dict(zip(ports, results, strict=True))
    conversation_ids = {name: r.conversation_id for name, r in by_server.items()}
    assert all(conversation_ids.values()) and len(set(conversation_ids.values())) == 2
    for name, result in by_server.items():
        assert result.of_type("call.ended"), name
        assert not [e for e in result.of_type("error") if e.get("fatal")], name
        assert "emergency contact is updated" in " ".join(
            e["text"] for e in result.of_type("agent.text")
        ), name
    conversations = Conversation.objects.filter(pk__in=conversation_ids.values())
    assert {c.status for c in conversations} == {Conversation.Status.ENDED}
    turns = Turn.objects.filter(conversation__in=conversations, index=1)
    assert {t.status for t in turns} == {Turn.Status.COMPLETED} and turns.count() == 2

    # Each call's tool call ran on the Celery worker (through the Redis broker and result
    # backend: the servers do not run tasks eagerly), and its effect is in the database.
    calls = list(ToolCall.objects.filter(conversation__in=conversations))
    assert sorted(str(c.conversation_id) for c in calls) == sorted(conversation_ids.values())
    for call in calls:
        assert call.name == "update_emergency_contact"
        assert call.status == ToolCall.Status.OK, call.error
        assert call.celery_task_id
        assert f"tool_call_run[{call.celery_task_id}] received" in processes.log(
            "worker", tail=None
        )
    assert len({c.celery_task_id for c in calls}) == 2
    patient = Patient.objects.get(pk="P2001")
    assert (patient.emergency_contact, patient.emergency_phone) == ("Ann Smith", "555-0000")

    # Shared state: the token spent on web-a is refused by web-b.
    assert reuse["event"]["code"] == "bad_call_token"
    assert "already used" in reuse["event"]["message"]
    assert reuse["close_code"] == 4401
