"""``manage.py scenario load|export|replay``: install, export and replay scenarios.

- ``load --scenario SLUG [--from DIR]``: install a scenario, its tool schemas and seed data
  (live); ``--from`` replaces the live data with a folder in the seed-file format (an
  ``export``), through the seed loader itself.
- ``export --scenario SLUG [--environment ID] --out DIR``: an environment's state in the
  seed-file format (live data without ``--environment``).
- ``replay --scenario SLUG --tasks FILE.json --out DIR``: every task in a fresh sandbox,
  through the voice agent's tool path (see :mod:`parley.tools.replay`).
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from parley.agents.services import SCENARIO_DOMAINS, scenario_install
from parley.platform.errors import ApplicationError
from parley.platform.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Manage scenarios: `load` installs tool schemas and seeds live data, `export` writes an "
        "environment in the seed-file format, `replay` runs task files in fresh sandboxes."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        sub = parser.add_subparsers(dest="action", required=True)
        load = sub.add_parser("load", help="install or refresh a scenario")
        load.add_argument("--scenario", required=True, choices=sorted(SCENARIO_DOMAINS))
        load.add_argument(
            "--from",
            dest="from_dir",
            type=Path,
            help="replace the live data with this seed-format folder (an export)",
        )
        export = sub.add_parser("export", help="write an environment's state as seed files")
        export.add_argument("--scenario", required=True, choices=sorted(SCENARIO_DOMAINS))
        export.add_argument("--environment", default="", help="sandbox id (default: live)")
        export.add_argument("--out", required=True, type=Path)
        replay = sub.add_parser("replay", help="replay tasks, each in a fresh sandbox")
        replay.add_argument("--scenario", required=True, choices=sorted(SCENARIO_DOMAINS))
        replay.add_argument("--tasks", required=True, type=Path, help="tasks.json-format file")
        replay.add_argument("--out", required=True, type=Path)

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        if options["action"] == "export":
            self._export(options)
            return
        if options["action"] == "replay":
            self._replay(options)
            return
        try:
            scenario = scenario_install(slug=options["scenario"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        tools = scenario.tool_schemas.count()
        if options["from_dir"] is None:
            self.stdout.write(
                self.style.SUCCESS(f"scenario {scenario.slug}: {tools} tools, seed loaded")
            )
            return
        from importlib import import_module

        seed = import_module(f"parley.tools.{scenario.slug}.seed")
        try:
            counts = getattr(seed, f"{scenario.slug}_seed_load")(
                data_dir=options["from_dir"], reset=True
            )
        except (OSError, ValueError) as exc:  # rolled back: the live data is unchanged
            raise CommandError(f"cannot load {options['from_dir']}: {exc}") from exc
        loaded = ", ".join(f"{n} {name}" for name, n in counts.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"scenario {scenario.slug}: live data replaced from {options['from_dir']} "
                f"({loaded})"
            )
        )

    def _export(self, options: dict) -> None:
        from parley.tools.models import Environment
        from parley.tools.replay import scenario_state_export, scenario_state_write

        environment = None
        if options["environment"]:
            try:
                environment = Environment.objects.get(pk=options["environment"])
            except (Environment.DoesNotExist, ValueError, Exception) as exc:
                raise CommandError(f"no environment {options['environment']!r}") from exc
            if environment.scenario != options["scenario"]:
                raise CommandError(
                    f"environment {environment.pk} holds {environment.scenario!r} data"
                )
        state = scenario_state_export(scenario=options["scenario"], environment=environment)
        paths = scenario_state_write(
            scenario=options["scenario"], state=state, out_dir=options["out"]
        )
        for path in paths:
            self.stdout.write(f"{path}")
        self.stdout.write(self.style.SUCCESS(f"exported {len(paths)} collections"))

    def _replay(self, options: dict) -> None:
        from parley.tools.replay import scenario_replay, tasks_read

        try:
            tasks = tasks_read(options["tasks"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        summary = scenario_replay(
            scenario=options["scenario"],
            tasks=tasks,
            out_dir=options["out"],
            progress=ProgressBar(self.stderr),
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"replayed {summary['tasks']} tasks, {summary['calls']} calls "
                f"({summary['error_calls']} error results) in {summary['elapsed_s']} s; "
                f"results in {options['out']}"
            )
        )
