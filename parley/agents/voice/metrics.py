"""Latency statistics shared by the call client, the reports and the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

#: Per-turn latency components in pipeline order (ms). See ``Turn`` for definitions.
LATENCY_COMPONENTS = (
    "endpointing_ms",
    "stt_final_ms",
    "llm_ttft_ms",
    "first_chunk_ms",
    "tts_ttfb_ms",
    "ttfa_ms",
)

#: Reported by the caller's client (the browser widget), not measured by the server (ms):
#: TTFA at the caller's ear, its playout delay and the WebSocket round trip.
CLIENT_LATENCY_COMPONENTS = ("ear_ttfa_ms", "playout_delay_ms", "network_rtt_ms")

#: Every per-turn latency a Turn row keeps (ms): the server's, then the client's.
TURN_LATENCY_COMPONENTS = (*LATENCY_COMPONENTS, *CLIENT_LATENCY_COMPONENTS)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100), linear interpolation between closest ranks (numpy's
    default method). Raises ``ValueError`` on an empty list."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(
    turns: Iterable[Mapping[str, Any]], components: Iterable[str] = LATENCY_COMPONENTS
) -> dict[str, dict[str, float | int]]:
    """Per component: ``n``, ``p50``, ``p95``, ``p99``, ``min``, ``max`` in ms over the turns
    that have it (``{"n": 0}`` when none do)."""
    rows = list(turns)
    summary: dict[str, dict[str, float | int]] = {}
    for name in components:
        values = [float(r[name]) for r in rows if r.get(name) is not None]
        if not values:
            summary[name] = {"n": 0}
            continue
        summary[name] = {
            "n": len(values),
            "p50": round(percentile(values, 50), 1),
            "p95": round(percentile(values, 95), 1),
            "p99": round(percentile(values, 99), 1),
            "min": round(min(values), 1),
            "max": round(max(values), 1),
        }
    return summary


def latency_table(summary: Mapping[str, Mapping[str, float | int]]) -> str:
    """A fixed-width text table of a :func:`latency_summary`."""
    lines = [f"{'component':<16}{'n':>4}{'p50':>10}{'p95':>10}{'min':>10}{'max':>10}"]
    for name, row in summary.items():
        if not row.get("n"):
            lines.append(f"{name:<16}{0:>4}{'-':>10}{'-':>10}{'-':>10}{'-':>10}")
            continue
        lines.append(
            f"{name:<16}{row['n']:>4}{row['p50']:>10.1f}{row['p95']:>10.1f}"
            f"{row['min']:>10.1f}{row['max']:>10.1f}"
        )
    return "\n".join(lines)
