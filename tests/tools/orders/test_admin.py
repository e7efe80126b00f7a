"""The order-management models in the Django admin: lists, search and adding records."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from parley.tools.orders.models import ORDERS_MODELS, Customer, Order
from parley.tools.orders.seed import DATA_DIR, orders_state_export

pytestmark = pytest.mark.usefixtures("orders_seeded")


@pytest.mark.parametrize("model", ORDERS_MODELS, ids=lambda m: m.__name__)
def test_changelist_lists_and_searches_every_model(admin_client: Client, model: type) -> None:
    url = reverse(f"admin:orders_{model._meta.model_name}_changelist")
    response = admin_client.get(url)
    assert response.status_code == 200
    assert response.context["cl"].result_count == model.objects.count()
    first = model.objects.order_by("position").first()
    response = admin_client.get(url, {"q": first.pk})
    assert response.status_code == 200
    assert first in response.context["cl"].result_list
    change = reverse(f"admin:orders_{model._meta.model_name}_change", args=[first.pk])
    assert admin_client.get(change).status_code == 200


def test_adding_a_customer_without_position_appends_it(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:orders_customer_add"),
        {
            "customer_id": "C1026",
            "name": "Zara Young",
            "email": "zara.young@gap.com",
            "phone": "555-1616",
            "position": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Customer.objects.get(pk="C1026").position == 25
    assert orders_state_export()["customers"][-1]["customer_id"] == "C1026"


def _order_form(order: dict, **changes: str) -> dict[str, str]:
    form = {
        key: ("" if value is None else str(value))
        for key, value in order.items()
        if key not in ("return_requested", "refund_requested")
    }
    form["total_amount"] = json.dumps(order["total_amount"])
    if order.get("return_requested"):
        form["return_requested"] = "on"
    refund = order.get("refund_requested")
    form["refund_requested"] = {None: "unknown", True: "true", False: "false"}[refund]
    form["position"] = str(Order.objects.get(pk=order["order_id"]).position)
    return {**form, **changes}


def test_saving_an_order_unchanged_in_the_admin_keeps_its_record(admin_client: Client) -> None:
    seed = json.loads((DATA_DIR / "orders.json").read_text())["O1002"]
    url = reverse("admin:orders_order_change", args=["O1002"])
    response = admin_client.post(url, _order_form(seed))
    assert response.status_code == 302, response.content.decode()[:3000]
    # No reason keys appear from empty form fields; the amount keeps its JSON value.
    assert json.dumps(Order.objects.get(pk="O1002").as_record()) == json.dumps(seed)


def test_editing_an_order_in_the_admin(admin_client: Client) -> None:
    seed = json.loads((DATA_DIR / "orders.json").read_text())["O1033"]
    url = reverse("admin:orders_order_change", args=["O1033"])
    form = _order_form(seed, tracking_number="TRK1033", order_status="shipped")
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Order.objects.get(pk="O1033").as_record() == dict(
        seed, tracking_number="TRK1033", order_status="shipped"
    )


@pytest.mark.parametrize("amount", ['"cheap"', "true", "[1]"])
def test_the_admin_refuses_an_amount_that_is_not_a_number(
    admin_client: Client, amount: str
) -> None:
    seed = json.loads((DATA_DIR / "orders.json").read_text())["O1033"]
    url = reverse("admin:orders_order_change", args=["O1033"])
    response = admin_client.post(url, _order_form(seed, total_amount=amount))
    assert response.status_code == 200  # the form again, with the error
    assert "must be a number" in response.content.decode()
    assert Order.objects.get(pk="O1033").total_amount == 175.25
