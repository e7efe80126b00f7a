"""A simulated vLLM fleet: LLM simulator processes on free ports (tests and bench/fleet.py).

Each :class:`SimulatorProcess` is ``python manage.py llm_simulator`` in its own process,
reached over real HTTP like a vLLM server; its faults can be changed while it runs
(``POST /simulator/faults``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SimulatorProcess:
    """One simulator process. ``args``: extra ``llm_simulator`` options
    (``["--slow-factor", "5"]``). Raises ``RuntimeError`` when it does not come up."""

    def __init__(self, name: str, *args: str, ttft_ms: float = 150, itl_ms: float = 15) -> None:
        self.name = name
        self.port = free_port()
        self.args = ["--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms), *args]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 30.0) -> SimulatorProcess:
        self.spawn()
        return self.wait_ready(timeout_s=timeout_s)

    def spawn(self) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "parley.platform.settings.local"}
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "llm_simulator", "--port", str(self.port), *self.args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self, *, timeout_s: float = 30.0) -> SimulatorProcess:
        assert self.process is not None, "spawn() first"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"simulator {self.name} exited: {err[-2000:]}")
            try:
                if httpx.get(f"{self.root_url}/simulator/stats", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"simulator {self.name} did not start within {timeout_s:.0f} s")

    def faults(self, **changes: Any) -> dict[str, Any]:
        """Change the running server's faults; returns them all."""
        response = httpx.post(f"{self.root_url}/simulator/faults", json=changes, timeout=5)
        response.raise_for_status()
        return dict(response.json())

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.root_url}/simulator/stats", timeout=5).json())

    def kill(self) -> None:
        """SIGKILL, as when a server crashes or its host dies: open streams break at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()


def fleet_start(specs: dict[str, list[str]], **kwargs: Any) -> dict[str, SimulatorProcess]:
    """Start several simulators at once (``{name: extra args}``); stops them all on error."""
    processes = {name: SimulatorProcess(name, *args, **kwargs) for name, args in specs.items()}
    try:
        for process in processes.values():
            process.spawn()
        for process in processes.values():
            process.wait_ready()
    except BaseException:
        for process in processes.values():
            process.stop()
        raise
    return processes


def simulator_pool_ensure(*, slug: str, name: str, base_url: str) -> Any:
    """The model pool (created or updated) that reaches an LLM simulator process over HTTP
    like a vLLM server: kind OpenAI-compatible, ``base_url`` of the process, no API key.
    For benchmarks; needs Django set up. Returns the ``ModelPool``."""
    from parley.platform.fleet.models import ModelPool

    pool, _ = ModelPool.objects.update_or_create(
        slug=slug,
        defaults={
            "name": name,
            "kind": ModelPool.Kind.OPENAI_COMPATIBLE,
            "model": "parley-simulator",
            "base_url": base_url,
            "api_key_env": "",
        },
    )
    return pool
