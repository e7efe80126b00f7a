"""Installing the order-management scenario: schemas, policy and seed data in one call."""

from __future__ import annotations

from typing import Any

import pytest

from parley.agents.models import Scenario
from parley.agents.services import SCENARIO_DOMAINS, scenario_install
from parley.tools.models import ToolSchema
from parley.tools.orders.models import Order
from parley.tools.orders.seed import orders_state_digest

pytestmark = pytest.mark.django_db


def test_scenario_install_creates_the_scenario_tools_and_data(expected: dict[str, Any]) -> None:
    assert SCENARIO_DOMAINS["orders"] == "Order management"

    scenario = scenario_install(slug="orders")

    assert (scenario.slug, scenario.name, scenario.domain) == (
        "orders",
        "Order management",
        "orders",
    )
    assert scenario.policy.startswith("Source: Benchforce")
    assert "# Gap Order Management Agent Policy" in scenario.policy
    schemas = ToolSchema.objects.filter(scenario=scenario)
    assert schemas.count() == 16
    assert set(schemas.filter(side_effecting=True).values_list("name", flat=True)) == {
        "apply_coupon",
        "cancel_order",
        "confirm_delivery",
        "create_order",
        "remove_coupon",
        "request_refund",
        "return_order",
        "update_billing_address",
        "update_order",
        "update_shipping_address",
    }
    assert schemas.get(name="create_order").parameters["required"][0] == "order_id"
    assert orders_state_digest() == expected["seed_digest"]


def test_scenario_install_again_keeps_live_changes(expected: dict[str, Any]) -> None:
    scenario_install(slug="orders")
    Order.objects.filter(pk="O1001").update(order_status="shipped")

    scenario_install(slug="orders")

    assert Scenario.objects.filter(slug="orders").count() == 1
    assert ToolSchema.objects.filter(scenario__slug="orders").count() == 16
    assert Order.objects.get(pk="O1001").order_status == "shipped"
    assert orders_state_digest() != expected["seed_digest"]
