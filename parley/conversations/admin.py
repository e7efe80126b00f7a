from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from parley.conversations.models import (
    AccessLog,
    AgentDayReport,
    CallEvent,
    Conversation,
    ConversationExport,
    Recording,
    Turn,
)
from parley.tools.models import ToolCall


class ReadOnlyAdmin(admin.ModelAdmin):
    """Every field shown read-only: rows written by the platform, looked at here."""

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]


class TurnInline(admin.TabularInline):
    model = Turn
    extra = 0
    can_delete = False
    fields = (
        "index",
        "status",
        "user_text",
        "spoken_text",
        "stt_final_ms",
        "llm_ttft_ms",
        "tts_ttfb_ms",
        "ttfa_ms",
    )
    readonly_fields = fields


class ToolCallInline(admin.TabularInline):
    model = ToolCall
    extra = 0
    can_delete = False
    fields = ("name", "status", "arguments_raw", "result", "duration_ms")
    readonly_fields = fields


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    list_display = ("id", "agent", "status", "started_at", "ended_at")
    list_filter = ("status", "agent")
    inlines = [TurnInline, ToolCallInline]


@admin.register(Turn)
class TurnAdmin(admin.ModelAdmin):
    list_display = ("conversation", "index", "status", "ttfa_ms", "user_text")
    list_filter = ("status",)
    search_fields = ("user_text", "agent_text")


@admin.register(CallEvent)
class CallEventAdmin(admin.ModelAdmin):
    list_display = ("conversation", "seq", "turn_index", "type", "t_ms")
    list_filter = ("type",)


@admin.register(AccessLog)
class AccessLogAdmin(ReadOnlyAdmin):
    """The access audit trail: read-only, not even deletable from the admin."""

    list_display = (
        "at",
        "username",
        "action",
        "channel",
        "conversation_id",
        "export_id",
        "address",
    )
    list_filter = ("action", "channel")
    search_fields = ("username", "conversation_id", "export_id", "address")
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Recording)
class RecordingAdmin(ReadOnlyAdmin):
    list_display = ("conversation", "duration_ms", "size_bytes", "expires_at", "deleted_at")
    list_filter = ("deleted_at",)


@admin.register(AgentDayReport)
class AgentDayReportAdmin(ReadOnlyAdmin):
    list_display = ("day", "agent", "status", "attempts", "generated_at")
    list_filter = ("status", "agent")


@admin.register(ConversationExport)
class ConversationExportAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "requested_by", "since", "until", "redact", "status", "done")
    list_filter = ("status", "redact")
