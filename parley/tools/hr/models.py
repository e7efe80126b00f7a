"""The HR-software scenario's domain: customer organizations, their subscriptions, the
platform's downtime log and the organizations' users.

The data come from Benchforce's ``hr_software`` environment (Apache-2.0, Copyright (c) 2024
Salesforce, Inc.; see ``README.md`` and the licence file beside this module), except the users,
which the snapshot lacks and which are generated here (``users_generate.py``, ``README.md``).
Benchforce keeps ``organizations``, ``subscriptions`` and ``users`` as JSON objects keyed by
record id and ``downtime_logs`` as a JSON **list**; its tools iterate them in that order. Two
things reproduce that here:

- every record keeps the seed's string id (``"ORG-000001"``, ``"DT-000578"``) as its primary
  key (downtime-log ids are unique in the seed, so the list's records have one too), and
- every record has a ``position``: its index in the collection's insertion order (the seed
  file's order, then creation order). Tools always ``order_by("position")``.

Each model turns a seed record into a row (:meth:`HRRecord.from_record`, strict about keys and
JSON types) and back (:meth:`HRRecord.as_record`, same keys in the same order), so
:func:`parley.tools.hr.seed.hr_state_export` reproduces the seed files exactly. Nested objects
of a fixed shape (a subscription's ``usage_limits``, a user's ``name`` and ``office``) are
columns; lists are ``JSONField`` lists; lists of small objects (``offices``, ``exclusions``)
are ``JSONField`` lists whose objects are rebuilt in the seed's key order on export, because
PostgreSQL's ``jsonb`` does not keep object key order.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from django.db import models

from parley.tools.records import OrderedRecord

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

#: Key order of the small objects kept inside JSON lists.
OFFICE_KEYS = ("region", "city", "is_headquarters")
EXCLUSION_KEYS = ("type", "description")
USAGE_LIMIT_KEYS = ("api_calls_per_day", "storage_gb", "concurrent_users")
UNLIMITED = "unlimited"

#: Everything a ``modify_user_permissions`` call may grant (the tool schema's list).
PERMISSIONS = (
    "admin",
    "manage_users",
    "manage_billing",
    "manage_security",
    "manage_team",
    "view_reports",
    "approve_requests",
    "view_own_profile",
    "submit_requests",
    "access_api",
    "deploy_code",
    "run_reports",
    "export_data",
    "manage_documents",
    "approve_basic_requests",
)


def timestamp_parse(value: Any, *, where: str) -> dt.datetime:
    """An aware UTC datetime from the seed's ``YYYY-MM-DDTHH:MM:SSZ`` text.

    Raises ``ValueError`` (naming ``where``) for anything else.
    """
    if isinstance(value, str):
        try:
            return dt.datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=dt.UTC)
        except ValueError:
            pass
    raise ValueError(f"{where}: expected a timestamp like 2024-05-15T15:00:00Z, not {value!r}")


def timestamp_format(value: dt.datetime | None) -> str | None:
    """The seed's text form of a datetime (UTC, whole seconds); ``None`` stays ``None``."""
    return None if value is None else value.astimezone(dt.UTC).strftime(TIMESTAMP_FORMAT)


def name_fold(value: str) -> str:
    """Case folding for name and e-mail lookups (``str.lower``), done in Python so that SQLite
    and PostgreSQL compare the same folded text."""
    return value.lower()


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def json_expect(value: Any, kind: type | tuple[type, ...], *, where: str) -> Any:
    """``value`` if it has the JSON type ``kind`` (``bool`` is not an ``int``), else
    ``ValueError`` naming ``where``."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        raise ValueError(f"{where}: expected a JSON {_type_name(kind)}, not {value!r}")
    return value


def strings_expect(value: Any, *, where: str) -> list[str]:
    """``value`` if it is a list of strings, else ``ValueError``."""
    json_expect(value, list, where=where)
    for item in value:
        json_expect(item, str, where=where)
    return list(value)


def object_expect(value: Any, keys: tuple[str, ...], *, where: str) -> dict[str, Any]:
    """``value`` if it is an object with exactly ``keys``, else ``ValueError``."""
    json_expect(value, dict, where=where)
    if sorted(value) != sorted(keys):
        raise ValueError(f"{where}: expected the keys {list(keys)}, not {list(value)}")
    return value


def objects_expect(
    value: Any, keys: tuple[str, ...], types: tuple[type, ...], *, where: str
) -> list[dict[str, Any]]:
    """A list of objects with exactly ``keys`` whose values have ``types``, else ``ValueError``."""
    json_expect(value, list, where=where)
    for item in value:
        object_expect(item, keys, where=where)
        for key, kind in zip(keys, types, strict=True):
            json_expect(item[key], kind, where=f"{where}.{key}")
    return list(value)


def objects_ordered(items: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """``items`` with every object's keys in ``keys`` order (``jsonb`` may have reordered them)."""
    return [{key: item[key] for key in keys} for item in items]


