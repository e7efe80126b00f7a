"""``manage.py scenario load --scenario SLUG``: install a scenario, its tools and seed data."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from parley.agents.services import SCENARIO_DOMAINS, scenario_install
from parley.platform.errors import ApplicationError


class Command(BaseCommand):
    help = "Manage scenarios (hospital): `load` installs tool schemas and seeds domain data."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        sub = parser.add_subparsers(dest="action", required=True)
        load = sub.add_parser("load", help="install or refresh a scenario")
        load.add_argument("--scenario", required=True, choices=sorted(SCENARIO_DOMAINS))

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        try:
            scenario = scenario_install(slug=options["scenario"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        tools = scenario.tool_schemas.count()
        self.stdout.write(
            self.style.SUCCESS(f"scenario {scenario.slug}: {tools} tools, seed loaded")
        )
