"""The 16 order-management tools of ``tools.json``, implemented over the orders models.

Each function is named after its tool, takes the tool's arguments as keyword arguments and
returns the text the LLM reads: ``json.dumps`` output (Python's default separators and
``ensure_ascii``) with the reference's key order, or ``"Error: ..."``. Results, error texts
and state changes follow Benchforce's reference tools
(``src/environments/order_management/functions/*.py``, commit ``15afc3b``; Apache-2.0,
Copyright (c) 2024 Salesforce, Inc.), as recorded in
``tests/fixtures/scenarios/orders/expected.json``. Behaviour worth knowing when reading
results:

- orders are found by their exact id (case-sensitive); a missing one gives
  ``"Error: order not found"`` (the text does not repeat the id);
- a customer is confirmed by exact id, else by exact (case-sensitive) email, the first
  match in insertion order; no match is the normal result ``{"status": "not_confirmed",
  ...}``, not an error;
- lists (a customer's orders, a report) are in insertion order (``position``); a customer
  without orders, or an unknown one, gets ``[]``;
- write tools answer ``{"message": "...", "order": <the order record after the change>}``;
- ``cancel_order`` **deletes** the order and answers with the deleted record, as the
  reference does (it does not set ``order_status`` to ``cancelled``); see ``README.md``;
- ``create_order`` stores the id the caller chose and, like the reference, gives the new
  order neither ``refund_requested`` nor ``created_date``, so it is in no dated report.

No tool reads a clock. Argument validation (types, required arguments) happens before these
functions run, in :func:`parley.tools.registry.tool_run`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from django.db import connections

from parley.tools.environments import active_alias, environment_atomic
from parley.tools.orders.models import Customer, Order

ORDER_NOT_FOUND = "Error: order not found"


def _dumps(value: Any) -> str:
    # Python's defaults on purpose: the reference results are plain json.dumps output.
    return json.dumps(value)


def _db_can_hold(value: str) -> bool:
    """Whether ``value`` could be stored in a text column (PostgreSQL rejects NUL characters).

    A lookup by a value the database cannot hold cannot match, and PostgreSQL would raise on
    the query instead of returning nothing.
    """
    return "\x00" not in value or connections[active_alias()].vendor != "postgresql"


def _order_find(order_id: str, *, lock: bool = False) -> Order | None:
    """The order with exactly this id (locked for the transaction with ``lock``), or None."""
    if not _db_can_hold(order_id):
        return None
    orders = Order.objects.select_for_update() if lock else Order.objects
    return orders.filter(pk=order_id).first()


def _customer_orders(customer_id: str) -> list[dict[str, Any]]:
    if not _db_can_hold(customer_id):
        return []
    rows = Order.objects.filter(customer_id=customer_id).order_by("position")
    return [row.as_record() for row in rows]


def _order_update(
    order_id: str,
    *,
    message: str,
    fields: dict[str, Any] | None = None,
    optional: dict[str, Any] | None = None,
) -> str:
    """Set ``fields`` (always-present keys) and ``optional`` keys on an order and save it.

    Returns ``{"message": message, "order": record}`` or ``"Error: order not found"``.
    """
    order = _order_find(order_id, lock=True)
    if order is None:
        return ORDER_NOT_FOUND
    changed = list(fields or {})
    for name, value in (fields or {}).items():
        setattr(order, name, value)
    for key, value in (optional or {}).items():
        order.optional_set(key, value)
        changed += [key, "optional_key_order"]
    if changed:
        order.save(update_fields=sorted(set(changed)))
    return _dumps({"message": message, "order": order.as_record()})


# --- reads ----------------------------------------------------------------------------------


def confirm_customer_identity(
    *, customer_id: str | None = None, verified_email: str | None = None
) -> str:
    """Find the customer by exact ``customer_id``, else by exact ``verified_email``.

    An empty argument is ignored, and an unknown id falls back to the email. Returns
    ``{"status": "confirmed", "method": "customer_id" | "verified_email", "customer": record}``
    or, when nothing matches (not an error result), ``{"status": "not_confirmed", "reason":
    "No matching customer found with provided identifiers."}``.
    """
    if customer_id and _db_can_hold(customer_id):
        customer = Customer.objects.filter(pk=customer_id).first()
        if customer is not None:
            return _dumps(
                {"status": "confirmed", "method": "customer_id", "customer": customer.as_record()}
            )
    if verified_email and _db_can_hold(verified_email):
        customer = Customer.objects.filter(email=verified_email).order_by("position").first()
        if customer is not None:
            return _dumps(
                {
                    "status": "confirmed",
                    "method": "verified_email",
                    "customer": customer.as_record(),
                }
            )
    return _dumps(
        {
            "status": "not_confirmed",
            "reason": "No matching customer found with provided identifiers.",
        }
    )


def get_order(*, order_id: str) -> str:
    """The order's record. Errors: ``"Error: order not found"``."""
    order = _order_find(order_id)
    if order is None:
        return ORDER_NOT_FOUND
    return _dumps(order.as_record())


