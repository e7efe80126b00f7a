"""Fixtures for the hospital scenario tests: a seeded database, a frozen clock, the fixtures."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from parley.tools.hospital import tools
from parley.tools.hospital.seed import hospital_seed_load
from parley.tools.replay import scenario_tasks_path

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios" / "hospital"
TASKS_FILE = scenario_tasks_path("hospital")

#: The date expected.json's replay froze create_referral's clock at ("frozen_clock").
FROZEN_TODAY = dt.date(2025, 1, 1)


def fixture_json(name: str) -> Any:
    """``expected.json`` of ``tests/fixtures/scenarios/hospital``, or the scenario's ``tasks.json``
    (shipped with the product in ``parley/tools/hospital/``)."""
    directory = TASKS_FILE.parent if name == "tasks.json" else FIXTURES_DIR
    return json.loads((directory / name).read_text(encoding="utf-8"))


@pytest.fixture
def hospital_seeded(db: None) -> dict[str, int]:
    """A database holding exactly the hospital seed; returns the counts per collection."""
    return hospital_seed_load(reset=True)


@pytest.fixture
def frozen_today(monkeypatch: pytest.MonkeyPatch) -> dt.date:
    """Patch the tools' clock (``tools.today``) to 2025-01-01, as the reference replay did."""
    monkeypatch.setattr(tools, "today", lambda: FROZEN_TODAY)
    return FROZEN_TODAY


@pytest.fixture(scope="session")
def expected() -> dict[str, Any]:
    return fixture_json("expected.json")
