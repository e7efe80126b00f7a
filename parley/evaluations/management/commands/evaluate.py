"""``manage.py evaluate``: run an agent against scenario tasks with a simulated caller.

    python manage.py evaluate --agent SLUG [--tasks FILE.json] --mode text|voice --out DIR
        [--task ID ...] [--limit N] [--repetitions N] [--caller-pool SLUG] [--url WS_URL]
    python manage.py evaluate --evaluation ID [--out DIR]     # run one queued in the admin

Without ``--tasks`` the agent's scenario's own tasks are used. Voice mode serves Parley
in-process (Daphne on a free port) unless ``--url`` names a running server. Prints a progress
bar, then the scores; writes ``DIR/<task id>.json`` per run and ``DIR/summary.json``.
See docs/evaluations.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from parley.agents.models import Agent
from parley.evaluations.models import Evaluation
from parley.platform.errors import ApplicationError
from parley.platform.fleet.models import ModelPool
from parley.platform.progress import ProgressBar


class Command(BaseCommand):
    help = "Evaluate an agent on scenario tasks (text or voice mode) and print its scores."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--agent", help="agent slug (creates a new evaluation)")
        parser.add_argument("--evaluation", help="id of an existing evaluation to run")
        parser.add_argument(
            "--tasks", type=Path, help="tasks.json-format file (default: the scenario's own)"
        )
        parser.add_argument("--task", action="append", default=[], help="only this task id")
        parser.add_argument("--limit", type=int, default=0, help="only the first N tasks")
        parser.add_argument("--mode", choices=Evaluation.Mode.values, default="text")
        parser.add_argument("--repetitions", type=int, default=1)
        parser.add_argument(
            "--caller-pool", default="", help="model pool whose LLM plays the caller"
        )
        parser.add_argument(
            "--url", default="", help="voice mode: a running server (ws://host:port)"
        )
        parser.add_argument("--out", type=Path, help="folder for per-run JSON and summary.json")

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        evaluation = self._evaluation(options)
        total = evaluation.runs_total
        self.stderr.write(
            f"evaluation {evaluation.pk}: agent {evaluation.agent.slug}, {evaluation.mode} mode, "
            f"{total} runs ({len(evaluation.tasks)} tasks x {evaluation.repetitions})"
        )
        progress = ProgressBar(self.stderr)
        kwargs = {"out_dir": options["out"], "progress": progress}
        from parley.evaluations.services import evaluation_run, evaluation_run_async

        try:
            if evaluation.mode == Evaluation.Mode.VOICE and not options["url"]:
                from parley.agents.inprocess import run_with_inprocess_server

                evaluation = run_with_inprocess_server(
                    lambda base: evaluation_run_async(evaluation.pk, call_url=base, **kwargs)
                )
            else:
                evaluation = evaluation_run(
                    evaluation.pk, call_url=options["url"] or None, **kwargs
                )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self._report(evaluation, options["out"])

    def _evaluation(self, options: dict) -> Evaluation:
        from parley.evaluations.services import evaluation_create
        from parley.tools.replay import scenario_tasks_path

        if options["evaluation"]:
            try:
                return Evaluation.objects.select_related("agent").get(pk=options["evaluation"])
            except (Evaluation.DoesNotExist, ValueError, ValidationError) as exc:
                raise CommandError(f"no evaluation {options['evaluation']!r}") from exc
        if not options["agent"]:
            raise CommandError("give --agent SLUG (or --evaluation ID)")
        agent = Agent.objects.select_related("scenario").filter(slug=options["agent"]).first()
        if agent is None:
            raise CommandError(f"no agent {options['agent']!r}")
        path = options["tasks"] or scenario_tasks_path(agent.scenario.domain)
        try:
            tasks = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read tasks from {path}: {exc}") from exc
        if options["task"] and isinstance(tasks, list):
            wanted = set(options["task"])
            tasks = [t for t in tasks if isinstance(t, dict) and str(t.get("id")) in wanted]
            missing = wanted - {str(t["id"]) for t in tasks}
            if missing:
                raise CommandError(f"no task {', '.join(sorted(missing))} in {path}")
        if options["limit"] > 0 and isinstance(tasks, list):
            tasks = tasks[: options["limit"]]
        caller_pool = None
        if options["caller_pool"]:
            caller_pool = ModelPool.objects.filter(slug=options["caller_pool"]).first()
            if caller_pool is None:
                raise CommandError(f"no model pool {options['caller_pool']!r}")
        try:
            return evaluation_create(
                agent=agent,
                tasks=tasks,
                task_source=str(path),
                mode=options["mode"],
                repetitions=options["repetitions"],
                caller_pool=caller_pool,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def _report(self, evaluation: Evaluation, out: Path | None) -> None:
        scores = evaluation.summary or {}

        def share(name: str) -> str:
            item = scores.get(name) or {}
            return f"{item.get('passed', 0)}/{item.get('of', 0)}"

        rows = [
            ("runs", str(scores.get("runs", 0))),
            ("action match (runs)", share("action_match")),
            ("expected actions matched", share("actions")),
            ("state match (runs)", share("state_match")),
            ("both", share("both")),
            ("runs with an error", str(scores.get("errors", 0))),
            ("extra tool calls", str(scores.get("extra_calls", 0))),
            ("caller turns", str(scores.get("turns", 0))),
            ("agent LLM tokens", str(scores.get("tokens", 0))),
            ("LLM TTFT p50 (ms)", str((scores.get("ttft_ms") or {}).get("p50"))),
            ("TTFA p50 (ms)", str((scores.get("ttfa_ms") or {}).get("p50"))),
        ]
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            self.stdout.write(f"  {name:<{width}}  {value}")
        where = f"; results in {out}" if out else ""
        self.stdout.write(
            self.style.SUCCESS(f"evaluation {evaluation.pk} {evaluation.status}{where}")
        )
