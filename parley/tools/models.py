"""Tool schemas offered to the LLM and the record of every tool call."""

from __future__ import annotations

import uuid

from django.db import models


class ToolSchema(models.Model):
    """An OpenAI function-tool definition belonging to a scenario."""

    scenario = models.ForeignKey(
        "agents.Scenario", on_delete=models.CASCADE, related_name="tool_schemas"
    )
    name = models.CharField(max_length=100)
    description = models.TextField()
    parameters = models.JSONField(help_text="JSON Schema of the arguments.")
    side_effecting = models.BooleanField(
        default=False, help_text="Writes data (as opposed to read-only lookups)."
    )

    class Meta:
        ordering = ["scenario", "name"]
        constraints = [
            models.UniqueConstraint(fields=["scenario", "name"], name="tool_schema_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scenario.slug}.{self.name}"

    def as_openai_tool(self) -> dict:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class ToolCall(models.Model):
    """One tool call requested by the LLM during a turn, recorded before and after it runs."""

    class Status(models.TextChoices):
        RUNNING = "running"
        OK = "ok"
        ERROR = "error"
        DECLINED = "declined", "Declined by the caller (never run)"

    conversation = models.ForeignKey(
        "conversations.Conversation",
        on_delete=models.CASCADE,
        related_name="tool_calls",
        null=True,
        blank=True,
        help_text="Empty for calls made by a replay (no conversation).",
    )
    scenario = models.CharField(max_length=50, blank=True)
    environment = models.ForeignKey(
        "tools.Environment",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tool_calls",
        help_text="The sandbox it ran in; empty: live data.",
    )
    turn = models.ForeignKey(
        "conversations.Turn", on_delete=models.CASCADE, related_name="tool_calls", null=True
    )
    call_id = models.CharField(max_length=100, help_text="The LLM's tool call id.")
    name = models.CharField(max_length=100)
    arguments_raw = models.TextField(help_text="Arguments exactly as the LLM produced them.")
    arguments = models.JSONField(null=True, blank=True, help_text="Parsed, when valid JSON.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    result = models.TextField(blank=True, help_text="What the LLM was given back.")
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "call_id"], name="tool_call_unique_per_conversation"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name}({self.call_id})"


class Environment(models.Model):
    """One copy of a scenario's data. ``kind`` live: the main database; sandbox: its own."""

    class Kind(models.TextChoices):
        LIVE = "live", "Live"
        SANDBOX = "sandbox", "Sandbox"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    scenario = models.CharField(max_length=50, help_text="Domain app, e.g. 'hospital'.")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    seed_ms = models.FloatField(null=True, blank=True, help_text="Time to create and seed (ms).")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["scenario"], condition=models.Q(kind="live"), name="one_live_environment"
            )
        ]

    def __str__(self) -> str:
        return f"{self.scenario} {self.kind} {self.label or self.id}"

    @property
    def alias(self) -> str:
        """The database alias its data is read and written through."""
        return "default" if self.kind == self.Kind.LIVE else f"env_{self.id.hex}"
