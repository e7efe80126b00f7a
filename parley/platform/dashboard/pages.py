"""Rendering a dashboard page: the role-dependent context every template reads, and the
latency labels the pages share."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from parley.platform.dashboard.roles import ADMIN, role_allows

#: How pages name each per-turn latency component (Turn field → label, what it measures).
LATENCY_LABELS = {
    "endpointing_ms": ("Endpointing", "end of speech → end of turn decided"),
    "stt_final_ms": ("STT final", "end of speech → final transcript"),
    "llm_ttft_ms": ("LLM TTFT", "LLM request → first token"),
    "first_chunk_ms": ("First chunk", "LLM request → first sentence ready for TTS"),
    "tts_ttfb_ms": ("TTS TTFB", "TTS request → first audio bytes"),
    "ttfa_ms": ("TTFA", "end of speech → first agent audio sent"),
    "ear_ttfa_ms": ("TTFA at ear", "TTFA + network round trip + playout (widget)"),
    "playout_delay_ms": ("Playout delay", "first agent audio received → played (widget)"),
    "network_rtt_ms": ("Network RTT", "WebSocket round trip (widget)"),
}


def render_page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    section: str,
    status: int = 200,
) -> HttpResponse:
    """Render ``dashboard/<template>`` with the viewer's ``role``, ``can_configure``,
    ``can_analyze`` and the sidebar ``section`` (set by ``role_required``)."""
    role = getattr(request, "dashboard_role", None)
    return render(
        request,
        f"dashboard/{template}",
        {
            "role": role,
            "can_configure": role == ADMIN,
            "can_analyze": role_allows(role, "analyze"),
            "section": section,
            **context,
        },
        status=status,
    )


def not_found_page(request: HttpRequest, message: str, *, section: str) -> HttpResponse:
    """The dashboard's 404 page with ``message``."""
    return render_page(request, "not_found.html", {"message": message}, section=section, status=404)
