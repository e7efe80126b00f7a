"""Scenarios, agents and their versioned prompts."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from parley.agents.voice.turns import DEFAULT_BACKCHANNELS, DEFAULT_FILLER_TEXT


class Scenario(models.Model):
    """An enterprise domain an agent serves (hospital, HR, orders) with its policy text."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    domain = models.CharField(max_length=50, help_text="Tool domain module, e.g. 'hospital'.")
    policy = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.name


def publishable_key_new() -> str:
    """A new publishable key: ``pk_`` + 24 URL-safe random characters (144 bits).

    Publishable keys are public (they sit in a web page's embed snippet); what they grant is
    checked against the agent's allowed origins and rate limits (parley/agents/call_tokens.py).
    """
    return "pk_" + secrets.token_urlsafe(18)


#: The turn-taking settings of an agent, in the order the dashboard and the admin show them.
TURN_TAKING_FIELDS = (
    "vad_threshold",
    "min_speech_ms",
    "endpointing_ms",
    "unfinished_endpointing_ms",
    "pause_ms",
    "stt_end_of_turn",
    "speculative_start",
    "pre_roll_ms",
    "max_utterance_ms",
    "barge_in",
    "backchannel_words",
    "false_interruption_ms",
    "echo_gate",
    "filler_text",
    "filler_after_ms",
)


#: The call limits of an agent (docs/protocol.md, "Limits"), for the dashboard and the admin.
CALL_LIMIT_FIELDS = ("max_concurrent_calls", "max_call_duration_s")


