"""The agent form: the Agent model's own validators, grouped into the dashboard's cards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from parley.agents.models import CALL_LIMIT_FIELDS, TURN_TAKING_FIELDS, Agent, Scenario
from parley.agents.selectors import prompt_active
from parley.conversations.analytics import day_window
from parley.conversations.selectors import OUTCOMES, ConversationFilters
from parley.platform.fleet.models import ModelPool
from parley.tools.models import ToolSchema


@dataclass(frozen=True)
class Card:
    """A titled group of fields on the agent form (``key`` picks special rendering)."""

    key: str
    title: str
    description: str
    fields: tuple[str, ...]


CARDS = (
    Card(
        "basics",
        "Basics",
        "What the agent is called and which scenario's data and tools it works with.",
        ("name", "slug", "scenario", "greeting"),
    ),
    Card(
        "prompt",
        "Prompt",
        "The system prompt. Saving a changed prompt adds a new version; earlier versions "
        "stay in the history and can be rolled back to.",
        ("prompt",),
    ),
    Card("tools", "Tools", "The scenario's tools this agent may call.", ("tools",)),
    Card(
        "llm",
        "LLM",
        "Where the model runs and how far it may go per caller turn.",
        (
            "model_pool",
            "max_tool_steps",
            "confirm_side_effects",
        ),
    ),
    Card(
        "voice",
        "Voice",
        "Speech recognition and synthesis. Cloud engines read their keys from the server's "
        "environment, never from this form.",
        ("stt_provider", "tts_provider", "tts_voice", "tts_rate_wpm"),
    ),
    Card(
        "turn_taking",
        "Turn-taking",
        "When the caller's turn ends, how much speech counts as a turn, and what may "
        "interrupt the agent (docs/turn-taking.md).",
        TURN_TAKING_FIELDS,
    ),
    Card(
        "limits",
        "Call limits",
        "What one caller may take: calls at once and how long a call may last "
        "(docs/protocol.md, Limits).",
        CALL_LIMIT_FIELDS,
    ),
    Card(
        "widget",
        "Widget",
        "Web pages allowed to embed this agent's widget.",
        ("allowed_origins",),
    ),
    Card(
        "recording",
        "Recording",
        "Each call is recorded as a stereo WAV (caller left, agent right) for analysts; "
        "recordings older than this are deleted every hour.",
        ("recording_retention_days",),
    ),
    Card(
        "cloud",
        "Cloud engine settings",
        "Deepgram (used when the STT provider is Deepgram) and ElevenLabs (when the TTS "
        "provider is ElevenLabs).",
        (
            "deepgram_model",
            "deepgram_language",
            "deepgram_endpointing_ms",
            "deepgram_utterance_end_ms",
            "deepgram_smart_format",
            "stt_keyterms",
            "elevenlabs_voice_id",
            "elevenlabs_model_id",
            "elevenlabs_latency",
        ),
    ),
)

#: Fields of the cards that are not Agent model fields (saved by ``agent_save``).
FORM_ONLY_FIELDS = ("prompt", "tools")

#: Units of numeric fields, shown with their ranges.
UNITS = {
    "tts_rate_wpm": "words per minute",
    "min_speech_ms": "ms",
    "endpointing_ms": "ms",
    "recording_retention_days": "days (0: calls are not recorded)",
    "pre_roll_ms": "ms",
    "max_utterance_ms": "ms",
    "deepgram_endpointing_ms": "ms",
    "deepgram_utterance_end_ms": "ms",
    "max_tool_steps": "LLM calls",
    "unfinished_endpointing_ms": "ms",
    "pause_ms": "ms",
    "false_interruption_ms": "ms",
    "filler_after_ms": "ms",
    "max_concurrent_calls": "calls",
    "max_call_duration_s": "s",
}

#: Help text for fields whose model field has none.
HELP = {
    "name": "Shown in the dashboard and to callers.",
    "slug": "Used in URLs and the embed snippet; cannot be changed later.",
    "greeting": "Spoken when a call starts. Empty: the agent waits for the caller.",
    "tts_voice": "eSpeak NG voice, e.g. en-us or en-gb.",
    "vad_threshold": "Speech probability above which the voice activity detector hears speech.",
    "min_speech_ms": "Shorter sounds (a cough, a click) do not start a turn.",
    "pre_roll_ms": "Audio kept from before speech was detected, so first syllables are heard.",
    "max_utterance_ms": "A turn longer than this is ended by force.",
    "model_pool": "Pools marked LLM simulator are the built-in simulator, not a real model.",
}

STEPS = {"vad_threshold": "0.05"}


class ModelPoolChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ModelPool) -> str:  # type: ignore[override]
        if obj.kind == ModelPool.Kind.SIMULATOR and "simulator" not in obj.name.lower():
            return f"{obj.name} (LLM simulator)"
        return obj.name


class AgentForm(forms.ModelForm):
    """Create or edit an agent. ``slug`` only on create; ``prompt`` and ``tools`` are saved
    by :func:`parley.agents.services.agent_save`, not by the form."""

    prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "true"}),
        help_text="Everything the agent says is read aloud: ask for short spoken sentences.",
    )
    tools = forms.ModelMultipleChoiceField(
        queryset=ToolSchema.objects.select_related("scenario").order_by("scenario__name", "name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Agent
        # The cards' model fields, in card order (prompt and tools are form-only fields).
        fields = tuple(n for card in CARDS for n in card.fields if n not in FORM_ONLY_FIELDS)
        field_classes = {"model_pool": ModelPoolChoiceField}
        widgets = {
            "allowed_origins": forms.Textarea(
                attrs={"rows": 4, "placeholder": "https://www.example.com", "spellcheck": "false"}
            ),
            "stt_keyterms": forms.Textarea(attrs={"rows": 3}),
            "greeting": forms.TextInput(),
            "backchannel_words": forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
            "filler_text": forms.TextInput(),
        }
        labels = {
            "tts_voice": "Offline voice",
            "tts_rate_wpm": "Speaking rate",
            "stt_provider": "Speech-to-text",
            "tts_provider": "Text-to-speech",
            "vad_threshold": "Speech threshold",
            "min_speech_ms": "Minimum speech",
            "endpointing_ms": "End-of-turn silence",
            "pre_roll_ms": "Pre-roll",
            "max_utterance_ms": "Longest turn",
            "max_tool_steps": "Tool steps per turn",
            "model_pool": "Model pool",
            "allowed_origins": "Allowed origins",
            "recording_retention_days": "Keep recordings for",
            "stt_keyterms": "Deepgram key terms",
            "deepgram_endpointing_ms": "Deepgram endpointing",
            "deepgram_utterance_end_ms": "Deepgram utterance end",
            "deepgram_smart_format": "Deepgram smart format",
            "elevenlabs_voice_id": "ElevenLabs voice id",
            "elevenlabs_model_id": "ElevenLabs model",
            "elevenlabs_latency": "ElevenLabs latency mode",
            "unfinished_endpointing_ms": "Silence after an unfinished sentence",
            "pause_ms": "Pause",
            "stt_end_of_turn": "STT may end the turn",
            "speculative_start": "Speculative start",
            "barge_in": "Callers can interrupt",
            "backchannel_words": "Backchannels",
            "false_interruption_ms": "False-interruption window",
            "echo_gate": "Echo gate",
            "filler_text": "Filler line",
            "filler_after_ms": "Filler after",
            "confirm_side_effects": "Confirm before changing data",
            "max_concurrent_calls": "Calls at once",
            "max_call_duration_s": "Longest call",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.creating = self.instance.pk is None
        if not self.creating:
            del self.fields["slug"]
        self.fields["scenario"].queryset = Scenario.objects.order_by("name")
        self.fields["scenario"].empty_label = None
        self.fields["model_pool"].queryset = ModelPool.objects.order_by("name")
        self.fields["model_pool"].empty_label = None
        for name, field in self.fields.items():
            self._field_dress(name, field)
        if self.creating:
            # A new agent gets every tool; the scenario switch shows the matching ones.
            self.initial.setdefault("tools", [t.pk for t in self.fields["tools"].queryset])
            pool = ModelPool.objects.order_by("name").first()
            if pool is not None:
                self.initial.setdefault("model_pool", pool.pk)
        else:
            active = prompt_active(agent=self.instance)
            self.initial.setdefault("prompt", active.text if active else "")
            self.initial.setdefault("tools", list(self.instance.tools.values_list("pk", flat=True)))

    def _field_dress(self, name: str, field: forms.Field) -> None:
        """Ranges from the model's validators as help text and number-input limits."""
        try:
            model_field = Agent._meta.get_field(name)
        except Exception:  # prompt, tools: form-only fields
            model_field = None
        low = high = None
        for validator in getattr(model_field, "validators", ()):
            # The strictest bound wins (Django adds the database's integer range too).
            if isinstance(validator, MinValueValidator):
                low = validator.limit_value if low is None else max(low, validator.limit_value)
            elif isinstance(validator, MaxValueValidator):
                high = validator.limit_value if high is None else min(high, validator.limit_value)
        if high is not None and low is None:
            low = 0
        help_parts = []
        if high is not None:
            unit = UNITS.get(name, "")
            help_parts.append(f"{_number(low)}–{_number(high)} {unit}".strip() + ".")
            field.widget.attrs.update(
                {"min": _number(low), "max": _number(high), "step": STEPS.get(name, "1")}
            )
            field.widget.attrs.setdefault("inputmode", "decimal" if name in STEPS else "numeric")
        text = HELP.get(name) or field.help_text
        if text:
            help_parts.append(str(text))
        field.help_text = " ".join(help_parts)

    def clean_prompt(self) -> str:
        return self.cleaned_data["prompt"].replace("\r\n", "\n").replace("\r", "\n").strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        scenario = cleaned.get("scenario")
        tools = cleaned.get("tools")
        if scenario is not None and tools:
            foreign = sorted(str(t.name) for t in tools if t.scenario_id != scenario.pk)
            if foreign:
                self.add_error(
                    "tools",
                    f"Not tools of the {scenario.name} scenario: {', '.join(foreign)}. "
                    "Untick them or pick their scenario.",
                )
        return cleaned

    # Template helpers -------------------------------------------------------------------

    def cards(self) -> list[dict[str, Any]]:
        """The cards with their bound fields (fields this form does not have are skipped)."""
        out = []
        for card in CARDS:
            fields = [self[name] for name in card.fields if name in self.fields]
            out.append(
                {
                    "key": card.key,
                    "title": card.title,
                    "description": card.description,
                    "fields": fields,
                    "has_errors": any(f.errors for f in fields),
                }
            )
        return out

    def tool_groups(self) -> list[dict[str, Any]]:
        """Tools grouped by scenario, each with whether its box is ticked."""
        if self.is_bound:
            ticked = set(self.data.getlist(self.add_prefix("tools")))
        else:
            ticked = {str(pk) for pk in self.initial.get("tools", [])}
        groups: dict[int, dict[str, Any]] = {}
        for tool in self.fields["tools"].queryset:
            group = groups.setdefault(tool.scenario_id, {"scenario": tool.scenario, "tools": []})
            group["tools"].append({"tool": tool, "ticked": str(tool.pk) in ticked})
        return list(groups.values())

    def selected_scenario_id(self) -> str:
        value = self["scenario"].value()
        return str(value) if value is not None else ""


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class ConversationFilterForm(forms.Form):
    """The conversation list's filters (GET). Dates are whole UTC days, ``until`` included."""

    q = forms.CharField(required=False, max_length=200, label="Search transcripts")
    agent = forms.ChoiceField(required=False, label="Agent")
    scenario = forms.ChoiceField(required=False, label="Scenario")
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )
    outcome = forms.ChoiceField(required=False, label="Outcome")
    tool_errors = forms.BooleanField(required=False, label="Tool errors only")
    ttfa_above_ms = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=600_000,
        label="TTFA above (ms)",
        widget=forms.NumberInput(attrs={"step": 50, "placeholder": "e.g. 1000"}),
    )

    def __init__(
        self,
        *args: Any,
        agents: list[Any] | None = None,
        scenarios: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].choices = [("", "All agents")] + [
            (a.slug, a.name) for a in agents or []
        ]
        self.fields["scenario"].choices = [("", "All scenarios")] + [
            (s.slug, s.name) for s in scenarios or []
        ]
        self.fields["outcome"].choices = [("", "Any outcome"), *OUTCOMES.items()]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end of the range must not be before its start.")
        return data

    def filters(self) -> ConversationFilters:
        """The valid form as :class:`~parley.conversations.selectors.ConversationFilters`."""
        data = self.cleaned_data
        since, until = data.get("since"), data.get("until")
        return ConversationFilters(
            agent=data.get("agent") or None,
            scenario=data.get("scenario") or None,
            since=day_window(since)[0] if since else None,
            until=day_window(until)[1] if until else None,
            outcome=data.get("outcome") or None,
            tool_errors=bool(data.get("tool_errors")),
            ttfa_above_ms=data.get("ttfa_above_ms"),
            q=data.get("q") or "",
        )
