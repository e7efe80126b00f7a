"""The order-management scenario app: Benchforce's order_management domain as Django models
and tools."""

from __future__ import annotations

from pathlib import Path

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "parley.tools.orders"
    label = "orders"
    verbose_name = "Order management scenario"

    def ready(self) -> None:
        """Register the 16 order tools of ``tools.json`` under the scenario ``orders``.

        Raises ``ValueError`` (from the registry) if ``tools.json`` and the implementations
        in :mod:`parley.tools.orders.tools` disagree on the tool names.
        """
        from parley.tools.orders.seed import orders_keyterms
        from parley.tools.orders.tools import ORDERS_SIDE_EFFECTING, ORDERS_TOOLS
        from parley.tools.registry import scenario_keyterms_register, scenario_tools_register

        scenario_tools_register(
            scenario="orders",
            schemas_path=Path(__file__).resolve().parent / "tools.json",
            functions=ORDERS_TOOLS,
            side_effecting=ORDERS_SIDE_EFFECTING,
        )
        scenario_keyterms_register(scenario="orders", func=orders_keyterms)
