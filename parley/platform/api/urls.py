"""API URLs (namespace ``api``), mounted at ``/api/``. See docs/api.md.

A collection's URL takes GET (list) and POST (create or request); each method is its own
APIView (:func:`~parley.platform.api.routing.method_views`).
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from parley.platform.api import agents, conversations, reports
from parley.platform.api.permissions import ReadRole
from parley.platform.api.routing import method_views

app_name = "api"

urlpatterns = [
    # Agents and prompts
    path(
        "agents/",
        method_views(get=agents.AgentListApi, post=agents.AgentCreateApi),
        name="agents",
    ),
    path(
        "agents/<slug:slug>/",
        method_views(get=agents.AgentDetailApi, patch=agents.AgentUpdateApi),
        name="agent",
    ),
    path("agents/<slug:slug>/publish", agents.AgentPublishApi.as_view(), name="agent-publish"),
    path(
        "agents/<slug:slug>/prompts/",
        method_views(get=agents.PromptListApi, post=agents.PromptCreateApi),
        name="prompts",
    ),
    path(
        "agents/<slug:slug>/prompts/<int:version>/rollback",
        agents.PromptRollbackApi.as_view(),
        name="prompt-rollback",
    ),
    # Conversations
    path("conversations/", conversations.ConversationListApi.as_view(), name="conversations"),
    path(
        "conversations/<uuid:conversation_id>/",
        conversations.ConversationDetailApi.as_view(),
        name="conversation",
    ),
    path(
        "conversations/<uuid:conversation_id>/turns/",
        conversations.ConversationTurnListApi.as_view(),
        name="conversation-turns",
    ),
    path(
        "conversations/<uuid:conversation_id>/tool-calls/",
        conversations.ConversationToolCallListApi.as_view(),
        name="conversation-tool-calls",
    ),
    path(
        "conversations/<uuid:conversation_id>/transcript",
        conversations.ConversationTranscriptApi.as_view(),
        name="conversation-transcript",
    ),
    path(
        "conversations/<uuid:conversation_id>/recording",
        conversations.ConversationRecordingApi.as_view(),
        name="conversation-recording",
    ),
    # Reports and exports
    path(
        "reports/",
        method_views(get=reports.ReportListApi, post=reports.ReportRequestApi),
        name="reports",
    ),
    path("reports/<int:report_id>/", reports.ReportDetailApi.as_view(), name="report"),
    path(
        "exports/",
        method_views(get=reports.ExportListApi, post=reports.ExportRequestApi),
        name="exports",
    ),
    path("exports/<uuid:export_id>/", reports.ExportDetailApi.as_view(), name="export"),
    path(
        "exports/<uuid:export_id>/download",
        reports.ExportDownloadApi.as_view(),
        name="export-download",
    ),
    # The OpenAPI 3 schema and Swagger UI (its files from drf-spectacular-sidecar, no CDN).
    # Both need a role, like every other URL here.
    path("schema/", SpectacularAPIView.as_view(permission_classes=[ReadRole]), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="api:schema", permission_classes=[ReadRole]),
        name="docs",
    ),
]
