"""Figures of one agent over one UTC day: the content of an ``AgentDayReport`` (docs/reports.md).

Everything is computed from the call record (``Conversation``, ``Turn``, ``ToolCall``) in three
queries whatever the number of calls: conversations by status, the caller turns' latency
columns, tool calls by name. Latencies are in ms; percentiles interpolate linearly between
closest ranks (numpy's default, :func:`parley.agents.voice.metrics.percentile`).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from typing import Any

from django.db.models import Count, Q

from parley.agents.models import Agent
from parley.agents.voice.metrics import TURN_LATENCY_COMPONENTS, latency_summary
from parley.conversations.models import Conversation, Turn
from parley.tools.models import ToolCall

AGENT_DAY_FORMAT = "parley-agent-day/v1"

#: Every latency component a day report summarises, server-measured first (ms).
DAY_COMPONENTS = TURN_LATENCY_COMPONENTS

#: Lower edges of the TTFA histogram bins (ms). Bin *i* holds ``edges[i] <= ttfa <
#: edges[i + 1]``; the last bin is open-ended (``>= 5000``). Quarter seconds up to 1 s, where
#: a conversation still feels natural, then coarser steps up to the clearly broken.
TTFA_BIN_EDGES_MS = (0, 250, 500, 750, 1000, 1500, 2000, 3000, 5000)


def day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``[00:00 UTC of day, 00:00 UTC of the next day)`` as aware datetimes."""
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def ttfa_histogram(values: list[float]) -> list[dict[str, Any]]:
    """Count ``values`` (ms) into the :data:`TTFA_BIN_EDGES_MS` bins.

    Returns one dict per bin, in order: ``lo_ms``, ``hi_ms`` (``None`` for the last, open bin),
    ``label`` (``"0–250"``, …, ``"≥5000"``) and ``count``. A negative value (clock skew) counts
    in the first bin.
    """
    edges = TTFA_BIN_EDGES_MS
    counts = [0] * len(edges)
    for value in values:
        counts[max(bisect.bisect_right(edges, value) - 1, 0)] += 1
    bins = []
    for i, low in enumerate(edges):
        high = edges[i + 1] if i + 1 < len(edges) else None
        bins.append(
            {
                "lo_ms": low,
                "hi_ms": high,
                "label": f"{low}–{high}" if high is not None else f"≥{low}",
                "count": counts[i],
            }
        )
    return bins


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def agent_day_figures(*, agent: Agent, day: dt.date) -> dict[str, Any]:
    """The figures of ``agent``'s conversations that started on ``day`` (UTC).

    Shape (docs/reports.md)::

        {"format": "parley-agent-day/v1", "agent": slug, "day": "YYYY-MM-DD", "units": "ms",
         "window": {"since": iso, "until": iso},
         "calls": {"total": n, "by_status": {"active": n, "ended": n, "error": n, "aborted": n}},
         "turns": {"caller": n, "interrupted": n, "interruption_rate": 0.0–1.0 | None,
                   "by_status": {status: n}},
         "latency": {component: {"n", "p50", "p95", "p99", "min", "max"} | {"n": 0}},
         "ttfa_histogram": {"component": "ttfa_ms", "edges_ms": [...], "bins": [...]},
         "tools": {"total": n, "errors": n, "error_rate": 0.0–1.0 | None,
                   "by_name": [{"name", "total", "errors", "error_rate"}]}}

    Latency is over caller turns (index ≥ 1: the greeting has no caller speech to measure
    from); a component no turn measured is ``{"n": 0}``. Rates are ``None`` when their
    denominator is 0 and are rounded to 4 decimals. Three queries.
    """
    since, until = day_window(day)
    conversations = Conversation.objects.filter(
        agent=agent, started_at__gte=since, started_at__lt=until
    )
    by_status = {status: 0 for status in Conversation.Status.values}
    for status, count in conversations.values_list("status").annotate(n=Count("id")).order_by():
        by_status[status] = count

    turn_rows = list(
        Turn.objects.filter(conversation__in=conversations, index__gte=1).values(
            "status", *DAY_COMPONENTS
        )
    )
    turn_status = {status: 0 for status in Turn.Status.values}
    for row in turn_rows:
        turn_status[row["status"]] = turn_status.get(row["status"], 0) + 1
    caller_turns = len(turn_rows)
    interrupted = turn_status[Turn.Status.INTERRUPTED]

    ttfas = [float(row["ttfa_ms"]) for row in turn_rows if row["ttfa_ms"] is not None]
    ttfas = [value for value in ttfas if math.isfinite(value)]

    tools = []
    tools_total = tools_errors = 0
    tool_rows = (
        ToolCall.objects.filter(conversation__in=conversations)
        .values("name")
        .annotate(total=Count("id"), errors=Count("id", filter=Q(status=ToolCall.Status.ERROR)))
        .order_by("name")
    )
    for row in tool_rows:
        tools_total += row["total"]
        tools_errors += row["errors"]
        tools.append(
            {
                "name": row["name"],
                "total": row["total"],
                "errors": row["errors"],
                "error_rate": _rate(row["errors"], row["total"]),
            }
        )

    return {
        "format": AGENT_DAY_FORMAT,
        "agent": agent.slug,
        "day": day.isoformat(),
        "units": "ms",
        "window": {"since": since.isoformat(), "until": until.isoformat()},
        "calls": {"total": sum(by_status.values()), "by_status": by_status},
        "turns": {
            "caller": caller_turns,
            "interrupted": interrupted,
            "interruption_rate": _rate(interrupted, caller_turns),
            "by_status": turn_status,
        },
        "latency": latency_summary(turn_rows, DAY_COMPONENTS),
        "ttfa_histogram": {
            "component": "ttfa_ms",
            "edges_ms": list(TTFA_BIN_EDGES_MS),
            "bins": ttfa_histogram(ttfas),
        },
        "tools": {
            "total": tools_total,
            "errors": tools_errors,
            "error_rate": _rate(tools_errors, tools_total),
            "by_name": tools,
        },
    }


