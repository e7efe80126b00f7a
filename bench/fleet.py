"""Routing a simulated vLLM fleet: Parley's router vs plain round-robin, side by side.

    python bench/fleet.py [--turns 400] [--concurrency 20] [--json FILE]

Four LLM simulator processes over real HTTP (TTFT median 150 ms, lognormal sigma 0.25; ITL
15 ms): ``s1`` and ``s2`` healthy, ``s3`` slow (TTFT and ITL x5), ``s4`` failing half its
requests (HTTP 500). The same load — ``--turns`` LLM requests in conversations of 4 turns,
``--concurrency`` conversations at a time — runs three ways in one run:

1. ``healthy-only``: Parley's router with ``s3`` and ``s4`` healed (the reference);
2. ``parley``: Parley's router (affinity, least-loaded, slow-server avoidance, failover before
   the first token, cooldown) on the faulty fleet;
3. ``round-robin``: each request to the next server in turn, no health, no failover.

TTFT is measured at the client: request start to the first text token, failovers included.
A failed turn is a request that produced no answer. Prints a table; ``--json`` writes the
figures. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parley.platform.settings.local")

from parley.agents.voice.llm.base import LLMError  # noqa: E402
from parley.agents.voice.llm.fleet import FleetLLM, FleetSettings  # noqa: E402
from parley.agents.voice.llm.openai_compat import (  # noqa: E402
    OpenAICompatLLM,
    OpenAICompatSettings,
)
from parley.agents.voice.messages import LLMDone, TextDelta  # noqa: E402
from parley.agents.voice.metrics import percentile  # noqa: E402
from parley.platform.fleet.router import FleetRouter, HealthPolicy, ServerConfig  # noqa: E402
from parley.testing.simulators import SimulatorProcess, fleet_start  # noqa: E402

MODEL = "parley-simulator"
TURNS_PER_CONVERSATION = 4
FLEET = {
    "s1": [],
    "s2": [],
    "s3": ["--slow-factor", "5"],
    "s4": ["--error-rate", "0.5"],
}
HEAL = {"slow_factor": 1.0, "error_rate": 0.0}
BREAK = {"s3": {"slow_factor": 5.0}, "s4": {"error_rate": 0.5}}


def _messages(conversation: int, turn: int) -> list[dict[str, str]]:
    history = []
    for t in range(turn + 1):
        history.append({"role": "user", "content": f"conversation {conversation} turn {t} hello"})
        if t < turn:
            history.append({"role": "assistant", "content": "You said hello."})
    return history


async def _one_turn(llm: Any, messages: list[dict[str, str]]) -> tuple[float | None, int]:
    """TTFT in ms (None: the turn failed) and the failovers the fleet made."""
    started = time.perf_counter()
    ttft_ms: float | None = None
    failovers = 0
    try:
        async for chunk in llm.stream(messages=messages):
            if isinstance(chunk, TextDelta) and ttft_ms is None:
                ttft_ms = (time.perf_counter() - started) * 1000
            elif isinstance(chunk, LLMDone) and chunk.route:
                failovers = chunk.route["failovers"]
    except LLMError as exc:
        return None, (exc.route or {}).get("failovers", 0)
    return ttft_ms, failovers


async def _run(name: str, make_llm: Any, *, turns: int, concurrency: int) -> dict[str, Any]:
    conversations = max(1, turns // TURNS_PER_CONVERSATION)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for c in range(conversations):
        queue.put_nowait(c)
    ttfts: list[float] = []
    failed = 0
    failovers = 0

    async def worker() -> None:
        nonlocal failed, failovers
        while not queue.empty():
            conversation = queue.get_nowait()
            llm = make_llm()
            try:
                for turn in range(TURNS_PER_CONVERSATION):
                    ttft, moved = await _one_turn(llm, _messages(conversation, turn))
                    failovers += moved
                    if ttft is None:
                        failed += 1
                    else:
                        ttfts.append(ttft)
            finally:
                await llm.aclose()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    ttfts.sort()
    return {
        "run": name,
        "turns": len(ttfts) + failed,
        "failed_turns": failed,
        "failovers": failovers,
        "ttft_p50_ms": round(percentile(ttfts, 50), 1),
        "ttft_p95_ms": round(percentile(ttfts, 95), 1),
        "ttft_p99_ms": round(percentile(ttfts, 99), 1),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


class RoundRobinLLM:
    """Plain round-robin over the servers: no health, no failover (the baseline)."""

    _counter = itertools.count()

    def __init__(self, servers: dict[str, SimulatorProcess]) -> None:
        self._clients = [
            OpenAICompatLLM(OpenAICompatSettings(base_url=s.base_url, model=MODEL))
            for s in servers.values()
        ]

    def stream(self, *, messages: list[dict[str, str]]) -> Any:
        client = self._clients[next(self._counter) % len(self._clients)]
        return client.stream(messages=messages)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def _router(servers: dict[str, SimulatorProcess]) -> FleetRouter:
    return FleetRouter(
        [
            ServerConfig(id=n, name=n, base_url=s.base_url, max_streams=16)
            for n, s in servers.items()
        ],
        policy=HealthPolicy(failure_threshold=3, cooldown_s=5.0),
    )


def _fleet_llm(router: FleetRouter) -> FleetLLM:
    return FleetLLM(
        settings=FleetSettings(pool="bench", model=MODEL, ttft_deadline_ms=1500, max_attempts=3),
        router=router,
    )


async def _bench(servers: dict[str, SimulatorProcess], turns: int, concurrency: int) -> list[dict]:
    rows = []
    for name in ("s3", "s4"):
        servers[name].faults(**HEAL)
    healthy = _router(servers)
    rows.append(
        await _run(
            "healthy-only", lambda: _fleet_llm(healthy), turns=turns, concurrency=concurrency
        )
    )
    for name, faults in BREAK.items():
        servers[name].faults(**faults)
    router = _router(servers)
    rows.append(
        await _run("parley", lambda: _fleet_llm(router), turns=turns, concurrency=concurrency)
    )
    rows.append(
        await _run(
            "round-robin", lambda: RoundRobinLLM(servers), turns=turns, concurrency=concurrency
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()

    print(f"starting {len(FLEET)} simulator processes ...", file=sys.stderr)
    specs = {
        name: [*extra, "--ttft-sigma", "0.25", "--seed", str(i)]
        for i, (name, extra) in enumerate(FLEET.items())
    }
    servers = fleet_start(specs, ttft_ms=150, itl_ms=15)
    try:
        rows = asyncio.run(_bench(servers, args.turns, args.concurrency))
    finally:
        for process in servers.values():
            process.stop()
    reference = rows[0]["ttft_p95_ms"]
    header = [
        "run",
        "turns",
        "failed_turns",
        "failovers",
        "ttft_p50_ms",
        "ttft_p95_ms",
        "ttft_p99_ms",
        "p95_vs_healthy",
        "elapsed_s",
    ]
    for row in rows:
        row["p95_vs_healthy"] = round(row["ttft_p95_ms"] / reference, 2) if reference else None
    print(
        f"fleet: s1, s2 healthy; s3 slow (x5); s4 fails 50% | {args.turns} turns, "
        f"concurrency {args.concurrency}"
    )
    print(" | ".join(f"{h:>14}" for h in header))
    for row in rows:
        print(" | ".join(f"{row[h]!s:>14}" for h in header))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "fleet": FLEET}, indent=2) + "\n")


if __name__ == "__main__":
    main()
