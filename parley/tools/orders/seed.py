"""Load the order-management seed data into the database and export the state back as JSON.

The seed is Benchforce's ``order_management/data/*.json`` (byte copies, Apache-2.0, Copyright
(c) 2024 Salesforce, Inc.): ``customers.json`` is a JSON **list** of customers,
``orders.json`` a JSON object of orders keyed by order id, both in a meaningful order (see
:mod:`parley.tools.orders.models`).

:func:`orders_state_export` returns the state in exactly that format, so that the scenario
digest ``sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()`` of a freshly seeded
database equals ``expected.json``'s ``seed_digest`` (source: ``shared/scenarios/README.md``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from parley.tools.environments import environment_atomic
from parley.tools.orders.models import ORDERS_MODELS, Customer, Order, OrdersRecord

DATA_DIR = Path(__file__).resolve().parent / "data"

#: The order fields Benchforce's accuracy metric compares (its ``filter_schema``): every
#: order key except ``created_date``, ``return_reason`` and ``refund_reason``.
MASKED_ORDER_FIELDS = (
    "order_id",
    "customer_id",
    "shipping_address",
    "billing_address",
    "items",
    "order_status",
    "total_amount",
    "coupon_code",
    "tracking_number",
    "return_requested",
    "refund_requested",
)
MASKED_CUSTOMER_FIELDS = ("customer_id", "name", "email", "phone")


def orders_seed_read(*, data_dir: Path | None = None) -> dict[str, Any]:
    """Read ``<data_dir>/customers.json`` and ``<data_dir>/orders.json``, keeping their order.

    Returns ``{"customers": [record, ...], "orders": {order_id: record}}``. Raises
    ``FileNotFoundError`` if a file is missing and ``ValueError`` if ``customers.json`` is
    not a JSON list of objects or ``orders.json`` not a JSON object of objects.
    """
    directory = DATA_DIR if data_dir is None else Path(data_dir)
    customers = json.loads((directory / "customers.json").read_text(encoding="utf-8"))
    if not isinstance(customers, list) or not all(isinstance(r, dict) for r in customers):
        raise ValueError(f"{directory / 'customers.json'}: expected a JSON list of records")
    orders = json.loads((directory / "orders.json").read_text(encoding="utf-8"))
    if not isinstance(orders, dict) or not all(isinstance(r, dict) for r in orders.values()):
        raise ValueError(f"{directory / 'orders.json'}: expected a JSON object of records by id")
    return {"customers": customers, "orders": orders}


def _records_by_id(collection: str, content: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(id, record)`` pairs in file order, checking that ids are unique and, for the orders
    object, that each key equals its record's ``order_id``."""
    if collection == Customer.COLLECTION:
        pairs = [(record.get(Customer.ID_KEY), record) for record in content]
    else:
        pairs = list(content.items())
        for key, record in pairs:
            if record.get(Order.ID_KEY) != key:
                raise ValueError(
                    f"orders: record {key!r} has order_id={record.get(Order.ID_KEY)!r}; "
                    "the key must equal the id"
                )
    seen: set[Any] = set()
    for record_id, _ in pairs:
        if not isinstance(record_id, str):
            raise ValueError(f"{collection}: record id {record_id!r} is not a string")
        if record_id in seen:
            raise ValueError(f"{collection}: duplicate id {record_id!r}")
        seen.add(record_id)
    return pairs


@environment_atomic
def orders_seed_load(*, data_dir: Path | None = None, reset: bool = False) -> dict[str, int]:
    """Load the seed into the database; returns the number of seed records per collection.

    Idempotent: without ``reset`` only the seed records that are missing (by id) are inserted,
    at their seed position when it is free (else after the last record); rows already present
    are left untouched, so live changes and orders created by tools survive, and an order that
    ``cancel_order`` deleted comes back. With ``reset=True`` every customer and order row is
    deleted first, which restores the pristine seed.

    Raises ``ValueError`` if a record has a missing or unknown key, a value of the wrong JSON
    type, a duplicate id, or (orders) a key that differs from its ``order_id``, and
    ``FileNotFoundError`` if a file is missing; the transaction is rolled back in all cases.
    """
    seed = orders_seed_read(data_dir=data_dir)
    if reset:
        for model in ORDERS_MODELS:
            model.objects.all().delete()
    for model in ORDERS_MODELS:
        pairs = _records_by_id(model.COLLECTION, seed[model.COLLECTION])
        present = set(model.objects.values_list("pk", flat=True))
        taken = set(model.objects.values_list("position", flat=True))
        rows: list[OrdersRecord] = []
        for index, (record_id, record) in enumerate(pairs):
            if record_id in present:
                continue
            position = index if index not in taken else max(taken) + 1
            taken.add(position)
            rows.append(model.from_record(record, position=position))
        model.objects.bulk_create(rows)
    return {collection: len(content) for collection, content in seed.items()}


def orders_state_export() -> dict[str, Any]:
    """The whole order-management state in the seed-file format.

    ``{"customers": [record, ...], "orders": {order_id: record}}``: the same collections,
    keys, field names and key order as ``data/*.json``; records in ``position`` order (the
    tools' iteration order).
    """
    return {
        "customers": [row.as_record() for row in Customer.objects.order_by("position")],
        "orders": {row.pk: row.as_record() for row in Order.objects.order_by("position")},
    }


def orders_state_digest(*, state: dict[str, Any] | None = None) -> str:
    """The scenario digest of ``state`` (default: the current database state).

    ``sha256(json.dumps(state, sort_keys=True).encode("utf-8")).hexdigest()`` with Python's
    default separators and ``ensure_ascii=True`` (source: ``shared/scenarios/README.md``).
    """
    if state is None:
        state = orders_state_export()
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode("utf-8")).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def orders_state_masked_hash(*, state: dict[str, Any] | None = None) -> str:
    """The state hash Benchforce's accuracy metric would compare (``benchforce_masked_hash``).

    Keeps only :data:`MASKED_ORDER_FIELDS` of each order (so ``created_date`` and the return /
    refund reasons do not count) and :data:`MASKED_CUSTOMER_FIELDS` of each customer, ignores
    the order of the customers list, and hashes the compact, key-sorted JSON text:
    ``sha256(json.dumps(masked, sort_keys=True, separators=(",", ":")))``.
    """
    if state is None:
        state = orders_state_export()
    customers = [
        {k: v for k, v in customer.items() if k in MASKED_CUSTOMER_FIELDS}
        for customer in state["customers"]
    ]
    masked = {
        "customers": sorted(customers, key=_canonical),
        "orders": {
            key: {k: v for k, v in order.items() if k in MASKED_ORDER_FIELDS}
            for key, order in state["orders"].items()
        },
    }
    return hashlib.sha256(_canonical(masked).encode("utf-8")).hexdigest()


def orders_keyterms() -> list[str]:
    """Names a caller may say that a general STT model would misspell: the customers' names,
    then the coupon codes in use (``GAP10``, ``SPRING20``...), each once, in insertion order.

    The seed has no product names (order items are bare SKUs such as ``SKU123``), so there
    are none to list.
    """
    names = list(Customer.objects.order_by("position").values_list("name", flat=True))
    coupons = Order.objects.exclude(coupon_code="").order_by("position")
    codes = list(dict.fromkeys(coupons.values_list("coupon_code", flat=True)))
    return [*names, *codes]
