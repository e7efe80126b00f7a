"""Installing the HR scenario, and running it in a sandbox environment."""

from __future__ import annotations

from typing import Any

import pytest

from parley.agents.models import Scenario
from parley.agents.services import SCENARIO_DOMAINS, scenario_install
from parley.tools.environments import active_alias, sandbox
from parley.tools.hr.models import User
from parley.tools.hr.seed import hr_state_digest, hr_state_export
from parley.tools.models import ToolSchema
from parley.tools.registry import tool_run

from .conftest import hr_tables_empty, without_users


@pytest.mark.django_db
def test_scenario_install_creates_the_scenario_its_tools_and_its_data(
    expected: dict[str, Any],
) -> None:
    hr_tables_empty()
    assert SCENARIO_DOMAINS["hr"] == "HR software"

    scenario = scenario_install(slug="hr")

    assert (scenario.slug, scenario.name, scenario.domain) == ("hr", "HR software", "hr")
    assert "# HR Software Support Agent Policy" in scenario.policy
    schemas = ToolSchema.objects.filter(scenario=scenario)
    assert schemas.count() == 16
    assert set(schemas.filter(side_effecting=True).values_list("name", flat=True)) == {
        "modify_subscription_seats",
        "modify_subscription_tier",
        "modify_user_permissions",
        "modify_user_status",
    }
    assert hr_state_digest(state=without_users(hr_state_export())) == expected["seed_digest"]
    assert User.objects.count() == 196
    # Installing again changes nothing.
    scenario_install(slug="hr")
    assert Scenario.objects.filter(slug="hr").count() == 1
    assert ToolSchema.objects.filter(scenario=scenario).count() == 16


@pytest.mark.django_db(transaction=True)
def test_a_sandbox_holds_its_own_copy_of_the_hr_seed() -> None:
    with sandbox(scenario="hr", label="hr test") as env:
        assert active_alias() == env.alias != "default"
        seed_digest = hr_state_digest()
        outcome = tool_run(
            scenario="hr",
            name="modify_user_status",
            arguments={"user_id": "USR-00101", "new_status": "active", "org_id": "ORG-000013"},
        )
        assert outcome.ok, outcome.content
        assert User.objects.get(pk="USR-00101").status == "active"
        assert hr_state_digest() != seed_digest
    assert active_alias() == "default"
    assert not User.objects.exists()  # the live database was never touched
