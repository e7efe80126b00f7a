"""The order-management scenario's domain: customers and their orders.

The data come from Benchforce's ``order_management`` environment (Apache-2.0, Copyright (c)
2024 Salesforce, Inc.; see ``README.md`` and the licence file beside this module). Benchforce
keeps ``customers`` as a JSON **list** and ``orders`` as a JSON object keyed by order id, and
its tools iterate both in that order ("the first customer with this email", "the orders of
this customer"). Two things reproduce that here:

- every record keeps the seed's string id (``"C1001"``, ``"O1001"``) as its primary key, and
- every record has a ``position``: its index in the collection's insertion order (the seed
  file's order, then creation order). Tools always ``order_by("position")``; they never rely
  on the database's default order.

:meth:`OrdersRecord.as_record` turns a row back into the seed-file record, with the same keys
in the same order, so :func:`parley.tools.orders.seed.orders_state_export` reproduces
``data/*.json`` exactly: ``customers`` as a list in ``position`` order, ``orders`` as an
object in ``position`` order.

Orders do not all have the same keys. The seed's orders end with ``refund_requested`` and
``created_date``; orders made by ``create_order`` have neither (as in the reference);
``return_order`` and ``request_refund`` add ``return_reason`` / ``refund_reason`` (and
``refund_requested`` where it is missing) at the end of the record, in call order. The model
keeps each such optional key in a nullable column (``NULL`` = the key is absent) and their
order in ``optional_key_order``.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.db import models

from parley.tools.records import OrderedRecord


def amount_validate(value: Any) -> None:
    """Raise ``ValidationError`` unless ``value`` is a finite JSON number (``int``/``float``,
    not ``bool``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError("must be a number, not %(value)r", params={"value": value})
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError("must be a finite number, not %(value)r", params={"value": value})


class OrdersRecord(OrderedRecord):
    """Common part of both collections: insertion order and the JSON round trip.

    ``JSON_FIELDS`` lists ``(json_key, model_attname)`` pairs in the seed file's key order for
    the keys every record has; ``COLLECTION`` is the seed file stem
    (``data/<COLLECTION>.json``) and ``ID_KEY`` the JSON key holding the record id.
    """

    COLLECTION: ClassVar[str]
    ID_KEY: ClassVar[str]
    JSON_FIELDS: ClassVar[tuple[tuple[str, str], ...]]
    #: Keys a record may lack; their column holds ``None`` when the key is absent.
    OPTIONAL_JSON_FIELDS: ClassVar[tuple[str, ...]] = ()

    class Meta(OrderedRecord.Meta):
        abstract = True

    @classmethod
    def from_record(cls, record: dict[str, Any], *, position: int) -> OrdersRecord:
        """Build an unsaved row from a seed-file record.

        Raises ``ValueError`` if a key of ``JSON_FIELDS`` is missing, a key is neither in
        ``JSON_FIELDS`` nor in ``OPTIONAL_JSON_FIELDS``, a date is not an ISO ``YYYY-MM-DD``
        string, or a value fails the field's validators (``total_amount`` must be a number).
        """
        required = [key for key, _ in cls.JSON_FIELDS]
        missing = sorted(set(required) - set(record))
        extra = sorted(set(record) - set(required) - set(cls.OPTIONAL_JSON_FIELDS))
        if missing or extra:
            raise ValueError(
                f"{cls.COLLECTION} record {record.get(cls.ID_KEY)!r}: "
                f"missing keys {missing}, unknown keys {extra}"
            )
        values: dict[str, Any] = {}
        for key, attname in [*cls.JSON_FIELDS, *((k, k) for k in cls.OPTIONAL_JSON_FIELDS)]:
            if key not in record:
                continue
            value = record[key]
            field = cls._meta.get_field(attname)
            kind = _JSON_TYPES.get(type(field))
            if kind is not None and not isinstance(value, kind):
                raise ValueError(
                    f"{cls.COLLECTION} record {record.get(cls.ID_KEY)!r}: {key} must be "
                    f"a JSON {'boolean' if kind is bool else 'string'}, not {value!r}"
                )
            if isinstance(field, models.DateField):
                value = dt.date.fromisoformat(value)
            for validator in field.validators:
                try:
                    validator(value)
                except ValidationError as exc:
                    raise ValueError(
                        f"{cls.COLLECTION} record {record.get(cls.ID_KEY)!r}: "
                        f"{key}: {' '.join(exc.messages)}"
                    ) from None
            values[attname] = value
        row = cls(position=position, **values)
        row._optional_keys_from_record(record)
        return row

    def _optional_keys_from_record(self, record: dict[str, Any]) -> None:
        """Remember the order of the record's optional keys; a no-op unless overridden."""

    def as_record(self) -> dict[str, Any]:
        """The record exactly as in the seed file (same keys, same key order, dates as text)."""
        record: dict[str, Any] = {}
        for key, attname in self.JSON_FIELDS:
            record[key] = _json_value(getattr(self, attname))
        for key in self._optional_keys_present():
            record[key] = _json_value(getattr(self, key))
        return record

    def _optional_keys_present(self) -> list[str]:
        return []


#: The JSON type a seed value must have for each kind of column, so that the export gives back
#: exactly what was loaded (Django would quietly turn "1" into True or 5 into "5").
_JSON_TYPES: dict[type[models.Field], type] = {
    models.BooleanField: bool,
    models.CharField: str,
    models.TextField: str,
    models.DateField: str,
}


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


class Customer(OrdersRecord):
    """A customer. The seed keeps customers as a JSON list, in ``position`` order here."""

    COLLECTION = "customers"
    ID_KEY = "customer_id"
    JSON_FIELDS = (
        ("customer_id", "customer_id"),
        ("name", "name"),
        ("email", "email"),
        ("phone", "phone"),
    )

    customer_id = models.CharField(primary_key=True, max_length=32)
    name = models.CharField(max_length=200)
    email = models.CharField(
        max_length=254,
        db_index=True,
        help_text="Matched exactly (case-sensitive) by confirm_customer_identity, as in the "
        "reference.",
    )
    phone = models.CharField(max_length=50, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.customer_id})"


