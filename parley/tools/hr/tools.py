"""The 16 HR-software tools of ``tools.json``, implemented over the HR models.

Each function is named after its tool, takes the tool's arguments as keyword arguments and
returns the text the LLM reads: ``json.dumps`` output (Python's default separators and
``ensure_ascii``). Failures are JSON objects with an ``"error"`` key (``{"error": "User not
found"}``), which the registry counts as not ``ok``.

Where ``tests/fixtures/scenarios/hr/expected.json`` records a meaningful reference result
(Benchforce's ``hr_software`` tools, commit ``15afc3b``; Apache-2.0, Copyright (c) 2024
Salesforce, Inc.), the result is the same: ``calculate``, ``get_subscription_details``,
``transfer_to_human_agents``, ``verify_downtime``'s "no downtime" answer and the user tools'
``{"error": "User not found"}`` and ``[]``. Everything else is designed from the tool schemas
and ``policy.md``; ``README.md`` lists those choices. In short:

- records are returned in the seed-file format (:meth:`HRRecord.as_record`); lists in
  insertion order (``position``);
- "now" is :func:`now`, fixed at the policy's 2024-05-15 15:00 (UTC, as the reference's
  ``verify_downtime``); tests patch it;
- writes (seats, tier, user permissions and status) check the policy's rules first and change
  nothing when they refuse.

Argument validation (types, required arguments) happens before these functions run, in
:func:`parley.tools.registry.tool_run`.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import math
import operator
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from django.db import connections

from parley.tools.environments import active_alias, environment_atomic
from parley.tools.hr.models import (
    PERMISSIONS,
    DowntimeLog,
    Organization,
    Subscription,
    User,
    name_fold,
)

#: The policy's "current time" (2024-05-15 15:00:00), which the reference's verify_downtime
#: hard-codes as 2024-05-15T15:00:00+00:00.
POLICY_NOW = dt.datetime(2024, 5, 15, 15, 0, tzinfo=dt.UTC)

#: Credit requests must be submitted within 30 days of the incident (policy).
CREDIT_WINDOW = dt.timedelta(days=30)

#: The policy's availability SLA (percent) and credit rate (percent of the monthly fee per
#: 0.1 % below the SLA), per tier. 99.99 % of a 30-day month allows 4.32 minutes of downtime.
SLA_PERCENT = {
    "basic": Fraction("99.9"),
    "professional": Fraction("99.95"),
    "enterprise": Fraction("99.99"),
}
CREDIT_RATE_PERCENT = {"basic": 3, "professional": 5, "enterprise": 10}
MINUTES_PER_MONTH = 30 * 24 * 60

TIERS = ("basic", "professional", "enterprise")
#: Seat price and usage limits per tier, as every seed subscription has them (None =
#: "unlimited"), and the policy's minimum seats.
TIER_PRICE_PER_SEAT = {"basic": 10, "professional": 20, "enterprise": 40}
TIER_API_CALLS_PER_DAY = {"basic": 1000, "professional": 10000, "enterprise": 100000}
TIER_STORAGE_GB: dict[str, int | None] = {"basic": 100, "professional": 1000, "enterprise": None}
TIER_MINIMUM_SEATS = {"basic": 5, "professional": 25, "enterprise": 100}
#: Support levels in ascending order, and the lowest each tier comes with in the seed.
SUPPORT_LEVELS = ("standard", "premium", "platinum")
TIER_MINIMUM_SUPPORT = {"basic": "standard", "professional": "standard", "enterprise": "premium"}

USER_STATUSES = tuple(User.Status.values)

#: Longest expression ``calculate`` evaluates.
EXPRESSION_MAX_LENGTH = 1000


def now() -> dt.datetime:
    """The scenario's current time (aware, UTC): :data:`POLICY_NOW`.

    The downtime logs cover the 30 days before it. Tests patch this function.
    """
    return POLICY_NOW


def _dumps(value: Any) -> str:
    # Python's defaults on purpose: the reference results are plain json.dumps output.
    return json.dumps(value)


def _error(message: str) -> str:
    return _dumps({"error": message})


def _db_can_hold(value: str) -> bool:
    """Whether ``value`` could be stored in a text column (PostgreSQL rejects NUL characters);
    a lookup by a value the database cannot hold matches nothing."""
    return "\x00" not in value or connections[active_alias()].vendor != "postgresql"


def _get(model: type[Any], pk: str, *, for_update: bool = False) -> Any:
    """The row of ``model`` with primary key ``pk`` (exact, case-sensitive), or ``None``."""
    if not _db_can_hold(pk):
        return None
    rows = model.objects.select_for_update() if for_update else model.objects
    return rows.filter(pk=pk).first()


# --- utility --------------------------------------------------------------------------------

_BINARY_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_UNARY_OPERATORS: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _arithmetic(node: ast.AST) -> int | float:
    """Evaluate a parsed expression of numbers, parentheses, unary ``+``/``-`` and ``+ - * /``
    with Python's semantics. Raises ``ValueError`` for anything else."""
    if isinstance(node, ast.Expression):
        return _arithmetic(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPERATORS:
        return _BINARY_OPERATORS[type(node.op)](_arithmetic(node.left), _arithmetic(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPERATORS:
        return _UNARY_OPERATORS[type(node.op)](_arithmetic(node.operand))
    raise ValueError(f"unsupported element {type(node).__name__}")


def calculate(*, expression: str) -> str:
    """Evaluate an arithmetic expression: ``{"result": <number>}``.

    Python's arithmetic: integers stay integers (``"88 * 123"`` → ``10824``), ``/`` gives a
    float. Errors: ``{"error": "Invalid expression: ..."}`` (anything but numbers,
    parentheses, ``+ - * /``, or longer than 1000 characters), ``{"error": "Division by
    zero"}``, ``{"error": "The result is too large"}``.
    """
    if len(expression) > EXPRESSION_MAX_LENGTH:
        return _error(f"Invalid expression: longer than {EXPRESSION_MAX_LENGTH} characters")
    try:
        result = _arithmetic(ast.parse(expression.strip(), mode="eval"))
        text = _dumps({"result": result})
    except ZeroDivisionError:
        return _error("Division by zero")
    except OverflowError:
        return _error("The result is too large")
    except (SyntaxError, ValueError, RecursionError):
        return _error("Invalid expression: use numbers, parentheses and + - * /")
    if isinstance(result, float) and not math.isfinite(result):
        return _error("The result is too large")
    return text


def transfer_to_human_agents(*, reason: str) -> str:
    """Hand the conversation to a human: ``{"message": "Transferring to human agent",
    "reason", "status": "transferred"}`` (the reference's result). Writes nothing."""
    return _dumps(
        {"message": "Transferring to human agent", "reason": reason, "status": "transferred"}
    )


def exit_conversation() -> str:
    """End the conversation: ``{"message": "Conversation ended", "status": "ended"}``. Writes
    nothing; ending the call is the platform's business."""
    return _dumps({"message": "Conversation ended", "status": "ended"})


# --- organizations and subscriptions ------------------------------------------------------


def find_org_by_id(*, org_id: str) -> str:
    """The organization's record. Error: ``{"error": "Organization not found"}``."""
    organization = _get(Organization, org_id)
    if organization is None:
        return _error("Organization not found")
    return _dumps(organization.as_record())


def find_org_by_name(*, query: str) -> str:
    """Every organization whose name contains ``query`` ignoring case (and surrounding
    spaces), as a list of records in insertion order; ``[]`` when none matches. Error:
    ``{"error": "Query must not be empty"}``."""
    folded = name_fold(query.strip())
    if not folded:
        return _error("Query must not be empty")
    if not _db_can_hold(folded):
        return _dumps([])
    matches = Organization.objects.filter(name_folded__contains=folded).order_by("position")
    return _dumps([organization.as_record() for organization in matches])


def get_org_details(*, org_id: str) -> str:
    """The organization's record plus ``"subscription"``: its subscription's record (``null``
    if that id does not exist). Error: ``{"error": "Organization not found"}``."""
    organization = _get(Organization, org_id)
    if organization is None:
        return _error("Organization not found")
    subscription = _get(Subscription, organization.subscription_id)
    return _dumps(
        {
            **organization.as_record(),
            "subscription": None if subscription is None else subscription.as_record(),
        }
    )


def get_subscription_details(*, subscription_id: str) -> str:
    """The subscription's record (tier, seats, dates, price, modules, limits, add-ons). Error:
    ``{"error": "Subscription not found"}``."""
    subscription = _get(Subscription, subscription_id)
    if subscription is None:
        return _error("Subscription not found")
    return _dumps(subscription.as_record())


def _total_price(subscription: Subscription) -> float:
    """Seats × price per seat, less the volume discount (the seed's formula)."""
    factor = 1 - subscription.volume_discount_percentage / 100
    return subscription.seats * subscription.price_per_seat * factor


@environment_atomic
def modify_subscription_seats(*, subscription_id: str, new_seat_count: int) -> str:
    """Raise the number of seats; ``concurrent_users`` follows and ``total_price`` is
    recomputed with the subscription's discount (which does not change).

    ``{"message": "Seats updated from <old> to <new>", "old_seats", "new_seats",
    "subscription": record}``. Errors: subscription not found; ``"Seats can only be added; a
    reduction takes effect at renewal (current: <n> seats)"``; ``"The subscription already
    has <n> seats"``.
    """
    subscription = _get(Subscription, subscription_id, for_update=True)
    if subscription is None:
        return _error("Subscription not found")
    new_seat_count = int(new_seat_count)
    old_seats = subscription.seats
    if new_seat_count == old_seats:
        return _error(f"The subscription already has {old_seats} seats")
    if new_seat_count < old_seats:
        return _error(
            "Seats can only be added; a reduction takes effect at renewal "
            f"(current: {old_seats} seats)"
        )
    subscription.seats = new_seat_count
    subscription.concurrent_users = new_seat_count
    subscription.total_price = _total_price(subscription)
    subscription.save(update_fields=["seats", "concurrent_users", "total_price"])
    return _dumps(
        {
            "message": f"Seats updated from {old_seats} to {new_seat_count}",
            "old_seats": old_seats,
            "new_seats": new_seat_count,
            "subscription": subscription.as_record(),
        }
    )


@environment_atomic
def modify_subscription_tier(*, subscription_id: str, new_tier: str) -> str:
    """Upgrade the tier now; the seat price, API and storage limits become the new tier's, the
    support level is raised to the tier's minimum, and ``total_price`` is recomputed.

    ``{"message": "Subscription upgraded from <old> to <new>", "old_tier", "new_tier",
    "subscription": record}``. Errors, in this order: subscription not found; ``"Invalid tier
    '<tier>'; valid tiers: basic, professional, enterprise"``; ``"The subscription is already
    on the <tier> tier"``; ``"Downgrades take effect only at renewal (<renewal_date>)"``;
    ``"The <tier> tier needs at least <n> seats (the subscription has <m>)"``.
    """
    subscription = _get(Subscription, subscription_id, for_update=True)
    if subscription is None:
        return _error("Subscription not found")
    if new_tier not in TIERS:
        return _error(f"Invalid tier '{new_tier}'; valid tiers: {', '.join(TIERS)}")
    old_tier = subscription.tier
    if new_tier == old_tier:
        return _error(f"The subscription is already on the {new_tier} tier")
    if TIERS.index(new_tier) < TIERS.index(old_tier):
        renewal = subscription.as_record()["renewal_date"]
        return _error(f"Downgrades take effect only at renewal ({renewal})")
    minimum = TIER_MINIMUM_SEATS[new_tier]
    if subscription.seats < minimum:
        return _error(
            f"The {new_tier} tier needs at least {minimum} seats "
            f"(the subscription has {subscription.seats})"
        )
    subscription.tier = new_tier
    subscription.price_per_seat = TIER_PRICE_PER_SEAT[new_tier]
    subscription.api_calls_per_day = TIER_API_CALLS_PER_DAY[new_tier]
    subscription.storage_gb = TIER_STORAGE_GB[new_tier]
    floor = TIER_MINIMUM_SUPPORT[new_tier]
    if SUPPORT_LEVELS.index(subscription.support_level) < SUPPORT_LEVELS.index(floor):
        subscription.support_level = floor
    subscription.total_price = _total_price(subscription)
    subscription.save()
    return _dumps(
        {
            "message": f"Subscription upgraded from {old_tier} to {new_tier}",
            "old_tier": old_tier,
            "new_tier": new_tier,
            "subscription": subscription.as_record(),
        }
    )


# --- service credits ----------------------------------------------------------------------


def _timestamp_read(text: str) -> dt.datetime | None:
    """An aware datetime from ISO 8601 text (``Z`` or an offset; none means UTC), or ``None``."""
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


NO_DOWNTIME = "No downtime found at the specified time"


def verify_downtime(*, subscription_id: str, incident_timestamp: str) -> str:
    """Whether the platform was down for the subscription's organization at that moment.

    ``{"verified": true, "message": "Downtime found at the specified time", "downtime_logs":
    [record, ...]}`` with every log of the organization whose ``start_time``–``end_time``
    (inclusive) contains the moment, in list order. Otherwise ``{"verified": false,
    "message": "No downtime found at the specified time"}`` (also for a moment after
    :func:`now`), or ``"The incident is more than 30 days old and cannot be verified for
    service credits"`` before the 30-day credit window. Errors: ``{"error": "Subscription not
    found"}``; ``{"error": "Invalid timestamp '<text>'; use ISO 8601, e.g.
    2024-05-15T15:00:00Z"}``.
    """
    subscription = _get(Subscription, subscription_id)
    if subscription is None:
        return _error("Subscription not found")
    moment = _timestamp_read(incident_timestamp)
    if moment is None:
        return _error(
            f"Invalid timestamp '{incident_timestamp}'; use ISO 8601, e.g. 2024-05-15T15:00:00Z"
        )
    current = now()
    if moment > current:
        return _dumps({"verified": False, "message": NO_DOWNTIME})
    if moment < current - CREDIT_WINDOW:
        return _dumps(
            {
                "verified": False,
                "message": "The incident is more than 30 days old and cannot be verified "
                "for service credits",
            }
        )
    logs = DowntimeLog.objects.filter(
        org_id=subscription.org_id, start_time__lte=moment, end_time__gte=moment
    ).order_by("position")
    records = [log.as_record() for log in logs]
    if not records:
        return _dumps({"verified": False, "message": NO_DOWNTIME})
    return _dumps(
        {
            "verified": True,
            "message": "Downtime found at the specified time",
            "downtime_logs": records,
        }
    )


def _round_half_up(value: Fraction, places: int) -> float:
    """``value`` (not negative) rounded half up to ``places`` decimals, as a float."""
    scale = 10**places
    return math.floor(value * scale + Fraction(1, 2)) / scale


def calculate_service_credits(*, subscription_id: str, downtime_minutes: int) -> str:
    """The service credit the policy grants for ``downtime_minutes`` in a 30-day month.

    Uptime = (43200 − downtime) / 43200; the credit is the tier's rate (basic 3 %,
    professional 5 %, enterprise 10 % of the monthly fee) per 0.1 % of uptime below the tier's
    SLA (99.9 / 99.95 / 99.99 %), pro rata, at most 100 %; the monthly fee is the
    subscription's ``total_price``. Returns ``{"subscription_id", "tier", "downtime_minutes",
    "sla_percentage", "allowed_downtime_minutes", "uptime_percentage" (4 decimals),
    "credit_percentage", "monthly_fee", "credit_amount" (2 decimals), "message"}``. Errors:
    ``{"error": "Subscription not found"}``; ``{"error": "downtime_minutes must not be
    negative"}``.
    """
    subscription = _get(Subscription, subscription_id)
    if subscription is None:
        return _error("Subscription not found")
    downtime_minutes = int(downtime_minutes)
    if downtime_minutes < 0:
        return _error("downtime_minutes must not be negative")
    tier = subscription.tier
    sla = SLA_PERCENT[tier]
    allowed = MINUTES_PER_MONTH * (100 - sla) / 100
    downtime = min(Fraction(downtime_minutes), Fraction(MINUTES_PER_MONTH))
    uptime = 100 * (MINUTES_PER_MONTH - downtime) / MINUTES_PER_MONTH
    shortfall = max(sla - uptime, Fraction(0))
    credit_percentage = min(CREDIT_RATE_PERCENT[tier] * shortfall / Fraction("0.1"), Fraction(100))
    _, monthly_fee = subscription.price_numbers()
    credit_amount = Fraction(monthly_fee) * credit_percentage / 100
    if credit_percentage == 0:
        message = "The downtime is within the SLA; no service credits are due"
    else:
        message = (
            f"Service credit of {_round_half_up(credit_percentage, 2)}% of the monthly fee, "
            "applied to the next billing cycle"
        )
    return _dumps(
        {
            "subscription_id": subscription.id,
            "tier": tier,
            "downtime_minutes": downtime_minutes,
            "sla_percentage": float(sla),
            "allowed_downtime_minutes": float(allowed),
            "uptime_percentage": _round_half_up(uptime, 4),
            "credit_percentage": _round_half_up(credit_percentage, 2),
            "monthly_fee": monthly_fee,
            "credit_amount": _round_half_up(credit_amount, 2),
            "message": message,
        }
    )


# --- users --------------------------------------------------------------------------------


def get_user_details(*, user_id: str) -> str:
    """The user's record (name, e-mail, roles, department, permissions, status...). Error:
    ``{"error": "User not found"}``."""
    user = _get(User, user_id)
    if user is None:
        return _error("User not found")
    return _dumps(user.as_record())


def find_user_by_email(*, email: str) -> str:
    """The first user (insertion order) whose e-mail matches, ignoring case and surrounding
    spaces. Error: ``{"error": "User not found"}``."""
    folded = name_fold(email.strip())
    user = None
    if folded and _db_can_hold(folded):
        user = User.objects.filter(email_folded=folded).order_by("position").first()
    if user is None:
        return _error("User not found")
    return _dumps(user.as_record())


def get_all_users_in_org(*, org_id: str) -> str:
    """The organization's users as a list of records in insertion order (``[]`` if it has
    none). Error: ``{"error": "Organization not found"}``."""
    organization = _get(Organization, org_id)
    if organization is None:
        return _error("Organization not found")
    users = User.objects.filter(org=organization).order_by("position")
    return _dumps([user.as_record() for user in users])


def _user_in_org(user_id: str, org_id: str) -> User | str:
    """The user to modify (row locked), or the error result: not found, or not in ``org_id``."""
    user = _get(User, user_id, for_update=True)
    if user is None:
        return _error("User not found")
    if user.org_id != org_id:
        return _error(f"User {user_id} is not in organization {org_id}")
    return user


@environment_atomic
def modify_user_permissions(*, user_id: str, org_id: str, new_permissions: list[str]) -> str:
    """Replace the user's permissions with ``new_permissions`` (duplicates dropped, order
    kept).

    ``{"message": "Permissions updated successfully", "user_id", "old_permissions",
    "new_permissions"}``. Errors, in this order: ``"User not found"``; ``"User <id> is not in
    organization <org>"``; ``"Invalid permissions: <names>; valid permissions: ..."``.
    """
    user = _user_in_org(user_id, org_id)
    if isinstance(user, str):
        return user
    invalid = [name for name in new_permissions if name not in PERMISSIONS]
    if invalid:
        valid = ", ".join(PERMISSIONS)
        return _error(f"Invalid permissions: {', '.join(invalid)}; valid permissions: {valid}")
    old_permissions = list(user.permissions)
    user.permissions = list(dict.fromkeys(new_permissions))
    user.save(update_fields=["permissions"])
    return _dumps(
        {
            "message": "Permissions updated successfully",
            "user_id": user.id,
            "old_permissions": old_permissions,
            "new_permissions": user.permissions,
        }
    )


@environment_atomic
def modify_user_status(*, user_id: str, new_status: str, org_id: str) -> str:
    """Set the user's status (active, pending, suspended, terminated or locked).

    ``{"message": "User status updated from '<old>' to '<new>'", "user_id", "old_status",
    "new_status"}``. Errors, in this order: ``"User not found"``; ``"User <id> is not in
    organization <org>"``; ``"Invalid status '<status>'; valid statuses: ..."``; ``"User is
    already <status>"``; ``"A terminated user cannot change status"``.
    """
    user = _user_in_org(user_id, org_id)
    if isinstance(user, str):
        return user
    if new_status not in USER_STATUSES:
        return _error(f"Invalid status '{new_status}'; valid statuses: {', '.join(USER_STATUSES)}")
    old_status = user.status
    if new_status == old_status:
        return _error(f"User is already {new_status}")
    if old_status == User.Status.TERMINATED:
        return _error("A terminated user cannot change status")
    user.status = new_status
    user.save(update_fields=["status"])
    return _dumps(
        {
            "message": f"User status updated from '{old_status}' to '{new_status}'",
            "user_id": user.id,
            "old_status": old_status,
            "new_status": new_status,
        }
    )


#: Tool name → implementation, for :func:`parley.tools.registry.scenario_tools_register`.
HR_TOOLS: dict[str, Callable[..., str]] = {
    "calculate": calculate,
    "calculate_service_credits": calculate_service_credits,
    "exit_conversation": exit_conversation,
    "find_org_by_id": find_org_by_id,
    "find_org_by_name": find_org_by_name,
    "find_user_by_email": find_user_by_email,
    "get_all_users_in_org": get_all_users_in_org,
    "get_org_details": get_org_details,
    "get_subscription_details": get_subscription_details,
    "get_user_details": get_user_details,
    "modify_subscription_seats": modify_subscription_seats,
    "modify_subscription_tier": modify_subscription_tier,
    "modify_user_permissions": modify_user_permissions,
    "modify_user_status": modify_user_status,
    "transfer_to_human_agents": transfer_to_human_agents,
    "verify_downtime": verify_downtime,
}

#: The tools that write to the database.
HR_SIDE_EFFECTING: frozenset[str] = frozenset(
    {
        "modify_subscription_seats",
        "modify_subscription_tier",
        "modify_user_permissions",
        "modify_user_status",
    }
)
