"""Pages of list answers: ``?limit=&offset=`` (50 by default, at most 500).

Every list answer is ``{"count", "next", "previous", "results"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class Pagination(LimitOffsetPagination):
    """``limit`` defaults to ``REST_FRAMEWORK["PAGE_SIZE"]`` (50); more than 500 is cut."""

    max_limit = 500


def paginated_response(
    *,
    request: Request,
    view: APIView,
    items: QuerySet[Any] | Sequence[Any],
    serializer_class: type[serializers.BaseSerializer],
) -> Response:
    """One page of ``items`` (a queryset is sliced in the database, plus one ``COUNT``)
    serialized with ``serializer_class``, paginated by the view's ``pagination_class`` (the
    same class the OpenAPI schema describes)."""
    paginator = view.pagination_class()  # type: ignore[attr-defined]
    page = paginator.paginate_queryset(items, request, view=view)  # type: ignore[arg-type]
    data = serializer_class(page, many=True, context={"request": request}).data
    return paginator.get_paginated_response(data)
