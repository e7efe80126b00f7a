"""Fixtures for the order-management scenario tests: a seeded database and the fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from parley.tools.orders.seed import orders_seed_load
from parley.tools.replay import scenario_tasks_path

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios" / "orders"
TASKS_FILE = scenario_tasks_path("orders")


def fixture_json(name: str) -> Any:
    """``expected.json`` of ``tests/fixtures/scenarios/orders``, or the scenario's ``tasks.json``
    (shipped with the product in ``parley/tools/orders/``)."""
    directory = TASKS_FILE.parent if name == "tasks.json" else FIXTURES_DIR
    return json.loads((directory / name).read_text(encoding="utf-8"))


@pytest.fixture
def orders_seeded(db: None) -> dict[str, int]:
    """A database holding exactly the order-management seed; returns the counts per
    collection."""
    return orders_seed_load(reset=True)


@pytest.fixture(scope="session")
def expected() -> dict[str, Any]:
    return fixture_json("expected.json")
