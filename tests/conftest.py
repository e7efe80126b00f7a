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


@pytest.fixture
def recordings_dir(settings, tmp_path):  # noqa: ANN001, ANN201
    """Call recordings of the test go to its own folder."""
    settings.PARLEY_RECORDINGS_DIR = tmp_path / "recordings"
    return settings.PARLEY_RECORDINGS_DIR


# Dashboard and API users ------------------------------------------------------------------

PASSWORD = "parley-test-password"


def user_with(username: str, *, role: str | None = None, superuser: bool = False):  # noqa: ANN201
    """A user with a dashboard role (``admin``, ``analyst``) or none, or a superuser."""
    from django.contrib.auth import get_user_model

    from parley.platform.dashboard.roles import role_assign

    user = get_user_model().objects.create_user(
        username=username, password=PASSWORD, is_superuser=superuser, is_staff=superuser
    )
    if role:
        role_assign(user=user, role=role)
    return user


def client_for(user):  # noqa: ANN001, ANN201
    """A test client logged in as ``user``."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_user(db):  # noqa: ANN001, ANN201
    return user_with("root", superuser=True)


@pytest.fixture
def admin(admin_user):  # noqa: ANN001, ANN201
    return client_for(admin_user)


@pytest.fixture
def analyst_user(db):  # noqa: ANN001, ANN201
    return user_with("ana", role="analyst")


@pytest.fixture
def analyst(analyst_user):  # noqa: ANN001, ANN201
    return client_for(analyst_user)
