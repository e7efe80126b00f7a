"""Model pools and their LLM servers in the admin dashboard, with each server's live state."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from parley.platform.fleet.fields import SERVER_HEALTH_FIELDS
from parley.platform.fleet.models import LLMServer, ModelPool
from parley.platform.fleet.services import fleet_health_check


def _live(server: LLMServer, key: str, unit: str = "") -> str:
    value = (server.live or {}).get(key)
    return "-" if value is None else f"{value}{unit}"


class LiveStateMixin:
    """Read-only columns of a server's state: health (active checks) and the routers' view."""

    @admin.display(description="health")
    def health_state(self, server: LLMServer) -> str:
        text = server.get_health_display()
        if server.health != LLMServer.Health.HEALTHY and server.last_error:
            text += f" ({server.last_error[:80]})"
        return text

    @admin.display(description="in flight")
    def inflight(self, server: LLMServer) -> str:
        return _live(server, "inflight")

    @admin.display(description="TTFT p50")
    def ttft(self, server: LLMServer) -> str:
        return _live(server, "ttft_p50_ms", " ms")

    @admin.display(description="ITL p50")
    def itl(self, server: LLMServer) -> str:
        return _live(server, "itl_p50_ms", " ms")

    @admin.display(description="router view")
    def router_view(self, server: LLMServer) -> str:
        live = server.live or {}
        if not live:
            return "no traffic yet"
        return (
            f"{live.get('health')}, {live.get('requests', 0)} requests, "
            f"{live.get('errors', 0)} errors, at {str(live.get('at', ''))[:19]}"
        )


class LLMServerInline(LiveStateMixin, admin.TabularInline):
    model = LLMServer
    extra = 0
    fields = (
        "name",
        "base_url",
        "api_key_env",
        "weight",
        "max_streams",
        "enabled",
        "health_state",
        "inflight",
        "ttft",
        "itl",
        "last_checked_at",
    )
    readonly_fields = ("health_state", "inflight", "ttft", "itl", "last_checked_at")


@admin.register(ModelPool)
class ModelPoolAdmin(admin.ModelAdmin):
    list_display = (
        "slug",
        "name",
        "kind",
        "model",
        "servers_summary",
        "ttft_deadline_ms",
        "stall_timeout_ms",
    )
    list_filter = ("kind",)
    inlines = [LLMServerInline]
    actions = ["check_health"]

    @admin.display(description="servers")
    def servers_summary(self, pool: ModelPool) -> str:
        servers = list(pool.servers.all())
        if not servers:
            return "single endpoint" if pool.kind != ModelPool.Kind.SIMULATOR else "built in"
        healthy = sum(s.health == LLMServer.Health.HEALTHY and s.enabled for s in servers)
        return f"{healthy} of {len(servers)} healthy"

    @admin.action(description="Check the servers' health now")
    def check_health(self, request: HttpRequest, queryset: QuerySet[ModelPool]) -> None:
        results: dict[str, Any] = {}
        for pool in queryset:
            results.update(fleet_health_check(pool_id=pool.pk))
        summary = ", ".join(f"{name}: {health}" for name, health in results.items())
        self.message_user(request, summary or "no enabled servers", messages.INFO)


@admin.register(LLMServer)
class LLMServerAdmin(LiveStateMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "pool",
        "base_url",
        "weight",
        "max_streams",
        "enabled",
        "health_state",
        "inflight",
        "ttft",
        "itl",
        "router_view",
        "last_checked_at",
    )
    list_filter = ("pool", "health", "enabled")
    readonly_fields = SERVER_HEALTH_FIELDS
