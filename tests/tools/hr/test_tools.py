"""The 16 HR tools, run the way the platform runs them: through ``tool_run``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from parley.tools.hr import tools
from parley.tools.hr.models import Subscription, User
from parley.tools.hr.seed import DATA_DIR, hr_keyterms, hr_state_digest
from parley.tools.registry import ToolOutcome, scenario_keyterms, scenario_tools, tool_run

pytestmark = pytest.mark.usefixtures("hr_seeded")

TOOLS_JSON = Path(tools.__file__).resolve().parent / "tools.json"
SEED = {
    name: json.loads((DATA_DIR / f"{name}.json").read_text(encoding="utf-8"))
    for name in ("data_organizations", "data_subscriptions", "data_downtime_logs", "users")
}
ORGANIZATIONS, SUBSCRIPTIONS = SEED["data_organizations"], SEED["data_subscriptions"]
LOGS, USERS = SEED["data_downtime_logs"], SEED["users"]


def run(name: str, arguments: dict[str, Any] | str) -> ToolOutcome:
    return tool_run(scenario="hr", name=name, arguments=arguments)


def ok_json(name: str, arguments: dict[str, Any]) -> Any:
    """Run a call that must succeed; its result parsed."""
    outcome = run(name, arguments)
    assert outcome.ok, outcome.content
    return json.loads(outcome.content)


def error(name: str, arguments: dict[str, Any] | str) -> str:
    """Run a call that must fail without changing any data; its error message."""
    before = hr_state_digest()
    outcome = run(name, arguments)
    assert not outcome.ok, outcome.content
    assert hr_state_digest() == before
    if outcome.content.startswith("Error: "):  # refused by the registry (arguments)
        return outcome.content
    parsed = json.loads(outcome.content)
    assert list(parsed) == ["error"], parsed
    return parsed["error"]


# --- registration and argument validation -------------------------------------------------


def test_every_tool_of_tools_json_is_registered_with_its_schema() -> None:
    schemas = {t["function"]["name"]: t["function"] for t in json.loads(TOOLS_JSON.read_text())}
    registered = scenario_tools(scenario="hr")
    assert sorted(registered) == sorted(schemas) and len(registered) == 16
    for name, spec in registered.items():
        assert spec.parameters == schemas[name]["parameters"]
        assert spec.description == schemas[name]["description"]
        assert spec.func is tools.HR_TOOLS[name]
    assert {n for n, s in registered.items() if s.side_effecting} == {
        "modify_subscription_seats",
        "modify_subscription_tier",
        "modify_user_permissions",
        "modify_user_status",
    }


def test_invalid_arguments_are_refused_before_the_tool_runs() -> None:
    assert error("get_user_details", {}) == (
        "Error: invalid arguments for get_user_details: 'user_id' is a required property"
    )
    assert error(
        "modify_subscription_seats", {"subscription_id": "SUB-000001", "new_seat_count": "500"}
    ) == (
        "Error: invalid arguments for modify_subscription_seats: '500' is not of type "
        "'integer' (at new_seat_count)"
    )
    assert error(
        "modify_user_permissions",
        {"user_id": "USR-001876", "org_id": "ORG-000004", "new_permissions": "access_api"},
    ).startswith("Error: invalid arguments for modify_user_permissions: 'access_api' is not")


# --- calculate, transfer, exit ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("88 * 123", '{"result": 10824}'),
        ("150 * 0.9", '{"result": 135.0}'),
        ("10 / 4", '{"result": 2.5}'),
        ("10 / 2", '{"result": 5.0}'),
        (" (2 + 3) * -4 ", '{"result": -20}'),
        ("500 - 381", '{"result": 119}'),
        ("0.1 + 0.2", '{"result": 0.30000000000000004}'),
    ],
)
def test_calculate(expression: str, result: str) -> None:
    outcome = run("calculate", {"expression": expression})
    assert outcome.ok
    assert outcome.content == result


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 / 0", "Division by zero"),
        ("2 ** 10", "Invalid expression: use numbers, parentheses and + - * /"),
        ("__import__('os')", "Invalid expression: use numbers, parentheses and + - * /"),
        ("seats * 2", "Invalid expression: use numbers, parentheses and + - * /"),
        ("1,000 * 2", "Invalid expression: use numbers, parentheses and + - * /"),
        ("True + 1", "Invalid expression: use numbers, parentheses and + - * /"),
        ("3 % 2", "Invalid expression: use numbers, parentheses and + - * /"),
        ("", "Invalid expression: use numbers, parentheses and + - * /"),
        ("1\x00", "Invalid expression: use numbers, parentheses and + - * /"),
        ("1e308 * 10", "The result is too large"),
        ("9" * 400 + " * 1.0", "The result is too large"),
        ("9" * 500 + " * " + "9" * 500, "Invalid expression: longer than 1000 characters"),
    ],
)
def test_calculate_errors(expression: str, message: str) -> None:
    assert error("calculate", {"expression": expression}) == message


def test_calculate_keeps_exact_integers() -> None:
    expression = " * ".join(["9" * 99] * 9)  # 891 digits, within the length limit
    assert ok_json("calculate", {"expression": expression})["result"] == int("9" * 99) ** 9


def test_transfer_to_human_agents_is_the_reference_result() -> None:
    outcome = run("transfer_to_human_agents", {"reason": "Billing dispute"})
    assert outcome.ok
    assert outcome.content == (
        '{"message": "Transferring to human agent", "reason": "Billing dispute", '
        '"status": "transferred"}'
    )


def test_exit_conversation() -> None:
    assert ok_json("exit_conversation", {}) == {"message": "Conversation ended", "status": "ended"}


# --- organizations and subscriptions ------------------------------------------------------


def test_find_org_by_id_returns_the_seed_record() -> None:
    outcome = run("find_org_by_id", {"org_id": "ORG-000009"})
    assert outcome.ok
    assert outcome.content == json.dumps(ORGANIZATIONS["ORG-000009"])


@pytest.mark.parametrize("org_id", ["ORG-999999", "org-000009", "ORG-9", " ORG-000009"])
def test_find_org_by_id_unknown(org_id: str) -> None:
    assert error("find_org_by_id", {"org_id": org_id}) == "Organization not found"


def test_find_org_by_name_matches_substrings_ignoring_case_in_insertion_order() -> None:
    found = ok_json("find_org_by_name", {"query": "SMART platforms"})
    assert [o["id"] for o in found] == ["ORG-000008"]
    assert found[0] == ORGANIZATIONS["ORG-000008"]
    smart = [o["id"] for o in ok_json("find_org_by_name", {"query": " smart "})]
    assert smart == [k for k, o in ORGANIZATIONS.items() if "smart" in o["name"].lower()]
    assert len(smart) == 22 and smart[0] == "ORG-000008"
    assert [o["id"] for o in ok_json("find_org_by_name", {"query": "next-gen advanced & p"})] == [
        "ORG-000001"
    ]


def test_find_org_by_name_no_match_and_empty_query() -> None:
    assert run("find_org_by_name", {"query": "Acme"}).content == "[]"
    assert run("find_org_by_name", {"query": "50%"}).content == "[]"  # no LIKE wildcards
    assert error("find_org_by_name", {"query": "  "}) == "Query must not be empty"


def test_get_org_details_adds_the_subscription() -> None:
    details = ok_json("get_org_details", {"org_id": "ORG-000004"})
    assert details == {**ORGANIZATIONS["ORG-000004"], "subscription": SUBSCRIPTIONS["SUB-000004"]}
    assert error("get_org_details", {"org_id": "ORG-000000"}) == "Organization not found"


def test_get_subscription_details_returns_the_seed_record() -> None:
    outcome = run("get_subscription_details", {"subscription_id": "SUB-000003"})
    assert outcome.ok
    assert outcome.content == json.dumps(SUBSCRIPTIONS["SUB-000003"])
    assert '"volume_discount_percentage": 0, "total_price": 210,' in outcome.content
    assert error("get_subscription_details", {"subscription_id": "SUB-1"}) == (
        "Subscription not found"
    )


def test_modify_subscription_seats_adds_seats_and_reprices() -> None:
    result = ok_json(
        "modify_subscription_seats", {"subscription_id": "SUB-000001", "new_seat_count": 500}
    )
    record = {
        **SUBSCRIPTIONS["SUB-000001"],
        "seats": 500,
        "total_price": 4250.0,  # 500 × 10 × 0.85, the discount unchanged
        "usage_limits": {"api_calls_per_day": 1000, "storage_gb": 100, "concurrent_users": 500},
    }
    assert result == {
        "message": "Seats updated from 381 to 500",
        "old_seats": 381,
        "new_seats": 500,
        "subscription": record,
    }
    assert Subscription.objects.get(pk="SUB-000001").as_record() == record


def test_modify_subscription_seats_without_discount_keeps_integers() -> None:
    outcome = run(
        "modify_subscription_seats", {"subscription_id": "SUB-000003", "new_seat_count": 30}
    )
    assert outcome.ok
    assert '"volume_discount_percentage": 0, "total_price": 300,' in outcome.content


def test_modify_subscription_seats_errors() -> None:
    args = {"subscription_id": "SUB-000001", "new_seat_count": 300}
    assert error("modify_subscription_seats", args) == (
        "Seats can only be added; a reduction takes effect at renewal (current: 381 seats)"
    )
    assert error("modify_subscription_seats", dict(args, new_seat_count=381)) == (
        "The subscription already has 381 seats"
    )
    assert error("modify_subscription_seats", dict(args, subscription_id="SUB-999999")) == (
        "Subscription not found"
    )


def test_modify_subscription_tier_upgrades_with_the_tier_s_price_and_limits() -> None:
    result = ok_json(
        "modify_subscription_tier", {"subscription_id": "SUB-000001", "new_tier": "professional"}
    )
    assert result["message"] == "Subscription upgraded from basic to professional"
    assert (result["old_tier"], result["new_tier"]) == ("basic", "professional")
    record = result["subscription"]
    assert record == {
        **SUBSCRIPTIONS["SUB-000001"],
        "tier": "professional",
        "price_per_seat": 20,
        "total_price": 6477.0,  # 381 × 20 × 0.85
        "usage_limits": {"api_calls_per_day": 10000, "storage_gb": 1000, "concurrent_users": 381},
    }
    result = ok_json(
        "modify_subscription_tier", {"subscription_id": "SUB-000001", "new_tier": "enterprise"}
    )
    assert result["subscription"]["support_level"] == "premium"  # raised to the tier's minimum
    assert result["subscription"]["usage_limits"]["storage_gb"] == "unlimited"
    assert Subscription.objects.get(pk="SUB-000001").storage_gb is None


def test_modify_subscription_tier_errors() -> None:
    def tier(subscription_id: str, new_tier: str) -> str:
        return error(
            "modify_subscription_tier", {"subscription_id": subscription_id, "new_tier": new_tier}
        )

    assert tier("SUB-000009", "professional") == (
        "Downgrades take effect only at renewal (2018-08-18T00:00:00Z)"
    )
    assert tier("SUB-000009", "enterprise") == "The subscription is already on the enterprise tier"
    assert tier("SUB-000009", "Enterprise") == (
        "Invalid tier 'Enterprise'; valid tiers: basic, professional, enterprise"
    )
    assert tier("SUB-000003", "professional") == (
        "The professional tier needs at least 25 seats (the subscription has 21)"
    )
    assert tier("SUB-000000", "enterprise") == "Subscription not found"


def test_every_seed_subscription_has_its_tier_s_price_and_limits() -> None:
    # modify_subscription_tier relies on this: the tier decides the seat price and limits.
    for record in SUBSCRIPTIONS.values():
        tier = record["tier"]
        assert record["price_per_seat"] == tools.TIER_PRICE_PER_SEAT[tier]
        limits = record["usage_limits"]
        assert limits["api_calls_per_day"] == tools.TIER_API_CALLS_PER_DAY[tier]
        assert limits["storage_gb"] == (tools.TIER_STORAGE_GB[tier] or "unlimited")
        assert limits["concurrent_users"] == record["seats"]
        floor = tools.SUPPORT_LEVELS.index(tools.TIER_MINIMUM_SUPPORT[tier])
        assert tools.SUPPORT_LEVELS.index(record["support_level"]) >= floor


# --- verify_downtime and calculate_service_credits ----------------------------------------


def verify(subscription_id: str, timestamp: str) -> dict[str, Any]:
    return ok_json(
        "verify_downtime", {"subscription_id": subscription_id, "incident_timestamp": timestamp}
    )


NOT_FOUND = {"verified": False, "message": "No downtime found at the specified time"}
DT_000798 = next(log for log in LOGS if log["id"] == "DT-000798")  # ORG-000004, 07:41-08:53


@pytest.mark.parametrize(
    "timestamp",
    [
        "2024-04-29T08:00:00Z",
        "2024-04-29T08:00:00+00:00",
        "2024-04-29T08:00:00",  # no offset: UTC
        "2024-04-29T10:00:00+02:00",
        "2024-04-29T07:41:00Z",  # both ends count
        "2024-04-29T08:53:00Z",
    ],
)
def test_verify_downtime_finds_the_organization_s_log(timestamp: str) -> None:
    assert verify("SUB-000004", timestamp) == {
        "verified": True,
        "message": "Downtime found at the specified time",
        "downtime_logs": [DT_000798],
    }


@pytest.mark.parametrize(
    ("subscription_id", "timestamp"),
    [
        ("SUB-000004", "2024-04-29T07:40:59Z"),
        ("SUB-000004", "2024-04-29T08:54:00Z"),
        ("SUB-000005", "2024-04-29T08:00:00Z"),  # another organization's subscription
        ("SUB-000004", "2024-12-28T00:00:00Z"),  # after now (the reference's entry_1)
    ],
)
def test_verify_downtime_not_found(subscription_id: str, timestamp: str) -> None:
    assert verify(subscription_id, timestamp) == NOT_FOUND


def test_verify_downtime_lists_overlapping_logs_in_list_order() -> None:
    ids = [log["id"] for log in verify("SUB-000001", "2024-05-09T09:00:00Z")["downtime_logs"]]
    assert ids == ["DT-000381", "DT-000822"]
    ids = [log["id"] for log in verify("SUB-000001", "2024-05-09T07:45:00Z")["downtime_logs"]]
    assert ids == ["DT-000822"]


def test_verify_downtime_is_not_in_the_future_of_the_policy_s_now() -> None:
    # DT-000578 (ORG-000182) runs 14:33-15:52 on the policy's day; now is 15:00.
    assert verify("SUB-000182", "2024-05-15T14:59:00Z")["verified"] is True
    assert verify("SUB-000182", "2024-05-15T15:00:00Z")["verified"] is True
    assert verify("SUB-000182", "2024-05-15T15:01:00Z") == NOT_FOUND


def test_verify_downtime_reads_the_patchable_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tools.now() == dt.datetime(2024, 5, 15, 15, 0, tzinfo=dt.UTC)
    assert verify("SUB-000004", "2024-04-29T08:00:00Z")["verified"] is True
    monkeypatch.setattr(tools, "now", lambda: dt.datetime(2024, 6, 1, tzinfo=dt.UTC))
    assert verify("SUB-000004", "2024-04-29T08:00:00Z") == {
        "verified": False,
        "message": "The incident is more than 30 days old and cannot be verified for service "
        "credits",
    }
    monkeypatch.setattr(tools, "now", lambda: dt.datetime(2024, 4, 29, 7, 50, tzinfo=dt.UTC))
    assert verify("SUB-000004", "2024-04-29T08:00:00Z") == NOT_FOUND


def test_verify_downtime_errors() -> None:
    args = {"subscription_id": "SUB-000004", "incident_timestamp": "yesterday at 3"}
    assert error("verify_downtime", args) == (
        "Invalid timestamp 'yesterday at 3'; use ISO 8601, e.g. 2024-05-15T15:00:00Z"
    )
    assert error("verify_downtime", dict(args, subscription_id="SUB-X")) == (
        "Subscription not found"
    )


def credits(subscription_id: str, minutes: int) -> dict[str, Any]:
    return ok_json(
        "calculate_service_credits",
        {"subscription_id": subscription_id, "downtime_minutes": minutes},
    )


def test_calculate_service_credits_enterprise() -> None:
    # Uptime 100 × 43128 / 43200 = 99.8333 %, 0.15667 % below 99.99 %: 10 % per 0.1 %.
    assert credits("SUB-000009", 72) == {
        "subscription_id": "SUB-000009",
        "tier": "enterprise",
        "downtime_minutes": 72,
        "sla_percentage": 99.99,
        "allowed_downtime_minutes": 4.32,
        "uptime_percentage": 99.8333,
        "credit_percentage": 15.67,
        "monthly_fee": 48270.0,
        "credit_amount": 7562.3,  # 48270 × 47 / 300
        "message": "Service credit of 15.67% of the monthly fee, applied to the next billing cycle",
    }


def test_calculate_service_credits_professional_and_the_cap() -> None:
    professional = credits("SUB-000002", 60)
    assert professional["allowed_downtime_minutes"] == 21.6
    assert (professional["credit_percentage"], professional["credit_amount"]) == (4.44, 74.31)
    capped = credits("SUB-000001", 43200)  # basic, a whole month down
    assert (capped["uptime_percentage"], capped["credit_percentage"]) == (0.0, 100.0)
    assert capped["credit_amount"] == 3238.5
    assert credits("SUB-000003", 100)["monthly_fee"] == 210  # the seed's integer


def test_calculate_service_credits_within_the_sla() -> None:
    result = credits("SUB-000009", 4)
    assert (result["credit_percentage"], result["credit_amount"]) == (0.0, 0.0)
    assert result["message"] == "The downtime is within the SLA; no service credits are due"
    assert credits("SUB-000001", 43)["credit_amount"] == 0.0  # basic allows 43.2 minutes


def test_calculate_service_credits_errors() -> None:
    args = {"subscription_id": "SUB-000009", "downtime_minutes": -5}
    assert error("calculate_service_credits", args) == "downtime_minutes must not be negative"
    assert error("calculate_service_credits", dict(args, subscription_id="SUB-0")) == (
        "Subscription not found"
    )


# --- users ----------------------------------------------------------------------------------


def test_get_user_details_returns_the_record() -> None:
    outcome = run("get_user_details", {"user_id": "USR-003682"})
    assert outcome.ok
    assert outcome.content == json.dumps(USERS["USR-003682"])
    assert error("get_user_details", {"user_id": "USR-999999"}) == "User not found"
    assert error("get_user_details", {"user_id": "usr-003682"}) == "User not found"
    assert error("get_user_details", {"user_id": "USR-\x00"}) == "User not found"


@pytest.mark.parametrize(
    "email",
    [
        "ivan.ito@energyinnovativemobile.net",
        "Ivan.Ito@EnergyInnovativeMobile.NET",
        " ivan.ito@energyinnovativemobile.net ",
    ],
)
def test_find_user_by_email_ignores_case_and_spaces(email: str) -> None:
    user = ok_json("find_user_by_email", {"email": email})
    assert user["name"] == {"first_name": "Ivan", "last_name": "Ito"}
    assert user["org_id"] == "ORG-000004"


@pytest.mark.parametrize("email", ["ivan.ito@energyinnovativemobile.com", "", "ivan\x00"])
def test_find_user_by_email_not_found(email: str) -> None:
    assert error("find_user_by_email", {"email": email}) == "User not found"


def test_get_all_users_in_org_lists_records_in_insertion_order() -> None:
    users = ok_json("get_all_users_in_org", {"org_id": "ORG-000001"})
    assert users == [u for u in USERS.values() if u["org_id"] == "ORG-000001"]
    assert len(users) == 37 and users[0]["id"] == "USR-000001"
    assert run("get_all_users_in_org", {"org_id": "ORG-000005"}).content == "[]"
    assert error("get_all_users_in_org", {"org_id": "ORG-999999"}) == "Organization not found"


def test_modify_user_permissions_replaces_the_list() -> None:
    args = {
        "user_id": "USR-001876",
        "org_id": "ORG-000004",
        "new_permissions": ["access_api", "deploy_code", "export_data", "access_api"],
    }
    assert ok_json("modify_user_permissions", args) == {
        "message": "Permissions updated successfully",
        "user_id": "USR-001876",
        "old_permissions": ["access_api", "view_own_profile", "submit_requests"],
        "new_permissions": ["access_api", "deploy_code", "export_data"],
    }
    assert User.objects.get(pk="USR-001876").permissions == [
        "access_api",
        "deploy_code",
        "export_data",
    ]
    assert (
        ok_json("modify_user_permissions", dict(args, new_permissions=[]))["new_permissions"] == []
    )


def test_modify_user_permissions_errors() -> None:
    args = {"user_id": "USR-001876", "org_id": "ORG-000004", "new_permissions": ["admin"]}
    assert error("modify_user_permissions", dict(args, user_id="USR-000000")) == "User not found"
    assert error("modify_user_permissions", dict(args, org_id="ORG-000001")) == (
        "User USR-001876 is not in organization ORG-000001"
    )
    message = error("modify_user_permissions", dict(args, new_permissions=["admin", "root"]))
    assert message.startswith("Invalid permissions: root; valid permissions: admin, manage_users")


def test_modify_user_status_changes_the_status() -> None:
    args = {"user_id": "USR-00101", "new_status": "active", "org_id": "ORG-000013"}
    assert ok_json("modify_user_status", args) == {
        "message": "User status updated from 'suspended' to 'active'",
        "user_id": "USR-00101",
        "old_status": "suspended",
        "new_status": "active",
    }
    assert User.objects.get(pk="USR-00101").status == "active"
    assert error("modify_user_status", args) == "User is already active"


def test_modify_user_status_errors() -> None:
    args = {"user_id": "USR-000002", "new_status": "suspended", "org_id": "ORG-000001"}
    assert error("modify_user_status", dict(args, new_status="disabled")) == (
        "Invalid status 'disabled'; valid statuses: active, pending, suspended, terminated, locked"
    )
    assert error("modify_user_status", dict(args, org_id="ORG-000002")) == (
        "User USR-000002 is not in organization ORG-000002"
    )
    assert error("modify_user_status", dict(args, user_id="USR-0")) == "User not found"
    ok_json("modify_user_status", dict(args, new_status="terminated"))
    assert error("modify_user_status", dict(args, new_status="active")) == (
        "A terminated user cannot change status"
    )


# --- keyterms -------------------------------------------------------------------------------


def test_keyterms_start_with_plans_then_people_then_organizations() -> None:
    everything = hr_keyterms()
    assert everything[:3] == ["Basic", "Professional", "Enterprise"]
    assert everything[3] == "Emma Kovacs"  # USR-000001
    assert everything.index("Next-Gen Advanced & Premier") == 3 + len(USERS)
    assert len(everything) == 3 + len(USERS) + len(ORGANIZATIONS)
    terms = scenario_keyterms(scenario="hr")
    assert len(terms) == 100  # the registry's cap, after removing repeated names
    assert terms[:3] == ["Basic", "Professional", "Enterprise"]
    assert "Ivan Kovacs" in terms and "Daiki Jackson" in terms
