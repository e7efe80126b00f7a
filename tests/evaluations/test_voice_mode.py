"""Voice mode end to end: `manage.py evaluate --mode voice` as a user runs it.

The simulated caller's lines are synthesized and streamed in real time over a real TCP
WebSocket to Parley served in-process by Daphne (Silero VAD, PocketSphinx, the LLM simulator,
eSpeak NG); the agent's audio is transcribed back for the caller. Runs as subprocesses on a
fresh SQLite database of their own.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.agents.test_demo_commands import local_env, manage

pytestmark = pytest.mark.slow


def test_two_hospital_tasks_in_voice_mode(tmp_path: Path) -> None:
    database = tmp_path / "voice.sqlite3"
    env = local_env(tmp_path, database.name)
    for args in (("migrate", "--noinput", "-v", "0"), ("demo_setup",)):
        done = manage(*args, env=env)
        assert done.returncode == 0, done.stderr
    out = tmp_path / "voice"
    done = manage(
        "evaluate",
        "--agent",
        "hospital-receptionist",
        "--mode",
        "voice",
        "--task",
        "entry_4",
        "--task",
        "entry_1",
        "--out",
        str(out),
        env=env,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2/2" in done.stderr and "TTFA p50 (ms)" in done.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "voice" and summary["scores"]["runs"] == 2
    assert summary["scores"]["errors"] == 0
    assert summary["scores"]["ttfa_ms"]["n"] == 2  # one TTFA p50 per run, measured on audio
    for task_id in ("entry_4", "entry_1"):
        run = json.loads((out / f"{task_id}.json").read_text())
        assert run["status"] == "done" and run["conversation_id"]
        agent_lines = [d for d in run["dialogue"] if d["role"] == "agent"]
        assert agent_lines, run["dialogue"]
        for line in agent_lines:
            assert line["text"]  # what the agent said (its events)
            assert line["heard"]  # its audio, transcribed back for the caller
            assert line["caller_recognised"]  # what the agent's STT made of the caller
        assert run["scores"]["turns"] >= 2
        assert run["scores"]["latency_ms"]["ttfa_ms"]["p50"] > 0

    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT c.status, COUNT(t.id), SUM(t.ttfa_ms IS NOT NULL) "
            "FROM conversations_conversation c JOIN conversations_turn t "
            'ON t.conversation_id = c.id AND t."index" > 0 GROUP BY c.id'
        ).fetchall()
        sandboxes = db.execute("SELECT COUNT(*) FROM tools_environment WHERE kind = 'sandbox'")
        assert sandboxes.fetchone() == (0,)
    assert len(rows) == 2
    assert all(
        status == "ended" and turns >= 2 and spoken == turns for status, turns, spoken in rows
    )
