"""Celery tasks of the call record. Thin: load by id, call the report functions."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from celery import shared_task
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction

from parley.conversations.models import Conversation
from parley.conversations.reports import (
    atomic_write_text,
    conversation_latency_report,
    conversation_reports_dir,
    conversation_transcript_lines,
    transcript_jsonl,
)


@shared_task(
    bind=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=60,
    time_limit=120,
    # Nobody waits for it: queueing it then needs the broker only, not the result backend.
    ignore_result=True,
)
def conversation_reports_write(self, conversation_id: str) -> dict[str, str]:
    """Write ``transcript.jsonl`` and ``latency.json`` for an ended call; return their paths."""
    conversation = Conversation.objects.select_related("agent__scenario", "prompt_version").get(
        id=conversation_id
    )
    folder = conversation_reports_dir(conversation)
    transcript = folder / "transcript.jsonl"
    latency = folder / "latency.json"
    lines = conversation_transcript_lines(conversation)
    atomic_write_text(transcript, transcript_jsonl(lines))
    report = conversation_latency_report(conversation)
    atomic_write_text(latency, json.dumps(report, indent=2) + "\n")
    with transaction.atomic():
        Conversation.objects.filter(id=conversation.id).update(
            transcript_path=str(transcript),
            latency_report_path=str(latency),
            latency_report=report,
        )
    return {"transcript": str(transcript), "latency": str(latency)}


@shared_task(soft_time_limit=60, time_limit=90, ignore_result=True)
def conversations_recover_run() -> int:
    """End as ``aborted`` the live calls whose server died (stale heartbeat; scheduled every
    PARLEY_RECOVERY_INTERVAL_S by Celery beat), and queue again the reports of ended calls
    that have none (not queued while Redis was down); returns how many calls it ended."""
    from django.conf import settings

    from parley.conversations.services import conversations_recover, conversations_reports_requeue

    recovered = conversations_recover(stale_after_s=settings.PARLEY_HEARTBEAT_STALE_S)
    conversations_reports_requeue()
    return len(recovered)


@shared_task(soft_time_limit=300, time_limit=360)
def recordings_expire_run() -> int:
    """Delete the recordings past their agent's retention (scheduled hourly); returns how many."""
    from parley.conversations.services import recordings_expire

    return recordings_expire()


# Analysts' background jobs (docs/reports.md) -----------------------------------------------

#: A day report reads three queries' worth of rows and writes two small files.
DAY_REPORT_SOFT_LIMIT_S = 120
#: An export writes every event of up to a year of calls.
EXPORT_SOFT_LIMIT_S = 30 * 60
#: Retry policy of the analysts' jobs: any error is retried 3 times with exponential backoff
#: (capped at 10 min); an id that no longer exists is not.
JOB_RETRY: dict[str, Any] = {
    "bind": True,
    "autoretry_for": (Exception,),
    "dont_autoretry_for": (ObjectDoesNotExist,),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "max_retries": 3,
    "acks_late": True,
}


@shared_task(
    **JOB_RETRY, soft_time_limit=DAY_REPORT_SOFT_LIMIT_S, time_limit=DAY_REPORT_SOFT_LIMIT_S + 60
)
def agent_day_report_run(self, report_id: int) -> dict[str, object]:
    """Generate day report ``report_id`` (each run adds one to its ``attempts``). Any error
    leaves it ``failed`` and is retried up to 3 times with exponential backoff; an unknown id
    is not retried."""
    from parley.conversations.report_services import agent_day_report_generate

    report = agent_day_report_generate(report_id=report_id)
    return {"report_id": report.pk, "status": report.status, "json": report.json_path}


@shared_task(soft_time_limit=120, time_limit=180, ignore_result=True)
def agent_day_reports_nightly() -> list[int]:
    """Request yesterday's (UTC) report of every agent that had calls (Celery beat, 00:15 UTC);
    returns the report ids."""
    from parley.conversations.report_services import agent_day_reports_request_all, utc_today

    reports = agent_day_reports_request_all(day=utc_today() - dt.timedelta(days=1))
    return [report.pk for report in reports]


@shared_task(**JOB_RETRY, soft_time_limit=EXPORT_SOFT_LIMIT_S, time_limit=EXPORT_SOFT_LIMIT_S + 60)
def conversation_export_run(self, export_id: str) -> dict[str, object]:
    """Build bulk export ``export_id``. Any error leaves it ``failed`` with its partial file
    removed and is retried up to 3 times (each retry starts over); an unknown id is not
    retried."""
    from parley.conversations.report_services import conversation_export_build

    export = conversation_export_build(export_id=export_id)
    return {"export_id": str(export.pk), "status": export.status, "size_bytes": export.size_bytes}
