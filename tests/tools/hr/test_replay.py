"""Replay every Benchforce HR task through ``tool_run`` and compare with the reference.

``tests/fixtures/scenarios/hr/expected.json`` holds, per task, the exact result string of each
reference call, the ``ok`` list, which calls changed the state, the changed records and the
final state digest, produced by Benchforce's own tools with ``users = {}`` (the users files
are missing from its snapshot; see ``shared/scenarios/README.md``).

- **Reference-valid tasks (7 of 28)** must match: results (parsed JSON equal, and here even
  the exact text), the ``ok`` list, which calls changed the state, the ``changed`` records and
  the final digest, all with the users collection left out (emptied), as the reference had it.
- **The other 21** call a user tool (``find_user_by_email``, ``get_all_users_in_org``,
  ``get_user_details``, ``modify_user_permissions``, ``modify_user_status``), whose reference
  results (``[]``, ``{"error": "User not found"}``) only say that there were no users. They
  are replayed against our generated users instead: every call must give a JSON result and
  succeed, only users may change, and each ``modify_user_*`` call's value must be what the
  user ends up with. Results of the other tools must still equal the reference's.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import transaction

from parley.tools.hr.seed import LIST_COLLECTIONS, hr_state_digest, hr_state_export
from parley.tools.registry import tool_run

from .conftest import fixture_json, without_users

TASKS: list[dict[str, Any]] = fixture_json("tasks.json")
EXPECTED_TASKS: list[dict[str, Any]] = fixture_json("expected.json")["tasks"]
PAIRS = list(zip(TASKS, EXPECTED_TASKS, strict=True))
VALID = [(t, e) for t, e in PAIRS if e["reference_valid"]]
INVALID = [(t, e) for t, e in PAIRS if not e["reference_valid"]]

#: The tools whose reference results depend on the missing users data.
USER_TOOLS = frozenset(
    {
        "find_user_by_email",
        "get_all_users_in_org",
        "get_user_details",
        "modify_user_permissions",
        "modify_user_status",
    }
)


def _parsed(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


def _keyed(collection: str, content: Any) -> dict[str, Any]:
    """A collection as ``{key: record}``: list items are keyed ``"[i]"`` (expected.json)."""
    if collection in LIST_COLLECTIONS:
        return {f"[{i}]": record for i, record in enumerate(content)}
    return content


def _changed(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """The state difference in expected.json's ``changed`` format, users left out."""
    changes = []
    for collection in sorted(after):
        if collection == "users":
            continue
        if json.dumps(before[collection], sort_keys=True) == json.dumps(
            after[collection], sort_keys=True
        ):
            continue
        old, new = _keyed(collection, before[collection]), _keyed(collection, after[collection])
        modified = {k: v for k, v in new.items() if k in old and v != old[k]}
        changes.append(
            {
                "collection": collection,
                "container": "list" if collection in LIST_COLLECTIONS else "dict",
                "added": {k: v for k, v in new.items() if k not in old},
                "modified": modified,
                "modified_fields": {
                    k: [f for f in v if v.get(f) != old[k].get(f)] for k, v in modified.items()
                },
                "removed": [k for k in old if k not in new],
            }
        )
    return changes


def _replay(task: dict[str, Any]) -> dict[str, Any]:
    """Run the task's actions in order from the current state; what happened, per call."""
    seed_state = hr_state_export()
    digest = hr_state_digest(state=without_users(seed_state))
    contents, ok, state_changed = [], [], []
    for action in task["actions"]:
        outcome = tool_run(scenario="hr", name=action["name"], arguments=action["arguments"])
        contents.append(outcome.content)
        ok.append(outcome.ok)
        new_digest = hr_state_digest(state=without_users(hr_state_export()))
        state_changed.append(new_digest != digest)
        digest = new_digest
    return {
        "results": contents,
        "ok": ok,
        "state_changed_by_call": state_changed,
        "seed_state": seed_state,
        "final_state": hr_state_export(),
    }


def _replay_rolled_back(task: dict[str, Any]) -> dict[str, Any]:
    """:func:`_replay`, then undo its writes, so the next task starts from the seed too."""
    with transaction.atomic():
        replay = _replay(task)
        transaction.set_rollback(True)
    return replay


