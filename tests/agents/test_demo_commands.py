"""The `make demo` path as a new user runs it: migrate, demo_setup, then `manage.py call`
with a real recording, served in-process by Daphne over a real TCP WebSocket.

Runs the commands as subprocesses against a fresh SQLite database of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from parley.agents.voice.audio import load_wav_resampled

ROOT = Path(__file__).resolve().parents[2]
DEMO_WAV = ROOT / "parley/agents/demo/ms_my_voice_is_my_passport.wav"

pytestmark = pytest.mark.slow


def manage(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def local_env(tmp_path: Path, database: str) -> dict[str, str]:
    """The environment of a new user's commands: development settings, a SQLite database of
    its own under ``tmp_path``, no Redis (eager Celery, in-memory channel layer)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "parley.platform.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / database}",
        "PARLEY_REPORTS_DIR": str(tmp_path / "reports"),
        "PARLEY_VAR_DIR": str(tmp_path / "var"),
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "",
    }


def test_demo_call_end_to_end(tmp_path: Path) -> None:
    env = local_env(tmp_path, "demo.sqlite3")
    for args in (("migrate", "--noinput", "-v", "0"), ("demo_setup",)):
        done = manage(*args, env=env)
        assert done.returncode == 0, done.stderr
    out = tmp_path / "call"
    done = manage(
        "call",
        "--agent",
        "hospital-receptionist",
        "--audio",
        str(DEMO_WAV),
        "--out",
        str(out),
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "caller [1]:" in done.stdout and "agent  [1]:" in done.stdout
    assert "ttfa_ms" in done.stdout

    events = [json.loads(line) for line in (out / "transcript.jsonl").read_text().splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "session.started" and kinds[-1] == "call.ended"
    final = next(e for e in events if e["type"] == "transcript.final")
    assert "passport" in final["text"]
    assert any(e["type"] == "agent.done" for e in events)

    with wave.open(str(out / "agent.wav")) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24_000, 1, 2)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(float)
    assert len(samples) / 24_000 > 0.5
    assert np.sqrt(np.mean(samples**2)) > 100  # clearly audible, not silence

    latency = json.loads((out / "latency.json").read_text())
    assert latency["components"]["ttfa_ms"]["n"] == 1
    assert latency["components"]["ttfa_ms"]["p50"] > 0

    # The server side wrote its own JSONL and latency report through Celery (eager).
    server_reports = list((tmp_path / "reports").rglob("transcript.jsonl"))
    assert len(server_reports) == 1
    assert (server_reports[0].parent / "latency.json").is_file()


def test_call_command_fails_clearly_for_a_missing_file(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"}
    done = manage("call", "--agent", "x", "--audio", "nope.wav", "--out", str(tmp_path), env=env)
    assert done.returncode != 0
    assert "no such audio file: nope.wav" in done.stderr


@contextlib.contextmanager
def vendor_fakes_in_a_thread(script_text: str) -> Iterator[tuple[object, object]]:
    """Fake Deepgram and ElevenLabs served from a background event loop, for subprocesses."""
    from parley.testing.deepgram_fake import FakeDeepgram, script_from_text
    from parley.testing.elevenlabs_fake import FakeElevenLabs

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    dg, el = FakeDeepgram(api_key="dg-cli-key"), FakeElevenLabs(api_key="el-cli-key", speed=0)
    clip = load_wav_resampled(DEMO_WAV, sample_rate_hz=16_000)
    dg.set_reference_audio(clip)  # the command sends silence first: align on the recording
    dg.set_script(script_from_text(script_text, 0.1, len(clip) / 32_000 - 0.1))
    asyncio.run_coroutine_threadsafe(dg.start(), loop).result(10)
    asyncio.run_coroutine_threadsafe(el.start(), loop).result(10)
    try:
        yield dg, el
    finally:
        asyncio.run_coroutine_threadsafe(dg.close(), loop).result(10)
        asyncio.run_coroutine_threadsafe(el.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_call_command_overrides_the_providers_for_one_call(tmp_path: Path) -> None:
    env = local_env(tmp_path, "cloud.sqlite3")
    for args in (("migrate", "--noinput", "-v", "0"), ("demo_setup",)):
        done = manage(*args, env=env)
        assert done.returncode == 0, done.stderr
    text = "My voice is my passport. Verify me."
    with vendor_fakes_in_a_thread(text) as (dg, el):
        env |= {
            "DEEPGRAM_URL": dg.url,  # type: ignore[attr-defined]
            "ELEVENLABS_URL": el.url,  # type: ignore[attr-defined]
            "DEEPGRAM_API_KEY": "dg-cli-key",
            "ELEVENLABS_API_KEY": "el-cli-key",
        }
        args = ["call", "--agent", "hospital-receptionist", "--audio", str(DEMO_WAV)]
        done = manage(
            *args,
            "--out",
            str(tmp_path / "call"),
            "--stt",
            "deepgram",
            "--tts",
            "elevenlabs",
            env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"caller [1]: {text}" in done.stdout
        assert el.requests and all(r.completed for r in el.requests)  # type: ignore[attr-defined]
        assert dg.connections[0].params["model"] == "nova-3"  # type: ignore[attr-defined]

        # Without the key the call is refused at start, with the variable named.
        del env["ELEVENLABS_API_KEY"]
        done = manage(*args, "--out", str(tmp_path / "nokey"), "--tts", "elevenlabs", env=env)
    assert done.returncode != 0
    assert "provider_not_configured" in done.stderr and "ELEVENLABS_API_KEY" in done.stderr

    events = [json.loads(line) for line in (tmp_path / "call/transcript.jsonl").open()]
    started = next(e for e in events if e["type"] == "session.started")
    assert started["providers"] == {"stt": "deepgram", "llm": "openai_compat", "tts": "elevenlabs"}