class HRRecord(OrderedRecord):
    """Common part of every HR collection: insertion order and the JSON round trip.

    ``COLLECTION`` is the collection name, ``DATA_FILE`` its seed file in ``data/`` and
    ``JSON_KEYS`` the keys of a seed record in file order. Subclasses implement
    :meth:`values_from_record` and :meth:`as_record`.
    """

    COLLECTION: ClassVar[str]
    DATA_FILE: ClassVar[str]
    ID_KEY: ClassVar[str] = "id"
    JSON_KEYS: ClassVar[tuple[str, ...]]

    class Meta(OrderedRecord.Meta):
        abstract = True

    @classmethod
    def from_record(cls, record: Any, *, position: int) -> HRRecord:
        """Build an unsaved row from a seed-file record.

        Raises ``ValueError`` if the record is not an object with exactly ``JSON_KEYS`` or a
        value does not have the type (or the timestamp format) the model expects.
        """
        record_id = record.get(cls.ID_KEY) if isinstance(record, dict) else None
        where = f"{cls.COLLECTION} record {record_id!r}"
        json_expect(record, dict, where=where)
        missing = sorted(set(cls.JSON_KEYS) - set(record))
        extra = sorted(set(record) - set(cls.JSON_KEYS))
        if missing or extra:
            raise ValueError(f"{where}: missing keys {missing}, unknown keys {extra}")
        row = cls(position=position, **cls.values_from_record(record, where=where))
        row._fold_lookup_fields()
        return row

    @classmethod
    def values_from_record(cls, record: dict[str, Any], *, where: str) -> dict[str, Any]:
        """The model field values of a (key-checked) seed record. Raises ``ValueError``."""
        raise NotImplementedError

    def as_record(self) -> dict[str, Any]:
        """The record exactly as in the seed file (same keys and key order, same JSON types)."""
        raise NotImplementedError


class Organization(HRRecord):
    """A customer organization of the HR software (``ORG-000001``).

    ``subscription_id`` is the id of its subscription, kept as text: the two collections point
    at each other, and the database enforces the other direction (``Subscription.org``).
    """

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"
        PENDING_VERIFICATION = "pending_verification"
        DEACTIVATED = "deactivated"

    class SizeCategory(models.TextChoices):
        SMALL = "small"
        MEDIUM = "medium"
        LARGE = "large"
        ENTERPRISE = "enterprise"

    COLLECTION = "organizations"
    DATA_FILE = "data_organizations.json"
    JSON_KEYS = (
        "id",
        "name",
        "primary_email",
        "secondary_email",
        "billing_address",
        "payment_methods",
        "subscription_id",
        "industry",
        "size_category",
        "offices",
        "primary_region",
        "language",
        "created_date",
        "status",
    )

    id = models.CharField(primary_key=True, max_length=32)
    name = models.CharField(max_length=200)
    name_folded = models.CharField(
        max_length=200,
        editable=False,
        help_text="name.lower(), kept in step by save(): the key of the by-name search.",
    )
    # Text, not EmailField: the seed has addresses such as admin@next-genadvanced&premier.com.
    primary_email = models.CharField(max_length=254)
    secondary_email = models.CharField(max_length=254, null=True, blank=True)
    billing_address = models.CharField(max_length=300)
    payment_methods = models.JSONField(default=list, blank=True, help_text="List of methods.")
    subscription_id = models.CharField(max_length=32, db_index=True)
    industry = models.CharField(max_length=50)
    size_category = models.CharField(max_length=20, choices=SizeCategory.choices)
    offices = models.JSONField(
        default=list, blank=True, help_text='List of {"region", "city", "is_headquarters"}.'
    )
    primary_region = models.CharField(max_length=20)
    language = models.CharField(max_length=10)
    created_date = models.DateTimeField()
    status = models.CharField(max_length=30, choices=Status.choices, default=Status.ACTIVE)

    def _fold_lookup_fields(self) -> None:
        self.name_folded = name_fold(self.name)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @classmethod
    def values_from_record(cls, record: dict[str, Any], *, where: str) -> dict[str, Any]:
        for key in ("id", "name", "primary_email", "billing_address", "subscription_id"):
            json_expect(record[key], str, where=f"{where}.{key}")
        for key in ("industry", "size_category", "primary_region", "language", "status"):
            json_expect(record[key], str, where=f"{where}.{key}")
        json_expect(record["secondary_email"], (str, type(None)), where=f"{where}.secondary_email")
        return {
            "id": record["id"],
            "name": record["name"],
            "primary_email": record["primary_email"],
            "secondary_email": record["secondary_email"],
            "billing_address": record["billing_address"],
            "payment_methods": strings_expect(
                record["payment_methods"], where=f"{where}.payment_methods"
            ),
            "subscription_id": record["subscription_id"],
            "industry": record["industry"],
            "size_category": record["size_category"],
            "offices": objects_expect(
                record["offices"], OFFICE_KEYS, (str, str, bool), where=f"{where}.offices"
            ),
            "primary_region": record["primary_region"],
            "language": record["language"],
            "created_date": timestamp_parse(record["created_date"], where=f"{where}.created_date"),
            "status": record["status"],
        }

    def as_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "primary_email": self.primary_email,
            "secondary_email": self.secondary_email,
            "billing_address": self.billing_address,
            "payment_methods": list(self.payment_methods),
            "subscription_id": self.subscription_id,
            "industry": self.industry,
            "size_category": self.size_category,
            "offices": objects_ordered(self.offices, OFFICE_KEYS),
            "primary_region": self.primary_region,
            "language": self.language,
            "created_date": timestamp_format(self.created_date),
            "status": self.status,
        }


