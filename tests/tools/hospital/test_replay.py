"""Replay every Benchforce hospital task through ``tool_run`` and compare with the reference.

``tests/fixtures/scenarios/hospital/expected.json`` holds, per task, the exact result string
of each reference call (or the exception it raised), the ``ok`` list, which calls changed the
state, the changed records and the final state digest, produced by Benchforce's own tools
with the clock frozen at 2025-01-01 (see ``shared/scenarios/README.md``).

Where the reference raised (``exceptions[i]`` not null: ``TypeError`` for a call without the
required ``referred_to_department`` in entry_53, entry_56 and entry_57), our registry's schema
validation answers with an ``Error: invalid arguments ...`` result instead, so those calls
are asserted ``ok=False`` with that message. The reference's TypeError is raised while
binding the arguments, before the tool body runs, so it made no partial mutation
(``state_changed_by_call`` is false there); our validation also writes nothing. The final
digests of those three tasks therefore match exactly, like every other task's.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley.tools.hospital.seed import hospital_state_digest, hospital_state_export
from parley.tools.registry import tool_run

from .conftest import fixture_json

TASKS: list[dict[str, Any]] = fixture_json("tasks.json")
EXPECTED_TASKS: list[dict[str, Any]] = fixture_json("expected.json")["tasks"]


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _changed(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """The state difference in expected.json's ``changed`` format (dict collections only)."""
    changes = []
    for collection in sorted(after):
        old, new = before[collection], after[collection]
        if json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True):
            continue
        modified = {k: v for k, v in new.items() if k in old and v != old[k]}
        changes.append(
            {
                "collection": collection,
                "container": "dict",
                "added": {k: v for k, v in new.items() if k not in old},
                "modified": modified,
                "modified_fields": {
                    k: [f for f in v if v.get(f) != old[k].get(f)] for k, v in modified.items()
                },
                "removed": [k for k in old if k not in new],
            }
        )
    return changes


def test_fixtures_cover_every_task() -> None:
    assert len(TASKS) == len(EXPECTED_TASKS) == 64
    assert [t["id"] for t in TASKS] == [e["id"] for e in EXPECTED_TASKS]


@pytest.mark.parametrize(
    ("task", "reference"),
    [pytest.param(t, e, id=t["id"]) for t, e in zip(TASKS, EXPECTED_TASKS, strict=True)],
)
def test_task_replay_matches_reference(
    task: dict[str, Any],
    reference: dict[str, Any],
    hospital_seeded: dict[str, int],
    frozen_today: object,
    expected: dict[str, Any],
) -> None:
    seed_state = hospital_state_export()
    assert hospital_state_digest(state=seed_state) == expected["seed_digest"]

    ok: list[bool] = []
    state_changed: list[bool] = []
    digest = expected["seed_digest"]
    for i, action in enumerate(task["actions"]):
        where = f"{task['id']} call {i} {action['name']}({action['arguments']})"
        outcome = tool_run(scenario="hospital", name=action["name"], arguments=action["arguments"])
        ok.append(outcome.ok)
        new_digest = hospital_state_digest()
        state_changed.append(new_digest != digest)
        digest = new_digest

        if reference["exceptions"][i] is not None:
            # The reference raised (TypeError: missing required argument); we validate instead.
            assert reference["exceptions"][i].startswith("TypeError: "), where
            assert not outcome.ok, where
            assert outcome.content.startswith(f"Error: invalid arguments for {action['name']}: ")
            assert "is a required property" in outcome.content, where
            continue

        want = reference["results"][i]
        mine, theirs = _parsed(outcome.content), _parsed(want)
        if mine is not None and theirs is not None:
            assert mine == theirs, where
        # Exact text too: same json.dumps formatting and the reference's key order.
        assert outcome.content == want, where

    assert ok == reference["ok"], task["id"]
    assert state_changed == reference["state_changed_by_call"], task["id"]
    final_state = hospital_state_export()
    assert _changed(seed_state, final_state) == reference["changed"], task["id"]
    assert hospital_state_digest(state=final_state) == reference["final_digest"], task["id"]
