"""Conversations through the API: filters and search, constant queries per page, the detail
with turns and tool calls, transcript and recording downloads, and their audit rows."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection
from django.utils import timezone

from parley.agents.models import Scenario
from parley.agents.services import agent_create
from parley.conversations.models import AccessLog, CallEvent, Conversation, Turn
from parley.tools.models import ToolCall
from tests.platform.api.factories import conversation_finish, error_event, recording_write

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)


@pytest.fixture
def calls(hospital_agent):  # noqa: ANN001, ANN201
    """Four calls: a good one 3 days ago, a failed one yesterday (tool error, slow), an
    interrupted HR call today and a live one."""
    hr = Scenario.objects.create(slug="hr", name="HR software", domain="hr")
    hr_agent = agent_create(
        slug="hr-helpdesk",
        name="HR helpdesk",
        scenario=hr,
        model_pool=hospital_agent.model_pool,
        prompt="You help employees.",
    )
    good = conversation_finish(
        agent=hospital_agent,
        started_at=NOW - dt.timedelta(days=3),
        turns=[{"user_text": "I need a cardiology appointment", "ttfa_ms": 800.0}],
        tools=[{"turn": 1}],
    )
    failed = conversation_finish(
        agent=hospital_agent,
        started_at=NOW - dt.timedelta(days=1),
        status=Conversation.Status.ERROR,
        turns=[{"user_text": "Is Dr. Lovelace in today?", "ttfa_ms": 2500.0}],
        tools=[{"turn": 1, "status": ToolCall.Status.ERROR, "error": "database timeout"}],
    )
    interrupted = conversation_finish(
        agent=hr_agent,
        started_at=NOW,
        turns=[
            {"user_text": "How many vacation days do I have?", "ttfa_ms": 700.0},
            {
                "user_text": "stop, stop",
                "status": Turn.Status.INTERRUPTED,
                "agent_text": "You have twelve days left and",
                "spoken_text": "You have",
                "ttfa_ms": 650.0,
            },
        ],
    )
    live = conversation_finish(
        agent=hospital_agent,
        started_at=NOW + dt.timedelta(minutes=5),
        status=Conversation.Status.ACTIVE,
        ended_at=None,
        turns=[],
    )
    return {"good": good, "failed": failed, "interrupted": interrupted, "live": live}


def ids(response) -> list[str]:  # noqa: ANN001
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_list_is_newest_first_with_summary_fields(analyst, calls) -> None:  # noqa: ANN001
    body = analyst.get("/api/conversations/").json()
    order = ["live", "interrupted", "failed", "good"]
    assert [r["id"] for r in body["results"]] == [str(calls[k].pk) for k in order]
    failed = body["results"][2]
    assert failed["agent"] == "hospital-receptionist" and failed["scenario"] == "hospital"
    assert failed["status"] == "error" and failed["duration_ms"] == 42000.0
    assert (failed["turn_count"], failed["tool_calls_count"], failed["tool_errors"]) == (1, 1, 1)
    assert failed["ttfa_p50_ms"] == 2500.0 and failed["ttfa_max_ms"] == 2500.0
    assert body["results"][1]["interrupted_turns"] == 1
    assert body["results"][0]["duration_ms"] is None  # live


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("agent=hr-helpdesk", ["interrupted"]),
        ("scenario=hospital", ["live", "failed", "good"]),
        ("outcome=error", ["failed"]),
        ("outcome=interrupted", ["interrupted"]),
        ("outcome=active", ["live"]),
        ("tool_errors=true", ["failed"]),
        ("ttfa_above_ms=1000", ["failed"]),
        ("q=cardiology", ["good"]),
        ("q=vacation", ["interrupted"]),
        ("since={d1}&until={d1}", ["failed"]),  # dates: that whole UTC day
        ("since={d3}", ["live", "interrupted", "failed", "good"]),
        ("until={d3}", ["good"]),
        ("since={t_failed}", ["live", "interrupted", "failed"]),  # date-times: [since, until)
        ("until={t_failed}", ["good"]),
        ("scenario=hospital&ttfa_above_ms=500&since={d3}&until={d1}", ["failed", "good"]),
    ],
)
def test_filters_and_search(analyst, calls, query: str, expected: list[str]) -> None:  # noqa: ANN001
    values = {
        "d1": (NOW - dt.timedelta(days=1)).date().isoformat(),
        "d3": (NOW - dt.timedelta(days=3)).date().isoformat(),
        "t_failed": calls["failed"].started_at.isoformat().replace("+00:00", "Z"),
    }
    response = analyst.get(f"/api/conversations/?{query.format(**values)}")
    assert ids(response) == [str(calls[k].pk) for k in expected]


@pytest.mark.postgres
def test_full_text_search_syntax(analyst, calls) -> None:  # noqa: ANN001
    """PostgreSQL's websearch syntax through the API: stems, phrases, exclusion."""
    assert connection.vendor == "postgresql"
    search = "/api/conversations/?q="
    assert ids(analyst.get(search + "appointments")) == [str(calls["good"].pk)]  # stemmed
    assert ids(analyst.get(search + '"Dr. Lovelace"')) == [str(calls["failed"].pk)]
    assert ids(analyst.get(search + "vacation -stop")) == []
    assert ids(analyst.get(search + "vacation or cardiology")) == [
        str(calls["interrupted"].pk),
        str(calls["good"].pk),
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("until=2025-02-30", "until"),
        ("outcome=lost", "outcome"),
        ("ttfa_above_ms=-5", "ttfa_above_ms"),
        ("ttfa_above_ms=fast", "ttfa_above_ms"),
        ("tool_errors=maybe", "tool_errors"),
        ("agent=nobody", "agent"),
        ("scenario=casino", "scenario"),
        ("since=2025-05-02&until=2025-05-01", "until"),
        ("since=2025-05-01T10:00:00Z&until=2025-05-01T10:00:00Z", "until"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    analyst, calls, query: str, field: str
) -> None:
    response = analyst.get(f"/api/conversations/?{query}")
    assert response.status_code == 400
    assert list(response.json()) == [field], response.json()


def test_list_costs_the_same_queries_for_any_page_size(
    analyst,
    hospital_agent,
    django_assert_max_num_queries,
) -> None:
    for _ in range(3):
        conversation_finish(agent=hospital_agent, turns=[{}, {}], tools=[{"turn": 2}])
    # token, role, count, page
    with django_assert_max_num_queries(4):
        assert analyst.get("/api/conversations/").json()["count"] == 3
    for _ in range(25):
        conversation_finish(agent=hospital_agent, turns=[{}, {}], tools=[{"turn": 2}])
    with django_assert_max_num_queries(4):
        assert len(analyst.get("/api/conversations/").json()["results"]) == 28
    with django_assert_max_num_queries(6):  # + the agent filter's existence check, search
        analyst.get("/api/conversations/?agent=hospital-receptionist&q=appointment")


# One conversation -------------------------------------------------------------------------


def audit_rows() -> list[tuple]:
    return list(
        AccessLog.objects.order_by("at", "id").values_list(
            "username", "action", "channel", "conversation_id", "address"
        )
    )


def test_detail_has_turns_latency_tool_calls_routing_errors_and_is_audited(
    analyst,
    calls,
    tmp_path,
    django_assert_max_num_queries,
) -> None:
    failed = calls["failed"]
    error_event(failed, turn=1, message="tool get_doctor_info failed")
    recording_write(failed, tmp_path)
    with django_assert_max_num_queries(8):
        response = analyst.get(f"/api/conversations/{failed.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(failed.pk) and body["status"] == "error"
    assert body["prompt_version"] is None and body["providers"]["tts"] == "espeak-ng"
    (turn,) = body["turns"]
    assert turn["index"] == 1 and turn["user_text"] == "Is Dr. Lovelace in today?"
    assert turn["ttfa_ms"] == 2500.0 and turn["endpointing_ms"] == 500.0
    assert turn["llm_ttft_ms"] == 150.0 and turn["tts_ttfb_ms"] == 80.0
    assert turn["routing"] == [{"server": "simulator", "reason": "least_loaded", "attempts": 1}]
    (tool,) = turn["tool_calls"]
    assert tool["name"] == "get_doctor_info" and tool["status"] == "error"
    assert tool["arguments"] == {"doctor_identifier": "Dr. Lovelace"}
    assert tool["error"] == "database timeout" and tool["duration_ms"] == 35.0
    assert [e["data"]["message"] for e in turn["events"]] == ["tool get_doctor_info failed"]
    assert [e["type"] for e in body["errors"]] == ["error"]
    recording = body["recording"]
    assert recording["available"] is True and recording["channels"] == 2
    assert recording["url"] == f"/api/conversations/{failed.pk}/recording"
    assert audit_rows() == [("ana", "view", "api", failed.pk, "127.0.0.1")]


def test_turns_and_tool_calls_lists(analyst, calls) -> None:  # noqa: ANN001
    interrupted = calls["interrupted"]
    turns = analyst.get(f"/api/conversations/{interrupted.pk}/turns/").json()
    assert [t["index"] for t in turns["results"]] == [1, 2]
    cut = turns["results"][1]
    assert cut["status"] == "interrupted" and cut["spoken_text"] == "You have"
    good = calls["good"]
    tools = analyst.get(f"/api/conversations/{good.pk}/tool-calls/").json()
    (tool,) = tools["results"]
    assert tool["turn"] == 1 and tool["status"] == "ok"
    assert json.loads(tool["result"])["name"] == "Dr. Ada Lovelace"
    assert tool["arguments_raw"] == '{"doctor_identifier": "Dr. Lovelace"}'
    assert [(r[1], r[3]) for r in audit_rows()] == [
        ("view", interrupted.pk),
        ("view", good.pk),
    ]
    assert AccessLog.objects.filter(detail={"part": "tool_calls"}).count() == 1


def test_unknown_conversation_is_404_and_not_audited(analyst, db) -> None:  # noqa: ANN001
    missing = "00000000-0000-0000-0000-000000000000"
    for suffix in ("", "turns/", "tool-calls/", "transcript", "recording"):
        response = analyst.get(f"/api/conversations/{missing}/{suffix}")
        assert response.status_code == 404, suffix
    assert analyst.get("/api/conversations/not-a-uuid/").status_code == 404
    assert audit_rows() == []


def test_transcript_is_jsonl_and_audited(analyst, calls) -> None:  # noqa: ANN001
    good = calls["good"]
    for seq, (kind, extra) in enumerate(
        [("turn.started", {}), ("transcript.final", {"text": "I need a cardiology appointment"})]
    ):
        CallEvent.objects.create(
            conversation=good, seq=seq, turn_index=1, type=kind, t_ms=100.0 * seq, data=extra
        )
    response = analyst.get(
        f"/api/conversations/{good.pk}/transcript", HTTP_ACCEPT="application/x-ndjson"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert f"parley-{good.pk}.jsonl" in response["Content-Disposition"]
    lines = [json.loads(line) for line in response.content.decode().splitlines()]
    assert lines[0]["type"] == "call.meta" and lines[0]["conversation_id"] == str(good.pk)
    assert [line["type"] for line in lines[1:]] == ["turn.started", "transcript.final"]
    assert lines[2]["text"] == "I need a cardiology appointment"
    assert audit_rows() == [("ana", "transcript", "api", good.pk, "127.0.0.1")]


def test_recording_is_the_wav_with_ranges_and_audited_once(analyst, calls, tmp_path) -> None:  # noqa: ANN001
    good = calls["good"]
    recording = recording_write(good, tmp_path)
    url = f"/api/conversations/{good.pk}/recording"
    response = analyst.get(url, HTTP_ACCEPT="audio/wav")
    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    body = b"".join(response.streaming_content)
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE" and len(body) == recording.size_bytes
    part = analyst.get(url, HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and len(b"".join(part.streaming_content)) == 100
    assert audit_rows() == [("ana", "recording", "api", good.pk, "127.0.0.1")]

    recording.deleted_at = timezone.now()  # retention deleted it
    recording.save()
    response = analyst.get(url)
    assert response.status_code == 404 and "retention" in response.json()["detail"]
    assert analyst.get(f"/api/conversations/{calls['failed'].pk}/recording").status_code == 404
    assert len(audit_rows()) == 1
