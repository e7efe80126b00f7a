"""Shared fixtures: paths to the bundled audio and scenario fixtures, the hospital agent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SPEECH = FIXTURES / "audio" / "speech"


@pytest.fixture(scope="session")
def speech_manifest() -> dict[str, dict]:
    return {e["file"]: e for e in json.loads((SPEECH / "manifest.json").read_text())}


@pytest.fixture
def hospital_agent(db):  # noqa: ANN001, ANN201
    """The hospital receptionist on the embedded engines (published, LLM simulator)."""
    from parley.agents.services import agent_create, model_pool_simulator_ensure, scenario_install

    scenario = scenario_install(slug="hospital")
    pool = model_pool_simulator_ensure()
    return agent_create(
        slug="hospital-receptionist",
        name="Hospital receptionist",
        scenario=scenario,
        model_pool=pool,
        prompt="You are a hospital receptionist.",
    )


@pytest.fixture
def reports_dir(settings, tmp_path):  # noqa: ANN001, ANN201
    """Call reports of the test go to its own folder."""
    settings.PARLEY_REPORTS_DIR = tmp_path / "reports"
    return settings.PARLEY_REPORTS_DIR
