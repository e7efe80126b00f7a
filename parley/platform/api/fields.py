"""Serializer fields the API shares."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field(OpenApiTypes.STR)
class InstantField(serializers.Field):
    """An ISO 8601 date-time (``2025-05-01T14:30:00Z``; without an offset: UTC) or a date
    (``2025-05-01``) meaning a whole UTC day, as the dashboard's filters do.

    A date opens a range at its midnight; with ``range_end`` it closes the range at the *next*
    midnight, so the day is included (``since=2025-05-01&until=2025-05-01`` is that day).
    The value is an aware ``datetime``.
    """

    default_error_messages = {
        "invalid": "Enter an ISO 8601 date (2025-05-01) or date-time (2025-05-01T14:30:00Z; "
        "in a URL, write a + offset as %2B).",
    }

    def __init__(self, *, range_end: bool = False, **kwargs: Any) -> None:
        self.range_end = range_end
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dt.datetime:
        text = str(data).strip()
        try:
            day = parse_date(text)
            moment = None if day else parse_datetime(text)
        except ValueError:  # well-formed but impossible (2025-02-30)
            self.fail("invalid")
        if day is not None:
            day += dt.timedelta(days=1 if self.range_end else 0)
            return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        if moment is None:
            self.fail("invalid")
        if timezone.is_naive(moment):
            moment = moment.replace(tzinfo=dt.UTC)
        return moment

    def to_representation(self, value: dt.datetime) -> str:
        return value.isoformat()


class SlugKeyField(serializers.SlugRelatedField):
    """A ``SlugRelatedField`` for input: a value with a NUL character is ``invalid`` (400)
    before any lookup, since PostgreSQL refuses NUL in text and the query would be a 500."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and "\x00" in data:
            self.fail("invalid")
        return super().to_internal_value(data)
