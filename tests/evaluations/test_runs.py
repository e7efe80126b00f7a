"""Evaluation runs end to end: hospital tasks in text mode with the simulator, the LLM
caller, failures, resuming, the Celery job and the admin pages."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command
from django.urls import reverse

from parley.agents.simulator_runtime import simulator_base_url
from parley.conversations.models import Conversation, Turn
from parley.evaluations.models import Evaluation, EvaluationRun
from parley.evaluations.services import evaluation_create, evaluation_run
from parley.evaluations.tasks import evaluation_execute
from parley.platform.fleet.models import ModelPool
from parley.tools.hospital.seed import hospital_state_digest
from parley.tools.models import Environment, ToolCall
from parley.tools.replay import scenario_tasks_path

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = json.loads(scenario_tasks_path("hospital").read_text())
BY_ID = {t["id"]: t for t in TASKS}


@pytest.mark.slow
def test_hospital_tasks_in_text_mode_end_to_end(hospital_agent, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    live_before = hospital_state_digest()
    out = tmp_path / "evaluation"
    call_command(
        "evaluate", "--agent", "hospital-receptionist", "--mode", "text", "--out", str(out)
    )

    evaluation = Evaluation.objects.get()
    runs = list(evaluation.runs.order_by("id"))
    assert evaluation.status == "done" and evaluation.runs_done == evaluation.runs_total == 64
    assert [r.task_id for r in runs] == [t["id"] for t in TASKS]
    assert all(r.status == "done" and r.error == "" for r in runs)
    summary = json.loads((out / "summary.json").read_text())
    scores = summary["scores"]
    # Counts, not only rates; and the counts are the runs' own.
    assert scores["runs"] == 64
    assert scores["action_match"]["passed"] == sum(bool(r.action_match) for r in runs)
    assert scores["actions"]["of"] == sum(len(t["actions"]) for t in TASKS)
    assert scores["state_match"]["passed"] == sum(bool(r.state_match) for r in runs)
    assert scores["turns"] == sum(r.turns for r in runs) > 64
    assert scores["tokens"] == sum(r.tokens for r in runs) > 0
    assert scores["ttft_ms"]["n"] == 64 and scores["ttfa_ms"]["n"] == 0  # text mode: no audio
    # The scripted caller and the scripted receptionist agree on a good share of the tasks
    # (23 of 64 measured); a regression in either shows here.
    assert scores["action_match"]["passed"] >= 20
    for run in runs:
        result = json.loads((out / f"{run.task_id}.json").read_text())
        assert result["scores"]["action_match"] == run.action_match
        # The logged calls are the conversation's ToolCall rows, in order.
        rows = ToolCall.objects.filter(conversation_id=run.conversation_id).order_by("started_at")
        assert [c["name"] for c in run.calls] == [r.name for r in rows]
        assert (
            run.turns
            == Turn.objects.filter(conversation_id=run.conversation_id, index__gt=0).count()
        )
        assert result["dialogue"][0]["role"] == "caller"
    # Every conversation ended normally, tools ran in sandboxes that are all gone, and the
    # live data never changed.
    conversations = Conversation.objects.filter(pk__in=[r.conversation_id for r in runs])
    assert conversations.count() == 64
    assert set(conversations.values_list("status", flat=True)) == {"ended"}
    assert not Environment.objects.filter(kind="sandbox").exists()
    assert not ToolCall.objects.filter(conversation__isnull=False, status="running").exists()
    assert hospital_state_digest() == live_before
    printed = capsys.readouterr()
    assert "64/64" in printed.err and "action match (runs)" in printed.out


def test_a_passing_run_scores_actions_state_turns_and_tokens(hospital_agent) -> None:  # noqa: ANN001
    evaluation = evaluation_create(
        agent=hospital_agent,
        tasks=[BY_ID["entry_4"], BY_ID["entry_2"]],
        task_source="test",
        repetitions=2,
    )
    evaluation = evaluation_run(evaluation.pk)
    runs = list(evaluation.runs.order_by("id"))
    assert [(r.task_id, r.repetition) for r in runs] == [
        ("entry_4", 1),
        ("entry_2", 1),
        ("entry_4", 2),
        ("entry_2", 2),
    ]
    entry_4 = runs[0]
    assert entry_4.action_match is True and entry_4.state_match is True
    assert (entry_4.actions_matched, entry_4.actions_expected) == (1, 1)
    assert entry_4.calls[0]["name"] == "cancel_appointment" and entry_4.calls[0]["ok"]
    assert entry_4.turns >= 1 and entry_4.tokens > 0 and entry_4.caller == "scripted"
    assert entry_4.latency["llm_ttft_ms"]["n"] >= 1
    assert evaluation.summary["runs"] == 4 and evaluation.summary["tasks"] == 2
    assert evaluation.summary["both"] == {"passed": 4, "of": 4, "rate": 1.0}


def test_the_caller_is_the_fleets_llm_when_the_evaluation_names_a_pool(hospital_agent) -> None:  # noqa: ANN001
    pool = ModelPool.objects.create(
        slug="caller",
        name="caller",
        kind=ModelPool.Kind.SIMULATOR,
        model="simulator-script/eval-caller",
        sim_ttft_ms=5,
        sim_itl_ms=1,
    )
    lines = [
        "I am John Smith. I need to cancel my appointment with Dr. Sarah Johnson on "
        "January 15, 2024 at 9:00 AM.",
        "No, that is all. Goodbye. [END]",
    ]
    base = simulator_base_url(ttft_ms=5, itl_ms=1)
    response = httpx.post(
        f"{base.removesuffix('/v1')}/simulator/scripts/eval-caller",
        json={"turns": [[{"text": line}] for line in lines]},
    )
    assert response.status_code in (200, 201), response.text
    evaluation = evaluation_create(
        agent=hospital_agent, tasks=[BY_ID["entry_4"]], task_source="test", caller_pool=pool
    )
    run = evaluation_run(evaluation.pk).runs.get()
    assert run.caller == "llm:simulator-script/eval-caller"
    assert [d["text"] for d in run.dialogue if d["role"] == "caller"] == [
        lines[0],
        "No, that is all. Goodbye.",
    ]
    assert run.caller_tokens > 0
    assert run.action_match is True and run.state_match is True


def test_failed_runs_are_recorded_finished_runs_are_kept_and_sandboxes_dropped(
    hospital_agent,  # noqa: ANN001
    settings,  # noqa: ANN001
) -> None:
    # Voice mode against a port where nothing listens: every call fails to connect.
    settings.PARLEY_CALL_URL = "ws://127.0.0.1:9"
    evaluation = evaluation_create(
        agent=hospital_agent,
        tasks=[BY_ID["entry_1"], BY_ID["entry_4"], BY_ID["entry_5"]],
        task_source="test",
        mode="voice",
    )
    first = evaluation.runs.order_by("id").first()
    EvaluationRun.objects.filter(pk=first.pk).update(status="done", action_match=True)

    result = evaluation_execute.delay(str(evaluation.pk)).get()  # the Celery job (eager here)

    assert result == {"evaluation_id": str(evaluation.pk), "status": "done"}
    evaluation.refresh_from_db()
    runs = list(evaluation.runs.order_by("id"))
    assert runs[0].status == "done" and runs[0].conversation_id is None  # kept, not rerun
    for run in runs[1:]:
        assert run.status == "error"
        assert "VoiceCallError" in run.error and "cannot connect" in run.error
        assert run.state_match is None and run.action_match is False
    assert evaluation.summary["errors"] == 2 and evaluation.runs_done == 3
    assert not Environment.objects.filter(kind="sandbox").exists()


def test_bad_evaluations_are_refused_with_the_reason(hospital_agent) -> None:  # noqa: ANN001
    from parley.platform.errors import ApplicationError

    no_instructions = [{"id": "t1", "actions": []}]
    with pytest.raises(ApplicationError, match="'t1' has no 'instructions'"):
        evaluation_create(agent=hospital_agent, tasks=no_instructions, task_source="f.json")
    with pytest.raises(ApplicationError, match="repetitions"):
        evaluation_create(agent=hospital_agent, tasks=TASKS[:1], task_source="t", repetitions=0)
    with pytest.raises(ApplicationError, match="no tasks"):
        evaluation_create(agent=hospital_agent, tasks=[], task_source="empty.json")
    assert not Evaluation.objects.exists()


def test_start_an_evaluation_from_the_dashboard_and_follow_it(
    hospital_agent,  # noqa: ANN001
    client,  # noqa: ANN001
    django_user_model,  # noqa: ANN001
) -> None:
    admin = django_user_model.objects.create_superuser("boss", "b@example.com", "pw")
    client.force_login(admin)
    add = reverse("admin:evaluations_evaluation_add")
    form = {"agent": hospital_agent.pk, "mode": "text", "repetitions": 1, "caller_pool": ""}

    page = client.post(add, {**form, "task_ids": "entry_4, nope"})
    assert page.status_code == 200 and "No task nope in" in page.content.decode()
    bad_file = {**form, "tasks_file": _upload(b"{not json")}
    page = client.post(add, bad_file)
    assert "Cannot use these tasks" in page.content.decode()
    assert not Evaluation.objects.exists()

    page = client.post(add, {**form, "task_ids": "entry_4, entry_1"})
    assert page.status_code == 302, page.content.decode()[:2000]
    evaluation = Evaluation.objects.get()
    assert evaluation.created_by == admin and evaluation.runs_total == 2
    # Without a broker the job runs on a background thread; the page follows the database.
    deadline = time.monotonic() + 60
    while evaluation.status not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        evaluation.refresh_from_db()
    assert evaluation.status == "done", evaluation.error
    detail = client.get(reverse("admin:evaluations_evaluation_change", args=[evaluation.pk]))
    html = detail.content.decode()
    assert "Done: 2 of 2 runs" in html and 'http-equiv="refresh"' not in html
    assert "Runs where every expected action was matched" in html
    for run in evaluation.runs.all():
        url = reverse("admin:conversations_conversation_change", args=[run.conversation_id])
        assert url in html
    listing = client.get(reverse("admin:evaluations_evaluation_changelist")).content.decode()
    assert "2/2" in listing


def test_a_running_evaluation_page_refreshes_itself(
    hospital_agent, client, django_user_model
) -> None:  # noqa: ANN001
    client.force_login(django_user_model.objects.create_superuser("boss", "b@example.com", "pw"))
    evaluation = evaluation_create(agent=hospital_agent, tasks=TASKS[:3], task_source="t")
    html = client.get(
        reverse("admin:evaluations_evaluation_change", args=[evaluation.pk])
    ).content.decode()
    assert 'http-equiv="refresh"' in html and "0 of 3 runs done" in html


def _upload(content: bytes):  # noqa: ANN202
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("tasks.json", content, content_type="application/json")
