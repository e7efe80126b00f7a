"""Seeding the order-management models from data/*.json and exporting the state back."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from parley.tools.orders.models import ORDERS_MODELS, Customer, Order
from parley.tools.orders.seed import (
    DATA_DIR,
    orders_keyterms,
    orders_seed_load,
    orders_seed_read,
    orders_state_digest,
    orders_state_export,
    orders_state_masked_hash,
)
from parley.tools.registry import scenario_keyterms

SEED_COUNTS = {"customers": 25, "orders": 45}


def _raw_seed() -> dict[str, Any]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DATA_DIR.glob("*.json"))
    }


def _db_counts() -> dict[str, int]:
    return {model.COLLECTION: model.objects.count() for model in ORDERS_MODELS}


def test_seed_load_counts_every_collection(orders_seeded: dict[str, int]) -> None:
    assert orders_seeded == SEED_COUNTS
    assert _db_counts() == SEED_COUNTS


def test_seed_digest_equals_expected_seed_digest(
    orders_seeded: dict[str, int], expected: dict[str, Any]
) -> None:
    assert orders_state_digest() == expected["seed_digest"]


def test_seed_masked_hash_equals_expected(
    orders_seeded: dict[str, int], expected: dict[str, Any]
) -> None:
    assert orders_state_masked_hash() == expected["seed_benchforce_masked_hash"]


def test_export_reproduces_the_seed_files_with_their_order(orders_seeded: dict[str, int]) -> None:
    state = orders_state_export()
    raw = _raw_seed()
    assert list(state) == sorted(raw) == ["customers", "orders"]
    assert isinstance(state["customers"], list)
    for collection, content in raw.items():
        # Without sort_keys, so record order and key order inside records both count.
        assert json.dumps(state[collection]) == json.dumps(content), collection


def test_masked_hash_ignores_created_date_reasons_and_customer_order(
    orders_seeded: dict[str, int],
) -> None:
    state = orders_state_export()
    base = orders_state_masked_hash(state=state)
    state["orders"]["O1001"]["created_date"] = "1999-01-01"
    state["orders"]["O1001"]["return_reason"] = "too small"
    state["customers"].reverse()
    assert orders_state_masked_hash(state=state) == base
    state["orders"]["O1001"]["refund_requested"] = True
    assert orders_state_masked_hash(state=state) != base
    # The scenario digest, by contrast, sees every change.
    assert orders_state_digest(state=state) != orders_state_digest()


@pytest.mark.django_db
def test_seed_load_into_an_empty_database_without_reset(expected: dict[str, Any]) -> None:
    assert orders_seed_load() == SEED_COUNTS
    assert orders_state_digest() == expected["seed_digest"]


def test_seed_load_is_idempotent(orders_seeded: dict[str, int], expected: dict[str, Any]) -> None:
    assert orders_seed_load() == SEED_COUNTS
    assert orders_seed_load() == SEED_COUNTS
    assert _db_counts() == SEED_COUNTS
    assert orders_state_digest() == expected["seed_digest"]


def test_seed_load_without_reset_keeps_live_rows_and_restores_missing_ones(
    orders_seeded: dict[str, int],
) -> None:
    Order.objects.filter(pk="O1002").update(shipping_address="1 New St")
    Order.objects.create(
        order_id="O1046",
        customer_id="C1001",
        shipping_address="a",
        billing_address="b",
        items="SKU1",
        order_status="processing",
        total_amount=10,
    )
    Order.objects.filter(pk="O1005").delete()  # what cancel_order does
    Customer.objects.filter(pk="C1003").delete()

    orders_seed_load()

    assert Order.objects.get(pk="O1002").shipping_address == "1 New St"
    assert Order.objects.filter(pk="O1046").exists()
    # The deleted records are back at their seed positions: the iteration order is the seed's.
    state = orders_state_export()
    raw = _raw_seed()
    assert list(state["orders"])[:45] == list(raw["orders"])
    assert list(state["orders"])[45:] == ["O1046"]
    assert state["orders"]["O1005"] == raw["orders"]["O1005"]
    assert state["customers"] == raw["customers"]


def test_seed_load_puts_a_restored_record_at_the_end_when_its_position_is_taken(
    orders_seeded: dict[str, int],
) -> None:
    Customer.objects.filter(pk="C1001").delete()
    Customer.objects.create(customer_id="C2000", name="New", email="new@x.com", position=0)

    orders_seed_load()

    ids = [c["customer_id"] for c in orders_state_export()["customers"]]
    assert ids[0] == "C2000" and ids[-1] == "C1001" and len(ids) == 26


def test_seed_load_with_reset_restores_the_pristine_seed(
    orders_seeded: dict[str, int], expected: dict[str, Any]
) -> None:
    Customer.objects.filter(pk="C1001").update(phone="555-0000")
    Order.objects.filter(pk="O1001").delete()
    Order.objects.create(
        order_id="O1046",
        customer_id="C1001",
        shipping_address="a",
        billing_address="b",
        items="SKU1",
        order_status="processing",
        total_amount=10.5,
    )

    assert orders_seed_load(reset=True) == SEED_COUNTS

    assert _db_counts() == SEED_COUNTS
    assert orders_state_digest() == expected["seed_digest"]


def test_seed_read_keeps_file_order_and_container_types() -> None:
    seed = orders_seed_read()
    assert isinstance(seed["customers"], list) and isinstance(seed["orders"], dict)
    assert [c["customer_id"] for c in seed["customers"][:3]] == ["C1001", "C1002", "C1003"]
    assert list(seed["orders"])[:3] == ["O1001", "O1002", "O1003"]
    assert list(seed["orders"]["O1001"])[-3:] == [
        "return_requested",
        "refund_requested",
        "created_date",
    ]


# --- a strict loader -------------------------------------------------------------------------


def _copy_data(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def _edit(path: Path, edit: Callable[[Any], Any]) -> None:
    content = json.loads(path.read_text(encoding="utf-8"))
    edit(content)
    path.write_text(json.dumps(content), encoding="utf-8")


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        (
            "customers.json",
            lambda c: c[2].update(loyalty="gold"),
            r"customers record 'C1003'.*unknown keys \['loyalty'\]",
        ),
        (
            "customers.json",
            lambda c: c[0].pop("phone"),
            r"customers record 'C1001'.*missing keys \['phone'\]",
        ),
        ("customers.json", lambda c: c.append(dict(c[0])), "customers: duplicate id 'C1001'"),
        (
            "orders.json",
            lambda c: c.update(O9999=c.pop("O1001")),
            "record 'O9999' has order_id='O1001'",
        ),
        (
            "orders.json",
            lambda c: c["O1002"].update(total_amount="129.50"),
            r"orders record 'O1002': total_amount: must be a number",
        ),
        (
            "orders.json",
            lambda c: c["O1002"].update(return_requested="false"),
            r"orders record 'O1002': return_requested must be a JSON boolean",
        ),
        (
            "orders.json",
            lambda c: c["O1002"].update(refund_reason=None),
            r"orders record 'O1002': refund_reason must be a JSON string",
        ),
        (
            "orders.json",
            lambda c: c["O1003"].update(created_date="04/03/2025"),
            "Invalid isoformat string",
        ),
    ],
    ids=[
        "unknown-key",
        "missing-key",
        "duplicate-customer",
        "key-differs-from-id",
        "amount-as-text",
        "boolean-as-text",
        "null-optional",
        "bad-date",
    ],
)
@pytest.mark.django_db
def test_seed_load_rejects_bad_records_and_writes_nothing(
    tmp_path: Path, file: str, edit: Callable[[Any], Any], message: str
) -> None:
    data_dir = _copy_data(tmp_path)
    _edit(data_dir / file, edit)

    with pytest.raises(ValueError, match=message):
        orders_seed_load(data_dir=data_dir)

    assert _db_counts() == dict.fromkeys(SEED_COUNTS, 0)


@pytest.mark.django_db
def test_seed_load_rejects_the_wrong_container(tmp_path: Path) -> None:
    data_dir = _copy_data(tmp_path)
    (data_dir / "customers.json").write_text(json.dumps({"C1001": {}}), encoding="utf-8")
    with pytest.raises(ValueError, match="expected a JSON list"):
        orders_seed_load(data_dir=data_dir)

    data_dir = _copy_data(tmp_path / "second")
    (data_dir / "orders.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match="expected a JSON object"):
        orders_seed_load(data_dir=data_dir)


@pytest.mark.django_db
def test_seed_load_needs_both_files(tmp_path: Path) -> None:
    data_dir = _copy_data(tmp_path)
    (data_dir / "orders.json").unlink()

    with pytest.raises(FileNotFoundError):
        orders_seed_load(data_dir=data_dir)


@pytest.mark.django_db
def test_seed_optional_keys_keep_their_order(tmp_path: Path) -> None:
    data_dir = _copy_data(tmp_path)

    def edit(orders: dict[str, Any]) -> None:
        record = orders["O1007"]
        created = record.pop("created_date")
        record["refund_reason"] = "late"
        record["created_date"] = created
        del orders["O1008"]["refund_requested"]

    _edit(data_dir / "orders.json", edit)
    orders_seed_load(data_dir=data_dir)

    state = orders_state_export()
    assert list(state["orders"]["O1007"])[-3:] == [
        "refund_requested",
        "refund_reason",
        "created_date",
    ]
    assert "refund_requested" not in state["orders"]["O1008"]
    assert json.dumps(state["orders"]) == (data_dir / "orders.json").read_text(encoding="utf-8")


def test_saving_a_new_row_fills_position(orders_seeded: dict[str, int]) -> None:
    customer = Customer.objects.create(customer_id="C1026", name="Zoë Ångström", email="z@x.com")
    assert customer.position == 25
    order = Order.objects.create(
        order_id="O1046",
        customer_id="C1026",
        shipping_address="a",
        billing_address="b",
        items="SKU1",
        order_status="processing",
        total_amount=1,
    )
    assert order.position == 45
    assert order.customer == customer
    assert Order.objects.get(pk="O1001").customer.name == "Alice Johnson"
    order.customer_id = "C9999"
    assert order.customer is None


def test_optional_keys_written_through_the_admin_or_shell_follow_the_known_order(
    orders_seeded: dict[str, int],
) -> None:
    # A column set directly (not through optional_set) still shows up, after the listed keys.
    Order.objects.filter(pk="O1001").update(refund_reason="x", return_reason="y")
    assert list(Order.objects.get(pk="O1001").as_record())[-4:] == [
        "refund_requested",
        "created_date",
        "return_reason",
        "refund_reason",
    ]
    with pytest.raises(ValueError, match="not an optional order key"):
        Order.objects.get(pk="O1001").optional_set("coupon_code", "X")


# --- key terms ---------------------------------------------------------------------------------


def test_keyterms_are_customer_names_then_coupon_codes(orders_seeded: dict[str, int]) -> None:
    terms = orders_keyterms()
    assert terms[:3] == ["Alice Johnson", "Bob Smith", "Charlie Williams"]
    assert terms[24] == "Yvonne King"
    assert terms[25:] == [
        "GAP10",
        "SPRING20",
        "SAVE15",
        "GAP5",
        "WELCOME10",
        "SUMMER15",
        "GAP20",
        "NYSALE",
        "CHICAGO",
        "DENVER10",
        "LADEAL",
        "SFDEAL",
        "NYSAVE",
        "TEXAS10",
        "SF2025",
    ]
    # Through the registry, as the voice pipeline asks for them.
    assert scenario_keyterms(scenario="orders", extra=["Gap"])[:2] == ["Gap", "Alice Johnson"]