def _mismatches(
    task: dict[str, Any], reference: dict[str, Any], replay: dict[str, Any]
) -> list[str]:
    """How a replay of a reference-valid task differs from the reference (empty: it matches)."""
    problems = []
    for i, (mine, theirs) in enumerate(zip(replay["results"], reference["results"], strict=True)):
        mine_json, theirs_json = _parsed(mine), _parsed(theirs)
        same = mine_json == theirs_json if theirs_json is not None else mine == theirs
        if not same:
            problems.append(f"call {i} {task['actions'][i]['name']}: {mine!r} != {theirs!r}")
    for key in ("ok", "state_changed_by_call"):
        if replay[key] != reference[key]:
            problems.append(f"{key} {replay[key]} != {reference[key]}")
    if _changed(replay["seed_state"], replay["final_state"]) != reference["changed"]:
        problems.append("changed records differ")
    if hr_state_digest(state=without_users(replay["final_state"])) != reference["final_digest"]:
        problems.append("final digest differs")
    return problems


def test_fixtures_cover_every_task() -> None:
    assert len(TASKS) == len(EXPECTED_TASKS) == 28
    assert [t["id"] for t in TASKS] == [e["id"] for e in EXPECTED_TASKS]
    assert [t["index"] for t in TASKS] == list(range(28))
    # No reference call raised, so every result is a string to compare.
    assert all(x is None for e in EXPECTED_TASKS for x in e["exceptions"])


def test_reference_is_invalid_exactly_for_the_tasks_using_user_tools() -> None:
    assert len(VALID) == 7 and len(INVALID) == 21
    for task, reference in PAIRS:
        uses_users = any(a["name"] in USER_TOOLS for a in task["actions"])
        assert reference["reference_valid"] is not uses_users, task["id"]
        if uses_users:
            assert any("MISSING" in note for note in reference["notes"]), task["id"]


@pytest.mark.parametrize(("task", "reference"), [pytest.param(t, e, id=t["id"]) for t, e in VALID])
def test_valid_task_replay_matches_reference(
    task: dict[str, Any], reference: dict[str, Any], hr_seeded: dict[str, int], expected: Any
) -> None:
    replay = _replay(task)
    assert hr_state_digest(state=without_users(replay["seed_state"])) == expected["seed_digest"]
    assert _mismatches(task, reference, replay) == []
    # Stronger than the parsed comparison: the same json.dumps text, key order included.
    assert replay["results"] == reference["results"]


def test_parity_figure(hr_seeded: dict[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    matching = [t["id"] for t, e in VALID if not _mismatches(t, e, _replay_rolled_back(t))]
    figure = f"HR replay parity: {len(matching)}/{len(VALID)} valid tasks match the reference"
    with capsys.disabled():
        print(f"\n{figure} ({len(INVALID)} tasks not comparable: reference_valid false)")
    assert figure == "HR replay parity: 7/7 valid tasks match the reference"


@pytest.mark.parametrize(
    ("task", "reference"), [pytest.param(t, e, id=t["id"]) for t, e in INVALID]
)
def test_task_without_valid_reference_behaves_sensibly(
    task: dict[str, Any], reference: dict[str, Any], hr_seeded: dict[str, int]
) -> None:
    replay = _replay(task)
    for i, (action, content) in enumerate(zip(task["actions"], replay["results"], strict=True)):
        where = f"{task['id']} call {i} {action['name']}({action['arguments']})"
        assert _parsed(content) is not None, where  # JSON, never an exception's text
        if action["name"] not in USER_TOOLS:
            assert content == reference["results"][i], where
    # With the generated users every reference action succeeds...
    assert replay["ok"] == [True] * len(task["actions"]), replay["results"]
    # ...the reference's answers only said that there were no users...
    user_results = [
        (mine, theirs)
        for action, mine, theirs in zip(
            task["actions"], replay["results"], reference["results"], strict=True
        )
        if action["name"] in USER_TOOLS
    ]
    assert all(theirs in ("[]", '{"error": "User not found"}') for _, theirs in user_results)
    assert all(mine != theirs for mine, theirs in user_results)
    # ...and only users change, to the values the calls asked for.
    assert _changed(replay["seed_state"], replay["final_state"]) == []
    assert not any(replay["state_changed_by_call"])
    users = replay["final_state"]["users"]
    for action in task["actions"]:
        arguments = action["arguments"]
        if action["name"] == "modify_user_permissions":
            wanted = [
                a["arguments"]["new_permissions"]
                for a in task["actions"]
                if a["arguments"].get("user_id") == arguments["user_id"]
                and a["name"] == "modify_user_permissions"
            ][-1]
            assert users[arguments["user_id"]]["permissions"] == wanted
        if action["name"] == "modify_user_status":
            assert users[arguments["user_id"]]["status"] == arguments["new_status"]
    changed_users = {
        user_id
        for user_id, record in users.items()
        if record != replay["seed_state"]["users"][user_id]
    }
    assert changed_users == {
        a["arguments"]["user_id"] for a in task["actions"] if a["name"].startswith("modify_user")
    }
