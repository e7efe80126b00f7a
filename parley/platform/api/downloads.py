"""Views that answer with a file (a transcript, a recording, an export)."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request


class FileApiMixin:
    """Serve the file whatever the client's ``Accept`` says (``curl -H 'Accept: audio/wav'``
    would otherwise get 406 from DRF's content negotiation, which only knows JSON); errors
    are still JSON."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return super().perform_content_negotiation(request, force=True)  # type: ignore[misc]
