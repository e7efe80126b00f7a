"""The generated users collection (``data/users.json``): reproducible, consistent with the
organizations and the policy's schema, and covering every user the HR tasks name."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from parley.tools.hr import users_generate
from parley.tools.hr.models import PERMISSIONS
from parley.tools.hr.seed import DATA_DIR
from parley.tools.registry import tool_run

from .conftest import fixture_json

POLICY = (Path(users_generate.__file__).parent / "policy.md").read_text(encoding="utf-8")
USERS: dict[str, dict[str, Any]] = json.loads((DATA_DIR / "users.json").read_text("utf-8"))
ORGANIZATIONS: dict[str, dict[str, Any]] = json.loads(
    (DATA_DIR / "data_organizations.json").read_text("utf-8")
)
TASKS: list[dict[str, Any]] = fixture_json("tasks.json")

NAME_RE = re.compile(r"\{'first_name': '(\w+)', 'last_name': '(\w+)'\}")
EMAIL_RE = re.compile(r"[\w.]+@[\w.]+\.\w+")


def _policy_enum(type_name: str) -> set[str]:
    """The string literals of ``type <type_name> = "a" | "b" ...;`` in policy.md."""
    match = re.search(rf"type {type_name} = (.*?);", POLICY, re.DOTALL)
    assert match, type_name
    return set(re.findall(r'"([^"]+)"', match.group(1)))


def _folded_name(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def test_the_generator_reproduces_the_committed_file() -> None:
    assert users_generate.users_text() == (DATA_DIR / "users.json").read_text(encoding="utf-8")
    assert users_generate.main(["--check"]) == 0


def test_the_generator_refuses_data_that_break_a_task() -> None:
    users_generate._tasks_check(copy.deepcopy(USERS))  # the committed data pass
    broken = copy.deepcopy(USERS)
    broken["USR-000004"]["last_login"] = "2024-01-01T00:00:00Z"
    with pytest.raises(AssertionError, match="entry_13"):
        users_generate._tasks_check(broken)
    broken = copy.deepcopy(USERS)
    broken["USR-001878"]["roles"] = ["developer"]
    with pytest.raises(AssertionError, match="entry_4"):
        users_generate._tasks_check(broken)


def test_records_follow_the_policy_schema() -> None:
    roles, departments = _policy_enum("Role"), _policy_enum("Department")
    skills, permissions = _policy_enum("Skill"), _policy_enum("Permission")
    regions = _policy_enum("Region")
    assert permissions == set(PERMISSIONS)
    now = users_generate.NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    for user_id, user in USERS.items():
        assert user["id"] == user_id
        assert re.fullmatch(r"USR-\d{5,6}", user_id)
        assert set(user["roles"]) <= roles and user["roles"], user_id
        assert user["department"] in departments, user_id
        assert set(user["skills"]) <= skills, user_id
        assert set(user["permissions"]) <= permissions, user_id
        assert user["office"]["region"] in regions
        assert user["status"] in {"active", "pending", "suspended", "terminated", "locked"}
        assert re.fullmatch(r"EMP-\d{5}", user["employee_id"])
        assert re.fullmatch(r"\+1\d{10}", user["phone"])
        assert user["created_date"] < now
        if user["last_login"] is not None:
            assert user["created_date"] < user["last_login"] < now, user_id
        assert (user["last_login"] is None) == (user["status"] == "pending"), user_id
    emails = [u["email"] for u in USERS.values()]
    assert len(set(emails)) == len(emails)
    assert len({u["employee_id"] for u in USERS.values()}) == len(USERS)


def test_records_are_consistent_with_their_organization_and_each_other() -> None:
    for user_id, user in USERS.items():
        organization = ORGANIZATIONS[user["org_id"]]
        assert user["office"] in organization["offices"], user_id
        domain = user["email"].split("@")[1].rsplit(".", 1)[0]
        assert domain == _folded_name(organization["name"]), user_id
        if user["manager_id"] is not None:
            manager = USERS[user["manager_id"]]
            assert manager["org_id"] == user["org_id"]
            assert user_id in manager["direct_reports"]
        reports = [uid for uid, u in USERS.items() if u["manager_id"] == user_id]
        assert user["direct_reports"] == reports, user_id


def _task_user_ids() -> dict[str, set[str]]:
    """user id → the organizations the tasks' actions put it in."""
    found: dict[str, set[str]] = {}
    for task in TASKS:
        orgs = {a["arguments"]["org_id"] for a in task["actions"] if "org_id" in a["arguments"]}
        for action in task["actions"]:
            user_id, own = action["arguments"].get("user_id"), action["arguments"].get("org_id")
            if user_id is not None:
                found.setdefault(user_id, set()).update({own} if own else orgs)
    return found


def test_every_user_id_of_the_tasks_exists_in_its_organization() -> None:
    named = _task_user_ids()
    assert len(named) == 16 and "USR-00101" in named
    for user_id, orgs in named.items():
        assert user_id in USERS, user_id
        assert orgs == {USERS[user_id]["org_id"]}, user_id


def _personas() -> list[tuple[str, str, str, str]]:
    """(task id, first name, last name, e-mail) of every persona the instructions describe."""
    personas = []
    for task in TASKS:
        emails = EMAIL_RE.findall(task["instructions"])
        names = NAME_RE.findall(task["instructions"])
        assert len(emails) <= 1 and len(names) == len(emails), task["id"]
        personas += [(task["id"], *names[0], emails[0]) for _ in emails]
    return personas


def test_the_personas_cover_the_tasks() -> None:
    personas = _personas()
    assert len(personas) == 27  # every task but entry_0 (the calculator)
    assert len({p[3] for p in personas}) == 26  # emma.brown@... appears twice


@pytest.mark.parametrize(
    ("task_id", "first", "last", "email"), [pytest.param(*p, id=p[0]) for p in _personas()]
)
def test_every_persona_is_found_by_email_in_the_right_organization(
    hr_seeded: dict[str, int], task_id: str, first: str, last: str, email: str
) -> None:
    outcome = tool_run(scenario="hr", name="find_user_by_email", arguments={"email": email})
    assert outcome.ok, outcome.content
    user = json.loads(outcome.content)
    assert user["name"] == {"first_name": first, "last_name": last}
    assert user["status"] == "active" and user["two_factor_enabled"]
    task = next(t for t in TASKS if t["id"] == task_id)
    organization = ORGANIZATIONS[user["org_id"]]
    assert email.split("@")[1].rsplit(".", 1)[0] == _folded_name(organization["name"])
    for action in task["actions"]:
        arguments = action["arguments"]
        if "org_id" in arguments:
            assert arguments["org_id"] == user["org_id"], action
        if "subscription_id" in arguments:
            assert arguments["subscription_id"] == organization["subscription_id"], action
    # The policy asks for admin permissions before changes; every persona asking for one has.
    if any(a["name"].startswith("modify_") for a in task["actions"]):
        assert "admin" in user["permissions"], task_id


def test_the_two_mei_lees_are_two_users() -> None:
    meis = [u for u in USERS.values() if u["name"] == {"first_name": "Mei", "last_name": "Lee"}]
    assert sorted(u["email"] for u in meis) == [
        "mei.lee@nextgenadvancedpremier.ai",
        "mei.lee@nextgenadvancedpremier.org",
    ]


def test_dates_are_relative_to_the_policy_now() -> None:
    assert users_generate.NOW == dt.datetime(2024, 5, 15, 15, 0, tzinfo=dt.UTC)
    from parley.tools.hr import tools

    assert tools.POLICY_NOW == users_generate.NOW