def track_order(*, order_id: str) -> str:
    """``{"order_id", "tracking_number", "order_status"}`` of the order; the tracking number
    is ``""`` until the order ships. Errors: ``"Error: order not found"``."""
    order = _order_find(order_id)
    if order is None:
        return ORDER_NOT_FOUND
    return _dumps(
        {
            "order_id": order.order_id,
            "tracking_number": order.tracking_number,
            "order_status": order.order_status,
        }
    )


def list_orders(*, customer_id: str) -> str:
    """The customer's orders (full records) in insertion order: a JSON list, ``[]`` when the
    customer has none or does not exist (not an error)."""
    return _dumps(_customer_orders(customer_id))


def get_order_history(*, customer_id: str) -> str:
    """The customer's order history; the same list as :func:`list_orders`, as in the
    reference."""
    return _dumps(_customer_orders(customer_id))


def generate_order_report(*, report_date: str) -> str:
    """The orders whose ``created_date`` text starts with ``report_date``, in insertion order.

    ``{"report_date", "total_orders", "orders": [record, ...]}``. Matching is a plain text
    prefix, as in the reference: ``"2025-04"`` is a month, ``"2025"`` a year, ``"2025-04-1"``
    the 10th to 19th of April, and ``""`` every order, including orders without a
    ``created_date`` (those made by ``create_order``), which no other prefix matches. Never an
    error: an unknown or malformed date gives ``"total_orders": 0``.
    """
    orders = [row.as_record() for row in Order.objects.order_by("position")]
    matching = [o for o in orders if o.get("created_date", "").startswith(report_date)]
    return _dumps({"report_date": report_date, "total_orders": len(matching), "orders": matching})


# --- writes ---------------------------------------------------------------------------------


@environment_atomic
def create_order(
    *,
    order_id: str,
    customer_id: str,
    shipping_address: str,
    billing_address: str,
    items: str,
    order_status: str,
    total_amount: int | float,
    coupon_code: str = "",
) -> str:
    """Create an order with the caller's ``order_id``; writes one Order row.

    The record is ``{"order_id", "customer_id", "shipping_address", "billing_address",
    "items", "order_status", "total_amount", "coupon_code", "tracking_number": "",
    "return_requested": false}``, appended after every other order, and the answer
    ``{"message": "Order created", "order": record}``. Nothing is checked against the other
    data (the customer may not exist, the status and amount are taken as given), as in the
    reference. Errors: ``"Error: order already exists"``; and, where the reference would
    store something unusable: ``"Error: total_amount must be a finite number"`` (NaN,
    Infinity) and ``"Error: order_id must be at most 64 characters"``.
    """
    if _db_can_hold(order_id) and Order.objects.filter(pk=order_id).exists():
        return "Error: order already exists"
    if isinstance(total_amount, float) and not math.isfinite(total_amount):
        return "Error: total_amount must be a finite number"
    max_length = Order._meta.get_field("order_id").max_length
    if len(order_id) > max_length:
        return f"Error: order_id must be at most {max_length} characters"
    order = Order(
        order_id=order_id,
        customer_id=customer_id,
        shipping_address=shipping_address,
        billing_address=billing_address,
        items=items,
        order_status=order_status,
        total_amount=total_amount,
        coupon_code=coupon_code,
        tracking_number="",
        return_requested=False,
    )
    order.save(force_insert=True)
    return _dumps({"message": "Order created", "order": order.as_record()})


@environment_atomic
def cancel_order(*, order_id: str) -> str:
    """**Delete** the order, as the reference does; answer with the record it had.

    ``{"message": "Order cancelled", "order": record}``. A cancelled order is therefore gone:
    ``get_order`` then says it is not found and a second ``cancel_order`` fails. Errors:
    ``"Error: order not found"``.
    """
    order = _order_find(order_id, lock=True)
    if order is None:
        return ORDER_NOT_FOUND
    record = order.as_record()
    order.delete()
    return _dumps({"message": "Order cancelled", "order": record})


