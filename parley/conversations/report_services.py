"""Writes of the analysts' background jobs: per-agent day reports and bulk exports
(docs/reports.md).

Both follow the same life cycle (``JobStatus``): a *request* creates or resets the row as
``queued`` and enqueues a Celery task once the transaction commits; the task calls the
*generate*/*build* service, which marks the row ``running``, does the work, writes its file(s)
to a temporary name renamed into place, and ends ``done``, or ``failed`` with the error before
re-raising so that Celery retries. A file is only ever served for a ``done`` row, so a reader
never sees half of one. The job services are not one transaction on purpose: ``running`` and
the export's progress must be visible while they work.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from parley.agents.models import Agent
from parley.conversations.analytics import agent_day_csv_rows, agent_day_figures, day_window
from parley.conversations.models import (
    AccessLog,
    AgentDayReport,
    Conversation,
    ConversationExport,
    JobStatus,
)
from parley.conversations.redaction import redact_value
from parley.conversations.reports import (
    atomic_open,
    atomic_write_text,
    conversation_transcript_lines,
    transcript_jsonl,
)
from parley.conversations.services import access_record
from parley.platform.errors import ApplicationError

#: Longest range one export may cover (days): a year, leap day included.
EXPORT_MAX_DAYS = 366
#: The export's ``done`` counter is written every this many conversations (and at the end).
EXPORT_PROGRESS_EVERY = 25
#: Conversations loaded per query while exporting.
EXPORT_BATCH = 200
#: Longest error text kept on a failed job row (characters).
ERROR_MAX_CHARS = 2000


def utc_today() -> dt.date:
    """Today's date in UTC (reports and their days are UTC)."""
    return timezone.now().astimezone(dt.UTC).date()


# Day reports ---------------------------------------------------------------------------------


def agent_day_report_dir(*, agent: Agent) -> Path:
    """``PARLEY_REPORTS_DIR/<agent-slug>/days/``: next to the agent's per-call report folders
    (``<YYYY-MM-DD>/<conversation-id>/``), which can never be called ``days``."""
    return Path(settings.PARLEY_REPORTS_DIR) / agent.slug / "days"


@transaction.atomic
def agent_day_report_prepare(*, agent: Agent, day: dt.date, user: Any = None) -> AgentDayReport:
    """Get or create the report row of ``agent`` and ``day`` and reset it to ``queued``
    (attempts 0, no error), recording ``user`` (``None``: the nightly schedule) as the
    requester. Enqueues nothing: :func:`agent_day_report_request` does.

    Raises ``ApplicationError`` (``extra["field"] == "day"``) for a day after today (UTC);
    today is allowed and gives the figures so far.
    """
    if day > utc_today():
        raise ApplicationError(
            f"{day:%Y-%m-%d} has not happened yet: a report covers a past day or today (UTC).",
            extra={"field": "day"},
        )
    report, _ = AgentDayReport.objects.select_for_update().get_or_create(agent=agent, day=day)
    report.status = JobStatus.QUEUED
    report.error = ""
    report.attempts = 0
    report.requested_by = user if getattr(user, "pk", None) else None
    report.save(update_fields=["status", "error", "attempts", "requested_by"])
    return report


@transaction.atomic
def agent_day_report_request(*, agent: Agent, day: dt.date, user: Any = None) -> AgentDayReport:
    """Ask for ``agent``'s report of ``day`` (UTC): the row is created or reset to ``queued``
    and ``agent_day_report_run`` is enqueued once the transaction commits. Asking again for
    a report that exists regenerates it (the files are replaced atomically).

    Raises ``ApplicationError`` for a day in the future (:func:`agent_day_report_prepare`).
    """
    from parley.conversations.tasks import agent_day_report_run

    report = agent_day_report_prepare(agent=agent, day=day, user=user)
    report_id = report.pk
    # robust: with the embedded eager Celery a failing report is recorded on its row, not
    # raised into the request that asked for it.
    transaction.on_commit(lambda: agent_day_report_run.delay(report_id), robust=True)
    return report


