"""Replay every Benchforce order-management task through ``tool_run`` and compare.

``tests/fixtures/scenarios/orders/expected.json`` holds, per task, the exact result string of
each reference call (or the exception it raised), the ``ok`` list, which calls changed the
state, the changed records, the final state digest and Benchforce's masked state hash,
produced by Benchforce's own tools (see ``shared/scenarios/README.md``). The source has a
single order-management task (entry_1: confirm a customer by email); the behaviour of the
other tools is covered by ``test_tools.py``.

No reference call raised in this scenario. Should a task carry an exception (a missing
required argument raises ``TypeError`` in the reference), our registry's schema validation
answers with an ``Error: invalid arguments ...`` result instead, as for the hospital tasks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley.tools.orders.seed import (
    orders_state_digest,
    orders_state_export,
    orders_state_masked_hash,
)
from parley.tools.registry import tool_run

from .conftest import fixture_json

TASKS: list[dict[str, Any]] = fixture_json("tasks.json")
EXPECTED_TASKS: list[dict[str, Any]] = fixture_json("expected.json")["tasks"]


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _keyed(content: dict[str, Any] | list[Any]) -> tuple[str, dict[str, Any]]:
    """A collection as ``(container, {record key: record})``; list items are keyed ``"[i]"``."""
    if isinstance(content, list):
        return "list", {f"[{i}]": record for i, record in enumerate(content)}
    return "dict", dict(content)


def _changed(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """The state difference in expected.json's ``changed`` format."""
    changes = []
    for collection in sorted(after):
        if json.dumps(before[collection], sort_keys=True) == json.dumps(
            after[collection], sort_keys=True
        ):
            continue
        container, old = _keyed(before[collection])
        _, new = _keyed(after[collection])
        modified = {k: v for k, v in new.items() if k in old and v != old[k]}
        changes.append(
            {
                "collection": collection,
                "container": container,
                "added": {k: v for k, v in new.items() if k not in old},
                "modified": modified,
                "modified_fields": {
                    k: [f for f in {**old[k], **v} if v.get(f) != old[k].get(f)]
                    for k, v in modified.items()
                },
                "removed": [k for k in old if k not in new],
            }
        )
    return changes


def test_fixtures_cover_every_task() -> None:
    assert len(TASKS) == len(EXPECTED_TASKS) == 1
    assert [t["id"] for t in TASKS] == [e["id"] for e in EXPECTED_TASKS] == ["entry_1"]


def test_changed_reports_additions_modifications_and_removals() -> None:
    # The comparison helper itself must be able to see each kind of change.
    before = {
        "customers": [{"customer_id": "C1", "name": "A"}],
        "orders": {"O1": {"order_id": "O1", "order_status": "processing"}, "O2": {}},
    }
    after = {
        "customers": [{"customer_id": "C1", "name": "B"}],
        "orders": {
            "O1": {"order_id": "O1", "order_status": "shipped", "return_reason": "x"},
            "O3": {"order_id": "O3"},
        },
    }
    assert _changed(before, after) == [
        {
            "collection": "customers",
            "container": "list",
            "added": {},
            "modified": {"[0]": {"customer_id": "C1", "name": "B"}},
            "modified_fields": {"[0]": ["name"]},
            "removed": [],
        },
        {
            "collection": "orders",
            "container": "dict",
            "added": {"O3": {"order_id": "O3"}},
            "modified": {"O1": {"order_id": "O1", "order_status": "shipped", "return_reason": "x"}},
            "modified_fields": {"O1": ["order_status", "return_reason"]},
            "removed": ["O2"],
        },
    ]
    assert _changed(before, before) == []


@pytest.mark.parametrize(
    ("task", "reference"),
    [pytest.param(t, e, id=t["id"]) for t, e in zip(TASKS, EXPECTED_TASKS, strict=True)],
)
def test_task_replay_matches_reference(
    task: dict[str, Any],
    reference: dict[str, Any],
    orders_seeded: dict[str, int],
    expected: dict[str, Any],
) -> None:
    assert expected["clock_dependent_functions"] == []  # nothing to freeze
    seed_state = orders_state_export()
    assert orders_state_digest(state=seed_state) == expected["seed_digest"]
    assert orders_state_masked_hash(state=seed_state) == expected["seed_benchforce_masked_hash"]
    assert reference["reference_valid"] is True

    ok: list[bool] = []
    state_changed: list[bool] = []
    digest = expected["seed_digest"]
    for i, action in enumerate(task["actions"]):
        where = f"{task['id']} call {i} {action['name']}({action['arguments']})"
        outcome = tool_run(scenario="orders", name=action["name"], arguments=action["arguments"])
        ok.append(outcome.ok)
        new_digest = orders_state_digest()
        state_changed.append(new_digest != digest)
        digest = new_digest

        if reference["exceptions"][i] is not None:
            # The reference raised (TypeError: missing required argument); we validate instead.
            assert reference["exceptions"][i].startswith("TypeError: "), where
            assert not outcome.ok, where
            assert outcome.content.startswith(f"Error: invalid arguments for {action['name']}: ")
            continue

        want = reference["results"][i]
        mine, theirs = _parsed(outcome.content), _parsed(want)
        if theirs is not None:
            assert mine == theirs, where
        # Exact text too: same json.dumps formatting and the reference's key order.
        assert outcome.content == want, where

    assert ok == reference["ok"], task["id"]
    assert state_changed == reference["state_changed_by_call"], task["id"]
    final_state = orders_state_export()
    assert _changed(seed_state, final_state) == reference["changed"], task["id"]
    assert orders_state_digest(state=final_state) == reference["final_digest"], task["id"]
    assert orders_state_masked_hash(state=final_state) == reference["benchforce_masked_hash"]
