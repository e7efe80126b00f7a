"""ASGI entry point served by Daphne: HTTP (Django) and the caller WebSocket (Channels)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parley.platform.settings.local")
# Django must be set up before the routing (and the models it imports) loads.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from parley.agents.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origin checks and publishable keys for public widgets arrive with the widget issue;
        # the session middleware lets the dashboard's logged-in test calls through.
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
