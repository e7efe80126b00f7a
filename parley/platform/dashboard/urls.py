"""Dashboard URLs (namespace ``dashboard``), mounted at ``/dashboard/``."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from parley.platform.dashboard import views

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
    path("conversations/", views.conversation_list_view, name="conversations"),
]
