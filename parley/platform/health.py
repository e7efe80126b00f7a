"""Health endpoints for orchestrators (docs/operations.md#health-endpoints).

``GET /healthz`` (liveness): 200 while the process answers HTTP at all; touches nothing.
``GET /readyz`` (readiness): 200 when the database and Redis (when one is configured) answer
and the process is not draining; 503 otherwise. Both answer JSON, need no authentication (they
reveal no data: check names and ``ok``/error text) and write nothing; each readiness check
is bounded by :data:`CHECK_TIMEOUT_S`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from parley.platform import lifecycle

#: Seconds each readiness check may take (a probe must answer well within its own timeout,
#: commonly 1 s in Kubernetes).
CHECK_TIMEOUT_S = 1.0


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: ``{"status": "ok"}``."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: ``{"status": "ok"|"unavailable", "checks": {name: {"ok", "ms", "error"?}}}``
    with 200 or 503. Checks: ``draining``, ``database`` (``SELECT 1``), ``redis`` (``PING``
    to each Redis URL configured: REDIS_URL, a Redis CELERY_BROKER_URL)."""
    checks: dict[str, dict[str, Any]] = {
        "draining": {"ok": not lifecycle.draining()},
        "database": _timed(_database_check),
    }
    for index, url in enumerate(_redis_urls()):
        checks["redis" if index == 0 else f"redis_{index + 1}"] = _timed(lambda u=url: _ping(u))
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


def _timed(check: Any) -> dict[str, Any]:
    started = time.monotonic()
    try:
        check()
        result: dict[str, Any] = {"ok": True}
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def _database_check() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis_urls() -> list[str]:
    urls = [getattr(settings, "REDIS_URL", ""), settings.CELERY_BROKER_URL]
    found: list[str] = []
    for url in urls:
        if url and url.startswith(("redis://", "rediss://", "unix://")) and url not in found:
            found.append(url)
    return found


def _ping(url: str) -> None:
    client = redis.Redis.from_url(
        url, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()


class HealthProbeMiddleware:
    """Answer ``/healthz`` and ``/readyz`` before anything reads the ``Host`` header.

    Orchestrators probe a process by its own address (Kubernetes sends the pod IP as ``Host``),
    which ``ALLOWED_HOSTS`` rightly refuses with 400 for every other URL; the probes reveal
    nothing, so they answer whatever the host. First in ``MIDDLEWARE``.
    """

    PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
        "/healthz": healthz,
        "/readyz": readyz,
    }

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = self.PROBES.get(request.path_info)
        return probe(request) if probe is not None else self.get_response(request)
