"""The order-management data in a sandbox environment: a seeded copy, isolated from live."""

from __future__ import annotations

from typing import Any

import pytest

from parley.tools.environments import active_alias, sandbox
from parley.tools.orders.models import Order
from parley.tools.orders.seed import orders_seed_load, orders_state_digest
from parley.tools.registry import tool_run

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_sandbox_starts_from_the_seed_and_writes_stay_inside_it(
    expected: dict[str, Any],
) -> None:
    orders_seed_load(reset=True)
    tool_run(
        scenario="orders",
        name="update_order",
        arguments={"order_id": "O1001", "order_status": "shipped"},
    )
    live_digest = orders_state_digest()
    assert live_digest != expected["seed_digest"]

    with sandbox(scenario="orders", label="test") as env:
        assert active_alias() == env.alias != "default"
        assert orders_state_digest() == expected["seed_digest"]  # the seed, not live data
        outcome = tool_run(scenario="orders", name="cancel_order", arguments={"order_id": "O1033"})
        assert outcome.ok, outcome.content
        assert not Order.objects.filter(pk="O1033").exists()
        failed = tool_run(scenario="orders", name="create_order", arguments={"order_id": "O1"})
        assert not failed.ok
        assert Order.objects.count() == 44

    assert active_alias() == "default"
    assert orders_state_digest() == live_digest
    assert Order.objects.filter(pk="O1033").exists()
    assert Order.objects.get(pk="O1001").order_status == "shipped"
