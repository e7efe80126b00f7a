"""One URL, one APIView per action: ``GET /api/agents/`` lists, ``POST /api/agents/`` creates.

The house style keeps one ``APIView`` per action (its own permissions, serializers and schema)
while the API's URLs are resources. :func:`method_views` joins the two: it routes each request
by method to its action's view. :func:`method_views_expand` (a drf-spectacular
``PREPROCESSING_HOOKS`` entry) lets the schema see each action view under the shared path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from rest_framework.views import APIView

Endpoint = tuple[str, str, str, Callable[..., Any]]


def method_views(**views: type[APIView]) -> Callable[..., HttpResponseBase]:
    """A URL view serving each HTTP method with its own APIView:
    ``method_views(get=AgentListApi, post=AgentCreateApi)``.

    HEAD goes to the GET view. Any other method goes to the first view, which checks
    authentication and permissions, then answers 405 (or OPTIONS). ``Allow`` lists every
    method of the URL.
    """
    if not views:
        raise ValueError("method_views needs at least one view")
    callbacks = {method.upper(): view.as_view() for method, view in views.items()}
    first = next(iter(callbacks.values()))
    allow = ", ".join([*callbacks, *(["HEAD"] if "GET" in callbacks else []), "OPTIONS"])

    # Each APIView enforces CSRF itself for session-authenticated requests (DRF's
    # SessionAuthentication); Django's middleware must not check before it.
    @csrf_exempt
    def route(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        method = "GET" if request.method == "HEAD" else (request.method or "GET")
        response = callbacks.get(method, first)(request, *args, **kwargs)
        if response.has_header("Allow"):  # DRF sends the one view's methods: the URL's
            response["Allow"] = allow
        return response

    route.method_views = callbacks  # type: ignore[attr-defined]
    # Schema discovery (drf-spectacular's endpoint enumerator) keeps only callbacks with an
    # APIView ``cls`` and asks it for the allowed methods; method_views_expand then swaps in
    # the real view of each method.
    route.cls = type(  # type: ignore[attr-defined]
        "MethodViews", (APIView,), {method.lower(): _never for method in callbacks}
    )
    route.initkwargs = {}  # type: ignore[attr-defined]
    return route


def _never(*args: Any, **kwargs: Any) -> None:  # pragma: no cover - never dispatched
    raise AssertionError("method_views stand-in called")


def method_views_expand(endpoints: list[Endpoint], **kwargs: Any) -> list[Endpoint]:
    """drf-spectacular preprocessing hook: each endpoint of a :func:`method_views` URL gets
    the callback of its method's APIView, so its schema (``extend_schema``, serializers,
    permissions) is that view's."""
    expanded = []
    for path, path_regex, method, callback in endpoints:
        routed = getattr(callback, "method_views", None)
        expanded.append((path, path_regex, method, routed[method] if routed else callback))
    return expanded
