"""Load the HR seed data into the database and export the state back as JSON.

The seed is Benchforce's ``hr_software/data/data_*.json`` (byte copies, Apache-2.0, Copyright
(c) 2024 Salesforce, Inc.) plus our generated ``data/users.json`` (the snapshot lacks the users;
see ``README.md``): ``organizations``, ``subscriptions`` and ``users`` are JSON objects keyed
by record id, ``downtime_logs`` a JSON **list**, all in a meaningful order (see
:mod:`parley.tools.hr.models`).

:func:`hr_state_export` returns the state in exactly that format. Its digest
``sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()`` equals ``expected.json``'s
``seed_digest`` once ``users`` is emptied, because Benchforce's replay ran with ``users = {}``
(source: ``shared/scenarios/README.md``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from parley.tools.environments import environment_atomic
from parley.tools.hr.models import (
    HR_MODELS,
    DowntimeLog,
    HRRecord,
    Organization,
    Subscription,
    User,
)

DATA_DIR = Path(__file__).resolve().parent / "data"

#: Collection → its file in ``data/`` (used by :mod:`parley.tools.replay` to write states).
SEED_FILE_NAMES: dict[str, str] = {model.COLLECTION: model.DATA_FILE for model in HR_MODELS}

#: Collections kept as a JSON list (the others are objects keyed by id).
LIST_COLLECTIONS = frozenset({DowntimeLog.COLLECTION})

# Parents before children, so foreign keys resolve; the reverse order for deleting.
_LOAD_ORDER: tuple[type[HRRecord], ...] = (Organization, Subscription, DowntimeLog, User)


def hr_seed_read(*, data_dir: Path | None = None) -> dict[str, Any]:
    """Read every collection's file of ``data_dir`` (default: ``data/``), keeping its order.

    Returns ``{"downtime_logs": [record, ...], "organizations": {id: record},
    "subscriptions": {id: record}, "users": {id: record}}``. Raises ``FileNotFoundError`` if a
    file is missing and ``ValueError`` if a file does not hold a list (``downtime_logs``) or
    an object (the others) of JSON objects.
    """
    directory = DATA_DIR if data_dir is None else Path(data_dir)
    seed: dict[str, Any] = {}
    for model in HR_MODELS:
        path = directory / model.DATA_FILE
        content = json.loads(path.read_text(encoding="utf-8"))
        if model.COLLECTION in LIST_COLLECTIONS:
            records = content if isinstance(content, list) else None
            shape = "a JSON list of records"
        else:
            records = list(content.values()) if isinstance(content, dict) else None
            shape = "a JSON object of records keyed by id"
        if records is None or not all(isinstance(r, dict) for r in records):
            raise ValueError(f"{path}: expected {shape}")
        seed[model.COLLECTION] = content
    return seed


def _records_by_id(model: type[HRRecord], content: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(id, record)`` pairs in file order; ids must be unique strings and, in an object,
    equal to their key. Raises ``ValueError``."""
    if model.COLLECTION in LIST_COLLECTIONS:
        pairs = [(record.get(model.ID_KEY), record) for record in content]
    else:
        pairs = list(content.items())
        for key, record in pairs:
            if record.get(model.ID_KEY) != key:
                raise ValueError(
                    f"{model.COLLECTION}: record {key!r} has {model.ID_KEY}="
                    f"{record.get(model.ID_KEY)!r}; the key must equal the id"
                )
    seen: set[str] = set()
    for record_id, _ in pairs:
        if not isinstance(record_id, str):
            raise ValueError(f"{model.COLLECTION}: record id {record_id!r} is not a string")
        if record_id in seen:
            raise ValueError(f"{model.COLLECTION}: duplicate id {record_id!r}")
        seen.add(record_id)
    return pairs


