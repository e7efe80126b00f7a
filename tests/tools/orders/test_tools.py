"""The 16 order-management tools, run the way the platform runs them: through ``tool_run``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from parley.tools.orders import tools
from parley.tools.orders.models import Customer, Order
from parley.tools.orders.seed import DATA_DIR, orders_state_digest, orders_state_export
from parley.tools.registry import ToolOutcome, scenario_tools, tool_run

pytestmark = pytest.mark.usefixtures("orders_seeded")

TOOLS_JSON = Path(tools.__file__).resolve().parent / "tools.json"
SEED_ORDERS: dict[str, dict[str, Any]] = json.loads((DATA_DIR / "orders.json").read_text())
SEED_CUSTOMERS: list[dict[str, Any]] = json.loads((DATA_DIR / "customers.json").read_text())


def run(name: str, arguments: dict[str, Any] | str) -> ToolOutcome:
    return tool_run(scenario="orders", name=name, arguments=arguments)


def ok_json(name: str, arguments: dict[str, Any] | str) -> Any:
    """Run a call that must succeed; its result parsed."""
    outcome = run(name, arguments)
    assert outcome.ok, outcome.content
    return json.loads(outcome.content)


def error(name: str, arguments: dict[str, Any] | str) -> str:
    """Run a call that must fail without changing any data; its error text."""
    before = orders_state_digest()
    outcome = run(name, arguments)
    assert not outcome.ok, outcome.content
    assert outcome.content.startswith("Error: ")
    assert orders_state_digest() == before
    return outcome.content


def unchanged(name: str, arguments: dict[str, Any]) -> str:
    """Run a call that must succeed without changing any data; its result text."""
    before = orders_state_digest()
    outcome = run(name, arguments)
    assert outcome.ok, outcome.content
    assert orders_state_digest() == before
    return outcome.content


def seed_order(order_id: str, **changes: Any) -> dict[str, Any]:
    """The seed record of ``order_id`` with ``changes`` applied (new keys at the end)."""
    return {**SEED_ORDERS[order_id], **changes}


def stored(order_id: str) -> dict[str, Any]:
    return Order.objects.get(pk=order_id).as_record()


# --- registration and argument validation -------------------------------------------------

WRITERS = {
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


def test_every_tool_of_tools_json_is_registered_with_its_schema() -> None:
    schemas = {t["function"]["name"]: t["function"] for t in json.loads(TOOLS_JSON.read_text())}
    registered = scenario_tools(scenario="orders")
    assert sorted(registered) == sorted(schemas) and len(registered) == 16
    for name, spec in registered.items():
        assert spec.parameters == schemas[name]["parameters"]
        assert spec.description == schemas[name]["description"]
        assert spec.func is tools.ORDERS_TOOLS[name]
    assert {n for n, s in registered.items() if s.side_effecting} == WRITERS


def test_every_order_tool_reports_an_unknown_order_the_same_way() -> None:
    order_tools = {
        name: spec
        for name, spec in scenario_tools(scenario="orders").items()
        if "order_id" in spec.parameters["required"] and name != "create_order"
    }
    assert len(order_tools) == 11
    for name, spec in order_tools.items():
        arguments = {arg: "x" for arg in spec.parameters["required"]}
        arguments["order_id"] = "O9999"
        assert error(name, arguments) == "Error: order not found", name


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("get_order", {}, "'order_id' is a required property"),
        ("get_order", {"order_id": 1001}, "1001 is not of type 'string' (at order_id)"),
        ("list_orders", {}, "'customer_id' is a required property"),
        ("generate_order_report", {"report_date": None}, "None is not of type 'string'"),
        ("apply_coupon", {"order_id": "O1001"}, "'coupon_code' is a required property"),
        ("update_order", {"order_id": "O1001", "order_status": 3}, "3 is not of type 'string'"),
        ("request_refund", {"order_id": "O1001"}, "'refund_reason' is a required property"),
        ("return_order", {"order_id": "O1001"}, "'return_reason' is a required property"),
        ("update_shipping_address", {"order_id": "O1001"}, "'new_shipping_address' is a"),
        ("update_billing_address", {"order_id": "O1001"}, "'new_billing_address' is a"),
        ("confirm_customer_identity", {"customer_id": None}, "None is not of type 'string'"),
        ("cancel_order", {"order_id": ["O1001"]}, "['O1001'] is not of type 'string'"),
    ],
)
def test_invalid_arguments_are_error_results_that_write_nothing(
    name: str, arguments: dict[str, Any], message: str
) -> None:
    content = error(name, arguments)
    assert content.startswith(f"Error: invalid arguments for {name}: {message}"), content


def test_arguments_given_as_json_text() -> None:
    assert ok_json("get_order", '{"order_id": "O1001"}')["order_id"] == "O1001"
    assert error("get_order", '{"order_id": ').startswith(
        "Error: arguments for get_order are not valid JSON"
    )


def test_unknown_arguments_are_ignored() -> None:
    assert ok_json("track_order", {"order_id": "O1002", "customer_id": "C1002"}) == {
        "order_id": "O1002",
        "tracking_number": "TRK1002",
        "order_status": "shipped",
    }


# --- confirm_customer_identity -------------------------------------------------------------

MICHAEL = {
    "customer_id": "C1013",
    "name": "Michael Thompson",
    "email": "michael.thompson@gap.com",
    "phone": "555-3030",
}
NOT_CONFIRMED = {
    "status": "not_confirmed",
    "reason": "No matching customer found with provided identifiers.",
}


def test_confirm_customer_identity_by_id() -> None:
    content = unchanged("confirm_customer_identity", {"customer_id": "C1013"})
    assert content == json.dumps(
        {"status": "confirmed", "method": "customer_id", "customer": MICHAEL}
    )


def test_confirm_customer_identity_by_email() -> None:
    content = unchanged("confirm_customer_identity", {"verified_email": "michael.thompson@gap.com"})
    assert content == json.dumps(
        {"status": "confirmed", "method": "verified_email", "customer": MICHAEL}
    )


def test_confirm_customer_identity_prefers_the_id_and_falls_back_to_the_email() -> None:
    both = {"customer_id": "C1001", "verified_email": "michael.thompson@gap.com"}
    result = ok_json("confirm_customer_identity", both)
    assert (result["method"], result["customer"]["customer_id"]) == ("customer_id", "C1001")
    # An unknown (or empty) id is skipped and the email decides.
    for customer_id in ("C9999", ""):
        result = ok_json("confirm_customer_identity", dict(both, customer_id=customer_id))
        assert (result["method"], result["customer"]["customer_id"]) == ("verified_email", "C1013")


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"customer_id": "C9999"},
        {"customer_id": "c1013"},  # ids are exact
        {"verified_email": "Michael.Thompson@gap.com"},  # emails are exact too
        {"verified_email": " michael.thompson@gap.com"},
        {"customer_id": "", "verified_email": ""},
        {"customer_id": "Michael Thompson"},  # not a lookup by name
    ],
)
def test_confirm_customer_identity_no_match_is_a_result_not_an_error(
    arguments: dict[str, Any],
) -> None:
    # Not an error by the ok rule (no "Error" prefix, no "error" key), as in the reference.
    assert unchanged("confirm_customer_identity", arguments) == json.dumps(NOT_CONFIRMED)


def test_confirm_customer_identity_takes_the_first_customer_with_that_email() -> None:
    Customer.objects.create(
        customer_id="C0001", name="Impostor", email="alice.johnson@gap.com", phone="1"
    )
    result = ok_json("confirm_customer_identity", {"verified_email": "alice.johnson@gap.com"})
    assert result["customer"]["customer_id"] == "C1001"  # the earlier position wins


def test_nul_in_identifiers_is_not_found_rather_than_a_crash() -> None:
    assert unchanged("confirm_customer_identity", {"customer_id": "C10\x0013"}) == json.dumps(
        NOT_CONFIRMED
    )
    assert error("get_order", {"order_id": "O10\x0001"}) == "Error: order not found"
    assert unchanged("list_orders", {"customer_id": "C10\x0001"}) == "[]"


# --- get_order / track_order -----------------------------------------------------------------


def test_get_order_returns_the_record_in_seed_key_order() -> None:
    content = unchanged("get_order", {"order_id": "O1033"})
    assert content == json.dumps(SEED_ORDERS["O1033"])
    # Floats keep Python's repr: the seed's "129.50" comes back as 129.5.
    assert '"total_amount": 129.5,' in unchanged("get_order", {"order_id": "O1002"})


@pytest.mark.parametrize("order_id", ["O9999", "o1001", "1001", " O1001", ""])
def test_get_order_unknown_order(order_id: str) -> None:
    assert error("get_order", {"order_id": order_id}) == "Error: order not found"


def test_track_order_gives_tracking_number_and_status() -> None:
    assert unchanged("track_order", {"order_id": "O1002"}) == json.dumps(
        {"order_id": "O1002", "tracking_number": "TRK1002", "order_status": "shipped"}
    )
    # Not shipped yet: an empty tracking number.
    assert ok_json("track_order", {"order_id": "O1033"}) == {
        "order_id": "O1033",
        "tracking_number": "",
        "order_status": "processing",
    }
    assert error("track_order", {"order_id": "O0000"}) == "Error: order not found"


# --- list_orders / get_order_history -------------------------------------------------------


@pytest.mark.parametrize("name", ["list_orders", "get_order_history"])
def test_customer_orders_in_insertion_order(name: str) -> None:
    content = unchanged(name, {"customer_id": "C1001"})
    assert content == json.dumps([SEED_ORDERS[k] for k in ("O1001", "O1011", "O1021")])


@pytest.mark.parametrize("name", ["list_orders", "get_order_history"])
def test_customer_orders_do_not_depend_on_primary_key_order(name: str) -> None:
    Order.objects.create(
        order_id="A0001",  # sorts first by id, but is the newest order
        customer_id="C1013",
        shipping_address="a",
        billing_address="b",
        items="SKU1",
        order_status="processing",
        total_amount=5,
    )
    assert [o["order_id"] for o in ok_json(name, {"customer_id": "C1013"})] == ["O1033", "A0001"]


@pytest.mark.parametrize("name", ["list_orders", "get_order_history"])
@pytest.mark.parametrize("customer_id", ["C9999", "c1001", "Alice Johnson", ""])
def test_customer_orders_of_an_unknown_customer_are_an_empty_list(
    name: str, customer_id: str
) -> None:
    # The reference does not tell "no orders" from "no such customer": both are [].
    assert unchanged(name, {"customer_id": customer_id}) == "[]"


def test_customer_orders_include_orders_for_customers_that_do_not_exist() -> None:
    ok_json("create_order", dict(NEW_ORDER, customer_id="C9999"))
    assert [o["order_id"] for o in ok_json("list_orders", {"customer_id": "C9999"})] == ["O1046"]


# --- generate_order_report ----------------------------------------------------------------


def test_generate_order_report_for_a_day() -> None:
    content = unchanged("generate_order_report", {"report_date": "2025-04-02"})
    assert content == json.dumps(
        {"report_date": "2025-04-02", "total_orders": 1, "orders": [SEED_ORDERS["O1002"]]}
    )


@pytest.mark.parametrize(
    ("report_date", "expected_ids"),
    [
        ("2025-05", [f"O{n}" for n in range(1031, 1046)]),
        ("2025-04-1", [f"O{n}" for n in range(1010, 1020)]),
        ("2025", list(SEED_ORDERS)),
        ("", list(SEED_ORDERS)),
        ("2025-06", []),
        ("2025-4", []),  # a plain text prefix: no date parsing
        ("April 2025", []),
        ("2025-04-01T00:00", []),
    ],
)
def test_generate_order_report_matches_a_text_prefix_of_created_date(
    report_date: str, expected_ids: list[str]
) -> None:
    result = ok_json("generate_order_report", {"report_date": report_date})
    assert result["report_date"] == report_date
    assert [o["order_id"] for o in result["orders"]] == expected_ids
    assert result["total_orders"] == len(expected_ids)


def test_generate_order_report_leaves_out_orders_without_created_date() -> None:
    ok_json("create_order", NEW_ORDER)
    assert ok_json("generate_order_report", {"report_date": "2025"})["total_orders"] == 45
    # Only the empty prefix matches the missing date, as "".startswith("") in the reference.
    everything = ok_json("generate_order_report", {"report_date": ""})
    assert everything["total_orders"] == 46
    assert everything["orders"][-1]["order_id"] == "O1046"


# --- create_order ----------------------------------------------------------------------------

NEW_ORDER = {
    "order_id": "O1046",
    "customer_id": "C1013",
    "shipping_address": "415 Mission Street, San Francisco, CA 94105",
    "billing_address": "999 Elm Ave, Apt 6, Chicago, IL 60610",
    "items": "SKU200,SKU201",
    "order_status": "processing",
    "total_amount": 120.5,
}
NEW_RECORD = {
    "order_id": "O1046",
    "customer_id": "C1013",
    "shipping_address": "415 Mission Street, San Francisco, CA 94105",
    "billing_address": "999 Elm Ave, Apt 6, Chicago, IL 60610",
    "items": "SKU200,SKU201",
    "order_status": "processing",
    "total_amount": 120.5,
    "coupon_code": "",
    "tracking_number": "",
    "return_requested": False,
}


def test_create_order_writes_the_record_without_refund_flag_or_date() -> None:
    outcome = run("create_order", NEW_ORDER)
    assert outcome.ok
    assert outcome.content == json.dumps({"message": "Order created", "order": NEW_RECORD})
    row = Order.objects.get(pk="O1046")
    assert row.as_record() == NEW_RECORD
    assert list(row.as_record()) == list(NEW_RECORD)
    assert row.position == 45  # appended after the seed's 45 orders
    assert (row.refund_requested, row.created_date) == (None, None)
    assert list(orders_state_export()["orders"])[-1] == "O1046"
    assert ok_json("get_order", {"order_id": "O1046"}) == NEW_RECORD


def test_create_order_with_a_coupon() -> None:
    result = ok_json("create_order", dict(NEW_ORDER, coupon_code="GAP10"))
    assert result["order"]["coupon_code"] == "GAP10"


@pytest.mark.parametrize(
    ("amount", "text"),
    [(120, "120"), (120.0, "120.0"), (0.1 + 0.2, "0.30000000000000004"), (1e-07, "1e-07")],
)
def test_create_order_keeps_the_amount_exactly_as_given(amount: float, text: str) -> None:
    outcome = run("create_order", dict(NEW_ORDER, total_amount=amount))
    assert f'"total_amount": {text},' in outcome.content
    assert f'"total_amount": {text},' in run("get_order", {"order_id": "O1046"}).content
    assert json.dumps(orders_state_export()["orders"]["O1046"]["total_amount"]) == text


def test_create_order_accepts_what_the_reference_accepts() -> None:
    # No check against customers, statuses, amounts or the id scheme, as in the reference.
    odd = dict(
        NEW_ORDER, order_id="my-order", customer_id="C9999", order_status="?", total_amount=-5
    )
    assert ok_json("create_order", odd)["order"]["order_id"] == "my-order"
    assert Order.objects.get(pk="my-order").total_amount == -5
    assert ok_json("create_order", dict(NEW_ORDER, order_id=""))["order"]["order_id"] == ""
    assert ok_json("get_order", {"order_id": ""})["customer_id"] == "C1013"


def test_create_order_refuses_an_existing_id() -> None:
    assert error("create_order", dict(NEW_ORDER, order_id="O1001")) == (
        "Error: order already exists"
    )
    assert stored("O1001") == SEED_ORDERS["O1001"]
    ok_json("create_order", NEW_ORDER)
    assert error("create_order", NEW_ORDER) == "Error: order already exists"


def test_create_order_errors_beyond_the_reference() -> None:
    # JSON text may carry NaN/Infinity (Python's json accepts them); no order can cost that.
    for amount in ("NaN", "Infinity", "-Infinity"):
        text = json.dumps(NEW_ORDER).replace("120.5", amount)
        assert error("create_order", text) == "Error: total_amount must be a finite number"
    assert error("create_order", dict(NEW_ORDER, order_id="O" * 65)) == (
        "Error: order_id must be at most 64 characters"
    )
    assert error("create_order", dict(NEW_ORDER, total_amount="120.5")).startswith(
        "Error: invalid arguments for create_order: '120.5' is not of type 'number'"
    )
    assert error("create_order", dict(NEW_ORDER, total_amount=True)).startswith(
        "Error: invalid arguments for create_order: True is not of type 'number'"
    )
    missing = {k: v for k, v in NEW_ORDER.items() if k != "items"}
    assert error("create_order", missing) == (
        "Error: invalid arguments for create_order: 'items' is a required property"
    )
    assert not Order.objects.filter(pk="O1046").exists()


def test_a_new_order_can_be_refunded_and_returned() -> None:
    ok_json("create_order", NEW_ORDER)
    refunded = ok_json("request_refund", {"order_id": "O1046", "refund_reason": "changed mind"})
    # refund_requested did not exist: it is added at the end, then the reason.
    assert list(refunded["order"])[-2:] == ["refund_requested", "refund_reason"]
    returned = ok_json("return_order", {"order_id": "O1046", "return_reason": "too big"})
    assert returned["order"] == {
        **NEW_RECORD,
        "return_requested": True,
        "refund_requested": True,
        "refund_reason": "changed mind",
        "return_reason": "too big",
    }
    assert list(returned["order"])[-3:] == ["refund_requested", "refund_reason", "return_reason"]
    assert list(stored("O1046"))[-3:] == ["refund_requested", "refund_reason", "return_reason"]


# --- cancel_order ----------------------------------------------------------------------------


def test_cancel_order_deletes_the_order_as_the_reference_does() -> None:
    outcome = run("cancel_order", {"order_id": "O1033"})
    assert outcome.ok
    assert outcome.content == json.dumps(
        {"message": "Order cancelled", "order": SEED_ORDERS["O1033"]}
    )
    # The record is gone, not marked "cancelled" (see README: a kept reference defect).
    assert not Order.objects.filter(pk="O1033").exists()
    assert "O1033" not in orders_state_export()["orders"]
    assert error("get_order", {"order_id": "O1033"}) == "Error: order not found"
    assert error("cancel_order", {"order_id": "O1033"}) == "Error: order not found"
    assert ok_json("list_orders", {"customer_id": "C1013"}) == []


def test_cancel_order_of_any_status() -> None:
    for order_id in ("O1005", "O1003", "O1002"):  # cancelled, delivered, shipped
        assert ok_json("cancel_order", {"order_id": order_id})["order"] == SEED_ORDERS[order_id]
    assert Order.objects.count() == 42


def test_a_cancelled_order_id_can_be_used_again_and_goes_to_the_end() -> None:
    ok_json("cancel_order", {"order_id": "O1001"})
    ok_json("create_order", dict(NEW_ORDER, order_id="O1001"))
    assert list(orders_state_export()["orders"])[-1] == "O1001"


def test_cancel_order_unknown_order() -> None:
    assert error("cancel_order", {"order_id": "O9999"}) == "Error: order not found"
    assert Order.objects.count() == 45


# --- update_order ----------------------------------------------------------------------------


def test_update_order_sets_the_status() -> None:
    outcome = run("update_order", {"order_id": "O1001", "order_status": "shipped"})
    assert outcome.ok
    record = seed_order("O1001", order_status="shipped")
    assert outcome.content == json.dumps({"message": "Order updated", "order": record})
    assert stored("O1001") == record


def test_update_order_accepts_any_status_text() -> None:
    result = ok_json("update_order", {"order_id": "O1001", "order_status": "On Hold!"})
    assert result["order"]["order_status"] == "On Hold!"
    assert Order.objects.get(pk="O1001").order_status == "On Hold!"


@pytest.mark.parametrize(
    "arguments", [{"order_id": "O1001"}, {"order_id": "O1001", "order_status": ""}]
)
def test_update_order_without_a_status_changes_nothing_but_succeeds(
    arguments: dict[str, Any],
) -> None:
    assert unchanged("update_order", arguments) == json.dumps(
        {"message": "Order updated", "order": SEED_ORDERS["O1001"]}
    )


def test_update_order_unknown_order() -> None:
    assert error("update_order", {"order_id": "O9999", "order_status": "shipped"}) == (
        "Error: order not found"
    )


# --- confirm_delivery ------------------------------------------------------------------------


@pytest.mark.parametrize("order_id", ["O1002", "O1001", "O1005", "O1003"])
def test_confirm_delivery_marks_delivered_whatever_the_status(order_id: str) -> None:
    # Shipped, processing, even cancelled: the reference does not check.
    outcome = run("confirm_delivery", {"order_id": order_id})
    assert outcome.ok
    record = seed_order(order_id, order_status="delivered")
    assert outcome.content == json.dumps({"message": "Order delivery confirmed", "order": record})
    assert stored(order_id) == record


def test_confirm_delivery_unknown_order() -> None:
    assert error("confirm_delivery", {"order_id": "O9999"}) == "Error: order not found"


# --- update_shipping_address / update_billing_address ---------------------------------------

NEW_ADDRESS = "415 Mission Street, San Francisco, CA 94105"


def test_update_shipping_address() -> None:
    outcome = run(
        "update_shipping_address", {"order_id": "O1033", "new_shipping_address": NEW_ADDRESS}
    )
    assert outcome.ok
    record = seed_order("O1033", shipping_address=NEW_ADDRESS)
    assert outcome.content == json.dumps({"message": "Shipping address updated", "order": record})
    assert stored("O1033") == record
    assert stored("O1033")["billing_address"] == SEED_ORDERS["O1033"]["billing_address"]


def test_update_billing_address() -> None:
    outcome = run(
        "update_billing_address", {"order_id": "O1033", "new_billing_address": NEW_ADDRESS}
    )
    assert outcome.ok
    record = seed_order("O1033", billing_address=NEW_ADDRESS)
    assert outcome.content == json.dumps({"message": "Billing address updated", "order": record})
    assert stored("O1033") == record
    assert stored("O1033")["shipping_address"] == SEED_ORDERS["O1033"]["shipping_address"]


def test_addresses_are_stored_verbatim_whatever_the_status() -> None:
    # O1003 is delivered: the reference changes the address anyway. Non-ASCII is escaped.
    result = ok_json(
        "update_shipping_address", {"order_id": "O1003", "new_shipping_address": "Straße 1"}
    )
    assert result["order"]["shipping_address"] == "Straße 1"
    assert "Stra\\u00dfe 1" in run("get_order", {"order_id": "O1003"}).content
    ok_json("update_billing_address", {"order_id": "O1003", "new_billing_address": ""})
    assert stored("O1003")["billing_address"] == ""


@pytest.mark.parametrize(
    ("name", "argument"),
    [
        ("update_shipping_address", "new_shipping_address"),
        ("update_billing_address", "new_billing_address"),
    ],
)
def test_address_updates_of_an_unknown_order(name: str, argument: str) -> None:
    assert error(name, {"order_id": "O9999", argument: NEW_ADDRESS}) == "Error: order not found"


# --- apply_coupon / remove_coupon ------------------------------------------------------------


def test_apply_coupon_sets_the_code_without_touching_the_amount() -> None:
    outcome = run("apply_coupon", {"order_id": "O1033", "coupon_code": "GAP10"})
    assert outcome.ok
    record = seed_order("O1033", coupon_code="GAP10")
    assert outcome.content == json.dumps({"message": "Coupon applied", "order": record})
    assert stored("O1033") == record
    assert stored("O1033")["total_amount"] == 175.25


def test_apply_coupon_replaces_an_existing_code_and_accepts_any_text() -> None:
    result = ok_json("apply_coupon", {"order_id": "O1001", "coupon_code": "not a real code"})
    assert result["order"]["coupon_code"] == "not a real code"


def test_remove_coupon_clears_the_code() -> None:
    outcome = run("remove_coupon", {"order_id": "O1001"})
    assert outcome.ok
    record = seed_order("O1001", coupon_code="")
    assert outcome.content == json.dumps({"message": "Coupon removed", "order": record})
    assert stored("O1001") == record
    # Removing again (or from an order without a coupon) still succeeds and changes nothing.
    assert unchanged("remove_coupon", {"order_id": "O1001"}) == outcome.content


@pytest.mark.parametrize(
    ("name", "arguments"),
    [("apply_coupon", {"coupon_code": "GAP10"}), ("remove_coupon", {})],
)
def test_coupon_tools_unknown_order(name: str, arguments: dict[str, Any]) -> None:
    assert error(name, {"order_id": "O9999", **arguments}) == "Error: order not found"


# --- return_order / request_refund ----------------------------------------------------------


def test_return_order_flags_the_order_and_appends_the_reason() -> None:
    outcome = run("return_order", {"order_id": "O1003", "return_reason": "Wrong size"})
    assert outcome.ok
    record = seed_order("O1003", return_requested=True, return_reason="Wrong size")
    assert outcome.content == json.dumps({"message": "Return process initiated", "order": record})
    assert list(stored("O1003")) == list(record)
    assert stored("O1003") == record
    assert stored("O1003")["order_status"] == "delivered"  # the status does not change


def test_return_order_again_replaces_the_reason_in_place() -> None:
    ok_json("return_order", {"order_id": "O1003", "return_reason": "Wrong size"})
    ok_json("request_refund", {"order_id": "O1003", "refund_reason": "Damaged"})
    result = ok_json("return_order", {"order_id": "O1003", "return_reason": "Wrong colour"})
    assert list(result["order"])[-2:] == ["return_reason", "refund_reason"]
    assert result["order"]["return_reason"] == "Wrong colour"


def test_request_refund_flags_the_order_and_appends_the_reason() -> None:
    outcome = run("request_refund", {"order_id": "O1007", "refund_reason": "Damaged item"})
    assert outcome.ok
    record = seed_order("O1007", refund_requested=True, refund_reason="Damaged item")
    assert outcome.content == json.dumps({"message": "Refund requested", "order": record})
    assert list(stored("O1007")) == list(record)
    assert stored("O1007") == record


def test_refund_then_return_keeps_the_call_order_of_the_new_keys() -> None:
    ok_json("request_refund", {"order_id": "O1007", "refund_reason": "Damaged item"})
    result = ok_json("return_order", {"order_id": "O1007", "return_reason": "Damaged item"})
    assert list(result["order"])[-2:] == ["refund_reason", "return_reason"]
    assert list(stored("O1007"))[-2:] == ["refund_reason", "return_reason"]


@pytest.mark.parametrize("order_id", ["O1001", "O1005"])
def test_returns_and_refunds_are_accepted_whatever_the_status(order_id: str) -> None:
    # Processing and cancelled orders too: the reference checks nothing.
    assert ok_json("return_order", {"order_id": order_id, "return_reason": "x"})["order"][
        "return_requested"
    ]
    assert ok_json("request_refund", {"order_id": order_id, "refund_reason": "x"})["order"][
        "refund_requested"
    ]


@pytest.mark.parametrize(
    ("name", "argument"),
    [("return_order", "return_reason"), ("request_refund", "refund_reason")],
)
def test_return_and_refund_unknown_order(name: str, argument: str) -> None:
    assert error(name, {"order_id": "O9999", argument: "x"}) == "Error: order not found"


# --- atomicity -------------------------------------------------------------------------------


def test_a_tool_that_fails_half_way_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_dumps(value: Any) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(tools, "_dumps", broken_dumps)
    content = error("request_refund", {"order_id": "O1007", "refund_reason": "x"})
    assert content == "Error: request_refund failed: RuntimeError: boom"
    assert stored("O1007") == SEED_ORDERS["O1007"]
    assert error("cancel_order", {"order_id": "O1007"}).startswith("Error: cancel_order failed")
    assert Order.objects.filter(pk="O1007").exists()


def test_seed_customers_are_never_written_by_a_tool() -> None:
    for name in WRITERS - {"create_order"}:
        spec = scenario_tools(scenario="orders")[name]
        run(name, {arg: "x" for arg in spec.parameters["required"]} | {"order_id": "O1013"})
    assert orders_state_export()["customers"] == SEED_CUSTOMERS


def test_a_nul_character_in_a_written_text() -> None:
    arguments = {"order_id": "O1033", "new_shipping_address": "1 Main St\x00"}
    if connection.vendor == "postgresql":
        # PostgreSQL cannot store NUL in text: an error result, and nothing is written.
        assert error("update_shipping_address", arguments).startswith(
            "Error: update_shipping_address failed: "
        )
        assert stored("O1033") == SEED_ORDERS["O1033"]
    else:
        ok_json("update_shipping_address", arguments)
        assert stored("O1033")["shipping_address"] == "1 Main St\x00"