#: Column header of the CSV form of the figures.
CSV_HEADER = ("section", "name", "n", "p50", "p95", "p99", "max", "count", "errors", "rate")


def agent_day_csv_rows(figures: dict[str, Any]) -> list[list[Any]]:
    """The figures as CSV rows (header first), one table for spreadsheets (docs/reports.md).

    ``section`` says what a row is: ``latency`` (``name`` a component; ``n``, ``p50``,
    ``p95``, ``p99``, ``max`` in ms, blank when ``n`` is 0), ``ttfa_bin`` (``name`` the bin
    label in ms, ``count``), ``tool`` (``name`` a tool, or ``*`` for all tools: ``count``
    calls, ``errors``, error ``rate``), ``calls`` (``name`` ``total`` or a status, ``count``)
    and ``turns`` (``name`` ``caller`` / ``interrupted``, ``count``, ``rate`` the interruption
    rate on the ``interrupted`` row).
    """
    rows: list[list[Any]] = [list(CSV_HEADER)]

    def row(section: str, name: str, **values: Any) -> None:
        rows.append([section, name, *(_cell(values.get(col)) for col in CSV_HEADER[2:])])

    for component, summary in figures["latency"].items():
        row(
            "latency",
            component,
            n=summary.get("n", 0),
            p50=summary.get("p50"),
            p95=summary.get("p95"),
            p99=summary.get("p99"),
            max=summary.get("max"),
        )
    for bin_ in figures["ttfa_histogram"]["bins"]:
        row("ttfa_bin", bin_["label"], count=bin_["count"])
    tools = figures["tools"]
    row("tool", "*", count=tools["total"], errors=tools["errors"], rate=tools["error_rate"])
    for tool in tools["by_name"]:
        row(
            "tool",
            tool["name"],
            count=tool["total"],
            errors=tool["errors"],
            rate=tool["error_rate"],
        )
    row("calls", "total", count=figures["calls"]["total"])
    for status, count in figures["calls"]["by_status"].items():
        row("calls", status, count=count)
    turns = figures["turns"]
    row("turns", "caller", count=turns["caller"])
    row("turns", "interrupted", count=turns["interrupted"], rate=turns["interruption_rate"])
    return rows


def _cell(value: Any) -> Any:
    return "" if value is None else value
