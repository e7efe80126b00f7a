"""Recording retention: expired files deleted by the scheduled task, rows kept."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from parley.conversations.models import Conversation, Recording
from parley.conversations.services import recordings_expire
from parley.conversations.tasks import recordings_expire_run


@pytest.mark.django_db
def test_retention_deletes_expired_files_and_keeps_the_row(hospital_agent, tmp_path) -> None:  # noqa: ANN001
    now = timezone.now()
    rows = []
    for name, expires in (
        ("old", now - dt.timedelta(hours=1)),
        ("new", now + dt.timedelta(days=3)),
    ):
        conversation = Conversation.objects.create(agent=hospital_agent, started_at=now)
        path = tmp_path / f"{name}.wav"
        path.write_bytes(b"RIFF")
        rows.append(
            Recording.objects.create(
                conversation=conversation,
                path=str(path),
                sample_rate_hz=16_000,
                duration_ms=1.0,
                size_bytes=4,
                expires_at=expires,
            )
        )
    assert recordings_expire_run.delay().get() == 1
    old, new = (Recording.objects.get(pk=r.pk) for r in rows)
    assert not Path(old.path).exists() and old.deleted_at is not None and not old.available
    assert Path(new.path).exists() and new.deleted_at is None
    assert recordings_expire() == 0  # already done: nothing more
