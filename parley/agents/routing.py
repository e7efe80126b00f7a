"""WebSocket routes of the caller protocol (docs/protocol.md)."""

from __future__ import annotations

from django.urls import path

from parley.agents.consumers import CallConsumer

websocket_urlpatterns = [
    path("ws/agents/<slug:slug>/call", CallConsumer.as_asgi()),
]
