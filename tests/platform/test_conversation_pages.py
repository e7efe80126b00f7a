"""The analysts' conversation pages: filters, search, query counts, the timeline, the
recording with byte ranges, downloads, and the access audit log."""

from __future__ import annotations

import datetime as dt
import json
import wave

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from parley.conversations.models import AccessLog, Conversation, Recording, Turn
from parley.conversations.selectors import ConversationFilters, conversation_search
from parley.conversations.services import conversation_summary_update
from parley.tools.models import ToolCall
from tests.conftest import client_for, user_with
from tests.conversations.factories import (
    CallEventFactory,
    ConversationFactory,
    ToolCallFactory,
    TurnFactory,
)

pytestmark = pytest.mark.django_db


def url(name: str, *args) -> str:  # noqa: ANN002
    return reverse(f"dashboard:{name}", args=args)


def call(agent, *, started=None, turns=(), status="ended", tools=(), **kw):  # noqa: ANN001, ANN003, ANN201
    """A call with caller turns given as (user_text, agent_text, ttfa_ms, status)."""
    conversation = ConversationFactory(
        agent=agent,
        started_at=started or timezone.now() - dt.timedelta(minutes=5),
        status=status,
        **kw,
    )
    made = []
    for index, (user_text, agent_text, ttfa, turn_status) in enumerate(turns, start=1):
        made.append(
            TurnFactory(
                conversation=conversation,
                index=index,
                user_text=user_text,
                agent_text=agent_text,
                spoken_text=agent_text,
                ttfa_ms=ttfa,
                status=turn_status,
            )
        )
    for turn_index, status_ in tools:
        ToolCallFactory(turn=made[turn_index - 1], status=status_)
    return conversation_summary_update(conversation=conversation)


@pytest.fixture
def calls(hospital_agent):  # noqa: ANN001, ANN201
    """Five calls spread over three days, one of another scenario's agent."""
    from parley.agents.models import Agent
    from parley.agents.services import scenario_install

    hr = Agent.objects.create(
        slug="hr-helpdesk",
        name="HR helpdesk",
        scenario=scenario_install(slug="hr"),
        model_pool=hospital_agent.model_pool,
    )
    now = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    return {
        "booked": call(
            hospital_agent,
            started=now - dt.timedelta(days=2),
            turns=[
                (
                    "I need an appointment with doctor Patel",
                    "Booked for Monday.",
                    700.0,
                    "completed",
                )
            ],
            tools=[(1, "ok")],
        ),
        "slow": call(
            hospital_agent,
            started=now - dt.timedelta(days=1),
            turns=[("what are your opening hours", "We open at eight.", 1900.0, "completed")],
        ),
        "cut": call(
            hospital_agent,
            started=now - dt.timedelta(hours=1),
            turns=[("cancel my appointment", "Sure, which one", 650.0, "interrupted")],
            tools=[(1, "error")],
        ),
        "failed": call(
            hospital_agent, started=now - dt.timedelta(minutes=30), status="error", turns=[]
        ),
        "hr": call(
            hr,
            started=now - dt.timedelta(minutes=10),
            turns=[
                ("how many vacation days do I have left", "You have twelve.", 800.0, "completed")
            ],
        ),
    }


def listed(client, **params) -> set[str]:  # noqa: ANN001, ANN003
    response = client.get(url("conversations"), params)
    assert response.status_code == 200
    return {str(c.pk) for c in response.context["page"].object_list}


def ids(calls, *names) -> set[str]:  # noqa: ANN001, ANN002
    return {str(calls[name].pk) for name in names}


def test_summary_columns_are_written_from_the_turns(calls) -> None:  # noqa: ANN001
    cut = calls["cut"]
    assert (cut.turn_count, cut.interrupted_turns, cut.tool_calls_count, cut.tool_errors) == (
        1,
        1,
        1,
        1,
    )
    assert cut.ttfa_p50_ms == 650.0 and cut.ttfa_max_ms == 650.0
    assert cut.transcript_text == "cancel my appointment\nSure, which one"


