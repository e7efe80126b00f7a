"""Dashboard URLs (namespace ``dashboard``), mounted at ``/dashboard/``."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from parley.platform.dashboard import views, views_audit, views_conversations, views_reports

app_name = "dashboard"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="dashboard/login.html",
            redirect_authenticated_user=True,
            next_page="dashboard:agents",
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="dashboard:login"), name="logout"),
    path("", views.agent_list, name="agents"),
    path("agents/new/", views.agent_create, name="agent-create"),
    path("agents/<slug:slug>/", views.agent_detail, name="agent-detail"),
    path("agents/<slug:slug>/edit/", views.agent_edit, name="agent-edit"),
    path("agents/<slug:slug>/publish/", views.agent_publish_view, name="agent-publish"),
    path("agents/<slug:slug>/call/", views.agent_call, name="agent-call"),
    path("agents/<slug:slug>/call-token", views.call_token, name="call-token"),
    path(
        "agents/<slug:slug>/prompts/<int:version>/diff/",
        views.prompt_diff_view,
        name="prompt-diff",
    ),
    path(
        "agents/<slug:slug>/prompts/<int:version>/rollback/",
        views.prompt_rollback_view,
        name="prompt-rollback",
    ),
    path("conversations/", views_conversations.conversation_list_view, name="conversations"),
    path(
        "conversations/<uuid:conversation_id>/",
        views_conversations.conversation_detail,
        name="conversation-detail",
    ),
    path(
        "conversations/<uuid:conversation_id>/recording.wav",
        views_conversations.conversation_recording,
        name="conversation-recording",
    ),
    path(
        "conversations/<uuid:conversation_id>/transcript.jsonl",
        views_conversations.conversation_transcript,
        name="conversation-transcript",
    ),
    path(
        "conversations/<uuid:conversation_id>/latency.json",
        views_conversations.conversation_latency,
        name="conversation-latency",
    ),
    # Reports and exports (docs/reports.md).
    path("reports/", views_reports.report_list, name="reports"),
    path("reports/generate/", views_reports.report_generate, name="report-generate"),
    path("reports/<slug:slug>/<str:day>/", views_reports.report_detail, name="report-detail"),
    path(
        "reports/<slug:slug>/<str:day>.<str:fmt>",
        views_reports.report_download,
        name="report-download",
    ),
    path("exports/", views_reports.export_list, name="exports"),
    path("exports/new/", views_reports.export_create, name="export-create"),
    path(
        "exports/<uuid:export_id>/progress/",
        views_reports.export_progress,
        name="export-progress",
    ),
    path(
        "exports/<uuid:export_id>/download/",
        views_reports.export_download,
        name="export-download",
    ),
    # Who changed what (admins; docs/security.md).
    path("audit/", views_audit.audit_list, name="audit"),
]
