"""The Reports and Exports dashboard pages: who may use them, what they render, downloads only
of finished jobs, the progress endpoint and the audit of export downloads."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from parley.conversations.models import (
    AccessLog,
    AgentDayReport,
    ConversationExport,
    JobStatus,
    Turn,
)
from parley.platform.dashboard.roles import ADMIN, ANALYST, role_assign
from tests.conversations.factories import (
    AgentFactory,
    CallEventFactory,
    ConversationFactory,
    ToolCallFactory,
    TurnFactory,
)

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 3, 4)
NOON = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)


def url(name: str, *args) -> str:  # noqa: ANN002
    return reverse(f"dashboard:{name}", args=args)


def login(username: str, role: str | None) -> Client:
    user = get_user_model().objects.create_user(username=username, password="x" * 16)
    if role:
        role_assign(user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def analyst() -> Client:
    return login("ana", ANALYST)


@pytest.fixture
def folders(settings, tmp_path):  # noqa: ANN001, ANN201
    settings.PARLEY_REPORTS_DIR = tmp_path / "reports"
    settings.PARLEY_EXPORTS_DIR = tmp_path / "exports"
    return tmp_path


@pytest.fixture
def clinic(db):  # noqa: ANN001, ANN201
    """An agent with two calls on DAY: four caller turns, one interrupted, two tool calls."""
    agent = AgentFactory(slug="clinic", name="Clinic")
    for hour, ttfas in ((0, (300.0, 900.0)), (3, (1200.0, 2600.0))):
        conversation = ConversationFactory(agent=agent, started_at=NOON + dt.timedelta(hours=hour))
        CallEventFactory(conversation=conversation, seq=1, data={"text": "Hello."})
        for index, ttfa in enumerate(ttfas, start=1):
            TurnFactory(
                conversation=conversation,
                index=index,
                ttfa_ms=ttfa,
                status=Turn.Status.INTERRUPTED if ttfa == 2600.0 else Turn.Status.COMPLETED,
            )
        ToolCallFactory(
            conversation=conversation, name="find_patient", status="error" if hour else "ok"
        )
    return agent


def report_pages(agent_slug: str = "clinic") -> list[str]:
    return [
        url("reports"),
        url("report-detail", agent_slug, "2026-03-04"),
        url("report-download", agent_slug, "2026-03-04", "json"),
        url("exports"),
        url("export-progress", uuid.uuid4()),
        url("export-download", uuid.uuid4()),
    ]


def test_anonymous_users_go_to_the_login_page(client, clinic) -> None:  # noqa: ANN001
    for page in report_pages():
        response = client.get(page)
        assert response.status_code == 302 and "/dashboard/login/" in response["Location"], page
    for page in (url("report-generate"), url("export-create")):
        assert client.post(page, {}).status_code == 302
    assert not AgentDayReport.objects.exists() and not ConversationExport.objects.exists()


def test_users_without_a_role_are_refused(clinic) -> None:  # noqa: ANN001
    nobody = login("nobody", None)
    for page in report_pages():
        assert nobody.get(page).status_code == 403, page
    posted = nobody.post(url("report-generate"), {"agent": "clinic", "day": "2026-03-04"})
    assert posted.status_code == 403
    posted = nobody.post(url("export-create"), {"since": "2026-03-01", "until": "2026-03-04"})
    assert posted.status_code == 403
    assert not AgentDayReport.objects.exists() and not ConversationExport.objects.exists()
    assert not AccessLog.objects.exists()


def test_generate_is_post_only(analyst) -> None:  # noqa: ANN001
    assert analyst.get(url("report-generate")).status_code == 405
    assert analyst.get(url("export-create")).status_code == 405


def test_an_analyst_generates_and_reads_a_report(
    analyst, clinic, folders, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    page = analyst.get(url("reports")).content.decode()
    assert "Generate now" in page and 'href="/dashboard/reports/"' in page  # the nav link
    missing = analyst.get(url("report-detail", "clinic", "2026-03-04"))
    assert missing.status_code == 200 and b"No report for this day yet" in missing.content

    with django_capture_on_commit_callbacks(execute=True):
        response = analyst.post(url("report-generate"), {"agent": "clinic", "day": "2026-03-04"})
    assert response.status_code == 302
    assert response["Location"] == url("report-detail", "clinic", "2026-03-04")
    report = AgentDayReport.objects.get()
    assert report.status == JobStatus.DONE and report.requested_by.username == "ana"

    response = analyst.get(response["Location"])
    assert response.status_code == 200
    page = response.content.decode()
    for text in ("Latency per component", "p99", "TTFA at ear", "TTFA distribution", "<svg"):
        assert text in page, text
    rows = {row["name"]: row for row in response.context["latency_rows"]}
    assert (rows["ttfa_ms"]["n"], rows["ttfa_ms"]["max"]) == (4, 2600.0)
    assert rows["ttfa_ms"]["p99"] == 2558.0  # 1200 + 0.97 · (2600 − 1200) … rank 2.97
    assert rows["ear_ttfa_ms"] == {**rows["ear_ttfa_ms"], "n": 0}
    chart = response.context["chart"]
    assert [bar["count"] for bar in chart["bars"]] == [0, 1, 0, 1, 1, 0, 1, 0, 0]
    assert page.count('<rect x="') == 9 and chart["total"] == 4
    # The tallest bar fills the plot; an empty bin has no height.
    assert max(bar["height"] for bar in chart["bars"]) == chart["base"] - 22
    assert chart["bars"][0]["height"] == 0
    assert "25.0 %" in page  # interruption rate: 1 of 4 caller turns
    assert "50.0 %" in page  # tool error rate: 1 of 2
    assert "find_patient" in page

    as_json = analyst.get(url("report-download", "clinic", "2026-03-04", "json"))
    assert as_json.status_code == 200 and as_json["Content-Type"] == "application/json"
    assert 'filename="clinic-2026-03-04.json"' in as_json["Content-Disposition"]
    assert json.loads(b"".join(as_json.streaming_content)) == report.figures
    as_csv = analyst.get(url("report-download", "clinic", "2026-03-04", "csv"))
    assert as_csv.status_code == 200
    body = b"".join(as_csv.streaming_content).decode()
    assert body.startswith("section,name,n,p50,p95,p99,max,count,errors,rate\n")
    assert body == Path(report.csv_path).read_text()

    listing = analyst.get(url("reports"), {"agent": "clinic"})
    assert list(listing.context["page"].object_list) == [report]
    assert analyst.get(url("reports"), {"agent": "nope"}).context["agent"] is None


def test_report_files_are_served_only_when_done(analyst, clinic, folders) -> None:  # noqa: ANN001
    target = url("report-download", "clinic", "2026-03-04", "csv")
    assert analyst.get(target).status_code == 404  # nobody asked for it
    csv_path = Path(folders) / "stale.csv"
    csv_path.write_text("half")
    report = AgentDayReport.objects.create(
        agent=clinic, day=DAY, status=JobStatus.RUNNING, csv_path=str(csv_path)
    )
    assert analyst.get(target).status_code == 409
    detail = analyst.get(url("report-detail", "clinic", "2026-03-04"))
    assert b"Generating" in detail.content and b'http-equiv="refresh"' in detail.content
    AgentDayReport.objects.filter(pk=report.pk).update(status=JobStatus.FAILED, error="boom")
    assert analyst.get(target).status_code == 409
    assert b"boom" in analyst.get(url("report-detail", "clinic", "2026-03-04")).content
    # Done, but the file is outside the reports folder: not served.
    AgentDayReport.objects.filter(pk=report.pk).update(status=JobStatus.DONE)
    assert analyst.get(target).status_code == 404
    for bad in (
        url("report-download", "clinic", "2026-03-04", "xml"),
        url("report-download", "clinic", "yesterday", "csv"),
        url("report-detail", "nobody", "2026-03-04"),
        url("report-detail", "clinic", "2026-13-01"),
    ):
        assert analyst.get(bad).status_code == 404, bad


def test_future_days_cannot_be_requested(analyst, clinic) -> None:  # noqa: ANN001
    response = analyst.post(
        url("report-generate"), {"agent": "clinic", "day": "2999-01-01"}, follow=True
    )
    assert b"has not happened yet" in response.content
    response = analyst.post(url("report-generate"), {"agent": "ghost", "day": "x"}, follow=True)
    assert b"No report requested" in response.content
    assert not AgentDayReport.objects.exists()


def test_list_queries_do_not_grow(analyst, clinic, django_assert_max_num_queries) -> None:  # noqa: ANN001
    for days in range(40):
        AgentDayReport.objects.create(
            agent=AgentFactory(), day=DAY - dt.timedelta(days=days), status=JobStatus.QUEUED
        )
    # session, user, groups (role), agents, count, page of reports.
    with django_assert_max_num_queries(6):
        response = analyst.get(url("reports"))
    assert len(response.context["page"].object_list) == 40
    ana = get_user_model().objects.get(username="ana")
    for days in range(30):
        ConversationExport.objects.create(
            agent=clinic, since=NOON - dt.timedelta(days=days + 1), until=NOON, requested_by=ana
        )
    # session, user, groups (role), exports with their agents and requesters, agents.
    with django_assert_max_num_queries(5):
        response = analyst.get(url("exports"))
    assert len(response.context["rows"]) == 30


# Exports -------------------------------------------------------------------------------------


def test_an_analyst_exports_and_downloads(
    analyst, clinic, folders, django_capture_on_commit_callbacks
) -> None:  # noqa: ANN001
    page = analyst.get(url("exports"))
    assert page.status_code == 200 and b"New export" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = analyst.post(
            url("export-create"),
            {"since": "2026-03-04", "until": "2026-03-04", "agent": "clinic", "redact": "on"},
            REMOTE_ADDR="10.1.2.3",
        )
    assert response.status_code == 302 and response["Location"] == url("exports")
    export = ConversationExport.objects.get()
    # One day, both ends included: [Mar 4 00:00, Mar 5 00:00) UTC.
    assert export.since == dt.datetime(2026, 3, 4, tzinfo=dt.UTC)
    assert export.until == dt.datetime(2026, 3, 5, tzinfo=dt.UTC)
    assert export.redact and export.agent == clinic and export.status == JobStatus.DONE

    progress = analyst.get(url("export-progress", export.pk)).json()
    assert progress == {
        "id": str(export.pk),
        "status": "done",
        "total": 2,
        "done": 2,
        "percent": 100,
        "size_bytes": export.size_bytes,
        "error": "",
        "download_url": url("export-download", export.pk),
    }
    listing = analyst.get(url("exports")).content.decode()
    assert "2026-03-04 → 2026-03-04" in listing and "Redacted" in listing
    assert f'href="{url("export-download", export.pk)}"' in listing

    download = analyst.get(url("export-download", export.pk), REMOTE_ADDR="10.1.2.4")
    assert download.status_code == 200 and download["Content-Type"] == "application/x-ndjson"
    assert (
        'filename="parley-export-20260304-20260304-redacted.jsonl"'
        in (download["Content-Disposition"])
    )
    body = b"".join(download.streaming_content).decode()
    assert body == Path(export.path).read_text()
    assert [json.loads(line)["type"] for line in body.splitlines()].count("call.meta") == 2
    actions = list(
        AccessLog.objects.order_by("at", "id").values_list("action", "address", "export_id")
    )
    assert actions == [
        (AccessLog.Action.EXPORT_REQUEST, "10.1.2.3", export.pk),
        (AccessLog.Action.EXPORT_DOWNLOAD, "10.1.2.4", export.pk),
    ]


def test_a_half_written_export_is_not_downloadable(analyst, folders) -> None:  # noqa: ANN001
    exports_dir = Path(folders) / "exports"
    exports_dir.mkdir()
    export = ConversationExport.objects.create(
        since=NOON,
        until=NOON + dt.timedelta(days=1),
        status=JobStatus.RUNNING,
        total=10,
        done=4,
        requested_by=get_user_model().objects.get(username="ana"),
    )
    partial = exports_dir / f"{export.pk}.jsonl"
    partial.write_text('{"type": "call.meta"}\n')
    ConversationExport.objects.filter(pk=export.pk).update(path=str(partial))

    assert analyst.get(url("export-download", export.pk)).status_code == 409
    progress = analyst.get(url("export-progress", export.pk)).json()
    assert (progress["status"], progress["percent"], progress["download_url"]) == (
        "running",
        40,
        None,
    )
    page = analyst.get(url("exports")).content.decode()
    assert 'aria-valuenow="40"' in page and "4 / 10 calls" in page
    assert 'data-status="running"' in page and "data-export-download hidden" in page

    ConversationExport.objects.filter(pk=export.pk).update(status=JobStatus.FAILED)
    assert analyst.get(url("export-download", export.pk)).status_code == 409
    # Done but the file was removed since: 404, not a broken download.
    ConversationExport.objects.filter(pk=export.pk).update(status=JobStatus.DONE)
    partial.unlink()
    assert analyst.get(url("export-download", export.pk)).status_code == 404
    assert analyst.get(url("export-progress", uuid.uuid4())).status_code == 404
    assert not AccessLog.objects.filter(action=AccessLog.Action.EXPORT_DOWNLOAD).exists()


def test_export_form_errors(analyst, clinic) -> None:  # noqa: ANN001
    response = analyst.post(url("export-create"), {"since": "2026-03-05", "until": "2026-03-04"})
    assert response.status_code == 400
    assert "must not come before the first" in response.content.decode()
    response = analyst.post(url("export-create"), {"since": "2025-01-01", "until": "2026-03-04"})
    assert response.status_code == 400
    assert response.context["form"].errors["since"] == [
        "An export covers at most 366 days; split the range."
    ]
    response = analyst.post(url("export-create"), {"since": "", "until": "x"})
    assert response.status_code == 400 and set(response.context["form"].errors) == {
        "since",
        "until",
    }
    assert not ConversationExport.objects.exists() and not AccessLog.objects.exists()


def test_admins_use_the_pages_too(clinic, folders, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    admin = login("boss", ADMIN)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(url("export-create"), {"since": "2026-03-01", "until": "2026-03-07"})
    assert response.status_code == 302
    assert ConversationExport.objects.get().status == JobStatus.DONE
    assert admin.get(url("reports")).status_code == 200


def test_analysts_see_their_own_exports_and_admins_all(analyst, folders) -> None:  # noqa: ANN001
    exports_dir = Path(folders) / "exports"
    exports_dir.mkdir()
    ana = get_user_model().objects.get(username="ana")
    bob = login("bob", ANALYST)
    boss = login("boss", ADMIN)
    mine, theirs = (
        ConversationExport.objects.create(
            since=NOON,
            until=NOON + dt.timedelta(days=1),
            status=JobStatus.DONE,
            requested_by=owner,
            path=str(exports_dir / f"{name}.jsonl"),
        )
        for name, owner in (("mine", ana), ("theirs", get_user_model().objects.get(username="bob")))
    )
    for export in (mine, theirs):
        Path(export.path).write_text('{"type": "call.meta"}\n')
    rows = analyst.get(url("exports")).context["rows"]
    assert [row["export"].pk for row in rows] == [mine.pk]
    # Another analyst's export is as good as missing: no progress, no download.
    assert analyst.get(url("export-progress", theirs.pk)).status_code == 404
    assert analyst.get(url("export-download", theirs.pk)).status_code == 404
    assert bob.get(url("export-download", theirs.pk)).status_code == 200
    assert {row["export"].pk for row in boss.get(url("exports")).context["rows"]} == {
        mine.pk,
        theirs.pk,
    }
    assert boss.get(url("export-download", mine.pk)).status_code == 200