def _references_check(rows: list[HRRecord], *, org_ids: set[str], user_ids: set[str]) -> None:
    """Raise ``ValueError`` for a row naming an organization (or a manager) that does not
    exist, instead of a database integrity error at commit."""
    for row in rows:
        org_id = getattr(row, "org_id", None)
        if org_id is not None and org_id not in org_ids:
            raise ValueError(f"{row.COLLECTION} record {row.pk!r}: unknown org_id {org_id!r}")
        manager_id = getattr(row, "manager_id", None)
        if manager_id is not None and manager_id not in user_ids:
            raise ValueError(f"users record {row.pk!r}: unknown manager_id {manager_id!r}")


@environment_atomic
def hr_seed_load(*, data_dir: Path | None = None, reset: bool = False) -> dict[str, int]:
    """Load the seed into the database; returns the number of seed records per collection.

    Idempotent: without ``reset`` only the seed records that are missing (by id) are inserted,
    at their seed position when it is free (else after the last record); rows already present
    are left untouched, so live changes survive. With ``reset=True`` every HR row is deleted
    first, which restores the pristine seed.

    Raises ``ValueError`` for a record whose key differs from its id, a duplicate id, keys or
    JSON types that are not the model's, or an unknown ``org_id``/``manager_id``, and
    ``FileNotFoundError`` if a collection file is missing; the transaction is rolled back.
    """
    seed = hr_seed_read(data_dir=data_dir)
    if reset:
        for model in reversed(_LOAD_ORDER):
            model.objects.all().delete()
    pairs = {model: _records_by_id(model, seed[model.COLLECTION]) for model in _LOAD_ORDER}
    org_ids = {key for key, _ in pairs[Organization]}
    org_ids |= set(Organization.objects.values_list("pk", flat=True))
    user_ids = {key for key, _ in pairs[User]} | set(User.objects.values_list("pk", flat=True))
    for model in _LOAD_ORDER:
        present = set(model.objects.values_list("pk", flat=True))
        taken = set(model.objects.values_list("position", flat=True))
        rows = []
        for index, (key, record) in enumerate(pairs[model]):
            if key in present:
                continue
            position = index if index not in taken else max(taken) + 1
            taken.add(position)
            rows.append(model.from_record(record, position=position))
        _references_check(rows, org_ids=org_ids, user_ids=user_ids)
        model.objects.bulk_create(rows, batch_size=500)
    return {collection: len(content) for collection, content in seed.items()}


def hr_state_export() -> dict[str, Any]:
    """The whole HR state in the seed-file format, collections sorted by name.

    ``downtime_logs`` is a list, the other collections objects keyed by id; records in
    ``position`` order, with the seed files' keys, key order and JSON types.
    """
    state: dict[str, Any] = {}
    for model in HR_MODELS:
        rows = model.objects.order_by("position")
        if model.COLLECTION in LIST_COLLECTIONS:
            state[model.COLLECTION] = [row.as_record() for row in rows]
        else:
            state[model.COLLECTION] = {row.pk: row.as_record() for row in rows}
    return state


def hr_state_digest(*, state: dict[str, Any] | None = None) -> str:
    """The scenario digest of ``state`` (default: the current database state).

    ``sha256(json.dumps(state, sort_keys=True).encode("utf-8")).hexdigest()`` with Python's
    default separators and ``ensure_ascii=True`` (source: ``shared/scenarios/README.md``). The
    reference's digests were taken with ``users = {}``: compare
    ``hr_state_digest(state={**state, "users": {}})`` with them.
    """
    if state is None:
        state = hr_state_export()
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode("utf-8")).hexdigest()


def hr_keyterms() -> list[str]:
    """Words a caller may say that a general STT model would misspell: the plan (tier) names,
    then users' full names, then organization names, each in insertion order. The registry
    de-duplicates the list and keeps the first ``MAX_KEYTERMS``."""
    plans = [label for _, label in Subscription.Tier.choices]
    users = [
        f"{first} {last}"
        for first, last in User.objects.order_by("position").values_list("first_name", "last_name")
    ]
    organizations = list(Organization.objects.order_by("position").values_list("name", flat=True))
    return [*plans, *users, *organizations]
