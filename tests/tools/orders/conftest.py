"""Fixtures for the order-management scenario tests: a seeded database and the fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from parley.tools.orders.seed import orders_seed_load

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios" / "orders"


def fixture_json(name: str) -> Any:
    """A JSON file of ``tests/fixtures/scenarios/orders`` (``tasks.json``, ``expected.json``)."""
    return json.loads((FIXTURES_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture
def orders_seeded(db: None) -> dict[str, int]:
    """A database holding exactly the order-management seed; returns the counts per
    collection."""
    return orders_seed_load(reset=True)


@pytest.fixture(scope="session")
def expected() -> dict[str, Any]:
    return fixture_json("expected.json")
