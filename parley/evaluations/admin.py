"""Evaluations in the admin dashboard: start one, watch its progress, read its runs.

"Add evaluation" is the start form (agent, the scenario's own tasks or an uploaded
tasks.json, mode, repetitions, caller); saving it queues the Celery job. The evaluation's
page shows progress (refreshing itself while the job runs, so a reload or another admin
sees the same state), the aggregated scores as counts, and one row per run with a link to
its conversation.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from parley.agents.models import Agent
from parley.evaluations.models import Evaluation, EvaluationRun
from parley.evaluations.services import evaluation_create, evaluation_enqueue
from parley.tools.environments import DOMAIN_APPS
from parley.tools.replay import scenario_tasks_path, tasks_validate

#: Largest tasks file accepted from the form (bytes).
MAX_TASKS_FILE_BYTES = 5_000_000


class EvaluationStartForm(forms.ModelForm):
    """Validates everything before anything is created (errors shown inline)."""

    tasks_file = forms.FileField(
        required=False,
        help_text="A tasks.json-format file (id, instructions, actions). "
        "Empty: the agent's scenario's own tasks.",
    )
    task_ids = forms.CharField(
        required=False,
        help_text="Only these task ids, separated by commas (e.g. entry_1, entry_4).",
    )
    limit = forms.IntegerField(
        required=False, min_value=1, help_text="Only the first N tasks (after the id filter)."
    )

    class Meta:
        model = Evaluation
        fields = ("agent", "mode", "repetitions", "caller_pool")
        help_texts = {
            "caller_pool": "A model pool whose LLM plays the caller. Empty: the offline "
            "scripted caller (deterministic, says the task's instructions).",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "agent" in self.fields:  # the start form (an evaluation's page is read-only)
            self.fields["agent"].queryset = Agent.objects.filter(  # type: ignore[attr-defined]
                scenario__domain__in=DOMAIN_APPS
            ).select_related("scenario")
        self.tasks: list[dict[str, Any]] = []
        self.task_source = ""

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        agent = data.get("agent")
        if agent is None:
            return data
        upload = data.get("tasks_file")
        try:
            if upload is not None:
                if upload.size > MAX_TASKS_FILE_BYTES:
                    raise ValueError(f"the file is larger than {MAX_TASKS_FILE_BYTES} bytes")
                self.task_source = upload.name
                tasks = json.loads(upload.read().decode("utf-8"))
            else:
                path = scenario_tasks_path(agent.scenario.domain)
                self.task_source = f"{agent.scenario.domain} tasks ({path.name})"
                tasks = json.loads(path.read_text(encoding="utf-8"))
            tasks = tasks_validate(tasks, source=self.task_source, need_instructions=True)
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            self.add_error("tasks_file", f"Cannot use these tasks: {exc}")
            return data
        wanted = [t.strip() for t in (data.get("task_ids") or "").split(",") if t.strip()]
        if wanted:
            known = {str(t["id"]) for t in tasks}
            missing = [t for t in wanted if t not in known]
            if missing:
                self.add_error("task_ids", f"No task {', '.join(missing)} in {self.task_source}.")
                return data
            tasks = [t for t in tasks if str(t["id"]) in set(wanted)]
        if data.get("limit"):
            tasks = tasks[: data["limit"]]
        if not tasks:
            self.add_error(None, "No tasks to run.")
        self.tasks = tasks
        return data


class EvaluationRunInline(admin.TabularInline):
    model = EvaluationRun
    extra = 0
    can_delete = False
    fields = (
        "task_id",
        "repetition",
        "status",
        "actions",
        "state_match",
        "turns",
        "tokens",
        "latency_p50",
        "conversation_link",
        "error",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="actions matched")
    def actions(self, run: EvaluationRun) -> str:
        if run.action_match is None:
            return "-"
        mark = "pass" if run.action_match else "fail"
        return f"{run.actions_matched}/{run.actions_expected} ({mark}; {run.extra_calls} extra)"

    @admin.display(description="TTFT / TTFA p50 (ms)")
    def latency_p50(self, run: EvaluationRun) -> str:
        ttft = (run.latency.get("llm_ttft_ms") or {}).get("p50")
        ttfa = (run.latency.get("ttfa_ms") or {}).get("p50")
        return f"{ttft if ttft is not None else '-'} / {ttfa if ttfa is not None else '-'}"

    @admin.display(description="conversation")
    def conversation_link(self, run: EvaluationRun) -> str:
        if run.conversation_id is None:
            return "-"
        url = reverse("admin:conversations_conversation_change", args=[run.conversation_id])
        return format_html('<a href="{}">open</a>', url)


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    form = EvaluationStartForm
    change_form_template = "admin/evaluations/evaluation/change_form.html"
    list_display = (
        "created_at",
        "agent",
        "mode",
        "status",
        "progress",
        "action_match",
        "state_match",
    )
    list_filter = ("status", "mode", "agent")
    inlines = [EvaluationRunInline]
    readonly_fields = (
        "agent",
        "mode",
        "repetitions",
        "caller_pool",
        "task_source",
        "status",
        "progress",
        "started_at",
        "finished_at",
        "created_by",
        "job_id",
        "error",
    )

    #: The start form's fields (an evaluation's own page shows ``readonly_fields``).
    start_fields = (
        "agent",
        "tasks_file",
        "task_ids",
        "limit",
        "mode",
        "repetitions",
        "caller_pool",
    )

    def get_fields(self, request: HttpRequest, obj: Evaluation | None = None) -> Any:
        return self.start_fields if obj is None else self.readonly_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Evaluation | None = None) -> Any:
        return () if obj is None else self.readonly_fields

    def get_inlines(self, request: HttpRequest, obj: Evaluation | None) -> Any:
        return [] if obj is None else self.inlines

    def save_model(self, request: HttpRequest, obj: Evaluation, form: Any, change: bool) -> None:
        if change:
            return  # an evaluation is never edited, only started
        created = evaluation_create(
            agent=form.cleaned_data["agent"],
            tasks=form.tasks,
            task_source=form.task_source,
            mode=form.cleaned_data["mode"],
            repetitions=form.cleaned_data["repetitions"],
            caller_pool=form.cleaned_data.get("caller_pool"),
            created_by=request.user,
        )
        obj.pk = created.pk
        obj._state.adding = False
        obj.created_at = created.created_at
        evaluation_enqueue(created)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return None  # runs are written by the job, never by the form

    @admin.display(description="progress")
    def progress(self, evaluation: Evaluation) -> str:
        return f"{evaluation.runs_done}/{evaluation.runs_total}"

    @admin.display(description="action match")
    def action_match(self, evaluation: Evaluation) -> str:
        return _share(evaluation.summary, "action_match")

    @admin.display(description="state match")
    def state_match(self, evaluation: Evaluation) -> str:
        return _share(evaluation.summary, "state_match")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        evaluation = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if evaluation is not None:
            extra["evaluation"] = evaluation
            extra["running"] = evaluation.status in (
                Evaluation.Status.QUEUED,
                Evaluation.Status.RUNNING,
            )
            extra["percent"] = (
                round(100 * evaluation.runs_done / evaluation.runs_total)
                if evaluation.runs_total
                else 0
            )
            extra["score_rows"] = _score_rows(evaluation.summary)
        return super().change_view(request, object_id, form_url, extra)


def _share(summary: dict[str, Any] | None, name: str) -> str:
    item = (summary or {}).get(name)
    return f"{item['passed']}/{item['of']}" if item else "-"


def _score_rows(summary: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not summary:
        return []
    ttft = summary.get("ttft_ms") or {}
    ttfa = summary.get("ttfa_ms") or {}
    return [
        ("Runs where every expected action was matched", _share(summary, "action_match")),
        ("Expected actions matched", _share(summary, "actions")),
        ("Runs whose final state equals the reference", _share(summary, "state_match")),
        ("Runs passing both", _share(summary, "both")),
        ("Runs that failed with an error", str(summary.get("errors", 0))),
        ("Extra tool calls (not expected)", str(summary.get("extra_calls", 0))),
        ("Caller turns", str(summary.get("turns", 0))),
        ("Agent LLM tokens", str(summary.get("tokens", 0))),
        ("LLM TTFT p50 / max (ms)", f"{_ms(ttft.get('p50'))} / {_ms(ttft.get('max'))}"),
        ("TTFA p50 / max (ms, voice mode)", f"{_ms(ttfa.get('p50'))} / {_ms(ttfa.get('max'))}"),
    ]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