def test_filters(analyst, calls) -> None:  # noqa: ANN001
    assert listed(analyst) == ids(calls, "booked", "slow", "cut", "failed", "hr")
    assert listed(analyst, agent="hr-helpdesk") == ids(calls, "hr")
    assert listed(analyst, scenario="hospital") == ids(calls, "booked", "slow", "cut", "failed")
    assert listed(analyst, outcome="error") == ids(calls, "failed")
    assert listed(analyst, outcome="interrupted") == ids(calls, "cut")
    assert listed(analyst, outcome="ended") == ids(calls, "booked", "slow", "cut", "hr")
    assert listed(analyst, tool_errors="on") == ids(calls, "cut")
    assert listed(analyst, ttfa_above_ms="1000") == ids(calls, "slow")
    assert listed(analyst, ttfa_above_ms="690") == ids(calls, "booked", "slow", "hr")
    day = calls["slow"].started_at.date()
    assert listed(analyst, since=day.isoformat(), until=day.isoformat()) == ids(calls, "slow")
    assert listed(analyst, since=day.isoformat()) == ids(calls, "slow", "cut", "failed", "hr")
    # Combined: AND.
    assert listed(analyst, scenario="hospital", ttfa_above_ms="600", outcome="ended") == ids(
        calls, "booked", "slow", "cut"
    )


def test_bad_filters_are_refused_with_a_message(analyst, calls) -> None:  # noqa: ANN001
    response = analyst.get(url("conversations"), {"since": "2026-05-02", "until": "2026-05-01"})
    page = response.content.decode()
    assert response.status_code == 200 and "must not be before its start" in page
    assert not response.context["page"].object_list
    response = analyst.get(url("conversations"), {"ttfa_above_ms": "-5", "outcome": "lost"})
    assert set(response.context["form"].errors) == {"ttfa_above_ms", "outcome"}
    with pytest.raises(ValueError, match="unknown outcome"):
        ConversationFilters(outcome="lost")


@pytest.mark.postgres
def test_full_text_search_over_transcripts(analyst, calls) -> None:  # noqa: ANN001
    assert connection.vendor == "postgresql"
    assert listed(analyst, q="appointment") == ids(calls, "booked", "cut")
    assert listed(analyst, q="appointments") == ids(calls, "booked", "cut")  # stemmed
    assert listed(analyst, q='"opening hours"') == ids(calls, "slow")
    assert listed(analyst, q="appointment -cancel") == ids(calls, "booked")
    assert listed(analyst, q="twelve") == ids(calls, "hr")  # the agent's words too
    assert listed(analyst, q="patel", outcome="ended") == ids(calls, "booked")
    assert listed(analyst, q="zeppelin") == set()
    page = analyst.get(url("conversations"), {"q": "zeppelin"}).content.decode()
    assert "No conversations match" in page


@pytest.mark.postgres
def test_search_uses_the_gin_index(calls) -> None:  # noqa: ANN001
    qs = conversation_search(ConversationFilters(q="appointment"))
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            plan = qs.explain()
        finally:
            cursor.execute("SET enable_seqscan = on")
    assert "conversation_transcript_fts" in plan, plan


def test_list_query_count_does_not_grow_with_rows(
    analyst, hospital_agent, django_assert_max_num_queries
) -> None:  # noqa: ANN001
    for i in range(60):
        call(
            hospital_agent,
            started=timezone.now() - dt.timedelta(minutes=i + 1),
            turns=[("hello", "hi", 500.0 + i, "completed")],
            tools=[(1, "error" if i % 7 == 0 else "ok")],
        )
    # session, user, groups (role), agents, scenarios, count, page.
    with django_assert_max_num_queries(7):
        response = analyst.get(url("conversations"), {"tool_errors": "on", "scenario": "hospital"})
    assert len(response.context["page"].object_list) == 9
    with django_assert_max_num_queries(7):
        response = analyst.get(url("conversations"))
    assert len(response.context["page"].object_list) == 50
    assert response.context["page"].paginator.count == 60
    page2 = analyst.get(url("conversations"), {"page": 2, "ttfa_above_ms": "0"}).content.decode()
    assert "?ttfa_above_ms=0&amp;page=1" in page2


