"""OpenAPI schema generation (drf-spectacular): component names of nested serializers.

Every view nests its own ``InputSerializer`` and ``OutputSerializer``, so class names repeat;
:class:`ApiSchema` names a component after the view it is nested in instead:
``AgentListApi.OutputSerializer`` → ``AgentListOutput``.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ApiSchema(AutoSchema):
    """``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``: spectacular's, with qualified names."""

    def get_serializer_name(self, serializer: serializers.Serializer, direction: str) -> str:
        parts = type(serializer).__qualname__.split(".")
        if len(parts) == 1:
            return parts[0]
        return "".join(part.removesuffix("Serializer").removesuffix("Api") for part in parts)
