"""The one application error raised by services.

Views map it to an HTTP error, consumers to an ``{"type": "error"}`` event.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A failure a user can act on: ``message`` is shown, ``extra`` carries details."""

    def __init__(self, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
