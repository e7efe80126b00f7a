"""Bulk exports: the JSONL file, redaction, progress, failures and retries, the range rules."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from parley.conversations import report_services
from parley.conversations.models import AccessLog, ConversationExport, JobStatus
from parley.conversations.report_selectors import conversation_export_file
from parley.conversations.report_services import (
    conversation_export_build,
    conversation_export_request,
)
from parley.platform.celery import app as celery_app
from parley.platform.errors import ApplicationError
from tests.conversations.factories import (
    AgentFactory,
    CallEventFactory,
    ConversationFactory,
    ToolCallFactory,
)

pytestmark = pytest.mark.django_db

SINCE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
UNTIL = dt.datetime(2026, 3, 8, tzinfo=dt.UTC)


@pytest.fixture
def exports_dir(settings, tmp_path):  # noqa: ANN001, ANN201
    settings.PARLEY_EXPORTS_DIR = tmp_path / "exports"
    return settings.PARLEY_EXPORTS_DIR


@pytest.fixture
def user(django_user_model):  # noqa: ANN001, ANN201
    return django_user_model.objects.create_user(username="ana")


def a_call(agent, started: dt.datetime, *, said: str = "hello", events: int = 2):  # noqa: ANN001, ANN201
    """A call with ``events`` events: the caller's final transcript ``said``, then the agent's
    text lines."""
    conversation = ConversationFactory(agent=agent, started_at=started)
    CallEventFactory(conversation=conversation, seq=1, type="transcript.final", data={"text": said})
    for seq in range(2, events + 1):
        CallEventFactory(conversation=conversation, seq=seq, data={"text": f"Line {seq}."})
    return conversation


def read_lines(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_export_writes_every_call_oldest_first(
    exports_dir, user, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    agent = AgentFactory(slug="clinic")
    other = AgentFactory(slug="shop")
    newer = a_call(agent, SINCE + dt.timedelta(days=2), events=3)
    first = a_call(agent, SINCE, events=2)  # the first instant is in the range
    theirs = a_call(other, SINCE + dt.timedelta(days=1), events=1)
    a_call(agent, UNTIL, events=4)  # the end is not
    a_call(agent, SINCE - dt.timedelta(microseconds=1), events=4)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        export = conversation_export_request(
            user=user, since=SINCE, until=UNTIL, address="10.0.0.9"
        )
        assert export.status == JobStatus.QUEUED
    assert len(callbacks) == 1
    export.refresh_from_db()

    assert export.status == JobStatus.DONE
    assert (export.total, export.done, export.progress) == (3, 3, 1.0)
    path = Path(exports_dir) / f"{export.pk}.jsonl"
    assert export.path == str(path) and export.size_bytes == path.stat().st_size > 0
    assert export.finished_at is not None and export.error == ""
    assert conversation_export_file(export=export) == path
    lines = read_lines(path)
    assert len(lines) == (1 + 2) + (1 + 1) + (1 + 3)  # a call.meta line per call + its events
    metas = [line for line in lines if line["type"] == "call.meta"]
    assert [m["conversation_id"] for m in metas] == [str(c.pk) for c in (first, theirs, newer)]
    assert [m["agent"] for m in metas] == ["clinic", "shop", "clinic"]
    # Each call.meta line starts its conversation: the events follow it, in order.
    assert lines[0]["type"] == "call.meta" and [line.get("seq") for line in lines[1:3]] == [1, 2]
    assert lines[1] == {**lines[1], "type": "transcript.final", "text": "hello", "turn": 1}
    assert not [p for p in Path(exports_dir).iterdir() if p.name != path.name]  # no .part left

    log = AccessLog.objects.get()
    assert (log.user, log.action, log.channel, log.export_id, log.address) == (
        user,
        AccessLog.Action.EXPORT_REQUEST,
        AccessLog.Channel.DASHBOARD,
        export.pk,
        "10.0.0.9",
    )
    assert log.detail == {
        "since": "2026-03-01T00:00:00+00:00",
        "until": "2026-03-08T00:00:00+00:00",
        "agent": None,
        "redact": False,
    }


def test_export_of_one_agent(exports_dir, user, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    agent = AgentFactory(slug="clinic")
    mine = a_call(agent, SINCE)
    a_call(AgentFactory(slug="shop"), SINCE)
    with django_capture_on_commit_callbacks(execute=True):
        export = conversation_export_request(
            user=user, since=SINCE, until=UNTIL, agent=agent, channel="api"
        )
    export.refresh_from_db()
    metas = [line for line in read_lines(export.path) if line["type"] == "call.meta"]
    assert [m["conversation_id"] for m in metas] == [str(mine.pk)]
    assert AccessLog.objects.get().channel == "api"
    assert AccessLog.objects.get().detail["agent"] == "clinic"


def test_redacted_export(exports_dir, user, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    agent = AgentFactory(slug="clinic")
    conversation = a_call(
        agent,
        SINCE,
        said="I'm John, born March 4, 1985; call me on 555-123-4567 about order ORD-1042",
    )
    ToolCallFactory(
        conversation=conversation,
        call_id="call_1",
        name="find_patient",
        arguments={"email": "john.smith@hospital.com", "patient_id": "P2001"},
    )
    CallEventFactory(
        conversation=conversation,
        seq=3,
        type="tool.result",
        data={"id": "call_1", "name": "find_patient", "result": '{"phone": "555-1001"}'},
    )
    with django_capture_on_commit_callbacks(execute=True):
        plain = conversation_export_request(user=user, since=SINCE, until=UNTIL)
        redacted = conversation_export_request(user=user, since=SINCE, until=UNTIL, redact=True)
    plain.refresh_from_db()
    redacted.refresh_from_db()

    plain_text = Path(plain.path).read_text()
    for secret in ("555-123-4567", "March 4, 1985", "john.smith@hospital.com", "555-1001"):
        assert secret in plain_text
    lines = read_lines(redacted.path)
    text = Path(redacted.path).read_text()
    for secret in ("555-123-4567", "March 4, 1985", "john.smith@hospital.com", "555-1001"):
        assert secret not in text
    said = next(line for line in lines if line["type"] == "transcript.final")["text"]
    assert said == "I'm John, born [DOB]; call me on [PHONE] about order ORD-1042"
    result = next(line for line in lines if line["type"] == "tool.result")
    assert result["arguments"] == {"email": "[EMAIL]", "patient_id": "P2001"}
    assert result["result"] == '{"phone": "[PHONE]"}'
    meta = lines[0]
    assert meta["conversation_id"] == str(conversation.pk)
    assert meta["started_at"] == conversation.started_at.isoformat()  # the call's clock stays
    assert len(lines) == len(read_lines(plain.path))


def test_progress_is_written_while_the_file_grows(
    exports_dir, user, monkeypatch, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    agent = AgentFactory()
    for day in range(5):
        a_call(agent, SINCE + dt.timedelta(days=day))
    monkeypatch.setattr(report_services, "EXPORT_PROGRESS_EVERY", 2)
    monkeypatch.setattr(report_services, "EXPORT_BATCH", 3)
    seen = []
    real = report_services.conversation_transcript_lines

    def watched(conversation):  # noqa: ANN001, ANN202
        export = ConversationExport.objects.get()
        seen.append(
            (export.status, export.done, export.total, conversation_export_file(export=export))
        )
        return real(conversation)

    monkeypatch.setattr(report_services, "conversation_transcript_lines", watched)
    with django_capture_on_commit_callbacks(execute=True):
        export = conversation_export_request(user=user, since=SINCE, until=UNTIL)
    assert seen == [
        (JobStatus.RUNNING, 0, 5, None),
        (JobStatus.RUNNING, 0, 5, None),
        (JobStatus.RUNNING, 2, 5, None),
        (JobStatus.RUNNING, 2, 5, None),
        (JobStatus.RUNNING, 4, 5, None),
    ]
    export.refresh_from_db()
    assert (export.status, export.done, export.total) == (JobStatus.DONE, 5, 5)


def test_a_failed_build_leaves_no_file_and_is_retried(
    exports_dir, user, monkeypatch, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    agent = AgentFactory()
    calls = [a_call(agent, SINCE + dt.timedelta(days=day)) for day in range(3)]
    real = report_services.conversation_transcript_lines
    runs = []

    def broken(conversation):  # noqa: ANN001, ANN202
        runs.append(conversation.pk)
        if conversation.pk == calls[1].pk:  # after the first call's lines were written
            raise OSError("disk full")
        return real(conversation)

    monkeypatch.setattr(report_services, "conversation_transcript_lines", broken)
    # As a worker runs it: the first run and three retries (each from the start), then failed.
    monkeypatch.setitem(celery_app.conf, "task_eager_propagates", False)
    with django_capture_on_commit_callbacks(execute=True):
        export = conversation_export_request(user=user, since=SINCE, until=UNTIL)
    export.refresh_from_db()
    assert len(runs) == 4 * 2
    assert export.status == JobStatus.FAILED and export.error == "OSError: disk full"
    assert export.path == "" and export.size_bytes is None and export.finished_at is None
    assert list(Path(exports_dir).iterdir()) == []  # the partial file is gone
    assert conversation_export_file(export=export) is None

    # Called directly (as a retry would), a build starts over and can succeed.
    monkeypatch.setattr(report_services, "conversation_transcript_lines", real)
    export = conversation_export_build(export_id=export.pk)
    assert export.status == JobStatus.DONE and export.error == "" and export.done == 3
    assert len([x for x in read_lines(export.path) if x["type"] == "call.meta"]) == 3


def test_an_empty_range_gives_an_empty_file(
    exports_dir, user, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    with django_capture_on_commit_callbacks(execute=True):
        export = conversation_export_request(user=user, since=SINCE, until=UNTIL)
    export.refresh_from_db()
    assert (export.status, export.total, export.size_bytes) == (JobStatus.DONE, 0, 0)
    assert Path(export.path).read_text() == ""


def test_range_rules(user) -> None:  # noqa: ANN001
    with pytest.raises(ApplicationError, match="must come before its end") as exc:
        conversation_export_request(user=user, since=UNTIL, until=UNTIL)
    assert exc.value.extra == {"field": "until"}
    with pytest.raises(ApplicationError, match="at most 366 days") as exc:
        conversation_export_request(
            user=user, since=SINCE, until=SINCE + dt.timedelta(days=366, seconds=1)
        )
    assert exc.value.extra["field"] == "since"
    assert not ConversationExport.objects.exists() and not AccessLog.objects.exists()
    # A full (leap) year is fine; naive datetimes are UTC.
    export = conversation_export_request(
        user=user,
        since=dt.datetime(2028, 1, 1),
        until=dt.datetime(2028, 12, 31) + dt.timedelta(days=1),
    )
    assert export.since == dt.datetime(2028, 1, 1, tzinfo=dt.UTC)


def test_unknown_export_is_not_retried(db) -> None:  # noqa: ANN001
    from parley.conversations.tasks import conversation_export_run

    with pytest.raises(ConversationExport.DoesNotExist):
        conversation_export_run.delay("00000000-0000-0000-0000-000000000000")
