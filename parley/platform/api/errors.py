"""The API's exception handler (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``).

Every error body is JSON:

- ``ApplicationError`` raised by a service → 400 ``{"detail": message, "code": extra["code"]}``
  (``code`` is ``null`` when the service gave none), plus ``"field"`` when the service named
  the input it refuses;
- Django's ``ValidationError`` (``Model.full_clean``) → 400 ``{field: [messages]}``, like a
  serializer's (``__all__`` becomes ``non_field_errors``);
- everything else as DRF answers it: ``{"detail": ...}`` (401, 403, 404, 405, 429) or
  ``{field: [messages]}`` (400 from a serializer).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from parley.platform.errors import ApplicationError


class ApiErrorSerializer(serializers.Serializer):
    """The body of a 4xx answer that is not a field-by-field validation error."""

    detail = serializers.CharField(help_text="What went wrong, for a person to read.")
    code = serializers.CharField(
        required=False, allow_null=True, help_text="A stable code, when there is one."
    )
    field = serializers.CharField(
        required=False, help_text="The input a service refused, when it said which."
    )


#: Schema of a 400: field-by-field, or a service's refusal.
BAD_REQUEST = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description='Invalid input: ``{"<field>": ["message", ...]}``, or a refusal of the service: '
    '``{"detail": "...", "code": "..." | null, "field": "<field>"}`` (``field`` optional).',
)
#: Schema of a 404.
NOT_FOUND = OpenApiResponse(ApiErrorSerializer, description="No such object (or not yours).")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map service and model errors to 400s, then defer to DRF's handler."""
    if isinstance(exc, ApplicationError):
        body = {"detail": exc.message, "code": exc.extra.get("code")}
        if "field" in exc.extra:  # the input the refusal is about
            body["field"] = exc.extra["field"]
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        detail = serializers.as_serializer_error(exc)
        if NON_FIELD_ERRORS in detail:
            detail[api_settings.NON_FIELD_ERRORS_KEY] = detail.pop(NON_FIELD_ERRORS)
        exc = exceptions.ValidationError(detail)
    return drf_exception_handler(exc, context)