def test_detail_shows_the_timeline(analyst, analyst_user, hospital_agent) -> None:  # noqa: ANN001
    conversation = ConversationFactory(agent=hospital_agent)
    TurnFactory(conversation=conversation, index=0, agent_text="Hello, hospital.", ttfa_ms=None)
    booked = TurnFactory(
        conversation=conversation,
        index=1,
        user_text="book me with doctor Patel",
        agent_text="You are booked for Monday at nine.",
        endpointing_ms=500.0,
        stt_final_ms=520.0,
        llm_ttft_ms=150.0,
        first_chunk_ms=300.0,
        tts_ttfb_ms=40.0,
        ttfa_ms=900.0,
        routing=[{"step": 1, "server": "vllm-a", "reason": "affinity", "failovers": 1}],
    )
    TurnFactory(
        conversation=conversation,
        index=2,
        user_text="actually no",
        agent_text="Okay. I will cancel the booking and send you a text.",
        spoken_text="Okay.",
        status=Turn.Status.INTERRUPTED,
        ttfa_ms=600.0,
    )
    ToolCallFactory(
        turn=booked,
        name="book_appointment",
        arguments={"doctor": "Patel", "day": "Monday"},
        result='{"confirmation": "A-77"}',
        duration_ms=123.0,
    )
    ToolCallFactory(
        turn=booked,
        name="send_sms",
        arguments=None,
        arguments_raw="{not json",
        status=ToolCall.Status.ERROR,
        result="Error: arguments are not valid JSON",
        error="bad arguments",
    )
    CallEventFactory(
        conversation=conversation,
        turn_index=1,
        type="error",
        data={"code": "tts_error", "message": "ElevenLabs answered 503"},
    )
    conversation_summary_update(conversation=conversation)

    response = analyst.get(url("conversation-detail", conversation.pk))
    assert response.status_code == 200
    page = response.content.decode()
    for text in (
        "Greeting",
        "book me with doctor Patel",
        "You are booked for Monday at nine.",
        "book_appointment",
        "&quot;doctor&quot;: &quot;Patel&quot;",
        "{&quot;confirmation&quot;: &quot;A-77&quot;}",
        "123 ms",
        "send_sms",
        "{not json",
        "bad arguments",
        "tts_error: ElevenLabs answered 503",
        "vllm-a",
        "affinity, 1 failover",
        "Interrupted",
        "I will cancel the booking and send you a text.",  # the part cut off
        "This call was not recorded",
    ):
        assert text in page, text
    # The cut-off part is marked as not heard, after what was heard.
    assert page.index("Okay.") < page.index('class="cut-off"')
    rows = {r["turn"].index: r for r in response.context["turns"]}
    assert rows[2]["cut_off"] == "I will cancel the booking and send you a text."
    bars = {b["name"]: b for b in rows[1]["bars"]}
    assert list(bars) == [
        "endpointing_ms",
        "stt_final_ms",
        "llm_ttft_ms",
        "first_chunk_ms",
        "tts_ttfb_ms",
        "ttfa_ms",
    ]
    assert bars["ttfa_ms"]["percent"] == 100.0 and bars["tts_ttfb_ms"]["percent"] == pytest.approx(
        4.4, abs=0.1
    )
    log = AccessLog.objects.get()
    assert (log.user, log.action, log.channel, log.conversation_id) == (
        analyst_user,
        "view",
        "dashboard",
        conversation.pk,
    )
    assert log.username == "ana" and log.address == "127.0.0.1"


