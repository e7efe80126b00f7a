"""Conversations for analysts: ``/api/conversations/...`` (docs/api.md#conversations).

The list filters and searches like the dashboard (both go through
:class:`~parley.conversations.selectors.ConversationFilters`); one conversation, its turns,
tool calls, transcript and recording are each written to the access audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.http import HttpResponse, HttpResponseBase
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from parley.agents.models import Agent, Scenario
from parley.agents.voice.metrics import TURN_LATENCY_COMPONENTS
from parley.conversations.models import AccessLog, CallEvent, Conversation, Recording, Turn
from parley.conversations.reports import conversation_transcript_jsonl
from parley.conversations.selectors import (
    OUTCOMES,
    ConversationFilters,
    ConversationTimeline,
    conversation_get,
    conversation_search,
    conversation_timeline,
)
from parley.platform.api.audit import api_access_record
from parley.platform.api.downloads import FileApiMixin
from parley.platform.api.errors import BAD_REQUEST, NOT_FOUND
from parley.platform.api.fields import InstantField
from parley.platform.api.pagination import Pagination, paginated_response
from parley.platform.api.permissions import ReadRole
from parley.platform.api.selectors import tool_call_list
from parley.platform.http import download_starts, ranged_file_response
from parley.tools.models import ToolCall

TAGS = ["conversations"]


def _timeline_or_404(conversation_id: Any) -> ConversationTimeline:
    try:
        return conversation_timeline(conversation_id=conversation_id)
    except Conversation.DoesNotExist as exc:
        raise NotFound("no such conversation") from exc


def _conversation_or_404(conversation_id: Any) -> Conversation:
    conversation = conversation_get(conversation_id=conversation_id)
    if conversation is None:
        raise NotFound("no such conversation")
    return conversation


class ToolCallSerializer(serializers.ModelSerializer):
    """One tool call the LLM asked for: what it sent, what it got back, how long it took."""

    class Meta:
        model = ToolCall
        fields = (
            "call_id",
            "name",
            "arguments",
            "arguments_raw",
            "status",
            "result",
            "error",
            "started_at",
            "finished_at",
            "duration_ms",
        )


class CallEventSerializer(serializers.ModelSerializer):
    """A notable event of a call (an error, a TTS fallback, a barge-in), as sent to the caller."""

    class Meta:
        model = CallEvent
        fields = ("seq", "type", "turn_index", "t_ms", "data")


class TurnSerializer(serializers.ModelSerializer):
    """One caller utterance and the agent's reply, with latencies in ms, the fleet routing of
    each LLM step, its tool calls and notable events. Needs the turns of
    :func:`~parley.conversations.selectors.conversation_timeline`."""

    tool_calls = ToolCallSerializer(many=True, read_only=True, source="tool_calls_list")
    events = CallEventSerializer(many=True, read_only=True, source="events_list")

    class Meta:
        model = Turn
        fields = (
            "index",
            "status",
            "started_at",
            "ended_at",
            "user_text",
            "agent_text",
            "spoken_text",
            "user_speech_ms",
            "agent_audio_ms",
            *TURN_LATENCY_COMPONENTS,
            "llm_steps",
            "routing",
            "error",
            "tool_calls",
            "events",
        )


class ConversationSummarySerializer(serializers.ModelSerializer):
    """A conversation's summary columns (written at hang-up; zero while the call is live)."""

    agent = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    agent_name = serializers.CharField(source="agent.name", read_only=True)
    scenario = serializers.CharField(source="agent.scenario.slug", read_only=True)
    duration_ms = serializers.SerializerMethodField(help_text="Null while the call is live.")

    class Meta:
        model = Conversation
        fields = (
            "id",
            "agent",
            "agent_name",
            "scenario",
            "status",
            "end_reason",
            "started_at",
            "ended_at",
            "duration_ms",
            "turn_count",
            "interrupted_turns",
            "tool_calls_count",
            "tool_errors",
            "ttfa_p50_ms",
            "ttfa_max_ms",
        )

    def get_duration_ms(self, conversation: Conversation) -> float | None:
        if conversation.ended_at is None:
            return None
        return round((conversation.ended_at - conversation.started_at).total_seconds() * 1000, 1)


