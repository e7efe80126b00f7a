"""LLM model pools: the OpenAI-compatible endpoints an agent's turns are sent to.

This issue keeps one endpoint per pool; the fleet issue adds several servers per pool with
health checks, routing and failover.
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

    def __str__(self) -> str:
        return self.name
