"""Reads behind the dashboard pages: agents with today's figures (conversations: see
parley.conversations.selectors).

Medians are computed in Python from one query of the values (the same on SQLite and
PostgreSQL); "today" is since midnight UTC.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import median
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from parley.agents.models import Agent
from parley.conversations.models import Turn


def day_start_utc(now: dt.datetime | None = None) -> dt.datetime:
    """Midnight UTC of ``now``'s day (default: now)."""
    now = (now or timezone.now()).astimezone(dt.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class AgentsOverview:
    """The agents page: every agent (with ``calls_today`` and ``ttfa_p50_today`` set) and
    the same figures across all agents."""

    agents: list[Agent]
    calls_today: int
    ttfa_p50_today: float | None

    @property
    def published(self) -> int:
        return sum(1 for agent in self.agents if agent.published)


def agents_overview(*, now: dt.datetime | None = None) -> AgentsOverview:
    """Every agent, ordered by name, with ``calls_today`` (conversations started since
    midnight UTC) and ``ttfa_p50_today`` (median TTFA in ms of the turns started since then,
    or ``None``). Two queries, whatever the number of agents."""
    since = day_start_utc(now)
    agents = list(
        Agent.objects.select_related("scenario", "model_pool")
        .annotate(
            calls_today=Count("conversations", filter=Q(conversations__started_at__gte=since))
        )
        .order_by("name")
    )
    rows = list(
        Turn.objects.filter(started_at__gte=since, ttfa_ms__isnull=False).values_list(
            "conversation__agent_id", "ttfa_ms"
        )
    )
    ttfa = _medians(rows)
    for agent in agents:
        agent.ttfa_p50_today = ttfa.get(agent.pk)  # type: ignore[attr-defined]
    return AgentsOverview(
        agents=agents,
        calls_today=sum(agent.calls_today for agent in agents),  # type: ignore[attr-defined]
        ttfa_p50_today=median(v for _, v in rows) if rows else None,
    )


def _medians(rows: Iterable[tuple[Any, float]]) -> dict[Any, float]:
    values: dict[Any, list[float]] = defaultdict(list)
    for key, value in rows:
        values[key].append(value)
    return {key: median(v) for key, v in values.items()}
