from django.contrib import admin

from parley.tools.models import ToolCall, ToolSchema


@admin.register(ToolSchema)
class ToolSchemaAdmin(admin.ModelAdmin):
    list_display = ("name", "scenario", "side_effecting")
    list_filter = ("scenario", "side_effecting")
    search_fields = ("name", "description")


@admin.register(ToolCall)
class ToolCallAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "conversation", "turn", "duration_ms", "started_at")
    list_filter = ("status", "name")
    search_fields = ("call_id", "name", "arguments_raw", "result")
    readonly_fields = [f.name for f in ToolCall._meta.fields]
