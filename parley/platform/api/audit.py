"""The access audit log, as the API writes it (channel ``api``)."""

from __future__ import annotations

import uuid
from typing import Any

from rest_framework.request import Request

from parley.conversations.models import AccessLog
from parley.conversations.services import access_record
from parley.platform.http import client_address


def api_access_record(
    request: Request,
    action: str,
    *,
    conversation_id: uuid.UUID | str | None = None,
    **detail: Any,
) -> AccessLog:
    """One ``AccessLog`` row: the request's user did ``action`` (an ``AccessLog.Action``)
    through the API, from the request's client address."""
    return access_record(
        user=request.user,
        action=action,
        channel=AccessLog.Channel.API,
        conversation_id=conversation_id,
        address=client_address(request),  # type: ignore[arg-type]
        detail=detail,
    )
