"""Soak test: N concurrent calls for M minutes over loopback; memory, lost turns, errors, drift.

    python bench/soak.py [--calls 50] [--minutes 10] [--servers 2] [--redial-minutes 3]
                         [--json FILE]

Built on bench/concurrency.py (read its docstring): the same Daphne server processes
(``concurrency.py --serve``: real Silero VAD, the benchmark-only simulated STT and TTS of
``PARLEY_SIMULATED_SPEECH``, every event persisted to PostgreSQL), the same LLM simulator
process and the same cheap load generator, here run for a duration instead of a number of
turns:

- ``--servers K`` Daphne processes; callers are spread over them round-robin (call i on
  server i mod K), as the proxy spreads calls over web replicas. One process holds about 40
  calls in real time (README, Latency), so 50 calls need two: the default, sized for this
  2-core machine (one web process per core).
- Every caller talks continuously: an utterance, the agent's reply, a pause of 0.3-1 s, the
  next utterance, until the end. Every ``--redial-minutes`` (staggered: each call's first
  redial at 0.5-1.5 times the period) a call hangs up after a reply and dials again with a
  new call token, so call set-up and teardown run all along (0: never).
- Every ``--sample-s`` seconds: RSS and CPU time of each server process (/proc).

Reported:

- **memory over time**: each server's RSS per minute (and every sample in the JSON).
- **lost turns**: caller utterances without a persisted, answered turn — utterances the
  callers spoke minus the database's caller turns (``Turn`` index >= 1) that completed with
  an agent reply (must be 0). The client's own count of unanswered turns is shown too.
- **error events**: ``CallEvent`` rows of type ``error`` by code, plus connections lost and
  client-side time-outs.
- **TTFA per minute**: the caller-measured TTFA minus the agent's end-of-turn silence (added
  TTFA, as in concurrency.py), p50/p95 per minute of the run, and the **drift**: p95 of the
  last minute minus p95 of the first. Also the caller-frame wait (ping round trip behind the
  caller's audio) and the servers' event-loop lag per minute.

Before the run each server takes one warm-up call (a process's first call pays one-time
costs), unless ``--no-warm-up``. Prints tables; ``--json FILE`` writes every figure. Not a
test: nothing asserts a time (tests/bench/test_soak_smoke.py checks that it runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import concurrency as cc  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/parleysoak"


# ================================================================ load generator process


class SoakCall(cc.LoadCall):
    """A caller that keeps talking until the run stops, and redials when its time comes."""

    def __init__(self, gen: SoakGenerator, index: int, token: str, plan: list[str], server: int):
        super().__init__(gen, index, token, plan)
        self.server = server
        self.redial_at = math.inf  # time.monotonic() after which the next reply ends the call
        self.redialing = False

    def _reply_done(self, now: float) -> None:
        super()._reply_done(now)
        if self.state == "gap" and now >= self.redial_at and not self.gen.stopping:
            self.redialing = True
            self.hang_up()


class SoakGenerator(cc.LoadGenerator):
    """``concurrency.LoadGenerator`` for a duration: calls spread over several servers, talking
    until ``stop``, redialing every ``redial_s``. Protocol on stdin/stdout as there: prints
    ``connected`` and ``progress``; reads ``go`` and ``stop``."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        self.ports: list[int] = spec["ports"]
        self.initial: int = spec["initial"]
        self.redial_s: float = spec["redial_s"]
        self.next_token = 0
        self.redials = 0
        self.going = False
        self.watchers: list[asyncio.Task[None]] = []

    def _redial_time(self, now: float, *, first: bool) -> float:
        if self.redial_s <= 0:
            return math.inf
        return now + self.redial_s * (self.rng.uniform(0.5, 1.5) if first else 1.0)

    async def _dial(self, slot: int, *, first: bool) -> None:
        loop = asyncio.get_running_loop()
        if self.next_token >= len(self.tokens):
            self.errors.append(f"slot {slot}: out of call tokens, not redialed")
            return
        token = self.tokens[self.next_token]
        self.next_token += 1
        call = SoakCall(
            self, len(self.calls), token, self.plans[slot], server=slot % len(self.ports)
        )
        call.slot = slot  # type: ignore[attr-defined]
        call.first = first  # type: ignore[attr-defined]
        self.calls.append(call)
        self.watchers.append(loop.create_task(self._watch(call, slot)))
        try:
            await loop.create_connection(lambda: call, self.host, self.ports[call.server])
        except OSError as exc:
            call.failed = f"connect: {exc}"
            call.lost = True
            call._finish()
            self._check_connected()

    async def _watch(self, call: SoakCall, slot: int) -> None:
        await call.ended
        if call.redialing and not self.stopping:
            self.redials += 1
            await self._dial(slot, first=False)

    def call_connected(self, call: cc.LoadCall) -> None:
        self.connected += 1
        if self.going and isinstance(call, SoakCall):
            now = time.monotonic()
            call.start_talking(self.rng.uniform(0.3, 1.0))
            call.redial_at = self._redial_time(now, first=False)
        self._check_connected()

    def _check_connected(self) -> None:
        first = [c for c in self.calls if getattr(c, "first", False)]
        if len(first) == self.initial and all(c.session_at or c.failed for c in first):
            self._all_connected.set()

    def turn_finished(self, call: cc.LoadCall) -> None:
        self.turns_total += 1

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        self.clock0 = time.monotonic()
        commands, read_commands = await cc.stdin_commands()
        tasks = [
            read_commands,
            loop.create_task(self._clock(), name="clock"),
            loop.create_task(self._progress(), name="progress"),
        ]
        for slot in range(self.initial):
            await self._dial(slot, first=True)
            await asyncio.sleep(1 / self.connect_rate)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_connected.wait(), timeout=60)
        failures = sorted({str(c.failed) for c in self.calls if c.failed})
        failed = sum(1 for c in self.calls if c.failed)
        self._say(
            {"event": "connected", "n": self.connected, "failed": failed, "reasons": failures[:5]}
        )
        while await commands.get() != "go":
            pass
        self.window["start"] = now = time.monotonic()
        self.going = True
        for call in self.calls:
            if not call.failed and isinstance(call, SoakCall):
                call.start_talking(self.rng.uniform(0.5, 3.0))
                call.redial_at = self._redial_time(now, first=True)
        while await commands.get() != "stop":
            pass
        self.window["end"] = time.monotonic()
        self.stopping = True
        # Calls between turns hang up now; the others after the reply they are waiting for
        # (LoadCall._reply_done: stopping and turns_done >= 0).
        for call in self.calls:
            if call.state in ("mic", "lead", "gap"):
                call.hang_up()
        pending = [c.ended for c in self.calls if not c.ended.done()]
        if pending:
            await asyncio.wait(pending, timeout=cc.REPLY_TIMEOUT_S + 15)
        for call in self.calls:
            if not call.ended.done():
                call._fail(f"did not end (state {call.state})", lost=False)
        for task in tasks + self.watchers:
            task.cancel()
        await asyncio.gather(*tasks, *self.watchers, return_exceptions=True)
        result = self.result()
        for row, call in zip(result["calls"], self.calls, strict=True):
            assert isinstance(call, SoakCall)
            row["server"] = call.server
            row["utterances"] = call.utterances
            row["replies"] = call.turns_done
        result["redials"] = self.redials
        result["errors"] = self.errors[:200]
        return result


