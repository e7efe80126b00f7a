"""Calls, their turns with per-turn latency, and the ordered event log."""

from __future__ import annotations

import uuid

from django.db import models


class Conversation(models.Model):
    """One call between a caller and an agent."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        ENDED = "ended", "Ended normally"
        ERROR = "error", "Ended with an error"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.PROTECT, related_name="conversations"
    )
    prompt_version = models.ForeignKey(
        "agents.PromptVersion", on_delete=models.SET_NULL, null=True, blank=True
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    end_reason = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    environment = models.ForeignKey(
        "tools.Environment",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations",
        help_text="The scenario sandbox its tools ran in (evaluations); empty: live data.",
    )
    providers = models.JSONField(default=dict, help_text="STT/LLM/TTS engines used.")
    client = models.JSONField(default=dict, help_text="Caller address and user agent.")
    transcript_path = models.CharField(max_length=500, blank=True)
    latency_report_path = models.CharField(max_length=500, blank=True)
    latency_report = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["agent", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.agent_id}:{self.id}"


class Turn(models.Model):
    """One caller utterance and the agent's reply, with latency in ms.

    Latencies are measured from the end of the caller's speech (the last speech window the
    VAD saw) unless noted: ``endpointing_ms`` end of speech → end-of-turn decision;
    ``stt_final_ms`` end of speech → final transcript; ``llm_ttft_ms`` LLM request → first
    token; ``first_chunk_ms`` LLM request → first sentence chunk ready for TTS;
    ``tts_ttfb_ms`` TTS request → first audio bytes; ``ttfa_ms`` end of speech → first agent
    audio frame sent to the caller. Reported by the browser widget: ``playout_delay_ms`` first
    agent frame received → first sample played, ``network_rtt_ms`` the WebSocket round trip,
    and ``ear_ttfa_ms`` = ``ttfa_ms`` + round trip + playout delay (TTFA at the caller's ear).
    """

    class Status(models.TextChoices):
        LISTENING = "listening"
        RESPONDING = "responding"
        COMPLETED = "completed"
        INTERRUPTED = "interrupted"
        ERROR = "error"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField(help_text="0 = greeting, then 1, 2, ...")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.LISTENING)
    user_text = models.TextField(blank=True)
    agent_text = models.TextField(blank=True, help_text="Everything the LLM generated.")
    spoken_text = models.TextField(blank=True, help_text="What the caller actually heard.")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    user_speech_ms = models.FloatField(null=True, blank=True)
    endpointing_ms = models.FloatField(null=True, blank=True)
    stt_final_ms = models.FloatField(null=True, blank=True)
    llm_ttft_ms = models.FloatField(null=True, blank=True)
    first_chunk_ms = models.FloatField(null=True, blank=True)
    tts_ttfb_ms = models.FloatField(null=True, blank=True)
    ttfa_ms = models.FloatField(null=True, blank=True)
    ear_ttfa_ms = models.FloatField(
        null=True, blank=True, help_text="TTFA at the caller's ear, reported by the widget (ms)."
    )
    playout_delay_ms = models.FloatField(null=True, blank=True)
    network_rtt_ms = models.FloatField(null=True, blank=True)
    agent_audio_ms = models.FloatField(null=True, blank=True)
    llm_steps = models.PositiveSmallIntegerField(default=0)
    routing = models.JSONField(
        default=list,
        blank=True,
        help_text="Fleet routing of each LLM step: server, reason, attempts, failovers.",
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["conversation", "index"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "index"], name="turn_index_unique")
        ]

    def __str__(self) -> str:
        return f"turn {self.index}"


class CallEvent(models.Model):
    """Every event of a call in order, exactly as sent to the caller (audio excepted)."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    turn_index = models.PositiveIntegerField()
    type = models.CharField(max_length=50)
    t_ms = models.FloatField(help_text="ms since the call started")
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="event_seq_unique")
        ]