@environment_atomic
def update_order(*, order_id: str, order_status: str = "") -> str:
    """Set the order's status to ``order_status`` (any text) when it is not empty.

    ``{"message": "Order updated", "order": record}``, also when nothing changed. Errors:
    ``"Error: order not found"``.
    """
    fields = {"order_status": order_status} if order_status else {}
    return _order_update(order_id, message="Order updated", fields=fields)


@environment_atomic
def confirm_delivery(*, order_id: str) -> str:
    """Set the order's status to ``delivered``, whatever it was.

    ``{"message": "Order delivery confirmed", "order": record}``. Errors:
    ``"Error: order not found"``.
    """
    return _order_update(
        order_id, message="Order delivery confirmed", fields={"order_status": "delivered"}
    )


@environment_atomic
def update_shipping_address(*, order_id: str, new_shipping_address: str) -> str:
    """Replace the order's shipping address (stored verbatim, whatever the status).

    ``{"message": "Shipping address updated", "order": record}``. Errors:
    ``"Error: order not found"``.
    """
    return _order_update(
        order_id,
        message="Shipping address updated",
        fields={"shipping_address": new_shipping_address},
    )


@environment_atomic
def update_billing_address(*, order_id: str, new_billing_address: str) -> str:
    """Replace the order's billing address (stored verbatim).

    ``{"message": "Billing address updated", "order": record}``. Errors:
    ``"Error: order not found"``.
    """
    return _order_update(
        order_id,
        message="Billing address updated",
        fields={"billing_address": new_billing_address},
    )


@environment_atomic
def apply_coupon(*, order_id: str, coupon_code: str) -> str:
    """Set the order's ``coupon_code`` (any text; ``total_amount`` is not changed).

    ``{"message": "Coupon applied", "order": record}``. Errors: ``"Error: order not found"``.
    """
    return _order_update(order_id, message="Coupon applied", fields={"coupon_code": coupon_code})


@environment_atomic
def remove_coupon(*, order_id: str) -> str:
    """Clear the order's ``coupon_code`` (to ``""``; ``total_amount`` is not changed).

    ``{"message": "Coupon removed", "order": record}``. Errors: ``"Error: order not found"``.
    """
    return _order_update(order_id, message="Coupon removed", fields={"coupon_code": ""})


@environment_atomic
def return_order(*, order_id: str, return_reason: str) -> str:
    """Mark a return as requested: ``return_requested`` true and ``return_reason`` set (a new
    key at the end of the record the first time). Any status is accepted.

    ``{"message": "Return process initiated", "order": record}``. Errors:
    ``"Error: order not found"``.
    """
    return _order_update(
        order_id,
        message="Return process initiated",
        fields={"return_requested": True},
        optional={"return_reason": return_reason},
    )


@environment_atomic
def request_refund(*, order_id: str, refund_reason: str) -> str:
    """Mark a refund as requested: ``refund_requested`` true (added at the end for orders made
    by ``create_order``, which lack it) and ``refund_reason`` set (added at the end the first
    time). Any status is accepted and no amount is computed.

    ``{"message": "Refund requested", "order": record}``. Errors:
    ``"Error: order not found"``.
    """
    return _order_update(
        order_id,
        message="Refund requested",
        optional={"refund_requested": True, "refund_reason": refund_reason},
    )


#: Tool name → implementation, for :func:`parley.tools.registry.scenario_tools_register`.
ORDERS_TOOLS: dict[str, Callable[..., str]] = {
    "apply_coupon": apply_coupon,
    "cancel_order": cancel_order,
    "confirm_customer_identity": confirm_customer_identity,
    "confirm_delivery": confirm_delivery,
    "create_order": create_order,
    "generate_order_report": generate_order_report,
    "get_order": get_order,
    "get_order_history": get_order_history,
    "list_orders": list_orders,
    "remove_coupon": remove_coupon,
    "request_refund": request_refund,
    "return_order": return_order,
    "track_order": track_order,
    "update_billing_address": update_billing_address,
    "update_order": update_order,
    "update_shipping_address": update_shipping_address,
}

#: The tools that write to the database.
ORDERS_SIDE_EFFECTING: frozenset[str] = frozenset(
    {
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
)
