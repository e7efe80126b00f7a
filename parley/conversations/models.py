"""Calls, their turns with per-turn latency, the ordered event log, and what analysts make
of them: recordings, per-agent day reports, bulk exports and the access audit log."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    """One call between a caller and an agent."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        ENDED = "ended", "Ended normally"
        ERROR = "error", "Ended with an error"
        #: The server serving it died (no heartbeat); ended by the recovery task.
        ABORTED = "aborted", "Ended abnormally (server lost)"

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
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=(
            "Last sign of life of the server process serving the live call "
            "(parley.platform.lifecycle); empty for calls no server process serves."
        ),
    )
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

    # Summary of the turns, written when the call ends (conversation_summary_update) so the
    # analysts' list filters and searches one table. Empty while the call is live.
    turn_count = models.PositiveIntegerField(
        default=0, help_text="Caller turns (greeting excluded)."
    )
    interrupted_turns = models.PositiveIntegerField(default=0, help_text="Replies cut by barge-in.")
    tool_calls_count = models.PositiveIntegerField(default=0)
    tool_errors = models.PositiveIntegerField(default=0, help_text="Tool calls that failed.")
    ttfa_p50_ms = models.FloatField(null=True, blank=True, help_text="Median turn TTFA (ms).")
    ttfa_max_ms = models.FloatField(null=True, blank=True, help_text="Slowest turn TTFA (ms).")
    transcript_text = models.TextField(
        blank=True, help_text="What the caller said and the agent said, for full-text search."
    )

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["agent", "-started_at"]),
            models.Index(fields=["-started_at"], name="conversation_started"),
            models.Index(fields=["status", "-started_at"], name="conversation_status_started"),
            models.Index(
                fields=["-started_at"],
                condition=models.Q(tool_errors__gt=0),
                name="conversation_tool_errors",
            ),
            models.Index(
                fields=["-started_at"],
                condition=models.Q(interrupted_turns__gt=0),
                name="conversation_interrupted",
            ),
            models.Index(fields=["ttfa_max_ms"], name="conversation_ttfa_max"),
        ]
        # PostgreSQL also has a GIN index on to_tsvector('english', transcript_text)
        # (migration 0005): the full-text search of parley.conversations.selectors.

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


class Recording(models.Model):
    """The stereo WAV of one call: caller on the left channel, agent on the right, aligned on
    the server's clock (docs/conversations.md). Its file is deleted when ``expires_at`` passes
    (the ``recordings_expire`` task); the row stays, with ``deleted_at`` set."""

    conversation = models.OneToOneField(
        Conversation, on_delete=models.CASCADE, related_name="recording"
    )
    path = models.CharField(max_length=500)
    sample_rate_hz = models.PositiveIntegerField()
    channels = models.PositiveSmallIntegerField(default=2)
    duration_ms = models.FloatField()
    size_bytes = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"recording of {self.conversation_id}"

    @property
    def available(self) -> bool:
        return self.deleted_at is None


class JobStatus(models.TextChoices):
    """Life cycle of a background report or export job."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class AgentDayReport(models.Model):
    """One agent's figures over one UTC day: latency per component, the TTFA distribution,
    tool-call error rates, interruption rate (docs/reports.md). Written by the
    ``agent_day_report_generate`` task (nightly, or on demand), with JSON and CSV files."""

    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="day_reports")
    day = models.DateField()
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    figures = models.JSONField(null=True, blank=True)
    json_path = models.CharField(max_length=500, blank=True)
    csv_path = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    generated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-day", "agent"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "day"], name="agent_day_report_unique")
        ]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.day}"


class ConversationExport(models.Model):
    """A bulk export of the conversations of a date range as JSONL (docs/reports.md), built by
    a background job that reports progress; the file is served only once complete."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    since = models.DateTimeField(help_text="Conversations started at or after this instant.")
    until = models.DateTimeField(help_text="... and before this one.")
    redact = models.BooleanField(
        default=False, help_text="Phone numbers, e-mail addresses and dates of birth removed."
    )
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    total = models.PositiveIntegerField(default=0, help_text="Conversations to export.")
    done = models.PositiveIntegerField(default=0, help_text="Conversations written so far.")
    path = models.CharField(max_length=500, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export {self.id}"

    @property
    def progress(self) -> float:
        """0.0 – 1.0."""
        if self.status == JobStatus.DONE:
            return 1.0
        return self.done / self.total if self.total else 0.0


class AccessLog(models.Model):
    """Who looked at or took away which conversation, when, and through what (audit).

    Ids are kept as plain values, not foreign keys: the trail outlives what it points at.
    """

    class Action(models.TextChoices):
        VIEW = "view", "Viewed a conversation"
        RECORDING = "recording", "Played or downloaded a recording"
        TRANSCRIPT = "transcript", "Downloaded a transcript"
        LATENCY_REPORT = "latency_report", "Downloaded a latency report"
        EXPORT_REQUEST = "export_request", "Requested a bulk export"
        EXPORT_DOWNLOAD = "export_download", "Downloaded a bulk export"

    class Channel(models.TextChoices):
        DASHBOARD = "dashboard"
        API = "api"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=20, choices=Action.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    export_id = models.UUIDField(null=True, blank=True)
    address = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.username} {self.action} {self.conversation_id or self.export_id}"