def agent_day_reports_request_all(*, day: dt.date) -> list[AgentDayReport]:
    """Request the ``day`` report of every agent with at least one conversation started that
    day (UTC); agents without calls get none. Returns the requested rows."""
    since, until = day_window(day)
    agents = Agent.objects.filter(
        pk__in=Conversation.objects.filter(started_at__gte=since, started_at__lt=until).values(
            "agent_id"
        )
    ).order_by("slug")
    return [agent_day_report_request(agent=agent, day=day) for agent in agents]


def agent_day_report_generate(*, report_id: int) -> AgentDayReport:
    """Compute the figures of report ``report_id`` and write its JSON and CSV files.

    The row goes ``running`` (``attempts`` + 1) → ``done`` with ``figures``, ``json_path``,
    ``csv_path`` and ``generated_at``. Files: ``<agent>/days/<YYYY-MM-DD>.json`` and ``.csv``
    under ``PARLEY_REPORTS_DIR``, each written to a temporary name and renamed. On any error
    the row goes ``failed`` with the error text, the files this attempt wrote are removed and
    the exception is re-raised (the Celery task retries it). Raises
    ``AgentDayReport.DoesNotExist`` for an unknown id.
    """
    updated = AgentDayReport.objects.filter(pk=report_id).update(
        status=JobStatus.RUNNING, attempts=F("attempts") + 1, error=""
    )
    if not updated:
        raise AgentDayReport.DoesNotExist(f"no day report {report_id}")
    report = AgentDayReport.objects.select_related("agent").get(pk=report_id)
    folder = agent_day_report_dir(agent=report.agent)
    json_path = folder / f"{report.day:%Y-%m-%d}.json"
    csv_path = folder / f"{report.day:%Y-%m-%d}.csv"
    written: list[Path] = []
    try:
        figures = agent_day_figures(agent=report.agent, day=report.day)
        csv_text = _csv_text(agent_day_csv_rows(figures))
        for path, text in ((json_path, json.dumps(figures, indent=2) + "\n"), (csv_path, csv_text)):
            atomic_write_text(path, text)
            written.append(path)
    except Exception as exc:
        for path in written:
            path.unlink(missing_ok=True)
        AgentDayReport.objects.filter(pk=report_id).update(
            status=JobStatus.FAILED, error=_error_text(exc)
        )
        raise
    report.status = JobStatus.DONE
    report.figures = figures
    report.json_path = str(json_path)
    report.csv_path = str(csv_path)
    report.generated_at = timezone.now()
    report.save(update_fields=["status", "figures", "json_path", "csv_path", "generated_at"])
    return report


def _csv_text(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS]


# Bulk exports --------------------------------------------------------------------------------


def _aware(value: dt.datetime) -> dt.datetime:
    # A naive datetime is read as UTC, the dashboard's and the reports' time zone.
    return value if timezone.is_aware(value) else value.replace(tzinfo=dt.UTC)


@transaction.atomic
def conversation_export_request(
    *,
    user: Any,
    since: dt.datetime,
    until: dt.datetime,
    agent: Agent | None = None,
    redact: bool = False,
    channel: str = AccessLog.Channel.DASHBOARD,
    address: str = "",
) -> ConversationExport:
    """Ask for a JSONL export of the conversations started in ``[since, until)`` (of ``agent``
    only, when given), redacted when ``redact``; ``conversation_export_run`` is enqueued once
    the transaction commits. Writes an ``export_request`` line to the access log (``channel``
    ``dashboard`` or ``api``, the client's ``address``).

    Naive datetimes are taken as UTC. Raises ``ApplicationError`` when ``since`` is not before
    ``until`` (``extra["field"] == "until"``) or the range is longer than
    :data:`EXPORT_MAX_DAYS` days (``extra["field"] == "since"``).
    """
    from parley.conversations.tasks import conversation_export_run

    since, until = _aware(since), _aware(until)
    if since >= until:
        raise ApplicationError(
            "The start of the range must come before its end.", extra={"field": "until"}
        )
    if until - since > dt.timedelta(days=EXPORT_MAX_DAYS):
        raise ApplicationError(
            f"An export covers at most {EXPORT_MAX_DAYS} days; split the range.",
            extra={"field": "since", "max_days": EXPORT_MAX_DAYS},
        )
    export = ConversationExport.objects.create(
        requested_by=user if getattr(user, "pk", None) else None,
        agent=agent,
        since=since,
        until=until,
        redact=redact,
    )
    access_record(
        user=user,
        action=AccessLog.Action.EXPORT_REQUEST,
        channel=channel,
        export_id=export.pk,
        address=address,
        detail={
            "since": since.isoformat(),
            "until": until.isoformat(),
            "agent": agent.slug if agent else None,
            "redact": redact,
        },
    )
    export_id = str(export.pk)
    transaction.on_commit(lambda: conversation_export_run.delay(export_id), robust=True)
    return export