class ConversationListApi(APIView):
    """``GET /api/conversations/``: conversations newest first, filtered and searched.

    One page costs a constant number of queries: the filters read the summary columns.
    """

    permission_classes = [ReadRole]
    pagination_class = Pagination

    class FilterSerializer(serializers.Serializer):
        agent = serializers.SlugField(required=False, help_text="Agent slug.")
        scenario = serializers.SlugField(required=False, help_text="Scenario slug.")
        since = InstantField(
            required=False,
            help_text="Started at or after: a date-time, or a date (its midnight UTC).",
        )
        until = InstantField(
            required=False,
            range_end=True,
            help_text="Started before: a date-time, or a date (that whole UTC day included).",
        )
        outcome = serializers.ChoiceField(
            choices=list(OUTCOMES.items()), required=False, help_text="How the call went."
        )
        tool_errors = serializers.BooleanField(
            required=False, default=False, help_text="Only calls with a failed tool call."
        )
        ttfa_above_ms = serializers.FloatField(
            required=False, min_value=0, help_text="Only calls whose slowest TTFA exceeded it."
        )
        q = serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=200,
            help_text='Full-text search of what was said: words, "a phrase", -not, or.',
        )

        def validate_agent(self, value: str) -> str:
            if not Agent.objects.filter(slug=value).exists():
                raise serializers.ValidationError(f"no agent named {value!r}")
            return value

        def validate_scenario(self, value: str) -> str:
            if not Scenario.objects.filter(slug=value).exists():
                raise serializers.ValidationError(f"no scenario named {value!r}")
            return value

        def validate(self, data: dict[str, Any]) -> dict[str, Any]:
            since, until = data.get("since"), data.get("until")
            if since and until and since >= until:
                raise serializers.ValidationError(
                    {"until": ["The end of the range must come after its start."]}
                )
            return data

    class OutputSerializer(ConversationSummarySerializer):
        pass

    @extend_schema(
        tags=TAGS,
        parameters=[FilterSerializer],
        responses={200: OutputSerializer(many=True), 400: BAD_REQUEST},
    )
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        try:
            filters = ConversationFilters(**params.validated_data)
        except ValueError as exc:  # the selector's own checks; the serializer's come first
            raise ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [str(exc)]}) from exc
        return paginated_response(
            request=request,
            view=self,
            items=conversation_search(filters),
            serializer_class=self.OutputSerializer,
        )


