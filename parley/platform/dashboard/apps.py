from __future__ import annotations

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """No models: an app only for the ``manage.py role`` command."""

    name = "parley.platform.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"
