"""Smoke test of ``bench/soak.py``: 2 calls on 2 Daphne servers for 15 s, with a redial, on
the test database (real Silero VAD, simulated speech, the LLM simulator process). Checks that
the benchmark runs end to end and that its accounting holds (every utterance answered and
persisted, calls spread over both servers, memory sampled); nothing asserts a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def test_soak_runs_two_calls_on_two_servers_and_loses_no_turn(tmp_path: Path) -> None:
    db = settings.DATABASES["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql", "soak.py needs PostgreSQL"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    out = tmp_path / "soak.json"
    completed = subprocess.run(
        [sys.executable, "bench/soak.py", "--calls", "2", "--minutes", "0.25", "--servers", "2"]
        + ["--redial-minutes", "0.1", "--sample-s", "2", "--no-warm-up", "--skip-migrate"]
        + ["--database-url", url, "--json", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads(out.read_text())
    summary = report["summary"]
    assert summary["calls_by_server"][0] >= 1 and summary["calls_by_server"][1] >= 1
    assert summary["redials"] >= 1 and summary["calls_placed"] == 2 + summary["redials"]
    assert summary["utterances"] >= 2
    assert summary["db_turns_answered"] == summary["utterances"] == summary["replies_client"]
    assert summary["lost_turns"] == 0 and summary["connections_lost"] == 0
    assert summary["error_events"] == {} and report["client_errors"] == []
    assert summary["conversations"] == summary["calls_placed"]
    assert summary["conversations_active"] == 0
    assert len(report["minutes"]) == 1 and report["minutes"][0]["turns"] >= 2
    assert len(report["rss_samples"]) >= 3
    assert all(rss > 50 for rss in summary["rss_peak_mb"])  # two live server processes
    assert "lost turns" in completed.stdout
