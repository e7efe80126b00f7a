"""Day reports and bulk exports: ``/api/reports/...`` and ``/api/exports/...``
(docs/api.md#reports, docs/reports.md).

Both are background jobs: a POST asks for one and answers 202 with the job (``Location``
names it); GET the job until its ``status`` is ``done``. Analysts and admins may ask for
either; analysts see only their own exports.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from parley.agents.models import Agent
from parley.conversations.models import AccessLog, AgentDayReport, ConversationExport, JobStatus
from parley.conversations.report_selectors import (
    conversation_export_file,
    conversation_export_visible,
    conversation_exports_visible,
)
from parley.conversations.report_services import (
    agent_day_report_request,
    conversation_export_download_record,
    conversation_export_request,
)
from parley.platform.api.downloads import FileApiMixin
from parley.platform.api.errors import BAD_REQUEST, NOT_FOUND, ApiErrorSerializer
from parley.platform.api.fields import InstantField, SlugKeyField
from parley.platform.api.pagination import Pagination, paginated_response
from parley.platform.api.permissions import AnalyzeRole, ReadRole, request_role
from parley.platform.api.selectors import report_get, report_list
from parley.platform.http import client_address, download_starts, ranged_file_response

TAG_REPORTS = ["reports"]
TAG_EXPORTS = ["exports"]


def _agent_field(**kwargs: Any) -> serializers.SlugRelatedField:
    return SlugKeyField(
        slug_field="slug", queryset=Agent.objects.all(), help_text="Agent slug.", **kwargs
    )


# Reports ----------------------------------------------------------------------------------


class ReportSummarySerializer(serializers.ModelSerializer):
    """One agent's day report job (figures only in the detail)."""

    agent = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    requested_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, help_text="Null: the nightly run."
    )

    class Meta:
        model = AgentDayReport
        fields = (
            "id",
            "agent",
            "day",
            "status",
            "error",
            "requested_by",
            "created_at",
            "generated_at",
        )


class ReportListApi(APIView):
    """``GET /api/reports/``: day reports, newest day first."""

    permission_classes = [ReadRole]
    pagination_class = Pagination

    class FilterSerializer(serializers.Serializer):
        agent = serializers.SlugField(required=False, help_text="Agent slug.")
        since = serializers.DateField(required=False, help_text="First day (UTC), included.")
        until = serializers.DateField(required=False, help_text="Last day (UTC), included.")
        status = serializers.ChoiceField(choices=JobStatus.choices, required=False)

        def validate_agent(self, value: str) -> str:
            if not Agent.objects.filter(slug=value).exists():
                raise serializers.ValidationError(f"no agent named {value!r}")
            return value

        def validate(self, data: dict[str, Any]) -> dict[str, Any]:
            since, until = data.get("since"), data.get("until")
            if since and until and since > until:
                raise serializers.ValidationError(
                    {"until": ["The last day must not come before the first."]}
                )
            return data

    class OutputSerializer(ReportSummarySerializer):
        pass

    @extend_schema(
        tags=TAG_REPORTS,
        parameters=[FilterSerializer],
        responses={200: OutputSerializer(many=True), 400: BAD_REQUEST},
    )
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return paginated_response(
            request=request,
            view=self,
            items=report_list(**params.validated_data),
            serializer_class=self.OutputSerializer,
        )


class ReportDetailApi(APIView):
    """``GET /api/reports/<id>/``: a day report with its figures (docs/reports.md)."""

    permission_classes = [ReadRole]

    class OutputSerializer(ReportSummarySerializer):
        class Meta(ReportSummarySerializer.Meta):
            fields = (*ReportSummarySerializer.Meta.fields, "figures")

    @extend_schema(tags=TAG_REPORTS, responses={200: OutputSerializer, 404: NOT_FOUND})
    def get(self, request: Request, report_id: int) -> Response:
        report = report_get(report_id=report_id)
        if report is None:
            raise NotFound("no such report")
        return Response(self.OutputSerializer(report).data)


