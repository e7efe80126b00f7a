"""Seeding the HR models from data/*.json and exporting the state back."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from parley.tools.hr.models import HR_MODELS, DowntimeLog, Organization, Subscription, User
from parley.tools.hr.seed import (
    DATA_DIR,
    SEED_FILE_NAMES,
    hr_seed_load,
    hr_seed_read,
    hr_state_digest,
    hr_state_export,
)

from .conftest import without_users

SEED_COUNTS = {"downtime_logs": 1000, "organizations": 500, "subscriptions": 500, "users": 196}
BENCHFORCE_FILES = {
    "downtime_logs": "data_downtime_logs.json",
    "organizations": "data_organizations.json",
    "subscriptions": "data_subscriptions.json",
}


@pytest.fixture
def hr_seeded(db: None) -> dict[str, int]:
    """Loads the seed in the test itself (not once per module like the shared fixture): the
    tests here also need databases without HR data."""
    return hr_seed_load(reset=True)


def _raw_seed() -> dict[str, Any]:
    return {
        collection: json.loads((DATA_DIR / name).read_text(encoding="utf-8"))
        for collection, name in sorted(SEED_FILE_NAMES.items())
    }


def _db_counts() -> dict[str, int]:
    return {model.COLLECTION: model.objects.count() for model in HR_MODELS}


def test_seed_file_names() -> None:
    assert SEED_FILE_NAMES == {**BENCHFORCE_FILES, "users": "users.json"}
    assert sorted(p.name for p in DATA_DIR.glob("*.json")) == sorted(SEED_FILE_NAMES.values())


def test_seed_load_counts_every_collection(hr_seeded: dict[str, int]) -> None:
    assert hr_seeded == SEED_COUNTS
    assert _db_counts() == SEED_COUNTS


def test_seed_digest_without_users_equals_expected_seed_digest(
    hr_seeded: dict[str, int], expected: dict[str, Any]
) -> None:
    state = hr_state_export()
    assert state["users"]  # the generated users are loaded...
    assert hr_state_digest(state=without_users(state)) == expected["seed_digest"]
    # ...and they are the only thing the reference did not have.
    assert hr_state_digest(state=state) != expected["seed_digest"]
    assert hr_state_digest() == hr_state_digest(state=state)


def test_export_reproduces_the_seed_files_with_their_key_order(hr_seeded: dict[str, int]) -> None:
    state = hr_state_export()
    raw = _raw_seed()
    assert (
        list(state) == sorted(raw) == ["downtime_logs", "organizations", "subscriptions", "users"]
    )
    for collection, content in raw.items():
        # Without sort_keys, so record order, key order and int/float types all count.
        assert json.dumps(state[collection]) == json.dumps(content), collection


@pytest.mark.parametrize("collection", sorted(SEED_FILE_NAMES))
def test_export_rewrites_each_file_byte_for_byte(
    hr_seeded: dict[str, int], collection: str
) -> None:
    # The Benchforce files (and ours) are json.dumps(content, indent=2) output.
    text = (DATA_DIR / SEED_FILE_NAMES[collection]).read_text(encoding="utf-8")
    assert json.dumps(hr_state_export()[collection], indent=2) == text


def test_price_numbers_keep_their_json_types(hr_seeded: dict[str, int]) -> None:
    subscriptions = hr_state_export()["subscriptions"]
    no_discount = subscriptions["SUB-000003"]
    assert no_discount["volume_discount_percentage"] == 0
    assert type(no_discount["volume_discount_percentage"]) is int
    assert type(no_discount["total_price"]) is int and no_discount["total_price"] == 210
    discounted = subscriptions["SUB-000009"]
    assert type(discounted["volume_discount_percentage"]) is float
    assert json.dumps(discounted["total_price"]) == "48270.0"
    assert subscriptions["SUB-000009"]["usage_limits"]["storage_gb"] == "unlimited"


@pytest.mark.django_db
def test_seed_load_into_an_empty_database_without_reset(expected: dict[str, Any]) -> None:
    assert hr_seed_load() == SEED_COUNTS
    assert hr_state_digest(state=without_users(hr_state_export())) == expected["seed_digest"]


def test_seed_load_is_idempotent(hr_seeded: dict[str, int]) -> None:
    digest = hr_state_digest()
    assert hr_seed_load() == SEED_COUNTS
    assert hr_seed_load() == SEED_COUNTS
    assert _db_counts() == SEED_COUNTS
    assert hr_state_digest() == digest


def test_seed_load_without_reset_keeps_live_rows_and_restores_missing_ones(
    hr_seeded: dict[str, int],
) -> None:
    Subscription.objects.filter(pk="SUB-000001").update(seats=400)
    User.objects.filter(pk="USR-000002").update(status="suspended")
    middle_id = DowntimeLog.objects.get(position=500).pk
    DowntimeLog.objects.filter(pk=middle_id).delete()

    hr_seed_load()

    assert Subscription.objects.get(pk="SUB-000001").seats == 400
    assert User.objects.get(pk="USR-000002").status == "suspended"
    # The deleted log is back at its seed position, so the list is the seed's list again.
    assert hr_state_export()["downtime_logs"] == _raw_seed()["downtime_logs"]
    assert DowntimeLog.objects.get(pk=middle_id).position == 500


def test_seed_load_with_reset_restores_the_pristine_seed(hr_seeded: dict[str, int]) -> None:
    digest = hr_state_digest()
    Subscription.objects.filter(pk="SUB-000001").update(seats=400)
    User.objects.filter(pk="USR-000001").delete()

    assert hr_seed_load(reset=True) == SEED_COUNTS

    assert _db_counts() == SEED_COUNTS
    assert hr_state_digest() == digest


def test_seed_read_keeps_file_order() -> None:
    seed = hr_seed_read()
    assert list(seed) == ["downtime_logs", "organizations", "subscriptions", "users"]
    assert isinstance(seed["downtime_logs"], list)
    assert [log["id"] for log in seed["downtime_logs"][:3]] == [
        "DT-000578",
        "DT-000370",
        "DT-000835",
    ]
    assert list(seed["subscriptions"]["SUB-000002"]["modules"])[-3:] == [
        "fleet_management",
        "workforce_planning",
        "inventory_management",
    ]


def _copy_data(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def _edit(path: Path, edit: Callable[[Any], Any]) -> None:
    content = json.loads(path.read_text(encoding="utf-8"))
    edit(content)
    path.write_text(json.dumps(content), encoding="utf-8")


def _subscription(content: dict[str, Any]) -> dict[str, Any]:
    return content["SUB-000003"]


BAD_SEEDS = [
    pytest.param(
        "data_organizations.json",
        lambda c: c["ORG-000003"].update(tax_id="X"),
        r"organizations record 'ORG-000003': missing keys \[\], unknown keys \['tax_id'\]",
        id="unknown-key",
    ),
    pytest.param(
        "data_organizations.json",
        lambda c: c.update({"ORG-999999": c.pop("ORG-000001")}),
        "record 'ORG-999999' has id='ORG-000001'",
        id="key-differs-from-id",
    ),
    pytest.param(
        "data_downtime_logs.json",
        lambda c: c.append(dict(c[0])),
        "downtime_logs: duplicate id 'DT-000578'",
        id="duplicate-list-id",
    ),
    pytest.param(
        "data_subscriptions.json",
        lambda c: _subscription(c).update(seats="21"),
        r"'SUB-000003'\.seats: expected a JSON integer, not '21'",
        id="wrong-type",
    ),
    pytest.param(
        "data_subscriptions.json",
        lambda c: _subscription(c).update(auto_renewal=1),
        r"auto_renewal: expected a JSON boolean, not 1",
        id="int-for-bool",
    ),
    pytest.param(
        "data_subscriptions.json",
        lambda c: _subscription(c).update(volume_discount_percentage=0.0),
        "a zero volume_discount_percentage and its total_price must be JSON integers",
        id="number-convention",
    ),
    pytest.param(
        "data_subscriptions.json",
        lambda c: _subscription(c)["modules"].update(payroll=False),
        "every configured module must map to true",
        id="module-false",
    ),
    pytest.param(
        "data_subscriptions.json",
        lambda c: _subscription(c).update(start_date="2016-10-16"),
        "start_date: expected a timestamp like 2024-05-15T15:00:00Z",
        id="timestamp-format",
    ),
    pytest.param(
        "data_organizations.json",
        lambda c: c["ORG-000001"]["offices"][0].update(floor=3),
        r"offices: expected the keys \['region', 'city', 'is_headquarters'\]",
        id="office-keys",
    ),
    pytest.param(
        "users.json",
        lambda c: c["USR-000001"].update(org_id="ORG-999999"),
        "users record 'USR-000001': unknown org_id 'ORG-999999'",
        id="unknown-org",
    ),
    pytest.param(
        "users.json",
        lambda c: c["USR-000001"].update(manager_id="USR-999999"),
        "users record 'USR-000001': unknown manager_id 'USR-999999'",
        id="unknown-manager",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("file_name", "edit", "message"), BAD_SEEDS)
def test_seed_load_rejects_bad_records_and_writes_nothing(
    tmp_path: Path, file_name: str, edit: Callable[[Any], Any], message: str
) -> None:
    data_dir = _copy_data(tmp_path)
    _edit(data_dir / file_name, edit)

    with pytest.raises(ValueError, match=message):
        hr_seed_load(data_dir=data_dir)

    assert _db_counts() == dict.fromkeys(SEED_COUNTS, 0)


@pytest.mark.django_db
def test_seed_load_needs_every_collection_file(tmp_path: Path) -> None:
    data_dir = _copy_data(tmp_path)
    (data_dir / "users.json").unlink()

    with pytest.raises(FileNotFoundError):
        hr_seed_load(data_dir=data_dir)


@pytest.mark.django_db
def test_seed_read_rejects_an_object_for_the_list_collection(tmp_path: Path) -> None:
    data_dir = _copy_data(tmp_path)
    (data_dir / "data_downtime_logs.json").write_text('{"DT-1": {}}', encoding="utf-8")

    with pytest.raises(ValueError, match="expected a JSON list of records"):
        hr_seed_read(data_dir=data_dir)


def test_saving_a_new_row_fills_position_and_folded_fields(hr_seeded: dict[str, int]) -> None:
    organization = Organization.objects.get(pk="ORG-000001")
    organization.pk = "ORG-000501"
    organization.position = None
    organization.name = "Zoë ÅNGSTRÖM & Co"
    organization.save(force_insert=True)
    assert organization.position == 500
    assert organization.name_folded == "zoë ångström & co"

    user = User.objects.get(pk="USR-000001")
    user.pk, user.position, user.email = "USR-999999", None, "Someone@Example.COM"
    user.save(force_insert=True)
    assert user.position == 196
    assert user.email_folded == "someone@example.com"
    assert list(User.objects.order_by("position").values_list("pk", flat=True))[-1] == "USR-999999"