def load(spec_path: Path, out: Path) -> None:
    spec = json.loads(spec_path.read_text())
    out.write_text(json.dumps(asyncio.run(SoakGenerator(spec).run())))
    print(json.dumps({"event": "result", "path": str(out)}), flush=True)


# ================================================================ orchestrator


def _minute_rows(
    result: dict[str, Any],
    *,
    samples: list[dict[str, Any]],
    lags: list[cc.ServerLag],
    endpointing_ms: float,
    minutes: int,
) -> list[dict[str, Any]]:
    """Per-minute figures of the run: turns, added TTFA p50/p95, caller wait p95, loop lag
    p95 and RSS/CPU per server."""
    start = result["window"]["start"]
    added: list[list[float]] = [[] for _ in range(minutes)]
    unanswered = [0] * minutes
    waits: list[list[float]] = [[] for _ in range(minutes)]
    for call in result["calls"]:
        for turn in call["turns"]:
            at = turn["speech_end_at"]
            if at is None or at < start:
                continue
            m = min(minutes - 1, int((at - start) // 60))
            if turn["first_audio_at"] is None:
                unanswered[m] += 1
            else:
                added[m].append((turn["first_audio_at"] - at) * 1000 - endpointing_ms)
        for sent, rtt in call["pings"]:
            if sent >= start:
                waits[min(minutes - 1, int((sent - start) // 60))].append(rtt)
    rows = []
    for m in range(minutes):
        lo, hi = start + 60 * m, start + 60 * (m + 1)
        inside = [s for s in samples if lo <= s["t"] <= hi]
        row: dict[str, Any] = {
            "minute": m + 1,
            "turns": len(added[m]) + unanswered[m],
            "unanswered": unanswered[m],
            "added_ttfa_p50_ms": cc._pct(added[m], 50),
            "added_ttfa_p95_ms": cc._pct(added[m], 95),
            "caller_wait_p95_ms": cc._pct(waits[m], 95),
        }
        for k, lag in enumerate(lags):
            row[f"server{k}_loop_lag_p95_ms"] = lag.window(lo, hi).get("loop_lag_p95_ms")
            if inside:
                row[f"server{k}_rss_mb"] = round(inside[-1]["rss_mb"][k], 1)
            if len(inside) >= 2:
                seconds = inside[-1]["t"] - inside[0]["t"]
                cpu = inside[-1]["cpu_s"][k] - inside[0]["cpu_s"][k]
                row[f"server{k}_cpu_pct"] = round(100 * cpu / seconds, 1) if seconds else None
        rows.append(row)
    return rows


def _database_figures(*, agent: Any, since: Any) -> dict[str, Any]:
    """What the database holds for the run's conversations (those started after ``since``):
    caller turns, answered ones, error events by code. Waits (up to 60 s) for every call to
    be closed, so every turn and event has been written."""
    from django.db.models import Q

    from parley.conversations.models import CallEvent, Conversation, Turn

    conversations = Conversation.objects.filter(agent=agent, started_at__gte=since)
    deadline = time.monotonic() + 60
    while conversations.filter(status=Conversation.Status.ACTIVE).exists():
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    turns = Turn.objects.filter(conversation__in=conversations, index__gte=1)
    answered = turns.filter(status=Turn.Status.COMPLETED).exclude(
        Q(agent_text="") & Q(spoken_text="")
    )
    errors: dict[str, int] = {}
    for data in CallEvent.objects.filter(conversation__in=conversations, type="error").values_list(
        "data", flat=True
    ):
        code = str((data or {}).get("code", "?"))
        errors[code] = errors.get(code, 0) + 1
    return {
        "conversations": conversations.count(),
        "conversations_active": conversations.filter(status=Conversation.Status.ACTIVE).count(),
        "conversations_error": conversations.filter(status=Conversation.Status.ERROR).count(),
        "db_turns": turns.count(),
        "db_turns_answered": answered.count(),
        "db_turns_by_status": {
            status: turns.filter(status=status).count()
            for status in turns.values_list("status", flat=True).distinct()
        },
        "error_events": errors,
    }


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    def f(value: Any) -> str:
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    header = [title for title, _ in columns]
    cells = [[f(row.get(key)) for _, key in columns] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = [" | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    from parley.testing.simulators import SimulatorProcess, free_port

    out_dir = ROOT / "var" / "bench" / "soak"
    out_dir.mkdir(parents=True, exist_ok=True)
    run_s = args.minutes * 60
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "parley.platform.settings.local",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "PARLEY_SIMULATED_SPEECH": "1",
        "PARLEY_CALL_TOKEN_TTL_S": str(int(run_s + 900)),
        "PARLEY_RECORDINGS_DIR": str(out_dir / "recordings"),
        "PARLEY_REPORTS_DIR": str(out_dir / "reports"),
        "PARLEY_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    if not args.skip_migrate:
        print(f"database {args.database_url}: create if missing, migrate", flush=True)
        cc._database_ensure(args.database_url)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
    cc._django_setup(env)
    from django.utils import timezone

    from parley.agents.call_tokens import call_token_issue

    llm = SimulatorProcess("soak-llm", ttft_ms=0, itl_ms=0)
    llm.start()
    servers: list[cc.Child] = []
    gen: cc.Child | None = None
    try:
        agent = cc._agent_ensure(llm_base_url=llm.base_url, record=False)
        clips = cc._clips_select(agent)
        ports = [free_port() for _ in range(args.servers)]
        for k, port in enumerate(ports):
            servers.append(
                cc.Child(
                    f"server {k}",
                    [sys.executable, str(ROOT / "bench" / "concurrency.py"), "--serve"]
                    + ["--port", str(port)],
                    env=env,
                )
            )
        for server in servers:
            server.wait_for("ready", timeout_s=90)
        lags = [cc.ServerLag(server) for server in servers]
        assert llm.process is not None
        endpointing_ms = float(agent.endpointing_ms)
        if not args.no_warm_up:
            for k, port in enumerate(ports):
                cc._step(
                    1,
                    turns=1,
                    args=argparse.Namespace(connect_rate=50.0, database_url=args.database_url),
                    env=env,
                    port=port,
                    clips=clips,
                    issue=lambda: call_token_issue(agent=agent, purpose="server"),
                    pids={"server": servers[k].process.pid, "llm": llm.process.pid},
                    lag=lags[k],
                    endpointing_ms=endpointing_ms,
                    out_dir=out_dir,
                )
                print(f"warm-up: server {k} took one call", flush=True)
        # Enough tokens for every redial (each call redials at most every half period).
        redial_s = args.redial_minutes * 60
        per_call = 2 + (math.ceil(run_s / (0.5 * redial_s)) if redial_s > 0 else 0)
        rng = random.Random(args.calls)
        spec = {
            "host": "127.0.0.1",
            "port": ports[0],
            "ports": ports,
            "path": f"/ws/agents/{cc.AGENT_SLUG}/call",
            "tokens": [
                call_token_issue(agent=agent, purpose="server")
                for _ in range(args.calls * per_call)
            ],
            "plans": [rng.sample(clips, len(clips)) for _ in range(args.calls)],
            "turns": 0,
            "initial": args.calls,
            "redial_s": redial_s,
            "connect_rate": args.connect_rate,
            "seed": args.calls,
        }
        spec_path, result_path = out_dir / "load.json", out_dir / "result.json"
        spec_path.write_text(json.dumps(spec))
        since = timezone.now()
        gen = cc.Child(
            "load generator",
            [sys.executable, __file__, "--load", str(spec_path), "--out", str(result_path)],
            env=env,
        )
        connected = gen.wait_for("connected", timeout_s=120)
        if connected["failed"]:
            # A soak with fewer calls than asked for measures something else: stop here.
            gen.process.kill()
            raise SystemExit(
                f"{connected['failed']} of {args.calls} calls could not connect: "
                + "; ".join(connected.get("reasons", []))
            )
        print(
            f"{connected['n']} calls connected on {args.servers} server(s), "
            f"{connected['failed']} failed; running {args.minutes:g} min",
            flush=True,
        )
        pids = [server.process.pid for server in servers]
        samples: list[dict[str, Any]] = []

        def sample() -> None:
            samples.append(
                {
                    "t": time.monotonic(),
                    "rss_mb": [cc.ProcStat.rss_mb(pid) for pid in pids],
                    "cpu_s": [cc.ProcStat.cpu_s(pid) for pid in pids],
                }
            )

        gen.send("go")
        started = time.monotonic()
        sample()
        next_sample, next_report = started + args.sample_s, started + 60
        turns_seen = 0
        while (now := time.monotonic()) < started + run_s:
            while gen.lines:
                line = gen.lines.popleft()
                if line.get("event") == "progress":
                    turns_seen = line["turns"]
            for lag in lags:
                lag.drain()
            for server in servers:
                if server.process.poll() is not None:
                    raise SystemExit(f"{server.name} exited:\n{server.tail()}")
            if now >= next_sample:
                sample()
                next_sample += args.sample_s
            if now >= next_report:
                next_report += 60
                rss = ", ".join(f"{r:.0f}" for r in samples[-1]["rss_mb"])
                print(
                    f"  {(now - started) / 60:.0f} min: {turns_seen} turns, RSS MB {rss}",
                    flush=True,
                )
            time.sleep(min(0.5, max(0.0, min(next_sample, started + run_s) - now)))
        sample()
        gen.send("stop")
        gen.wait_for("result", timeout_s=cc.REPLY_TIMEOUT_S + 60)
        gen.process.wait(timeout=30)
        sample()
        spec_path.unlink(missing_ok=True)  # it holds call tokens
        result = json.loads(result_path.read_text())
        database = _database_figures(agent=agent, since=since)
    finally:
        if gen is not None:
            gen.stop()
        for server in servers:
            server.stop()
        llm.stop()

    minutes = max(1, math.ceil(run_s / 60 - 1e-9))
    rows = _minute_rows(
        result, samples=samples, lags=lags, endpointing_ms=endpointing_ms, minutes=minutes
    )
    calls = result["calls"]
    utterances = sum(c["utterances"] for c in calls)
    first_p95, last_p95 = rows[0]["added_ttfa_p95_ms"], rows[-1]["added_ttfa_p95_ms"]
    summary = {
        "calls": args.calls,
        "servers": args.servers,
        "minutes": args.minutes,
        "calls_placed": len(calls),
        "redials": result["redials"],
        "calls_by_server": [sum(1 for c in calls if c["server"] == k) for k in range(args.servers)],
        "connections_lost": sum(1 for c in calls if c["lost"]),
        "utterances": utterances,
        "replies_client": sum(c["replies"] for c in calls),
        "unanswered_client": sum(r["unanswered"] for r in rows),
        **database,
        "lost_turns": max(0, utterances - database["db_turns_answered"]),
        "client_errors": len(result["errors"]),
        "added_ttfa_p95_drift_ms": (
            round(last_p95 - first_p95, 1)
            if first_p95 is not None and last_p95 is not None
            else None
        ),
        "rss_first_mb": [round(r, 1) for r in samples[0]["rss_mb"]],
        "rss_last_mb": [round(r, 1) for r in samples[-1]["rss_mb"]],
        "rss_peak_mb": [
            round(max(s["rss_mb"][k] for s in samples), 1) for k in range(args.servers)
        ],
    }
    columns = [
        ("min", "minute"),
        ("turns", "turns"),
        ("unanswered", "unanswered"),
        ("added TTFA p50", "added_ttfa_p50_ms"),
        ("p95", "added_ttfa_p95_ms"),
        ("caller wait p95", "caller_wait_p95_ms"),
    ]
    for k in range(args.servers):
        columns += [
            (f"s{k} RSS MB", f"server{k}_rss_mb"),
            (f"s{k} CPU %", f"server{k}_cpu_pct"),
            (f"s{k} lag p95", f"server{k}_loop_lag_p95_ms"),
        ]
    print()
    print(_table(rows, columns))
    print(
        "\nms. added TTFA = caller's TTFA - end-of-turn silence (500 ms); caller wait = ping round "
        "trip behind the caller's frames; lag = server event-loop lag; CPU % of one core."
    )
    print()
    print(
        _table(
            [summary],
            [
                ("calls", "calls"),
                ("servers", "servers"),
                ("placed", "calls_placed"),
                ("utterances", "utterances"),
                ("DB answered", "db_turns_answered"),
                ("lost turns", "lost_turns"),
                ("lost conns", "connections_lost"),
                ("p95 drift ms", "added_ttfa_p95_drift_ms"),
            ],
        )
    )
    print(f"\nerror events by code: {database['error_events'] or 'none'}")
    print(f"client-side errors: {result['errors'][:10] or 'none'}")
    print(
        f"RSS MB per server: first {summary['rss_first_mb']}, last {summary['rss_last_mb']}, "
        f"peak {summary['rss_peak_mb']}"
    )
    report = {
        "benchmark": "soak",
        "machine": cc._machine(),
        "settings": {
            "calls": args.calls,
            "minutes": args.minutes,
            "servers": args.servers,
            "redial_minutes": args.redial_minutes,
            "sample_s": args.sample_s,
            "warm_up": not args.no_warm_up,
            "database": args.database_url.rsplit("@", 1)[-1],
            "redis": bool(args.redis_url),
            "simulated_delays_ms": {"stt": 0, "llm_ttft": 0, "llm_itl": 0, "tts_ttfb": 0},
        },
        "summary": summary,
        "minutes": rows,
        "rss_samples": samples,
        "client_errors": result["errors"],
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50, help="concurrent calls (50)")
    parser.add_argument("--minutes", type=float, default=10.0, help="duration of the run (10)")
    parser.add_argument(
        "--servers",
        type=int,
        default=2,
        help="Daphne processes, calls spread round-robin (2: one per core here; ~40 calls each)",
    )
    parser.add_argument(
        "--redial-minutes",
        type=float,
        default=3.0,
        help="each call hangs up and redials about this often (0: never; 3)",
    )
    parser.add_argument("--sample-s", type=float, default=10.0, help="RSS sampling period (10)")
    parser.add_argument("--connect-rate", type=float, default=20.0, help="new calls per second")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument(
        "--redis-url",
        default="",
        help="Redis for the servers' cache and channel layer (default: none, per-process memory)",
    )
    parser.add_argument("--no-warm-up", action="store_true", help="skip each server's first call")
    parser.add_argument(
        "--skip-migrate", action="store_true", help="the database is already migrated"
    )
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load(args.load, args.out)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
