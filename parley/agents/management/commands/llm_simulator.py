"""``manage.py llm_simulator``: serve the built-in LLM simulator (not a real model)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from parley.agents.llm_simulator.server import SimulatorSettings, run


class Command(BaseCommand):
    help = (
        "Serve the Parley LLM simulator, an OpenAI-compatible stand-in for vLLM with scripted "
        "policies. It is a simulator, not a language model."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument("--ttft-ms", type=int, default=150, help="time to first token (ms)")
        parser.add_argument("--itl-ms", type=int, default=15, help="inter-token latency (ms)")

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        run(
            SimulatorSettings(
                host=options["host"],
                port=options["port"],
                ttft_ms=options["ttft_ms"],
                itl_ms=options["itl_ms"],
            )
        )
