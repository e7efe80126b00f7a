"""Per-agent day reports: the figures on hand-made turns, the files, retries, the nightly run
and ``manage.py report``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from parley.agents.voice.metrics import latency_summary
from parley.conversations import report_services
from parley.conversations.analytics import (
    AGENT_DAY_FORMAT,
    TTFA_BIN_EDGES_MS,
    agent_day_csv_rows,
    agent_day_figures,
    ttfa_histogram,
)
from parley.conversations.models import AgentDayReport, Conversation, JobStatus, Turn
from parley.conversations.report_services import (
    agent_day_report_generate,
    agent_day_report_request,
)
from parley.conversations.tasks import agent_day_reports_nightly
from parley.platform.celery import app as celery_app
from parley.platform.errors import ApplicationError
from parley.tools.models import ToolCall
from tests.conversations.factories import (
    AgentFactory,
    ConversationFactory,
    ToolCallFactory,
    TurnFactory,
)

DAY = dt.date(2026, 3, 4)
NOON = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)


def at(hours: float) -> dt.datetime:
    return NOON + dt.timedelta(hours=hours)


@pytest.fixture
def day_calls(db):  # noqa: ANN001, ANN201
    """Three calls of one agent on DAY with 21 caller turns of known latency, and calls that
    must not count: the agent's just before and after the day, another agent's on the day."""
    agent = AgentFactory(slug="clinic")
    other = AgentFactory(slug="other")
    calls = [
        ConversationFactory(agent=agent, started_at=at(-12)),  # 00:00:00 exactly: included
        ConversationFactory(agent=agent, started_at=at(1)),
        ConversationFactory(agent=agent, started_at=at(11.99), status=Conversation.Status.ERROR),
    ]
    ttfas = [100.0 * i for i in range(1, 21)]  # 100, 200, … 2000 ms
    for i, ttfa in enumerate(ttfas):
        conversation = calls[i % 3]
        TurnFactory(
            conversation=conversation,
            index=i // 3 + 1,
            ttfa_ms=ttfa,
            llm_ttft_ms=50.0 if i < 4 else None,
            status=Turn.Status.INTERRUPTED if i in (1, 5, 9, 13) else Turn.Status.COMPLETED,
        )
    # A caller turn with no TTFA (the reply failed) counts as a turn, not in the latency.
    TurnFactory(conversation=calls[0], index=20, ttfa_ms=None, status=Turn.Status.ERROR)
    # Greetings (index 0) are not caller turns, whatever their latency.
    for conversation in calls:
        TurnFactory(conversation=conversation, index=0, ttfa_ms=9000.0)
    for name, status in (
        ("find_patient", "ok"),
        ("find_patient", "error"),
        ("find_patient", "ok"),
        ("book_appointment", "error"),
        ("book_appointment", "error"),
        ("cancel_appointment", "running"),
    ):
        ToolCallFactory(conversation=calls[1], name=name, status=status)
    before = ConversationFactory(agent=agent, started_at=at(-12) - dt.timedelta(microseconds=1))
    after = ConversationFactory(agent=agent, started_at=at(12))
    theirs = ConversationFactory(agent=other, started_at=at(0))
    for conversation in (before, after, theirs):
        TurnFactory(conversation=conversation, index=1, ttfa_ms=4000.0)
        ToolCallFactory(conversation=conversation, name="find_patient", status="error")
    return agent


def test_figures_of_a_day(day_calls, django_assert_max_num_queries) -> None:  # noqa: ANN001
    with django_assert_max_num_queries(3):
        figures = agent_day_figures(agent=day_calls, day=DAY)

    assert figures["format"] == AGENT_DAY_FORMAT == "parley-agent-day/v1"
    assert (figures["agent"], figures["day"], figures["units"]) == ("clinic", "2026-03-04", "ms")
    assert figures["window"] == {
        "since": "2026-03-04T00:00:00+00:00",
        "until": "2026-03-05T00:00:00+00:00",
    }
    assert figures["calls"] == {
        "total": 3,
        "by_status": {"active": 0, "ended": 2, "error": 1, "aborted": 0},
    }
    assert figures["turns"]["caller"] == 21
    assert figures["turns"]["interrupted"] == 4
    assert figures["turns"]["interruption_rate"] == round(4 / 21, 4) == 0.1905
    assert figures["turns"]["by_status"]["error"] == 1

    # numpy's linear percentiles of 100…2000: rank (n-1)·q between closest values.
    assert figures["latency"]["ttfa_ms"] == {
        "n": 20,
        "p50": 1050.0,
        "p95": 1905.0,
        "p99": 1981.0,
        "min": 100.0,
        "max": 2000.0,
    }
    assert figures["latency"]["llm_ttft_ms"] == {
        "n": 4,
        "p50": 50.0,
        "p95": 50.0,
        "p99": 50.0,
        "min": 50.0,
        "max": 50.0,
    }
    assert figures["latency"]["ear_ttfa_ms"] == {"n": 0}
    assert list(figures["latency"]) == [
        "endpointing_ms",
        "stt_final_ms",
        "llm_ttft_ms",
        "first_chunk_ms",
        "tts_ttfb_ms",
        "ttfa_ms",
        "ear_ttfa_ms",
        "playout_delay_ms",
        "network_rtt_ms",
    ]

    histogram = figures["ttfa_histogram"]
    assert histogram["component"] == "ttfa_ms"
    assert histogram["edges_ms"] == [0, 250, 500, 750, 1000, 1500, 2000, 3000, 5000]
    # Lower edges are inclusive: 1000 is in 1000–1500, 2000 in 2000–3000.
    assert [(b["label"], b["count"]) for b in histogram["bins"]] == [
        ("0–250", 2),
        ("250–500", 2),
        ("500–750", 3),
        ("750–1000", 2),
        ("1000–1500", 5),
        ("1500–2000", 5),
        ("2000–3000", 1),
        ("3000–5000", 0),
        ("≥5000", 0),
    ]
    assert histogram["bins"][-1]["hi_ms"] is None

    tools = figures["tools"]
    assert (tools["total"], tools["errors"], tools["error_rate"]) == (6, 3, 0.5)
    assert tools["by_name"] == [
        {"name": "book_appointment", "total": 2, "errors": 2, "error_rate": 1.0},
        {"name": "cancel_appointment", "total": 1, "errors": 0, "error_rate": 0.0},
        {"name": "find_patient", "total": 3, "errors": 1, "error_rate": 0.3333},
    ]
    json.dumps(figures)  # stored in a JSONField and written as a file as it is


def test_queries_do_not_grow_with_calls(day_calls, django_assert_max_num_queries) -> None:  # noqa: ANN001
    for minute in range(30):
        conversation = ConversationFactory(
            agent=day_calls, started_at=at(2) + dt.timedelta(minutes=minute)
        )
        TurnFactory(conversation=conversation, index=1, ttfa_ms=700.0)
        ToolCallFactory(conversation=conversation)
    with django_assert_max_num_queries(3):
        figures = agent_day_figures(agent=day_calls, day=DAY)
    assert figures["calls"]["total"] == 33 and figures["latency"]["ttfa_ms"]["n"] == 50


def test_a_day_without_calls_has_empty_figures(db) -> None:  # noqa: ANN001
    figures = agent_day_figures(agent=AgentFactory(), day=DAY)
    assert figures["calls"]["total"] == 0 and figures["turns"]["caller"] == 0
    assert figures["turns"]["interruption_rate"] is None
    assert figures["tools"] == {"total": 0, "errors": 0, "error_rate": None, "by_name": []}
    assert all(summary == {"n": 0} for summary in figures["latency"].values())
    assert sum(b["count"] for b in figures["ttfa_histogram"]["bins"]) == 0


def test_histogram_edges() -> None:
    bins = ttfa_histogram([-5.0, 0.0, 249.9, 250.0, 4999.9, 5000.0, 1e6])
    assert [b["count"] for b in bins] == [3, 1, 0, 0, 0, 0, 0, 1, 2]
    assert [b["lo_ms"] for b in bins] == list(TTFA_BIN_EDGES_MS)


def test_latency_summary_has_p99() -> None:
    turns = [{"ttfa_ms": float(v)} for v in range(1, 101)]  # 1 … 100
    summary = latency_summary(turns, ["ttfa_ms"])["ttfa_ms"]
    # p99: rank 99 · 0.99 = 98.01 → 99 + 0.01 · (100 − 99) = 99.01; p95: 95.05; 1 decimal.
    assert summary == {"n": 100, "p50": 50.5, "p95": 95.0, "p99": 99.0, "min": 1.0, "max": 100.0}
    assert latency_summary([{"ttfa_ms": None}], ["ttfa_ms"]) == {"ttfa_ms": {"n": 0}}


def test_csv_layout(day_calls) -> None:  # noqa: ANN001
    rows = agent_day_csv_rows(agent_day_figures(agent=day_calls, day=DAY))
    assert rows[0] == [
        "section",
        "name",
        "n",
        "p50",
        "p95",
        "p99",
        "max",
        "count",
        "errors",
        "rate",
    ]
    by_key = {(r[0], r[1]): r for r in rows[1:]}
    assert by_key[("latency", "ttfa_ms")] == [
        "latency",
        "ttfa_ms",
        20,
        1050.0,
        1905.0,
        1981.0,
        2000.0,
        "",
        "",
        "",
    ]
    assert by_key[("latency", "ear_ttfa_ms")] == [
        "latency",
        "ear_ttfa_ms",
        0,
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ]
    assert by_key[("ttfa_bin", "1000–1500")][7] == 5
    assert by_key[("tool", "*")][7:] == [6, 3, 0.5]
    assert by_key[("tool", "find_patient")][7:] == [3, 1, 0.3333]
    assert by_key[("calls", "error")][7] == 1
    assert by_key[("turns", "interrupted")][7:] == [4, "", 0.1905]
    sections = [r[0] for r in rows[1:]]
    assert sections == sorted(sections, key=["latency", "ttfa_bin", "tool", "calls", "turns"].index)


# Generation ----------------------------------------------------------------------------------


def test_request_generates_the_files(
    day_calls, reports_dir, django_capture_on_commit_callbacks, django_user_model
) -> None:  # noqa: ANN001
    user = django_user_model.objects.create_user(username="ana")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report = agent_day_report_request(agent=day_calls, day=DAY, user=user)
        assert report.status == JobStatus.QUEUED
    assert len(callbacks) == 1
    report.refresh_from_db()
    assert report.status == JobStatus.DONE and report.attempts == 1 and report.error == ""
    assert report.requested_by == user and report.generated_at is not None
    json_path = Path(reports_dir) / "clinic" / "days" / "2026-03-04.json"
    csv_path = json_path.with_suffix(".csv")
    assert (report.json_path, report.csv_path) == (str(json_path), str(csv_path))
    figures = json.loads(json_path.read_text())
    assert figures == report.figures
    assert figures["latency"]["ttfa_ms"]["p99"] == 1981.0
    rows = list(csv.reader(io.StringIO(csv_path.read_text())))
    assert rows[0][:7] == ["section", "name", "n", "p50", "p95", "p99", "max"]
    assert ["latency", "ttfa_ms", "20", "1050.0", "1905.0", "1981.0", "2000.0", "", "", ""] in rows
    assert not [p for p in json_path.parent.iterdir() if p.name.startswith(".")]  # no temp files

    # Asking again regenerates the same row (one report per agent and day).
    ConversationFactory(agent=day_calls, started_at=at(3))
    with django_capture_on_commit_callbacks(execute=True):
        again = agent_day_report_request(agent=day_calls, day=DAY)
    again.refresh_from_db()
    assert again.pk == report.pk and AgentDayReport.objects.count() == 1
    assert again.figures["calls"]["total"] == 4 and again.requested_by is None
    assert json.loads(json_path.read_text())["calls"]["total"] == 4


def test_a_failing_report_is_retried_then_left_failed_without_files(
    day_calls, reports_dir, monkeypatch, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    calls = []

    def broken(**kwargs):  # noqa: ANN003, ANN202
        calls.append(kwargs)
        raise RuntimeError("database went away")

    monkeypatch.setattr(report_services, "agent_day_figures", broken)
    # Asked for from a page: the task fails, the row says so, the request is not broken
    # (test settings propagate eager errors, so Celery's retry surfaces at once).
    with django_capture_on_commit_callbacks(execute=True):
        report = agent_day_report_request(agent=day_calls, day=DAY)
    report.refresh_from_db()
    assert report.status == JobStatus.FAILED and report.attempts == 1
    assert report.error == "RuntimeError: database went away"

    # The retry chain, as a worker runs it (eager Celery runs retries at once when errors
    # are not propagated): the first run and three retries, then it gives up.
    calls.clear()
    monkeypatch.setitem(celery_app.conf, "task_eager_propagates", False)
    with django_capture_on_commit_callbacks(execute=True):
        report = agent_day_report_request(agent=day_calls, day=DAY)
    report.refresh_from_db()
    assert len(calls) == 4 and report.attempts == 4
    assert report.status == JobStatus.FAILED
    assert report.error == "RuntimeError: database went away"
    assert report.figures is None and report.json_path == "" and report.generated_at is None
    assert not Path(reports_dir).exists() or not any(Path(reports_dir).rglob("*"))


def test_a_failure_between_the_two_files_leaves_neither(
    day_calls, reports_dir, monkeypatch
) -> None:  # noqa: ANN001
    real = report_services.atomic_write_text

    def json_only(path: Path, text: str) -> None:
        if path.suffix == ".csv":
            raise OSError("disk full")
        real(path, text)

    monkeypatch.setattr(report_services, "atomic_write_text", json_only)
    report = report_services.agent_day_report_prepare(agent=day_calls, day=DAY)
    with pytest.raises(OSError, match="disk full"):
        agent_day_report_generate(report_id=report.pk)
    report.refresh_from_db()
    assert report.status == JobStatus.FAILED and report.error == "OSError: disk full"
    assert not list(Path(reports_dir).rglob("*.json")) and not list(
        Path(reports_dir).rglob("*.csv")
    )


def test_future_days_are_refused(day_calls) -> None:  # noqa: ANN001
    tomorrow = timezone.now().astimezone(dt.UTC).date() + dt.timedelta(days=1)
    with pytest.raises(ApplicationError, match="has not happened yet") as exc:
        agent_day_report_request(agent=day_calls, day=tomorrow)
    assert exc.value.extra == {"field": "day"}
    assert not AgentDayReport.objects.exists()


def test_unknown_report_is_not_retried(db) -> None:  # noqa: ANN001
    from parley.conversations.tasks import agent_day_report_run

    with pytest.raises(AgentDayReport.DoesNotExist):
        agent_day_report_run.delay(123456)


def test_nightly_run_reports_yesterday_for_agents_with_calls(
    day_calls, reports_dir, monkeypatch, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    quiet = AgentFactory(slug="quiet")
    ConversationFactory(agent=quiet, started_at=at(24))  # the day after: today, not yesterday
    midnight = dt.datetime(2026, 3, 5, 0, 15, tzinfo=dt.UTC)
    monkeypatch.setattr(timezone, "now", lambda: midnight)
    with django_capture_on_commit_callbacks(execute=True):
        ids = agent_day_reports_nightly.delay().get()
    reports = {r.agent.slug: r for r in AgentDayReport.objects.select_related("agent")}
    # "other" had a call that day too; "quiet" only today.
    assert set(reports) == {"clinic", "other"}
    assert all(r.day == DAY and r.status == JobStatus.DONE for r in reports.values())
    assert sorted(ids) == sorted(r.pk for r in reports.values())
    assert reports["clinic"].figures["calls"]["total"] == 3
    assert reports["other"].figures["calls"]["total"] == 1


def test_nightly_schedule_is_registered(settings) -> None:  # noqa: ANN001
    entry = settings.CELERY_BEAT_SCHEDULE["agent-day-reports-nightly"]
    assert entry["task"] == "parley.conversations.tasks.agent_day_reports_nightly"
    schedule = entry["schedule"]
    assert (schedule.hour, schedule.minute) == ({0}, {15})


def test_report_command(day_calls, reports_dir) -> None:  # noqa: ANN001
    out = io.StringIO()
    call_command("report", "--agent", "clinic", "--day", "2026-03-04", stdout=out)
    text = out.getvalue()
    assert "clinic on 2026-03-04 (UTC)" in text
    assert "calls 3 (2 ended, 1 error)" in text
    assert "caller turns 21, interrupted 4 (19." in text
    assert "ttfa_ms" in text and "1981.0" in text
    assert "1000–1500       5" in text
    report = AgentDayReport.objects.get()
    assert report.status == JobStatus.DONE and Path(report.csv_path).exists()
    assert str(report.json_path) in text


def test_report_command_errors(day_calls) -> None:  # noqa: ANN001
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="no agent 'nope'"):
        call_command("report", "--agent", "nope")
    with pytest.raises(CommandError, match="not a date"):
        call_command("report", "--agent", "clinic", "--day", "04/03/2026")
    with pytest.raises(CommandError, match="has not happened yet"):
        call_command("report", "--agent", "clinic", "--day", "2999-01-01")


def test_tool_calls_without_a_conversation_are_ignored(day_calls) -> None:  # noqa: ANN001
    ToolCall.objects.create(
        conversation=None, call_id="replay", name="find_patient", arguments_raw="{}",
        status="error", started_at=at(0),
    )  # fmt: skip
    assert agent_day_figures(agent=day_calls, day=DAY)["tools"]["total"] == 6
