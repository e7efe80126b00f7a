"""The analysts' conversation list on 100,000 conversations: every filter and the search.

    python bench/conversation_list.py [--conversations 100000] [--runs 15] [--json FILE]
        [--database-url postgres://postgres@127.0.0.1:5432/parley_bench_list] [--keep]

Creates its own PostgreSQL database (dropped at the end unless ``--keep``; with ``--keep`` a
second run reuses the rows), seeds N ended conversations over 90 days across three agents
with transcripts built from a small vocabulary, then requests the dashboard's list page
(``/dashboard/conversations/``, as an analyst, template rendered) for each filter. Prints one
row per filter: conversations matched, SQL queries, p50 / p95 / max of the whole request in
ms; the full-text search is measured twice, with its GIN index and with index scans turned
off, to show what the index buys. Not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = (
    "appointment doctor patel monday tuesday cancel reschedule prescription refill pharmacy "
    "insurance billing vacation payroll benefits order refund shipping tracking address "
    "delivery return invoice password account manager schedule opening hours parking "
    "cardiology radiology results follow-up urgent thanks hello goodbye please yes no"
).split()


def database_ensure(url: str) -> None:
    """Create the benchmark's database if it does not exist (psycopg, autocommit)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            conn.execute(f'create database "{name}"')


def database_drop(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{parts.path.lstrip("/")}" with (force)')


def seed(n: int) -> None:
    """N ended conversations over the last 90 days (summary columns set, no turns: the list
    reads only the conversation rows)."""
    from django.utils import timezone

    from parley.agents.models import Agent
    from parley.agents.services import agent_create, model_pool_simulator_ensure, scenario_install
    from parley.conversations.models import Conversation

    have = Conversation.objects.count()
    if have >= n:
        return
    pool = model_pool_simulator_ensure()
    agents = []
    for slug in ("hospital", "hr", "orders"):
        scenario = scenario_install(slug=slug)
        agent = Agent.objects.filter(slug=f"{slug}-agent").first() or agent_create(
            slug=f"{slug}-agent",
            name=f"{slug} agent",
            scenario=scenario,
            model_pool=pool,
            prompt="bench",
        )
        agents.append(agent)
    rng = random.Random(7)
    now = timezone.now()
    batch: list[Conversation] = []
    for i in range(have, n):
        started = now - dt.timedelta(seconds=rng.uniform(0, 90 * 86400))
        ttfas = [rng.lognormvariate(6.7, 0.35) for _ in range(rng.randint(1, 8))]
        interrupted = rng.random() < 0.12
        tool_errors = 1 if rng.random() < 0.05 else 0
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120)))
        batch.append(
            Conversation(
                agent=agents[i % 3],
                status="error" if rng.random() < 0.03 else "ended",
                started_at=started,
                ended_at=started + dt.timedelta(seconds=rng.uniform(20, 400)),
                turn_count=len(ttfas),
                interrupted_turns=1 if interrupted else 0,
                tool_calls_count=rng.randint(0, 4) + tool_errors,
                tool_errors=tool_errors,
                ttfa_p50_ms=round(sorted(ttfas)[len(ttfas) // 2], 1),
                ttfa_max_ms=round(max(ttfas), 1),
                transcript_text=words,
            )
        )
        if len(batch) == 5000:
            Conversation.objects.bulk_create(batch)
            batch = []
            print(f"  seeded {i + 1:,} / {n:,}", file=sys.stderr)
    if batch:
        Conversation.objects.bulk_create(batch)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("analyze conversations_conversation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/parley_bench_list"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database for a rerun")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    database_ensure(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parley.platform.settings.local")
    os.environ["PARLEY_VAR_DIR"] = tmp.name
    os.environ.pop("REDIS_URL", None)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import setup_test_environment

    from parley.agents.voice.metrics import percentile
    from tests.conftest import user_with

    setup_test_environment()  # responses carry their template context (the match count)
    settings.DEBUG = True  # count queries
    settings.ALLOWED_HOSTS = ["testserver"]
    try:
        call_command("migrate", verbosity=0)
        seed(args.conversations)
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.filter(username="bench-analyst").first()
        user = user or user_with("bench-analyst", role="analyst")
        client = Client()
        client.force_login(user)
        week_ago = (dt.date.today() - dt.timedelta(days=7)).isoformat()
        cases = [
            ("no filter (newest 50)", {}, False),
            ("agent", {"agent": "hr-agent"}, False),
            ("scenario", {"scenario": "orders"}, False),
            ("last 7 days", {"since": week_ago}, False),
            ("outcome: error", {"outcome": "error"}, False),
            ("outcome: interrupted", {"outcome": "interrupted"}, False),
            ("tool errors", {"tool_errors": "on"}, False),
            ("TTFA above 1500 ms", {"ttfa_above_ms": "1500"}, False),
            ("search 'refund'", {"q": "refund"}, False),
            ("search 'refund' (no index)", {"q": "refund"}, True),
            (
                "search + agent + 7 days",
                {"q": "cardiology", "agent": "hospital-agent", "since": week_ago},
                False,
            ),
            ("page 100", {"page": "100"}, False),
        ]
        rows = []
        for label, params, no_index in cases:
            with connection.cursor() as cursor:
                flag = "off" if no_index else "on"
                cursor.execute(f"set enable_bitmapscan = {flag}")
                cursor.execute(f"set enable_indexscan = {flag}")
            times = []
            for _ in range(args.runs):
                reset_queries()
                started = time.perf_counter()
                response = client.get("/dashboard/conversations/", params)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.status_code
            queries = len(connection.queries)
            rows.append(
                {
                    "filter": label,
                    "matched": response.context["page"].paginator.count,
                    "queries": queries,
                    "p50_ms": round(percentile(times, 50), 1),
                    "p95_ms": round(percentile(times, 95), 1),
                    "max_ms": round(max(times), 1),
                }
            )
        with connection.cursor() as cursor:
            cursor.execute("set enable_bitmapscan = on")
            cursor.execute("set enable_indexscan = on")
        print(
            f"\nconversation list, {args.conversations:,} conversations, PostgreSQL, "
            f"{args.runs} requests each (whole request incl. template)\n"
        )
        header = (
            f"{'filter':<30}{'matched':>9}{'queries':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
        )
        print(header)
        print("-" * len(header))
        for r in rows:
            print(
                f"{r['filter']:<30}{r['matched']:>9,}{r['queries']:>9}{r['p50_ms']:>9.1f}"
                f"{r['p95_ms']:>9.1f}{r['max_ms']:>9.1f}"
            )
        if args.json:
            args.json.write_text(
                json.dumps({"conversations": args.conversations, "rows": rows}, indent=2)
            )
    finally:
        connection.close()
        if not args.keep:
            database_drop(args.database_url)


if __name__ == "__main__":
    main()
