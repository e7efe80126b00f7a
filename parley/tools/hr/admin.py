"""Django admin for the HR scenario's records.

Every list is shown in ``position`` order, the order the tools iterate records in. A record
added here without a position is appended at the end (see ``HRRecord.save``). Lists inside
records (payment methods, offices, modules, roles, permissions...) are edited as JSON.
"""

from __future__ import annotations

from django.contrib import admin

from parley.tools.hr.models import DowntimeLog, Organization, Subscription, User


class HRRecordAdmin(admin.ModelAdmin):
    """Shared settings: insertion order, and the position as an optional field."""

    ordering = ("position",)
    list_per_page = 50


@admin.register(Organization)
class OrganizationAdmin(HRRecordAdmin):
    list_display = (
        "id",
        "name",
        "primary_email",
        "subscription_id",
        "industry",
        "size_category",
        "primary_region",
        "status",
        "position",
    )
    list_filter = ("status", "size_category", "primary_region")
    search_fields = ("id", "name", "primary_email", "secondary_email", "subscription_id")


@admin.register(Subscription)
class SubscriptionAdmin(HRRecordAdmin):
    list_display = (
        "id",
        "org",
        "tier",
        "seats",
        "billing_frequency",
        "renewal_date",
        "total_price",
        "support_level",
        "position",
    )
    list_filter = ("tier", "billing_frequency", "support_level", "auto_renewal")
    list_select_related = ("org",)
    search_fields = ("id", "org__id", "org__name")
    autocomplete_fields = ("org",)


@admin.register(DowntimeLog)
class DowntimeLogAdmin(HRRecordAdmin):
    list_display = (
        "id",
        "org",
        "start_time",
        "end_time",
        "duration_minutes",
        "severity",
        "resolution",
        "detected_by",
        "position",
    )
    list_filter = ("severity", "detected_by")
    list_select_related = ("org",)
    search_fields = ("id", "org__id", "org__name", "impact_description")
    date_hierarchy = "start_time"
    autocomplete_fields = ("org",)


@admin.register(User)
class UserAdmin(HRRecordAdmin):
    list_display = (
        "id",
        "first_name",
        "last_name",
        "email",
        "org",
        "department",
        "title",
        "status",
        "two_factor_enabled",
        "position",
    )
    list_filter = ("status", "two_factor_enabled", "department")
    list_select_related = ("org",)
    search_fields = ("id", "first_name", "last_name", "email", "org__id", "org__name")
    autocomplete_fields = ("org", "manager")
