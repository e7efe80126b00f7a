"""``manage.py call``: place a call with recorded audio and save what came back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlencode

from django.core.management.base import BaseCommand, CommandError

from parley.agents.call_client import CallError, call_outputs_write, call_run, call_summary_text
from parley.agents.call_tokens import call_token_issue
from parley.agents.models import Agent


class Command(BaseCommand):
    help = (
        "Stream WAV files (any sample rate) to an agent over the caller WebSocket in real time "
        "and write transcript.jsonl, agent.wav and latency.json to --out. Without --url the "
        "platform is served in-process by Daphne. The call token is signed here with this "
        "deployment's SECRET_KEY (a server-placed call; it may reach an unpublished agent)."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--agent", required=True, help="agent slug")
        parser.add_argument(
            "--audio",
            required=True,
            action="append",
            type=Path,
            help="WAV file; repeat for several caller utterances",
        )
        parser.add_argument("--out", required=True, type=Path, help="output folder")
        parser.add_argument(
            "--url", default="", help="server, e.g. ws://127.0.0.1:8000 (default: in-process)"
        )
        parser.add_argument("--timeout", type=float, default=60.0, help="reply time-out (s)")
        parser.add_argument(
            "--stt",
            default="",
            help="speech-to-text provider for this call (pocketsphinx, deepgram); "
            "default: the agent's",
        )
        parser.add_argument(
            "--tts",
            default="",
            help="text-to-speech provider for this call (espeak-ng, elevenlabs); "
            "default: the agent's",
        )

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        for path in options["audio"]:
            if not path.is_file():
                raise CommandError(f"no such audio file: {path}")
        slug = options["agent"]
        overrides = {key: options[key] for key in ("stt", "tts") if options[key]}

        async def place(base: str) -> object:
            url = base if "/ws/" in base else f"{base.rstrip('/')}/ws/agents/{slug}/call"
            # One token per connection (tokens are single-use).
            token = call_token_issue(agent=Agent(slug=slug), purpose="server")
            self.stdout.write(f"calling {url} with {', '.join(map(str, options['audio']))}")
            url += "?" + urlencode({**overrides, "token": token})
            return await call_run(
                url=url, audio_paths=options["audio"], reply_timeout_s=options["timeout"]
            )

        try:
            if options["url"]:
                result = asyncio.run(place(options["url"]))
            else:
                from parley.agents.inprocess import run_with_inprocess_server

                result = run_with_inprocess_server(place)
        except (CallError, OSError) as exc:
            raise CommandError(f"call failed: {exc}") from exc
        paths = call_outputs_write(result, options["out"])  # type: ignore[arg-type]
        self.stdout.write(call_summary_text(result))  # type: ignore[arg-type]
        self.stdout.write("")
        for name, path in paths.items():
            self.stdout.write(f"{name:<11} {path}")
