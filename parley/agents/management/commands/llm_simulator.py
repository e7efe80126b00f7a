"""``manage.py llm_simulator``: serve the built-in LLM simulator (not a real model).

Several instances on different ports make a simulated fleet; each can have its own latency
profile and faults (changeable later with ``POST /simulator/faults``)::

    manage.py llm_simulator --port 8101
    manage.py llm_simulator --port 8102 --slow-factor 5
    manage.py llm_simulator --port 8103 --error-rate 0.5 --seed 7
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from parley.agents.llm_simulator.server import Faults, SimulatorSettings, run


class Command(BaseCommand):
    help = (
        "Serve the Parley LLM simulator, an OpenAI-compatible stand-in for vLLM with scripted "
        "policies, latency profiles and fault injection. It is a simulator, not a language model."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100)
        parser.add_argument("--ttft-ms", type=float, default=150, help="median TTFT (ms)")
        parser.add_argument("--itl-ms", type=float, default=15, help="median inter-token gap (ms)")
        parser.add_argument("--ttft-sigma", type=float, default=0.0, help="lognormal sigma of TTFT")
        parser.add_argument("--itl-sigma", type=float, default=0.0, help="lognormal sigma of ITL")
        parser.add_argument("--seed", type=int, default=None, help="random seed (faults, jitter)")
        parser.add_argument("--error-rate", type=float, default=0.0, help="share answered 500")
        parser.add_argument("--stall-rate", type=float, default=0.0)
        parser.add_argument("--stall-ms", type=float, default=0.0)
        parser.add_argument(
            "--stall-after", type=int, default=None, help="tokens, then the stall (mid-reply)"
        )
        parser.add_argument("--disconnect-after", type=int, default=None, help="tokens, then drop")
        parser.add_argument("--disconnect-rate", type=float, default=1.0)
        parser.add_argument("--slow-factor", type=float, default=1.0, help="x TTFT and ITL")
        parser.add_argument("--unhealthy", action="store_true", help="/health answers 503")

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        try:
            faults = Faults(
                error_rate=options["error_rate"],
                stall_rate=options["stall_rate"],
                stall_ms=options["stall_ms"],
                stall_after_tokens=options["stall_after"],
                disconnect_after_tokens=options["disconnect_after"],
                disconnect_rate=options["disconnect_rate"],
                slow_factor=options["slow_factor"],
                unhealthy=options["unhealthy"],
            )
            settings = SimulatorSettings(
                host=options["host"],
                port=options["port"],
                ttft_ms=options["ttft_ms"],
                itl_ms=options["itl_ms"],
                ttft_sigma=options["ttft_sigma"],
                itl_sigma=options["itl_sigma"],
                seed=options["seed"],
                faults=faults,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        run(settings)