class Subscription(HRRecord):
    """An organization's subscription (``SUB-000001``): tier, seats, price, modules, limits.

    Price numbers keep the seed's JSON types: a zero ``volume_discount_percentage`` is written
    as the integer ``0`` and its ``total_price`` as an integer; every other discount and total
    as a float (``15.0``, ``3238.5``). ``modules`` is the list of configured module names (the
    seed maps each configured module to ``true`` and lists no other). ``None`` in
    ``api_calls_per_day`` or ``storage_gb`` is the seed's ``"unlimited"``.
    """

    class Tier(models.TextChoices):
        BASIC = "basic", "Basic"
        PROFESSIONAL = "professional", "Professional"
        ENTERPRISE = "enterprise", "Enterprise"

    class BillingFrequency(models.TextChoices):
        MONTHLY = "monthly"
        ANNUAL = "annual"

    class SupportLevel(models.TextChoices):
        STANDARD = "standard"
        PREMIUM = "premium"
        PLATINUM = "platinum"

    COLLECTION = "subscriptions"
    DATA_FILE = "data_subscriptions.json"
    JSON_KEYS = (
        "id",
        "org_id",
        "tier",
        "seats",
        "start_date",
        "renewal_date",
        "contract_term_years",
        "billing_frequency",
        "auto_renewal",
        "price_per_seat",
        "volume_discount_percentage",
        "total_price",
        "modules",
        "support_level",
        "usage_limits",
        "add_ons",
    )

    id = models.CharField(primary_key=True, max_length=32)
    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="subscriptions")
    tier = models.CharField(max_length=20, choices=Tier.choices)
    seats = models.PositiveIntegerField()
    start_date = models.DateTimeField()
    renewal_date = models.DateTimeField()
    contract_term_years = models.PositiveSmallIntegerField()
    billing_frequency = models.CharField(max_length=10, choices=BillingFrequency.choices)
    auto_renewal = models.BooleanField()
    price_per_seat = models.PositiveIntegerField()
    volume_discount_percentage = models.FloatField(default=0)
    total_price = models.FloatField()
    modules = models.JSONField(
        default=list, blank=True, help_text="Configured module names, in order."
    )
    support_level = models.CharField(max_length=20, choices=SupportLevel.choices)
    api_calls_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text='usage_limits.api_calls_per_day; empty = "unlimited".'
    )
    storage_gb = models.PositiveIntegerField(
        null=True, blank=True, help_text='usage_limits.storage_gb; empty = "unlimited".'
    )
    concurrent_users = models.PositiveIntegerField(help_text="usage_limits.concurrent_users")
    add_ons = models.JSONField(default=list, blank=True, help_text="List of add-on names.")

    def __str__(self) -> str:
        return f"{self.id} ({self.tier}, {self.seats} seats)"

    @classmethod
    def values_from_record(cls, record: dict[str, Any], *, where: str) -> dict[str, Any]:
        for key in ("id", "org_id", "tier", "billing_frequency", "support_level"):
            json_expect(record[key], str, where=f"{where}.{key}")
        for key in ("seats", "contract_term_years", "price_per_seat"):
            json_expect(record[key], int, where=f"{where}.{key}")
        json_expect(record["auto_renewal"], bool, where=f"{where}.auto_renewal")
        discount, total = record["volume_discount_percentage"], record["total_price"]
        json_expect(discount, (int, float), where=f"{where}.volume_discount_percentage")
        json_expect(total, (int, float), where=f"{where}.total_price")
        whole = discount == 0
        if isinstance(discount, int) != whole or isinstance(total, int) != whole:
            raise ValueError(
                f"{where}: a zero volume_discount_percentage and its total_price must be "
                f"JSON integers and all other values floats, not {discount!r} and {total!r}"
            )
        modules = json_expect(record["modules"], dict, where=f"{where}.modules")
        if not all(value is True for value in modules.values()):
            raise ValueError(f"{where}.modules: every configured module must map to true")
        limits = object_expect(
            record["usage_limits"], USAGE_LIMIT_KEYS, where=f"{where}.usage_limits"
        )
        for key in ("api_calls_per_day", "storage_gb"):
            value = limits[key]
            if value != UNLIMITED:
                json_expect(value, int, where=f"{where}.usage_limits.{key}")
        json_expect(limits["concurrent_users"], int, where=f"{where}.usage_limits.concurrent_users")
        return {
            "id": record["id"],
            "org_id": record["org_id"],
            "tier": record["tier"],
            "seats": record["seats"],
            "start_date": timestamp_parse(record["start_date"], where=f"{where}.start_date"),
            "renewal_date": timestamp_parse(record["renewal_date"], where=f"{where}.renewal_date"),
            "contract_term_years": record["contract_term_years"],
            "billing_frequency": record["billing_frequency"],
            "auto_renewal": record["auto_renewal"],
            "price_per_seat": record["price_per_seat"],
            "volume_discount_percentage": float(discount),
            "total_price": float(total),
            "modules": list(modules),
            "support_level": record["support_level"],
            "api_calls_per_day": None
            if limits["api_calls_per_day"] == UNLIMITED
            else limits["api_calls_per_day"],
            "storage_gb": None if limits["storage_gb"] == UNLIMITED else limits["storage_gb"],
            "concurrent_users": limits["concurrent_users"],
            "add_ons": strings_expect(record["add_ons"], where=f"{where}.add_ons"),
        }

    def price_numbers(self) -> tuple[int | float, int | float]:
        """``(volume_discount_percentage, total_price)`` with the seed's JSON types."""
        discount, total = self.volume_discount_percentage, self.total_price
        if discount == 0 and float(total).is_integer():
            return 0, int(total)
        return float(discount), float(total)

    def as_record(self) -> dict[str, Any]:
        discount, total = self.price_numbers()
        return {
            "id": self.id,
            "org_id": self.org_id,
            "tier": self.tier,
            "seats": self.seats,
            "start_date": timestamp_format(self.start_date),
            "renewal_date": timestamp_format(self.renewal_date),
            "contract_term_years": self.contract_term_years,
            "billing_frequency": self.billing_frequency,
            "auto_renewal": self.auto_renewal,
            "price_per_seat": self.price_per_seat,
            "volume_discount_percentage": discount,
            "total_price": total,
            "modules": dict.fromkeys(self.modules, True),
            "support_level": self.support_level,
            "usage_limits": {
                "api_calls_per_day": UNLIMITED
                if self.api_calls_per_day is None
                else self.api_calls_per_day,
                "storage_gb": UNLIMITED if self.storage_gb is None else self.storage_gb,
                "concurrent_users": self.concurrent_users,
            },
            "add_ons": list(self.add_ons),
        }