class Order(OrdersRecord):
    """An order of a customer.

    ``customer_id`` is plain text, not a foreign key: the reference's ``create_order`` accepts
    any customer id, so an order may name a customer that does not exist (see ``customer``).
    ``items`` is the comma-separated SKU list as given; ``total_amount`` a JSON number kept
    exactly as given (an ``int`` stays an ``int``, a ``float`` keeps its value).
    """

    COLLECTION = "orders"
    ID_KEY = "order_id"
    JSON_FIELDS = (
        ("order_id", "order_id"),
        ("customer_id", "customer_id"),
        ("shipping_address", "shipping_address"),
        ("billing_address", "billing_address"),
        ("items", "items"),
        ("order_status", "order_status"),
        ("total_amount", "total_amount"),
        ("coupon_code", "coupon_code"),
        ("tracking_number", "tracking_number"),
        ("return_requested", "return_requested"),
    )
    # In the order a record gets them when nothing says otherwise (the seed's order first).
    OPTIONAL_JSON_FIELDS = ("refund_requested", "created_date", "return_reason", "refund_reason")

    #: The order statuses the seed and the tools use; ``update_order`` accepts any text.
    KNOWN_STATUSES = ("processing", "shipped", "delivered", "cancelled")

    order_id = models.CharField(primary_key=True, max_length=64)
    customer_id = models.TextField(
        db_index=True, help_text="The customer's id as given; not checked against customers."
    )
    shipping_address = models.TextField()
    billing_address = models.TextField()
    items = models.TextField(help_text="Comma-separated item SKUs, as given.")
    order_status = models.TextField(
        db_index=True,
        help_text="Free text; the seed uses processing, shipped, delivered and cancelled.",
    )
    total_amount = models.JSONField(
        validators=[amount_validate],
        help_text="A JSON number, kept exactly as given (100 stays 100, 100.0 stays 100.0).",
    )
    coupon_code = models.TextField(blank=True, help_text="Empty when no coupon is applied.")
    tracking_number = models.CharField(max_length=100, blank=True)
    return_requested = models.BooleanField(default=False)
    refund_requested = models.BooleanField(
        null=True,
        blank=True,
        help_text="Empty (unknown) when the record has no refund_requested key: orders made "
        "by create_order lack it until a refund is requested.",
    )
    created_date = models.DateField(
        null=True,
        blank=True,
        help_text="Empty when the record has no created_date key (orders made by create_order).",
    )
    return_reason = models.TextField(
        null=True, blank=True, help_text="Set by return_order; empty = no return_reason key."
    )
    refund_reason = models.TextField(
        null=True, blank=True, help_text="Set by request_refund; empty = no refund_reason key."
    )
    optional_key_order = models.CharField(
        max_length=100,
        blank=True,
        editable=False,
        help_text="The record's optional keys in record order, comma-separated. Keys present "
        "but not listed follow in OPTIONAL_JSON_FIELDS order.",
    )

    def __str__(self) -> str:
        return f"{self.order_id} ({self.customer_id}, {self.order_status})"

    @property
    def customer(self) -> Customer | None:
        """The customer this order names, or ``None`` if there is no such customer."""
        return Customer.objects.filter(pk=self.customer_id).first()

    def optional_set(self, key: str, value: Any) -> None:
        """Set optional key ``key`` to ``value`` (not ``None``) the way a dict assignment does:
        an existing key keeps its place, a new one goes after the others."""
        if key not in self.OPTIONAL_JSON_FIELDS or value is None:
            raise ValueError(f"{key!r} is not an optional order key, or the value is None")
        present = self._optional_keys_present()
        setattr(self, key, value)
        if key not in present:
            present.append(key)
        self.optional_key_order = ",".join(present)

    def _optional_keys_from_record(self, record: dict[str, Any]) -> None:
        self.optional_key_order = ",".join(k for k in record if k in self.OPTIONAL_JSON_FIELDS)

    def _optional_keys_present(self) -> list[str]:
        listed = [k for k in self.optional_key_order.split(",") if k]
        present = [k for k in self.OPTIONAL_JSON_FIELDS if getattr(self, k) is not None]

        def place(key: str) -> tuple[int, int]:
            if key in listed:
                return (0, listed.index(key))
            return (1, self.OPTIONAL_JSON_FIELDS.index(key))

        return sorted(present, key=place)


#: Every collection in the seed-file order of ``data/*.json`` stems (sorted by name).
ORDERS_MODELS: tuple[type[OrdersRecord], ...] = (Customer, Order)
