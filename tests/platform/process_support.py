"""Subprocesses for the process-fault tests: Celery workers, Parley servers, Redis servers.

Every child runs from the repository root with this checkout on ``PYTHONPATH`` and the test
database (the one pytest-django created) in ``DATABASE_URL``. Callers kill what they start in
``finally`` (:func:`stop`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    assert url, "REDIS_URL must point at the test Redis server (make test sets it)"
    return url


def test_database_url() -> str:
    """The database the running test uses (pytest-django's ``test_...``), as a URL."""
    s = connection.settings_dict
    assert s["ENGINE"] == "django.db.backends.postgresql", "process tests need PostgreSQL"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return (
        f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/"
        f"{s['NAME']}"
    )


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="parley.platform.settings.test",
        DATABASE_URL=test_database_url(),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def spawn(args: list[str], *, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own process group, stdout and stderr to ``log``."""
    handle = log.open("ab")
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def celery_worker(*, log: Path, name: str, **extra_env: str) -> subprocess.Popen[bytes]:
    """``celery -A parley.platform worker`` (solo pool: the worker is one process)."""
    return spawn(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "parley.platform",
            "worker",
            "--pool=solo",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel=INFO",
            f"--hostname={name}@%h",
        ],
        log=log,
        env=child_env(**extra_env),
    )


def stop(process: subprocess.Popen[bytes] | None, *, sig: int = signal.SIGKILL) -> int | None:
    """Send ``sig`` to the process's group and reap it; its exit code."""
    if process is None:
        return None
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait(timeout=5)


def wait_for(check: Callable[[], object], *, timeout_s: float, what: str, log: Path | None = None):  # noqa: ANN201
    """Poll ``check`` every 50 ms until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{tail}")


def http_status(url: str) -> int | None:
    """The status of ``GET url``; ``None`` when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def redis_server(*, port: int, folder: Path) -> subprocess.Popen[bytes]:
    """A private ``redis-server`` on ``port`` (no persistence), for restart tests."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server must be installed (scripts/system-deps.sh)"
    return spawn(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        log=folder / f"redis-{port}.log",
        env=dict(os.environ),
    )


def parley_server(*, port: int, log: Path, **extra_env: str) -> subprocess.Popen[bytes]:
    """``manage.py serve`` on ``port`` (test settings, the test database); waits until
    ``/healthz`` answers."""
    process = spawn(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        log=log,
        env=child_env(**extra_env),
    )
    try:
        wait_for(
            lambda: process.poll() is not None or http_status(f"http://127.0.0.1:{port}/healthz"),
            timeout_s=40,
            what="the server to answer /healthz",
            log=log,
        )
    except BaseException:
        stop(process)
        raise
    assert process.poll() is None, log.read_text(errors="replace")[-3000:]
    return process
