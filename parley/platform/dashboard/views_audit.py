"""The dashboard's audit log page: who changed which agent, prompt, tool, model pool or role,
when, before and after (admins only; docs/security.md)."""

from __future__ import annotations

import datetime as dt

from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse

from parley.agents.models import Agent
from parley.platform.change_audit import audit_changes, audit_entries
from parley.platform.dashboard.pages import render_page
from parley.platform.dashboard.roles import role_required

#: Rows per page.
PAGE_SIZE = 50


def _day(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


@role_required("configure")
def audit_list(request: HttpRequest) -> HttpResponse:
    """``GET /dashboard/audit/?agent=&user=&since=&until=``: the change audit log, newest
    first, 50 rows a page."""
    query = request.GET
    filters = {
        "agent_slug": query.get("agent", ""),
        "actor": query.get("user", ""),
        "since": _day(query.get("since", "")),
        "until": _day(query.get("until", "")),
    }
    page = Paginator(audit_entries(**filters), PAGE_SIZE).get_page(query.get("page"))
    rows = [{"entry": entry, "changes": audit_changes(entry)} for entry in page]
    return render_page(
        request,
        "audit_list.html",
        {
            "rows": rows,
            "page": page,
            "filters": {
                k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in filters.items()
            },
            "agents": Agent.objects.order_by("name").values_list("slug", "name"),
            "users": get_user_model()
            .objects.filter(pk__in=LogEntry.objects.values("actor_id"))
            .order_by("username")
            .values_list("username", flat=True),
        },
        section="audit",
    )
