"""Seeding the hospital models from data/*.json and exporting the state back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from parley.tools.hospital.models import (
    HOSPITAL_MODELS,
    Appointment,
    Department,
    Doctor,
    Medication,
    Patient,
)
from parley.tools.hospital.seed import (
    DATA_DIR,
    hospital_seed_load,
    hospital_seed_read,
    hospital_state_digest,
    hospital_state_export,
)

SEED_COUNTS = {
    "appointments": 5,
    "departments": 10,
    "doctors": 10,
    "lab_results": 24,
    "medications": 20,
    "patients": 15,
    "referrals": 10,
}


def _raw_seed() -> dict[str, Any]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DATA_DIR.glob("*.json"))
    }


def _db_counts() -> dict[str, int]:
    return {model.COLLECTION: model.objects.count() for model in HOSPITAL_MODELS}


def test_seed_load_counts_every_collection(hospital_seeded: dict[str, int]) -> None:
    assert hospital_seeded == SEED_COUNTS
    assert _db_counts() == SEED_COUNTS


def test_seed_digest_equals_expected_seed_digest(
    hospital_seeded: dict[str, int], expected: dict[str, Any]
) -> None:
    assert hospital_state_digest() == expected["seed_digest"]


def test_export_reproduces_the_seed_files_with_their_key_order(
    hospital_seeded: dict[str, int],
) -> None:
    state = hospital_state_export()
    raw = _raw_seed()
    assert list(state) == sorted(raw)
    for collection, records in raw.items():
        # Without sort_keys, so record order and key order inside records both count.
        assert json.dumps(state[collection]) == json.dumps(records), collection


@pytest.mark.django_db
def test_seed_load_into_an_empty_database_without_reset(expected: dict[str, Any]) -> None:
    assert hospital_seed_load() == SEED_COUNTS
    assert hospital_state_digest() == expected["seed_digest"]


def test_seed_load_is_idempotent(hospital_seeded: dict[str, int], expected: dict[str, Any]) -> None:
    assert hospital_seed_load() == SEED_COUNTS
    assert hospital_seed_load() == SEED_COUNTS
    assert _db_counts() == SEED_COUNTS
    assert hospital_state_digest() == expected["seed_digest"]


def test_seed_load_without_reset_keeps_live_rows_and_restores_missing_ones(
    hospital_seeded: dict[str, int],
) -> None:
    Patient.objects.filter(pk="P2001").update(emergency_phone="555-0000")
    Appointment.objects.create(
        appointment_id="A3006",
        patient_id="P2001",
        doctor_id="D1002",
        appointment_time="1:00 PM",
        appointment_date="2024-03-01",
        department_id="Cardiology",
        status="scheduled",
    )
    Medication.objects.filter(pk="M4003").delete()

    hospital_seed_load()

    assert Patient.objects.get(pk="P2001").emergency_phone == "555-0000"
    assert Appointment.objects.filter(pk="A3006").exists()
    # The deleted record is back at its seed position, so the iteration order is the seed's.
    restored = hospital_state_export()["medications"]
    assert list(restored) == list(_raw_seed()["medications"])


def test_seed_load_with_reset_restores_the_pristine_seed(
    hospital_seeded: dict[str, int], expected: dict[str, Any]
) -> None:
    Patient.objects.filter(pk="P2001").update(emergency_phone="555-0000")
    Appointment.objects.create(
        appointment_id="A3006",
        patient_id="P2001",
        doctor_id="D1002",
        appointment_time="1:00 PM",
        appointment_date="2024-03-01",
        department_id="Cardiology",
    )

    assert hospital_seed_load(reset=True) == SEED_COUNTS

    assert _db_counts() == SEED_COUNTS
    assert hospital_state_digest() == expected["seed_digest"]


def test_seed_read_keeps_file_key_order() -> None:
    seed = hospital_seed_read()
    assert list(seed["lab_results"]["L5001"]) == [
        "patient_id",
        "test_name",
        "test_date",
        "status",
        "doctor_id",
        "result_id",
    ]
    assert list(seed["appointments"]) == ["A3001", "A3002", "A3003", "A3004", "A3005"]


def _copy_data(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def _edit(path: Path, edit: Any) -> None:
    content = json.loads(path.read_text(encoding="utf-8"))
    edit(content)
    path.write_text(json.dumps(content), encoding="utf-8")


@pytest.mark.django_db
def test_seed_load_rejects_unknown_fields_and_writes_nothing(tmp_path: Path) -> None:
    data_dir = _copy_data(tmp_path)
    _edit(data_dir / "patients.json", lambda c: c["P2003"].update(blood_type="O+"))

    with pytest.raises(ValueError, match=r"patients record 'P2003'.*unknown keys \['blood_type'\]"):
        hospital_seed_load(data_dir=data_dir)

    assert _db_counts() == dict.fromkeys(SEED_COUNTS, 0)


@pytest.mark.django_db
def test_seed_load_rejects_a_key_that_differs_from_the_id(tmp_path: Path) -> None:
    data_dir = _copy_data(tmp_path)
    _edit(data_dir / "doctors.json", lambda c: c.update(D9999=c.pop("D1001")))

    with pytest.raises(ValueError, match="record 'D9999' has doctor_id='D1001'"):
        hospital_seed_load(data_dir=data_dir)

    assert Doctor.objects.count() == 0


@pytest.mark.django_db
def test_seed_load_needs_every_collection_file(tmp_path: Path) -> None:
    data_dir = _copy_data(tmp_path)
    (data_dir / "referrals.json").unlink()

    with pytest.raises(FileNotFoundError):
        hospital_seed_load(data_dir=data_dir)


def test_saving_a_new_row_fills_position_and_name_fold(hospital_seeded: dict[str, int]) -> None:
    department = Department.objects.create(department_id="DEPT011", name="Oncology")
    assert department.position == 10

    patient = Patient.objects.create(patient_id="P2016", name="Zoë ÅNGSTRÖM")
    assert patient.position == 15
    assert patient.name_folded == "zoë ångström"
    assert list(Patient.objects.order_by("position").values_list("pk", flat=True))[-1] == "P2016"
