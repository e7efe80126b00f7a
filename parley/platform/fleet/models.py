"""LLM model pools and the servers that serve them (the fleet).

A pool names a served model and its routing defaults; its :class:`LLMServer` rows are the
OpenAI-compatible servers (vLLM in production) a turn can be routed to. A pool without
servers uses its own ``base_url`` as its one endpoint (or the built-in simulator). Routing,
failover and health: ``parley/platform/fleet/router.py`` and docs/fleet.md.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class ModelPool(models.Model):
    """A served model and where to reach it.

    ``kind = simulator`` means the built-in LLM simulator, started inside the serving process
    on first use (the embedded default); ``base_url`` is then ignored.
    """

    class Kind(models.TextChoices):
        SIMULATOR = "simulator", "Built-in LLM simulator (not a real model)"
        OPENAI_COMPATIBLE = "openai", "OpenAI-compatible endpoint (vLLM, OpenAI, Azure)"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.SIMULATOR)
    model = models.CharField(
        max_length=200, default="parley-simulator", help_text="Served model name."
    )
    base_url = models.URLField(blank=True, help_text="e.g. http://vllm-1:8000/v1")
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of the environment variable holding the API key (never the key).",
    )
    temperature = models.FloatField(
        default=0.2, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)]
    )
    max_tokens = models.PositiveIntegerField(default=300)
    timeout_s = models.FloatField(default=30.0)
    sim_ttft_ms = models.PositiveIntegerField(
        default=150, help_text="Simulator only: time to first token (ms)."
    )
    sim_itl_ms = models.PositiveIntegerField(
        default=15, help_text="Simulator only: inter-token latency (ms)."
    )
    ttft_deadline_ms = models.PositiveIntegerField(
        default=1500,
        validators=[MinValueValidator(50), MaxValueValidator(60_000)],
        help_text="A server that sends no first token within this time loses the turn to "
        "another server (failover), before any of its text reaches the caller.",
    )
    stall_timeout_ms = models.PositiveIntegerField(
        default=2000,
        validators=[MinValueValidator(50), MaxValueValidator(60_000)],
        help_text="A server that sends no token for this long after its first one loses the "
        "rest of the reply to another server, which continues the text already said.",
    )
    max_attempts = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="Servers tried per LLM request before the turn fails.",
    )

    def __str__(self) -> str:
        return self.name


class LLMServer(models.Model):
    """One OpenAI-compatible server of a pool, with its health as the fleet last saw it.

    ``health``, ``consecutive_failures``, ``cooldown_until`` and ``last_error`` are written by
    the active health checks (Celery beat) and by the routers' passive health (real traffic);
    ``live`` is the routers' latest snapshot (in-flight streams, recent TTFT/ITL).
    """

    class Health(models.TextChoices):
        HEALTHY = "healthy"
        COOLDOWN = "cooldown", "Cooling down"
        DOWN = "down"

    pool = models.ForeignKey(ModelPool, on_delete=models.CASCADE, related_name="servers")
    name = models.SlugField(max_length=100)
    base_url = models.URLField(help_text="With the /v1 suffix, e.g. http://vllm-1:8000/v1")
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of the environment variable holding the API key (never the key).",
    )
    weight = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Relative capacity: load is counted as in-flight streams / weight.",
    )
    max_streams = models.PositiveIntegerField(
        default=64,
        validators=[MinValueValidator(1)],
        help_text="Concurrent streams before new conversations spill to other servers.",
    )
    enabled = models.BooleanField(default=True)
    health = models.CharField(max_length=10, choices=Health.choices, default=Health.HEALTHY)
    consecutive_failures = models.PositiveIntegerField(default=0)
    cooldown_until = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    live = models.JSONField(default=dict, blank=True, help_text="The routers' latest snapshot.")

    class Meta:
        ordering = ["pool", "name"]
        constraints = [
            models.UniqueConstraint(fields=["pool", "name"], name="llm_server_name_unique")
        ]

    def __str__(self) -> str:
        return f"{self.pool.slug}/{self.name}"