def conversation_export_path(*, export_id: uuid.UUID | str) -> Path:
    """Where the finished file of an export lives: ``PARLEY_EXPORTS_DIR/<export-id>.jsonl``."""
    return Path(settings.PARLEY_EXPORTS_DIR) / f"{export_id}.jsonl"


def conversation_export_build(*, export_id: uuid.UUID | str) -> ConversationExport:
    """Write the JSONL file of export ``export_id``.

    The conversations of the range are fixed when the build starts (``total``), then written
    oldest first (``started_at``, then id): for each, the lines of its transcript
    (:func:`~parley.conversations.reports.conversation_transcript_lines`, a ``call.meta`` line
    then every event), passed through :func:`~parley.conversations.redaction.redact_value`
    when the export asks for redaction. ``done`` is written every
    :data:`EXPORT_PROGRESS_EVERY` conversations. The lines go to a hidden ``.part`` file in
    ``PARLEY_EXPORTS_DIR``, renamed to ``<export-id>.jsonl`` once complete; then the row is
    ``done`` with ``path``, ``size_bytes`` (bytes) and ``finished_at``.

    On any error the partial file is removed, the row goes ``failed`` with the error text and
    the exception is re-raised (the Celery task retries: a retry starts over). Raises
    ``ConversationExport.DoesNotExist`` for an unknown id.
    """
    export = ConversationExport.objects.get(pk=export_id)
    conversations = Conversation.objects.filter(
        started_at__gte=export.since, started_at__lt=export.until
    )
    if export.agent_id is not None:
        conversations = conversations.filter(agent_id=export.agent_id)
    ids = list(conversations.order_by("started_at", "id").values_list("id", flat=True))
    ConversationExport.objects.filter(pk=export.pk).update(
        status=JobStatus.RUNNING,
        total=len(ids),
        done=0,
        error="",
        path="",
        size_bytes=None,
        finished_at=None,
    )
    final = conversation_export_path(export_id=export.pk)
    try:
        with atomic_open(final, fsync=True) as handle:
            done = 0
            for start in range(0, len(ids), EXPORT_BATCH):
                chunk = ids[start : start + EXPORT_BATCH]
                rows = (
                    Conversation.objects.select_related("agent__scenario", "prompt_version")
                    .prefetch_related("events", "tool_calls")
                    .in_bulk(chunk)
                )
                for conversation_id in chunk:
                    conversation = rows.get(conversation_id)
                    if conversation is not None:  # else deleted since the build started
                        lines = conversation_transcript_lines(conversation)
                        handle.write(
                            transcript_jsonl(redact_value(lines) if export.redact else lines)
                        )
                    done += 1
                    if done % EXPORT_PROGRESS_EVERY == 0 and done < len(ids):
                        ConversationExport.objects.filter(pk=export.pk).update(done=done)
    except Exception as exc:
        ConversationExport.objects.filter(pk=export.pk).update(
            status=JobStatus.FAILED, error=_error_text(exc)
        )
        raise
    ConversationExport.objects.filter(pk=export.pk).update(
        status=JobStatus.DONE,
        done=len(ids),
        path=str(final),
        size_bytes=final.stat().st_size,
        finished_at=timezone.now(),
    )
    export.refresh_from_db()
    return export


def conversation_export_download_record(
    *, export: ConversationExport, user: Any, channel: str, address: str = ""
) -> AccessLog:
    """Write the ``export_download`` line of the access log for ``export``."""
    return access_record(
        user=user,
        action=AccessLog.Action.EXPORT_DOWNLOAD,
        channel=channel,
        export_id=export.pk,
        address=address,
        detail={"size_bytes": export.size_bytes, "redact": export.redact},
    )
