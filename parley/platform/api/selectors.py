"""Reads behind the API that the apps' own selectors do not cover: agents with their
configuration loaded, prompt versions, a conversation's tool calls, day reports and exports.

Each returns a queryset whose page costs a constant number of queries, whatever its length.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Prefetch, QuerySet

from parley.agents.models import Agent, PromptVersion
from parley.conversations.models import AgentDayReport
from parley.conversations.report_selectors import (
    agent_day_report_list,
)
from parley.tools.models import ToolCall, ToolSchema


def agent_list() -> QuerySet[Agent]:
    """Agents by name with scenario, model pool, tools (by name) and ``active_prompts`` (a
    list holding the active PromptVersion, or empty): 3 queries for any number of agents."""
    return (
        Agent.objects.select_related("scenario", "model_pool")
        .prefetch_related(
            Prefetch("tools", queryset=ToolSchema.objects.order_by("name")),
            Prefetch(
                "prompts",
                queryset=PromptVersion.objects.filter(active=True).select_related("created_by"),
                to_attr="active_prompts",
            ),
        )
        .order_by("name")
    )


def agent_get(*, slug: str) -> Agent | None:
    """One agent loaded as :func:`agent_list` loads them, or ``None``."""
    return agent_list().filter(slug=slug).first()


def prompt_version_list(*, agent: Agent) -> QuerySet[PromptVersion]:
    """The agent's prompt versions, newest first, with who created them."""
    return agent.prompts.select_related("created_by").order_by("-version")


def tool_call_list(*, conversation_id: Any) -> QuerySet[ToolCall]:
    """A conversation's tool calls in the order they started, with their turn."""
    return (
        ToolCall.objects.filter(conversation_id=conversation_id)
        .select_related("turn")
        .order_by("started_at", "id")
    )


def report_list(
    *,
    agent: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    status: str | None = None,
) -> QuerySet[AgentDayReport]:
    """Day reports, newest day first, then by agent name
    (:func:`~parley.conversations.report_selectors.agent_day_report_list`); ``agent`` a slug,
    ``since``/``until`` days included."""
    qs = agent_day_report_list().defer("figures")
    if agent:
        qs = qs.filter(agent__slug=agent)
    if since:
        qs = qs.filter(day__gte=since)
    if until:
        qs = qs.filter(day__lte=until)
    if status:
        qs = qs.filter(status=status)
    return qs


def report_get(*, report_id: int) -> AgentDayReport | None:
    return agent_day_report_list().filter(pk=report_id).first()