class Agent(models.Model):
    """A configured voice agent: scenario, LLM pool, voice and turn-taking settings."""

    class STTProvider(models.TextChoices):
        POCKETSPHINX = "pocketsphinx", "Offline (PocketSphinx)"
        DEEPGRAM = "deepgram", "Deepgram (live streaming)"

    class TTSProvider(models.TextChoices):
        ESPEAK = "espeak-ng", "Offline (eSpeak NG)"
        ELEVENLABS = "elevenlabs", "ElevenLabs (HTTP streaming)"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="agents")
    model_pool = models.ForeignKey(
        "fleet.ModelPool", on_delete=models.PROTECT, related_name="agents"
    )
    tools = models.ManyToManyField(
        "tools.ToolSchema", blank=True, help_text="Tools of the scenario this agent may call."
    )
    greeting = models.CharField(max_length=300, blank=True)
    published = models.BooleanField(default=False)

    # The browser widget (docs/widget.md)
    publishable_key = models.CharField(
        max_length=40,
        unique=True,
        default=publishable_key_new,
        help_text="Public key of the embed snippet; exchanged for a short-lived call token.",
    )
    allowed_origins = models.TextField(
        blank=True,
        help_text=(
            "Web origins allowed to embed the widget, one per line, e.g. "
            "https://www.example.com (scheme, host and port; no path). Empty: no web page."
        ),
    )

    # Voice
    stt_provider = models.CharField(
        max_length=30, choices=STTProvider.choices, default=STTProvider.POCKETSPHINX
    )
    tts_provider = models.CharField(
        max_length=30, choices=TTSProvider.choices, default=TTSProvider.ESPEAK
    )
    tts_voice = models.CharField(
        max_length=100,
        default="en-us",
        help_text="Offline (eSpeak NG) voice; also the fallback voice when a cloud TTS fails.",
    )
    tts_rate_wpm = models.PositiveIntegerField(
        default=175, validators=[MinValueValidator(80), MaxValueValidator(400)]
    )

    # Deepgram (used when stt_provider is "deepgram"; see docs/providers.md)
    deepgram_model = models.CharField(max_length=50, default="nova-3")
    deepgram_language = models.CharField(max_length=20, default="en-US")
    deepgram_endpointing_ms = models.PositiveIntegerField(
        default=300,
        validators=[MaxValueValidator(5000)],
        help_text="Deepgram's own silence endpointing (ms); 0 turns it off.",
    )
    deepgram_utterance_end_ms = models.PositiveIntegerField(
        default=1000,
        validators=[MaxValueValidator(5000)],
        help_text="Word gap that sends UtteranceEnd (ms, >= 1000); 0 turns it off.",
    )
    deepgram_smart_format = models.BooleanField(default=True)
    stt_keyterms = models.TextField(
        blank=True,
        help_text=(
            "Extra words to boost, one per line (the scenario's doctor, patient and product "
            "names are added automatically)."
        ),
    )

    # ElevenLabs (used when tts_provider is "elevenlabs")
    elevenlabs_voice_id = models.CharField(
        max_length=64, default="21m00Tcm4TlvDq8ikWAM", help_text="ElevenLabs voice id."
    )
    elevenlabs_model_id = models.CharField(max_length=50, default="eleven_turbo_v2_5")
    elevenlabs_latency = models.PositiveSmallIntegerField(
        default=3,
        validators=[MaxValueValidator(4)],
        help_text="optimize_streaming_latency: 0 best quality ... 4 lowest latency.",
    )

    # Turn-taking (defaults: see parley.agents.voice.vad.VADSettings)
    vad_threshold = models.FloatField(
        default=0.5, validators=[MinValueValidator(0.05), MaxValueValidator(0.95)]
    )
    min_speech_ms = models.PositiveIntegerField(
        default=250, validators=[MinValueValidator(32), MaxValueValidator(2000)]
    )
    endpointing_ms = models.PositiveIntegerField(
        default=500,
        validators=[MinValueValidator(100), MaxValueValidator(5000)],
        help_text="Silence after speech that ends the caller's turn (ms).",
    )
    pre_roll_ms = models.PositiveIntegerField(default=300, validators=[MaxValueValidator(2000)])
    max_utterance_ms = models.PositiveIntegerField(
        default=30_000, validators=[MinValueValidator(1000), MaxValueValidator(120_000)]
    )
    # (defaults: see parley.agents.voice.turns.TurnTakingSettings; docs/turn-taking.md)
    unfinished_endpointing_ms = models.PositiveIntegerField(
        default=2000,
        validators=[MinValueValidator(100), MaxValueValidator(10_000)],
        help_text="Silence that ends the turn when the caller stopped mid-sentence "
        '("my order number is ...") (ms).',
    )
    pause_ms = models.PositiveIntegerField(
        default=300,
        validators=[MinValueValidator(100), MaxValueValidator(5000)],
        help_text="Silence after which the transcript is finalized and the answer may start "
        "early; at most the end-of-turn silence (ms).",
    )
    stt_end_of_turn = models.BooleanField(
        default=True,
        help_text="Let Deepgram's speech_final and UtteranceEnd end a finished-sounding turn "
        "early.",
    )
    speculative_start = models.BooleanField(
        default=True,
        help_text="Start the LLM on the final transcript before the turn ends; cancelled, "
        "unheard, if the caller goes on.",
    )
    barge_in = models.BooleanField(
        default=True, help_text="Callers can interrupt the agent by speaking."
    )
    backchannel_words = models.TextField(
        default=", ".join(DEFAULT_BACKCHANNELS),
        blank=True,
        help_text="Comma-separated words and phrases that do not interrupt the agent "
        "(the caller is just listening). Empty: every word interrupts.",
    )
    false_interruption_ms = models.PositiveIntegerField(
        default=800,
        validators=[MinValueValidator(100), MaxValueValidator(5000)],
        help_text="How long the agent, paused by a sound, waits for words before it goes on (ms).",
    )

    class EchoGate(models.TextChoices):
        AUTO = "auto", "When the caller's browser has no echo cancellation"
        ON = "on", "Always"
        OFF = "off", "Never"

    echo_gate = models.CharField(
        max_length=10,
        choices=EchoGate.choices,
        default=EchoGate.AUTO,
        help_text="Keep the agent's own voice, picked up by the caller's microphone, from "
        "interrupting it.",
    )
    filler_after_ms = models.PositiveIntegerField(
        default=1000,
        validators=[MinValueValidator(100), MaxValueValidator(10_000)],
        help_text="A tool call running longer than this makes the agent say the filler (ms).",
    )
    filler_text = models.CharField(
        max_length=200,
        default=DEFAULT_FILLER_TEXT,
        blank=True,
        help_text="Said once per turn while a slow tool call runs. Empty: no filler.",
    )
    max_tool_steps = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="Most LLM calls with tools per caller turn.",
    )

    confirm_side_effects = models.BooleanField(
        default=False,
        help_text="Before a tool that changes data runs, the agent reads the action back and "
        "asks the caller to confirm; anything but a yes and it is not run.",
    )

    # Call limits (docs/protocol.md, "Limits")
    max_concurrent_calls = models.PositiveIntegerField(
        default=20,
        validators=[MaxValueValidator(10_000)],
        help_text="Calls this agent takes at once; one more is refused (call_limit_reached). "
        "0: no cap.",
    )
    max_call_duration_s = models.PositiveIntegerField(
        default=1800,
        validators=[MaxValueValidator(86_400)],
        help_text="A call still going after this long ends with a goodbye "
        "(call_duration_exceeded). 0: no limit.",
    )

    # Analysts (docs/conversations.md)
    recording_retention_days = models.PositiveSmallIntegerField(
        default=30,
        validators=[MaxValueValidator(3650)],
        help_text="Days a call's stereo recording is kept; 0: calls are not recorded.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        errors: dict[str, str] = {}
        if 0 < self.deepgram_utterance_end_ms < 1000:
            errors["deepgram_utterance_end_ms"] = "Deepgram needs at least 1000 ms (or 0 for off)."
        if self.pause_ms is not None and self.endpointing_ms is not None:
            if self.pause_ms > self.endpointing_ms:
                errors["pause_ms"] = "The pause cannot be longer than the end-of-turn silence."
        if self.unfinished_endpointing_ms is not None and self.endpointing_ms is not None:
            if self.unfinished_endpointing_ms < self.endpointing_ms:
                errors["unfinished_endpointing_ms"] = "Must be at least the end-of-turn silence."
        try:
            self.allowed_origins = "\n".join(origins_parse(self.allowed_origins))
        except ValueError as exc:
            errors["allowed_origins"] = str(exc)
        if errors:
            raise ValidationError(errors)

    @property
    def backchannel_list(self) -> tuple[str, ...]:
        """The backchannel words and phrases, one entry per comma (blank ones dropped)."""
        return tuple(w.strip() for w in self.backchannel_words.split(",") if w.strip())

    @property
    def allowed_origin_list(self) -> list[str]:
        """The allowed origins, normalised (lower-case scheme and host, no default port)."""
        try:
            return origins_parse(self.allowed_origins)
        except ValueError:
            return []


def origin_normalise(origin: str) -> str:
    """``scheme://host[:port]`` in lower case without a default port.

    Raises ``ValueError`` for anything else (a path, a query, a scheme other than http(s)).
    """
    from urllib.parse import urlsplit

    text = origin.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{origin!r} is not an origin like https://www.example.com")
    if parts.path or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{origin!r} has more than scheme, host and port")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{origin!r} has a bad port") from exc
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def origins_parse(text: str) -> list[str]:
    """One origin per line (blank lines ignored) → normalised, de-duplicated, in order."""
    seen: list[str] = []
    for line in text.splitlines():
        if line.strip():
            origin = origin_normalise(line)
            if origin not in seen:
                seen.append(origin)
    return seen


class PromptVersion(models.Model):
    """One version of an agent's system prompt; exactly one is active per agent."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="prompts")
    version = models.PositiveIntegerField()
    text = models.TextField()
    active = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agent", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "version"], name="prompt_version_unique"),
            models.UniqueConstraint(
                fields=["agent"], condition=models.Q(active=True), name="one_active_prompt"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent.slug} v{self.version}"
