"""``manage.py report --agent SLUG [--day YYYY-MM-DD]``: generate an agent's day report now.

Runs in this process (no Celery), writes the same row and files as the nightly job
(docs/reports.md) and prints a short table. ``--day`` defaults to yesterday (UTC).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from parley.agents.models import Agent
from parley.conversations.report_services import (
    agent_day_report_generate,
    agent_day_report_prepare,
    utc_today,
)
from parley.platform.errors import ApplicationError


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--day: {text!r} is not a date like 2026-03-04") from exc


class Command(BaseCommand):
    help = "Generate one agent's day report (UTC) now and print its figures."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--agent", required=True, help="agent slug")
        parser.add_argument("--day", help="YYYY-MM-DD (UTC); default: yesterday")

    def handle(self, *args, **options) -> None:  # noqa: ANN002, ANN003
        try:
            agent = Agent.objects.get(slug=options["agent"])
        except Agent.DoesNotExist as exc:
            raise CommandError(f"no agent {options['agent']!r}") from exc
        day = _day(options["day"]) if options["day"] else utc_today() - dt.timedelta(days=1)
        try:
            report = agent_day_report_prepare(agent=agent, day=day)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        try:
            report = agent_day_report_generate(report_id=report.pk)
        except Exception as exc:
            raise CommandError(f"the report failed: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(report_table(report.figures or {}))
        self.stdout.write(self.style.SUCCESS(f"\n{report.json_path}\n{report.csv_path}"))


def report_table(figures: dict[str, Any]) -> str:
    """A fixed-width text summary of day-report figures (ms)."""
    calls = figures["calls"]
    turns = figures["turns"]
    tools = figures["tools"]
    statuses = ", ".join(f"{n} {status}" for status, n in calls["by_status"].items() if n)
    lines = [
        f"{figures['agent']} on {figures['day']} (UTC)",
        f"calls {calls['total']}" + (f" ({statuses})" if statuses else ""),
        f"caller turns {turns['caller']}, interrupted {turns['interrupted']}"
        f" ({_percent(turns['interruption_rate'])})",
        f"tool calls {tools['total']}, errors {tools['errors']} ({_percent(tools['error_rate'])})",
        "",
        f"{'component':<18}{'n':>5}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}",
    ]
    for name, row in figures["latency"].items():
        if not row.get("n"):
            lines.append(f"{name:<18}{0:>5}" + f"{'-':>9}" * 4)
            continue
        lines.append(
            f"{name:<18}{row['n']:>5}{row['p50']:>9.1f}{row['p95']:>9.1f}"
            f"{row['p99']:>9.1f}{row['max']:>9.1f}"
        )
    lines += ["", "TTFA (ms)   calls"]
    for bin_ in figures["ttfa_histogram"]["bins"]:
        lines.append(f"{bin_['label']:<12}{bin_['count']:>5}")
    return "\n".join(lines)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"