class RecordingSerializer(serializers.ModelSerializer):
    """The call's stereo WAV (caller left, agent right); ``url`` is null once deleted."""

    available = serializers.BooleanField(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Recording
        fields = (
            "available",
            "url",
            "sample_rate_hz",
            "channels",
            "duration_ms",
            "size_bytes",
            "created_at",
            "expires_at",
            "deleted_at",
        )

    def get_url(self, recording: Recording) -> str | None:
        if not recording.available:
            return None
        return reverse("api:conversation-recording", args=[recording.conversation_id])


class ConversationDetailApi(APIView):
    """``GET /api/conversations/<id>/``: the summary, every turn with its latencies, tool
    calls, routing and events, the call's errors and its recording. Audited (``view``)."""

    permission_classes = [ReadRole]

    class OutputSerializer(ConversationSummarySerializer):
        prompt_version = serializers.IntegerField(
            source="prompt_version.version", read_only=True, allow_null=True
        )
        providers = serializers.JSONField(read_only=True, help_text="STT/LLM/TTS engines used.")
        environment = serializers.UUIDField(
            source="environment_id",
            read_only=True,
            allow_null=True,
            help_text="The sandbox its tools ran in; null: live data.",
        )
        recording = serializers.SerializerMethodField()
        turns = serializers.SerializerMethodField()
        errors = serializers.SerializerMethodField()

        class Meta(ConversationSummarySerializer.Meta):
            fields = (
                *ConversationSummarySerializer.Meta.fields,
                "prompt_version",
                "providers",
                "environment",
                "recording",
                "turns",
                "errors",
            )

        # The timeline (turns, errors, recording) comes in the context: one load, 4 queries.

        @extend_schema_field(RecordingSerializer(allow_null=True))
        def get_recording(self, conversation: Conversation) -> dict[str, Any] | None:
            recording = self.context["timeline"].recording
            return RecordingSerializer(recording).data if recording else None

        @extend_schema_field(TurnSerializer(many=True))
        def get_turns(self, conversation: Conversation) -> list[dict[str, Any]]:
            return TurnSerializer(self.context["timeline"].turns, many=True).data

        @extend_schema_field(CallEventSerializer(many=True))
        def get_errors(self, conversation: Conversation) -> list[dict[str, Any]]:
            return CallEventSerializer(self.context["timeline"].errors, many=True).data

    @extend_schema(tags=TAGS, responses={200: OutputSerializer, 404: NOT_FOUND})
    def get(self, request: Request, conversation_id: Any) -> Response:
        timeline = _timeline_or_404(conversation_id)
        api_access_record(request, AccessLog.Action.VIEW, conversation_id=conversation_id)
        data = self.OutputSerializer(timeline.conversation, context={"timeline": timeline}).data
        return Response(data)


class ConversationTurnListApi(APIView):
    """``GET /api/conversations/<id>/turns/``: the turns in order. Audited (``view``)."""

    permission_classes = [ReadRole]
    pagination_class = Pagination

    @extend_schema(tags=TAGS, responses={200: TurnSerializer(many=True), 404: NOT_FOUND})
    def get(self, request: Request, conversation_id: Any) -> Response:
        timeline = _timeline_or_404(conversation_id)
        api_access_record(
            request, AccessLog.Action.VIEW, conversation_id=conversation_id, part="turns"
        )
        return paginated_response(
            request=request, view=self, items=timeline.turns, serializer_class=TurnSerializer
        )


class ConversationToolCallListApi(APIView):
    """``GET /api/conversations/<id>/tool-calls/``: tool calls in the order they started,
    each with its turn's index. Audited (``view``)."""

    permission_classes = [ReadRole]
    pagination_class = Pagination

    class OutputSerializer(ToolCallSerializer):
        turn = serializers.IntegerField(
            source="turn.index", read_only=True, allow_null=True, help_text="Turn index."
        )

        class Meta(ToolCallSerializer.Meta):
            fields = ("turn", *ToolCallSerializer.Meta.fields)

    @extend_schema(tags=TAGS, responses={200: OutputSerializer(many=True), 404: NOT_FOUND})
    def get(self, request: Request, conversation_id: Any) -> Response:
        if not Conversation.objects.filter(id=conversation_id).exists():
            raise NotFound("no such conversation")
        api_access_record(
            request, AccessLog.Action.VIEW, conversation_id=conversation_id, part="tool_calls"
        )
        return paginated_response(
            request=request,
            view=self,
            items=tool_call_list(conversation_id=conversation_id),
            serializer_class=self.OutputSerializer,
        )


class ConversationTranscriptApi(FileApiMixin, APIView):
    """``GET /api/conversations/<id>/transcript``: the JSONL transcript
    (docs/transcript-format.md), one event per line. Audited (``transcript``).

    The file written at hang-up when there is one, else built from the event log (a live
    call, or before the report task ran).
    """

    permission_classes = [ReadRole]

    @extend_schema(
        tags=TAGS,
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="One JSON object per line (parley-transcript/v1)."
            ),
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, conversation_id: Any) -> HttpResponseBase:
        conversation = _conversation_or_404(conversation_id)
        api_access_record(request, AccessLog.Action.TRANSCRIPT, conversation_id=conversation.pk)
        body = conversation_transcript_jsonl(conversation)
        response = HttpResponse(body, content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="parley-{conversation.pk}.jsonl"'
        return response


class ConversationRecordingApi(FileApiMixin, APIView):
    """``GET /api/conversations/<id>/recording``: the stereo WAV (byte ranges answered).

    404 when the call was not recorded or retention deleted the file. Audited
    (``recording``) once per download: not again for a range past the file's first byte.
    """

    permission_classes = [ReadRole]

    @extend_schema(
        tags=TAGS,
        responses={
            (200, "audio/wav"): OpenApiResponse(
                OpenApiTypes.BINARY, description="16-bit PCM WAV: caller left, agent right."
            ),
            (206, "audio/wav"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The requested byte range."
            ),
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, conversation_id: Any) -> HttpResponseBase:
        conversation = _conversation_or_404(conversation_id)
        recording = getattr(conversation, "recording", None)
        if recording is None or not recording.available or not Path(recording.path).is_file():
            raise NotFound("this call has no recording (not recorded, or deleted by retention)")
        if download_starts(request):
            api_access_record(request, AccessLog.Action.RECORDING, conversation_id=conversation.pk)
        return ranged_file_response(
            request,  # type: ignore[arg-type]
            Path(recording.path),
            content_type="audio/wav",
            filename=f"parley-{conversation.pk}.wav",
        )
