"""Top-level URLs."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from parley.agents.api import call_token_create
from parley.platform.fleet.metrics import metrics_view
from parley.platform.health import healthz, readyz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard:agents"), name="home"),
    path("admin/", admin.site.urls),
    path("dashboard/", include("parley.platform.dashboard.urls")),
    path("metrics", metrics_view, name="metrics"),
    # Orchestrator probes: unauthenticated, cheap, no writes (docs/operations.md).
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("api/v1/call-tokens", call_token_create, name="call-token-create"),
    path("api/", include("parley.platform.api.urls")),
]
