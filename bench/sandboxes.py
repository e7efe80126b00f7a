"""How long a scenario sandbox takes to create (tables + seed) and to drop.

    python bench/sandboxes.py [--runs 20] [--json FILE]

Uses ``DATABASE_URL`` (PostgreSQL: one schema per sandbox) or, when it is unset, a temporary
SQLite database (one file per sandbox). Prints one row per installed scenario: p50 / p95 /
max of creation and p50 of dropping, in ms. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp.name}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parley.platform.settings.local")
    os.environ.setdefault("PARLEY_REPORTS_DIR", tmp.name)

    import django

    django.setup()
    from django.apps import apps
    from django.core.management import call_command
    from django.db import connections

    from parley.agents.voice.metrics import percentile
    from parley.tools.environments import (
        DOMAIN_APPS,
        environment_sandbox_create,
        environment_sandbox_drop,
    )

    call_command("migrate", verbosity=0)
    backend = connections["default"].vendor
    rows = []
    for scenario in sorted(DOMAIN_APPS):
        if not apps.is_installed(f"parley.tools.{scenario}"):
            continue
        create_ms, drop_ms = [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            env = environment_sandbox_create(scenario=scenario, label="bench")
            create_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            environment_sandbox_drop(env)
            drop_ms.append((time.perf_counter() - started) * 1000)
        rows.append(
            {
                "scenario": scenario,
                "backend": backend,
                "runs": args.runs,
                "create_p50_ms": round(percentile(create_ms, 50), 1),
                "create_p95_ms": round(percentile(create_ms, 95), 1),
                "create_max_ms": round(max(create_ms), 1),
                "drop_p50_ms": round(percentile(drop_ms, 50), 1),
            }
        )
    header = [
        "scenario",
        "backend",
        "runs",
        "create_p50_ms",
        "create_p95_ms",
        "create_max_ms",
        "drop_p50_ms",
    ]
    print(" | ".join(f"{h:>13}" for h in header))
    for row in rows:
        print(" | ".join(f"{row[h]!s:>13}" for h in header))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    tmp.cleanup()


if __name__ == "__main__":
    main()
