from django.contrib import admin

from parley.conversations.models import CallEvent, Conversation, Turn
from parley.tools.models import ToolCall


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
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "agent", "status", "started_at", "ended_at")
    list_filter = ("status", "agent")
    readonly_fields = [f.name for f in Conversation._meta.fields]
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
