"""Load the hospital seed data into the database and export the state back as JSON.

The seed is Benchforce's ``hospital/data/*.json`` (byte copies, Apache-2.0, Copyright (c) 2024
Salesforce, Inc.): one JSON object per collection, keyed by record id, in a meaningful key
order (see :mod:`parley.tools.hospital.models`).

:func:`hospital_state_export` returns the state in exactly that format, so that the scenario
digest ``sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()`` of a freshly seeded
database equals ``expected.json``'s ``seed_digest`` (source: ``shared/scenarios/README.md``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from parley.tools.environments import environment_atomic
from parley.tools.hospital.models import (
    HOSPITAL_MODELS,
    Appointment,
    Department,
    Doctor,
    HospitalRecord,
    LabResult,
    Medication,
    Patient,
    Referral,
)

DATA_DIR = Path(__file__).resolve().parent / "data"

# Parents before children, so foreign keys resolve when rows are inserted (and the reverse
# order for deleting, because every foreign key is PROTECT).
_LOAD_ORDER: tuple[type[HospitalRecord], ...] = (
    Department,
    Doctor,
    Patient,
    Appointment,
    LabResult,
    Medication,
    Referral,
)


def hospital_seed_read(*, data_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Read ``<data_dir>/<collection>.json`` for every collection, keeping key order.

    Returns ``{collection: {record_id: record}}`` with the collections sorted by name.
    Raises ``FileNotFoundError`` if a collection file is missing and ``ValueError`` if a file
    is not a JSON object of objects.
    """
    directory = DATA_DIR if data_dir is None else Path(data_dir)
    seed: dict[str, dict[str, Any]] = {}
    for model in HOSPITAL_MODELS:
        path = directory / f"{model.COLLECTION}.json"
        content = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(content, dict) or not all(isinstance(r, dict) for r in content.values()):
            raise ValueError(f"{path}: expected a JSON object of records keyed by id")
        seed[model.COLLECTION] = content
    return seed


@environment_atomic
def hospital_seed_load(*, data_dir: Path | None = None, reset: bool = False) -> dict[str, int]:
    """Load the seed into the database; returns the number of seed records per collection.

    Idempotent: without ``reset`` only the seed records that are missing (by id) are inserted,
    at their seed position when it is free (else after the last record); rows already present
    are left untouched, so live changes and records created by tools survive. With
    ``reset=True`` every hospital row is deleted first, which restores the pristine seed.

    Raises ``ValueError`` if a record's key differs from its id field or its keys are not the
    model's ``JSON_FIELDS``, and ``FileNotFoundError`` if a collection file is missing; the
    transaction is rolled back in both cases.
    """
    seed = hospital_seed_read(data_dir=data_dir)
    if reset:
        for model in reversed(_LOAD_ORDER):
            model.objects.all().delete()
    for model in _LOAD_ORDER:
        records = seed[model.COLLECTION]
        present = set(model.objects.values_list("pk", flat=True))
        taken = set(model.objects.values_list("position", flat=True))
        rows = []
        for index, (key, record) in enumerate(records.items()):
            if record.get(model.ID_KEY) != key:
                raise ValueError(
                    f"{model.COLLECTION}: record {key!r} has {model.ID_KEY}="
                    f"{record.get(model.ID_KEY)!r}; the key must equal the id"
                )
            if key in present:
                continue
            position = index if index not in taken else max(taken) + 1
            taken.add(position)
            rows.append(model.from_record(record, position=position))
        model.objects.bulk_create(rows)
    return {collection: len(records) for collection, records in seed.items()}


def hospital_state_export() -> dict[str, dict[str, dict[str, Any]]]:
    """The whole hospital state in the seed-file format.

    ``{collection: {record_id: record}}``: the same collections, keys, field names and key
    order as ``data/*.json``; records in ``position`` order (the tools' iteration order).
    """
    return {
        model.COLLECTION: {row.pk: row.as_record() for row in model.objects.order_by("position")}
        for model in HOSPITAL_MODELS
    }


def hospital_state_digest(*, state: dict[str, Any] | None = None) -> str:
    """The scenario digest of ``state`` (default: the current database state).

    ``sha256(json.dumps(state, sort_keys=True).encode("utf-8")).hexdigest()`` with Python's
    default separators and ``ensure_ascii=True`` (source: ``shared/scenarios/README.md``).
    """
    if state is None:
        state = hospital_state_export()
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode("utf-8")).hexdigest()


def hospital_keyterms() -> list[str]:
    """Names a caller may say that a general STT model would misspell: doctors (without the
    "Dr." title), patients, departments and medications, in that order."""
    doctors = [
        name.removeprefix("Dr. ").removeprefix("Dr ")
        for name in Doctor.objects.order_by("pk").values_list("name", flat=True)
    ]
    patients = list(Patient.objects.order_by("pk").values_list("name", flat=True))
    departments = list(Department.objects.order_by("pk").values_list("name", flat=True))
    medications = list(Medication.objects.order_by("pk").values_list("medication_name", flat=True))
    return [*doctors, *patients, *departments, *medications]
