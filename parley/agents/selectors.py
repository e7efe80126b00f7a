"""Reads for the agents app."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from parley.agents.models import Agent, PromptVersion
from parley.platform.errors import ApplicationError


def agent_get_for_call(
    *, slug: str, user: AbstractBaseUser | AnonymousUser | None, allow_unpublished: bool = False
) -> Agent:
    """The agent a caller asked for, with everything a call needs loaded.

    Raises ``ApplicationError`` when it does not exist, or is unpublished and the caller is
    not staff (admins may test unpublished agents) and ``allow_unpublished`` is false (calls
    the server itself placed, such as evaluation runs).
    """
    agent = (
        Agent.objects.select_related("scenario", "model_pool")
        .prefetch_related("tools")
        .filter(slug=slug)
        .first()
    )
    if agent is None:
        raise ApplicationError(f"no agent named {slug!r}", {"code": "agent_not_found"})
    staff = user is not None and getattr(user, "is_staff", False)
    if not agent.published and not (staff or allow_unpublished):
        raise ApplicationError(f"agent {slug!r} is not published", {"code": "agent_unpublished"})
    return agent


def prompt_active(*, agent: Agent) -> PromptVersion | None:
    return agent.prompts.filter(active=True).first()
