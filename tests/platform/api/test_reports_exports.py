"""Day reports and bulk exports through the API: requests (202), the background job run
for real, progress, downloads only when done, and the audit rows of exports."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone

from parley.conversations.models import AccessLog, AgentDayReport, ConversationExport, JobStatus
from tests.platform.api.factories import conversation_finish

pytestmark = pytest.mark.django_db

TODAY = timezone.now().astimezone(dt.UTC).date()
YESTERDAY = TODAY - dt.timedelta(days=1)


@pytest.fixture
def exports_dir(settings, tmp_path):  # noqa: ANN001, ANN201
    settings.PARLEY_EXPORTS_DIR = tmp_path / "exports"
    return settings.PARLEY_EXPORTS_DIR


def noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)


# Reports ----------------------------------------------------------------------------------


def test_report_list_filters(analyst, hospital_agent) -> None:  # noqa: ANN001
    for days_ago, state in ((1, JobStatus.DONE), (2, JobStatus.FAILED), (9, JobStatus.DONE)):
        AgentDayReport.objects.create(
            agent=hospital_agent, day=TODAY - dt.timedelta(days=days_ago), status=state
        )

    def days(query: str) -> list[str]:
        response = analyst.get(f"/api/reports/?{query}")
        assert response.status_code == 200, response.content
        return [row["day"] for row in response.json()["results"]]

    d = [(TODAY - dt.timedelta(days=n)).isoformat() for n in (1, 2, 9)]
    assert days("") == d
    assert days(f"since={d[1]}") == d[:2]
    assert days(f"since={d[2]}&until={d[1]}") == d[1:]  # both days included
    assert days("status=failed") == [d[1]]
    assert days("agent=hospital-receptionist&status=done") == [d[0], d[2]]
    for query, field in (("agent=nobody", "agent"), ("since=last-week", "since")):
        response = analyst.get(f"/api/reports/?{query}")
        assert response.status_code == 400 and list(response.json()) == [field]
    response = analyst.get(f"/api/reports/?since={d[0]}&until={d[2]}")
    assert response.status_code == 400 and "until" in response.json()
    assert "figures" not in analyst.get("/api/reports/").json()["results"][0]


def test_report_request_runs_the_job_and_the_detail_has_its_figures(
    analyst,
    analyst_user,
    hospital_agent,
    reports_dir,
    django_capture_on_commit_callbacks,
) -> None:
    conversation_finish(agent=hospital_agent, started_at=noon(YESTERDAY), tools=[{"turn": 1}])
    with django_capture_on_commit_callbacks(execute=True):
        response = analyst.post(
            "/api/reports/",
            {"agent": hospital_agent.slug, "day": YESTERDAY.isoformat()},
            format="json",
        )
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"  # as it stood when the request answered
    report = AgentDayReport.objects.get(agent=hospital_agent, day=YESTERDAY)
    assert response["Location"] == f"/api/reports/{report.pk}/"
    assert report.requested_by == analyst_user and report.status == JobStatus.DONE

    body = analyst.get(response["Location"]).json()
    assert body["status"] == "done" and body["requested_by"] == "ana"
    assert body["figures"] == report.figures and body["figures"]
    assert analyst.get("/api/reports/999999/").status_code == 404


def test_report_request_refuses_a_future_day_and_an_unknown_agent(admin, hospital_agent) -> None:  # noqa: ANN001
    tomorrow = (TODAY + dt.timedelta(days=1)).isoformat()
    response = admin.post(
        "/api/reports/", {"agent": hospital_agent.slug, "day": tomorrow}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "day" and "has not happened yet" in response.json()["detail"]
    response = admin.post("/api/reports/", {"agent": "nobody", "day": "2025-05-01"}, format="json")
    assert response.status_code == 400 and "agent" in response.json()
    assert not AgentDayReport.objects.exists()


# Exports ----------------------------------------------------------------------------------


def test_export_request_build_progress_download_and_audit(
    analyst,
    analyst_user,
    hospital_agent,
    exports_dir,
    django_capture_on_commit_callbacks,
) -> None:
    inside = [
        conversation_finish(
            agent=hospital_agent, started_at=noon(YESTERDAY) + dt.timedelta(hours=h)
        )
        for h in (0, 1)
    ]
    conversation_finish(agent=hospital_agent, started_at=noon(TODAY - dt.timedelta(days=5)))
    with django_capture_on_commit_callbacks(execute=True):
        response = analyst.post(
            "/api/exports/",
            {"since": YESTERDAY.isoformat(), "until": YESTERDAY.isoformat(), "redact": True},
            format="json",
        )
    assert response.status_code == 202, response.content
    export = ConversationExport.objects.get()
    assert response["Location"] == f"/api/exports/{export.pk}/"
    assert (export.since, export.until) == (
        noon(YESTERDAY) - dt.timedelta(hours=12),
        noon(YESTERDAY) + dt.timedelta(hours=12),
    )
    assert export.requested_by == analyst_user and export.redact is True
    requested = AccessLog.objects.get(action=AccessLog.Action.EXPORT_REQUEST)
    assert (requested.channel, requested.export_id, requested.username) == ("api", export.pk, "ana")
    assert requested.address == "127.0.0.1"

    body = analyst.get(f"/api/exports/{export.pk}/").json()
    assert (body["status"], body["done"], body["total"], body["progress"]) == ("done", 2, 2, 1.0)
    assert body["download_url"] == f"/api/exports/{export.pk}/download"

    download = analyst.get(body["download_url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in b"".join(download.streaming_content).splitlines()]
    metas = [line["conversation_id"] for line in lines if line["type"] == "call.meta"]
    assert metas == [str(c.pk) for c in inside]
    downloaded = AccessLog.objects.get(action=AccessLog.Action.EXPORT_DOWNLOAD)
    assert (downloaded.channel, downloaded.export_id, downloaded.user) == (
        "api",
        export.pk,
        analyst_user,
    )


def test_download_before_done_is_409_and_not_audited(analyst, analyst_user, exports_dir) -> None:  # noqa: ANN001
    now = timezone.now()
    export = ConversationExport.objects.create(
        requested_by=analyst_user,
        since=now - dt.timedelta(days=1),
        until=now,
        status=JobStatus.RUNNING,
        total=80,
        done=25,
    )
    body = analyst.get(f"/api/exports/{export.pk}/").json()
    assert (body["status"], body["progress"], body["download_url"]) == ("running", 0.3125, None)
    response = analyst.get(f"/api/exports/{export.pk}/download")
    assert response.status_code == 409
    assert response.json()["code"] == "export_running" and "25 of 80" in response.json()["detail"]
    # done, but its file was removed since
    ConversationExport.objects.filter(pk=export.pk).update(
        status=JobStatus.DONE, path=str(exports_dir / "gone.jsonl")
    )
    assert analyst.get(f"/api/exports/{export.pk}/download").status_code == 404
    assert not AccessLog.objects.filter(action=AccessLog.Action.EXPORT_DOWNLOAD).exists()


def test_export_request_refuses_bad_ranges(analyst, hospital_agent, exports_dir) -> None:  # noqa: ANN001
    def post(**body):  # noqa: ANN003, ANN202
        return analyst.post("/api/exports/", body, format="json")

    response = post(since="2025-05-02", until="2025-05-01")
    assert response.status_code == 400 and list(response.json()) == ["until"]
    response = post(since="2024-01-01", until="2025-06-01")  # longer than a year
    assert response.status_code == 400
    assert response.json()["field"] == "since" and "366 days" in response.json()["detail"]
    response = post(since="2025-05-01", until="2025-05-02", agent="nobody")
    assert response.status_code == 400 and "agent" in response.json()
    response = post(until="2025-05-02")
    assert response.status_code == 400 and "since" in response.json()
    assert not ConversationExport.objects.exists()
    assert not AccessLog.objects.exists()
