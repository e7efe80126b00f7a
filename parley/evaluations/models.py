"""Evaluation runs: an agent against a scenario's tasks, with a simulated caller."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Evaluation(models.Model):
    """An agent checked against a task set: every task x ``repetitions`` is one run, each in
    its own sandbox of the agent's scenario. Runs as a Celery job; progress is kept here so a
    page reload (or another admin) sees it."""

    class Mode(models.TextChoices):
        TEXT = "text", "Text (caller lines straight into the agent loop)"
        VOICE = "voice", "Voice (synthesized speech over the caller WebSocket)"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey("agents.Agent", on_delete=models.PROTECT, related_name="evaluations")
    mode = models.CharField(max_length=5, choices=Mode.choices, default=Mode.TEXT)
    repetitions = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    task_source = models.CharField(
        max_length=200, help_text="Where the tasks came from (the scenario's own, or a file)."
    )
    tasks = models.JSONField(
        help_text="The tasks in the tasks.json format: id, instructions, actions."
    )
    caller_pool = models.ForeignKey(
        "fleet.ModelPool",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="A model pool whose LLM plays the caller; empty: the offline scripted caller.",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    runs_total = models.PositiveIntegerField(default=0)
    runs_done = models.PositiveIntegerField(default=0)
    summary = models.JSONField(null=True, blank=True, help_text="Aggregated scores (counts).")
    error = models.TextField(blank=True)
    job_id = models.CharField(max_length=100, blank=True, help_text="Celery task id.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.mode} {self.created_at:%Y-%m-%d %H:%M}"


class EvaluationRun(models.Model):
    """One task of an evaluation, once: the conversation it produced and its scores."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        ERROR = "error"

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="runs")
    task_id = models.CharField(max_length=100)
    repetition = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    conversation = models.ForeignKey(
        "conversations.Conversation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="evaluation_runs",
    )
    caller = models.CharField(max_length=200, blank=True, help_text="scripted, or llm:<model>")
    dialogue = models.JSONField(
        default=list,
        help_text="[{role: caller|agent, text, heard?}] as the simulated caller lived it.",
    )
    calls = models.JSONField(default=list, help_text="Logged tool calls: name, arguments, ok.")
    action_match = models.BooleanField(null=True)
    actions_matched = models.PositiveIntegerField(default=0)
    actions_expected = models.PositiveIntegerField(default=0)
    extra_calls = models.PositiveIntegerField(default=0)
    state_match = models.BooleanField(null=True, help_text="Empty: not measured.")
    turns = models.PositiveIntegerField(default=0)
    tokens = models.PositiveIntegerField(default=0, help_text="The agent's LLM tokens.")
    caller_tokens = models.PositiveIntegerField(default=0)
    latency = models.JSONField(default=dict, help_text="p50/max per latency component (ms).")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["evaluation", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["evaluation", "task_id", "repetition"], name="evaluation_run_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.task_id}#{self.repetition}"
