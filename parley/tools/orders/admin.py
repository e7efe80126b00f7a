"""Django admin for the order-management scenario's records.

Every list is shown in ``position`` order, the order the tools iterate records in. A record
added here without a position is appended at the end (see ``OrdersRecord.save``).

The return and refund reasons are read-only: they are what a caller said, and an empty form
field would otherwise store ``""`` and add the key to the record.
"""

from __future__ import annotations

from django.contrib import admin

from parley.tools.orders.models import Customer, Order


class OrdersRecordAdmin(admin.ModelAdmin):
    """Shared settings: insertion order, and the position as an optional field."""

    ordering = ("position",)
    list_per_page = 50


@admin.register(Customer)
class CustomerAdmin(OrdersRecordAdmin):
    list_display = ("customer_id", "name", "email", "phone", "position")
    search_fields = ("customer_id", "name", "email", "phone")


@admin.register(Order)
class OrderAdmin(OrdersRecordAdmin):
    list_display = (
        "order_id",
        "customer_id",
        "order_status",
        "total_amount",
        "coupon_code",
        "tracking_number",
        "return_requested",
        "refund_requested",
        "created_date",
        "position",
    )
    list_filter = ("order_status", "return_requested", "refund_requested")
    search_fields = (
        "order_id",
        "customer_id",
        "items",
        "shipping_address",
        "billing_address",
        "coupon_code",
        "tracking_number",
    )
    date_hierarchy = "created_date"
    readonly_fields = ("return_reason", "refund_reason")