def test_detail_shows_llm_failovers_with_their_servers_and_where_the_reply_resumed(
    analyst, hospital_agent
) -> None:  # noqa: ANN001
    conversation = ConversationFactory(agent=hospital_agent)
    TurnFactory(conversation=conversation, index=1, user_text="hello", agent_text="Hi there.")
    failover = {"step": 1, "from_server": "vllm-a", "to_server": "vllm-b"}
    CallEventFactory(
        conversation=conversation,
        seq=1,
        turn_index=1,
        type="llm.failover",
        data={**failover, "outcome": "broken_stream", "resumed_at_chars": 42},
    )
    CallEventFactory(
        conversation=conversation,
        seq=2,
        turn_index=1,
        type="llm.failover",
        data={
            "step": 2,
            "from_server": "vllm-b",
            "to_server": "vllm-c",
            "outcome": "ttft_deadline",
            "resumed_at_chars": 0,
        },
    )
    CallEventFactory(conversation=conversation, seq=3, turn_index=1, type="llm.route", data={})

    response = analyst.get(url("conversation-detail", conversation.pk))
    page = response.content.decode()
    row = next(r for r in response.context["turns"] if r["turn"].index == 1)
    assert [e.type for e in row["events"]] == ["llm.failover", "llm.failover"]  # not llm.route
    first = (
        'LLM failover (step 1): <span class="mono">vllm-a</span> broke off mid-reply; '
        '<span class="mono">vllm-b</span> resumed the reply after 42 characters.'
    )
    second = (
        'LLM failover (step 2): <span class="mono">vllm-b</span> sent no first token in time; '
        '<span class="mono">vllm-c</span> answered afresh.'
    )
    assert first in page and second in page
    assert page.index(first) < page.index(second)


def test_detail_pages_need_a_role_and_404_for_unknown_calls(client, hospital_agent) -> None:  # noqa: ANN001
    conversation = ConversationFactory(agent=hospital_agent)
    target = url("conversation-detail", conversation.pk)
    assert client.get(target).status_code == 302  # to the login page
    nobody = client_for(user_with("nobody"))
    for name in ("conversation-detail", "conversation-recording", "conversation-transcript"):
        assert nobody.get(url(name, conversation.pk)).status_code == 403
    admin = client_for(user_with("boss", role="admin"))
    import uuid

    assert admin.get(url("conversation-detail", uuid.uuid4())).status_code == 404
    assert not AccessLog.objects.exists()


def write_wav(path, *, seconds: float) -> None:  # noqa: ANN001
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(bytes(int(16_000 * seconds) * 4))


def test_recording_is_served_with_ranges_and_audited_once_per_play(
    analyst, hospital_agent, tmp_path
) -> None:  # noqa: ANN001
    conversation = ConversationFactory(agent=hospital_agent)
    TurnFactory(conversation=conversation, index=0, agent_text="Hi")
    TurnFactory(conversation=conversation, index=1, user_text="hello")
    path = tmp_path / "call.wav"
    write_wav(path, seconds=4)
    size = path.stat().st_size
    Recording.objects.create(
        conversation=conversation,
        path=str(path),
        sample_rate_hz=16_000,
        duration_ms=4000.0,
        size_bytes=size,
        expires_at=timezone.now() + dt.timedelta(days=30),
    )
    page = analyst.get(url("conversation-detail", conversation.pk))
    markers = page.context["markers"]
    assert [m["label"] for m in markers] == ["Greeting", "Turn 1"]
    assert [m["at_ms"] for m in markers] == [0, 1000]  # turn 1 started 1 s into the call
    assert markers[1]["percent"] == 25.0
    assert b'data-seek-ms="1000"' in page.content and b"<audio" in page.content

    target = url("conversation-recording", conversation.pk)
    whole = analyst.get(target)
    assert whole.status_code == 200 and whole["Content-Type"] == "audio/wav"
    assert whole["Accept-Ranges"] == "bytes"
    assert b"".join(whole.streaming_content) == path.read_bytes()
    first = analyst.get(target, HTTP_RANGE="bytes=0-")
    assert first.status_code == 206 and first["Content-Range"] == f"bytes 0-{size - 1}/{size}"
    middle = analyst.get(target, HTTP_RANGE="bytes=100-199")
    assert middle.status_code == 206 and middle["Content-Length"] == "100"
    assert b"".join(middle.streaming_content) == path.read_bytes()[100:200]
    tail = analyst.get(target, HTTP_RANGE="bytes=-10")
    assert b"".join(tail.streaming_content) == path.read_bytes()[-10:]
    outside = analyst.get(target, HTTP_RANGE=f"bytes={size}-")
    assert outside.status_code == 416 and outside["Content-Range"] == f"bytes */{size}"
    download = analyst.get(target + "?download=1")
    assert f'filename="parley-{conversation.pk}.wav"' in download["Content-Disposition"]
    actions = list(AccessLog.objects.order_by("at", "id").values_list("action", "detail"))
    # The page view, then one line per playback start (whole file, range from 0, download),
    # not one per seek.
    assert actions == [
        ("view", {}),
        ("recording", {"download": False}),
        ("recording", {"download": False}),
        ("recording", {"download": True}),
    ]


