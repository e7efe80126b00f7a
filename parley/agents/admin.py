from django.contrib import admin

from parley.agents.models import Agent, PromptVersion, Scenario


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "domain")
    search_fields = ("slug", "name")


class PromptVersionInline(admin.TabularInline):
    model = PromptVersion
    extra = 0
    fields = ("version", "active", "text", "created_by", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "scenario", "model_pool", "published", "updated_at")
    list_filter = ("published", "scenario")
    search_fields = ("slug", "name")
    filter_horizontal = ("tools",)
    inlines = [PromptVersionInline]
    fieldsets = (
        (None, {"fields": ("slug", "name", "scenario", "published", "greeting")}),
        ("LLM", {"fields": ("model_pool", "tools", "max_tool_steps")}),
        ("Voice", {"fields": ("stt_provider", "tts_provider", "tts_voice", "tts_rate_wpm")}),
        (
            "Turn-taking",
            {
                "fields": (
                    "vad_threshold",
                    "min_speech_ms",
                    "endpointing_ms",
                    "pre_roll_ms",
                    "max_utterance_ms",
                )
            },
        ),
    )


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    list_display = ("agent", "version", "active", "created_by", "created_at")
    list_filter = ("active", "agent")
