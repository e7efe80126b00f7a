"""Reads of the analysts' background jobs: day reports and bulk exports (docs/reports.md).

The file of a job is handed out only when the job is ``done`` and the file is on disk: a
queued, running or failed job has none, whatever its path column says.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from django.conf import settings
from django.db.models import QuerySet

from parley.agents.models import Agent
from parley.conversations.models import AgentDayReport, ConversationExport, JobStatus

ReportFormat = Literal["json", "csv"]


def agent_day_report_list(*, agent: Agent | None = None) -> QuerySet[AgentDayReport]:
    """Day reports, newest day first then by agent name; only ``agent``'s when given."""
    reports = AgentDayReport.objects.select_related("agent", "requested_by").order_by(
        "-day", "agent__name"
    )
    if agent is not None:
        reports = reports.filter(agent=agent)
    return reports


def agent_day_report_get(*, agent: Agent, day: dt.date) -> AgentDayReport | None:
    """The report of ``agent`` for ``day``, or ``None`` when nobody asked for it yet."""
    return agent_day_report_list(agent=agent).filter(day=day).first()


def agent_day_report_file(*, report: AgentDayReport, fmt: ReportFormat) -> Path | None:
    """The ``json`` or ``csv`` file of a ``done`` report, or ``None`` (not done, or gone)."""
    if report.status != JobStatus.DONE:
        return None
    name = report.json_path if fmt == "json" else report.csv_path
    return _existing(name, under=Path(settings.PARLEY_REPORTS_DIR))


def conversation_exports_visible(*, user: Any, role: str | None) -> QuerySet[ConversationExport]:
    """Exports ``user`` may see, newest first: every export for admins, only their own for
    anyone else (an export holds transcripts; it stays with whoever asked for it). The
    dashboard and the API apply the same rule."""
    qs = ConversationExport.objects.select_related("agent", "requested_by")
    if role != "admin":
        qs = qs.filter(requested_by=user)
    return qs.order_by("-created_at")


def conversation_export_visible(
    *, export_id: Any, user: Any, role: str | None
) -> ConversationExport | None:
    """One export ``user`` may see (:func:`conversation_exports_visible`), or ``None``."""
    return conversation_exports_visible(user=user, role=role).filter(pk=export_id).first()


def conversation_export_file(*, export: ConversationExport) -> Path | None:
    """The finished JSONL file of ``export``, or ``None`` while it is queued, running, failed,
    or when the file was removed since."""
    if export.status != JobStatus.DONE:
        return None
    return _existing(export.path, under=Path(settings.PARLEY_EXPORTS_DIR))


def _existing(name: str, *, under: Path) -> Path | None:
    # Only files inside the folder the job writes to are ever served.
    if not name:
        return None
    path = Path(name)
    try:
        path.resolve().relative_to(under.resolve())
    except ValueError:
        return None
    return path if path.is_file() else None
