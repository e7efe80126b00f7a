"""Fixtures for the HR scenario tests: a seeded database and the fixtures.

Loading the HR seed (2,196 records) takes about half a second, so :func:`hr_seeded` loads it
once per test module, committed, and every test then runs in a transaction that is rolled
back: each test starts from the pristine seed. The module's data are deleted after its last
test, so other test modules never see them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from parley.tools.hr.models import HR_MODELS
from parley.tools.hr.seed import hr_seed_load
from parley.tools.replay import scenario_tasks_path

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios" / "hr"
TASKS_FILE = scenario_tasks_path("hr")


def fixture_json(name: str) -> Any:
    """``expected.json`` of ``tests/fixtures/scenarios/hr``, or the scenario's ``tasks.json``
    (shipped with the product in ``parley/tools/hr/``)."""
    directory = TASKS_FILE.parent if name == "tasks.json" else FIXTURES_DIR
    return json.loads((directory / name).read_text(encoding="utf-8"))


def without_users(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` as the reference saw it: Benchforce ran with ``users = {}`` (the users files
    are missing from its snapshot), so its digests cover an empty users collection."""
    return {**state, "users": {}}


def hr_tables_empty() -> None:
    """Delete every HR row (children first)."""
    from parley.tools.hr.models import DowntimeLog, Organization, Subscription, User

    for model in (User, DowntimeLog, Subscription, Organization):
        model.objects.all().delete()
    assert all(not model.objects.exists() for model in HR_MODELS)


@pytest.fixture(scope="module")
def hr_seeded_module(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, int]]:
    with django_db_blocker.unblock():
        counts = hr_seed_load(reset=True)
    yield counts
    with django_db_blocker.unblock():
        hr_tables_empty()


@pytest.fixture
def hr_seeded(hr_seeded_module: dict[str, int], db: None) -> dict[str, int]:
    """A database holding exactly the HR seed (changes are rolled back after the test);
    returns the counts per collection."""
    return hr_seeded_module


@pytest.fixture(scope="session")
def expected() -> dict[str, Any]:
    return fixture_json("expected.json")