class DowntimeLog(HRRecord):
    """A platform outage affecting one organization (``DT-000578``): an item of the seed's
    ``downtime_logs`` **list**, whose order ``position`` keeps."""

    class Severity(models.TextChoices):
        CRITICAL = "critical"
        HIGH = "high"
        MEDIUM = "medium"
        LOW = "low"

    class DetectedBy(models.TextChoices):
        MONITORING_SYSTEM = "monitoring_system"
        CUSTOMER_REPORT = "customer_report"
        INTERNAL_ALERT = "internal_alert"
        AUTOMATED_TEST = "automated_test"
        STATUS_PAGE = "status_page"

    COLLECTION = "downtime_logs"
    DATA_FILE = "data_downtime_logs.json"
    JSON_KEYS = (
        "id",
        "org_id",
        "start_time",
        "end_time",
        "duration_minutes",
        "severity",
        "affected_regions",
        "affected_services",
        "exclusions",
        "resolution",
        "impact_description",
        "detected_by",
    )

    id = models.CharField(primary_key=True, max_length=32)
    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="downtime_logs")
    start_time = models.DateTimeField()
    end_time = models.DateTimeField()
    duration_minutes = models.PositiveIntegerField()
    severity = models.CharField(max_length=20, choices=Severity.choices)
    affected_regions = models.JSONField(default=list, blank=True, help_text='Regions or "all".')
    affected_services = models.JSONField(
        default=list, blank=True, help_text='Module names or "all".'
    )
    exclusions = models.JSONField(
        default=list, blank=True, help_text='List of {"type", "description"}; empty: none.'
    )
    resolution = models.CharField(max_length=100, null=True, blank=True)
    impact_description = models.CharField(max_length=300)
    detected_by = models.CharField(max_length=30, choices=DetectedBy.choices)

    class Meta(HRRecord.Meta):
        indexes = [models.Index(fields=["org", "start_time"], name="hr_downtime_org_start")]

    def __str__(self) -> str:
        return f"{self.id} {self.org_id} {timestamp_format(self.start_time)}"

    @classmethod
    def values_from_record(cls, record: dict[str, Any], *, where: str) -> dict[str, Any]:
        for key in ("id", "org_id", "severity", "impact_description", "detected_by"):
            json_expect(record[key], str, where=f"{where}.{key}")
        json_expect(record["duration_minutes"], int, where=f"{where}.duration_minutes")
        json_expect(record["resolution"], (str, type(None)), where=f"{where}.resolution")
        return {
            "id": record["id"],
            "org_id": record["org_id"],
            "start_time": timestamp_parse(record["start_time"], where=f"{where}.start_time"),
            "end_time": timestamp_parse(record["end_time"], where=f"{where}.end_time"),
            "duration_minutes": record["duration_minutes"],
            "severity": record["severity"],
            "affected_regions": strings_expect(
                record["affected_regions"], where=f"{where}.affected_regions"
            ),
            "affected_services": strings_expect(
                record["affected_services"], where=f"{where}.affected_services"
            ),
            "exclusions": objects_expect(
                record["exclusions"], EXCLUSION_KEYS, (str, str), where=f"{where}.exclusions"
            ),
            "resolution": record["resolution"],
            "impact_description": record["impact_description"],
            "detected_by": record["detected_by"],
        }

    def as_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "org_id": self.org_id,
            "start_time": timestamp_format(self.start_time),
            "end_time": timestamp_format(self.end_time),
            "duration_minutes": self.duration_minutes,
            "severity": self.severity,
            "affected_regions": list(self.affected_regions),
            "affected_services": list(self.affected_services),
            "exclusions": objects_ordered(self.exclusions, EXCLUSION_KEYS),
            "resolution": self.resolution,
            "impact_description": self.impact_description,
            "detected_by": self.detected_by,
        }


