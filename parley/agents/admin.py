from django.contrib import admin

from parley.agents.models import (
    CALL_LIMIT_FIELDS,
    TURN_TAKING_FIELDS,
    Agent,
    PromptVersion,
    Scenario,
)


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
        (
            "LLM",
            {"fields": ("model_pool", "tools", "max_tool_steps", "confirm_side_effects")},
        ),
        ("Voice", {"fields": ("stt_provider", "tts_provider", "tts_voice", "tts_rate_wpm")}),
        (
            "Deepgram speech-to-text",
            {
                "description": "Used when the STT provider is Deepgram. The API key comes from "
                "the server's environment (docs/providers.md), never from this form.",
                "fields": (
                    "deepgram_model",
                    "deepgram_language",
                    "deepgram_endpointing_ms",
                    "deepgram_utterance_end_ms",
                    "deepgram_smart_format",
                    "stt_keyterms",
                ),
            },
        ),
        (
            "ElevenLabs text-to-speech",
            {
                "description": "Used when the TTS provider is ElevenLabs; the offline voice "
                "above speaks a reply when ElevenLabs fails.",
                "fields": ("elevenlabs_voice_id", "elevenlabs_model_id", "elevenlabs_latency"),
            },
        ),
        ("Turn-taking", {"fields": TURN_TAKING_FIELDS}),
        ("Call limits", {"fields": CALL_LIMIT_FIELDS}),
    )


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    list_display = ("agent", "version", "active", "created_by", "created_at")
    list_filter = ("active", "agent")
