"""The audit log of admin changes: who changed which agent, prompt, tool schema, scenario, model
pool, LLM server or role, when, before and after (django-auditlog's ``LogEntry``).

Which models and fields are recorded: ``parley/platform/settings/audit.py``. Requests through
the dashboard and the Django admin get their actor from auditlog's middleware; API requests
authenticated by token get it from :func:`audit_actor_set`, which the API's permission classes
call once DRF has authenticated the request. docs/security.md.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from auditlog.context import auditlog_value
from auditlog.models import LogEntry
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q, QuerySet


def audit_actor_set(user: AbstractBaseUser | AnonymousUser | None) -> None:
    """Make ``user`` the actor of the audit rows the current request writes from now on.

    A no-op outside a request (no auditlog context), for anonymous users, and when the
    middleware already found a signed-in user (a session)."""
    if user is None or not user.is_authenticated:
        return
    try:
        context = auditlog_value.get()
    except LookupError:
        return
    if context.get("actor") is None:
        context["actor"] = user


def audit_entries(
    *,
    agent_slug: str = "",
    actor: str = "",
    model: str = "",
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> QuerySet[LogEntry]:
    """Audit rows, newest first, filtered by agent (the agent itself, its prompts), actor
    (username), model (``app_label.model``, e.g. ``agents.agent``) and day range (inclusive,
    UTC)."""
    rows = LogEntry.objects.select_related("actor", "content_type").order_by("-timestamp", "-id")
    if agent_slug:
        rows = rows.filter(agent_filter(agent_slug))
    if actor:
        rows = rows.filter(actor__username=actor)
    if model and "." in model:
        app_label, model_name = model.lower().split(".", 1)
        rows = rows.filter(content_type__app_label=app_label, content_type__model=model_name)
    if since is not None:
        rows = rows.filter(timestamp__date__gte=since)
    if until is not None:
        rows = rows.filter(timestamp__date__lte=until)
    return rows


def agent_filter(agent_slug: str) -> Q:
    """Rows about the agent ``agent_slug`` and its prompt versions."""
    from parley.agents.models import Agent, PromptVersion

    agent = Agent.objects.filter(slug=agent_slug).only("pk").first()
    if agent is None:
        return Q(pk__in=[])
    prompt_ids = [
        str(pk) for pk in PromptVersion.objects.filter(agent=agent).values_list("pk", flat=True)
    ]
    return Q(content_type=ContentType.objects.get_for_model(Agent), object_pk=str(agent.pk)) | Q(
        content_type=ContentType.objects.get_for_model(PromptVersion), object_pk__in=prompt_ids
    )


def audit_changes(entry: LogEntry) -> list[dict[str, Any]]:
    """``[{"field", "before", "after"}]`` of one row, in field order (m2m changes give the
    operation and the objects as ``after``)."""
    changes = entry.changes or {}
    if isinstance(changes, str):  # rows written before AUDITLOG_STORE_JSON_CHANGES
        import json

        changes = json.loads(changes or "{}")
    out = []
    for field, change in changes.items():
        if isinstance(change, dict) and change.get("type") == "m2m":
            objects = ", ".join(map(str, change.get("objects", [])))
            out.append(
                {"field": field, "before": "", "after": f"{change.get('operation')}: {objects}"}
            )
        elif isinstance(change, list | tuple) and len(change) == 2:
            out.append({"field": field, "before": change[0], "after": change[1]})
    return out
