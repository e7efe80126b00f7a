"""The common base of every scenario collection's model: insertion order.

Benchforce keeps each collection as a JSON object (or list) and its tools iterate it in
insertion order ("the first referral that matches"). Every scenario record therefore has a
``position``: its index in the collection's insertion order (the seed file's order, then
creation order). Tools always ``order_by("position")``; they never rely on the database's
default order. Each domain's own base (``HospitalRecord``, ``HRRecord``, ``OrdersRecord``)
adds its JSON round trip on top.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class OrderedRecord(models.Model):
    """An abstract model with a ``position`` filled in on first save."""

    position = models.PositiveIntegerField(
        unique=True,
        blank=True,
        help_text="Index in the collection's insertion order (seed file order, then creation "
        "order). Tools iterate records in this order. Filled in automatically when empty.",
    )

    class Meta:
        abstract = True
        ordering = ["position"]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.position is None:
            self.position = type(self).position_next()
        self._fold_lookup_fields()
        super().save(*args, **kwargs)

    def _fold_lookup_fields(self) -> None:
        """Refresh derived lookup columns (``*_folded``); a no-op unless overridden."""

    @classmethod
    def position_next(cls) -> int:
        """The position after the last record: where Python would append a new key or item."""
        last = cls._default_manager.aggregate(last=models.Max("position"))["last"]
        return 0 if last is None else last + 1
