"""Fixtures for evaluation runs: the hospital agent on a fast LLM simulator."""

from __future__ import annotations

import pytest

from parley.agents.models import Agent
from parley.agents.services import agent_create, model_pool_simulator_ensure, scenario_install
from parley.platform.fleet.models import ModelPool


@pytest.fixture
def hospital_agent(db, settings, tmp_path) -> Agent:  # noqa: ANN001
    settings.PARLEY_REPORTS_DIR = tmp_path / "reports"
    scenario = scenario_install(slug="hospital")  # also seeds the live data
    pool = model_pool_simulator_ensure()
    ModelPool.objects.filter(pk=pool.pk).update(sim_ttft_ms=5, sim_itl_ms=1)
    return agent_create(
        slug="hospital-receptionist",
        name="Hospital receptionist",
        scenario=scenario,
        model_pool=ModelPool.objects.get(pk=pool.pk),
        prompt="You are a hospital receptionist.",
    )