class ReportRequestApi(APIView):
    """``POST /api/reports/``: (re)generate an agent's report of a day, in the background."""

    permission_classes = [AnalyzeRole]
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer):
        agent = _agent_field()
        day = serializers.DateField(help_text="The UTC day, e.g. 2025-05-01.")

    @extend_schema(
        tags=TAG_REPORTS,
        request=InputSerializer,
        responses={202: ReportDetailApi.OutputSerializer, 400: BAD_REQUEST},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report = agent_day_report_request(**serializer.validated_data, user=request.user)
        return Response(
            ReportDetailApi.OutputSerializer(report).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": reverse("api:report", args=[report.pk])},
        )


# Exports ----------------------------------------------------------------------------------


class ExportSerializer(serializers.ModelSerializer):
    """A bulk export job: its range, its progress and, once done, where to download it."""

    agent = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, help_text="Null: every agent."
    )
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    progress = serializers.FloatField(read_only=True, help_text="0.0 – 1.0.")
    download_url = serializers.SerializerMethodField(help_text="Null until status is done.")

    class Meta:
        model = ConversationExport
        fields = (
            "id",
            "status",
            "progress",
            "done",
            "total",
            "since",
            "until",
            "agent",
            "redact",
            "requested_by",
            "size_bytes",
            "error",
            "created_at",
            "finished_at",
            "download_url",
        )

    def get_download_url(self, export: ConversationExport) -> str | None:
        if export.status != JobStatus.DONE:
            return None
        return reverse("api:export-download", args=[export.pk])


def _export_or_404(request: Request, export_id: Any) -> ConversationExport:
    export = conversation_export_visible(
        export_id=export_id, user=request.user, role=request_role(request)
    )
    if export is None:
        raise NotFound("no such export")
    return export


class ExportListApi(APIView):
    """``GET /api/exports/``: exports newest first (an analyst's own; every one for admins)."""

    permission_classes = [ReadRole]
    pagination_class = Pagination

    @extend_schema(tags=TAG_EXPORTS, responses=ExportSerializer(many=True))
    def get(self, request: Request) -> Response:
        return paginated_response(
            request=request,
            view=self,
            items=conversation_exports_visible(user=request.user, role=request_role(request)),
            serializer_class=ExportSerializer,
        )


class ExportRequestApi(APIView):
    """``POST /api/exports/``: export the conversations of a range as JSONL, in the
    background (at most a year). The service writes the request to the access audit log
    (``export_request``, channel ``api``)."""

    permission_classes = [AnalyzeRole]
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer):
        since = InstantField(
            help_text="Conversations started at or after: a date-time, or a date (midnight UTC)."
        )
        until = InstantField(
            range_end=True,
            help_text="... and before: a date-time, or a date (that whole UTC day included).",
        )
        agent = _agent_field(required=False, allow_null=True)
        redact = serializers.BooleanField(
            required=False,
            default=False,
            help_text="Remove phone numbers, e-mail addresses and dates of birth.",
        )

        def validate(self, data: dict[str, Any]) -> dict[str, Any]:
            if data["since"] >= data["until"]:
                raise serializers.ValidationError(
                    {"until": ["The end of the range must come after its start."]}
                )
            return data

    @extend_schema(
        tags=TAG_EXPORTS,
        request=InputSerializer,
        responses={202: ExportSerializer, 400: BAD_REQUEST},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        export = conversation_export_request(
            user=request.user,
            **serializer.validated_data,
            channel=AccessLog.Channel.API,
            address=client_address(request),  # type: ignore[arg-type]
        )
        return Response(
            ExportSerializer(export).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": reverse("api:export", args=[export.pk])},
        )


class ExportDetailApi(APIView):
    """``GET /api/exports/<id>/``: an export's status and progress (``done`` of ``total``
    conversations written)."""

    permission_classes = [ReadRole]

    @extend_schema(tags=TAG_EXPORTS, responses={200: ExportSerializer, 404: NOT_FOUND})
    def get(self, request: Request, export_id: Any) -> Response:
        return Response(ExportSerializer(_export_or_404(request, export_id)).data)


class ExportDownloadApi(FileApiMixin, APIView):
    """``GET /api/exports/<id>/download``: the export's file, once its status is ``done``
    (409 before). Audited (``export_download``) once per download, not per byte range."""

    permission_classes = [ReadRole]

    @extend_schema(
        tags=TAG_EXPORTS,
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.BINARY, description="One conversation per line."
            ),
            404: NOT_FOUND,
            409: OpenApiResponse(ApiErrorSerializer, description="Not done yet (or failed)."),
        },
    )
    def get(self, request: Request, export_id: Any) -> Any:
        export = _export_or_404(request, export_id)
        if export.status != JobStatus.DONE:
            return Response(
                {
                    "detail": f"the export is {export.status} ({export.done} of {export.total} "
                    "conversations written); download it once its status is done",
                    "code": f"export_{export.status}",
                },
                status=status.HTTP_409_CONFLICT,
            )
        path = conversation_export_file(export=export)
        if path is None:
            raise NotFound("the export's file is gone")
        if download_starts(request):
            conversation_export_download_record(
                export=export,
                user=request.user,
                channel=AccessLog.Channel.API,
                address=client_address(request),  # type: ignore[arg-type]
            )
        return ranged_file_response(
            request,  # type: ignore[arg-type]
            path,
            content_type="application/x-ndjson",
            filename=f"parley-export-{export.pk}.jsonl",
        )