class User(HRRecord):
    """A user of the HR software in a customer organization (``USR-000001``).

    Not a Parley login: these are the scenario's records. ``name`` and ``office`` are columns
    (``first_name``/``last_name``, ``office_*``); ``manager`` is the seed's ``manager_id`` and
    ``direct_reports`` the seed's list of ids, kept as data.
    """

    class Status(models.TextChoices):
        ACTIVE = "active"
        PENDING = "pending"
        SUSPENDED = "suspended"
        TERMINATED = "terminated"
        LOCKED = "locked"

    COLLECTION = "users"
    DATA_FILE = "users.json"
    JSON_KEYS = (
        "id",
        "org_id",
        "name",
        "email",
        "roles",
        "department",
        "office",
        "manager_id",
        "direct_reports",
        "last_login",
        "two_factor_enabled",
        "status",
        "permissions",
        "created_date",
        "title",
        "employee_id",
        "phone",
        "skills",
    )

    id = models.CharField(primary_key=True, max_length=32)
    org = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="users")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.CharField(max_length=254)
    email_folded = models.CharField(
        max_length=254,
        editable=False,
        db_index=True,
        help_text="email.lower(), kept in step by save(): the key of the by-e-mail lookup.",
    )
    roles = models.JSONField(default=list, blank=True, help_text="List of role names.")
    department = models.CharField(max_length=50)
    office_region = models.CharField(max_length=20)
    office_city = models.CharField(max_length=100)
    office_is_headquarters = models.BooleanField(default=False)
    manager = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="reports"
    )
    direct_reports = models.JSONField(default=list, blank=True, help_text="List of user ids.")
    last_login = models.DateTimeField(null=True, blank=True)
    two_factor_enabled = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    permissions = models.JSONField(default=list, blank=True, help_text="List of permissions.")
    created_date = models.DateTimeField()
    title = models.CharField(max_length=200)
    employee_id = models.CharField(max_length=20)
    phone = models.CharField(max_length=20)
    skills = models.JSONField(default=list, blank=True, help_text="List of skills.")

    def _fold_lookup_fields(self) -> None:
        self.email_folded = name_fold(self.email)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def __str__(self) -> str:
        return f"{self.full_name} ({self.id})"

    @classmethod
    def values_from_record(cls, record: dict[str, Any], *, where: str) -> dict[str, Any]:
        for key in ("id", "org_id", "email", "department", "status", "title", "employee_id"):
            json_expect(record[key], str, where=f"{where}.{key}")
        json_expect(record["phone"], str, where=f"{where}.phone")
        json_expect(record["manager_id"], (str, type(None)), where=f"{where}.manager_id")
        json_expect(record["two_factor_enabled"], bool, where=f"{where}.two_factor_enabled")
        name = object_expect(record["name"], ("first_name", "last_name"), where=f"{where}.name")
        for key in ("first_name", "last_name"):
            json_expect(name[key], str, where=f"{where}.name.{key}")
        office = objects_expect([record["office"]], OFFICE_KEYS, (str, str, bool), where=where)[0]
        last_login = record["last_login"]
        return {
            "id": record["id"],
            "org_id": record["org_id"],
            "first_name": name["first_name"],
            "last_name": name["last_name"],
            "email": record["email"],
            "roles": strings_expect(record["roles"], where=f"{where}.roles"),
            "department": record["department"],
            "office_region": office["region"],
            "office_city": office["city"],
            "office_is_headquarters": office["is_headquarters"],
            "manager_id": record["manager_id"],
            "direct_reports": strings_expect(
                record["direct_reports"], where=f"{where}.direct_reports"
            ),
            "last_login": None
            if last_login is None
            else timestamp_parse(last_login, where=f"{where}.last_login"),
            "two_factor_enabled": record["two_factor_enabled"],
            "status": record["status"],
            "permissions": strings_expect(record["permissions"], where=f"{where}.permissions"),
            "created_date": timestamp_parse(record["created_date"], where=f"{where}.created_date"),
            "title": record["title"],
            "employee_id": record["employee_id"],
            "phone": record["phone"],
            "skills": strings_expect(record["skills"], where=f"{where}.skills"),
        }

    def as_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "org_id": self.org_id,
            "name": {"first_name": self.first_name, "last_name": self.last_name},
            "email": self.email,
            "roles": list(self.roles),
            "department": self.department,
            "office": {
                "region": self.office_region,
                "city": self.office_city,
                "is_headquarters": self.office_is_headquarters,
            },
            "manager_id": self.manager_id,
            "direct_reports": list(self.direct_reports),
            "last_login": timestamp_format(self.last_login),
            "two_factor_enabled": self.two_factor_enabled,
            "status": self.status,
            "permissions": list(self.permissions),
            "created_date": timestamp_format(self.created_date),
            "title": self.title,
            "employee_id": self.employee_id,
            "phone": self.phone,
            "skills": list(self.skills),
        }


#: Every collection, sorted by collection name (the export's key order).
HR_MODELS: tuple[type[HRRecord], ...] = (DowntimeLog, Organization, Subscription, User)
