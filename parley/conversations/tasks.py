"""Celery tasks of the call record. Thin: load by id, call the report functions."""

from __future__ import annotations

import json

from celery import shared_task
from django.db import transaction

from parley.conversations.models import Conversation
from parley.conversations.reports import (
    atomic_write_text,
    conversation_latency_report,
    conversation_reports_dir,
    conversation_transcript_lines,
)


@shared_task(
    bind=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=60,
    time_limit=120,
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
    atomic_write_text(transcript, "".join(json.dumps(line) + "\n" for line in lines))
    report = conversation_latency_report(conversation)
    atomic_write_text(latency, json.dumps(report, indent=2) + "\n")
    with transaction.atomic():
        Conversation.objects.filter(id=conversation.id).update(
            transcript_path=str(transcript),
            latency_report_path=str(latency),
            latency_report=report,
        )
    return {"transcript": str(transcript), "latency": str(latency)}