def test_a_deleted_recording_says_so(analyst, hospital_agent, tmp_path) -> None:  # noqa: ANN001
    conversation = ConversationFactory(agent=hospital_agent)
    Recording.objects.create(
        conversation=conversation,
        path=str(tmp_path / "gone.wav"),
        sample_rate_hz=16_000,
        duration_ms=1000.0,
        size_bytes=0,
        expires_at=timezone.now(),
        deleted_at=timezone.now(),
    )
    page = analyst.get(url("conversation-detail", conversation.pk)).content.decode()
    assert "deleted on" in page and "<audio" not in page
    assert analyst.get(url("conversation-recording", conversation.pk)).status_code == 404


def test_transcript_and_latency_downloads_are_audited(analyst, hospital_agent, tmp_path) -> None:  # noqa: ANN001
    conversation = ConversationFactory(agent=hospital_agent)
    TurnFactory(conversation=conversation, index=1, user_text="hello", ttfa_ms=777.0)
    CallEventFactory(conversation=conversation, seq=1, type="turn.started", data={"role": "caller"})
    # Before the report task ran: built from the event log.
    response = analyst.get(url("conversation-transcript", conversation.pk))
    lines = [json.loads(line) for line in response.content.decode().splitlines()]
    assert response["Content-Type"] == "application/x-ndjson"
    assert [line["type"] for line in lines] == ["call.meta", "turn.started"]
    # After: the file Celery wrote.
    written = tmp_path / "transcript.jsonl"
    written.write_text('{"type": "call.meta", "from": "file"}\n')
    Conversation.objects.filter(pk=conversation.pk).update(transcript_path=str(written))
    response = analyst.get(url("conversation-transcript", conversation.pk))
    assert json.loads(response.content)["from"] == "file"
    report = json.loads(analyst.get(url("conversation-latency", conversation.pk)).content)
    assert report["format"] == "parley-latency/v1"
    assert report["turns"][0]["ttfa_ms"] == 777.0
    assert list(AccessLog.objects.order_by("at", "id").values_list("action", flat=True)) == [
        "transcript",
        "transcript",
        "latency_report",
    ]


def test_the_access_log_is_read_only_in_the_admin(admin, analyst, hospital_agent) -> None:  # noqa: ANN001
    conversation = ConversationFactory(agent=hospital_agent)
    analyst.get(url("conversation-detail", conversation.pk))
    entry = AccessLog.objects.get()
    listing = admin.get(reverse("admin:conversations_accesslog_changelist"))
    assert listing.status_code == 200 and b"ana" in listing.content
    assert admin.get(reverse("admin:conversations_accesslog_add")).status_code == 403
    change = reverse("admin:conversations_accesslog_change", args=[entry.pk])
    assert admin.post(change, {"username": "someone-else"}).status_code == 403
    delete = reverse("admin:conversations_accesslog_delete", args=[entry.pk])
    assert admin.post(delete, {"post": "yes"}).status_code == 403
    assert AccessLog.objects.get().username == "ana"
